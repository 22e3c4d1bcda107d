//! Digest and Hawk against real clients, end to end: the built
//! `portcullis` binary creates the users and credentials and serves the
//! app; `curl --digest`, Python requests' `HTTPDigestAuth` and `mohawk`
//! talk to it.
//!
//! Needs `curl` and `python3` with `requests` and `mohawk`
//! (`scripts/python-deps`, which `scripts/test` runs). When they are
//! missing these tests FAIL, never skip.

mod support;
use support::Env;

use std::process::{Command, Output, Stdio};

fn run(c: &mut Command, what: &str, fix: &str) -> Output {
    c.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}): {fix}"))
}

/// `curl --digest -u USER:PASS URL` plus `extra`: (status, body, verbose log).
fn curl(user: &str, password: &str, url: &str, extra: &[&str]) -> (u16, String, String) {
    let out = run(
        Command::new("curl")
            .args(["-sS", "-v", "--digest", "-u"])
            .arg(format!("{user}:{password}"))
            .args(["-w", "\n%{http_code}"])
            .args(extra)
            .arg(url),
        "curl",
        "install curl",
    );
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        body.to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a Python program; fails with the fix when Python or a package is
/// missing or the program's assertions fail.
fn python(program: &str, args: &[&str]) -> String {
    let out = run(
        Command::new("python3").arg("-c").arg(program).args(args),
        "python3",
        "install Python 3, then run scripts/python-deps",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 failed ({}): {stderr}{}",
        out.status,
        if stderr.contains("ModuleNotFoundError") {
            "\nrequests or mohawk is missing: run scripts/python-deps"
        } else {
            ""
        }
    );
    String::from_utf8(out.stdout).unwrap()
}

fn digest_env(extra: &[(&'static str, &'static str)]) -> Env {
    let env = Env::with(extra);
    env.ok(&["createuser", "ada", "--password", "lovelace"]);
    env
}

#[test]
fn curl_digest_authenticates_with_sha256() {
    let env = digest_env(&[]);
    let server = env.serve();
    let (status, body, log) = curl("ada", "lovelace", &server.url("/digest/"), &[]);
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, serde_json::json!({"user": "ada", "auth": null}));
    // curl takes the first challenge: SHA-256.
    assert!(
        log.lines()
            .any(|l| l.starts_with("> Authorization: Digest") && l.contains("algorithm=SHA-256")),
        "{log}"
    );
    let (status, _, _) = curl("ada", "wrong", &server.url("/digest/"), &[]);
    assert_eq!(status, 401);
    let (status, _, _) = curl(
        "ada",
        "lovelace",
        &server.url("/digest/?page=2"),
        &["-X", "POST", "-d", "a=1"],
    );
    assert_eq!(status, 200);
}

#[test]
fn changepassword_replaces_the_realm_digest() {
    let env = digest_env(&[]);
    env.ok(&["changepassword", "ada", "--password", "babbage"]);
    let server = env.serve();
    assert_eq!(curl("ada", "lovelace", &server.url("/digest/"), &[]).0, 401);
    assert_eq!(curl("ada", "babbage", &server.url("/digest/"), &[]).0, 200);
    // A running server sees a deactivation at once.
    env.ok(&["deactivate", "ada"]);
    assert_eq!(curl("ada", "babbage", &server.url("/digest/"), &[]).0, 401);
}

#[test]
fn inactive_users_are_refused_and_failures_lock_out() {
    let env = digest_env(&[("PORTCULLIS_LOCKOUT_FAILURES", "2")]);
    env.ok(&["createuser", "grace", "--password", "hopper", "--inactive"]);
    let server = env.serve();
    assert_eq!(curl("grace", "hopper", &server.url("/digest/"), &[]).0, 401);
    assert_eq!(curl("ghost", "x", &server.url("/digest/"), &[]).0, 401);
    // Two failures from this address: now even the right password is refused.
    let (status, body, _) = curl("ada", "lovelace", &server.url("/digest/"), &[]);
    assert_eq!(status, 429, "{body}");
}

const REQUESTS_DIGEST: &str = r#"
import sys, json, requests
from requests.auth import HTTPDigestAuth
from requests.utils import parse_dict_header
url, user, pw = sys.argv[1:4]

r = requests.get(url, auth=HTTPDigestAuth(user, pw))
assert r.status_code == 200, (r.status_code, r.text)
assert r.json() == {"user": user, "auth": None}, r.text
sent = r.request.headers["Authorization"]
assert 'algorithm="MD5"' in sent, sent

# Replaying the same header (same nonce and nc) is refused.
again = requests.get(url, headers={"Authorization": sent})
assert again.status_code == 401, again.status_code
assert again.json()["detail"], again.text

# POST with a JSON body.
r = requests.post(url, auth=HTTPDigestAuth(user, pw), json={"a": 1})
assert r.status_code == 200, (r.status_code, r.text)

