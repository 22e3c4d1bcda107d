//! Storage traits, the small [`StoreError`] vocabulary and [`MemoryStore`].
//!
//! The traits live in the core so anyone can write a backend without
//! forking portcullis; `portcullis-store` implements them for SQLite,
//! PostgreSQL, MariaDB/MySQL and Redis.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::identity::{AuthUser, User};

mod separate;
mod shared;
pub use separate::SeparateSessions;
pub use shared::SharedUsers;

type BoxError = Arc<dyn StdError + Send + Sync>;

/// The raw bytes of a token's or session's digest: the HMAC-SHA256 whose
/// lowercase hex follows `v1$` in the stored digest. The cached look-ups
/// ([`TokenStore::token_by_digest_cached`],
/// [`SessionStore::load_session_cached`]) take it, so that a request whose
/// credential a cache holds never spells the digest out.
pub type DigestMac = [u8; 32];

/// The [`DigestMac`] of a stored digest in the form `v1$` and 64
/// lowercase hex digits; `None` for any other form (such a digest is
/// never cached).
///
/// ```
/// use portcullis::store::digest_mac;
///
/// let digest = format!("v1${}", "0a".repeat(32));
/// assert_eq!(digest_mac(&digest), Some([0x0a; 32]));
/// assert_eq!(digest_mac(&digest.to_uppercase()), None);
/// assert_eq!(digest_mac("v1$0a"), None);
/// ```
pub fn digest_mac(digest: &str) -> Option<DigestMac> {
    let hex = digest.strip_prefix("v1$")?.as_bytes();
    // Lowercase only: two digests differing in case are two keys as text,
    // and must stay two keys as bytes.
    if hex.len() != 64 || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// What can go wrong in a store.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached (connection refused, pool timed out).
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A uniqueness rule was broken (a duplicate username, a second token).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The row the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The store does not support the operation.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// Any other backend failure.
    #[error("store error: {0}")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// An [`Unavailable`](StoreError::Unavailable) error from anything
    /// printable.
    pub fn unavailable(e: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StoreError::Unavailable(Arc::from(e.into()))
    }

    /// A [`Backend`](StoreError::Backend) error from anything printable.
    pub fn backend(e: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StoreError::Backend(Arc::from(e.into()))
    }

    /// Whether the backend is unreachable (answered with 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Looks users up: what every scheme needs.
///
/// ```
/// use async_trait::async_trait;
/// use portcullis::store::{StoreError, UserStore};
/// use portcullis::User;
///
/// struct OneUser(User);
///
/// #[async_trait]
/// impl UserStore for OneUser {
///     type User = User;
///     async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
///         Ok((id == self.0.id).then(|| self.0.clone()))
///     }
///     async fn user_by_username(&self, name: &str) -> Result<Option<User>, StoreError> {
///         Ok((name == self.0.username).then(|| self.0.clone()))
///     }
/// }
/// ```
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// The user model.
    type User: AuthUser;

    /// The user with this id.
    async fn user_by_id(&self, id: i64) -> Result<Option<Self::User>, StoreError>;

    /// The user with this id if a cache in front of the store holds it,
    /// answered without waiting (the layer then decides the request without
    /// a boxed future). `None`, the default, means "ask
    /// [`user_by_id`](UserStore::user_by_id)", never "no such user". A
    /// store that answers here also returns `true` from
    /// [`remembers_reads`](UserStore::remembers_reads).
    fn user_by_id_cached(&self, id: i64) -> Option<Self::User> {
        let _ = id;
        None
    }

    /// Whether a cache in front of the store can answer the reads the
    /// Token and Session schemes try first
    /// ([`user_by_id_cached`](UserStore::user_by_id_cached),
    /// [`TokenStore::token_by_digest_cached`],
    /// [`SessionStore::load_session_cached`]); `false`, the default, for a
    /// store that reads every time. A store that answers them must return
    /// `true`: when it is `false` those schemes skip them, and the keyed
    /// hash of the credential they would need, and go straight to the
    /// store (the answers are the same either way, only slower when a
    /// cache could have answered).
    fn remembers_reads(&self) -> bool {
        false
    }

    /// The user with exactly this (case-sensitive) username.
    async fn user_by_username(&self, username: &str) -> Result<Option<Self::User>, StoreError>;

    /// The user with exactly this username if a cache in front of the
    /// store holds it, answered without waiting (see
    /// [`user_by_id_cached`](UserStore::user_by_id_cached)). `None`, the
    /// default, means "ask [`user_by_username`](UserStore::user_by_username)",
    /// never "no such user".
    fn user_by_username_cached(&self, username: &str) -> Option<Self::User> {
        let _ = username;
        None
    }

    /// Replaces a user's password hash; used to upgrade weak hashes after a
    /// successful login. The default does nothing.
    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        let _ = (id, hash);
        Ok(())
    }

    /// Records a successful login. The default does nothing.
    async fn touch_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        let _ = (id, at);
        Ok(())
    }

    /// Creates a user that a trusted proxy vouched for (RemoteUser's
    /// `create_unknown_user`). The default refuses.
    async fn create_remote_user(&self, username: &str) -> Result<Self::User, StoreError> {
        let _ = username;
        Err(StoreError::Unsupported("creating remote users"))
    }
}

