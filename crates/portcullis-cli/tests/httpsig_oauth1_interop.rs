//! HTTP Message Signatures and OAuth 1.0a against real clients: a spawned
//! `portcullis serve` (SQLite in a temporary directory), keys and
//! credentials issued by the `portcullis` commands, and requests signed by
//! Python libraries from PyPI:
//!
//! - `http-message-signatures` (RFC 9421) signs with keys made by
//!   `portcullis add-signature-key --generate`, for every algorithm;
//! - `requests-oauthlib` (OAuth 1.0a) signs with credentials made by
//!   `portcullis create-oauth1-consumer` and `create-oauth1-token`.
//!
//! Needs `python3` with those packages (`scripts/python-deps`, which
//! `scripts/test` runs). When they are missing these tests FAIL, never
//! skip.

mod support;
use support::Env;

use std::process::Command;

use serde_json::Value;

/// Runs a Python program with `args`, returning its standard output as
/// JSON; fails the test (with the fix) when Python or a package is missing.
fn python(program: &str, args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install Python 3, then run scripts/python-deps")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 failed ({}): {stderr}{}",
        out.status,
        if stderr.contains("ModuleNotFoundError") {
            "\na Python package is missing: run scripts/python-deps"
        } else {
            ""
        }
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python3 printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Signs requests with `http-message-signatures` and reports what the
/// server answered: `[name, status, body]` a scenario.
const HTTPSIG_CLIENT: &str = r#"
import sys, json, base64, hashlib, datetime, requests
from http_message_signatures import algorithms, HTTPMessageSigner, HTTPSignatureKeyResolver

base, keyid, alg, keyfile, full = sys.argv[1:6]
material = open(keyfile, "rb").read()
if alg == "hmac-sha256":
    material = base64.b64decode(material.decode().split("secret:")[1].strip())

class Keys(HTTPSignatureKeyResolver):
    def resolve_private_key(self, key_id):
        return material
    def resolve_public_key(self, key_id):
        raise NotImplementedError

ALGS = {
    "ed25519": algorithms.ED25519,
    "hmac-sha256": algorithms.HMAC_SHA256,
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
    "rsa-pss-sha512": algorithms.RSA_PSS_SHA512,
    "rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256,
}
signer = HTTPMessageSigner(signature_algorithm=ALGS[alg], key_resolver=Keys())
session = requests.Session()
now = lambda: datetime.datetime.now(datetime.timezone.utc)
results = []

def prepare(method, path, body=None, nonce=None, created=None, expires=None):
    headers = {}
    components = ("@method", "@target-uri", "@authority")
    if body is not None:
        headers["Content-Type"] = "application/json"
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        headers["Content-Digest"] = "sha-256=:" + digest + ":"
        components += ("content-digest",)
    req = requests.Request(method, base + path, data=body, headers=headers).prepare()
    signer.sign(req, key_id=keyid, covered_component_ids=components,
                created=created or now(), expires=expires, nonce=nonce)
    return req

def send(name, req):
    res = session.send(req)
    try:
        body = res.json()
    except ValueError:
        body = res.text
    results.append([name, res.status_code, body, res.headers.get("Accept-Signature")])

get = prepare("GET", "/httpsig/", nonce="n-get-" + alg)
send("get", get)
send("post", prepare("POST", "/httpsig/", body=b'{"hello": "world"}', nonce="n-post-" + alg))
if full == "full":
    send("replayed", get)
    same_nonce = prepare("DELETE", "/httpsig/", nonce="n-get-" + alg)
    send("same nonce", same_nonce)
    send("expired", prepare("GET", "/httpsig/", created=now() - datetime.timedelta(seconds=1000)))
    send("past expires", prepare("GET", "/httpsig/", expires=now() - datetime.timedelta(seconds=5)))
    tampered = prepare("POST", "/httpsig/", body=b'{"amount": 1}', nonce="n-tampered")
    tampered.body = b'{"amount": 9}'
    send("tampered body", tampered)
    no_nonce = prepare("PUT", "/httpsig/")
    send("no nonce", no_nonce)
    send("no nonce replayed", no_nonce)
    send("unsigned", requests.Request("GET", base + "/httpsig/").prepare())
print(json.dumps(results))
"#;

fn scenario<'a>(results: &'a Value, name: &str) -> &'a Value {
    results
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in {results}"))
}

