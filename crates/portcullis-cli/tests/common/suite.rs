//! The reference app's HTTP contract, one behaviour per function, generic
//! over the store. [`app_suite!`](super) turns each into a test.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::*;

const NOT_PROVIDED: &str = "Authentication credentials were not provided.";
const INVALID_BASIC: &str = "Invalid username/password.";
const NO_PERMISSION: &str = "You do not have permission to perform this action.";
const CSRF_MISSING: &str = "CSRF Failed: CSRF token missing.";
const BASIC_CHALLENGE: &str = "Basic realm=\"api\"";
const UNABLE: &str = "Unable to log in with provided credentials.";
const REQUIRED: &str = "This field is required.";

/// The methods every protected route answers with 200.
const BODY_METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

fn assert_401(res: &Res, challenge: &str, detail: &str) {
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    assert_eq!(res.header("www-authenticate"), Some(challenge));
    assert_eq!(res.detail(), detail);
}

fn assert_403(res: &Res, detail: &str) {
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    assert_eq!(res.header("www-authenticate"), None);
    assert_eq!(res.detail(), detail);
}

fn assert_ok_as(res: &Res, user: &str) -> Value {
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body = res.json();
    assert_eq!(body["user"], user, "{body}");
    body
}

// ---------------------------------------------------------------- Basic

pub(crate) async fn basic_succeeds_on_every_method<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    for m in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        let res = send(
            app.req(m.clone(), "/basic/")
                .header(AUTHORIZATION, basic("ada", "lovelace")),
        )
        .await;
        assert_eq!(res.json(), json!({"user": "ada", "auth": null}), "{m}");
    }
    let res = send(
        app.req(Method::HEAD, "/basic/")
            .header(AUTHORIZATION, basic("ada", "lovelace")),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.is_empty());
    // A password may contain colons; the keyword is case-insensitive.
    app.user("colon", "a:b:c").await;
    let lower = basic("colon", "a:b:c").replacen("Basic", "basic", 1);
    assert_ok_as(
        &send(app.get("/basic/").header(AUTHORIZATION, lower)).await,
        "colon",
    );
}

pub(crate) async fn basic_options_is_metadata_and_authenticated<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let res = send(
        app.req(Method::OPTIONS, "/basic/")
            .header(AUTHORIZATION, basic("ada", "lovelace")),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    let body = res.json();
    assert_eq!(body["name"], "Basic");
    assert!(body["description"].is_string());
    assert_eq!(body["renders"], json!(["application/json"]));
    assert!(body["parses"]
        .as_array()
        .unwrap()
        .contains(&json!("application/json")));
    let res = send(app.req(Method::OPTIONS, "/basic/")).await;
    assert_401(&res, BASIC_CHALLENGE, NOT_PROVIDED);
}

pub(crate) async fn basic_without_credentials_is_401_with_challenge<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    for m in BODY_METHODS {
        let res = send(app.req(m.clone(), "/basic/")).await;
        assert_401(&res, BASIC_CHALLENGE, NOT_PROVIDED);
    }
    let res = send(app.req(Method::HEAD, "/basic/")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.header("www-authenticate"), Some(BASIC_CHALLENGE));
}

pub(crate) async fn basic_wrong_credentials_fail<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    for (u, p) in [
        ("ada", "wrong"),
        ("nobody", "lovelace"),
        ("Ada", "lovelace"),
        ("ada", ""),
    ] {
        let res = send(app.get("/basic/").header(AUTHORIZATION, basic(u, p))).await;
        assert_401(&res, BASIC_CHALLENGE, INVALID_BASIC);
    }
}

pub(crate) async fn basic_inactive_user_is_invalid_credentials<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.create("idle", "sleepy", false, false).await;
    let res = send(
        app.get("/basic/")
            .header(AUTHORIZATION, basic("idle", "sleepy")),
    )
    .await;
    assert_401(&res, BASIC_CHALLENGE, INVALID_BASIC);
    // Deactivated after creation: refused at once.
    let ada = app.user("ada", "lovelace").await;
    assert_ok_as(
        &send(
            app.get("/basic/")
                .header(AUTHORIZATION, basic("ada", "lovelace")),
        )
        .await,
        "ada",
    );
    app.store.set_active(ada.id, false).await.unwrap();
    let res = within_a_second(StatusCode::UNAUTHORIZED, || {
        app.get("/basic/")
            .header(AUTHORIZATION, basic("ada", "lovelace"))
    })
    .await;
    assert_401(&res, BASIC_CHALLENGE, INVALID_BASIC);
}

pub(crate) async fn basic_malformed_headers_fail_with_drf_messages<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let cases: [(&[u8], &str); 8] = [
        (b"Basic", "Invalid basic header. No credentials provided."),
        (b"Basic ", "Invalid basic header. No credentials provided."),
        (
            b"Basic abc def",
            "Invalid basic header. Credentials string should not contain spaces.",
        ),
        (
            b"Basic !!!notbase64",
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ),
        (
            b"Basic YWR",
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ),
        (
            b"Basic \xff\xfe\xfd",
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ),
        // "ada", and three NUL bytes: no colon, so no username:password.
        (
            b"Basic YWRh",
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ),
        (
            b"Basic AAAA",
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ),
    ];
    for (header, detail) in cases {
        let res = send(app.get("/basic/").header(AUTHORIZATION, raw(header))).await;
        assert_401(&res, BASIC_CHALLENGE, detail);
    }
    // Credentials that decode to bytes that are not UTF-8 (Latin-1 fallback).
    let latin1 = format!("Basic {}", b64(b"\xe9t\xe9:\xff"));
    let res = send(app.get("/basic/").header(AUTHORIZATION, latin1)).await;
    assert_401(&res, BASIC_CHALLENGE, INVALID_BASIC);
}

pub(crate) async fn basic_passes_other_keywords<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    for h in ["Token abc", "Bearer abc", "Digest x=y", "Basicabc"] {
        let res = send(app.get("/basic/").header(AUTHORIZATION, h)).await;
        assert_401(&res, BASIC_CHALLENGE, NOT_PROVIDED);
    }
}

// ---------------------------------------------------------------- Token

pub(crate) async fn token_succeeds_and_never_echoes_the_key<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let ada = app.user("ada", "lovelace").await;
    let key = app.token(&ada).await;
    for m in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        let res = send(
            app.req(m, "/token/")
                .header(AUTHORIZATION, format!("Token {key}")),
        )
        .await;
        let body = assert_ok_as(&res, "ada");
        let auth = body["auth"].as_str().expect("auth describes the token");
        assert!(!auth.contains(&key), "the key leaked: {auth}");
        assert!(!res.text().contains(&key));
    }
    let res = send(
        app.get("/token/")
            .header(AUTHORIZATION, format!("token   {key}")),
    )
    .await;
    assert_ok_as(&res, "ada");
}

pub(crate) async fn token_failures<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let ada = app.user("ada", "lovelace").await;
    let key = app.token(&ada).await;
    let res = send(app.get("/token/")).await;
    assert_401(&res, "Token", NOT_PROVIDED);
    let cases: [(&[u8], &str); 6] = [
        (b"Token", "Invalid token header. No credentials provided."),
        (b"Token ", "Invalid token header. No credentials provided."),
        (
            b"Token a b",
            "Invalid token header. Token string should not contain spaces.",
        ),
        (
            b"Token \xff\xfe",
            "Invalid token header. Token string should not contain invalid characters.",
        ),
        (b"Token nope", "Invalid token."),
        (
            b"Token 0000000000000000000000000000000000000000",
            "Invalid token.",
        ),
    ];
    for (header, detail) in cases {
        let res = send(app.get("/token/").header(AUTHORIZATION, raw(header))).await;
        assert_401(&res, "Token", detail);
    }
    // Other schemes' credentials pass through to "not provided".
    let res = send(
        app.get("/token/")
            .header(AUTHORIZATION, basic("ada", "lovelace")),
    )
    .await;
    assert_401(&res, "Token", NOT_PROVIDED);
    let res = send(
        app.get("/token/")
            .header(AUTHORIZATION, format!("Bearer {key}")),
    )
    .await;
    assert_401(&res, "Token", NOT_PROVIDED);
    // A regenerated token replaces the old one.
    let fresh = app.tokens.regenerate(ada.id).await.unwrap();
    let res = send(
        app.get("/token/")
            .header(AUTHORIZATION, format!("Token {key}")),
    )
    .await;
    assert_401(&res, "Token", "Invalid token.");
    assert_ok_as(
        &send(
            app.get("/token/")
                .header(AUTHORIZATION, format!("Token {fresh}")),
        )
        .await,
        "ada",
    );
}

