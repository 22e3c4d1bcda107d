//! The reference app: every authentication scheme portcullis ships, each on
//! its own route, answering as Django REST framework does
//! (REFERENCE-APP.md, "HTTP routes").
//!
//! | route | schemes, in order | permission |
//! |---|---|---|
//! | `/basic/` | Basic (`WWW-Authenticate: Basic realm="api"`) | IsAuthenticated |
//! | `/token/` | Token, keyword `Token` | IsAuthenticated |
//! | `/customkeywordtoken/` | Token, keyword `Bearer` (same tokens) | IsAuthenticated |
//! | `/session/` | Session, CSRF on unsafe methods | IsAuthenticated |
//! | `/remote-user/` | RemoteUser (`Remote-User` header) | IsAuthenticated |
//! | `/api/example/` | the defaults: Session, Basic | IsAuthenticated |
//! | `/admin-only/` | Session, Basic, Token | IsAdminUser |
//! | `/api/whoami/` | the defaults | AllowAny |
//! | `/throttled/` | the defaults | AllowAny; throttled anon `5/min` (by address), user `10/min` (by id) |
//! | `/throttled-scoped/` | the defaults | AllowAny; throttled by scope `burst` (`3/min`) |
//! | `/auth-token/` | none; POST only | DRF's `obtain_auth_token` |
//! | `/health/`, `/ready/` | none | liveness; store reachability |
//! | `/auth/login/`, `/auth/logout/` | none; session | Django's login and logout views |
//! | `/jwt/` | JWT (`Bearer`, simplejwt's `JWTAuthentication`) | IsAuthenticated |
//! | `/api/token/`, `/api/token/refresh/`, `/api/token/verify/`, `/api/token/blacklist/` | none; POST only | simplejwt's token views ([`jwt`]) |
//! | `/.well-known/jwks.json` | none | the JWT verification keys |
//! | `/oauth2/`, `/oauth2/scoped/`, `/oauth2/client/` | OAuth2 Bearer | IsAuthenticated; TokenHasScope `write`; client tokens welcome ([`oauth2`]) |
//! | `/oauth2/token/`, `/oauth2/authorize/`, `/oauth2/introspect/`, `/oauth2/revoke/`, `/.well-known/oauth-authorization-server` | client authentication; session for `authorize` | django-oauth-toolkit's endpoints ([`oauth2`]) |
//! | `/digest/` | HTTP Digest, RFC 7616 (SHA-256 and MD5 challenges) | IsAuthenticated |
//! | `/hawk/` | Hawk (`Server-Authorization` on answers) | IsAuthenticated |
//! | `/httpsig/` | HTTP Message Signatures, RFC 9421 ([`httpsig`]) | IsAuthenticated |
//! | `/oauth1/` | OAuth 1.0a, RFC 5849 ([`oauth1`]) | IsAuthenticated |
//! | `/oauth1/request_token/`, `/oauth1/authorize/`, `/oauth1/access_token/` | OAuth 1.0a signatures; session for `authorize` | the three-legged flow ([`oauth1`]) |
//!
//! Every password login (Basic, `/auth-token/`, `/auth/login/`) goes
//! through the [`Lockout`] of [`AppConfig::lockout`]: after too many
//! failures for a username or from an address, `429` with `Retry-After`
//! and a JSON `detail`, the right password included.
//!
//! Protected routes answer GET, HEAD, OPTIONS (DRF's metadata), POST, PUT,
//! PATCH and DELETE with `{"user": ..., "auth": ...}`; `auth` is `null`
//! except for token schemes, where it describes the token without
//! revealing it. Every error, including an unknown route (`404`), another
//! method (`405`), a malformed or oversized body (`400`, `413`, `415`), is
//! a JSON `{"detail": ...}` (or DRF's field-error object on
//! `/auth-token/`).
//!
//! [`router`] gives the app as an axum `Router`, for `axum::serve`;
//! [`service`] gives the same app as a plain `tower` service, which is
//! what `portcullis serve` serves (it saves a boxed clone per request).
//!
//! ```no_run
//! use portcullis::store::MemoryStore;
//! use portcullis::SecretKey;
//! use portcullis_cli::app::{router, AppConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let config = AppConfig::new(SecretKey::new([7u8; 32]).expect("32 bytes"));
//! let app = router(MemoryStore::new(), config);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{HeaderName, AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::response::Response;
use axum::routing::MethodRouter;
use axum::Router;
use portcullis::cache::{
    CachedStore, CredentialCache, InvalidationBus, DEFAULT_CREDENTIAL_TTL, DEFAULT_TTL,
};
use portcullis::layer::DEFAULT_FORM_LIMIT;
use portcullis::lockout::Lockout;
use portcullis::password::{HasherConfig, PasswordHasher};
use portcullis::replay::{MemoryReplayCache, ReplayCache};
use portcullis::scheme::basic::Basic;
use portcullis::scheme::csrf::CsrfConfig;
use portcullis::scheme::digest::DigestStore;
use portcullis::scheme::hawk::HawkStore;
use portcullis::scheme::remote_user::RemoteUser;
use portcullis::scheme::session::{SessionAuth, SessionConfig, Sessions};
use portcullis::scheme::token::{TokenAuth, Tokens};
use portcullis::scheme::Scheme;
use portcullis::store::{
    Ping, SessionStore, SharedUsers, StoreError, TokenStore, UserAdmin, UserStore,
};
use portcullis::throttle::ThrottleConfig;
use portcullis::{
    AllowAny, AuthError, Identity, IsAdminUser, IsAuthenticated, PasswordBackend, Policy,
    SecretKey, User,
};
use tower::ServiceBuilder;
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};