# SHA-256 through requests' own digest code, given the SHA-256 challenge.
r0 = requests.get(url)
assert r0.status_code == 401
challenges = r0.raw.headers.getlist("WWW-Authenticate")
assert len(challenges) == 2, challenges
assert "algorithm=SHA-256" in challenges[0] and "algorithm=MD5" in challenges[1], challenges
auth = HTTPDigestAuth(user, pw)
auth.init_per_thread_state()
auth._thread_local.chal = parse_dict_header(challenges[0][len("Digest "):])
header = auth.build_digest_header("GET", url)
assert 'algorithm="SHA-256"' in header, header
r = requests.get(url, headers={"Authorization": header})
assert r.status_code == 200, (r.status_code, r.text)
r = requests.get(url, headers={"Authorization": header})
assert r.status_code == 401, r.status_code

r = requests.get(url, auth=HTTPDigestAuth(user, "wrong"))
assert r.status_code == 401
print("ok")
"#;

#[test]
fn python_requests_digest_md5_sha256_and_replay() {
    let env = digest_env(&[]);
    let server = env.serve();
    let out = python(
        REQUESTS_DIGEST,
        &[&server.url("/digest/"), "ada", "lovelace"],
    );
    assert_eq!(out.trim(), "ok");
}

const STALE: &str = r#"
import sys, time, requests
from requests.auth import HTTPDigestAuth
from requests.utils import parse_dict_header
url, user, pw = sys.argv[1:4]
r0 = requests.get(url)
challenges = r0.raw.headers.getlist("WWW-Authenticate")
assert all("stale" not in c for c in challenges), challenges
auth = HTTPDigestAuth(user, pw)
auth.init_per_thread_state()
auth._thread_local.chal = parse_dict_header(challenges[1][len("Digest "):])
header = auth.build_digest_header("GET", url)
time.sleep(2.5)  # past the one-second nonce lifetime
r = requests.get(url, headers={"Authorization": header})
assert r.status_code == 401, r.status_code
challenges = r.raw.headers.getlist("WWW-Authenticate")
assert len(challenges) == 2 and all("stale=true" in c for c in challenges), challenges
# requests' HTTPDigestAuth retries a stale nonce by itself.
r = requests.get(url, auth=HTTPDigestAuth(user, pw))
assert r.status_code == 200, r.status_code
print("ok")
"#;

#[test]
fn expired_nonces_are_answered_with_stale_true() {
    let env = digest_env(&[("PORTCULLIS_DIGEST_NONCE_LIFETIME", "1")]);
    let server = env.serve();
    let out = python(STALE, &[&server.url("/digest/"), "ada", "lovelace"]);
    assert_eq!(out.trim(), "ok");
}

const MOHAWK: &str = r#"
import sys, json, time, requests, mohawk
from mohawk.util import calculate_ts_mac, parse_authorization_header
base, hawk_id, key = sys.argv[1:4]
creds = {"id": hawk_id, "key": key, "algorithm": "sha256"}

def call(method, url, body=b"", content_type="", **kw):
    sender = mohawk.Sender(creds, url, method, content=body, content_type=content_type, **kw)
    headers = {"Authorization": sender.request_header}
    if content_type:
        headers["Content-Type"] = content_type
    return sender, headers, requests.request(method, url, data=body, headers=headers)

url = base + "/hawk/?page=1"
sender, headers, r = call("GET", url)
assert r.status_code == 200, (r.status_code, r.text)
assert r.json() == {"user": "ada", "auth": "Hawk id " + hawk_id}, r.text
sender.accept_response(r.headers["Server-Authorization"], content=r.content,
                       content_type=r.headers["Content-Type"])

body = json.dumps({"amount": 1}).encode()
sender, headers, r = call("POST", url, body, "application/json")
assert r.status_code == 200, (r.status_code, r.text)
sender.accept_response(r.headers["Server-Authorization"], content=r.content,
                       content_type=r.headers["Content-Type"])

# The same request again: the nonce was used.
again = requests.post(url, data=body, headers=headers)
assert again.status_code == 401, again.status_code
assert again.headers["WWW-Authenticate"].startswith("Hawk"), again.headers

# A body other than the one signed.
sender = mohawk.Sender(creds, url, "POST", content=body, content_type="application/json")
r = requests.post(url, data=b'{"amount": 1000}',
                  headers={"Authorization": sender.request_header, "Content-Type": "application/json"})
assert r.status_code == 401, r.status_code

# A timestamp an hour old: ts and tsm for the client to correct its clock.
_, _, r = call("GET", url, _timestamp=int(time.time()) - 3600)
assert r.status_code == 401, r.status_code
h = parse_authorization_header(r.headers["WWW-Authenticate"])
assert h["error"] == "Stale timestamp", h
assert calculate_ts_mac(h["ts"], creds).decode() == h["tsm"], h
assert abs(int(h["ts"]) - time.time()) < 600, h

# A wrong key.
bad = dict(creds, key="not-the-key")
r = requests.get(url, headers={"Authorization": mohawk.Sender(bad, url, "GET", content=b"", content_type="").request_header})
assert r.status_code == 401, r.status_code
print("ok")
"#;

