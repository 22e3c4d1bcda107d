//! OAuth 1.0a (RFC 5849): [`OAuth1Auth`] authenticates requests signed with
//! a consumer's and an access token's credentials, and [`OAuth1`] verifies
//! signatures and runs the three-legged flow (temporary credentials, user
//! authorization, token credentials).
//!
//! # What is checked
//!
//! - Protocol parameters come from the `Authorization: OAuth ...` header,
//!   or from a `application/x-www-form-urlencoded` body, or from the query
//!   (RFC 5849 §3.5), from one place only. A parameter given twice, an
//!   unknown `oauth_*` parameter, an `oauth_version` other than `1.0`, an
//!   unsupported `oauth_signature_method` or a missing required parameter is
//!   `400`.
//! - The signature base string and parameter normalisation are RFC 5849
//!   §3.4.1's, over the header, query and form-body parameters;
//!   `HMAC-SHA1`, `HMAC-SHA256` (the same construction with SHA-256),
//!   `RSA-SHA1` (the consumer's registered public key) and `PLAINTEXT`
//!   (over HTTPS only unless [`OAuth1Config::plaintext_over_http`]).
//!   Signatures are compared in constant time.
//! - `oauth_timestamp` must be within [`OAuth1Config::timestamp_window`]
//!   (default 300 s) of the server's clock; the nonce (with the consumer,
//!   token and timestamp) goes through the [`ReplayCache`], so a replayed
//!   request is refused.
//! - A bad signature, unknown consumer or token, a stale timestamp, a
//!   replayed nonce or an inactive user is `401` with `WWW-Authenticate:
//!   OAuth realm="api"`.
//!
//! Consumer and token secrets are kept sealed with the [`SecretKey`]
//! (HMAC needs them in clear when a request arrives, so they cannot be
//! hashed); verifiers are kept as keyed digests.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use axum::{body::Body, routing::get, Router};
//! use portcullis::replay::MemoryReplayCache;
//! use portcullis::scheme::oauth1::{params, MemoryOAuth1Store, OAuth1, OAuth1Auth, OAuth1Config};
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin};
//! use portcullis::{IsAuthenticated, Policy, SecretKey, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let users = MemoryStore::new();
//! let ada = users.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! let mut config = OAuth1Config::default();
//! config.plaintext_over_http = true; // for the example only: PLAINTEXT wants HTTPS
//! let oauth = OAuth1::new(MemoryOAuth1Store::new(), SecretKey::new([1u8; 32]).unwrap(),
//!     Arc::new(MemoryReplayCache::new()), config);
//! let (consumer_key, consumer_secret) = oauth.create_consumer("app", None, None).await.unwrap();
//! let (token, token_secret) = oauth.create_access_token(&consumer_key, ada.id).await.unwrap();
//!
//! let policy = Policy::<User>::new().scheme(OAuth1Auth::new(oauth, users)).permission(IsAuthenticated);
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(policy.layer());
//!
//! // PLAINTEXT: the signature is the two secrets (allowed over HTTP here).
//! let header = format!(
//!     "OAuth oauth_consumer_key=\"{consumer_key}\", oauth_token=\"{token}\", \
//!      oauth_signature_method=\"PLAINTEXT\", oauth_signature=\"{}\"",
//!     params::percent_encode(&format!("{consumer_secret}&{token_secret}")),
//! );
//! let ok = http::Request::get("/").header("authorization", header).body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(ok).await.unwrap().status(), 200);
//!
//! let res = app.oneshot(http::Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], "OAuth realm=\"api\"");
//! # });
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderName, HeaderValue};

use crate::error::AuthError;
use crate::identity::{AuthInfo, AuthUser};
use crate::replay::ReplayCache;
use crate::scheme::{Authenticated, Outcome, RequestBody, RequestHead, Scheme};
use crate::secret::{random_alphanumeric, SecretKey};
use crate::store::{StoreError, UserStore};

pub mod params;
mod store;
#[cfg(test)]
mod tests;

pub use store::{
    check_oauth1_id, ConsumerRecord, MemoryOAuth1Store, OAuth1Store, OAuth1TokenRecord, TokenKind,
    MAX_OAUTH1_ID,
};

