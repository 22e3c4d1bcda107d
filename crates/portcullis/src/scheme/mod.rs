//! The [`Scheme`] trait: DRF's `BaseAuthentication`, and the schemes that
//! ship with portcullis.
//!
//! A scheme looks at the request and answers one of three things:
//!
//! | answer | meaning | what happens next |
//! |---|---|---|
//! | `Ok(None)` | no credentials of my kind | the next scheme runs |
//! | `Ok(Some(_))` | good credentials | the request is authenticated |
//! | `Err(_)` | my credentials, but bad | the request fails at once |
//!
//! Parse first, in a pure function, then verify against a store. A scheme
//! that can tell cheaply that a request carries none of its credentials
//! (no `Authorization` header, no session cookie) says so in
//! [`Scheme::sees_credentials`]; the policy then skips its `authenticate`,
//! which saves a boxed future on every request that is not for it.
//!
//! # A custom scheme
//!
//! DRF's guide authenticates the user named in a custom `X-Username` header.
//! [`scheme_fn`] turns a closure into a scheme; the example is complete:
//!
//! ```
//! use std::sync::Arc;
//! use axum::{routing::get, Router};
//! use portcullis::scheme::{scheme_fn, Authenticated, RequestHead};
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin, UserStore};
//! use portcullis::{AuthError, IsAuthenticated, Policy, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! store.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//!
//! let users = store.clone();
//! let x_username = scheme_fn("x-username", move |req: &RequestHead<'_>| {
//!     let users = users.clone();
//!     // Parse synchronously; the future owns what it needs.
//!     let name = req.headers.get("x-username").map(|v| v.to_str().map(str::to_owned));
//!     async move {
//!         let name = match name {
//!             None => return Ok(None), // not our credentials: pass
//!             Some(Err(_)) => return Err(AuthError::failed("Invalid username header.")),
//!             Some(Ok(name)) => name,
//!         };
//!         match users.user_by_username(&name).await? {
//!             Some(user) => Ok(Some(Authenticated::new(user, "x-username"))),
//!             None => Err(AuthError::failed("No such user")),
//!         }
//!     }
//! });
//!
//! let policy = Policy::<User>::new().scheme(x_username).permission(IsAuthenticated);
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(policy.layer());
//!
//! let ok = http::Request::get("/").header("x-username", "ada").body(axum::body::Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(ok).await.unwrap().status(), 200);
//! let bad = http::Request::get("/").header("x-username", "eve").body(axum::body::Body::empty()).unwrap();
//! assert_eq!(app.oneshot(bad).await.unwrap().status(), 403);
//! # });
//! ```

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, COOKIE};
use http::{Extensions, HeaderMap, Method, Uri};

use crate::error::AuthError;
use crate::identity::{AuthInfo, AuthUser, Identity};

mod auth_param;
pub mod basic;
pub mod csrf;
pub mod digest;
pub mod hawk;
#[cfg(feature = "httpsig")]
pub mod httpsig;
#[cfg(feature = "oauth1")]
pub mod oauth1;
pub mod remote_user;
pub mod session;
pub mod token;

/// The parts of a request a scheme may read: method, URI, headers and
/// extensions (where the layer leaves a pre-read form field, and where a
/// server leaves the peer address).
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request URI.
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request extensions.
    pub extensions: &'a Extensions,
}

impl<'a> RequestHead<'a> {
    /// A view of a request.
    pub fn from_request<B>(req: &'a http::Request<B>) -> Self {
        RequestHead {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }

    /// A view of request parts (what extractors get).
    pub fn from_parts(parts: &'a http::request::Parts) -> Self {
        RequestHead {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            extensions: &parts.extensions,
        }
    }

    /// The `Authorization` header, split on ASCII white space as DRF's
    /// `get_authorization_header(request).split()` does. Empty when absent.
    pub fn authorization_words(&self) -> Vec<&'a [u8]> {
        self.headers
            .get(AUTHORIZATION)
            .map(|v| split_ascii_whitespace(v.as_bytes()))
            .unwrap_or_default()
    }

