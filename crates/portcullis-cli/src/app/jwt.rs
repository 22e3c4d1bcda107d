//! The JWT routes: djangorestframework-simplejwt's contract
//! (REFERENCE-APP.md, "JWT") over [`portcullis::jwt`].
//!
//! | route | does |
//! |---|---|
//! | `/jwt/` | protected route, [`JwtAuth`] only (`Authorization: Bearer <access>`) |
//! | `/api/token/` | POST `username`, `password` → `{"access", "refresh"}` |
//! | `/api/token/refresh/` | POST `refresh` → `{"access"}` (and `"refresh"` with rotation) |
//! | `/api/token/verify/` | POST `token` → `{}` |
//! | `/api/token/blacklist/` | POST `refresh` → `{}`; that token is refused afterwards |
//! | `/.well-known/jwks.json` | the public verification keys (`{"keys": []}` with HS256) |
//!
//! Bodies are parsed as on `/auth-token/` (JSON, URL-encoded or multipart;
//! malformed is `400`, another type `415`). Errors are simplejwt's bodies
//! ([`JwtViewError`]), every `401` with `WWW-Authenticate: Bearer
//! realm="api"`. `/api/token/` checks the password through the app's
//! [`PasswordBackend`], so its failures count towards the login lockout and
//! a locked-out login is `429` with `Retry-After`, as on every other login
//! path (simplejwt does not throttle; portcullis does).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{HeaderValue, CACHE_CONTROL};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use axum::Router;
use portcullis::backend::LoginOutcome;
use portcullis::jwt::{
    views, Jwt, JwtAuth, JwtBlacklist, JwtSettings, JwtViewError, MemoryBlacklist,
};
use portcullis::scheme::{RequestHead, Scheme};
use portcullis::{PasswordBackend, Policy, SecretKey};
use serde_json::{json, Map, Value};

use super::respond::{json, not_allowed_handler, read_body};
use super::views::{self as app_views, ViewInfo};
use super::{auth_token, forms, store_error, AppStore, AppUser};

/// Where the app keeps outstanding and blacklisted refresh tokens
/// ([`AppConfig::jwt_blacklist`](super::AppConfig::jwt_blacklist)): any
/// [`JwtBlacklist`], e.g. a `portcullis_store::Store`.
#[derive(Clone)]
pub struct SharedBlacklist(Arc<dyn JwtBlacklist>);

impl SharedBlacklist {
    /// Wraps a blacklist.
    pub fn new(blacklist: impl JwtBlacklist) -> Self {
        SharedBlacklist(Arc::new(blacklist))
    }
}

impl fmt::Debug for SharedBlacklist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedBlacklist(..)")
    }
}

/// The token service the routes share, from the settings and the secret.
///
/// # Panics
///
/// When the JWT settings are unusable (see [`Jwt::new`]); `serve` checks
/// them first, so this only fires for embedders.
pub(crate) fn service(
    settings: &JwtSettings,
    secret: &SecretKey,
    blacklist: Option<&SharedBlacklist>,
) -> Jwt {
    let jwt =
        Jwt::new(settings.clone(), secret).unwrap_or_else(|e| panic!("unusable JWT settings: {e}"));
    match blacklist {
        Some(b) => jwt.with_blacklist(b.0.clone()),
        None => jwt.with_blacklist(MemoryBlacklist::new()),
    }
}

/// The JWT routes, to merge into the app.
pub(crate) fn routes<S>(
    jwt: Jwt,
    store: S,
    backend: PasswordBackend<S>,
    defaults: &Policy<AppUser>,
    cache_ttl: Duration,
) -> Router
where
    S: AppStore,
{
    let scheme: Arc<dyn Scheme<AppUser>> =
        Arc::new(JwtAuth::new(jwt.clone(), store.clone()).with_verified_cache(cache_ttl));
    let obtain_jwt = jwt.clone();
    let refresh_jwt = jwt.clone();
    let verify_jwt = jwt.clone();
    let blacklist_jwt = jwt.clone();
    Router::new()
        .route(
            "/jwt/",
            app_views::protected(
                ViewInfo {
                    name: "JWT",
                    description:
                        "JSON Web Token authentication only (simplejwt's JWTAuthentication).",
                },
                &defaults.clone().schemes(vec![scheme]),
            ),
        )
        .route(
            "/api/token/",
            post_route(
                ViewInfo {
                    name: "Token Obtain Pair",
                    description: "POST a username and password for an access and a refresh token.",
                },
                move |req| {
                    let jwt = obtain_jwt.clone();
                    let backend = backend.clone();
                    async move { obtain(&jwt, &backend, req).await }
                },
            ),
        )
        .route(
            "/api/token/refresh/",
            post_route(
                ViewInfo {
                    name: "Token Refresh",
                    description: "POST a refresh token for a new access token.",
                },
                move |req| {
                    let jwt = refresh_jwt.clone();
                    let store = store.clone();
                    async move {
                        with_field(jwt, req, "refresh", |jwt, token| async move {
                            views::refresh(&jwt, &store, &token)
                                .await
                                .map(|out| out.to_json())
                        })
                        .await
                    }
                },
            ),
        )
        .route(
            "/api/token/verify/",
            post_route(
                ViewInfo {
                    name: "Token Verify",
                    description: "POST a token to check that it is valid.",
                },
                move |req| {
                    let jwt = verify_jwt.clone();
                    async move {
                        with_field(jwt, req, "token", |jwt, token| async move {
                            views::verify(&jwt, &token).await.map(|()| json!({}))
                        })
                        .await
                    }
                },
            ),
        )
        .route(
            "/api/token/blacklist/",
            post_route(
                ViewInfo {
                    name: "Token Blacklist",
                    description: "POST a refresh token to refuse it from now on.",
                },
                move |req| {
                    let jwt = blacklist_jwt.clone();
                    async move {
                        with_field(jwt, req, "refresh", |jwt, token| async move {
                            views::blacklist(&jwt, &token).await.map(|()| json!({}))
                        })
                        .await
                    }
                },
            ),
        )
        .route(
            "/.well-known/jwks.json",
            get(move || std::future::ready(json(StatusCode::OK, jwt.jwks())))
                .fallback(not_allowed_handler("GET, HEAD")),
        )
}

