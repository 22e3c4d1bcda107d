//! RFC 5849's examples, hostile inputs and the flow end to end.

use std::sync::Arc;

use http::{Method, Request};

use super::params::*;
use super::*;
use crate::replay::MemoryReplayCache;
use crate::store::{MemoryStore, NewUser, UserAdmin};

/// RFC 5849 §3.4.1's example request.
fn rfc_request() -> Request<()> {
    Request::builder()
        .method(Method::POST)
        .uri("/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b")
        .header("host", "example.com")
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            "OAuth realm=\"Example\", oauth_consumer_key=\"9djdj82h48djs9d2\", \
             oauth_token=\"kkk9d7dh3k39sjv7\", oauth_signature_method=\"HMAC-SHA1\", \
             oauth_timestamp=\"137131201\", oauth_nonce=\"7d8f3e4a\", \
             oauth_signature=\"bYT5CMsGcbgUdFHObYMEfcx6bsw%3D\"",
        )
        .body(())
        .unwrap()
}

#[test]
fn rfc_3_4_1_signature_base_string() {
    let req = rfc_request();
    let head = RequestHead::from_request(&req);
    let collected = OAuth1::collect(&head, b"c2&a3=2+q").unwrap();
    let normalized = normalize_params(&collected.all);
    // §3.4.1.3.2's normalised parameters.
    assert_eq!(
        normalized,
        "a2=r%20b&a3=2%20q&a3=a&b5=%3D%253D&c%40=&c2=&oauth_consumer_key=9djdj82h48djs9d2\
         &oauth_nonce=7d8f3e4a&oauth_signature_method=HMAC-SHA1&oauth_timestamp=137131201\
         &oauth_token=kkk9d7dh3k39sjv7"
    );
    let base = signature_base_string(
        "POST",
        &base_uri("http", "example.com", "/request"),
        &normalized,
    );
    // §3.4.1.1's signature base string.
    assert_eq!(
        base,
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
         %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
         key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
         ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
         9d7dh3k39sjv7"
    );
    // The protocol parameters, realm and the signature included.
    assert_eq!(collected.protocol.len(), 6);
}

