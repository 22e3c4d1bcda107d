//! [`JwtBlacklist`] on every SQL store: simplejwt's `token_blacklist` app
//! (migration `0002_jwt_blacklist`).
//!
//! Two tables, keyed by the token's `jti`; the token text is never stored:
//!
//! | table | columns |
//! |---|---|
//! | `portcullis_jwt_outstanding` | `jti` (primary key), `user_id` (nullable, goes with its user), `created_at`, `expires_at` |
//! | `portcullis_jwt_blacklisted` | `jti` (primary key, goes with its outstanding row), `blacklisted_at` |
//!
//! A token naming a user who no longer exists is recorded without an owner
//! rather than refused, so blacklisting (logging out) always works.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use portcullis::jwt::{JwtBlacklist, OutstandingToken};
//! use portcullis_store::Store;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! store.migrate().await.unwrap();
//! let token = OutstandingToken {
//!     jti: "0123456789abcdef0123456789abcdef".into(),
//!     user_id: None,
//!     created_at: Utc::now(),
//!     expires_at: Utc::now() + Duration::days(1),
//! };
//! store.record_outstanding(&token).await.unwrap();
//! assert!(store.blacklist(&token).await.unwrap());
//! assert!(!store.blacklist(&token).await.unwrap()); // already blacklisted
//! assert!(store.is_blacklisted(&token.jti).await.unwrap());
//! assert_eq!(store.flush_expired(Utc::now()).await.unwrap(), 0);
//! # });
//! ```

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portcullis::jwt::{JwtBlacklist, OutstandingToken};
use portcullis::store::StoreError;

use crate::error::map_sqlx_error;
#[cfg(feature = "mysql")]
use crate::MySqlStore;
#[cfg(feature = "postgres")]
use crate::PostgresStore;
#[cfg(feature = "sqlite")]
use crate::SqliteStore;
use crate::Store;

/// The longest `jti` the tables hold (simplejwt's `max_length=255`).
const MAX_JTI: usize = 255;

/// Refuses a `jti` the column cannot hold, before any SQL runs.
fn check_jti(jti: &str) -> Result<(), StoreError> {
    if jti.is_empty() || jti.chars().count() > MAX_JTI {
        return Err(StoreError::backend(format!(
            "a JWT id must be 1 to {MAX_JTI} characters"
        )));
    }
    Ok(())
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl JwtBlacklist for SqliteStore {
    async fn record_outstanding(&self, token: &OutstandingToken) -> Result<(), StoreError> {
        check_jti(&token.jti)?;
        sqlite_record(self.pool(), token).await
    }

    async fn blacklist(&self, token: &OutstandingToken) -> Result<bool, StoreError> {
        check_jti(&token.jti)?;
        let mut tx = self.pool().begin().await.map_err(map_sqlx_error)?;
        sqlite_record(&mut *tx, token).await?;
        let done = sqlx::query(
            "INSERT OR IGNORE INTO portcullis_jwt_blacklisted (jti, blacklisted_at) VALUES (?, ?)",
        )
        .bind(&token.jti)
        .bind(crate::sqlite::ts(crate::sql::now()))
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn is_blacklisted(&self, jti: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM portcullis_jwt_blacklisted WHERE jti = ?")
            .bind(jti)
            .fetch_optional(self.pool())
            .await
            .map_err(map_sqlx_error)?;
        Ok(row.is_some())
    }

    async fn flush_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = crate::sqlite::ts(now);
        let mut tx = self.pool().begin().await.map_err(map_sqlx_error)?;
        // The foreign key cascades; deleting explicitly keeps a pool
        // without `foreign_keys` correct too.
        sqlx::query(
            "DELETE FROM portcullis_jwt_blacklisted WHERE jti IN \
             (SELECT jti FROM portcullis_jwt_outstanding WHERE expires_at <= ?)",
        )
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let done = sqlx::query("DELETE FROM portcullis_jwt_outstanding WHERE expires_at <= ?")
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}

/// Inserts the outstanding row unless it exists; an owner who is gone is
/// recorded as none.
#[cfg(feature = "sqlite")]
async fn sqlite_record<'e, E>(executor: E, token: &OutstandingToken) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT OR IGNORE INTO portcullis_jwt_outstanding (jti, user_id, created_at, expires_at) \
         SELECT ?, (SELECT id FROM auth_user WHERE id = ?), ?, ?",
    )
    .bind(&token.jti)
    .bind(token.user_id)
    .bind(crate::sqlite::ts(token.created_at))
    .bind(crate::sqlite::ts(token.expires_at))
    .execute(executor)
    .await
    .map_err(map_sqlx_error)?;
    Ok(())
}

