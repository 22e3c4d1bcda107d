//! [`DigestStore`] and [`HawkStore`] on every SQL store (migration
//! `0005_digest_hawk`).
//!
//! | table | columns |
//! |---|---|
//! | `portcullis_digest_ha1` | `user_id` (primary key, goes with its user), `sealed` (the realm digests, sealed with the secret key), `updated` |
//! | `portcullis_hawk_credential` | `id` (primary key, at most 64 characters), `user_id` (goes with its user), `sealed_key` (the key, sealed with the secret key), `created` |
//!
//! Nothing here is usable without the secret key: the realm digests and
//! the Hawk keys are stored only sealed.
//!
//! ```
//! use portcullis::scheme::digest::DigestStore;
//! use portcullis::scheme::hawk::{self, HawkStore};
//! use portcullis::store::{NewUser, UserAdmin};
//! use portcullis::SecretKey;
//! use portcullis_store::Store;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! store.migrate().await.unwrap();
//! let ada = store.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! store.set_realm_digest(ada.id, Some("sealed")).await.unwrap();
//! assert_eq!(store.realm_digest(ada.id).await.unwrap().as_deref(), Some("sealed"));
//! let (id, _key) = hawk::issue(&store, &SecretKey::new([1u8; 32]).unwrap(), ada.id).await.unwrap();
//! assert_eq!(store.hawk_credential(&id).await.unwrap().unwrap().user_id, ada.id);
//! # });
//! ```

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portcullis::scheme::digest::DigestStore;
use portcullis::scheme::hawk::{HawkCredential, HawkStore};
use portcullis::store::StoreError;
use sqlx::Row;

use crate::error::map_sqlx_error;
#[cfg(feature = "mysql")]
use crate::MySqlStore;
#[cfg(feature = "postgres")]
use crate::PostgresStore;
#[cfg(feature = "sqlite")]
use crate::SqliteStore;
use crate::Store;

/// The longest Hawk id the table holds.
const MAX_HAWK_ID: usize = 64;

fn id_fits(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_HAWK_ID
}

fn check_id(id: &str) -> Result<(), StoreError> {
    if id_fits(id) {
        Ok(())
    } else {
        Err(StoreError::backend(format!(
            "a Hawk id must be 1 to {MAX_HAWK_ID} bytes"
        )))
    }
}

fn credential(
    id: &str,
    user_id: i64,
    sealed_key: String,
    created: DateTime<Utc>,
) -> HawkCredential {
    HawkCredential {
        id: id.to_owned(),
        user_id,
        sealed_key,
        created,
    }
}

/// Implements both traits for one dialect: its placeholders, its upsert
/// and how it binds a timestamp.
macro_rules! sql_impl {
    ($store:ty, $feature:literal, $p:expr, $upsert:literal, $ts:expr) => {
        #[cfg(feature = $feature)]
        #[async_trait]
        impl DigestStore for $store {
            async fn realm_digest(&self, user_id: i64) -> Result<Option<String>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT sealed FROM portcullis_digest_ha1 WHERE user_id = {}",
                    $p(1)
                ))
                .bind(user_id)
                .fetch_optional(self.pool())
                .await
                .map_err(map_sqlx_error)?;
                row.map(|r| r.try_get::<String, _>("sealed"))
                    .transpose()
                    .map_err(map_sqlx_error)
            }

            async fn set_realm_digest(
                &self,
                user_id: i64,
                sealed: Option<&str>,
            ) -> Result<(), StoreError> {
                match sealed {
                    Some(s) => {
                        sqlx::query(&format!(
                            "INSERT INTO portcullis_digest_ha1 (user_id, sealed, updated) \
                             VALUES ({}, {}, {}) {}",
                            $p(1),
                            $p(2),
                            $p(3),
                            $upsert
                        ))
                        .bind(user_id)
                        .bind(s)
                        .bind($ts(crate::sql::now()))
                        .execute(self.pool())
                        .await
                        .map_err(map_sqlx_error)?;
                    }
                    None => {
                        sqlx::query(&format!(
                            "DELETE FROM portcullis_digest_ha1 WHERE user_id = {}",
                            $p(1)
                        ))
                        .bind(user_id)
                        .execute(self.pool())
                        .await
                        .map_err(map_sqlx_error)?;
                    }
                }
                Ok(())
            }
        }

        #[cfg(feature = $feature)]
        #[async_trait]
        impl HawkStore for $store {
            async fn hawk_credential(
                &self,
                id: &str,
            ) -> Result<Option<HawkCredential>, StoreError> {
                if !id_fits(id) {
                    return Ok(None);
                }
                let row = sqlx::query(&format!(
                    "SELECT user_id, sealed_key, created FROM portcullis_hawk_credential \
                     WHERE id = {}",
                    $p(1)
                ))
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(map_sqlx_error)?;
                let Some(row) = row else {
                    return Ok(None);
                };
                Ok(Some(credential(
                    id,
                    row.try_get("user_id").map_err(map_sqlx_error)?,
                    row.try_get("sealed_key").map_err(map_sqlx_error)?,
                    row.try_get("created").map_err(map_sqlx_error)?,
                )))
            }

            async fn insert_hawk_credential(&self, c: &HawkCredential) -> Result<(), StoreError> {
                check_id(&c.id)?;
                sqlx::query(&format!(
                    "INSERT INTO portcullis_hawk_credential (id, user_id, sealed_key, created) \
                     VALUES ({}, {}, {}, {})",
                    $p(1),
                    $p(2),
                    $p(3),
                    $p(4)
                ))
                .bind(&c.id)
                .bind(c.user_id)
                .bind(&c.sealed_key)
                .bind($ts(c.created))
                .execute(self.pool())
                .await
                .map_err(map_sqlx_error)?;
                Ok(())
            }
        }
    };
}

#[allow(dead_code)]
fn question(_: usize) -> String {
    "?".to_owned()
}

#[allow(dead_code)]
fn dollar(n: usize) -> String {
    format!("${n}")
}

#[allow(dead_code)]
fn same(at: DateTime<Utc>) -> DateTime<Utc> {
    at
}

sql_impl!(
    SqliteStore,
    "sqlite",
    question,
    "ON CONFLICT (user_id) DO UPDATE SET sealed = excluded.sealed, updated = excluded.updated",
    crate::sqlite::ts
);
sql_impl!(
    PostgresStore,
    "postgres",
    dollar,
    "ON CONFLICT (user_id) DO UPDATE SET sealed = excluded.sealed, updated = excluded.updated",
    same
);
sql_impl!(
    MySqlStore,
    "mysql",
    question,
    "ON DUPLICATE KEY UPDATE sealed = VALUES(sealed), updated = VALUES(updated)",
    same
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
impl DigestStore for Store {
    async fn realm_digest(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.realm_digest(user_id).await)
    }

    async fn set_realm_digest(&self, user_id: i64, sealed: Option<&str>) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_realm_digest(user_id, sealed).await)
    }
}

#[async_trait]
impl HawkStore for Store {
    async fn hawk_credential(&self, id: &str) -> Result<Option<HawkCredential>, StoreError> {
        dispatch!(self, s => s.hawk_credential(id).await)
    }

    async fn insert_hawk_credential(&self, credential: &HawkCredential) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_hawk_credential(credential).await)
    }
}
