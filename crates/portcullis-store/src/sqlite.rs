//! [`SqliteStore`]: the embedded default, one file beside the server.
//!
//! ```
//! use portcullis::store::{NewUser, UserAdmin, UserStore};
//! use portcullis_store::SqliteStore;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
//! store.migrate().await.unwrap();
//! let ada = store
//!     .create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await
//!     .unwrap();
//! assert_eq!(store.user_by_username("ada").await.unwrap(), Some(ada));
//! assert_eq!(store.user_by_username("Ada").await.unwrap(), None);
//! # });
//! ```
//!
//! Every connection runs with `foreign_keys` on (so deleting a user removes
//! its token and sessions), the WAL journal and a 5 second busy timeout.
//! Timestamps are stored as Django stores them on SQLite: UTC text
//! `YYYY-MM-DD HH:MM:SS.ffffff`, which sorts chronologically.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portcullis::lockout::{Failures, LockoutStore};
use portcullis::store::{
    NewUser, Ping, SessionRecord, SessionStore, StoreError, TokenRecord, TokenStore, UserAdmin,
    UserStore,
};
use portcullis::User;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use crate::batch::{self, Batcher, Reads};
use crate::error::{map_migrate_error, map_sqlx_error, relabel};
use crate::sql::{
    self, session_columns, session_data, token_columns, user_columns, user_found, ACQUIRE_TIMEOUT,
};
use crate::sqlite_json;
use crate::DatabaseKind;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Users, tokens and sessions in a SQLite database.
///
/// Cloning is cheap: clones share one connection pool.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    pub(crate) reads: Reads,
}

/// A connection the batched reads hold while look-ups keep coming.
type Conn = sqlx::pool::PoolConnection<sqlx::Sqlite>;

