//! [`OAuth2Error`]: RFC 6749 §5.2's error responses.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde_json::{Map, Value};

use crate::error::json_response;
use crate::store::StoreError;

/// An error of the token, introspection or revocation endpoint, or of an
/// authorization request: RFC 6749 §5.2's `error` codes.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OAuth2Error {
    /// `invalid_request`: a missing, duplicated or malformed parameter.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// `invalid_client`: client authentication failed (`401` with a
    /// `Basic` challenge).
    #[error("invalid_client")]
    InvalidClient,
    /// `invalid_grant`: a bad, expired, spent or foreign code or refresh
    /// token, a PKCE mismatch, or bad resource-owner credentials.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// `unauthorized_client`: the client may not use this grant.
    #[error("unauthorized_client")]
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// `unsupported_response_type` (authorization requests).
    #[error("unsupported_response_type")]
    UnsupportedResponseType,
    /// `invalid_scope`: a scope the client (or the original grant) does
    /// not have.
    #[error("invalid_scope")]
    InvalidScope,
    /// `access_denied`: the user refused consent.
    #[error("access_denied")]
    AccessDenied,
    /// The store failed: `500` (or `503`) `server_error`; the cause goes
    /// to the log only.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
}

impl OAuth2Error {
    /// The `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuth2Error::InvalidRequest(_) => "invalid_request",
            OAuth2Error::InvalidClient => "invalid_client",
            OAuth2Error::InvalidGrant(_) => "invalid_grant",
            OAuth2Error::UnauthorizedClient => "unauthorized_client",
            OAuth2Error::UnsupportedGrantType => "unsupported_grant_type",
            OAuth2Error::UnsupportedResponseType => "unsupported_response_type",
            OAuth2Error::InvalidScope => "invalid_scope",
            OAuth2Error::AccessDenied => "access_denied",
            OAuth2Error::Store(e) if e.is_unavailable() => "temporarily_unavailable",
            OAuth2Error::Store(_) => "server_error",
        }
    }

    /// The `error_description`, if any (never secret).
    pub fn description(&self) -> Option<Cow<'static, str>> {
        match self {
            OAuth2Error::InvalidRequest(d) | OAuth2Error::InvalidGrant(d) => {
                Some(Cow::Owned(d.clone()))
            }
            OAuth2Error::InvalidClient => Some("Client authentication failed.".into()),
            OAuth2Error::UnauthorizedClient => {
                Some("The client is not allowed to use this grant.".into())
            }
            OAuth2Error::UnsupportedGrantType => Some("Unsupported grant type.".into()),
            OAuth2Error::UnsupportedResponseType => Some("Unsupported response type.".into()),
            OAuth2Error::InvalidScope => Some("The requested scope is invalid.".into()),
            OAuth2Error::AccessDenied => Some("The user denied the request.".into()),
            OAuth2Error::Store(_) => None,
        }
    }

    /// The status: `401` for `invalid_client`, `500`/`503` for a store
    /// error, `400` otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            OAuth2Error::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuth2Error::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            OAuth2Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON response (RFC 6749 §5.2): `{"error", "error_description"}`,
    /// `Cache-Control: no-store`, and on `401` the challenge
    /// `Basic realm="<realm>"`.
    pub fn to_response(&self, realm: &str) -> Response<Bytes> {
        if let OAuth2Error::Store(e) = self {
            tracing::error!(error = %e, "OAuth2 store error");
        }
        let mut body = Map::new();
        body.insert("error".into(), self.code().into());
        if let Some(d) = self.description() {
            body.insert("error_description".into(), Value::String(d.into_owned()));
        }
        let mut res = json_response(self.status(), &Value::Object(body));
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status() == StatusCode::UNAUTHORIZED {
            let c = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"api\""));
            res.headers_mut().insert(WWW_AUTHENTICATE, c);
        }
        res
    }
}
