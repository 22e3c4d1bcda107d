//! SQLite's batched reads (see `batch.rs`) come back as one JSON value.
//!
//! Through sqlx, every SQLite row is copied value by value on the
//! connection's worker thread and handed over to the async side on its
//! own, and each column is then found by name and decoded (timestamps by
//! trying several formats). For a batch of many rows that, not the look-up,
//! was most of the cost. So a batch query folds its rows into one JSON
//! array of flat arrays, one a row: `'[' || group_concat(json_array(…)) ||
//! ']'`, see [`rows!`]. One value crosses over, and it is read here with
//! serde, column by position.
//!
//! Each row is one flat `json_array` of all its columns, the token's (or
//! session's) and then its user's: an array nested in another is taken
//! apart and written again by SQLite, and so is each row given to
//! `json_group_array`, where `group_concat` only copies it.

use std::fmt;
use std::marker::PhantomData;

use chrono::format::{parse, Fixed, Item, Numeric, Pad, Parsed};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use portcullis::oauth2::{OAuth2Token, TokenKind};
use portcullis::store::{SessionRecord, StoreError, TokenRecord};
use portcullis::User;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::error::map_sqlx_error;
use crate::sql::{KeyedSessions, KeyedTokens};

/// The select list of a batch query whose rows are `json_array(…)` of
/// the given columns: all rows as one JSON array (`NULL` when there are
/// none), as [`parse_rows`] reads it.
macro_rules! rows {
    ($($columns:tt)*) => {
        concat!("'[' || group_concat(json_array(", $($columns)*, ")) || ']'")
    };
}
pub(crate) use rows;

/// A value that takes its columns, in order, from the flat array of a
/// row: a table's part of a joined row.
trait Columns<'de>: Sized {
    fn take<A: SeqAccess<'de>>(row: &mut A) -> Result<Self, A::Error>;
}

/// The row's next column.
fn next<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(row: &mut A) -> Result<T, A::Error> {
    row.next_element()?
        .ok_or_else(|| de::Error::custom("a row has fewer columns than selected"))
}

/// A struct of a table's columns, in their order in the select list;
/// `Option<$name>` reads a `LEFT JOIN`'s missing row (the first column
/// `null`, and every other, which are skipped).
macro_rules! columns {
    ($(#[$doc:meta])* $name:ident($first:ty $(, $rest:ty)* $(,)?)) => {
        $(#[$doc])*
        struct $name($first $(, $rest)*);

        impl $name {
            fn after_first<'de, A: SeqAccess<'de>>(
                first: $first,
                row: &mut A,
            ) -> Result<Self, A::Error> {
                Ok($name(first $(, next::<A, $rest>(row)?)*))
            }
        }

        impl<'de> Columns<'de> for $name {
            fn take<A: SeqAccess<'de>>(row: &mut A) -> Result<Self, A::Error> {
                let first = next(row)?;
                Self::after_first(first, row)
            }
        }

        impl<'de> Columns<'de> for Option<$name> {
            fn take<A: SeqAccess<'de>>(row: &mut A) -> Result<Self, A::Error> {
                match next::<A, Option<$first>>(row)? {
                    Some(first) => $name::after_first(first, row).map(Some),
                    None => {
                        // One skip for each remaining column (`$rest` only
                        // drives the repetition).
                        $(
                            let _: Option<$rest> = None;
                            next::<A, IgnoredAny>(row)?;
                        )*
                        Ok(None)
                    }
                }
            }
        }
    };
}

impl<'de, A: Columns<'de>, B: Columns<'de>> Columns<'de> for (A, B) {
    fn take<S: SeqAccess<'de>>(row: &mut S) -> Result<Self, S::Error> {
        let a = A::take(row)?;
        Ok((a, B::take(row)?))
    }
}

/// One row's flat array, read as `T`'s columns, all of them and no more.
struct Flat<T>(T);

impl<'de, T: Columns<'de>> Deserialize<'de> for Flat<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Columns<'de>> Visitor<'de> for V<T> {
            type Value = Flat<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a row's columns")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut row: A) -> Result<Flat<T>, A::Error> {
                let value = T::take(&mut row)?;
                match row.next_element::<IgnoredAny>()? {
                    None => Ok(Flat(value)),
                    Some(_) => Err(de::Error::custom("a row has more columns than selected")),
                }
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

columns!(
    /// `user_columns!()`: booleans are SQLite's 0 and 1.
    JsonUser(
        i64,
        String,
        Option<Timestamp>,
        i64,
        String,
        String,
        String,
        String,
        i64,
        i64,
        Timestamp,
    )
);

impl From<JsonUser> for User {
    fn from(u: JsonUser) -> Self {
        User {
            id: u.0,
            password: u.1,
            last_login: u.2.map(|t| t.0),
            is_superuser: u.3 != 0,
            username: u.4,
            first_name: u.5,
            last_name: u.6,
            email: u.7,
            is_staff: u.8 != 0,
            is_active: u.9 != 0,
            date_joined: u.10 .0,
        }
    }
}

