//! HTTP Digest authentication (RFC 7616): SHA-256 and MD5, their `-sess`
//! forms, qop `auth` and `auth-int`.
//!
//! The `401` challenge offers SHA-256 first, then MD5 (one challenge each,
//! as separate `WWW-Authenticate` headers when the route renders
//! rejections with [`Digest::render_rejection`]), with
//! `qop="auth, auth-int"`, a fresh nonce and an `opaque` value.
//!
//! - **Nonces carry their own proof.** A nonce is its issue time, eight
//!   random bytes and an HMAC of both under a subkey of the
//!   [`SecretKey`]: the server keeps nothing to issue one and checks it by
//!   recomputing the MAC. Past its lifetime (default 300 s) a nonce is
//!   *stale*: a request that was otherwise right gets the challenge again
//!   with `stale=true`, so the client retries without asking its user.
//! - **Each nonce count is accepted once.** `(nonce, nc, username)` goes
//!   through the [`ReplayCache`] for the nonce's lifetime; a replayed
//!   `Authorization` header gets the `401` challenge. Responses are
//!   compared in constant time.
//! - **The realm digest is password-equivalent.** Digest cannot use the
//!   PBKDF2 password hash, so when a password is set the realm digests
//!   (HA1 = H(username:realm:password), for MD5 and SHA-256) are kept too,
//!   sealed with the secret key ([`store_password`]). Whoever holds an HA1
//!   *and* the secret key can authenticate as that user in that realm
//!   (not elsewhere, and not with Basic or the login form); the database
//!   alone is not enough. The sealed value is bound to the user's id and
//!   current password hash: when the password changes by any path, or is
//!   made unusable, the old digests stop working at once, and Digest
//!   refuses the user until a password is set through [`store_password`]
//!   again (the CLI's `createuser --password` and `changepassword` do).
//!   That includes the re-hash [`PasswordBackend`](crate::PasswordBackend)
//!   does after a successful login when the hasher's work factor was
//!   raised: the new hash voids the digest.
//!   Users who never need Digest can simply have no realm digest.
//! - **Failures count towards the login lockout**, unknown usernames like
//!   known ones, with the same work done for both (a store read, an
//!   unsealing, the hashes), and a locked-out attempt gets `429`.
//! - Inactive users are refused like a wrong password.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::header::WWW_AUTHENTICATE;
//! use portcullis::replay::MemoryReplayCache;
//! use portcullis::scheme::digest::{self, Algorithm, Client, Digest};
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin};
//! use portcullis::{IsAuthenticated, Policy, SecretKey, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let secret = SecretKey::new([7u8; 32]).unwrap();
//! let ada = store.create_user(NewUser {
//!     username: "ada".into(), password_hash: "pbkdf2_sha256$1$salt$hash".into(),
//!     is_active: true, ..Default::default()
//! }).await.unwrap();
//! digest::store_password(&store, &secret, "api", &ada, Some("s3cret")).await.unwrap();
//!
//! let scheme = Digest::new(store, secret, MemoryReplayCache::new());
//! let nonce = scheme.nonce();
//! let render = scheme.clone();
//! let policy = Policy::<User>::new()
//!     .scheme(scheme)
//!     .permission(IsAuthenticated)
//!     .on_rejection(move |r| render.render_rejection(r));
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(policy.layer());
//!
//! // No credentials: two challenges, SHA-256 first.
//! let res = app.clone().oneshot(http::Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), 401);
//! let offers: Vec<_> = res.headers().get_all(WWW_AUTHENTICATE).iter().collect();
//! assert!(offers[0].to_str().unwrap().contains("algorithm=SHA-256"));
//! assert!(offers[1].to_str().unwrap().contains("algorithm=MD5"));
//!
//! let mut client = Client::new("ada", "s3cret", "api", &nonce, "GET", "/");
//! client.algorithm = Algorithm::Sha256;
//! let good = http::Request::get("/").header("authorization", client.authorization())
//!     .body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(good).await.unwrap().status(), 200);
//! // The same header again is a replay.
//! let again = http::Request::get("/").header("authorization", client.authorization())
//!     .body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(again).await.unwrap().status(), 401);
//! # });
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use md5::Md5;
use rand::RngCore;
use sha2::{Digest as _, Sha256};

