//! HTTP Message Signatures (RFC 9421): [`HttpSigAuth`] verifies a
//! request's `Signature-Input` and `Signature` fields against a registered
//! key and authenticates the key's owner.
//!
//! # What is checked
//!
//! - Both fields are parsed as RFC 8941 dictionaries (the `sfv` crate);
//!   the first signature named in `Signature-Input` is verified.
//! - The signature must cover `@method`, `@target-uri` or `@path`,
//!   `@authority`, and `content-digest` whenever the request has a body;
//!   the `Content-Digest` field (RFC 9530, `sha-256`/`sha-512`) is checked
//!   against the body whenever it is present. The layer reads the body for
//!   this ([`Scheme::wants_body`]), within the policy's body limit.
//! - `keyid` and `created` are required; `created` may be at most
//!   [`HttpSigConfig::max_age`] old (default 300 s) and at most
//!   [`HttpSigConfig::skew`] in the future (default 30 s); `expires`, when
//!   present, is always enforced; `alg`, when present, must be the key's.
//! - Replays: a `nonce` goes through the [`ReplayCache`] under the key id.
//!   A signature without a nonce is remembered by a hash of its bytes, so
//!   the exact same signed request is refused a second time within the
//!   window too. A client that sends identical requests within one second
//!   with a deterministic algorithm (Ed25519, HMAC) must add a `nonce`.
//! - Derived components: `@method`, `@target-uri`, `@authority`,
//!   `@scheme`, `@request-target`, `@path`, `@query`, `@query-param`;
//!   header fields plain, with `;sf` (known dictionary fields), `;key` and
//!   `;bs`. `;req`, `;tr` and `@status` are refused.
//!
//! Malformed or duplicated fields and parameters are `400`; a bad, expired
//! or replayed signature, an unknown key or an inactive user is `401` with
//! `WWW-Authenticate: Signature realm="api"`; the reference app adds an
//! `Accept-Signature` field naming the required components
//! ([`HttpSigConfig::accept_signature`]).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use axum::{body::Body, routing::get, Router};
//! use ed25519_dalek::{pkcs8::{EncodePublicKey, spki::der::pem::LineEnding}, Signer, SigningKey};
//! use portcullis::replay::MemoryReplayCache;
//! use portcullis::scheme::httpsig::{Algorithm, HttpSigAuth, HttpSigConfig, MemorySignatureKeys,
//!     SignatureKeyRecord, SignatureKeyStore};
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin};
//! use portcullis::{IsAuthenticated, Policy, SecretKey, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let ada = store.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! let signing = SigningKey::from_bytes(&[7u8; 32]);
//! let keys = MemorySignatureKeys::new();
//! keys.add_signature_key(&SignatureKeyRecord {
//!     key_id: "ada-key".into(),
//!     user_id: ada.id,
//!     algorithm: Algorithm::Ed25519,
//!     key: signing.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
//!     created_at: chrono::Utc::now(),
//! }).await.unwrap();
//!
//! let scheme = HttpSigAuth::new(store, keys, SecretKey::new([1u8; 32]).unwrap(),
//!     Arc::new(MemoryReplayCache::new()), HttpSigConfig::default());
//! let policy = Policy::<User>::new().scheme(scheme).permission(IsAuthenticated);
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(policy.layer());
//!
//! let created = chrono::Utc::now().timestamp();
//! let params = format!(r#"("@method" "@path" "@authority");created={created};keyid="ada-key""#);
//! let base = format!("\"@method\": GET\n\"@path\": /\n\"@authority\": example.com\n\"@signature-params\": {params}");
//! let sig = base64::Engine::encode(&base64::engine::general_purpose::STANDARD,
//!     signing.sign(base.as_bytes()).to_bytes());
//! let good = http::Request::get("/").header("host", "example.com")
//!     .header("signature-input", format!("sig1={params}"))
//!     .header("signature", format!("sig1=:{sig}:"))
//!     .body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(good.map(|_| Body::empty())).await.unwrap().status(), 200);
//!
//! // No signature: 401 with the challenge.
//! let res = app.oneshot(http::Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], "Signature realm=\"api\"");
//! # });
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::header::HOST;
use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use crate::error::AuthError;
use crate::identity::{AuthInfo, AuthUser};
use crate::replay::ReplayCache;
use crate::scheme::{Authenticated, Outcome, RequestBody, RequestHead, Scheme};
use crate::secret::SecretKey;
use crate::store::UserStore;

mod base;
pub mod cavage;
mod keys;
mod store;
#[cfg(test)]
mod tests;

