//! Short-lived caches in front of a store ([`CachedStore`]) and in front of
//! the password hasher ([`CredentialCache`]), so that an authenticated
//! request costs a hash-map look-up instead of a database round trip or a
//! PBKDF2 check.
//!
//! ## What is cached, and for how long
//!
//! [`CachedStore`] wraps any store and implements the same traits. Reads
//! (`user_by_id`, `user_by_username`, `token_by_digest`, `load_session`)
//! are kept for a short time to live (TTL, [`DEFAULT_TTL`] = 500 ms); a
//! miss, an unknown key or an error is never cached, so a flood of bad
//! credentials still reaches the store and a store outage still fails
//! closed. Every write made *through* the wrapper (`set_active`,
//! `delete_user`, `set_password_hash`, `touch_last_login`, `insert_token`,
//! `delete_token`, `save_session`, `delete_session`, `delete_user_sessions`)
//! invalidates the entries it affects at once, and look-ups that were in
//! flight while it happened do not put their (possibly stale) answers back.
//!
//! A cached user is handed out as a copy (`S::User` is cloned). To share
//! it instead, wrap the store in [`SharedUsers`](crate::store::SharedUsers)
//! first: `CachedStore::new(SharedUsers::new(store), ttl)` caches
//! `Arc<User>`s, and a hit costs a reference count.
//!
//! A write made by *another* process (the `portcullis deactivate`,
//! `changepassword`, `deleteuser`, `create-token -r` commands, or a second
//! server) is seen once the entry's TTL runs out. The TTL therefore bounds
//! how long a revoked credential keeps working on this server; keep it
//! below the one second the reference app promises.
//!
//! ## Several servers
//!
//! Each server has its own cache, so without help a write on server A
//! reaches server B after at most the TTL. An [`InvalidationBus`] links
//! them ([`CachedStore::with_bus`]): every write through the wrapper
//! publishes what it made stale ([`Invalidation`]: a user, with the
//! user's token and sessions; one session), and every message that arrives
//! drops that here. `portcullis_store::RedisStore::invalidation_bus`
//! carries it over Redis pub/sub, and a command run outside the servers
//! publishes with `RedisStore::publish_invalidation`. That brings the
//! window down to the pub/sub latency; the TTL remains the backstop for a
//! lost message or a dropped subscription (a bus that subscribes again
//! starts by dropping everything).
//!
//! ## The credential cache
//!
//! [`CredentialCache`] remembers that a username and password were verified
//! against a given password hash, so repeated HTTP Basic requests skip the
//! deliberately slow hash. It never holds the password: entries are keyed by
//! an HMAC-SHA256, under a subkey of the secret key (purpose
//! `basic-cache-v1`), of the username and the password, and each holds the
//! password hash they verified against. An entry answers only while the
//! hash the caller passes, the user's *current* one, is that hash, so a
//! password change (here or on another server) makes every old entry
//! useless, and since the caller reads the hash from the user row (through a
//! [`CachedStore`] at most its TTL old), the cache can live longer than the
//! store cache without stretching the one-second promise. The caller still
//! refuses inactive users on every hit. An entry in steady use is renewed
//! in the last quarter of its TTL by a slow-hash check in the background,
//! so it lives as long as the credentials keep coming, each renewal backed
//! by a fresh verification.
//!
//! The trade-off: while an entry lives, someone who can read the server's
//! memory (and so the secret key) can test password guesses for that user
//! at HMAC speed rather than PBKDF2 speed; a process that can read its own
//! memory has lost anyway, but turn the cache off
//! ([`CredentialCache::disabled`]) where that matters more than Basic's
//! throughput.
//!
//! ```
//! use std::time::Duration;
//! use portcullis::cache::CachedStore;
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin, UserStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let memory = MemoryStore::new();
//! let store = CachedStore::new(memory.clone(), Duration::from_millis(500));
//! let ada = store.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! store.user_by_id(ada.id).await.unwrap();
//! store.user_by_id(ada.id).await.unwrap(); // answered from the cache
//! assert_eq!(memory.lookups(), 1);
//! store.set_active(ada.id, false).await.unwrap(); // invalidates at once
//! assert!(!store.user_by_id(ada.id).await.unwrap().unwrap().is_active);
//! # });
//! ```

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
mod bus;
pub(crate) mod ttl;

pub use bus::{Invalidation, InvalidationBus};
use ttl::{FastCache, TtlCache as Cache};

use crate::identity::{AuthUser, User};
use crate::secret::{SecretKey, Subkey};
use crate::store::{
    digest_mac, DigestMac, NewUser, Ping, SessionRecord, SessionStore, StoreError, TokenRecord,
    TokenStore, UserAdmin, UserStore,
};

/// The store cache's time to live by default: half the one-second bound
/// the reference app promises for writes made by other processes.
pub const DEFAULT_TTL: Duration = Duration::from_millis(500);
/// Entries each cache of a [`CachedStore`] holds at most, by default.
pub const DEFAULT_CAPACITY: u64 = 100_000;
/// The credential cache's time to live by default (see the module docs for
/// why it may exceed the store cache's).
pub const DEFAULT_CREDENTIAL_TTL: Duration = Duration::from_secs(60);
/// The purpose label of the credential cache's HMAC subkey.
pub const CREDENTIAL_PURPOSE: &str = "basic-cache-v1";

struct Caches<U> {
    ttl: Duration,
    /// Ids, token and session digests are hashed with foldhash: no client
    /// chooses them. Usernames keep SipHash.
    users: FastCache<i64, U>,
    names: Cache<String, U>,
    /// Keyed by the raw bytes of their digests ([`digest_mac`]), so that
    /// the at-once path looks up the HMAC it made without writing it out
    /// in hex. Shared like the sessions: a request answered at once reads
    /// it in place.
    tokens: FastCache<DigestMac, Arc<TokenRecord>>,
    /// Keyed like the tokens; shared, so that a request answered at once
    /// reads it in place (a session's `data` is a JSON map: costly to
    /// copy).
    sessions: FastCache<DigestMac, Arc<SessionRecord>>,
    /// Bumped by every write; a look-up only fills the cache if no write
    /// happened while it was in flight.
    generation: AtomicU64,
}

impl<U: AuthUser> Caches<U> {
    /// Drops what `what` names, as a write does: look-ups in flight will
    /// not fill the cache.
    fn apply(&self, what: &Invalidation) {
        let bump = || self.generation.fetch_add(1, Ordering::SeqCst);
        match what {
            Invalidation::User(id) => {
                bump();
                let id = *id;
                self.users.invalidate(&id);
                self.names.invalidate_if(move |u: &U| u.id() == id);
                self.tokens
                    .invalidate_if(move |t: &Arc<TokenRecord>| t.user_id == id);
                self.sessions
                    .invalidate_if(move |s: &Arc<SessionRecord>| s.user_id == id);
            }
            Invalidation::Session(digest) => {
                bump();
                match digest_mac(digest) {
                    Some(mac) => self.sessions.invalidate(&mac),
                    None => self.sessions.invalidate_all(),
                }
            }
            // Not this cache's: look-ups in flight may still fill it.
            Invalidation::OAuth2Token(_) | Invalidation::OAuth2Tokens => {}
            Invalidation::All => {
                bump();
                self.users.invalidate_all();
                self.names.invalidate_all();
                self.tokens.invalidate_all();
                self.sessions.invalidate_all();
            }
        }
    }
}

