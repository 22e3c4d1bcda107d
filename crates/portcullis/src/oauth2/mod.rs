//! An OAuth 2.0 authorization server and the Bearer scheme, in
//! django-oauth-toolkit's spirit (RFC 6749, 6750, 7636, 7009, 7662, with
//! the OAuth 2.0 Security BCP, RFC 9700).
//!
//! | django-oauth-toolkit | here |
//! |---|---|
//! | `Application` | [`Client`], registered with [`OAuth2::register_client`] |
//! | `AccessToken`, `RefreshToken`, `Grant` | [`OAuth2Token`] rows of kind [`TokenKind`] in an [`OAuth2Store`] |
//! | `OAuth2Authentication` | [`OAuth2Auth`] |
//! | `TokenHasScope`, `TokenHasReadWriteScope`, `TokenMatchesOASRequirements` | [`TokenHasScope`], [`TokenHasReadWriteScope`], [`TokenMatchesOASRequirements`] |
//! | `cleartokens` | [`OAuth2::clear_expired`] |
//!
//! Grants: `authorization_code` (with PKCE; S256 required for public
//! clients), `client_credentials`, `refresh_token` (rotated on every use;
//! a replayed refresh token or authorization code revokes its whole
//! family) and the legacy `password` grant (the app checks the password
//! through its [`PasswordBackend`](crate::PasswordBackend), so the login
//! lockout applies).
//!
//! # Safety
//!
//! - Tokens, codes, client ids and client secrets come from the OS's
//!   CSPRNG. Tokens and codes are stored only as HMAC-SHA256 digests under
//!   a subkey of the [`SecretKey`]; client secrets likewise, compared in
//!   constant time. A stolen database yields no usable credential.
//! - Codes live 60 s and are single use; PKCE verifiers are compared in
//!   constant time.
//! - The [`Debug`](fmt::Debug) output of every type here hides digests
//!   and secrets; nothing secret is logged.
//!
//! # Example
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use portcullis::oauth2::{MemoryOAuth2Store, NewClient, OAuth2, OAuth2Auth, OAuth2Settings};
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin};
//! use portcullis::{IsAuthenticated, Policy, SecretKey, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let users = MemoryStore::new();
//! let ada = users.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! let oauth2 = OAuth2::new(MemoryOAuth2Store::new(), &SecretKey::new([7u8; 32]).unwrap(),
//!     OAuth2Settings::default());
//! let (client, _secret) = oauth2.register_client(NewClient::confidential("app")).await.unwrap();
//! let issued = oauth2.issue(&client, Some(ada.id), &client.scopes, None).await.unwrap();
//!
//! let policy = Policy::<User>::new().scheme(OAuth2Auth::new(oauth2, users)).permission(IsAuthenticated);
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(policy.layer());
//!
//! let good = http::Request::get("/").header("authorization", format!("Bearer {}", issued.access_token))
//!     .body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(good).await.unwrap().status(), 200);
//!
//! let bad = http::Request::get("/").header("authorization", "Bearer nope")
//!     .body(Body::empty()).unwrap();
//! let res = app.oneshot(bad).await.unwrap();
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\", error=\"invalid_token\"");
//! # });
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::secret::{random_alphanumeric, MacHex, SecretKey, Subkey};
use crate::store::StoreError;
use crate::throttle::{Clock, SystemClock};

mod error;
mod permission;
mod scheme;
mod store;
#[cfg(test)]
mod tests;

pub use error::OAuth2Error;
pub use permission::{TokenHasReadWriteScope, TokenHasScope, TokenMatchesOASRequirements};
pub use scheme::{BearerToken, OAuth2Auth, CLIENT_TOKEN_NO_USER, INVALID_TOKEN};
pub use store::{CachedOAuth2Store, MemoryOAuth2Store, OAuth2Store, OAuth2UserStore};

const TOKEN_PURPOSE: &str = "oauth2-token-v1";
const CLIENT_SECRET_PURPOSE: &str = "oauth2-client-secret-v1";
/// Length of issued tokens and codes (alphanumeric, about 238 bits).
const TOKEN_LEN: usize = 40;
/// Length of client ids.
const CLIENT_ID_LEN: usize = 40;
/// Length of client secrets.
const CLIENT_SECRET_LEN: usize = 64;
/// The longest client id, token or secret looked at; longer is refused
/// before any store look-up.
pub const MAX_CREDENTIAL_LEN: usize = 255;

