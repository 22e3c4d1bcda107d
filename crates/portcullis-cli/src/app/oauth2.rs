//! The OAuth2 routes: django-oauth-toolkit's endpoints (REFERENCE-APP.md,
//! "OAuth2") over [`portcullis::oauth2`].
//!
//! | route | does |
//! |---|---|
//! | `/oauth2/` | protected route, [`OAuth2Auth`] only, IsAuthenticated (client-credentials tokens: `403`) |
//! | `/oauth2/scoped/` | Bearer, [`TokenHasScope`] `write`; without it `403` with `error="insufficient_scope"` |
//! | `/oauth2/client/` | Bearer, client-credentials tokens welcome: `{"client_id", "scope"}` |
//! | `/oauth2/token/`, `/oauth2/access_token/` | the token endpoint (RFC 6749 §3.2) |
//! | `/oauth2/authorize/` | the consent page (session login, CSRF-checked) |
//! | `/oauth2/introspect/` | RFC 7662, confidential clients |
//! | `/oauth2/revoke/` | RFC 7009 |
//! | `/.well-known/oauth-authorization-server` | RFC 8414 metadata |
//!
//! Token, introspection and revocation requests are
//! `application/x-www-form-urlencoded` (anything else is `400
//! invalid_request`); a parameter given twice is `invalid_request`, as RFC
//! 6749 §3.2 asks. Clients authenticate with HTTP Basic (the RFC's
//! form-encoded id and secret) or `client_id`/`client_secret` in the body,
//! never both. Errors are RFC 6749 §5.2's `{"error",
//! "error_description"}`; `401 invalid_client` carries `WWW-Authenticate:
//! Basic realm="api"`. The password grant goes through the app's
//! [`PasswordBackend`](portcullis::PasswordBackend), so its failures count towards the login lockout and
//! a locked-out login is `429` with `Retry-After`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    LOCATION, SET_COOKIE, VARY, WWW_AUTHENTICATE, X_FRAME_OPTIONS,
};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::MethodRouter;
use axum::Router;
use portcullis::backend::LoginOutcome;
use portcullis::cache::InvalidationBus;
use portcullis::oauth2::{
    AuthorizationRequest, AuthorizeError, CachedOAuth2Store, Client, GrantType, MemoryOAuth2Store,
    OAuth2, OAuth2Auth, OAuth2Error, OAuth2Settings, OAuth2Store, OAuth2UserStore, TokenHasScope,
    TokenKind,
};
use portcullis::scheme::csrf;
use portcullis::scheme::{RequestHead, Scheme};
use portcullis::store::SharedUsers;
use portcullis::{AuthError, AuthUser, Identity, IsAuthenticated, Policy, SecretKey, User};
use serde_json::{json, Value};

use super::respond::{escape_html, json, not_allowed_handler, read_body, PROTECTED_METHODS};
use super::views::{self as app_views, ViewInfo};
use super::{client_addr, forms, locked_out, store_error, AppStore, AppUser, Shared};

/// Where the app keeps OAuth2 clients and tokens
/// ([`AppConfig::oauth2_store`](super::AppConfig::oauth2_store)): any
/// [`OAuth2Store`], e.g. a `portcullis_store::Store`.
#[derive(Clone)]
pub struct SharedOAuth2Store {
    store: Arc<dyn OAuth2Store>,
    /// The same store, able to read a token with its user in one query.
    joined: Option<Arc<dyn OAuth2UserStore<User = AppUser>>>,
}

impl SharedOAuth2Store {
    /// Wraps a store.
    pub fn new(store: impl OAuth2Store) -> Self {
        SharedOAuth2Store {
            store: Arc::new(store),
            joined: None,
        }
    }

