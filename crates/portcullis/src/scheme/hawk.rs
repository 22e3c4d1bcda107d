//! Hawk authentication (hueniverse/hawk, version 1, as the Python `mohawk`
//! library and the Node `hawk` library speak it), with HMAC-SHA256.
//!
//! `Authorization: Hawk id="...", ts="...", nonce="...", hash="...",
//! ext="...", mac="..."`. The MAC covers `hawk.1.header`, the timestamp,
//! the nonce, the method, the path and query, the host, the port, the
//! payload hash and `ext` (and `app`/`dlg` when sent). When the client
//! sends a payload `hash` (`hawk.1.payload`, the content type without
//! parameters, lowercased, and the body), it is checked against the body.
//! A request that carries a body must send the hash, or the body would
//! ride unauthenticated on an authenticated request and anyone on the path
//! could swap it (`401 Missing required payload hash`); a request without
//! a body needs none. A body is told by HTTP/1.1's framing (a
//! `Content-Length` above zero, or a `Transfer-Encoding`); over HTTP/2 a
//! body may come without either, so clients there should always hash.
//!
//! - The timestamp must be within the skew window (default 60 s) of the
//!   server's clock; outside it the answer is `401` with
//!   `WWW-Authenticate: Hawk ts="<now>", tsm="<MAC of the time>",
//!   error="Stale timestamp"`, so the client can correct its clock.
//! - Each `(id, nonce)` is accepted once, through the [`ReplayCache`].
//! - Credentials ([`issue`]) are an id and a random key; the server needs
//!   the key itself to compute MACs, so it is stored sealed with the
//!   [`SecretKey`], never in the clear. The id is not secret.
//! - On success the request's [`Artifacts`] ride in the
//!   [`AuthInfo`] data, so the handler can sign its
//!   response ([`Artifacts::server_authorization`]) for the client to
//!   check. The description is `Hawk id <id>`; `ext` is not echoed.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use portcullis::replay::MemoryReplayCache;
//! use portcullis::scheme::hawk::{self, Hawk, Client};
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin};
//! use portcullis::{IsAuthenticated, Policy, SecretKey, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let secret = SecretKey::new([7u8; 32]).unwrap();
//! let ada = store.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! let (id, key) = hawk::issue(&store, &secret, ada.id).await.unwrap();
//!
//! let policy = Policy::<User>::new()
//!     .scheme(Hawk::new(store, secret, MemoryReplayCache::new()))
//!     .permission(IsAuthenticated);
//! let app = Router::new().route("/r", get(|| async { "hi" })).layer(policy.layer());
//!
//! let client = Client::new(&id, &key, "GET", "/r", "example.com", 80);
//! let good = http::Request::get("/r").header("host", "example.com")
//!     .header("authorization", client.authorization()).body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(good).await.unwrap().status(), 200);
//! // Replayed: the nonce was used.
//! let again = http::Request::get("/r").header("host", "example.com")
//!     .header("authorization", client.authorization()).body(Body::empty()).unwrap();
//! let res = app.oneshot(again).await.unwrap();
//! assert_eq!(res.status(), 401);
//! # });
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::HeaderValue;
use sha2::{Digest as _, Sha256};

use super::auth_param::{self, ParamError};
use crate::error::{AuthError, Failure};
use crate::identity::{AuthInfo, AuthUser};
use crate::replay::ReplayCache;
use crate::scheme::{Authenticated, Outcome, RequestBody, RequestHead, Scheme};
use crate::secret::{random_alphanumeric, SecretKey};
use crate::store::{StoreError, UserStore};

type HmacSha256 = Hmac<Sha256>;

/// The timestamp skew allowed by default: 60 s (Hawk's and mohawk's).
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);

/// Malformed header: bad syntax, unknown or duplicated attributes, bad
/// characters.
pub const BAD_HEADER: &str = "Invalid Hawk header.";
/// A required attribute (`id`, `ts`, `nonce`, `mac`) is missing.
pub const MISSING: &str = "Missing Hawk attributes.";
/// The id names no credentials.
pub const UNKNOWN_CREDENTIALS: &str = "Unknown credentials";
/// The MAC does not match.
pub const BAD_MAC: &str = "Bad mac";
/// The payload hash does not match the body.
pub const BAD_HASH: &str = "Bad payload hash";
/// The request has a body but no payload hash covers it.
pub const MISSING_HASH: &str = "Missing required payload hash";
/// The timestamp is outside the skew window.
pub const STALE: &str = "Stale timestamp";
/// The nonce was already used with these credentials.
pub const REPLAYED: &str = "Invalid nonce";
/// The credentials' user is inactive or gone.
pub const INACTIVE: &str = "User inactive or deleted.";
/// The request has no `Host` to sign.
pub const NO_HOST: &str = "Missing Host header.";

