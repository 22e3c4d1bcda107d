//! JSON Web Tokens as djangorestframework-simplejwt issues and checks them:
//! access/refresh pairs, refresh rotation, the blacklist, the
//! [`JwtAuth`] scheme and the four token views as plain functions
//! ([`views`]).
//!
//! | simplejwt | here |
//! |---|---|
//! | `SIMPLE_JWT` settings | [`JwtSettings`] |
//! | `RefreshToken.for_user(user)` | [`Jwt::for_user`] → [`TokenPair`] |
//! | `TokenRefreshSerializer` | [`Jwt::refresh`], [`views::refresh`] |
//! | `TokenVerifySerializer` (`UntypedToken`) | [`Jwt::verify`], [`views::verify`] |
//! | `TokenBlacklistSerializer` | [`Jwt::blacklist`], [`views::blacklist`] |
//! | `TokenObtainPairSerializer` | [`views::obtain`] |
//! | `JWTAuthentication` | [`JwtAuth`] |
//! | `token_blacklist` app | [`JwtBlacklist`], [`MemoryBlacklist`] |
//! | `flushexpiredtokens` | [`Jwt::flush_expired`] |
//!
//! Claims are simplejwt's: `token_type` (`"access"`/`"refresh"`), `exp`,
//! `iat`, `jti` (a UUID4 as 32 hex digits) and `user_id`, plus `aud`/`iss`
//! when configured. `user_id` is written as simplejwt writes an integer
//! primary key: a JSON **number** (`"user_id": 3`; simplejwt stringifies only
//! non-integer keys — the 5.5.0 change that always stringified was
//! reverted). When reading, a number or a string of digits is accepted, as
//! Django's ORM accepts both.
//!
//! # Safety
//!
//! - Every key is pinned to one algorithm; a token's header only selects
//!   among configured keys. `alg: none`, unknown algorithms and algorithm
//!   confusion (an HS256 token "signed" with an RSA public key) are refused.
//! - Refresh tokens are never accepted as access tokens (the `token_type`
//!   claim is checked), `exp` is required, `nbf`, `iat`, `aud` and `iss`
//!   are enforced (with [`JwtSettings::leeway`]).
//! - Blacklisted refresh tokens are refused wherever simplejwt refuses them
//!   (refresh, blacklist, verify). Access tokens are checked against the
//!   blacklist only with [`JwtSettings::blacklist_access_tokens`] (a
//!   portcullis extension; simplejwt never blacklists access tokens).
//! - Token contents are never logged, and the `AuthInfo` description holds
//!   only the `jti`.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use portcullis::jwt::{Jwt, JwtAuth, JwtSettings};
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin};
//! use portcullis::{IsAuthenticated, Policy, SecretKey, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let ada = store.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! let jwt = Jwt::new(JwtSettings::default(), &SecretKey::new([7u8; 32]).unwrap()).unwrap();
//! let pair = jwt.for_user(&ada).await.unwrap();
//!
//! let policy = Policy::<User>::new().scheme(JwtAuth::new(jwt, store)).permission(IsAuthenticated);
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(policy.layer());
//!
//! let good = http::Request::get("/").header("authorization", format!("Bearer {}", pair.access))
//!     .body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(good).await.unwrap().status(), 200);
//!
//! // A refresh token is not an access token.
//! let bad = http::Request::get("/").header("authorization", format!("Bearer {}", pair.refresh))
//!     .body(Body::empty()).unwrap();
//! let res = app.oneshot(bad).await.unwrap();
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
//! # });
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{Header, Validation};
use serde_json::{Map, Value};

use crate::identity::AuthUser;
use crate::secret::SecretKey;
use crate::store::StoreError;

mod blacklist;
mod keys;
mod scheme;
pub mod views;

pub use blacklist::{JwtBlacklist, MemoryBlacklist, OutstandingToken};
use keys::KeySet;
pub use keys::{algorithm_name, generate_key_pair, Algorithm, GeneratedKeyPair, JwtKey, KeyError};
pub use scheme::{
    parse_authorization, JwtAuth, BAD_HEADER, NOT_VALID_FOR_ANY_TYPE, NO_USER_ID, USER_INACTIVE,
    USER_NOT_FOUND,
};
pub use views::JwtViewError;

/// simplejwt's `token_type` for access tokens.
pub const ACCESS: &str = "access";
/// simplejwt's `token_type` for refresh tokens.
pub const REFRESH: &str = "refresh";

/// Which user attribute the user-id claim holds (simplejwt's
/// `USER_ID_FIELD`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserIdField {
    /// The primary key, written as a JSON number (simplejwt's default
    /// `"id"`).
    #[default]
    Id,
    /// The username, written as a string.
    Username,
}

