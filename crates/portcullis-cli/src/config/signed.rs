//! The settings of the signed-request schemes this module covers: HTTP
//! Message Signatures and OAuth 1.0a, read like every other setting (file
//! key as named, environment `PORTCULLIS_<NAME>`).
//!
//! | setting | env | default | what |
//! |---|---|---|---|
//! | `httpsig_max_age` | `PORTCULLIS_HTTPSIG_MAX_AGE` | `300` | how old an HTTP message signature's `created` may be, in seconds (`expires` is always enforced too) |
//! | `httpsig_cavage` | `PORTCULLIS_HTTPSIG_CAVAGE` | `false` | also accept the older draft-cavage `Signature` header (and `Authorization: Signature ...`) at `/httpsig/`; it must sign `(request-target)`, `host`, `(created)` or `date`, and `digest` when there is a body |
//! | `oauth1_timestamp_window` | `PORTCULLIS_OAUTH1_TIMESTAMP_WINDOW` | `300` | how far an OAuth 1.0a `oauth_timestamp` may be from the server's clock, in seconds; nonces are remembered this long |
//! | `oauth1_plaintext_over_http` | `PORTCULLIS_OAUTH1_PLAINTEXT_OVER_HTTP` | `false` | accept OAuth 1.0a `PLAINTEXT` signatures on plain HTTP too (RFC 5849 allows PLAINTEXT only over TLS; HTTPS is known from the URI or `secure_proxy_ssl_header`) |

use anyhow::{anyhow, bail, Context};

use super::{parse_bool, set, FileSettings, ENV_PREFIX};

/// `httpsig_max_age` by default, in seconds.
pub const DEFAULT_HTTPSIG_MAX_AGE: u64 = 300;
/// `oauth1_timestamp_window` by default, in seconds.
pub const DEFAULT_OAUTH1_TIMESTAMP_WINDOW: u64 = 300;
/// The largest window either setting accepts: one day.
const MAX_WINDOW: u64 = 86_400;

/// The signed-request settings: `httpsig_max_age`, `httpsig_cavage`,
/// `oauth1_timestamp_window` and `oauth1_plaintext_over_http`, each listed
/// with its default in [`crate::config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedConfig {
    /// Seconds an HTTP message signature stays valid after `created`.
    pub httpsig_max_age: u64,
    /// Whether the draft-cavage `Signature` header is accepted too.
    pub httpsig_cavage: bool,
    /// Seconds an OAuth 1.0a timestamp may be off.
    pub oauth1_timestamp_window: u64,
    /// Whether OAuth 1.0a `PLAINTEXT` is accepted over plain HTTP.
    pub oauth1_plaintext_over_http: bool,
}

impl Default for SignedConfig {
    fn default() -> Self {
        SignedConfig {
            httpsig_max_age: DEFAULT_HTTPSIG_MAX_AGE,
            httpsig_cavage: false,
            oauth1_timestamp_window: DEFAULT_OAUTH1_TIMESTAMP_WINDOW,
            oauth1_plaintext_over_http: false,
        }
    }
}

impl SignedConfig {
    pub(super) fn apply_file(&mut self, f: &FileSettings) {
        set(&mut self.httpsig_max_age, f.httpsig_max_age);
        set(&mut self.httpsig_cavage, f.httpsig_cavage);
        set(&mut self.oauth1_timestamp_window, f.oauth1_timestamp_window);
        set(
            &mut self.oauth1_plaintext_over_http,
            f.oauth1_plaintext_over_http,
        );
    }

    pub(super) fn apply_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<()> {
        let var = |name: &str| {
            let key = format!("{ENV_PREFIX}{}", name.to_ascii_uppercase());
            env(&key).map(|v| (key, v))
        };
        let seconds = |key: &str, v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| anyhow!("{key} must be a whole number of seconds, not {v:?}"))
        };
        if let Some((k, v)) = var("httpsig_max_age") {
            self.httpsig_max_age = seconds(&k, &v)?;
        }
        if let Some((k, v)) = var("httpsig_cavage") {
            self.httpsig_cavage = parse_bool(&v).context(k)?;
        }
        if let Some((k, v)) = var("oauth1_timestamp_window") {
            self.oauth1_timestamp_window = seconds(&k, &v)?;
        }
        if let Some((k, v)) = var("oauth1_plaintext_over_http") {
            self.oauth1_plaintext_over_http = parse_bool(&v).context(k)?;
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        for (name, v) in [
            ("httpsig_max_age", self.httpsig_max_age),
            ("oauth1_timestamp_window", self.oauth1_timestamp_window),
        ] {
            if v == 0 || v > MAX_WINDOW {
                bail!("{name} must be between 1 and {MAX_WINDOW} seconds");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_beats_default_and_bad_values_are_refused() {
        let mut c = SignedConfig::default();
        let env = |k: &str| match k {
            "PORTCULLIS_HTTPSIG_MAX_AGE" => Some("60".to_owned()),
            "PORTCULLIS_OAUTH1_PLAINTEXT_OVER_HTTP" => Some("yes".to_owned()),
            "PORTCULLIS_HTTPSIG_CAVAGE" => Some("on".to_owned()),
            _ => None,
        };
        c.apply_env(&env).unwrap();
        assert_eq!(c.httpsig_max_age, 60);
        assert_eq!(c.oauth1_timestamp_window, 300);
        assert!(c.oauth1_plaintext_over_http);
        assert!(c.httpsig_cavage);
        assert!(!SignedConfig::default().httpsig_cavage);
        let bad = |k: &str| (k == "PORTCULLIS_OAUTH1_TIMESTAMP_WINDOW").then(|| "soon".to_owned());
        assert!(SignedConfig::default().apply_env(&bad).is_err());
        let zero = SignedConfig {
            httpsig_max_age: 0,
            ..SignedConfig::default()
        };
        assert!(zero.validate().is_err());
    }
}
