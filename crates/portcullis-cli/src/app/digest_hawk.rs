//! The signed-request routes `/digest/` and `/hawk/` (REFERENCE-APP.md,
//! "Signed-request schemes") over [`portcullis::scheme::digest`] and
//! [`portcullis::scheme::hawk`].
//!
//! | route | scheme | on `401` |
//! |---|---|---|
//! | `/digest/` | HTTP Digest, realm `api` | two `WWW-Authenticate: Digest ...` headers, SHA-256 then MD5, fresh nonces, `stale=true` for an expired nonce |
//! | `/hawk/` | Hawk | `WWW-Authenticate: Hawk` (with `error=`, and `ts`/`tsm` for a stale timestamp) |
//!
//! Both answer like every protected route (`{"user": ..., "auth": ...}`;
//! `auth` is `null` for Digest and `Hawk id <id>` for Hawk). Authenticated
//! Hawk answers carry `Server-Authorization`, a MAC over the response and
//! a hash of its body, for the client to check. Nonces go through
//! [`AppConfig::replay`](super::AppConfig::replay); Digest failures count
//! towards the login lockout, as Basic's do.

use std::sync::Arc;

use axum::http::header::HeaderName;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use portcullis::scheme::digest::{Digest, DigestStore};
use portcullis::scheme::hawk::{Artifacts, Hawk, HawkStore};
use portcullis::scheme::Scheme;
use portcullis::store::UserStore;
use portcullis::{IdentityRef, Policy};

use super::views::{self, ViewInfo};
use super::{AppConfig, AppUser};

/// The `Server-Authorization` response header (Hawk).
const SERVER_AUTHORIZATION: HeaderName = HeaderName::from_static("server-authorization");

/// `/digest/` and `/hawk/`, to merge into the app.
pub(crate) fn routes<S>(store: S, config: &AppConfig, defaults: &Policy<AppUser>) -> Router
where
    S: UserStore<User = AppUser> + DigestStore + HawkStore + Clone,
{
    let mut digest = Digest::new(store.clone(), config.secret.clone(), config.replay.clone())
        .nonce_lifetime(config.digest_nonce_lifetime);
    if let Some(lockout) = &config.lockout {
        digest = digest.with_lockout(lockout.clone());
    }
    let render = digest.clone();
    let digest: Arc<dyn Scheme<AppUser>> = Arc::new(digest);
    let hawk: Arc<dyn Scheme<AppUser>> = Arc::new(
        Hawk::new(store, config.secret.clone(), config.replay.clone()).skew(config.hawk_skew),
    );
    Router::new()
        .route(
            "/digest/",
            views::protected(
                ViewInfo {
                    name: "Digest",
                    description: "HTTP Digest authentication (RFC 7616) only.",
                },
                &defaults
                    .clone()
                    .schemes(vec![digest])
                    .on_rejection(move |r| render.render_rejection(r)),
            ),
        )
        .route(
            "/hawk/",
            views::route_with(
                hawk_show,
                ViewInfo {
                    name: "Hawk",
                    description: "Hawk authentication only; answers carry Server-Authorization.",
                },
                &defaults.clone().schemes(vec![hawk]),
            ),
        )
}

/// `{"user": ..., "auth": ...}`, signed for the Hawk client.
async fn hawk_show(id: IdentityRef<AppUser>) -> Response {
    let bytes = views::show_body(&id);
    let signature = id
        .auth()
        .and_then(|a| a.data::<Artifacts>())
        .map(|a| a.server_authorization("application/json", &bytes));
    let mut res = super::respond::json_bytes(StatusCode::OK, bytes);
    if let Some(sig) = signature {
        res.headers_mut().insert(SERVER_AUTHORIZATION, sig);
    }
    res
}
