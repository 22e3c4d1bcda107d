use http::Method;

use super::*;
use crate::replay::MemoryReplayCache;
use crate::store::{MemoryStore, NewUser, UserAdmin};
use crate::User;

fn secret() -> SecretKey {
    SecretKey::new([5u8; 32]).unwrap()
}

/// The example in hueniverse/hawk's README (key `werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn`,
/// id `dh37fgj492je`): payload hash and header MAC.
#[test]
fn hawk_readme_vectors() {
    assert_eq!(
        payload_hash("text/plain", b"Thank you for flying Hawk"),
        "Yi9LfIIFRtBEPt74PVmbTF/xVAwPn7ub15ePICfgnuY="
    );
    let mut c = Client::new(
        "dh37fgj492je",
        "werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn",
        "POST",
        "/resource/1?b=1&a=2",
        "example.com",
        8000,
    );
    c.ts = 1353832234;
    c.nonce = "j4h3g2".into();
    c.ext = Some("some-app-ext-data");
    c.payload = Some(("text/plain", b"Thank you for flying Hawk"));
    let h = c.authorization();
    assert!(
        h.contains("mac=\"aSe1DERmZuRl3pI36/9BdZmnErTw3sNzOOAUlfeKjVw=\""),
        "{h}"
    );
}

#[test]
fn hostile_headers_are_refused() {
    for bad in [
        "Hawk",
        "Hawk id=\"a\"",
        "Hawk id=\"a\", ts=\"1\", nonce=\"n\", mac=\"m\", id=\"b\"",
        "Hawk id=\"a\", ts=\"x1\", nonce=\"n\", mac=\"m\"",
        "Hawk id=\"a\", ts=\"1\", nonce=\"n\", mac=\"m\", evil=\"1\"",
        "Hawk id=\"a\", ts=\"1\", nonce=\"n\", mac=\"m\", ext=\"a\\\"b\"",
        "Hawk id=\"a\", ts=\"1\", nonce=\"n\", mac=\"m",
        "Hawk id=\"a\", ts=\"99999999999999999999\", nonce=\"n\", mac=\"m\"",
    ] {
        let v = HeaderValue::from_str(bad).unwrap();
        assert!(matches!(parse(&v), Err(AuthError::Failed(_))), "{bad}");
    }
    let huge = format!(
        "Hawk id=\"a\", ts=\"1\", nonce=\"n\", mac=\"m\", ext=\"{}\"",
        "x".repeat(9000)
    );
    assert!(parse(&HeaderValue::from_str(&huge).unwrap()).is_err());
    assert!(parse(&HeaderValue::from_static("Bearer x"))
        .unwrap()
        .is_none());
    assert!(parse(&HeaderValue::from_bytes(b"Hawk id=\"\xff\"").unwrap()).is_err());
}

struct World {
    store: MemoryStore,
    hawk: Hawk<MemoryStore>,
    user: User,
    id: String,
    key: String,
}

