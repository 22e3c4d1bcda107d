//! # portcullis
//!
//! Django REST framework's pluggable authentication for tower and axum.
//!
//! A request is authenticated by an ordered list of [schemes](scheme): the
//! first to succeed sets the [`Identity`] (user and auth details); a scheme
//! that sees no credentials of its kind passes; one that sees bad
//! credentials fails the request at once. The identity is resolved lazily,
//! at most once per request. [Permissions](permission) then decide, and
//! failures are answered as DRF answers them: `401` with the first scheme's
//! `WWW-Authenticate` challenge, else `403`, with a JSON `detail`.
//! [Throttles](throttle) run after the permission, as DRF's, and answer
//! `429` with `Retry-After`; a [`Lockout`] on the [`PasswordBackend`]
//! refuses logins after repeated failures (django-axes' model).
//!
//! ## Quick start
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use portcullis::password::{HasherConfig, PasswordHasher};
//! use portcullis::scheme::{basic::Basic, token::{TokenAuth, Tokens}};
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin};
//! use portcullis::{CurrentUser, IsAuthenticated, PasswordBackend, Policy, SecretKey, User};
//! use tower::ServiceExt;
//!
//! async fn hello(CurrentUser(user): CurrentUser<User>) -> String {
//!     format!("hello, {}", user.username)
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let ada = store.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! let tokens = Tokens::new(store.clone(), SecretKey::new([0u8; 32]).unwrap());
//! let (key, _) = tokens.get_or_create(ada.id).await.unwrap();
//!
//! // The project's defaults, like DRF's REST_FRAMEWORK settings.
//! let defaults = Policy::<User>::new()
//!     .scheme(TokenAuth::new(tokens))
//!     .scheme(Basic::new(PasswordBackend::new(store, PasswordHasher::new(HasherConfig::fast_for_tests()))))
//!     .permission(IsAuthenticated);
//! let app = Router::new().route("/hello", get(hello)).layer(defaults.layer());
//!
//! let req = http::Request::get("/hello").header("authorization", format!("Token {key}"))
//!     .body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 200);
//!
//! // No credentials: 401 with the first scheme's challenge.
//! let res = app.oneshot(http::Request::get("/hello").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], "Token");
//! # });
//! ```
//!
//! ## Modules
//!
//! | module | what |
//! |---|---|
//! | [`scheme`] | the [`Scheme`] trait; Basic, Token, Session + CSRF, RemoteUser, Digest (RFC 7616), Hawk, closures |
//! | [`scheme`] | the [`Scheme`] trait; Basic, Token, Session + CSRF, RemoteUser, HTTP Message Signatures (`scheme::httpsig`, feature `httpsig`), OAuth 1.0a (`scheme::oauth1`, feature `oauth1`), closures |
//! | [`permission`] | the [`Permission`] trait; AllowAny, IsAuthenticated, IsAdminUser, IsAuthenticatedOrReadOnly, and/or/not |
//! | [`layer`] | [`Policy`] (a route's settings) and the tower [`AuthLayer`] |
//! | [`extract`] | axum extractors: [`Identity`], [`CurrentUser`], [`Auth`], [`Guard`] (feature `axum`) |
//! | [`store`] | storage traits, [`StoreError`](store::StoreError), [`MemoryStore`](store::MemoryStore), [`SharedUsers`](store::SharedUsers) (users as `Arc<User>`, for a cache to share) |
//! | [`password`] | Django-compatible password hashing, off the async runtime |
//! | [`backend`] | [`PasswordBackend`]: Django's `authenticate(username, password)` |
//! | [`cache`] | [`CachedStore`](cache::CachedStore): short-TTL read caches over any store, invalidated by writes; [`CredentialCache`](cache::CredentialCache) for verified Basic credentials |
//! | [`throttle`] | [`Throttle`]s: DRF's anon, user and scoped rate throttles, [`ClientIp`], rate stores |
//! | [`replay`] | [`ReplayCache`](replay::ReplayCache): nonces remembered by the signed-request schemes, in memory or shared |
//! | [`lockout`] | [`Lockout`]: django-axes' failed-login lockout per username and address |
//! | [`secret`] | the secret key and the subkeys derived from it |
//! | [`error`] | [`AuthError`], rendered as DRF does |
//! | [`jwt`] | djangorestframework-simplejwt: [`JwtAuth`](jwt::JwtAuth) scheme, token pairs, rotation, blacklist, JWKS (feature `jwt`) |
//! | [`oauth2`] | an OAuth2 authorization server (django-oauth-toolkit's): clients, grants, PKCE, refresh rotation, introspection, revocation, the Bearer scheme and scope permissions (feature `oauth2`) |
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `axum` | yes | the [`extract`] module, `IntoResponse` for rejections, and the `axum` re-export |
//! | `jwt` | yes | the [`jwt`] module (jsonwebtoken, RustCrypto key generation) |
//! | `oauth2` | yes | the [`oauth2`] module |
//! | `httpsig` | yes | `scheme::httpsig`: HTTP Message Signatures, RFC 9421 (sfv, RustCrypto signatures) |
//! | `oauth1` | yes | `scheme::oauth1`: OAuth 1.0a, RFC 5849 |

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backend;
pub mod cache;
pub mod error;
#[cfg(feature = "axum")]
pub mod extract;
pub mod identity;
#[cfg(feature = "jwt")]
pub mod jwt;
#[cfg(any(feature = "jwt", feature = "httpsig"))]
mod keygen;
pub mod layer;
pub mod lockout;
#[cfg(feature = "oauth2")]
pub mod oauth2;
pub mod password;
pub mod permission;
pub mod replay;
pub mod scheme;
pub mod secret;
pub mod store;
pub mod throttle;

pub use backend::{LoginOutcome, PasswordBackend};
pub use error::{AuthError, Failure, Rejection};
#[cfg(feature = "axum")]
pub use extract::{Auth, CurrentUser, Guard, IdentityRef};
pub use identity::{Anonymous, AuthInfo, AuthUser, Identity, User};
pub use layer::{AuthLayer, AuthService, LazyIdentity, Policy};
pub use lockout::Lockout;
pub use permission::{
    not, AllowAny, IsAdminUser, IsAuthenticated, IsAuthenticatedOrReadOnly, Permission,
    PermissionExt,
};
pub use scheme::{Authenticated, RequestHead, Scheme};
pub use secret::SecretKey;
pub use throttle::{
    AnonRateThrottle, ClientIp, Rate, ScopedRateThrottle, Throttle, ThrottleConfig,
    UserRateThrottle,
};

#[cfg(feature = "axum")]
pub use axum;
