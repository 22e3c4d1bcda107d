//! Session authentication with CSRF, DRF's `SessionAuthentication` on
//! Django's session conventions.
//!
//! [`Sessions`] logs users in and out: a `sessionid` cookie (HttpOnly,
//! SameSite=Lax) carries a random key; the store keeps only a keyed hash of
//! it, the user's id and a hash of the user's password hash, so a password
//! change logs every session of that user out (Django's session auth
//! hash). Logging in rotates the session key and the CSRF secret.
//!
//! Checking that hash costs an HMAC on every request, so [`Sessions`]
//! remembers the hash of each password hash it has seen (up to 10,000 of
//! them, for a minute). It is a function of the password hash alone, so
//! what is remembered can never be stale: a changed password is a
//! different input.
//!
//! [`SessionAuth`] authenticates a request by its session cookie and, on
//! unsafe methods, enforces CSRF (see [`super::csrf`]): a failure is
//! `403 {"detail": "CSRF Failed: ..."}`. It has no challenge, so
//! unauthenticated requests on a session-first route are `403`. A session
//! whose user is gone or inactive is ignored (the request is anonymous).
//!
//! ```
//! use axum::{body::Body, routing::post, Router};
//! use portcullis::scheme::session::{SessionAuth, Sessions};
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin};
//! use portcullis::{IsAuthenticated, Policy, SecretKey, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let ada = store.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! let sessions = Sessions::new(store, SecretKey::new([3u8; 32]).unwrap());
//! let login = sessions.login(&ada, None).await.unwrap();
//!
//! let policy = Policy::<User>::new().scheme(SessionAuth::new(sessions)).permission(IsAuthenticated);
//! let app = Router::new().route("/", post(|| async { "hi" })).layer(policy.layer());
//!
//! let cookies = format!("sessionid={}; csrftoken={}", login.session_key, login.csrf_secret);
//! let good = http::Request::post("/").header("cookie", &cookies)
//!     .header("x-csrftoken", login.csrf_token()).body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(good).await.unwrap().status(), 200);
//! let no_csrf = http::Request::post("/").header("cookie", &cookies).body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(no_csrf).await.unwrap().status(), 403);
//! # });
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use http::HeaderValue;

use crate::cache::ttl::FastCache;
use crate::error::AuthError;
use crate::identity::AuthUser;
use crate::scheme::csrf::{self, CsrfConfig, FormToken};
use crate::scheme::{Authenticated, Outcome, RequestHead, Scheme};
use crate::secret::{random_alphanumeric, MacHex, SecretKey, Subkey};
use crate::store::{SessionRecord, SessionStore, StoreError, UserStore};

const KEY_PURPOSE: &str = "session-key-v1";
const AUTH_HASH_PURPOSE: &str = "session-auth-hash-v1";
/// Django's session key length.
const KEY_LENGTH: usize = 32;
/// How long and how many session auth hashes [`Sessions`] remembers.
const AUTH_HASH_MEMO_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const AUTH_HASH_MEMO_CAPACITY: u64 = 10_000;

/// Session cookie settings.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Cookie name, default `sessionid`.
    pub cookie_name: String,
    /// Lifetime, default two weeks (Django's `SESSION_COOKIE_AGE`).
    pub max_age: Duration,
    /// Whether the cookie is `Secure`; default `false`.
    pub cookie_secure: bool,
    /// CSRF settings.
    pub csrf: CsrfConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cookie_name: "sessionid".into(),
            max_age: Duration::seconds(1_209_600),
            cookie_secure: false,
            csrf: CsrfConfig::default(),
        }
    }
}

/// What [`Sessions::login`] produced: the cookies to set.
pub struct Login {
    /// The new session key (the cookie's value).
    pub session_key: String,
    /// The new CSRF secret (the `csrftoken` cookie's value).
    pub csrf_secret: String,
    /// `Set-Cookie` for the session.
    pub session_cookie: HeaderValue,
    /// `Set-Cookie` for the CSRF secret.
    pub csrf_cookie: HeaderValue,
}

impl Login {
    /// A masked CSRF token for the new secret.
    pub fn csrf_token(&self) -> String {
        csrf::mask(&self.csrf_secret)
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Login(<redacted>)")
    }
}

