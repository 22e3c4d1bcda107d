//! The signature algorithms of RFC 9421 §3.3 and the keys that verify
//! them, all from RustCrypto crates.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

/// An HTTP Message Signatures algorithm (RFC 9421 §6.2.2's registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `ed25519`: EdDSA over Curve25519 (RFC 8032).
    Ed25519,
    /// `ecdsa-p256-sha256`: ECDSA on P-256 with SHA-256, `r || s`.
    EcdsaP256Sha256,
    /// `rsa-pss-sha512`: RSASSA-PSS with SHA-512, 64-byte salt.
    RsaPssSha512,
    /// `rsa-v1_5-sha256`: RSASSA-PKCS1-v1_5 with SHA-256.
    RsaV15Sha256,
    /// `hmac-sha256`: HMAC with SHA-256 over a shared secret.
    HmacSha256,
}

impl Algorithm {
    /// Every algorithm, in the order the docs list them.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Ed25519,
        Algorithm::EcdsaP256Sha256,
        Algorithm::RsaPssSha512,
        Algorithm::RsaV15Sha256,
        Algorithm::HmacSha256,
    ];

    /// The registered name, e.g. `ecdsa-p256-sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Algorithm::RsaPssSha512 => "rsa-pss-sha512",
            Algorithm::RsaV15Sha256 => "rsa-v1_5-sha256",
            Algorithm::HmacSha256 => "hmac-sha256",
        }
    }

    /// Whether the key is a shared secret rather than a public key.
    pub fn is_symmetric(self) -> bool {
        self == Algorithm::HmacSha256
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name that is not one of [`Algorithm::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown signature algorithm {0:?} (expected ed25519, ecdsa-p256-sha256, rsa-pss-sha512, rsa-v1_5-sha256 or hmac-sha256)")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// Why a key could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM text is not a public key of the algorithm's kind.
    #[error("not a {0} public key in PEM (SubjectPublicKeyInfo, or PKCS#1 for RSA)")]
    BadPublicKey(Algorithm),
    /// An HMAC secret shorter than 32 bytes.
    #[error("an hmac-sha256 secret must be at least 32 bytes")]
    ShortSecret,
    /// A symmetric algorithm given a public key, or the reverse.
    #[error("{0} does not use this kind of key")]
    WrongKind(Algorithm),
}

/// A key that verifies signatures of one algorithm. Its `Debug` output
/// never shows an HMAC secret.
#[derive(Clone)]
pub enum VerifyKey {
    /// An Ed25519 public key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// A P-256 public key.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// An RSA public key for PSS with SHA-512.
    RsaPss(rsa::RsaPublicKey),
    /// An RSA public key for PKCS#1 v1.5 with SHA-256.
    RsaV15(rsa::RsaPublicKey),
    /// A shared HMAC-SHA256 secret.
    Hmac(Vec<u8>),
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyKey({})", self.algorithm())
    }
}

impl VerifyKey {
    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            VerifyKey::Ed25519(_) => Algorithm::Ed25519,
            VerifyKey::EcdsaP256(_) => Algorithm::EcdsaP256Sha256,
            VerifyKey::RsaPss(_) => Algorithm::RsaPssSha512,
            VerifyKey::RsaV15(_) => Algorithm::RsaV15Sha256,
            VerifyKey::Hmac(_) => Algorithm::HmacSha256,
        }
    }

    /// A public key from PEM: SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`)
    /// for every algorithm, PKCS#1 (`BEGIN RSA PUBLIC KEY`) too for RSA.
    pub fn from_public_pem(alg: Algorithm, pem: &str) -> Result<Self, KeyError> {
        use ed25519_dalek::pkcs8::DecodePublicKey;
        let bad = || KeyError::BadPublicKey(alg);
        let rsa = || -> Result<rsa::RsaPublicKey, KeyError> {
            use rsa::pkcs1::DecodeRsaPublicKey;
            rsa::RsaPublicKey::from_public_key_pem(pem.trim())
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem.trim()))
                .map_err(|_| bad())
        };
        match alg {
            Algorithm::Ed25519 => ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
                .map(VerifyKey::Ed25519)
                .map_err(|_| bad()),
            Algorithm::EcdsaP256Sha256 => {
                p256::ecdsa::VerifyingKey::from_public_key_pem(pem.trim())
                    .map(VerifyKey::EcdsaP256)
                    .map_err(|_| bad())
            }
            Algorithm::RsaPssSha512 => rsa().map(VerifyKey::RsaPss),
            Algorithm::RsaV15Sha256 => rsa().map(VerifyKey::RsaV15),
            Algorithm::HmacSha256 => Err(KeyError::WrongKind(alg)),
        }
    }

    /// An HMAC-SHA256 secret (at least 32 bytes).
    pub fn hmac(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::ShortSecret);
        }
        Ok(VerifyKey::Hmac(secret.to_vec()))
    }

    /// Whether `signature` is this key's signature of `base`. HMAC tags are
    /// compared in constant time.
    pub fn verify(&self, base: &[u8], signature: &[u8]) -> bool {
        use rsa::signature::Verifier;
        match self {
            VerifyKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .map(|s| k.verify_strict(base, &s).is_ok())
                .unwrap_or(false),
            VerifyKey::EcdsaP256(k) => p256::ecdsa::Signature::from_slice(signature)
                .map(|s| k.verify(base, &s).is_ok())
                .unwrap_or(false),
            VerifyKey::RsaPss(k) => rsa::pss::Signature::try_from(signature)
                .map(|s| {
                    rsa::pss::VerifyingKey::<Sha512>::new(k.clone())
                        .verify(base, &s)
                        .is_ok()
                })
                .unwrap_or(false),
            VerifyKey::RsaV15(k) => rsa::pkcs1v15::Signature::try_from(signature)
                .map(|s| {
                    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone())
                        .verify(base, &s)
                        .is_ok()
                })
                .unwrap_or(false),
            VerifyKey::Hmac(secret) => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
                    .expect("HMAC takes any key length");
                mac.update(base);
                mac.verify_slice(signature).is_ok()
            }
        }
    }
}

