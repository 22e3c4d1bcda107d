//! JWT interoperability with a real peer: Python's PyJWT, the library
//! djangorestframework-simplejwt signs and verifies with.
//!
//! - a token PyJWT signs with the secret key and simplejwt's claims
//!   authenticates at `/jwt/`;
//! - PyJWT decodes and verifies the tokens portcullis issues (HS256 with
//!   the secret, ES256 with the key from `/.well-known/jwks.json`);
//! - the private keys portcullis generates (EdDSA, ES256, RS256) load in
//!   `cryptography` and sign tokens that `/jwt/` accepts.
//!
//! Needs `python3` with PyJWT and `cryptography` (`scripts/python-deps`,
//! which `scripts/test` runs). When they are missing these tests FAIL,
//! never skip.

#[allow(unused_macros)]
mod common;

use common::{send, TestApp, SECRET};
use portcullis::jwt::{algorithm_name, generate_key_pair, Algorithm, JwtKey};
use portcullis::store::MemoryStore;
use reqwest::header::AUTHORIZATION;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Runs a Python program with `args` and returns its standard output,
/// failing the test (with the fix) when Python or PyJWT is missing.
async fn python(program: &'static str, args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(program)
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| {
        panic!("cannot run python3 ({e}): install Python 3, then run scripts/python-deps")
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 failed ({}): {stderr}{}",
        out.status,
        if stderr.contains("ModuleNotFoundError") {
            "\nPyJWT is missing: run scripts/python-deps"
        } else {
            ""
        }
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The secret key as Python bytes: hex on the command line.
fn secret_hex() -> String {
    SECRET.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs simplejwt's claims with `argv[1]`, under the algorithm
/// `argv[2]`: for HS256 the secret in hex, else a private key PEM that
/// `cryptography` loads (as a peer holding a key from `create-jwt-key`).
const SIGN: &str = r#"
import sys, time, uuid, json, jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
alg = sys.argv[2]
if alg == "HS256":
    key = bytes.fromhex(sys.argv[1])
else:
    key = load_pem_private_key(sys.argv[1].encode(), password=None)
now = int(time.time())
claims = {
    "token_type": "access",
    "exp": now + 300,
    "iat": now,
    "jti": uuid.uuid4().hex,
    "user_id": json.loads(sys.argv[3]),
}
print(jwt.encode(claims, key, algorithm=alg))
"#;

const DECODE_HS256: &str = r#"
import sys, json, jwt
key = bytes.fromhex(sys.argv[1])
claims = jwt.decode(sys.argv[2], key, algorithms=["HS256"],
                    options={"require": ["exp", "iat", "jti"]})
print(json.dumps(claims))
"#;

const DECODE_JWKS: &str = r#"
import sys, json, jwt
jwks = json.loads(sys.argv[1])
header = jwt.get_unverified_header(sys.argv[2])
key = jwt.PyJWK(jwks["keys"][0])
claims = jwt.decode(sys.argv[2], key.key, algorithms=[header["alg"]])
print(json.dumps(claims))
"#;

async fn pair(app: &TestApp<MemoryStore>) -> (String, String) {
    let res = send(
        app.post("/api/token/")
            .form(&[("username", "ada"), ("password", "lovelace")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body = res.json();
    (
        body["access"].as_str().unwrap().to_owned(),
        body["refresh"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_pyjwt_token_authenticates_at_jwt() {
    let app = TestApp::start(MemoryStore::new()).await;
    let ada = app.user("ada", "lovelace").await;
    // simplejwt writes an integer id as a number; 5.5.0 wrote a string.
    for user_id in [json!(ada.id), json!(ada.id.to_string())] {
        let token = python(
            SIGN,
            vec![secret_hex(), "HS256".into(), user_id.to_string()],
        )
        .await;
        let res = send(
            app.get("/jwt/")
                .header(AUTHORIZATION, format!("Bearer {token}")),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{user_id}: {}", res.text());
        assert_eq!(res.json()["user"], "ada");
    }
    // Signed with another key: refused.
    let token = python(
        SIGN,
        vec!["00".repeat(32), "HS256".into(), ada.id.to_string()],
    )
    .await;
    let res = send(
        app.get("/jwt/")
            .header(AUTHORIZATION, format!("Bearer {token}")),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.json()["code"], "token_not_valid");
}

#[tokio::test]
async fn pyjwt_decodes_portcullis_tokens() {
    let app = TestApp::start(MemoryStore::new()).await;
    let ada = app.user("ada", "lovelace").await;
    let (access, refresh) = pair(&app).await;
    for (token, kind) in [(&access, "access"), (&refresh, "refresh")] {
        let out = python(DECODE_HS256, vec![secret_hex(), token.clone()]).await;
        let claims: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(claims["token_type"], kind, "{claims}");
        assert_eq!(claims["user_id"], json!(ada.id), "{claims}");
    }
}

#[tokio::test]
async fn pyjwt_verifies_es256_tokens_with_the_published_jwks() {
    let pair_pem = generate_key_pair(Algorithm::ES256).unwrap();
    let key = JwtKey::private_pem(Algorithm::ES256, &pair_pem.private_pem).unwrap();
    let app = TestApp::start_with(MemoryStore::new(), move |c| {
        c.jwt.algorithm = Algorithm::ES256;
        c.jwt.signing_key = Some(key);
    })
    .await;
    let ada = app.user("ada", "lovelace").await;
    let jwks = send(app.get("/.well-known/jwks.json")).await.json();
    let (access, _) = pair(&app).await;
    let out = python(DECODE_JWKS, vec![jwks.to_string(), access]).await;
    let claims: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(claims["user_id"], json!(ada.id));
    assert_eq!(claims["token_type"], "access");
}

#[tokio::test]
async fn generated_private_keys_load_in_python_and_sign_accepted_tokens() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let pair_pem = generate_key_pair(alg).unwrap();
        let key = JwtKey::private_pem(alg, &pair_pem.private_pem).unwrap();
        let app = TestApp::start_with(MemoryStore::new(), move |c| {
            c.jwt.algorithm = alg;
            c.jwt.signing_key = Some(key);
        })
        .await;
        let ada = app.user("ada", "lovelace").await;
        let name = algorithm_name(alg).to_owned();
        let token = python(
            SIGN,
            vec![
                pair_pem.private_pem.clone(),
                name.clone(),
                ada.id.to_string(),
            ],
        )
        .await;
        let res = send(
            app.get("/jwt/")
                .header(AUTHORIZATION, format!("Bearer {token}")),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{name}: {}", res.text());
        assert_eq!(res.json()["user"], "ada", "{name}");
    }
}
