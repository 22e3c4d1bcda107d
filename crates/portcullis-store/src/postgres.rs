//! [`PostgresStore`]: a PostgreSQL database several servers can share.
//!
//! Timestamps are `timestamp with time zone`; usernames compare
//! case-sensitively under PostgreSQL's (deterministic) collations.

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
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::Row;

use crate::batch::{Batcher, Reads};
use crate::error::{map_migrate_error, map_sqlx_error, relabel};
use crate::sql::{self, session_columns, session_data, token_columns, user_columns, user_found};
use crate::DatabaseKind;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Users, tokens and sessions in a PostgreSQL database.
///
/// Cloning is cheap: clones share one connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    pub(crate) reads: Reads,
}

/// A connection the batched reads hold while look-ups keep coming.
type Conn = sqlx::pool::PoolConnection<sqlx::Postgres>;

/// The batched reads' queries on PostgreSQL (see `batch.rs`). Their keys
/// go as one array, `IN (SELECT unnest($1))`, as [`crate::batch::TEXT_ARRAY`]
/// explains.
impl Reads {
    fn postgres(pool: &PgPool) -> Self {
        let users = Batcher::new(pool.clone(), |mut conn: Conn, ids: Vec<i64>| async move {
            let found = async {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM auth_user WHERE id IN (SELECT unnest($1::bigint[]))"
                ))
                .bind(ids)
                .fetch_all(&mut *conn)
                .await
                .map_err(map_sqlx_error)?;
                sql::keyed_users(&rows)
            }
            .await;
            (conn, found)
        });
        let tokens = Batcher::new(pool.clone(), |mut conn: Conn, digests: Vec<String>| {
            async move {
                let found = async {
                    // The columns of the two tables do not overlap.
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        token_columns!(),
                        ", ",
                        user_columns!(),
                        " FROM portcullis_token \
                         JOIN auth_user ON auth_user.id = portcullis_token.user_id \
                         WHERE digest IN (SELECT unnest($1::text[]))"
                    ))
                    .bind(digests)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(map_sqlx_error)?;
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
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        session_columns!(),
                        ", ",
                        user_columns!(),
                        " FROM portcullis_session \
                         JOIN auth_user ON auth_user.id = portcullis_session.user_id \
                         WHERE key_digest IN (SELECT unnest($1::text[])) AND expires > $2"
                    ))
                    .bind(digests)
                    .bind(Utc::now())
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(map_sqlx_error)?;
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
            oauth2_tokens: PostgresStore::oauth2_tokens(pool),
            oauth2_tokens_with_users: PostgresStore::oauth2_tokens_with_users(pool),
        }
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to a `postgres://` or `postgresql://` URL. A server that
    /// cannot be reached gives [`StoreError::Unavailable`] within about
    /// three seconds.
    ///
    /// Run [`migrate`](Self::migrate) before first use.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        DatabaseKind::Postgres.expect(url)?;
        let options = PgConnectOptions::from_str(url).map_err(map_sqlx_error)?;
        let pool = sql::server_pool_options()
            .connect_with(options)
            .await
            .map_err(map_sqlx_error)?;
        Ok(Self::from_pool(pool))
    }

    /// Uses an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        let reads = Reads::postgres(&pool);
        PostgresStore { pool, reads }
    }

    /// The connection pool, for queries of your own.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates or upgrades the schema; running it again does nothing.
    /// Concurrent runs are serialised by an advisory lock.
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
             VALUES ($1, NULL, $2, $3, '', '', $4, $5, $6, $7) RETURNING id",
        )
        .bind(&new.password_hash)
        .bind(new.is_superuser)
        .bind(&new.username)
        .bind(&new.email)
        .bind(new.is_staff)
        .bind(new.is_active)
        .bind(date_joined)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| relabel(e, &format!("username {}", new.username), "user"))?;
        let id = row.try_get("id").map_err(map_sqlx_error)?;
        Ok(sql::new_user(id, new, date_joined))
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    type User = User;

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.reads.users.get(id).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        // PostgreSQL text cannot hold NUL, so no stored username has one;
        // asking would be a driver error, not "no such user".
        if username.contains('\0') {
            return Ok(None);
        }
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM auth_user WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .map(|row| sql::user_from_row(&row, 0, sql::CHECKED).map_err(map_sqlx_error))
        .transpose()
    }

    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE auth_user SET password = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        user_found(done.rows_affected(), id)
    }

    async fn touch_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE auth_user SET last_login = $1 WHERE id = $2")
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
impl UserAdmin for PostgresStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.insert_user(user).await
    }

    async fn set_active(&self, id: i64, active: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE auth_user SET is_active = $1 WHERE id = $2")
            .bind(active)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        user_found(done.rows_affected(), id)
    }

    async fn delete_user(&self, id: i64) -> Result<(), StoreError> {
        // ON DELETE CASCADE removes the token and sessions.
        let done = sqlx::query("DELETE FROM auth_user WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        user_found(done.rows_affected(), id)
    }
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM portcullis_token WHERE digest = $1"
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
            " FROM portcullis_token WHERE user_id = $1"
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
            ") VALUES ($1, $2, $3, $4)"
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
        let done = sqlx::query("DELETE FROM portcullis_token WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn load_session(&self, key_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM portcullis_session WHERE key_digest = $1 AND expires > $2"
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
        sqlx::query(concat!(
            "INSERT INTO portcullis_session (",
            session_columns!(),
            ") VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key_digest) DO UPDATE SET user_id = EXCLUDED.user_id, \
             data = EXCLUDED.data, expires = EXCLUDED.expires"
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
        sqlx::query("DELETE FROM portcullis_session WHERE key_digest = $1")
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
            Some(keep) => sqlx::query(
                "DELETE FROM portcullis_session WHERE user_id = $1 AND key_digest <> $2",
            )
            .bind(user_id)
            .bind(keep),
            None => sqlx::query("DELETE FROM portcullis_session WHERE user_id = $1").bind(user_id),
        };
        let done = query.execute(&self.pool).await.map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }

    async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM portcullis_session WHERE expires <= $1")
            .bind(Utc::now())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}

/// Failures live in `portcullis_login_failure`; every call is one
/// statement, so concurrent servers and `portcullis unlock` agree at once.
#[async_trait]
impl LockoutStore for PostgresStore {
    async fn record_failure(
        &self,
        key: &str,
        now: SystemTime,
        cooloff: Duration,
    ) -> Result<u32, StoreError> {
        let now_ms = sql::millis(now);
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO portcullis_login_failure \
             (lockout_key, failures, last_failure_ms, expires_ms) VALUES ($1, 1, $2, $3) \
             ON CONFLICT (lockout_key) DO UPDATE SET \
             failures = CASE WHEN portcullis_login_failure.expires_ms <= $2 THEN 1 \
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
             WHERE lockout_key = $1 AND expires_ms > $2",
        )
        .bind(key)
        .bind(sql::millis(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(row.map(|(count, last)| sql::failures_from(count, last)))
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portcullis_login_failure WHERE lockout_key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }
}

#[async_trait]
impl Ping for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }
}
