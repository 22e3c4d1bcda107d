//! `portcullis add-signature-key USERNAME --key-id KID --alg ALG
//! (--public-key-file PEM | --generate)`: registers a key for HTTP Message
//! Signatures (`/httpsig/`).

use std::io::Read;

use anyhow::{anyhow, bail};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis::scheme::httpsig::{
    check_key_id, generate_key_pair, Algorithm, SignatureKeyRecord, SignatureKeyStore, VerifyKey,
    HMAC_SEAL_PURPOSE,
};
use portcullis::store::StoreError;
use rand::RngCore;

use crate::cli::AddSignatureKeyArgs;
use crate::config::Settings;

/// The largest public key file read.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Adds the key. With `--generate`, prints `secret: BASE64` (HMAC: the key
/// is the decoded bytes) or the private key PEM, and stores only the
/// public key or the sealed secret; with `--public-key-file`, checks that
/// the file holds a public key of the algorithm and prints one line.
pub async fn add_key(settings: &Settings, args: AddSignatureKeyArgs) -> anyhow::Result<()> {
    super::check_username_given(&args.username)?;
    let alg: Algorithm = args.alg.trim().parse().map_err(|e| anyhow!("{e}"))?;
    check_key_id(&args.key_id).map_err(|_| anyhow!("the key id must be 1 to 255 characters"))?;
    if alg.is_symmetric() && args.public_key_file.is_some() {
        bail!("hmac-sha256 uses a shared secret, not a public key: use --generate");
    }
    let from_file = match &args.public_key_file {
        Some(path) => Some(read_public_key(path, alg)?),
        None => None,
    };
    settings.require_secret()?;
    let store = super::open(settings).await?;
    let secret = settings.secret_key()?;
    let user = super::existing_user(settings, &store, &args.username).await?;
    let (stored, shown) = match from_file {
        Some(pem) => (pem, None),
        None if alg.is_symmetric() => {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            (
                secret.seal(HMAC_SEAL_PURPOSE, &key),
                Some(format!("secret: {}", STANDARD.encode(key))),
            )
        }
        None => {
            let pair = tokio::task::spawn_blocking(move || generate_key_pair(alg))
                .await
                .map_err(|e| anyhow!("key generation failed: {e}"))?
                .map_err(|e| anyhow!("cannot generate a {alg} key: {e}"))?;
            (
                pair.public_pem,
                Some(pair.private_pem.trim_end().to_owned()),
            )
        }
    };
    let record = SignatureKeyRecord {
        key_id: args.key_id.clone(),
        user_id: user.id,
        algorithm: alg,
        key: stored,
        created_at: chrono::Utc::now(),
    };
    store
        .add_signature_key(&record)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => anyhow!("signature key {} already exists", args.key_id),
            other => super::store_error(settings, other),
        })?;
    match shown {
        Some(text) => println!("{text}"),
        None => println!(
            "Added {alg} signature key {} for user {}",
            args.key_id, args.username
        ),
    }
    Ok(())
}

/// Reads a PEM public key of `alg` from `path`.
fn read_public_key(path: &std::path::Path, alg: Algorithm) -> anyhow::Result<String> {
    let file =
        std::fs::File::open(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    VerifyKey::from_public_pem(alg, &text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(format!("{}\n", text.trim()))
}