columns!(
    /// `token_columns!()`.
    JsonToken(i64, String, String, Timestamp)
);

columns!(
    /// `session_columns!()`; `data` is JSON text.
    JsonSession(String, i64, String, Timestamp)
);

columns!(
    /// The OAuth2 token columns (`TOKEN_COLUMNS` of `oauth2.rs`): times are
    /// Unix seconds, `revoked` is 0 or 1.
    JsonOAuth2Token(
        String,
        String,
        String,
        Option<i64>,
        String,
        String,
        i64,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
    )
);

/// The rows of a batch query whose one column is [`rows!`]'s.
fn parse_rows<'r, T: Columns<'r>>(row: &'r SqliteRow) -> Result<Vec<T>, StoreError> {
    let text: Option<&str> = row.try_get(0).map_err(map_sqlx_error)?;
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let rows: Vec<Flat<T>> = serde_json::from_str(text).map_err(unreadable)?;
    Ok(rows.into_iter().map(|Flat(row)| row).collect())
}

/// A row that does not read as expected. serde's message can quote the
/// value it found (a password hash, say), so only its place is kept.
fn unreadable(e: serde_json::Error) -> StoreError {
    StoreError::backend(format!(
        "cannot read a batch of rows: {:?} error at character {}",
        e.classify(),
        e.column()
    ))
}

/// Users, keyed by id, from `rows!(user_columns)`.
pub(crate) fn users(row: &SqliteRow) -> Result<Vec<(i64, User)>, StoreError> {
    Ok(parse_rows::<JsonUser>(row)?
        .into_iter()
        .map(|u| (u.0, User::from(u)))
        .collect())
}

/// Tokens with their users, keyed by digest, from
/// `rows!(token_columns, user_columns)`.
pub(crate) fn tokens(row: &SqliteRow) -> Result<KeyedTokens, StoreError> {
    Ok(parse_rows::<(JsonToken, JsonUser)>(row)?
        .into_iter()
        .map(|(t, u)| {
            let token = TokenRecord {
                user_id: t.0,
                digest: t.1,
                sealed_key: t.2,
                created: t.3 .0,
            };
            (token.digest.clone(), (token, Some(User::from(u))))
        })
        .collect())
}

/// OAuth2 tokens with their users (`null` columns where the `LEFT JOIN`
/// found none), keyed by digest, from `rows!(TOKEN_COLUMNS,
/// user_columns)`. A row of an unknown kind is no token.
pub(crate) fn oauth2_tokens(row: &SqliteRow) -> Result<KeyedOAuth2Tokens, StoreError> {
    use crate::oauth2::{from_ts, split};
    Ok(parse_rows::<(JsonOAuth2Token, Option<JsonUser>)>(row)?
        .into_iter()
        .filter_map(|(t, u)| {
            let token = OAuth2Token {
                kind: TokenKind::parse(&t.1)?,
                digest: t.0,
                client_id: t.2,
                user_id: t.3,
                scopes: split(&t.4),
                family: t.5,
                revoked: t.6 != 0,
                expires_at: t.7.map(from_ts),
                redirect_uri: t.8,
                code_challenge: t.9,
                code_challenge_method: t.10,
                created: from_ts(t.11),
            };
            Some((token.digest.clone(), (token, u.map(User::from))))
        })
        .collect())
}

/// What [`oauth2_tokens`] reads.
pub(crate) type KeyedOAuth2Tokens = Vec<(String, (OAuth2Token, Option<User>))>;

/// Sessions with their users, keyed by key digest, as [`tokens`].
pub(crate) fn sessions(row: &SqliteRow) -> Result<KeyedSessions, StoreError> {
    parse_rows::<(JsonSession, JsonUser)>(row)?
        .into_iter()
        .map(|(s, u)| {
            let session = SessionRecord {
                key_digest: s.0,
                user_id: s.1,
                data: serde_json::from_str(&s.2).map_err(unreadable)?,
                expires: s.3 .0,
            };
            Ok((session.key_digest.clone(), (session, Some(User::from(u)))))
        })
        .collect()
}