fn status(results: &Value, name: &str) -> u64 {
    scenario(results, name)[1].as_u64().unwrap()
}

#[test]
fn http_message_signatures_from_a_python_client() {
    let env = Env::new();
    env.ok(&["createuser", "ada", "--password", "lovelace-1234"]);
    let server = env.serve();
    let algorithms = [
        ("ed25519", true),
        ("hmac-sha256", true),
        ("ecdsa-p256-sha256", false),
        ("rsa-pss-sha512", false),
        ("rsa-v1_5-sha256", false),
    ];
    for (alg, full) in algorithms {
        let kid = format!("ada-{alg}");
        let out = env.ok(&[
            "add-signature-key",
            "ada",
            "--key-id",
            &kid,
            "--alg",
            alg,
            "--generate",
        ]);
        if alg == "hmac-sha256" {
            assert!(out.starts_with("secret: "), "{out}");
        } else {
            assert!(out.contains("-----BEGIN PRIVATE KEY-----"), "{out}");
        }
        let keyfile = env.path().join(format!("{kid}.key"));
        std::fs::write(&keyfile, &out).unwrap();
        let results = python(
            HTTPSIG_CLIENT,
            &[
                &server.base,
                &kid,
                alg,
                keyfile.to_str().unwrap(),
                if full { "full" } else { "short" },
            ],
        );
        let get = scenario(&results, "get");
        assert_eq!(get[1], 200, "{alg}: {results}");
        assert_eq!(get[2]["user"], "ada", "{alg}: {results}");
        assert_eq!(get[2]["auth"], format!("httpsig keyid {kid}"), "{alg}");
        assert_eq!(status(&results, "post"), 200, "{alg}: {results}");
        if !full {
            continue;
        }
        for refused in [
            "replayed",
            "same nonce",
            "expired",
            "past expires",
            "tampered body",
            "no nonce replayed",
        ] {
            assert_eq!(status(&results, refused), 401, "{alg} {refused}: {results}");
            assert!(
                scenario(&results, refused)[2]["detail"].is_string(),
                "{alg} {refused}: {results}"
            );
        }
        assert_eq!(status(&results, "no nonce"), 200, "{alg}: {results}");
        let unsigned = scenario(&results, "unsigned");
        assert_eq!(unsigned[1], 401);
        assert_eq!(
            unsigned[3],
            "sig1=(\"@method\" \"@target-uri\" \"@authority\");created;keyid"
        );
    }
}

#[test]
fn httpsig_challenge_and_malformed_input() {
    let env = Env::new();
    let server = env.serve();
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/httpsig/", server.base);
    let res = client.post(&url).body("x").send().unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Signature realm=\"api\"");
    assert_eq!(
        res.headers()["accept-signature"],
        "sig1=(\"@method\" \"@target-uri\" \"@authority\" \"content-digest\");created;keyid"
    );
    for (input, sig) in [
        ("sig1=(", "sig1=:AAAA:"),
        (
            "sig1=(\"@method\" \"@method\");created=1;keyid=\"k\"",
            "sig1=:AAAA:",
        ),
        (
            "sig1=(\"@method\");created=1;keyid=\"k\"",
            "sig1=:not base64:",
        ),
        ("sig1=(\"@method\");created=1;keyid=\"k\"", "other=:AAAA:"),
    ] {
        let res = client
            .get(&url)
            .header("signature-input", input)
            .header("signature", sig)
            .send()
            .unwrap();
        assert_eq!(res.status(), 400, "{input} {sig}");
        let body: Value = res.json().unwrap();
        assert!(body["detail"].is_string(), "{body}");
    }
    let huge = format!("sig1=(\"@method\");tag=\"{}\"", "a".repeat(20_000));
    let res = client
        .get(&url)
        .header("signature-input", huge)
        .header("signature", "sig1=:AAAA:")
        .send()
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
}