mod auth_token;
mod digest_hawk;
mod forms;
pub mod httpsig;
pub mod jwt;
mod login;
pub mod oauth1;
pub mod oauth2;
mod respond;
mod views;

pub use httpsig::SharedSignatureKeys;
pub use jwt::SharedBlacklist;
pub use oauth1::SharedOAuth1Store;
pub use oauth2::SharedOAuth2Store;

use views::ViewInfo;

/// The reference app's settings. [`AppConfig::new`] gives the documented
/// defaults; change fields directly.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// The signing secret (Django's `SECRET_KEY`): keys token and session
    /// hashes, seals stored tokens. Never logged (its `Debug` is redacted).
    pub secret: SecretKey,
    /// Password hashing settings.
    pub hasher: HasherConfig,
    /// The header RemoteUser trusts; default `Remote-User`.
    pub remote_user_header: String,
    /// Whether RemoteUser creates users it does not know; default `true`
    /// (Django's `create_unknown_user`).
    pub remote_user_create_unknown: bool,
    /// DRF's `UNAUTHENTICATED_USER`: the name `/api/whoami/` shows for
    /// anonymous requests; default `Some("AnonymousUser")`, `None` shows
    /// `null`.
    pub unauthenticated_user: Option<String>,
    /// Django's `CSRF_TRUSTED_ORIGINS`, e.g. `https://app.example.com` or
    /// `https://*.example.com`; default none.
    pub csrf_trusted_origins: Vec<String>,
    /// Django's `SECURE_PROXY_SSL_HEADER`: a header and value that mark a
    /// request as HTTPS behind a TLS-terminating proxy, e.g.
    /// `("X-Forwarded-Proto", "https")`; default none.
    pub secure_proxy_ssl_header: Option<(String, String)>,
    /// Whether the session and CSRF cookies are `Secure`; default `false`.
    pub cookie_secure: bool,
    /// Session lifetime in seconds; default two weeks, `1209600` (Django's
    /// `SESSION_COOKIE_AGE`).
    pub session_age_secs: i64,
    /// The largest request body accepted, in bytes; default 2.5 MiB
    /// (Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`). Larger bodies get `413`.
    pub form_limit: usize,
    /// How long users, tokens and sessions read from the store are kept
    /// ([`CachedStore`]), OAuth2 access tokens read
    /// ([`CachedOAuth2Store`](portcullis::oauth2::CachedOAuth2Store)) and
    /// JWTs verified
    /// ([`JwtAuth::with_verified_cache`](portcullis::jwt::JwtAuth::with_verified_cache));
    /// default 500 ms, zero turns caching off. Writes
    /// through the app invalidate at once; writes by other processes are
    /// seen after at most this long.
    pub cache_ttl: Duration,
    /// Links the caches to other servers' ([`InvalidationBus`]): writes
    /// through the app are published on it, and what arrives on it is
    /// dropped from the caches at once. Default none: other servers' writes
    /// are seen after at most `cache_ttl`.
    pub invalidation_bus: Option<InvalidationBus>,
    /// Whether verified Basic credentials are remembered by a keyed hash
    /// ([`CredentialCache`], 60 s); default `true`.
    pub basic_cache: bool,
    /// The throttles' shared settings (DRF's `DEFAULT_THROTTLE_RATES`,
    /// `NUM_PROXIES` and cache): the rate store, the clock, the client
    /// address rule and the rates of the `anon`, `user` and `burst` scopes
    /// used by `/throttled/` and `/throttled-scoped/`. Default
    /// `anon=5/min,user=10/min,burst=3/min` in memory.
    pub throttle: ThrottleConfig,
    /// The login lockout in front of every password login (Basic,
    /// `/auth-token/`, `/auth/login/`); `None` turns it off. Default 5
    /// failures, 900 s, in memory (one server; `serve` puts it in the
    /// database or Redis so `portcullis unlock` reaches it).
    pub lockout: Option<Lockout>,
    /// simplejwt's `SIMPLE_JWT` settings for `/jwt/` and `/api/token/...`;
    /// default simplejwt's (HS256 with [`secret`](Self::secret), access 5
    /// minutes, refresh 1 day, no rotation).
    pub jwt: portcullis::jwt::JwtSettings,
    /// Where outstanding and blacklisted refresh tokens are kept; default
    /// `None`: in memory, for this router only (`serve` uses the
    /// database).
    pub jwt_blacklist: Option<SharedBlacklist>,
    /// Where the signed-request schemes (Digest, Hawk, HTTP Message
    /// Signatures, OAuth 1.0a) remember the nonces they have seen; default
    /// in memory, for this router only (`serve` uses Redis when
    /// `PORTCULLIS_REDIS_URL` is set, so several servers refuse the same
    /// nonce).
    pub replay: Arc<dyn ReplayCache>,
    /// django-oauth-toolkit's `OAUTH2_PROVIDER` settings for `/oauth2/...`;
    /// default access tokens 36000 s, codes 60 s, the password grant on,
    /// Bearer tokens in the `Authorization` header only.
    pub oauth2: portcullis::oauth2::OAuth2Settings,
    /// Where OAuth2 clients and tokens are kept; default `None`: in
    /// memory, for this router only (`serve` uses the database, through
    /// [`SharedOAuth2Store::with_users`]).
    pub oauth2_store: Option<SharedOAuth2Store>,
    /// How long a Digest nonce is accepted on `/digest/`; default 300 s.
    pub digest_nonce_lifetime: Duration,
    /// The Hawk timestamp skew window on `/hawk/`; default 60 s.
    pub hawk_skew: Duration,
    /// HTTP Message Signatures settings for `/httpsig/`; default
    /// [`HttpSigConfig::default`](portcullis::scheme::httpsig::HttpSigConfig):
    /// `created` at most 300 s old. The router fills in
    /// [`secure_proxy_ssl_header`](Self::secure_proxy_ssl_header).
    pub httpsig: portcullis::scheme::httpsig::HttpSigConfig,
    /// Where `/httpsig/` finds signature keys; default `None`: in memory,
    /// empty (`serve` uses the database).
    pub signature_keys: Option<SharedSignatureKeys>,
    /// OAuth 1.0a settings for `/oauth1/...`; default
    /// [`OAuth1Config::default`](portcullis::scheme::oauth1::OAuth1Config):
    /// a 300 s timestamp window, `PLAINTEXT` over HTTPS only. The router
    /// fills in [`secure_proxy_ssl_header`](Self::secure_proxy_ssl_header).
    pub oauth1: portcullis::scheme::oauth1::OAuth1Config,
    /// Where OAuth 1.0a consumers and tokens are kept; default `None`: in
    /// memory, for this router only (`serve` uses the database).
    pub oauth1_store: Option<SharedOAuth1Store>,
}

