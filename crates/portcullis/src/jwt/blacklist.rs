//! simplejwt's `token_blacklist` app: outstanding refresh tokens and the
//! blacklist, behind the small [`JwtBlacklist`] trait, with
//! [`MemoryBlacklist`] for tests and single-process apps.
//!
//! Unlike simplejwt's `OutstandingToken`, no token text is stored: the
//! `jti`, owner and lifetime are all the blacklist needs, and a stored token
//! would be a usable credential in a stolen database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::StoreError;

/// A refresh token that was issued (simplejwt's `OutstandingToken`), minus
/// the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutstandingToken {
    /// The token's unique id (the `jti` claim, 32 hex characters for tokens
    /// portcullis issues). The primary key.
    pub jti: String,
    /// The owner's id, when the token names one the store can map to an id.
    pub user_id: Option<i64>,
    /// When the token was issued (or first seen, for foreign tokens).
    pub created_at: DateTime<Utc>,
    /// The token's `exp`; the row can go once this has passed.
    pub expires_at: DateTime<Utc>,
}

/// Where outstanding and blacklisted refresh tokens are kept
/// (simplejwt's `token_blacklist` tables). Dyn-compatible: a
/// [`Jwt`](super::Jwt) holds an `Arc<dyn JwtBlacklist>`.
///
/// Implementations map their driver errors into [`StoreError`]; a store
/// error is answered with 500/503, never treated as "not blacklisted".
///
/// # Example
///
/// A complete implementation (this is [`MemoryBlacklist`], in short):
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use chrono::{DateTime, Utc};
/// use portcullis::jwt::{JwtBlacklist, OutstandingToken};
/// use portcullis::store::StoreError;
///
/// #[derive(Default)]
/// struct Mine(Mutex<HashMap<String, (OutstandingToken, bool)>>);
///
/// #[async_trait]
/// impl JwtBlacklist for Mine {
///     async fn record_outstanding(&self, t: &OutstandingToken) -> Result<(), StoreError> {
///         self.0.lock().unwrap().entry(t.jti.clone()).or_insert((t.clone(), false));
///         Ok(())
///     }
///     async fn blacklist(&self, t: &OutstandingToken) -> Result<bool, StoreError> {
///         let mut m = self.0.lock().unwrap();
///         let e = m.entry(t.jti.clone()).or_insert((t.clone(), false));
///         Ok(!std::mem::replace(&mut e.1, true))
///     }
///     async fn is_blacklisted(&self, jti: &str) -> Result<bool, StoreError> {
///         Ok(self.0.lock().unwrap().get(jti).is_some_and(|e| e.1))
///     }
///     async fn flush_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
///         let mut m = self.0.lock().unwrap();
///         let before = m.len();
///         m.retain(|_, e| e.0.expires_at > now);
///         Ok((before - m.len()) as u64)
///     }
/// }
/// ```
#[async_trait]
pub trait JwtBlacklist: Send + Sync + 'static {
    /// Records an issued refresh token. Idempotent: a second call with the
    /// same `jti` changes nothing (simplejwt's `get_or_create`).
    async fn record_outstanding(&self, token: &OutstandingToken) -> Result<(), StoreError>;

    /// Blacklists a token, recording it as outstanding first if it was not
    /// (tokens issued before the blacklist was switched on). Returns whether
    /// it was newly blacklisted.
    async fn blacklist(&self, token: &OutstandingToken) -> Result<bool, StoreError>;

    /// Whether the `jti` is blacklisted.
    async fn is_blacklisted(&self, jti: &str) -> Result<bool, StoreError>;

    /// Deletes outstanding tokens (and their blacklist entries) that expired
    /// at or before `now`, returning how many (simplejwt's
    /// `flushexpiredtokens` command). Expired tokens are refused by their
    /// `exp` anyway, so nothing is lost.
    async fn flush_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

