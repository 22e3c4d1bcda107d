//! RFC 9421 Appendix B vectors, hostile inputs, and the scheme end to end.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::Signer;
use http::{HeaderMap, Method, StatusCode};

use super::*;
use crate::replay::MemoryReplayCache;
use crate::store::{MemoryStore, NewUser, UserAdmin};

const RSA_PSS_PUBLIC: &str = include_str!("testdata/rsa_pss_public.pem");
const RSA_PUBLIC: &str = include_str!("testdata/rsa_public.pem");
const RSA_PRIVATE: &str = include_str!("testdata/rsa_private.pem");
const P256_PUBLIC: &str = include_str!("testdata/ecc_p256_public.pem");
const ED25519_PUBLIC: &str = include_str!("testdata/ed25519_public.pem");
/// B.1.4's private key, the JWK `d`.
const ED25519_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
/// B.1.5.
const SHARED_SECRET: &str =
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";
const REQUEST_DIGEST: &str =
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";
const BODY: &[u8] = br#"{"hello": "world"}"#;

/// The RFC's test request (B.2), plus a signature.
fn rfc_headers(input: &str, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", "example.com".parse().unwrap());
    h.insert("date", "Tue, 20 Apr 2021 02:07:55 GMT".parse().unwrap());
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("content-digest", REQUEST_DIGEST.parse().unwrap());
    h.insert("content-length", "18".parse().unwrap());
    h.insert("signature-input", input.parse().unwrap());
    h.insert("signature", sig.parse().unwrap());
    h
}

fn rfc_message(headers: &HeaderMap) -> Message<'_> {
    Message {
        method: &Method::POST,
        scheme: "https",
        authority: "example.com",
        path: "/foo",
        query: Some("param=Value&Pet=dog"),
        headers,
    }
}

fn check_vector(input: &str, sig: &str, key: &VerifyKey, expected_base: &str) {
    let headers = rfc_headers(input, sig);
    let parsed = parse_signature(&headers).unwrap().unwrap();
    let msg = rfc_message(&headers);
    assert_eq!(signature_base(&msg, &parsed).unwrap(), expected_base);
    assert!(verify_signature(&msg, &parsed, key).unwrap());
    // One changed byte of the signature fails.
    let mut tampered = parsed.clone();
    tampered.signature[5] ^= 1;
    assert!(!verify_signature(&msg, &tampered, key).unwrap());
}

#[test]
fn rfc_b21_minimal_rsa_pss() {
    let key = VerifyKey::from_public_pem(Algorithm::RsaPssSha512, RSA_PSS_PUBLIC).unwrap();
    check_vector(
        r#"sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd""#,
        "sig-b21=:d2pmTvmbncD3xQm8E9ZV2828BjQWGgiwAaw5bAkgibUopemLJcWDy/lkbbHAve4cRAtx31Iq786U7it++wgGxbtRxf8Udx7zFZsckzXaJMkA7ChG52eSkFxykJeNqsrWH5S+oxNFlD4dzVuwe8DhTSja8xxbR/Z2cOGdCbzR72rgFWhzx2VjBqJzsPLMIQKhO4DGezXehhWwE56YCE+O6c0mKZsfxVrogUvA4HELjVKWmAvtl6UnCh8jYzuVG5WSb/QEVPnP5TmcAnLH1g+s++v6d4s8m0gCw1fV5/SITLq9mhho8K3+7EPYTU8IU1bLhdxO5Nyt8C8ssinQ98Xw9Q==:",
        &key,
        r#""@signature-params": ();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd""#,
    );
}