pub(crate) async fn token_inactive_user<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let ada = app.user("ada", "lovelace").await;
    let key = app.token(&ada).await;
    app.store.set_active(ada.id, false).await.unwrap();
    let res = within_a_second(StatusCode::UNAUTHORIZED, || {
        app.get("/token/")
            .header(AUTHORIZATION, format!("Token {key}"))
    })
    .await;
    assert_401(&res, "Token", "User inactive or deleted.");
    app.store.delete_user(ada.id).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let res = loop {
        let res = send(
            app.get("/token/")
                .header(AUTHORIZATION, format!("Token {key}")),
        )
        .await;
        if res.json()["detail"] == "Invalid token." || std::time::Instant::now() >= deadline {
            break res;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_401(&res, "Token", "Invalid token.");
}

pub(crate) async fn custom_keyword_token<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let ada = app.user("ada", "lovelace").await;
    let key = app.token(&ada).await;
    for kw in ["Bearer", "bearer", "BEARER"] {
        let res = send(
            app.get("/customkeywordtoken/")
                .header(AUTHORIZATION, format!("{kw} {key}")),
        )
        .await;
        let body = assert_ok_as(&res, "ada");
        assert!(body["auth"].is_string());
    }
    let res = send(app.get("/customkeywordtoken/")).await;
    assert_401(&res, "Bearer", NOT_PROVIDED);
    let res = send(
        app.get("/customkeywordtoken/")
            .header(AUTHORIZATION, format!("Token {key}")),
    )
    .await;
    assert_401(&res, "Bearer", NOT_PROVIDED);
    let res = send(
        app.get("/customkeywordtoken/")
            .header(AUTHORIZATION, "Bearer nope"),
    )
    .await;
    assert_401(&res, "Bearer", "Invalid token.");
    let res = send(
        app.get("/customkeywordtoken/")
            .header(AUTHORIZATION, "Bearer"),
    )
    .await;
    assert_401(
        &res,
        "Bearer",
        "Invalid token header. No credentials provided.",
    );
}

// ---------------------------------------------------------------- Session, RemoteUser

pub(crate) async fn session_without_cookie_is_403_without_challenge<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    for m in BODY_METHODS {
        assert_403(&send(app.req(m, "/session/")).await, NOT_PROVIDED);
    }
    // Basic is not a scheme of this route.
    let res = send(
        app.get("/session/")
            .header(AUTHORIZATION, basic("ada", "lovelace")),
    )
    .await;
    assert_403(&res, NOT_PROVIDED);
    // Unknown, malformed or over-long session keys are ignored.
    for cookie in [
        "sessionid=nope",
        "sessionid=",
        "sessionid=a%20b",
        "sessionid=\"x\"",
    ] {
        let res = send(app.get("/session/").header(COOKIE, cookie)).await;
        assert_403(&res, NOT_PROVIDED);
    }
    let long = format!("sessionid={}", "a".repeat(10_000));
    assert_403(
        &send(app.get("/session/").header(COOKIE, long)).await,
        NOT_PROVIDED,
    );
}

pub(crate) async fn remote_user_creates_and_authenticates<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let res = send(app.get("/remote-user/").header("Remote-User", "newcomer")).await;
    assert_eq!(res.json(), json!({"user": "newcomer", "auth": null}));
    assert!(app
        .store
        .user_by_username("newcomer")
        .await
        .unwrap()
        .is_some());
    // Known users too, on every method.
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let res = send(
            app.req(m, "/remote-user/")
                .header("remote-user", "newcomer"),
        )
        .await;
        assert_ok_as(&res, "newcomer");
    }
    assert_403(&send(app.get("/remote-user/")).await, NOT_PROVIDED);
    assert_403(
        &send(app.get("/remote-user/").header("Remote-User", "")).await,
        NOT_PROVIDED,
    );
}

pub(crate) async fn remote_user_inactive_and_creation_off<S: Store>(store: S) {
    let app = TestApp::start_with(store, |c| c.remote_user_create_unknown = false).await;
    app.create("idle", "x", false, false).await;
    app.user("ada", "x").await;
    assert_403(
        &send(app.get("/remote-user/").header("Remote-User", "idle")).await,
        NOT_PROVIDED,
    );
    assert_403(
        &send(app.get("/remote-user/").header("Remote-User", "stranger")).await,
        NOT_PROVIDED,
    );
    assert!(app
        .store
        .user_by_username("stranger")
        .await
        .unwrap()
        .is_none());
    assert_ok_as(
        &send(app.get("/remote-user/").header("Remote-User", "ada")).await,
        "ada",
    );
    let res = send(
        app.get("/remote-user/")
            .header("Remote-User", raw(b"\xff\xfe")),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.json()["detail"].is_string());
    // Sent twice, the header names no one, not even a known user.
    let res = send(
        app.get("/remote-user/")
            .header("Remote-User", "stranger")
            .header("Remote-User", "ada"),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.json()["detail"], "Invalid remote user header.");
}

// ---------------------------------------------------------------- defaults, admin, whoami

pub(crate) async fn example_uses_session_then_basic<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let ada = app.user("ada", "lovelace").await;
    let key = app.token(&ada).await;
    // The first scheme is Session, which has no challenge: 403.
    assert_403(&send(app.get("/api/example/")).await, NOT_PROVIDED);
    // Token is not in the default list: passes through.
    let res = send(
        app.get("/api/example/")
            .header(AUTHORIZATION, format!("Token {key}")),
    )
    .await;
    assert_403(&res, NOT_PROVIDED);
    // A bad session cookie passes to Basic.
    let res = send(
        app.get("/api/example/")
            .header(COOKIE, "sessionid=unknown")
            .header(AUTHORIZATION, basic("ada", "lovelace")),
    )
    .await;
    assert_eq!(res.json(), json!({"user": "ada", "auth": null}));
    // A failing Basic stops the list, answered without a challenge.
    let res = send(
        app.get("/api/example/")
            .header(AUTHORIZATION, basic("ada", "nope")),
    )
    .await;
    assert_403(&res, INVALID_BASIC);
    // A session works too.
    let c = app.login("ada", "lovelace").await;
    assert_ok_as(
        &send(app.get("/api/example/").header(COOKIE, c.header())).await,
        "ada",
    );
}

pub(crate) async fn admin_only_needs_staff<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let ada = app.user("ada", "lovelace").await;
    let root = app.create("root", "toor", true, true).await;
    assert_403(&send(app.get("/admin-only/")).await, NOT_PROVIDED);
    let res = send(
        app.get("/admin-only/")
            .header(AUTHORIZATION, basic("ada", "lovelace")),
    )
    .await;
    assert_403(&res, NO_PERMISSION);
    let key = app.token(&ada).await;
    let res = send(
        app.get("/admin-only/")
            .header(AUTHORIZATION, format!("Token {key}")),
    )
    .await;
    assert_403(&res, NO_PERMISSION);
    let res = send(
        app.get("/admin-only/")
            .header(AUTHORIZATION, basic("root", "toor")),
    )
    .await;
    assert_eq!(res.json(), json!({"user": "root", "auth": null}));
    // Token is the third scheme: reached after Session and Basic pass.
    let root_key = app.token(&root).await;
    let res = send(
        app.req(Method::DELETE, "/admin-only/")
            .header(AUTHORIZATION, format!("Token {root_key}")),
    )
    .await;
    assert!(assert_ok_as(&res, "root")["auth"].is_string());
    let res = send(app.get("/admin-only/").header(AUTHORIZATION, "Token nope")).await;
    assert_403(&res, "Invalid token.");
    let c = app.login("root", "toor").await;
    assert_ok_as(
        &send(app.get("/admin-only/").header(COOKIE, c.header())).await,
        "root",
    );
    let c = app.login("ada", "lovelace").await;
    assert_403(
        &send(app.get("/admin-only/").header(COOKIE, c.header())).await,
        NO_PERMISSION,
    );
}

