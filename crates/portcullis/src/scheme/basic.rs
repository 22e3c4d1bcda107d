//! HTTP Basic authentication (RFC 7617), DRF's `BasicAuthentication`.
//!
//! `Authorization: Basic base64(username:password)`, checked through a
//! [`PasswordBackend`]. The credentials are decoded as UTF-8, else as
//! Latin-1, as DRF does. On `401` the challenge is `Basic realm="api"`
//! (the realm is configurable).
//!
//! With a [`Lockout`](crate::lockout::Lockout) on the backend
//! ([`PasswordBackend::with_lockout`]), every wrong password counts against
//! the username and the client's address, and a locked-out attempt gets
//! `429` with `Retry-After`, even with the right password.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use portcullis::password::{HasherConfig, PasswordHasher};
//! use portcullis::scheme::basic::Basic;
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin};
//! use portcullis::{IsAuthenticated, PasswordBackend, Policy, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let hasher = PasswordHasher::new(HasherConfig::fast_for_tests());
//! let hash = hasher.hash("s3cret").await.unwrap();
//! store.create_user(NewUser { username: "ada".into(), password_hash: hash, is_active: true, ..Default::default() })
//!     .await.unwrap();
//!
//! let basic = Basic::new(PasswordBackend::new(store, hasher));
//! let policy = Policy::<User>::new().scheme(basic).permission(IsAuthenticated);
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(policy.layer());
//!
//! let good = http::Request::get("/").header("authorization", "Basic YWRhOnMzY3JldA==") // ada:s3cret
//!     .body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(good).await.unwrap().status(), 200);
//! let bad = http::Request::get("/").header("authorization", "Basic YWRhOndyb25n") // ada:wrong
//!     .body(Body::empty()).unwrap();
//! let res = app.oneshot(bad).await.unwrap();
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], "Basic realm=\"api\"");
//! # });
//! ```

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderValue;

use crate::backend::{LoginOutcome, PasswordBackend};
use crate::error::AuthError;
use crate::scheme::{Authenticated, Outcome, RequestHead, Scheme};
use crate::store::UserStore;

/// DRF's messages.
pub(crate) const NO_CREDENTIALS: &str = "Invalid basic header. No credentials provided.";
pub(crate) const SPACES: &str =
    "Invalid basic header. Credentials string should not contain spaces.";
pub(crate) const BAD_BASE64: &str =
    "Invalid basic header. Credentials not correctly base64 encoded.";
/// DRF's message for wrong credentials.
pub const INVALID_CREDENTIALS: &str = "Invalid username/password.";

/// Parses an `Authorization` header's words into `(username, password)`.
///
/// `Ok(None)` when the header is absent or not Basic.
pub fn parse(words: &[&[u8]]) -> Result<Option<(String, String)>, AuthError> {
    match words.first() {
        Some(kw) if kw.eq_ignore_ascii_case(b"basic") => {}
        _ => return Ok(None),
    }
    match words.len() {
        1 => return Err(AuthError::failed(NO_CREDENTIALS)),
        2 => {}
        _ => return Err(AuthError::failed(SPACES)),
    }
    let raw = STANDARD
        .decode(words[1])
        .map_err(|_| AuthError::failed(BAD_BASE64))?;
    let text = match String::from_utf8(raw) {
        Ok(s) => s,
        // Latin-1: every byte is the code point of the same value.
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    };
    // No colon: not `username:password`, so a malformed header (DRF's
    // `split(':', 1)` fails the same way), never a login attempt.
    let (user, pass) = text
        .split_once(':')
        .ok_or_else(|| AuthError::failed(BAD_BASE64))?;
    Ok(Some((user.to_owned(), pass.to_owned())))
}

/// The longest base64 credentials tried on the at-once path.
const MAX_AT_ONCE: usize = 1024;

/// The Basic scheme.
#[derive(Debug, Clone)]
pub struct Basic<S> {
    backend: PasswordBackend<S>,
    challenge: HeaderValue,
}

impl<S: UserStore + Clone> Basic<S> {
    /// Basic over a password backend, realm `api`.
    pub fn new(backend: PasswordBackend<S>) -> Self {
        Basic {
            backend,
            challenge: HeaderValue::from_static("Basic realm=\"api\""),
        }
    }

    /// Sets the realm of the challenge.
    ///
    /// # Panics
    ///
    /// If the realm contains a `"`, `\` or a control character; this is
    /// checked when the scheme is built, never per request.
    pub fn realm(mut self, realm: &str) -> Self {
        assert!(
            !realm
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control()),
            "a Basic realm may not contain quotes, backslashes or control characters"
        );
        self.challenge =
            HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")).expect("checked above");
        self
    }
}

