//! The JSON views: the protected routes, `/api/whoami/`, the DRF-style
//! `OPTIONS` metadata, and the health probes.

use axum::handler::Handler;
use axum::http::header::{HeaderValue, ALLOW};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::MethodRouter;
use portcullis::{Identity, IdentityRef, Policy, User};
use serde_json::json;
use tower::util::MapResponseLayer;
use tower::Layer;

use super::respond::{json, not_allowed_handler, PROTECTED_METHODS};

/// What DRF's `SimpleMetadata` says about a view.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ViewInfo {
    /// DRF's `get_view_name()`.
    pub(crate) name: &'static str,
    /// DRF's `get_view_description()`.
    pub(crate) description: &'static str,
}

/// What DRF's `SimpleMetadata` answers to `OPTIONS`.
pub(crate) fn metadata(info: ViewInfo, allow: &'static str) -> Response {
    let mut res = json(
        StatusCode::OK,
        json!({
            "name": info.name,
            "description": info.description,
            "renders": ["application/json"],
            "parses": [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data"
            ],
        }),
    );
    res.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    res
}

/// A protected route's body: `{"user": ..., "auth": ...}`.
pub(crate) fn show_body(id: &Identity<User>) -> serde_json::Value {
    json!({
        "user": id.username(),
        "auth": id.auth().map(|a| a.description()),
    })
}

/// `{"user": ..., "auth": ...}`: the identity as the protected routes show
/// it. `auth` is the scheme's non-secret description, never a secret.
/// The body of a protected route.
#[derive(serde::Serialize)]
struct Shown<'a> {
    // Alphabetical, as the `json!` maps these replaced wrote them.
    auth: Option<&'a str>,
    user: Option<&'a str>,
}

/// The body of `/api/whoami/`.
#[derive(serde::Serialize)]
struct WhoAmI<'a> {
    auth: Option<&'a str>,
    is_authenticated: bool,
    user: Option<&'a str>,
}

/// The body of `/health/` and `/ready/`.
#[derive(serde::Serialize)]
struct Status {
    status: &'static str,
}

async fn show(id: IdentityRef<User>) -> Response {
    json(
        StatusCode::OK,
        Shown {
            user: id.username(),
            auth: id.auth().map(|a| a.description()),
        },
    )
}

/// `/api/whoami/`: like [`show`], plus `is_authenticated`; anonymous
/// requests get the configured unauthenticated user's name.
async fn whoami(id: IdentityRef<User>) -> Response {
    json(
        StatusCode::OK,
        WhoAmI {
            user: id.username(),
            auth: id.auth().map(|a| a.description()),
            is_authenticated: id.is_authenticated(),
        },
    )
}

/// A route answering every method of [`PROTECTED_METHODS`] once `policy`
/// lets the request through; other methods get `405` after
/// authentication, as DRF's `dispatch` checks credentials before it looks
/// the handler up.
pub(crate) fn protected(info: ViewInfo, policy: &Policy<User>) -> MethodRouter {
    route_with(show, info, policy)
}

/// `/api/whoami/` under `policy` (the defaults with `AllowAny`).
pub(crate) fn whoami_route(info: ViewInfo, policy: &Policy<User>) -> MethodRouter {
    route_with(whoami, info, policy)
}

pub(crate) fn route_with<H, T>(handler: H, info: ViewInfo, policy: &Policy<User>) -> MethodRouter
where
    H: Handler<T, ()> + Clone,
    T: 'static,
{
    // The policy wraps each handler's service rather than the method
    // router: axum boxes (and clones, per request) every layer of a method
    // router, and a service layered directly costs neither. (Axum's own
    // `Handler::layer` adds a `Oneshot` and a mapping future around it.)
    let auth = policy.layer();
    let protect = |h: H| auth.layer(h.with_state(()));
    let options = move || std::future::ready(metadata(info, PROTECTED_METHODS));
    MethodRouter::new()
        .get_service(protect(handler.clone()))
        .head_service(protect(handler.clone()))
        .post_service(protect(handler.clone()))
        .put_service(protect(handler.clone()))
        .patch_service(protect(handler.clone()))
        .delete_service(protect(handler))
        .options_service(auth.layer(options.with_state(())))
        .fallback(
            not_allowed_handler(PROTECTED_METHODS)
                .layer(auth)
                .layer(MapResponseLayer::new(allow_protected)),
        )
}

/// A method the route lacks is answered with the methods it has: the `405`
/// itself, and the `401` or `403` that authentication answers first (for
/// which axum would add its own `Allow`, spelt differently).
fn allow_protected(mut res: Response) -> Response {
    res.headers_mut()
        .entry(ALLOW)
        .or_insert(HeaderValue::from_static(PROTECTED_METHODS));
    res
}

/// `/health/`: `200 {"status": "ok"}` while the process serves.
pub(crate) fn health_route() -> MethodRouter {
    MethodRouter::new()
        .get(|| std::future::ready(json(StatusCode::OK, Status { status: "ok" })))
        .fallback(not_allowed_handler("GET, HEAD"))
}

/// `/ready/`: `200` while the store answers, else `503` (the cause goes to
/// the log only).
pub(crate) fn ready_route<P: portcullis::store::Ping + Clone>(store: P) -> MethodRouter {
    MethodRouter::new()
        .get(move || {
            let store = store.clone();
            async move {
                match store.ping().await {
                    Ok(()) => json(StatusCode::OK, Status { status: "ok" }),
                    Err(e) => {
                        tracing::error!(error = %e, "readiness check: the store is unreachable");
                        json(
                            StatusCode::SERVICE_UNAVAILABLE,
                            json!({
                                "status": "unavailable",
                                "detail": "Service temporarily unavailable.",
                            }),
                        )
                    }
                }
            }
        })
        .fallback(not_allowed_handler("GET, HEAD"))
}
