//! [`OAuth1Store`] on every SQL store: OAuth 1.0a consumers and tokens
//! (migration `0006_httpsig_oauth1`).
//!
//! | table | columns |
//! |---|---|
//! | `portcullis_oauth1_consumer` | `consumer_key` (primary key), `name`, `sealed_secret`, `rsa_public_key`, `callback`, `created_at` |
//! | `portcullis_oauth1_token` | `token` (primary key), `consumer_key` (goes with its consumer), `user_id` (goes with its user), `kind` (`request`/`access`), `sealed_secret`, `callback`, `verifier_digest`, `created_at`, `expires_at` |
//!
//! Secrets are sealed with the secret key before they reach the store;
//! verifiers are keyed digests.
//!
//! ```
//! use std::sync::Arc;
//! use portcullis::replay::MemoryReplayCache;
//! use portcullis::scheme::oauth1::{OAuth1, OAuth1Config, OAuth1Store};
//! use portcullis::SecretKey;
//! use portcullis_store::Store;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! store.migrate().await.unwrap();
//! let oauth = OAuth1::new(store.clone(), SecretKey::new([1u8; 32]).unwrap(),
//!     Arc::new(MemoryReplayCache::new()), OAuth1Config::default());
//! let (key, _secret) = oauth.create_consumer("app", None, None).await.unwrap();
//! assert_eq!(store.consumer(&key).await.unwrap().unwrap().name, "app");
//! # });
//! ```

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portcullis::scheme::oauth1::{
    check_oauth1_id, ConsumerRecord, OAuth1Store, OAuth1TokenRecord, TokenKind,
};
use portcullis::store::StoreError;

use crate::error::{map_sqlx_error, relabel};
#[cfg(feature = "mysql")]
use crate::MySqlStore;
#[cfg(feature = "postgres")]
use crate::PostgresStore;
#[cfg(feature = "sqlite")]
use crate::SqliteStore;
use crate::Store;

type ConsumerRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
);
type TokenRow = (
    String,
    Option<i64>,
    String,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn consumer_from(key: &str, row: ConsumerRow) -> ConsumerRecord {
    let (name, sealed_secret, rsa_public_key, callback, created_at) = row;
    ConsumerRecord {
        consumer_key: key.to_owned(),
        name,
        sealed_secret,
        rsa_public_key,
        callback,
        created_at,
    }
}

fn token_from(token: &str, row: TokenRow) -> Result<OAuth1TokenRecord, StoreError> {
    let (
        consumer_key,
        user_id,
        kind,
        sealed_secret,
        callback,
        verifier_digest,
        created_at,
        expires_at,
    ) = row;
    let kind = TokenKind::parse(&kind)
        .ok_or_else(|| StoreError::backend(format!("unknown OAuth 1.0a token kind {kind:?}")))?;
    Ok(OAuth1TokenRecord {
        token: token.to_owned(),
        consumer_key,
        user_id,
        kind,
        sealed_secret,
        callback,
        verifier_digest,
        created_at,
        expires_at,
    })
}

/// The SQL of one dialect.
struct Sql {
    insert_consumer: &'static str,
    select_consumer: &'static str,
    insert_token: &'static str,
    select_token: &'static str,
    authorize: &'static str,
    delete_token: &'static str,
}

/// Implements the trait for one dialect; `$ts` turns a time into what it
/// binds.
macro_rules! oauth1_store {
    ($store:ty, $sql:expr, $ts:expr) => {
        #[async_trait]
        impl OAuth1Store for $store {
            async fn create_consumer(&self, c: &ConsumerRecord) -> Result<(), StoreError> {
                check_oauth1_id(&c.consumer_key)?;
                sqlx::query($sql.insert_consumer)
                    .bind(&c.consumer_key)
                    .bind(&c.name)
                    .bind(&c.sealed_secret)
                    .bind(&c.rsa_public_key)
                    .bind(&c.callback)
                    .bind($ts(c.created_at))
                    .execute(self.pool())
                    .await
                    .map_err(|e| relabel(e, "consumer key", "consumer"))?;
                Ok(())
            }

            async fn consumer(&self, key: &str) -> Result<Option<ConsumerRecord>, StoreError> {
                if check_oauth1_id(key).is_err() {
                    return Ok(None);
                }
                let row: Option<ConsumerRow> = sqlx::query_as($sql.select_consumer)
                    .bind(key)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_sqlx_error)?;
                Ok(row.map(|r| consumer_from(key, r)))
            }

            async fn insert_oauth1_token(&self, t: &OAuth1TokenRecord) -> Result<(), StoreError> {
                check_oauth1_id(&t.token)?;
                sqlx::query($sql.insert_token)
                    .bind(&t.token)
                    .bind(&t.consumer_key)
                    .bind(t.user_id)
                    .bind(t.kind.as_str())
                    .bind(&t.sealed_secret)
                    .bind(&t.callback)
                    .bind(&t.verifier_digest)
                    .bind($ts(t.created_at))
                    .bind(t.expires_at.map($ts))
                    .execute(self.pool())
                    .await
                    .map_err(|e| relabel(e, "token", "consumer or user"))?;
                Ok(())
            }

            async fn oauth1_token(
                &self,
                token: &str,
            ) -> Result<Option<OAuth1TokenRecord>, StoreError> {
                if check_oauth1_id(token).is_err() {
                    return Ok(None);
                }
                let row: Option<TokenRow> = sqlx::query_as($sql.select_token)
                    .bind(token)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_sqlx_error)?;
                row.map(|r| token_from(token, r)).transpose()
            }

            async fn authorize_request_token(
                &self,
                token: &str,
                user_id: i64,
                verifier_digest: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query($sql.authorize)
                    .bind(user_id)
                    .bind(verifier_digest)
                    .bind(token)
                    .execute(self.pool())
                    .await
                    .map_err(|e| relabel(e, "token", "user"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_oauth1_token(&self, token: &str) -> Result<bool, StoreError> {
                let done = sqlx::query($sql.delete_token)
                    .bind(token)
                    .execute(self.pool())
                    .await
                    .map_err(map_sqlx_error)?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

#[cfg(any(feature = "sqlite", feature = "mysql"))]
const QUESTION_MARKS: Sql = Sql {
    insert_consumer: "INSERT INTO portcullis_oauth1_consumer \
        (consumer_key, name, sealed_secret, rsa_public_key, callback, created_at) \
        VALUES (?, ?, ?, ?, ?, ?)",
    select_consumer: "SELECT name, sealed_secret, rsa_public_key, callback, created_at \
        FROM portcullis_oauth1_consumer WHERE consumer_key = ?",
    insert_token: "INSERT INTO portcullis_oauth1_token \
        (token, consumer_key, user_id, kind, sealed_secret, callback, verifier_digest, created_at, expires_at) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    select_token: "SELECT consumer_key, user_id, kind, sealed_secret, callback, verifier_digest, \
        created_at, expires_at FROM portcullis_oauth1_token WHERE token = ?",
    authorize: "UPDATE portcullis_oauth1_token SET user_id = ?, verifier_digest = ? \
        WHERE token = ? AND kind = 'request' AND user_id IS NULL",
    delete_token: "DELETE FROM portcullis_oauth1_token WHERE token = ?",
};

#[cfg(feature = "sqlite")]
oauth1_store!(SqliteStore, QUESTION_MARKS, crate::sqlite::ts);

#[cfg(feature = "mysql")]
oauth1_store!(
    MySqlStore,
    Sql {
        // The key columns are VARBINARY: read them back as text.
        select_token: "SELECT CONVERT(consumer_key USING utf8mb4), user_id, kind, sealed_secret, \
            callback, verifier_digest, created_at, expires_at \
            FROM portcullis_oauth1_token WHERE token = ?",
        ..QUESTION_MARKS
    },
    std::convert::identity
);

#[cfg(feature = "postgres")]
oauth1_store!(
    PostgresStore,
    Sql {
        insert_consumer: "INSERT INTO portcullis_oauth1_consumer \
            (consumer_key, name, sealed_secret, rsa_public_key, callback, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6)",
        select_consumer: "SELECT name, sealed_secret, rsa_public_key, callback, created_at \
            FROM portcullis_oauth1_consumer WHERE consumer_key = $1",
        insert_token: "INSERT INTO portcullis_oauth1_token \
            (token, consumer_key, user_id, kind, sealed_secret, callback, verifier_digest, created_at, expires_at) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        select_token: "SELECT consumer_key, user_id, kind, sealed_secret, callback, verifier_digest, \
            created_at, expires_at FROM portcullis_oauth1_token WHERE token = $1",
        authorize: "UPDATE portcullis_oauth1_token SET user_id = $1, verifier_digest = $2 \
            WHERE token = $3 AND kind = 'request' AND user_id IS NULL",
        delete_token: "DELETE FROM portcullis_oauth1_token WHERE token = $1",
    },
    std::convert::identity
);

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
impl OAuth1Store for Store {
    async fn create_consumer(&self, c: &ConsumerRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_consumer(c).await)
    }
    async fn consumer(&self, key: &str) -> Result<Option<ConsumerRecord>, StoreError> {
        dispatch!(self, s => s.consumer(key).await)
    }
    async fn insert_oauth1_token(&self, t: &OAuth1TokenRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_oauth1_token(t).await)
    }
    async fn oauth1_token(&self, token: &str) -> Result<Option<OAuth1TokenRecord>, StoreError> {
        dispatch!(self, s => s.oauth1_token(token).await)
    }
    async fn authorize_request_token(
        &self,
        token: &str,
        user_id: i64,
        verifier_digest: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.authorize_request_token(token, user_id, verifier_digest).await)
    }
    async fn delete_oauth1_token(&self, token: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_oauth1_token(token).await)
    }
}