pub(crate) async fn whoami_anonymous_and_authenticated<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let res = send(app.get("/api/whoami/")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.json(),
        json!({"user": "AnonymousUser", "auth": null, "is_authenticated": false})
    );
    for m in [Method::POST, Method::PUT, Method::DELETE] {
        assert_eq!(
            send(app.req(m, "/api/whoami/")).await.json()["is_authenticated"],
            false
        );
    }
    let res = send(
        app.get("/api/whoami/")
            .header(AUTHORIZATION, basic("ada", "lovelace")),
    )
    .await;
    assert_eq!(
        res.json(),
        json!({"user": "ada", "auth": null, "is_authenticated": true})
    );
    let c = app.login("ada", "lovelace").await;
    let res = send(app.get("/api/whoami/").header(COOKIE, c.header())).await;
    assert_eq!(res.json()["is_authenticated"], true);
    // Bad credentials still fail, even where anyone may pass.
    let res = send(
        app.get("/api/whoami/")
            .header(AUTHORIZATION, basic("ada", "no")),
    )
    .await;
    assert_403(&res, INVALID_BASIC);
}

pub(crate) async fn whoami_unauthenticated_user_is_configurable<S: Store>(store: S) {
    let app = TestApp::start_with(store, |c| c.unauthenticated_user = None).await;
    let res = send(app.get("/api/whoami/")).await;
    assert_eq!(
        res.json(),
        json!({"user": null, "auth": null, "is_authenticated": false})
    );
}

// ---------------------------------------------------------------- /auth-token/

pub(crate) async fn auth_token_form_json_multipart<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let res = send(
        app.post("/auth-token/")
            .form(&[("username", "ada"), ("password", "lovelace")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let key = res.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 40);
    let res = send(
        app.post("/auth-token/")
            .json(&json!({"username": "ada", "password": "lovelace"})),
    )
    .await;
    assert_eq!(res.json(), json!({ "token": key }));
    let (ct, body) = multipart(&[("username", "ada"), ("password", "lovelace")]);
    let res = send(app.post("/auth-token/").header(CONTENT_TYPE, ct).body(body)).await;
    assert_eq!(res.json(), json!({ "token": key }));
    // The username is trimmed, as DRF's CharField does.
    let res = send(
        app.post("/auth-token/")
            .json(&json!({"username": " ada ", "password": "lovelace"})),
    )
    .await;
    assert_eq!(res.json(), json!({ "token": key }));
    // The token authenticates.
    let res = send(
        app.get("/token/")
            .header(AUTHORIZATION, format!("Token {key}")),
    )
    .await;
    assert_ok_as(&res, "ada");
}

pub(crate) async fn auth_token_returns_the_existing_token<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let ada = app.user("ada", "lovelace").await;
    let key = app.token(&ada).await;
    let res = send(
        app.post("/auth-token/")
            .form(&[("username", "ada"), ("password", "lovelace")]),
    )
    .await;
    assert_eq!(res.json(), json!({ "token": key }));
}

pub(crate) async fn auth_token_field_errors<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let both = json!({"username": [REQUIRED], "password": [REQUIRED]});
    let res = send(app.post("/auth-token/")).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json(), both);
    let res = send(app.post("/auth-token/").json(&json!({}))).await;
    assert_eq!(res.json(), both);
    let res = send(app.post("/auth-token/").form(&[("username", "ada")])).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json(), json!({"password": [REQUIRED]}));
    let res = send(
        app.post("/auth-token/")
            .json(&json!({"password": "lovelace"})),
    )
    .await;
    assert_eq!(res.json(), json!({"username": [REQUIRED]}));
    let (ct, body) = multipart(&[("password", "lovelace")]);
    let res = send(app.post("/auth-token/").header(CONTENT_TYPE, ct).body(body)).await;
    assert_eq!(res.json(), json!({"username": [REQUIRED]}));
    let res = send(
        app.post("/auth-token/")
            .json(&json!({"username": "", "password": null})),
    )
    .await;
    assert_eq!(
        res.json(),
        json!({"username": ["This field may not be blank."], "password": ["This field may not be null."]})
    );
    let res = send(
        app.post("/auth-token/")
            .json(&json!({"username": ["ada"], "password": {"a": 1}})),
    )
    .await;
    assert_eq!(
        res.json(),
        json!({"username": ["Not a valid string."], "password": ["Not a valid string."]})
    );
    let res = send(app.post("/auth-token/").json(&json!(["ada", "lovelace"]))).await;
    assert_eq!(
        res.json(),
        json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
    );
}

pub(crate) async fn auth_token_bad_credentials_and_inactive<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    app.create("idle", "sleepy", false, false).await;
    let unable = json!({"non_field_errors": [UNABLE]});
    for (u, p) in [
        ("ada", "wrong"),
        ("nobody", "x"),
        ("idle", "sleepy"),
        ("ADA", "lovelace"),
    ] {
        let res = send(
            app.post("/auth-token/")
                .json(&json!({"username": u, "password": p})),
        )
        .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert_eq!(res.json(), unable, "{u}");
    }
}

pub(crate) async fn auth_token_malformed_bodies<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    for body in [
        &b"{"[..],
        b"{\"username\": \"ada\",}",
        b"\xff\xfe",
        b"nul\0l",
    ] {
        let res = send(json_body(app.post("/auth-token/"), body.to_vec())).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert!(
            res.detail().starts_with("JSON parse error - "),
            "{}",
            res.text()
        );
    }
    let res = send(
        app.post("/auth-token/")
            .header(CONTENT_TYPE, "text/plain")
            .body("username=ada"),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        res.detail(),
        "Unsupported media type \"text/plain\" in request."
    );
    let res = send(app.post("/auth-token/").body("username=ada")).await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(res.detail(), "Unsupported media type \"\" in request.");
    for ct in ["multipart/form-data", "multipart/form-data; boundary=zzz"] {
        let res = send(
            app.post("/auth-token/")
                .header(CONTENT_TYPE, ct)
                .body("garbage"),
        )
        .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{ct}");
        assert!(res.detail().starts_with("Multipart form parse error - "));
    }
    // Bytes that are not UTF-8 in a form are replaced, as Django decodes.
    let res = send(
        app.post("/auth-token/")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(&b"username=%FF%FE&password=\xff"[..]),
    )
    .await;
    assert_eq!(res.json(), json!({"non_field_errors": [UNABLE]}));
    let res = send(
        app.post("/auth-token/")
            .json(&json!({"username": "a\u{0}da", "password": "x"})),
    )
    .await;
    assert_eq!(
        res.json(),
        json!({"username": ["Null characters are not allowed."]})
    );
}

pub(crate) async fn auth_token_other_methods_405<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    for m in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
        let res = send(app.req(m.clone(), "/auth-token/")).await;
        assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.detail(), format!("Method \"{m}\" not allowed."));
        assert_eq!(res.header("allow"), Some("POST, OPTIONS"));
    }
    let res = send(app.req(Method::OPTIONS, "/auth-token/")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["name"], "Obtain Auth Token");
}

// ---------------------------------------------------------------- probes, 404, 405

pub(crate) async fn health_and_ready<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let res = send(app.get("/health/")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"status": "ok"}));
    let res = send(app.get("/ready/")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["status"], "ok");
    let res = send(app.post("/health/")).await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.detail(), "Method \"POST\" not allowed.");
}

pub(crate) async fn unknown_routes_404<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    for path in [
        "/nope/",
        "/basic",
        "/",
        "/basic/extra/",
        "/%ff/",
        "/auth-token",
    ] {
        for m in [Method::GET, Method::POST, Method::DELETE] {
            let res = send(app.req(m, path)).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(res.json(), json!({"detail": "Not found."}));
        }
    }
}

pub(crate) async fn other_methods_405_after_authentication<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    for m in [Method::TRACE, Method::from_bytes(b"BREW").unwrap()] {
        let res = send(
            app.req(m.clone(), "/basic/")
                .header(AUTHORIZATION, basic("ada", "lovelace")),
        )
        .await;
        assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.detail(), format!("Method \"{m}\" not allowed."));
        assert_eq!(
            res.header("allow"),
            Some("GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE")
        );
        // As DRF's dispatch: credentials are checked first. The `Allow`
        // header is spelt the same way on that answer too.
        let res = send(app.req(m, "/basic/")).await;
        assert_401(&res, BASIC_CHALLENGE, NOT_PROVIDED);
        assert_eq!(
            res.header("allow"),
            Some("GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE")
        );
    }
    let res = send(app.req(Method::PUT, "/auth/login/")).await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.detail(), "Method \"PUT\" not allowed.");
}

// ---------------------------------------------------------------- login, sessions, CSRF

