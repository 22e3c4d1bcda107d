//! RemoteUser authentication, DRF's `RemoteUserAuthentication`: trust a
//! header that a fronting proxy (or single sign-on gateway) sets to the
//! authenticated username.
//!
//! Only add this scheme behind a proxy that removes the header from client
//! requests: anyone who can reach the app directly can send it. The header
//! is `Remote-User` unless configured; a user the store does not know is
//! created (Django's `create_unknown_user`) unless that is switched off. An
//! unknown or inactive user leaves the request anonymous; the scheme has no
//! challenge, so a protected route answers `403`.
//!
//! A header sent more than once fails the request: a proxy that adds its
//! own copy instead of replacing the client's (HAProxy's `add-header`,
//! Apache's `RequestHeader add`) would otherwise let the client's copy,
//! which comes first, name the user.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use portcullis::scheme::remote_user::RemoteUser;
//! use portcullis::store::MemoryStore;
//! use portcullis::{IsAuthenticated, Policy, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let policy = Policy::<User>::new()
//!     .scheme(RemoteUser::new(MemoryStore::new()))
//!     .permission(IsAuthenticated);
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(policy.layer());
//!
//! let proxied = http::Request::get("/").header("remote-user", "ada").body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(proxied).await.unwrap().status(), 200);
//! let direct = http::Request::get("/").body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(direct).await.unwrap().status(), 403);
//! # });
//! ```

use async_trait::async_trait;
use http::HeaderName;

use crate::error::AuthError;
use crate::identity::AuthUser;
use crate::scheme::{Authenticated, Outcome, RequestHead, Scheme};
use crate::store::UserStore;

/// The RemoteUser scheme.
#[derive(Clone, Debug)]
pub struct RemoteUser<S> {
    store: S,
    header: HeaderName,
    create_unknown_user: bool,
}

impl<S: UserStore> RemoteUser<S> {
    /// Trusts `Remote-User` and creates unknown users.
    pub fn new(store: S) -> Self {
        RemoteUser {
            store,
            header: HeaderName::from_static("remote-user"),
            create_unknown_user: true,
        }
    }

    /// Trusts another header.
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }

    /// Whether unknown users are created (default `true`).
    pub fn create_unknown_user(mut self, create: bool) -> Self {
        self.create_unknown_user = create;
        self
    }
}

#[async_trait]
impl<S: UserStore> Scheme<S::User> for RemoteUser<S> {
    fn name(&self) -> &'static str {
        "remote_user"
    }

    fn reads_authorization(&self) -> bool {
        self.header == http::header::AUTHORIZATION
    }

    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        req.headers.contains_key(&self.header)
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<S::User> {
        let mut values = req.headers.get_all(&self.header).into_iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(AuthError::failed("Invalid remote user header."));
        }
        let Ok(username) = std::str::from_utf8(value.as_bytes()) else {
            return Err(AuthError::failed("Invalid remote user header."));
        };
        let username = username.trim();
        if username.is_empty() {
            return Ok(None);
        }
        if username.len() > 150 {
            return Err(AuthError::failed("Invalid remote user header."));
        }
        let user = match self.store.user_by_username(username).await? {
            Some(u) => u,
            None if self.create_unknown_user => {
                match self.store.create_remote_user(username).await {
                    Ok(u) => u,
                    // Created by a concurrent request: use that one.
                    Err(crate::store::StoreError::Conflict(_)) => {
                        match self.store.user_by_username(username).await? {
                            Some(u) => u,
                            None => return Ok(None),
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => return Ok(None),
        };
        Ok(user
            .is_active()
            .then(|| Authenticated::new(user, "remote_user")))
    }
}
