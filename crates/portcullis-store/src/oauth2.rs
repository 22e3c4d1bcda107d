//! [`OAuth2Store`] on every SQL store (migration `0004_oauth2`).
//!
//! | table | columns |
//! |---|---|
//! | `portcullis_oauth2_client` | `client_id` (primary key), `name`, `is_public`, `secret_digest` (keyed digest, confidential clients only), `redirect_uris`, `grant_types`, `scope` (space-separated), `skip_authorization`, `created` |
//! | `portcullis_oauth2_token` | `digest` (keyed digest of the token or code: the primary key), `kind` (`access`, `refresh`, `code`), `client_id` (goes with its client), `user_id` (nullable, goes with its user), `scope`, `family`, `revoked`, `expires` (nullable), `redirect_uri`, `code_challenge`, `code_challenge_method`, `created` |
//!
//! Times are seconds since the Unix epoch. Ids and digests that are not
//! short printable ASCII are refused before any SQL runs (no such row can
//! exist).
//!
//! Every SQL store also implements [`OAuth2UserStore`]: a token read with
//! its user in one query (a `LEFT JOIN` of `auth_user`), batched as
//! `token` is. OAuth2 Bearer uses it when given the store
//! ([`OAuth2Auth::with_joined_reads`]) and no cache remembers the tokens.
//!
//! ```
//! use std::sync::Arc;
//! use portcullis::oauth2::{NewClient, OAuth2, OAuth2Auth, OAuth2Settings, OAuth2Store, OAuth2UserStore};
//! use portcullis::SecretKey;
//! use portcullis_store::Store;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! store.migrate().await.unwrap();
//! let oauth2 = OAuth2::new(store.clone(), &SecretKey::new([1u8; 32]).unwrap(), OAuth2Settings::default());
//! let (client, secret) = oauth2.register_client(NewClient::confidential("app")).await.unwrap();
//! assert!(oauth2.authenticate_client(&client.client_id, secret.as_deref()).await.is_ok());
//! let issued = oauth2.client_credentials(&client, None).await.unwrap();
//! assert!(oauth2.validate_access(&issued.access_token).await.unwrap().is_some());
//! assert_eq!(store.clients().await.unwrap().len(), 1);
//!
//! // The token with its user (none: a client-credentials token).
//! let digest = oauth2.digest(&issued.access_token);
//! let (token, user) = store.oauth2_token_with_user(&digest).await.unwrap().unwrap();
//! assert_eq!((token.client_id, user), (client.client_id, None));
//! // The Bearer scheme, reading token and user in one query.
//! let bearer = OAuth2Auth::new(oauth2, store.clone()).with_joined_reads(Arc::new(store));
//! # let _ = bearer;
//! # });
//! ```
//!
//! [`OAuth2UserStore`]: portcullis::oauth2::OAuth2UserStore
//! [`OAuth2Auth::with_joined_reads`]: portcullis::oauth2::OAuth2Auth::with_joined_reads

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use portcullis::oauth2::{Client, GrantType, OAuth2Store, OAuth2Token, OAuth2UserStore, TokenKind};
use portcullis::store::StoreError;
use portcullis::User;
use sqlx::Row;

use crate::batch::{self, Batcher};
use crate::error::map_sqlx_error;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use crate::sql;
#[cfg(feature = "mysql")]
use crate::MySqlStore;
#[cfg(feature = "postgres")]
use crate::PostgresStore;
#[cfg(feature = "sqlite")]
use crate::SqliteStore;
use crate::Store;

/// The longest id or digest the key columns hold.
const MAX_KEY: usize = 100;

/// Whether `s` can be a stored id or digest: short printable ASCII.
fn plain(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_KEY && s.bytes().all(|b| b.is_ascii_graphic())
}

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

pub(crate) fn from_ts(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().unwrap_or_default()
}