use super::auth_param::{self, ParamError};
use crate::error::{AuthError, Failure, Rejection};
use crate::identity::AuthUser;
use crate::lockout::Lockout;
use crate::replay::ReplayCache;
use crate::scheme::{Authenticated, Outcome, RequestBody, RequestHead, Scheme};
use crate::secret::{SecretKey, Subkey};
use crate::store::{StoreError, UserStore};

/// The nonce lifetime by default: five minutes.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// The realm by default.
pub const DEFAULT_REALM: &str = "api";

/// Wrong username or password, an inactive user, or no realm digest.
pub const INVALID_CREDENTIALS: &str = "Invalid username/password.";
/// The header is not a well-formed Digest credential.
pub const MALFORMED: &str = "Invalid digest header. Malformed parameters.";
/// A required parameter is missing.
pub const MISSING: &str =
    "Invalid digest header. Missing username, realm, nonce, uri, response, qop, nc or cnonce.";
/// `algorithm`, `qop` or `userhash` names something not offered.
pub const UNSUPPORTED: &str = "Invalid digest header. Unsupported algorithm, qop or userhash.";
/// The nonce was not issued here, or the realm or opaque value differs.
pub const INVALID_NONCE: &str = "Invalid digest nonce.";
/// The `uri` parameter names another resource than the request.
pub const URI_MISMATCH: &str = "Invalid digest header. The uri does not match the request.";
/// The nonce is past its lifetime (answered with `stale=true`).
pub const STALE_NONCE: &str = "Digest nonce expired.";
/// The nonce count was already used with this nonce.
pub const REPLAYED: &str = "Digest nonce count already used.";

/// A Digest hash algorithm (RFC 7616 §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5`, the default when a client names none.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// The algorithm a header names, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The name as RFC 7616 writes it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    fn is_sha256(self) -> bool {
        matches!(self, Algorithm::Sha256 | Algorithm::Sha256Sess)
    }

    /// Lowercase hex of the hash of the parts joined by `:`.
    fn hex(self, parts: &[&[u8]]) -> String {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            hex::encode(d.finalize())
        }
        if self.is_sha256() {
            run::<Sha256>(parts)
        } else {
            run::<Md5>(parts)
        }
    }
}

/// The quality of protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qop {
    /// `auth`: method and URI are covered.
    Auth,
    /// `auth-int`: the body is covered too.
    AuthInt,
}

impl Qop {
    fn name(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// The parameters of a Digest `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username (from `username`, or `username*` decoded).
    pub username: String,
    /// The realm.
    pub realm: String,
    /// The server nonce.
    pub nonce: String,
    /// The request target the client signed.
    pub uri: String,
    /// The client's response, lowercase hex.
    pub response: String,
    /// The algorithm (MD5 when absent).
    pub algorithm: Algorithm,
    /// The quality of protection.
    pub qop: Qop,
    /// The nonce count, eight hex digits as sent.
    pub nc: String,
    /// The client nonce.
    pub cnonce: String,
    /// The opaque value, if returned.
    pub opaque: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("algorithm", &self.algorithm)
            .field("qop", &self.qop)
            .field("nc", &self.nc)
            .finish_non_exhaustive()
    }
}

fn failed(detail: &'static str) -> AuthError {
    AuthError::failed(detail)
}

