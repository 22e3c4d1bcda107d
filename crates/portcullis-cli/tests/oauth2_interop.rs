//! OAuth2 with real clients against a spawned `portcullis serve`:
//!
//! - every grant driven end to end by Python's authlib (the
//!   authorization code with PKCE S256 through the login and consent pages,
//!   refresh with rotation and reuse detection, client credentials, the
//!   password grant, introspection and revocation);
//! - the seed's curl walkthrough (DRF's `OAuth2Authentication` docs),
//!   verbatim: `curl -X POST -d "client_id=...&client_secret=...&
//!   grant_type=password&username=...&password=..."
//!   http://localhost:8000/oauth2/access_token/`, then `curl -H
//!   "Authorization: Bearer <token>"` on the API;
//! - the commands `createclient`, `listclients`, `deleteclient`,
//!   `cleartokens`.
//!
//! Needs `python3` with authlib and requests (`scripts/python-deps`, which
//! `scripts/test` runs) and `curl`. When they are missing these tests FAIL,
//! never skip.

mod support;
use support::Env;

use std::process::Command;

/// A free local port (the seed's walkthrough names `localhost:PORT`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a Python program; fails the test with the fix when Python or
/// authlib is missing.
fn python(program: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(program)
        .args(args)
        .env("AUTHLIB_INSECURE_TRANSPORT", "1")
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
            "\nauthlib or requests is missing: run scripts/python-deps"
        } else {
            ""
        }
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}): install curl"));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

const AUTHORIZATION_CODE: &str = r#"
import re, sys, json, requests
from urllib.parse import urlparse, parse_qs
from authlib.integrations.requests_client import OAuth2Session
from authlib.common.security import generate_token

base, client_id, redirect_uri = sys.argv[1], sys.argv[2], sys.argv[3]

# The browser: log in through /auth/login/ (CSRF-protected form).
browser = requests.Session()
page = browser.get(base + "/auth/login/")
token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
r = browser.post(base + "/auth/login/", data={
    "username": "ada", "password": "ada-password-1", "csrfmiddlewaretoken": token,
}, allow_redirects=False)
assert r.status_code == 302, r.status_code

# The public client: PKCE S256, no secret.
client = OAuth2Session(client_id, redirect_uri=redirect_uri, scope="read write",
                       code_challenge_method="S256", token_endpoint_auth_method="none")
verifier = generate_token(64)
url, state = client.create_authorization_url(base + "/oauth2/authorize/", code_verifier=verifier)

# Not logged in: sent to the login page with `next`.
anon = requests.get(url, allow_redirects=False)
assert anon.status_code == 302 and anon.headers["Location"].startswith("/auth/login/?next="), anon.headers

# The consent page, then "Authorize".
consent = browser.get(url)
assert consent.status_code == 200, consent.text
fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', consent.text))
for name in ["client_id", "redirect_uri", "response_type", "state", "scope",
             "code_challenge", "code_challenge_method", "csrfmiddlewaretoken"]:
    assert name in fields, (name, fields)
import html
fields = {k: html.unescape(v) for k, v in fields.items()}
# Without the CSRF token the consent POST is refused.
bad = dict(fields); bad.pop("csrfmiddlewaretoken"); bad["allow"] = "Authorize"
assert browser.post(base + "/oauth2/authorize/", data=bad, allow_redirects=False).status_code == 403
fields["allow"] = "Authorize"
r = browser.post(base + "/oauth2/authorize/", data=fields, allow_redirects=False)
assert r.status_code == 302, (r.status_code, r.text)
location = r.headers["Location"]
assert location.startswith(redirect_uri + "?"), location
assert parse_qs(urlparse(location).query)["state"] == [state]

tok = client.fetch_token(base + "/oauth2/token/", authorization_response=location,
                         code_verifier=verifier)
assert tok["token_type"] == "Bearer" and tok["expires_in"] == 36000, tok
assert tok["scope"] == "read write", tok
api = client.get(base + "/oauth2/")
assert api.status_code == 200 and api.json()["user"] == "ada", api.text

# The code is single use: a second exchange fails and revokes the tokens.
code = parse_qs(urlparse(location).query)["code"][0]
again = requests.post(base + "/oauth2/token/", data={
    "grant_type": "authorization_code", "code": code, "client_id": client_id,
    "redirect_uri": redirect_uri, "code_verifier": verifier})
assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
assert client.get(base + "/oauth2/").status_code == 401

# A fresh authorization, then refresh with rotation.
verifier = generate_token(64)
url, state = client.create_authorization_url(base + "/oauth2/authorize/", code_verifier=verifier)
fields = {k: html.unescape(v) for k, v in re.findall(
    r'<input type="hidden" name="([^"]+)" value="([^"]*)">', browser.get(url).text)}
fields["allow"] = "Authorize"
location = browser.post(base + "/oauth2/authorize/", data=fields, allow_redirects=False).headers["Location"]
first = client.fetch_token(base + "/oauth2/token/", authorization_response=location, code_verifier=verifier)
old_refresh = first["refresh_token"]
second = client.refresh_token(base + "/oauth2/token/", refresh_token=old_refresh)
assert second["refresh_token"] != old_refresh and second["access_token"] != first["access_token"]
assert client.get(base + "/oauth2/").status_code == 200
# Replaying the rotated refresh token revokes the whole family.
replay = requests.post(base + "/oauth2/token/", data={
    "grant_type": "refresh_token", "refresh_token": old_refresh, "client_id": client_id})
assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant", replay.text
assert client.get(base + "/oauth2/").status_code == 401
print(json.dumps({"ok": True}))
"#;

const CONFIDENTIAL: &str = r#"
import sys, json, requests
from authlib.integrations.requests_client import OAuth2Session

base, client_id, secret = sys.argv[1], sys.argv[2], sys.argv[3]
token_url = base + "/oauth2/token/"

# client_credentials with HTTP Basic (authlib's default client_secret_basic).
cc = OAuth2Session(client_id, secret, scope="write")
tok = cc.fetch_token(token_url, grant_type="client_credentials")
assert "refresh_token" not in tok and tok["scope"] == "write", tok
r = cc.get(base + "/oauth2/client/")
assert r.status_code == 200 and r.json() == {"client_id": client_id, "scope": "write"}, r.text
assert cc.get(base + "/oauth2/scoped/").status_code == 200
r = cc.get(base + "/oauth2/")
assert r.status_code == 403, r.text

# The password grant with the credentials in the form body.
pw = OAuth2Session(client_id, secret, scope="read", token_endpoint_auth_method="client_secret_post")
tok = pw.fetch_token(token_url, username="ada", password="ada-password-1")
assert tok["scope"] == "read" and "refresh_token" in tok, tok
assert pw.get(base + "/oauth2/").json()["user"] == "ada"
r = pw.get(base + "/oauth2/scoped/")
assert r.status_code == 403, r.text
assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]

# Introspection and revocation (RFC 7662, RFC 7009) through authlib.
intro = OAuth2Session(client_id, secret)
info = intro.introspect_token(base + "/oauth2/introspect/", token=tok["access_token"]).json()
assert info["active"] is True and info["username"] == "ada" and info["client_id"] == client_id, info
assert info["scope"] == "read" and info["token_type"] == "Bearer" and info["exp"] > 0, info
r = intro.revoke_token(base + "/oauth2/revoke/", token=tok["refresh_token"])
assert r.status_code == 200, r.text
info = intro.introspect_token(base + "/oauth2/introspect/", token=tok["access_token"]).json()
assert info == {"active": False}, info
assert pw.get(base + "/oauth2/").status_code == 401

# A wrong secret: 401 invalid_client with the Basic challenge.
bad = OAuth2Session(client_id, "wrong")
r = requests.post(token_url, data={"grant_type": "client_credentials"}, auth=(client_id, "wrong"))
assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
assert r.headers["WWW-Authenticate"] == 'Basic realm="api"'
print(json.dumps({"ok": True}))
"#;

/// `createclient`'s output as (id, secret).
fn create_client(env: &Env, args: &[&str]) -> (String, Option<String>) {
    let mut all = vec!["createclient"];
    all.extend_from_slice(args);
    let out = env.ok(&all);
    let mut lines = out.lines();
    let id = lines
        .next()
        .and_then(|l| l.strip_prefix("client_id: "))
        .unwrap_or_else(|| panic!("no client_id line in {out:?}"))
        .to_owned();
    let secret = lines
        .next()
        .map(|l| l.strip_prefix("client_secret: ").unwrap().to_owned());
    assert!(lines.next().is_none(), "{out:?}");
    (id, secret)
}