    /// Wraps a store that also keeps the app's users: with the caches off,
    /// OAuth2 Bearer reads a token and its user in one query
    /// ([`OAuth2Auth::with_joined_reads`]). `store` must be the database
    /// of the store given to [`router`](super::router) (as in `serve`),
    /// or the users would be read from the wrong place.
    pub fn with_users<S>(store: S) -> Self
    where
        S: OAuth2Store + OAuth2UserStore<User = User> + Clone,
    {
        SharedOAuth2Store {
            store: Arc::new(store.clone()),
            joined: Some(Arc::new(SharedUsers::new(store))),
        }
    }

    /// The joined reader, if the store keeps the users too.
    pub(crate) fn joined(&self) -> Option<Arc<dyn OAuth2UserStore<User = AppUser>>> {
        self.joined.clone()
    }
}

impl fmt::Debug for SharedOAuth2Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedOAuth2Store(..)")
    }
}

/// The server the routes share; access tokens read from the store are
/// remembered for `cache_ttl` (zero: not at all), and revocations go out
/// on `bus`, if any.
pub(crate) fn service(
    settings: &OAuth2Settings,
    secret: &SecretKey,
    store: Option<&SharedOAuth2Store>,
    cache_ttl: Duration,
    bus: Option<&InvalidationBus>,
) -> OAuth2 {
    let store: Arc<dyn OAuth2Store> = match store {
        Some(s) => s.store.clone(),
        None => Arc::new(MemoryOAuth2Store::new()),
    };
    match bus {
        // With a bus, revocations are published even when nothing is
        // cached here: other servers may cache.
        Some(bus) => OAuth2::new(
            CachedOAuth2Store::new(store, cache_ttl).with_bus(bus),
            secret,
            settings.clone(),
        ),
        None if cache_ttl.is_zero() => OAuth2::new(store, secret, settings.clone()),
        None => OAuth2::new(
            CachedOAuth2Store::new(store, cache_ttl),
            secret,
            settings.clone(),
        ),
    }
}

/// The OAuth2 routes, to merge into the app.
pub(crate) fn routes<S>(
    oauth2: OAuth2,
    store: S,
    shared: Arc<Shared<S>>,
    defaults: &Policy<AppUser>,
    session: Arc<dyn Scheme<AppUser>>,
    joined: Option<Arc<dyn OAuth2UserStore<User = AppUser>>>,
) -> Router
where
    S: AppStore,
{
    let mut bearer = OAuth2Auth::new(oauth2.clone(), store.clone());
    if let Some(joined) = joined {
        // Used only while the tokens are not cached (caches off).
        bearer = bearer.with_joined_reads(joined);
    }
    let scheme: Arc<dyn Scheme<AppUser>> = Arc::new(bearer.clone());
    let state = Arc::new(State {
        oauth2,
        bearer,
        store,
        shared,
    });
    let token = {
        let state = state.clone();
        post_only(move |req| {
            let state = state.clone();
            async move { token_endpoint(&state, req).await }
        })
    };
    let introspect = {
        let state = state.clone();
        post_only(move |req| {
            let state = state.clone();
            async move { introspect(&state, req).await }
        })
    };
    let revoke = {
        let state = state.clone();
        post_only(move |req| {
            let state = state.clone();
            async move { revoke(&state, req).await }
        })
    };
    let metadata = {
        let state = state.clone();
        MethodRouter::new()
            .get(move |req: Request| {
                let state = state.clone();
                async move { metadata(&state, &req) }
            })
            .fallback(not_allowed_handler("GET, HEAD"))
    };
    let authorize = {
        let get_state = state.clone();
        let post_state = state.clone();
        MethodRouter::new()
            .get(move |id: Identity<AppUser>, req: Request| {
                let state = get_state.clone();
                async move { authorize_get(&state, id, req).await }
            })
            .post(move |id: Identity<AppUser>, req: Request| {
                let state = post_state.clone();
                async move { authorize_post(&state, id, req).await }
            })
            .fallback(not_allowed_handler("GET, HEAD, POST"))
            .layer(
                defaults
                    .clone()
                    .schemes(vec![session])
                    .permission(portcullis::AllowAny)
                    .layer(),
            )
    };
    Router::new()
        .route(
            "/oauth2/",
            app_views::protected(
                ViewInfo {
                    name: "OAuth2",
                    description: "OAuth2 Bearer tokens only; the token must act for a user.",
                },
                &defaults
                    .clone()
                    .schemes(vec![scheme])
                    .permission(IsAuthenticated),
            ),
        )
        .route(
            "/oauth2/scoped/",
            bearer_route(
                state.clone(),
                ViewInfo {
                    name: "OAuth2 Scoped",
                    description: "OAuth2 Bearer tokens with the `write` scope.",
                },
                Kind::Scoped,
            ),
        )
        .route(
            "/oauth2/client/",
            bearer_route(
                state,
                ViewInfo {
                    name: "OAuth2 Client",
                    description: "OAuth2 Bearer tokens, client-credentials tokens included.",
                },
                Kind::Client,
            ),
        )
        .route("/oauth2/token/", token.clone())
        .route("/oauth2/access_token/", token)
        .route("/oauth2/authorize/", authorize)
        .route("/oauth2/introspect/", introspect)
        .route("/oauth2/revoke/", revoke)
        .route("/.well-known/oauth-authorization-server", metadata)
}