/// Creates, finds and ends sessions.
#[derive(Clone)]
pub struct Sessions<S> {
    store: S,
    key_mac: Subkey,
    auth_hash_mac: Subkey,
    /// `auth_hash_mac` of password hashes seen lately, under the password
    /// hash: a store's own values, which no client chooses (foldhash
    /// suffices), shared by the clones.
    auth_hashes: Arc<FastCache<String, MacHex>>,
    config: SessionConfig,
}

impl<S> fmt::Debug for Sessions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore + UserStore + Clone> Sessions<S> {
    /// Sessions in `store`, keyed with `secret`, default settings.
    pub fn new(store: S, secret: SecretKey) -> Self {
        Sessions {
            store,
            key_mac: secret.subkey(KEY_PURPOSE),
            auth_hash_mac: secret.subkey(AUTH_HASH_PURPOSE),
            auth_hashes: Arc::new(FastCache::new(AUTH_HASH_MEMO_TTL, AUTH_HASH_MEMO_CAPACITY)),
            config: SessionConfig::default(),
        }
    }

    /// Replaces the settings.
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// The settings.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The keyed hash a session key is stored under.
    pub fn digest(&self, key: &str) -> String {
        self.key_mac.v1_digest(key.as_bytes()).as_str().to_owned()
    }

    /// Django's session auth hash: a keyed hash of the password hash.
    pub fn auth_hash(&self, password_hash: &str) -> String {
        self.auth_hash_mac
            .mac_hex(password_hash.as_bytes())
            .as_str()
            .to_owned()
    }

    /// Logs `user` in: ends the session `old_key` (if any) and creates a new
    /// one with a new CSRF secret.
    pub async fn login<U: AuthUser>(
        &self,
        user: &U,
        old_key: Option<&str>,
    ) -> Result<Login, StoreError> {
        if let Some(old) = old_key {
            self.store.delete_session(&self.digest(old)).await?;
        }
        let key = random_alphanumeric(KEY_LENGTH).to_ascii_lowercase();
        let record = SessionRecord {
            key_digest: self.digest(&key),
            user_id: user.id(),
            data: serde_json::json!({
                "_auth_user_id": user.id().to_string(),
                "_auth_user_hash": self.auth_hash(user.password_hash()),
            }),
            expires: Utc::now() + self.config.max_age,
        };
        self.store.save_session(&record).await?;
        self.store.touch_last_login(user.id(), Utc::now()).await?;
        let csrf_secret = csrf::new_secret();
        Ok(Login {
            session_cookie: self.cookie(&key, self.config.max_age.num_seconds()),
            csrf_cookie: csrf::cookie(&self.config.csrf, &csrf_secret),
            session_key: key,
            csrf_secret,
        })
    }

    /// Ends the session with this key; returns the `Set-Cookie` that
    /// clears the cookie.
    pub async fn logout(&self, key: &str) -> Result<HeaderValue, StoreError> {
        self.store.delete_session(&self.digest(key)).await?;
        Ok(self.cookie("", 0))
    }

    /// Ends every session of a user but `keep` (a session key), as a
    /// password change does.
    pub async fn end_sessions_of(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let keep = keep.map(|k| self.digest(k));
        self.store
            .delete_user_sessions(user_id, keep.as_deref())
            .await
    }

    fn cookie(&self, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.config.cookie_secure {
            "; Secure"
        } else {
            ""
        };
        HeaderValue::from_str(&format!(
            "{}={value}; HttpOnly; Max-Age={max_age}; Path=/; SameSite=Lax{secure}",
            self.config.cookie_name
        ))
        .expect("session cookies are ASCII")
    }

    /// The active user whose session this key is, if any.
    pub async fn user(&self, key: &str) -> Result<Option<S::User>, StoreError> {
        if !well_formed(key) {
            return Ok(None);
        }
        let digest = self.key_mac.v1_digest(key.as_bytes());
        let Some((session, Some(user))) = self.store.session_with_user(digest.as_str()).await?
        else {
            return Ok(None);
        };
        Ok(self.still_valid(&session, user))
    }