/// simplejwt's `SIMPLE_JWT` settings. Every field has simplejwt's default;
/// change fields on `JwtSettings::default()`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JwtSettings {
    /// `ACCESS_TOKEN_LIFETIME`. Default: 5 minutes.
    pub access_token_lifetime: Duration,
    /// `REFRESH_TOKEN_LIFETIME`. Default: 1 day.
    pub refresh_token_lifetime: Duration,
    /// `ROTATE_REFRESH_TOKENS`: the refresh view also returns a new refresh
    /// token. Default: `false`.
    pub rotate_refresh_tokens: bool,
    /// `BLACKLIST_AFTER_ROTATION`: with rotation, the refresh token that was
    /// used is blacklisted (needs a [`JwtBlacklist`]). Default: `false`.
    pub blacklist_after_rotation: bool,
    /// `UPDATE_LAST_LOGIN`: [`views::obtain`] records the login. Default:
    /// `false`.
    pub update_last_login: bool,
    /// `ALGORITHM` used with the secret key when no
    /// [`signing_key`](Self::signing_key) is set (HS256, HS384 or HS512).
    /// Default: HS256.
    pub algorithm: Algorithm,
    /// `SIGNING_KEY`. Default: `None`, meaning the project's [`SecretKey`]
    /// with [`algorithm`](Self::algorithm). Its `kid`, if any, goes into
    /// every token's header.
    pub signing_key: Option<JwtKey>,
    /// `VERIFYING_KEY`, generalised to a list for key rotation: tokens
    /// signed by any of these (or by the signing key, always accepted) are
    /// valid. Default: empty.
    pub verifying_keys: Vec<JwtKey>,
    /// `AUDIENCE`: written as `aud` and required when verifying. Default:
    /// `None` (no `aud` written; `aud` in incoming tokens not checked, as
    /// simplejwt).
    pub audience: Option<String>,
    /// `ISSUER`: written as `iss` and required when verifying. Default:
    /// `None`.
    pub issuer: Option<String>,
    /// `JWK_URL`: where the issuer publishes its JWKS. Default: `None`. The
    /// library does no HTTP; an app that sets it fetches the document and
    /// adds its keys with [`JwtSettings::add_jwks`].
    pub jwk_url: Option<String>,
    /// `LEEWAY` for `exp`, `nbf` and `iat`. Default: 0.
    pub leeway: Duration,
    /// `AUTH_HEADER_TYPES`: the `Authorization` keywords accepted, matched
    /// case-insensitively; the first names the challenge. Default:
    /// `["Bearer"]`.
    pub auth_header_types: Vec<String>,
    /// `USER_ID_FIELD`. Default: [`UserIdField::Id`] (`"id"`).
    pub user_id_field: UserIdField,
    /// `USER_ID_CLAIM`. Default: `"user_id"`.
    pub user_id_claim: String,
    /// `TOKEN_TYPE_CLAIM`. Default: `"token_type"`.
    pub token_type_claim: String,
    /// `JTI_CLAIM`. Default: `"jti"`.
    pub jti_claim: String,
    /// portcullis extension: [`JwtAuth`] also refuses access tokens whose
    /// `jti` is blacklisted (one blacklist look-up per request; blacklist
    /// access tokens with [`Jwt::blacklist_access`]). Default: `false`, as
    /// simplejwt, whose access tokens are never blacklisted.
    pub blacklist_access_tokens: bool,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            access_token_lifetime: Duration::from_secs(5 * 60),
            refresh_token_lifetime: Duration::from_secs(24 * 60 * 60),
            rotate_refresh_tokens: false,
            blacklist_after_rotation: false,
            update_last_login: false,
            algorithm: Algorithm::HS256,
            signing_key: None,
            verifying_keys: Vec::new(),
            audience: None,
            issuer: None,
            jwk_url: None,
            leeway: Duration::ZERO,
            auth_header_types: vec!["Bearer".into()],
            user_id_field: UserIdField::Id,
            user_id_claim: "user_id".into(),
            token_type_claim: "token_type".into(),
            jti_claim: "jti".into(),
            blacklist_access_tokens: false,
        }
    }
}

impl JwtSettings {
    /// Adds every supported key of a JWKS document (`{"keys": [...]}`, e.g.
    /// fetched from [`jwk_url`](Self::jwk_url)) as a verifying key, with its
    /// `kid` and `alg`. Keys without an `alg`, or of an unsupported type, are
    /// skipped; returns how many were added.
    pub fn add_jwks(&mut self, jwks: &Value) -> usize {
        let Ok(set) = serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(jwks.clone()) else {
            return 0;
        };
        let mut n = 0;
        for jwk in &set.keys {
            let Some(key) = JwtKey::from_jwk(jwk) else {
                continue;
            };
            self.verifying_keys.push(key);
            n += 1;
        }
        n
    }
}

/// A configuration mistake found by [`Jwt::new`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// A key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A setting is out of range or inconsistent.
    #[error("invalid JWT setting: {0}")]
    Invalid(&'static str),
}

/// Why a token was refused: simplejwt's `TokenError` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Bad format, signature, algorithm, key, `nbf`, `iat`, `aud` or `iss`.
    #[error("Token is invalid")]
    Invalid,
    /// `exp` has passed (beyond the leeway).
    #[error("Token is expired")]
    Expired,
    /// No `exp` claim.
    #[error("Token has no 'exp' claim")]
    NoExp,
    /// No `jti` claim.
    #[error("Token has no id")]
    NoId,
    /// No `token_type` claim.
    #[error("Token has no type")]
    NoType,
    /// A `token_type` other than the one asked for.
    #[error("Token has wrong type")]
    WrongType,
    /// The `jti` is blacklisted.
    #[error("Token is blacklisted")]
    Blacklisted,
}

/// What can go wrong issuing, refreshing or blacklisting tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token given was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The blacklist or user store failed (or no blacklist is configured
    /// where one is needed: [`StoreError::Unsupported`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed (a misconfigured key).
    #[error("could not sign a token: {0}")]
    Signing(String),
}

