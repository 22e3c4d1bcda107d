//! Replay caches: the memory of nonces that the signed-request schemes
//! (Digest, Hawk, HTTP Message Signatures, OAuth 1.0a) keep so that a
//! captured request cannot be sent a second time.
//!
//! A scheme asks [`ReplayCache::first_use`] once per request with a key
//! that names the nonce (the scheme adds its own prefix, e.g.
//! `hawk:<id>:<nonce>`) and how long it must be remembered (the scheme's
//! timestamp window: past it the request is refused for its age anyway).
//! The answer is `true` the first time a key is seen and `false` after.
//!
//! [`MemoryReplayCache`] serves one server. With several servers behind
//! one address, use a shared cache (the Redis store in `portcullis-store`)
//! so that a nonce used on one server is refused on all.
//!
//! A cache that cannot answer returns an error, and the schemes refuse the
//! request (fail closed): a nonce that cannot be checked is not accepted.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use portcullis::replay::{MemoryReplayCache, ReplayCache};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let cache = MemoryReplayCache::new();
//! let now = SystemTime::now();
//! let ttl = Duration::from_secs(60);
//! assert!(cache.first_use("hawk:id:n1", ttl, now).await.unwrap());
//! assert!(!cache.first_use("hawk:id:n1", ttl, now).await.unwrap());
//! // Once the window has passed, the key is forgotten.
//! assert!(cache.first_use("hawk:id:n1", ttl, now + ttl).await.unwrap());
//! # });
//! ```

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::store::StoreError;
use crate::throttle::bounded::BoundedMap;

/// Remembers nonces for a while; see the [module docs](self).
#[async_trait]
pub trait ReplayCache: fmt::Debug + Send + Sync + 'static {
    /// Records `key` as used until `now + ttl`; `Ok(true)` when it was not
    /// already recorded (the request may go on), `Ok(false)` when it was (a
    /// replay). The check and the record are one atomic step.
    async fn first_use(
        &self,
        key: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
impl<T: ReplayCache + ?Sized> ReplayCache for Arc<T> {
    async fn first_use(
        &self,
        key: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        (**self).first_use(key, ttl, now).await
    }
}

/// The default cap on the nonces a [`MemoryReplayCache`] keeps.
pub const DEFAULT_MAX_NONCES: usize = 200_000;

/// A [`ReplayCache`] in process memory, for one server; clones share it.
///
/// Memory is bounded: at most
/// [`max_keys`](MemoryReplayCache::with_max_keys) nonces (default
/// 200,000). When a new nonce finds the cache full, expired nonces are
/// dropped first, then those closest to expiry. A nonce dropped early
/// could be replayed within its window, so size the cap above the number
/// of signed requests expected per window (200,000 covers about 660
/// requests a second over Digest's default five minutes).
#[derive(Clone)]
pub struct MemoryReplayCache {
    /// Each nonce with its expiry.
    map: Arc<Mutex<BoundedMap<SystemTime>>>,
}

impl fmt::Debug for MemoryReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = self.lock();
        f.debug_struct("MemoryReplayCache")
            .field("keys", &map.len())
            .field("max_keys", &map.cap())
            .finish()
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryReplayCache {
    /// An empty cache holding at most 200,000 nonces.
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_NONCES)
    }

    /// An empty cache holding at most `max_keys` nonces.
    ///
    /// # Panics
    ///
    /// If `max_keys` is zero.
    pub fn with_max_keys(max_keys: usize) -> Self {
        MemoryReplayCache {
            map: Arc::new(Mutex::new(BoundedMap::new(max_keys))),
        }
    }

    /// The number of nonces held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedMap<SystemTime>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn first_use(
        &self,
        key: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let mut map = self.lock();
        Ok(map.update(key, now, |old| match old {
            // Seen and still live: keep it until its original expiry.
            Some(expires) => (Some((expires, expires)), false),
            None => (Some((now + ttl, now + ttl)), true),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_nonce_is_accepted_once_within_its_window() {
        let cache = MemoryReplayCache::new();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ttl = Duration::from_secs(300);
        assert!(cache.first_use("a", ttl, t0).await.unwrap());
        assert!(!cache.first_use("a", ttl, t0).await.unwrap());
        assert!(!cache
            .first_use("a", ttl, t0 + Duration::from_secs(299))
            .await
            .unwrap());
        assert!(cache.first_use("b", ttl, t0).await.unwrap());
        assert!(cache.first_use("a", ttl, t0 + ttl).await.unwrap());
    }

    #[tokio::test]
    async fn a_flood_of_nonces_stays_within_the_cap() {
        let cache = MemoryReplayCache::with_max_keys(1_000);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for i in 0..20_000 {
            let key = format!("n{i}");
            assert!(cache
                .first_use(&key, Duration::from_secs(60), t0)
                .await
                .unwrap());
        }
        assert!(cache.len() <= 1_000, "{} nonces held", cache.len());
        // The newest nonces are still refused.
        assert!(!cache
            .first_use("n19999", Duration::from_secs(60), t0)
            .await
            .unwrap());
    }
}
