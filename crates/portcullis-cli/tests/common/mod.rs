//! The harness of the reference app's HTTP suite: a real server on a
//! loopback port over any store, a real client, and helpers.
//!
//! Each test binary that runs the suite declares `#[macro_use] mod common;`
//! and instantiates it once per store with [`app_suite!`]. The store
//! factory is called once per test and must return a fresh, empty,
//! migrated store (a new database, or a new schema).

// Not every binary that includes the harness uses every helper.
#![allow(dead_code)]

pub(crate) mod suite;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use portcullis::lockout::{Lockout, LockoutStore, MemoryLockoutStore};
use portcullis::password::{HasherConfig, PasswordHasher};
use portcullis::scheme::csrf;
use portcullis::scheme::digest::DigestStore;
use portcullis::scheme::hawk::HawkStore;
use portcullis::scheme::token::Tokens;
use portcullis::store::NewUser;
use portcullis::store::{Ping, SessionStore, TokenStore, UserAdmin};
use portcullis::{SecretKey, User};
use portcullis_cli::app::{router, AppConfig, SharedBlacklist};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

/// Runs the whole suite against a store: `app_suite!(memory, memory_store)`
/// where `memory_store` is an `async fn() -> S` (or a closure returning a
/// future). Each listed test is a generic function in [`suite`]; a test
/// written there but not listed here is reported as dead code.
macro_rules! app_suite {
    ($suite:ident, $factory:expr) => {
        mod $suite {
            #[allow(unused_imports)]
            use super::*;

            app_suite!(@tests $factory;
                basic_succeeds_on_every_method,
                basic_options_is_metadata_and_authenticated,
                basic_without_credentials_is_401_with_challenge,
                basic_wrong_credentials_fail,
                basic_inactive_user_is_invalid_credentials,
                basic_malformed_headers_fail_with_drf_messages,
                basic_passes_other_keywords,
                token_succeeds_and_never_echoes_the_key,
                token_failures,
                token_inactive_user,
                custom_keyword_token,
                session_without_cookie_is_403_without_challenge,
                remote_user_creates_and_authenticates,
                remote_user_inactive_and_creation_off,
                example_uses_session_then_basic,
                admin_only_needs_staff,
                whoami_anonymous_and_authenticated,
                whoami_unauthenticated_user_is_configurable,
                auth_token_form_json_multipart,
                auth_token_returns_the_existing_token,
                auth_token_field_errors,
                auth_token_bad_credentials_and_inactive,
                auth_token_malformed_bodies,
                auth_token_other_methods_405,
                jwt_obtain_form_json_multipart,
                jwt_succeeds_on_every_method,
                jwt_without_credentials_is_401_with_challenge,
                jwt_refused_tokens_have_simplejwt_bodies,
                jwt_expired_tokens_are_refused,
                jwt_inactive_and_deleted_users,
                jwt_obtain_field_errors_and_bad_credentials,
                jwt_obtain_counts_towards_the_lockout,
                jwt_refresh_verify_blacklist,
                jwt_rotation,
                jwt_blacklist_after_rotation,
                jwt_claims_are_simplejwts,
                jwt_jwks_is_empty_for_hs256,
                jwt_asymmetric_key_signs_and_is_published,
                jwt_token_views_answer_post_only,
                health_and_ready,
                unknown_routes_404,
                other_methods_405_after_authentication,
                login_form_sets_csrf_cookie,
                session_login_flow_end_to_end,
                session_csrf_origin_checks,
                login_redirects_only_to_local_paths,
                login_bad_credentials_rerender,
                login_needs_csrf,
                login_rotates_session_key_and_csrf,
                logout_ends_the_session,
                logout_needs_csrf,
                malformed_headers_are_4xx_json,
                oversized_bodies_are_413_json,
                throttled_anon_is_five_per_minute,
                throttled_user_is_ten_per_minute,
                throttled_scoped_is_three_per_minute,
                lockout_basic_refuses_the_right_password,
                lockout_auth_token,
                lockout_login_form,
                lockout_counts_every_login_path_together,
                lockout_success_before_the_limit_resets_the_username,
                lockout_counts_unknown_usernames,
            );
        }
    };
    (@tests $factory:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let store = ($factory)().await;
                $crate::common::suite::$test(store).await;
            }
        )*
    };
}

