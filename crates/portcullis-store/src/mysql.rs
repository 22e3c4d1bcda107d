//! [`MySqlStore`]: a MariaDB (or MySQL) database several servers can share.
//!
//! Timestamps are `DATETIME(6)` holding UTC (sqlx sets each connection's
//! `time_zone` to `+00:00`). Usernames use the `utf8mb4_bin` collation, so
//! they compare case-sensitively; look-ups also check the exact bytes, since
//! that collation ignores trailing spaces.

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
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};

use crate::batch::{self, Batcher, Reads};
use crate::error::{map_migrate_error, map_sqlx_error, relabel};
use crate::sql::{self, session_columns, session_data, token_columns, user_found};
use crate::DatabaseKind;

// sqlx reads `utf8mb4_bin` columns as VARBINARY, which does not decode
// into `String`; the selects convert them to plain utf8mb4 text. Look-ups
// still compare against the binary column itself.

/// `auth_user`'s columns in Django's order, for selects.
macro_rules! select_user {
    () => {
        "id, password, last_login, is_superuser, CONVERT(username USING utf8mb4) AS username, \
         first_name, last_name, email, is_staff, is_active, date_joined"
    };
}
pub(crate) use select_user;

/// `portcullis_token`'s columns, for selects.
macro_rules! select_token {
    () => {
        "user_id, CONVERT(digest USING utf8mb4) AS digest, sealed_key, created"
    };
}

/// `portcullis_session`'s columns, for selects.
macro_rules! select_session {
    () => {
        "CONVERT(key_digest USING utf8mb4) AS key_digest, user_id, data, expires"
    };
}

static MIGRATOR: Migrator = sqlx::migrate!("migrations/mysql");

/// Users, tokens and sessions in a MariaDB or MySQL database.
///
/// Cloning is cheap: clones share one connection pool.
#[derive(Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
    pub(crate) reads: Reads,
}

/// A connection the batched reads hold while look-ups keep coming.
type Conn = sqlx::pool::PoolConnection<sqlx::MySql>;

/// The batched reads' queries on MariaDB/MySQL (see `batch.rs`).
impl Reads {
    fn mysql(pool: &MySqlPool) -> Self {
        let users = Batcher::new(pool.clone(), |mut conn: Conn, ids: Vec<i64>| async move {
            let found = async {
                let sql = format!(
                    concat!(
                        "SELECT ",
                        select_user!(),
                        " FROM auth_user WHERE id IN ({})"
                    ),
                    batch::placeholders(ids.len())
                );
                let mut q = sqlx::query(&sql);
                for id in batch::pad(ids) {
                    q = q.bind(id);
                }
                let rows = q.fetch_all(&mut *conn).await.map_err(map_sqlx_error)?;
                sql::keyed_users(&rows)
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
                            select_token!(),
                            ", ",
                            select_user!(),
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
                    let rows = q.fetch_all(&mut *conn).await.map_err(map_sqlx_error)?;
                    sql::keyed_tokens(&rows)
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
                            select_session!(),
                            ", ",
                            select_user!(),
                            " FROM portcullis_session \
                             JOIN auth_user ON auth_user.id = portcullis_session.user_id \
                             WHERE expires > ? AND key_digest IN ({})"
                        ),
                        batch::placeholders(digests.len())
                    );
                    let mut q = sqlx::query(&sql).bind(Utc::now());
                    for digest in batch::pad(digests) {
                        q = q.bind(digest);
                    }
                    let rows = q.fetch_all(&mut *conn).await.map_err(map_sqlx_error)?;
                    sql::keyed_sessions(&rows)
                }
                .await;
                (conn, found)
            },
        );
        Reads {
            users,
            tokens,
            sessions,
            oauth2_tokens: MySqlStore::oauth2_tokens(pool),
            oauth2_tokens_with_users: MySqlStore::oauth2_tokens_with_users(pool),
        }
    }
}

impl fmt::Debug for MySqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlStore")
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .finish_non_exhaustive()
    }
}

