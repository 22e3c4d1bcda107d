//! The framework over real HTTP: an axum server on a loopback port and a
//! real client, for each scheme's success, failure and pass-through, the
//! ordering rules, the 401/403 choice, CSRF, lazy resolution and failing
//! closed.

use std::net::SocketAddr;

use axum::routing::any;
use axum::{Json, Router};
use portcullis::password::{HasherConfig, PasswordHasher};
use portcullis::scheme::basic::Basic;
use portcullis::scheme::csrf;
use portcullis::scheme::remote_user::RemoteUser;
use portcullis::scheme::session::{SessionAuth, Sessions};
use portcullis::scheme::token::{TokenAuth, Tokens};
use portcullis::scheme::{scheme_fn, Authenticated, RequestHead};
use portcullis::store::{MemoryStore, NewUser, UserAdmin, UserStore};
use portcullis::{
    AllowAny, AuthError, Identity, IsAdminUser, IsAuthenticated, IsAuthenticatedOrReadOnly,
    PasswordBackend, PermissionExt, Policy, SecretKey, User,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SECRET: [u8; 32] = [42u8; 32];

struct World {
    store: MemoryStore,
    tokens: Tokens<MemoryStore>,
    sessions: Sessions<MemoryStore>,
    backend: PasswordBackend<MemoryStore>,
    base: String,
    client: reqwest::Client,
}

async fn echo(id: Identity<User>) -> Json<Value> {
    Json(json!({
        "user": id.username(),
        "auth": id.auth().map(|a| a.description().to_owned()),
        "scheme": id.scheme(),
    }))
}

async fn untouched() -> &'static str {
    "no identity needed"
}