impl AppConfig {
    /// The defaults, with `secret` as the signing secret.
    pub fn new(secret: SecretKey) -> Self {
        AppConfig {
            secret,
            hasher: HasherConfig::default(),
            remote_user_header: "Remote-User".into(),
            remote_user_create_unknown: true,
            unauthenticated_user: Some("AnonymousUser".into()),
            csrf_trusted_origins: Vec::new(),
            secure_proxy_ssl_header: None,
            cookie_secure: false,
            session_age_secs: 1_209_600,
            form_limit: DEFAULT_FORM_LIMIT,
            cache_ttl: DEFAULT_TTL,
            invalidation_bus: None,
            basic_cache: true,
            throttle: ThrottleConfig::new()
                .rates(crate::config::DEFAULT_THROTTLE_RATES)
                .expect("the default rates parse"),
            lockout: Some(Lockout::memory()),
            jwt: portcullis::jwt::JwtSettings::default(),
            jwt_blacklist: None,
            replay: Arc::new(MemoryReplayCache::new()),
            oauth2: portcullis::oauth2::OAuth2Settings::default(),
            oauth2_store: None,
            digest_nonce_lifetime: portcullis::scheme::digest::DEFAULT_NONCE_LIFETIME,
            hawk_skew: portcullis::scheme::hawk::DEFAULT_SKEW,
            httpsig: portcullis::scheme::httpsig::HttpSigConfig::default(),
            signature_keys: None,
            oauth1: portcullis::scheme::oauth1::OAuth1Config::default(),
            oauth1_store: None,
        }
    }
}