pub(crate) fn split(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn grants_text(c: &Client) -> String {
    c.grant_types
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_client(c: &Client) -> Result<(), StoreError> {
    if !plain(&c.client_id) || c.secret_digest.as_deref().is_some_and(|d| !plain(d)) {
        return Err(StoreError::backend(
            "a client id or secret digest must be 1 to 100 printable ASCII characters",
        ));
    }
    if c.redirect_uris.iter().any(|u| u.contains(' ')) {
        return Err(StoreError::backend("a redirect URI cannot contain a space"));
    }
    Ok(())
}

fn check_token(t: &OAuth2Token) -> Result<(), StoreError> {
    if !plain(&t.digest) || !plain(&t.client_id) || !plain(&t.family) {
        return Err(StoreError::backend(
            "token digests, client ids and families must be 1 to 100 printable ASCII characters",
        ));
    }
    Ok(())
}

/// Rewrites `?` placeholders as `$1, $2, ...` for PostgreSQL.
#[cfg(feature = "postgres")]
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

const CLIENT_COLUMNS: &str = "client_id, name, is_public, secret_digest, redirect_uris, \
     grant_types, scope, skip_authorization, created";
pub(crate) const TOKEN_COLUMNS: &str =
    "digest, kind, client_id, user_id, scope, family, revoked, expires, \
     redirect_uri, code_challenge, code_challenge_method, created";
/// How many columns [`TOKEN_COLUMNS`] names.
const TOKEN_COLUMN_COUNT: usize = 12;

/// Where each of [`TOKEN_COLUMNS`] is, in a row that starts with them.
mod token_at {
    pub(super) const DIGEST: usize = 0;
    pub(super) const KIND: usize = 1;
    pub(super) const CLIENT_ID: usize = 2;
    pub(super) const USER_ID: usize = 3;
    pub(super) const SCOPE: usize = 4;
    pub(super) const FAMILY: usize = 5;
    pub(super) const REVOKED: usize = 6;
    pub(super) const EXPIRES: usize = 7;
    pub(super) const REDIRECT_URI: usize = 8;
    pub(super) const CODE_CHALLENGE: usize = 9;
    pub(super) const CODE_CHALLENGE_METHOD: usize = 10;
    pub(super) const CREATED: usize = 11;
}

/// Implements [`OAuth2Store`] and [`OAuth2UserStore`] for one dialect:
/// `$sql` turns the `?`-placeholder text into the dialect's; a batch's
/// digests go in `IN ($keys(n))`, bound by `$bind`. The joined
/// read's batch is the store's `oauth2_tokens_with_users` (from
/// [`oauth2_joined_rows`], or SQLite's JSON fold).
macro_rules! oauth2_store {
    ($store:ty, $db:ty, $sql:expr, $keys:expr, $bind:expr) => {
        impl $store {
            /// A text column; MariaDB reports binary-collated text as
            /// VARBINARY, so bytes are accepted too.
            /// `column` is a name or a position.
            fn oauth2_text<I>(
                row: &<$db as sqlx::Database>::Row,
                column: I,
            ) -> Result<String, sqlx::Error>
            where
                I: sqlx::ColumnIndex<<$db as sqlx::Database>::Row> + Copy + std::fmt::Debug,
            {
                Ok(Self::oauth2_opt_text(row, column)?.unwrap_or_default())
            }

            fn oauth2_opt_text<I>(
                row: &<$db as sqlx::Database>::Row,
                column: I,
            ) -> Result<Option<String>, sqlx::Error>
            where
                I: sqlx::ColumnIndex<<$db as sqlx::Database>::Row> + Copy + std::fmt::Debug,
            {
                match row.try_get::<Option<String>, _>(column) {
                    Ok(v) => Ok(v),
                    Err(sqlx::Error::ColumnDecode { .. }) => {
                        let bytes: Option<Vec<u8>> = row.try_get(column)?;
                        bytes
                            .map(|b| {
                                String::from_utf8(b).map_err(|e| sqlx::Error::ColumnDecode {
                                    index: format!("{column:?}"),
                                    source: Box::new(e),
                                })
                            })
                            .transpose()
                    }
                    Err(e) => Err(e),
                }
            }

            fn oauth2_client_row(row: &<$db as sqlx::Database>::Row) -> Result<Client, sqlx::Error> {
                Ok(Client {
                    client_id: Self::oauth2_text(row, "client_id")?,
                    name: Self::oauth2_text(row, "name")?,
                    public: row.try_get::<i32, _>("is_public")? != 0,
                    secret_digest: Self::oauth2_opt_text(row, "secret_digest")?,
                    redirect_uris: split(&Self::oauth2_text(row, "redirect_uris")?),
                    grant_types: split(&Self::oauth2_text(row, "grant_types")?)
                        .iter()
                        .filter_map(|g| GrantType::parse(g))
                        .collect(),
                    scopes: split(&Self::oauth2_text(row, "scope")?),
                    skip_authorization: row.try_get::<i32, _>("skip_authorization")? != 0,
                    created: from_ts(row.try_get("created")?),
                })
            }

            /// The batched read behind [`OAuth2Store::token`] (see
            /// `batch.rs`): the rows of up to 64 digests in one query.
            pub(crate) fn oauth2_tokens(pool: &sqlx::Pool<$db>) -> Batcher<String, OAuth2Token> {
                Batcher::new(
                    pool.clone(),
                    |mut conn: sqlx::pool::PoolConnection<$db>, digests: Vec<String>| async move {
                        let found = async {
                            let sql = $sql(&format!(
                                "SELECT {TOKEN_COLUMNS} FROM portcullis_oauth2_token \
                                 WHERE digest IN ({})",
                                $keys(digests.len())
                            ));
                            let rows = $bind(sqlx::query(&sql), digests)
                                .fetch_all(&mut *conn)
                                .await
                                .map_err(map_sqlx_error)?;
                            let mut found = Vec::with_capacity(rows.len());
                            for row in &rows {
                                // A row of an unknown kind is no token.
                                if let Some(t) = Self::oauth2_token_row(row).map_err(map_sqlx_error)? {
                                    found.push((t.digest.clone(), t));
                                }
                            }
                            Ok(found)
                        }
                        .await;
                        (conn, found)
                    },
                )
            }

            /// A row that starts with [`TOKEN_COLUMNS`], read by position
            /// (a look-up by name hashes the name, for each column of each
            /// row).
            fn oauth2_token_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<Option<OAuth2Token>, sqlx::Error> {
                use token_at as at;
                let kind = Self::oauth2_text(row, at::KIND)?;
                let Some(kind) = TokenKind::parse(&kind) else {
                    return Ok(None);
                };
                Ok(Some(OAuth2Token {
                    digest: Self::oauth2_text(row, at::DIGEST)?,
                    kind,
                    client_id: Self::oauth2_text(row, at::CLIENT_ID)?,
                    user_id: row.try_get(at::USER_ID)?,
                    scopes: split(&Self::oauth2_text(row, at::SCOPE)?),
                    family: Self::oauth2_text(row, at::FAMILY)?,
                    revoked: row.try_get::<i32, _>(at::REVOKED)? != 0,
                    expires_at: row.try_get::<Option<i64>, _>(at::EXPIRES)?.map(from_ts),
                    redirect_uri: Self::oauth2_opt_text(row, at::REDIRECT_URI)?,
                    code_challenge: Self::oauth2_opt_text(row, at::CODE_CHALLENGE)?,
                    code_challenge_method: Self::oauth2_opt_text(
                        row,
                        at::CODE_CHALLENGE_METHOD,
                    )?,
                    created: from_ts(row.try_get(at::CREATED)?),
                }))
            }
        }

        #[async_trait]
        impl OAuth2Store for $store {
            async fn create_client(&self, c: &Client) -> Result<(), StoreError> {
                check_client(c)?;
                let sql = $sql(&format!(
                    "INSERT INTO portcullis_oauth2_client ({CLIENT_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ));
                sqlx::query(&sql)
                    .bind(&c.client_id)
                    .bind(&c.name)
                    .bind(i32::from(c.public))
                    .bind(&c.secret_digest)
                    .bind(c.redirect_uris.join(" "))
                    .bind(grants_text(c))
                    .bind(c.scopes.join(" "))
                    .bind(i32::from(c.skip_authorization))
                    .bind(ts(c.created))
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx_error)?;
                Ok(())
            }

            async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
                if !plain(client_id) {
                    return Ok(None);
                }
                let sql = $sql(&format!(
                    "SELECT {CLIENT_COLUMNS} FROM portcullis_oauth2_client WHERE client_id = ?"
                ));
                let row = sqlx::query(&sql)
                    .bind(client_id)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_sqlx_error)?;
                row.map(|r| Self::oauth2_client_row(&r))
                    .transpose()
                    .map_err(map_sqlx_error)
            }

            async fn clients(&self) -> Result<Vec<Client>, StoreError> {
                let sql = format!(
                    "SELECT {CLIENT_COLUMNS} FROM portcullis_oauth2_client ORDER BY client_id"
                );
                let rows = sqlx::query(&sql)
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_sqlx_error)?;
                rows.iter()
                    .map(Self::oauth2_client_row)
                    .collect::<Result<_, _>>()
                    .map_err(map_sqlx_error)
            }

            async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
                if !plain(client_id) {
                    return Ok(false);
                }
                let mut tx = self.pool().begin().await.map_err(map_sqlx_error)?;
                sqlx::query(&$sql("DELETE FROM portcullis_oauth2_token WHERE client_id = ?"))
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx_error)?;
                let done =
                    sqlx::query(&$sql("DELETE FROM portcullis_oauth2_client WHERE client_id = ?"))
                        .bind(client_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_sqlx_error)?;
                tx.commit().await.map_err(map_sqlx_error)?;
                Ok(done.rows_affected() > 0)
            }

            async fn insert_token(&self, t: &OAuth2Token) -> Result<(), StoreError> {
                check_token(t)?;
                let sql = $sql(&format!(
                    "INSERT INTO portcullis_oauth2_token ({TOKEN_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ));
                sqlx::query(&sql)
                    .bind(&t.digest)
                    .bind(t.kind.as_str())
                    .bind(&t.client_id)
                    .bind(t.user_id)
                    .bind(t.scopes.join(" "))
                    .bind(&t.family)
                    .bind(i32::from(t.revoked))
                    .bind(t.expires_at.map(ts))
                    .bind(&t.redirect_uri)
                    .bind(&t.code_challenge)
                    .bind(&t.code_challenge_method)
                    .bind(ts(t.created))
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx_error)?;
                Ok(())
            }

            async fn token(&self, digest: &str) -> Result<Option<OAuth2Token>, StoreError> {
                if !plain(digest) {
                    return Ok(None);
                }
                self.reads.oauth2_tokens.get(digest.to_owned()).await
            }

            async fn consume_token(&self, digest: &str) -> Result<bool, StoreError> {
                if !plain(digest) {
                    return Ok(false);
                }
                let done = sqlx::query(&$sql(
                    "UPDATE portcullis_oauth2_token SET revoked = 1 WHERE digest = ? AND revoked = 0",
                ))
                .bind(digest)
                .execute(self.pool())
                .await
                .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
                if !plain(family) {
                    return Ok(0);
                }
                let done = sqlx::query(&$sql(
                    "UPDATE portcullis_oauth2_token SET revoked = 1 WHERE family = ? AND revoked = 0",
                ))
                .bind(family)
                .execute(self.pool())
                .await
                .map_err(map_sqlx_error)?;
                Ok(done.rows_affected())
            }

            async fn clear_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
                let done = sqlx::query(&$sql(
                    "DELETE FROM portcullis_oauth2_token WHERE expires IS NOT NULL AND expires <= ?",
                ))
                .bind(ts(now))
                .execute(self.pool())
                .await
                .map_err(map_sqlx_error)?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait]
        impl OAuth2UserStore for $store {
            async fn oauth2_token_with_user(
                &self,
                digest: &str,
            ) -> Result<Option<(OAuth2Token, Option<User>)>, StoreError> {
                if !plain(digest) {
                    return Ok(None);
                }
                self.reads.oauth2_tokens_with_users.get(digest.to_owned()).await
            }
        }
    };
}

