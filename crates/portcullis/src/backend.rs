//! [`PasswordBackend`]: Django's `authenticate(username, password)`.
//!
//! Every login path (Basic, the login form, `/auth-token/`) checks a
//! password through here, so the rules hold everywhere:
//!
//! - hashing runs on threads of its own, never on the async runtime;
//! - an unknown username, or a user without a usable password, costs one
//!   full hash like a wrong password, so timing does not reveal which
//!   usernames exist;
//! - a correct password for an inactive user is refused like a wrong one,
//!   as Django's `ModelBackend` does;
//! - a hash weaker than the current default is upgraded after a successful
//!   check;
//! - with a [`Lockout`] ([`PasswordBackend::with_lockout`]),
//!   [`authenticate_from`](PasswordBackend::authenticate_from) refuses
//!   locked-out usernames and addresses before looking anything up, counts
//!   failures and clears them on success. DRF does not throttle its login
//!   endpoints at all; portcullis does, on every path that calls
//!   `authenticate_from`;
//! - with a [`CredentialCache`] ([`PasswordBackend::with_credential_cache`]),
//!   credentials verified once are accepted again from a keyed hash (never
//!   the plaintext) until its time to live runs out, so HTTP Basic does not
//!   pay PBKDF2 on every request. The user row is still read every time, so
//!   a deactivated user is refused at once, and the current password hash
//!   is part of the key, so a password change invalidates every entry.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::cache::{CredentialCache, Remembered};
use crate::identity::AuthUser;
use crate::lockout::Lockout;
use crate::password::{self, PasswordHasher, Verification};
use crate::store::{StoreError, UserStore};

/// Checks usernames and passwords against a [`UserStore`].
#[derive(Clone)]
pub struct PasswordBackend<S> {
    store: S,
    hasher: PasswordHasher,
    lockout: Option<Lockout>,
    credentials: CredentialCache,
}

/// What [`PasswordBackend::authenticate_from`] found.
#[derive(Clone, Debug)]
pub enum LoginOutcome<U> {
    /// The credentials are right and the user is active.
    Authenticated(U),
    /// Wrong username or password, or an inactive user (counted as a
    /// failure by the lockout).
    Invalid,
    /// The username or the address is locked out; the password was not
    /// checked. Answer `429` with `Retry-After`
    /// ([`throttled`](crate::throttle::throttled)`(wait)`).
    LockedOut {
        /// Time left until the cool-off ends.
        wait: Duration,
    },
}

impl<U> LoginOutcome<U> {
    /// The user, if authenticated.
    pub fn user(self) -> Option<U> {
        match self {
            LoginOutcome::Authenticated(u) => Some(u),
            _ => None,
        }
    }

    /// Whether the attempt was refused by the lockout.
    pub fn is_locked_out(&self) -> bool {
        matches!(self, LoginOutcome::LockedOut { .. })
    }
}

impl<S> fmt::Debug for PasswordBackend<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordBackend")
            .field("hasher", &self.hasher)
            .field("lockout", &self.lockout)
            .finish_non_exhaustive()
    }
}

impl<S: UserStore + Clone> PasswordBackend<S> {
    /// A backend over `store` that hashes with `hasher`.
    pub fn new(store: S, hasher: PasswordHasher) -> Self {
        PasswordBackend {
            store,
            hasher,
            lockout: None,
            credentials: CredentialCache::disabled(),
        }
    }

    /// Remembers verified credentials in `cache` (off by default); see the
    /// [module docs](self) for the trade-off.
    pub fn with_credential_cache(mut self, cache: CredentialCache) -> Self {
        self.credentials = cache;
        self
    }

    /// Puts a [`Lockout`] in front of
    /// [`authenticate_from`](Self::authenticate_from).
    pub fn with_lockout(mut self, lockout: Lockout) -> Self {
        self.lockout = Some(lockout);
        self
    }