/// What the app's views need of its store, once [`routes`] has wrapped
/// it (in [`SharedUsers`], then [`CachedStore`]).
pub(crate) trait AppStore:
    UserStore<User = AppUser> + TokenStore + SessionStore + Ping + Clone
{
}
impl<T: UserStore<User = AppUser> + TokenStore + SessionStore + Ping + Clone> AppStore for T {}

/// The app's user: shared, so that the caches hand a request its user
/// without copying it ([`SharedUsers`]).
pub(crate) type AppUser = Arc<User>;

/// What the non-layer views share.
pub(crate) struct Shared<S> {
    backend: PasswordBackend<S>,
    tokens: Tokens<S>,
    sessions: Sessions<S>,
    csrf: CsrfConfig,
}

/// A store failure as the client sees it: `503` or `500` with a plain
/// message; the cause goes to the log.
pub(crate) fn store_error(e: StoreError) -> Response {
    AuthError::Store(e).to_response(None).map(Body::from)
}

/// A login refused by the lockout: `429` with `Retry-After` and DRF's
/// throttled `detail`.
pub(crate) fn locked_out(wait: std::time::Duration) -> Response {
    portcullis::throttle::throttled(wait)
        .to_response(None)
        .map(Body::from)
}

/// The client address the lockout counts for this request (`None` when
/// the lockout is off or the server left no address).
pub(crate) fn client_addr<S: AppStore>(
    shared: &Shared<S>,
    req: &Request,
) -> Option<std::net::IpAddr> {
    let lockout = shared.backend.lockout()?;
    lockout.client_addr(&portcullis::scheme::RequestHead::from_request(req))
}