#[test]
fn oauth_core_appendix_a_hmac_sha1() {
    // OAuth Core 1.0's worked example (the photos request).
    let params: Vec<(String, String)> = [
        ("file", "vacation.jpg"),
        ("size", "original"),
        ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
        ("oauth_token", "nnch734d00sl2jdk"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "1191242096"),
        ("oauth_nonce", "kllo9940pd9333jh"),
        ("oauth_version", "1.0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let base = signature_base_string(
        "GET",
        &base_uri("http", "photos.example.net:80", "/photos"),
        &normalize_params(&params),
    );
    let mut mac =
        <Hmac<sha1::Sha1> as Mac>::new_from_slice(b"kd94hf93k423kf44&pfkkdhi9sl3r4s00").unwrap();
    mac.update(base.as_bytes());
    assert_eq!(
        STANDARD.encode(mac.finalize().into_bytes()),
        "tR3+Ty81lMeYAr/Fid0kMTYa/WM="
    );
}

#[test]
fn encoding_and_base_uri_rules() {
    assert_eq!(
        percent_encode("Ladies + Gentlemen"),
        "Ladies%20%2B%20Gentlemen"
    );
    assert_eq!(
        percent_encode("An encoded string!"),
        "An%20encoded%20string%21"
    );
    assert_eq!(
        percent_encode("Dogs, Cats & Mice"),
        "Dogs%2C%20Cats%20%26%20Mice"
    );
    assert_eq!(percent_encode("☃"), "%E2%98%83");
    assert_eq!(
        base_uri("HTTP", "EXAMPLE.COM:80", "/r%20v/X"),
        "http://example.com/r%20v/X"
    );
    assert_eq!(
        base_uri("https", "www.example.net:8080", "/?q=1"),
        "https://www.example.net:8080/?q=1"
    );
    assert_eq!(
        base_uri("https", "example.com:443", ""),
        "https://example.com/"
    );
}

#[test]
fn hostile_headers_are_400() {
    for header in [
        "OAuth oauth_consumer_key=unquoted",
        "OAuth oauth_consumer_key",
        "OAuth oauth_consumer_key=\"a\", oauth_consumer_key=\"b\"",
        "OAuth oauth_consumer_key=\"%ZZ\"",
        "OAuth oauth_consumer_key=\"%FF\"",
        "OAuth oauth_consumer_key=\"open",
        "OAuth oauth_consumer_key=\"",
    ] {
        let e = parse_authorization(header).unwrap_err();
        assert!(matches!(e, AuthError::BadRequest(_)), "{header}: {e:?}");
    }
    let huge = format!("OAuth oauth_nonce=\"{}\"", "a".repeat(MAX_PARAMS_LEN));
    assert!(parse_authorization(&huge).is_err());
    let many = format!(
        "OAuth {}",
        (0..300)
            .map(|i| format!("p{i}=\"v\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(parse_authorization(&many).is_err());
    assert!(parse_authorization("OA").unwrap().is_empty());
    // A multi-byte character across the keyword's end: no panic.
    assert!(parse_authorization("OAut\u{e9}x=\"1\"").unwrap().is_empty());
    assert!(is_oauth_header(b"oauth x=\"1\""));
    assert!(is_oauth_header(b"OAuth"));
    assert!(!is_oauth_header(b"OAuthx"));
    assert!(!is_oauth_header(b"Bearer x"));
    assert_eq!(
        parse_authorization("OAuth realm=\"x\",  a=\"b%20c\" ,d=\"\"").unwrap(),
        vec![
            ("a".to_owned(), "b c".to_owned()),
            ("d".to_owned(), String::new())
        ]
    );
}

// --- The scheme and the flow ------------------------------------------

struct Fixture {
    oauth: OAuth1,
    users: MemoryStore,
    user_id: i64,
    consumer: (String, String),
    token: (String, String),
}

async fn fixture(config: OAuth1Config) -> Fixture {
    let users = MemoryStore::new();
    let user = users
        .create_user(NewUser {
            username: "ada".into(),
            is_active: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let oauth = OAuth1::new(
        MemoryOAuth1Store::new(),
        SecretKey::new([4u8; 32]).unwrap(),
        Arc::new(MemoryReplayCache::new()),
        config,
    );
    let consumer = oauth
        .create_consumer("app", None, Some("https://app.example/cb".into()))
        .await
        .unwrap();
    let token = oauth
        .create_access_token(&consumer.0, user.id)
        .await
        .unwrap();
    Fixture {
        oauth,
        users,
        user_id: user.id,
        consumer,
        token,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A request signed the way a client does (RFC 5849 §3.4.2).
fn signed(
    method: Method,
    uri: &str,
    protocol: &[(&str, String)],
    secrets: (&str, &str),
    body: Option<&str>,
    sig_method: &str,
) -> Request<()> {
    let mut all: Vec<(String, String)> = protocol
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    all.push(("oauth_signature_method".into(), sig_method.into()));
    let parsed: http::Uri = uri.parse().unwrap();
    all.extend(parse_form(parsed.query().unwrap_or("").as_bytes()).unwrap());
    if let Some(b) = body {
        all.extend(parse_form(b.as_bytes()).unwrap());
    }
    let key = format!(
        "{}&{}",
        percent_encode(secrets.0),
        percent_encode(secrets.1)
    );
    let base = signature_base_string(
        method.as_str(),
        &base_uri("http", "api.example", parsed.path()),
        &normalize_params(&all),
    );
    let sig = match sig_method {
        "PLAINTEXT" => key,
        "HMAC-SHA256" => {
            let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap();
            m.update(base.as_bytes());
            STANDARD.encode(m.finalize().into_bytes())
        }
        _ => {
            let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key.as_bytes()).unwrap();
            m.update(base.as_bytes());
            STANDARD.encode(m.finalize().into_bytes())
        }
    };
    let mut header = format!(
        "OAuth realm=\"api\", oauth_signature_method=\"{sig_method}\", oauth_signature=\"{}\"",
        percent_encode(&sig)
    );
    for (k, v) in protocol {
        header.push_str(&format!(", {k}=\"{}\"", percent_encode(v)));
    }
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "api.example")
        .header("authorization", header);
    if body.is_some() {
        b = b.header("content-type", "application/x-www-form-urlencoded");
    }
    let mut req = b.body(()).unwrap();
    if let Some(body) = body {
        req.extensions_mut()
            .insert(RequestBody(bytes::Bytes::copy_from_slice(body.as_bytes())));
    }
    req
}

fn access(f: &Fixture, nonce: &str, ts: i64) -> Vec<(&'static str, String)> {
    vec![
        ("oauth_consumer_key", f.consumer.0.clone()),
        ("oauth_token", f.token.0.clone()),
        ("oauth_timestamp", ts.to_string()),
        ("oauth_nonce", nonce.to_owned()),
        ("oauth_version", "1.0".to_owned()),
    ]
}

async fn run(f: &Fixture, req: &Request<()>) -> Outcome<crate::User> {
    OAuth1Auth::new(f.oauth.clone(), f.users.clone())
        .authenticate(&RequestHead::from_request(req))
        .await
}

#[tokio::test]
async fn hmac_signed_requests_authenticate_once() {
    let f = fixture(OAuth1Config::default()).await;
    let secrets = (f.consumer.1.as_str(), f.token.1.as_str());
    for (i, m) in ["HMAC-SHA1", "HMAC-SHA256"].into_iter().enumerate() {
        let req = signed(
            Method::POST,
            "/oauth1/?x=1&y=%20z",
            &access(&f, &format!("n{i}"), now()),
            secrets,
            Some("a=1&b=two+words"),
            m,
        );
        let ok = run(&f, &req).await.unwrap().unwrap();
        assert_eq!(ok.user.id, f.user_id);
        assert_eq!(
            ok.auth.unwrap().description(),
            format!("oauth1 consumer {}", f.consumer.0)
        );
        let e = run(&f, &req).await.unwrap_err();
        assert_eq!(e.to_string(), "Nonce already used.");
    }
}

#[tokio::test]
async fn bad_signatures_times_and_credentials_are_401() {
    let f = fixture(OAuth1Config::default()).await;
    let secrets = (f.consumer.1.as_str(), f.token.1.as_str());
    let wrong = signed(
        Method::GET,
        "/",
        &access(&f, "a", now()),
        ("x", "y"),
        None,
        "HMAC-SHA1",
    );
    assert_eq!(
        run(&f, &wrong).await.unwrap_err().to_string(),
        INVALID_SIGNATURE
    );
    let old = signed(
        Method::GET,
        "/",
        &access(&f, "b", now() - 301),
        secrets,
        None,
        "HMAC-SHA1",
    );
    assert_eq!(
        run(&f, &old).await.unwrap_err().to_string(),
        "Timestamp out of window."
    );
    let future = signed(
        Method::GET,
        "/",
        &access(&f, "c", now() + 301),
        secrets,
        None,
        "HMAC-SHA1",
    );
    assert!(run(&f, &future).await.is_err());
    // The body was changed after signing.
    let mut req = signed(
        Method::POST,
        "/",
        &access(&f, "d", now()),
        secrets,
        Some("a=1"),
        "HMAC-SHA1",
    );
    req.extensions_mut()
        .insert(RequestBody(bytes::Bytes::from_static(b"a=2")));
    assert_eq!(
        run(&f, &req).await.unwrap_err().to_string(),
        INVALID_SIGNATURE
    );
    // Unknown consumer, unknown token.
    let mut p = access(&f, "e", now());
    p[0].1 = "nope".into();
    let req = signed(Method::GET, "/", &p, secrets, None, "HMAC-SHA1");
    assert_eq!(
        run(&f, &req).await.unwrap_err().to_string(),
        "Invalid consumer key."
    );
    let mut p = access(&f, "f", now());
    p[1].1 = "nope".into();
    let req = signed(Method::GET, "/", &p, secrets, None, "HMAC-SHA1");
    assert_eq!(
        run(&f, &req).await.unwrap_err().to_string(),
        "Invalid token."
    );
    // An inactive user.
    f.users.set_active(f.user_id, false).await.unwrap();
    let req = signed(
        Method::GET,
        "/",
        &access(&f, "g", now()),
        secrets,
        None,
        "HMAC-SHA1",
    );
    assert_eq!(
        run(&f, &req).await.unwrap_err().to_string(),
        "User inactive or deleted."
    );
}

#[tokio::test]
async fn protocol_errors_are_400() {
    let f = fixture(OAuth1Config::default()).await;
    let secrets = (f.consumer.1.as_str(), f.token.1.as_str());
    let cases: Vec<Vec<(&str, String)>> = vec![
        // Missing nonce.
        access(&f, "x", now())
            .into_iter()
            .filter(|(k, _)| *k != "oauth_nonce")
            .collect(),
        // Missing token.
        access(&f, "x", now())
            .into_iter()
            .filter(|(k, _)| *k != "oauth_token")
            .collect(),
        // A bad version, an unknown parameter, a bad timestamp.
        [
            access(&f, "x", now()),
            vec![("oauth_version", "2.0".into())],
        ]
        .concat()[1..]
            .to_vec(),
        [access(&f, "x", now()), vec![("oauth_extra", "1".into())]].concat(),
    ];
    for p in cases {
        let req = signed(Method::GET, "/", &p, secrets, None, "HMAC-SHA1");
        let e = run(&f, &req).await.unwrap_err();
        assert!(matches!(e, AuthError::BadRequest(_)), "{p:?}: {e:?}");
    }
    let mut p = access(&f, "x", now());
    p[2].1 = "soon".into();
    let req = signed(Method::GET, "/", &p, secrets, None, "HMAC-SHA1");
    assert!(matches!(
        run(&f, &req).await.unwrap_err(),
        AuthError::BadRequest(_)
    ));
    let req = signed(
        Method::GET,
        "/",
        &access(&f, "x", now()),
        secrets,
        None,
        "MD5",
    );
    assert!(matches!(
        run(&f, &req).await.unwrap_err(),
        AuthError::BadRequest(_)
    ));
    // Protocol parameters in the header and the query at once.
    let req = signed(
        Method::GET,
        "/?oauth_nonce=z",
        &access(&f, "x", now()),
        secrets,
        None,
        "HMAC-SHA1",
    );
    assert!(matches!(
        run(&f, &req).await.unwrap_err(),
        AuthError::BadRequest(_)
    ));
    // PLAINTEXT over plain HTTP.
    let req = signed(
        Method::GET,
        "/",
        &access(&f, "p", now()),
        secrets,
        None,
        "PLAINTEXT",
    );
    assert!(matches!(
        run(&f, &req).await.unwrap_err(),
        AuthError::BadRequest(_)
    ));
    // No OAuth credentials at all: the next scheme runs.
    let req = Request::get("/").body(()).unwrap();
    assert!(run(&f, &req).await.unwrap().is_none());
}

#[tokio::test]
async fn plaintext_over_https_and_form_body_parameters() {
    let f = fixture(OAuth1Config {
        https: true,
        ..Default::default()
    })
    .await;
    let key = format!("{}&{}", f.consumer.1, f.token.1);
    let header = format!(
        "OAuth oauth_consumer_key=\"{}\", oauth_token=\"{}\", oauth_signature_method=\"PLAINTEXT\", oauth_signature=\"{}\"",
        f.consumer.0,
        f.token.0,
        percent_encode(&key)
    );
    let req = Request::get("/")
        .header("authorization", header)
        .body(())
        .unwrap();
    assert!(run(&f, &req).await.unwrap().is_some());
    // Protocol parameters in a form body (RFC 5849 §3.5.2).
    let body = format!(
        "oauth_consumer_key={}&oauth_token={}&oauth_signature_method=PLAINTEXT&oauth_signature={}&x=1",
        f.consumer.0,
        f.token.0,
        percent_encode(&key)
    );
    let mut req = Request::post("/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(RequestBody(bytes::Bytes::from(body)));
    assert!(run(&f, &req).await.unwrap().is_some());
}

#[tokio::test]
async fn the_three_legged_flow() {
    let f = fixture(OAuth1Config::default()).await;
    let c = (f.consumer.0.clone(), f.consumer.1.clone());
    let p = vec![
        ("oauth_consumer_key", c.0.clone()),
        ("oauth_timestamp", now().to_string()),
        ("oauth_nonce", "r1".to_owned()),
        ("oauth_callback", "https://app.example/cb".to_owned()),
    ];
    let req = signed(
        Method::POST,
        "/oauth1/request_token/",
        &p,
        (&c.1, ""),
        None,
        "HMAC-SHA1",
    );
    let (rt, rs) = f
        .oauth
        .request_token(&RequestHead::from_request(&req), b"")
        .await
        .unwrap();
    // A callback elsewhere is refused.
    let mut p2 = p.clone();
    p2[2].1 = "r2".into();
    p2[3].1 = "https://evil.example/".into();
    let req = signed(
        Method::POST,
        "/oauth1/request_token/",
        &p2,
        (&c.1, ""),
        None,
        "HMAC-SHA1",
    );
    assert!(f
        .oauth
        .request_token(&RequestHead::from_request(&req), b"")
        .await
        .is_err());

    // Before authorization the exchange fails.
    let ex = |nonce: &str, verifier: &str| {
        vec![
            ("oauth_consumer_key", c.0.clone()),
            ("oauth_token", rt.clone()),
            ("oauth_verifier", verifier.to_owned()),
            ("oauth_timestamp", now().to_string()),
            ("oauth_nonce", nonce.to_owned()),
        ]
    };
    let req = signed(
        Method::POST,
        "/oauth1/access_token/",
        &ex("a1", "v"),
        (&c.1, &rs),
        None,
        "HMAC-SHA1",
    );
    assert!(f
        .oauth
        .access_token(&RequestHead::from_request(&req), b"")
        .await
        .is_err());

    let (verifier, callback) = f.oauth.authorize(&rt, f.user_id).await.unwrap().unwrap();
    assert_eq!(callback, "https://app.example/cb");
    assert!(f.oauth.authorize(&rt, f.user_id).await.unwrap().is_none());
    // A wrong verifier fails; the right one succeeds once.
    let req = signed(
        Method::POST,
        "/oauth1/access_token/",
        &ex("a2", "wrong"),
        (&c.1, &rs),
        None,
        "HMAC-SHA1",
    );
    assert!(f
        .oauth
        .access_token(&RequestHead::from_request(&req), b"")
        .await
        .is_err());
    let req = signed(
        Method::POST,
        "/oauth1/access_token/",
        &ex("a3", &verifier),
        (&c.1, &rs),
        None,
        "HMAC-SHA1",
    );
    let (at, ats) = f
        .oauth
        .access_token(&RequestHead::from_request(&req), b"")
        .await
        .unwrap();
    let req = signed(
        Method::POST,
        "/oauth1/access_token/",
        &ex("a4", &verifier),
        (&c.1, &rs),
        None,
        "HMAC-SHA1",
    );
    assert!(f
        .oauth
        .access_token(&RequestHead::from_request(&req), b"")
        .await
        .is_err());
    // The new access token works.
    let p = vec![
        ("oauth_consumer_key", c.0.clone()),
        ("oauth_token", at.clone()),
        ("oauth_timestamp", now().to_string()),
        ("oauth_nonce", "use".to_owned()),
    ];
    let req = signed(Method::GET, "/oauth1/", &p, (&c.1, &ats), None, "HMAC-SHA1");
    assert_eq!(run(&f, &req).await.unwrap().unwrap().user.id, f.user_id);
}