/// The validated claims of a token, attached to [`AuthInfo`] by
/// [`JwtAuth`] (read them with `auth.data::<Claims>()`).
///
/// [`AuthInfo`]: crate::AuthInfo
#[derive(Clone)]
pub struct Claims {
    /// Every claim, read from `json` when first asked for: checking a
    /// token needs only the few claims in the fields below.
    payload: OnceLock<Map<String, Value>>,
    /// The payload's JSON as signed; `None` when `payload` was given.
    json: Option<Arc<[u8]>>,
    token_type: Option<String>,
    jti: String,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    user_id: Option<Value>,
}

impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        self.token_type == other.token_type
            && self.jti == other.jti
            && self.exp == other.exp
            && self.nbf == other.nbf
            && self.iat == other.iat
            && self.user_id == other.user_id
            && self.payload() == other.payload()
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("token_type", &self.token_type)
            .field("jti", &self.jti)
            .field("exp", &self.exp)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Claims {
    /// The `token_type` claim (`"access"`, `"refresh"`, or absent for
    /// foreign tokens passed to [`Jwt::verify`]).
    pub fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }
    /// The token id.
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// The expiry.
    pub fn exp(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.exp, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
    /// When the token was issued, if it says.
    pub fn iat(&self) -> Option<DateTime<Utc>> {
        self.iat.and_then(|t| Utc.timestamp_opt(t, 0).single())
    }
    /// The raw user-id claim (a number or a string).
    pub fn user_id(&self) -> Option<&Value> {
        self.user_id.as_ref()
    }
    /// The user id as an integer: a JSON integer or a string of digits.
    pub fn user_id_i64(&self) -> Option<i64> {
        match self.user_id.as_ref()? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
    /// Any claim.
    pub fn get(&self, claim: &str) -> Option<&Value> {
        self.payload().get(claim)
    }
    /// Every claim.
    pub fn payload(&self) -> &Map<String, Value> {
        self.payload.get_or_init(|| {
            // The JSON passed `Pick`, which accepts no more than a `Map`
            // does, so this parse cannot fail; were it to, an empty map
            // answers (and debug builds stop) rather than a panic.
            let json = self.json.as_deref().unwrap_or(b"{}");
            serde_json::from_slice(json).unwrap_or_else(|_| {
                debug_assert!(false, "a payload that Pick read is not a map");
                Map::new()
            })
        })
    }
}

/// An access token and its refresh token, as `/api/token/` returns them.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The access token (lifetime [`JwtSettings::access_token_lifetime`]).
    pub access: String,
    /// The refresh token (lifetime [`JwtSettings::refresh_token_lifetime`]).
    pub refresh: String,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenPair(<redacted>)")
    }
}

/// What a refresh returns: a new access token, and with rotation a new
/// refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshOutcome {
    /// The new access token.
    pub access: String,
    /// The new refresh token, when [`JwtSettings::rotate_refresh_tokens`].
    pub refresh: Option<String>,
}

impl fmt::Debug for RefreshOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshOutcome")
            .field("rotated", &self.refresh.is_some())
            .finish_non_exhaustive()
    }
}

/// The token service: issues, validates, refreshes and blacklists tokens.
/// Cheap to clone.
#[derive(Clone)]
pub struct Jwt {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    settings: JwtSettings,
    keys: KeySet,
    /// What `jsonwebtoken::decode` asks of a token, per algorithm of the
    /// verifying keys: made once, not on every request. HMAC keys verify
    /// with their own `HmacVerifier` and do not use theirs (the tests do,
    /// to compare the two).
    validations: Vec<(jsonwebtoken::Algorithm, Validation)>,
    blacklist: Option<Arc<dyn JwtBlacklist>>,
}

/// The checks `jsonwebtoken` makes for a token signed with `alg`: the
/// signature, `nbf`, and `aud` and `iss` when set (`exp` is checked by
/// [`Jwt::validate`] itself, with simplejwt's boundary).
fn validation(settings: &JwtSettings, alg: jsonwebtoken::Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.leeway = settings.leeway.as_secs();
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = true;
    v.validate_aud = settings.audience.is_some();
    if let Some(aud) = &settings.audience {
        v.set_audience(&[aud]);
        v.required_spec_claims.insert("aud".into());
    }
    if let Some(iss) = &settings.issuer {
        v.set_issuer(&[iss]);
        v.required_spec_claims.insert("iss".into());
    }
    v
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithm", &self.inner.keys.signing.alg)
            .field("blacklist", &self.inner.blacklist.is_some())
            .finish_non_exhaustive()
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        _ => None,
    }
}

/// `nbf` as a time: [`as_i64`], except that a non-negative fraction is
/// rounded, as `jsonwebtoken` rounds it (so `now + 0.6` is in the future).
fn nbf_time(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().filter(|f| f.is_finite())?;
            Some(if f >= 0.0 { f.round() as i64 } else { f as i64 })
        }
        _ => as_i64(v),
    }
}

fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Jwt {
    /// Checks the settings and loads the keys. Errors here are
    /// configuration mistakes: a signing key that cannot sign, a signing key
    /// whose algorithm differs from [`JwtSettings::algorithm`] … no request
    /// ever finds them.
    pub fn new(settings: JwtSettings, secret: &SecretKey) -> Result<Self, JwtConfigError> {
        let invalid = |m| Err(JwtConfigError::Invalid(m));
        if settings.access_token_lifetime.is_zero() || settings.refresh_token_lifetime.is_zero() {
            return invalid("token lifetimes must be positive");
        }
        if settings.auth_header_types.is_empty()
            || !settings.auth_header_types.iter().all(|t| is_http_token(t))
        {
            return invalid("auth_header_types must be non-empty HTTP tokens");
        }
        if [
            &settings.user_id_claim,
            &settings.token_type_claim,
            &settings.jti_claim,
        ]
        .iter()
        .any(|c| c.is_empty() || ["exp", "iat", "nbf", "aud", "iss"].contains(&c.as_str()))
        {
            return invalid(
                "claim names must be non-empty and not registered time/audience claims",
            );
        }
        let signing = match &settings.signing_key {
            Some(k) => {
                if !k.can_sign() {
                    return invalid("the signing key must be a secret or a private key");
                }
                k.clone()
            }
            None => JwtKey::hmac(settings.algorithm, secret.expose())?,
        };
        if signing.alg != settings.algorithm {
            return invalid("the signing key's algorithm differs from `algorithm`");
        }
        let mut verifying = vec![signing.clone()];
        verifying.extend(settings.verifying_keys.iter().cloned());
        let mut validations: Vec<(jsonwebtoken::Algorithm, Validation)> = Vec::new();
        for key in &verifying {
            if !validations.iter().any(|(alg, _)| *alg == key.alg) {
                validations.push((key.alg, validation(&settings, key.alg)));
            }
        }
        Ok(Jwt {
            inner: Arc::new(Inner {
                settings,
                keys: KeySet { signing, verifying },
                validations,
                blacklist: None,
            }),
        })
    }

    /// Uses `blacklist` for outstanding and blacklisted tokens (simplejwt's
    /// `token_blacklist` app in `INSTALLED_APPS`). Without one, nothing is
    /// recorded, rotation blacklists nothing and [`Jwt::blacklist`] fails.
    pub fn with_blacklist(self, blacklist: impl JwtBlacklist) -> Self {
        let inner = Inner {
            blacklist: Some(Arc::new(blacklist)),
            ..(*self.inner).clone()
        };
        Jwt {
            inner: Arc::new(inner),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &JwtSettings {
        &self.inner.settings
    }

    /// The blacklist, if one is configured.
    pub fn blacklist_store(&self) -> Option<&Arc<dyn JwtBlacklist>> {
        self.inner.blacklist.as_ref()
    }

    /// The public JWKS (`/.well-known/jwks.json`): every asymmetric
    /// verifying key; `{"keys": []}` with HMAC.
    pub fn jwks(&self) -> Value {
        self.inner.keys.jwks()
    }

    /// The `WWW-Authenticate` challenge: `<first header type> realm="api"`.
    pub fn challenge(&self) -> String {
        format!("{} realm=\"api\"", self.inner.settings.auth_header_types[0])
    }

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    fn secs(d: Duration) -> i64 {
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
    }

    fn new_jti() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    fn sign(&self, mut payload: Map<String, Value>) -> Result<String, JwtError> {
        let s = &self.inner.settings;
        if let Some(aud) = &s.audience {
            payload.insert("aud".into(), aud.clone().into());
        }
        if let Some(iss) = &s.issuer {
            payload.insert("iss".into(), iss.clone().into());
        }
        let key = &self.inner.keys.signing;
        let mut header = Header::new(key.alg);
        header.kid = key.kid.clone();
        let enc = key
            .encoding
            .as_ref()
            .ok_or_else(|| JwtError::Signing("key cannot sign".into()))?;
        jsonwebtoken::encode(&header, &payload, enc).map_err(|e| JwtError::Signing(e.to_string()))
    }

    fn outstanding(&self, claims: &Claims) -> OutstandingToken {
        OutstandingToken {
            jti: claims.jti.clone(),
            user_id: match self.inner.settings.user_id_field {
                UserIdField::Id => claims.user_id_i64(),
                UserIdField::Username => None,
            },
            created_at: claims.iat().unwrap_or_else(Utc::now),
            expires_at: claims.exp(),
        }
    }

    /// The checks of a signed payload that depend on the clock, in the
    /// order they have always answered in: first `nbf` as `jsonwebtoken`
    /// checks it (a non-negative number, fractions rounded, not after now
    /// plus the leeway); then `exp`, which must be there (PyJWT's boundary:
    /// `exp <= now - leeway` is expired); then `nbf` and `iat`, which must
    /// be numbers and not in the future.
    fn check_times(&self, picked: &Picked) -> Result<(), TokenError> {
        let nbf = picked
            .nbf
            .as_ref()
            .map(|v| nbf_time(v).ok_or(TokenError::Invalid))
            .transpose();
        if let Ok(Some(t)) = nbf {
            if t > Self::now() + Self::secs(self.inner.settings.leeway) {
                return Err(TokenError::Invalid);
            }
        }
        let exp = match &picked.exp {
            None => return Err(TokenError::NoExp),
            Some(exp) => as_i64(exp).ok_or(TokenError::Invalid)?,
        };
        let nbf = nbf?;
        let iat = picked
            .iat
            .as_ref()
            .map(|v| as_i64(v).ok_or(TokenError::Invalid))
            .transpose()?;
        self.check_clock(exp, nbf, iat)
    }

    /// [`check_times`](Self::check_times) for times already read.
    fn check_clock(&self, exp: i64, nbf: Option<i64>, iat: Option<i64>) -> Result<(), TokenError> {
        let now = Self::now();
        let leeway = Self::secs(self.inner.settings.leeway);
        if nbf.is_some_and(|t| t > now + leeway) {
            return Err(TokenError::Invalid);
        }
        if exp <= now - leeway {
            return Err(TokenError::Expired);
        }
        if iat.is_some_and(|t| t > now + leeway) {
            return Err(TokenError::Invalid);
        }
        Ok(())
    }

    /// Checks again what [`validate`](Self::validate) checked against the
    /// clock, for claims it accepted earlier.
    pub(crate) fn recheck_times(&self, claims: &Claims) -> Result<(), TokenError> {
        self.check_clock(claims.exp, claims.nbf, claims.iat)
    }

    /// Checks the claims picked out of a signed payload and makes them
    /// [`Claims`]; `payload` is the whole of it, as a map or as its JSON.
    fn claims_of(&self, picked: Picked, payload: Payload) -> Result<Claims, TokenError> {
        let exp = picked.exp.as_ref().ok_or(TokenError::NoExp)?;
        let exp = as_i64(exp).ok_or(TokenError::Invalid)?;
        let jti = match picked.jti {
            None => return Err(TokenError::NoId),
            Some(Value::String(j)) if !j.is_empty() => j,
            Some(_) => return Err(TokenError::Invalid),
        };
        let token_type = match picked.token_type {
            None => None,
            Some(Value::String(t)) => Some(t),
            Some(_) => return Err(TokenError::Invalid),
        };
        let (payload, json) = match payload {
            Payload::Map(map) => (OnceLock::from(map), None),
            Payload::Json(json) => (OnceLock::new(), Some(json)),
        };
        Ok(Claims {
            payload,
            json,
            token_type,
            jti,
            exp,
            // Both were checked to be numbers by `check_times`.
            nbf: picked.nbf.as_ref().and_then(nbf_time),
            iat: picked.iat.as_ref().and_then(as_i64),
            user_id: picked.user_id,
        })
    }

    /// An HMAC-signed token checked with the key's pre-keyed MAC, as
    /// `jsonwebtoken::decode` checks it but without its per-token costs
    /// (the HMAC key set up again, the header parsed twice and the claims
    /// twice). The same answers: exactly three base64url parts without
    /// padding; a header that `jsonwebtoken` reads (its members of the
    /// same types, `alg` this key's algorithm) and without `crit` (RFC
    /// 7515 §4.1.11: no extension is understood here); the signature
    /// compared in constant time; claims read as [`Pick`] reads them, then
    /// `aud` and `iss` as configured. `nbf` is checked with the clock in
    /// [`check_times`](Self::check_times).
    fn decode_hmac(&self, token: &str, alg: Algorithm, mac: &keys::HmacVerifier) -> Decoded {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        use std::borrow::Cow;
        /// `jsonwebtoken::Header`'s members with their types, and `crit`.
        #[derive(serde::Deserialize)]
        #[allow(dead_code)] // most members are read for their type only
        struct Header<'a> {
            alg: Algorithm,
            #[serde(borrow)]
            typ: Option<Cow<'a, str>>,
            #[serde(borrow)]
            cty: Option<Cow<'a, str>>,
            #[serde(borrow)]
            jku: Option<Cow<'a, str>>,
            jwk: Option<jsonwebtoken::jwk::Jwk>,
            #[serde(borrow)]
            kid: Option<Cow<'a, str>>,
            #[serde(borrow)]
            x5u: Option<Cow<'a, str>>,
            x5c: Option<Vec<String>>,
            #[serde(borrow)]
            x5t: Option<Cow<'a, str>>,
            #[serde(borrow, rename = "x5t#S256")]
            x5t_s256: Option<Cow<'a, str>>,
            crit: Option<serde::de::IgnoredAny>,
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Decoded::NotThisKey;
        };
        let Ok(json) = URL_SAFE_NO_PAD.decode(header) else {
            return Decoded::NotThisKey;
        };
        match serde_json::from_slice::<Header<'_>>(&json) {
            Ok(h) if h.alg == alg => {
                if h.crit.is_some() {
                    return Decoded::Refused;
                }
            }
            _ => return Decoded::NotThisKey,
        }
        let signed = &token[..header.len() + 1 + claims.len()];
        if !mac.verifies(signed.as_bytes(), signature) {
            return Decoded::NotThisKey;
        }
        // Signed with this key: whatever fails now, no other key helps.
        let Ok(json) = URL_SAFE_NO_PAD.decode(claims) else {
            return Decoded::Refused;
        };
        let s = &self.inner.settings;
        let mut reading = serde_json::Deserializer::from_slice(&json);
        let picked = match serde::de::DeserializeSeed::deserialize(Pick(s), &mut reading) {
            Ok(picked) if reading.end().is_ok() => picked,
            _ => return Decoded::Refused,
        };
        if !names(picked.aud.as_ref(), s.audience.as_deref())
            || !names(picked.iss.as_ref(), s.issuer.as_deref())
        {
            return Decoded::Refused;
        }
        Decoded::Valid(picked, Payload::Json(json.into()))
    }

    /// Checks signature, algorithm, `exp`, `nbf`, `iat`, `aud`, `iss`, `jti`
    /// and (when `expected` is given) `token_type`. Synchronous: the
    /// blacklist is not consulted (see [`Jwt::verify`] and [`JwtAuth`]).
    pub fn validate(&self, token: &str, expected: Option<&str>) -> Result<Claims, TokenError> {
        let keys = &self.inner.keys.verifying;
        let one;
        let selected;
        let candidates: &[&JwtKey] = if let [only] = keys.as_slice() {
            // One key: decoding below refuses any other algorithm (and
            // "none") by itself, so the header need not be read twice.
            one = [only];
            &one
        } else {
            // The header only selects among configured keys; unknown or
            // "none" algorithms fail to parse here.
            let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
            selected = self
                .inner
                .keys
                .candidates(header.alg, header.kid.as_deref());
            &selected
        };
        let mut payload = None;
        for &key in candidates {
            let decoded = match &key.hmac {
                Some(mac) => self.decode_hmac(token, key.alg, mac),
                None => match self.inner.validations.iter().find(|(a, _)| *a == key.alg) {
                    Some((_, v)) => decode_with_library(token, key, v, &self.inner.settings),
                    None => continue,
                },
            };
            match decoded {
                Decoded::Valid(picked, whole) => {
                    payload = Some((picked, whole));
                    break;
                }
                Decoded::Refused => return Err(TokenError::Invalid),
                Decoded::NotThisKey => continue,
            }
        }
        let (picked, payload) = payload.ok_or(TokenError::Invalid)?;
        self.check_times(&picked)?;
        let claims = self.claims_of(picked, payload)?;
        if let Some(expected) = expected {
            match claims.token_type.as_deref() {
                None => return Err(TokenError::NoType),
                Some(t) if t != expected => return Err(TokenError::WrongType),
                Some(_) => {}
            }
        }
        Ok(claims)
    }

    pub(crate) async fn check_blacklist(&self, claims: &Claims) -> Result<(), JwtError> {
        if let Some(b) = &self.inner.blacklist {
            if b.is_blacklisted(&claims.jti).await? {
                return Err(TokenError::Blacklisted.into());
            }
        }
        Ok(())
    }

    /// Validates a refresh token, including the blacklist (simplejwt's
    /// `RefreshToken(token)`).
    pub async fn validate_refresh(&self, token: &str) -> Result<Claims, JwtError> {
        let claims = self.validate(token, Some(REFRESH))?;
        self.check_blacklist(&claims).await?;
        Ok(claims)
    }

    /// Validates an access token; with
    /// [`JwtSettings::blacklist_access_tokens`], the blacklist too.
    pub async fn validate_access(&self, token: &str) -> Result<Claims, JwtError> {
        let claims = self.validate(token, Some(ACCESS))?;
        if self.inner.settings.blacklist_access_tokens {
            self.check_blacklist(&claims).await?;
        }
        Ok(claims)
    }

    fn user_claim<U: AuthUser>(&self, user: &U) -> Value {
        match self.inner.settings.user_id_field {
            UserIdField::Id => Value::from(user.id()),
            UserIdField::Username => Value::from(user.username()),
        }
    }

    fn access_from(&self, refresh: &Map<String, Value>, now: i64) -> Result<String, JwtError> {
        let s = &self.inner.settings;
        let mut access: Map<String, Value> = refresh
            .iter()
            .filter(|(k, _)| {
                ![
                    s.token_type_claim.as_str(),
                    "exp",
                    s.jti_claim.as_str(),
                    "jti",
                    "iat",
                ]
                .contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        access.insert(s.token_type_claim.clone(), ACCESS.into());
        access.insert(
            "exp".into(),
            (now + Self::secs(s.access_token_lifetime)).into(),
        );
        access.insert("iat".into(), now.into());
        access.insert(s.jti_claim.clone(), Self::new_jti().into());
        self.sign(access)
    }

    fn new_refresh_payload(&self, user_id: Value, now: i64) -> Map<String, Value> {
        let s = &self.inner.settings;
        let mut p = Map::new();
        p.insert(s.token_type_claim.clone(), REFRESH.into());
        p.insert(
            "exp".into(),
            (now + Self::secs(s.refresh_token_lifetime)).into(),
        );
        p.insert("iat".into(), now.into());
        p.insert(s.jti_claim.clone(), Self::new_jti().into());
        p.insert(s.user_id_claim.clone(), user_id);
        p
    }

    async fn outstand(&self, payload: &Map<String, Value>) -> Result<(), JwtError> {
        if let Some(b) = &self.inner.blacklist {
            let picked = Picked::from_map(payload, &self.inner.settings);
            let claims = self.claims_of(picked, Payload::Map(payload.clone()))?;
            b.record_outstanding(&self.outstanding(&claims)).await?;
        }
        Ok(())
    }

    /// A refresh token for the user and an access token made from it
    /// (simplejwt's `RefreshToken.for_user(user)` and `.access_token`); the
    /// refresh token is recorded as outstanding when a blacklist is
    /// configured. Does not check `is_active`: callers authenticate first.
    pub async fn for_user<U: AuthUser>(&self, user: &U) -> Result<TokenPair, JwtError> {
        let now = Self::now();
        let payload = self.new_refresh_payload(self.user_claim(user), now);
        let access = self.access_from(&payload, now)?;
        let refresh = self.sign(payload.clone())?;
        self.outstand(&payload).await?;
        Ok(TokenPair { access, refresh })
    }

    /// simplejwt's refresh: validates the refresh token (blacklist included)
    /// and returns a new access token; with rotation, also a new refresh
    /// token (same claims, new `jti`, `exp` and `iat`), blacklisting the old
    /// one when [`JwtSettings::blacklist_after_rotation`]. Does not check the
    /// user: [`views::refresh`] does, as simplejwt's serializer.
    pub async fn refresh(&self, refresh: &str) -> Result<RefreshOutcome, JwtError> {
        let claims = self.validate_refresh(refresh).await?;
        self.refresh_validated(&claims).await
    }

    pub(crate) async fn refresh_validated(
        &self,
        claims: &Claims,
    ) -> Result<RefreshOutcome, JwtError> {
        let s = &self.inner.settings;
        let now = Self::now();
        let access = self.access_from(claims.payload(), now)?;
        let mut out = RefreshOutcome {
            access,
            refresh: None,
        };
        if s.rotate_refresh_tokens {
            if s.blacklist_after_rotation {
                if let Some(b) = &self.inner.blacklist {
                    b.blacklist(&self.outstanding(claims)).await?;
                }
            }
            let mut payload = claims.payload().clone();
            payload.insert(s.jti_claim.clone(), Self::new_jti().into());
            payload.insert(
                "exp".into(),
                (now + Self::secs(s.refresh_token_lifetime)).into(),
            );
            payload.insert("iat".into(), now.into());
            // `sign` re-adds aud/iss from the settings.
            payload.remove("aud");
            payload.remove("iss");
            let token = self.sign(payload.clone())?;
            self.outstand(&payload).await?;
            out.refresh = Some(token);
        }
        Ok(out)
    }

    /// simplejwt's verify view (`UntypedToken`): any token type, but a
    /// blacklisted refresh token is refused with [`TokenError::Blacklisted`].
    pub async fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let claims = self.validate(token, None)?;
        if claims.token_type() == Some(REFRESH) {
            self.check_blacklist(&claims).await?;
        }
        Ok(claims)
    }

    /// Blacklists a refresh token (the blacklist view, logout). Needs a
    /// blacklist: without one this is [`StoreError::Unsupported`] rather
    /// than simplejwt's silent no-op, so a logout never seems to work when
    /// it did not.
    pub async fn blacklist(&self, refresh: &str) -> Result<(), JwtError> {
        let Some(b) = &self.inner.blacklist else {
            return Err(StoreError::Unsupported("JWT blacklist").into());
        };
        let claims = self.validate_refresh(refresh).await?;
        b.blacklist(&self.outstanding(&claims)).await?;
        Ok(())
    }

    /// Blacklists an access token's `jti`; refused by [`JwtAuth`] only with
    /// [`JwtSettings::blacklist_access_tokens`].
    pub async fn blacklist_access(&self, access: &str) -> Result<(), JwtError> {
        let Some(b) = &self.inner.blacklist else {
            return Err(StoreError::Unsupported("JWT blacklist").into());
        };
        let claims = self.validate(access, Some(ACCESS))?;
        b.blacklist(&self.outstanding(&claims)).await?;
        Ok(())
    }

    /// Deletes expired outstanding tokens (`flushexpiredtokens`); `0`
    /// without a blacklist.
    pub async fn flush_expired(&self) -> Result<u64, StoreError> {
        match &self.inner.blacklist {
            Some(b) => b.flush_expired(Utc::now()).await,
            None => Ok(0),
        }
    }
}

/// What one key made of a token.
#[derive(Debug, PartialEq)]
// Returned once per key tried and unpacked at once: boxing the large
// variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Decoded {
    /// Signed with the key, and the claims it checks hold.
    Valid(Picked, Payload),
    /// Not this key's token (bad signature, another algorithm, unreadable):
    /// another key may take it.
    NotThisKey,
    /// Refused for good: signed with the key but with claims that fail
    /// (`aud`, `iss`, `nbf`, unreadable), or naming critical extensions
    /// (`crit`), which no key makes acceptable.
    Refused,
}

