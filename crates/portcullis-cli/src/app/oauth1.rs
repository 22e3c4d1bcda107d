//! The OAuth 1.0a routes (REFERENCE-APP.md, "Signed-request schemes"),
//! over [`portcullis::scheme::oauth1`].
//!
//! | route | does |
//! |---|---|
//! | `/oauth1/` | protected route, [`OAuth1Auth`] only; `401` with `WWW-Authenticate: OAuth realm="api"` |
//! | `/oauth1/request_token/` | POST (or GET) signed by a consumer with `oauth_callback` → `oauth_token=...&oauth_token_secret=...&oauth_callback_confirmed=true` |
//! | `/oauth1/authorize/` | GET `?oauth_token=...`: a consent form for the session-authenticated user (fields `oauth_token`, `csrfmiddlewaretoken`); not logged in: `302` to `/auth/login/?next=...`. POST with `allow=Authorize` (CSRF-checked): `302` to the callback with `oauth_token` and `oauth_verifier`, or a page showing the verifier for `oob` |
//! | `/oauth1/access_token/` | POST signed with the request token and `oauth_verifier` → `oauth_token=...&oauth_token_secret=...` (the request token is used up) |
//!
//! Token responses are `application/x-www-form-urlencoded` (RFC 5849
//! §2.1); errors are JSON `{"detail": ...}`, `400` for malformed or missing
//! parameters and `401` with the challenge for bad credentials.

use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, SET_COOKIE,
    X_FRAME_OPTIONS,
};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::MethodRouter;
use axum::Router;
use portcullis::scheme::csrf;
use portcullis::scheme::oauth1::{
    ConsumerRecord, MemoryOAuth1Store, OAuth1, OAuth1Auth, OAuth1Store, OAuth1TokenRecord,
};
use portcullis::scheme::{RequestHead, Scheme};
use portcullis::store::{StoreError, UserStore};
use portcullis::{AllowAny, Identity, Policy};

use super::respond::{detail, escape_html, not_allowed_handler, read_body};
use super::views::{self as app_views, ViewInfo};
use super::{forms, store_error, AppStore, AppUser, Shared};

/// Where the app keeps OAuth 1.0a consumers and tokens
/// ([`AppConfig::oauth1_store`](super::AppConfig::oauth1_store)): any
/// [`OAuth1Store`], e.g. a `portcullis_store::Store`.
#[derive(Clone)]
pub struct SharedOAuth1Store(Arc<dyn OAuth1Store>);

impl SharedOAuth1Store {
    /// Wraps a store.
    pub fn new(store: impl OAuth1Store) -> Self {
        SharedOAuth1Store(Arc::new(store))
    }

    /// An empty in-memory store.
    pub fn memory() -> Self {
        Self::new(MemoryOAuth1Store::new())
    }
}

impl fmt::Debug for SharedOAuth1Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedOAuth1Store(..)")
    }
}

#[async_trait::async_trait]
impl OAuth1Store for SharedOAuth1Store {
    async fn create_consumer(&self, c: &ConsumerRecord) -> Result<(), StoreError> {
        self.0.create_consumer(c).await
    }
    async fn consumer(&self, key: &str) -> Result<Option<ConsumerRecord>, StoreError> {
        self.0.consumer(key).await
    }
    async fn insert_oauth1_token(&self, t: &OAuth1TokenRecord) -> Result<(), StoreError> {
        self.0.insert_oauth1_token(t).await
    }
    async fn oauth1_token(&self, token: &str) -> Result<Option<OAuth1TokenRecord>, StoreError> {
        self.0.oauth1_token(token).await
    }
    async fn authorize_request_token(
        &self,
        token: &str,
        user_id: i64,
        verifier_digest: &str,
    ) -> Result<bool, StoreError> {
        self.0
            .authorize_request_token(token, user_id, verifier_digest)
            .await
    }
    async fn delete_oauth1_token(&self, token: &str) -> Result<bool, StoreError> {
        self.0.delete_oauth1_token(token).await
    }
}

/// The OAuth 1.0a routes, to merge into the app.
pub(crate) fn routes<S>(
    oauth: OAuth1,
    users: S,
    shared: Arc<Shared<impl AppStore>>,
    session: Arc<dyn Scheme<AppUser>>,
    defaults: &Policy<AppUser>,
) -> Router
where
    S: UserStore<User = AppUser> + Clone,
{
    let scheme: Arc<dyn Scheme<AppUser>> = Arc::new(OAuth1Auth::new(oauth.clone(), users));
    let request_oauth = oauth.clone();
    let access_oauth = oauth.clone();
    let get_oauth = oauth.clone();
    let get_shared = shared.clone();
    let session_policy = defaults.clone().schemes(vec![session]).permission(AllowAny);
    Router::new()
        .route(
            "/oauth1/",
            app_views::protected(
                ViewInfo {
                    name: "OAuth1",
                    description: "OAuth 1.0a (RFC 5849) only.",
                },
                &defaults.clone().schemes(vec![scheme]),
            ),
        )
        .route(
            "/oauth1/request_token/",
            MethodRouter::new()
                .post(move |req: Request| {
                    let oauth = request_oauth.clone();
                    async move { token_endpoint(&oauth, req, true).await }
                })
                .get({
                    let oauth = oauth.clone();
                    move |req: Request| {
                        let oauth = oauth.clone();
                        async move { token_endpoint(&oauth, req, true).await }
                    }
                })
                .fallback(not_allowed_handler("GET, HEAD, POST")),
        )
        .route(
            "/oauth1/access_token/",
            MethodRouter::new()
                .post(move |req: Request| {
                    let oauth = access_oauth.clone();
                    async move { token_endpoint(&oauth, req, false).await }
                })
                .fallback(not_allowed_handler("POST")),
        )
        .route(
            "/oauth1/authorize/",
            MethodRouter::new()
                .get(move |id: Identity<AppUser>, req: Request| {
                    let oauth = get_oauth.clone();
                    let shared = get_shared.clone();
                    async move { consent_form(&oauth, &shared, id, req).await }
                })
                .post(move |id: Identity<AppUser>, req: Request| {
                    let oauth = oauth.clone();
                    async move { consent(&oauth, id, req).await }
                })
                .fallback(not_allowed_handler("GET, HEAD, POST"))
                .layer(session_policy.layer()),
        )
}