/// A store with short-lived read caches; see the [module docs](self).
///
/// A TTL of zero turns caching off: every call goes to the store.
pub struct CachedStore<S: UserStore> {
    inner: S,
    caches: Option<Arc<Caches<S::User>>>,
    /// Where writes are told to the other servers, if anywhere.
    bus: Option<InvalidationBus>,
}

impl<S: UserStore + Clone> Clone for CachedStore<S> {
    fn clone(&self) -> Self {
        CachedStore {
            inner: self.inner.clone(),
            caches: self.caches.clone(),
            bus: self.bus.clone(),
        }
    }
}

impl<S: UserStore> fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("ttl", &self.ttl())
            .finish_non_exhaustive()
    }
}

impl<S: UserStore> CachedStore<S> {
    /// `inner` with caches of [`DEFAULT_CAPACITY`] entries each, kept for
    /// `ttl` (zero: no caching).
    pub fn new(inner: S, ttl: Duration) -> Self {
        Self::with_capacity(inner, ttl, DEFAULT_CAPACITY)
    }

    /// `inner` with caches of at most `capacity` entries each.
    pub fn with_capacity(inner: S, ttl: Duration, capacity: u64) -> Self {
        let caches = (!ttl.is_zero() && capacity > 0).then(|| {
            Arc::new(Caches {
                ttl,
                users: FastCache::new(ttl, capacity),
                names: Cache::new(ttl, capacity),
                tokens: FastCache::new(ttl, capacity),
                sessions: FastCache::new(ttl, capacity),
                generation: AtomicU64::new(0),
            })
        });
        CachedStore {
            inner,
            caches,
            bus: None,
        }
    }

    /// Links the caches to the other servers' through `bus`: every write
    /// through this store publishes what it made stale, and every message
    /// delivered on the bus drops what it names here (see
    /// [`InvalidationBus`]). With the caches off, writes are still
    /// published, for the servers that cache.
    pub fn with_bus(mut self, bus: &InvalidationBus) -> Self {
        if let Some(c) = &self.caches {
            let caches = Arc::downgrade(c);
            bus.listen(move |what| {
                if let Some(c) = caches.upgrade() {
                    c.apply(what);
                }
            });
        }
        self.bus = Some(bus.clone());
        self
    }

    /// Tells the other servers, if there is a bus.
    fn publish(&self, what: impl FnOnce() -> Invalidation) {
        if let Some(bus) = &self.bus {
            bus.publish(what());
        }
    }

    /// The store inside.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The time to live; zero when caching is off.
    pub fn ttl(&self) -> Duration {
        self.caches.as_ref().map_or(Duration::ZERO, |c| c.ttl)
    }

    /// Drops everything cached about a user: the user, the user's token and
    /// sessions. Call it when another server reports a write (see the
    /// module docs).
    pub fn invalidate_user(&self, id: i64) {
        if let Some(c) = self.caches.as_deref() {
            c.apply(&Invalidation::User(id));
        }
    }

    /// Drops every cached entry.
    pub fn invalidate_all(&self) {
        if let Some(c) = self.caches.as_deref() {
            c.apply(&Invalidation::All);
        }
    }

    /// Marks a write: look-ups in flight will not fill the cache.
    fn begin_write(&self) -> Option<&Caches<S::User>> {
        let c = self.caches.as_deref()?;
        c.generation.fetch_add(1, Ordering::SeqCst);
        Some(c)
    }

    fn invalidate_user_row(&self, id: i64) {
        if let Some(c) = self.begin_write() {
            c.users.invalidate(&id);
            c.names.invalidate_if(move |u: &S::User| u.id() == id);
        }
    }
}

/// A cached read: the cache, else `fetch`, remembered unless a write
/// happened meanwhile. Misses and errors are not remembered.
///
/// `key` is borrowed for the look-up; `owned` makes the key to store, only
/// on a miss; `keep` says which values may be remembered.
pub(crate) async fn read_through<K, Q, V, H, F, Fut>(
    generation: Option<&AtomicU64>,
    cache: Option<&Cache<K, V, H>>,
    key: &Q,
    owned: impl FnOnce(&Q) -> K,
    fetch: F,
    keep: impl FnOnce(&V) -> bool,
) -> Result<Option<V>, StoreError>
where
    K: Hash + Eq + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    V: Clone,
    H: std::hash::BuildHasher + Default,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Option<V>, StoreError>>,
{
    let (Some(generation), Some(cache)) = (generation, cache) else {
        return fetch().await;
    };
    if let Some(hit) = cache.get(key) {
        return Ok(Some(hit));
    }
    let before = generation.load(Ordering::SeqCst);
    let found = fetch().await?;
    if let Some(v) = found.as_ref().filter(|v| keep(v)) {
        fill_unless_written(
            generation,
            before,
            || cache.insert(owned(key), v.clone()),
            || cache.invalidate(key),
        );
    }
    Ok(found)
}

/// Remembers what a read found (`insert`) unless a write happened since
/// the read began (`generation` is no longer `before`); undoes it
/// (`invalidate`) when a write began in between.
fn fill_unless_written(
    generation: &AtomicU64,
    before: u64,
    insert: impl FnOnce(),
    invalidate: impl FnOnce(),
) {
    if generation.load(Ordering::SeqCst) == before {
        insert();
        // A write that started between the check and the insert has
        // bumped the generation by now, or will invalidate after us.
        if generation.load(Ordering::SeqCst) != before {
            invalidate();
        }
    }
}

/// [`read_through`] for the tokens and sessions: the cache shares its
/// records (`Arc`), so that the at-once path can read them in place (the
/// caller here gets its own copy), and is keyed by the raw bytes of the
/// digest ([`digest_mac`]). Only a record whose own digest is the one
/// asked for is remembered, so a hit by those bytes is exact; a digest in
/// another form is never cached.
async fn read_through_shared<V, F, Fut>(
    generation: Option<&AtomicU64>,
    cache: Option<&FastCache<DigestMac, Arc<V>>>,
    digest: &str,
    digest_of: impl FnOnce(&V) -> &str,
    fetch: F,
) -> Result<Option<V>, StoreError>
where
    V: Clone,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Option<V>, StoreError>>,
{
    // With the caches off, the digest is not even parsed.
    let (Some(generation), Some(cache)) = (generation, cache) else {
        return fetch().await;
    };
    let Some(mac) = digest_mac(digest) else {
        return fetch().await;
    };
    if let Some(hit) = cache.get(&mac) {
        return Ok(Some(Arc::unwrap_or_clone(hit)));
    }
    let before = generation.load(Ordering::SeqCst);
    let found = fetch().await?;
    if let Some(record) = found.as_ref().filter(|r| digest_of(r) == digest) {
        let shared = Arc::new(record.clone());
        fill_unless_written(
            generation,
            before,
            || cache.insert(mac, shared),
            || cache.invalidate(&mac),
        );
    }
    Ok(found)
}

impl<S: UserStore> CachedStore<S> {
    fn generation(&self) -> Option<&AtomicU64> {
        self.caches.as_deref().map(|c| &c.generation)
    }