/// Hawk credentials as stored: the key sealed, never in the clear.
#[derive(Clone, PartialEq, Eq)]
pub struct HawkCredential {
    /// The public id (the look-up key).
    pub id: String,
    /// The owner.
    pub user_id: i64,
    /// The key, sealed with the secret key ([`SecretKey::seal`]).
    pub sealed_key: String,
    /// When it was issued.
    pub created: DateTime<Utc>,
}

impl fmt::Debug for HawkCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HawkCredential")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// Where Hawk credentials are kept.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use portcullis::scheme::hawk::{HawkCredential, HawkStore};
/// use portcullis::store::StoreError;
///
/// #[derive(Default)]
/// struct Mine(Mutex<HashMap<String, HawkCredential>>);
///
/// #[async_trait]
/// impl HawkStore for Mine {
///     async fn hawk_credential(&self, id: &str) -> Result<Option<HawkCredential>, StoreError> {
///         Ok(self.0.lock().unwrap().get(id).cloned())
///     }
///     async fn insert_hawk_credential(&self, c: &HawkCredential) -> Result<(), StoreError> {
///         let mut m = self.0.lock().unwrap();
///         if m.contains_key(&c.id) {
///             return Err(StoreError::Conflict(c.id.clone()));
///         }
///         m.insert(c.id.clone(), c.clone());
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait HawkStore: Send + Sync + 'static {
    /// The credentials with this id.
    async fn hawk_credential(&self, id: &str) -> Result<Option<HawkCredential>, StoreError>;
    /// Stores new credentials: [`StoreError::Conflict`] for a taken id,
    /// [`StoreError::NotFound`] for an unknown user.
    async fn insert_hawk_credential(&self, credential: &HawkCredential) -> Result<(), StoreError>;
}

#[async_trait]
impl<T: HawkStore + ?Sized> HawkStore for Arc<T> {
    async fn hawk_credential(&self, id: &str) -> Result<Option<HawkCredential>, StoreError> {
        (**self).hawk_credential(id).await
    }
    async fn insert_hawk_credential(&self, credential: &HawkCredential) -> Result<(), StoreError> {
        (**self).insert_hawk_credential(credential).await
    }
}

fn seal_purpose(id: &str) -> String {
    format!("hawk-key:{id}")
}

/// Issues credentials for a user: a random id (20 characters) and key (43
/// characters, from the OS's CSPRNG); the key is stored sealed. Returns
/// `(id, key)`; the key is shown this once.
pub async fn issue<S: HawkStore + ?Sized>(
    store: &S,
    secret: &SecretKey,
    user_id: i64,
) -> Result<(String, String), StoreError> {
    let id = random_alphanumeric(20);
    let key = random_alphanumeric(43);
    let credential = HawkCredential {
        sealed_key: secret.seal(&seal_purpose(&id), key.as_bytes()),
        id: id.clone(),
        user_id,
        created: Utc::now(),
    };
    store.insert_hawk_credential(&credential).await?;
    Ok((id, key))
}

/// The attributes of a Hawk `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// Credentials id.
    pub id: String,
    /// Timestamp, seconds since the epoch.
    pub ts: u64,
    /// The timestamp as sent (it is MACed as text).
    pub ts_text: String,
    /// Nonce.
    pub nonce: String,
    /// Payload hash, if sent.
    pub hash: Option<String>,
    /// Application data, if sent.
    pub ext: Option<String>,
    /// The MAC.
    pub mac: String,
    /// Oz application id, if sent.
    pub app: Option<String>,
    /// Oz delegation, if sent.
    pub dlg: Option<String>,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("id", &self.id)
            .field("ts", &self.ts)
            .finish_non_exhaustive()
    }
}

/// The longest nonce accepted (mohawk sends 6 characters).
const MAX_NONCE: usize = 128;

const KEYS: [&str; 8] = ["id", "ts", "nonce", "hash", "ext", "mac", "app", "dlg"];