#[test]
fn add_signature_key_errors_are_one_line() {
    let env = Env::new();
    env.ok(&["createuser", "ada"]);
    let pem = env.path().join("pub.pem");
    std::fs::write(&pem, "not a key").unwrap();
    let p = pem.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "add-signature-key",
                "bob",
                "--key-id",
                "k",
                "--alg",
                "ed25519",
                "--generate",
            ],
            "does not exist",
        ),
        (
            &[
                "add-signature-key",
                "ada",
                "--key-id",
                "k",
                "--alg",
                "hs256",
                "--generate",
            ],
            "unknown signature algorithm",
        ),
        (
            &[
                "add-signature-key",
                "ada",
                "--key-id",
                "k",
                "--alg",
                "ed25519",
                "--public-key-file",
                p,
            ],
            "public key",
        ),
        (
            &[
                "add-signature-key",
                "ada",
                "--key-id",
                "k",
                "--alg",
                "hmac-sha256",
                "--public-key-file",
                p,
            ],
            "--generate",
        ),
        (
            &[
                "add-signature-key",
                "ada",
                "--key-id",
                "",
                "--alg",
                "ed25519",
                "--generate",
            ],
            "key id",
        ),
    ];
    for (args, want) in cases {
        let err = env.fails(args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    env.ok(&[
        "add-signature-key",
        "ada",
        "--key-id",
        "k",
        "--alg",
        "ed25519",
        "--generate",
    ]);
    let err = env.fails(&[
        "add-signature-key",
        "ada",
        "--key-id",
        "k",
        "--alg",
        "ed25519",
        "--generate",
    ]);
    assert!(err.contains("already exists"), "{err}");
    // A real public key file is accepted and nothing secret is printed.
    let pair = portcullis::jwt::generate_key_pair(portcullis::jwt::Algorithm::EdDSA).unwrap();
    std::fs::write(&pem, &pair.public_pem).unwrap();
    let out = env.ok(&[
        "add-signature-key",
        "ada",
        "--key-id",
        "k2",
        "--alg",
        "ed25519",
        "--public-key-file",
        p,
    ]);
    assert!(out.contains("k2") && !out.contains("PRIVATE"), "{out}");
}

// ----- OAuth 1.0a with requests-oauthlib -----

/// Drives `/oauth1/` with requests-oauthlib: signed requests (HMAC-SHA1,
/// HMAC-SHA256, RSA-SHA1, PLAINTEXT over HTTP), a replay, and the
/// three-legged flow through the session login and the consent form.
const OAUTH1_CLIENT: &str = r#"
import sys, json, re, time, requests
from requests_oauthlib import OAuth1, OAuth1Session
from oauthlib.oauth1 import SIGNATURE_HMAC, SIGNATURE_HMAC_SHA256, SIGNATURE_RSA, SIGNATURE_PLAINTEXT

c = json.loads(sys.argv[1])
base = c["base"]
results = []

def record(name, res):
    try:
        body = res.json()
    except ValueError:
        body = res.text
    results.append([name, res.status_code, body, res.headers.get("WWW-Authenticate"),
                    res.headers.get("Location")])

s = requests.Session()
for name, method in [("hmac-sha1", SIGNATURE_HMAC), ("hmac-sha256", SIGNATURE_HMAC_SHA256)]:
    auth = OAuth1(c["ck"], c["cs"], c["tk"], c["ts"], signature_method=method)
    record(name + " get", s.get(base + "/oauth1/?q=a+b&r=%C3%BC", auth=auth))
    record(name + " post form", s.post(base + "/oauth1/", data={"x": "1 2", "y": "\u00fc"}, auth=auth))

req = requests.Request("GET", base + "/oauth1/", auth=OAuth1(c["ck"], c["cs"], c["tk"], c["ts"])).prepare()
record("replay first", s.send(req))
record("replay second", s.send(req))
record("wrong secret", s.get(base + "/oauth1/", auth=OAuth1(c["ck"], "nope", c["tk"], c["ts"])))
stale = OAuth1(c["ck"], c["cs"], c["tk"], c["ts"], timestamp=str(int(time.time()) - 1000))
record("stale", s.get(base + "/oauth1/", auth=stale))
record("plaintext over http", s.get(base + "/oauth1/", auth=OAuth1(
    c["ck"], c["cs"], c["tk"], c["ts"], signature_method=SIGNATURE_PLAINTEXT)))
rsa = OAuth1(c["rsa_ck"], resource_owner_key=c["rsa_tk"], resource_owner_secret=c["rsa_ts"],
             signature_method=SIGNATURE_RSA, rsa_key=open(c["rsa_key"]).read())
record("rsa-sha1", s.get(base + "/oauth1/", auth=rsa))

# The three-legged flow, once with oob and once with the registered callback.
browser = requests.Session()
res = browser.get(base + "/oauth1/authorize/?oauth_token=x", allow_redirects=False)
record("authorize anonymous", res)
page = browser.get(base + "/auth/login/").text
token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
res = browser.post(base + "/auth/login/", data={"username": "ada", "password": c["password"],
                   "csrfmiddlewaretoken": token}, allow_redirects=False)
record("login", res)

for callback in ["oob", c["callback"]]:
    client = OAuth1Session(c["ck"], client_secret=c["cs"], callback_uri=callback)
    fetched = client.fetch_request_token(base + "/oauth1/request_token/")
    rt = fetched["oauth_token"]
    page = browser.get(base + "/oauth1/authorize/?oauth_token=" + rt)
    record("consent form " + callback, page)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    no_csrf = browser.post(base + "/oauth1/authorize/", data={"oauth_token": rt, "allow": "Authorize"},
                           allow_redirects=False)
    record("consent without csrf " + callback, no_csrf)
    res = browser.post(base + "/oauth1/authorize/", data={"oauth_token": rt, "allow": "Authorize",
                       "csrfmiddlewaretoken": csrf}, allow_redirects=False)
    record("consent " + callback, res)
    if callback == "oob":
        verifier = re.search(r'id="oauth_verifier">([^<]+)<', res.text).group(1)
        access = client.fetch_access_token(base + "/oauth1/access_token/", verifier=verifier)
    else:
        client.parse_authorization_response(res.headers["Location"])
        access = client.fetch_access_token(base + "/oauth1/access_token/")
    user = OAuth1Session(c["ck"], client_secret=c["cs"], resource_owner_key=access["oauth_token"],
                         resource_owner_secret=access["oauth_token_secret"])
    record("three-legged " + callback, user.get(base + "/oauth1/"))
    again = OAuth1Session(c["ck"], client_secret=c["cs"], resource_owner_key=rt,
                          resource_owner_secret=fetched["oauth_token_secret"], verifier="x")
    record("exchange again " + callback, again.post(base + "/oauth1/access_token/"))
print(json.dumps(results))
"#;

/// The `key: value` line of a command's output.
fn field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
        .trim()
        .to_owned()
}