    /// A record (a token or a session) with its user, for the joined reads:
    /// from the caches when the record is there (the user read through its
    /// own cache), else one joined read from the store that fills both
    /// caches, unless a write happened meanwhile.
    async fn with_user<V, F, Fut>(
        &self,
        records: impl Fn(&Caches<S::User>) -> &FastCache<DigestMac, Arc<V>>,
        digest: &str,
        digest_of: impl Fn(&V) -> &str,
        user_id: impl Fn(&V) -> i64,
        fetch: F,
    ) -> Result<Option<(V, Option<S::User>)>, StoreError>
    where
        V: Clone,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<(V, Option<S::User>)>, StoreError>>,
    {
        // Keyed as in `read_through_shared`.
        // With the caches off, the digest is not even parsed.
        let Some(c) = self.caches.as_deref() else {
            return fetch().await;
        };
        let Some(mac) = digest_mac(digest) else {
            return fetch().await;
        };
        if let Some(hit) = records(c).get(&mac) {
            let user = self.user_by_id(user_id(&hit)).await?;
            return Ok(Some((Arc::unwrap_or_clone(hit), user)));
        }
        let before = c.generation.load(Ordering::SeqCst);
        let found = fetch().await?;
        if let Some((record, user)) = found.as_ref().filter(|(r, _)| digest_of(r) == digest) {
            fill_unless_written(
                &c.generation,
                before,
                || {
                    records(c).insert(mac, Arc::new(record.clone()));
                    if let Some(u) = user {
                        c.users.insert(u.id(), u.clone());
                    }
                },
                || {
                    records(c).invalidate(&mac);
                    if let Some(u) = user {
                        c.users.invalidate(&u.id());
                    }
                },
            );
        }
        Ok(found)
    }
}

#[async_trait]
impl<S: UserStore> UserStore for CachedStore<S> {
    type User = S::User;

    async fn user_by_id(&self, id: i64) -> Result<Option<S::User>, StoreError> {
        let c = self.caches.as_deref();
        read_through(
            self.generation(),
            c.map(|c| &c.users),
            &id,
            |id| *id,
            || self.inner.user_by_id(id),
            |_| true,
        )
        .await
    }

    fn user_by_id_cached(&self, id: i64) -> Option<S::User> {
        self.caches.as_deref()?.users.get(&id)
    }

    fn remembers_reads(&self) -> bool {
        self.caches.is_some()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<S::User>, StoreError> {
        let c = self.caches.as_deref();
        let found = read_through(
            self.generation(),
            c.map(|c| &c.names),
            username,
            str::to_owned,
            || self.inner.user_by_username(username),
            |_| true,
        )
        .await?;
        // Usernames are case-sensitive; never let a cache blur that.
        Ok(found.filter(|u| u.username() == username))
    }

    fn user_by_username_cached(&self, username: &str) -> Option<S::User> {
        let user = self.caches.as_deref()?.names.get(username)?;
        (user.username() == username).then_some(user)
    }

    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        let r = self.inner.set_password_hash(id, hash).await;
        self.invalidate_user_row(id);
        self.publish(|| Invalidation::User(id));
        r
    }

    async fn touch_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        let r = self.inner.touch_last_login(id, at).await;
        self.invalidate_user_row(id);
        r
    }

    async fn create_remote_user(&self, username: &str) -> Result<S::User, StoreError> {
        let r = self.inner.create_remote_user(username).await;
        if let Ok(u) = &r {
            self.invalidate_user_row(u.id());
        }
        r
    }
}

#[async_trait]
impl<S: UserAdmin> UserAdmin for CachedStore<S> {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let r = self.inner.create_user(user).await;
        if let Ok(u) = &r {
            self.invalidate_user_row(u.id);
        }
        r
    }

    async fn set_active(&self, id: i64, active: bool) -> Result<(), StoreError> {
        let r = self.inner.set_active(id, active).await;
        self.invalidate_user(id);
        self.publish(|| Invalidation::User(id));
        r
    }

    async fn delete_user(&self, id: i64) -> Result<(), StoreError> {
        let r = self.inner.delete_user(id).await;
        self.invalidate_user(id);
        self.publish(|| Invalidation::User(id));
        r
    }
}

#[async_trait]
impl<S: UserStore + TokenStore> TokenStore for CachedStore<S> {
    async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        let c = self.caches.as_deref();
        read_through_shared(
            self.generation(),
            c.map(|c| &c.tokens),
            digest,
            |t| &t.digest,
            || self.inner.token_by_digest(digest),
        )
        .await
    }

    fn token_by_digest_cached(&self, mac: &DigestMac) -> Option<Arc<TokenRecord>> {
        self.caches.as_deref()?.tokens.get(mac)
    }

    async fn token_with_user(
        &self,
        digest: &str,
    ) -> Result<Option<(TokenRecord, Option<<Self as UserStore>::User>)>, StoreError> {
        self.with_user(
            |c| &c.tokens,
            digest,
            |t| &t.digest,
            |t| t.user_id,
            || self.inner.token_with_user(digest),
        )
        .await
    }

    async fn token_for_user(&self, user_id: i64) -> Result<Option<TokenRecord>, StoreError> {
        // Only `/auth-token/` and `create-token` ask; not worth caching.
        self.inner.token_for_user(user_id).await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let r = self.inner.insert_token(token).await;
        self.drop_tokens_of(token.user_id);
        self.publish(|| Invalidation::User(token.user_id));
        r
    }

    async fn delete_token(&self, user_id: i64) -> Result<bool, StoreError> {
        let r = self.inner.delete_token(user_id).await;
        self.drop_tokens_of(user_id);
        self.publish(|| Invalidation::User(user_id));
        r
    }
}

impl<S: UserStore> CachedStore<S> {
    fn drop_tokens_of(&self, user_id: i64) {
        if let Some(c) = self.begin_write() {
            c.tokens
                .invalidate_if(move |t: &Arc<TokenRecord>| t.user_id == user_id);
        }
    }
}

#[async_trait]
impl<S: UserStore + SessionStore> SessionStore for CachedStore<S> {
    async fn load_session(&self, key_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        let c = self.caches.as_deref();
        let found = read_through_shared(
            self.generation(),
            c.map(|c| &c.sessions),
            key_digest,
            |s| &s.key_digest,
            || self.inner.load_session(key_digest),
        )
        .await?;
        // A cached session may have expired since it was read.
        Ok(found.filter(|s| s.expires > Utc::now()))
    }

    async fn session_with_user(
        &self,
        key_digest: &str,
    ) -> Result<Option<(SessionRecord, Option<<Self as UserStore>::User>)>, StoreError> {
        let found = self
            .with_user(
                |c| &c.sessions,
                key_digest,
                |s| &s.key_digest,
                |s| s.user_id,
                || self.inner.session_with_user(key_digest),
            )
            .await?;
        // A cached session may have expired since it was read.
        Ok(found.filter(|(s, _)| s.expires > Utc::now()))
    }