/// mohawk's value alphabet: printable ASCII without `"` and `\`.
fn valid_value(v: &str) -> bool {
    v.bytes()
        .all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
}

fn fail(detail: &'static str) -> AuthError {
    let challenge = HeaderValue::from_str(&format!("Hawk error=\"{detail}\""))
        .expect("messages are header-safe");
    AuthError::Failed(Failure::new(detail).with_challenge(challenge))
}

/// Parses an `Authorization` value: `Ok(None)` when it is not Hawk, an
/// error when it is Hawk but malformed (unknown, duplicated or badly
/// quoted attributes, characters outside Hawk's alphabet, a non-numeric
/// `ts`) or lacks `id`, `ts`, `nonce` or `mac`.
pub fn parse(value: &HeaderValue) -> Result<Option<Header>, AuthError> {
    let Ok(text) = value.to_str() else {
        let b = value.as_bytes();
        return if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"hawk ") {
            Err(fail(BAD_HEADER))
        } else {
            Ok(None)
        };
    };
    let Some(rest) = auth_param::strip_keyword(text, "hawk") else {
        return Ok(None);
    };
    let params = auth_param::parse(rest).map_err(|e| match e {
        ParamError::TooLong | ParamError::Syntax | ParamError::Duplicate => fail(BAD_HEADER),
    })?;
    if params
        .iter()
        .any(|(k, v)| !KEYS.contains(&k.as_str()) || !valid_value(v))
    {
        return Err(fail(BAD_HEADER));
    }
    let get = |n: &str| auth_param::get(&params, n).map(str::to_owned);
    let (Some(id), Some(ts_text), Some(nonce), Some(mac)) =
        (get("id"), get("ts"), get("nonce"), get("mac"))
    else {
        return Err(fail(MISSING));
    };
    if id.is_empty() || nonce.is_empty() || nonce.len() > MAX_NONCE {
        return Err(fail(BAD_HEADER));
    }
    if ts_text.is_empty() || ts_text.len() > 15 || !ts_text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(fail(BAD_HEADER));
    }
    let ts = ts_text.parse().map_err(|_| fail(BAD_HEADER))?;
    Ok(Some(Header {
        id,
        ts,
        ts_text,
        nonce,
        hash: get("hash"),
        ext: get("ext"),
        mac,
        app: get("app"),
        dlg: get("dlg"),
    }))
}

/// The payload hash: base64 SHA-256 of `hawk.1.payload\n`, the content
/// type (without parameters, lowercased), `\n`, the body, `\n`.
pub fn payload_hash(content_type: &str, body: &[u8]) -> String {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut h = Sha256::new();
    h.update(b"hawk.1.payload\n");
    h.update(ct.as_bytes());
    h.update(b"\n");
    h.update(body);
    h.update(b"\n");
    STANDARD.encode(h.finalize())
}

fn hmac_b64(key: &[u8], text: &str) -> String {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(text.as_bytes());
    STANDARD.encode(m.finalize().into_bytes())
}

/// What a request's MAC covered, and the key that made it: what the
/// server needs to sign its response. `Debug` hides the key.
#[derive(Clone)]
pub struct Artifacts {
    /// Credentials id.
    pub id: String,
    /// The request's timestamp as sent.
    pub ts: String,
    /// The request's nonce.
    pub nonce: String,
    /// The request method.
    pub method: String,
    /// Path and query.
    pub resource: String,
    /// Host, lowercased.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Oz application id, if any.
    pub app: Option<String>,
    /// Oz delegation, if any.
    pub dlg: Option<String>,
    key: Arc<[u8]>,
}

impl fmt::Debug for Artifacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Artifacts")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl Artifacts {
    fn normalized(&self, kind: &str, hash: &str, ext: &str) -> String {
        let mut s = format!(
            "hawk.1.{kind}\n{}\n{}\n{}\n{}\n{}\n{}\n{hash}\n{ext}\n",
            self.ts, self.nonce, self.method, self.resource, self.host, self.port
        );
        if let Some(app) = &self.app {
            s.push_str(app);
            s.push('\n');
            s.push_str(self.dlg.as_deref().unwrap_or(""));
            s.push('\n');
        }
        s
    }

    fn mac(&self, kind: &str, hash: &str, ext: &str) -> String {
        hmac_b64(&self.key, &self.normalized(kind, hash, ext))
    }

    /// The `Server-Authorization` value for a response with this content
    /// type and body: `Hawk mac="...", hash="..."` over `hawk.1.response`
    /// with the request's timestamp and nonce, as mohawk's
    /// `accept_response` checks it.
    pub fn server_authorization(&self, content_type: &str, body: &[u8]) -> HeaderValue {
        let hash = payload_hash(content_type, body);
        let mac = self.mac("response", &hash, "");
        HeaderValue::from_str(&format!("Hawk mac=\"{mac}\", hash=\"{hash}\""))
            .expect("base64 is header-safe")
    }
}

