//! Where clients, tokens and authorization codes are kept: the
//! [`OAuth2Store`] trait and [`MemoryOAuth2Store`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Client, OAuth2Token, TokenKind};
use crate::cache::ttl::FastCache;
use crate::cache::{read_through, Invalidation, InvalidationBus, DEFAULT_CAPACITY};
use crate::store::{StoreError, UserStore};

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

    /// The token with this digest if a cache in front of the store holds
    /// it, shared with the cache and answered without waiting; `None`, the
    /// default, means "ask [`token`](OAuth2Store::token)". A store that
    /// answers here also returns `true` from
    /// [`remembers_tokens`](OAuth2Store::remembers_tokens).
    fn token_cached(&self, digest: &str) -> Option<Arc<OAuth2Token>> {
        let _ = digest;
        None
    }

    /// Whether a cache in front of the store remembers the tokens it reads
    /// ([`CachedOAuth2Store`]); `false`, the default, for a store that
    /// reads every time. [`OAuth2Auth`](super::OAuth2Auth) reads through
    /// such a cache rather than joining the token with its user
    /// ([`OAuth2UserStore`]), so the cache fills.
    fn remembers_tokens(&self) -> bool {
        false
    }

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
    fn token_cached(&self, digest: &str) -> Option<Arc<OAuth2Token>> {
        (**self).token_cached(digest)
    }
    fn remembers_tokens(&self) -> bool {
        (**self).remembers_tokens()
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

/// A store that keeps the users and the OAuth2 tokens side by side, and so
/// can read a token together with its user in one query (DRF's
/// `select_related("user")`), as [`TokenStore::token_with_user`] does for
/// DRF's tokens. The SQL stores of `portcullis-store` implement it with a
/// join; [`OAuth2Auth::with_joined_reads`](super::OAuth2Auth::with_joined_reads)
/// uses it.
///
/// [`TokenStore::token_with_user`]: crate::store::TokenStore::token_with_user
#[async_trait]
pub trait OAuth2UserStore: UserStore {
    /// The token or code with this digest (as [`OAuth2Store::token`]
    /// finds it, revoked or not), with its user when it has one and the
    /// user's row exists.
    async fn oauth2_token_with_user(
        &self,
        digest: &str,
    ) -> Result<Option<(OAuth2Token, Option<Self::User>)>, StoreError>;
}

/// An [`OAuth2Store`] that remembers the access tokens it has read for a
/// short TTL, so that a client sending one bearer token with every
/// request does not cost a database read each time.
///
/// Only unrevoked access tokens are remembered; codes and refresh tokens,
/// which are spent, always reach the store. Expiry is checked by
/// [`OAuth2`](super::OAuth2) on every use, cached or not. A revocation,
/// family revocation or client deletion through this wrapper forgets the
/// entries it touches at once; one made by another process is seen when
/// the entry expires, or at once when both are on one
/// [`InvalidationBus`] ([`with_bus`](Self::with_bus)). Misses and errors
/// are never remembered, so an unknown token always reaches the store and
/// an outage fails closed.
///
/// ```
/// use std::time::Duration;
/// use portcullis::oauth2::{CachedOAuth2Store, MemoryOAuth2Store, OAuth2Store};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = CachedOAuth2Store::new(MemoryOAuth2Store::new(), Duration::from_millis(500));
/// assert!(store.token("v1$unknown").await.unwrap().is_none());
/// # });
/// ```
pub struct CachedOAuth2Store<S> {
    inner: S,
    /// Shared with the listener on the bus, if any.
    cache: Arc<TokenCache>,
    /// Whether the TTL keeps anything at all.
    remembers: bool,
    /// Where revocations are told to the other servers, if anywhere.
    bus: Option<InvalidationBus>,
}

struct TokenCache {
    /// Keyed by the token's keyed digest: foldhash suffices.
    tokens: FastCache<String, Arc<OAuth2Token>>,
    /// Bumped by every write: a read that overlaps one does not fill the
    /// cache.
    generation: AtomicU64,
}

impl TokenCache {
    /// Drops what a message from another server names.
    fn apply(&self, what: &Invalidation) {
        match what {
            Invalidation::OAuth2Token(digest) => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                self.tokens.invalidate(digest);
            }
            Invalidation::OAuth2Tokens | Invalidation::All => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                self.tokens.invalidate_all();
            }
            _ => {}
        }
    }
}

impl<S> fmt::Debug for CachedOAuth2Store<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedOAuth2Store").finish_non_exhaustive()
    }
}

