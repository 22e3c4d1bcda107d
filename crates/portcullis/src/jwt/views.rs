//! simplejwt's four token views as plain async functions: the app parses the
//! body (form or JSON), calls one of these, and renders the result — a JSON
//! body on success, [`JwtViewError::to_response`] on failure.
//!
//! | route | function | success body |
//! |---|---|---|
//! | `/api/token/` | [`obtain`] | `{"access": ..., "refresh": ...}` |
//! | `/api/token/refresh/` | [`refresh`] | `{"access": ...}` (+ `"refresh"` with rotation) |
//! | `/api/token/verify/` | [`verify`] | `{}` |
//! | `/api/token/blacklist/` | [`blacklist`] | `{}` |
//!
//! A missing or blank field is the app's to detect (before calling):
//! [`JwtViewError::MissingField`] / [`JwtViewError::BlankField`] render DRF's
//! `400 {"<field>": ["This field is required."]}`.

use bytes::Bytes;
use chrono::Utc;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use super::{Jwt, JwtError, RefreshOutcome, TokenError, TokenPair, UserIdField};
use crate::backend::PasswordBackend;
use crate::error::json_response;
use crate::identity::AuthUser;
use crate::store::{StoreError, UserStore};

/// simplejwt's message when obtaining tokens fails.
pub const NO_ACTIVE_ACCOUNT: &str = "No active account found with the given credentials";
/// simplejwt's message when a refresh token's user is inactive.
pub const NO_ACTIVE_ACCOUNT_FOR_TOKEN: &str = "No active account found for the given token.";

/// Why a token view failed; renders simplejwt's status and body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtViewError {
    /// Wrong username or password, or an inactive user: `401 {"detail":
    /// "No active account found with the given credentials"}` (code
    /// `no_active_account`, not in the body: DRF's `AuthenticationFailed`).
    #[error("{NO_ACTIVE_ACCOUNT}")]
    NoActiveAccount,
    /// The refresh token's user is inactive or gone: `401 {"detail": "No
    /// active account found for the given token."}`. (simplejwt answers a
    /// deleted user with a 500; portcullis with this.)
    #[error("{NO_ACTIVE_ACCOUNT_FOR_TOKEN}")]
    NoActiveAccountForToken,
    /// The token was refused: `401 {"detail": "<reason>", "code":
    /// "token_not_valid"}` (simplejwt's `InvalidToken`).
    #[error("{0}")]
    InvalidToken(TokenError),
    /// The verify view was given a blacklisted refresh token: `400
    /// {"non_field_errors": ["Token is blacklisted"]}` (a serializer
    /// `ValidationError` in simplejwt).
    #[error("Token is blacklisted")]
    BlacklistedOnVerify,
    /// A required field is missing: `400 {"<field>": ["This field is
    /// required."]}`.
    #[error("{0}: This field is required.")]
    MissingField(&'static str),
    /// A required field is empty: `400 {"<field>": ["This field may not be
    /// blank."]}`.
    #[error("{0}: This field may not be blank.")]
    BlankField(&'static str),
    /// A store failed (500, or 503 when unreachable); details are logged,
    /// never sent.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed (a misconfigured key): 500.
    #[error("could not sign a token")]
    Signing,
}

impl From<JwtError> for JwtViewError {
    fn from(e: JwtError) -> Self {
        match e {
            JwtError::Token(t) => JwtViewError::InvalidToken(t),
            JwtError::Store(s) => JwtViewError::Store(s),
            JwtError::Signing(m) => {
                tracing::error!(error = %m, "JWT signing failed");
                JwtViewError::Signing
            }
        }
    }
}

impl JwtViewError {
    /// The status simplejwt answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            JwtViewError::NoActiveAccount
            | JwtViewError::NoActiveAccountForToken
            | JwtViewError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            JwtViewError::BlacklistedOnVerify
            | JwtViewError::MissingField(_)
            | JwtViewError::BlankField(_) => StatusCode::BAD_REQUEST,
            JwtViewError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            JwtViewError::Store(_) | JwtViewError::Signing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// simplejwt's error code (`no_active_account`, `token_not_valid`, …),
    /// where it has one.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            JwtViewError::NoActiveAccount | JwtViewError::NoActiveAccountForToken => {
                Some("no_active_account")
            }
            JwtViewError::InvalidToken(_) => Some("token_not_valid"),
            JwtViewError::MissingField(_) => Some("required"),
            JwtViewError::BlankField(_) => Some("blank"),
            _ => None,
        }
    }

    /// The JSON body simplejwt sends.
    pub fn body(&self) -> Value {
        match self {
            JwtViewError::NoActiveAccount => json!({ "detail": NO_ACTIVE_ACCOUNT }),
            JwtViewError::NoActiveAccountForToken => {
                json!({ "detail": NO_ACTIVE_ACCOUNT_FOR_TOKEN })
            }
            JwtViewError::InvalidToken(e) => {
                json!({ "detail": e.to_string(), "code": "token_not_valid" })
            }
            JwtViewError::BlacklistedOnVerify => {
                json!({ "non_field_errors": ["Token is blacklisted"] })
            }
            JwtViewError::MissingField(f) => json!({ *f: ["This field is required."] }),
            JwtViewError::BlankField(f) => json!({ *f: ["This field may not be blank."] }),
            JwtViewError::Store(e) => {
                tracing::error!(error = %e, "JWT store error");
                if e.is_unavailable() {
                    json!({ "detail": "Service temporarily unavailable." })
                } else {
                    json!({ "detail": "A server error occurred." })
                }
            }
            JwtViewError::Signing => json!({ "detail": "A server error occurred." }),
        }
    }

    /// The whole response; every `401` carries `WWW-Authenticate:
    /// <first header type> realm="api"` (simplejwt's `TokenViewBase`).
    pub fn to_response(&self, jwt: &Jwt) -> Response<Bytes> {
        let status = self.status();
        let mut res = json_response(status, &self.body());
        if status == StatusCode::UNAUTHORIZED {
            if let Ok(v) = HeaderValue::from_str(&jwt.challenge()) {
                res.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
        }
        res
    }
}