/// A new user for [`UserAdmin::create_user`].
#[derive(Clone, Default)]
pub struct NewUser {
    /// Unique, case-sensitive login name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Password hash (Django format); empty for an unusable password.
    pub password_hash: String,
    /// Whether the account may log in.
    pub is_active: bool,
    /// Staff flag.
    pub is_staff: bool,
    /// Superuser flag.
    pub is_superuser: bool,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("is_active", &self.is_active)
            .field("is_staff", &self.is_staff)
            .field("is_superuser", &self.is_superuser)
            .finish_non_exhaustive()
    }
}

/// What Django's admin does to users: create, activate, delete.
#[async_trait]
pub trait UserAdmin: UserStore<User = User> {
    /// Creates a user; [`StoreError::Conflict`] if the username is taken.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    /// Sets `is_active`; [`StoreError::NotFound`] for an unknown id.
    async fn set_active(&self, id: i64, active: bool) -> Result<(), StoreError>;
    /// Deletes the user with its token and sessions.
    async fn delete_user(&self, id: i64) -> Result<(), StoreError>;
}

/// A stored token: never the key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Owner.
    pub user_id: i64,
    /// Keyed hash of the key (the look-up column), with its version prefix.
    pub digest: String,
    /// The key encrypted with the secret key, so it can be handed back.
    pub sealed_key: String,
    /// When it was created.
    pub created: DateTime<Utc>,
}

/// DRF's authtoken table, one token per user, keyed by a hash.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// The token whose digest is this.
    async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// The token whose digest is `v1$` and the hex of `mac` if a cache
    /// holds it, shared with the cache; see
    /// [`UserStore::user_by_id_cached`] (and
    /// [`UserStore::remembers_reads`]). An answer must be a token whose
    /// own digest is exactly that. `None`, the default, means "ask
    /// [`token_by_digest`](TokenStore::token_by_digest)".
    fn token_by_digest_cached(&self, mac: &DigestMac) -> Option<Arc<TokenRecord>> {
        let _ = mac;
        None
    }
    /// The token whose digest is this with its user (`None` when the user
    /// row is gone), in one read where the store can: the SQL stores join
    /// the two tables, as DRF's `select_related("user")` does. The default
    /// asks [`token_by_digest`](TokenStore::token_by_digest), then
    /// [`user_by_id`](UserStore::user_by_id).
    ///
    /// Only for stores that hold the users too (`where Self: UserStore`);
    /// a token store without users implements nothing here.
    async fn token_with_user(
        &self,
        digest: &str,
    ) -> Result<Option<(TokenRecord, Option<<Self as UserStore>::User>)>, StoreError>
    where
        Self: UserStore,
    {
        let Some(token) = self.token_by_digest(digest).await? else {
            return Ok(None);
        };
        let user = self.user_by_id(token.user_id).await?;
        Ok(Some((token, user)))
    }
    /// The user's token.
    async fn token_for_user(&self, user_id: i64) -> Result<Option<TokenRecord>, StoreError>;
    /// Stores a token; [`StoreError::Conflict`] if the user has one.
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// Deletes the user's token, returning whether there was one.
    async fn delete_token(&self, user_id: i64) -> Result<bool, StoreError>;
}

/// A stored session, keyed by a hash of its key.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    /// Keyed hash of the session key.
    pub key_digest: String,
    /// The logged-in user.
    pub user_id: i64,
    /// JSON data (the auth hash and anything the app stores).
    pub data: serde_json::Value,
    /// When the session stops being valid.
    pub expires: DateTime<Utc>,
}

