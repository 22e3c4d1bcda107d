//! Where signature keys live: the [`SignatureKeyStore`] trait and
//! [`MemorySignatureKeys`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::keys::Algorithm;
use crate::store::StoreError;

/// The longest key id the stores hold.
pub const MAX_KEY_ID: usize = 255;

/// A registered signature key: who it belongs to and how to verify with
/// it. Public keys are kept as PEM text; an HMAC secret is kept sealed with
/// the [`SecretKey`](crate::SecretKey) (purpose [`HMAC_SEAL_PURPOSE`](super::HMAC_SEAL_PURPOSE)),
/// so a stolen database alone yields no usable secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureKeyRecord {
    /// The `keyid` clients name; unique.
    pub key_id: String,
    /// The owner's user id.
    pub user_id: i64,
    /// The one algorithm this key may be used with.
    pub algorithm: Algorithm,
    /// The public key PEM, or the sealed HMAC secret.
    pub key: String,
    /// When the key was added.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for SignatureKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureKeyRecord")
            .field("key_id", &self.key_id)
            .field("user_id", &self.user_id)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Refuses a key id the stores cannot hold, before any SQL runs.
pub fn check_key_id(key_id: &str) -> Result<(), StoreError> {
    if key_id.is_empty() || key_id.chars().count() > MAX_KEY_ID {
        return Err(StoreError::backend(format!(
            "a signature key id must be 1 to {MAX_KEY_ID} characters"
        )));
    }
    Ok(())
}

/// Stores signature keys by `keyid`. Dyn-compatible.
///
/// A store error makes the scheme refuse the request (fail closed).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use portcullis::scheme::httpsig::{SignatureKeyRecord, SignatureKeyStore};
/// use portcullis::store::StoreError;
///
/// #[derive(Default)]
/// struct Mine(Mutex<HashMap<String, SignatureKeyRecord>>);
///
/// #[async_trait]
/// impl SignatureKeyStore for Mine {
///     async fn signature_key(&self, key_id: &str) -> Result<Option<SignatureKeyRecord>, StoreError> {
///         Ok(self.0.lock().unwrap().get(key_id).cloned())
///     }
///     async fn add_signature_key(&self, key: &SignatureKeyRecord) -> Result<(), StoreError> {
///         let mut m = self.0.lock().unwrap();
///         if m.contains_key(&key.key_id) {
///             return Err(StoreError::Conflict(format!("signature key {}", key.key_id)));
///         }
///         m.insert(key.key_id.clone(), key.clone());
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait SignatureKeyStore: Send + Sync + 'static {
    /// The key with this id, if any.
    async fn signature_key(&self, key_id: &str) -> Result<Option<SignatureKeyRecord>, StoreError>;

    /// Adds a key; [`StoreError::Conflict`] if the id is taken,
    /// [`StoreError::NotFound`] if the user does not exist (SQL stores).
    async fn add_signature_key(&self, key: &SignatureKeyRecord) -> Result<(), StoreError>;
}

#[async_trait]
impl<T: SignatureKeyStore + ?Sized> SignatureKeyStore for Arc<T> {
    async fn signature_key(&self, key_id: &str) -> Result<Option<SignatureKeyRecord>, StoreError> {
        (**self).signature_key(key_id).await
    }
    async fn add_signature_key(&self, key: &SignatureKeyRecord) -> Result<(), StoreError> {
        (**self).add_signature_key(key).await
    }
}

/// Signature keys in process memory: for tests and single-process apps;
/// clones share the keys.
#[derive(Clone, Default)]
pub struct MemorySignatureKeys {
    inner: Arc<Mutex<HashMap<String, SignatureKeyRecord>>>,
}

impl fmt::Debug for MemorySignatureKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySignatureKeys")
            .field("keys", &self.lock().len())
            .finish()
    }
}

impl MemorySignatureKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SignatureKeyRecord>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SignatureKeyStore for MemorySignatureKeys {
    async fn signature_key(&self, key_id: &str) -> Result<Option<SignatureKeyRecord>, StoreError> {
        Ok(self.lock().get(key_id).cloned())
    }

    async fn add_signature_key(&self, key: &SignatureKeyRecord) -> Result<(), StoreError> {
        check_key_id(&key.key_id)?;
        let mut m = self.lock();
        if m.contains_key(&key.key_id) {
            return Err(StoreError::Conflict(format!(
                "signature key {}",
                key.key_id
            )));
        }
        m.insert(key.key_id.clone(), key.clone());
        Ok(())
    }
}