/// Decodes RFC 8187 `UTF-8''percent-encoded` (for `username*`).
fn ext_value(v: &str) -> Option<String> {
    let (charset, rest) = v.split_once('\'')?;
    let (_lang, encoded) = rest.split_once('\'')?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    let b = encoded.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses an `Authorization` header value: `Ok(None)` when it is not
/// Digest, an error when it is Digest but malformed, missing a required
/// parameter, repeating one, or naming an unsupported algorithm or qop.
pub fn parse(value: &HeaderValue) -> Result<Option<Credentials>, AuthError> {
    let Ok(text) = value.to_str() else {
        let b = value.as_bytes();
        return if b.len() >= 7 && b[..7].eq_ignore_ascii_case(b"digest ") {
            Err(failed(MALFORMED))
        } else {
            Ok(None)
        };
    };
    let Some(rest) = auth_param::strip_keyword(text, "digest") else {
        return Ok(None);
    };
    let params = auth_param::parse(rest).map_err(|e| match e {
        ParamError::TooLong | ParamError::Syntax | ParamError::Duplicate => failed(MALFORMED),
    })?;
    let get = |n: &str| auth_param::get(&params, n);
    let username = match (get("username"), get("username*")) {
        (Some(u), None) => u.to_owned(),
        (None, Some(ext)) => ext_value(ext).ok_or_else(|| failed(MALFORMED))?,
        (Some(_), Some(_)) => return Err(failed(MALFORMED)),
        (None, None) => return Err(failed(MISSING)),
    };
    if get("userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(failed(UNSUPPORTED));
    }
    let need = |n: &str| get(n).map(str::to_owned).ok_or_else(|| failed(MISSING));
    let algorithm = match get("algorithm") {
        None => Algorithm::Md5,
        Some(a) => Algorithm::from_name(a).ok_or_else(|| failed(UNSUPPORTED))?,
    };
    let qop = match get("qop") {
        None => return Err(failed(MISSING)),
        Some(q) if q.eq_ignore_ascii_case("auth") => Qop::Auth,
        Some(q) if q.eq_ignore_ascii_case("auth-int") => Qop::AuthInt,
        Some(_) => return Err(failed(UNSUPPORTED)),
    };
    let nc = need("nc")?;
    // Eight hex digits, counting from 00000001 (RFC 7616 §3.4).
    if nc.len() != 8 || !nc.bytes().all(|c| c.is_ascii_hexdigit()) || nc == "00000000" {
        return Err(failed(MALFORMED));
    }
    let response = need("response")?.to_ascii_lowercase();
    let want = if algorithm.is_sha256() { 64 } else { 32 };
    if response.len() != want || !response.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(failed(MALFORMED));
    }
    Ok(Some(Credentials {
        username,
        realm: need("realm")?,
        nonce: need("nonce")?,
        uri: need("uri")?,
        response,
        algorithm,
        qop,
        nc: nc.to_ascii_lowercase(),
        cnonce: need("cnonce")?,
        opaque: get("opaque").map(str::to_owned),
    }))
}

/// The response a client computes (RFC 7616 §3.4.1), lowercase hex;
/// `ha1_hex` is H(username:realm:password) in hex.
fn expected_response(ha1_hex: &str, c: &Credentials, method: &str, body: Option<&[u8]>) -> String {
    let alg = c.algorithm;
    let ha1 = if alg.is_sess() {
        alg.hex(&[ha1_hex.as_bytes(), c.nonce.as_bytes(), c.cnonce.as_bytes()])
    } else {
        ha1_hex.to_owned()
    };
    let ha2 = match c.qop {
        Qop::Auth => alg.hex(&[method.as_bytes(), c.uri.as_bytes()]),
        Qop::AuthInt => {
            let body_hash = alg.hex(&[body.unwrap_or_default()]);
            alg.hex(&[method.as_bytes(), c.uri.as_bytes(), body_hash.as_bytes()])
        }
    };
    alg.hex(&[
        ha1.as_bytes(),
        c.nonce.as_bytes(),
        c.nc.as_bytes(),
        c.cnonce.as_bytes(),
        c.qop.name().as_bytes(),
        ha2.as_bytes(),
    ])
}