#[async_trait]
impl<T: JwtBlacklist + ?Sized> JwtBlacklist for Arc<T> {
    async fn record_outstanding(&self, token: &OutstandingToken) -> Result<(), StoreError> {
        (**self).record_outstanding(token).await
    }
    async fn blacklist(&self, token: &OutstandingToken) -> Result<bool, StoreError> {
        (**self).blacklist(token).await
    }
    async fn is_blacklisted(&self, jti: &str) -> Result<bool, StoreError> {
        (**self).is_blacklisted(jti).await
    }
    async fn flush_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        (**self).flush_expired(now).await
    }
}

#[derive(Debug, Clone)]
struct Entry {
    token: OutstandingToken,
    blacklisted: bool,
}

/// An in-memory [`JwtBlacklist`]: for tests and single-process apps (it is
/// lost on restart and not shared between servers).
#[derive(Clone, Debug, Default)]
pub struct MemoryBlacklist {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

impl MemoryBlacklist {
    /// An empty blacklist.
    pub fn new() -> Self {
        Self::default()
    }

    /// The outstanding token with this `jti`, if recorded.
    pub fn outstanding(&self, jti: &str) -> Option<OutstandingToken> {
        self.lock().get(jti).map(|e| e.token.clone())
    }

    /// How many tokens are recorded (outstanding, blacklisted or not).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no token is recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl JwtBlacklist for MemoryBlacklist {
    async fn record_outstanding(&self, token: &OutstandingToken) -> Result<(), StoreError> {
        self.lock()
            .entry(token.jti.clone())
            .or_insert_with(|| Entry {
                token: token.clone(),
                blacklisted: false,
            });
        Ok(())
    }

    async fn blacklist(&self, token: &OutstandingToken) -> Result<bool, StoreError> {
        let mut g = self.lock();
        let e = g.entry(token.jti.clone()).or_insert_with(|| Entry {
            token: token.clone(),
            blacklisted: false,
        });
        Ok(!std::mem::replace(&mut e.blacklisted, true))
    }

    async fn is_blacklisted(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.lock().get(jti).is_some_and(|e| e.blacklisted))
    }

    async fn flush_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut g = self.lock();
        let before = g.len();
        g.retain(|_, e| e.token.expires_at > now);
        Ok((before - g.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn tok(jti: &str, expires_in: i64) -> OutstandingToken {
        let now = Utc::now();
        OutstandingToken {
            jti: jti.into(),
            user_id: Some(1),
            created_at: now,
            expires_at: now + Duration::seconds(expires_in),
        }
    }

    #[tokio::test]
    async fn blacklist_records_outstanding_and_is_idempotent() {
        let b = MemoryBlacklist::new();
        assert!(!b.is_blacklisted("a").await.unwrap());
        assert!(b.blacklist(&tok("a", 60)).await.unwrap());
        assert!(!b.blacklist(&tok("a", 60)).await.unwrap());
        assert!(b.is_blacklisted("a").await.unwrap());
        assert!(b.outstanding("a").is_some());
    }

    #[tokio::test]
    async fn record_outstanding_keeps_the_first_record() {
        let b = MemoryBlacklist::new();
        let first = tok("a", 60);
        b.record_outstanding(&first).await.unwrap();
        b.record_outstanding(&tok("a", 999)).await.unwrap();
        assert_eq!(b.outstanding("a").unwrap(), first);
        assert!(!b.is_blacklisted("a").await.unwrap());
    }

    #[tokio::test]
    async fn flush_expired_counts_and_removes() {
        let b = MemoryBlacklist::new();
        b.record_outstanding(&tok("old", -10)).await.unwrap();
        b.blacklist(&tok("old2", -1)).await.unwrap();
        b.record_outstanding(&tok("new", 60)).await.unwrap();
        assert_eq!(b.flush_expired(Utc::now()).await.unwrap(), 2);
        assert_eq!(b.len(), 1);
        assert!(b.outstanding("new").is_some());
    }
}