#[async_trait]
impl<S: UserStore + Clone> Scheme<S::User> for Basic<S> {
    fn name(&self) -> &'static str {
        "basic"
    }

    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        req.headers.contains_key(http::header::AUTHORIZATION)
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<S::User> {
        let Some((username, password)) = parse(&req.authorization_words3())? else {
            return Ok(None);
        };
        let client = self.backend.lockout().and_then(|l| l.client_addr(req));
        match self
            .backend
            .authenticate_from(&username, &password, client)
            .await?
        {
            // The backend never authenticates inactive users (Django's
            // ModelBackend): they get the wrong-password answer below.
            LoginOutcome::Authenticated(user) => Ok(Some(Authenticated::new(user, "basic"))),
            LoginOutcome::Invalid => Err(AuthError::failed(INVALID_CREDENTIALS)),
            LoginOutcome::LockedOut { wait } => Err(crate::throttle::throttled(wait)),
        }
    }

    /// Another scheme's `Authorization` header is nothing for Basic, at
    /// once (so a Token request on a route that lists Basic first is
    /// still decided without waiting). Basic credentials are accepted at
    /// once when the backend can vouch for them from its caches
    /// ([`PasswordBackend::authenticate_now`]); anything else (a miss, a
    /// wrong password, a malformed header) waits for the usual path.
    fn authenticate_now(&self, req: &RequestHead<'_>) -> Option<Outcome<S::User>> {
        let words = req.authorization_words3();
        let basic = words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case(b"basic"));
        if !basic {
            return Some(Ok(None));
        }
        // Anything unusual (a malformed or very long header) takes the
        // usual path, which says what is wrong.
        if words.len() != 2 || words[1].len() > MAX_AT_ONCE {
            return None;
        }
        thread_local! {
            // Decoded credentials, reused (and zeroed after each use): this
            // path does not allocate.
            static DECODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let user = DECODED.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            let user = STANDARD.decode_vec(words[1], &mut buf).ok().and_then(|()| {
                // Latin-1 credentials (not UTF-8) take the usual path.
                let text = std::str::from_utf8(&buf).ok()?;
                // No colon: the usual path refuses the header.
                let (username, password) = text.split_once(':')?;
                let client = self.backend.lockout().and_then(|l| l.client_addr(req));
                self.backend.authenticate_now(username, password, client)
            });
            buf.fill(0);
            user
        })?;
        Some(Ok(Some(Authenticated::new(user, "basic"))))
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(self.challenge.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(h: &str) -> Vec<&[u8]> {
        crate::scheme::split_ascii_whitespace(h.as_bytes())
    }

    fn msg(r: Result<Option<(String, String)>, AuthError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn other_keywords_pass() {
        assert!(parse(&words("Token abc")).unwrap().is_none());
        assert!(parse(&[]).unwrap().is_none());
    }

    #[test]
    fn other_keywords_pass_at_once_and_basic_waits() {
        use crate::password::{HasherConfig, PasswordHasher};
        use crate::store::MemoryStore;
        use crate::{PasswordBackend, User};
        let basic = Basic::new(PasswordBackend::new(
            MemoryStore::new(),
            PasswordHasher::new(HasherConfig::default()),
        ));
        let now = |value: &str| {
            let req = http::Request::get("/")
                .header("authorization", value)
                .body(())
                .unwrap();
            let answer: Option<Outcome<User>> =
                basic.authenticate_now(&RequestHead::from_request(&req));
            answer.map(|o| o.map(|a| a.is_some()).map_err(|e| e.to_string()))
        };
        assert_eq!(now("Token abc"), Some(Ok(false)));
        assert_eq!(now("Bearer x.y.z"), Some(Ok(false)));
        assert_eq!(now("Basic YWRhOnB3"), None);
        assert_eq!(
            now("basic"),
            None,
            "malformed Basic: the full path says why"
        );
    }

    #[tokio::test]
    async fn remembered_credentials_are_accepted_at_once_and_nothing_else_is() {
        use crate::cache::CredentialCache;
        use crate::lockout::Lockout;
        use crate::password::{HasherConfig, PasswordHasher};
        use crate::scheme::at_once::{answers_alike, cached_store_with_ada};
        use crate::store::UserAdmin;
        use crate::{PasswordBackend, SecretKey};
        use std::time::Duration;

        let (store, ada) = cached_store_with_ada().await;
        let hasher = PasswordHasher::new(HasherConfig::fast_for_tests());
        let hash = hasher.hash("pw").await.unwrap();
        store.set_password_hash(ada.id, &hash).await.unwrap();
        let secret = SecretKey::new("basic-at-once-test-secret-0123456789").unwrap();
        let lockout = Lockout::memory().with_clear_cache(Duration::from_secs(60));
        let basic = Basic::new(
            PasswordBackend::new(store.clone(), hasher)
                .with_credential_cache(CredentialCache::new(&secret, Duration::from_secs(60)))
                .with_lockout(lockout.clone()),
        );
        let request = |value: &str| {
            http::Request::get("/")
                .header("authorization", value)
                .body(())
                .unwrap()
        };
        let good = request("Basic YWRhOnB3"); // ada:pw
        let wrong = request("Basic YWRhOnd4"); // ada:wx
        let head = RequestHead::from_request(&good);
        let now = |req: &http::Request<()>| {
            basic
                .authenticate_now(&RequestHead::from_request(req))
                .map(|o| o.map(|a| a.map(|a| a.user.id)).map_err(|e| e.to_string()))
        };

        assert_eq!(now(&good), None, "nothing verified yet");
        basic.authenticate(&head).await.unwrap().unwrap();
        assert_eq!(now(&good), Some(Ok(Some(ada.id))));
        answers_alike(&basic, &head).await;
        assert_eq!(now(&wrong), None, "a wrong password waits to be counted");
        for odd in ["Basic !!!", "Basic YWRh OnB3"] {
            // Malformed: the usual path says what is wrong.
            assert_eq!(now(&request(odd)), None, "{odd}");
            assert!(basic
                .authenticate(&RequestHead::from_request(&request(odd)))
                .await
                .is_err());
        }
        // Latin-1 credentials and very long ones, remembered by the usual
        // path, are still left to it.
        let long_password = "x".repeat(800);
        for (name, password) in [("\u{e9}", "pw"), ("lin", long_password.as_str())] {
            let hash = basic.backend.hasher().hash(password).await.unwrap();
            store
                .create_user(crate::store::NewUser {
                    username: name.into(),
                    password_hash: hash,
                    is_active: true,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let latin1 = request(&format!("Basic {}", STANDARD.encode(b"\xe9:pw")));
        let long = request(&format!(
            "Basic {}",
            STANDARD.encode(format!("lin:{long_password}"))
        ));
        for req in [&latin1, &long] {
            let head = RequestHead::from_request(req);
            assert!(basic.authenticate(&head).await.unwrap().is_some());
            assert!(basic.authenticate(&head).await.unwrap().is_some());
            assert_eq!(now(req), None);
        }

        store.set_active(ada.id, false).await.unwrap();
        store.user_by_username("ada").await.unwrap();
        assert_eq!(now(&good), None, "an inactive user waits to be refused");
        store.set_active(ada.id, true).await.unwrap();
        basic.authenticate(&head).await.unwrap().unwrap();
        assert_eq!(now(&good), Some(Ok(Some(ada.id))));

        lockout.record_failure("ada", None).await.unwrap();
        assert_eq!(now(&good), None, "a counted failure is read from the store");
        assert!(basic.authenticate(&head).await.unwrap().is_some());
    }

    #[test]
    fn keyword_is_case_insensitive() {
        let p = parse(&words("bAsIc YWRhOnB3")).unwrap().unwrap();
        assert_eq!(p, ("ada".into(), "pw".into()));
    }

    #[test]
    fn missing_credentials() {
        assert_eq!(msg(parse(&words("Basic"))), NO_CREDENTIALS);
    }

    #[test]
    fn spaces_in_credentials() {
        assert_eq!(msg(parse(&words("Basic a b"))), SPACES);
    }

    #[test]
    fn bad_base64() {
        assert_eq!(msg(parse(&words("Basic !!!"))), BAD_BASE64);
        assert_eq!(msg(parse(&words("Basic YWR"))), BAD_BASE64);
    }

    #[test]
    fn password_may_contain_colons_and_be_empty() {
        let p = parse(&words("Basic YTpiOmM=")).unwrap().unwrap(); // a:b:c
        assert_eq!(p, ("a".into(), "b:c".into()));
        let p = parse(&words("Basic YWRhOg==")).unwrap().unwrap(); // "ada:"
        assert_eq!(p, ("ada".into(), "".into()));
    }

    #[test]
    fn credentials_without_a_colon_are_a_malformed_header() {
        assert_eq!(msg(parse(&words("Basic YWRh"))), BAD_BASE64); // "ada"
        assert_eq!(msg(parse(&words("Basic AAAA"))), BAD_BASE64); // three NULs
    }

    #[test]
    fn latin1_fallback() {
        // "é:x" in Latin-1 is 0xE9 0x3A 0x78.
        let enc = STANDARD.encode([0xE9, b':', b'x']);
        let p = parse(&words(&format!("Basic {enc}"))).unwrap().unwrap();
        assert_eq!(p, ("é".into(), "x".into()));
    }
}