/// `jsonwebtoken::decode`, for the keys [`Jwt::decode_hmac`] does not take
/// (RSA, ECDSA, EdDSA).
fn decode_with_library(
    token: &str,
    key: &JwtKey,
    validation: &Validation,
    settings: &JwtSettings,
) -> Decoded {
    use jsonwebtoken::errors::ErrorKind;
    match jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, validation) {
        Ok(_) if names_critical_extensions(token) => Decoded::Refused,
        Ok(data) => Decoded::Valid(
            Picked::from_map(&data.claims, settings),
            Payload::Map(data.claims),
        ),
        Err(e) => match e.kind() {
            // The signature was good: another key will not help.
            ErrorKind::ImmatureSignature
            | ErrorKind::InvalidAudience
            | ErrorKind::InvalidIssuer
            | ErrorKind::MissingRequiredClaim(_) => Decoded::Refused,
            _ => Decoded::NotThisKey,
        },
    }
}

/// A token's payload as a whole.
#[derive(Debug, PartialEq)]
enum Payload {
    Map(Map<String, Value>),
    /// Its JSON, read into a map only if someone asks for every claim.
    Json(Arc<[u8]>),
}

/// The claims that checking a token reads.
#[derive(Debug, Default, PartialEq)]
struct Picked {
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    aud: Option<Value>,
    iss: Option<Value>,
    jti: Option<Value>,
    token_type: Option<Value>,
    user_id: Option<Value>,
}