/// What the app needs of a store.
pub(crate) trait Store:
    UserAdmin + TokenStore + SessionStore + Ping + DigestStore + HawkStore + Clone + LockoutSource
{
}
impl<
        T: UserAdmin
            + TokenStore
            + SessionStore
            + Ping
            + DigestStore
            + HawkStore
            + Clone
            + LockoutSource,
    > Store for T
{
}

/// Where a store under test keeps login failures: the SQL stores in their
/// own table, the memory store beside it in memory.
pub(crate) trait LockoutSource {
    /// The lockout store the test app counts failures in.
    fn lockout_store(&self) -> Arc<dyn LockoutStore>;
}

impl LockoutSource for portcullis::store::MemoryStore {
    fn lockout_store(&self) -> Arc<dyn LockoutStore> {
        Arc::new(MemoryLockoutStore::new())
    }
}

impl LockoutSource for portcullis_store::Store {
    fn lockout_store(&self) -> Arc<dyn LockoutStore> {
        Arc::new(self.clone())
    }
}

/// SQL for the users, Redis for the sessions (`redis_sessions`): failures
/// counted in Redis, as `serve` does with a Redis URL.
pub(crate) type RedisSessions =
    portcullis::store::SeparateSessions<portcullis_store::Store, portcullis_store::RedisStore>;

impl LockoutSource for RedisSessions {
    fn lockout_store(&self) -> Arc<dyn LockoutStore> {
        Arc::new(self.sessions().clone())
    }
}

/// Where the test app keeps JWT refresh tokens: a SQL store in its own
/// tables, as `serve` does; any other store in memory.
fn jwt_blacklist<S: 'static>(store: &S) -> Option<SharedBlacklist> {
    let store = store as &dyn std::any::Any;
    store
        .downcast_ref::<portcullis_store::Store>()
        .or_else(|| store.downcast_ref::<RedisSessions>().map(|s| s.inner()))
        .map(|s| SharedBlacklist::new(s.clone()))
}

/// The secret every test app signs with.
pub(crate) const SECRET: [u8; 32] = [42u8; 32];

/// A running app.
pub(crate) struct TestApp<S> {
    pub(crate) base: String,
    pub(crate) store: S,
    pub(crate) client: reqwest::Client,
    pub(crate) tokens: Tokens<S>,
    hasher: PasswordHasher,
}

impl<S: Store> TestApp<S> {
    /// The app with the default configuration (and the fast hasher).
    pub(crate) async fn start(store: S) -> Self {
        Self::start_with(store, |_| {}).await
    }