/// A newly generated key pair, as PEM text. Its `Debug` output hides the
/// private key.
#[derive(Clone)]
pub struct GeneratedKeyPair {
    /// The private key, PKCS#8 (`BEGIN PRIVATE KEY`, version 1, which
    /// OpenSSL and Python's `cryptography` read); keep it secret.
    pub private_pem: String,
    /// The public key, SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`).
    pub public_pem: String,
}

impl fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKeyPair")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

/// Generates a key pair for an asymmetric algorithm (RSA keys are 2048
/// bits: slow, call it off the async runtime). HMAC has no key pair:
/// [`KeyError::WrongKind`].
pub fn generate_key_pair(alg: Algorithm) -> Result<GeneratedKeyPair, KeyError> {
    use rand::rngs::OsRng;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let failed = |_| KeyError::WrongKind(alg);
    match alg {
        Algorithm::Ed25519 => {
            let (private_pem, public_pem) =
                crate::keygen::ed25519_pem_pair().map_err(|_| KeyError::WrongKind(alg))?;
            Ok(GeneratedKeyPair {
                private_pem,
                public_pem,
            })
        }
        Algorithm::EcdsaP256Sha256 => {
            let key = p256::SecretKey::random(&mut OsRng);
            Ok(GeneratedKeyPair {
                private_pem: key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|_| KeyError::WrongKind(alg))?
                    .to_string(),
                public_pem: key
                    .public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|_| KeyError::WrongKind(alg))?,
            })
        }
        Algorithm::RsaPssSha512 | Algorithm::RsaV15Sha256 => {
            let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(failed)?;
            Ok(GeneratedKeyPair {
                private_pem: key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|_| KeyError::WrongKind(alg))?
                    .to_string(),
                public_pem: key
                    .to_public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|_| KeyError::WrongKind(alg))?,
            })
        }
        Algorithm::HmacSha256 => Err(KeyError::WrongKind(alg)),
    }
}