/// A POST-only route with DRF's `OPTIONS` metadata; other methods `405`.
fn post_route<F, Fut>(info: ViewInfo, handler: F) -> MethodRouter
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    const ALLOW: &str = "POST, OPTIONS";
    MethodRouter::new()
        .post(move |req: Request| handler(req))
        .options(move || std::future::ready(app_views::metadata(info, ALLOW)))
        .fallback(not_allowed_handler(ALLOW))
}

/// A token response: JSON, never cached.
fn tokens(body: Value) -> Response {
    let mut res = json(StatusCode::OK, body);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The request body as DRF's `request.data`, or the error response.
async fn data(req: Request) -> Result<Value, Response> {
    let headers = req.headers().clone();
    let body = read_body(req).await?;
    forms::data(&headers, body).await
}

/// `/api/token/`: simplejwt's `TokenObtainPairView`.
async fn obtain<S>(jwt: &Jwt, backend: &PasswordBackend<S>, req: Request) -> Response
where
    S: AppStore,
{
    let client = backend
        .lockout()
        .and_then(|l| l.client_addr(&RequestHead::from_request(&req)));
    let data = match data(req).await {
        Ok(d) => d,
        Err(res) => return res,
    };
    let (username, password) = match auth_token::validate(&data) {
        Ok(creds) => creds,
        Err(errors) => return json(StatusCode::BAD_REQUEST, errors),
    };
    let user = match backend
        .authenticate_from(&username, &password, client)
        .await
    {
        Ok(LoginOutcome::Authenticated(user)) => user,
        Ok(LoginOutcome::LockedOut { wait }) => {
            return portcullis::throttle::throttled(wait)
                .to_response(None)
                .map(Body::from)
        }
        Ok(_) => return JwtViewError::NoActiveAccount.into_axum_response(jwt),
        Err(e) => return store_error(e),
    };
    match jwt.for_user(&user).await {
        Ok(pair) => {
            if jwt.settings().update_last_login {
                if let Err(e) = backend
                    .store()
                    .touch_last_login(user.id, chrono::Utc::now())
                    .await
                {
                    return store_error(e);
                }
            }
            tokens(pair.to_json())
        }
        Err(e) => JwtViewError::from(e).into_axum_response(jwt),
    }
}

/// Reads one required string field (simplejwt's `CharField`), then runs
/// the view with it.
async fn with_field<F, Fut>(jwt: Jwt, req: Request, name: &'static str, view: F) -> Response
where
    F: FnOnce(Jwt, String) -> Fut,
    Fut: std::future::Future<Output = Result<Value, JwtViewError>>,
{
    let data = match data(req).await {
        Ok(d) => d,
        Err(res) => return res,
    };
    let value = match field(&data, name) {
        Ok(v) => v,
        Err(FieldError::View(e)) => return e.into_axum_response(&jwt),
        Err(FieldError::Body(body)) => return json(StatusCode::BAD_REQUEST, body),
    };
    match view(jwt.clone(), value).await {
        Ok(body) => tokens(body),
        Err(e) => e.into_axum_response(&jwt),
    }
}

enum FieldError {
    View(JwtViewError),
    Body(Value),
}

/// DRF's `CharField` for one field of `request.data`.
fn field(data: &Value, name: &'static str) -> Result<String, FieldError> {
    let fields: &Map<String, Value> = match data {
        Value::Object(m) => m,
        _ => {
            return Err(FieldError::Body(json!({
                "non_field_errors": ["Invalid data. Expected a dictionary."]
            })))
        }
    };
    let one = |message: &str| FieldError::Body(json!({ name: [message] }));
    match fields.get(name) {
        None => Err(FieldError::View(JwtViewError::MissingField(name))),
        Some(Value::Null) => Err(one("This field may not be null.")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(FieldError::View(JwtViewError::BlankField(name)))
        }
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        Some(_) => Err(one("Not a valid string.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(e: FieldError) -> Value {
        match e {
            FieldError::View(v) => v.body(),
            FieldError::Body(b) => b,
        }
    }

    #[test]
    fn fields_follow_drf_char_field() {
        assert_eq!(
            field(&json!({"refresh": " t "}), "refresh").ok().unwrap(),
            "t"
        );
        let e = |d: Value| body(field(&d, "refresh").err().unwrap());
        assert_eq!(
            e(json!({})),
            json!({"refresh": ["This field is required."]})
        );
        assert_eq!(
            e(json!({"refresh": ""})),
            json!({"refresh": ["This field may not be blank."]})
        );
        assert_eq!(
            e(json!({"refresh": null})),
            json!({"refresh": ["This field may not be null."]})
        );
        assert_eq!(
            e(json!({"refresh": 1})),
            json!({"refresh": ["Not a valid string."]})
        );
        assert!(e(json!([1])).get("non_field_errors").is_some());
    }
}
