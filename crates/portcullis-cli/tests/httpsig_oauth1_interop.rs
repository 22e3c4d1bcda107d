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

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const SECRET: &str = "an-interop-test-secret-key-that-is-long-enough-0123456789";

/// A working directory with its own SQLite database and secret.
struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("PORTCULLIS_") || k == "DATABASE_URL" || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        c.env("PORTCULLIS_PASSWORD_ITERATIONS", "1000")
            .env("PORTCULLIS_SECRET_KEY", SECRET)
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("the portcullis binary runs")
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "portcullis {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its one error line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "portcullis {args:?} succeeded");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        err.trim().to_owned()
    }
}

/// A running `portcullis serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(env: &Env) -> Server {
        let mut child = env
            .command(&["serve", "--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("portcullis listening on ") {
                        break addr.trim().to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("serve did not become ready");
                }
            }
        };
        Server { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("python3 printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
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
    let server = Server::start(&env);
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
    let server = Server::start(&env);
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
        ("sig1=(\"@method\" \"@method\");created=1;keyid=\"k\"", "sig1=:AAAA:"),
        ("sig1=(\"@method\");created=1;keyid=\"k\"", "sig1=:not base64:"),
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
            &["add-signature-key", "bob", "--key-id", "k", "--alg", "ed25519", "--generate"],
            "does not exist",
        ),
        (
            &["add-signature-key", "ada", "--key-id", "k", "--alg", "hs256", "--generate"],
            "unknown signature algorithm",
        ),
        (
            &["add-signature-key", "ada", "--key-id", "k", "--alg", "ed25519", "--public-key-file", p],
            "public key",
        ),
        (
            &["add-signature-key", "ada", "--key-id", "k", "--alg", "hmac-sha256", "--public-key-file", p],
            "--generate",
        ),
        (
            &["add-signature-key", "ada", "--key-id", "", "--alg", "ed25519", "--generate"],
            "key id",
        ),
    ];
    for (args, want) in cases {
        let err = env.fails(args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    env.ok(&["add-signature-key", "ada", "--key-id", "k", "--alg", "ed25519", "--generate"]);
    let err = env.fails(&["add-signature-key", "ada", "--key-id", "k", "--alg", "ed25519", "--generate"]);
    assert!(err.contains("already exists"), "{err}");
    // A real public key file is accepted and nothing secret is printed.
    let pair = portcullis::jwt::generate_key_pair(portcullis::jwt::Algorithm::EdDSA).unwrap();
    std::fs::write(&pem, &pair.public_pem).unwrap();
    let out = env.ok(&["add-signature-key", "ada", "--key-id", "k2", "--alg", "ed25519", "--public-key-file", p]);
    assert!(out.contains("k2") && !out.contains("PRIVATE"), "{out}");
}