impl Picked {
    /// The slots a claim name fills (the configured names may coincide
    /// with each other or with the registered ones).
    fn slots<'p>(&'p mut self, name: &str, s: &JwtSettings) -> [Option<&'p mut Option<Value>>; 4] {
        let Picked {
            exp,
            nbf,
            iat,
            aud,
            iss,
            jti,
            token_type,
            user_id,
        } = self;
        let registered = match name {
            "exp" => Some(exp),
            "nbf" => Some(nbf),
            "iat" => Some(iat),
            "aud" => Some(aud),
            "iss" => Some(iss),
            _ => None,
        };
        [
            registered,
            (name == s.jti_claim).then_some(jti),
            (name == s.token_type_claim).then_some(token_type),
            (name == s.user_id_claim).then_some(user_id),
        ]
    }

    fn from_map(map: &Map<String, Value>, s: &JwtSettings) -> Self {
        let get = |name: &str| map.get(name).cloned();
        Picked {
            exp: get("exp"),
            nbf: get("nbf"),
            iat: get("iat"),
            aud: get("aud"),
            iss: get("iss"),
            jti: get(&s.jti_claim),
            token_type: get(&s.token_type_claim),
            user_id: get(&s.user_id_claim),
        }
    }
}

/// Reads a payload into [`Picked`] in one pass, keeping only the claims it
/// names. It accepts the JSON that `jsonwebtoken::decode` accepted when it
/// read the claims twice, into a map and into its own struct of the
/// registered claims: an object, every value read as a `Value` would read
/// it (the same number and string rules); a repeated name keeps its last
/// value, as in a map, except that `exp`, `nbf`, `sub`, `iss` and `aud`
/// may not repeat, and `sub` may not be an array or an object, which that
/// struct refused.
struct Pick<'s>(&'s JwtSettings);