/// The batched read behind [`OAuth2UserStore::oauth2_token_with_user`] for
/// a dialect that decodes row by row: `$user_columns` is its select list of
/// `auth_user` (no user column shares a name with a token column, so
/// neither list needs a table prefix).
#[cfg(any(feature = "postgres", feature = "mysql"))]
macro_rules! oauth2_joined_rows {
    ($store:ty, $db:ty, $sql:expr, $keys:expr, $bind:expr, $user_columns:expr) => {
        impl $store {
            /// The rows of up to 64 digests, each with its user's row (`LEFT
            /// JOIN`: none for client-credentials tokens), in one query.
            pub(crate) fn oauth2_tokens_with_users(
                pool: &sqlx::Pool<$db>,
            ) -> Batcher<String, (OAuth2Token, Option<User>)> {
                Batcher::new(
                    pool.clone(),
                    |mut conn: sqlx::pool::PoolConnection<$db>, digests: Vec<String>| async move {
                        let found = async {
                            let sql = $sql(&format!(
                                "SELECT {TOKEN_COLUMNS}, {} \
                                 FROM portcullis_oauth2_token t \
                                 LEFT JOIN auth_user u ON u.id = t.user_id \
                                 WHERE t.digest IN ({})",
                                $user_columns,
                                $keys(digests.len())
                            ));
                            let rows = $bind(sqlx::query(&sql), digests)
                                .fetch_all(&mut *conn)
                                .await
                                .map_err(map_sqlx_error)?;
                            let mut found = Vec::with_capacity(rows.len());
                            for row in &rows {
                                // A row of an unknown kind is no token.
                                let Some(t) =
                                    Self::oauth2_token_row(row).map_err(map_sqlx_error)?
                                else {
                                    continue;
                                };
                                // The user's columns follow the token's.
                                let first = TOKEN_COLUMN_COUNT;
                                let user = match row
                                    .try_get::<Option<i64>, _>(first)
                                    .map_err(map_sqlx_error)?
                                {
                                    Some(_) => Some(
                                        sql::user_from_row(row, first, sql::CHECKED)
                                            .map_err(map_sqlx_error)?,
                                    ),
                                    None => None,
                                };
                                found.push((t.digest.clone(), (t, user)));
                            }
                            Ok(found)
                        }
                        .await;
                        (conn, found)
                    },
                )
            }
        }
    };
}

