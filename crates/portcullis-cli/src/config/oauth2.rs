//! The OAuth2 settings (django-oauth-toolkit's `OAUTH2_PROVIDER`), read
//! like every other setting: file key `oauth2_<name>`, environment
//! `PORTCULLIS_OAUTH2_<NAME>`.
//!
//! | setting | env | default | what |
//! |---|---|---|---|
//! | `oauth2_access_token_lifetime` | `PORTCULLIS_OAUTH2_ACCESS_TOKEN_LIFETIME` | `36000` | access token lifetime in seconds (`ACCESS_TOKEN_EXPIRE_SECONDS`) |
//! | `oauth2_code_lifetime` | `PORTCULLIS_OAUTH2_CODE_LIFETIME` | `60` | authorization code lifetime in seconds (`AUTHORIZATION_CODE_EXPIRE_SECONDS`) |
//! | `oauth2_password_grant` | `PORTCULLIS_OAUTH2_PASSWORD_GRANT` | `true` | whether `/oauth2/token/` serves the legacy `password` grant at all (clients must also be allowed it) |

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use portcullis::oauth2::OAuth2Settings;

use super::{parse_bool, set, FileSettings, ENV_PREFIX};

/// Access token lifetime by default: 10 hours (django-oauth-toolkit's).
pub const DEFAULT_OAUTH2_ACCESS_TOKEN_LIFETIME: u64 = 36_000;
/// Authorization code lifetime by default: 60 s.
pub const DEFAULT_OAUTH2_CODE_LIFETIME: u64 = 60;

/// The `oauth2_*` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuth2Config {
    /// Access token lifetime in seconds. Default
    /// [`DEFAULT_OAUTH2_ACCESS_TOKEN_LIFETIME`].
    pub access_token_lifetime: u64,
    /// Authorization code lifetime in seconds. Default
    /// [`DEFAULT_OAUTH2_CODE_LIFETIME`].
    pub code_lifetime: u64,
    /// Whether the password grant is served. Default `true`.
    pub password_grant: bool,
}

impl Default for OAuth2Config {
    fn default() -> Self {
        OAuth2Config {
            access_token_lifetime: DEFAULT_OAUTH2_ACCESS_TOKEN_LIFETIME,
            code_lifetime: DEFAULT_OAUTH2_CODE_LIFETIME,
            password_grant: true,
        }
    }
}

impl OAuth2Config {
    pub(super) fn apply_file(&mut self, f: &FileSettings) {
        set(
            &mut self.access_token_lifetime,
            f.oauth2_access_token_lifetime,
        );
        set(&mut self.code_lifetime, f.oauth2_code_lifetime);
        set(&mut self.password_grant, f.oauth2_password_grant);
    }

    pub(super) fn apply_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<()> {
        let var = |name: &str| {
            let key = format!("{ENV_PREFIX}OAUTH2_{}", name.to_ascii_uppercase());
            env(&key).map(|v| (key, v))
        };
        let seconds = |key: &str, v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| anyhow!("{key} must be a whole number of seconds, not {v:?}"))
        };
        if let Some((k, v)) = var("access_token_lifetime") {
            self.access_token_lifetime = seconds(&k, &v)?;
        }
        if let Some((k, v)) = var("code_lifetime") {
            self.code_lifetime = seconds(&k, &v)?;
        }
        if let Some((k, v)) = var("password_grant") {
            self.password_grant = parse_bool(&v).context(k)?;
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.access_token_lifetime == 0 || self.code_lifetime == 0 {
            bail!("oauth2_access_token_lifetime and oauth2_code_lifetime must be positive");
        }
        Ok(())
    }

    /// The library's settings.
    pub fn settings(&self) -> OAuth2Settings {
        let mut s = OAuth2Settings::default();
        s.access_token_lifetime = Duration::from_secs(self.access_token_lifetime);
        s.code_lifetime = Duration::from_secs(self.code_lifetime);
        s.password_grant = self.password_grant;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_django_oauth_toolkits() {
        let c = OAuth2Config::default();
        assert_eq!((c.access_token_lifetime, c.code_lifetime), (36_000, 60));
        assert!(c.password_grant);
        let s = c.settings();
        assert_eq!(s.access_token_lifetime, Duration::from_secs(36_000));
    }

    #[test]
    fn env_overrides_and_rejects_garbage() {
        let mut c = OAuth2Config::default();
        let env = |k: &str| match k {
            "PORTCULLIS_OAUTH2_PASSWORD_GRANT" => Some("false".to_owned()),
            "PORTCULLIS_OAUTH2_CODE_LIFETIME" => Some("30".to_owned()),
            _ => None,
        };
        c.apply_env(&env).unwrap();
        assert!(!c.password_grant);
        assert_eq!(c.code_lifetime, 30);
        let bad =
            |k: &str| (k == "PORTCULLIS_OAUTH2_ACCESS_TOKEN_LIFETIME").then(|| "ten".to_owned());
        assert!(c.apply_env(&bad).is_err());
        c.code_lifetime = 0;
        assert!(c.validate().is_err());
    }
}