async fn user(store: &MemoryStore, hasher: &PasswordHasher, name: &str, pw: &str) -> User {
    store
        .create_user(NewUser {
            username: name.into(),
            password_hash: hasher.hash(pw).await.unwrap(),
            is_active: true,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn world() -> World {
    let store = MemoryStore::new();
    let secret = SecretKey::new(SECRET).unwrap();
    let hasher = PasswordHasher::new(HasherConfig::fast_for_tests());
    user(&store, &hasher, "ada", "lovelace").await;
    let grace = user(&store, &hasher, "grace", "hopper").await;
    store
        .create_user(NewUser {
            username: "root".into(),
            password_hash: hasher.hash("toor").await.unwrap(),
            is_active: true,
            is_staff: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let idle = user(&store, &hasher, "idle", "sleepy").await;
    store.set_active(idle.id, false).await.unwrap();
    let _ = grace;

    let tokens = Tokens::new(store.clone(), secret.clone());
    let sessions = Sessions::new(store.clone(), secret.clone());
    let backend = PasswordBackend::new(store.clone(), hasher);
    let basic = Basic::new(backend.clone());
    let token = TokenAuth::new(tokens.clone());
    let bearer = TokenAuth::new(tokens.clone()).keyword("Bearer");
    let session = SessionAuth::new(sessions.clone());

    let defaults = Policy::<User>::new()
        .scheme(session.clone())
        .scheme(basic.clone())
        .permission(IsAuthenticated);
    let only = |s: std::sync::Arc<dyn portcullis::Scheme<User>>| defaults.clone().schemes(vec![s]);

    let app = Router::new()
        .route("/default/", any(echo).layer(defaults.layer()))
        .route(
            "/basic/",
            any(echo).layer(only(std::sync::Arc::new(basic.clone())).layer()),
        )
        .route(
            "/token/",
            any(echo).layer(only(std::sync::Arc::new(token.clone())).layer()),
        )
        .route(
            "/bearer/",
            any(echo).layer(only(std::sync::Arc::new(bearer)).layer()),
        )
        .route(
            "/session/",
            any(echo).layer(only(std::sync::Arc::new(session.clone())).layer()),
        )
        .route(
            "/remote/",
            any(echo).layer(only(std::sync::Arc::new(RemoteUser::new(store.clone()))).layer()),
        )
        .route(
            "/token-then-basic/",
            any(echo).layer(
                defaults
                    .clone()
                    .schemes(vec![
                        std::sync::Arc::new(token.clone()),
                        std::sync::Arc::new(basic.clone()),
                    ])
                    .layer(),
            ),
        )
        .route(
            "/admin/",
            any(echo).layer(defaults.clone().permission(IsAdminUser).layer()),
        )
        .route(
            "/read-only/",
            any(echo).layer(
                defaults
                    .clone()
                    .permission(IsAuthenticatedOrReadOnly)
                    .layer(),
            ),
        )
        .route(
            "/admin-or-readonly/",
            any(echo).layer(
                defaults
                    .clone()
                    .permission(IsAdminUser.or(IsAuthenticatedOrReadOnly.and(IsAuthenticated)))
                    .layer(),
            ),
        )
        .route(
            "/anyone/",
            any(echo).layer(defaults.clone().permission(AllowAny).layer()),
        )
        .route(
            "/lazy/",
            any(untouched).layer(
                defaults
                    .clone()
                    .schemes(vec![std::sync::Arc::new(token.clone())])
                    .permission(AllowAny)
                    .layer(),
            ),
        )
        .route(
            "/nobody-named/",
            any(echo).layer(
                defaults
                    .clone()
                    .permission(AllowAny)
                    .unauthenticated_user(None)
                    .layer(),
            ),
        )
        .route(
            "/small-form/",
            any(echo).layer(defaults.clone().form_limit(64).layer()),
        );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    World {
        store,
        tokens,
        sessions,
        backend,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
    }
}

impl World {
    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    async fn get(
        &self,
        path: &str,
        auth: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut r = self.req(Method::GET, path);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        send(r).await
    }

    async fn token_for(&self, name: &str) -> String {
        let u = self.store.user_by_username(name).await.unwrap().unwrap();
        self.tokens.get_or_create(u.id).await.unwrap().0
    }

    async fn login(&self, name: &str) -> (String, String) {
        let u = self.store.user_by_username(name).await.unwrap().unwrap();
        let l = self.sessions.login(&u, None).await.unwrap();
        (l.session_key.clone(), l.csrf_secret.clone())
    }
}

async fn send(r: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let res = r.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

// ---- Basic -----------------------------------------------------------------

#[tokio::test]
async fn basic_success_returns_user_and_null_auth() {
    let w = world().await;
    let (s, _, b) = w.get("/basic/", Some(&basic("ada", "lovelace"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], "ada");
    assert_eq!(b["auth"], Value::Null);
}

#[tokio::test]
async fn basic_wrong_password_is_401_with_challenge() {
    let w = world().await;
    let (s, h, b) = w.get("/basic/", Some(&basic("ada", "nope"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Basic realm=\"api\"");
    assert_eq!(b["detail"], "Invalid username/password.");
}

#[tokio::test]
async fn basic_unknown_user_looks_like_a_wrong_password() {
    let w = world().await;
    let (s, _, b) = w.get("/basic/", Some(&basic("nobody", "x"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["detail"], "Invalid username/password.");
}

#[tokio::test]
async fn basic_inactive_user_with_right_password_is_refused_like_a_wrong_one() {
    let w = world().await;
    let (s, _, b) = w.get("/basic/", Some(&basic("idle", "sleepy"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["detail"], "Invalid username/password.");
}

#[tokio::test]
async fn basic_malformed_headers_get_drf_messages() {
    let w = world().await;
    for (h, msg) in [
        ("Basic", "Invalid basic header. No credentials provided."),
        (
            "Basic a b",
            "Invalid basic header. Credentials string should not contain spaces.",
        ),
        (
            "Basic ***",
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ),
    ] {
        let (s, _, b) = w.get("/basic/", Some(h)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{h}");
        assert_eq!(b["detail"], msg, "{h}");
    }
}

#[tokio::test]
async fn no_credentials_is_401_with_the_first_schemes_challenge() {
    let w = world().await;
    let (s, h, b) = w.get("/basic/", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Basic realm=\"api\"");
    assert_eq!(b["detail"], "Authentication credentials were not provided.");
    let (s, h, _) = w.get("/token/", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Token");
    let (_, h, _) = w.get("/bearer/", None).await;
    assert_eq!(h["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn session_first_routes_answer_403_without_challenge() {
    let w = world().await;
    let (s, h, b) = w.get("/default/", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get("www-authenticate").is_none());
    assert_eq!(b["detail"], "Authentication credentials were not provided.");
    // A failing later scheme on a session-first route is 403 too.
    let (s, h, b) = w.get("/default/", Some(&basic("ada", "bad"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get("www-authenticate").is_none());
    assert_eq!(b["detail"], "Invalid username/password.");
}

// ---- Token -----------------------------------------------------------------

#[tokio::test]
async fn token_success_describes_the_token_without_the_key() {
    let w = world().await;
    let key = w.token_for("ada").await;
    let (s, _, b) = w.get("/token/", Some(&format!("Token {key}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], "ada");
    let auth = b["auth"].as_str().unwrap();
    assert!(!auth.contains(&key));
}

#[tokio::test]
async fn two_authorization_headers_fail_whichever_is_good() {
    let w = world().await;
    let key = w.token_for("ada").await;
    let good = format!("Token {key}");
    for pair in [
        [good.as_str(), "Basic garbage"],
        ["Basic garbage", good.as_str()],
    ] {
        let r = w
            .req(Method::GET, "/token/")
            .header("authorization", pair[0])
            .header("authorization", pair[1]);
        let (s, h, b) = send(r).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{pair:?}");
        assert_eq!(b["detail"], portcullis::scheme::DUPLICATE_AUTHORIZATION);
        assert_eq!(h["www-authenticate"], "Token");
    }
    // One is fine.
    assert_eq!(w.get("/token/", Some(&good)).await.0, StatusCode::OK);
    // A route whose schemes never read the header does not care.
    let (sid, _) = w.login("ada").await;
    let (s, _, b) = send(
        w.req(Method::GET, "/session/")
            .header("cookie", format!("sessionid={sid}"))
            .header("authorization", "Basic one")
            .header("authorization", "Basic two"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], "ada");
}

#[tokio::test]
async fn token_keyword_is_case_insensitive_and_configurable() {
    let w = world().await;
    let key = w.token_for("ada").await;
    let (s, _, _) = w.get("/token/", Some(&format!("tOkEn {key}"))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = w.get("/bearer/", Some(&format!("Bearer {key}"))).await;
    assert_eq!(s, StatusCode::OK);
    // The other keyword is not this scheme's: it passes, so not authenticated.
    let (s, _, b) = w.get("/bearer/", Some(&format!("Token {key}"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["detail"], "Authentication credentials were not provided.");
}

#[tokio::test]
async fn token_failures_use_drf_messages() {
    let w = world().await;
    for (h, msg) in [
        ("Token", "Invalid token header. No credentials provided."),
        (
            "Token a b",
            "Invalid token header. Token string should not contain spaces.",
        ),
        (
            "Token 0123456789abcdef0123456789abcdef01234567",
            "Invalid token.",
        ),
    ] {
        let (s, hd, b) = w.get("/token/", Some(h)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{h}");
        assert_eq!(hd["www-authenticate"], "Token");
        assert_eq!(b["detail"], msg, "{h}");
    }
}

#[tokio::test]
async fn token_of_inactive_user() {
    let w = world().await;
    let key = w.token_for("idle").await;
    let (s, _, b) = w.get("/token/", Some(&format!("Token {key}"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["detail"], "User inactive or deleted.");
}

#[tokio::test]
async fn token_with_non_utf8_bytes_is_a_clean_4xx() {
    let w = world().await;
    let v = reqwest::header::HeaderValue::from_bytes(b"Token \xff\xfe").unwrap();
    let (s, _, b) = send(w.req(Method::GET, "/token/").header("authorization", v)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(b["detail"].as_str().unwrap().contains("invalid characters"));
}

// ---- Ordering --------------------------------------------------------------

#[tokio::test]
async fn a_scheme_without_its_credentials_passes_to_the_next() {
    let w = world().await;
    let (s, _, b) = w
        .get("/token-then-basic/", Some(&basic("grace", "hopper")))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["scheme"], "basic");
}

#[tokio::test]
async fn a_failing_scheme_stops_the_list() {
    let w = world().await;
    // A bad token fails at once: Basic, second, is never tried.
    let (s, h, b) = w.get("/token-then-basic/", Some("Token bad")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Token");
    assert_eq!(b["detail"], "Invalid token.");
}

#[tokio::test]
async fn first_success_wins() {
    let w = world().await;
    let (sid, _) = w.login("grace").await;
    // Session (first) and Basic for another user: the session wins.
    let (s, _, b) = send(
        w.req(Method::GET, "/default/")
            .header("cookie", format!("sessionid={sid}"))
            .header("authorization", basic("ada", "lovelace")),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], "grace");
    assert_eq!(b["scheme"], "session");
}

// ---- Permissions -----------------------------------------------------------

#[tokio::test]
async fn admin_only_refuses_non_staff_with_403() {
    let w = world().await;
    let (s, h, b) = w.get("/admin/", Some(&basic("ada", "lovelace"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get("www-authenticate").is_none());
    assert_eq!(
        b["detail"],
        "You do not have permission to perform this action."
    );
    let (s, _, b) = w.get("/admin/", Some(&basic("root", "toor"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], "root");
}

#[tokio::test]
async fn read_only_for_anonymous_writes_for_users() {
    let w = world().await;
    let (s, _, b) = w.get("/read-only/", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], "AnonymousUser");
    let (s, _, _) = send(w.req(Method::POST, "/read-only/")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = send(
        w.req(Method::POST, "/read-only/")
            .header("authorization", basic("ada", "lovelace")),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn composed_permissions() {
    let w = world().await;
    // IsAdminUser | (IsAuthenticatedOrReadOnly & IsAuthenticated)
    let (s, _, _) = w.get("/admin-or-readonly/", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = w
        .get("/admin-or-readonly/", Some(&basic("ada", "lovelace")))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn anonymous_user_is_configurable() {
    let w = world().await;
    let (s, _, b) = w.get("/anyone/", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], "AnonymousUser");
    let (s, _, b) = w.get("/nobody-named/", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], Value::Null);
}

#[tokio::test]
async fn allow_any_still_fails_bad_credentials_when_the_handler_looks() {
    let w = world().await;
    let (s, _, b) = w.get("/anyone/", Some(&basic("ada", "nope"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN); // session-first: no challenge
    assert_eq!(b["detail"], "Invalid username/password.");
}

// ---- Lazy resolution -------------------------------------------------------

#[tokio::test]
async fn identity_is_not_resolved_when_nobody_asks() {
    let w = world().await;
    let key = w.token_for("ada").await;
    let before = w.store.lookups();
    let (s, _, _) = w.get("/lazy/", Some(&format!("Token {key}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        w.store.lookups(),
        before,
        "AllowAny + a handler that never looks: no look-up"
    );
}

#[tokio::test]
async fn identity_is_resolved_once_per_request() {
    let w = world().await;
    let key = w.token_for("ada").await;
    let before = w.store.lookups();
    // IsAuthenticated resolves; the handler's extractor reuses it.
    let (s, _, _) = w.get("/token/", Some(&format!("Token {key}"))).await;
    assert_eq!(s, StatusCode::OK);
    // One token look-up and one user look-up.
    assert_eq!(w.store.lookups() - before, 2);
}

// ---- Session and CSRF ------------------------------------------------------

fn cookies(sid: &str, csrf: &str) -> String {
    format!("sessionid={sid}; csrftoken={csrf}")
}

#[tokio::test]
async fn session_get_needs_no_csrf_token() {
    let w = world().await;
    let (sid, _) = w.login("ada").await;
    let (s, _, b) = send(
        w.req(Method::GET, "/session/")
            .header("cookie", format!("sessionid={sid}")),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], "ada");
    assert_eq!(b["auth"], Value::Null);
}

#[tokio::test]
async fn unsafe_methods_need_the_csrf_token_in_the_header() {
    let w = world().await;
    let (sid, secret) = w.login("ada").await;
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let (s, h, b) = send(
            w.req(m.clone(), "/session/")
                .header("cookie", cookies(&sid, &secret)),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m}");
        assert!(h.get("www-authenticate").is_none());
        assert_eq!(b["detail"], "CSRF Failed: CSRF token missing.", "{m}");

        let (s, _, b) = send(
            w.req(m.clone(), "/session/")
                .header("cookie", cookies(&sid, &secret))
                .header("x-csrftoken", csrf::mask(&secret)),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert_eq!(b["user"], "ada");
    }
}

#[tokio::test]
async fn unsafe_methods_accept_the_csrf_form_field() {
    let w = world().await;
    let (sid, secret) = w.login("ada").await;
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let (s, _, b) = send(
            w.req(m.clone(), "/session/")
                .header("cookie", cookies(&sid, &secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("a=1&csrfmiddlewaretoken={}", csrf::mask(&secret))),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{m}");
        assert_eq!(b["user"], "ada");
    }
}

#[tokio::test]
async fn the_form_body_reaches_the_handler_intact() {
    async fn body_echo(_id: Identity<User>, body: String) -> String {
        body
    }
    let store = MemoryStore::new();
    let hasher = PasswordHasher::new(HasherConfig::fast_for_tests());
    let u = user(&store, &hasher, "ada", "pw").await;
    let sessions = Sessions::new(store.clone(), SecretKey::new(SECRET).unwrap());
    let login = sessions.login(&u, None).await.unwrap();
    let policy = Policy::<User>::new()
        .scheme(SessionAuth::new(sessions))
        .permission(IsAuthenticated);
    let app = Router::new().route("/", any(body_echo).layer(policy.layer()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let body = format!("csrfmiddlewaretoken={}&x=%C3%A9&y=2", login.csrf_token());
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/"))
        .header("cookie", cookies(&login.session_key, &login.csrf_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), body);
}

#[tokio::test]
async fn multipart_form_field_is_accepted() {
    let w = world().await;
    let (sid, secret) = w.login("ada").await;
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"csrfmiddlewaretoken\"\r\n\r\n{}\r\n--XyZ--\r\n",
        csrf::mask(&secret)
    );
    let (s, _, _) = send(
        w.req(Method::POST, "/session/")
            .header("cookie", cookies(&sid, &secret))
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(body),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn wrong_csrf_token_and_bad_origin_are_refused() {
    let w = world().await;
    let (sid, secret) = w.login("ada").await;
    let (s, _, b) = send(
        w.req(Method::POST, "/session/")
            .header("cookie", cookies(&sid, &secret))
            .header("x-csrftoken", csrf::mask(&csrf::new_secret())),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        b["detail"],
        "CSRF Failed: CSRF token from the 'X-Csrftoken' HTTP header incorrect."
    );
    let (s, _, b) = send(
        w.req(Method::POST, "/session/")
            .header("cookie", cookies(&sid, &secret))
            .header("x-csrftoken", csrf::mask(&secret))
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(b["detail"]
        .as_str()
        .unwrap()
        .starts_with("CSRF Failed: Origin checking failed"));
}

#[tokio::test]
async fn other_schemes_need_no_csrf_token() {
    let w = world().await;
    let (s, _, _) = send(
        w.req(Method::POST, "/default/")
            .header("authorization", basic("ada", "lovelace")),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn password_change_ends_sessions_and_deactivation_too() {
    let w = world().await;
    let (sid, _) = w.login("ada").await;
    let get = || {
        send(
            w.req(Method::GET, "/session/")
                .header("cookie", format!("sessionid={sid}")),
        )
    };
    assert_eq!(get().await.0, StatusCode::OK);
    let ada = w.store.user_by_username("ada").await.unwrap().unwrap();
    let new_hash = w.backend.hasher().hash("new password").await.unwrap();
    w.store.set_password_hash(ada.id, &new_hash).await.unwrap();
    assert_eq!(get().await.0, StatusCode::FORBIDDEN);

    let (sid2, _) = w.login("ada").await;
    w.store.set_active(ada.id, false).await.unwrap();
    let (s, _, _) = send(
        w.req(Method::GET, "/session/")
            .header("cookie", format!("sessionid={sid2}")),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn login_rotates_the_session_key() {
    let w = world().await;
    let ada = w.store.user_by_username("ada").await.unwrap().unwrap();
    let first = w.sessions.login(&ada, None).await.unwrap();
    let second = w
        .sessions
        .login(&ada, Some(&first.session_key))
        .await
        .unwrap();
    assert_ne!(first.session_key, second.session_key);
    assert_ne!(first.csrf_secret, second.csrf_secret);
    let (s, _, _) = send(
        w.req(Method::GET, "/session/")
            .header("cookie", format!("sessionid={}", first.session_key)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn oversized_form_bodies_are_refused_with_413() {
    let w = world().await;
    let (sid, secret) = w.login("ada").await;
    let (s, _, b) = send(
        w.req(Method::POST, "/small-form/")
            .header("cookie", cookies(&sid, &secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("x=".to_owned() + &"a".repeat(1000)),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(b["detail"], "Request body too large.");
}

// ---- RemoteUser ------------------------------------------------------------

#[tokio::test]
async fn remote_user_trusts_the_header_and_creates_users() {
    let w = world().await;
    let (s, _, b) = send(
        w.req(Method::GET, "/remote/")
            .header("remote-user", "newbie"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], "newbie");
    assert!(w.store.user_by_username("newbie").await.unwrap().is_some());
    let (s, h, _) = send(w.req(Method::GET, "/remote/")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get("www-authenticate").is_none());
    let (s, _, _) = send(w.req(Method::GET, "/remote/").header("remote-user", "idle")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Two copies (a proxy that added its own beside the client's): which
    // one names the user is unknowable, so neither does.
    let (s, h, b) = send(
        w.req(Method::GET, "/remote/")
            .header("remote-user", "mallory")
            .header("remote-user", "newbie"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get("www-authenticate").is_none());
    assert_eq!(b["detail"], "Invalid remote user header.");
    assert!(w.store.user_by_username("mallory").await.unwrap().is_none());
}

// ---- Custom schemes --------------------------------------------------------

#[tokio::test]
async fn custom_x_username_scheme() {
    let store = MemoryStore::new();
    let hasher = PasswordHasher::new(HasherConfig::fast_for_tests());
    user(&store, &hasher, "ada", "pw").await;
    let users = store.clone();
    let scheme = scheme_fn("x-username", move |req: &RequestHead<'_>| {
        let users = users.clone();
        let name = req
            .headers
            .get("x-username")
            .map(|v| v.to_str().map(str::to_owned));
        async move {
            let name = match name {
                None => return Ok(None),
                Some(Err(_)) => return Err(AuthError::failed("Invalid username header.")),
                Some(Ok(n)) => n,
            };
            match users.user_by_username(&name).await? {
                Some(u) => Ok(Some(Authenticated::new(u, "x-username"))),
                None => Err(AuthError::failed("No such user")),
            }
        }
    });
    let policy = Policy::<User>::new()
        .scheme(scheme)
        .permission(IsAuthenticated);
    let app = Router::new().route("/", any(echo).layer(policy.layer()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = reqwest::Client::new();
    let url = format!("http://{addr}/");
    let (s, _, b) = send(c.get(&url).header("x-username", "ada")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["user"], "ada");
    let (s, _, b) = send(c.get(&url).header("x-username", "eve")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(b["detail"], "No such user");
}

// ---- Failing closed --------------------------------------------------------

#[tokio::test]
async fn a_store_that_is_down_never_lets_a_request_through() {
    let w = world().await;
    let key = w.token_for("ada").await;
    w.store.set_down(true);
    for (path, auth) in [
        ("/token/", format!("Token {key}")),
        ("/basic/", basic("ada", "lovelace")),
    ] {
        let (s, _, b) = w.get(path, Some(&auth)).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(b["detail"], "Service temporarily unavailable.");
    }
    // Even on an AllowAny route, a looked-at identity fails closed.
    let (s, _, _) = w.get("/anyone/", Some(&basic("ada", "lovelace"))).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn huge_headers_are_a_4xx_never_a_5xx() {
    let w = world().await;
    let big = format!("Basic {}", "A".repeat(16 * 1024));
    let (s, _, _) = w.get("/basic/", Some(&big)).await;
    assert!(s.is_client_error(), "{s}");
    let big = format!("Token {}", "a".repeat(16 * 1024));
    let (s, _, _) = w.get("/token/", Some(&big)).await;
    assert!(s.is_client_error(), "{s}");
}

// ---- Object permissions and the auth extractor -----------------------------

struct Document {
    owner: i64,
}

struct IsOwner;

#[async_trait::async_trait]
impl portcullis::Permission<User> for IsOwner {
    async fn has_permission(
        &self,
        ctx: &portcullis::permission::Context<'_, User>,
    ) -> Result<bool, AuthError> {
        Ok(ctx.identity().await?.is_authenticated())
    }

    async fn has_object_permission(
        &self,
        ctx: &portcullis::permission::Context<'_, User>,
        object: &(dyn std::any::Any + Send + Sync),
    ) -> Result<bool, AuthError> {
        let me = ctx.identity().await?.user().map(|u| u.id);
        Ok(object
            .downcast_ref::<Document>()
            .is_some_and(|d| Some(d.owner) == me))
    }

    fn message(&self) -> Option<std::borrow::Cow<'static, str>> {
        Some("Only the owner may do that.".into())
    }
}

#[tokio::test]
async fn object_permissions_are_checked_by_the_guard() {
    use axum::response::IntoResponse;
    let store = MemoryStore::new();
    let hasher = PasswordHasher::new(HasherConfig::fast_for_tests());
    let ada = user(&store, &hasher, "ada", "pw").await;
    user(&store, &hasher, "bob", "pw").await;
    let policy = Policy::<User>::new()
        .scheme(Basic::new(PasswordBackend::new(store.clone(), hasher)))
        .permission(IsOwner);
    let owner = ada.id;
    let handler = move |guard: portcullis::Guard<User>, auth: portcullis::Auth<User>| async move {
        assert!(auth.0.is_none(), "Basic has no auth details");
        match guard.check_object(&Document { owner }).await {
            Ok(()) => "yours".into_response(),
            Err(r) => r,
        }
    };
    let app = Router::new().route("/doc", any(handler).layer(policy.layer()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = reqwest::Client::new();
    let url = format!("http://{addr}/doc");
    let res = c
        .get(&url)
        .header("authorization", basic("ada", "pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (s, _, b) = send(c.get(&url).header("authorization", basic("bob", "pw"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(b["detail"], "Only the owner may do that.");
}