/// The [`SecretKey::seal`] purpose of consumer secrets.
pub const CONSUMER_SECRET_PURPOSE: &str = "portcullis.oauth1.consumer-secret";
/// The [`SecretKey::seal`] purpose of token secrets.
pub const TOKEN_SECRET_PURPOSE: &str = "portcullis.oauth1.token-secret";
/// The [`SecretKey::mac`] purpose of verifier digests.
pub const VERIFIER_PURPOSE: &str = "portcullis.oauth1.verifier";
/// The message for a signature that does not verify.
pub const INVALID_SIGNATURE: &str = "Invalid signature.";

/// An `oauth_signature_method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureMethod {
    /// `HMAC-SHA1` (RFC 5849 §3.4.2).
    HmacSha1,
    /// `HMAC-SHA256`: §3.4.2's construction with SHA-256.
    HmacSha256,
    /// `RSA-SHA1` (§3.4.3), with the consumer's public key.
    RsaSha1,
    /// `PLAINTEXT` (§3.4.4): the secrets themselves; HTTPS only.
    Plaintext,
}

impl FromStr for SignatureMethod {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        match s {
            "HMAC-SHA1" => Ok(SignatureMethod::HmacSha1),
            "HMAC-SHA256" => Ok(SignatureMethod::HmacSha256),
            "RSA-SHA1" => Ok(SignatureMethod::RsaSha1),
            "PLAINTEXT" => Ok(SignatureMethod::Plaintext),
            _ => Err(AuthError::bad_request(
                "Unsupported oauth_signature_method.",
            )),
        }
    }
}

/// [`OAuth1`]'s settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OAuth1Config {
    /// How far `oauth_timestamp` may be from the server's clock; default
    /// 300 s (`PORTCULLIS_OAUTH1_TIMESTAMP_WINDOW`).
    pub timestamp_window: Duration,
    /// Whether `PLAINTEXT` is accepted over plain HTTP; default `false`.
    pub plaintext_over_http: bool,
    /// Whether requests reach the server over HTTPS when neither the URI
    /// nor [`secure_proxy_header`](Self::secure_proxy_header) says so;
    /// default `false`.
    pub https: bool,
    /// Django's `SECURE_PROXY_SSL_HEADER`; default none.
    pub secure_proxy_header: Option<(HeaderName, String)>,
    /// The realm in the challenge; default `api`.
    pub realm: String,
    /// How long a request token may wait for authorization and exchange;
    /// default 600 s.
    pub request_token_lifetime: Duration,
}

impl Default for OAuth1Config {
    fn default() -> Self {
        OAuth1Config {
            timestamp_window: Duration::from_secs(300),
            plaintext_over_http: false,
            https: false,
            secure_proxy_header: None,
            realm: "api".into(),
            request_token_lifetime: Duration::from_secs(600),
        }
    }
}

/// Which credentials a signed request must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expect {
    /// Consumer only, with `oauth_callback`: a temporary credential
    /// request.
    NoToken,
    /// A request token with `oauth_verifier`: a token credential request.
    RequestToken,
    /// An access token: a protected resource.
    AccessToken,
}

/// A request whose signature verified.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The consumer that signed.
    pub consumer: ConsumerRecord,
    /// The token it signed with, if any.
    pub token: Option<OAuth1TokenRecord>,
    /// The protocol parameters (`oauth_*`), decoded.
    pub protocol: Vec<(String, String)>,
}

impl Verified {
    /// A protocol parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.protocol
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The request's parameters: the protocol ones and every one signed.
struct Collected {
    protocol: Vec<(String, String)>,
    all: Vec<(String, String)>,
}

/// Signature verification and credential issuance; cheap to clone.
#[derive(Clone)]
pub struct OAuth1 {
    store: Arc<dyn OAuth1Store>,
    secret: SecretKey,
    replay: Arc<dyn ReplayCache>,
    config: OAuth1Config,
    challenge: HeaderValue,
}

impl fmt::Debug for OAuth1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth1")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn failed(msg: &'static str) -> AuthError {
    AuthError::failed(msg)
}

fn bad(msg: &'static str) -> AuthError {
    AuthError::bad_request(msg)
}

impl OAuth1 {
    /// The service over `store`, sealing secrets with `secret` and
    /// remembering nonces in `replay`.
    ///
    /// # Panics
    ///
    /// If the realm cannot go in a header.
    pub fn new(
        store: impl OAuth1Store,
        secret: SecretKey,
        replay: Arc<dyn ReplayCache>,
        config: OAuth1Config,
    ) -> Self {
        let challenge = HeaderValue::from_str(&format!("OAuth realm=\"{}\"", config.realm))
            .expect("the realm must be a valid header value");
        OAuth1 {
            store: Arc::new(store),
            secret,
            replay,
            config,
            challenge,
        }
    }