pub(crate) async fn login_form_sets_csrf_cookie<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let res = send(app.get("/auth/login/?next=/session/")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.header("content-type").unwrap().starts_with("text/html"));
    let html = res.text();
    for field in [
        "name=\"username\"",
        "name=\"password\"",
        "name=\"csrfmiddlewaretoken\"",
    ] {
        assert!(html.contains(field), "{field}");
    }
    assert!(html.contains("value=\"/session/\""));
    let secret = res.cookie("csrftoken").unwrap();
    assert_eq!(secret.len(), 32);
    let token = form_token(&html);
    assert_eq!(token.len(), 64);
    assert!(csrf::token_matches(&token, &secret));
    // A valid cookie is kept, as Django's get_token does.
    let again = send(
        app.get("/auth/login/")
            .header(COOKIE, format!("csrftoken={secret}")),
    )
    .await;
    assert_eq!(again.cookie("csrftoken").unwrap(), secret);
    assert!(csrf::token_matches(&form_token(&again.text()), &secret));
    assert_eq!(
        send(app.req(Method::HEAD, "/auth/login/")).await.status,
        StatusCode::OK
    );
}

pub(crate) async fn session_login_flow_end_to_end<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    // GET the form: a cookie and a token.
    let page = send(app.get("/auth/login/")).await;
    let first_csrf = page.cookie("csrftoken").unwrap();
    let token = form_token(&page.text());
    // POST it.
    let res = send(
        app.post("/auth/login/?next=/ignored/")
            .header(COOKIE, format!("csrftoken={first_csrf}"))
            .form(&[
                ("username", "ada"),
                ("password", "lovelace"),
                ("csrfmiddlewaretoken", &token),
                ("next", "/session/"),
            ]),
    )
    .await;
    assert_eq!(res.status, StatusCode::FOUND, "{}", res.text());
    assert_eq!(res.header("location"), Some("/session/"));
    let session_line = res.set_cookie("sessionid").unwrap();
    assert!(session_line.contains("HttpOnly"), "{session_line}");
    assert!(session_line.contains("Path=/"));
    let c = Cookies {
        session: res.cookie("sessionid").unwrap(),
        csrf: res.cookie("csrftoken").unwrap(),
    };
    assert_ne!(c.csrf, first_csrf, "login rotates the CSRF secret");
    assert!(!res.text().contains("lovelace"));

    // Safe methods need no token.
    for m in [Method::GET, Method::OPTIONS] {
        let res = send(app.req(m, "/session/").header(COOKIE, c.header())).await;
        assert_eq!(res.status, StatusCode::OK);
    }
    let res = send(app.get("/session/").header(COOKIE, c.header())).await;
    assert_eq!(res.json(), json!({"user": "ada", "auth": null}));
    assert_eq!(
        send(
            app.req(Method::HEAD, "/session/")
                .header(COOKIE, c.header())
        )
        .await
        .status,
        StatusCode::OK
    );

    // Unsafe methods do.
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let res = send(app.req(m.clone(), "/session/").header(COOKIE, c.header())).await;
        assert_403(&res, CSRF_MISSING);
        let res = send(
            app.req(m.clone(), "/session/")
                .header(COOKIE, c.header())
                .header("X-CSRFToken", c.masked()),
        )
        .await;
        assert_eq!(res.json(), json!({"user": "ada", "auth": null}), "{m}");
        // The unmasked secret is accepted too, as Django does.
        let res = send(
            app.req(m.clone(), "/session/")
                .header(COOKIE, c.header())
                .header("X-CSRFToken", &c.csrf),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{m}");
        let res = send(
            app.req(m.clone(), "/session/")
                .header(COOKIE, c.header())
                .form(&[("csrfmiddlewaretoken", c.masked().as_str()), ("x", "1")]),
        )
        .await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "{m} with the form field: {}",
            res.text()
        );
    }
    // Multipart form field.
    let masked = c.masked();
    let (ct, body) = multipart(&[("csrfmiddlewaretoken", masked.as_str())]);
    let res = send(
        app.post("/session/")
            .header(COOKIE, c.header())
            .header(CONTENT_TYPE, ct)
            .body(body),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // The pre-login token no longer matches.
    let stale = format!("sessionid={}; csrftoken={first_csrf}", c.session);
    let res = send(
        app.post("/session/")
            .header(COOKIE, &stale)
            .header("X-CSRFToken", &token),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "the cookie and token agree");
    let res = send(
        app.post("/session/")
            .header(COOKIE, c.header())
            .header("X-CSRFToken", &token),
    )
    .await;
    assert_403(
        &res,
        "CSRF Failed: CSRF token from the 'X-Csrftoken' HTTP header incorrect.",
    );
    let res = send(
        app.post("/session/")
            .header(COOKIE, c.header())
            .header("X-CSRFToken", "short"),
    )
    .await;
    assert_403(
        &res,
        "CSRF Failed: CSRF token from the 'X-Csrftoken' HTTP header has incorrect length.",
    );
    let res = send(
        app.post("/session/")
            .header(COOKIE, format!("sessionid={}", c.session))
            .header("X-CSRFToken", c.masked()),
    )
    .await;
    assert_403(&res, "CSRF Failed: CSRF cookie not set.");
}

pub(crate) async fn session_csrf_origin_checks<S: Store>(store: S) {
    let app = TestApp::start_with(store, |c| {
        c.csrf_trusted_origins = vec!["https://*.trusted.example".into()];
    })
    .await;
    app.user("ada", "lovelace").await;
    let c = app.login("ada", "lovelace").await;
    let post = |origin: &str| {
        app.post("/session/")
            .header(COOKIE, c.header())
            .header("X-CSRFToken", c.masked())
            .header(ORIGIN, origin)
    };
    let res = send(post("http://evil.example")).await;
    assert_403(
        &res,
        "CSRF Failed: Origin checking failed - http://evil.example does not match any trusted origins.",
    );
    assert_403(
        &send(post("null")).await,
        "CSRF Failed: Origin checking failed - null does not match any trusted origins.",
    );
    let own = format!("http://{}", app.host());
    assert_eq!(send(post(&own)).await.status, StatusCode::OK);
    assert_eq!(
        send(post("https://app.trusted.example")).await.status,
        StatusCode::OK
    );
    // Requests authenticated by another scheme need no token.
    let res = send(
        app.post("/api/example/")
            .header(AUTHORIZATION, basic("ada", "lovelace"))
            .header(ORIGIN, "http://evil.example"),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
}

pub(crate) async fn login_redirects_only_to_local_paths<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let page = send(app.get("/auth/login/")).await;
    let secret = page.cookie("csrftoken").unwrap();
    let cases = [
        (None, "/api/whoami/"),
        (Some("/admin-only/?x=1"), "/admin-only/?x=1"),
        (Some("https://evil.example/"), "/api/whoami/"),
        (Some("//evil.example/"), "/api/whoami/"),
        (Some("/\\evil.example/"), "/api/whoami/"),
        (Some("javascript:alert(1)"), "/api/whoami/"),
        (Some("/\r\nSet-Cookie: x=y"), "/api/whoami/"),
    ];
    for (next, location) in cases {
        let token = csrf::mask(&secret);
        let mut fields = vec![
            ("username", "ada"),
            ("password", "lovelace"),
            ("csrfmiddlewaretoken", token.as_str()),
        ];
        if let Some(n) = next {
            fields.push(("next", n));
        }
        let res = send(
            app.post("/auth/login/")
                .header(COOKIE, format!("csrftoken={secret}"))
                .form(&fields),
        )
        .await;
        assert_eq!(res.status, StatusCode::FOUND);
        assert_eq!(res.header("location"), Some(location), "{next:?}");
    }
    // `next` from the query string, as LoginView reads it.
    let res = send(
        app.post("/auth/login/?next=/basic/")
            .header(COOKIE, format!("csrftoken={secret}"))
            .header("X-CSRFToken", &secret)
            .form(&[("username", "ada"), ("password", "lovelace")]),
    )
    .await;
    assert_eq!(res.header("location"), Some("/basic/"));
}