struct State<S> {
    oauth2: OAuth2,
    bearer: OAuth2Auth<S>,
    store: S,
    shared: Arc<Shared<S>>,
}

fn post_only<F, Fut>(handler: F) -> MethodRouter
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    MethodRouter::new()
        .post(move |req: Request| handler(req))
        .fallback(not_allowed_handler("POST"))
}

fn oauth2_error(e: &OAuth2Error, realm: &str) -> Response {
    e.to_response(realm).map(Body::from)
}

/// A token response: JSON, never cached (RFC 6749 §5.1).
fn no_store(status: StatusCode, body: Value) -> Response {
    let mut res = json(status, body);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(
        HeaderName::from_static("pragma"),
        HeaderValue::from_static("no-cache"),
    );
    res
}

// ----- form parameters -----

/// The parameters of a form body, in order, duplicates kept.
struct Params(Vec<(String, String)>);

impl Params {
    /// One parameter; a parameter without a value counts as absent (RFC
    /// 6749 §3.1), one given twice is `invalid_request`.
    fn one(&self, name: &str) -> Result<Option<&str>, OAuth2Error> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(OAuth2Error::InvalidRequest(format!(
                "Duplicate {name} parameter."
            )));
        }
        Ok(first.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()))
    }

    fn required(&self, name: &str) -> Result<&str, OAuth2Error> {
        self.one(name)?
            .ok_or_else(|| OAuth2Error::InvalidRequest(format!("Missing {name} parameter.")))
    }
}

/// Reads an `application/x-www-form-urlencoded` body.
async fn form_params(req: Request) -> Result<(axum::http::HeaderMap, Params), Response> {
    let headers = req.headers().clone();
    if forms::kind(&headers) != forms::Kind::UrlEncoded {
        return Err(oauth2_error(
            &OAuth2Error::InvalidRequest(
                "The request body must be application/x-www-form-urlencoded.".into(),
            ),
            "api",
        ));
    }
    let body = read_body(req).await?;
    let pairs = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok((headers, Params(pairs)))
}