impl MySqlStore {
    /// Connects to a `mysql://` or `mariadb://` URL. A server that cannot
    /// be reached gives [`StoreError::Unavailable`] within about three
    /// seconds.
    ///
    /// Run [`migrate`](Self::migrate) before first use.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        DatabaseKind::MySql.expect(url)?;
        let options = MySqlConnectOptions::from_str(url).map_err(map_sqlx_error)?;
        let pool = sql::server_pool_options()
            .connect_with(options)
            .await
            .map_err(map_sqlx_error)?;
        Ok(Self::from_pool(pool))
    }

    /// Uses an existing pool. Its connections must use the UTC time zone
    /// (sqlx's default).
    pub fn from_pool(pool: MySqlPool) -> Self {
        let reads = Reads::mysql(&pool);
        MySqlStore { pool, reads }
    }

    /// The connection pool, for queries of your own.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Creates or upgrades the schema; running it again does nothing.
    /// Concurrent runs are serialised by a named lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(map_migrate_error)
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn insert_user(&self, new: NewUser) -> Result<User, StoreError> {
        let date_joined = sql::now();
        let done = sqlx::query(
            "INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, \
             last_name, email, is_staff, is_active, date_joined) \
             VALUES (?, NULL, ?, ?, '', '', ?, ?, ?, ?)",
        )
        .bind(&new.password_hash)
        .bind(new.is_superuser)
        .bind(&new.username)
        .bind(&new.email)
        .bind(new.is_staff)
        .bind(new.is_active)
        .bind(date_joined)
        .execute(&self.pool)
        .await
        .map_err(|e| relabel(e, &format!("username {}", new.username), "user"))?;
        let id = i64::try_from(done.last_insert_id()).map_err(StoreError::backend)?;
        Ok(sql::new_user(id, new, date_joined))
    }
}

#[async_trait]
impl UserStore for MySqlStore {
    type User = User;

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.reads.users.get(id).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let user = sqlx::query(concat!(
            "SELECT ",
            select_user!(),
            " FROM auth_user WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .map(|row| sql::user_from_row(&row, 0, sql::CHECKED).map_err(map_sqlx_error))
        .transpose()?;
        // utf8mb4_bin is a PAD SPACE collation: "ada " matches "ada".
        Ok(user.filter(|u| u.username == username))
    }

    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        // sqlx asks for CLIENT_FOUND_ROWS, so rows_affected counts matched
        // rows, even when the value does not change.
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
            .bind(at)
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
impl UserAdmin for MySqlStore {
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
        // ON DELETE CASCADE (InnoDB) removes the token and sessions.
        let done = sqlx::query("DELETE FROM auth_user WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        user_found(done.rows_affected(), id)
    }
}

#[async_trait]
impl TokenStore for MySqlStore {
    async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            select_token!(),
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
            select_token!(),
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
        .bind(token.created)
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
impl SessionStore for MySqlStore {
    async fn load_session(&self, key_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            select_session!(),
            " FROM portcullis_session WHERE key_digest = ? AND expires > ?"
        ))
        .bind(key_digest)
        .bind(Utc::now())
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
        // VALUES() rather than MySQL 8's row alias: MariaDB lacks the alias.
        sqlx::query(concat!(
            "INSERT INTO portcullis_session (",
            session_columns!(),
            ") VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE user_id = VALUES(user_id), \
             data = VALUES(data), expires = VALUES(expires)"
        ))
        .bind(&session.key_digest)
        .bind(session.user_id)
        .bind(session_data(session)?)
        .bind(session.expires)
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
            .bind(Utc::now())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}

/// Failures live in `portcullis_login_failure`; the count is upserted and
/// read back in one transaction (the upsert holds the row lock), so
/// concurrent servers and `portcullis unlock` agree at once.
#[async_trait]
impl LockoutStore for MySqlStore {
    async fn record_failure(
        &self,
        key: &str,
        now: SystemTime,
        cooloff: Duration,
    ) -> Result<u32, StoreError> {
        let now_ms = sql::millis(now);
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        // MariaDB assigns left to right: `failures` still sees the old
        // `expires_ms`.
        sqlx::query(
            "INSERT INTO portcullis_login_failure \
             (lockout_key, failures, last_failure_ms, expires_ms) VALUES (?, 1, ?, ?) \
             ON DUPLICATE KEY UPDATE \
             failures = IF(expires_ms <= VALUES(last_failure_ms), 1, failures + 1), \
             last_failure_ms = VALUES(last_failure_ms), expires_ms = VALUES(expires_ms)",
        )
        .bind(key.as_bytes())
        .bind(now_ms)
        .bind(sql::expiry_millis(now, cooloff))
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let count: i64 = sqlx::query_scalar(
            "SELECT CAST(failures AS SIGNED) FROM portcullis_login_failure WHERE lockout_key = ?",
        )
        .bind(key.as_bytes())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(sql::count_u32(count))
    }

    async fn failures(&self, key: &str, now: SystemTime) -> Result<Option<Failures>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT CAST(failures AS SIGNED), last_failure_ms FROM portcullis_login_failure \
             WHERE lockout_key = ? AND expires_ms > ?",
        )
        .bind(key.as_bytes())
        .bind(sql::millis(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(row.map(|(count, last)| sql::failures_from(count, last)))
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portcullis_login_failure WHERE lockout_key = ?")
            .bind(key.as_bytes())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }
}

#[async_trait]
impl Ping for MySqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }
}