/// A grant type a client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum GrantType {
    /// `authorization_code` (RFC 6749 §4.1, with PKCE).
    AuthorizationCode,
    /// `client_credentials` (§4.4): tokens with no user.
    ClientCredentials,
    /// `password` (§4.3), the seed's legacy grant.
    Password,
    /// `refresh_token` (§6): only clients allowed it get refresh tokens.
    RefreshToken,
}

impl GrantType {
    /// Every grant type.
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
    ];

    /// The protocol's name (`authorization_code`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    /// The command line's name (`authorization-code`, ...).
    pub fn cli_name(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization-code",
            GrantType::ClientCredentials => "client-credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh-token",
        }
    }

    /// Parses either the protocol's or the command line's name.
    pub fn parse(s: &str) -> Option<GrantType> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == s || g.cli_name() == s)
    }
}

/// A registered client (django-oauth-toolkit's `Application`).
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    /// The public identifier: random, URL-safe.
    pub client_id: String,
    /// A human-readable name, shown on the consent page.
    pub name: String,
    /// Public clients (apps that cannot keep a secret) have no secret and
    /// must use PKCE with S256.
    pub public: bool,
    /// The keyed digest of the secret (confidential clients only).
    pub secret_digest: Option<String>,
    /// The redirect URIs an authorization request may name, matched
    /// exactly.
    pub redirect_uris: Vec<String>,
    /// The grants the client may use.
    pub grant_types: Vec<GrantType>,
    /// The scopes the client may ask for; its default scope.
    pub scopes: Vec<String>,
    /// Whether the consent page is skipped (trusted first-party clients).
    pub skip_authorization: bool,
    /// When it was registered.
    pub created: DateTime<Utc>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("public", &self.public)
            .field("redirect_uris", &self.redirect_uris)
            .field("grant_types", &self.grant_types)
            .field("scopes", &self.scopes)
            .field("skip_authorization", &self.skip_authorization)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// What [`OAuth2::register_client`] needs: `createclient`'s options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewClient {
    /// The client's name.
    pub name: String,
    /// Public (no secret) or confidential.
    pub public: bool,
    /// Redirect URIs (absolute, without fragment).
    pub redirect_uris: Vec<String>,
    /// Allowed grants; default authorization code, client credentials,
    /// refresh token.
    pub grant_types: Vec<GrantType>,
    /// Allowed scopes; default `read write`.
    pub scopes: Vec<String>,
    /// Skip the consent page.
    pub skip_authorization: bool,
}

impl NewClient {
    /// The default grants: `authorization_code`, `client_credentials`,
    /// `refresh_token`.
    pub const DEFAULT_GRANTS: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
    ];

    /// A confidential client with the defaults.
    pub fn confidential(name: impl Into<String>) -> Self {
        NewClient {
            name: name.into(),
            public: false,
            redirect_uris: Vec::new(),
            grant_types: Self::DEFAULT_GRANTS.to_vec(),
            scopes: vec!["read".into(), "write".into()],
            skip_authorization: false,
        }
    }

    /// A public client with the defaults.
    pub fn public(name: impl Into<String>) -> Self {
        NewClient {
            public: true,
            ..Self::confidential(name)
        }
    }
}

/// What a stored row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// A Bearer access token.
    Access,
    /// A refresh token.
    Refresh,
    /// An authorization code.
    Code,
}

impl TokenKind {
    /// The stored name: `access`, `refresh`, `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
            TokenKind::Code => "code",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            "code" => Some(TokenKind::Code),
            _ => None,
        }
    }
}

/// A stored access token, refresh token or authorization code. Only its
/// keyed digest is kept, never the text.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth2Token {
    /// The keyed digest of the token text (64 hex digits): the key.
    pub digest: String,
    /// What it is.
    pub kind: TokenKind,
    /// The client it was issued to.
    pub client_id: String,
    /// The user it acts for; `None` for client-credentials tokens.
    pub user_id: Option<i64>,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// The authorization it descends from: a code and every token issued
    /// from it, or a password/client-credentials grant and its refreshes,
    /// share one family; reuse of a spent code or refresh token revokes
    /// the family.
    pub family: String,
    /// Revoked, used (codes) or rotated (refresh tokens).
    pub revoked: bool,
    /// When it stops being valid; `None` for refresh tokens (valid until
    /// used).
    pub expires_at: Option<DateTime<Utc>>,
    /// Codes: the `redirect_uri` the authorization request named, if it
    /// named one (the token request must repeat it).
    pub redirect_uri: Option<String>,
    /// Codes: the PKCE challenge.
    pub code_challenge: Option<String>,
    /// Codes: the PKCE method, `S256` or `plain`.
    pub code_challenge_method: Option<String>,
    /// When it was issued.
    pub created: DateTime<Utc>,
}