pub(crate) async fn login_bad_credentials_rerender<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    app.create("idle", "sleepy", false, false).await;
    let page = send(app.get("/auth/login/")).await;
    let secret = page.cookie("csrftoken").unwrap();
    for (u, p) in [("ada", "wrong"), ("nobody", "x"), ("idle", "sleepy")] {
        let res = send(
            app.post("/auth/login/")
                .header(COOKIE, format!("csrftoken={secret}"))
                .form(&[
                    ("username", u),
                    ("password", p),
                    ("csrfmiddlewaretoken", &csrf::mask(&secret)),
                ]),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(res.header("content-type").unwrap().starts_with("text/html"));
        let html = res.text();
        assert!(
            html.contains("Please enter a correct username and password."),
            "{html}"
        );
        assert!(
            !html.contains(p) || p == "x",
            "the password is never echoed"
        );
        assert!(res.cookie("sessionid").is_none());
        assert!(csrf::token_matches(&form_token(&html), &secret));
    }
    let res = send(
        app.post("/auth/login/")
            .header(COOKIE, format!("csrftoken={secret}"))
            .form(&[
                ("username", "<b>ada</b>"),
                ("csrfmiddlewaretoken", &csrf::mask(&secret)),
            ]),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    let html = res.text();
    assert!(html.contains("This field is required."));
    assert!(html.contains("&lt;b&gt;ada&lt;/b&gt;") && !html.contains("<b>ada</b>"));
}

pub(crate) async fn login_needs_csrf<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let creds = [("username", "ada"), ("password", "lovelace")];
    let res = send(app.post("/auth/login/").form(&creds)).await;
    assert_403(&res, "CSRF Failed: CSRF cookie not set.");
    let secret = csrf::new_secret();
    let res = send(
        app.post("/auth/login/")
            .header(COOKIE, format!("csrftoken={secret}"))
            .form(&creds),
    )
    .await;
    assert_403(&res, CSRF_MISSING);
    let res = send(
        app.post("/auth/login/")
            .header(COOKIE, format!("csrftoken={secret}"))
            .header(ORIGIN, "https://evil.example")
            .header("X-CSRFToken", &secret)
            .form(&creds),
    )
    .await;
    assert_403(
        &res,
        "CSRF Failed: Origin checking failed - https://evil.example does not match any trusted origins.",
    );
    let res = send(
        app.post("/auth/login/")
            .header(COOKIE, format!("csrftoken={secret}"))
            .header("X-CSRFToken", &secret)
            .form(&creds),
    )
    .await;
    assert_eq!(res.status, StatusCode::FOUND);
}

pub(crate) async fn login_rotates_session_key_and_csrf<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let first = app.login("ada", "lovelace").await;
    assert_ok_as(
        &send(app.get("/session/").header(COOKIE, first.header())).await,
        "ada",
    );
    // Log in again from the same browser: the old key is ended.
    let res = send(
        app.post("/auth/login/")
            .header(COOKIE, first.header())
            .form(&[
                ("username", "ada"),
                ("password", "lovelace"),
                ("csrfmiddlewaretoken", &first.masked()),
            ]),
    )
    .await;
    assert_eq!(res.status, StatusCode::FOUND);
    let second = Cookies {
        session: res.cookie("sessionid").unwrap(),
        csrf: res.cookie("csrftoken").unwrap(),
    };
    assert_ne!(second.session, first.session);
    assert_ne!(second.csrf, first.csrf);
    assert_403(
        &send(app.get("/session/").header(COOKIE, first.header())).await,
        NOT_PROVIDED,
    );
    assert_ok_as(
        &send(app.get("/session/").header(COOKIE, second.header())).await,
        "ada",
    );
    // A deactivated user's session stops working.
    let ada = app.store.user_by_username("ada").await.unwrap().unwrap();
    app.store.set_active(ada.id, false).await.unwrap();
    assert_403(
        &within_a_second(StatusCode::FORBIDDEN, || {
            app.get("/session/").header(COOKIE, second.header())
        })
        .await,
        NOT_PROVIDED,
    );
}

pub(crate) async fn logout_ends_the_session<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let c = app.login("ada", "lovelace").await;
    let res = send(
        app.post("/auth/logout/")
            .header(COOKIE, c.header())
            .header("X-CSRFToken", c.masked()),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.json()["detail"].is_string());
    let cleared = res.set_cookie("sessionid").unwrap();
    assert!(cleared.starts_with("sessionid=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"));
    assert_403(
        &send(app.get("/session/").header(COOKIE, c.header())).await,
        NOT_PROVIDED,
    );
    // With a form token and a `next`.
    let c = app.login("ada", "lovelace").await;
    let res = send(app.post("/auth/logout/").header(COOKIE, c.header()).form(&[
        ("csrfmiddlewaretoken", c.masked().as_str()),
        ("next", "/auth/login/"),
    ]))
    .await;
    assert_eq!(res.status, StatusCode::FOUND);
    assert_eq!(res.header("location"), Some("/auth/login/"));
    assert_403(
        &send(app.get("/session/").header(COOKIE, c.header())).await,
        NOT_PROVIDED,
    );
    let res = send(app.get("/auth/logout/").header(COOKIE, c.header())).await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.detail(), "Method \"GET\" not allowed.");
}

pub(crate) async fn logout_needs_csrf<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let c = app.login("ada", "lovelace").await;
    assert_403(
        &send(app.post("/auth/logout/").header(COOKIE, c.header())).await,
        CSRF_MISSING,
    );
    // Still logged in.
    assert_ok_as(
        &send(app.get("/session/").header(COOKIE, c.header())).await,
        "ada",
    );
    // Anonymous logouts are CSRF-checked too.
    let res = send(app.post("/auth/logout/")).await;
    assert_403(&res, "CSRF Failed: CSRF cookie not set.");
    let secret = csrf::new_secret();
    let res = send(
        app.post("/auth/logout/")
            .header(COOKIE, format!("csrftoken={secret}"))
            .header("X-CSRFToken", &secret),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
}

// ---------------------------------------------------------------- malformed input

pub(crate) async fn malformed_headers_are_4xx_json<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let huge = "A".repeat(16 * 1024);
    let res = send(
        app.get("/basic/")
            .header(AUTHORIZATION, format!("Basic {huge}")),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.json()["detail"].is_string());
    let res = send(
        app.get("/token/")
            .header(AUTHORIZATION, format!("Token {huge}")),
    )
    .await;
    assert_401(&res, "Token", "Invalid token.");
    let res = send(app.get("/basic/").header(
        AUTHORIZATION,
        format!("Basic {}", b64(format!("{huge}:pw").as_bytes())),
    ))
    .await;
    assert_401(&res, BASIC_CHALLENGE, INVALID_BASIC);
    let res = send(
        app.get("/session/")
            .header(COOKIE, format!("sessionid={huge}; csrftoken={huge}")),
    )
    .await;
    assert_403(&res, NOT_PROVIDED);
    let res = send(
        app.get("/remote-user/")
            .header("Remote-User", huge.as_str()),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.json()["detail"].is_string());
    for path in [
        "/basic/",
        "/token/",
        "/customkeywordtoken/",
        "/admin-only/",
        "/api/whoami/",
        "/api/example/",
    ] {
        for h in [
            &b"\xff"[..],
            b"Basic \xc3\x28",
            b"Token \x80abc",
            b"Bearer \xfe",
            b"Basic    ",
            b"   ",
        ] {
            let res = send(app.get(path).header(AUTHORIZATION, raw(h))).await;
            assert!(
                res.status.is_client_error() || res.status == StatusCode::OK,
                "{path} {h:?}"
            );
            assert!(res.json().is_object());
        }
        let res = send(app.get(path).header(COOKIE, raw(b"sessionid=\xff\xfe"))).await;
        assert!(res.status.is_client_error() || res.status == StatusCode::OK);
        assert!(res.json().is_object());
    }
    // CSRF header with bytes that are not UTF-8.
    let c = app.login("ada", "lovelace").await;
    let res = send(
        app.post("/session/")
            .header(COOKIE, c.header())
            .header("X-CSRFToken", raw(b"\xff\xfe")),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.detail().starts_with("CSRF Failed: "));
    // A broken multipart body on a session POST reads no token.
    let res = send(
        app.post("/session/")
            .header(COOKIE, c.header())
            .header(CONTENT_TYPE, "multipart/form-data; boundary=x")
            .body("--x\r\nbroken"),
    )
    .await;
    assert_403(&res, CSRF_MISSING);
}