async fn world() -> World {
    let store = MemoryStore::new();
    let user = store
        .create_user(NewUser {
            username: "ada".into(),
            is_active: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let (id, key) = issue(&store, &secret(), user.id).await.unwrap();
    let hawk = Hawk::new(store.clone(), secret(), MemoryReplayCache::new());
    World {
        store,
        hawk,
        user,
        id,
        key,
    }
}

async fn send(
    w: &World,
    method: Method,
    uri: &str,
    auth: &str,
    ct: &str,
    body: Option<&[u8]>,
) -> Outcome<User> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(HOST, "example.com:8000")
        .header(AUTHORIZATION, auth)
        .header(CONTENT_TYPE, ct)
        .body(())
        .unwrap();
    if let Some(b) = body {
        req.extensions_mut()
            .insert(RequestBody(bytes::Bytes::copy_from_slice(b)));
    }
    w.hawk.authenticate(&RequestHead::from_request(&req)).await
}

fn detail(o: Outcome<User>) -> String {
    match o {
        Err(AuthError::Failed(f)) => f.detail.to_string(),
        Err(e) => format!("other: {e}"),
        Ok(_) => "ok".into(),
    }
}

#[tokio::test]
async fn signed_requests_authenticate_once_and_can_be_answered() {
    let w = world().await;
    let body = br#"{"a": 1}"#;
    let mut c = Client::new(&w.id, &w.key, "POST", "/h/?q=1", "Example.COM", 8000);
    c.payload = Some(("application/json; charset=utf-8", body));
    let h = c.authorization();
    let ok = send(
        &w,
        Method::POST,
        "/h/?q=1",
        &h,
        "application/json; charset=utf-8",
        Some(body),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(ok.user.id, w.user.id);
    let info = ok.auth.unwrap();
    assert_eq!(info.description(), format!("Hawk id {}", w.id));
    let artifacts = info.data::<Artifacts>().unwrap();
    assert!(!format!("{artifacts:?}").contains(&w.key));
    let sa = artifacts.server_authorization("application/json", b"{}");
    assert!(sa.to_str().unwrap().starts_with("Hawk mac=\""));
    assert_eq!(
        detail(
            send(
                &w,
                Method::POST,
                "/h/?q=1",
                &h,
                "application/json; charset=utf-8",
                Some(body)
            )
            .await
        ),
        REPLAYED
    );
}

#[tokio::test]
async fn tampering_fails() {
    let w = world().await;
    let body = b"amount=1";
    let mut c = Client::new(&w.id, &w.key, "POST", "/h/", "example.com", 8000);
    c.payload = Some(("text/plain", body));
    let h = c.authorization();
    assert_eq!(
        detail(send(&w, Method::POST, "/h/", &h, "text/plain", Some(b"amount=9")).await),
        BAD_HASH
    );
    assert_eq!(
        detail(send(&w, Method::POST, "/h/", &h, "text/html", Some(body)).await),
        BAD_HASH
    );
    assert_eq!(
        detail(send(&w, Method::PUT, "/h/", &h, "text/plain", Some(body)).await),
        BAD_MAC
    );
    assert_eq!(
        detail(send(&w, Method::POST, "/h/x", &h, "text/plain", Some(body)).await),
        BAD_MAC
    );
    let wrong_key = Client::new(&w.id, "not-the-key", "GET", "/h/", "example.com", 8000);
    assert_eq!(
        detail(send(&w, Method::GET, "/h/", &wrong_key.authorization(), "", None).await),
        BAD_MAC
    );
    let unknown = Client::new("nobody", &w.key, "GET", "/h/", "example.com", 8000);
    assert_eq!(
        detail(send(&w, Method::GET, "/h/", &unknown.authorization(), "", None).await),
        UNKNOWN_CREDENTIALS
    );
    // Nothing above burnt the nonce.
    assert!(send(&w, Method::POST, "/h/", &h, "text/plain", Some(body))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_body_needs_a_payload_hash() {
    let w = world().await;
    // Signed without a payload, so without `hash`.
    let h = Client::new(&w.id, &w.key, "POST", "/h/", "example.com", 8000).authorization();
    let request = |header: Option<(&str, &str)>| {
        let mut b = http::Request::builder()
            .method(Method::POST)
            .uri("/h/")
            .header(HOST, "example.com:8000")
            .header(AUTHORIZATION, &h);
        if let Some((name, value)) = header {
            b = b.header(name, value);
        }
        b.body(()).unwrap()
    };
    for body in [
        ("content-length", "10"),
        ("content-length", "x"),
        ("transfer-encoding", "chunked"),
    ] {
        let req = request(Some(body));
        let got = w.hawk.authenticate(&RequestHead::from_request(&req)).await;
        assert_eq!(detail(got), MISSING_HASH, "{body:?}");
    }
    // No body: nothing to hash. (Nothing above burnt the nonce.)
    let req = request(Some(("content-length", "0")));
    assert_eq!(
        detail(w.hawk.authenticate(&RequestHead::from_request(&req)).await),
        "ok"
    );
    let req = request(None);
    assert_eq!(
        detail(w.hawk.authenticate(&RequestHead::from_request(&req)).await),
        REPLAYED
    );
}

#[tokio::test]
async fn stale_timestamps_get_ts_and_tsm() {
    let w = world().await;
    let mut c = Client::new(&w.id, &w.key, "GET", "/h/", "example.com", 8000);
    c.ts -= 120;
    let Err(AuthError::Failed(f)) =
        send(&w, Method::GET, "/h/", &c.authorization(), "", None).await
    else {
        panic!("stale timestamp accepted");
    };
    assert_eq!(f.detail, STALE);
    let ch = f.challenge.unwrap();
    let params =
        auth_param::parse(auth_param::strip_keyword(ch.to_str().unwrap(), "hawk").unwrap())
            .unwrap();
    let ts = auth_param::get(&params, "ts").unwrap();
    let tsm = auth_param::get(&params, "tsm").unwrap();
    assert_eq!(
        tsm,
        hmac_b64(w.key.as_bytes(), &format!("hawk.1.ts\n{ts}\n"))
    );
    assert_eq!(auth_param::get(&params, "error"), Some(STALE));
}

#[tokio::test]
async fn inactive_users_and_a_down_store_are_refused() {
    let w = world().await;
    w.store.set_active(w.user.id, false).await.unwrap();
    let c = Client::new(&w.id, &w.key, "GET", "/h/", "example.com", 8000);
    assert_eq!(
        detail(send(&w, Method::GET, "/h/", &c.authorization(), "", None).await),
        INACTIVE
    );
    w.store.set_down(true);
    let c = Client::new(&w.id, &w.key, "GET", "/h/", "example.com", 8000);
    assert!(matches!(
        send(&w, Method::GET, "/h/", &c.authorization(), "", None).await,
        Err(AuthError::Store(_))
    ));
}

#[tokio::test]
async fn keys_are_sealed_at_rest() {
    let w = world().await;
    let stored = w.store.hawk_credential(&w.id).await.unwrap().unwrap();
    assert!(!stored.sealed_key.contains(&w.key));
    assert_eq!(
        secret()
            .open(&seal_purpose(&w.id), &stored.sealed_key)
            .unwrap(),
        w.key.as_bytes()
    );
    assert!(!format!("{stored:?}").contains(&stored.sealed_key));
}
