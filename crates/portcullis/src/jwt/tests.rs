//! Tests of the `jwt` module: tokens, keys, blacklist, scheme and views.

use axum::{body::Body, routing::get, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tower::ServiceExt;

use super::*;
use crate::password::{HasherConfig, PasswordHasher};
use crate::store::{MemoryStore, NewUser, UserAdmin, UserStore};
use crate::{IsAuthenticated, PasswordBackend, Policy, User};

const RSA_PRIVATE: &str = include_str!("testdata/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("testdata/rsa_public.pem");
const SECRET: [u8; 32] = [7u8; 32];

fn secret() -> SecretKey {
    SecretKey::new(SECRET).unwrap()
}

fn jwt_with(f: impl FnOnce(&mut JwtSettings)) -> Jwt {
    let mut s = JwtSettings::default();
    f(&mut s);
    Jwt::new(s, &secret()).unwrap()
}

fn jwt() -> Jwt {
    jwt_with(|_| {})
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// An HS256 token made by hand, as any other library would.
fn hs256_by_hand(key: &[u8], header: &Value, claims: &Value) -> String {
    let msg = format!("{}.{}", b64json(header), b64json(claims));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(msg.as_bytes());
    format!(
        "{msg}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// An HS256 token over a header and payload given as raw JSON text.
fn hs256_raw(key: &[u8], header: &str, claims: &str) -> String {
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(msg.as_bytes());
    format!(
        "{msg}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn part(token: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn claims_now(extra: Value) -> Value {
    let now = Utc::now().timestamp();
    let mut c = json!({"token_type": "access", "exp": now + 300, "iat": now, "jti": "0123456789abcdef0123456789abcdef", "user_id": 1});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

async fn user(store: &MemoryStore, name: &str, active: bool) -> User {
    let hash = PasswordHasher::new(HasherConfig::fast_for_tests())
        .hash("pw")
        .await
        .unwrap();
    store
        .create_user(NewUser {
            username: name.into(),
            password_hash: hash,
            is_active: active,
            ..Default::default()
        })
        .await
        .unwrap()
}

fn sign_map(jwt: &Jwt, v: Value) -> String {
    jwt.sign(v.as_object().unwrap().clone()).unwrap()
}

// ---- tokens ----

#[tokio::test]
async fn pair_has_simplejwt_claims() {
    let store = MemoryStore::new();
    let ada = user(&store, "ada", true).await;
    let pair = jwt().for_user(&ada).await.unwrap();

    let a = part(&pair.access, 1);
    assert_eq!(a["token_type"], "access");
    assert_eq!(
        a["user_id"],
        json!(ada.id),
        "an integer id is a JSON number, as simplejwt"
    );
    let jti = a["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 32);
    assert!(jti.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(), 300);
    assert!(a.get("aud").is_none() && a.get("iss").is_none());

    let r = part(&pair.refresh, 1);
    assert_eq!(r["token_type"], "refresh");
    assert_eq!(
        r["exp"].as_i64().unwrap() - r["iat"].as_i64().unwrap(),
        86400
    );
    assert_ne!(r["jti"], a["jti"]);

    let claims = jwt().validate(&pair.access, Some(ACCESS)).unwrap();
    assert_eq!(claims.user_id_i64(), Some(ada.id));
    assert_eq!(claims.jti(), jti);
    jwt().validate(&pair.refresh, Some(REFRESH)).unwrap();
}

#[test]
fn hs256_token_checks_out_by_hand() {
    let token = sign_map(&jwt(), claims_now(json!({})));
    assert_eq!(part(&token, 0), json!({"alg": "HS256", "typ": "JWT"}));
    assert_eq!(part(&token, 1)["user_id"], 1);
    // The signature is HMAC-SHA256 of `header.payload` under the raw secret.
    let (msg, sig) = token.rsplit_once('.').unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&SECRET).unwrap();
    mac.update(msg.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap())
        .unwrap();
}

#[test]
fn foreign_hs256_tokens_are_accepted() {
    // A token from another library: no kid, user_id as a string.
    let t = hs256_by_hand(
        &SECRET,
        &json!({"typ": "JWT", "alg": "HS256"}),
        &claims_now(json!({"user_id": "1"})),
    );
    let c = jwt().validate(&t, Some(ACCESS)).unwrap();
    assert_eq!(c.user_id_i64(), Some(1));
}

#[test]
fn expiry_honours_the_leeway() {
    let now = Utc::now().timestamp();
    let t = sign_map(&jwt(), claims_now(json!({"exp": now - 5})));
    assert_eq!(
        jwt().validate(&t, Some(ACCESS)).unwrap_err(),
        TokenError::Expired
    );
    let lenient = jwt_with(|s| s.leeway = Duration::from_secs(10));
    lenient.validate(&t, Some(ACCESS)).unwrap();
    // PyJWT's boundary: exp == now is already expired.
    let t = sign_map(&jwt(), claims_now(json!({"exp": now})));
    assert_eq!(
        jwt().validate(&t, Some(ACCESS)).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn missing_or_odd_claims_are_refused() {
    let mut c = claims_now(json!({}));
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        jwt().validate(&sign_map(&jwt(), c), None).unwrap_err(),
        TokenError::NoExp
    );
    let mut c = claims_now(json!({}));
    c.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        jwt().validate(&sign_map(&jwt(), c), None).unwrap_err(),
        TokenError::NoId
    );
    let mut c = claims_now(json!({}));
    c.as_object_mut().unwrap().remove("token_type");
    let t = sign_map(&jwt(), c);
    assert_eq!(
        jwt().validate(&t, Some(ACCESS)).unwrap_err(),
        TokenError::NoType
    );
    jwt().validate(&t, None).unwrap();
    let now = Utc::now().timestamp();
    for bad in [
        json!({"nbf": now + 60}),
        json!({"iat": now + 60}),
        json!({"exp": "soon"}),
        json!({"nbf": "x"}),
    ] {
        let t = sign_map(&jwt(), claims_now(bad));
        assert_eq!(jwt().validate(&t, None).unwrap_err(), TokenError::Invalid);
    }
}

#[tokio::test]
async fn token_types_are_not_interchangeable() {
    let store = MemoryStore::new();
    let pair = jwt()
        .for_user(&user(&store, "ada", true).await)
        .await
        .unwrap();
    assert_eq!(
        jwt().validate(&pair.refresh, Some(ACCESS)).unwrap_err(),
        TokenError::WrongType
    );
    assert!(matches!(
        jwt().refresh(&pair.access).await,
        Err(JwtError::Token(TokenError::WrongType))
    ));
}

#[test]
fn alg_none_is_refused() {
    let claims = b64json(&claims_now(json!({})));
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "None"}),
        json!({"alg": "HS256"}),
    ] {
        for sig in ["", "AAAA"] {
            let t = format!("{}.{claims}.{sig}", b64json(&header));
            assert_eq!(
                jwt().validate(&t, None).unwrap_err(),
                TokenError::Invalid,
                "{header} {sig:?}"
            );
        }
    }
    for garbage in ["", "a", "a.b", "a.b.c", "...", "a.b.c.d"] {
        assert_eq!(
            jwt().validate(garbage, None).unwrap_err(),
            TokenError::Invalid
        );
    }
}

#[test]
fn another_hmac_algorithm_with_the_right_secret_is_refused() {
    // One key (HS256): `validate` goes straight to the signature check,
    // which must still insist on the configured algorithm.
    let j = jwt();
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let t = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            &claims_now(json!({})),
            &jsonwebtoken::EncodingKey::from_secret(&SECRET),
        )
        .unwrap();
        assert_eq!(
            j.validate(&t, None).unwrap_err(),
            TokenError::Invalid,
            "{alg:?}"
        );
    }
    let good = sign_map(&j, claims_now(json!({})));
    j.validate(&good, Some(ACCESS)).unwrap();
}

#[test]
fn critical_header_extensions_are_refused() {
    let j = jwt();
    let crit = hs256_by_hand(
        &SECRET,
        &json!({"alg": "HS256", "typ": "JWT", "crit": ["x-unknown"], "x-unknown": 1}),
        &claims_now(json!({})),
    );
    assert_eq!(j.validate(&crit, None).unwrap_err(), TokenError::Invalid);
    // The same token without `crit` is good: the signature is not what
    // refused it.
    let plain = hs256_by_hand(
        &SECRET,
        &json!({"alg": "HS256", "typ": "JWT", "x-unknown": 1, "kid": "crit"}),
        &claims_now(json!({})),
    );
    j.validate(&plain, Some(ACCESS)).unwrap();
}

/// The same `Jwt` with its HMAC keys' own verifier removed, so that
/// `validate` hands every token to `jsonwebtoken::decode`.
fn through_the_library(j: &Jwt) -> Jwt {
    let mut inner = (*j.inner).clone();
    for key in &mut inner.keys.verifying {
        assert!(key.hmac.is_some());
        key.hmac = None;
    }
    Jwt {
        inner: Arc::new(inner),
    }
}

#[test]
fn hmac_tokens_are_judged_as_jsonwebtoken_judges_them() {
    let now = Utc::now().timestamp();
    let headers = [
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"alg": "HS256"}),
        json!({"alg": "HS256", "kid": "k1", "cty": "JWT", "x-other": [1]}),
        json!({"alg": "HS256", "kid": 5}),
        json!({"alg": "HS256", "typ": 1}),
        json!({"alg": "HS256", "typ": null, "kid": null}),
        json!({"alg": "HS256", "crit": ["exp"]}),
        json!({"alg": "HS256", "crit": null}),
        json!({"alg": "hs256"}),
        json!({"alg": "HS384"}),
        json!({"alg": "none"}),
        json!({"alg": 256}),
        json!({"alg": null}),
        json!({"typ": "JWT"}),
        json!(["HS256"]),
    ];
    let claims = [
        claims_now(json!({})),
        claims_now(json!({"aud": "api"})),
        claims_now(json!({"aud": ["x", "api"], "iss": "me"})),
        claims_now(json!({"aud": "api", "iss": "me"})),
        claims_now(json!({"aud": ["api", 5], "iss": "me"})),
        claims_now(json!({"aud": [], "iss": "me"})),
        claims_now(json!({"aud": "x", "iss": "me"})),
        claims_now(json!({"aud": null, "iss": "me"})),
        claims_now(json!({"aud": 5, "iss": "me"})),
        claims_now(json!({"aud": "api", "iss": ["me"]})),
        claims_now(json!({"aud": "api", "iss": ["you", "me"]})),
        claims_now(json!({"aud": "api", "iss": "you"})),
        claims_now(json!({"aud": "api", "iss": null})),
        claims_now(json!({"aud": "api", "iss": "me", "nbf": now + 3600})),
        claims_now(json!({"aud": "api", "iss": "me", "nbf": now - 10})),
        claims_now(json!({"aud": "api", "iss": "me", "nbf": "soon"})),
        claims_now(json!({"exp": now - 3600})),
        json!(["not", "an", "object"]),
        json!("text"),
    ];
    let mut tokens = Vec::new();
    for h in &headers {
        for c in &claims {
            let t = hs256_by_hand(&SECRET, h, c);
            tokens.push(t.clone());
            // The signature spelt otherwise, cut, or made with another key.
            tokens.push(format!("{t}="));
            tokens.push(t[..t.len() - 1].to_owned());
            let last = t.as_bytes()[t.len() - 1];
            tokens.push(format!(
                "{}{}",
                &t[..t.len() - 1],
                if last == b'A' { 'B' } else { 'A' }
            ));
            tokens.push(hs256_by_hand(&[8u8; 32], h, c));
        }
    }
    let good = hs256_by_hand(&SECRET, &headers[0], &claims[3]);
    let (h, rest) = good.split_once('.').unwrap();
    tokens.extend([
        format!("{good}.x"),
        format!("{h}.{rest}.{rest}"),
        format!("{h}.{}", rest.split_once('.').unwrap().0),
        format!("{h}=.{rest}"),
        format!(" {good}"),
        good.replace('.', ".."),
        String::new(),
        "..".into(),
    ]);
    // Raw JSON: repeated names, odd `sub`, `nbf` fractions, and header
    // members of the wrong type, which `Value`s cannot spell.
    let base = format!(
        r#""token_type": "access", "jti": "0123456789abcdef0123456789abcdef", "user_id": 1, "iat": {now}"#
    );
    let later = now + 300;
    let raw_claims = [
        format!(r#"{{{base}, "exp": {later}}}"#),
        format!(r#"{{{base}, "exp": 1, "exp": {later}}}"#),
        format!(r#"{{{base}, "exp": {later}, "exp": 1}}"#),
        format!(r#"{{{base}, "exp": {later}, "nbf": 1, "nbf": 2}}"#),
        format!(r#"{{{base}, "exp": {later}, "aud": "x", "aud": "api", "iss": "me"}}"#),
        format!(r#"{{{base}, "exp": {later}, "aud": "api", "iss": "you", "iss": "me"}}"#),
        format!(r#"{{{base}, "exp": {later}, "sub": "a", "sub": "b"}}"#),
        format!(r#"{{{base}, "exp": {later}, "iat": 1, "jti": "other", "user_id": 2}}"#),
        format!(r#"{{{base}, "exp": {later}, "token_type": "refresh"}}"#),
        format!(r#"{{{base}, "exp": {later}, "sub": [1]}}"#),
        format!(r#"{{{base}, "exp": {later}, "sub": {{"a": 1}}}}"#),
        format!(r#"{{{base}, "exp": {later}, "sub": []}}"#),
        format!(r#"{{{base}, "exp": {later}, "sub": 5, "aud": "api", "iss": "me"}}"#),
        format!(r#"{{{base}, "exp": {later}, "sub": true}}"#),
        format!(r#"{{{base}, "exp": {later}, "sub": null}}"#),
        format!(r#"{{{base}, "exp": {later}, "nbf": {now}.6}}"#),
        format!(r#"{{{base}, "exp": {later}, "nbf": {now}.4}}"#),
        format!(r#"{{{base}, "exp": {later}, "nbf": {}.6}}"#, now + 7),
        format!(r#"{{{base}, "exp": {later}, "nbf": -5}}"#),
        format!(r#"{{{base}, "exp": {later}, "nbf": -0.5}}"#),
        format!(r#"{{{base}, "exp": {later}, "nbf": "soon"}}"#),
        format!(r#"{{{base}, "exp": {later}, "nbf": 1e30}}"#),
        format!(r#"{{{base}, "exp": {later}, "nbf": [1]}}"#),
        format!(r#"{{{base}, "exp": 1, "nbf": {}}}"#, now + 3600),
        format!(r#"{{{base}, "exp": "soon", "nbf": {}}}"#, now + 3600),
        format!(r#"{{{base}, "exp": 1, "nbf": "soon"}}"#),
        format!(r#"{{{base}, "nbf": {}}}"#, now + 3600),
        format!(r#"{{{base}, "nbf": {}, "iat": "x"}}"#, now + 3600),
        format!(r#"{{{base}, "exp": {later}, "iat": {}}}"#, now + 3600),
        format!(r#"{{{base}, "exp": {}.5}}"#, now - 5),
        format!(r#"{{{base}, "exp": {later}, "other": 1e400}}"#),
    ];
    let raw_headers = [
        r#"{"alg": "HS256", "typ": "JWT"}"#,
        r#"{"alg": "HS256", "jku": 5}"#,
        r#"{"alg": "HS256", "x5u": "https://x", "x5t": "a", "x5t#S256": "b"}"#,
        r#"{"alg": "HS256", "x5t#S256": 1}"#,
        r#"{"alg": "HS256", "x5c": "x"}"#,
        r#"{"alg": "HS256", "x5c": ["a", "b"]}"#,
        r#"{"alg": "HS256", "jwk": {}}"#,
        r#"{"alg": "HS256", "jwk": {"kty": "oct", "k": "AAAA"}}"#,
        r#"{"alg": "HS256", "alg": "HS256"}"#,
        r#"{"alg": "HS256", "crit": ["x"], "crit": ["x"]}"#,
        r#"{"alg": {"HS256": null}}"#,
    ];
    for h in raw_headers {
        for c in &raw_claims {
            tokens.push(hs256_raw(&SECRET, h, c));
        }
    }
    let settings: [fn(&mut JwtSettings); 3] = [
        |_| {},
        |s| {
            s.audience = Some("api".into());
            s.issuer = Some("me".into());
        },
        |s| s.leeway = Duration::from_secs(10),
    ];
    let mut accepted = 0;
    for configure in settings {
        let ours = jwt_with(configure);
        let library = through_the_library(&ours);
        for t in &tokens {
            for expected in [None, Some(ACCESS)] {
                let (a, b) = (ours.validate(t, expected), library.validate(t, expected));
                assert_eq!(a, b, "{t} expecting {expected:?}");
                accepted += usize::from(a.is_ok());
            }
        }
    }
    // Enough of the tokens pass for the comparison to mean something.
    assert!(accepted > 100, "{accepted}");
}

#[test]
fn picking_claims_accepts_what_a_map_accepts() {
    let s = JwtSettings {
        user_id_claim: "sub".into(),
        ..Default::default()
    };
    let texts: &[&[u8]] = &[
        br#"{"exp": 1, "jti": "a", "token_type": "access", "sub": 5}"#,
        br#"{"exp": 1, "jti": "a", "jti": 7, "token_type": 1, "token_type": "x"}"#,
        br#"{"\u0065xp": 3, "j\u0074i": "esc\"aped", "x": {"exp": 9, "y": [1, {"z": null}]}}"#,
        br#"{"aud": ["a", "b"], "iss": "me", "nbf": 1.5, "iat": -4, "other": 1e400}"#,
        br#"{"other": 1e300, "exp": 18446744073709551615, "nbf": -9223372036854775808}"#,
        br#"{"other": "\ud800", "exp": 1}"#,
        br#"{"other": "\ud83d\ude00", "exp": 1}"#,
        br#"{"other": "bad \x escape"}"#,
        br#"{"other": [1, 2,]}"#,
        br#"{"exp": 1} trailing"#,
        br#"{"exp": 1}   "#,
        br#"{"exp": 01}"#,
        br#"{"exp": 1, }"#,
        br#"[1, 2]"#,
        br#""text""#,
        br#"null"#,
        br#"{}"#,
        b"{\"other\": \"\xff\"}",
        br#"{"sub": {"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}"#,
    ];
    let refused: &[&[u8]] = &[
        br#"{"exp": 1, "exp": 2}"#,
        br#"{"exp": 1, "aud": "a", "\u0061ud": "b"}"#,
        br#"{"nbf": 1, "nbf": 1}"#,
        br#"{"iss": null, "iss": "me"}"#,
        br#"{"sub": "x", "sub": "x"}"#,
        br#"{"exp": 1, "sub": [1]}"#,
        br#"{"exp": 1, "sub": {}}"#,
    ];
    let deep = format!("{{\"other\": {}{}}}", "[".repeat(200), "]".repeat(200));
    let mut all: Vec<&[u8]> = texts.to_vec();
    all.extend(refused);
    all.push(deep.as_bytes());
    let mut both = 0;
    for text in all {
        let map = serde_json::from_slice::<Map<String, Value>>(text);
        let mut reading = serde_json::Deserializer::from_slice(text);
        let picked = serde::de::DeserializeSeed::deserialize(Pick(&s), &mut reading)
            .ok()
            .filter(|_| reading.end().is_ok());
        let shown = String::from_utf8_lossy(text);
        match (map, picked) {
            (Ok(map), Some(picked)) => {
                assert_eq!(picked, Picked::from_map(&map, &s), "{shown}");
                both += 1;
            }
            (Err(_), None) => {}
            // What jsonwebtoken's own claims struct refused on top.
            (Ok(_), None) if refused.contains(&text) => {}
            (map, picked) => panic!("{shown}: map {map:?}, picked {picked:?}"),
        }
    }
    assert!(both >= 5, "{both}");
}

#[test]
fn hs256_with_the_rsa_public_key_is_refused() {
    let rsa = jwt_with(|s| {
        s.algorithm = Algorithm::RS256;
        s.signing_key = Some(JwtKey::private_pem(Algorithm::RS256, RSA_PRIVATE).unwrap());
    });
    // The real thing verifies.
    let good = sign_map(&rsa, claims_now(json!({})));
    assert_eq!(part(&good, 0)["alg"], "RS256");
    rsa.validate(&good, Some(ACCESS)).unwrap();
    // The classic confusion: HMAC keyed with the public key's text or DER.
    let der = URL_SAFE_NO_PAD.encode(RSA_PUBLIC);
    for key in [RSA_PUBLIC.as_bytes(), der.as_bytes()] {
        let forged = hs256_by_hand(
            key,
            &json!({"alg": "HS256", "typ": "JWT"}),
            &claims_now(json!({})),
        );
        assert_eq!(
            rsa.validate(&forged, None).unwrap_err(),
            TokenError::Invalid
        );
    }
    // A verify-only RSA key is no HMAC key either.
    let verify_only = jwt_with(|s| {
        s.verifying_keys = vec![JwtKey::public_pem(Algorithm::RS256, RSA_PUBLIC).unwrap()]
    });
    verify_only.validate(&good, Some(ACCESS)).unwrap();
    let forged = hs256_by_hand(
        RSA_PUBLIC.as_bytes(),
        &json!({"alg": "HS256"}),
        &claims_now(json!({})),
    );
    assert_eq!(
        verify_only.validate(&forged, None).unwrap_err(),
        TokenError::Invalid
    );
}

#[test]
fn keys_rotate_by_kid() {
    let old_pair = generate_key_pair(Algorithm::EdDSA).unwrap();
    let new_pair = generate_key_pair(Algorithm::EdDSA).unwrap();
    let old = jwt_with(|s| {
        s.algorithm = Algorithm::EdDSA;
        s.signing_key = Some(
            JwtKey::private_pem(Algorithm::EdDSA, &old_pair.private_pem)
                .unwrap()
                .with_kid("old"),
        );
    });
    let new = jwt_with(|s| {
        s.algorithm = Algorithm::EdDSA;
        s.signing_key = Some(
            JwtKey::private_pem(Algorithm::EdDSA, &new_pair.private_pem)
                .unwrap()
                .with_kid("new"),
        );
        s.verifying_keys = vec![JwtKey::public_pem(Algorithm::EdDSA, &old_pair.public_pem)
            .unwrap()
            .with_kid("old")];
    });
    let old_token = sign_map(&old, claims_now(json!({})));
    let new_token = sign_map(&new, claims_now(json!({})));
    assert_eq!(part(&old_token, 0)["kid"], "old");
    assert_eq!(part(&new_token, 0)["kid"], "new");
    new.validate(&old_token, Some(ACCESS)).unwrap();
    new.validate(&new_token, Some(ACCESS)).unwrap();
    assert_eq!(
        old.validate(&new_token, None).unwrap_err(),
        TokenError::Invalid
    );
    // A token signed by an unknown key claiming a known kid is refused.
    let rogue = jwt_with(|s| {
        s.algorithm = Algorithm::EdDSA;
        let k = generate_key_pair(Algorithm::EdDSA).unwrap();
        s.signing_key = Some(
            JwtKey::private_pem(Algorithm::EdDSA, &k.private_pem)
                .unwrap()
                .with_kid("old"),
        );
    });
    assert_eq!(
        new.validate(&sign_map(&rogue, claims_now(json!({}))), None)
            .unwrap_err(),
        TokenError::Invalid
    );
    // Both public keys are published.
    let jwks = new.jwks();
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, vec![json!("new"), json!("old")]);
}

#[test]
fn es256_and_jwks_shapes() {
    assert_eq!(jwt().jwks(), json!({"keys": []}));

    let ec = generate_key_pair(Algorithm::ES256).unwrap();
    assert!(ec.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(ec.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let signer = jwt_with(|s| {
        s.algorithm = Algorithm::ES256;
        s.signing_key = Some(
            JwtKey::private_pem(Algorithm::ES256, &ec.private_pem)
                .unwrap()
                .with_kid("ec1"),
        );
    });
    let t = sign_map(&signer, claims_now(json!({})));
    let k = &signer.jwks()["keys"][0];
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    assert_eq!(
        (k["use"].as_str(), k["kid"].as_str()),
        (Some("sig"), Some("ec1"))
    );
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(k["x"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert!(k.get("d").is_none(), "no private parts");

    // A verifier built from the published JWKS alone.
    let mut s = JwtSettings::default();
    assert_eq!(s.add_jwks(&signer.jwks()), 1);
    Jwt::new(s, &secret())
        .unwrap()
        .validate(&t, Some(ACCESS))
        .unwrap();

    let rsa = jwt_with(|s| {
        s.algorithm = Algorithm::RS256;
        s.signing_key = Some(JwtKey::private_pem(Algorithm::RS256, RSA_PRIVATE).unwrap());
    });
    let k = &rsa.jwks()["keys"][0];
    assert_eq!(k["kty"], "RSA");
    assert_eq!(k["e"], "AQAB");
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(k["n"].as_str().unwrap())
            .unwrap()
            .len(),
        256
    );

    let ed = generate_key_pair(Algorithm::EdDSA).unwrap();
    let k = JwtKey::public_pem(Algorithm::EdDSA, &ed.public_pem)
        .unwrap()
        .public_jwk()
        .unwrap();
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
}

#[test]
fn configuration_mistakes_are_caught_when_building() {
    let build = |f: &dyn Fn(&mut JwtSettings)| {
        let mut s = JwtSettings::default();
        f(&mut s);
        Jwt::new(s, &secret())
    };
    let pub_only = JwtKey::public_pem(Algorithm::RS256, RSA_PUBLIC).unwrap();
    assert!(build(&|s| {
        s.algorithm = Algorithm::RS256;
        s.signing_key = Some(pub_only.clone());
    })
    .is_err());
    let rsa = JwtKey::private_pem(Algorithm::RS256, RSA_PRIVATE).unwrap();
    assert!(
        build(&|s| s.signing_key = Some(rsa.clone())).is_err(),
        "algorithm left at HS256"
    );
    // The 32-byte secret is too short for HS512.
    assert!(build(&|s| s.algorithm = Algorithm::HS512).is_err());
    assert!(build(&|s| s.auth_header_types = vec!["Bad Type".into()]).is_err());
    assert!(build(&|s| s.access_token_lifetime = Duration::ZERO).is_err());
    assert!(JwtKey::private_pem(Algorithm::ES256, RSA_PRIVATE).is_err());
    assert!(JwtKey::hmac(Algorithm::RS256, &SECRET).is_err());
    assert!(generate_key_pair(Algorithm::HS256).is_err());
    assert!(!format!("{:?}", JwtKey::from_secret_key(&secret())).contains("7, 7"));
}

#[test]
fn audience_and_issuer_are_enforced() {
    let a = jwt_with(|s| {
        s.audience = Some("api-a".into());
        s.issuer = Some("me".into());
    });
    let t = sign_map(&a, claims_now(json!({})));
    assert_eq!(
        (part(&t, 1)["aud"].as_str(), part(&t, 1)["iss"].as_str()),
        (Some("api-a"), Some("me"))
    );
    a.validate(&t, Some(ACCESS)).unwrap();
    let b = jwt_with(|s| s.audience = Some("api-b".into()));
    assert_eq!(b.validate(&t, None).unwrap_err(), TokenError::Invalid);
    let other_iss = jwt_with(|s| {
        s.audience = Some("api-a".into());
        s.issuer = Some("someone-else".into());
    });
    assert_eq!(
        other_iss.validate(&t, None).unwrap_err(),
        TokenError::Invalid
    );
    // Required when configured.
    let plain = sign_map(&jwt(), claims_now(json!({})));
    assert_eq!(a.validate(&plain, None).unwrap_err(), TokenError::Invalid);
}

// ---- refresh, rotation, blacklist ----

#[tokio::test]
async fn refresh_without_rotation_returns_only_access() {
    let store = MemoryStore::new();
    let j = jwt();
    let pair = j.for_user(&user(&store, "ada", true).await).await.unwrap();
    let out = j.refresh(&pair.refresh).await.unwrap();
    assert!(out.refresh.is_none());
    assert_eq!(out.to_json().as_object().unwrap().len(), 1);
    let c = j.validate(&out.access, Some(ACCESS)).unwrap();
    assert_eq!(
        c.user_id_i64(),
        j.validate(&pair.access, None).unwrap().user_id_i64()
    );
}

#[tokio::test]
async fn blacklist_after_rotation_refuses_the_old_refresh_token() {
    let store = MemoryStore::new();
    let bl = MemoryBlacklist::new();
    let j = jwt_with(|s| {
        s.rotate_refresh_tokens = true;
        s.blacklist_after_rotation = true;
    })
    .with_blacklist(bl.clone());
    let pair = j.for_user(&user(&store, "ada", true).await).await.unwrap();
    let old_jti = part(&pair.refresh, 1)["jti"].as_str().unwrap().to_owned();
    assert!(
        bl.outstanding(&old_jti).is_some(),
        "issued refresh tokens are outstanding"
    );

    let out = j.refresh(&pair.refresh).await.unwrap();
    let new = out.refresh.clone().unwrap();
    let new_claims = part(&new, 1);
    assert_ne!(new_claims["jti"].as_str(), Some(old_jti.as_str()));
    assert_eq!(new_claims["token_type"], "refresh");
    assert!(bl
        .outstanding(new_claims["jti"].as_str().unwrap())
        .is_some());

    assert!(matches!(
        j.refresh(&pair.refresh).await,
        Err(JwtError::Token(TokenError::Blacklisted))
    ));
    j.refresh(&new).await.unwrap();
    // The verify view refuses it too, with simplejwt's 400.
    let e = views::verify(&j, &pair.refresh).await.unwrap_err();
    assert_eq!(e.status(), 400);
    assert_eq!(
        e.body(),
        json!({"non_field_errors": ["Token is blacklisted"]})
    );
}

#[tokio::test]
async fn rotation_without_blacklisting_keeps_the_old_token_usable() {
    let store = MemoryStore::new();
    let j = jwt_with(|s| s.rotate_refresh_tokens = true).with_blacklist(MemoryBlacklist::new());
    let pair = j.for_user(&user(&store, "ada", true).await).await.unwrap();
    assert!(j.refresh(&pair.refresh).await.unwrap().refresh.is_some());
    j.refresh(&pair.refresh).await.unwrap();
}

#[tokio::test]
async fn blacklisting_needs_a_blacklist_and_is_final() {
    let store = MemoryStore::new();
    let ada = user(&store, "ada", true).await;
    let pair = jwt().for_user(&ada).await.unwrap();
    assert!(matches!(
        jwt().blacklist(&pair.refresh).await,
        Err(JwtError::Store(StoreError::Unsupported(_)))
    ));

    let j = jwt().with_blacklist(MemoryBlacklist::new());
    let pair = j.for_user(&ada).await.unwrap();
    views::blacklist(&j, &pair.refresh).await.unwrap();
    let e = views::refresh(&j, &store, &pair.refresh).await.unwrap_err();
    assert_eq!(e.status(), 401);
    assert_eq!(
        e.body(),
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"})
    );
    let e = views::blacklist(&j, &pair.refresh).await.unwrap_err();
    assert_eq!(e.code(), Some("token_not_valid"));
    assert!(matches!(
        j.blacklist(&pair.access).await,
        Err(JwtError::Token(TokenError::WrongType))
    ));
    assert_eq!(j.flush_expired().await.unwrap(), 0);
}

// ---- views ----

fn backend(store: &MemoryStore) -> PasswordBackend<MemoryStore> {
    PasswordBackend::new(
        store.clone(),
        PasswordHasher::new(HasherConfig::fast_for_tests()),
    )
}

#[tokio::test]
async fn obtain_issues_pairs_only_for_active_accounts() {
    let store = MemoryStore::new();
    user(&store, "ada", true).await;
    user(&store, "bob", false).await;
    let j = jwt_with(|s| s.update_last_login = true);
    let pair = views::obtain(&j, &backend(&store), "ada", "pw")
        .await
        .unwrap();
    assert_eq!(pair.to_json().as_object().unwrap().len(), 2);
    assert!(store
        .user_by_username("ada")
        .await
        .unwrap()
        .unwrap()
        .last_login
        .is_some());

    for (name, pw) in [("ada", "nope"), ("bob", "pw"), ("ghost", "pw")] {
        let e = views::obtain(&j, &backend(&store), name, pw)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("no_active_account"));
        let res = e.to_response(&j);
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
        let body: Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(
            body,
            json!({"detail": "No active account found with the given credentials"})
        );
    }
}

#[tokio::test]
async fn refresh_view_refuses_inactive_or_deleted_users() {
    let store = MemoryStore::new();
    let ada = user(&store, "ada", true).await;
    let j = jwt();
    let pair = j.for_user(&ada).await.unwrap();
    let out = views::refresh(&j, &store, &pair.refresh).await.unwrap();
    assert!(out.to_json()["access"].is_string());

    store.set_active(ada.id, false).await.unwrap();
    let e = views::refresh(&j, &store, &pair.refresh).await.unwrap_err();
    assert_eq!(
        e.body(),
        json!({"detail": "No active account found for the given token."})
    );
    store.delete_user(ada.id).await.unwrap();
    let e = views::refresh(&j, &store, &pair.refresh).await.unwrap_err();
    assert_eq!(e.status(), 401);

    let e = views::refresh(&j, &store, "not a token").await.unwrap_err();
    assert_eq!(
        e.body(),
        json!({"detail": "Token is invalid", "code": "token_not_valid"})
    );
}

#[tokio::test]
async fn verify_view_accepts_any_valid_token() {
    let store = MemoryStore::new();
    let j = jwt().with_blacklist(MemoryBlacklist::new());
    let pair = j.for_user(&user(&store, "ada", true).await).await.unwrap();
    views::verify(&j, &pair.access).await.unwrap();
    views::verify(&j, &pair.refresh).await.unwrap();
    let e = views::verify(&j, "x.y.z").await.unwrap_err();
    assert_eq!(e.status(), 401);
    let e = views::verify(&jwt_with(|s| s.audience = Some("x".into())), &pair.access)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("token_not_valid"));
    assert_eq!(
        JwtViewError::MissingField("refresh").body(),
        json!({"refresh": ["This field is required."]})
    );
}

#[tokio::test]
async fn store_failures_fail_closed_without_details() {
    let store = MemoryStore::new();
    let ada = user(&store, "ada", true).await;
    let pair = jwt().for_user(&ada).await.unwrap();
    store.set_down(true);
    let e = views::refresh(&jwt(), &store, &pair.refresh)
        .await
        .unwrap_err();
    let res = e.to_response(&jwt());
    assert_eq!(res.status(), 503);
    assert!(!String::from_utf8_lossy(res.body()).contains("memory store"));
}

// ---- the scheme over the core's Policy ----

async fn app(j: Jwt, store: MemoryStore) -> Router {
    app_with(JwtAuth::new(j, store))
}

fn app_with(scheme: JwtAuth<MemoryStore>) -> Router {
    let policy = Policy::<User>::new()
        .scheme(scheme)
        .permission(IsAuthenticated);
    Router::new()
        .route(
            "/",
            get(|id: crate::Identity<User>| async move {
                id.auth()
                    .map(|a| a.description().to_owned())
                    .unwrap_or_default()
            }),
        )
        .layer(policy.layer())
}

async fn call(app: &Router, auth: Option<&str>) -> (u16, Option<String>, Value) {
    let mut req = http::Request::get("/");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, challenge, body)
}

#[tokio::test]
async fn scheme_accepts_access_tokens_case_insensitively() {
    let store = MemoryStore::new();
    let ada = user(&store, "ada", true).await;
    let j = jwt();
    let pair = j.for_user(&ada).await.unwrap();
    let app = app(j, store).await;
    let jti = part(&pair.access, 1)["jti"].as_str().unwrap().to_owned();
    for kw in ["Bearer", "bearer", "BEARER"] {
        let (status, _, body) = call(&app, Some(&format!("{kw} {}", pair.access))).await;
        assert_eq!(status, 200);
        assert_eq!(body, Value::String(format!("jwt access jti={jti}")));
    }
}

#[tokio::test]
async fn scheme_errors_are_simplejwts() {
    let store = MemoryStore::new();
    let ada = user(&store, "ada", true).await;
    let bob = user(&store, "bob", true).await;
    let j = jwt();
    let ada_pair = j.for_user(&ada).await.unwrap();
    let bob_pair = j.for_user(&bob).await.unwrap();
    let app = app(j, store.clone()).await;
    let challenge = Some("Bearer realm=\"api\"".to_owned());

    // Not our keyword, or nothing: the next scheme (none) -> not authenticated.
    for h in [None, Some("Token abc"), Some("")] {
        let (status, c, body) = call(&app, h).await;
        assert_eq!((status, &c), (401, &challenge));
        assert_eq!(
            body["detail"],
            "Authentication credentials were not provided."
        );
    }
    for h in ["Bearer", "Bearer a b"] {
        let (status, c, body) = call(&app, Some(h)).await;
        assert_eq!((status, c), (401, challenge.clone()));
        assert_eq!(
            body,
            json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"})
        );
    }
    let invalid = |msg: &str| {
        json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": msg}],
        })
    };
    let (status, c, body) = call(&app, Some("Bearer not.a.jwt")).await;
    assert_eq!(
        (status, c, body),
        (401, challenge.clone(), invalid("Token is invalid"))
    );
    let (_, _, body) = call(&app, Some(&format!("Bearer {}", ada_pair.refresh))).await;
    assert_eq!(body, invalid("Token has wrong type"));
    let expired = sign_map(
        &jwt(),
        claims_now(json!({"exp": Utc::now().timestamp() - 1})),
    );
    let (_, _, body) = call(&app, Some(&format!("Bearer {expired}"))).await;
    assert_eq!(body, invalid("Token is expired"));

    store.set_active(ada.id, false).await.unwrap();
    let (status, _, body) = call(&app, Some(&format!("Bearer {}", ada_pair.access))).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"detail": "User is inactive", "code": "user_inactive"})
        )
    );
    store.delete_user(bob.id).await.unwrap();
    let (_, _, body) = call(&app, Some(&format!("Bearer {}", bob_pair.access))).await;
    assert_eq!(
        body,
        json!({"detail": "User not found", "code": "user_not_found"})
    );
    let no_user = sign_map(&jwt(), claims_now(json!({"user_id": null})));
    let (_, _, body) = call(&app, Some(&format!("Bearer {no_user}"))).await;
    assert_eq!(
        body,
        json!({"detail": "Token contained no recognizable user identification", "code": "token_not_valid"})
    );
}

#[tokio::test]
async fn access_blacklist_is_opt_in() {
    let store = MemoryStore::new();
    let ada = user(&store, "ada", true).await;
    let bl = MemoryBlacklist::new();
    let off = jwt().with_blacklist(bl.clone());
    let on = jwt_with(|s| s.blacklist_access_tokens = true).with_blacklist(bl.clone());
    let pair = on.for_user(&ada).await.unwrap();
    on.blacklist_access(&pair.access).await.unwrap();
    let header = format!("Bearer {}", pair.access);
    assert_eq!(
        call(&app(off, store.clone()).await, Some(&header)).await.0,
        200
    );
    let (status, _, body) = call(&app(on, store).await, Some(&header)).await;
    assert_eq!(status, 401);
    assert_eq!(body["messages"][0]["message"], "Token is blacklisted");
}

#[tokio::test]
async fn usernames_as_user_ids_and_custom_header_types() {
    let store = MemoryStore::new();
    let ada = user(&store, "ada", true).await;
    let j = jwt_with(|s| {
        s.user_id_field = UserIdField::Username;
        s.user_id_claim = "sub".into();
        s.auth_header_types = vec!["JWT".into(), "Bearer".into()];
    });
    let pair = j.for_user(&ada).await.unwrap();
    assert_eq!(part(&pair.access, 1)["sub"], "ada");
    let app = app(j, store).await;
    assert_eq!(
        call(&app, Some(&format!("jwt {}", pair.access))).await.0,
        200
    );
    assert_eq!(
        call(&app, Some(&format!("Bearer {}", pair.access))).await.0,
        200
    );
    assert_eq!(
        call(&app, None).await.1.as_deref(),
        Some("JWT realm=\"api\"")
    );
}

#[tokio::test]

async fn rsa_key_pairs_generate_and_load() {
    let kp = generate_key_pair(Algorithm::RS256).unwrap();
    let j = jwt_with(|s| {
        s.algorithm = Algorithm::PS256;
        s.signing_key = Some(JwtKey::private_pem(Algorithm::PS256, &kp.private_pem).unwrap());
    });
    let t = sign_map(&j, claims_now(json!({})));
    let verifier = jwt_with(|s| {
        s.verifying_keys = vec![JwtKey::public_pem(Algorithm::PS256, &kp.public_pem).unwrap()]
    });
    verifier.validate(&t, Some(ACCESS)).unwrap();
}

// ---- the verified-token cache ----

#[tokio::test]
async fn remembered_tokens_skip_the_signature_check_only() {
    let store = MemoryStore::new();
    let ada = user(&store, "ada", true).await;
    let j = jwt();
    let pair = j.for_user(&ada).await.unwrap();
    let claims = j.validate(&pair.access, Some("access")).unwrap();
    // The same header and payload under a signature no key made: refused
    // unless the cache holds it, which shows that hits skip the check.
    let forged = format!("{}.AAAA", pair.access.rsplit_once('.').unwrap().0);
    let header = format!("Bearer {forged}");
    let off = JwtAuth::new(j.clone(), store.clone()).with_verified_cache(Duration::ZERO);
    assert_eq!(call(&app_with(off), Some(&header)).await.0, 401);
    let on = JwtAuth::new(j.clone(), store.clone());
    assert_eq!(call(&app_with(on.clone()), Some(&header)).await.0, 401);
    on.remember(&forged, claims);
    let app = app_with(on);
    let (status, _, body) = call(&app, Some(&header)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        Value::String(format!(
            "jwt access jti={}",
            part(&pair.access, 1)["jti"].as_str().unwrap()
        ))
    );
    // Tokens that differ in the signature, or only before it, are not hits.
    let longer = format!("{forged}A");
    let (head, sig) = forged.rsplit_once('.').unwrap();
    let same_signature = format!(
        "{}e30.{sig}",
        head.split_once('.').unwrap().0.to_owned() + "."
    );
    for other in [longer, same_signature] {
        assert_eq!(call(&app, Some(&format!("Bearer {other}"))).await.0, 401);
    }
    // The user is read on every hit.
    store.set_active(ada.id, false).await.unwrap();
    let (status, _, body) = call(&app, Some(&header)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (401, json!("user_inactive"))
    );
}

#[tokio::test]
async fn remembered_tokens_still_expire_and_can_be_blacklisted() {
    let store = MemoryStore::new();
    let ada = user(&store, "ada", true).await;
    // Claims of a token that expired a minute ago, accepted under an hour
    // of leeway, then looked up by a scheme that allows none.
    let expired = sign_map(
        &jwt(),
        claims_now(json!({"exp": Utc::now().timestamp() - 60, "user_id": ada.id})),
    );
    let lenient = jwt_with(|s| s.leeway = Duration::from_secs(3600));
    let claims = lenient.validate(&expired, Some("access")).unwrap();
    let strict = JwtAuth::new(jwt(), store.clone());
    strict.remember(&expired, claims);
    let (status, _, body) = call(&app_with(strict), Some(&format!("Bearer {expired}"))).await;
    assert_eq!(status, 401);
    assert_eq!(body["messages"][0]["message"], "Token is expired");

    // Accepted once (and remembered), then blacklisted: refused at once.
    let bl = MemoryBlacklist::new();
    let j = jwt_with(|s| s.blacklist_access_tokens = true).with_blacklist(bl);
    let pair = j.for_user(&ada).await.unwrap();
    let app = app(j.clone(), store).await;
    let header = format!("Bearer {}", pair.access);
    assert_eq!(call(&app, Some(&header)).await.0, 200);
    assert_eq!(call(&app, Some(&header)).await.0, 200);
    j.blacklist_access(&pair.access).await.unwrap();
    let (status, _, body) = call(&app, Some(&header)).await;
    assert_eq!(status, 401);
    assert_eq!(body["messages"][0]["message"], "Token is blacklisted");
}

#[tokio::test]
async fn remembered_tokens_of_cached_users_are_answered_at_once() {
    use crate::scheme::at_once::{answers_alike, cached_store_with_ada};
    use crate::scheme::{RequestHead, Scheme};
    let (store, ada) = cached_store_with_ada().await;
    let bearer = |token: &str| {
        http::Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap()
    };
    let j = jwt();
    let pair = j.for_user(&ada).await.unwrap();
    let auth = JwtAuth::new(j, store.clone());
    let req = bearer(&pair.access);
    let head = RequestHead::from_request(&req);

    assert!(auth.authenticate_now(&head).is_none(), "nothing remembered");
    auth.authenticate(&head).await.unwrap();
    answers_alike(&auth, &head).await;

    // Deactivated through the store: the user is read again, and refused.
    store.set_active(ada.id, false).await.unwrap();
    assert!(auth.authenticate_now(&head).is_none());
    auth.authenticate(&head).await.unwrap_err();
    answers_alike(&auth, &head).await;

    // With the blacklist on, every request asks it: never answered at once.
    store.set_active(ada.id, true).await.unwrap();
    let checked =
        jwt_with(|s| s.blacklist_access_tokens = true).with_blacklist(MemoryBlacklist::new());
    let pair = checked.for_user(&ada).await.unwrap();
    let auth = JwtAuth::new(checked, store);
    let req = bearer(&pair.access);
    let head = RequestHead::from_request(&req);
    assert!(auth.authenticate(&head).await.unwrap().is_some());
    assert!(auth.authenticate_now(&head).is_none());
}
