//! The JWT settings (simplejwt's `SIMPLE_JWT`), read like every other
//! setting: file key `jwt_<name>`, environment `PORTCULLIS_JWT_<NAME>`.
//!
//! | setting | env | default | what |
//! |---|---|---|---|
//! | `jwt_access_token_lifetime` | `PORTCULLIS_JWT_ACCESS_TOKEN_LIFETIME` | `300` | access token lifetime in seconds (`ACCESS_TOKEN_LIFETIME`) |
//! | `jwt_refresh_token_lifetime` | `PORTCULLIS_JWT_REFRESH_TOKEN_LIFETIME` | `86400` | refresh token lifetime in seconds (`REFRESH_TOKEN_LIFETIME`) |
//! | `jwt_rotate_refresh_tokens` | `PORTCULLIS_JWT_ROTATE_REFRESH_TOKENS` | `false` | `/api/token/refresh/` also returns a new refresh token |
//! | `jwt_blacklist_after_rotation` | `PORTCULLIS_JWT_BLACKLIST_AFTER_ROTATION` | `false` | with rotation, the refresh token used is blacklisted |
//! | `jwt_algorithm` | `PORTCULLIS_JWT_ALGORITHM` | `HS256` | `HS256`/`HS384`/`HS512` sign with the secret key; `RS256`/`RS384`/`RS512`, `PS256`/`PS384`/`PS512`, `ES256` and `EdDSA` need a signing key file |
//! | `jwt_signing_key_file` | `PORTCULLIS_JWT_SIGNING_KEY_FILE` | none | private key PEM for the asymmetric algorithms (`portcullis create-jwt-key`) |
//! | `jwt_verifying_key_file` | `PORTCULLIS_JWT_VERIFYING_KEY_FILE` | none | an extra public key PEM whose tokens are accepted too (key rotation); the signing key always verifies |
//! | `jwt_audience` | `PORTCULLIS_JWT_AUDIENCE` | none | written as `aud` and required in incoming tokens |
//! | `jwt_issuer` | `PORTCULLIS_JWT_ISSUER` | none | written as `iss` and required in incoming tokens |
//! | `jwt_leeway` | `PORTCULLIS_JWT_LEEWAY` | `0` | seconds of clock skew allowed for `exp`, `nbf` and `iat` |
//!
//! Key files are read when a server starts ([`JwtConfig::settings`]), not
//! when settings load, so `create-jwt-key` can make the files a setting
//! already names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use portcullis::jwt::{algorithm_name, Algorithm, JwtKey, JwtSettings};

use super::{parse_bool, set, FileSettings, ENV_PREFIX};

/// Access token lifetime by default: 5 minutes (simplejwt's).
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: u64 = 300;
/// Refresh token lifetime by default: 1 day (simplejwt's).
pub const DEFAULT_REFRESH_TOKEN_LIFETIME: u64 = 86_400;

/// The algorithms `jwt_algorithm` accepts.
const ALGORITHMS: [Algorithm; 11] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// An algorithm by its JOSE name, matched case-insensitively.
pub fn parse_algorithm(name: &str) -> anyhow::Result<Algorithm> {
    let name = name.trim();
    ALGORITHMS
        .into_iter()
        .find(|a| algorithm_name(*a).eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let known: Vec<&str> = ALGORITHMS.iter().map(|a| algorithm_name(*a)).collect();
            anyhow!(
                "unsupported JWT algorithm {name:?}: expected one of {}",
                known.join(", ")
            )
        })
}