#[test]
fn oauth1_with_requests_oauthlib() {
    let env = Env::new();
    let password = "lovelace-1234";
    env.ok(&["createuser", "ada", "--password", password]);
    let callback = "https://client.example/cb";
    let consumer = env.ok(&[
        "create-oauth1-consumer",
        "Example App",
        "--callback",
        callback,
    ]);
    let (ck, cs) = (
        field(&consumer, "consumer_key"),
        field(&consumer, "consumer_secret"),
    );
    let token = env.ok(&["create-oauth1-token", &ck, "ada"]);
    let (tk, ts) = (field(&token, "token"), field(&token, "token_secret"));
    let testdata = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../portcullis/src/scheme/httpsig/testdata"
    );
    let rsa_consumer = env.ok(&[
        "create-oauth1-consumer",
        "RSA App",
        "--rsa-public-key-file",
        &format!("{testdata}/rsa_public.pem"),
    ]);
    let rsa_ck = field(&rsa_consumer, "consumer_key");
    let rsa_token = env.ok(&["create-oauth1-token", &rsa_ck, "ada"]);
    let server = env.serve();
    let config = serde_json::json!({
        "base": server.base,
        "ck": ck, "cs": cs, "tk": tk, "ts": ts,
        "rsa_ck": rsa_ck,
        "rsa_tk": field(&rsa_token, "token"),
        "rsa_ts": field(&rsa_token, "token_secret"),
        "rsa_key": format!("{testdata}/rsa_private.pem"),
        "password": password,
        "callback": callback,
    });
    let results = python(OAUTH1_CLIENT, &[&config.to_string()]);
    for ok in [
        "hmac-sha1 get",
        "hmac-sha1 post form",
        "hmac-sha256 get",
        "hmac-sha256 post form",
        "replay first",
        "rsa-sha1",
        "three-legged oob",
        "three-legged https://client.example/cb",
    ] {
        let r = scenario(&results, ok);
        assert_eq!(r[1], 200, "{ok}: {results}");
        assert_eq!(r[2]["user"], "ada", "{ok}: {results}");
    }
    assert_eq!(
        scenario(&results, "hmac-sha1 get")[2]["auth"],
        format!("oauth1 consumer {ck}")
    );
    for refused in ["replay second", "wrong secret", "stale"] {
        let r = scenario(&results, refused);
        assert_eq!(r[1], 401, "{refused}: {results}");
        assert_eq!(r[3], "OAuth realm=\"api\"", "{refused}");
        assert!(r[2]["detail"].is_string(), "{refused}: {results}");
    }
    assert_eq!(status(&results, "plaintext over http"), 400, "{results}");
    let anonymous = scenario(&results, "authorize anonymous");
    assert_eq!(anonymous[1], 302);
    assert!(
        anonymous[4]
            .as_str()
            .unwrap()
            .starts_with("/auth/login/?next=%2Foauth1%2Fauthorize%2F"),
        "{anonymous}"
    );
    assert_eq!(status(&results, "login"), 302);
    for cb in ["oob", callback] {
        assert_eq!(status(&results, &format!("consent form {cb}")), 200);
        assert_eq!(
            status(&results, &format!("consent without csrf {cb}")),
            403,
            "{results}"
        );
        let exchange_again = status(&results, &format!("exchange again {cb}"));
        assert!(
            exchange_again == 401 || exchange_again == 400,
            "{cb}: {results}"
        );
    }
    assert_eq!(status(&results, "consent oob"), 200);
    let redirect = scenario(&results, &format!("consent {callback}"));
    assert_eq!(redirect[1], 302);
    let location = redirect[4].as_str().unwrap();
    assert!(
        location.starts_with("https://client.example/cb?oauth_token=")
            && location.contains("&oauth_verifier="),
        "{location}"
    );
}

#[test]
fn oauth1_commands_fail_with_one_line() {
    let env = Env::new();
    env.ok(&["createuser", "ada"]);
    let err = env.fails(&["create-oauth1-token", "nope", "ada"]);
    assert!(err.contains("consumer nope does not exist"), "{err}");
    let consumer = env.ok(&["create-oauth1-consumer", "App"]);
    let ck = field(&consumer, "consumer_key");
    let err = env.fails(&["create-oauth1-token", &ck, "bob"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = env.fails(&[
        "create-oauth1-consumer",
        "App",
        "--callback",
        "javascript:x",
    ]);
    assert!(err.contains("callback"), "{err}");
    let pem = env.path().join("k.pem");
    std::fs::write(&pem, "garbage").unwrap();
    let err = env.fails(&[
        "create-oauth1-consumer",
        "App",
        "--rsa-public-key-file",
        pem.to_str().unwrap(),
    ]);
    assert!(err.contains("RSA public key"), "{err}");
}