/// A user's realm digests (HA1 for MD5 and SHA-256). Password-equivalent
/// for the realm: kept only sealed ([`RealmDigests::seal`]). `Debug` shows
/// nothing.
#[derive(Clone)]
pub struct RealmDigests {
    md5: [u8; 16],
    sha256: [u8; 32],
}

impl fmt::Debug for RealmDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RealmDigests(<redacted>)")
    }
}

/// Length of what is sealed: password-hash binding, MD5 HA1, SHA-256 HA1.
const SEALED_LEN: usize = 32 + 16 + 32;

fn seal_purpose(user_id: i64) -> String {
    format!("digest-ha1:{user_id}")
}

impl RealmDigests {
    /// H(username:realm:password) for both hashes.
    pub fn compute(username: &str, realm: &str, password: &str) -> Self {
        let parts = [username.as_bytes(), realm.as_bytes(), password.as_bytes()];
        let join = |d: &mut dyn FnMut(&[u8])| {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d(b":");
                }
                d(p);
            }
        };
        let mut m = Md5::new();
        join(&mut |b| m.update(b));
        let mut s = Sha256::new();
        join(&mut |b| s.update(b));
        RealmDigests {
            md5: m.finalize().into(),
            sha256: s.finalize().into(),
        }
    }

    /// Seals the digests for `user_id`, bound to the user's current
    /// password hash (`password_hash`).
    pub fn seal(&self, secret: &SecretKey, user_id: i64, password_hash: &str) -> String {
        let mut plain = Vec::with_capacity(SEALED_LEN);
        plain.extend_from_slice(&Sha256::digest(password_hash.as_bytes()));
        plain.extend_from_slice(&self.md5);
        plain.extend_from_slice(&self.sha256);
        secret.seal(&seal_purpose(user_id), &plain)
    }

    /// Opens what [`seal`](Self::seal) made; `None` if it was made for
    /// another user, under another key, or before the password hash
    /// changed.
    pub fn open(
        secret: &SecretKey,
        user_id: i64,
        password_hash: &str,
        sealed: &str,
    ) -> Option<Self> {
        let plain = secret.open(&seal_purpose(user_id), sealed)?;
        if plain.len() != SEALED_LEN {
            return None;
        }
        let bound = Sha256::digest(password_hash.as_bytes());
        if !crate::secret::ct_eq(&plain[..32], &bound) {
            return None;
        }
        Some(RealmDigests {
            md5: plain[32..48].try_into().ok()?,
            sha256: plain[48..].try_into().ok()?,
        })
    }

    fn ha1_hex(&self, alg: Algorithm) -> String {
        if alg.is_sha256() {
            hex::encode(self.sha256)
        } else {
            hex::encode(self.md5)
        }
    }
}

/// Where the sealed realm digests are kept, one per user.
///
/// A complete implementation (this is the one `MemoryStore` has, in short):
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use portcullis::scheme::digest::DigestStore;
/// use portcullis::store::StoreError;
///
/// #[derive(Default)]
/// struct Mine(Mutex<HashMap<i64, String>>);
///
/// #[async_trait]
/// impl DigestStore for Mine {
///     async fn realm_digest(&self, user_id: i64) -> Result<Option<String>, StoreError> {
///         Ok(self.0.lock().unwrap().get(&user_id).cloned())
///     }
///     async fn set_realm_digest(&self, user_id: i64, sealed: Option<&str>) -> Result<(), StoreError> {
///         let mut m = self.0.lock().unwrap();
///         match sealed {
///             Some(s) => { m.insert(user_id, s.to_owned()); }
///             None => { m.remove(&user_id); }
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait DigestStore: Send + Sync + 'static {
    /// The user's sealed realm digests, if any.
    async fn realm_digest(&self, user_id: i64) -> Result<Option<String>, StoreError>;
    /// Replaces (`Some`) or deletes (`None`) the user's sealed realm
    /// digests. [`StoreError::NotFound`] when setting one for an unknown
    /// user.
    async fn set_realm_digest(&self, user_id: i64, sealed: Option<&str>) -> Result<(), StoreError>;
}