/// Whether an algorithm signs with the secret key (HMAC).
pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The JWT settings. See the [`config`](crate::config) table (`jwt_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtConfig {
    /// Access token lifetime in seconds. Default
    /// [`DEFAULT_ACCESS_TOKEN_LIFETIME`].
    pub access_token_lifetime: u64,
    /// Refresh token lifetime in seconds. Default
    /// [`DEFAULT_REFRESH_TOKEN_LIFETIME`].
    pub refresh_token_lifetime: u64,
    /// simplejwt's `ROTATE_REFRESH_TOKENS`. Default `false`.
    pub rotate_refresh_tokens: bool,
    /// simplejwt's `BLACKLIST_AFTER_ROTATION`. Default `false`.
    pub blacklist_after_rotation: bool,
    /// The signing algorithm. Default HS256 (with the secret key).
    pub algorithm: Algorithm,
    /// The private key PEM file for asymmetric algorithms. Default none.
    pub signing_key_file: Option<PathBuf>,
    /// An extra public key PEM file to accept tokens from. Default none.
    pub verifying_key_file: Option<PathBuf>,
    /// The `aud` claim. Default none.
    pub audience: Option<String>,
    /// The `iss` claim. Default none.
    pub issuer: Option<String>,
    /// Clock skew allowed, in seconds. Default 0.
    pub leeway: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            access_token_lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            refresh_token_lifetime: DEFAULT_REFRESH_TOKEN_LIFETIME,
            rotate_refresh_tokens: false,
            blacklist_after_rotation: false,
            algorithm: Algorithm::HS256,
            signing_key_file: None,
            verifying_key_file: None,
            audience: None,
            issuer: None,
            leeway: 0,
        }
    }
}

impl JwtConfig {
    pub(super) fn apply_file(&mut self, f: &FileSettings) -> anyhow::Result<()> {
        set(&mut self.access_token_lifetime, f.jwt_access_token_lifetime);
        set(
            &mut self.refresh_token_lifetime,
            f.jwt_refresh_token_lifetime,
        );
        set(&mut self.rotate_refresh_tokens, f.jwt_rotate_refresh_tokens);
        set(
            &mut self.blacklist_after_rotation,
            f.jwt_blacklist_after_rotation,
        );
        if let Some(name) = &f.jwt_algorithm {
            self.algorithm = parse_algorithm(name).context("jwt_algorithm")?;
        }
        set(
            &mut self.signing_key_file,
            f.jwt_signing_key_file.clone().map(Some),
        );
        set(
            &mut self.verifying_key_file,
            f.jwt_verifying_key_file.clone().map(Some),
        );
        set(&mut self.audience, f.jwt_audience.clone().map(Some));
        set(&mut self.issuer, f.jwt_issuer.clone().map(Some));
        set(&mut self.leeway, f.jwt_leeway);
        Ok(())
    }

    pub(super) fn apply_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<()> {
        let var = |name: &str| {
            let key = format!("{ENV_PREFIX}JWT_{}", name.to_ascii_uppercase());
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
        if let Some((k, v)) = var("refresh_token_lifetime") {
            self.refresh_token_lifetime = seconds(&k, &v)?;
        }
        if let Some((k, v)) = var("rotate_refresh_tokens") {
            self.rotate_refresh_tokens = parse_bool(&v).context(k)?;
        }
        if let Some((k, v)) = var("blacklist_after_rotation") {
            self.blacklist_after_rotation = parse_bool(&v).context(k)?;
        }
        if let Some((k, v)) = var("algorithm") {
            self.algorithm = parse_algorithm(&v).context(k)?;
        }
        if let Some((_, v)) = var("signing_key_file") {
            self.signing_key_file = Some(PathBuf::from(v));
        }
        if let Some((_, v)) = var("verifying_key_file") {
            self.verifying_key_file = Some(PathBuf::from(v));
        }
        if let Some((_, v)) = var("audience") {
            self.audience = Some(v);
        }
        if let Some((_, v)) = var("issuer") {
            self.issuer = Some(v);
        }
        if let Some((k, v)) = var("leeway") {
            self.leeway = seconds(&k, &v)?;
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.access_token_lifetime == 0 || self.refresh_token_lifetime == 0 {
            bail!("jwt_access_token_lifetime and jwt_refresh_token_lifetime must be positive");
        }
        let name = algorithm_name(self.algorithm);
        if is_hmac(self.algorithm) {
            if self.signing_key_file.is_some() || self.verifying_key_file.is_some() {
                bail!(
                    "jwt_algorithm {name} signs with the secret key: \
                     remove jwt_signing_key_file and jwt_verifying_key_file"
                );
            }
        } else if self.signing_key_file.is_none() {
            bail!(
                "jwt_algorithm {name} needs jwt_signing_key_file \
                 (PORTCULLIS_JWT_SIGNING_KEY_FILE); make one with \
                 `portcullis create-jwt-key --alg {name}`"
            );
        }
        Ok(())
    }

    /// The library's settings, reading the key files.
    pub fn settings(&self) -> anyhow::Result<JwtSettings> {
        let mut s = JwtSettings::default();
        s.access_token_lifetime = Duration::from_secs(self.access_token_lifetime);
        s.refresh_token_lifetime = Duration::from_secs(self.refresh_token_lifetime);
        s.rotate_refresh_tokens = self.rotate_refresh_tokens;
        s.blacklist_after_rotation = self.blacklist_after_rotation;
        s.algorithm = self.algorithm;
        s.audience = self.audience.clone();
        s.issuer = self.issuer.clone();
        s.leeway = Duration::from_secs(self.leeway);
        if let Some(path) = &self.signing_key_file {
            let pem = read_pem(path, "jwt_signing_key_file")?;
            s.signing_key = Some(
                JwtKey::private_pem(self.algorithm, &pem)
                    .map_err(|e| anyhow!("jwt_signing_key_file {}: {e}", path.display()))?,
            );
        }
        if let Some(path) = &self.verifying_key_file {
            let pem = read_pem(path, "jwt_verifying_key_file")?;
            s.verifying_keys.push(
                JwtKey::public_pem(self.algorithm, &pem)
                    .map_err(|e| anyhow!("jwt_verifying_key_file {}: {e}", path.display()))?,
            );
        }
        Ok(s)
    }
}

fn read_pem(path: &Path, setting: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow!("{setting} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, Settings};

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn load(file: Option<&str>, pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::from_sources(
            file.map(|t| ("f.toml", t)),
            env(pairs),
            &Overrides::default(),
        )
    }

    #[test]
    fn defaults_are_simplejwts() {
        let s = load(None, &[]).unwrap().jwt;
        assert_eq!(s, JwtConfig::default());
        let j = s.settings().unwrap();
        assert_eq!(j.access_token_lifetime, Duration::from_secs(300));
        assert_eq!(j.refresh_token_lifetime, Duration::from_secs(86_400));
        assert!(!j.rotate_refresh_tokens && !j.blacklist_after_rotation);
        assert_eq!(j.algorithm, Algorithm::HS256);
        assert!(j.signing_key.is_none());
    }

    #[test]
    fn env_beats_file() {
        let file = "jwt_rotate_refresh_tokens = true\njwt_access_token_lifetime = 60\n\
                    jwt_audience = \"file\"\njwt_leeway = 5\n";
        let s = load(
            Some(file),
            &[
                ("PORTCULLIS_JWT_ACCESS_TOKEN_LIFETIME", "120"),
                ("PORTCULLIS_JWT_BLACKLIST_AFTER_ROTATION", "true"),
                ("PORTCULLIS_JWT_ISSUER", "https://issuer.example"),
                ("PORTCULLIS_JWT_ALGORITHM", "hs512"),
            ],
        )
        .unwrap()
        .jwt;
        assert!(s.rotate_refresh_tokens && s.blacklist_after_rotation);
        assert_eq!(s.access_token_lifetime, 120);
        assert_eq!(s.audience.as_deref(), Some("file"));
        assert_eq!(s.issuer.as_deref(), Some("https://issuer.example"));
        assert_eq!(s.leeway, 5);
        assert_eq!(s.algorithm, Algorithm::HS512);
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for pairs in [
            [("PORTCULLIS_JWT_ACCESS_TOKEN_LIFETIME", "5m")],
            [("PORTCULLIS_JWT_ACCESS_TOKEN_LIFETIME", "0")],
            [("PORTCULLIS_JWT_ROTATE_REFRESH_TOKENS", "maybe")],
            [("PORTCULLIS_JWT_ALGORITHM", "none")],
            [("PORTCULLIS_JWT_ALGORITHM", "RS256")],
        ] {
            let e = format!("{:#}", load(None, &pairs).unwrap_err());
            assert!(!e.contains('\n'), "{e}");
            assert!(e.contains("JWT") || e.contains("jwt"), "{e}");
        }
        let e = load(None, &[("PORTCULLIS_JWT_ALGORITHM", "RS256")]).unwrap_err();
        assert!(e.to_string().contains("create-jwt-key"), "{e}");
        let e = load(
            None,
            &[("PORTCULLIS_JWT_SIGNING_KEY_FILE", "/nonexistent/key.pem")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("secret key"), "{e}");
    }

    #[test]
    fn key_files_are_read_when_used() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("k.pem");
        let public = dir.path().join("k.pub.pem");
        let pair = portcullis::jwt::generate_key_pair(Algorithm::ES256).unwrap();
        std::fs::write(&private, &pair.private_pem).unwrap();
        std::fs::write(&public, &pair.public_pem).unwrap();
        let mut c = JwtConfig {
            algorithm: Algorithm::ES256,
            signing_key_file: Some(dir.path().join("missing.pem")),
            ..JwtConfig::default()
        };
        c.validate().unwrap();
        let e = c.settings().unwrap_err().to_string();
        assert!(
            e.contains("jwt_signing_key_file") && e.contains("missing.pem"),
            "{e}"
        );
        c.signing_key_file = Some(private);
        c.verifying_key_file = Some(public.clone());
        let s = c.settings().unwrap();
        assert!(s.signing_key.is_some());
        assert_eq!(s.verifying_keys.len(), 1);
        // A public key is not a signing key.
        c.signing_key_file = Some(public);
        assert!(c.settings().is_err());
    }
}