    fn load_session_cached(&self, mac: &DigestMac) -> Option<Arc<SessionRecord>> {
        let found = self.caches.as_deref()?.sessions.get(mac)?;
        // Expired: `load_session` answers (no session).
        (found.expires > Utc::now()).then_some(found)
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let r = self.inner.save_session(session).await;
        if let Some(c) = self.begin_write() {
            if let Some(mac) = digest_mac(&session.key_digest) {
                c.sessions.invalidate(&mac);
            }
        }
        self.publish(|| Invalidation::Session(session.key_digest.clone()));
        r
    }

    async fn delete_session(&self, key_digest: &str) -> Result<(), StoreError> {
        let r = self.inner.delete_session(key_digest).await;
        if let Some(c) = self.begin_write() {
            if let Some(mac) = digest_mac(key_digest) {
                c.sessions.invalidate(&mac);
            }
        }
        self.publish(|| Invalidation::Session(key_digest.to_owned()));
        r
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let r = self.inner.delete_user_sessions(user_id, keep).await;
        if let Some(c) = self.begin_write() {
            let keep = keep.map(str::to_owned);
            c.sessions.invalidate_if(move |s: &Arc<SessionRecord>| {
                s.user_id == user_id && keep.as_deref() != Some(s.key_digest.as_str())
            });
        }
        // Others drop all of the user's sessions: re-reading the one kept
        // costs less than a message naming every other.
        self.publish(|| Invalidation::User(user_id));
        r
    }

    async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
        // Cached sessions check their own expiry on every hit.
        self.inner.purge_expired_sessions().await
    }
}

#[async_trait]
impl<S: UserStore + Ping> Ping for CachedStore<S> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

/// Remembers verified Basic credentials by a keyed hash, never the
/// password; see the [module docs](self).
///
/// How a password backend uses it: look the user up, then
/// [`check`](Self::check) with the user's current password hash; on a hit,
/// skip the slow verification (still refusing inactive users); on a miss,
/// verify, and after a successful verification [`remember`](Self::remember)
/// with the hash that is stored now (after any upgrade).
///
/// [`PasswordBackend`](crate::PasswordBackend) also renews entries in use:
/// the first hit in the last quarter of an entry's TTL is answered at once
/// and has the credentials verified again on the hashing threads, so an
/// entry in steady use never expires under load and no request waits for
/// the slow hash. Every entry is still backed by a verification at most
/// one TTL old.
#[derive(Clone)]
pub struct CredentialCache {
    inner: Option<Arc<CredentialInner>>,
}

struct CredentialInner {
    /// HMAC-SHA256 keyed with the `basic-cache-v1` subkey, ready to clone.
    mac: Subkey,
    ttl: Duration,
    /// Keyed hash -> what was verified when.
    /// Keyed by an HMAC: foldhash suffices (see [`FastCache`]).
    entries: FastCache<[u8; 32], Arc<Verified>>,
    /// Verifications under way, by keyed hash: concurrent requests with the
    /// same credentials wait for one check instead of each running it.
    in_flight: std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<InFlight>>>,
}

/// A remembered verification.
struct Verified {
    /// To forget a user's entries.
    username: Arc<str>,
    /// The password hash the credentials verified against: the entry
    /// answers only while the user's hash is still this one.
    password_hash: Box<str>,
    at: std::time::Instant,
    /// Whether a request has taken on re-verifying it already.
    refreshing: std::sync::atomic::AtomicBool,
}

/// What [`CredentialCache::look_up`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Remembered {
    /// Not verified within the TTL.
    No,
    /// Verified within the TTL.
    Yes,
    /// Verified within the TTL, but in its last quarter: the caller, and
    /// only this one, should verify again in the background (so that the
    /// entry does not expire under load and hold every request up for a
    /// slow hash).
    Refresh,
}

type InFlight = tokio::sync::OnceCell<crate::password::Verification>;

struct InFlightGuard<'a> {
    map: &'a std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<InFlight>>>,
    key: [u8; 32],
    cell: &'a Arc<InFlight>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, self.cell))
        {
            map.remove(&self.key);
        }
    }
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialCache")
            .field("ttl", &self.ttl())
            .finish_non_exhaustive()
    }
}

impl CredentialCache {
    /// A cache keyed with a subkey of `secret`, entries kept for `ttl`
    /// (zero: off), at most [`DEFAULT_CAPACITY`] of them.
    pub fn new(secret: &SecretKey, ttl: Duration) -> Self {
        Self::with_capacity(secret, ttl, DEFAULT_CAPACITY)
    }

    /// The same with at most `capacity` entries.
    pub fn with_capacity(secret: &SecretKey, ttl: Duration, capacity: u64) -> Self {
        if ttl.is_zero() || capacity == 0 {
            return Self::disabled();
        }
        let mac = secret.subkey(CREDENTIAL_PURPOSE);
        CredentialCache {
            inner: Some(Arc::new(CredentialInner {
                mac,
                ttl,
                entries: FastCache::new(ttl, capacity),
                in_flight: Default::default(),
            })),
        }
    }

    /// A cache that remembers nothing: every check misses.
    pub fn disabled() -> Self {
        CredentialCache { inner: None }
    }

    /// Whether the cache remembers anything.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The time to live; zero when off.
    pub fn ttl(&self) -> Duration {
        self.inner.as_ref().map_or(Duration::ZERO, |i| i.ttl)
    }

    /// The keyed hash an entry is stored under:
    /// `SecretKey::mac("basic-cache-v1", data)` where `data` is the
    /// username and the password, each preceded by its length as 8
    /// big-endian bytes (so no two pairs share a key). The password hash
    /// the credentials verified against is kept in the entry, beside the
    /// key, and must equal the user's current one: hashing it into the key
    /// as well would double the HMAC's work on every request.
    pub fn key(&self, username: &str, password: &str) -> Option<[u8; 32]> {
        self.fields_mac([username, password])
    }

    /// What identifies a verification in flight ([`verify_once`]): as
    /// [`key`](Self::key), with the password hash (length-prefixed) as a
    /// third part, so that checks against different hashes never share a
    /// result.
    ///
    /// [`verify_once`]: Self::verify_once
    fn flight_key(&self, username: &str, password: &str, password_hash: &str) -> Option<[u8; 32]> {
        self.fields_mac([username, password, password_hash])
    }

    /// The subkey's MAC of `fields`, each preceded by its length as 8
    /// big-endian bytes; `None` when the cache is off.
    fn fields_mac<const N: usize>(&self, fields: [&str; N]) -> Option<[u8; 32]> {
        let inner = self.inner.as_ref()?;
        let lens = fields.map(|f| (f.len() as u64).to_be_bytes());
        Some(
            inner.mac.mac_parts(
                lens.iter()
                    .zip(fields)
                    .flat_map(|(len, f)| [&len[..], f.as_bytes()]),
            ),
        )
    }

    /// Whether these credentials were verified against exactly this
    /// password hash within the TTL.
    pub fn check(&self, username: &str, password: &str, password_hash: &str) -> bool {
        self.entry(username, password, password_hash).is_some()
    }

    /// The live entry for these credentials, if they verified against this
    /// password hash.
    fn entry(&self, username: &str, password: &str, password_hash: &str) -> Option<Arc<Verified>> {
        let inner = self.inner.as_ref()?;
        let hit = inner.entries.get(&self.key(username, password)?)?;
        crate::secret::ct_eq(hit.password_hash.as_bytes(), password_hash.as_bytes()).then_some(hit)
    }