pub(crate) async fn oversized_bodies_are_413_json<S: Store>(store: S) {
    let app = TestApp::start_with(store, |c| c.form_limit = 4096).await;
    app.user("ada", "lovelace").await;
    let big = format!("username=ada&password={}", "x".repeat(10_000));
    let res = send(
        app.post("/auth-token/")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(big.clone()),
    )
    .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.json()["detail"].is_string());
    let c = app.login("ada", "lovelace").await;
    for path in ["/session/", "/auth/login/", "/basic/", "/auth/logout/"] {
        let res = send(
            app.post(path)
                .header(COOKIE, c.header())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(big.clone()),
        )
        .await;
        assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert!(res.json()["detail"].is_string());
    }
    // A chunked body has no length to refuse up front: it is cut off while
    // it is read.
    let head = format!(
        "POST /auth-token/ HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.host()
    );
    let mut raw_req = head.into_bytes();
    for _ in 0..8 {
        raw_req.extend_from_slice(format!("{:x}\r\n{}\r\n", 1000, "x".repeat(1000)).as_bytes());
    }
    raw_req.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_http(app.host(), &raw_req).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    // Within the limit, all is well.
    let res = send(
        app.post("/auth-token/")
            .form(&[("username", "ada"), ("password", "lovelace")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
}

// ------------------------------------------------------------------ JWT

const BEARER_CHALLENGE: &str = "Bearer realm=\"api\"";
const NOT_VALID: &str = "Given token not valid for any token type";
const NO_ACTIVE: &str = "No active account found with the given credentials";

/// Obtains a pair for the user at `/api/token/`: `(access, refresh)`.
async fn jwt_pair<S: Store>(app: &TestApp<S>, user: &str, pw: &str) -> (String, String) {
    let res = send(
        app.post("/api/token/")
            .form(&[("username", user), ("password", pw)]),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body = res.json();
    (
        body["access"].as_str().expect("access").to_owned(),
        body["refresh"].as_str().expect("refresh").to_owned(),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// POSTs `{field: value}` as JSON to a token view.
async fn jwt_post<S: Store>(app: &TestApp<S>, path: &str, field: &str, value: &str) -> Res {
    send(app.post(path).json(&json!({ field: value }))).await
}

/// The body `/jwt/` answers a refused access token with.
fn not_valid(message: &str) -> Value {
    json!({
        "detail": NOT_VALID,
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}

fn assert_jwt_401(res: &Res, body: Value) {
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    assert_eq!(res.header("www-authenticate"), Some(BEARER_CHALLENGE));
    assert_eq!(res.json(), body);
}

/// A JWT's header and payload, decoded without checking anything.
fn jwt_parts(token: &str) -> (Value, Value) {
    fn b64url(s: &str) -> Vec<u8> {
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                b'_' => 63,
                _ => panic!("not base64url: {s}"),
            };
            bits = (bits << 6) | u32::from(v);
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
                bits &= (1 << n) - 1;
            }
        }
        out
    }
    let mut parts = token.split('.');
    let header = serde_json::from_slice(&b64url(parts.next().unwrap())).unwrap();
    let payload = serde_json::from_slice(&b64url(parts.next().unwrap())).unwrap();
    (header, payload)
}

/// Polls until `/jwt/` answers `want` for the token (the app caches users
/// for up to its cache TTL), then returns that response.
async fn jwt_eventually<S: Store>(app: &TestApp<S>, token: &str, want: StatusCode) -> Res {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let res = send(app.get("/jwt/").header(AUTHORIZATION, bearer(token))).await;
        if res.status == want || std::time::Instant::now() > deadline {
            return res;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub(crate) async fn jwt_obtain_form_json_multipart<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let (ct, body) = multipart(&[("username", "ada"), ("password", "lovelace")]);
    for rb in [
        app.post("/api/token/")
            .form(&[("username", "ada"), ("password", "lovelace")]),
        app.post("/api/token/")
            .json(&json!({"username": "ada", "password": "lovelace"})),
        app.post("/api/token/").header(CONTENT_TYPE, ct).body(body),
    ] {
        let res = send(rb).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.header("cache-control"), Some("no-store"));
        let body = res.json();
        let access = body["access"].as_str().unwrap();
        let refresh = body["refresh"].as_str().unwrap();
        assert_ne!(access, refresh);
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        let res = send(app.get("/jwt/").header(AUTHORIZATION, bearer(access))).await;
        let shown = assert_ok_as(&res, "ada");
        let auth = shown["auth"].as_str().unwrap();
        assert!(auth.starts_with("jwt access jti="), "{auth}");
        assert!(!auth.contains(access));
    }
}

pub(crate) async fn jwt_succeeds_on_every_method<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let (access, _) = jwt_pair(&app, "ada", "lovelace").await;
    for m in BODY_METHODS {
        let res = send(
            app.req(m.clone(), "/jwt/")
                .header(AUTHORIZATION, bearer(&access)),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{m} {}", res.text());
        if m != Method::OPTIONS {
            assert_ok_as(&res, "ada");
        }
    }
    let res = send(
        app.req(Method::HEAD, "/jwt/")
            .header(AUTHORIZATION, bearer(&access)),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    // RFC 7235: the keyword is case-insensitive.
    for keyword in ["bearer", "BEARER", "BeArEr"] {
        let res = send(
            app.get("/jwt/")
                .header(AUTHORIZATION, format!("{keyword} {access}")),
        )
        .await;
        assert_ok_as(&res, "ada");
    }
}

pub(crate) async fn jwt_without_credentials_is_401_with_challenge<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let ada = app.user("ada", "lovelace").await;
    let token = app.token(&ada).await;
    for header in [
        None,
        Some(basic("ada", "lovelace")),
        Some(format!("Token {token}")),
    ] {
        let mut rb = app.get("/jwt/");
        if let Some(h) = header {
            rb = rb.header(AUTHORIZATION, h);
        }
        // Other schemes' credentials are not this route's: not provided.
        assert_401(&send(rb).await, BEARER_CHALLENGE, NOT_PROVIDED);
    }
}

pub(crate) async fn jwt_refused_tokens_have_simplejwt_bodies<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let (access, refresh) = jwt_pair(&app, "ada", "lovelace").await;
    let get = |h: String| send(app.get("/jwt/").header(AUTHORIZATION, h));
    assert_jwt_401(&get(bearer("garbage")).await, not_valid("Token is invalid"));
    assert_jwt_401(&get(bearer("a.b.c")).await, not_valid("Token is invalid"));
    // A refresh token is not an access token.
    assert_jwt_401(
        &get(bearer(&refresh)).await,
        not_valid("Token has wrong type"),
    );
    // A tampered signature.
    let mut tampered = access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_jwt_401(&get(bearer(&tampered)).await, not_valid("Token is invalid"));
    // A token signed with another secret.
    let other = TestApp::start_with(app.store.clone(), |c| {
        c.secret = portcullis::SecretKey::new([7u8; 32]).unwrap();
    })
    .await;
    let (foreign, _) = jwt_pair(&other, "ada", "lovelace").await;
    assert_jwt_401(&get(bearer(&foreign)).await, not_valid("Token is invalid"));
    // A malformed header.
    let bad_header = json!({
        "detail": "Authorization header must contain two space-delimited values",
        "code": "bad_authorization_header",
    });
    for h in ["Bearer".to_owned(), format!("Bearer {access} extra")] {
        assert_jwt_401(&get(h).await, bad_header.clone());
    }
}

pub(crate) async fn jwt_expired_tokens_are_refused<S: Store>(store: S) {
    let app = TestApp::start_with(store, |c| {
        c.jwt.access_token_lifetime = std::time::Duration::from_secs(1);
        c.jwt.refresh_token_lifetime = std::time::Duration::from_secs(1);
    })
    .await;
    app.user("ada", "lovelace").await;
    let (access, refresh) = jwt_pair(&app, "ada", "lovelace").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = send(app.get("/jwt/").header(AUTHORIZATION, bearer(&access))).await;
    assert_jwt_401(&res, not_valid("Token is expired"));
    let expired = json!({"detail": "Token is expired", "code": "token_not_valid"});
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &refresh).await;
    assert_jwt_401(&res, expired.clone());
    let res = jwt_post(&app, "/api/token/verify/", "token", &access).await;
    assert_jwt_401(&res, expired);
}

pub(crate) async fn jwt_inactive_and_deleted_users<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let ada = app.user("ada", "lovelace").await;
    let bob = app.user("bob", "builder").await;
    app.create("idle", "sleepy", false, false).await;
    // An inactive user gets no tokens, with the same answer as a wrong
    // password.
    let res = send(
        app.post("/api/token/")
            .form(&[("username", "idle"), ("password", "sleepy")]),
    )
    .await;
    assert_jwt_401(&res, json!({ "detail": NO_ACTIVE }));

    let (access, refresh) = jwt_pair(&app, "ada", "lovelace").await;
    app.store.set_active(ada.id, false).await.unwrap();
    let res = jwt_eventually(&app, &access, StatusCode::UNAUTHORIZED).await;
    assert_jwt_401(
        &res,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &refresh).await;
    assert_jwt_401(
        &res,
        json!({"detail": "No active account found for the given token."}),
    );

    let (access, _) = jwt_pair(&app, "bob", "builder").await;
    app.store.delete_user(bob.id).await.unwrap();
    let res = jwt_eventually(&app, &access, StatusCode::UNAUTHORIZED).await;
    assert_jwt_401(
        &res,
        json!({"detail": "User not found", "code": "user_not_found"}),
    );
}

pub(crate) async fn jwt_obtain_field_errors_and_bad_credentials<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let both = json!({"username": [REQUIRED], "password": [REQUIRED]});
    let res = send(app.post("/api/token/")).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json(), both);
    let res = send(app.post("/api/token/").json(&json!({}))).await;
    assert_eq!(res.json(), both);
    let res = send(app.post("/api/token/").form(&[("username", "ada")])).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json(), json!({"password": [REQUIRED]}));
    let res = send(
        app.post("/api/token/")
            .json(&json!({"password": "lovelace"})),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json(), json!({"username": [REQUIRED]}));
    for (u, p) in [
        ("ada", "wrong"),
        ("nobody", "lovelace"),
        ("ADA", "lovelace"),
    ] {
        let res = send(
            app.post("/api/token/")
                .form(&[("username", u), ("password", p)]),
        )
        .await;
        assert_jwt_401(&res, json!({ "detail": NO_ACTIVE }));
    }
    // Malformed bodies are 400 JSON; other types 415.
    let res = send(json_body(app.post("/api/token/"), "{not json")).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.detail().starts_with("JSON parse error"));
    let res = send(
        app.post("/api/token/")
            .header(CONTENT_TYPE, "text/plain")
            .body("username=ada"),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(res.json()["detail"].is_string());
}