#[test]
fn authlib_drives_every_grant_against_serve() {
    let env = Env::new();
    env.ok(&["createuser", "ada", "--password", "ada-password-1"]);
    let redirect = "http://127.0.0.1:9/callback";
    let (public_id, public_secret) = create_client(
        &env,
        &[
            "spa",
            "--public",
            "--redirect-uri",
            redirect,
            "--grant",
            "authorization-code",
            "--grant",
            "refresh-token",
        ],
    );
    assert!(public_secret.is_none());
    let (id, secret) = create_client(
        &env,
        &[
            "backend",
            "--grant",
            "client-credentials",
            "--grant",
            "password",
            "--grant",
            "refresh-token",
        ],
    );
    let secret = secret.expect("a confidential client gets a secret");
    let server = env.serve_on(0);
    assert_eq!(
        python(AUTHORIZATION_CODE, &[&server.base, &public_id, redirect]),
        r#"{"ok": true}"#
    );
    assert_eq!(
        python(CONFIDENTIAL, &[&server.base, &id, &secret]),
        r#"{"ok": true}"#
    );
}

#[test]
fn the_seeds_curl_walkthrough_works_verbatim() {
    let env = Env::new();
    env.ok(&["createuser", "ada", "--password", "ada-password-1"]);
    let (id, secret) = create_client(
        &env,
        &["seed", "--grant", "password", "--grant", "refresh-token"],
    );
    let secret = secret.unwrap();
    let port = free_port();
    let _server = env.serve_on(port);
    // The seed, with its placeholders filled in.
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-d",
        &format!(
            "client_id={id}&client_secret={secret}&grant_type=password&username=ada&password=ada-password-1"
        ),
        &format!("http://localhost:{port}/oauth2/access_token/"),
    ]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["scope"], "read write");
    assert_eq!(v["expires_in"], 36000);
    assert!(v["refresh_token"].is_string());
    let token = v["access_token"].as_str().unwrap();
    let (status, body) = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://localhost:{port}/oauth2/"),
    ]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["user"], "ada");
    assert!(!body.contains(token), "the token itself is never echoed");
    // A wrong password is the RFC's invalid_grant.
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-d",
        &format!(
            "client_id={id}&client_secret={secret}&grant_type=password&username=ada&password=nope"
        ),
        &format!("http://localhost:{port}/oauth2/access_token/"),
    ]);
    assert_eq!(status, 400);
    assert!(body.contains("invalid_grant"), "{body}");
}

#[test]
fn client_commands() {
    let env = Env::new();
    let (id, secret) = create_client(
        &env,
        &[
            "Shop",
            "--redirect-uri",
            "https://shop.example/cb",
            "--scope",
            "read",
            "--skip-authorization",
        ],
    );
    let secret = secret.unwrap();
    assert!(id.len() >= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(secret.len() >= 32);
    let (public_id, none) = create_client(&env, &["App", "--public"]);
    assert!(none.is_none());
    let list = env.ok(&["listclients"]);
    assert!(list.contains(&id) && list.contains(&public_id), "{list}");
    assert!(list.contains("confidential") && list.contains("public"));
    assert!(!list.contains(&secret), "the secret is shown once only");
    // The secret is not in the database file either.
    let db = std::fs::read(env.path().join("portcullis.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));

    assert_eq!(
        env.ok(&["cleartokens"]).trim(),
        "Removed 0 expired OAuth2 tokens"
    );
    assert_eq!(
        env.ok(&["deleteclient", &id]).trim(),
        format!("Deleted client {id}")
    );
    let out = env.run(&["deleteclient", &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");

    for bad in [
        vec!["createclient", "x", "--grant", "implicit"],
        vec![
            "createclient",
            "x",
            "--public",
            "--grant",
            "client-credentials",
        ],
        vec!["createclient", "x", "--grant", "authorization-code"],
        vec!["createclient", "x", "--redirect-uri", "not a uri"],
    ] {
        let out = env.run(&bad);
        assert!(!out.status.success(), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{bad:?}: {err}");
    }
}