#[async_trait]
impl<T: DigestStore + ?Sized> DigestStore for Arc<T> {
    async fn realm_digest(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        (**self).realm_digest(user_id).await
    }
    async fn set_realm_digest(&self, user_id: i64, sealed: Option<&str>) -> Result<(), StoreError> {
        (**self).set_realm_digest(user_id, sealed).await
    }
}

/// Keeps the user's realm digests for a password just set (`Some`), or
/// deletes them (`None`: the password was made unusable). Call it after
/// the new password hash is stored: the digests are bound to
/// `user.password_hash()`.
pub async fn store_password<S: DigestStore + ?Sized>(
    store: &S,
    secret: &SecretKey,
    realm: &str,
    user: &impl AuthUser,
    password: Option<&str>,
) -> Result<(), StoreError> {
    match password {
        Some(p) => {
            let sealed = RealmDigests::compute(user.username(), realm, p).seal(
                secret,
                user.id(),
                user.password_hash(),
            );
            store.set_realm_digest(user.id(), Some(&sealed)).await
        }
        None => store.set_realm_digest(user.id(), None).await,
    }
}

/// What a nonce check found.
#[derive(Debug, PartialEq, Eq)]
enum NonceState {
    Fresh,
    Stale,
    Invalid,
}

/// The Digest scheme; see the [module docs](self).
pub struct Digest<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    store: S,
    secret: SecretKey,
    nonce_key: Subkey,
    realm: String,
    opaque: String,
    lifetime: Duration,
    replay: Arc<dyn ReplayCache>,
    lockout: Option<Lockout>,
    /// Unsealed for unknown users, so they cost what known ones do.
    dummy: String,
}

impl<S> Clone for Digest<S> {
    fn clone(&self) -> Self {
        Digest {
            inner: self.inner.clone(),
        }
    }
}