pub(crate) async fn jwt_obtain_counts_towards_the_lockout<S: Store>(store: S) {
    let app = TestApp::start_with(store, |c| {
        c.lockout = Some(portcullis::Lockout::memory().with_failure_limit(3));
    })
    .await;
    app.user("ada", "lovelace").await;
    for _ in 0..3 {
        let res = send(
            app.post("/api/token/")
                .form(&[("username", "ada"), ("password", "wrong")]),
        )
        .await;
        assert_jwt_401(&res, json!({ "detail": NO_ACTIVE }));
    }
    // Locked out: the right password too, here and on /auth-token/.
    for path in ["/api/token/", "/auth-token/"] {
        let res = send(
            app.post(path)
                .form(&[("username", "ada"), ("password", "lovelace")]),
        )
        .await;
        assert_eq!(
            res.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{path} {}",
            res.text()
        );
        assert!(res.header("retry-after").is_some());
        assert!(res.detail().starts_with("Request was throttled."));
    }
}

pub(crate) async fn jwt_refresh_verify_blacklist<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let (access, refresh) = jwt_pair(&app, "ada", "lovelace").await;

    // Refresh: a new access token only (no rotation by default).
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body = res.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let fresh = body["access"].as_str().unwrap().to_owned();
    assert_ne!(fresh, access);
    assert_ok_as(
        &send(app.get("/jwt/").header(AUTHORIZATION, bearer(&fresh))).await,
        "ada",
    );
    // Form bodies work too.
    let res = send(
        app.post("/api/token/refresh/")
            .form(&[("refresh", refresh.as_str())]),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    // An access token is no refresh token.
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &access).await;
    assert_jwt_401(
        &res,
        json!({"detail": "Token has wrong type", "code": "token_not_valid"}),
    );

    // Verify: any valid token.
    for token in [&access, &refresh] {
        let res = jwt_post(&app, "/api/token/verify/", "token", token).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.json(), json!({}));
    }
    let res = jwt_post(&app, "/api/token/verify/", "token", "garbage").await;
    assert_jwt_401(
        &res,
        json!({"detail": "Token is invalid", "code": "token_not_valid"}),
    );

    // Missing fields.
    for (path, field) in [
        ("/api/token/refresh/", "refresh"),
        ("/api/token/verify/", "token"),
        ("/api/token/blacklist/", "refresh"),
    ] {
        let res = send(app.post(path).json(&json!({}))).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(res.json(), json!({ field: [REQUIRED] }));
        let res = send(json_body(app.post(path), "[")).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(res.detail().starts_with("JSON parse error"));
    }

    // Blacklist: that refresh token is refused from now on.
    let res = jwt_post(&app, "/api/token/blacklist/", "refresh", &refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json(), json!({}));
    let blacklisted = json!({"detail": "Token is blacklisted", "code": "token_not_valid"});
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &refresh).await;
    assert_jwt_401(&res, blacklisted.clone());
    let res = jwt_post(&app, "/api/token/blacklist/", "refresh", &refresh).await;
    assert_jwt_401(&res, blacklisted);
    let res = jwt_post(&app, "/api/token/verify/", "token", &refresh).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json(),
        json!({"non_field_errors": ["Token is blacklisted"]})
    );
    // Access tokens live on until they expire, as in simplejwt.
    assert_ok_as(
        &send(app.get("/jwt/").header(AUTHORIZATION, bearer(&access))).await,
        "ada",
    );
    // A new login is unaffected.
    let (_, again) = jwt_pair(&app, "ada", "lovelace").await;
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &again).await;
    assert_eq!(res.status, StatusCode::OK);
}

pub(crate) async fn jwt_rotation<S: Store>(store: S) {
    let app = TestApp::start_with(store, |c| c.jwt.rotate_refresh_tokens = true).await;
    app.user("ada", "lovelace").await;
    let (_, refresh) = jwt_pair(&app, "ada", "lovelace").await;
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body = res.json();
    let rotated = body["refresh"].as_str().expect("a rotated refresh token");
    assert_ne!(rotated, refresh);
    assert_ok_as(
        &send(
            app.get("/jwt/")
                .header(AUTHORIZATION, bearer(body["access"].as_str().unwrap())),
        )
        .await,
        "ada",
    );
    // Without blacklist-after-rotation the old one still works.
    for token in [refresh.as_str(), rotated] {
        let res = jwt_post(&app, "/api/token/refresh/", "refresh", token).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }
}

pub(crate) async fn jwt_blacklist_after_rotation<S: Store>(store: S) {
    let app = TestApp::start_with(store, |c| {
        c.jwt.rotate_refresh_tokens = true;
        c.jwt.blacklist_after_rotation = true;
    })
    .await;
    app.user("ada", "lovelace").await;
    let (_, refresh) = jwt_pair(&app, "ada", "lovelace").await;
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let rotated = res.json()["refresh"].as_str().unwrap().to_owned();
    // The used token is blacklisted; the new one works, once.
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &refresh).await;
    assert_jwt_401(
        &res,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
    );
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &rotated).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &rotated).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

pub(crate) async fn jwt_claims_are_simplejwts<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let ada = app.user("ada", "lovelace").await;
    let (access, refresh) = jwt_pair(&app, "ada", "lovelace").await;
    let (header, a) = jwt_parts(&access);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
    let (_, r) = jwt_parts(&refresh);
    assert_eq!(a["token_type"], "access");
    assert_eq!(r["token_type"], "refresh");
    assert_eq!(a["user_id"], json!(ada.id));
    assert_eq!(r["user_id"], json!(ada.id));
    let life = |p: &Value| p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap();
    assert_eq!(life(&a), 300);
    assert_eq!(life(&r), 86_400);
    for p in [&a, &r] {
        let jti = p["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 32);
        assert!(jti.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_ne!(a["jti"], r["jti"]);
}

pub(crate) async fn jwt_jwks_is_empty_for_hs256<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    let res = send(app.get("/.well-known/jwks.json")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"keys": []}));
    let res = send(app.post("/.well-known/jwks.json")).await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(res.json()["detail"].is_string());
}

pub(crate) async fn jwt_asymmetric_key_signs_and_is_published<S: Store>(store: S) {
    use portcullis::jwt::{generate_key_pair, Algorithm, JwtKey};
    let pair = generate_key_pair(Algorithm::ES256).unwrap();
    let key = JwtKey::private_pem(Algorithm::ES256, &pair.private_pem).unwrap();
    let app = TestApp::start_with(store, move |c| {
        c.jwt.algorithm = Algorithm::ES256;
        c.jwt.signing_key = Some(key);
    })
    .await;
    app.user("ada", "lovelace").await;
    let jwks = send(app.get("/.well-known/jwks.json")).await.json();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["alg"], "ES256");
    assert!(keys[0].get("d").is_none(), "no private part: {jwks}");
    let (access, refresh) = jwt_pair(&app, "ada", "lovelace").await;
    assert_eq!(jwt_parts(&access).0["alg"], "ES256");
    assert_ok_as(
        &send(app.get("/jwt/").header(AUTHORIZATION, bearer(&access))).await,
        "ada",
    );
    let res = jwt_post(&app, "/api/token/refresh/", "refresh", &refresh).await;
    assert_eq!(res.status, StatusCode::OK);
}

