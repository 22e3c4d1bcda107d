//! What the SQL backends share: decoding rows into the core's records, and
//! the small values every dialect writes the same way.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use portcullis::lockout::Failures;
use portcullis::store::{SessionRecord, StoreError, TokenRecord};
use portcullis::User;
use rand::distributions::{Alphanumeric, DistString};
use sqlx::{Column as _, ColumnIndex, Database, Decode, Row, Type, TypeInfo as _};

pub(crate) use crate::millis::{expiry_millis, from_millis, millis};

/// How long a pool waits for a connection before the store reports
/// [`StoreError::Unavailable`], so a database that is down fails fast.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a PostgreSQL or MariaDB connection may have been idle and
/// still be handed out without a ping first.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pool options for a server database: fail fast when it is down, and
/// ping a connection before use only when it has been idle for
/// [`PING_AFTER_IDLE`] (sqlx's default pings before every use: a second
/// round trip on every query). A connection that broke while busy fails
/// its next query and is then dropped (sqlx pings it when it comes back).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn server_pool_options<DB: sqlx::Database>() -> sqlx::pool::PoolOptions<DB> {
    use sqlx::Connection;
    sqlx::pool::PoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// The columns of `auth_user` in Django's order, as a literal for
/// `concat!` (MariaDB selects its own, see `mysql.rs`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! user_columns {
    () => {
        "id, password, last_login, is_superuser, username, first_name, last_name, email, \
         is_staff, is_active, date_joined"
    };
}
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use user_columns;

/// The columns of `portcullis_token`, as a literal for `concat!`.
macro_rules! token_columns {
    () => {
        "user_id, digest, sealed_key, created"
    };
}
pub(crate) use token_columns;

/// The columns of `portcullis_session`, as a literal for `concat!`.
macro_rules! session_columns {
    () => {
        "key_digest, user_id, data, expires"
    };
}
pub(crate) use session_columns;

/// A value a row can hand back.
pub(crate) trait Column<'r, DB: Database>: Decode<'r, DB> + Type<DB> {}
impl<'r, DB: Database, T: Decode<'r, DB> + Type<DB>> Column<'r, DB> for T {}

/// A row of `auth_user`, selected with `user_columns!()` from column
/// `first` on (`0` alone, after the other table's columns in a join),
/// its types checked as [`column`] says (pass [`CHECKED`] for a row read
/// on its own).
///
/// Columns are taken by position, in `user_columns!()`'s order: by name,
/// each would cost a hash look-up, on every row of every uncached read.
pub(crate) fn user_from_row<'r, R>(
    row: &'r R,
    first: usize,
    check: bool,
) -> Result<User, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Column<'r, R::Database>,
    bool: Column<'r, R::Database>,
    String: Column<'r, R::Database>,
    DateTime<Utc>: Column<'r, R::Database>,
{
    Ok(User {
        id: column(row, first, check)?,
        password: column(row, first + 1, check)?,
        last_login: column(row, first + 2, check)?,
        is_superuser: column(row, first + 3, check)?,
        username: column(row, first + 4, check)?,
        first_name: column(row, first + 5, check)?,
        last_name: column(row, first + 6, check)?,
        email: column(row, first + 7, check)?,
        is_staff: column(row, first + 8, check)?,
        is_active: column(row, first + 9, check)?,
        date_joined: column(row, first + 10, check)?,
    })
}

/// For a row read on its own: check its columns' types.
pub(crate) const CHECKED: bool = true;

/// Column `at` of `row`, its type checked against `T` when `check`, else
/// only decoded. In one result set every row's column has the type the
/// result declares for it on PostgreSQL and MariaDB, so the batched reads
/// check the first row (the declared type too, even where that row holds
/// `NULL`) and skip the check, a few hundred instructions a column, on the
/// rest. A `NULL` where `T` cannot hold one is an error either way.
fn column<'r, R, T>(row: &'r R, at: usize, check: bool) -> Result<T, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Column<'r, R::Database>,
{
    if !check {
        return row.try_get_unchecked(at);
    }
    let declared = row.try_column(at)?.type_info();
    if !declared.is_null() && !T::compatible(declared) {
        return Err(sqlx::Error::ColumnDecode {
            index: at.to_string(),
            source: format!("the column's type, {declared}, is not the one expected").into(),
        });
    }
    row.try_get(at)
}