#[cfg(feature = "axum")]
impl JwtViewError {
    /// The response as axum's.
    pub fn into_axum_response(&self, jwt: &Jwt) -> axum::response::Response {
        self.to_response(jwt).map(axum::body::Body::from)
    }
}

impl TokenPair {
    /// The success body of `/api/token/`.
    pub fn to_json(&self) -> Value {
        json!({ "access": self.access, "refresh": self.refresh })
    }
}

impl RefreshOutcome {
    /// The success body of `/api/token/refresh/`.
    pub fn to_json(&self) -> Value {
        match &self.refresh {
            Some(r) => json!({ "access": self.access, "refresh": r }),
            None => json!({ "access": self.access }),
        }
    }
}

/// `/api/token/`: checks the credentials with `backend` (inactive users
/// and wrong passwords alike are [`JwtViewError::NoActiveAccount`]) and
/// issues a pair; with [`JwtSettings::update_last_login`](super::JwtSettings::update_last_login)
/// records the login.
pub async fn obtain<S: UserStore + Clone>(
    jwt: &Jwt,
    backend: &PasswordBackend<S>,
    username: &str,
    password: &str,
) -> Result<TokenPair, JwtViewError> {
    let Some(user) = backend.authenticate(username, password).await? else {
        return Err(JwtViewError::NoActiveAccount);
    };
    if !user.is_active() {
        return Err(JwtViewError::NoActiveAccount);
    }
    let pair = jwt.for_user(&user).await?;
    if jwt.settings().update_last_login {
        backend
            .store()
            .touch_last_login(user.id(), Utc::now())
            .await?;
    }
    Ok(pair)
}

/// `/api/token/refresh/`: validates the refresh token (blacklist included),
/// refuses it when its user is inactive or gone, then refreshes (and
/// rotates) as [`Jwt::refresh`].
pub async fn refresh<S: UserStore>(
    jwt: &Jwt,
    store: &S,
    refresh: &str,
) -> Result<RefreshOutcome, JwtViewError> {
    let claims = jwt.validate_refresh(refresh).await?;
    // simplejwt checks the user only when the claim is present and truthy.
    let present = claims
        .user_id()
        .is_some_and(|v| !(v.is_null() || v == &json!(0) || v == &json!("") || v == &json!(false)));
    if present {
        let user = match jwt.settings().user_id_field {
            UserIdField::Id => match claims.user_id_i64() {
                Some(id) => store.user_by_id(id).await?,
                None => None,
            },
            UserIdField::Username => match claims.user_id().and_then(Value::as_str) {
                Some(name) => store.user_by_username(name).await?,
                None => None,
            },
        };
        if !user.is_some_and(|u| u.is_active()) {
            return Err(JwtViewError::NoActiveAccountForToken);
        }
    }
    Ok(jwt.refresh_validated(&claims).await?)
}

/// `/api/token/verify/`: any valid token (access or refresh); a blacklisted
/// refresh token is [`JwtViewError::BlacklistedOnVerify`].
pub async fn verify(jwt: &Jwt, token: &str) -> Result<(), JwtViewError> {
    match jwt.verify(token).await {
        Ok(_) => Ok(()),
        Err(JwtError::Token(TokenError::Blacklisted)) => Err(JwtViewError::BlacklistedOnVerify),
        Err(e) => Err(e.into()),
    }
}

/// `/api/token/blacklist/`: blacklists a valid refresh token, which is
/// refused from then on. Needs a blacklist ([`Jwt::with_blacklist`]); a
/// refresh token that is already blacklisted is `token_not_valid`.
pub async fn blacklist(jwt: &Jwt, refresh: &str) -> Result<(), JwtViewError> {
    Ok(jwt.blacklist(refresh).await?)
}
