//! axum extractors for the identity a [`Policy`](crate::Policy) resolves.
//!
//! | extractor | gives | rejects when |
//! |---|---|---|
//! | [`Identity<U>`] | user and auth, or anonymous | a scheme fails |
//! | [`IdentityRef<U>`] | the same, borrowed from the layer (no copy of the user) | a scheme fails |
//! | [`CurrentUser<U>`] | the authenticated user | not authenticated or a scheme fails |
//! | [`Auth<U>`] | DRF's `request.auth` (`None` when anonymous or for Basic, Session, RemoteUser) | a scheme fails |
//! | [`Guard<U>`] | object-level permission checks | a scheme fails |
//!
//! Each resolves the identity on first use (once per request) and renders
//! failures with the route's policy. Using one on a route without an
//! [`AuthLayer`](crate::AuthLayer) is a programming error answered with
//! `500`.
//!
//! ```
//! use axum::{body::Body, routing::get, Json, Router};
//! use portcullis::{Identity, Policy, User};
//! use tower::ServiceExt;
//!
//! async fn whoami(id: Identity<User>) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "user": id.username(), "is_authenticated": id.is_authenticated() }))
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = Router::new().route("/", get(whoami)).layer(Policy::<User>::new().layer());
//! let res = app.oneshot(http::Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), 200);
//! # });
//! ```

use std::any::Any;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::error::AuthError;
use crate::identity::{AuthInfo, AuthUser, Identity};
use crate::layer::LazyIdentity;
use crate::permission::Context;
use crate::scheme::RequestHead;

fn missing_layer() -> Response {
    tracing::error!("a portcullis extractor was used on a route without an AuthLayer");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!({"detail": "A server error occurred."})),
    )
        .into_response()
}

fn lazy_of<U: AuthUser>(parts: &Parts) -> Result<LazyIdentity<U>, Response> {
    parts
        .extensions
        .get::<LazyIdentity<U>>()
        .cloned()
        .ok_or_else(missing_layer)
}

fn reject<U: AuthUser>(lazy: &LazyIdentity<U>, e: AuthError) -> Response {
    lazy.policy()
        .reject(e)
        .map(axum::body::Body::from)
        .into_response()
}

impl<U: AuthUser, S: Send + Sync> FromRequestParts<S> for Identity<U> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let lazy = lazy_of::<U>(parts)?;
        let head = RequestHead::from_parts(parts);
        match lazy.resolve(&head).await {
            Ok(id) => Ok(id.clone()),
            Err(e) => Err(reject(&lazy, e)),
        }
    }
}

/// The request's [`Identity`], shared with the layer instead of copied out
/// of it: it derefs to `Identity<U>`. A handler that only reads the
/// identity saves a copy of the user (and its strings) per request.
///
/// ```
/// use axum::{body::Body, routing::get, Router};
/// use portcullis::{IdentityRef, Policy, User};
/// use tower::ServiceExt;
///
/// async fn hello(id: IdentityRef<User>) -> String {
///     format!("hello, {}", id.username().unwrap_or("nobody"))
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let policy = Policy::<User>::new().unauthenticated_user(Some("stranger"));
/// let app = Router::new().route("/", get(hello)).layer(policy.layer());
/// let res = app.oneshot(http::Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
/// let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
/// assert_eq!(body, "hello, stranger");
/// # });
/// ```
pub struct IdentityRef<U: AuthUser> {
    /// Resolved, to an identity: only [`from_request_parts`] makes one.
    ///
    /// [`from_request_parts`]: FromRequestParts::from_request_parts
    lazy: LazyIdentity<U>,
}

impl<U: AuthUser> std::ops::Deref for IdentityRef<U> {
    type Target = Identity<U>;

    fn deref(&self) -> &Identity<U> {
        self.lazy
            .resolved_ok()
            .expect("an IdentityRef holds a resolved identity")
    }
}

impl<U: AuthUser + std::fmt::Debug> std::fmt::Debug for IdentityRef<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IdentityRef").field(&**self).finish()
    }
}

impl<U: AuthUser, S: Send + Sync> FromRequestParts<S> for IdentityRef<U> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let lazy = lazy_of::<U>(parts)?;
        let head = RequestHead::from_parts(parts);
        match lazy.resolve(&head).await {
            Ok(_) => Ok(IdentityRef { lazy }),
            Err(e) => Err(reject(&lazy, e)),
        }
    }
}

/// The authenticated user; anonymous requests are rejected with the
/// route's 401/403 answer.
#[derive(Clone, Debug)]
pub struct CurrentUser<U>(pub U);

impl<U: AuthUser, S: Send + Sync> FromRequestParts<S> for CurrentUser<U> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let lazy = lazy_of::<U>(parts)?;
        match Identity::<U>::from_request_parts(parts, state).await? {
            Identity::User { user, .. } => Ok(CurrentUser(user)),
            Identity::Anonymous(_) => Err(reject(&lazy, AuthError::NotAuthenticated)),
        }
    }
}

/// DRF's `request.auth`: what the scheme said about the credential.
pub struct Auth<U>(pub Option<AuthInfo>, std::marker::PhantomData<fn() -> U>);

impl<U> std::fmt::Debug for Auth<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Auth").field(&self.0).finish()
    }
}

impl<U: AuthUser, S: Send + Sync> FromRequestParts<S> for Auth<U> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let id = Identity::<U>::from_request_parts(parts, state).await?;
        Ok(Auth(id.auth().cloned(), std::marker::PhantomData))
    }
}

/// Checks object-level permissions from a handler (DRF's
/// `check_object_permissions`).
pub struct Guard<U: AuthUser> {
    lazy: LazyIdentity<U>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl<U: AuthUser> std::fmt::Debug for Guard<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl<U: AuthUser> Guard<U> {
    /// `Ok` if the route's permission allows acting on `object`; else the
    /// response to return.
    pub async fn check_object<T: Any + Send + Sync>(&self, object: &T) -> Result<(), Response> {
        let ext = http::Extensions::new();
        let head = RequestHead {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            extensions: &ext,
        };
        let ctx = Context::new(head, &self.lazy);
        self.lazy
            .policy()
            .check_object(&ctx, object)
            .await
            .map_err(|e| reject(&self.lazy, e))
    }
}

impl<U: AuthUser, S: Send + Sync> FromRequestParts<S> for Guard<U> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let lazy = lazy_of::<U>(parts)?;
        Ok(Guard {
            lazy,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}