    /// The settings.
    pub fn config(&self) -> &OAuth1Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &dyn OAuth1Store {
        &*self.store
    }

    /// `OAuth realm="api"`.
    pub fn challenge(&self) -> HeaderValue {
        self.challenge.clone()
    }

    fn is_https(&self, req: &RequestHead<'_>) -> bool {
        if let Some(s) = req.uri.scheme_str() {
            return s.eq_ignore_ascii_case("https");
        }
        if let Some((name, value)) = &self.config.secure_proxy_header {
            if let Some(v) = req.headers.get(name) {
                return v.as_bytes() == value.as_bytes();
            }
        }
        self.config.https
    }

    /// Whether the request carries OAuth credentials at all: an `OAuth`
    /// authorization header, or `oauth_consumer_key` in the body or query.
    pub fn has_credentials(req: &RequestHead<'_>, body: &[u8]) -> bool {
        if let Some(v) = req.headers.get(AUTHORIZATION) {
            if params::is_oauth_header(v.as_bytes()) {
                return true;
            }
        }
        let in_query = req.uri.query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "oauth_consumer_key")
        });
        in_query
            || (is_form(req)
                && form_urlencoded::parse(body).any(|(k, _)| k == "oauth_consumer_key"))
    }

    fn collect(req: &RequestHead<'_>, body: &[u8]) -> Result<Collected, AuthError> {
        let header = match req.headers.get(AUTHORIZATION) {
            Some(v) if params::is_oauth_header(v.as_bytes()) => {
                let text = v
                    .to_str()
                    .map_err(|_| bad("Malformed OAuth Authorization header."))?;
                params::parse_authorization(text)?
            }
            _ => Vec::new(),
        };
        let query = params::parse_form(req.uri.query().unwrap_or("").as_bytes())?;
        let form = if is_form(req) {
            params::parse_form(body)?
        } else {
            Vec::new()
        };
        let places = [&header, &form, &query]
            .iter()
            .filter(|ps| ps.iter().any(|(k, _)| k.starts_with("oauth_")))
            .count();
        if places > 1 {
            return Err(bad(
                "OAuth protocol parameters must be given in one place only.",
            ));
        }
        let mut protocol: Vec<(String, String)> = Vec::new();
        for (k, v) in header.iter().chain(&form).chain(&query) {
            if !k.starts_with("oauth_") {
                continue;
            }
            if !params::PROTOCOL_PARAMS.contains(&k.as_str()) {
                return Err(bad("Unsupported OAuth protocol parameter."));
            }
            if protocol.iter().any(|(n, _)| n == k) {
                return Err(bad("Duplicated OAuth protocol parameter."));
            }
            protocol.push((k.clone(), v.clone()));
        }
        let mut all = header;
        all.extend(query);
        all.extend(form);
        Ok(Collected { protocol, all })
    }

    /// Verifies a signed request (RFC 5849 §3.2): parameters, timestamp,
    /// nonce, consumer, token and signature. `body` is the request body
    /// (its form parameters are signed when it is
    /// `application/x-www-form-urlencoded`).
    pub async fn verify(
        &self,
        req: &RequestHead<'_>,
        body: &[u8],
        expect: Expect,
    ) -> Result<Verified, AuthError> {
        let collected = Self::collect(req, body)?;
        let get = |name: &str| {
            collected
                .protocol
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let consumer_key = get("oauth_consumer_key")
            .ok_or_else(|| bad("Missing OAuth parameter oauth_consumer_key."))?;
        let method: SignatureMethod = get("oauth_signature_method")
            .ok_or_else(|| bad("Missing OAuth parameter oauth_signature_method."))?
            .parse()?;
        let signature = get("oauth_signature")
            .ok_or_else(|| bad("Missing OAuth parameter oauth_signature."))?;
        if let Some(v) = get("oauth_version") {
            if v != "1.0" {
                return Err(bad("Unsupported oauth_version."));
            }
        }
        let timestamp = get("oauth_timestamp");
        let nonce = get("oauth_nonce");
        if method != SignatureMethod::Plaintext && (timestamp.is_none() || nonce.is_none()) {
            return Err(bad(
                "Missing OAuth parameter oauth_timestamp or oauth_nonce.",
            ));
        }
        let token = get("oauth_token");
        match expect {
            Expect::NoToken => {
                if token.is_some() {
                    return Err(bad("oauth_token is not expected here."));
                }
                if get("oauth_callback").is_none() {
                    return Err(bad("Missing OAuth parameter oauth_callback."));
                }
            }
            Expect::RequestToken => {
                if token.is_none() || get("oauth_verifier").is_none() {
                    return Err(bad(
                        "Missing OAuth parameter oauth_token or oauth_verifier.",
                    ));
                }
            }
            Expect::AccessToken => {
                if token.is_none() {
                    return Err(bad("Missing OAuth parameter oauth_token."));
                }
            }
        }
        if nonce.is_some_and(|n| n.is_empty() || n.len() > 255) {
            return Err(bad("oauth_nonce must be 1 to 255 characters."));
        }
        let now = SystemTime::now();
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if let Some(ts) = timestamp {
            if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("oauth_timestamp must be a number of seconds."));
            }
            let ts: i64 = ts
                .parse()
                .map_err(|_| bad("oauth_timestamp must be a number of seconds."))?;
            if (now_secs - ts).unsigned_abs() > self.config.timestamp_window.as_secs() {
                return Err(failed("Timestamp out of window."));
            }
        }
        let https = self.is_https(req);
        if method == SignatureMethod::Plaintext && !https && !self.config.plaintext_over_http {
            return Err(bad("PLAINTEXT signatures are accepted over HTTPS only."));
        }

        // Credentials.
        if check_oauth1_id(consumer_key).is_err() {
            return Err(failed("Invalid consumer key."));
        }
        let Some(consumer) = self.store.consumer(consumer_key).await? else {
            return Err(failed("Invalid consumer key."));
        };
        let token = match token {
            None => None,
            Some(t) => {
                let wanted = match expect {
                    Expect::RequestToken => TokenKind::Request,
                    _ => TokenKind::Access,
                };
                let record = if check_oauth1_id(t).is_ok() {
                    self.store.oauth1_token(t).await?
                } else {
                    None
                };
                match record {
                    Some(r)
                        if r.consumer_key == consumer.consumer_key
                            && r.kind == wanted
                            && r.expires_at.is_none_or(|e| e > Utc::now()) =>
                    {
                        Some(r)
                    }
                    _ => return Err(failed("Invalid token.")),
                }
            }
        };
        let consumer_secret = self.open(CONSUMER_SECRET_PURPOSE, &consumer.sealed_secret)?;
        let token_secret = match &token {
            Some(t) => self.open(TOKEN_SECRET_PURPOSE, &t.sealed_secret)?,
            None => String::new(),
        };
        let key = format!(
            "{}&{}",
            params::percent_encode(&consumer_secret),
            params::percent_encode(&token_secret)
        );

        let valid = match method {
            SignatureMethod::Plaintext => {
                crate::secret::ct_eq(key.as_bytes(), signature.as_bytes())
            }
            _ => {
                let authority = match req.uri.authority() {
                    Some(a) => a.as_str().to_owned(),
                    None => match req.headers.get(HOST).map(|h| h.to_str()) {
                        Some(Ok(h)) => h.to_owned(),
                        _ => return Err(bad("Host header missing or malformed.")),
                    },
                };
                let scheme = if https { "https" } else { "http" };
                let base = params::signature_base_string(
                    req.method.as_str(),
                    &params::base_uri(scheme, &authority, req.uri.path()),
                    &params::normalize_params(&collected.all),
                );
                let Ok(sig) = STANDARD.decode(signature) else {
                    return Err(failed(INVALID_SIGNATURE));
                };
                match method {
                    SignatureMethod::HmacSha1 => {
                        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key.as_bytes())
                            .expect("HMAC takes any key length");
                        mac.update(base.as_bytes());
                        mac.verify_slice(&sig).is_ok()
                    }
                    SignatureMethod::HmacSha256 => {
                        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes())
                            .expect("HMAC takes any key length");
                        mac.update(base.as_bytes());
                        mac.verify_slice(&sig).is_ok()
                    }
                    _ => verify_rsa_sha1(consumer.rsa_public_key.as_deref(), &base, &sig),
                }
            }
        };
        if !valid {
            return Err(failed(INVALID_SIGNATURE));
        }
        if let Some(nonce) = nonce {
            let replay_key = format!(
                "oauth1:{}:{}:{}:{}",
                hex::encode(consumer_key),
                hex::encode(token.as_ref().map(|t| t.token.as_str()).unwrap_or("")),
                timestamp.unwrap_or(""),
                hex::encode(nonce)
            );
            let ttl = self.config.timestamp_window * 2 + Duration::from_secs(1);
            if !self.replay.first_use(&replay_key, ttl, now).await? {
                return Err(failed("Nonce already used."));
            }
        }
        Ok(Verified {
            consumer,
            token,
            protocol: collected.protocol,
        })
    }

    fn open(&self, purpose: &str, sealed: &str) -> Result<String, AuthError> {
        self.secret
            .open(purpose, sealed)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                tracing::error!("a stored OAuth 1.0a secret cannot be opened with this secret key");
                failed(INVALID_SIGNATURE)
            })
    }

    /// Registers a consumer; returns its key and secret (the secret is
    /// shown once and stored sealed).
    pub async fn create_consumer(
        &self,
        name: &str,
        rsa_public_key: Option<String>,
        callback: Option<String>,
    ) -> Result<(String, String), StoreError> {
        let key = random_alphanumeric(30);
        let secret = random_alphanumeric(40);
        self.store
            .create_consumer(&ConsumerRecord {
                consumer_key: key.clone(),
                name: name.to_owned(),
                sealed_secret: self.secret.seal(CONSUMER_SECRET_PURPOSE, secret.as_bytes()),
                rsa_public_key,
                callback,
                created_at: Utc::now(),
            })
            .await?;
        Ok((key, secret))
    }

    async fn issue_token(
        &self,
        consumer_key: &str,
        user_id: Option<i64>,
        kind: TokenKind,
        callback: Option<String>,
    ) -> Result<(String, String), StoreError> {
        let token = random_alphanumeric(30);
        let secret = random_alphanumeric(40);
        let expires_at = match kind {
            TokenKind::Request => Some(
                Utc::now()
                    + chrono::Duration::from_std(self.config.request_token_lifetime)
                        .unwrap_or(chrono::Duration::minutes(10)),
            ),
            TokenKind::Access => None,
        };
        self.store
            .insert_oauth1_token(&OAuth1TokenRecord {
                token: token.clone(),
                consumer_key: consumer_key.to_owned(),
                user_id,
                kind,
                sealed_secret: self.secret.seal(TOKEN_SECRET_PURPOSE, secret.as_bytes()),
                callback,
                verifier_digest: None,
                created_at: Utc::now(),
                expires_at,
            })
            .await?;
        Ok((token, secret))
    }

    /// Issues an access token for `user_id` to a consumer; returns the
    /// token and its secret.
    pub async fn create_access_token(
        &self,
        consumer_key: &str,
        user_id: i64,
    ) -> Result<(String, String), StoreError> {
        self.issue_token(consumer_key, Some(user_id), TokenKind::Access, None)
            .await
    }

    /// The temporary credential request (RFC 5849 §2.1): verifies the
    /// request and issues a request token remembering `oauth_callback`.
    /// A callback other than `oob` must match the consumer's registered
    /// one when it has one.
    pub async fn request_token(
        &self,
        req: &RequestHead<'_>,
        body: &[u8],
    ) -> Result<(String, String), AuthError> {
        let v = self.verify(req, body, Expect::NoToken).await?;
        let callback = v.param("oauth_callback").unwrap_or("oob").to_owned();
        if callback != "oob" {
            let registered = v.consumer.callback.as_deref();
            let ok = match registered {
                Some(r) => callback == r || callback.starts_with(&format!("{r}?")),
                None => callback.starts_with("https://") || callback.starts_with("http://"),
            };
            if !ok || callback.len() > 2048 {
                return Err(bad("oauth_callback is not allowed for this consumer."));
            }
        }
        Ok(self
            .issue_token(
                &v.consumer.consumer_key,
                None,
                TokenKind::Request,
                Some(callback),
            )
            .await?)
    }

    /// The request token a user is asked to authorize, if it is one that
    /// still waits: with its consumer.
    pub async fn pending_request(
        &self,
        token: &str,
    ) -> Result<Option<(OAuth1TokenRecord, ConsumerRecord)>, StoreError> {
        if check_oauth1_id(token).is_err() {
            return Ok(None);
        }
        let Some(t) = self.store.oauth1_token(token).await? else {
            return Ok(None);
        };
        if t.kind != TokenKind::Request
            || t.user_id.is_some()
            || t.expires_at.is_some_and(|e| e <= Utc::now())
        {
            return Ok(None);
        }
        Ok(self.store.consumer(&t.consumer_key).await?.map(|c| (t, c)))
    }

    /// The user authorizes a request token (RFC 5849 §2.2): returns the
    /// verifier and the callback (`oob` or a URI), or `None` when the token
    /// is unknown, expired or already authorized.
    pub async fn authorize(
        &self,
        token: &str,
        user_id: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        let Some((t, _)) = self.pending_request(token).await? else {
            return Ok(None);
        };
        let verifier = random_alphanumeric(24);
        let digest = hex::encode(self.secret.mac(VERIFIER_PURPOSE, verifier.as_bytes()));
        if !self
            .store
            .authorize_request_token(token, user_id, &digest)
            .await?
        {
            return Ok(None);
        }
        Ok(Some((verifier, t.callback.unwrap_or_else(|| "oob".into()))))
    }

    /// The token credential request (RFC 5849 §2.3): verifies the request,
    /// its verifier, then exchanges the request token (single use) for an
    /// access token.
    pub async fn access_token(
        &self,
        req: &RequestHead<'_>,
        body: &[u8],
    ) -> Result<(String, String), AuthError> {
        let v = self.verify(req, body, Expect::RequestToken).await?;
        let token = v.token.as_ref().expect("verified with a token");
        let verifier = v.param("oauth_verifier").unwrap_or_default();
        let digest = hex::encode(self.secret.mac(VERIFIER_PURPOSE, verifier.as_bytes()));
        let (Some(user_id), Some(stored)) = (token.user_id, token.verifier_digest.as_deref())
        else {
            return Err(failed("Request token not authorized."));
        };
        if !crate::secret::ct_eq(digest.as_bytes(), stored.as_bytes()) {
            return Err(failed("Invalid oauth_verifier."));
        }
        if !self.store.delete_oauth1_token(&token.token).await? {
            return Err(failed("Invalid token."));
        }
        Ok(self
            .create_access_token(&v.consumer.consumer_key, user_id)
            .await?)
    }
}