    /// The lockout, if any.
    pub fn lockout(&self) -> Option<&Lockout> {
        self.lockout.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// A login attempt from `client` (the address, when known): the
    /// lockout first, then [`authenticate`](Self::authenticate), then the
    /// failure counted or the username's count cleared. Every login path
    /// should call this rather than `authenticate`.
    ///
    /// A locked-out attempt returns before the user is looked up or any
    /// password hashed, for existing and unknown usernames alike, so its
    /// timing reveals nothing about which usernames exist. A store error
    /// (users or lockout) is an error: fail closed.
    pub async fn authenticate_from(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<LoginOutcome<S::User>, StoreError> {
        let Some(lockout) = &self.lockout else {
            return Ok(match self.authenticate(username, password).await? {
                Some(user) => LoginOutcome::Authenticated(user),
                None => LoginOutcome::Invalid,
            });
        };
        let status = lockout.status(username, client).await?;
        if let Some(wait) = status.wait {
            return Ok(LoginOutcome::LockedOut { wait });
        }
        match self.authenticate(username, password).await? {
            Some(user) => {
                // Nothing to clear is the common case: skip the write.
                if status.username_has_failures {
                    lockout.record_success(username).await?;
                }
                Ok(LoginOutcome::Authenticated(user))
            }
            None => {
                lockout.record_failure(username, client).await?;
                Ok(LoginOutcome::Invalid)
            }
        }
    }

    /// [`authenticate_from`](Self::authenticate_from) answered without
    /// waiting, for credentials it would accept with nothing to wait for:
    /// the lockout's clear cache shows the username and address clear
    /// ([`Lockout::status_now`]), the store's cache holds the user
    /// ([`UserStore::user_by_username_cached`]), the user is active and the
    /// [`CredentialCache`] remembers these credentials for the user's
    /// current password hash. `None` in every other case, wrong passwords
    /// included: ask `authenticate_from`, which counts failures and
    /// verifies. A remembered entry due for renewal is renewed in the
    /// background, as on the usual path.
    pub fn authenticate_now(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Option<S::User> {
        if let Some(lockout) = &self.lockout {
            lockout.status_now(username, client)?;
        }
        let user = self.store.user_by_username_cached(username)?;
        if !user.is_active() {
            return None;
        }
        // No `is_usable` check: an entry exists only for a hash that
        // verified, and it answers only for the hash stored now.
        let encoded = user.password_hash();
        match self.credentials.look_up(username, password, encoded) {
            Remembered::No => None,
            Remembered::Yes => Some(user),
            Remembered::Refresh => {
                self.refresh_in_background(username, password, encoded);
                Some(user)
            }
        }
    }

    /// The slow hash's worth of work for credentials that cannot match,
    /// coalesced like a real check (see [`CredentialCache::verify_once`]),
    /// so that concurrent identical requests take the same time whether
    /// the user exists or not.
    async fn dummy_verify(&self, username: &str, password: &str) {
        self.credentials
            .verify_once(username, password, "", || async {
                self.hasher.dummy_verify(password).await;
                Verification::Invalid
            })
            .await;
    }

    /// Verifies remembered credentials again before their cache entry
    /// expires, on the hashing threads, and remembers them afresh; the
    /// request that asked goes on at once. Without this, every request
    /// carrying those credentials would wait for one slow hash each time
    /// the entry expired.
    fn refresh_in_background(&self, username: &str, password: &str, encoded: &str) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cache = self.credentials.clone();
        let hasher = self.hasher.clone();
        let (username, password, encoded) =
            (username.to_owned(), password.to_owned(), encoded.to_owned());
        runtime.spawn(async move {
            let (verification, _) = cache
                .verify_once(&username, &password, &encoded, || {
                    hasher.verify(&password, &encoded)
                })
                .await;
            if matches!(verification, Verification::Valid { .. }) {
                cache.remember(&username, &password, &encoded);
            }
        });
    }

    /// The active user with these credentials, or `None`. A store error is
    /// an error, never a `None`. No lockout applies here; see
    /// [`authenticate_from`](Self::authenticate_from).
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<S::User>, StoreError> {
        let Some(user) = self.store.user_by_username(username).await? else {
            self.dummy_verify(username, password).await;
            return Ok(None);
        };
        let encoded = user.password_hash();
        if !password::is_usable(encoded) {
            self.dummy_verify(username, password).await;
            return Ok(None);
        }
        match self.credentials.look_up(username, password, encoded) {
            Remembered::No => {}
            Remembered::Yes => return Ok(user.is_active().then_some(user)),
            Remembered::Refresh => {
                self.refresh_in_background(username, password, encoded);
                return Ok(user.is_active().then_some(user));
            }
        }
        let (verification, ran) = self
            .credentials
            .verify_once(username, password, encoded, || {
                self.hasher.verify(password, encoded)
            })
            .await;
        match verification {
            Verification::Invalid => Ok(None),
            Verification::Valid { needs_upgrade } => {
                let mut current = None;
                // Callers that waited for another's check leave the upgrade
                // (and the cache entry) to it.
                if !ran {
                    return Ok(user.is_active().then_some(user));
                }
                if needs_upgrade {
                    match self.hasher.hash(password).await {
                        Ok(h) => {
                            self.store.set_password_hash(user.id(), &h).await?;
                            current = Some(h);
                        }
                        Err(e) => tracing::warn!(error = %e, "could not upgrade a password hash"),
                    }
                }
                let current = current.as_deref().unwrap_or(encoded);
                self.credentials.remember(username, password, current);
                Ok(user.is_active().then_some(user))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::HasherConfig;
    use crate::store::{MemoryStore, NewUser, UserAdmin};

    fn hasher(iterations: u32) -> PasswordHasher {
        PasswordHasher::new(HasherConfig {
            pbkdf2_iterations: iterations,
            ..HasherConfig::fast_for_tests()
        })
    }

    async fn store_with(name: &str, hash: String, active: bool) -> MemoryStore {
        let store = MemoryStore::new();
        store
            .create_user(NewUser {
                username: name.into(),
                password_hash: hash,
                is_active: active,
                ..Default::default()
            })
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn right_password_authenticates() {
        let h = hasher(1000);
        let store = store_with("ada", h.hash("pw").await.unwrap(), true).await;
        let b = PasswordBackend::new(store, h);
        assert!(b.authenticate("ada", "pw").await.unwrap().is_some());
        assert!(b.authenticate("ada", "nope").await.unwrap().is_none());
        assert!(
            b.authenticate("ADA", "pw").await.unwrap().is_none(),
            "case-sensitive"
        );
        assert!(b.authenticate("nobody", "pw").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn inactive_users_are_refused_even_with_the_right_password() {
        let h = hasher(1000);
        let store = store_with("ada", h.hash("pw").await.unwrap(), false).await;
        let b = PasswordBackend::new(store, h);
        assert!(b.authenticate("ada", "pw").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn unusable_passwords_never_authenticate() {
        let h = hasher(1000);
        let store = store_with("ada", password::make_unusable(), true).await;
        let b = PasswordBackend::new(store, h);
        assert!(b.authenticate("ada", "").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn weak_hashes_are_upgraded_after_a_successful_login() {
        let old = hasher(1000).hash("pw").await.unwrap();
        assert!(old.starts_with("pbkdf2_sha256$1000$"));
        let store = store_with("ada", old.clone(), true).await;
        let b = PasswordBackend::new(store.clone(), hasher(2000));
        // A wrong password upgrades nothing.
        assert!(b.authenticate("ada", "nope").await.unwrap().is_none());
        let u = store.user_by_username("ada").await.unwrap().unwrap();
        assert_eq!(u.password, old);
        assert!(b.authenticate("ada", "pw").await.unwrap().is_some());
        let u = store.user_by_username("ada").await.unwrap().unwrap();
        assert!(
            u.password.starts_with("pbkdf2_sha256$2000$"),
            "{}",
            u.password
        );
        assert!(b.authenticate("ada", "pw").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn cached_credentials_skip_the_hash_but_not_the_rules() {
        use crate::secret::SecretKey;
        use std::time::Duration;
        let h = hasher(1000);
        let store = store_with("ada", h.hash("pw").await.unwrap(), true).await;
        let cache =
            CredentialCache::new(&SecretKey::new([5u8; 32]).unwrap(), Duration::from_secs(60));
        let b = PasswordBackend::new(store.clone(), h.clone()).with_credential_cache(cache.clone());
        assert!(b.authenticate("ada", "pw").await.unwrap().is_some());
        let hash = store
            .user_by_username("ada")
            .await
            .unwrap()
            .unwrap()
            .password;
        assert!(
            cache.check("ada", "pw", &hash),
            "remembered after a good check"
        );
        assert!(!cache.check("ada", "nope", &hash));
        assert!(b.authenticate("ada", "nope").await.unwrap().is_none());
        // Deactivation is seen at once, cache or not.
        let id = store.user_by_username("ada").await.unwrap().unwrap().id;
        store.set_active(id, false).await.unwrap();
        assert!(b.authenticate("ada", "pw").await.unwrap().is_none());
        store.set_active(id, true).await.unwrap();
        // A password change makes the old entry unreachable.
        store
            .set_password_hash(id, &h.hash("new").await.unwrap())
            .await
            .unwrap();
        assert!(b.authenticate("ada", "pw").await.unwrap().is_none());
        assert!(b.authenticate("ada", "new").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn remembered_credentials_are_verified_again_before_they_expire() {
        use crate::secret::SecretKey;
        let h = hasher(1000);
        let store = store_with("ada", h.hash("pw").await.unwrap(), true).await;
        let ttl = Duration::from_secs(60);
        let cache = CredentialCache::new(&SecretKey::new([5u8; 32]).unwrap(), ttl);
        let b = PasswordBackend::new(store, h).with_credential_cache(cache.clone());
        assert!(b.authenticate("ada", "pw").await.unwrap().is_some());
        let fresh = |ages: Vec<Duration>| ages.len() == 1 && ages[0] < Duration::from_secs(20);

        // In the first three quarters of the TTL: a plain hit.
        cache.backdate(Duration::from_secs(30));
        assert!(b.authenticate("ada", "pw").await.unwrap().is_some());
        tokio::task::yield_now().await;
        assert!(!fresh(cache.ages()), "no refresh yet: {:?}", cache.ages());

        // In the last quarter: answered at once, verified again behind it.
        cache.backdate(Duration::from_secs(20));
        assert!(b.authenticate("ada", "pw").await.unwrap().is_some());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !fresh(cache.ages()) {
            assert!(std::time::Instant::now() < deadline, "{:?}", cache.ages());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(cache.in_flight(), 0);
        // A wrong password is still refused, and starts no refresh.
        assert!(b.authenticate("ada", "nope").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_store_error_is_an_error_not_a_refusal() {
        let h = hasher(1000);
        let store = store_with("ada", h.hash("pw").await.unwrap(), true).await;
        store.set_down(true);
        let b = PasswordBackend::new(store, h);
        assert!(b.authenticate("ada", "pw").await.is_err());
    }
}