#[cfg(any(feature = "sqlite", feature = "mysql"))]
fn same(sql: &str) -> String {
    sql.to_owned()
}

/// PostgreSQL's batch key list (see [`batch::TEXT_ARRAY`]).
#[cfg(feature = "postgres")]
fn key_array(_: usize) -> &'static str {
    batch::TEXT_ARRAY
}

#[cfg(feature = "sqlite")]
oauth2_store!(
    SqliteStore,
    sqlx::Sqlite,
    same,
    batch::placeholders,
    batch::bind_each
);
#[cfg(feature = "postgres")]
oauth2_store!(
    PostgresStore,
    sqlx::Postgres,
    numbered,
    key_array,
    batch::bind_array
);
#[cfg(feature = "postgres")]
oauth2_joined_rows!(
    PostgresStore,
    sqlx::Postgres,
    numbered,
    key_array,
    batch::bind_array,
    crate::sql::user_columns!()
);
#[cfg(feature = "mysql")]
oauth2_store!(
    MySqlStore,
    sqlx::MySql,
    same,
    batch::placeholders,
    batch::bind_each
);
#[cfg(feature = "mysql")]
oauth2_joined_rows!(
    MySqlStore,
    sqlx::MySql,
    same,
    batch::placeholders,
    batch::bind_each,
    crate::mysql::select_user!()
);