impl fmt::Debug for OAuth2Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Token")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("user_id", &self.user_id)
            .field("scopes", &self.scopes)
            .field("revoked", &self.revoked)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl OAuth2Token {
    /// Whether it is unrevoked and unexpired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expires_at.is_none_or(|exp| exp > now)
    }

    /// The scopes as RFC 6749 writes them: space-separated.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// What [`OAuth2Auth`] attaches to the [`AuthInfo`](crate::AuthInfo) of an
/// authenticated request, for permissions and handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// The client the token was issued to.
    pub client_id: String,
    /// The user; `None` for client-credentials tokens.
    pub user_id: Option<i64>,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<OAuth2Token> for AccessToken {
    /// What a request authenticated by this token carries.
    fn from(row: OAuth2Token) -> Self {
        AccessToken {
            client_id: row.client_id,
            user_id: row.user_id,
            scopes: row.scopes,
            expires_at: row.expires_at,
        }
    }
}

impl AccessToken {
    /// Whether every scope in `required` was granted.
    pub fn has_scopes<S: AsRef<str>>(&self, required: &[S]) -> bool {
        required
            .iter()
            .all(|r| self.scopes.iter().any(|s| s == r.as_ref()))
    }

    /// The scopes, space-separated.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// The settings (django-oauth-toolkit's `OAUTH2_PROVIDER`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OAuth2Settings {
    /// `ACCESS_TOKEN_EXPIRE_SECONDS`. Default 36000 s (10 hours).
    pub access_token_lifetime: Duration,
    /// `AUTHORIZATION_CODE_EXPIRE_SECONDS`. Default 60 s.
    pub code_lifetime: Duration,
    /// Whether the `password` grant is served at all (clients must also be
    /// allowed it). Default `true`.
    pub password_grant: bool,
    /// The realm of the `Bearer` challenge. Default `api`.
    pub realm: String,
    /// RFC 6750 §2.2: accept `access_token` in a form body. Default
    /// `false` (the header only, as the RFC recommends).
    pub allow_form_token: bool,
    /// RFC 6750 §2.3: accept `access_token` in the query. Default `false`.
    pub allow_query_token: bool,
}

impl Default for OAuth2Settings {
    fn default() -> Self {
        OAuth2Settings {
            access_token_lifetime: Duration::from_secs(36_000),
            code_lifetime: Duration::from_secs(60),
            password_grant: true,
            realm: "api".into(),
            allow_form_token: false,
            allow_query_token: false,
        }
    }
}

/// A token response (RFC 6749 §5.1).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    /// The access token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The refresh token, for clients allowed the refresh grant.
    pub refresh_token: Option<String>,
}

impl fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl IssuedTokens {
    /// The JSON body: `access_token`, `token_type` (`Bearer`),
    /// `expires_in`, `scope` and `refresh_token` when there is one.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        });
        if let Some(r) = &self.refresh_token {
            v["refresh_token"] = Value::String(r.clone());
        }
        v
    }
}

