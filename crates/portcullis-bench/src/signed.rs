//! The signed-request scenarios (Digest, Hawk, HTTP Message Signatures,
//! OAuth 1.0a): every request carries a fresh nonce, and the server refuses
//! a replay, so wrk cannot send one fixed header. Before each wrk run the
//! bench signs enough distinct requests for it, writes them to a file, and
//! a Lua script hands wrk one per request (prepared in `init`, so the
//! per-request hook only indexes a table).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use portcullis::replay::MemoryReplayCache;
use portcullis::scheme::digest::{self, Algorithm};
use portcullis::scheme::hawk;
use portcullis::scheme::oauth1::params::{
    base_uri, normalize_params, percent_encode, signature_base_string,
};
use portcullis::store::MemoryStore;
use portcullis::SecretKey;
use rand::distributions::Alphanumeric;
use rand::Rng;

/// The most requests a signed scenario is expected to reach per second of
/// a run; the file holds this many per second plus a margin. Beyond it
/// wrk would replay requests, which the server answers `401` (reported as
/// unexpected answers, never hidden).
const MAX_RPS: u64 = 50_000;

/// What a signed scenario signs with.
#[derive(Clone, Debug)]
pub(crate) enum Signer {
    /// HTTP Digest, SHA-256, qop `auth`: the bench mints server nonces
    /// with the shared secret key, one nonce with counts 1..N per file.
    Digest {
        /// Username.
        username: String,
        /// Password.
        password: String,
        /// The server's secret key (for its nonces).
        secret: String,
    },
    /// Hawk credentials.
    Hawk {
        /// Credentials id.
        id: String,
        /// Credentials key.
        key: String,
    },
    /// HTTP Message Signatures with an `hmac-sha256` key.
    HttpSig {
        /// The key id.
        key_id: String,
        /// The shared secret.
        secret: Vec<u8>,
    },
    /// HTTP Basic with a different wrong password on every request, as a
    /// brute-force attack sends (identical wrong passwords would share
    /// one password check on the server).
    WrongBasic {
        /// The username attacked.
        username: String,
    },
    /// OAuth 1.0a, HMAC-SHA1, with an access token.
    OAuth1 {
        /// Consumer key.
        consumer_key: String,
        /// Consumer secret.
        consumer_secret: String,
        /// Token.
        token: String,
        /// Token secret.
        token_secret: String,
    },
}

fn nonce() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Signer {
    /// The headers of `n` distinct signed `GET path` requests to
    /// `authority` (`host:port`), one request a line, `name: value` pairs
    /// separated by tabs.
    pub(crate) fn lines(&self, authority: &str, path: &str, n: u64) -> anyhow::Result<String> {
        let (host, port) = authority
            .rsplit_once(':')
            .context("the server address has a port")?;
        let port: u16 = port.parse()?;
        let ts = unix_now();
        let mut out = String::with_capacity(n as usize * 320);
        match self {
            Signer::Digest {
                username,
                password,
                secret,
            } => {
                let key = SecretKey::new(secret.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
                let scheme = digest::Digest::new(MemoryStore::new(), key, MemoryReplayCache::new());
                let nonce = scheme.nonce();
                let realm = scheme.realm_name().to_owned();
                for nc in 1..=n {
                    let mut c =
                        digest::Client::new(username, password, &realm, &nonce, "GET", path);
                    c.algorithm = Algorithm::Sha256;
                    c.nc = u32::try_from(nc)?;
                    writeln!(out, "Authorization: {}", c.authorization())?;
                }
            }
            Signer::WrongBasic { username } => {
                let run = nonce();
                for i in 0..n {
                    let cred = STANDARD.encode(format!("{username}:wrong-{run}-{i}"));
                    writeln!(out, "Authorization: Basic {cred}")?;
                }
            }
            Signer::Hawk { id, key } => {
                for _ in 0..n {
                    let mut c = hawk::Client::new(id, key, "GET", path, host, port);
                    c.ts = ts;
                    c.nonce = nonce();
                    writeln!(out, "Authorization: {}", c.authorization())?;
                }
            }
            Signer::HttpSig { key_id, secret } => {
                for _ in 0..n {
                    let params = format!(
                        "(\"@method\" \"@authority\" \"@path\");created={ts};keyid=\"{key_id}\";nonce=\"{}\";alg=\"hmac-sha256\"",
                        nonce()
                    );
                    let base = format!(
                        "\"@method\": GET\n\"@authority\": {authority}\n\"@path\": {path}\n\"@signature-params\": {params}"
                    );
                    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret)?;
                    mac.update(base.as_bytes());
                    let sig = STANDARD.encode(mac.finalize().into_bytes());
                    writeln!(
                        out,
                        "Signature-Input: sig1={params}\tSignature: sig1=:{sig}:"
                    )?;
                }
            }
            Signer::OAuth1 {
                consumer_key,
                consumer_secret,
                token,
                token_secret,
            } => {
                let uri = base_uri("http", authority, path);
                let key = format!(
                    "{}&{}",
                    percent_encode(consumer_secret),
                    percent_encode(token_secret)
                );
                for _ in 0..n {
                    let nonce = nonce();
                    let params: Vec<(String, String)> = [
                        ("oauth_consumer_key", consumer_key.as_str()),
                        ("oauth_token", token.as_str()),
                        ("oauth_signature_method", "HMAC-SHA1"),
                        ("oauth_timestamp", &ts.to_string()),
                        ("oauth_nonce", &nonce),
                        ("oauth_version", "1.0"),
                    ]
                    .iter()
                    .map(|(k, v)| (percent_encode(k), percent_encode(v)))
                    .collect();
                    let base = signature_base_string("GET", &uri, &normalize_params(&params));
                    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes())?;
                    mac.update(base.as_bytes());
                    let sig = STANDARD.encode(mac.finalize().into_bytes());
                    let header = params
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{v}\""))
                        .chain(std::iter::once(format!(
                            "oauth_signature=\"{}\"",
                            percent_encode(&sig)
                        )))
                        .collect::<Vec<_>>()
                        .join(", ");
                    writeln!(out, "Authorization: OAuth realm=\"api\", {header}")?;
                }
            }
        }
        Ok(out)
    }

    /// Writes `n` signed requests for a run of `duration` and a Lua script
    /// that sends them; returns the script's path.
    pub(crate) fn script(
        &self,
        work: &Path,
        name: &str,
        authority: &str,
        path: &str,
        duration: Duration,
    ) -> anyhow::Result<PathBuf> {
        let secs = duration.as_secs_f64().ceil().max(1.0) as u64;
        let n = match self {
            // A few checks a second at most: no need for 50,000 a second.
            Signer::WrongBasic { .. } => 20_000,
            _ => secs * MAX_RPS + 10_000,
        };
        let data = work.join(format!("{name}.requests"));
        std::fs::write(&data, self.lines(authority, path, n)?)?;
        crate::wrk::script_of_requests(work, name, path, &data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_is_distinct() {
        let s = Signer::Hawk {
            id: "id".into(),
            key: "key".into(),
        };
        let text = s.lines("127.0.0.1:8000", "/hawk/", 100).unwrap();
        let lines: std::collections::BTreeSet<_> = text.lines().collect();
        assert_eq!(lines.len(), 100);
    }
}