/// The client's credentials (RFC 6749 §2.3.1): HTTP Basic with the
/// form-encoded id and secret, or `client_id`/`client_secret` in the body;
/// not both.
fn client_credentials(
    headers: &axum::http::HeaderMap,
    params: &Params,
) -> Result<(String, Option<String>), OAuth2Error> {
    if portcullis::scheme::has_duplicate_authorization(headers) {
        return Err(OAuth2Error::InvalidRequest(
            portcullis::scheme::DUPLICATE_AUTHORIZATION.into(),
        ));
    }
    let body_id = params.one("client_id")?;
    let body_secret = params.one("client_secret")?;
    let words = headers
        .get(AUTHORIZATION)
        .map(|v| portcullis::scheme::split_ascii_whitespace(v.as_bytes()))
        .unwrap_or_default();
    let basic = portcullis::scheme::basic::parse(&words).map_err(|_| OAuth2Error::InvalidClient)?;
    if let Some((id, secret)) = basic {
        if body_secret.is_some() {
            return Err(OAuth2Error::InvalidRequest(
                "Use one client authentication method.".into(),
            ));
        }
        // RFC 6749 §2.3.1: both are form-encoded before Basic encodes them.
        let unescape = |s: &str| -> String {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let (id, secret) = (unescape(&id), unescape(&secret));
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuth2Error::InvalidClient);
        }
        return Ok((id, Some(secret).filter(|s| !s.is_empty())));
    }
    match body_id {
        Some(id) => Ok((id.to_owned(), body_secret.map(str::to_owned))),
        None => Err(OAuth2Error::InvalidClient),
    }
}

async fn authenticate_client<S>(
    state: &State<S>,
    headers: &axum::http::HeaderMap,
    params: &Params,
) -> Result<Client, OAuth2Error> {
    let (id, secret) = client_credentials(headers, params)?;
    state
        .oauth2
        .authenticate_client(&id, secret.as_deref())
        .await
}

// ----- the token endpoint -----