#[test]
fn rfc_b22_selective_with_query_param() {
    let key = VerifyKey::from_public_pem(Algorithm::RsaPssSha512, RSA_PSS_PUBLIC).unwrap();
    let base = [
        r#""@authority": example.com"#.to_owned(),
        format!(r#""content-digest": {REQUEST_DIGEST}"#),
        r#""@query-param";name="Pet": dog"#.to_owned(),
        r#""@signature-params": ("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example""#.to_owned(),
    ]
    .join("\n");
    check_vector(
        r#"sig-b22=("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example""#,
        "sig-b22=:LjbtqUbfmvjj5C5kr1Ugj4PmLYvx9wVjZvD9GsTT4F7GrcQEdJzgI9qHxICagShLRiLMlAJjtq6N4CDfKtjvuJyE5qH7KT8UCMkSowOB4+ECxCmT8rtAmj/0PIXxi0A0nxKyB09RNrCQibbUjsLS/2YyFYXEu4TRJQzRw1rLEuEfY17SARYhpTlaqwZVtR8NV7+4UKkjqpcAoFqWFQh62s7Cl+H2fjBSpqfZUJcsIk4N6wiKYd4je2U/lankenQ99PZfB4jY3I5rSV2DSBVkSFsURIjYErOs0tFTQosMTAoxk//0RoKUqiYY8Bh0aaUEb0rQl3/XaVe4bXTugEjHSw==:",
        &key,
        &base,
    );
}

#[test]
fn rfc_b23_full_coverage() {
    let key = VerifyKey::from_public_pem(Algorithm::RsaPssSha512, RSA_PSS_PUBLIC).unwrap();
    let base = [
        r#""date": Tue, 20 Apr 2021 02:07:55 GMT"#.to_owned(),
        r#""@method": POST"#.to_owned(),
        r#""@path": /foo"#.to_owned(),
        r#""@query": ?param=Value&Pet=dog"#.to_owned(),
        r#""@authority": example.com"#.to_owned(),
        r#""content-type": application/json"#.to_owned(),
        format!(r#""content-digest": {REQUEST_DIGEST}"#),
        r#""content-length": 18"#.to_owned(),
        r#""@signature-params": ("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss""#.to_owned(),
    ]
    .join("\n");
    check_vector(
        r#"sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss""#,
        "sig-b23=:bbN8oArOxYoyylQQUU6QYwrTuaxLwjAC9fbY2F6SVWvh0yBiMIRGOnMYwZ/5MR6fb0Kh1rIRASVxFkeGt683+qRpRRU5p2voTp768ZrCUb38K0fUxN0O0iC59DzYx8DFll5GmydPxSmme9v6ULbMFkl+V5B1TP/yPViV7KsLNmvKiLJH1pFkh/aYA2HXXZzNBXmIkoQoLd7YfW91kE9o/CCoC1xMy7JA1ipwvKvfrs65ldmlu9bpG6A9BmzhuzF8Eim5f8ui9eH8LZH896+QIF61ka39VBrohr9iyMUJpvRX2Zbhl5ZJzSRxpJyoEZAFL2FUo5fTIztsDZKEgM4cUA==:",
        &key,
        &base,
    );
}

#[test]
fn rfc_b24_ecdsa_p256_over_its_base() {
    // B.2.4 signs a response (`@status`), which a request verifier never
    // rebuilds; the key and algorithm are checked over the RFC's base.
    let key = VerifyKey::from_public_pem(Algorithm::EcdsaP256Sha256, P256_PUBLIC).unwrap();
    let base = [
        r#""@status": 200"#,
        r#""content-type": application/json"#,
        r#""content-digest": sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:"#,
        r#""content-length": 23"#,
        r#""@signature-params": ("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256""#,
    ]
    .join("\n");
    let sig = STANDARD
        .decode("wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==")
        .unwrap();
    assert!(key.verify(base.as_bytes(), &sig));
    assert!(!key.verify(base.replace("200", "201").as_bytes(), &sig));
}

#[test]
fn rfc_b25_hmac_sha256() {
    let key = VerifyKey::hmac(&STANDARD.decode(SHARED_SECRET).unwrap()).unwrap();
    check_vector(
        r#"sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#,
        "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:",
        &key,
        &[
            r#""date": Tue, 20 Apr 2021 02:07:55 GMT"#,
            r#""@authority": example.com"#,
            r#""content-type": application/json"#,
            r#""@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#,
        ]
        .join("\n"),
    );
}

#[test]
fn rfc_b26_ed25519() {
    let key = VerifyKey::from_public_pem(Algorithm::Ed25519, ED25519_PUBLIC).unwrap();
    check_vector(
        r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#,
        "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
        &key,
        &[
            r#""date": Tue, 20 Apr 2021 02:07:55 GMT"#,
            r#""@method": POST"#,
            r#""@path": /foo"#,
            r#""@authority": example.com"#,
            r#""content-type": application/json"#,
            r#""content-length": 18"#,
            r#""@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#,
        ]
        .join("\n"),
    );
}

#[test]
fn rsa_v1_5_with_the_rfc_rsa_key() {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::signature::{SignatureEncoding, Signer as _};
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(RSA_PRIVATE).unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private);
    let base = "\"@method\": POST\n\"@signature-params\": (\"@method\");created=1";
    let sig = signer.sign(base.as_bytes()).to_vec();
    let key = VerifyKey::from_public_pem(Algorithm::RsaV15Sha256, RSA_PUBLIC).unwrap();
    assert!(key.verify(base.as_bytes(), &sig));
    assert!(!key.verify(b"other", &sig));
    // The same key as PSS does not accept a v1.5 signature.
    let pss = VerifyKey::from_public_pem(Algorithm::RsaPssSha512, RSA_PUBLIC).unwrap();
    assert!(!pss.verify(base.as_bytes(), &sig));
}

#[test]
fn rfc_9530_content_digest() {
    check_content_digest(REQUEST_DIGEST, BODY).unwrap();
    check_content_digest(
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
        BODY,
    )
    .unwrap();
    let wrong = check_content_digest(REQUEST_DIGEST, b"{\"hello\": \"dog\"}").unwrap_err();
    assert!(matches!(wrong, AuthError::Failed(_)));
    // Only unknown algorithms: refused; malformed: 400.
    assert!(matches!(
        check_content_digest("md5=:AAAA:", BODY).unwrap_err(),
        AuthError::Failed(_)
    ));
    assert!(matches!(
        check_content_digest("sha-256=notbytes", BODY).unwrap_err(),
        AuthError::BadRequest(_)
    ));
    assert!(matches!(
        check_content_digest("sha-256=:!!!:", BODY).unwrap_err(),
        AuthError::BadRequest(_)
    ));
}

#[test]
fn query_param_is_re_encoded() {
    let headers = HeaderMap::new();
    let msg = Message {
        method: &Method::GET,
        scheme: "https",
        authority: "example.com",
        path: "/parameters",
        query: Some("var=this%20is%20a%20big%0Avalue&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something"),
        headers: &headers,
    };
    let mut h = HeaderMap::new();
    h.insert(
        "signature-input",
        r#"s=("@query-param";name="var" "@query-param";name="bar" "@query-param";name="fa%C3%A7ade%22%3A%20");keyid="k""#
            .parse()
            .unwrap(),
    );
    h.insert("signature", "s=:AAAA:".parse().unwrap());
    let sig = parse_signature(&h).unwrap().unwrap();
    let base = signature_base(&msg, &sig).unwrap();
    assert!(base.contains("\"@query-param\";name=\"var\": this%20is%20a%20big%0Avalue\n"));
    assert!(base.contains("\"@query-param\";name=\"bar\": with%20plus%20whitespace\n"));
    assert!(base.contains("\"@query-param\";name=\"fa%C3%A7ade%22%3A%20\": something\n"));
}

#[test]
fn derived_components_and_structured_fields() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "example-dict",
        " a=1,    b=2;x=1;y=2,   c=(a   b   c)".parse().unwrap(),
    );
    headers.append("x-multi", " one ".parse().unwrap());
    headers.append("x-multi", "two".parse().unwrap());
    headers.insert(
        "signature-input",
        r#"s=("@scheme" "@request-target" "@target-uri" "@authority" "x-multi" "x-multi";bs "content-digest";key="sha-512" "content-digest";sf);keyid="k""#
            .parse()
            .unwrap(),
    );
    headers.insert(
        "content-digest",
        "sha-512=:AAAA:,  sha-256=:AQID:".parse().unwrap(),
    );
    headers.insert("signature", "s=:AAAA:".parse().unwrap());
    let sig = parse_signature(&headers).unwrap().unwrap();
    let msg = Message {
        method: &Method::GET,
        scheme: "http",
        authority: "WWW.Example.com:80",
        path: "",
        query: None,
        headers: &headers,
    };
    let base = signature_base(&msg, &sig).unwrap();
    let lines: Vec<&str> = base.lines().collect();
    assert_eq!(lines[0], r#""@scheme": http"#);
    assert_eq!(lines[1], r#""@request-target": /"#);
    assert_eq!(lines[2], r#""@target-uri": http://WWW.Example.com:80/"#);
    assert_eq!(lines[3], r#""@authority": www.example.com"#);
    assert_eq!(lines[4], r#""x-multi": one, two"#);
    assert_eq!(lines[5], r#""x-multi";bs: :b25l:, :dHdv:"#);
    assert_eq!(lines[6], r#""content-digest";key="sha-512": :AAAA:"#);
    assert_eq!(
        lines[7],
        r#""content-digest";sf: sha-512=:AAAA:, sha-256=:AQID:"#
    );
}

fn parse_err(input: &str, sig: &str) -> AuthError {
    let mut h = HeaderMap::new();
    if !input.is_empty() {
        h.insert("signature-input", input.parse().unwrap());
    }
    if !sig.is_empty() {
        h.insert("signature", sig.parse().unwrap());
    }
    parse_signature(&h).unwrap_err()
}

#[test]
fn hostile_signature_fields_are_400() {
    let ok_sig = "s=:AAAA:";
    for (input, sig) in [
        ("s=(", ok_sig),
        ("s=(\"@method\"", ok_sig),
        ("s=(\"@method\");created=1", "s=notbytes"),
        ("s=(\"@method\");created=1", "s=:!!!:"),
        ("s=(\"@method\");created=1", "other=:AAAA:"),
        ("s=(\"@method\" \"@method\");created=1", ok_sig),
        ("s=(\"@Method\");created=1", ok_sig),
        ("s=(\"Host\");created=1", ok_sig),
        ("s=(@method);created=1", ok_sig),
        ("s=(\"@method\");created=\"1\"", ok_sig),
        ("s=(\"@method\");created=1.5", ok_sig),
        ("s=(\"@method\");keyid=1", ok_sig),
        ("s=(\"@method\");unknown=1", ok_sig),
        ("s=(\"@signature-params\")", ok_sig),
        ("s=\"@method\"", ok_sig),
        ("", ok_sig),
        ("s=(\"@method\")", ""),
        ("\u{7f}", ok_sig),
    ] {
        let mut h = HeaderMap::new();
        match (http::HeaderValue::from_str(input), input.is_empty()) {
            (Ok(v), false) => {
                h.insert("signature-input", v);
            }
            (Err(_), _) => continue,
            _ => {}
        }
        if !sig.is_empty() {
            h.insert("signature", sig.parse().unwrap());
        }
        let e = parse_signature(&h).unwrap_err();
        assert!(
            matches!(e, AuthError::BadRequest(_)),
            "{input:?} / {sig:?}: {e:?}"
        );
    }
    let long = format!("s=(\"@method\");keyid=\"{}\"", "k".repeat(300));
    assert!(matches!(parse_err(&long, ok_sig), AuthError::BadRequest(_)));
    let huge = format!("s=(\"@method\");tag=\"{}\"", "t".repeat(MAX_FIELD_LEN));
    assert!(matches!(parse_err(&huge, ok_sig), AuthError::BadRequest(_)));
    let many = format!(
        "s=({});keyid=\"k\"",
        (0..100)
            .map(|i| format!("\"x-h{i}\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(matches!(parse_err(&many, ok_sig), AuthError::BadRequest(_)));
    // Non-ASCII bytes in the field.
    let mut h = HeaderMap::new();
    h.insert(
        "signature-input",
        http::HeaderValue::from_bytes(b"s=(\"\xff\")").unwrap(),
    );
    h.insert("signature", ok_sig.parse().unwrap());
    assert!(matches!(
        parse_signature(&h).unwrap_err(),
        AuthError::BadRequest(_)
    ));
    // Neither field: not our credentials.
    assert!(parse_signature(&HeaderMap::new()).unwrap().is_none());
}

#[test]
fn unsupported_components_are_400_and_absent_ones_401() {
    let mut h = rfc_headers(r#"s=("@status");keyid="k""#, "s=:AAAA:");
    let sig = parse_signature(&h).unwrap().unwrap();
    assert!(matches!(
        signature_base(&rfc_message(&h), &sig).unwrap_err(),
        AuthError::BadRequest(_)
    ));
    h.insert(
        "signature-input",
        r#"s=("date";req);keyid="k""#.parse().unwrap(),
    );
    let sig = parse_signature(&h).unwrap().unwrap();
    assert!(matches!(
        signature_base(&rfc_message(&h), &sig).unwrap_err(),
        AuthError::BadRequest(_)
    ));
    h.insert(
        "signature-input",
        r#"s=("x-absent");keyid="k""#.parse().unwrap(),
    );
    let sig = parse_signature(&h).unwrap().unwrap();
    assert!(matches!(
        signature_base(&rfc_message(&h), &sig).unwrap_err(),
        AuthError::Failed(_)
    ));
}

#[test]
fn algorithm_names_round_trip_and_keys_are_checked() {
    for a in Algorithm::ALL {
        assert_eq!(a.as_str().parse::<Algorithm>().unwrap(), a);
    }
    assert!("hs256".parse::<Algorithm>().is_err());
    assert!(VerifyKey::from_public_pem(Algorithm::Ed25519, P256_PUBLIC).is_err());
    assert!(VerifyKey::from_public_pem(Algorithm::EcdsaP256Sha256, "garbage").is_err());
    assert!(VerifyKey::from_public_pem(Algorithm::HmacSha256, ED25519_PUBLIC).is_err());
    assert!(VerifyKey::hmac(b"short").is_err());
    let k = VerifyKey::hmac(&[9u8; 32]).unwrap();
    assert!(!format!("{k:?}").contains('9'));
    // Wrong-length signatures are refused, not a panic.
    let ed = VerifyKey::from_public_pem(Algorithm::Ed25519, ED25519_PUBLIC).unwrap();
    assert!(!ed.verify(b"x", b""));
    assert!(!ed.verify(b"x", &[0u8; 1000]));
}

// --- The scheme, end to end -------------------------------------------

struct Fixture {
    scheme: HttpSigAuth<MemoryStore>,
    store: MemoryStore,
    user_id: i64,
    signing: ed25519_dalek::SigningKey,
    hmac: Vec<u8>,
}

async fn fixture() -> Fixture {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey};
    let store = MemoryStore::new();
    let user = store
        .create_user(NewUser {
            username: "ada".into(),
            is_active: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let secret = SecretKey::new([3u8; 32]).unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(
        &URL_SAFE_NO_PAD
            .decode(ED25519_D)
            .unwrap()
            .try_into()
            .unwrap(),
    );
    let keys = MemorySignatureKeys::new();
    keys.add_signature_key(&SignatureKeyRecord {
        key_id: "ed".into(),
        user_id: user.id,
        algorithm: Algorithm::Ed25519,
        key: signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
        created_at: chrono::Utc::now(),
    })
    .await
    .unwrap();
    let hmac = vec![5u8; 32];
    keys.add_signature_key(&SignatureKeyRecord {
        key_id: "mac".into(),
        user_id: user.id,
        algorithm: Algorithm::HmacSha256,
        key: secret.seal(HMAC_SEAL_PURPOSE, &hmac),
        created_at: chrono::Utc::now(),
    })
    .await
    .unwrap();
    let scheme = HttpSigAuth::new(
        store.clone(),
        keys,
        secret,
        Arc::new(MemoryReplayCache::new()),
        HttpSigConfig::default(),
    );
    Fixture {
        scheme,
        store,
        user_id: user.id,
        signing,
        hmac,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs a request the way a client would, returning it.
fn signed(
    f: &Fixture,
    method: Method,
    body: &[u8],
    components: &[&str],
    extra_params: &str,
    keyid: &str,
) -> http::Request<()> {
    let mut b = http::Request::builder()
        .method(method)
        .uri("/httpsig/?a=1")
        .header("host", "api.example:8000");
    if !body.is_empty() {
        let d = STANDARD.encode(<sha2::Sha256 as sha2::Digest>::digest(body));
        b = b.header("content-digest", format!("sha-256=:{d}:"));
    }
    let mut req = b.body(()).unwrap();
    req.extensions_mut()
        .insert(RequestBody(bytes::Bytes::copy_from_slice(body)));
    let list = components
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(" ");
    let params = format!("({list});keyid=\"{keyid}\"{extra_params}");
    let mut h = req.headers().clone();
    h.insert("signature-input", format!("sig1={params}").parse().unwrap());
    h.insert("signature", "sig1=:AAAA:".parse().unwrap());
    let parsed = parse_signature(&h).unwrap().unwrap();
    let msg = Message {
        method: req.method(),
        scheme: "http",
        authority: "api.example:8000",
        path: req.uri().path(),
        query: req.uri().query(),
        headers: &h,
    };
    let base = signature_base(&msg, &parsed).unwrap();
    let sig = if keyid == "mac" {
        use hmac::Mac;
        let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&f.hmac).unwrap();
        m.update(base.as_bytes());
        m.finalize().into_bytes().to_vec()
    } else {
        f.signing.sign(base.as_bytes()).to_bytes().to_vec()
    };
    let headers = req.headers_mut();
    headers.insert("signature-input", format!("sig1={params}").parse().unwrap());
    headers.insert(
        "signature",
        format!("sig1=:{}:", STANDARD.encode(sig)).parse().unwrap(),
    );
    req
}

const REQUIRED: &[&str] = &["@method", "@target-uri", "@authority"];

async fn run(f: &Fixture, req: &http::Request<()>) -> Outcome<crate::User> {
    f.scheme.authenticate(&RequestHead::from_request(req)).await
}

fn status(e: AuthError) -> StatusCode {
    e.to_response(Some(&http::HeaderValue::from_static("Signature")))
        .status()
}

#[tokio::test]
async fn a_good_signature_authenticates_once() {
    let f = fixture().await;
    let created = format!(";created={}", now());
    let req = signed(&f, Method::GET, b"", REQUIRED, &created, "ed");
    let ok = run(&f, &req).await.unwrap().unwrap();
    assert_eq!(ok.user.id, f.user_id);
    assert_eq!(ok.auth.unwrap().description(), "httpsig keyid ed");
    // The exact same request again: refused as a replay.
    let e = run(&f, &req).await.unwrap_err();
    assert_eq!(status(e), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn nonces_go_through_the_replay_cache() {
    let f = fixture().await;
    let p = format!(";created={};nonce=\"n1\"", now());
    let req = signed(&f, Method::GET, b"", REQUIRED, &p, "mac");
    assert!(run(&f, &req).await.unwrap().is_some());
    let again = signed(&f, Method::DELETE, b"", REQUIRED, &p, "mac");
    let e = run(&f, &again).await.unwrap_err();
    assert!(e.to_string().contains("already used"), "{e}");
    let p2 = format!(";created={};nonce=\"n2\"", now());
    let fresh = signed(&f, Method::DELETE, b"", REQUIRED, &p2, "mac");
    assert!(run(&f, &fresh).await.unwrap().is_some());
}

#[tokio::test]
async fn time_rules_are_enforced() {
    let f = fixture().await;
    for params in [
        format!(";created={}", now() - 301),
        format!(";created={}", now() + 120),
        format!(";created={};expires={}", now() - 10, now() - 1),
    ] {
        let req = signed(&f, Method::GET, b"", REQUIRED, &params, "ed");
        let e = run(&f, &req).await.unwrap_err();
        assert_eq!(status(e), StatusCode::UNAUTHORIZED, "{params}");
    }
    // Without created: 400.
    let req = signed(&f, Method::GET, b"", REQUIRED, "", "ed");
    assert_eq!(
        status(run(&f, &req).await.unwrap_err()),
        StatusCode::BAD_REQUEST
    );
    // Expiring later is fine.
    let params = format!(";created={};expires={}", now(), now() + 60);
    let req = signed(&f, Method::GET, b"", REQUIRED, &params, "ed");
    assert!(run(&f, &req).await.unwrap().is_some());
}

#[tokio::test]
async fn required_components_and_the_body_digest() {
    let f = fixture().await;
    let c = format!(";created={}", now());
    for comps in [
        &["@method", "@authority"][..],
        &["@target-uri", "@authority"][..],
        &["@method", "@path"][..],
    ] {
        let req = signed(&f, Method::GET, b"", comps, &c, "ed");
        assert_eq!(
            status(run(&f, &req).await.unwrap_err()),
            StatusCode::UNAUTHORIZED
        );
    }
    let ok_path = signed(
        &f,
        Method::GET,
        b"",
        &["@method", "@path", "@authority"],
        &c,
        "ed",
    );
    assert!(run(&f, &ok_path).await.unwrap().is_some());

    // A body must be covered by content-digest...
    let req = signed(&f, Method::POST, b"{\"a\":1}", REQUIRED, &c, "ed");
    assert_eq!(
        status(run(&f, &req).await.unwrap_err()),
        StatusCode::UNAUTHORIZED
    );
    let with = ["@method", "@target-uri", "@authority", "content-digest"];
    let req = signed(&f, Method::POST, b"{\"a\":1}", &with, &c, "ed");
    assert!(run(&f, &req).await.unwrap().is_some());
    // ...and the digest must match the body that arrived.
    let mut swapped = signed(&f, Method::POST, b"{\"a\":2}", &with, &c, "ed");
    swapped
        .extensions_mut()
        .insert(RequestBody(bytes::Bytes::from_static(b"{\"a\":3}")));
    let e = run(&f, &swapped).await.unwrap_err();
    assert!(e.to_string().contains("Content-Digest"), "{e}");
}

#[tokio::test]
async fn wrong_keys_signatures_and_users_are_refused() {
    let f = fixture().await;
    let c = format!(";created={}", now());
    // Unknown key id.
    let mut req = signed(&f, Method::GET, b"", REQUIRED, &c, "ed");
    let input = req.headers()["signature-input"]
        .to_str()
        .unwrap()
        .replace("\"ed\"", "\"nope\"");
    req.headers_mut()
        .insert("signature-input", input.parse().unwrap());
    assert_eq!(
        run(&f, &req).await.unwrap_err().to_string(),
        INVALID_SIGNATURE
    );
    // A changed method breaks the signature.
    let mut req = signed(&f, Method::GET, b"", REQUIRED, &c, "ed");
    *req.method_mut() = Method::POST;
    assert_eq!(
        run(&f, &req).await.unwrap_err().to_string(),
        INVALID_SIGNATURE
    );
    // alg must match the key.
    let p = format!("{c};alg=\"hmac-sha256\"");
    let req = signed(&f, Method::GET, b"", REQUIRED, &p, "ed");
    assert_eq!(
        run(&f, &req).await.unwrap_err().to_string(),
        INVALID_SIGNATURE
    );
    let p = format!(";created={};alg=\"ed25519\";nonce=\"x\"", now());
    let req = signed(&f, Method::GET, b"", REQUIRED, &p, "ed");
    assert!(run(&f, &req).await.unwrap().is_some());
    // An inactive user.
    f.store.set_active(f.user_id, false).await.unwrap();
    let p = format!(";created={};nonce=\"y\"", now());
    let req = signed(&f, Method::GET, b"", REQUIRED, &p, "ed");
    assert_eq!(
        run(&f, &req).await.unwrap_err().to_string(),
        "User inactive or deleted."
    );
}

#[tokio::test]
async fn no_signature_fields_pass_to_the_next_scheme() {
    let f = fixture().await;
    let req = http::Request::get("/").body(()).unwrap();
    assert!(run(&f, &req).await.unwrap().is_none());
    assert_eq!(f.scheme.challenge().unwrap(), "Signature realm=\"api\"");
    assert_eq!(
        f.scheme.config().accept_signature(true),
        "sig1=(\"@method\" \"@target-uri\" \"@authority\" \"content-digest\");created;keyid"
    );
}

#[test]
fn generated_key_pairs_verify_their_own_signatures() {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let pair = generate_key_pair(Algorithm::Ed25519).unwrap();
    assert!(pair.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(!format!("{pair:?}").contains("PRIVATE"));
    let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(&pair.private_pem).unwrap();
    let key = VerifyKey::from_public_pem(Algorithm::Ed25519, &pair.public_pem).unwrap();
    assert!(key.verify(b"m", &signing.sign(b"m").to_bytes()));
    let p256 = generate_key_pair(Algorithm::EcdsaP256Sha256).unwrap();
    assert!(VerifyKey::from_public_pem(Algorithm::EcdsaP256Sha256, &p256.public_pem).is_ok());
    assert!(generate_key_pair(Algorithm::HmacSha256).is_err());
}

// --- draft-cavage -------------------------------------------------------

#[tokio::test]
async fn draft_cavage_signatures_when_configured() {
    let f = fixture().await;
    let config = HttpSigConfig {
        cavage: true,
        ..HttpSigConfig::default()
    };
    let scheme = HttpSigAuth::new(
        f.store.clone(),
        f.scheme.keys.clone(),
        f.scheme.secret.clone(),
        Arc::new(MemoryReplayCache::new()),
        config,
    );
    let sign = |method: &str, body: &[u8], headers: &str, created: i64| {
        let mut b = http::Request::builder()
            .method(method)
            .uri("/httpsig/?a=1")
            .header("host", "api.example");
        let digest = format!(
            "SHA-256={}",
            STANDARD.encode(<sha2::Sha256 as sha2::Digest>::digest(body))
        );
        if !body.is_empty() {
            b = b.header("digest", digest.clone());
        }
        let mut lines = Vec::new();
        for h in headers.split(' ') {
            lines.push(match h {
                "(request-target)" => {
                    format!("(request-target): {} /httpsig/?a=1", method.to_lowercase())
                }
                "(created)" => format!("(created): {created}"),
                "host" => "host: api.example".to_owned(),
                "digest" => format!("digest: {digest}"),
                other => panic!("{other}"),
            });
        }
        let sig = STANDARD.encode(f.signing.sign(lines.join("\n").as_bytes()).to_bytes());
        let mut req = b
            .header(
                "signature",
                format!(
                    "keyId=\"ed\",algorithm=\"hs2019\",created={created},headers=\"{headers}\",signature=\"{sig}\""
                ),
            )
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(RequestBody(bytes::Bytes::copy_from_slice(body)));
        req
    };
    let run = |req: http::Request<()>| {
        let scheme = &scheme;
        async move { scheme.authenticate(&RequestHead::from_request(&req)).await }
    };
    let all = "(request-target) (created) host";
    let ok = sign("GET", b"", all, now());
    assert!(run(ok.clone()).await.unwrap().is_some());
    assert_eq!(
        run(ok).await.unwrap_err().to_string(),
        "Signature already used."
    );
    let with_body = "(request-target) (created) host digest";
    assert!(run(sign("POST", b"{}", with_body, now()))
        .await
        .unwrap()
        .is_some());
    // A body not covered by digest, an old signature, missing host.
    assert!(run(sign("POST", b"{}", all, now())).await.is_err());
    assert!(run(sign("GET", b"", all, now() - 400)).await.is_err());
    assert!(run(sign("GET", b"", "(request-target) (created)", now()))
        .await
        .is_err());
    // Hostile headers: 400.
    for bad in [
        "keyId=\"ed\",keyId=\"ed\",signature=\"AAAA\"",
        "keyId=\"ed\",signature=\"!!!\"",
        "keyId=\"ed\"",
        "keyId=\"ed,signature=\"AAAA\"",
        "keyId=\"ed\",created=soon,signature=\"AAAA\"",
        "keyId=\"ed\",extra=\"1\",signature=\"AAAA\"",
    ] {
        let req = http::Request::get("/")
            .header("signature", bad)
            .body(())
            .unwrap();
        let e = run(req).await.unwrap_err();
        assert!(matches!(e, AuthError::BadRequest(_)), "{bad}: {e:?}");
    }
    // Off by default: the same header is refused as RFC 9421 input.
    let req = sign("GET", b"", all, now());
    let e = f
        .scheme
        .authenticate(&RequestHead::from_request(&req))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::BadRequest(_)), "{e:?}");
}