/// A validated authorization request (RFC 6749 §4.1.1 with RFC 7636).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// The client.
    pub client: Client,
    /// Where to send the answer (the registered URI it resolved to).
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` itself.
    pub redirect_uri_given: bool,
    /// The requested (or default) scopes.
    pub scopes: Vec<String>,
    /// The client's `state`, echoed back.
    pub state: Option<String>,
    /// The PKCE challenge.
    pub code_challenge: Option<String>,
    /// The PKCE method (`S256` or `plain`).
    pub code_challenge_method: Option<String>,
}

/// Why an authorization request was refused (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show the error, never
    /// redirect.
    Fatal(OAuth2Error),
    /// Redirect back to the client with `error` (and `state`).
    Redirect {
        /// The redirect URI.
        redirect_uri: String,
        /// The error.
        error: OAuth2Error,
        /// The client's `state`.
        state: Option<String>,
    },
    /// The store failed.
    Store(StoreError),
}

impl AuthorizeError {
    /// The redirect location for a [`Redirect`](Self::Redirect) error.
    pub fn location(&self) -> Option<String> {
        match self {
            AuthorizeError::Redirect {
                redirect_uri,
                error,
                state,
            } => {
                let mut params = vec![("error", error.code().to_owned())];
                if let Some(d) = error.description() {
                    params.push(("error_description", d.into_owned()));
                }
                if let Some(s) = state {
                    params.push(("state", s.clone()));
                }
                Some(append_query(redirect_uri, &params))
            }
            _ => None,
        }
    }
}

/// Appends query parameters to a URI (keeping its own query).
pub fn append_query(uri: &str, params: &[(&str, String)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let q = ser.finish();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{q}")
}

/// Splits a `scope` parameter (space-separated, RFC 6749 §3.3).
pub fn parse_scope(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in s.split(' ').filter(|w| !w.is_empty()) {
        if !out.iter().any(|o| o == w) {
            out.push(w.to_owned());
        }
    }
    out
}

/// Whether `s` is a valid scope token (RFC 6749 §3.3: printable ASCII but
/// space, `"` and `\`).
fn valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Whether a PKCE verifier or challenge is well formed (RFC 7636 §4.1:
/// 43 to 128 unreserved characters).
fn valid_pkce(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The authorization server: issues, checks and revokes tokens over an
/// [`OAuth2Store`].
#[derive(Clone)]
pub struct OAuth2 {
    store: Arc<dyn OAuth2Store>,
    settings: OAuth2Settings,
    tokens: Subkey,
    secrets: Subkey,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OAuth2 {
    /// The server over `store`, digests keyed by subkeys of `secret`.
    pub fn new(store: impl OAuth2Store, secret: &SecretKey, settings: OAuth2Settings) -> Self {
        OAuth2 {
            store: Arc::new(store),
            settings,
            tokens: secret.subkey(TOKEN_PURPOSE),
            secrets: secret.subkey(CLIENT_SECRET_PURPOSE),
            clock: Arc::new(SystemClock),
        }
    }

    /// Replaces the clock (tests use a
    /// [`ManualClock`](crate::throttle::ManualClock) to expire codes).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The settings.
    pub fn settings(&self) -> &OAuth2Settings {
        &self.settings
    }

    /// The store.
    pub fn store(&self) -> &dyn OAuth2Store {
        &*self.store
    }

    /// The current time by the clock.
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(self.clock.now())
    }

    /// The keyed digest a token or code is stored under (lowercase hex).
    pub fn digest(&self, token: &str) -> String {
        hex::encode(self.tokens.mac(token.as_bytes()))
    }

    fn secret_digest(&self, client_id: &str, secret: &str) -> String {
        hex::encode(
            self.secrets
                .mac_parts([client_id.as_bytes(), b"\0", secret.as_bytes()]),
        )
    }

    /// Registers a client: returns it and, for a confidential client, the
    /// secret (shown once; only its digest is stored).
    pub async fn register_client(
        &self,
        new: NewClient,
    ) -> Result<(Client, Option<String>), OAuth2Error> {
        if new.name.trim().is_empty() || new.name.chars().count() > 255 {
            return Err(OAuth2Error::InvalidRequest(
                "a client name must be 1 to 255 characters".into(),
            ));
        }
        for s in &new.scopes {
            if !valid_scope_token(s) {
                return Err(OAuth2Error::InvalidRequest(format!("invalid scope {s:?}")));
            }
        }
        for uri in &new.redirect_uris {
            check_redirect_uri(uri)?;
        }
        if new.grant_types.is_empty() {
            return Err(OAuth2Error::InvalidRequest(
                "a client needs at least one grant".into(),
            ));
        }
        let client_id = random_alphanumeric(CLIENT_ID_LEN);
        let secret = (!new.public).then(|| random_alphanumeric(CLIENT_SECRET_LEN));
        let mut grants = new.grant_types.clone();
        grants.sort();
        grants.dedup();
        let mut scopes: Vec<String> = Vec::new();
        for s in new.scopes {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        let client = Client {
            secret_digest: secret.as_ref().map(|s| self.secret_digest(&client_id, s)),
            client_id,
            name: new.name,
            public: new.public,
            redirect_uris: new.redirect_uris,
            grant_types: grants,
            scopes,
            skip_authorization: new.skip_authorization,
            created: self.now(),
        };
        self.store.create_client(&client).await?;
        Ok((client, secret))
    }

    /// Authenticates a client (RFC 6749 §2.3): a confidential client by
    /// its secret (compared as keyed digests, in constant time), a public
    /// client by its id alone and only without a secret. Anything else is
    /// `invalid_client`.
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<Client, OAuth2Error> {
        if client_id.is_empty()
            || client_id.len() > MAX_CREDENTIAL_LEN
            || secret.is_some_and(|s| s.len() > MAX_CREDENTIAL_LEN)
        {
            return Err(OAuth2Error::InvalidClient);
        }
        let client = self.store.client(client_id).await?;
        // Compute a digest even for an unknown client so timing says
        // nothing about which ids exist.
        let presented = secret.map(|s| self.secret_digest(client_id, s));
        let Some(client) = client else {
            return Err(OAuth2Error::InvalidClient);
        };
        match (&client.secret_digest, presented) {
            (Some(stored), Some(given))
                if crate::secret::ct_eq(stored.as_bytes(), given.as_bytes()) =>
            {
                Ok(client)
            }
            (None, None) if client.public => Ok(client),
            _ => Err(OAuth2Error::InvalidClient),
        }
    }

    /// The scopes of a request: `requested` if given (each must be among
    /// `allowed`), else all of `allowed`.
    pub fn resolve_scopes(
        &self,
        requested: Option<&str>,
        allowed: &[String],
    ) -> Result<Vec<String>, OAuth2Error> {
        match requested {
            None => Ok(allowed.to_vec()),
            Some(s) => {
                let want = parse_scope(s);
                if want.is_empty() {
                    return Ok(allowed.to_vec());
                }
                if want.iter().all(|w| allowed.contains(w)) {
                    Ok(want)
                } else {
                    Err(OAuth2Error::InvalidScope)
                }
            }
        }
    }

    /// Issues an access token (and a refresh token if the client is
    /// allowed the refresh grant) in `family` (a new family if `None`).
    pub async fn issue(
        &self,
        client: &Client,
        user_id: Option<i64>,
        scopes: &[String],
        family: Option<&str>,
    ) -> Result<IssuedTokens, OAuth2Error> {
        let now = self.now();
        let family = family
            .map(str::to_owned)
            .unwrap_or_else(|| random_alphanumeric(TOKEN_LEN));
        let lifetime = self.settings.access_token_lifetime;
        let access = random_alphanumeric(TOKEN_LEN);
        let row = |digest: String, kind| OAuth2Token {
            digest,
            kind,
            client_id: client.client_id.clone(),
            user_id,
            scopes: scopes.to_vec(),
            family: family.clone(),
            revoked: false,
            expires_at: match kind {
                TokenKind::Access => Some(now + lifetime),
                _ => None,
            },
            redirect_uri: None,
            code_challenge: None,
            code_challenge_method: None,
            created: now,
        };
        self.store
            .insert_token(&row(self.digest(&access), TokenKind::Access))
            .await?;
        // Client-credentials tokens never get a refresh token (RFC 6749
        // §4.4.3): the client can ask again.
        let refresh = if client.allows(GrantType::RefreshToken) && user_id.is_some() {
            let r = random_alphanumeric(TOKEN_LEN);
            self.store
                .insert_token(&row(self.digest(&r), TokenKind::Refresh))
                .await?;
            Some(r)
        } else {
            None
        };
        Ok(IssuedTokens {
            access_token: access,
            expires_in: lifetime.as_secs(),
            scope: scopes.join(" "),
            refresh_token: refresh,
        })
    }

    /// Checks an authorization request's parameters (`client_id`,
    /// `redirect_uri`, `response_type`, `scope`, `state`,
    /// `code_challenge`, `code_challenge_method`), in RFC 6749's order:
    /// client and redirect URI errors are shown, never redirected; the
    /// rest go back to the client.
    pub async fn validate_authorization(
        &self,
        params: &[(String, String)],
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let one = |name: &str| -> Result<Option<String>, ()> {
            let mut it = params.iter().filter(|(k, _)| k == name);
            let first = it.next().map(|(_, v)| v.clone());
            if it.next().is_some() {
                return Err(());
            }
            Ok(first.filter(|v| !v.is_empty()))
        };
        let fatal = |d: &str| AuthorizeError::Fatal(OAuth2Error::InvalidRequest(d.into()));
        let client_id = one("client_id")
            .map_err(|_| fatal("Duplicate client_id parameter."))?
            .ok_or_else(|| fatal("Missing client_id parameter."))?;
        if client_id.len() > MAX_CREDENTIAL_LEN {
            return Err(AuthorizeError::Fatal(OAuth2Error::InvalidClient));
        }
        let client = self
            .store
            .client(&client_id)
            .await
            .map_err(AuthorizeError::Store)?
            .ok_or(AuthorizeError::Fatal(OAuth2Error::InvalidClient))?;
        let given = one("redirect_uri").map_err(|_| fatal("Duplicate redirect_uri parameter."))?;
        let redirect_uri = match &given {
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.clone(),
            Some(_) => return Err(fatal("Mismatching redirect URI.")),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return Err(fatal("Missing redirect URI.")),
        };
        // Registration refuses unusable URIs; this also covers a client
        // registered before a rule was added.
        if check_redirect_uri(&redirect_uri).is_err() {
            return Err(fatal("Invalid redirect URI."));
        }
        let state = one("state").ok().flatten();
        let redirect = |error| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            state: state.clone(),
        };
        let invalid = |d: &str| redirect(OAuth2Error::InvalidRequest(d.into()));
        if one("state").is_err() {
            return Err(invalid("Duplicate state parameter."));
        }
        match one("response_type").map_err(|_| invalid("Duplicate response_type parameter."))? {
            None => return Err(invalid("Missing response_type parameter.")),
            Some(t) if t == "code" => {}
            Some(_) => return Err(redirect(OAuth2Error::UnsupportedResponseType)),
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(redirect(OAuth2Error::UnauthorizedClient));
        }
        let scope = one("scope").map_err(|_| invalid("Duplicate scope parameter."))?;
        let scopes = self
            .resolve_scopes(scope.as_deref(), &client.scopes)
            .map_err(redirect)?;
        let challenge =
            one("code_challenge").map_err(|_| invalid("Duplicate code_challenge parameter."))?;
        let method = one("code_challenge_method")
            .map_err(|_| invalid("Duplicate code_challenge_method parameter."))?;
        let method = match (&challenge, method) {
            (None, None) => None,
            (None, Some(_)) => return Err(invalid("Missing code_challenge parameter.")),
            (Some(_), None) => Some("plain".to_owned()),
            (Some(_), Some(m)) if m == "S256" || m == "plain" => Some(m),
            (Some(_), Some(_)) => {
                return Err(invalid("Transform algorithm not supported."));
            }
        };
        if let Some(c) = &challenge {
            if !valid_pkce(c) {
                return Err(invalid("Invalid code_challenge parameter."));
            }
        }
        if client.public {
            // RFC 9700 §2.1.1: public clients must use PKCE, and S256.
            match method.as_deref() {
                Some("S256") => {}
                None => return Err(invalid("Code challenge required.")),
                Some(_) => {
                    return Err(invalid(
                        "Public clients must use code_challenge_method S256.",
                    ))
                }
            }
        }
        Ok(AuthorizationRequest {
            client,
            redirect_uri,
            redirect_uri_given: given.is_some(),
            scopes,
            state,
            code_challenge: challenge,
            code_challenge_method: method,
        })
    }

    /// Issues an authorization code for an approved request; returns the
    /// redirect location `redirect_uri?code=...&state=...`.
    pub async fn issue_code(
        &self,
        req: &AuthorizationRequest,
        user_id: i64,
    ) -> Result<String, OAuth2Error> {
        let now = self.now();
        let code = random_alphanumeric(TOKEN_LEN);
        let row = OAuth2Token {
            digest: self.digest(&code),
            kind: TokenKind::Code,
            client_id: req.client.client_id.clone(),
            user_id: Some(user_id),
            scopes: req.scopes.clone(),
            family: random_alphanumeric(TOKEN_LEN),
            revoked: false,
            expires_at: Some(now + self.settings.code_lifetime),
            redirect_uri: req.redirect_uri_given.then(|| req.redirect_uri.clone()),
            code_challenge: req.code_challenge.clone(),
            code_challenge_method: req.code_challenge_method.clone(),
            created: now,
        };
        self.store.insert_token(&row).await?;
        let mut params = vec![("code", code)];
        if let Some(s) = &req.state {
            params.push(("state", s.clone()));
        }
        Ok(append_query(&req.redirect_uri, &params))
    }

    /// The `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636 §4.6): a
    /// code is single use; presenting a spent code revokes every token
    /// issued from it (RFC 6749 §4.1.2).
    pub async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<IssuedTokens, OAuth2Error> {
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(OAuth2Error::UnauthorizedClient);
        }
        let bad = |d: &str| OAuth2Error::InvalidGrant(d.into());
        if code.len() > MAX_CREDENTIAL_LEN {
            return Err(bad("Invalid code."));
        }
        let digest = self.digest(code);
        let Some(row) = self.store.token(&digest).await? else {
            return Err(bad("Invalid code."));
        };
        if row.kind != TokenKind::Code || row.client_id != client.client_id {
            return Err(bad("Invalid code."));
        }
        if !self.store.consume_token(&digest).await? {
            let n = self.store.revoke_family(&row.family).await?;
            tracing::warn!(
                client_id = %client.client_id,
                revoked = n,
                "authorization code reused; its tokens are revoked"
            );
            return Err(bad("Invalid code."));
        }
        if row.expires_at.is_none_or(|exp| exp <= self.now()) {
            return Err(bad("Code expired."));
        }
        match (&row.redirect_uri, redirect_uri) {
            (Some(want), Some(got)) if want == got => {}
            (Some(_), _) => return Err(bad("Mismatching redirect URI.")),
            (None, Some(got)) if !client.redirect_uris.iter().any(|r| r == got) => {
                return Err(bad("Mismatching redirect URI."))
            }
            (None, _) => {}
        }
        match (&row.code_challenge, verifier) {
            (None, None) => {}
            (None, Some(_)) => return Err(bad("Unexpected code_verifier.")),
            (Some(_), None) => return Err(bad("Code verifier required.")),
            (Some(challenge), Some(v)) => {
                if !valid_pkce(v) {
                    return Err(bad("Invalid code_verifier."));
                }
                let computed = match row.code_challenge_method.as_deref() {
                    Some("S256") => URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())),
                    _ => v.to_owned(),
                };
                if !crate::secret::ct_eq(computed.as_bytes(), challenge.as_bytes()) {
                    return Err(bad("Code verifier mismatch."));
                }
            }
        }
        self.issue(client, row.user_id, &row.scopes, Some(&row.family))
            .await
    }

    /// The `client_credentials` grant (RFC 6749 §4.4): a token with no
    /// user, for confidential clients allowed it.
    pub async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
    ) -> Result<IssuedTokens, OAuth2Error> {
        if client.public || !client.allows(GrantType::ClientCredentials) {
            return Err(OAuth2Error::UnauthorizedClient);
        }
        let scopes = self.resolve_scopes(scope, &client.scopes)?;
        self.issue(client, None, &scopes, None).await
    }

    /// The `refresh_token` grant (RFC 6749 §6) with rotation: the refresh
    /// token and the access tokens of its family are revoked and a new
    /// pair is issued in the same family. Presenting a refresh token that
    /// was already rotated revokes the whole family (RFC 9700 §4.14.2).
    /// Returns the tokens and the user the family acts for.
    pub async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<(IssuedTokens, Option<i64>), OAuth2Error> {
        if !client.allows(GrantType::RefreshToken) {
            return Err(OAuth2Error::UnauthorizedClient);
        }
        let bad = || OAuth2Error::InvalidGrant("Invalid refresh token.".into());
        if refresh_token.len() > MAX_CREDENTIAL_LEN {
            return Err(bad());
        }
        let digest = self.digest(refresh_token);
        let Some(row) = self.store.token(&digest).await? else {
            return Err(bad());
        };
        if row.kind != TokenKind::Refresh || row.client_id != client.client_id {
            return Err(bad());
        }
        if row.revoked {
            return Err(self.reused(client, &row.family).await);
        }
        // A bad scope leaves the token usable.
        let scopes = self.resolve_scopes(scope, &row.scopes)?;
        if !self.store.consume_token(&digest).await? {
            return Err(self.reused(client, &row.family).await);
        }
        // The old access tokens go with the rotation.
        self.store.revoke_family(&row.family).await?;
        let issued = self
            .issue(client, row.user_id, &scopes, Some(&row.family))
            .await?;
        Ok((issued, row.user_id))
    }

    /// A spent refresh token came back: the family goes (RFC 9700
    /// §4.14.2).
    async fn reused(&self, client: &Client, family: &str) -> OAuth2Error {
        match self.store.revoke_family(family).await {
            Ok(n) => {
                tracing::warn!(
                    client_id = %client.client_id,
                    revoked = n,
                    "refresh token reused; its family is revoked"
                );
                OAuth2Error::InvalidGrant("Invalid refresh token.".into())
            }
            Err(e) => OAuth2Error::Store(e),
        }
    }

    /// The active access token with this text, if any.
    pub async fn validate_access(&self, token: &str) -> Result<Option<OAuth2Token>, StoreError> {
        let Some(digest) = self.lookup_digest(token) else {
            return Ok(None);
        };
        let row = self.store.token(digest.as_str()).await?;
        Ok(self.usable_access(row))
    }

    /// [`validate_access`](Self::validate_access) answered from the store's
    /// cache, without waiting and without copying the token out of it;
    /// `None` to ask the store.
    pub(crate) fn validate_access_cached(&self, token: &str) -> Option<Option<Arc<OAuth2Token>>> {
        let Some(digest) = self.lookup_digest(token) else {
            return Some(None);
        };
        let row = self.store.token_cached(digest.as_str())?;
        Some(self.is_usable_access(&row).then_some(row))
    }

    /// [`digest`](Self::digest) of a token presented to be looked up,
    /// written on the stack (this runs on every Bearer request); `None`
    /// for text that cannot be a token (empty or too long), which is
    /// never looked up.
    pub(crate) fn lookup_digest(&self, token: &str) -> Option<MacHex> {
        (!token.is_empty() && token.len() <= MAX_CREDENTIAL_LEN)
            .then(|| self.tokens.mac_hex(token.as_bytes()))
    }

    /// The row, if it is an access token that is active now.
    fn usable_access(&self, row: Option<OAuth2Token>) -> Option<OAuth2Token> {
        row.filter(|r| self.is_usable_access(r))
    }

    /// Whether the row is an access token that is active now.
    pub(crate) fn is_usable_access(&self, row: &OAuth2Token) -> bool {
        row.kind == TokenKind::Access && row.is_active(self.now())
    }

    /// RFC 7662: the active access or refresh token with this text, if
    /// any (codes are never introspected).
    pub async fn introspect(&self, token: &str) -> Result<Option<OAuth2Token>, StoreError> {
        let Some(digest) = self.lookup_digest(token) else {
            return Ok(None);
        };
        let row = self.store.token(digest.as_str()).await?;
        let now = self.now();
        Ok(row.filter(|r| r.kind != TokenKind::Code && r.is_active(now)))
    }

    /// RFC 7009: revokes a token issued to `client` (a refresh token with
    /// its whole family, an access token alone). Unknown tokens and
    /// tokens of other clients are ignored, as the RFC asks; returns
    /// whether something was revoked.
    pub async fn revoke(&self, client: &Client, token: &str) -> Result<bool, StoreError> {
        let Some(digest) = self.lookup_digest(token) else {
            return Ok(false);
        };
        let digest = digest.as_str();
        let Some(row) = self.store.token(digest).await? else {
            return Ok(false);
        };
        if row.client_id != client.client_id {
            return Ok(false);
        }
        match row.kind {
            TokenKind::Refresh => Ok(self.store.revoke_family(&row.family).await? > 0),
            TokenKind::Access => self.store.consume_token(digest).await,
            TokenKind::Code => Ok(false),
        }
    }

    /// Deletes expired tokens and codes (`cleartokens`); returns how
    /// many.
    pub async fn clear_expired(&self) -> Result<u64, StoreError> {
        self.store.clear_expired(self.now()).await
    }
}

