//! Where clients, tokens and authorization codes are kept: the
//! [`OAuth2Store`] trait and [`MemoryOAuth2Store`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Client, OAuth2Token};
use crate::store::StoreError;

/// Where OAuth2 clients, access tokens, refresh tokens and authorization
/// codes are kept (django-oauth-toolkit's `Application`, `AccessToken`,
/// `RefreshToken` and `Grant` tables). Dyn-compatible: an
/// [`OAuth2`](super::OAuth2) holds an `Arc<dyn OAuth2Store>`.
///
/// Tokens and codes are stored under a keyed digest only (never their
/// text), client secrets as a keyed digest; the store never sees a
/// secret. A store error is answered with 500/503, never treated as "no
/// such token".
///
/// # Example
///
/// A complete implementation is [`MemoryOAuth2Store`]; any store passes the
/// same calls through:
///
/// ```
/// use portcullis::oauth2::{MemoryOAuth2Store, OAuth2Store};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryOAuth2Store::new();
/// assert!(store.clients().await.unwrap().is_empty());
/// assert!(store.client("nope").await.unwrap().is_none());
/// # });
/// ```
#[async_trait]
pub trait OAuth2Store: Send + Sync + 'static {
    /// Registers a client; a taken `client_id` is
    /// [`StoreError::Conflict`].
    async fn create_client(&self, client: &Client) -> Result<(), StoreError>;

    /// The client with this id.
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;

    /// Every client, ordered by `client_id`.
    async fn clients(&self) -> Result<Vec<Client>, StoreError>;

    /// Deletes a client and every token and code issued to it; whether it
    /// existed.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;

    /// Stores a token or code (its digest is the key).
    async fn insert_token(&self, token: &OAuth2Token) -> Result<(), StoreError>;

    /// The token or code with this digest, revoked or not.
    async fn token(&self, digest: &str) -> Result<Option<OAuth2Token>, StoreError>;

    /// Marks a token or code revoked (used) if it was not: `true` for the
    /// one caller that did it, `false` if it was already revoked or is
    /// unknown. Atomic: two concurrent calls never both get `true`, which
    /// makes codes single use and refresh rotation race-free.
    async fn consume_token(&self, digest: &str) -> Result<bool, StoreError>;

    /// Revokes every token and code of a family (one authorization: the
    /// code, and every access and refresh token descended from it);
    /// returns how many were newly revoked.
    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError>;

    /// Deletes tokens and codes that expired at or before `now`
    /// (django-oauth-toolkit's `cleartokens`); returns how many.
    async fn clear_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

#[async_trait]
impl<T: OAuth2Store + ?Sized> OAuth2Store for Arc<T> {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        (**self).create_client(client).await
    }
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        (**self).client(client_id).await
    }
    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        (**self).clients().await
    }
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        (**self).delete_client(client_id).await
    }
    async fn insert_token(&self, token: &OAuth2Token) -> Result<(), StoreError> {
        (**self).insert_token(token).await
    }
    async fn token(&self, digest: &str) -> Result<Option<OAuth2Token>, StoreError> {
        (**self).token(digest).await
    }
    async fn consume_token(&self, digest: &str) -> Result<bool, StoreError> {
        (**self).consume_token(digest).await
    }
    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        (**self).revoke_family(family).await
    }
    async fn clear_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        (**self).clear_expired(now).await
    }
}

#[derive(Default)]
struct Inner {
    clients: HashMap<String, Client>,
    tokens: HashMap<String, OAuth2Token>,
}

/// An in-memory [`OAuth2Store`]: for tests and single-process apps (lost
/// on restart, not shared between servers).
#[derive(Clone, Default)]
pub struct MemoryOAuth2Store {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for MemoryOAuth2Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryOAuth2Store").finish_non_exhaustive()
    }
}

impl MemoryOAuth2Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl OAuth2Store for MemoryOAuth2Store {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        let mut g = self.lock();
        if g.clients.contains_key(&client.client_id) {
            return Err(StoreError::Conflict(format!(
                "client {} already exists",
                client.client_id
            )));
        }
        g.clients.insert(client.client_id.clone(), client.clone());
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(self.lock().clients.get(client_id).cloned())
    }

    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        let mut all: Vec<Client> = self.lock().clients.values().cloned().collect();
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(all)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let mut g = self.lock();
        let existed = g.clients.remove(client_id).is_some();
        g.tokens.retain(|_, t| t.client_id != client_id);
        Ok(existed)
    }

    async fn insert_token(&self, token: &OAuth2Token) -> Result<(), StoreError> {
        let mut g = self.lock();
        if !g.clients.contains_key(&token.client_id) {
            return Err(StoreError::NotFound(format!(
                "client {} does not exist",
                token.client_id
            )));
        }
        if g.tokens.contains_key(&token.digest) {
            return Err(StoreError::Conflict("token digest already exists".into()));
        }
        g.tokens.insert(token.digest.clone(), token.clone());
        Ok(())
    }

    async fn token(&self, digest: &str) -> Result<Option<OAuth2Token>, StoreError> {
        Ok(self.lock().tokens.get(digest).cloned())
    }

    async fn consume_token(&self, digest: &str) -> Result<bool, StoreError> {
        Ok(match self.lock().tokens.get_mut(digest) {
            Some(t) if !t.revoked => {
                t.revoked = true;
                true
            }
            _ => false,
        })
    }

    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        let mut n = 0;
        for t in self.lock().tokens.values_mut() {
            if t.family == family && !t.revoked {
                t.revoked = true;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn clear_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut g = self.lock();
        let before = g.tokens.len();
        g.tokens
            .retain(|_, t| t.expires_at.is_none_or(|exp| exp > now));
        Ok((before - g.tokens.len()) as u64)
    }
}
