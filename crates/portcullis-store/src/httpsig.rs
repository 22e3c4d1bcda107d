//! [`SignatureKeyStore`] on every SQL store: the keys of HTTP Message
//! Signatures (migration `0006_httpsig_oauth1`, table
//! `portcullis_signature_key`).
//!
//! | column | holds |
//! |---|---|
//! | `key_id` | the `keyid` clients name (primary key) |
//! | `user_id` | the owner (the key goes with its user) |
//! | `algorithm` | the one algorithm the key may be used with |
//! | `key_data` | the public key PEM, or the HMAC secret sealed with the secret key |
//! | `created_at` | when the key was added |
//!
//! ```
//! use portcullis::scheme::httpsig::{Algorithm, SignatureKeyRecord, SignatureKeyStore};
//! use portcullis::store::{NewUser, UserAdmin};
//! use portcullis_store::Store;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! store.migrate().await.unwrap();
//! let ada = store.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! let key = SignatureKeyRecord {
//!     key_id: "ada-laptop".into(),
//!     user_id: ada.id,
//!     algorithm: Algorithm::Ed25519,
//!     key: "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n".into(),
//!     created_at: chrono::Utc::now(),
//! };
//! store.add_signature_key(&key).await.unwrap();
//! assert_eq!(store.signature_key("ada-laptop").await.unwrap().unwrap().user_id, ada.id);
//! assert!(store.add_signature_key(&key).await.is_err()); // the id is taken
//! # });
//! ```

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portcullis::scheme::httpsig::{check_key_id, Algorithm, SignatureKeyRecord, SignatureKeyStore};
use portcullis::store::StoreError;

use crate::error::{map_sqlx_error, relabel};
#[cfg(feature = "mysql")]
use crate::MySqlStore;
#[cfg(feature = "postgres")]
use crate::PostgresStore;
#[cfg(feature = "sqlite")]
use crate::SqliteStore;
use crate::Store;

fn record(
    key_id: &str,
    user_id: i64,
    algorithm: String,
    key: String,
    created_at: DateTime<Utc>,
) -> Result<SignatureKeyRecord, StoreError> {
    let algorithm: Algorithm = algorithm
        .parse()
        .map_err(|e: portcullis::scheme::httpsig::UnknownAlgorithm| StoreError::backend(e))?;
    Ok(SignatureKeyRecord {
        key_id: key_id.to_owned(),
        user_id,
        algorithm,
        key,
        created_at,
    })
}

fn add_error(e: sqlx::Error, key: &SignatureKeyRecord) -> StoreError {
    relabel(
        e,
        &format!("signature key {}", key.key_id),
        &format!("user {}", key.user_id),
    )
}

/// Implements the trait for one dialect; `$p` are its placeholders and
/// `$ts` turns a time into what it binds.
macro_rules! signature_keys {
    ($store:ty, $select:expr, $insert:expr, $ts:expr) => {
        #[async_trait]
        impl SignatureKeyStore for $store {
            async fn signature_key(
                &self,
                key_id: &str,
            ) -> Result<Option<SignatureKeyRecord>, StoreError> {
                if check_key_id(key_id).is_err() {
                    return Ok(None);
                }
                let row: Option<(i64, String, String, DateTime<Utc>)> = sqlx::query_as($select)
                    .bind(key_id)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_sqlx_error)?;
                row.map(|(user_id, alg, key, created)| record(key_id, user_id, alg, key, created))
                    .transpose()
            }

            async fn add_signature_key(&self, key: &SignatureKeyRecord) -> Result<(), StoreError> {
                check_key_id(&key.key_id)?;
                sqlx::query($insert)
                    .bind(&key.key_id)
                    .bind(key.user_id)
                    .bind(key.algorithm.as_str())
                    .bind(&key.key)
                    .bind($ts(key.created_at))
                    .execute(self.pool())
                    .await
                    .map_err(|e| add_error(e, key))?;
                Ok(())
            }
        }
    };
}

#[cfg(feature = "sqlite")]
signature_keys!(
    SqliteStore,
    "SELECT user_id, algorithm, key_data, created_at FROM portcullis_signature_key WHERE key_id = ?",
    "INSERT INTO portcullis_signature_key (key_id, user_id, algorithm, key_data, created_at) \
     VALUES (?, ?, ?, ?, ?)",
    crate::sqlite::ts
);

#[cfg(feature = "postgres")]
signature_keys!(
    PostgresStore,
    "SELECT user_id, algorithm, key_data, created_at FROM portcullis_signature_key WHERE key_id = $1",
    "INSERT INTO portcullis_signature_key (key_id, user_id, algorithm, key_data, created_at) \
     VALUES ($1, $2, $3, $4, $5)",
    std::convert::identity
);

#[cfg(feature = "mysql")]
signature_keys!(
    MySqlStore,
    "SELECT user_id, algorithm, key_data, created_at FROM portcullis_signature_key WHERE key_id = ?",
    "INSERT INTO portcullis_signature_key (key_id, user_id, algorithm, key_data, created_at) \
     VALUES (?, ?, ?, ?, ?)",
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
impl SignatureKeyStore for Store {
    async fn signature_key(&self, key_id: &str) -> Result<Option<SignatureKeyRecord>, StoreError> {
        dispatch!(self, s => s.signature_key(key_id).await)
    }

    async fn add_signature_key(&self, key: &SignatureKeyRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.add_signature_key(key).await)
    }
}
