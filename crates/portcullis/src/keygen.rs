//! Key-pair writing shared by the JWT and HTTP Message Signatures key
//! generators.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, KeypairBytes};

/// A new Ed25519 key pair from the OS's CSPRNG, as PEM: the private key as
/// PKCS#8 version 1 (the seed alone), the public key as SPKI.
///
/// Version 1 because OpenSSL and Python's `cryptography` read it, while
/// the version 2 document that ed25519-dalek writes for a `SigningKey`
/// (seed and public key) is refused by both.
pub(crate) fn ed25519_pem_pair() -> Result<(String, String), String> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let seed_only = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let private = seed_only
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    Ok((private.to_string(), public))
}