    /// The first three words of the `Authorization` header, without
    /// allocating: enough for every scheme that splits it (a third word is
    /// always an error), so the schemes' parsers see the same as with
    /// [`authorization_words`](Self::authorization_words).
    pub(crate) fn authorization_words3(&self) -> Words3<'a> {
        let mut w = Words3 {
            words: [&[]; 3],
            len: 0,
        };
        if let Some(v) = self.headers.get(AUTHORIZATION) {
            let v: &'a [u8] = v.as_bytes();
            for word in ascii_words(v).take(3) {
                w.words[w.len] = word;
                w.len += 1;
            }
        }
        w
    }

    /// Whether the request sends `Authorization` more than once.
    /// `Authorization` is not a list header (RFC 9110 §11.6.2): two of them
    /// are a malformed request, and reading either could disagree with what
    /// a proxy in front checked, so the layer and the OAuth2 endpoints
    /// refuse it (see [`DUPLICATE_AUTHORIZATION`]).
    pub fn has_duplicate_authorization(&self) -> bool {
        has_duplicate_authorization(self.headers)
    }

    /// The value of a cookie, from every `Cookie` header.
    ///
    /// The first `name=value` pair whose name is exactly `name` decides; a
    /// value that is not UTF-8 is no value. Surrounding white space and
    /// double quotes are dropped from the value.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        cookie_in(self.headers, name)
    }

    /// Whether the method is safe (GET, HEAD, OPTIONS, TRACE).
    pub fn is_safe_method(&self) -> bool {
        is_safe_method(self.method)
    }
}

/// [`RequestHead::cookie`]. Bytes, not text: a stray non-ASCII byte in
/// some other cookie must not hide this one (browsers send whatever a site
/// set). This runs for every request a session route sees, so it scans
/// for the separators with `memchr` and compares the name in place.
fn cookie_in<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let name = name.as_bytes();
    // A pair's name ends at its first `=`: a name holding one never matches.
    if name.contains(&b'=') {
        return None;
    }
    for header in headers.get_all(COOKIE) {
        let mut rest = header.as_bytes();
        loop {
            let (pair, next) = match memchr::memchr(b';', rest) {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            let pair = pair.trim_ascii_start();
            if let Some(value) = pair
                .strip_prefix(name)
                .and_then(|after| after.strip_prefix(b"="))
            {
                // Quotes are ASCII, so trimming them byte by byte before
                // the UTF-8 check gives what trimming the text would.
                let mut value = value.trim_ascii();
                while let [b'"', rest @ ..] = value {
                    value = rest;
                }
                while let [rest @ .., b'"'] = value {
                    value = rest;
                }
                return std::str::from_utf8(value).ok();
            }
            match next {
                Some(next) => rest = next,
                None => break,
            }
        }
    }
    None
}

/// Whether `headers` hold `Authorization` more than once (see
/// [`RequestHead::has_duplicate_authorization`]).
pub fn has_duplicate_authorization(headers: &HeaderMap) -> bool {
    headers.get_all(AUTHORIZATION).iter().nth(1).is_some()
}

/// The `detail` when a request sends `Authorization` more than once
/// ([`RequestHead::has_duplicate_authorization`]).
pub const DUPLICATE_AUTHORIZATION: &str = "Invalid Authorization header. Sent more than once.";

/// GET, HEAD, OPTIONS and TRACE, as DRF's `SAFE_METHODS` (plus TRACE, as
/// Django's CSRF middleware).
pub fn is_safe_method(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Splits on runs of ASCII white space, like Python's `bytes.split()`.
pub fn split_ascii_whitespace(b: &[u8]) -> Vec<&[u8]> {
    ascii_words(b).collect()
}

fn ascii_words(b: &[u8]) -> AsciiWords<'_> {
    // A header value cannot hold `\n`, `\r` or form feed (the `http` crate
    // refuses them), so words normally end at a space or a tab, which
    // `memchr2` finds many bytes at a time: a JWT is a few hundred bytes,
    // split on every request. This one pass, without an early exit, is
    // vectorised too.
    let plain = !b
        .iter()
        .fold(false, |any, &c| any | matches!(c, b'\n' | b'\x0c' | b'\r'));
    AsciiWords { rest: b, plain }
}