pub use base::{
    check_content_digest, combined_field, normalized_authority, parse_signature,
    serialize_identifier, serialize_params, signature_base, Message, ParsedSignature,
    SignatureParams, MAX_COMPONENTS, MAX_FIELD_LEN, MAX_PARAM_LEN,
};
pub use keys::{
    generate_key_pair, Algorithm, GeneratedKeyPair, KeyError, UnknownAlgorithm, VerifyKey,
};
pub use store::{
    check_key_id, MemorySignatureKeys, SignatureKeyRecord, SignatureKeyStore, MAX_KEY_ID,
};

/// The [`SecretKey::seal`] purpose under which HMAC secrets are stored.
pub const HMAC_SEAL_PURPOSE: &str = "portcullis.httpsig.hmac-secret";

/// The message for every signature that does not verify (an unknown key,
/// a wrong key or algorithm, a bad signature): one message, so a client
/// learns nothing about which.
pub const INVALID_SIGNATURE: &str = "Invalid signature.";

/// The components every signature must cover, in the order the
/// `Accept-Signature` field lists them.
pub const REQUIRED_COMPONENTS: [&str; 3] = ["@method", "@target-uri", "@authority"];

/// [`HttpSigAuth`]'s settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpSigConfig {
    /// How old `created` may be; default 300 s
    /// (`PORTCULLIS_HTTPSIG_MAX_AGE`).
    pub max_age: Duration,
    /// How far in the future `created` may be (clock skew); default 30 s.
    pub skew: Duration,
    /// The realm in the challenge; default `api`.
    pub realm: String,
    /// Whether requests reach the server over HTTPS when neither the URI
    /// nor [`secure_proxy_header`](Self::secure_proxy_header) says so
    /// (the scheme in `@target-uri` and `@scheme`); default `false`.
    pub https: bool,
    /// Django's `SECURE_PROXY_SSL_HEADER`: a header and value that mark a
    /// request as HTTPS behind a TLS-terminating proxy; default none.
    pub secure_proxy_header: Option<(HeaderName, String)>,
    /// Whether the older draft-cavage `Signature` header (also as
    /// `Authorization: Signature ...`) is accepted too ([`cavage`]); default
    /// `false` (`PORTCULLIS_HTTPSIG_CAVAGE`). It must sign
    /// `(request-target)`, `host`, `(created)` or `date`, and `digest` when
    /// there is a body; the same age, replay and key rules apply.
    pub cavage: bool,
}

impl Default for HttpSigConfig {
    fn default() -> Self {
        HttpSigConfig {
            max_age: Duration::from_secs(300),
            skew: Duration::from_secs(30),
            realm: "api".into(),
            https: false,
            secure_proxy_header: None,
            cavage: false,
        }
    }
}

impl HttpSigConfig {
    /// The `Accept-Signature` value naming what a signature must cover
    /// (RFC 9421 §5.1): `@method`, `@target-uri`, `@authority`, and
    /// `content-digest` when the request has a body; `created` and `keyid`
    /// requested too.
    pub fn accept_signature(&self, with_body: bool) -> HeaderValue {
        let digest = if with_body { " \"content-digest\"" } else { "" };
        HeaderValue::from_str(&format!(
            "sig1=(\"@method\" \"@target-uri\" \"@authority\"{digest});created;keyid"
        ))
        .expect("a static ASCII value")
    }
}

/// Verifies `sig` over `msg` with `key`: rebuilds the base and checks the
/// signature. No time, coverage or replay rule is applied here; the scheme
/// applies them. `Ok(false)` when the signature is wrong.
pub fn verify_signature(
    msg: &Message<'_>,
    sig: &ParsedSignature,
    key: &VerifyKey,
) -> Result<bool, AuthError> {
    let base = signature_base(msg, sig)?;
    Ok(key.verify(base.as_bytes(), &sig.signature))
}

/// HTTP Message Signatures authentication; see the [module docs](self).
pub struct HttpSigAuth<S> {
    users: S,
    keys: Arc<dyn SignatureKeyStore>,
    secret: SecretKey,
    replay: Arc<dyn ReplayCache>,
    config: HttpSigConfig,
    challenge: HeaderValue,
}