fn is_form(req: &RequestHead<'_>) -> bool {
    req.headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.type_() == mime::APPLICATION && m.subtype() == mime::WWW_FORM_URLENCODED)
}

fn verify_rsa_sha1(pem: Option<&str>, base: &str, sig: &[u8]) -> bool {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let Some(pem) = pem else {
        return false;
    };
    let Ok(key) = rsa::RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem.trim()))
    else {
        return false;
    };
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<sha1::Sha1>::new(key)
        .verify(base.as_bytes(), &sig)
        .is_ok()
}

/// Whether `pem` is an RSA public key RSA-SHA1 can use.
pub fn is_rsa_public_key(pem: &str) -> bool {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    rsa::RsaPublicKey::from_public_key_pem(pem.trim()).is_ok()
        || rsa::RsaPublicKey::from_pkcs1_pem(pem.trim()).is_ok()
}

/// OAuth 1.0a authentication of protected resources; see the
/// [module docs](self).
pub struct OAuth1Auth<S> {
    oauth: OAuth1,
    users: S,
}

impl<S> fmt::Debug for OAuth1Auth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth1Auth")
            .field("oauth", &self.oauth)
            .finish_non_exhaustive()
    }
}

impl<S: UserStore> OAuth1Auth<S> {
    /// The scheme: access tokens checked by `oauth`, users from `users`.
    pub fn new(oauth: OAuth1, users: S) -> Self {
        OAuth1Auth { oauth, users }
    }
}

#[async_trait]
impl<S: UserStore> Scheme<S::User> for OAuth1Auth<S> {
    fn name(&self) -> &'static str {
        "oauth1"
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<S::User> {
        let body = req
            .extensions
            .get::<RequestBody>()
            .map(|b| b.0.clone())
            .unwrap_or_default();
        if !OAuth1::has_credentials(req, &body) {
            return Ok(None);
        }
        let v = self.oauth.verify(req, &body, Expect::AccessToken).await?;
        let user_id = v.token.as_ref().and_then(|t| t.user_id);
        let user = match user_id {
            Some(id) => self.users.user_by_id(id).await?,
            None => None,
        };
        let Some(user) = user.filter(|u| u.is_active()) else {
            return Err(failed("User inactive or deleted."));
        };
        let info = AuthInfo::new(format!("oauth1 consumer {}", v.consumer.consumer_key));
        Ok(Some(Authenticated::new(user, "oauth1").with_auth(info)))
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(self.oauth.challenge())
    }

    fn wants_body(&self, req: &RequestHead<'_>) -> bool {
        is_form(req)
    }
}