async fn token_endpoint<S>(state: &State<S>, req: Request) -> Response
where
    S: AppStore,
{
    let realm = state.oauth2.settings().realm.clone();
    let addr = client_addr(&state.shared, &req);
    let (headers, params) = match form_params(req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    match grant(state, &headers, &params, addr).await {
        Ok(Ok(body)) => no_store(StatusCode::OK, body),
        Ok(Err(res)) => res,
        Err(e) => oauth2_error(&e, &realm),
    }
}

/// Runs the grant: the token JSON, a finished response (the lockout's
/// `429`), or an OAuth2 error.
async fn grant<S>(
    state: &State<S>,
    headers: &axum::http::HeaderMap,
    params: &Params,
    addr: Option<std::net::IpAddr>,
) -> Result<Result<Value, Response>, OAuth2Error>
where
    S: AppStore,
{
    let grant_type = params.required("grant_type")?;
    let client = authenticate_client(state, headers, params).await?;
    let o = &state.oauth2;
    let scope = params.one("scope")?;
    let issued = match GrantType::parse(grant_type).filter(|g| g.as_str() == grant_type) {
        Some(GrantType::AuthorizationCode) => {
            let code = params.required("code")?;
            o.exchange_code(
                &client,
                code,
                params.one("redirect_uri")?,
                params.one("code_verifier")?,
            )
            .await?
        }
        Some(GrantType::ClientCredentials) => o.client_credentials(&client, scope).await?,
        Some(GrantType::RefreshToken) => {
            let refresh = params.required("refresh_token")?;
            let (issued, user_id) = o.refresh(&client, refresh, scope).await?;
            if let Some(id) = user_id {
                // A user deactivated or deleted since gets nothing more.
                let active = state
                    .store
                    .user_by_id(id)
                    .await?
                    .is_some_and(|u| u.is_active());
                if !active {
                    o.revoke(&client, &issued.access_token).await?;
                    if let Some(r) = &issued.refresh_token {
                        o.revoke(&client, r).await?;
                    }
                    return Err(OAuth2Error::InvalidGrant("Invalid refresh token.".into()));
                }
            }
            issued
        }
        Some(GrantType::Password) if o.settings().password_grant => {
            if !client.allows(GrantType::Password) {
                return Err(OAuth2Error::UnauthorizedClient);
            }
            let username = params.required("username")?;
            let password = params.required("password")?;
            let scopes = o.resolve_scopes(scope, &client.scopes)?;
            let user = match state
                .shared
                .backend
                .authenticate_from(username, password, addr)
                .await?
            {
                LoginOutcome::Authenticated(user) => user,
                LoginOutcome::LockedOut { wait } => return Ok(Err(locked_out(wait))),
                _ => {
                    return Err(OAuth2Error::InvalidGrant(
                        "Invalid credentials given.".into(),
                    ))
                }
            };
            o.issue(&client, Some(user.id), &scopes, None).await?
        }
        _ => return Err(OAuth2Error::UnsupportedGrantType),
    };
    Ok(Ok(issued.to_json()))
}

// ----- introspection and revocation -----

async fn introspect<S>(state: &State<S>, req: Request) -> Response
where
    S: AppStore,
{
    let realm = state.oauth2.settings().realm.clone();
    let (headers, params) = match form_params(req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let result: Result<Value, OAuth2Error> = async {
        let client = authenticate_client(state, &headers, &params).await?;
        if client.public {
            // Introspection is for resource servers, which can keep a
            // secret.
            return Err(OAuth2Error::InvalidClient);
        }
        let token = params.required("token")?;
        params.one("token_type_hint")?;
        let Some(row) = state.oauth2.introspect(token).await? else {
            return Ok(json!({ "active": false }));
        };
        let mut body = json!({
            "active": true,
            "scope": row.scope(),
            "client_id": row.client_id,
            "token_type": if row.kind == TokenKind::Access { "Bearer" } else { "refresh_token" },
        });
        if let Some(exp) = row.expires_at {
            body["exp"] = json!(exp.timestamp());
        }
        if let Some(id) = row.user_id {
            match state.store.user_by_id(id).await? {
                Some(u) if u.is_active() => body["username"] = json!(u.username),
                _ => return Ok(json!({ "active": false })),
            }
        }
        Ok(body)
    }
    .await;
    match result {
        Ok(body) => no_store(StatusCode::OK, body),
        Err(e) => oauth2_error(&e, &realm),
    }
}

async fn revoke<S>(state: &State<S>, req: Request) -> Response {
    let realm = state.oauth2.settings().realm.clone();
    let (headers, params) = match form_params(req).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let result: Result<(), OAuth2Error> = async {
        let client = authenticate_client(state, &headers, &params).await?;
        let token = params.required("token")?;
        params.one("token_type_hint")?;
        state.oauth2.revoke(&client, token).await?;
        Ok(())
    }
    .await;
    match result {
        // RFC 7009 §2.2: 200 whether or not there was such a token.
        Ok(()) => no_store(StatusCode::OK, json!({})),
        Err(e) => oauth2_error(&e, &realm),
    }
}

// ----- metadata -----

fn metadata<S>(state: &State<S>, req: &Request) -> Response {
    let head = RequestHead::from_request(req);
    let host = csrf::request_host(&head).unwrap_or_else(|| "localhost".into());
    let scheme = if state.shared.csrf.is_secure(&head) {
        "https"
    } else {
        "http"
    };
    let issuer = format!("{scheme}://{host}");
    let mut grants = vec!["authorization_code", "client_credentials", "refresh_token"];
    if state.oauth2.settings().password_grant {
        grants.push("password");
    }
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    json(
        StatusCode::OK,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth2/authorize/"),
            "token_endpoint": format!("{issuer}/oauth2/token/"),
            "introspection_endpoint": format!("{issuer}/oauth2/introspect/"),
            "revocation_endpoint": format!("{issuer}/oauth2/revoke/"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": grants,
            "scopes_supported": ["read", "write"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "code_challenge_methods_supported": ["S256", "plain"],
        }),
    )
}

// ----- the Bearer routes that take client tokens -----

#[derive(Clone, Copy)]
enum Kind {
    Scoped,
    Client,
}

fn bearer_route<S>(state: Arc<State<S>>, info: ViewInfo, kind: Kind) -> MethodRouter
where
    S: AppStore,
{
    let handler = move |req: Request| {
        let state = state.clone();
        async move { bearer_view(&state, info, kind, req).await }
    };
    MethodRouter::new()
        .get(handler.clone())
        .head(handler.clone())
        .post(handler.clone())
        .put(handler.clone())
        .patch(handler.clone())
        .delete(handler.clone())
        .options(handler)
        .fallback(not_allowed_handler(PROTECTED_METHODS))
}

async fn bearer_view<S>(state: &State<S>, info: ViewInfo, kind: Kind, req: Request) -> Response
where
    S: AppStore,
{
    let challenge = state.bearer.challenge();
    let head = RequestHead::from_request(&req);
    let found = match state.bearer.token_for(&head).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return AuthError::NotAuthenticated
                .to_response(challenge.as_ref())
                .map(Body::from)
        }
        Err(e) => return e.to_response(challenge.as_ref()).map(Body::from),
    };
    if let Kind::Scoped = kind {
        let need = TokenHasScope::new(["write"]);
        if !need.allows(&found.token) {
            let mut res = json(
                StatusCode::FORBIDDEN,
                json!({ "detail": "You do not have the required scope." }),
            );
            let c = format!(
                "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{}\"",
                state.oauth2.settings().realm,
                need.required().join(" ")
            );
            if let Ok(v) = HeaderValue::from_str(&c) {
                res.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
            return res;
        }
    }
    if req.method() == Method::OPTIONS {
        return app_views::metadata(info, PROTECTED_METHODS);
    }
    match kind {
        Kind::Scoped => json(
            StatusCode::OK,
            json!({
                "user": found.user.as_ref().map(|u| u.username.clone()),
                "auth": found.description(),
            }),
        ),
        Kind::Client => json(
            StatusCode::OK,
            json!({
                "client_id": found.token.client_id,
                "scope": found.token.scope(),
            }),
        ),
    }
}

// ----- the authorization endpoint -----

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn redirect(location: &str) -> Response {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            res.headers_mut().insert(LOCATION, v);
        }
        Err(_) => {
            return json(
                StatusCode::BAD_REQUEST,
                json!({ "error": "invalid_request", "error_description": "Unusable redirect URI." }),
            )
        }
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Not logged in: to the login page, coming back here afterwards.
fn to_login(req: &Request) -> Response {
    let here = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/oauth2/authorize/".into());
    let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    redirect(&format!("/auth/login/?next={next}"))
}

fn authorize_error(e: AuthorizeError, realm: &str) -> Response {
    match e {
        AuthorizeError::Fatal(err) => {
            // Never redirect to an unverified URI: show the error.
            let mut res = oauth2_error(&err, realm);
            if err.status() == StatusCode::UNAUTHORIZED {
                *res.status_mut() = StatusCode::BAD_REQUEST;
                res.headers_mut().remove(WWW_AUTHENTICATE);
            }
            res
        }
        AuthorizeError::Store(e) => store_error(e),
        other => match other.location() {
            Some(loc) => redirect(&loc),
            None => oauth2_error(&OAuth2Error::InvalidRequest("Bad request.".into()), realm),
        },
    }
}

async fn authorize_get<S>(state: &State<S>, id: Identity<AppUser>, req: Request) -> Response
where
    S: AppStore,
{
    let Some(user) = id.user().cloned() else {
        return to_login(&req);
    };
    let realm = state.oauth2.settings().realm.clone();
    let request = match state
        .oauth2
        .validate_authorization(&query_pairs(&req))
        .await
    {
        Ok(r) => r,
        Err(e) => return authorize_error(e, &realm),
    };
    if request.client.skip_authorization {
        return issue(state, &request, &user).await;
    }
    let secret = state
        .shared
        .csrf
        .secret_from(&RequestHead::from_request(&req))
        .unwrap_or_else(csrf::new_secret);
    consent_page(state, &request, &user, &secret)
}

async fn authorize_post<S>(state: &State<S>, id: Identity<AppUser>, req: Request) -> Response
where
    S: AppStore,
{
    let Some(user) = id.user().cloned() else {
        return to_login(&req);
    };
    let realm = state.oauth2.settings().realm.clone();
    let headers = req.headers().clone();
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let fields = match forms::form(&headers, body).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    // The session scheme has checked the CSRF token of this logged-in
    // user's POST before we got here.
    let names = [
        "client_id",
        "redirect_uri",
        "response_type",
        "state",
        "scope",
        "code_challenge",
        "code_challenge_method",
    ];
    let pairs: Vec<(String, String)> = names
        .iter()
        .filter_map(|n| forms::text(&fields, n).map(|v| ((*n).to_owned(), v.to_owned())))
        .collect();
    let request = match state.oauth2.validate_authorization(&pairs).await {
        Ok(r) => r,
        Err(e) => return authorize_error(e, &realm),
    };
    if forms::text(&fields, "allow") != Some("Authorize") {
        let denied = AuthorizeError::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            error: OAuth2Error::AccessDenied,
            state: request.state.clone(),
        };
        return authorize_error(denied, &realm);
    }
    issue(state, &request, &user).await
}