/// The words of [`ascii_words`].
struct AsciiWords<'a> {
    rest: &'a [u8],
    /// No white space but spaces and tabs.
    plain: bool,
}

impl<'a> Iterator for AsciiWords<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|c| !c.is_ascii_whitespace())?;
        let rest = &self.rest[start..];
        let end = if self.plain {
            memchr::memchr2(b' ', b'\t', rest)
        } else {
            rest.iter().position(|c| c.is_ascii_whitespace())
        }
        .unwrap_or(rest.len());
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

/// Up to three words of a header; see
/// [`RequestHead::authorization_words3`].
pub(crate) struct Words3<'a> {
    words: [&'a [u8]; 3],
    len: usize,
}

impl<'a> std::ops::Deref for Words3<'a> {
    type Target = [&'a [u8]];
    fn deref(&self) -> &[&'a [u8]] {
        &self.words[..self.len]
    }
}

/// The request body, left in the request extensions by the layer when a
/// scheme asked for it ([`Scheme::wants_body`]): schemes that sign the
/// body (Digest's `auth-int`, Hawk's payload hash) read it from here. The
/// body is read up to the policy's
/// [`form_limit`](crate::Policy::form_limit) (larger: `413`) and handed on
/// to the handler intact.
#[derive(Clone, Debug, Default)]
pub struct RequestBody(pub Bytes);

/// A successful authentication: the user, what the scheme says about the
/// credential, and the scheme's name.
#[derive(Clone, Debug)]
pub struct Authenticated<U> {
    /// The user.
    pub user: U,
    /// DRF's `request.auth`; `None` for Basic, Session and RemoteUser.
    pub auth: Option<AuthInfo>,
    /// The scheme's name.
    pub scheme: &'static str,
}

impl<U> Authenticated<U> {
    /// A user authenticated by `scheme`, with no auth details.
    pub fn new(user: U, scheme: &'static str) -> Self {
        Authenticated {
            user,
            auth: None,
            scheme,
        }
    }

    /// Adds the auth details.
    pub fn with_auth(mut self, auth: AuthInfo) -> Self {
        self.auth = Some(auth);
        self
    }
}

impl<U> From<Authenticated<U>> for Identity<U> {
    fn from(a: Authenticated<U>) -> Self {
        Identity::User {
            user: a.user,
            auth: a.auth,
            scheme: a.scheme,
        }
    }
}

/// What [`Scheme::authenticate`] returns.
pub type Outcome<U> = Result<Option<Authenticated<U>>, AuthError>;

/// An authentication scheme: DRF's `BaseAuthentication`.
///
/// Implement [`authenticate`](Scheme::authenticate) and, if the scheme has
/// an HTTP challenge, [`challenge`](Scheme::challenge). See the
/// [module docs](self) for a complete custom scheme.
#[async_trait]
pub trait Scheme<U: AuthUser>: Send + Sync + 'static {
    /// A short name, used in logs and in [`Identity::scheme`](crate::Identity::scheme).
    fn name(&self) -> &'static str;

    /// Authenticates the request (see the table in the [module docs](self)).
    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<U>;

    /// [`authenticate`](Scheme::authenticate) answered without waiting,
    /// when the scheme can (its credential and user are in a cache); the
    /// layer then decides the request without a boxed future. `None`, the
    /// default, means "call `authenticate`". An answer must be the one
    /// `authenticate` would give, and `Ok(None)` must have no side effects:
    /// when a later scheme cannot answer at once, the layer runs every
    /// scheme again the usual way. The layer asks this before
    /// [`sees_credentials`](Scheme::sees_credentials), and asks that only
    /// when this answers `None`: a request without the scheme's
    /// credentials must get `Some(Ok(None))` or `None` here, never a user
    /// or an error.
    fn authenticate_now(&self, req: &RequestHead<'_>) -> Option<Outcome<U>> {
        let _ = req;
        None
    }

