use std::net::{IpAddr, Ipv4Addr};

use http::Method;

use super::*;
use crate::replay::MemoryReplayCache;
use crate::store::{MemoryStore, NewUser, UserAdmin};
use crate::User;

fn secret() -> SecretKey {
    SecretKey::new([3u8; 32]).unwrap()
}

fn creds(c: &Client<'_>) -> Credentials {
    parse(&HeaderValue::from_str(&c.authorization()).unwrap())
        .unwrap()
        .unwrap()
}

/// RFC 7616 §3.9.1: the same request with MD5 and SHA-256.
#[test]
fn rfc_7616_example_responses() {
    let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    let mut c = Client::new(
        "Mufasa",
        "Circle of Life",
        "http-auth@example.org",
        nonce,
        "GET",
        "/dir/index.html",
    );
    c.cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    assert_eq!(creds(&c).response, "8ca523f5e9506fed4657c9700eebdbec");
    c.algorithm = Algorithm::Sha256;
    assert_eq!(
        creds(&c).response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn other_schemes_pass() {
    assert!(parse(&HeaderValue::from_static("Basic YWRhOnB3"))
        .unwrap()
        .is_none());
    assert!(parse(&HeaderValue::from_static("Digestive x=1"))
        .unwrap()
        .is_none());
    assert!(parse(&HeaderValue::from_bytes(b"Token \xff").unwrap())
        .unwrap()
        .is_none());
}

#[test]
fn hostile_headers_are_refused_not_panicked_on() {
    let ok = r#"username="a", realm="api", nonce="n", uri="/", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="c""#;
    assert!(parse(&HeaderValue::from_str(&format!("Digest {ok}")).unwrap()).is_ok());
    let cases = [
        "Digest".to_owned(),
        "Digest username=\"a".to_owned(),
        format!("Digest {ok}, username=\"b\""),
        format!("Digest {ok}, algorithm=SHA-512"),
        format!("Digest {ok}, userhash=true"),
        ok.replace("qop=auth", "qop=auth-conf"),
        ok.replace("qop=auth,", ""),
        ok.replace("nc=00000001", "nc=1"),
        ok.replace("nc=00000001", "nc=0000000g"),
        ok.replace("nc=00000001", "nc=00000000"),
        ok.replace("0123456789abcdef0123456789abcdef", "xyz"),
        format!("Digest {ok}, opaque=\"{}\"", "x".repeat(10_000)),
        format!("Digest {ok}, junk"),
        format!("Digest {}", ok.replace("cnonce=\"c\"", "")),
    ];
    for case in cases {
        let v = HeaderValue::from_str(&case).unwrap();
        let e = parse(&v);
        let e = if case.starts_with("Digest") {
            e
        } else {
            parse(&HeaderValue::from_str(&format!("Digest {case}")).unwrap())
        };
        assert!(matches!(e, Err(AuthError::Failed(_))), "{case:.80}");
    }
    let latin = HeaderValue::from_bytes(b"Digest username=\"\xe9\"").unwrap();
    assert!(parse(&latin).is_err());
}

#[test]
fn extended_usernames_are_decoded() {
    let v = HeaderValue::from_static(
        r#"Digest username*=UTF-8''J%C3%A4s%C3%B8n, realm="api", nonce="n", uri="/", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="c""#,
    );
    assert_eq!(parse(&v).unwrap().unwrap().username, "Jäsøn");
}

struct World {
    store: MemoryStore,
    digest: Digest<MemoryStore>,
    ada: User,
}

async fn world(lockout: Option<Lockout>) -> World {
    let store = MemoryStore::new();
    let ada = store
        .create_user(NewUser {
            username: "ada".into(),
            password_hash: "pbkdf2_sha256$1$s$h".into(),
            is_active: true,
            ..Default::default()
        })
        .await
        .unwrap();
    store_password(&store, &secret(), "api", &ada, Some("pw"))
        .await
        .unwrap();
    let mut digest = Digest::new(store.clone(), secret(), MemoryReplayCache::new());
    if let Some(l) = lockout {
        digest = digest.with_lockout(l);
    }
    World { store, digest, ada }
}

async fn send(
    d: &Digest<MemoryStore>,
    method: Method,
    uri: &str,
    auth: &str,
    body: Option<&[u8]>,
) -> Outcome<User> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(AUTHORIZATION, auth)
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(crate::throttle::ClientAddr(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    if let Some(b) = body {
        req.extensions_mut()
            .insert(RequestBody(Bytes::copy_from_slice(b)));
    }
    d.authenticate(&RequestHead::from_request(&req)).await
}

fn detail(o: Outcome<User>) -> String {
    match o {
        Err(AuthError::Failed(f)) => f.detail.to_string(),
        Err(e) => format!("other error: {e}"),
        Ok(_) => "ok".into(),
    }
}

#[tokio::test]
async fn every_algorithm_and_qop_authenticates_once() {
    let w = world(None).await;
    for alg in [
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
    ] {
        for body in [None, Some(&b"{\"a\": 1}"[..])] {
            let nonce = w.digest.nonce();
            let mut c = Client::new("ada", "pw", "api", &nonce, "POST", "/d/?x=1");
            c.algorithm = alg;
            c.body = body;
            let h = c.authorization();
            let got = send(&w.digest, Method::POST, "/d/?x=1", &h, body.or(Some(b"")))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got.user.username, "ada");
            assert!(got.auth.is_none());
            assert_eq!(
                detail(send(&w.digest, Method::POST, "/d/?x=1", &h, body.or(Some(b""))).await),
                REPLAYED,
                "{alg:?}"
            );
            c.nc = 2;
            assert!(send(
                &w.digest,
                Method::POST,
                "/d/?x=1",
                &c.authorization(),
                body.or(Some(b""))
            )
            .await
            .is_ok());
        }
    }
}

#[tokio::test]
async fn auth_int_covers_the_body() {
    let w = world(None).await;
    let nonce = w.digest.nonce();
    let mut c = Client::new("ada", "pw", "api", &nonce, "POST", "/");
    c.body = Some(b"amount=1");
    let h = c.authorization();
    assert_eq!(
        detail(send(&w.digest, Method::POST, "/", &h, Some(b"amount=1000")).await),
        INVALID_CREDENTIALS
    );
    // Without the body in the extensions the scheme refuses.
    assert_eq!(
        detail(send(&w.digest, Method::POST, "/", &h, None).await),
        INVALID_CREDENTIALS
    );
}

#[tokio::test]
async fn wrong_uri_method_realm_opaque_and_forged_nonces_fail() {
    let w = world(None).await;
    let nonce = w.digest.nonce();
    let c = Client::new("ada", "pw", "api", &nonce, "GET", "/a/");
    let h = c.authorization();
    assert_eq!(
        detail(send(&w.digest, Method::GET, "/b/", &h, None).await),
        URI_MISMATCH
    );
    assert_eq!(
        detail(send(&w.digest, Method::DELETE, "/a/", &h, None).await),
        INVALID_CREDENTIALS
    );
    let other_realm = Client::new("ada", "pw", "other", &nonce, "GET", "/a/");
    assert_eq!(
        detail(
            send(
                &w.digest,
                Method::GET,
                "/a/",
                &other_realm.authorization(),
                None
            )
            .await
        ),
        INVALID_NONCE
    );
    let mut bad_opaque = c.clone();
    bad_opaque.opaque = Some("nope");
    assert_eq!(
        detail(
            send(
                &w.digest,
                Method::GET,
                "/a/",
                &bad_opaque.authorization(),
                None
            )
            .await
        ),
        INVALID_NONCE
    );
    let mut forged = nonce.clone().into_bytes();
    forged[63] = if forged[63] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).unwrap();
    let f = Client::new("ada", "pw", "api", &forged, "GET", "/a/");
    assert_eq!(
        detail(send(&w.digest, Method::GET, "/a/", &f.authorization(), None).await),
        INVALID_NONCE
    );
    let other = Digest::new(
        w.store.clone(),
        SecretKey::new([4u8; 32]).unwrap(),
        MemoryReplayCache::new(),
    );
    let foreign = other.nonce();
    let f = Client::new("ada", "pw", "api", &foreign, "GET", "/a/");
    assert_eq!(
        detail(send(&w.digest, Method::GET, "/a/", &f.authorization(), None).await),
        INVALID_NONCE
    );
    // The right request still works: nothing above used the nonce count.
    assert!(send(&w.digest, Method::GET, "/a/", &h, None).await.is_ok());
}

#[tokio::test]
async fn expired_nonces_are_stale_only_for_right_credentials() {
    let w = world(None).await;
    let old = w.digest.nonce_at(unix_now() - 301);
    let c = Client::new("ada", "pw", "api", &old, "GET", "/");
    assert_eq!(
        detail(send(&w.digest, Method::GET, "/", &c.authorization(), None).await),
        STALE_NONCE
    );
    let c = Client::new("ada", "wrong", "api", &old, "GET", "/");
    assert_eq!(
        detail(send(&w.digest, Method::GET, "/", &c.authorization(), None).await),
        INVALID_CREDENTIALS
    );
    let future = w.digest.nonce_at(unix_now() + 3600);
    let c = Client::new("ada", "pw", "api", &future, "GET", "/");
    assert_eq!(
        detail(send(&w.digest, Method::GET, "/", &c.authorization(), None).await),
        INVALID_NONCE
    );
    // The rendered rejection says stale=true on both challenges.
    let r = Rejection {
        error: AuthError::failed(STALE_NONCE),
        challenge: w.digest.challenge(),
    };
    let res = w.digest.render_rejection(&r);
    let all: Vec<_> = res.headers().get_all(WWW_AUTHENTICATE).iter().collect();
    assert_eq!(all.len(), 2);
    assert!(all
        .iter()
        .all(|v| v.to_str().unwrap().ends_with("stale=true")));
}

#[tokio::test]
async fn password_changes_unbind_the_realm_digest() {
    let w = world(None).await;
    w.store
        .set_password_hash(w.ada.id, "pbkdf2_sha256$1$s$other")
        .await
        .unwrap();
    let nonce = w.digest.nonce();
    let c = Client::new("ada", "pw", "api", &nonce, "GET", "/");
    assert_eq!(
        detail(send(&w.digest, Method::GET, "/", &c.authorization(), None).await),
        INVALID_CREDENTIALS
    );
    // Set through store_password again: works.
    let ada = w.store.user_by_id(w.ada.id).await.unwrap().unwrap();
    store_password(&w.store, &secret(), "api", &ada, Some("pw"))
        .await
        .unwrap();
    let mut c = c.clone();
    c.nc = 2;
    assert!(send(&w.digest, Method::GET, "/", &c.authorization(), None)
        .await
        .is_ok());
    // Unset: gone.
    store_password(&w.store, &secret(), "api", &ada, None)
        .await
        .unwrap();
    assert!(w.store.realm_digest(ada.id).await.unwrap().is_none());
}

#[tokio::test]
async fn sealed_digests_are_bound_to_their_user() {
    let s = RealmDigests::compute("ada", "api", "pw").seal(&secret(), 1, "h");
    assert!(RealmDigests::open(&secret(), 1, "h", &s).is_some());
    assert!(RealmDigests::open(&secret(), 2, "h", &s).is_none());
    assert!(RealmDigests::open(&secret(), 1, "h2", &s).is_none());
    assert!(!format!("{:?}", RealmDigests::compute("a", "b", "c")).contains('['));
}

#[tokio::test]
async fn inactive_and_unknown_users_fail_and_count_towards_the_lockout() {
    let lockout = Lockout::memory().with_failure_limit(3);
    let w = world(Some(lockout.clone())).await;
    w.store.set_active(w.ada.id, false).await.unwrap();
    let nonce = w.digest.nonce();
    let c = Client::new("ada", "pw", "api", &nonce, "GET", "/");
    assert_eq!(
        detail(send(&w.digest, Method::GET, "/", &c.authorization(), None).await),
        INVALID_CREDENTIALS
    );
    w.store.set_active(w.ada.id, true).await.unwrap();
    // One failure (the inactive user) so far; two more reach the limit.
    for i in 0..2 {
        let mut c = Client::new("ghost", "pw", "api", &nonce, "GET", "/");
        c.nc = i + 1;
        assert_eq!(
            detail(send(&w.digest, Method::GET, "/", &c.authorization(), None).await),
            INVALID_CREDENTIALS
        );
    }
    // The address is now locked out, the right password included.
    let mut c = Client::new("ada", "pw", "api", &nonce, "GET", "/");
    c.nc = 9;
    assert!(matches!(
        send(&w.digest, Method::GET, "/", &c.authorization(), None).await,
        Err(AuthError::Throttled { .. })
    ));
}

#[tokio::test]
async fn a_store_that_is_down_fails_closed() {
    let w = world(None).await;
    let nonce = w.digest.nonce();
    let c = Client::new("ada", "pw", "api", &nonce, "GET", "/");
    w.store.set_down(true);
    assert!(matches!(
        send(&w.digest, Method::GET, "/", &c.authorization(), None).await,
        Err(AuthError::Store(_))
    ));
}

#[tokio::test]
async fn wants_the_body_for_auth_int_and_for_requests_it_challenges() {
    let w = world(None).await;
    let req = |h: &str| {
        http::Request::get("/")
            .header(AUTHORIZATION, h)
            .body(())
            .unwrap()
    };
    let r = req("Digest username=\"a\", qop=auth-int");
    assert!(w.digest.wants_body(&RequestHead::from_request(&r)));
    let r = req("Digest username=\"a\", qop=auth");
    assert!(!w.digest.wants_body(&RequestHead::from_request(&r)));
    let r = req("Basic x");
    assert!(!w.digest.wants_body(&RequestHead::from_request(&r)));
    // A request this scheme will challenge has its body read first.
    let r = http::Request::post("/")
        .header(http::header::CONTENT_LENGTH, "8")
        .body(())
        .unwrap();
    assert!(w.digest.wants_body(&RequestHead::from_request(&r)));
    let r = http::Request::post("/")
        .header(AUTHORIZATION, "Basic x")
        .header(http::header::CONTENT_LENGTH, "8")
        .body(())
        .unwrap();
    assert!(!w.digest.wants_body(&RequestHead::from_request(&r)));
    let r = http::Request::get("/").body(()).unwrap();
    assert!(!w.digest.wants_body(&RequestHead::from_request(&r)));
}