/// The host and port a request was sent to: the absolute URI's authority,
/// else the `Host` header; the port defaults to 443 for `https` and 80
/// otherwise.
fn host_port(req: &RequestHead<'_>) -> Option<(String, u16)> {
    let authority = match req.uri.authority() {
        Some(a) => a.clone(),
        None => req.headers.get(HOST)?.to_str().ok()?.parse().ok()?,
    };
    let default = if req.uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    Some((host, authority.port_u16().unwrap_or(default)))
}

/// The Hawk scheme; see the [module docs](self).
pub struct Hawk<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    store: S,
    secret: SecretKey,
    skew: Duration,
    replay: Arc<dyn ReplayCache>,
}

impl<S> Clone for Hawk<S> {
    fn clone(&self) -> Self {
        Hawk {
            inner: self.inner.clone(),
        }
    }
}

impl<S> fmt::Debug for Hawk<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hawk")
            .field("skew", &self.inner.skew)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<S: UserStore + HawkStore + Clone> Hawk<S> {
    /// Hawk over `store`, skew 60 s, nonces remembered in `replay`.
    pub fn new(store: S, secret: SecretKey, replay: impl ReplayCache) -> Self {
        Hawk {
            inner: Arc::new(Inner {
                store,
                secret,
                skew: DEFAULT_SKEW,
                replay: Arc::new(replay),
            }),
        }
    }

    /// Sets the timestamp skew window (default 60 s).
    ///
    /// # Panics
    ///
    /// If `skew` is zero or the scheme was already cloned.
    pub fn skew(mut self, skew: Duration) -> Self {
        assert!(skew.as_secs() > 0, "the Hawk skew must be at least 1 s");
        Arc::get_mut(&mut self.inner)
            .expect("configure a Hawk scheme before cloning it")
            .skew = skew;
        self
    }

    async fn verify(&self, h: Header, req: &RequestHead<'_>) -> Outcome<S::User> {
        let inner = &self.inner;
        let Some((host, port)) = host_port(req) else {
            return Err(fail(NO_HOST));
        };
        let Some(credential) = inner.store.hawk_credential(&h.id).await? else {
            return Err(fail(UNKNOWN_CREDENTIALS));
        };
        let Some(key) = inner
            .secret
            .open(&seal_purpose(&credential.id), &credential.sealed_key)
        else {
            tracing::error!(id = %credential.id, "Hawk key does not unseal: was the secret key changed?");
            return Err(fail(UNKNOWN_CREDENTIALS));
        };
        let artifacts = Artifacts {
            id: h.id.clone(),
            ts: h.ts_text.clone(),
            nonce: h.nonce.clone(),
            method: req.method.as_str().to_owned(),
            resource: req
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .to_owned(),
            host,
            port,
            app: h.app.clone(),
            dlg: h.dlg.clone(),
            key: key.into(),
        };
        let mac = artifacts.mac(
            "header",
            h.hash.as_deref().unwrap_or(""),
            h.ext.as_deref().unwrap_or(""),
        );
        if !crate::secret::ct_eq(mac.as_bytes(), h.mac.as_bytes()) {
            return Err(fail(BAD_MAC));
        }
        if h.hash.is_none() && has_body(req) {
            return Err(fail(MISSING_HASH));
        }
        if let Some(hash) = &h.hash {
            let Some(body) = req.extensions.get::<RequestBody>() else {
                tracing::warn!("Hawk payload hash without the request body; is the scheme behind the portcullis layer?");
                return Err(fail(BAD_HASH));
            };
            let ct = req
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let ours = payload_hash(ct, &body.0);
            if !crate::secret::ct_eq(ours.as_bytes(), hash.as_bytes()) {
                return Err(fail(BAD_HASH));
            }
        }
        let now = unix_now();
        if now.abs_diff(h.ts) > inner.skew.as_secs() {
            let tsm = hmac_b64(&artifacts.key, &format!("hawk.1.ts\n{now}\n"));
            let challenge = HeaderValue::from_str(&format!(
                "Hawk ts=\"{now}\", tsm=\"{tsm}\", error=\"{STALE}\""
            ))
            .expect("digits and base64");
            return Err(AuthError::Failed(
                Failure::new(STALE).with_challenge(challenge),
            ));
        }
        let key = format!("hawk:{}:{}", h.id, h.nonce);
        if !inner
            .replay
            .first_use(&key, inner.skew * 2, SystemTime::now())
            .await?
        {
            return Err(fail(REPLAYED));
        }
        let user = match inner.store.user_by_id(credential.user_id).await? {
            Some(u) if u.is_active() => u,
            _ => return Err(fail(INACTIVE)),
        };
        let info = AuthInfo::new(format!("Hawk id {}", h.id)).with_data(artifacts);
        Ok(Some(Authenticated::new(user, "hawk").with_auth(info)))
    }
}