impl<S: OAuth2Store> CachedOAuth2Store<S> {
    /// Remembers access tokens read from `inner` for `ttl` (at most
    /// 100,000 of them).
    pub fn new(inner: S, ttl: Duration) -> Self {
        CachedOAuth2Store {
            inner,
            cache: Arc::new(TokenCache {
                tokens: FastCache::new(ttl, DEFAULT_CAPACITY),
                generation: AtomicU64::new(0),
            }),
            remembers: !ttl.is_zero(),
            bus: None,
        }
    }

    /// Links the cache to the other servers' through `bus`: revocations
    /// and client deletions through this store are published, and
    /// messages delivered on the bus drop the tokens they name here (see
    /// [`InvalidationBus`]).
    pub fn with_bus(mut self, bus: &InvalidationBus) -> Self {
        let cache = Arc::downgrade(&self.cache);
        bus.listen(move |what| {
            if let Some(c) = cache.upgrade() {
                c.apply(what);
            }
        });
        self.bus = Some(bus.clone());
        self
    }

    /// Marks a write: reads in flight will not fill the cache.
    fn begin_write(&self) {
        self.cache.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Tells the other servers, if there is a bus.
    fn publish(&self, what: impl FnOnce() -> Invalidation) {
        if let Some(bus) = &self.bus {
            bus.publish(what());
        }
    }
}

#[async_trait]
impl<S: OAuth2Store> OAuth2Store for CachedOAuth2Store<S> {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        self.inner.create_client(client).await
    }
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.inner.client(client_id).await
    }
    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        self.inner.clients().await
    }
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let r = self.inner.delete_client(client_id).await;
        self.begin_write();
        self.cache
            .tokens
            .invalidate_if(|t| t.client_id == client_id);
        self.publish(|| Invalidation::OAuth2Tokens);
        r
    }
    async fn insert_token(&self, token: &OAuth2Token) -> Result<(), StoreError> {
        let r = self.inner.insert_token(token).await;
        self.begin_write();
        self.cache.tokens.invalidate(&token.digest);
        r
    }
    async fn token(&self, digest: &str) -> Result<Option<OAuth2Token>, StoreError> {
        let found = read_through(
            // A TTL of zero keeps nothing: every read goes to the store.
            self.remembers.then_some(&self.cache.generation),
            self.remembers.then_some(&self.cache.tokens),
            digest,
            str::to_owned,
            || async { Ok(self.inner.token(digest).await?.map(Arc::new)) },
            |t| t.kind == TokenKind::Access && !t.revoked,
        )
        .await?;
        Ok(found.map(Arc::unwrap_or_clone))
    }
    fn token_cached(&self, digest: &str) -> Option<Arc<OAuth2Token>> {
        self.remembers.then(|| self.cache.tokens.get(digest))?
    }
    fn remembers_tokens(&self) -> bool {
        self.remembers
    }
    async fn consume_token(&self, digest: &str) -> Result<bool, StoreError> {
        let r = self.inner.consume_token(digest).await;
        self.begin_write();
        self.cache.tokens.invalidate(digest);
        self.publish(|| Invalidation::OAuth2Token(digest.to_owned()));
        r
    }
    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        let r = self.inner.revoke_family(family).await;
        self.begin_write();
        self.cache.tokens.invalidate_if(|t| t.family == family);
        self.publish(|| Invalidation::OAuth2Tokens);
        r
    }
    async fn clear_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        // Every use checks expiry, cached or not.
        self.inner.clear_expired(now).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(digest: &str, kind: TokenKind, family: &str) -> OAuth2Token {
        OAuth2Token {
            digest: digest.into(),
            kind,
            client_id: "app".into(),
            user_id: Some(1),
            scopes: vec!["read".into()],
            family: family.into(),
            revoked: false,
            expires_at: None,
            redirect_uri: None,
            code_challenge: None,
            code_challenge_method: None,
            created: Utc::now(),
        }
    }

    async fn with_client() -> MemoryOAuth2Store {
        let store = MemoryOAuth2Store::new();
        store
            .create_client(&Client {
                client_id: "app".into(),
                name: "App".into(),
                public: true,
                secret_digest: None,
                redirect_uris: Vec::new(),
                grant_types: Vec::new(),
                scopes: vec!["read".into()],
                skip_authorization: false,
                created: Utc::now(),
            })
            .await
            .unwrap();
        store
    }

    async fn revoked(store: &impl OAuth2Store, digest: &str) -> Option<bool> {
        store.token(digest).await.unwrap().map(|t| t.revoked)
    }

    #[tokio::test]
    async fn access_tokens_are_remembered_until_a_write_through_the_cache() {
        let inner = with_client().await;
        let cached = CachedOAuth2Store::new(inner.clone(), Duration::from_secs(60));
        for (d, f) in [("a1", "f1"), ("a2", "f2"), ("a3", "f3")] {
            cached
                .insert_token(&row(d, TokenKind::Access, f))
                .await
                .unwrap();
            assert_eq!(revoked(&cached, d).await, Some(false));
        }
        // Another process revokes behind the cache's back: still cached.
        assert!(inner.consume_token("a1").await.unwrap());
        assert_eq!(revoked(&cached, "a1").await, Some(false));
        assert_eq!(revoked(&inner, "a1").await, Some(true));
        // Writes through the cache are seen at once.
        assert!(cached.consume_token("a2").await.unwrap());
        assert_eq!(revoked(&cached, "a2").await, Some(true));
        assert_eq!(cached.revoke_family("f3").await.unwrap(), 1);
        assert_eq!(revoked(&cached, "a3").await, Some(true));
        // Deleting the client deletes its tokens: no longer found.
        cached.delete_client("app").await.unwrap();
        assert_eq!(revoked(&cached, "a1").await, None);
    }

    #[tokio::test]
    async fn spent_kinds_and_misses_are_never_remembered() {
        let inner = with_client().await;
        let cached = CachedOAuth2Store::new(inner.clone(), Duration::from_secs(60));
        assert_eq!(revoked(&cached, "later").await, None);
        inner
            .insert_token(&row("later", TokenKind::Access, "f"))
            .await
            .unwrap();
        assert_eq!(revoked(&cached, "later").await, Some(false));
        for (d, kind) in [("r", TokenKind::Refresh), ("c", TokenKind::Code)] {
            inner.insert_token(&row(d, kind, "g")).await.unwrap();
            assert_eq!(revoked(&cached, d).await, Some(false));
            assert!(inner.consume_token(d).await.unwrap());
            assert_eq!(revoked(&cached, d).await, Some(true), "{d}");
        }
    }

    #[tokio::test]
    async fn revocations_are_published_and_arrivals_dropped() {
        use std::sync::Mutex;
        let inner = with_client().await;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let outbox = sent.clone();
        let bus = InvalidationBus::new(move |m| outbox.lock().unwrap().push(m));
        let cached = CachedOAuth2Store::new(inner.clone(), Duration::from_secs(60)).with_bus(&bus);
        for (d, f) in [("a1", "f1"), ("a2", "f2")] {
            cached
                .insert_token(&row(d, TokenKind::Access, f))
                .await
                .unwrap();
            assert_eq!(revoked(&cached, d).await, Some(false));
        }
        assert!(cached.consume_token("a1").await.unwrap());
        cached.revoke_family("f9").await.unwrap();
        assert_eq!(
            *sent.lock().unwrap(),
            [
                Invalidation::OAuth2Token("a1".into()),
                Invalidation::OAuth2Tokens
            ]
        );
        // Another server revokes a2 and says so: dropped here at once.
        assert!(inner.consume_token("a2").await.unwrap());
        assert_eq!(revoked(&cached, "a2").await, Some(false), "still cached");
        bus.deliver(&Invalidation::OAuth2Token("a2".into()));
        assert_eq!(revoked(&cached, "a2").await, Some(true));
        // User messages are not this cache's.
        inner
            .insert_token(&row("a3", TokenKind::Access, "f3"))
            .await
            .unwrap();
        assert_eq!(revoked(&cached, "a3").await, Some(false));
        inner.revoke_family("f3").await.unwrap();
        bus.deliver(&Invalidation::User(1));
        assert_eq!(revoked(&cached, "a3").await, Some(false));
        bus.deliver(&Invalidation::OAuth2Tokens);
        assert_eq!(revoked(&cached, "a3").await, Some(true));
    }

    #[tokio::test]
    async fn a_zero_ttl_keeps_nothing_but_still_publishes() {
        let inner = with_client().await;
        let sent = Arc::new(std::sync::Mutex::new(0));
        let count = sent.clone();
        let bus = InvalidationBus::new(move |_| *count.lock().unwrap() += 1);
        let cached = CachedOAuth2Store::new(inner.clone(), Duration::ZERO).with_bus(&bus);
        cached
            .insert_token(&row("a", TokenKind::Access, "f"))
            .await
            .unwrap();
        assert_eq!(revoked(&cached, "a").await, Some(false));
        assert!(inner.consume_token("a").await.unwrap());
        assert_eq!(revoked(&cached, "a").await, Some(true));
        assert!(cached.token_cached("a").is_none());
        cached.delete_client("app").await.unwrap();
        assert_eq!(*sent.lock().unwrap(), 1);
    }
}