impl<S> fmt::Debug for Digest<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digest")
            .field("realm", &self.inner.realm)
            .field("lifetime", &self.inner.lifetime)
            .field("lockout", &self.inner.lockout)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<S: UserStore + DigestStore + Clone> Digest<S> {
    /// Digest over `store`, realm `api`, nonces living 300 s, remembered in
    /// `replay`.
    pub fn new(store: S, secret: SecretKey, replay: impl ReplayCache) -> Self {
        let mut inner = Inner {
            store,
            nonce_key: secret.subkey("digest-nonce"),
            opaque: String::new(),
            realm: String::new(),
            lifetime: DEFAULT_NONCE_LIFETIME,
            replay: Arc::new(replay),
            lockout: None,
            dummy: RealmDigests::compute("", "", "").seal(&secret, 0, ""),
            secret,
        };
        set_realm(&mut inner, DEFAULT_REALM);
        Digest {
            inner: Arc::new(inner),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner<S>)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => f(inner),
            None => panic!("configure a Digest scheme before cloning it"),
        }
        self
    }

    /// Sets the realm.
    ///
    /// # Panics
    ///
    /// If the realm contains a `"`, `\` or a control character (checked
    /// when the scheme is built), or the scheme was already cloned.
    pub fn realm(self, realm: &str) -> Self {
        assert!(
            !realm
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control()),
            "a Digest realm may not contain quotes, backslashes or control characters"
        );
        self.edit(|i| set_realm(i, realm))
    }

    /// Sets how long a nonce is accepted (default 300 s).
    ///
    /// # Panics
    ///
    /// If `lifetime` is zero, or the scheme was already cloned.
    pub fn nonce_lifetime(self, lifetime: Duration) -> Self {
        assert!(
            lifetime.as_secs() > 0,
            "the nonce lifetime must be at least 1 s"
        );
        self.edit(|i| i.lifetime = lifetime)
    }

    /// Counts failures in (and refuses locked-out logins with) `lockout`.
    ///
    /// # Panics
    ///
    /// If the scheme was already cloned.
    pub fn with_lockout(self, lockout: Lockout) -> Self {
        self.edit(|i| i.lockout = Some(lockout))
    }

    /// The realm.
    pub fn realm_name(&self) -> &str {
        &self.inner.realm
    }

    /// A fresh nonce.
    pub fn nonce(&self) -> String {
        self.nonce_at(unix_now())
    }

    fn nonce_at(&self, ts: u64) -> String {
        let mut random = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let ts = ts.to_be_bytes();
        let mac = self.inner.nonce_key.mac_parts([&ts[..], &random[..]]);
        format!(
            "{}{}{}",
            hex::encode(ts),
            hex::encode(random),
            hex::encode(&mac[..16])
        )
    }

    fn check_nonce(&self, nonce: &str, now: u64) -> NonceState {
        if nonce.len() != 64 {
            return NonceState::Invalid;
        }
        let Ok(raw) = hex::decode(nonce) else {
            return NonceState::Invalid;
        };
        let mac = self.inner.nonce_key.mac_parts([&raw[..8], &raw[8..16]]);
        if !crate::secret::ct_eq(&mac[..16], &raw[16..]) {
            return NonceState::Invalid;
        }
        let ts = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        // A nonce from the future was not issued by this clock; allow a
        // little drift between servers sharing the secret.
        if ts > now + 5 {
            return NonceState::Invalid;
        }
        if now - ts.min(now) > self.inner.lifetime.as_secs() {
            return NonceState::Stale;
        }
        NonceState::Fresh
    }

    /// The two challenges, SHA-256 then MD5, each with a fresh nonce.
    pub fn challenges(&self, stale: bool) -> [HeaderValue; 2] {
        [Algorithm::Sha256, Algorithm::Md5].map(|alg| {
            let stale = if stale { ", stale=true" } else { "" };
            let v = format!(
                "Digest realm=\"{}\", qop=\"auth, auth-int\", algorithm={}, nonce=\"{}\", opaque=\"{}\"{stale}",
                self.inner.realm,
                alg.name(),
                self.nonce(),
                self.inner.opaque,
            );
            HeaderValue::from_str(&v).expect("the realm was checked")
        })
    }

    /// Renders a rejection as [`Rejection::to_response`] does, but with one
    /// `WWW-Authenticate` header per algorithm (SHA-256 first), each with a
    /// fresh nonce, and `stale=true` when the nonce had expired. Pass it to
    /// [`Policy::on_rejection`](crate::Policy::on_rejection) on routes whose
    /// first scheme is this one.
    pub fn render_rejection(&self, rejection: &Rejection) -> Response<Bytes> {
        let mut res = rejection.to_response();
        if res.status() == StatusCode::UNAUTHORIZED {
            let stale = matches!(&rejection.error, AuthError::Failed(f) if f.detail == STALE_NONCE);
            let headers = res.headers_mut();
            headers.remove(WWW_AUTHENTICATE);
            for c in self.challenges(stale) {
                headers.append(WWW_AUTHENTICATE, c);
            }
        }
        res
    }

    /// Whether `uri` (from the header) names the request's target.
    fn uri_matches(uri: &str, req: &RequestHead<'_>) -> bool {
        let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        if uri == target {
            return true;
        }
        // The absolute form some clients send for proxies.
        match uri.parse::<http::Uri>() {
            Ok(u) if u.scheme().is_some() => {
                u.path_and_query().map(|p| p.as_str()).unwrap_or("/") == target
            }
            _ => false,
        }
    }

    async fn verify(&self, c: Credentials, req: &RequestHead<'_>) -> Outcome<S::User> {
        let inner = &self.inner;
        if c.realm != inner.realm
            || c.opaque
                .as_deref()
                .is_some_and(|o| !crate::secret::ct_eq(o.as_bytes(), inner.opaque.as_bytes()))
        {
            return Err(failed(INVALID_NONCE));
        }
        if !Self::uri_matches(&c.uri, req) {
            return Err(failed(URI_MISMATCH));
        }
        let now = unix_now();
        let state = self.check_nonce(&c.nonce, now);
        if state == NonceState::Invalid {
            return Err(failed(INVALID_NONCE));
        }
        let body = match c.qop {
            Qop::Auth => None,
            Qop::AuthInt => match req.extensions.get::<RequestBody>() {
                Some(b) => Some(b.0.clone()),
                None => {
                    tracing::warn!("Digest auth-int without the request body; is the scheme behind the portcullis layer?");
                    return Err(failed(INVALID_CREDENTIALS));
                }
            },
        };
        let client = inner.lockout.as_ref().and_then(|l| l.client_addr(req));
        let status = match &inner.lockout {
            Some(l) => {
                let status = l.status(&c.username, client).await?;
                if let Some(wait) = status.wait {
                    return Err(crate::throttle::throttled(wait));
                }
                Some(status)
            }
            None => None,
        };
        let user = inner.store.user_by_username(&c.username).await?;
        // Unknown users read a row, unseal and hash like known ones.
        let user_id = user.as_ref().map_or(0, |u| u.id());
        let sealed = inner.store.realm_digest(user_id).await?;
        let opened = match (&user, &sealed) {
            (Some(u), Some(s)) => RealmDigests::open(&inner.secret, u.id(), u.password_hash(), s),
            _ => None,
        };
        let known = opened.is_some();
        let digests = match opened {
            Some(d) => d,
            // The same unsealing for users without digests (or unknown).
            None => RealmDigests::open(&inner.secret, 0, "", &inner.dummy)
                .expect("the dummy was sealed with this key"),
        };
        let expected = expected_response(
            &digests.ha1_hex(c.algorithm),
            &c,
            req.method.as_str(),
            body.as_deref(),
        );
        let matches = crate::secret::ct_eq(expected.as_bytes(), c.response.as_bytes());
        let user = match user {
            Some(u) if matches && known && u.is_active() => u,
            _ => {
                if let Some(l) = &inner.lockout {
                    l.record_failure(&c.username, client).await?;
                }
                return Err(failed(INVALID_CREDENTIALS));
            }
        };
        if state == NonceState::Stale {
            return Err(AuthError::Failed(Failure::new(STALE_NONCE)));
        }
        // The username is unbounded; its hash keeps the key short.
        let who = hex::encode(&Sha256::digest(c.username.as_bytes())[..16]);
        let key = format!("digest:{}:{}:{who}", c.nonce, c.nc);
        if !inner
            .replay
            .first_use(&key, inner.lifetime, SystemTime::now())
            .await?
        {
            return Err(failed(REPLAYED));
        }
        if let (Some(l), Some(status)) = (&inner.lockout, status) {
            if status.username_has_failures {
                l.record_success(&c.username).await?;
            }
        }
        Ok(Some(Authenticated::new(user, "digest")))
    }
}