    /// The `WWW-Authenticate` value for a `401` (DRF's
    /// `authenticate_header`); `None` makes unauthenticated requests `403`.
    fn challenge(&self) -> Option<HeaderValue> {
        None
    }

    /// The name of a form field the scheme wants the layer to read from a
    /// form body before authentication, if any (the session scheme asks for
    /// `csrfmiddlewaretoken` on unsafe requests that carry its cookie). The
    /// layer leaves the value in the extensions as a
    /// [`FormToken`](csrf::FormToken).
    fn form_field(&self, req: &RequestHead<'_>) -> Option<&str> {
        let _ = req;
        None
    }

    /// Whether the scheme needs the whole request body to authenticate
    /// this request (a signature or MAC over the payload). The layer then
    /// reads the body, up to the policy's limit (`413` beyond it), hands it
    /// on intact and leaves a copy in the extensions as a [`RequestBody`].
    fn wants_body(&self, req: &RequestHead<'_>) -> bool {
        let _ = req;
        false
    }

    /// A cheap look, before [`authenticate`](Scheme::authenticate), for
    /// credentials of this scheme's kind. `false` promises that
    /// `authenticate` would answer `Ok(None)`, and the policy skips it
    /// (saving its boxed future); `true`, the default, runs it.
    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        let _ = req;
        true
    }

    /// Whether the scheme reads the `Authorization` header. On a route
    /// with such a scheme the layer refuses a request that sends the
    /// header twice; `true`, the default, is the safe answer for a scheme
    /// that might.
    fn reads_authorization(&self) -> bool {
        true
    }
}

#[async_trait]
impl<U: AuthUser, S: Scheme<U> + ?Sized> Scheme<U> for Arc<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<U> {
        (**self).authenticate(req).await
    }
    fn authenticate_now(&self, req: &RequestHead<'_>) -> Option<Outcome<U>> {
        (**self).authenticate_now(req)
    }
    fn challenge(&self) -> Option<HeaderValue> {
        (**self).challenge()
    }
    fn form_field(&self, req: &RequestHead<'_>) -> Option<&str> {
        (**self).form_field(req)
    }
    fn wants_body(&self, req: &RequestHead<'_>) -> bool {
        (**self).wants_body(req)
    }
    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        (**self).sees_credentials(req)
    }
    fn reads_authorization(&self) -> bool {
        (**self).reads_authorization()
    }
}

/// A scheme made from a closure; see [`scheme_fn`].
pub struct FnScheme<F> {
    name: &'static str,
    f: F,
    challenge: Option<HeaderValue>,
}

impl<F> FnScheme<F> {
    /// Gives the scheme a `WWW-Authenticate` challenge.
    pub fn with_challenge(mut self, challenge: HeaderValue) -> Self {
        self.challenge = Some(challenge);
        self
    }
}