/// A timestamp column: text, as this crate and Django write it (UTC
/// `YYYY-MM-DD HH:MM:SS.ffffff`), or any of the forms sqlx reads (RFC
/// 3339, an offset, no seconds, a `T`); a number is a Unix time (integer)
/// or a Julian day (real), as SQLite's date functions take them.
struct Timestamp(DateTime<Utc>);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Timestamp, E> {
                written_timestamp(s)
                    .or_else(|| parse_timestamp(s))
                    .map(Timestamp)
                    .ok_or_else(|| E::custom(format_args!("not a timestamp: {s:?}")))
            }

            fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Timestamp, E> {
                DateTime::from_timestamp(secs, 0)
                    .map(Timestamp)
                    .ok_or_else(|| E::custom("timestamp out of range"))
            }

            fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Timestamp, E> {
                self.visit_i64(
                    i64::try_from(secs).map_err(|_| E::custom("timestamp out of range"))?,
                )
            }

            fn visit_f64<E: de::Error>(self, julian_day: f64) -> Result<Timestamp, E> {
                const UNIX_EPOCH_JULIAN_DAY: f64 = 2_440_587.5;
                let micros = (julian_day - UNIX_EPOCH_JULIAN_DAY) * 86_400e6;
                // `as` saturates; out-of-range values are refused below.
                DateTime::from_timestamp_micros(micros.round() as i64)
                    .map(Timestamp)
                    .ok_or_else(|| E::custom("timestamp out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The form this crate and Django write, `YYYY-MM-DD HH:MM:SS` with up
/// to nine digits of fraction, read digit by digit (a token's or a
/// session's row has three timestamps, and chrono's general parser costs
/// several times as much); `None` for anything else, which
/// [`parse_timestamp`] then tries.
fn written_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            // At most nine digits: the scale is a power of ten from 1 to 10^8.
            num(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let year = i32::try_from(num(&b[0..4])?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(&b[5..7])?, num(&b[8..10])?)?;
    let at = date.and_hms_nano_opt(num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?, nanos)?;
    Some(at.and_utc())
}

/// The written form first, with its items prepared once; then the others.
fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    const WRITTEN: &[Item<'static>] = &[
        Item::Numeric(Numeric::Year, Pad::Zero),
        Item::Literal("-"),
        Item::Numeric(Numeric::Month, Pad::Zero),
        Item::Literal("-"),
        Item::Numeric(Numeric::Day, Pad::Zero),
        Item::Literal(" "),
        Item::Numeric(Numeric::Hour, Pad::Zero),
        Item::Literal(":"),
        Item::Numeric(Numeric::Minute, Pad::Zero),
        Item::Literal(":"),
        Item::Numeric(Numeric::Second, Pad::Zero),
        Item::Fixed(Fixed::Nanosecond),
    ];
    let mut parsed = Parsed::new();
    if parse(&mut parsed, s, WRITTEN.iter()).is_ok() {
        if let Ok(at) = parsed.to_naive_datetime_with_offset(0) {
            return Some(at.and_utc());
        }
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        return Some(at.to_utc());
    }
    for format in ["%F %T%.f%:z", "%F %R%:z", "%FT%T%.f%:z", "%FT%R%:z"] {
        if let Ok(at) = DateTime::parse_from_str(s, format) {
            return Some(at.to_utc());
        }
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    ["%F %T%.f", "%F %R", "%FT%T%.f", "%FT%R"]
        .into_iter()
        .find_map(|format| NaiveDateTime::parse_from_str(naive, format).ok())
        .map(|at| at.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_in_every_form_sqlx_reads() {
        let at = |h, m, s, us| {
            Utc.with_ymd_and_hms(2024, 2, 29, h, m, s).unwrap() + chrono::Duration::microseconds(us)
        };
        let cases = [
            ("2024-02-29 13:45:07.123456", at(13, 45, 7, 123_456)),
            ("2024-02-29 13:45:07", at(13, 45, 7, 0)),
            ("2024-02-29 13:45:07.5", at(13, 45, 7, 500_000)),
            ("2024-02-29T13:45:07.123456Z", at(13, 45, 7, 123_456)),
            ("2024-02-29T15:45:07+02:00", at(13, 45, 7, 0)),
            ("2024-02-29 15:45:07.25+02:00", at(13, 45, 7, 250_000)),
            ("2024-02-29 13:45", at(13, 45, 0, 0)),
            ("2024-02-29T13:45", at(13, 45, 0, 0)),
            ("2024-02-29 13:45:07Z", at(13, 45, 7, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_timestamp(text), Some(want), "{text}");
        }
        for bad in [
            "",
            "yesterday",
            "2024-02-30 00:00:00",
            "2024-02-29 25:00:00",
        ]
        .into_iter()
        .chain(["2024-02-29 13:45:07 and more"])
        {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    /// The digit-by-digit reader agrees with chrono on the written form,
    /// every fraction length included, and leaves every other form to it.
    #[test]
    fn the_written_form_is_read_as_chrono_reads_it() {
        for text in [
            "2024-02-29 13:45:07",
            "1999-12-31 23:59:59.9",
            "2000-01-01 00:00:00.01",
            "2026-11-25 09:41:02.123",
            "2026-11-25 09:41:02.123456",
            "2026-11-25 09:41:02.123456789",
            "0001-01-01 00:00:00.000001",
            "9999-12-31 23:59:59.999999",
        ] {
            assert!(written_timestamp(text).is_some(), "{text}");
            assert_eq!(written_timestamp(text), parse_timestamp(text), "{text}");
        }
        for other in [
            "2024-02-29T13:45:07",
            "2024-02-29 13:45",
            "2024-02-29 13:45:07Z",
            "2024-02-29 13:45:07.1234567890",
        ] {
            assert_eq!(written_timestamp(other), None, "{other}");
            assert!(parse_timestamp(other).is_some(), "{other}");
        }
        for bad in [
            "2024-02-30 00:00:00",
            "2024-02-29 24:00:00",
            "2024-02-29 13:4a:07",
            "2024-02-29 13:45:07.",
            "2024-02-29 13:45:07.5x",
            "2024-02-29 13:45:07.\u{e9}",
        ] {
            assert_eq!(written_timestamp(bad), None, "{bad}");
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn numeric_timestamps_are_unix_times_or_julian_days() {
        let t: Timestamp = serde_json::from_str("1709214307").unwrap();
        assert_eq!(t.0, Utc.with_ymd_and_hms(2024, 2, 29, 13, 45, 7).unwrap());
        let t: Timestamp = serde_json::from_str("2440588.5").unwrap();
        assert_eq!(t.0, Utc.with_ymd_and_hms(1970, 1, 2, 0, 0, 0).unwrap());
        assert!(serde_json::from_str::<Timestamp>("true").is_err());
        assert!(serde_json::from_str::<Timestamp>("1e300").is_err());
        let err = serde_json::from_str::<Timestamp>("\"soon\"").err().unwrap();
        assert!(err.to_string().contains("not a timestamp"), "{err}");
    }

    #[test]
    fn unreadable_rows_name_no_value() {
        // A password hash where a flag should be: serde quotes it.
        let raw = serde_json::from_str::<Vec<(i64, i64)>>(r#"[["pbkdf2_sha256$secret", 1]]"#)
            .unwrap_err();
        assert!(raw.to_string().contains("secret"), "{raw}");
        let err = serde_json::from_str::<Vec<(i64, i64)>>(r#"[["pbkdf2_sha256$secret", 1]]"#)
            .map_err(unreadable)
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(err.to_string().contains("Data error"), "{err}");
    }

    /// A token's columns and a user's, as `rows!` writes them.
    const TOKEN: &str = r#"7, "v1$d", "sealed", "2024-02-29 13:45:07.123456""#;
    const USER: &str = r#"7, "pbkdf2_sha256$x", null, 0, "ada", "Ada", "L", "ada@example.com", 1, 1, "2024-01-01 00:00:00""#;

    #[test]
    fn a_flat_row_is_split_between_its_tables() {
        let row = format!("[{TOKEN}, {USER}]");
        let rows: Vec<Flat<(JsonToken, JsonUser)>> =
            serde_json::from_str(&format!("[{row},{row}]")).unwrap();
        assert_eq!(rows.len(), 2);
        let Flat((t, u)) = rows.into_iter().next().unwrap();
        assert_eq!((t.0, t.1.as_str(), t.2.as_str()), (7, "v1$d", "sealed"));
        let user = User::from(u);
        assert_eq!((user.id, user.username.as_str()), (7, "ada"));
        assert_eq!(user.email, "ada@example.com");
        assert!(user.is_staff && user.is_active && !user.is_superuser);
        assert_eq!(user.last_login, None);
    }

    #[test]
    fn a_row_must_have_exactly_the_selected_columns() {
        let short = format!("[{TOKEN}, {}]", USER.rsplit_once(',').unwrap().0);
        let long = format!("[{TOKEN}, {USER}, 1]");
        for row in [short, long, "[]".to_owned(), format!("[{TOKEN}]")] {
            let err = serde_json::from_str::<Vec<Flat<(JsonToken, JsonUser)>>>(&format!("[{row}]"))
                .map_err(unreadable)
                .err()
                .expect(&row);
            assert!(err.to_string().contains("Data error"), "{row}: {err}");
        }
    }

    #[test]
    fn a_left_join_without_its_row_reads_as_none() {
        type Joined = Vec<Flat<(JsonOAuth2Token, Option<JsonUser>)>>;
        let token =
            r#""dg", "access", "client", null, "read", "f", 0, null, null, null, null, 1700000000"#;
        let nulls = ["null"; 11].join(", ");
        let rows: Joined =
            serde_json::from_str(&format!("[[{token}, {nulls}], [{token}, {USER}]]")).unwrap();
        assert!(rows[0].0 .1.is_none());
        assert_eq!(rows[1].0 .1.as_ref().map(|u| u.0), Some(7));
        // A missing user still has all its columns, as `null`.
        assert!(serde_json::from_str::<Joined>(&format!("[[{token}, null]]")).is_err());
    }
}