fn header_name(what: &str, name: &str) -> HeaderName {
    HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
        .unwrap_or_else(|_| panic!("{what} {name:?} is not a valid HTTP header name"))
}

/// Builds the reference app over `store`, as an axum [`Router`]: what
/// [`service`] builds, as the router's fallback service, so that it can be
/// served with `axum::serve`. The app's routes sit inside that service:
/// `route_layer` on the returned router reaches none of them, and a
/// route added to it takes precedence over the app's own.
///
/// The caller adds what a server needs around it (request tracing,
/// graceful shutdown). The router already marks `Authorization`, `Cookie`,
/// `X-CSRFToken` and `Set-Cookie` as sensitive, limits bodies to
/// [`AppConfig::form_limit`], and answers every error as JSON.
///
/// # Panics
///
/// As [`service`].
pub fn router<S>(store: S, config: AppConfig) -> Router
where
    S: UserAdmin + TokenStore + SessionStore + Ping + DigestStore + HawkStore + Clone,
{
    Router::new().fallback_service(service(store, config))
}

/// The reference app over `store` as a plain `tower` service: the routes,
/// wrapped once in the app's own layers (sensitive headers, the body
/// limit, JSON errors). `portcullis serve` serves this.
///
/// Wrapping the routes from outside, rather than with `Router::layer`,
/// saves work on every request: axum would wrap every route in the layers
/// separately, in a box that it clones (with the route inside) per
/// request. Over HTTP the answers are the same either way. One
/// difference shows only to a caller of the service in process: for
/// `HEAD`, axum's router used to strip the bodies that these layers write
/// (the early `413`, the JSON error net); now hyper sends none.
///
/// # Panics
///
/// When the configuration is unusable, so it fails at start-up rather than
/// per request: `remote_user_header` or the `secure_proxy_ssl_header` name
/// is not a valid header name, `form_limit` is zero, or
/// [`AppConfig::throttle`] has no rate for `anon`, `user` or `burst`.
pub fn service<S>(
    store: S,
    config: AppConfig,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send,
> + Clone
       + Send
       + Sync
       + 'static
where
    S: UserAdmin + TokenStore + SessionStore + Ping + DigestStore + HawkStore + Clone,
{
    let limit = config.form_limit;
    ServiceBuilder::new()
        .layer(SetSensitiveResponseHeadersLayer::new([SET_COOKIE]))
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            COOKIE,
            HeaderName::from_static("x-csrftoken"),
        ]))
        .layer(respond::RespondLayer { limit })
        .service(routes(store, config))
}