/// Makes a scheme from a closure that reads the request head synchronously
/// and returns a future that owns what it needs.
pub fn scheme_fn<U, F, Fut>(name: &'static str, f: F) -> FnScheme<F>
where
    U: AuthUser,
    F: Fn(&RequestHead<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome<U>> + Send + 'static,
{
    FnScheme {
        name,
        f,
        challenge: None,
    }
}

#[async_trait]
impl<U, F, Fut> Scheme<U> for FnScheme<F>
where
    U: AuthUser,
    F: Fn(&RequestHead<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome<U>> + Send + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }
    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<U> {
        (self.f)(req).await
    }
    fn challenge(&self) -> Option<HeaderValue> {
        self.challenge.clone()
    }
}

/// What the tests of the schemes' at-once answers share.
#[cfg(test)]
pub(crate) mod at_once {
    use super::*;
    use crate::cache::CachedStore;
    use crate::store::{
        DigestMac, MemoryStore, NewUser, SessionRecord, SessionStore, StoreError, TokenRecord,
        TokenStore, UserAdmin, UserStore,
    };
    use crate::User;

    /// A store with read caches (a minute) and an active user `ada` in it.
    pub(crate) async fn cached_store_with_ada() -> (CachedStore<MemoryStore>, User) {
        let store = CachedStore::new(MemoryStore::new(), std::time::Duration::from_secs(60));
        let ada = store
            .create_user(NewUser {
                username: "ada".into(),
                is_active: true,
                ..Default::default()
            })
            .await
            .unwrap();
        (store, ada)
    }

    /// A cached store that says it remembers nothing
    /// ([`UserStore::remembers_reads`] is `false`) while its `_cached`
    /// reads still answer: a scheme that consults them anyway shows.
    #[derive(Clone)]
    pub(crate) struct Forgetful(pub(crate) CachedStore<MemoryStore>);

    #[async_trait]
    impl UserStore for Forgetful {
        type User = User;
        async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
            self.0.user_by_id(id).await
        }
        fn user_by_id_cached(&self, id: i64) -> Option<User> {
            self.0.user_by_id_cached(id)
        }
        async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
            self.0.user_by_username(username).await
        }
    }

    #[async_trait]
    impl TokenStore for Forgetful {
        async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
            self.0.token_by_digest(digest).await
        }
        fn token_by_digest_cached(&self, mac: &DigestMac) -> Option<Arc<TokenRecord>> {
            self.0.token_by_digest_cached(mac)
        }
        async fn token_for_user(&self, user_id: i64) -> Result<Option<TokenRecord>, StoreError> {
            self.0.token_for_user(user_id).await
        }
        async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
            self.0.insert_token(token).await
        }
        async fn delete_token(&self, user_id: i64) -> Result<bool, StoreError> {
            self.0.delete_token(user_id).await
        }
    }

    #[async_trait]
    impl SessionStore for Forgetful {
        async fn load_session(&self, digest: &str) -> Result<Option<SessionRecord>, StoreError> {
            self.0.load_session(digest).await
        }
        fn load_session_cached(&self, mac: &DigestMac) -> Option<Arc<SessionRecord>> {
            self.0.load_session_cached(mac)
        }
        async fn save_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
            self.0.save_session(session).await
        }
        async fn delete_session(&self, digest: &str) -> Result<(), StoreError> {
            self.0.delete_session(digest).await
        }
        async fn delete_user_sessions(
            &self,
            user_id: i64,
            keep: Option<&str>,
        ) -> Result<u64, StoreError> {
            self.0.delete_user_sessions(user_id, keep).await
        }
        async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
            self.0.purge_expired_sessions().await
        }
    }

    /// Asserts that `scheme` answers the request at once, as it does the
    /// usual way: the same user, scheme name and auth description, or the
    /// same error.
    pub(crate) async fn answers_alike<U: AuthUser>(
        scheme: &impl Scheme<U>,
        head: &RequestHead<'_>,
    ) {
        let now = scheme
            .authenticate_now(head)
            .expect("answered at once")
            .map_err(|e| e.to_string());
        let full = scheme.authenticate(head).await.map_err(|e| e.to_string());
        let seen = |r: Result<Option<Authenticated<U>>, String>| {
            r.map(|found| {
                found.map(|a| {
                    let auth = a.auth.map(|i| i.description().to_owned());
                    (a.user.id(), a.scheme, auth)
                })
            })
        };
        assert_eq!(seen(now), seen(full));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_python_bytes_split() {
        assert_eq!(
            split_ascii_whitespace(b"  Token \t abc  def "),
            vec![&b"Token"[..], b"abc", b"def"]
        );
        assert!(split_ascii_whitespace(b"   ").is_empty());
    }

    #[test]
    fn the_fast_split_agrees_with_the_plain_one() {
        fn plain(b: &[u8]) -> Vec<&[u8]> {
            b.split(|c| c.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
                .collect()
        }
        let parts: [&[u8]; 12] = [
            b"",
            b" ",
            b"\t",
            b"\n",
            b"\r",
            b"\x0c",
            b"\x0b",
            b"a",
            b"Bearer",
            b"\xff\xe9",
            b"x.y-z_",
            b"  \t ",
        ];
        // Every sequence of up to four parts, so separators, runs of them,
        // and the rarer white space land at the start, the end and between
        // words, in both the space-and-tab and the general case.
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let mut longer = Vec::new();
            for case in &cases {
                for part in parts {
                    let mut c = case.clone();
                    c.extend_from_slice(part);
                    longer.push(c);
                }
            }
            cases.extend(longer);
        }
        cases.push([b'a'; 300].iter().chain(b" \tb").copied().collect());
        for case in &cases {
            assert_eq!(split_ascii_whitespace(case), plain(case), "{case:?}");
        }
    }

    #[test]
    fn reads_cookies_from_every_header() {
        let req = http::Request::get("/")
            .header(COOKIE, "a=1; sessionid=abc")
            .header(COOKIE, "csrftoken=\"xyz\"")
            .body(())
            .unwrap();
        let head = RequestHead::from_request(&req);
        assert_eq!(head.cookie("sessionid"), Some("abc"));
        assert_eq!(head.cookie("csrftoken"), Some("xyz"));
        assert_eq!(head.cookie("missing"), None);
    }

    #[test]
    fn cookies_are_found_as_the_plain_split_finds_them() {
        // The straightforward reading, kept as the reference.
        fn plain<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
            headers
                .get_all(COOKIE)
                .iter()
                .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
                .filter_map(|pair| {
                    let pair = pair.trim_ascii();
                    let eq = pair.iter().position(|&b| b == b'=')?;
                    Some((&pair[..eq], &pair[eq + 1..]))
                })
                .find(|(k, _)| *k == name.as_bytes())
                .and_then(|(_, v)| std::str::from_utf8(v.trim_ascii()).ok())
                .map(|v| v.trim_matches('"'))
        }
        let parts: [&[u8]; 16] = [
            b"sid=abc",
            b"sid=",
            b"sid",
            b" sid = x",
            b"sid =x",
            b"\tsid=\"q\" ",
            b"sid=\"\"v\"\"",
            b"sid=\"\xff\"",
            b"sid=\"",
            b"sid=\xff",
            b"sidx=1",
            b"xsid=2",
            b"a=b=c",
            b";",
            b" ",
            b"sid=a;b",
        ];
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..3 {
            let mut longer = Vec::new();
            for case in &cases {
                for part in parts {
                    let mut c = case.clone();
                    if !c.is_empty() {
                        c.push(b';');
                    }
                    c.extend_from_slice(part);
                    longer.push(c);
                }
            }
            cases.extend(longer);
        }
        let names = ["sid", "a", "a=b", "x", ""];
        for (i, case) in cases.iter().enumerate() {
            let mut headers = HeaderMap::new();
            let Ok(value) = HeaderValue::from_bytes(case) else {
                continue;
            };
            headers.append(COOKIE, value);
            // Every other case also with a second header after it.
            if i % 2 == 1 {
                headers.append(COOKIE, HeaderValue::from_static("sid=second; a=2"));
            }
            for name in names {
                assert_eq!(
                    cookie_in(&headers, name),
                    plain(&headers, name),
                    "{case:?} {name:?}"
                );
            }
        }
    }

    #[test]
    fn a_non_ascii_cookie_hides_no_other() {
        let req = http::Request::get("/")
            .header(
                COOKIE,
                http::HeaderValue::from_bytes(b"pref=caf\xe9; sessionid=abc; x=\xff\xfe").unwrap(),
            )
            .body(())
            .unwrap();
        let head = RequestHead::from_request(&req);
        assert_eq!(head.cookie("sessionid"), Some("abc"));
        // A value that is not UTF-8 is no value.
        assert_eq!(head.cookie("x"), None);
        assert_eq!(head.cookie("pref"), None);
    }

    #[test]
    fn safe_methods() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(is_safe_method(&m));
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!is_safe_method(&m));
        }
    }
}