#[cfg(feature = "postgres")]
#[async_trait]
impl JwtBlacklist for PostgresStore {
    async fn record_outstanding(&self, token: &OutstandingToken) -> Result<(), StoreError> {
        check_jti(&token.jti)?;
        postgres_record(self.pool(), token).await
    }

    async fn blacklist(&self, token: &OutstandingToken) -> Result<bool, StoreError> {
        check_jti(&token.jti)?;
        let mut tx = self.pool().begin().await.map_err(map_sqlx_error)?;
        postgres_record(&mut *tx, token).await?;
        let done = sqlx::query(
            "INSERT INTO portcullis_jwt_blacklisted (jti, blacklisted_at) VALUES ($1, $2) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(&token.jti)
        .bind(crate::sql::now())
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn is_blacklisted(&self, jti: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM portcullis_jwt_blacklisted WHERE jti = $1")
            .bind(jti)
            .fetch_optional(self.pool())
            .await
            .map_err(map_sqlx_error)?;
        Ok(row.is_some())
    }

    async fn flush_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        // The blacklist rows go by the foreign key's cascade.
        let done = sqlx::query("DELETE FROM portcullis_jwt_outstanding WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}

/// Inserts the outstanding row unless it exists; an owner who is gone is
/// recorded as none.
#[cfg(feature = "postgres")]
async fn postgres_record<'e, E>(executor: E, token: &OutstandingToken) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    sqlx::query(
        "INSERT INTO portcullis_jwt_outstanding (jti, user_id, created_at, expires_at) \
         SELECT $1, (SELECT id FROM auth_user WHERE id = $2), $3, $4 \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(&token.jti)
    .bind(token.user_id)
    .bind(token.created_at)
    .bind(token.expires_at)
    .execute(executor)
    .await
    .map_err(map_sqlx_error)?;
    Ok(())
}

#[cfg(feature = "mysql")]
#[async_trait]
impl JwtBlacklist for MySqlStore {
    async fn record_outstanding(&self, token: &OutstandingToken) -> Result<(), StoreError> {
        check_jti(&token.jti)?;
        mysql_record(self.pool(), token).await
    }

    async fn blacklist(&self, token: &OutstandingToken) -> Result<bool, StoreError> {
        check_jti(&token.jti)?;
        let mut tx = self.pool().begin().await.map_err(map_sqlx_error)?;
        mysql_record(&mut *tx, token).await?;
        // A duplicate key is "already blacklisted"; it does not abort the
        // transaction on InnoDB.
        let inserted = sqlx::query(
            "INSERT INTO portcullis_jwt_blacklisted (jti, blacklisted_at) VALUES (?, ?)",
        )
        .bind(&token.jti)
        .bind(crate::sql::now())
        .execute(&mut *tx)
        .await;
        let newly = match inserted {
            Ok(_) => true,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => false,
            Err(e) => return Err(map_sqlx_error(e)),
        };
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(newly)
    }

    async fn is_blacklisted(&self, jti: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM portcullis_jwt_blacklisted WHERE jti = ?")
            .bind(jti)
            .fetch_optional(self.pool())
            .await
            .map_err(map_sqlx_error)?;
        Ok(row.is_some())
    }

    async fn flush_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        // The blacklist rows go by the foreign key's cascade.
        let done = sqlx::query("DELETE FROM portcullis_jwt_outstanding WHERE expires_at <= ?")
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}

/// Inserts the outstanding row unless it exists; an owner who is gone is
/// recorded as none.
#[cfg(feature = "mysql")]
async fn mysql_record<'e, E>(executor: E, token: &OutstandingToken) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::MySql>,
{
    sqlx::query(
        "INSERT INTO portcullis_jwt_outstanding (jti, user_id, created_at, expires_at) \
         SELECT ?, (SELECT id FROM auth_user WHERE id = ?), ?, ? \
         ON DUPLICATE KEY UPDATE jti = jti",
    )
    .bind(&token.jti)
    .bind(token.user_id)
    .bind(token.created_at)
    .bind(token.expires_at)
    .execute(executor)
    .await
    .map_err(map_sqlx_error)?;
    Ok(())
}

/// Runs `$body` with `$s` bound to the store inside a [`Store`].
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
impl JwtBlacklist for Store {
    async fn record_outstanding(&self, token: &OutstandingToken) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_outstanding(token).await)
    }

    async fn blacklist(&self, token: &OutstandingToken) -> Result<bool, StoreError> {
        dispatch!(self, s => s.blacklist(token).await)
    }

    async fn is_blacklisted(&self, jti: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.is_blacklisted(jti).await)
    }

    async fn flush_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.flush_expired(now).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jti_length_is_checked() {
        assert!(check_jti("").is_err());
        assert!(check_jti(&"a".repeat(255)).is_ok());
        assert!(check_jti(&"é".repeat(255)).is_ok());
        assert!(check_jti(&"a".repeat(256)).is_err());
    }
}