#[async_trait]
impl<S: UserStore + HawkStore + Clone> Scheme<S::User> for Hawk<S> {
    fn name(&self) -> &'static str {
        "hawk"
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
            Some(h) => self.verify(h, req).await,
        }
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("Hawk"))
    }

    fn wants_body(&self, req: &RequestHead<'_>) -> bool {
        req.headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| auth_param::strip_keyword(v, "hawk"))
            .is_some_and(|rest| rest.contains("hash"))
    }
}

/// Whether the request says it carries a body: a `Content-Length` other
/// than zero (an unreadable one counts), or any `Transfer-Encoding`.
fn has_body(req: &RequestHead<'_>) -> bool {
    let length = req.headers.get(http::header::CONTENT_LENGTH);
    length.is_some_and(|v| v.as_bytes().iter().any(|&b| b != b'0'))
        || req.headers.contains_key(http::header::TRANSFER_ENCODING)
}

/// A Hawk client, for tests, examples and benchmarks: signs a request as
/// mohawk's `Sender` does.
#[derive(Clone)]
pub struct Client<'a> {
    /// Credentials id.
    pub id: &'a str,
    /// Credentials key.
    pub key: &'a str,
    /// Method.
    pub method: &'a str,
    /// Path and query.
    pub resource: &'a str,
    /// Host.
    pub host: &'a str,
    /// Port.
    pub port: u16,
    /// Timestamp (default: now).
    pub ts: u64,
    /// Nonce (default: random).
    pub nonce: String,
    /// Content type and body to hash, if any.
    pub payload: Option<(&'a str, &'a [u8])>,
    /// Application data.
    pub ext: Option<&'a str>,
}

impl fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<'a> Client<'a> {
    /// A client signing `method resource` for `host:port`, now, with a
    /// random nonce and no payload.
    pub fn new(
        id: &'a str,
        key: &'a str,
        method: &'a str,
        resource: &'a str,
        host: &'a str,
        port: u16,
    ) -> Self {
        Client {
            id,
            key,
            method,
            resource,
            host,
            port,
            ts: unix_now(),
            nonce: random_alphanumeric(8),
            payload: None,
            ext: None,
        }
    }

    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        let hash = self.payload.map(|(ct, b)| payload_hash(ct, b));
        let a = Artifacts {
            id: self.id.to_owned(),
            ts: self.ts.to_string(),
            nonce: self.nonce.clone(),
            method: self.method.to_owned(),
            resource: self.resource.to_owned(),
            host: self.host.to_ascii_lowercase(),
            port: self.port,
            app: None,
            dlg: None,
            key: self.key.as_bytes().into(),
        };
        let mac = a.mac(
            "header",
            hash.as_deref().unwrap_or(""),
            self.ext.unwrap_or(""),
        );
        let mut out = format!(
            "Hawk id=\"{}\", ts=\"{}\", nonce=\"{}\"",
            self.id, self.ts, self.nonce
        );
        if let Some(hash) = hash {
            out.push_str(&format!(", hash=\"{hash}\""));
        }
        if let Some(ext) = self.ext {
            out.push_str(&format!(", ext=\"{ext}\""));
        }
        out.push_str(&format!(", mac=\"{mac}\""));
        out
    }
}

#[cfg(test)]
mod tests;
