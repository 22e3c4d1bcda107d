//! Typed failures that render themselves as DRF does: a status, a
//! `{"detail": ...}` body and, where the route's first scheme has one, a
//! `WWW-Authenticate` challenge.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use serde_json::{Map, Value};

use crate::store::StoreError;

/// DRF's message for a request without credentials.
pub const NOT_AUTHENTICATED: &str = "Authentication credentials were not provided.";
/// DRF's message for a failed permission check.
pub const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";

/// Why authentication or authorization stopped a request.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No scheme authenticated the request and the permission needs a user
    /// (DRF's `NotAuthenticated`).
    #[error("{NOT_AUTHENTICATED}")]
    NotAuthenticated,
    /// A scheme found its credentials but they are bad (DRF's
    /// `AuthenticationFailed`).
    #[error("{}", .0.detail)]
    Failed(Failure),
    /// Authenticated but not allowed, or a CSRF failure (DRF's
    /// `PermissionDenied`).
    #[error("{0}")]
    PermissionDenied(Cow<'static, str>),
    /// A throttle refused the request (DRF's `Throttled`).
    #[error("Request was throttled.")]
    Throttled {
        /// Seconds until a request may succeed, if known.
        wait: Option<u64>,
    },
    /// A form body was larger than the configured limit.
    #[error("Request body too large.")]
    PayloadTooLarge,
    /// The request's protocol parameters are malformed, duplicated or
    /// unsupported (answered `400` with the message as `detail`), as the
    /// signed-request RFCs ask.
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
    /// The store could not answer. Fails closed: never an anonymous pass.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
}

impl AuthError {
    /// `AuthenticationFailed` with a DRF message.
    pub fn failed(detail: impl Into<Cow<'static, str>>) -> Self {
        AuthError::Failed(Failure::new(detail))
    }

    /// `BadRequest` with a message: malformed protocol parameters.
    pub fn bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        AuthError::BadRequest(detail.into())
    }

    /// `PermissionDenied` with a message.
    pub fn denied(detail: impl Into<Cow<'static, str>>) -> Self {
        AuthError::PermissionDenied(detail.into())
    }

    /// Whether this error is about authentication (so the 401/403 rule
    /// applies) rather than permission.
    pub fn is_authentication(&self) -> bool {
        matches!(self, AuthError::NotAuthenticated | AuthError::Failed(_))
    }

    /// Renders the error. `challenge` is the `WWW-Authenticate` value of the
    /// route's first scheme: with one, authentication errors are `401`;
    /// without, `403` (DRF's rule).
    pub fn to_response(&self, challenge: Option<&HeaderValue>) -> Response<Bytes> {
        let mut body = Map::new();
        let mut extra_challenge = None;
        let status = match self {
            AuthError::NotAuthenticated => {
                body.insert("detail".into(), NOT_AUTHENTICATED.into());
                auth_status(challenge)
            }
            AuthError::Failed(f) => {
                body.insert("detail".into(), Value::String(f.detail.to_string()));
                if let Some(code) = f.code {
                    body.insert("code".into(), code.into());
                }
                if let Some(extra) = &f.extra {
                    for (k, v) in extra.iter() {
                        body.insert(k.clone(), v.clone());
                    }
                }
                extra_challenge = f.challenge.clone();
                auth_status(challenge)
            }
            AuthError::PermissionDenied(msg) => {
                body.insert("detail".into(), Value::String(msg.to_string()));
                StatusCode::FORBIDDEN
            }
            AuthError::Throttled { wait } => {
                let msg = match wait {
                    Some(1) => "Request was throttled. Expected available in 1 second.".to_owned(),
                    Some(n) => format!("Request was throttled. Expected available in {n} seconds."),
                    None => "Request was throttled.".to_owned(),
                };
                body.insert("detail".into(), msg.into());
                StatusCode::TOO_MANY_REQUESTS
            }
            AuthError::PayloadTooLarge => {
                body.insert("detail".into(), "Request body too large.".into());
                StatusCode::PAYLOAD_TOO_LARGE
            }
            AuthError::BadRequest(msg) => {
                body.insert("detail".into(), Value::String(msg.to_string()));
                StatusCode::BAD_REQUEST
            }
            AuthError::Store(e) => {
                // Fail closed; the details go to the log, not to the client.
                tracing::error!(error = %e, "authentication store error");
                if e.is_unavailable() {
                    body.insert("detail".into(), "Service temporarily unavailable.".into());
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    body.insert("detail".into(), "A server error occurred.".into());
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }
        };
        let mut res = json_response(status, &Value::Object(body));
        if status == StatusCode::UNAUTHORIZED {
            if let Some(c) = extra_challenge.as_ref().or(challenge) {
                res.headers_mut().insert(WWW_AUTHENTICATE, c.clone());
            }
        }
        if let AuthError::Throttled { wait: Some(n) } = self {
            res.headers_mut().insert(RETRY_AFTER, HeaderValue::from(*n));
        }
        res
    }
}