/// A redirect URI must be absolute, without a fragment (RFC 6749
/// §3.1.2): `http`/`https` with a host, or a private-use scheme for
/// native apps (RFC 8252 §7.1, `com.example.app:/callback`); printable
/// ASCII without spaces.
///
/// A private-use scheme must be a reversed domain name, so it holds a
/// `.`, as RFC 8252 asks: that refuses the schemes a browser would act on
/// itself (`javascript:`, `data:`, `vbscript:`, `file:`, ...), which
/// would turn the authorization redirect into script run on the consent
/// page's origin.
fn check_redirect_uri(uri: &str) -> Result<(), OAuth2Error> {
    let bad = || {
        OAuth2Error::InvalidRequest(format!(
            "invalid redirect URI {uri:?}: use http(s)://HOST/PATH, or a private-use scheme \
             named after a reversed domain (com.example.app:/callback), without a fragment"
        ))
    };
    if uri.len() > 2000 || uri.contains('#') || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    let (scheme, rest) = uri.split_once(':').ok_or_else(bad)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return Err(bad());
    }
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        let parsed: http::Uri = uri.parse().map_err(|_| bad())?;
        if parsed.host().is_none_or(str::is_empty) {
            return Err(bad());
        }
    } else if !scheme.contains('.') {
        return Err(bad());
    }
    Ok(())
}