fn set_realm<S>(inner: &mut Inner<S>, realm: &str) {
    inner.realm = realm.to_owned();
    inner.opaque = hex::encode(&inner.secret.mac("digest-opaque", realm.as_bytes())[..16]);
}

#[async_trait]
impl<S: UserStore + DigestStore + Clone> Scheme<S::User> for Digest<S> {
    fn name(&self) -> &'static str {
        "digest"
    }

    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        req.headers.contains_key(AUTHORIZATION)
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<S::User> {
        let Some(value) = req.headers.get(AUTHORIZATION) else {
            return Ok(None);
        };
        match parse(value)? {
            None => Ok(None),
            Some(c) => self.verify(c, req).await,
        }
    }

    /// Both challenges in one header value (RFC 7235 allows a list);
    /// [`Digest::render_rejection`] splits them into one header each.
    fn challenge(&self) -> Option<HeaderValue> {
        let [a, b] = self.challenges(false);
        let mut v = a.as_bytes().to_vec();
        v.extend_from_slice(b", ");
        v.extend_from_slice(b.as_bytes());
        HeaderValue::from_bytes(&v).ok()
    }

    /// `auth-int` needs the body. Any other request with a body that this
    /// scheme will answer (no credentials yet, or Digest ones) has it read
    /// too, within the limit: Digest is challenge-response, and a `401`
    /// sent before the body was read makes the server close the
    /// connection, which clients retrying on it (Python requests does) can
    /// race against.
    fn wants_body(&self, req: &RequestHead<'_>) -> bool {
        let rest = match req.headers.get(AUTHORIZATION) {
            None => return has_body(req),
            Some(v) => match v
                .to_str()
                .ok()
                .and_then(|v| auth_param::strip_keyword(v, "digest"))
            {
                None => return false,
                Some(rest) => rest,
            },
        };
        rest.to_ascii_lowercase().contains("auth-int") || has_body(req)
    }
}