/// The batched reads' queries on SQLite (see `batch.rs`).
impl Reads {
    // Each query folds its rows into one JSON array: see `sqlite_json.rs`.
    fn sqlite(pool: &SqlitePool) -> Self {
        let users = Batcher::new(pool.clone(), |mut conn: Conn, ids: Vec<i64>| async move {
            let found = async {
                let sql = format!(
                    concat!(
                        "SELECT ",
                        sqlite_json::rows!(user_columns!()),
                        " FROM auth_user WHERE id IN ({})"
                    ),
                    batch::placeholders(ids.len())
                );
                let mut q = sqlx::query(&sql);
                for id in batch::pad(ids) {
                    q = q.bind(id);
                }
                let row = q.fetch_one(&mut *conn).await.map_err(map_sqlx_error)?;
                sqlite_json::users(&row)
            }
            .await;
            (conn, found)
        });
        let tokens = Batcher::new(pool.clone(), |mut conn: Conn, digests: Vec<String>| {
            async move {
                let found = async {
                    // The columns of the two tables do not overlap.
                    let sql = format!(
                        concat!(
                            "SELECT ",
                            sqlite_json::rows!(token_columns!(), ", ", user_columns!()),
                            " FROM portcullis_token \
                             JOIN auth_user ON auth_user.id = portcullis_token.user_id \
                             WHERE digest IN ({})"
                        ),
                        batch::placeholders(digests.len())
                    );
                    let mut q = sqlx::query(&sql);
                    for digest in batch::pad(digests) {
                        q = q.bind(digest);
                    }
                    let row = q.fetch_one(&mut *conn).await.map_err(map_sqlx_error)?;
                    sqlite_json::tokens(&row)
                }
                .await;
                (conn, found)
            }
        });
        let sessions = Batcher::new(
            pool.clone(),
            |mut conn: Conn, digests: Vec<String>| async move {
                let found = async {
                    let sql = format!(
                        concat!(
                            "SELECT ",
                            sqlite_json::rows!(session_columns!(), ", ", user_columns!()),
                            " FROM portcullis_session \
                             JOIN auth_user ON auth_user.id = portcullis_session.user_id \
                             WHERE expires > ? AND key_digest IN ({})"
                        ),
                        batch::placeholders(digests.len())
                    );
                    let mut q = sqlx::query(&sql).bind(ts(Utc::now()));
                    for digest in batch::pad(digests) {
                        q = q.bind(digest);
                    }
                    let row = q.fetch_one(&mut *conn).await.map_err(map_sqlx_error)?;
                    sqlite_json::sessions(&row)
                }
                .await;
                (conn, found)
            },
        );
        let oauth2_tokens_with_users = Batcher::new(
            pool.clone(),
            |mut conn: Conn, digests: Vec<String>| async move {
                let found = async {
                    // The user's columns are `null` for a token without a
                    // user (client credentials). The select list is
                    // `rows!`'s, written out: `rows!` takes literals, and
                    // `TOKEN_COLUMNS` is a constant.
                    let sql = format!(
                        concat!(
                            "SELECT '[' || group_concat(json_array({}, ",
                            user_columns!(),
                            ")) || ']' FROM portcullis_oauth2_token \
                             LEFT JOIN auth_user ON auth_user.id = portcullis_oauth2_token.user_id \
                             WHERE digest IN ({})"
                        ),
                        crate::oauth2::TOKEN_COLUMNS,
                        batch::placeholders(digests.len())
                    );
                    let mut q = sqlx::query(&sql);
                    for digest in batch::pad(digests) {
                        q = q.bind(digest);
                    }
                    let row = q.fetch_one(&mut *conn).await.map_err(map_sqlx_error)?;
                    sqlite_json::oauth2_tokens(&row)
                }
                .await;
                (conn, found)
            },
        );
        Reads {
            users,
            tokens,
            sessions,
            oauth2_tokens: SqliteStore::oauth2_tokens(pool),
            oauth2_tokens_with_users,
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .finish_non_exhaustive()
    }
}

/// A timestamp as Django writes it on SQLite.
pub(crate) fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// Whether a SQLite URL names an in-memory database.
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at a `sqlite://PATH` or
    /// `sqlite:PATH` URL; `sqlite::memory:` gives a private in-memory
    /// database that lives as long as the store.
    ///
    /// Run [`migrate`](Self::migrate) before first use.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        DatabaseKind::Sqlite.expect(url)?;
        let options = SqliteConnectOptions::from_str(url)
            .map_err(map_sqlx_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // Create the file and switch it to WAL over one connection first:
        // pooled connections opening a brand-new file at once can find the
        // journal-mode switch locked (SQLITE_BUSY without the busy handler).
        // Once the file is in WAL mode the switch is a no-op.
        if !is_in_memory(url) {
            use sqlx::ConnectOptions;
            let conn = options.connect().await.map_err(map_sqlx_error)?;
            sqlx::Connection::close(conn)
                .await
                .map_err(map_sqlx_error)?;
        }
        // One connection stays open for good, so an in-memory database is
        // never dropped between two uses.
        // No ping before each use: a connection to a local file does not go
        // stale as a network connection can, and the ping is a second trip
        // to the connection's worker thread on every query.
        let pool = SqlitePoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(map_sqlx_error)?;
        Ok(Self::from_pool(pool))
    }

    /// Uses an existing pool. Its connections should have `foreign_keys`
    /// on (sqlx's default); [`delete_user`](UserAdmin::delete_user) removes
    /// tokens and sessions itself either way.
    pub fn from_pool(pool: SqlitePool) -> Self {
        let reads = Reads::sqlite(&pool);
        SqliteStore { pool, reads }
    }