pub(crate) async fn jwt_token_views_answer_post_only<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    for path in [
        "/api/token/",
        "/api/token/refresh/",
        "/api/token/verify/",
        "/api/token/blacklist/",
    ] {
        for m in [Method::GET, Method::PUT, Method::DELETE] {
            let res = send(app.req(m.clone(), path)).await;
            assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
            assert_eq!(res.header("allow"), Some("POST, OPTIONS"));
            assert!(res.json()["detail"].is_string());
        }
        let res = send(app.req(Method::OPTIONS, path)).await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(res.json()["name"].is_string());
    }
}

// ------------------------------------------------ throttling and lockout

/// A client whose requests come from `ip` (any 127.0.0.0/8 address reaches
/// the loopback server), so one test can play several clients.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A `429` with a `Retry-After` of 1 to `max` seconds and DRF's message
/// naming the same number.
fn assert_429(res: &Res, max: u64) {
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.text());
    let wait: u64 = res
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=max).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        res.detail(),
        format!("Request was throttled. Expected available in {wait} seconds.")
    );
}

/// Logs in through the form with `client`; the final response.
async fn form_login<S: Store>(
    app: &TestApp<S>,
    client: &reqwest::Client,
    user: &str,
    pw: &str,
) -> Res {
    let page = send(client.get(format!("{}/auth/login/", app.base))).await;
    let csrf = page.cookie("csrftoken").expect("csrftoken");
    let token = form_token(&page.text());
    send(
        client
            .post(format!("{}/auth/login/", app.base))
            .header(COOKIE, format!("csrftoken={csrf}"))
            .form(&[
                ("username", user),
                ("password", pw),
                ("csrfmiddlewaretoken", &token),
            ]),
    )
    .await
}

async fn token_login(base: &str, client: &reqwest::Client, user: &str, pw: &str) -> Res {
    send(
        client
            .post(format!("{base}/auth-token/"))
            .form(&[("username", user), ("password", pw)]),
    )
    .await
}

async fn basic_login(base: &str, client: &reqwest::Client, user: &str, pw: &str) -> Res {
    send(
        client
            .get(format!("{base}/basic/"))
            .header(AUTHORIZATION, basic(user, pw)),
    )
    .await
}

pub(crate) async fn throttled_anon_is_five_per_minute<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    for _ in 0..5 {
        let res = send(app.get("/throttled/")).await;
        let body = assert_ok_as(&res, "AnonymousUser");
        assert_eq!(body["is_authenticated"], false);
    }
    let res = send(app.get("/throttled/")).await;
    assert_429(&res, 60);
    // A forged X-Forwarded-For is not a new client (NUM_PROXIES = 0).
    let res = send(
        app.get("/throttled/")
            .header("x-forwarded-for", "203.0.113.7"),
    )
    .await;
    assert_429(&res, 60);
    // Another address has its own budget.
    let other = client_from("127.0.0.2");
    assert_eq!(
        send(other.get(format!("{}/throttled/", app.base)))
            .await
            .status,
        StatusCode::OK
    );
    // An authenticated user is not an anonymous request: the user rate applies.
    let res = send(
        app.get("/throttled/")
            .header(AUTHORIZATION, basic("ada", "lovelace")),
    )
    .await;
    assert_ok_as(&res, "ada");
}

pub(crate) async fn throttled_user_is_ten_per_minute<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    for _ in 0..10 {
        let res = send(
            app.get("/throttled/")
                .header(AUTHORIZATION, basic("ada", "lovelace")),
        )
        .await;
        assert_ok_as(&res, "ada");
    }
    let res = send(
        app.get("/throttled/")
            .header(AUTHORIZATION, basic("ada", "lovelace")),
    )
    .await;
    assert_429(&res, 60);
}

pub(crate) async fn throttled_scoped_is_three_per_minute<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    for _ in 0..3 {
        assert_ok_as(&send(app.get("/throttled-scoped/")).await, "AnonymousUser");
    }
    assert_429(&send(app.post("/throttled-scoped/")).await, 60);
    // Another scope, another budget.
    assert_ok_as(&send(app.get("/throttled/")).await, "AnonymousUser");
    // The route is otherwise /api/whoami/.
    assert_eq!(send(app.get("/api/whoami/")).await.status, StatusCode::OK);
}

pub(crate) async fn lockout_basic_refuses_the_right_password<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    app.user("bob", "builder").await;
    for _ in 0..5 {
        let res = basic_login(&app.base, &app.client, "ada", "wrong").await;
        assert_401(&res, BASIC_CHALLENGE, INVALID_BASIC);
    }
    let res = basic_login(&app.base, &app.client, "ada", "lovelace").await;
    assert_429(&res, 900);
    // The address reached the limit too: every username is refused from it.
    let res = basic_login(&app.base, &app.client, "bob", "builder").await;
    assert_429(&res, 900);
    // The username is refused from anywhere.
    let elsewhere = client_from("127.0.0.2");
    assert_429(
        &basic_login(&app.base, &elsewhere, "ada", "lovelace").await,
        900,
    );
    assert_ok_as(
        &basic_login(&app.base, &elsewhere, "bob", "builder").await,
        "bob",
    );
    // Other schemes are not logins: a token still works.
    let bob = app.store.user_by_username("bob").await.unwrap().unwrap();
    let key = app.token(&bob).await;
    let res = send(
        app.get("/token/")
            .header(AUTHORIZATION, format!("Token {key}")),
    )
    .await;
    assert_ok_as(&res, "bob");
}

pub(crate) async fn lockout_auth_token<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    for _ in 0..5 {
        let res = token_login(&app.base, &app.client, "ada", "wrong").await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert_eq!(res.json(), json!({"non_field_errors": [UNABLE]}));
    }
    let res = token_login(&app.base, &app.client, "ada", "lovelace").await;
    assert_429(&res, 900);
    assert!(res.json().get("token").is_none());
}

pub(crate) async fn lockout_login_form<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    for _ in 0..5 {
        let res = form_login(&app, &app.client, "ada", "wrong").await;
        assert_eq!(res.status, StatusCode::OK, "re-rendered");
        assert!(res.text().contains("Please enter a correct username"));
    }
    let res = form_login(&app, &app.client, "ada", "lovelace").await;
    assert_429(&res, 900);
    assert!(res.cookie("sessionid").is_none());
}

pub(crate) async fn lockout_counts_every_login_path_together<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let (a, b) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    basic_login(&app.base, &a, "ada", "wrong").await;
    basic_login(&app.base, &b, "ada", "wrong").await;
    token_login(&app.base, &a, "ada", "wrong").await;
    token_login(&app.base, &b, "ada", "wrong").await;
    let res = form_login(&app, &a, "ada", "wrong").await;
    assert_eq!(res.status, StatusCode::OK);
    // Five for the username, from two addresses with fewer each.
    let c = client_from("127.0.0.4");
    assert_429(&token_login(&app.base, &c, "ada", "lovelace").await, 900);
    assert_429(&form_login(&app, &c, "ada", "lovelace").await, 900);
    assert_429(&basic_login(&app.base, &c, "ada", "lovelace").await, 900);
}

pub(crate) async fn lockout_success_before_the_limit_resets_the_username<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let (a, b) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    for _ in 0..4 {
        token_login(&app.base, &a, "ada", "wrong").await;
    }
    let res = token_login(&app.base, &a, "ada", "lovelace").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // Four more from elsewhere: without the reset this would be eight.
    for _ in 0..4 {
        basic_login(&app.base, &b, "ada", "wrong").await;
    }
    assert_ok_as(&basic_login(&app.base, &b, "ada", "lovelace").await, "ada");
}

pub(crate) async fn lockout_counts_unknown_usernames<S: Store>(store: S) {
    let app = TestApp::start(store).await;
    app.user("ada", "lovelace").await;
    let (a, b) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    for _ in 0..5 {
        let res = token_login(&app.base, &a, "ghost", "boo").await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
    }
    // The unknown username is locked like a real one, from anywhere ...
    assert_429(&token_login(&app.base, &b, "ghost", "boo").await, 900);
    // ... and so is the address that guessed it, for every username.
    assert_429(&token_login(&app.base, &a, "ada", "lovelace").await, 900);
    let res = token_login(&app.base, &b, "ada", "lovelace").await;
    assert_eq!(res.status, StatusCode::OK);
}