/// Whether the request announces a body.
fn has_body(req: &RequestHead<'_>) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// A Digest client, for tests, examples and benchmarks: builds the
/// `Authorization` header a browser would send for a challenge.
#[derive(Clone)]
pub struct Client<'a> {
    /// Username.
    pub username: &'a str,
    /// Password.
    pub password: &'a str,
    /// The challenge's realm.
    pub realm: &'a str,
    /// The challenge's nonce.
    pub nonce: &'a str,
    /// The challenge's opaque value, returned when set.
    pub opaque: Option<&'a str>,
    /// The request method.
    pub method: &'a str,
    /// The request target (path and query).
    pub uri: &'a str,
    /// The algorithm (default MD5).
    pub algorithm: Algorithm,
    /// The body, for `qop=auth-int`; `None` is `qop=auth`.
    pub body: Option<&'a [u8]>,
    /// The client nonce.
    pub cnonce: &'a str,
    /// The nonce count.
    pub nc: u32,
}

impl fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("username", &self.username)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl<'a> Client<'a> {
    /// A client with MD5, qop `auth`, nonce count 1 and a fixed cnonce.
    pub fn new(
        username: &'a str,
        password: &'a str,
        realm: &'a str,
        nonce: &'a str,
        method: &'a str,
        uri: &'a str,
    ) -> Self {
        Client {
            username,
            password,
            realm,
            nonce,
            opaque: None,
            method,
            uri,
            algorithm: Algorithm::Md5,
            body: None,
            cnonce: "0a4f113b",
            nc: 1,
        }
    }

    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        let c = Credentials {
            username: self.username.to_owned(),
            realm: self.realm.to_owned(),
            nonce: self.nonce.to_owned(),
            uri: self.uri.to_owned(),
            response: String::new(),
            algorithm: self.algorithm,
            qop: if self.body.is_some() {
                Qop::AuthInt
            } else {
                Qop::Auth
            },
            nc: format!("{:08x}", self.nc),
            cnonce: self.cnonce.to_owned(),
            opaque: None,
        };
        let ha1 =
            RealmDigests::compute(self.username, self.realm, self.password).ha1_hex(self.algorithm);
        let response = expected_response(&ha1, &c, self.method, self.body);
        let opaque = self
            .opaque
            .map(|o| format!(", opaque=\"{o}\""))
            .unwrap_or_default();
        format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm={}, \
             response=\"{response}\", qop={}, nc={}, cnonce=\"{}\"{opaque}",
            self.username,
            self.realm,
            self.nonce,
            self.uri,
            self.algorithm.name(),
            c.qop.name(),
            c.nc,
            self.cnonce
        )
    }
}

#[cfg(test)]
mod tests;