    /// The connection pool, for queries of your own.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates or upgrades the schema; running it again does nothing.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(map_migrate_error)
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn insert_user(&self, new: NewUser) -> Result<User, StoreError> {
        let date_joined = sql::now();
        let row = sqlx::query(
            "INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, \
             last_name, email, is_staff, is_active, date_joined) \
             VALUES (?, NULL, ?, ?, '', '', ?, ?, ?, ?) RETURNING id",
        )
        .bind(&new.password_hash)
        .bind(new.is_superuser)
        .bind(&new.username)
        .bind(&new.email)
        .bind(new.is_staff)
        .bind(new.is_active)
        .bind(ts(date_joined))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| relabel(e, &format!("username {}", new.username), "user"))?;
        let id = row.try_get("id").map_err(map_sqlx_error)?;
        Ok(sql::new_user(id, new, date_joined))
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    type User = User;

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.reads.users.get(id).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM auth_user WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .map(|row| sql::user_from_row(&row, 0, sql::CHECKED).map_err(map_sqlx_error))
        .transpose()
    }

    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE auth_user SET password = ? WHERE id = ?")
            .bind(hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        user_found(done.rows_affected(), id)
    }

    async fn touch_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE auth_user SET last_login = ? WHERE id = ?")
            .bind(ts(at))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn create_remote_user(&self, username: &str) -> Result<User, StoreError> {
        self.insert_user(NewUser {
            username: username.to_owned(),
            password_hash: sql::unusable_password(),
            is_active: true,
            ..NewUser::default()
        })
        .await
    }
}

#[async_trait]
impl UserAdmin for SqliteStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.insert_user(user).await
    }

    async fn set_active(&self, id: i64, active: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE auth_user SET is_active = ? WHERE id = ?")
            .bind(active)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        user_found(done.rows_affected(), id)
    }

    async fn delete_user(&self, id: i64) -> Result<(), StoreError> {
        // The foreign keys cascade; deleting the dependents explicitly as
        // well keeps a pool from `from_pool` without `foreign_keys` correct.
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        for statement in [
            "DELETE FROM portcullis_token WHERE user_id = ?",
            "DELETE FROM portcullis_session WHERE user_id = ?",
            "DELETE FROM portcullis_jwt_blacklisted WHERE jti IN \
             (SELECT jti FROM portcullis_jwt_outstanding WHERE user_id = ?)",
            "DELETE FROM portcullis_jwt_outstanding WHERE user_id = ?",
        ] {
            sqlx::query(statement)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx_error)?;
        }
        let done = sqlx::query("DELETE FROM auth_user WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        user_found(done.rows_affected(), id)?;
        tx.commit().await.map_err(map_sqlx_error)
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM portcullis_token WHERE digest = ?"
        ))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .map(|row| sql::token_from_row(&row, sql::CHECKED).map_err(map_sqlx_error))
        .transpose()
    }

    async fn token_with_user(
        &self,
        digest: &str,
    ) -> Result<Option<(TokenRecord, Option<User>)>, StoreError> {
        self.reads.tokens.get(digest.to_owned()).await
    }

    async fn token_for_user(&self, user_id: i64) -> Result<Option<TokenRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM portcullis_token WHERE user_id = ?"
        ))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .map(|row| sql::token_from_row(&row, sql::CHECKED).map_err(map_sqlx_error))
        .transpose()
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO portcullis_token (",
            token_columns!(),
            ") VALUES (?, ?, ?, ?)"
        ))
        .bind(token.user_id)
        .bind(&token.digest)
        .bind(&token.sealed_key)
        .bind(ts(token.created))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            let user = format!("user {}", token.user_id);
            relabel(e, &format!("token of {user}"), &user)
        })?;
        Ok(())
    }

    async fn delete_token(&self, user_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM portcullis_token WHERE user_id = ?")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn load_session(&self, key_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM portcullis_session WHERE key_digest = ? AND expires > ?"
        ))
        .bind(key_digest)
        .bind(ts(Utc::now()))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .map(|row| sql::session_from_row(&row, sql::CHECKED).map_err(map_sqlx_error))
        .transpose()
    }

    async fn session_with_user(
        &self,
        key_digest: &str,
    ) -> Result<Option<(SessionRecord, Option<User>)>, StoreError> {
        self.reads.sessions.get(key_digest.to_owned()).await
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO portcullis_session (",
            session_columns!(),
            ") VALUES (?, ?, ?, ?) \
             ON CONFLICT (key_digest) DO UPDATE SET user_id = excluded.user_id, \
             data = excluded.data, expires = excluded.expires"
        ))
        .bind(&session.key_digest)
        .bind(session.user_id)
        .bind(session_data(session)?)
        .bind(ts(session.expires))
        .execute(&self.pool)
        .await
        .map_err(|e| relabel(e, "session", &format!("user {}", session.user_id)))?;
        Ok(())
    }

    async fn delete_session(&self, key_digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portcullis_session WHERE key_digest = ?")
            .bind(key_digest)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let query = match keep {
            Some(keep) => {
                sqlx::query("DELETE FROM portcullis_session WHERE user_id = ? AND key_digest <> ?")
                    .bind(user_id)
                    .bind(keep)
            }
            None => sqlx::query("DELETE FROM portcullis_session WHERE user_id = ?").bind(user_id),
        };
        let done = query.execute(&self.pool).await.map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }

    async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM portcullis_session WHERE expires <= ?")
            .bind(ts(Utc::now()))
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}