    /// The app with a changed configuration.
    pub(crate) async fn start_with(store: S, change: impl FnOnce(&mut AppConfig)) -> Self {
        let secret = SecretKey::new(SECRET).unwrap();
        let mut config = AppConfig::new(secret.clone());
        config.hasher = HasherConfig::fast_for_tests();
        config.jwt_blacklist = jwt_blacklist(&store);
        // The lockout counts in the store under test, as `serve` does.
        config.lockout = Some(Lockout::new(store.lockout_store()));
        change(&mut config);
        let app = router(store.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // The client address comes from the socket, as in `serve`.
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        TestApp {
            base: format!("http://{addr}"),
            tokens: Tokens::new(store.clone(), secret),
            store,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            hasher: PasswordHasher::new(HasherConfig::fast_for_tests()),
        }
    }

    /// `host:port` of the server.
    pub(crate) fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// A request to `path`.
    pub(crate) fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// A GET to `path`.
    pub(crate) fn get(&self, path: &str) -> RequestBuilder {
        self.req(Method::GET, path)
    }

    /// A POST to `path`.
    pub(crate) fn post(&self, path: &str) -> RequestBuilder {
        self.req(Method::POST, path)
    }

    /// Creates a user.
    pub(crate) async fn create(&self, name: &str, pw: &str, active: bool, staff: bool) -> User {
        self.store
            .create_user(NewUser {
                username: name.into(),
                password_hash: self.hasher.hash(pw).await.unwrap(),
                is_active: active,
                is_staff: staff,
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// An active, non-staff user.
    pub(crate) async fn user(&self, name: &str, pw: &str) -> User {
        self.create(name, pw, true, false).await
    }

    /// The user's token key.
    pub(crate) async fn token(&self, user: &User) -> String {
        self.tokens.get_or_create(user.id).await.unwrap().0
    }

    /// Logs in through the form; returns the session and CSRF cookies.
    pub(crate) async fn login(&self, name: &str, pw: &str) -> Cookies {
        let page = send(self.get("/auth/login/")).await;
        let csrf = page
            .cookie("csrftoken")
            .expect("the login page sets csrftoken");
        let token = form_token(&page.text());
        let res = send(
            self.post("/auth/login/")
                .header(COOKIE, format!("csrftoken={csrf}"))
                .form(&[
                    ("username", name),
                    ("password", pw),
                    ("csrfmiddlewaretoken", &token),
                ]),
        )
        .await;
        assert_eq!(
            res.status,
            StatusCode::FOUND,
            "login failed: {}",
            res.text()
        );
        Cookies {
            session: res.cookie("sessionid").expect("sessionid set"),
            csrf: res.cookie("csrftoken").expect("csrftoken rotated"),
        }
    }
}

/// The cookies of a logged-in browser.
#[derive(Clone, Debug)]
pub(crate) struct Cookies {
    pub(crate) session: String,
    pub(crate) csrf: String,
}

impl Cookies {
    /// The `Cookie` header.
    pub(crate) fn header(&self) -> String {
        format!("sessionid={}; csrftoken={}", self.session, self.csrf)
    }

    /// A masked token for the CSRF secret, as a page would embed it.
    pub(crate) fn masked(&self) -> String {
        csrf::mask(&self.csrf)
    }
}

/// A finished response.
pub(crate) struct Res {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Res {
    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON body; fails unless the response says it is JSON.
    pub(crate) fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "status {} body {:?}",
            self.status,
            self.text()
        );
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The `detail` of a JSON error.
    pub(crate) fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no detail in {}", self.text()))
            .to_owned()
    }

    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The full `Set-Cookie` line for a cookie.
    pub(crate) fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value a `Set-Cookie` gives a cookie.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        let line = self.set_cookie(name)?;
        let pair = line.split(';').next()?;
        Some(pair.split_once('=')?.1.to_owned())
    }

    /// Every cookie set, by name.
    pub(crate) fn cookies(&self) -> HashMap<String, String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// Sends a request and reads the whole response.
pub(crate) async fn send(rb: RequestBuilder) -> Res {
    let res = rb.send().await.expect("the server answers");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.bytes().await.unwrap().to_vec();
    Res {
        status,
        headers,
        body,
    }
}

/// Sends the request built by `make` until it answers `status`, for at most
/// the one second within which REFERENCE-APP.md promises that a change made
/// behind the app's back (straight in the store, or by the CLI) is honoured,
/// whatever the app caches. Returns the last answer.
pub(crate) async fn within_a_second(status: StatusCode, make: impl Fn() -> RequestBuilder) -> Res {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let res = send(make()).await;
        if res.status == status || std::time::Instant::now() >= deadline {
            return res;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `Basic` credentials.
pub(crate) fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", b64(format!("{user}:{pw}").as_bytes()))
}

/// Standard, padded base64 (RFC 4648), enough for test credentials.
pub(crate) fn b64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A header value from raw bytes (which may be invalid UTF-8).
pub(crate) fn raw(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap()
}

/// The `csrfmiddlewaretoken` value embedded in a login page.
pub(crate) fn form_token(html: &str) -> String {
    let marker = "name=\"csrfmiddlewaretoken\" value=\"";
    let start = html.find(marker).expect("token field") + marker.len();
    html[start..]
        .split('"')
        .next()
        .expect("token value")
        .to_owned()
}

/// A multipart body and its `Content-Type`.
pub(crate) fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "----portcullis-test-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The JSON content type, for bodies sent by hand.
pub(crate) const JSON: &str = "application/json";

/// Sets a JSON body from raw bytes.
pub(crate) fn json_body(rb: RequestBuilder, body: impl Into<reqwest::Body>) -> RequestBuilder {
    rb.header(CONTENT_TYPE, JSON).body(body)
}

/// Sends raw bytes on a fresh connection and returns everything the server
/// answers until it closes (the request should say `Connection: close`).
pub(crate) async fn raw_http(host: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    );
    let _ = read.await.expect("the server answers without hanging");
    String::from_utf8_lossy(&out).into_owned()
}