fn auth_status(challenge: Option<&HeaderValue>) -> StatusCode {
    if challenge.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::FORBIDDEN
    }
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Bytes> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut res = Response::new(Bytes::from(bytes));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The details of an authentication failure.
///
/// Most schemes need only a message; token schemes with richer error bodies
/// (simplejwt's `code` and `messages`, RFC 6750's `error=` challenge
/// parameter) add them with the builder methods.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The `detail` message.
    pub detail: Cow<'static, str>,
    /// An optional machine-readable `code` added to the body.
    pub code: Option<&'static str>,
    /// More members of the JSON body.
    pub extra: Option<Box<Map<String, Value>>>,
    /// A challenge that replaces the route's for this failure.
    pub challenge: Option<HeaderValue>,
}

impl Failure {
    /// A failure with a message.
    pub fn new(detail: impl Into<Cow<'static, str>>) -> Self {
        Failure {
            detail: detail.into(),
            code: None,
            extra: None,
            challenge: None,
        }
    }

    /// Adds a `code` member.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Adds a member to the body.
    pub fn with_field(mut self, name: &str, value: Value) -> Self {
        self.extra
            .get_or_insert_with(Default::default)
            .insert(name.to_owned(), value);
        self
    }

    /// Replaces the route's challenge for this failure.
    pub fn with_challenge(mut self, challenge: HeaderValue) -> Self {
        self.challenge = Some(challenge);
        self
    }
}

/// An error together with the challenge of the route it happened on: what a
/// layer or an extractor answers with.
#[derive(Debug)]
pub struct Rejection {
    /// What went wrong.
    pub error: AuthError,
    /// The route's first scheme's challenge.
    pub challenge: Option<HeaderValue>,
}

impl Rejection {
    /// Renders the rejection as DRF would.
    pub fn to_response(&self) -> Response<Bytes> {
        self.error.to_response(self.challenge.as_ref())
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Rejection {
    fn into_response(self) -> axum::response::Response {
        self.to_response().map(axum::body::Body::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(res: &Response<Bytes>) -> Value {
        serde_json::from_slice(res.body()).unwrap()
    }

    #[test]
    fn not_authenticated_is_401_with_challenge() {
        let c = HeaderValue::from_static("Token");
        let res = AuthError::NotAuthenticated.to_response(Some(&c));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[WWW_AUTHENTICATE], "Token");
        assert_eq!(body(&res)["detail"], NOT_AUTHENTICATED);
    }

    #[test]
    fn not_authenticated_is_403_without_challenge() {
        let res = AuthError::failed("Invalid token.").to_response(None);
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(body(&res)["detail"], "Invalid token.");
    }

    #[test]
    fn permission_denied_is_always_403() {
        let c = HeaderValue::from_static("Basic realm=\"api\"");
        let res = AuthError::denied(PERMISSION_DENIED).to_response(Some(&c));
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn throttled_sets_retry_after() {
        let res = AuthError::Throttled { wait: Some(42) }.to_response(None);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[RETRY_AFTER], "42");
        assert_eq!(
            body(&res)["detail"],
            "Request was throttled. Expected available in 42 seconds."
        );
    }

    #[test]
    fn store_errors_hide_details() {
        let e = StoreError::unavailable("connection refused to db.internal:5432");
        let res = AuthError::Store(e).to_response(None);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = String::from_utf8(res.body().to_vec()).unwrap();
        assert!(!text.contains("db.internal"));
    }

    #[test]
    fn failure_extra_fields_and_code() {
        let f = Failure::new("Given token not valid for any token type")
            .with_code("token_not_valid")
            .with_field("messages", serde_json::json!([]));
        let c = HeaderValue::from_static("Bearer realm=\"api\"");
        let res = AuthError::Failed(f).to_response(Some(&c));
        let b = body(&res);
        assert_eq!(b["code"], "token_not_valid");
        assert_eq!(b["messages"], serde_json::json!([]));
    }
}