/// The claims `jsonwebtoken` read into a struct of its own.
const ITS_CLAIMS: [&str; 5] = ["exp", "nbf", "sub", "iss", "aud"];

impl<'de> serde::de::DeserializeSeed<'de> for Pick<'_> {
    type Value = Picked;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Picked, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pick<'_> {
    type Value = Picked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Picked, A::Error> {
        use serde::de::Error as _;
        let mut picked = Picked::default();
        let mut seen = [false; ITS_CLAIMS.len()];
        while let Some(Name(name)) = map.next_key()? {
            if let Some(i) = ITS_CLAIMS.iter().position(|c| *c == name) {
                if std::mem::replace(&mut seen[i], true) {
                    return Err(A::Error::custom(format_args!("duplicate claim `{name}`")));
                }
            }
            let sub = name == "sub";
            let mut slots = picked.slots(&name, self.0).into_iter().flatten().peekable();
            if slots.peek().is_none() && !sub {
                map.next_value::<Discard>()?;
                continue;
            }
            let value: Value = map.next_value()?;
            if sub && (value.is_array() || value.is_object()) {
                return Err(A::Error::custom("`sub` is neither a string nor a scalar"));
            }
            for slot in slots {
                *slot = Some(value.clone());
            }
        }
        Ok(picked)
    }
}

