//! `/digest/` and `/hawk/` in process, on the memory store: what the real
//! clients in `digest_hawk_interop.rs` do not exercise (Digest's
//! `auth-int` through the layer's body reading, the body limit, Hawk
//! payload hashes on other methods).

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use portcullis::scheme::digest::{self, Algorithm, Client as DigestClient};
use portcullis::scheme::hawk::{self, Client as HawkClient};
use portcullis::store::{MemoryStore, NewUser, UserAdmin};
use portcullis::SecretKey;
use portcullis_cli::app::{router, AppConfig};
use tower::ServiceExt;

const LIMIT: usize = 1024;

struct App {
    router: Router,
    hawk: (String, String),
}

async fn app() -> App {
    let store = MemoryStore::new();
    let secret = SecretKey::new([9u8; 32]).unwrap();
    let ada = store
        .create_user(NewUser {
            username: "ada".into(),
            password_hash: "pbkdf2_sha256$1$salt$hash".into(),
            is_active: true,
            ..Default::default()
        })
        .await
        .unwrap();
    digest::store_password(&store, &secret, "api", &ada, Some("lovelace"))
        .await
        .unwrap();
    let hawk = hawk::issue(&store, &secret, ada.id).await.unwrap();
    let mut config = AppConfig::new(secret);
    config.form_limit = LIMIT;
    App {
        router: router(store, config),
        hawk,
    }
}

async fn send(app: &App, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

/// A fresh nonce from the route's SHA-256 challenge.
async fn nonce(app: &App) -> String {
    let (status, headers, body) =
        send(app, Request::get("/digest/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("\"detail\""), "{body}");
    let all: Vec<_> = headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].contains("algorithm=SHA-256") && all[1].contains("algorithm=MD5"));
    for c in &all {
        assert!(
            c.starts_with("Digest realm=\"api\", qop=\"auth, auth-int\""),
            "{c}"
        );
        assert!(c.contains("opaque=\""), "{c}");
    }
    let start = all[0].find("nonce=\"").unwrap() + 7;
    let end = start + all[0][start..].find('"').unwrap();
    all[0][start..end].to_owned()
}

fn digest_post(auth: String, body: &'static [u8]) -> Request<Body> {
    Request::post("/digest/")
        .header(header::AUTHORIZATION, auth)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn auth_int_is_checked_against_the_body_the_app_receives() {
    let app = app().await;
    for alg in [Algorithm::Sha256, Algorithm::Md5Sess] {
        let n = nonce(&app).await;
        let mut c = DigestClient::new("ada", "lovelace", "api", &n, "POST", "/digest/");
        c.algorithm = alg;
        c.body = Some(b"{\"amount\": 1}");
        let (status, _, body) =
            send(&app, digest_post(c.authorization(), b"{\"amount\": 1}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, r#"{"auth":null,"user":"ada"}"#);
        c.nc = 2;
        let (status, _, _) = send(&app, digest_post(c.authorization(), b"{\"amount\": 9}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn an_oversized_signed_body_is_413() {
    let app = app().await;
    let n = nonce(&app).await;
    let mut c = DigestClient::new("ada", "lovelace", "api", &n, "POST", "/digest/");
    let big: &'static [u8] = Box::leak(vec![b'x'; LIMIT + 1].into_boxed_slice());
    c.body = Some(big);
    let (status, _, body) = send(&app, digest_post(c.authorization(), big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body.contains("\"detail\""), "{body}");
}

#[tokio::test]
async fn hawk_payload_hashes_on_every_method() {
    let app = app().await;
    let (id, key) = &app.hawk;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let body = br#"{"a": [1, 2]}"#;
        let mut c = HawkClient::new(id, key, method, "/hawk/?x=1", "api.example", 8443);
        c.payload = Some(("application/json", body));
        let req = |b: &'static [u8]| {
            Request::builder()
                .method(method)
                .uri("/hawk/?x=1")
                .header(header::HOST, "api.example:8443")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, c.authorization())
                .body(Body::from(b))
                .unwrap()
        };
        let (status, headers, text) = send(&app, req(body)).await;
        assert_eq!(status, StatusCode::OK, "{method}: {text}");
        assert_eq!(text, format!(r#"{{"auth":"Hawk id {id}","user":"ada"}}"#));
        let sa = headers["server-authorization"].to_str().unwrap();
        assert!(
            sa.starts_with("Hawk mac=\"") && sa.contains("hash=\""),
            "{sa}"
        );
        // Same nonce, other body: refused (hash first, then the replay).
        let (status, headers, _) = send(&app, req(b"{}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.get("server-authorization").is_none());
    }
}

#[tokio::test]
async fn hawk_without_credentials_is_challenged() {
    let app = app().await;
    let (status, headers, body) =
        send(&app, Request::get("/hawk/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Hawk");
    assert_eq!(
        body,
        r#"{"detail":"Authentication credentials were not provided."}"#
    );
}