async fn issue<S>(state: &State<S>, request: &AuthorizationRequest, user: &User) -> Response {
    match state.oauth2.issue_code(request, user.id).await {
        Ok(location) => redirect(&location),
        Err(e) => oauth2_error(&e, &state.oauth2.settings().realm),
    }
}

fn consent_page<S>(
    state: &State<S>,
    request: &AuthorizationRequest,
    user: &User,
    secret: &str,
) -> Response {
    // Every field is in the form, empty when the request had none, as in
    // django-oauth-toolkit's form.
    let hidden = |name: &str, value: Option<&str>| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
            escape_html(value.unwrap_or(""))
        )
    };
    let scope = request.scopes.join(" ");
    let scopes: String = request
        .scopes
        .iter()
        .map(|s| format!("<li>{}</li>", escape_html(s)))
        .collect();
    let fields = [
        hidden("client_id", Some(&request.client.client_id)),
        hidden("redirect_uri", Some(&request.redirect_uri)),
        hidden("response_type", Some("code")),
        hidden("state", request.state.as_deref()),
        hidden("scope", Some(&scope)),
        hidden("code_challenge", request.code_challenge.as_deref()),
        hidden(
            "code_challenge_method",
            request.code_challenge_method.as_deref(),
        ),
        hidden("csrfmiddlewaretoken", Some(&csrf::mask(secret))),
    ]
    .concat();
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Authorize {name} | portcullis</title>
<style>
body {{ margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
       background: #f4f5f7; color: #1f2933; font-family: system-ui, sans-serif; }}
main {{ background: #fff; max-width: 26rem; padding: 2rem; border-radius: 8px;
       box-shadow: 0 2px 14px rgba(15, 23, 42, .10); }}
button {{ margin: 1rem .5rem 0 0; padding: .6rem 1.2rem; border: 0; border-radius: 4px;
       font-size: 1rem; cursor: pointer; }}
button[value=Authorize] {{ background: #264b5d; color: #fff; }}
</style>
</head>
<body>
<main>
<h1>Authorize {name}?</h1>
<p>Signed in as <strong>{user}</strong>. The application asks for:</p>
<ul>{scopes}</ul>
<form method="post" action="/oauth2/authorize/">
{fields}<button type="submit" name="allow" value="Authorize">Authorize</button>
<button type="submit" name="cancel" value="Cancel">Cancel</button>
</form>
</main>
</body>
</html>
"#,
        name = escape_html(&request.client.name),
        user = escape_html(&user.username),
    );
    let mut res = Response::new(Body::from(html));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("max-age=0, no-cache, no-store, must-revalidate, private"),
    );
    h.insert(VARY, HeaderValue::from_static("Cookie"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.append(SET_COOKIE, csrf::cookie(&state.shared.csrf, secret));
    res
}