/// A member name, borrowed from the JSON when it has no escapes.
struct Name<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(v.to_owned().into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, read as a `Value` reads it (through `deserialize_any`,
/// so numbers are range-checked and strings unescaped), and dropped.
struct Discard;

impl<'de> serde::Deserialize<'de> for Discard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Discard)
    }
}

impl<'de> serde::de::Visitor<'de> for Discard {
    type Value = Discard;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_str<E>(self, _: &str) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_unit<E>(self) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_none<E>(self) -> Result<Discard, E> {
        Ok(Discard)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Discard, D::Error> {
        <Discard as serde::Deserialize>::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Discard, A::Error> {
        while seq.next_element::<Discard>()?.is_some() {}
        Ok(Discard)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Discard, A::Error> {
        while map.next_key::<Name<'de>>()?.is_some() {
            map.next_value::<Discard>()?;
        }
        Ok(Discard)
    }
}

/// Whether an `aud` or `iss` claim names `expected`, as `jsonwebtoken`
/// checks them: a string equal to it, or an array of strings holding it.
/// Anything else (absent, `null`, a number, an array with a non-string) is
/// a missing claim. With nothing expected, any value passes.
fn names(claim: Option<&Value>, expected: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    match claim {
        Some(Value::String(s)) => s == expected,
        Some(Value::Array(items)) => {
            items.iter().all(Value::is_string) && items.iter().any(|i| i.as_str() == Some(expected))
        }
        _ => false,
    }
}

/// Whether a token's header lists critical extensions (`crit`, RFC 7515
/// §4.1.11). None are understood here, and a recipient must refuse a token
/// whose critical extensions it does not understand. Checked only once the
/// signature is good, so it costs nothing on forged tokens; an unreadable
/// header counts as critical (it cannot have verified anyway).
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine as _;
    /// Only `crit` is read; every other member is skipped unparsed.
    #[derive(serde::Deserialize)]
    struct Critical {
        crit: Option<serde::de::IgnoredAny>,
    }
    let header = token.split('.').next().unwrap_or("");
    let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return true;
    };
    serde_json::from_slice::<Critical>(&json).map_or(true, |h| h.crit.is_some())
}

#[cfg(test)]
mod tests;
