//! The JSON views: the protected routes, `/api/whoami/`, the DRF-style
//! `OPTIONS` metadata, and the health probes.

use axum::handler::Handler;
use axum::http::header::{HeaderValue, ALLOW};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::MethodRouter;
use portcullis::{Identity, IdentityRef, Policy};
use serde_json::json;
use tower::util::MapResponseLayer;
use tower::Layer;

use super::respond::{json, json_bytes, not_allowed_handler, push_json_opt, PROTECTED_METHODS};
use super::AppUser;

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

/// A protected route's body, `{"auth": ..., "user": ...}` ([`shown`]).
pub(crate) fn show_body(id: &Identity<AppUser>) -> Vec<u8> {
    shown(id.username(), id.auth().map(|a| a.description()))
}

/// `{"auth": ..., "user": ...}`: the identity as the protected routes show
/// it (keys in alphabetical order, as serde_json's maps write them).
/// `auth` is the scheme's non-secret description, never a secret. Written
/// by hand, since it is on every authenticated request; a test holds it to
/// serde_json's output.
fn shown(user: Option<&str>, auth: Option<&str>) -> Vec<u8> {
    identity_body(auth, b",\"user\":", user)
}

/// The body of `/api/whoami/`: [`shown`]'s, plus `is_authenticated`.
fn who_am_i(user: Option<&str>, auth: Option<&str>, is_authenticated: bool) -> Vec<u8> {
    let between: &[u8] = if is_authenticated {
        b",\"is_authenticated\":true,\"user\":"
    } else {
        b",\"is_authenticated\":false,\"user\":"
    };
    identity_body(auth, between, user)
}

/// `{"auth":AUTH` + `between` + `USER}`, the two strings written as
/// serde_json writes them.
fn identity_body(auth: Option<&str>, between: &[u8], user: Option<&str>) -> Vec<u8> {
    let len = |s: Option<&str>| s.map_or(4, str::len);
    // `{"auth":`, `}` and two pairs of quotes: 13 bytes.
    let mut out = Vec::with_capacity(13 + between.len() + len(auth) + len(user));
    out.extend_from_slice(b"{\"auth\":");
    push_json_opt(&mut out, auth);
    out.extend_from_slice(between);
    push_json_opt(&mut out, user);
    out.push(b'}');
    out
}

/// The body of `/health/` and `/ready/`.
#[derive(serde::Serialize)]
struct Status {
    status: &'static str,
}

async fn show(id: IdentityRef<AppUser>) -> Response {
    json_bytes(StatusCode::OK, show_body(&id))
}

/// `/api/whoami/`: like [`show`], plus `is_authenticated`; anonymous
/// requests get the configured unauthenticated user's name.
async fn whoami(id: IdentityRef<AppUser>) -> Response {
    json_bytes(
        StatusCode::OK,
        who_am_i(
            id.username(),
            id.auth().map(|a| a.description()),
            id.is_authenticated(),
        ),
    )
}

/// A route answering every method of [`PROTECTED_METHODS`] once `policy`
/// lets the request through; other methods get `405` after
/// authentication, as DRF's `dispatch` checks credentials before it looks
/// the handler up.
pub(crate) fn protected(info: ViewInfo, policy: &Policy<AppUser>) -> MethodRouter {
    route_with(show, info, policy)
}

/// `/api/whoami/` under `policy` (the defaults with `AllowAny`).
pub(crate) fn whoami_route(info: ViewInfo, policy: &Policy<AppUser>) -> MethodRouter {
    route_with(whoami, info, policy)
}

pub(crate) fn route_with<H, T>(handler: H, info: ViewInfo, policy: &Policy<AppUser>) -> MethodRouter
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings that need every kind of escape serde_json writes, and some
    /// that need none.
    const STRINGS: &[&str] = &[
        "",
        "ada",
        "Token token of user 1, created 2026-11-25T04:21:00Z",
        "quote \" inside",
        "back\\slash",
        "tab\tnew\nline\r",
        "\u{0}\u{1}\u{1f}",
        "del \u{7f} kept",
        "ünïcödé ✓ 𝄞",
        "\u{2028}\u{2029}",
        "</script>",
    ];

    #[test]
    fn identity_bodies_are_what_serde_json_writes() {
        let mut values: Vec<Option<&str>> = STRINGS.iter().copied().map(Some).collect();
        values.push(None);
        for &user in &values {
            for &auth in &values {
                let want = serde_json::to_vec(&json!({ "auth": auth, "user": user })).unwrap();
                assert_eq!(shown(user, auth), want, "{user:?} {auth:?}");
                for is_authenticated in [true, false] {
                    let want = serde_json::to_vec(&json!({
                        "auth": auth,
                        "is_authenticated": is_authenticated,
                        "user": user,
                    }))
                    .unwrap();
                    assert_eq!(
                        who_am_i(user, auth, is_authenticated),
                        want,
                        "{user:?} {auth:?} {is_authenticated}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_byte_is_escaped_as_serde_json_escapes_it() {
        for c in (0u32..0x80).chain([0xa0, 0x2028, 0xfeff, 0x1_f600]) {
            let c = char::from_u32(c).unwrap();
            let s = format!("a{c}b");
            let mut out = Vec::new();
            push_json_opt(&mut out, Some(&s));
            assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{c:?}");
        }
    }
}