/// The app's routes, without the layers [`service`] puts around them.
fn routes<S>(store: S, config: AppConfig) -> Router
where
    S: UserAdmin + TokenStore + SessionStore + Ping + DigestStore + HawkStore + Clone,
{
    assert!(config.form_limit > 0, "the form limit must be positive");
    // Users are shared (`Arc<User>`) from here on.
    let store = SharedUsers::new(store);
    // Digest and Hawk read their credentials uncached.
    let raw_store = store.clone();
    // Every read below goes through the cache; every write through it
    // invalidates what it touches.
    let mut store = CachedStore::new(store, config.cache_ttl);
    if let Some(bus) = &config.invalidation_bus {
        store = store.with_bus(bus);
    }
    let credentials = if config.basic_cache {
        CredentialCache::new(&config.secret, DEFAULT_CREDENTIAL_TTL)
    } else {
        CredentialCache::disabled()
    };
    let hasher = PasswordHasher::new(config.hasher.clone());
    let mut backend =
        PasswordBackend::new(store.clone(), hasher).with_credential_cache(credentials);
    if let Some(lockout) = &config.lockout {
        backend = backend.with_lockout(lockout.clone());
    }
    let tokens = Tokens::new(store.clone(), config.secret.clone());
    let csrf = CsrfConfig {
        trusted_origins: config.csrf_trusted_origins.clone(),
        secure_proxy_header: config
            .secure_proxy_ssl_header
            .as_ref()
            .map(|(name, value)| (header_name("secure_proxy_ssl_header", name), value.clone())),
        cookie_secure: config.cookie_secure,
        ..CsrfConfig::default()
    };
    let sessions = Sessions::new(store.clone(), config.secret.clone()).with_config(SessionConfig {
        max_age: chrono::Duration::seconds(config.session_age_secs),
        cookie_secure: config.cookie_secure,
        csrf: csrf.clone(),
        ..SessionConfig::default()
    });

    let basic: Arc<dyn Scheme<AppUser>> = Arc::new(Basic::new(backend.clone()));
    let token: Arc<dyn Scheme<AppUser>> = Arc::new(TokenAuth::new(tokens.clone()));
    let bearer: Arc<dyn Scheme<AppUser>> =
        Arc::new(TokenAuth::new(tokens.clone()).keyword("Bearer"));
    let session: Arc<dyn Scheme<AppUser>> = Arc::new(SessionAuth::new(sessions.clone()));
    let remote: Arc<dyn Scheme<AppUser>> = Arc::new(
        RemoteUser::new(store.clone())
            .header(header_name(
                "remote_user_header",
                &config.remote_user_header,
            ))
            .create_unknown_user(config.remote_user_create_unknown),
    );

    // DRF's REST_FRAMEWORK defaults; each route derives its own from them.
    let defaults = Policy::<AppUser>::new()
        .schemes(vec![session.clone(), basic.clone()])
        .permission(IsAuthenticated)
        .unauthenticated_user(config.unauthenticated_user.as_deref())
        .form_limit(config.form_limit);
    let only = |s: &Arc<dyn Scheme<AppUser>>| defaults.clone().schemes(vec![s.clone()]);

    let mut httpsig_config = config.httpsig.clone();
    httpsig_config.secure_proxy_header = csrf.secure_proxy_header.clone();
    let mut oauth1_config = config.oauth1.clone();
    oauth1_config.secure_proxy_header = csrf.secure_proxy_header.clone();
    let oauth1 = portcullis::scheme::oauth1::OAuth1::new(
        config
            .oauth1_store
            .clone()
            .unwrap_or_else(SharedOAuth1Store::memory),
        config.secret.clone(),
        config.replay.clone(),
        oauth1_config,
    );

    let shared = Arc::new(Shared {
        backend,
        tokens,
        sessions,
        csrf,
    });

    let view = |name, description| ViewInfo { name, description };
    Router::new()
        .route(
            "/basic/",
            views::protected(
                view("Basic", "HTTP Basic authentication only."),
                &only(&basic),
            ),
        )
        .route(
            "/token/",
            views::protected(
                view("Token", "Token authentication, keyword `Token`."),
                &only(&token),
            ),
        )
        .route(
            "/customkeywordtoken/",
            views::protected(
                view(
                    "Custom Keyword Token",
                    "Token authentication, keyword `Bearer`.",
                ),
                &only(&bearer),
            ),
        )
        .route(
            "/session/",
            views::protected(
                view(
                    "Session",
                    "Session authentication, CSRF-checked on unsafe methods.",
                ),
                &only(&session),
            ),
        )
        .route(
            "/remote-user/",
            views::protected(
                view(
                    "Remote User",
                    "Trusts the user named by the fronting proxy.",
                ),
                &only(&remote),
            ),
        )
        .route(
            "/api/example/",
            views::protected(
                view(
                    "Example",
                    "The default authentication: Session, then Basic.",
                ),
                &defaults,
            ),
        )
        .route(
            "/admin-only/",
            views::protected(
                view("Admin Only", "Staff users only."),
                &defaults
                    .clone()
                    .schemes(vec![session.clone(), basic.clone(), token.clone()])
                    .permission(IsAdminUser),
            ),
        )
        .route(
            "/api/whoami/",
            views::whoami_route(
                view(
                    "Who Am I",
                    "Who the request is authenticated as, if anyone.",
                ),
                &defaults.clone().permission(AllowAny),
            ),
        )
        .route(
            "/throttled/",
            views::whoami_route(
                view(
                    "Throttled",
                    "Who Am I, throttled: anonymous requests by address, users by id.",
                ),
                &defaults
                    .clone()
                    .permission(AllowAny)
                    .throttle(config.throttle.anon().expect("an `anon` throttle rate"))
                    .throttle(config.throttle.user().expect("a `user` throttle rate")),
            ),
        )
        .route(
            "/throttled-scoped/",
            views::whoami_route(
                view(
                    "Throttled Scoped",
                    "Who Am I, throttled by the `burst` scope.",
                ),
                &defaults.clone().permission(AllowAny).throttle(
                    config
                        .throttle
                        .scoped("burst")
                        .expect("a `burst` throttle rate"),
                ),
            ),
        )
        .merge(jwt::routes(
            jwt::service(&config.jwt, &config.secret, config.jwt_blacklist.as_ref()),
            store.clone(),
            shared.backend.clone(),
            &defaults,
            config.cache_ttl,
        ))
        .merge(oauth2::routes(
            oauth2::service(
                &config.oauth2,
                &config.secret,
                config.oauth2_store.as_ref(),
                config.cache_ttl,
                config.invalidation_bus.as_ref(),
            ),
            store.clone(),
            shared.clone(),
            &defaults,
            session.clone(),
            config
                .oauth2_store
                .as_ref()
                .and_then(SharedOAuth2Store::joined),
        ))
        .merge(digest_hawk::routes(raw_store, &config, &defaults))
        .merge(httpsig::routes(
            store.clone(),
            config.signature_keys.as_ref(),
            &config.secret,
            config.replay.clone(),
            httpsig_config,
            &defaults,
        ))
        .merge(oauth1::routes(
            oauth1,
            store.clone(),
            shared.clone(),
            session.clone(),
            &defaults,
        ))
        .route("/auth-token/", auth_token_route(shared.clone()))
        .route("/auth/login/", login_route(shared.clone()))
        .route(
            "/auth/logout/",
            logout_route(
                shared,
                &defaults.clone().schemes(vec![session]).permission(AllowAny),
            ),
        )
        .route("/health/", views::health_route())
        .route("/ready/", views::ready_route(store))
        .fallback(respond::not_found)
        // Turns every handler into a service now: a router that still
        // holds handlers builds each route's service again on every
        // request it serves.
        .with_state(())
}