    /// [`check`](Self::check), and whether the caller should verify again
    /// ahead of expiry (see [`Remembered::Refresh`]).
    pub(crate) fn look_up(
        &self,
        username: &str,
        password: &str,
        password_hash: &str,
    ) -> Remembered {
        let (Some(inner), Some(hit)) = (&self.inner, self.entry(username, password, password_hash))
        else {
            return Remembered::No;
        };
        let stale = hit.at.elapsed() >= inner.ttl - inner.ttl / 4;
        if stale && !hit.refreshing.swap(true, Ordering::SeqCst) {
            Remembered::Refresh
        } else {
            Remembered::Yes
        }
    }

    /// Records that these credentials verified against this password hash.
    /// Call only after a successful verification.
    pub fn remember(&self, username: &str, password: &str, password_hash: &str) {
        if let (Some(inner), Some(key)) = (&self.inner, self.key(username, password)) {
            inner.entries.insert(
                key,
                Arc::new(Verified {
                    username: Arc::from(username),
                    password_hash: Box::from(password_hash),
                    at: std::time::Instant::now(),
                    refreshing: Default::default(),
                }),
            );
        }
    }

    /// Runs `verify` for credentials not found by [`check`](Self::check),
    /// once for all the callers that ask about the same username, password
    /// and hash at the same time (when an entry expires under load, every
    /// client sending those credentials would otherwise run the slow hash
    /// at once). Answers the verification and whether this caller ran it
    /// (only that caller should act on `needs_upgrade`). A disabled cache
    /// just runs `verify`.
    pub async fn verify_once<F, Fut>(
        &self,
        username: &str,
        password: &str,
        password_hash: &str,
        verify: F,
    ) -> (crate::password::Verification, bool)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = crate::password::Verification>,
    {
        let (Some(inner), Some(key)) = (
            &self.inner,
            self.flight_key(username, password, password_hash),
        ) else {
            return (verify().await, true);
        };
        let cell = {
            let mut map = inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key).or_default().clone()
        };
        // Removes the entry when this call ends, also when it is dropped
        // half-way (a client that went away), so nothing is left behind.
        let _guard = InFlightGuard {
            map: &inner.in_flight,
            key,
            cell: &cell,
        };
        let mut ran = false;
        let v = *cell
            .get_or_init(|| {
                ran = true;
                verify()
            })
            .await;
        (v, ran)
    }

    /// Forgets every entry of a username (password changed, user
    /// deactivated or deleted on this server).
    pub fn forget_user(&self, username: &str) {
        if let Some(inner) = &self.inner {
            inner
                .entries
                .invalidate_if(|v: &Arc<Verified>| *v.username == *username);
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        if let Some(inner) = &self.inner {
            inner.entries.invalidate_all();
        }
    }

    /// How many live entries are held.
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.entries.len() as u64)
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| {
            i.in_flight.lock().unwrap_or_else(|e| e.into_inner()).len()
        })
    }

    #[cfg(test)]
    fn stored(&self) -> Vec<([u8; 32], Arc<str>)> {
        self.inner.as_ref().map_or_else(Vec::new, |i| {
            i.entries
                .entries()
                .into_iter()
                .map(|(k, v)| (k, v.username.clone()))
                .collect()
        })
    }

    /// How long ago each entry was verified.
    #[cfg(test)]
    pub(crate) fn ages(&self) -> Vec<Duration> {
        self.inner.as_ref().map_or_else(Vec::new, |i| {
            i.entries
                .entries()
                .into_iter()
                .map(|(_, v)| v.at.elapsed())
                .collect()
        })
    }

    /// Makes every entry look verified `by` earlier (its expiry stays).
    #[cfg(test)]
    pub(crate) fn backdate(&self, by: Duration) {
        if let Some(i) = &self.inner {
            for (k, v) in i.entries.entries() {
                let at =
                    v.at.checked_sub(by)
                        .expect("the clock is far enough from its origin");
                i.entries.insert(
                    k,
                    Arc::new(Verified {
                        username: v.username.clone(),
                        password_hash: v.password_hash.clone(),
                        at,
                        refreshing: Default::default(),
                    }),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const TTL: Duration = Duration::from_millis(500);

    /// A digest in the stored form (`v1$` and 64 hex digits) made from a
    /// short name, so that the caches keep it.
    fn d(name: &str) -> String {
        format!("v1${:0<64}", hex::encode(name))
    }

    /// The raw bytes of [`d`]'s digest, as the cached look-ups take them.
    fn m(name: &str) -> DigestMac {
        digest_mac(&d(name)).expect("a v1 digest")
    }

    async fn setup() -> (MemoryStore, CachedStore<MemoryStore>, User) {
        let memory = MemoryStore::new();
        let store = CachedStore::new(memory.clone(), TTL);
        let ada = memory
            .create_user(NewUser {
                username: "ada".into(),
                password_hash: "pbkdf2_sha256$1$salt$hash".into(),
                is_active: true,
                ..Default::default()
            })
            .await
            .unwrap();
        (memory, store, ada)
    }

    fn token(user_id: i64, digest: &str) -> TokenRecord {
        TokenRecord {
            user_id,
            digest: digest.into(),
            sealed_key: "sealed".into(),
            created: Utc::now(),
        }
    }

    fn session(user_id: i64, digest: &str) -> SessionRecord {
        SessionRecord {
            key_digest: digest.into(),
            user_id,
            data: serde_json::json!({}),
            expires: Utc::now() + chrono::Duration::hours(1),
        }
    }

    #[tokio::test]
    async fn cache_hits_avoid_store_lookups() {
        let (memory, store, ada) = setup().await;
        memory.insert_token(&token(ada.id, &d("t1"))).await.unwrap();
        memory
            .save_session(&session(ada.id, &d("s1")))
            .await
            .unwrap();
        for _ in 0..5 {
            assert!(store.user_by_id(ada.id).await.unwrap().is_some());
            assert!(store.user_by_username("ada").await.unwrap().is_some());
            assert!(store.token_by_digest(&d("t1")).await.unwrap().is_some());
            assert!(store.load_session(&d("s1")).await.unwrap().is_some());
        }
        assert_eq!(memory.lookups(), 4, "one look-up per key, then hits");
    }

    #[tokio::test]
    async fn joined_reads_fill_both_caches_and_then_hit() {
        let (memory, store, ada) = setup().await;
        memory.insert_token(&token(ada.id, &d("t1"))).await.unwrap();
        memory
            .save_session(&session(ada.id, &d("s1")))
            .await
            .unwrap();
        let (t, user) = store.token_with_user(&d("t1")).await.unwrap().unwrap();
        assert_eq!((t.user_id, user.map(|u| u.id)), (ada.id, Some(ada.id)));
        assert!(store.session_with_user(&d("s1")).await.unwrap().is_some());
        assert!(store.token_by_digest_cached(&m("t1")).is_some());
        assert!(store.user_by_id_cached(ada.id).is_some());
        assert!(store.load_session_cached(&m("s1")).is_some());
        let before = memory.lookups();
        for _ in 0..5 {
            assert!(store.token_with_user(&d("t1")).await.unwrap().is_some());
            assert!(store.session_with_user(&d("s1")).await.unwrap().is_some());
        }
        assert_eq!(memory.lookups(), before, "hits: the store is not asked");
        // A write invalidates: the user is read again, as stored now.
        store.set_active(ada.id, false).await.unwrap();
        let (_, user) = store.token_with_user(&d("t1")).await.unwrap().unwrap();
        assert!(!user.unwrap().is_active);
        assert!(memory.lookups() > before);
    }

    /// A store that answers every token look-up with the token `t1`, as a
    /// store whose comparison is looser than the digest's (say, a
    /// case-insensitive collation) might answer with a row it should not.
    struct Loose(MemoryStore);

    #[async_trait]
    impl UserStore for Loose {
        type User = User;
        async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
            self.0.user_by_id(id).await
        }
        async fn user_by_username(&self, name: &str) -> Result<Option<User>, StoreError> {
            self.0.user_by_username(name).await
        }
    }

    #[async_trait]
    impl TokenStore for Loose {
        async fn token_by_digest(&self, _: &str) -> Result<Option<TokenRecord>, StoreError> {
            self.0.token_by_digest(&d("t1")).await
        }
        async fn token_with_user(
            &self,
            _: &str,
        ) -> Result<Option<(TokenRecord, Option<User>)>, StoreError> {
            self.0.token_with_user(&d("t1")).await
        }
        async fn token_for_user(&self, id: i64) -> Result<Option<TokenRecord>, StoreError> {
            self.0.token_for_user(id).await
        }
        async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
            self.0.insert_token(t).await
        }
        async fn delete_token(&self, id: i64) -> Result<bool, StoreError> {
            self.0.delete_token(id).await
        }
    }

    #[tokio::test]
    async fn only_a_record_whose_own_digest_was_asked_for_is_remembered() {
        let (memory, _, ada) = setup().await;
        memory.insert_token(&token(ada.id, &d("t1"))).await.unwrap();
        let store = CachedStore::new(Loose(memory.clone()), TTL);

        // Asked for t2, answered with t1: passed on (the scheme's
        // constant-time compare refuses it), but kept under neither key.
        let wrong = store.token_by_digest(&d("t2")).await.unwrap().unwrap();
        assert_eq!(wrong.digest, d("t1"));
        let (wrong, _) = store.token_with_user(&d("t2")).await.unwrap().unwrap();
        assert_eq!(wrong.digest, d("t1"));
        assert!(store.token_by_digest_cached(&m("t2")).is_none());
        assert!(store.token_by_digest_cached(&m("t1")).is_none());

        // Asked for t1 itself: kept, under t1's bytes.
        store.token_by_digest(&d("t1")).await.unwrap().unwrap();
        let hit = store.token_by_digest_cached(&m("t1")).unwrap();
        assert_eq!(hit.digest, d("t1"));
        assert!(store.token_by_digest_cached(&m("t2")).is_none());
    }

    #[tokio::test]
    async fn digests_in_another_form_are_read_but_never_cached() {
        let (memory, store, ada) = setup().await;
        let upper = d("zz").to_uppercase().replacen("V1$", "v1$", 1);
        for digest in [upper.as_str(), "v2$abc", "t1"] {
            memory.insert_token(&token(ada.id, digest)).await.unwrap();
            memory.save_session(&session(ada.id, digest)).await.unwrap();
            let before = memory.lookups();
            for _ in 0..3 {
                assert!(store.token_by_digest(digest).await.unwrap().is_some());
                assert!(store.load_session(digest).await.unwrap().is_some());
            }
            assert_eq!(
                memory.lookups(),
                before + 6,
                "{digest}: every read reaches the store"
            );
            memory.delete_token(ada.id).await.unwrap();
        }
        // The uppercase twin of a lowercase digest is another key.
        assert_eq!(digest_mac(&upper), None);
        assert_eq!(digest_mac(&d("t1")), Some(m("t1")));
        for bad in [
            "v1$",
            "v1$0",
            &format!("v1${}", "g".repeat(64)),
            &format!("{}0", d("t1")),
        ] {
            assert_eq!(digest_mac(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn cache_misses_and_errors_are_not_remembered() {
        let (memory, store, _) = setup().await;
        assert!(store.token_by_digest(&d("nope")).await.unwrap().is_none());
        assert!(store.token_by_digest(&d("nope")).await.unwrap().is_none());
        assert_eq!(memory.lookups(), 2);
        memory.set_down(true);
        assert!(store.user_by_username("ada").await.is_err());
        memory.set_down(false);
        assert!(store.user_by_username("ada").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn cache_usernames_stay_case_sensitive() {
        let (_, store, ada) = setup().await;
        assert!(
            store.user_by_username_cached("ada").is_none(),
            "not read yet"
        );
        assert!(store.user_by_username("ada").await.unwrap().is_some());
        assert!(store.user_by_username("ADA").await.unwrap().is_none());
        assert_eq!(
            store.user_by_username_cached("ada").map(|u| u.id),
            Some(ada.id)
        );
        assert!(store.user_by_username_cached("ADA").is_none());
        store.set_active(ada.id, false).await.unwrap();
        assert!(
            store.user_by_username_cached("ada").is_none(),
            "invalidated"
        );
    }

    #[tokio::test]
    async fn cache_entries_expire_after_the_ttl() {
        let memory = MemoryStore::new();
        let store = CachedStore::new(memory.clone(), Duration::from_millis(50));
        let ada = memory
            .create_user(NewUser {
                username: "ada".into(),
                is_active: true,
                ..Default::default()
            })
            .await
            .unwrap();
        store.user_by_id(ada.id).await.unwrap();
        // Another process deactivates ada behind the cache's back.
        memory.set_active(ada.id, false).await.unwrap();
        assert!(store.user_by_id(ada.id).await.unwrap().unwrap().is_active);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!store.user_by_id(ada.id).await.unwrap().unwrap().is_active);
        assert_eq!(memory.lookups(), 2);
    }

    #[tokio::test]
    async fn cache_ttl_zero_turns_caching_off() {
        let memory = MemoryStore::new();
        let store = CachedStore::new(memory.clone(), Duration::ZERO);
        assert_eq!(store.ttl(), Duration::ZERO);
        assert!(!store.remembers_reads());
        assert!(CachedStore::new(memory.clone(), Duration::from_secs(1)).remembers_reads());
        assert!(!memory.remembers_reads());
        store.user_by_id(1).await.unwrap();
        store.user_by_id(1).await.unwrap();
        assert_eq!(memory.lookups(), 2);
    }

    #[tokio::test]
    async fn cache_set_active_invalidates_user_token_and_sessions() {
        let (memory, store, ada) = setup().await;
        memory.insert_token(&token(ada.id, &d("t1"))).await.unwrap();
        memory
            .save_session(&session(ada.id, &d("s1")))
            .await
            .unwrap();
        store.user_by_id(ada.id).await.unwrap();
        store.user_by_username("ada").await.unwrap();
        store.token_by_digest(&d("t1")).await.unwrap();
        store.load_session(&d("s1")).await.unwrap();
        store.set_active(ada.id, false).await.unwrap();
        let before = memory.lookups();
        assert!(!store.user_by_id(ada.id).await.unwrap().unwrap().is_active);
        assert!(
            !store
                .user_by_username("ada")
                .await
                .unwrap()
                .unwrap()
                .is_active
        );
        store.token_by_digest(&d("t1")).await.unwrap();
        store.load_session(&d("s1")).await.unwrap();
        assert_eq!(memory.lookups(), before + 4, "every entry was dropped");
    }

    #[tokio::test]
    async fn cache_delete_user_invalidates_everything_of_the_user() {
        let (memory, store, ada) = setup().await;
        memory.insert_token(&token(ada.id, &d("t1"))).await.unwrap();
        memory
            .save_session(&session(ada.id, &d("s1")))
            .await
            .unwrap();
        store.user_by_id(ada.id).await.unwrap();
        store.user_by_username("ada").await.unwrap();
        store.token_by_digest(&d("t1")).await.unwrap();
        store.load_session(&d("s1")).await.unwrap();
        store.delete_user(ada.id).await.unwrap();
        assert!(store.user_by_id(ada.id).await.unwrap().is_none());
        assert!(store.user_by_username("ada").await.unwrap().is_none());
        assert!(store.token_by_digest(&d("t1")).await.unwrap().is_none());
        assert!(store.load_session(&d("s1")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn cache_password_change_invalidates_the_user() {
        let (_, store, ada) = setup().await;
        store.user_by_id(ada.id).await.unwrap();
        store.user_by_username("ada").await.unwrap();
        store.set_password_hash(ada.id, "new").await.unwrap();
        assert_eq!(
            store.user_by_id(ada.id).await.unwrap().unwrap().password,
            "new"
        );
        assert_eq!(
            store
                .user_by_username("ada")
                .await
                .unwrap()
                .unwrap()
                .password,
            "new"
        );
    }

    #[tokio::test]
    async fn cache_token_revocation_and_regeneration_take_effect_at_once() {
        let (memory, store, ada) = setup().await;
        store.insert_token(&token(ada.id, &d("old"))).await.unwrap();
        assert!(store.token_by_digest(&d("old")).await.unwrap().is_some());
        // Regenerate: delete, then insert a new one.
        store.delete_token(ada.id).await.unwrap();
        assert!(store.token_by_digest(&d("old")).await.unwrap().is_none());
        store.insert_token(&token(ada.id, &d("new"))).await.unwrap();
        assert!(store.token_by_digest(&d("new")).await.unwrap().is_some());
        assert!(store.token_by_digest(&d("old")).await.unwrap().is_none());
        // An insert also drops what was cached for the user.
        memory.delete_token(ada.id).await.unwrap();
        memory.insert_token(&token(ada.id, &d("x"))).await.unwrap();
        store.token_by_digest(&d("x")).await.unwrap();
        store
            .insert_token(&token(ada.id, &d("y")))
            .await
            .unwrap_err();
        let before = memory.lookups();
        store.token_by_digest(&d("x")).await.unwrap();
        assert_eq!(memory.lookups(), before + 1);
    }

    #[tokio::test]
    async fn cache_session_writes_invalidate() {
        let (memory, store, ada) = setup().await;
        for name in ["s1", "s2", "keep"] {
            store
                .save_session(&session(ada.id, &d(name)))
                .await
                .unwrap();
            assert!(store.load_session(&d(name)).await.unwrap().is_some());
        }
        store.delete_session(&d("s1")).await.unwrap();
        assert!(store.load_session(&d("s1")).await.unwrap().is_none());
        store
            .delete_user_sessions(ada.id, Some(&d("keep")))
            .await
            .unwrap();
        assert!(store.load_session(&d("s2")).await.unwrap().is_none());
        let before = memory.lookups();
        assert!(store.load_session(&d("keep")).await.unwrap().is_some());
        assert_eq!(memory.lookups(), before, "the kept session stays cached");
        // Saving replaces what was cached.
        let mut changed = session(ada.id, &d("keep"));
        changed.data = serde_json::json!({"k": 1});
        store.save_session(&changed).await.unwrap();
        assert_eq!(
            store.load_session(&d("keep")).await.unwrap().unwrap().data,
            changed.data
        );
    }

    #[tokio::test]
    async fn cache_expired_sessions_are_not_served_from_the_cache() {
        let (_, store, ada) = setup().await;
        let mut s = session(ada.id, &d("s"));
        s.expires = Utc::now() + chrono::Duration::milliseconds(30);
        store.save_session(&s).await.unwrap();
        assert!(store.load_session(&d("s")).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(store.load_session(&d("s")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn cache_lookups_in_flight_during_a_write_do_not_fill() {
        let (memory, store, ada) = setup().await;
        // Simulate: a look-up starts, a write happens, the look-up ends.
        let c = store.caches.as_deref().unwrap();
        let fetch = || async {
            let u = memory.user_by_id(ada.id).await;
            store.set_active(ada.id, false).await.unwrap();
            u
        };
        let got = read_through(
            Some(&c.generation),
            Some(&c.users),
            &ada.id,
            |id| *id,
            fetch,
            |_| true,
        )
        .await
        .unwrap();
        assert!(
            got.unwrap().is_active,
            "the in-flight answer is the old one"
        );
        assert!(!store.user_by_id(ada.id).await.unwrap().unwrap().is_active);
    }

    fn secret() -> SecretKey {
        SecretKey::new([9u8; 32]).unwrap()
    }

    #[test]
    fn credential_cache_remembers_verified_credentials() {
        let cache = CredentialCache::new(&secret(), TTL);
        assert!(!cache.check("ada", "pw", "h1"));
        cache.remember("ada", "pw", "h1");
        assert!(cache.check("ada", "pw", "h1"));
        assert!(!cache.check("ada", "wrong", "h1"));
        assert!(!cache.check("bob", "pw", "h1"));
        assert!(!cache.check("ada", "pw", "h2"), "another hash misses");
    }

    #[test]
    fn credential_cache_misses_after_a_password_change() {
        let cache = CredentialCache::new(&secret(), TTL);
        cache.remember("ada", "pw", "old-hash");
        // The backend reads the current hash from the user row.
        assert!(!cache.check("ada", "pw", "new-hash"));
    }

    #[test]
    fn credential_cache_never_stores_the_password() {
        let cache = CredentialCache::new(&secret(), TTL);
        let password = "correct horse battery staple";
        cache.remember("ada", password, "h1");
        let stored = cache.stored();
        assert_eq!(stored.len(), 1);
        let (key, value) = &stored[0];
        assert_eq!(&**value, "ada");
        assert!(!format!("{cache:?}").contains(password));
        // The key is SecretKey::mac under the documented purpose.
        let mut data = Vec::new();
        for part in ["ada", password] {
            data.extend_from_slice(&(part.len() as u64).to_be_bytes());
            data.extend_from_slice(part.as_bytes());
        }
        assert_eq!(*key, secret().mac(CREDENTIAL_PURPOSE, &data));
        // Another secret gives other keys.
        let other = CredentialCache::new(&SecretKey::new([8u8; 32]).unwrap(), TTL);
        assert!(!other.check("ada", password, "h1"));
    }

    #[test]
    fn credential_cache_entries_answer_only_for_the_hash_they_verified_against() {
        let cache = CredentialCache::new(&secret(), TTL);
        cache.remember("ada", "pw", "h1");
        assert!(!cache.check("ada", "pw", "h2"));
        assert_eq!(cache.look_up("ada", "pw", "h2"), Remembered::No);
        // Verified again against the new hash: the entry is replaced.
        cache.remember("ada", "pw", "h2");
        assert!(cache.check("ada", "pw", "h2"));
        assert!(!cache.check("ada", "pw", "h1"));
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn concurrent_checks_against_different_hashes_do_not_share_a_result() {
        use crate::password::Verification;
        let cache = CredentialCache::new(&secret(), TTL);
        let check = |hash: &'static str, v: Verification| {
            cache.verify_once("ada", "pw", hash, move || async move {
                tokio::task::yield_now().await;
                v
            })
        };
        let valid = Verification::Valid {
            needs_upgrade: false,
        };
        let (old, new) = tokio::join!(
            check("old-hash", valid),
            check("new-hash", Verification::Invalid)
        );
        assert_eq!(old, (valid, true));
        assert_eq!(new, (Verification::Invalid, true));
    }

    #[test]
    fn credential_cache_fields_cannot_be_shifted() {
        let cache = CredentialCache::new(&secret(), TTL);
        cache.remember("ada", "xpw", "h");
        assert!(!cache.check("adax", "pw", "h"));
    }

    #[test]
    fn credential_cache_forget_user_and_expiry() {
        let cache = CredentialCache::new(&secret(), Duration::from_millis(50));
        cache.remember("ada", "pw", "h");
        cache.remember("bob", "pw", "h");
        cache.forget_user("ada");
        assert!(!cache.check("ada", "pw", "h"));
        assert!(cache.check("bob", "pw", "h"));
        std::thread::sleep(Duration::from_millis(80));
        assert!(!cache.check("bob", "pw", "h"));
    }

    #[test]
    fn credential_cache_disabled_remembers_nothing() {
        for cache in [
            CredentialCache::disabled(),
            CredentialCache::new(&secret(), Duration::ZERO),
        ] {
            cache.remember("ada", "pw", "h");
            assert!(!cache.check("ada", "pw", "h"));
            assert!(!cache.is_enabled());
            assert!(cache.is_empty());
        }
    }

    #[tokio::test]
    async fn concurrent_identical_checks_run_one_verification() {
        use crate::password::Verification;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = CredentialCache::new(&SecretKey::new([5u8; 32]).unwrap(), TTL);
        let runs = AtomicUsize::new(0);
        let check = |password: &'static str| {
            cache.verify_once("ada", password, "hash", || async {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Verification::Valid {
                    needs_upgrade: false,
                }
            })
        };
        let (a, b, c, d) = tokio::join!(check("pw"), check("pw"), check("pw"), check("other"));
        assert_eq!(runs.load(Ordering::SeqCst), 2, "one per distinct password");
        let ran = [a.1, b.1, c.1].iter().filter(|r| **r).count();
        assert_eq!(ran, 1, "exactly one caller ran the check");
        assert!(d.1);
        for (v, _) in [a, b, c, d] {
            assert_eq!(
                v,
                Verification::Valid {
                    needs_upgrade: false
                }
            );
        }
        assert_eq!(cache.in_flight(), 0, "nothing left behind");
        // A check dropped half-way leaves nothing behind either.
        let dropped = cache.verify_once("ada", "gone", "hash", || async {
            std::future::pending::<Verification>().await
        });
        assert!(tokio::time::timeout(Duration::from_millis(10), dropped)
            .await
            .is_err());
        assert_eq!(cache.in_flight(), 0, "a cancelled check is forgotten");
        // Later, not concurrent: checked again.
        check("pw").await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    /// A bus that records what it is asked to publish.
    fn recording_bus() -> (InvalidationBus, Arc<std::sync::Mutex<Vec<Invalidation>>>) {
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let outbox = sent.clone();
        let bus = InvalidationBus::new(move |m| outbox.lock().unwrap().push(m));
        (bus, sent)
    }

    #[tokio::test]
    async fn every_write_through_the_cache_is_published_on_its_bus() {
        let (memory, store, ada) = setup().await;
        let (bus, sent) = recording_bus();
        let store = store.with_bus(&bus);
        let user = Invalidation::User(ada.id);
        store.set_password_hash(ada.id, "x").await.unwrap();
        store.set_active(ada.id, true).await.unwrap();
        store.insert_token(&token(ada.id, &d("t"))).await.unwrap();
        store.delete_token(ada.id).await.unwrap();
        store.save_session(&session(ada.id, &d("s"))).await.unwrap();
        store.delete_session(&d("s")).await.unwrap();
        store.delete_user_sessions(ada.id, None).await.unwrap();
        // Writes that leave nothing stale elsewhere are not published.
        store.touch_last_login(ada.id, Utc::now()).await.unwrap();
        store.user_by_id(ada.id).await.unwrap();
        store.delete_user(ada.id).await.unwrap();
        let session = Invalidation::Session(d("s"));
        assert_eq!(
            *sent.lock().unwrap(),
            [
                user.clone(),
                user.clone(),
                user.clone(),
                user.clone(),
                session.clone(),
                session,
                user.clone(),
                user,
            ]
        );
        assert!(memory.user_by_id(ada.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn what_arrives_on_the_bus_is_dropped_from_the_cache() {
        let (memory, store, ada) = setup().await;
        let bus = InvalidationBus::new(|_| {});
        let store = store.with_bus(&bus);
        memory.insert_token(&token(ada.id, &d("t"))).await.unwrap();
        memory
            .save_session(&session(ada.id, &d("s")))
            .await
            .unwrap();
        let read_all = || async {
            store.user_by_id(ada.id).await.unwrap().unwrap();
            store.token_with_user(&d("t")).await.unwrap().unwrap();
            store.load_session(&d("s")).await.unwrap().unwrap();
        };
        read_all().await;
        let cold = memory.lookups();
        read_all().await;
        assert_eq!(memory.lookups(), cold, "all cached");
        // Another server deactivates ada behind this cache's back.
        memory.set_active(ada.id, false).await.unwrap();
        assert!(store.user_by_id(ada.id).await.unwrap().unwrap().is_active);
        bus.deliver(&Invalidation::User(ada.id));
        assert!(!store.user_by_id(ada.id).await.unwrap().unwrap().is_active);
        // A session named on the bus is read again; the rest stays.
        read_all().await;
        let before = memory.lookups();
        bus.deliver(&Invalidation::Session(d("s")));
        read_all().await;
        assert_eq!(memory.lookups(), before + 1);
        // Everything, as after a lost subscription.
        let before = memory.lookups();
        bus.deliver(&Invalidation::All);
        read_all().await;
        assert!(
            memory.lookups() >= before + 3,
            "{}",
            memory.lookups() - before
        );
        // OAuth2 messages are not this cache's.
        let before = memory.lookups();
        bus.deliver(&Invalidation::OAuth2Tokens);
        read_all().await;
        assert_eq!(memory.lookups(), before);
    }

    #[tokio::test]
    async fn a_store_dropped_stops_listening() {
        let (_memory, store, ada) = setup().await;
        let bus = InvalidationBus::new(|_| {});
        let store = store.with_bus(&bus);
        store.user_by_id(ada.id).await.unwrap();
        drop(store);
        // The listener finds its caches gone and does nothing.
        bus.deliver(&Invalidation::All);
    }
}