/// How many columns `token_columns!()` and `session_columns!()` name:
/// where the user's columns start in a joined row.
pub(crate) const RECORD_COLUMNS: usize = 4;

/// A row of `portcullis_token`, selected with `token_columns!()` first
/// (taken by position and checked, as [`user_from_row`]).
pub(crate) fn token_from_row<'r, R>(row: &'r R, check: bool) -> Result<TokenRecord, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Column<'r, R::Database>,
    String: Column<'r, R::Database>,
    DateTime<Utc>: Column<'r, R::Database>,
{
    Ok(TokenRecord {
        user_id: column(row, 0, check)?,
        digest: column(row, 1, check)?,
        sealed_key: column(row, 2, check)?,
        created: column(row, 3, check)?,
    })
}

/// A row of `portcullis_session`, selected with `session_columns!()`
/// first (taken by position and checked, as [`user_from_row`]); `data` is
/// JSON text.
pub(crate) fn session_from_row<'r, R>(row: &'r R, check: bool) -> Result<SessionRecord, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Column<'r, R::Database>,
    String: Column<'r, R::Database>,
    DateTime<Utc>: Column<'r, R::Database>,
{
    let data: String = column(row, 2, check)?;
    Ok(SessionRecord {
        key_digest: column(row, 0, check)?,
        user_id: column(row, 1, check)?,
        data: serde_json::from_str(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        expires: column(row, 3, check)?,
    })
}

/// Users from rows selected with `user_columns!()`, each keyed by id
/// (for a batched read, see `batch.rs`).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn keyed_users<'r, R>(rows: &'r [R]) -> Result<Vec<(i64, User)>, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Column<'r, R::Database>,
    bool: Column<'r, R::Database>,
    String: Column<'r, R::Database>,
    DateTime<Utc>: Column<'r, R::Database>,
{
    rows.iter()
        .enumerate()
        .map(|(n, row)| user_from_row(row, 0, n == 0).map(|user| (user.id, user)))
        .collect::<Result<_, _>>()
        .map_err(crate::error::map_sqlx_error)
}

/// Tokens with their users from joined rows, each keyed by digest.
pub(crate) type KeyedTokens = Vec<(String, (TokenRecord, Option<User>))>;

/// [`KeyedTokens`] from rows selected with `token_columns!()` and the
/// user's columns.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn keyed_tokens<'r, R>(rows: &'r [R]) -> Result<KeyedTokens, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Column<'r, R::Database>,
    bool: Column<'r, R::Database>,
    String: Column<'r, R::Database>,
    DateTime<Utc>: Column<'r, R::Database>,
{
    rows.iter()
        .enumerate()
        .map(|(n, row)| {
            let token = token_from_row(row, n == 0)?;
            let user = user_from_row(row, RECORD_COLUMNS, n == 0)?;
            Ok((token.digest.clone(), (token, Some(user))))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(crate::error::map_sqlx_error)
}

/// Sessions with their users from joined rows, each keyed by key digest.
pub(crate) type KeyedSessions = Vec<(String, (SessionRecord, Option<User>))>;

/// [`KeyedSessions`] from rows selected with `session_columns!()` and
/// the user's columns.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn keyed_sessions<'r, R>(rows: &'r [R]) -> Result<KeyedSessions, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Column<'r, R::Database>,
    bool: Column<'r, R::Database>,
    String: Column<'r, R::Database>,
    DateTime<Utc>: Column<'r, R::Database>,
{
    rows.iter()
        .enumerate()
        .map(|(n, row)| {
            let session = session_from_row(row, n == 0)?;
            let user = user_from_row(row, RECORD_COLUMNS, n == 0)?;
            Ok((session.key_digest.clone(), (session, Some(user))))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(crate::error::map_sqlx_error)
}

/// Session data as the JSON text the `data` column holds.
pub(crate) fn session_data(session: &SessionRecord) -> Result<String, StoreError> {
    serde_json::to_string(&session.data).map_err(StoreError::backend)
}

/// Now, at the microsecond precision every engine stores, so a returned
/// record equals what a later read gives back.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The row of `portcullis_login_failure` as the core's [`Failures`].
pub(crate) fn failures_from(count: i64, last_failure_ms: i64) -> Failures {
    Failures {
        count: count_u32(count),
        last_failure: from_millis(last_failure_ms),
    }
}

/// The failure count a database returned, as the trait's `u32`.
pub(crate) fn count_u32(count: i64) -> u32 {
    u32::try_from(count.max(0)).unwrap_or(u32::MAX)
}

/// Django's unusable password: `!` and 40 random characters
/// (`make_password(None)`), so no password ever matches it.
pub(crate) fn unusable_password() -> String {
    format!(
        "!{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 40)
    )
}

/// `Ok` when an `UPDATE`/`DELETE` touched a row, else
/// [`StoreError::NotFound`] naming the user.
pub(crate) fn user_found(rows_affected: u64, id: i64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound(format!("user {id}")))
    } else {
        Ok(())
    }
}

/// The user a [`portcullis::store::NewUser`] becomes once the database has
/// given it an id.
pub(crate) fn new_user(
    id: i64,
    new: portcullis::store::NewUser,
    date_joined: DateTime<Utc>,
) -> User {
    User {
        id,
        username: new.username,
        password: new.password_hash,
        email: new.email,
        first_name: String::new(),
        last_name: String::new(),
        is_active: new.is_active,
        is_staff: new.is_staff,
        is_superuser: new.is_superuser,
        last_login: None,
        date_joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_password_starts_with_bang() {
        let p = unusable_password();
        assert!(p.starts_with('!'));
        assert_eq!(p.len(), 41);
        assert_ne!(p, unusable_password());
    }

    /// The positions the row readers take columns by.
    #[test]
    fn column_counts_match_the_column_lists() {
        let count = |list: &str| list.split(',').count();
        assert_eq!(count(token_columns!()), RECORD_COLUMNS);
        assert_eq!(count(session_columns!()), RECORD_COLUMNS);
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        {
            let users: Vec<&str> = user_columns!().split(',').map(str::trim).collect();
            assert_eq!(users[0], "id");
            assert_eq!(users[10], "date_joined");
            assert_eq!(users.len(), 11);
        }
        let tokens: Vec<&str> = token_columns!().split(',').map(str::trim).collect();
        assert_eq!(tokens, ["user_id", "digest", "sealed_key", "created"]);
        let sessions: Vec<&str> = session_columns!().split(',').map(str::trim).collect();
        assert_eq!(sessions, ["key_digest", "user_id", "data", "expires"]);
    }

    /// The batched reads check the first row's declared column types, so a
    /// column of another type fails the read with an error, even where the
    /// first row holds `NULL` and the next a value, which is then decoded
    /// without a check of its own.
    #[cfg(all(feature = "postgres", feature = "testing"))]
    #[tokio::test]
    async fn a_column_of_another_type_fails_the_batch_even_behind_a_null() {
        let url = crate::testing::fresh_postgres_url().await;
        let _cleanup = crate::testing::DropOnExit::new(&url);
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let select = |last_login: &str| {
            format!(
                "SELECT * FROM (VALUES \
                 (1::int8, 'h', NULL::{last_login}, false, 'a', '', '', '', false, true, now()), \
                 (2::int8, 'h', '2024-01-01'::{last_login}, false, 'b', '', '', '', false, true, now())) \
                 AS u ORDER BY 1"
            )
        };
        let rows = sqlx::query(&select("timestamptz"))
            .fetch_all(&pool)
            .await
            .unwrap();
        let users = keyed_users(&rows).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].1.last_login, None);
        assert!(users[1].1.last_login.is_some());
        let rows = sqlx::query(&select("text")).fetch_all(&pool).await.unwrap();
        let err = keyed_users(&rows).unwrap_err().to_string();
        assert!(err.contains("not the one expected"), "{err}");
        pool.close().await;
    }

    #[test]
    fn millis_round_trip() {
        for ms in [0, 1, 1_700_000_000_123, -5_000] {
            assert_eq!(millis(from_millis(ms)), ms);
        }
        assert_eq!(
            expiry_millis(from_millis(1_000), Duration::from_secs(900)),
            901_000
        );
        assert_eq!(count_u32(-1), 0);
        assert_eq!(failures_from(3, 2_000).last_failure, from_millis(2_000));
    }

    #[test]
    fn now_has_microsecond_precision() {
        assert_eq!(now().timestamp_subsec_nanos() % 1000, 0);
    }
}