impl<S> fmt::Debug for HttpSigAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSigAuth")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: UserStore> HttpSigAuth<S> {
    /// The scheme: users from `users`, keys from `keys`, HMAC secrets
    /// opened with `secret`, nonces remembered in `replay`.
    ///
    /// # Panics
    ///
    /// If the realm cannot go in a header.
    pub fn new(
        users: S,
        keys: impl SignatureKeyStore,
        secret: SecretKey,
        replay: Arc<dyn ReplayCache>,
        config: HttpSigConfig,
    ) -> Self {
        let challenge = HeaderValue::from_str(&format!("Signature realm=\"{}\"", config.realm))
            .expect("the realm must be a valid header value");
        HttpSigAuth {
            users,
            keys: Arc::new(keys),
            secret,
            replay,
            config,
            challenge,
        }
    }

    /// The settings.
    pub fn config(&self) -> &HttpSigConfig {
        &self.config
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

    async fn verify(&self, req: &RequestHead<'_>, sig: ParsedSignature) -> Outcome<S::User> {
        let Some(keyid) = sig.params.keyid.clone() else {
            return Err(AuthError::bad_request("Signature parameter keyid missing."));
        };
        let Some(created) = sig.params.created else {
            return Err(AuthError::bad_request(
                "Signature parameter created missing.",
            ));
        };
        let now_time = SystemTime::now();
        let now = now_time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let max_age = self.config.max_age.as_secs() as i64;
        let skew = self.config.skew.as_secs() as i64;
        if created > now.saturating_add(skew) {
            return Err(AuthError::failed("Signature created in the future."));
        }
        if now.saturating_sub(created) > max_age {
            return Err(AuthError::failed("Signature has expired."));
        }
        if let Some(expires) = sig.params.expires {
            if expires < now {
                return Err(AuthError::failed("Signature has expired."));
            }
        }
        let body = req
            .extensions
            .get::<RequestBody>()
            .map(|b| b.0.clone())
            .unwrap_or_default();
        let covers_target = sig.covers("@target-uri") || sig.covers("@path");
        if !sig.covers("@method")
            || !covers_target
            || !sig.covers("@authority")
            || (!body.is_empty() && !sig.covers("content-digest"))
        {
            return Err(AuthError::failed(
                "Signature must cover @method, @target-uri or @path, @authority, and content-digest when there is a body.",
            ));
        }
        if let Some(digest) = combined_field(req.headers, "content-digest")? {
            check_content_digest(&digest, &body)?;
        }
        let authority = match req.uri.authority() {
            Some(a) => a.as_str().to_owned(),
            None => match req.headers.get(HOST).map(|h| h.to_str()) {
                Some(Ok(h)) => h.to_owned(),
                Some(Err(_)) => return Err(AuthError::bad_request("Malformed Host header.")),
                None => return Err(AuthError::bad_request("Host header missing.")),
            },
        };
        let scheme = if self.is_https(req) { "https" } else { "http" };
        let msg = Message {
            method: req.method,
            scheme,
            authority: &authority,
            path: req.uri.path(),
            query: req.uri.query(),
            headers: req.headers,
        };
        // Build the base first: a malformed covered component is 400
        // whatever the key.
        let base = signature_base(&msg, &sig)?;
        if check_key_id(&keyid).is_err() {
            return Err(AuthError::failed(INVALID_SIGNATURE));
        }
        let Some(record) = self.keys.signature_key(&keyid).await? else {
            tracing::debug!("HTTP signature with an unknown keyid");
            return Err(AuthError::failed(INVALID_SIGNATURE));
        };
        if let Some(alg) = &sig.params.alg {
            if alg != record.algorithm.as_str() {
                return Err(AuthError::failed(INVALID_SIGNATURE));
            }
        }
        let key = self.load_key(&record)?;
        if !key.verify(base.as_bytes(), &sig.signature) {
            return Err(AuthError::failed(INVALID_SIGNATURE));
        }
        let replay_key = match &sig.params.nonce {
            Some(nonce) => format!("httpsig:nonce:{}:{nonce}", hex::encode(keyid.as_bytes())),
            None => format!(
                "httpsig:sig:{}",
                hex::encode(Sha256::digest(&sig.signature))
            ),
        };
        let ttl = self.config.max_age + self.config.skew * 2;
        if !self.replay.first_use(&replay_key, ttl, now_time).await? {
            return Err(AuthError::failed("Signature already used."));
        }
        let user = match self.users.user_by_id(record.user_id).await? {
            Some(u) if u.is_active() => u,
            _ => return Err(AuthError::failed("User inactive or deleted.")),
        };
        let info = AuthInfo::new(format!("httpsig keyid {keyid}"));
        Ok(Some(Authenticated::new(user, "httpsig").with_auth(info)))
    }

    /// Verifies a draft-cavage signature (see [`cavage`]).
    async fn verify_cavage(
        &self,
        req: &RequestHead<'_>,
        sig: cavage::CavageSignature,
    ) -> Outcome<S::User> {
        let now_time = SystemTime::now();
        let now = now_time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let body = req
            .extensions
            .get::<RequestBody>()
            .map(|b| b.0.clone())
            .unwrap_or_default();
        let dated = sig.covers("(created)") || sig.covers("date");
        if !sig.covers("(request-target)")
            || !sig.covers("host")
            || !dated
            || (!body.is_empty() && !sig.covers("digest"))
        {
            return Err(AuthError::failed(
                "Signature must cover (request-target), host, (created) or date, and digest when there is a body.",
            ));
        }
        let created = match sig.created {
            Some(c) if sig.covers("(created)") => c,
            _ => {
                let date = combined_field(req.headers, "date")?
                    .ok_or_else(|| AuthError::failed("Date header missing."))?;
                chrono::DateTime::parse_from_rfc2822(&date)
                    .map_err(|_| AuthError::bad_request("Malformed Date header."))?
                    .timestamp()
            }
        };
        let max_age = self.config.max_age.as_secs() as i64;
        let skew = self.config.skew.as_secs() as i64;
        if created > now.saturating_add(skew) || now.saturating_sub(created) > max_age {
            return Err(AuthError::failed("Signature has expired."));
        }
        if sig.expires.is_some_and(|e| e < now) {
            return Err(AuthError::failed("Signature has expired."));
        }
        if let Some(digest) = combined_field(req.headers, "digest")? {
            cavage::check_digest(&digest, &body)?;
        }
        let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let base = cavage::signing_string(&sig, req.method, target, req.headers)?;
        if check_key_id(&sig.key_id).is_err() {
            return Err(AuthError::failed(INVALID_SIGNATURE));
        }
        let Some(record) = self.keys.signature_key(&sig.key_id).await? else {
            return Err(AuthError::failed(INVALID_SIGNATURE));
        };
        if !sig.algorithm_fits(record.algorithm) {
            return Err(AuthError::failed(INVALID_SIGNATURE));
        }
        let key = self.load_key(&record)?;
        // ECDSA signatures are DER in most draft-cavage implementations.
        let signature = match (&key, p256::ecdsa::Signature::from_der(&sig.signature)) {
            (VerifyKey::EcdsaP256(_), Ok(der)) => der.to_bytes().to_vec(),
            _ => sig.signature.clone(),
        };
        if !key.verify(base.as_bytes(), &signature) {
            return Err(AuthError::failed(INVALID_SIGNATURE));
        }
        let replay_key = format!(
            "httpsig:sig:{}",
            hex::encode(Sha256::digest(&sig.signature))
        );
        let ttl = self.config.max_age + self.config.skew * 2;
        if !self.replay.first_use(&replay_key, ttl, now_time).await? {
            return Err(AuthError::failed("Signature already used."));
        }
        let user = match self.users.user_by_id(record.user_id).await? {
            Some(u) if u.is_active() => u,
            _ => return Err(AuthError::failed("User inactive or deleted.")),
        };
        let info = AuthInfo::new(format!("httpsig keyid {}", sig.key_id));
        Ok(Some(Authenticated::new(user, "httpsig").with_auth(info)))
    }

    fn load_key(&self, record: &SignatureKeyRecord) -> Result<VerifyKey, AuthError> {
        let loaded = if record.algorithm.is_symmetric() {
            match self.secret.open(HMAC_SEAL_PURPOSE, &record.key) {
                Some(secret) => VerifyKey::hmac(&secret).ok(),
                None => None,
            }
        } else {
            VerifyKey::from_public_pem(record.algorithm, &record.key).ok()
        };
        loaded.ok_or_else(|| {
            // A key the server cannot use (another secret key, a corrupt
            // row): the operator's problem, the client's refusal.
            tracing::error!(
                algorithm = record.algorithm.as_str(),
                "stored HTTP signature key cannot be loaded"
            );
            AuthError::failed(INVALID_SIGNATURE)
        })
    }
}

#[async_trait]
impl<S: UserStore> Scheme<S::User> for HttpSigAuth<S> {
    fn name(&self) -> &'static str {
        "httpsig"
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<S::User> {
        if self.config.cavage && !req.headers.contains_key("signature-input") {
            return match cavage::parse_cavage(req.headers)? {
                None => Ok(None),
                Some(sig) => self.verify_cavage(req, sig).await,
            };
        }
        match parse_signature(req.headers)? {
            None => Ok(None),
            Some(sig) => self.verify(req, sig).await,
        }
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(self.challenge.clone())
    }

    fn wants_body(&self, req: &RequestHead<'_>) -> bool {
        req.headers.contains_key("signature-input")
            || (self.config.cavage && req.headers.contains_key("signature"))
            || (self.config.cavage
                && req
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes().starts_with(b"Signature ")))
    }
}