/// `/oauth1/request_token/` (`request`) and `/oauth1/access_token/`.
async fn token_endpoint(oauth: &OAuth1, req: Request, request: bool) -> Response {
    let (parts, body) = req.into_parts();
    let body = match read_body(Request::from_parts(parts.clone(), body)).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let head = RequestHead::from_parts(&parts);
    let issued = if request {
        oauth.request_token(&head, &body).await
    } else {
        oauth.access_token(&head, &body).await
    };
    match issued {
        Ok((token, secret)) => {
            let mut out = form_urlencoded::Serializer::new(String::new());
            out.append_pair("oauth_token", &token)
                .append_pair("oauth_token_secret", &secret);
            if request {
                out.append_pair("oauth_callback_confirmed", "true");
            }
            let mut res = Response::new(Body::from(out.finish()));
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => e.to_response(Some(&oauth.challenge())).map(Body::from),
    }
}

fn login_redirect(req: &Request) -> Response {
    let here = match req.uri().query() {
        Some(q) => format!("{}?{q}", req.uri().path()),
        None => req.uri().path().to_owned(),
    };
    let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(&format!("/auth/login/?next={next}")) {
        res.headers_mut().insert(LOCATION, v);
    }
    res
}

fn html(body: String) -> Response {
    let mut res = Response::new(Body::from(body));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("max-age=0, no-cache, no-store, must-revalidate, private"),
    );
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    res
}

const INVALID_REQUEST_TOKEN: &str = "Invalid or expired request token.";

/// GET `/oauth1/authorize/?oauth_token=...`: the consent form.
async fn consent_form<S: AppStore>(
    oauth: &OAuth1,
    shared: &Shared<S>,
    id: Identity<AppUser>,
    req: Request,
) -> Response {
    let Identity::User { user, .. } = id else {
        return login_redirect(&req);
    };
    let token = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "oauth_token")
            .map(|(_, v)| v.into_owned())
    });
    let Some(token) = token else {
        return detail(StatusCode::BAD_REQUEST, "Missing oauth_token.");
    };
    let consumer = match oauth.pending_request(&token).await {
        Ok(Some((_, c))) => c,
        Ok(None) => return detail(StatusCode::BAD_REQUEST, INVALID_REQUEST_TOKEN),
        Err(e) => return store_error(e),
    };
    let secret = shared
        .csrf
        .secret_from(&RequestHead::from_request(&req))
        .unwrap_or_else(csrf::new_secret);
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="robots" content="noindex"><title>Authorize {name} | portcullis</title></head>
<body>
<main>
<h1>Authorize {name}?</h1>
<p>{name} asks to act on your behalf, {user}.</p>
<form method="post" action="/oauth1/authorize/">
<input type="hidden" name="csrfmiddlewaretoken" value="{csrf}">
<input type="hidden" name="oauth_token" value="{token}">
<button type="submit" name="allow" value="Authorize">Authorize</button>
<button type="submit" name="allow" value="Deny">Deny</button>
</form>
</main>
</body>
</html>
"#,
        name = escape_html(&consumer.name),
        user = escape_html(&user.username),
        csrf = escape_html(&csrf::mask(&secret)),
        token = escape_html(&token),
    );
    let mut res = html(page);
    res.headers_mut()
        .append(SET_COOKIE, csrf::cookie(&shared.csrf, &secret));
    res
}

/// POST `/oauth1/authorize/`: the session scheme has checked CSRF for the
/// logged-in user; `allow=Authorize` authorizes the request token.
async fn consent(oauth: &OAuth1, id: Identity<AppUser>, req: Request) -> Response {
    let Identity::User { user, .. } = id else {
        return login_redirect(&req);
    };
    let headers = req.headers().clone();
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let fields = match forms::form(&headers, body).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let Some(token) = forms::text(&fields, "oauth_token") else {
        return detail(StatusCode::BAD_REQUEST, "Missing oauth_token.");
    };
    if forms::text(&fields, "allow") != Some("Authorize") {
        return detail(StatusCode::FORBIDDEN, "Authorization denied.");
    }
    let (verifier, callback) = match oauth.authorize(token, user.id).await {
        Ok(Some(v)) => v,
        Ok(None) => return detail(StatusCode::BAD_REQUEST, INVALID_REQUEST_TOKEN),
        Err(e) => return store_error(e),
    };
    if callback == "oob" {
        return html(format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Verifier | portcullis</title></head>\n\
             <body><main><h1>Authorized</h1><p>Enter this verifier in the application:</p>\n\
             <p><code id=\"oauth_verifier\">{}</code></p></main></body></html>\n",
            escape_html(&verifier)
        ));
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("oauth_token", token)
        .append_pair("oauth_verifier", &verifier);
    let sep = if callback.contains('?') { '&' } else { '?' };
    let location = format!("{callback}{sep}{}", query.finish());
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            res.headers_mut().insert(LOCATION, v);
            res
        }
        Err(_) => detail(StatusCode::BAD_REQUEST, "The callback is not a valid URI."),
    }
}