/// Failures live in `portcullis_login_failure`; every call is one
/// statement, so concurrent servers and `portcullis unlock` agree at once.
#[async_trait]
impl LockoutStore for SqliteStore {
    async fn record_failure(
        &self,
        key: &str,
        now: SystemTime,
        cooloff: Duration,
    ) -> Result<u32, StoreError> {
        let now_ms = sql::millis(now);
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO portcullis_login_failure \
             (lockout_key, failures, last_failure_ms, expires_ms) VALUES (?1, 1, ?2, ?3) \
             ON CONFLICT (lockout_key) DO UPDATE SET \
             failures = CASE WHEN portcullis_login_failure.expires_ms <= ?2 THEN 1 \
             ELSE portcullis_login_failure.failures + 1 END, \
             last_failure_ms = excluded.last_failure_ms, expires_ms = excluded.expires_ms \
             RETURNING failures",
        )
        .bind(key)
        .bind(now_ms)
        .bind(sql::expiry_millis(now, cooloff))
        .fetch_one(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(sql::count_u32(count))
    }

    async fn failures(&self, key: &str, now: SystemTime) -> Result<Option<Failures>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT failures, last_failure_ms FROM portcullis_login_failure \
             WHERE lockout_key = ? AND expires_ms > ?",
        )
        .bind(key)
        .bind(sql::millis(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(row.map(|(count, last)| sql::failures_from(count, last)))
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portcullis_login_failure WHERE lockout_key = ?")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }
}

#[async_trait]
impl Ping for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn timestamps_are_written_as_django_writes_them() {
        let at = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(ts(at), "2024-01-02 03:04:05.000000");
    }

    #[test]
    fn timestamp_text_sorts_chronologically() {
        let a = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let b = a + chrono::Duration::microseconds(1);
        let c = a + chrono::Duration::days(400);
        assert!(ts(a) < ts(b) && ts(b) < ts(c));
    }

    #[tokio::test]
    async fn reads_a_row_written_by_django() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        sqlx::query(
            "INSERT INTO auth_user VALUES (42, 'pbkdf2_sha256$1$s$h', NULL, 1, 'grace', \
             'Grace', 'Hopper', 'g@example.com', 1, 1, '2019-05-06 07:08:09.123456')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let grace = store.user_by_id(42).await.unwrap().unwrap();
        assert_eq!(grace.username, "grace");
        assert_eq!(grace.first_name, "Grace");
        assert!(grace.is_superuser && grace.is_staff && grace.is_active);
        assert_eq!(
            grace.date_joined,
            Utc.with_ymd_and_hms(2019, 5, 6, 7, 8, 9).unwrap()
                + chrono::Duration::microseconds(123_456)
        );
    }

    #[tokio::test]
    async fn debug_shows_no_path() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("secret-name.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        assert!(!format!("{store:?}").contains("secret-name"));
        store.close().await;
    }
}