fn auth_token_route<S: AppStore>(shared: Arc<Shared<S>>) -> MethodRouter {
    const ALLOW: &str = "POST, OPTIONS";
    MethodRouter::new()
        .post(move |req: Request| async move { auth_token::obtain(&shared, req).await })
        .options(|| {
            std::future::ready(views::metadata(
                ViewInfo {
                    name: "Obtain Auth Token",
                    description: "POST a username and password for the user's token.",
                },
                ALLOW,
            ))
        })
        .fallback(respond::not_allowed_handler(ALLOW))
}

fn login_route<S: AppStore>(shared: Arc<Shared<S>>) -> MethodRouter {
    let get_shared = shared.clone();
    MethodRouter::new()
        .get(move |req: Request| async move { login::form(&get_shared, req).await })
        .post(move |req: Request| async move { login::submit(&shared, req).await })
        .fallback(respond::not_allowed_handler("GET, HEAD, POST"))
}

fn logout_route<S: AppStore>(shared: Arc<Shared<S>>, policy: &Policy<AppUser>) -> MethodRouter {
    MethodRouter::new()
        .post(move |id: Identity<AppUser>, req: Request| async move {
            login::logout(&shared, id, req).await
        })
        .fallback(respond::not_allowed_handler("POST"))
        .layer(policy.layer())
}