/// Django's session table.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// The unexpired session with this digest.
    async fn load_session(&self, key_digest: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// The session whose digest is `v1$` and the hex of `mac` if a cache
    /// holds it, shared with the cache; see
    /// [`UserStore::user_by_id_cached`] (and
    /// [`UserStore::remembers_reads`]). An answer must be a session whose
    /// own digest is exactly that (expired or not: the caller checks).
    /// `None`, the default, means "ask
    /// [`load_session`](SessionStore::load_session)".
    fn load_session_cached(&self, mac: &DigestMac) -> Option<Arc<SessionRecord>> {
        let _ = mac;
        None
    }
    /// The unexpired session with this digest with its user (`None` when
    /// the user row is gone), in one read where the store can (the SQL
    /// stores join the two tables). The default asks
    /// [`load_session`](SessionStore::load_session), then
    /// [`user_by_id`](UserStore::user_by_id).
    ///
    /// Only for stores that hold the users too (`where Self: UserStore`);
    /// a session store without users (say, one on Redis) implements
    /// nothing here.
    async fn session_with_user(
        &self,
        key_digest: &str,
    ) -> Result<Option<(SessionRecord, Option<<Self as UserStore>::User>)>, StoreError>
    where
        Self: UserStore,
    {
        let Some(session) = self.load_session(key_digest).await? else {
            return Ok(None);
        };
        let user = self.user_by_id(session.user_id).await?;
        Ok(Some((session, user)))
    }
    /// Inserts or replaces a session.
    async fn save_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// Deletes a session.
    async fn delete_session(&self, key_digest: &str) -> Result<(), StoreError>;
    /// Deletes every session of a user except `keep`.
    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError>;
    /// Removes expired sessions, returning how many.
    async fn purge_expired_sessions(&self) -> Result<u64, StoreError>;
}

/// Whether a store answers at all, for readiness probes.
#[async_trait]
pub trait Ping: Send + Sync + 'static {
    /// `Ok` while the backend is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
}

#[derive(Default)]
struct MemoryInner {
    users: HashMap<i64, User>,
    next_id: i64,
    tokens: HashMap<i64, TokenRecord>,
    sessions: HashMap<String, SessionRecord>,
    realm_digests: HashMap<i64, String>,
    hawk: HashMap<String, crate::scheme::hawk::HawkCredential>,
}

/// An in-memory store for tests and examples; not shared between
/// processes.
///
/// It counts its look-ups ([`MemoryStore::lookups`]) so tests can prove that
/// work was or was not done, and can be switched off
/// ([`MemoryStore::set_down`]) to prove that schemes fail closed.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryInner>>,
    lookups: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many look-ups (reads) the store has answered.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::SeqCst)
    }

    /// Makes every call fail with [`StoreError::Unavailable`] (or work again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn guard(&self) -> Result<std::sync::MutexGuard<'_, MemoryInner>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("memory store switched off"));
        }
        Ok(self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn read(&self) -> Result<std::sync::MutexGuard<'_, MemoryInner>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.guard()
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    type User = User;

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        Ok(self.read()?.users.get(&id).cloned())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .read()?
            .users
            .values()
            .find(|u| u.username == username)
            .cloned())
    }

    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        let mut g = self.guard()?;
        let u = g
            .users
            .get_mut(&id)
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
        u.password = hash.to_owned();
        Ok(())
    }

    async fn touch_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        if let Some(u) = self.guard()?.users.get_mut(&id) {
            u.last_login = Some(at);
        }
        Ok(())
    }

    async fn create_remote_user(&self, username: &str) -> Result<User, StoreError> {
        self.create_user(NewUser {
            username: username.to_owned(),
            password_hash: crate::password::make_unusable(),
            is_active: true,
            ..NewUser::default()
        })
        .await
    }
}