    /// [`user`](Self::user) answered from the store's cache, without
    /// waiting; `None` to ask the store.
    fn user_cached(&self, key: &str) -> Option<Option<S::User>> {
        if !well_formed(key) {
            return Some(None);
        }
        // Asked by the HMAC itself, not its hex: the cache holds only
        // sessions whose own digest is that HMAC's.
        let session = self
            .store
            .load_session_cached(&self.key_mac.mac(key.as_bytes()))?;
        let user = self.store.user_by_id_cached(session.user_id)?;
        Some(self.still_valid(&session, user))
    }

    /// The session's user, if the session was made for its current
    /// password hash and the user is active.
    fn still_valid(&self, session: &SessionRecord, user: S::User) -> Option<S::User> {
        let stored = session
            .data
            .get("_auth_user_hash")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let current = self.current_auth_hash(user.password_hash());
        if !crate::secret::ct_eq(stored.as_bytes(), current.as_bytes()) || !user.is_active() {
            return None;
        }
        Some(user)
    }

    /// [`auth_hash`](Self::auth_hash) of `password_hash`, on the stack, and
    /// remembered: this runs on every request.
    fn current_auth_hash(&self, password_hash: &str) -> MacHex {
        if let Some(known) = self.auth_hashes.get(password_hash) {
            return known;
        }
        let made = self.auth_hash_mac.mac_hex(password_hash.as_bytes());
        self.auth_hashes
            .insert(password_hash.to_owned(), made.clone());
        made
    }
}

/// Whether a cookie value can be a session key at all (what
/// [`Sessions::login`] makes): anything else is no session, and is not
/// looked up.
fn well_formed(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The session scheme.
#[derive(Clone, Debug)]
pub struct SessionAuth<S> {
    sessions: Sessions<S>,
}

impl<S: SessionStore + UserStore + Clone> SessionAuth<S> {
    /// Authenticates by the sessions' cookie.
    pub fn new(sessions: Sessions<S>) -> Self {
        SessionAuth { sessions }
    }
}

#[async_trait]
impl<S: SessionStore + UserStore + Clone> Scheme<S::User> for SessionAuth<S> {
    fn name(&self) -> &'static str {
        "session"
    }

    fn reads_authorization(&self) -> bool {
        false
    }

    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        req.cookie(&self.sessions.config.cookie_name).is_some()
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<S::User> {
        let Some(key) = req.cookie(&self.sessions.config.cookie_name) else {
            return Ok(None);
        };
        let user = self.sessions.user(key).await?;
        self.accept(req, user)
    }

    fn authenticate_now(&self, req: &RequestHead<'_>) -> Option<Outcome<S::User>> {
        if !self.sessions.store.remembers_reads() {
            // No cache to answer from: the cookie is read once, by
            // `authenticate`.
            return None;
        }
        let Some(key) = req.cookie(&self.sessions.config.cookie_name) else {
            return Some(Ok(None));
        };
        let user = self.sessions.user_cached(key)?;
        Some(self.accept(req, user))
    }

    fn form_field(&self, req: &RequestHead<'_>) -> Option<&str> {
        (!req.is_safe_method() && req.cookie(&self.sessions.config.cookie_name).is_some())
            .then_some(self.sessions.config.csrf.form_field.as_str())
    }
}

