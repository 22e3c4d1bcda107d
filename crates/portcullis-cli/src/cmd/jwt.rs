//! `portcullis create-jwt-key --alg ALG [--out PREFIX]` and
//! `portcullis flush-expired-tokens` (simplejwt's `flushexpiredtokens`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use portcullis::jwt::{algorithm_name, generate_key_pair, JwtBlacklist};

use crate::cli::CreateJwtKeyArgs;
use crate::config::{is_hmac, parse_algorithm, Settings};

/// Writes a new key pair: the private key to `PREFIX-private.pem` (mode
/// 0600, never overwriting a file) and the public key to
/// `PREFIX-public.pem`, then prints both paths. The default prefix is
/// `jwt-<alg>` in the working directory.
pub fn create_key(args: &CreateJwtKeyArgs) -> anyhow::Result<()> {
    let alg = parse_algorithm(&args.alg)?;
    let name = algorithm_name(alg);
    if is_hmac(alg) {
        bail!("{name} signs with the secret key (PORTCULLIS_SECRET_KEY): it needs no key pair");
    }
    let prefix = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("jwt-{}", name.to_ascii_lowercase())));
    let private = with_suffix(&prefix, "-private.pem");
    let public = with_suffix(&prefix, "-public.pem");
    for path in [&private, &public] {
        if path.exists() {
            bail!(
                "{} already exists: remove it or choose another --out",
                path.display()
            );
        }
    }
    let pair = generate_key_pair(alg).map_err(|e| anyhow!("cannot generate a {name} key: {e}"))?;
    write_new(&private, pair.private_pem.as_bytes(), true)?;
    if let Err(e) = write_new(&public, pair.public_pem.as_bytes(), false) {
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    println!("private key: {}", private.display());
    println!("public key: {}", public.display());
    Ok(())
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates `path` (failing if it exists), private to its owner when asked.
fn write_new(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .map_err(|e| anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}

/// Deletes expired outstanding refresh tokens and their blacklist entries;
/// prints how many tokens were removed.
pub async fn flush_expired(settings: &Settings) -> anyhow::Result<()> {
    let store = super::open(settings).await?;
    let n = store
        .flush_expired(chrono::Utc::now())
        .await
        .map_err(|e| super::store_error(settings, e))?;
    println!("Removed {n} expired token{}", if n == 1 { "" } else { "s" });
    Ok(())
}