#[async_trait]
impl UserAdmin for MemoryStore {
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let mut g = self.guard()?;
        if g.users.values().any(|u| u.username == new.username) {
            return Err(StoreError::Conflict(format!("username {}", new.username)));
        }
        g.next_id += 1;
        let user = User {
            id: g.next_id,
            username: new.username,
            password: new.password_hash,
            email: new.email,
            first_name: String::new(),
            last_name: String::new(),
            is_active: new.is_active,
            is_staff: new.is_staff,
            is_superuser: new.is_superuser,
            last_login: None,
            date_joined: Utc::now(),
        };
        g.users.insert(user.id, user.clone());
        Ok(user)
    }

    async fn set_active(&self, id: i64, active: bool) -> Result<(), StoreError> {
        let mut g = self.guard()?;
        let u = g
            .users
            .get_mut(&id)
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
        u.is_active = active;
        Ok(())
    }

    async fn delete_user(&self, id: i64) -> Result<(), StoreError> {
        let mut g = self.guard()?;
        g.users
            .remove(&id)
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
        g.tokens.remove(&id);
        g.sessions.retain(|_, s| s.user_id != id);
        g.realm_digests.remove(&id);
        g.hawk.retain(|_, c| c.user_id != id);
        Ok(())
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self
            .read()?
            .tokens
            .values()
            .find(|t| t.digest == digest)
            .cloned())
    }

    async fn token_for_user(&self, user_id: i64) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.read()?.tokens.get(&user_id).cloned())
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let mut g = self.guard()?;
        if !g.users.contains_key(&token.user_id) {
            return Err(StoreError::NotFound(format!("user {}", token.user_id)));
        }
        if g.tokens.contains_key(&token.user_id) {
            return Err(StoreError::Conflict(format!(
                "token of user {}",
                token.user_id
            )));
        }
        g.tokens.insert(token.user_id, token.clone());
        Ok(())
    }

    async fn delete_token(&self, user_id: i64) -> Result<bool, StoreError> {
        Ok(self.guard()?.tokens.remove(&user_id).is_some())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load_session(&self, key_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .read()?
            .sessions
            .get(key_digest)
            .filter(|s| s.expires > Utc::now())
            .cloned())
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let mut g = self.guard()?;
        if !g.users.contains_key(&session.user_id) {
            return Err(StoreError::NotFound(format!("user {}", session.user_id)));
        }
        g.sessions
            .insert(session.key_digest.clone(), session.clone());
        Ok(())
    }

    async fn delete_session(&self, key_digest: &str) -> Result<(), StoreError> {
        self.guard()?.sessions.remove(key_digest);
        Ok(())
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut g = self.guard()?;
        let before = g.sessions.len();
        g.sessions
            .retain(|k, s| s.user_id != user_id || Some(k.as_str()) == keep);
        Ok((before - g.sessions.len()) as u64)
    }

    async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
        let mut g = self.guard()?;
        let now = Utc::now();
        let before = g.sessions.len();
        g.sessions.retain(|_, s| s.expires > now);
        Ok((before - g.sessions.len()) as u64)
    }
}

#[async_trait]
impl crate::scheme::digest::DigestStore for MemoryStore {
    async fn realm_digest(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        Ok(self.read()?.realm_digests.get(&user_id).cloned())
    }

    async fn set_realm_digest(&self, user_id: i64, sealed: Option<&str>) -> Result<(), StoreError> {
        let mut g = self.guard()?;
        match sealed {
            Some(s) => {
                if !g.users.contains_key(&user_id) {
                    return Err(StoreError::NotFound(format!("user {user_id}")));
                }
                g.realm_digests.insert(user_id, s.to_owned());
            }
            None => {
                g.realm_digests.remove(&user_id);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl crate::scheme::hawk::HawkStore for MemoryStore {
    async fn hawk_credential(
        &self,
        id: &str,
    ) -> Result<Option<crate::scheme::hawk::HawkCredential>, StoreError> {
        Ok(self.read()?.hawk.get(id).cloned())
    }

    async fn insert_hawk_credential(
        &self,
        credential: &crate::scheme::hawk::HawkCredential,
    ) -> Result<(), StoreError> {
        let mut g = self.guard()?;
        if !g.users.contains_key(&credential.user_id) {
            return Err(StoreError::NotFound(format!("user {}", credential.user_id)));
        }
        if g.hawk.contains_key(&credential.id) {
            return Err(StoreError::Conflict(format!("Hawk id {}", credential.id)));
        }
        g.hawk.insert(credential.id.clone(), credential.clone());
        Ok(())
    }
}

#[async_trait]
impl Ping for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.guard().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_mac_reads_every_byte_and_refuses_every_other_form() {
        let bytes: Vec<u8> = (0..=255).collect();
        for chunk in bytes.chunks(32) {
            let mac: DigestMac = chunk.try_into().unwrap();
            let digest = format!("v1${}", hex::encode(mac));
            assert_eq!(digest_mac(&digest), Some(mac), "{digest}");
            // One digit replaced, anywhere, by anything but a lowercase
            // hex digit.
            for at in [3, 4, 34, 66] {
                for c in ["A", "F", "g", "G", "/", ":", "@", "`", " ", "\0"] {
                    let mut bad = digest.clone();
                    bad.replace_range(at..at + 1, c);
                    assert_eq!(digest_mac(&bad), None, "{bad:?}");
                }
            }
            // Sixty-four bytes that are not sixty-four digits.
            let accented = format!("v1$é{}", &digest[5..]);
            assert_eq!(accented.len(), digest.len());
            assert_eq!(digest_mac(&accented), None);
            for other in [
                format!("v2${}", &digest[3..]),
                format!("V1${}", &digest[3..]),
                digest[..66].to_owned(),
                format!("{digest}0"),
                digest[3..].to_owned(),
            ] {
                assert_eq!(digest_mac(&other), None, "{other}");
            }
        }
    }
}