#[test]
fn mohawk_signs_requests_and_checks_responses() {
    let env = Env::new();
    env.ok(&["createuser", "ada"]);
    let out = env.ok(&["create-hawk-credentials", "ada"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let id = lines[0].strip_prefix("id: ").expect("id line");
    let key = lines[1].strip_prefix("key: ").expect("key line");
    assert_eq!(lines[2], "algorithm: sha256");
    assert!(id.len() >= 16 && key.len() >= 32, "{out}");
    // A second issue gives different credentials.
    let other = env.ok(&["create-hawk-credentials", "ada"]);
    assert!(!other.contains(id) && !other.contains(key));

    let server = env.serve();
    let out = python(MOHAWK, &[&server.base, id, key]);
    assert_eq!(out.trim(), "ok");

    // A running server sees a deactivation at once.
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let hawk_get = || {
        let c = portcullis::scheme::hawk::Client::new(id, key, "GET", "/hawk/", "127.0.0.1", port);
        reqwest::blocking::Client::new()
            .get(server.url("/hawk/"))
            .header("authorization", c.authorization())
            .send()
            .unwrap()
    };
    assert_eq!(hawk_get().status().as_u16(), 200);
    env.ok(&["deactivate", "ada"]);
    let res = hawk_get();
    assert_eq!(res.status().as_u16(), 401);
    let body: serde_json::Value = res.json().unwrap();
    assert_eq!(body["detail"], "User inactive or deleted.");
}

#[test]
fn create_hawk_credentials_for_an_unknown_user_fails_in_one_line() {
    let env = Env::new();
    let out = env
        .command(&["create-hawk-credentials", "nobody"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("nobody"), "{err}");
}

#[test]
fn malformed_signed_headers_are_4xx_with_a_json_detail() {
    let env = Env::new();
    let server = env.serve();
    let client = reqwest::blocking::Client::new();
    let long = format!("Digest username=\"{}\"", "a".repeat(7000));
    for (path, header) in [
        ("/digest/", "Digest"),
        ("/digest/", "Digest username=\"a"),
        ("/digest/", "Digest username=\"a\", username=\"b\""),
        ("/digest/", long.as_str()),
        ("/digest/", "Digest realm=\"api\", nc=zz"),
        ("/hawk/", "Hawk"),
        ("/hawk/", "Hawk id=\"a\", id=\"b\""),
        (
            "/hawk/",
            "Hawk id=\"a\", ts=\"1\", nonce=\"n\", mac=\"m\", bogus=\"1\"",
        ),
        ("/hawk/", "Hawk id=\"a\", ts=\"1\", nonce=\"n\", mac=\"m\""),
    ] {
        let res = client
            .get(server.url(path))
            .header("authorization", header)
            .send()
            .unwrap();
        let status = res.status().as_u16();
        assert!((400..500).contains(&status), "{header:.60}: {status}");
        let body: serde_json::Value = res.json().unwrap();
        assert!(body["detail"].is_string(), "{header:.60}: {body}");
    }
}

const REPLAY_ACROSS: &str = r#"
import sys, requests
from requests.auth import HTTPDigestAuth
a, b, user, pw = sys.argv[1:5]
r = requests.get(a, auth=HTTPDigestAuth(user, pw))
assert r.status_code == 200, (r.status_code, r.text)
sent = r.request.headers["Authorization"]
# The other server shares the secret (the nonce is valid there) and the
# Redis replay cache (the nonce count is spent there too).
again = requests.get(b, headers={"Authorization": sent})
assert again.status_code == 401, again.status_code
print("ok")
"#;

#[test]
fn servers_sharing_redis_refuse_each_others_replays() {
    let prefix = format!(
        "portcullis-test-digest-{}-{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let redis = std::env::var("PORTCULLIS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let mut env = digest_env(&[]);
    env.extra.push(("PORTCULLIS_REDIS_URL", redis));
    env.extra.push(("PORTCULLIS_REDIS_PREFIX", prefix));
    let a = env.serve();
    let b = env.serve();
    let out = python(
        REPLAY_ACROSS,
        &[&a.url("/digest/"), &b.url("/digest/"), "ada", "lovelace"],
    );
    assert_eq!(
        out.trim(),
        "ok",
        "is Redis running at PORTCULLIS_TEST_REDIS_URL?"
    );
}

const KEEP_ALIVE: &str = r#"
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port))
s.settimeout(10)
# Headers first; the body only after the challenge is on its way, as a
# slow client sends it.
s.sendall(b"POST /digest/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n")
time.sleep(0.3)
s.sendall(b'{"a": 1}')
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(65536)
assert data.startswith(b"HTTP/1.1 401"), data[:40]
assert b"connection: close" not in data.lower(), data
head, rest = data.split(b"\r\n\r\n", 1)
length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
while len(rest) < length:
    rest += s.recv(65536)
# The connection is still open for the client's retry.
s.sendall(b"GET /health/ HTTP/1.1\r\nHost: x\r\n\r\n")
second = s.recv(65536)
assert second.startswith(b"HTTP/1.1 200"), second[:40]
print("ok")
"#;

#[test]
fn a_challenged_post_keeps_the_connection_for_the_retry() {
    let env = Env::new();
    let server = env.serve();
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let out = python(KEEP_ALIVE, &["127.0.0.1", &port]);
    assert_eq!(out.trim(), "ok");
}