macro_rules! dispatch {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            #[cfg(feature = "sqlite")]
            Store::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            Store::Postgres($s) => $body,
            #[cfg(feature = "mysql")]
            Store::MySql($s) => $body,
        }
    };
}

#[async_trait]
impl OAuth2Store for Store {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_client(client).await)
    }
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        dispatch!(self, s => s.client(client_id).await)
    }
    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        dispatch!(self, s => s.clients().await)
    }
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_client(client_id).await)
    }
    async fn insert_token(&self, token: &OAuth2Token) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_token(token).await)
    }
    async fn token(&self, digest: &str) -> Result<Option<OAuth2Token>, StoreError> {
        dispatch!(self, s => s.token(digest).await)
    }
    async fn consume_token(&self, digest: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.consume_token(digest).await)
    }
    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        dispatch!(self, s => s.revoke_family(family).await)
    }
    async fn clear_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.clear_expired(now).await)
    }
}

#[async_trait]
impl OAuth2UserStore for Store {
    async fn oauth2_token_with_user(
        &self,
        digest: &str,
    ) -> Result<Option<(OAuth2Token, Option<User>)>, StoreError> {
        dispatch!(self, s => s.oauth2_token_with_user(digest).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_column_count_matches_the_list() {
        assert_eq!(TOKEN_COLUMNS.split(',').count(), TOKEN_COLUMN_COUNT);
    }

    #[test]
    fn token_positions_match_the_list() {
        let names: Vec<&str> = TOKEN_COLUMNS.split(',').map(str::trim).collect();
        let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
        assert_eq!(at("digest"), token_at::DIGEST);
        assert_eq!(at("kind"), token_at::KIND);
        assert_eq!(at("client_id"), token_at::CLIENT_ID);
        assert_eq!(at("user_id"), token_at::USER_ID);
        assert_eq!(at("scope"), token_at::SCOPE);
        assert_eq!(at("family"), token_at::FAMILY);
        assert_eq!(at("revoked"), token_at::REVOKED);
        assert_eq!(at("expires"), token_at::EXPIRES);
        assert_eq!(at("redirect_uri"), token_at::REDIRECT_URI);
        assert_eq!(at("code_challenge"), token_at::CODE_CHALLENGE);
        assert_eq!(at("code_challenge_method"), token_at::CODE_CHALLENGE_METHOD);
        assert_eq!(at("created"), token_at::CREATED);
    }

    #[test]
    fn keys_must_be_short_printable_ascii() {
        assert!(plain("abc123"));
        assert!(!plain(""));
        assert!(!plain("é"));
        assert!(!plain("a b"));
        assert!(!plain(&"a".repeat(101)));
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(numbered("a = ? AND b = ?"), "a = $1 AND b = $2");
    }
}