impl<S: SessionStore + UserStore + Clone> SessionAuth<S> {
    /// The answer for the session's user (if any): unsafe requests must
    /// also pass the CSRF check.
    fn accept(&self, req: &RequestHead<'_>, user: Option<S::User>) -> Outcome<S::User> {
        let Some(user) = user else {
            return Ok(None);
        };
        if !req.is_safe_method() {
            let form = req.extensions.get::<FormToken>().map(|t| t.0.as_str());
            self.sessions
                .config
                .csrf
                .check(req, form)
                .map_err(|reason| AuthError::denied(format!("CSRF Failed: {reason}")))?;
        }
        Ok(Some(Authenticated::new(user, "session")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::at_once::{answers_alike, cached_store_with_ada};

    #[tokio::test]
    async fn cached_sessions_are_answered_at_once_as_authenticate_would() {
        let (store, ada) = cached_store_with_ada().await;
        let sessions = Sessions::new(store, SecretKey::new([2u8; 32]).unwrap());
        let login = sessions.login(&ada, None).await.unwrap();
        let auth = SessionAuth::new(sessions.clone());
        let name = sessions.config().cookie_name.clone();
        let with_cookie = |method: http::Method, value: &str| {
            http::Request::builder()
                .method(method)
                .uri("/")
                .header("cookie", format!("{name}={value}"))
                .body(())
                .unwrap()
        };
        let get = with_cookie(http::Method::GET, &login.session_key);
        let head = RequestHead::from_request(&get);

        assert!(auth.authenticate_now(&head).is_none(), "nothing cached yet");
        auth.authenticate(&head).await.unwrap();
        answers_alike(&auth, &head).await;
        // An unsafe request without a CSRF token is refused, at once too.
        let post = with_cookie(http::Method::POST, &login.session_key);
        let post = RequestHead::from_request(&post);
        let refused = auth.authenticate(&post).await.unwrap_err().to_string();
        assert!(refused.starts_with("CSRF Failed"), "{refused}");
        answers_alike(&auth, &post).await;
        // A cookie that cannot be a session key is no session, at once.
        let junk = with_cookie(http::Method::GET, "../etc");
        answers_alike(&auth, &RequestHead::from_request(&junk)).await;

        // Logged out: the cached session is forgotten at once.
        sessions.logout(&login.session_key).await.unwrap();
        assert!(auth.authenticate_now(&head).is_none());
        assert!(auth.authenticate(&head).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_auth_hash_is_remembered_and_a_new_password_still_ends_the_session() {
        let (store, ada) = cached_store_with_ada().await;
        let sessions = Sessions::new(store.clone(), SecretKey::new([2u8; 32]).unwrap());
        store
            .set_password_hash(ada.id, "md5$salt$first")
            .await
            .unwrap();
        let ada = store.user_by_id(ada.id).await.unwrap().unwrap();
        let login = sessions.login(&ada, None).await.unwrap();
        assert_eq!(sessions.auth_hashes.len(), 0);
        assert!(sessions.user(&login.session_key).await.unwrap().is_some());
        let memo = sessions.auth_hashes.entries();
        assert_eq!(memo.len(), 1);
        assert_eq!(memo[0].0, "md5$salt$first");
        assert_eq!(memo[0].1.as_str(), sessions.auth_hash("md5$salt$first"));

        // The memo is what the check reads: a wrong entry fails it.
        let wrong = sessions.auth_hash_mac.mac_hex(b"something else");
        sessions
            .auth_hashes
            .insert("md5$salt$first".to_owned(), wrong);
        assert!(sessions.user(&login.session_key).await.unwrap().is_none());
        sessions.auth_hashes.invalidate_all();
        assert!(sessions.user(&login.session_key).await.unwrap().is_some());

        // A new password is another input: the session ends, although the
        // old password hash's entry is still remembered.
        store
            .set_password_hash(ada.id, "md5$salt$second")
            .await
            .unwrap();
        assert!(sessions.user(&login.session_key).await.unwrap().is_none());
        assert_eq!(sessions.auth_hashes.len(), 2);
    }

    #[tokio::test]
    async fn a_store_that_remembers_nothing_is_not_asked_at_once() {
        use crate::scheme::at_once::Forgetful;
        let (store, ada) = cached_store_with_ada().await;
        let sessions = Sessions::new(Forgetful(store), SecretKey::new([2u8; 32]).unwrap());
        let login = sessions.login(&ada, None).await.unwrap();
        let auth = SessionAuth::new(sessions.clone());
        let get = http::Request::get("/")
            .header("cookie", format!("sessionid={}", login.session_key))
            .body(())
            .unwrap();
        let head = RequestHead::from_request(&get);
        // Fills the cache behind the store, which says it remembers nothing.
        auth.authenticate(&head).await.unwrap().unwrap();
        // Nothing is answered at once: the cookie is read once, by
        // `authenticate`, which also turns junk away.
        let none = http::Request::get("/").body(()).unwrap();
        let junk = http::Request::get("/")
            .header("cookie", "sessionid=../etc")
            .body(())
            .unwrap();
        for req in [&get, &none, &junk] {
            assert!(auth
                .authenticate_now(&RequestHead::from_request(req))
                .is_none());
        }
        assert!(auth
            .authenticate(&RequestHead::from_request(&junk))
            .await
            .unwrap()
            .is_none());
        // A request without the cookie is still decided at once, by the
        // policy: the scheme sees no credentials.
        assert!(!auth.sees_credentials(&RequestHead::from_request(&none)));
    }
}
