//! Signing and verification keys, the public JWKS, and key-pair generation.
//!
//! A [`JwtKey`] pins one algorithm to one key. When a token is verified, its
//! header's `alg` (and `kid`) only *select* among the configured keys; a key
//! never verifies a token under any algorithm but its own, so `alg: none` and
//! the HS256-with-an-RSA-public-key confusion are refused by construction.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Hmac;
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sha2::{Sha256, Sha384, Sha512};

use crate::secret::SecretKey;

/// Why a key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The algorithm is not one portcullis signs or verifies with
    /// (HS256/384/512, RS256/384/512, PS256/384/512, ES256, EdDSA).
    #[error("unsupported JWT algorithm {0:?}")]
    Unsupported(Algorithm),
    /// The key does not suit the algorithm (an HMAC secret for RS256, …).
    #[error("a {kind} key cannot be used with {alg:?}")]
    WrongKind {
        /// What was given.
        kind: &'static str,
        /// The algorithm asked for.
        alg: Algorithm,
    },
    /// The PEM text could not be parsed as a key of the expected kind.
    #[error("invalid {0} key PEM")]
    InvalidPem(&'static str),
    /// An HMAC secret shorter than the hash output (RFC 7518 §3.2).
    #[error("an HMAC secret for {alg:?} must be at least {min} bytes")]
    ShortSecret {
        /// The algorithm.
        alg: Algorithm,
        /// Minimum length in bytes.
        min: usize,
    },
    /// Key generation failed.
    #[error("key generation failed: {0}")]
    Generation(String),
}

/// The family of an algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    P256,
    Ed25519,
}

fn family(alg: Algorithm) -> Result<Family, KeyError> {
    use Algorithm::*;
    Ok(match alg {
        HS256 | HS384 | HS512 => Family::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 => Family::P256,
        EdDSA => Family::Ed25519,
        ES384 => return Err(KeyError::Unsupported(alg)),
    })
}

/// The name of an algorithm as it appears in a JOSE header (`"RS256"`).
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    use Algorithm::*;
    match alg {
        HS256 => "HS256",
        HS384 => "HS384",
        HS512 => "HS512",
        ES256 => "ES256",
        ES384 => "ES384",
        RS256 => "RS256",
        RS384 => "RS384",
        RS512 => "RS512",
        PS256 => "PS256",
        PS384 => "PS384",
        PS512 => "PS512",
        EdDSA => "EdDSA",
    }
}

/// One key pinned to one algorithm, with an optional key id (`kid`).
///
/// A key made from a secret or a private key can sign and verify; one made
/// from a public key only verifies. `Debug` never shows key material.
#[derive(Clone)]
pub struct JwtKey {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) encoding: Option<EncodingKey>,
    pub(crate) decoding: DecodingKey,
    /// HMAC keys only: the secret, keyed once, that verifies tokens
    /// without `jsonwebtoken::decode` (see [`HmacVerifier`]).
    pub(crate) hmac: Option<HmacVerifier>,
    /// The public JWK members (without `kid`, `alg`, `use`); `None` for HMAC.
    public_jwk: Option<Value>,
}

/// An HS256, HS384 or HS512 secret, keyed once (the HMAC pads are
/// computed when the key is made, not for every token).
#[derive(Clone)]
pub(crate) enum HmacVerifier {
    S256(Hmac<Sha256>),
    S384(Hmac<Sha384>),
    S512(Hmac<Sha512>),
}

impl HmacVerifier {
    fn new(alg: Algorithm, secret: &[u8]) -> Option<Self> {
        use hmac::Mac;
        Some(match alg {
            Algorithm::HS256 => Self::S256(Hmac::new_from_slice(secret).expect("any length")),
            Algorithm::HS384 => Self::S384(Hmac::new_from_slice(secret).expect("any length")),
            Algorithm::HS512 => Self::S512(Hmac::new_from_slice(secret).expect("any length")),
            _ => return None,
        })
    }

    /// Whether `signature` is the MAC of `message`: the MAC is encoded as
    /// base64url without padding and the two texts are compared in
    /// constant time, so a signature in any other spelling (padded,
    /// non-zero trailing bits) fails, as it does in `jsonwebtoken`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &str) -> bool {
        use hmac::Mac;
        /// The MAC of `message` under `key`, as base64url text in `out`.
        fn encoded<M: Mac + Clone>(key: &M, message: &[u8], out: &mut [u8; 86]) -> usize {
            let mac = key.clone().chain_update(message).finalize().into_bytes();
            URL_SAFE_NO_PAD
                .encode_slice(mac, out)
                .expect("86 bytes hold a 64-byte MAC")
        }
        let mut text = [0u8; 86];
        let n = match self {
            Self::S256(k) => encoded(k, message, &mut text),
            Self::S384(k) => encoded(k, message, &mut text),
            Self::S512(k) => encoded(k, message, &mut text),
        };
        crate::secret::ct_eq(&text[..n], signature.as_bytes())
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("can_sign", &self.encoding.is_some())
            .finish_non_exhaustive()
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

impl JwtKey {
    /// An HMAC key (HS256, HS384 or HS512) from a shared secret of at least
    /// the hash's length (32, 48 or 64 bytes).
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        if family(alg)? != Family::Hmac {
            return Err(KeyError::WrongKind {
                kind: "secret",
                alg,
            });
        }
        let min = match alg {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        };
        if secret.len() < min {
            return Err(KeyError::ShortSecret { alg, min });
        }
        Ok(JwtKey {
            alg,
            kid: None,
            encoding: Some(EncodingKey::from_secret(secret)),
            decoding: DecodingKey::from_secret(secret),
            hmac: HmacVerifier::new(alg, secret),
            public_jwk: None,
        })
    }

    /// simplejwt's default: HS256 under the project's secret key (Django's
    /// `SECRET_KEY`), used as is so any HS256 library holding the secret
    /// interoperates.
    pub fn from_secret_key(secret: &SecretKey) -> Self {
        let s = secret.expose();
        JwtKey {
            alg: Algorithm::HS256,
            kid: None,
            encoding: Some(EncodingKey::from_secret(s)),
            decoding: DecodingKey::from_secret(s),
            hmac: HmacVerifier::new(Algorithm::HS256, s),
            public_jwk: None,
        }
    }

    /// A signing key from a private key PEM: PKCS#8 (`BEGIN PRIVATE KEY`)
    /// for every family, or PKCS#1 (`BEGIN RSA PRIVATE KEY`) / SEC1
    /// (`BEGIN EC PRIVATE KEY`). Its public half verifies and goes into the
    /// JWKS.
    pub fn private_pem(alg: Algorithm, pem: &str) -> Result<Self, KeyError> {
        match family(alg)? {
            Family::Hmac => Err(KeyError::WrongKind {
                kind: "private",
                alg,
            }),
            Family::Rsa => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                use rsa::pkcs8::DecodePrivateKey;
                use rsa::traits::PublicKeyParts;
                let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                    .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
                    .map_err(|_| KeyError::InvalidPem("RSA private"))?;
                let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|_| KeyError::InvalidPem("RSA private"))?;
                let public = key.to_public_key();
                Ok(Self::rsa_public(
                    alg,
                    &public.n().to_bytes_be(),
                    &public.e().to_bytes_be(),
                    Some(encoding),
                ))
            }
            Family::P256 => {
                use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
                let key = p256::SecretKey::from_pkcs8_pem(pem)
                    .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
                    .map_err(|_| KeyError::InvalidPem("P-256 private"))?;
                let der = key
                    .to_pkcs8_der()
                    .map_err(|_| KeyError::InvalidPem("P-256 private"))?;
                let encoding = EncodingKey::from_ec_der(der.as_bytes());
                Ok(Self::p256_public(&key.public_key(), Some(encoding)))
            }
            Family::Ed25519 => {
                use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
                let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                    .map_err(|_| KeyError::InvalidPem("Ed25519 private"))?;
                let der = key
                    .to_pkcs8_der()
                    .map_err(|_| KeyError::InvalidPem("Ed25519 private"))?;
                let encoding = EncodingKey::from_ed_der(der.as_bytes());
                Ok(Self::ed25519_public(&key.verifying_key(), Some(encoding)))
            }
        }
    }

    /// A verification-only key from a public key PEM (SPKI, `BEGIN PUBLIC
    /// KEY`; for RSA also PKCS#1 `BEGIN RSA PUBLIC KEY`): simplejwt's
    /// `VERIFYING_KEY`.
    pub fn public_pem(alg: Algorithm, pem: &str) -> Result<Self, KeyError> {
        match family(alg)? {
            Family::Hmac => Err(KeyError::WrongKind {
                kind: "public",
                alg,
            }),
            Family::Rsa => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                use rsa::pkcs8::DecodePublicKey;
                use rsa::traits::PublicKeyParts;
                let key = rsa::RsaPublicKey::from_public_key_pem(pem)
                    .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
                    .map_err(|_| KeyError::InvalidPem("RSA public"))?;
                Ok(Self::rsa_public(
                    alg,
                    &key.n().to_bytes_be(),
                    &key.e().to_bytes_be(),
                    None,
                ))
            }
            Family::P256 => {
                use p256::pkcs8::DecodePublicKey;
                let key = p256::PublicKey::from_public_key_pem(pem)
                    .map_err(|_| KeyError::InvalidPem("P-256 public"))?;
                Ok(Self::p256_public(&key, None))
            }
            Family::Ed25519 => {
                use ed25519_dalek::pkcs8::DecodePublicKey;
                let key = ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                    .map_err(|_| KeyError::InvalidPem("Ed25519 public"))?;
                Ok(Self::ed25519_public(&key, None))
            }
        }
    }

    fn rsa_public(alg: Algorithm, n: &[u8], e: &[u8], encoding: Option<EncodingKey>) -> Self {
        JwtKey {
            alg,
            kid: None,
            encoding,
            decoding: DecodingKey::from_rsa_raw_components(n, e),
            hmac: None,
            public_jwk: Some(json!({"kty": "RSA", "n": b64(n), "e": b64(e)})),
        }
    }

    fn p256_public(key: &p256::PublicKey, encoding: Option<EncodingKey>) -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let point = key.to_encoded_point(false);
        let (x, y) = (
            point.x().expect("uncompressed"),
            point.y().expect("uncompressed"),
        );
        JwtKey {
            alg: Algorithm::ES256,
            kid: None,
            encoding,
            decoding: DecodingKey::from_ec_components(&b64(x), &b64(y)).expect("our own base64"),
            hmac: None,
            public_jwk: Some(json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)})),
        }
    }

    fn ed25519_public(key: &ed25519_dalek::VerifyingKey, encoding: Option<EncodingKey>) -> Self {
        let x = b64(key.as_bytes());
        JwtKey {
            alg: Algorithm::EdDSA,
            kid: None,
            encoding,
            decoding: DecodingKey::from_ed_components(&x).expect("our own base64"),
            hmac: None,
            public_jwk: Some(json!({"kty": "OKP", "crv": "Ed25519", "x": x})),
        }
    }

    /// A verification-only key from a public JWK with an `alg` of RS*/PS*
    /// (`kty: RSA`), ES256 (`kty: EC`, `crv: P-256`) or EdDSA (`kty: OKP`,
    /// `crv: Ed25519`); `None` for anything else, HMAC (`oct`) keys included.
    pub(crate) fn from_jwk(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Self> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
        use std::str::FromStr;
        let alg = Algorithm::from_str(&jwk.common.key_algorithm?.to_string()).ok()?;
        let de = |s: &str| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok();
        let key = match (family(alg).ok()?, &jwk.algorithm) {
            (Family::Rsa, AlgorithmParameters::RSA(p)) => {
                Self::rsa_public(alg, &de(&p.n)?, &de(&p.e)?, None)
            }
            (Family::P256, AlgorithmParameters::EllipticCurve(p))
                if p.curve == EllipticCurve::P256 =>
            {
                let mut sec1 = vec![0x04];
                sec1.extend(de(&p.x)?);
                sec1.extend(de(&p.y)?);
                Self::p256_public(&p256::PublicKey::from_sec1_bytes(&sec1).ok()?, None)
            }
            (Family::Ed25519, AlgorithmParameters::OctetKeyPair(p))
                if p.curve == EllipticCurve::Ed25519 =>
            {
                let x: [u8; 32] = de(&p.x)?.try_into().ok()?;
                Self::ed25519_public(&ed25519_dalek::VerifyingKey::from_bytes(&x).ok()?, None)
            }
            _ => return None,
        };
        Some(match &jwk.common.key_id {
            Some(kid) => key.with_kid(kid.clone()),
            None => key,
        })
    }

    /// Sets the key id, written to the header of tokens this key signs and
    /// used to pick the key when verifying.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether the key can sign (a secret or a private key).
    pub fn can_sign(&self) -> bool {
        self.encoding.is_some()
    }

    /// The public JWK (RFC 7517) with `kid`, `alg` and `use: "sig"`; `None`
    /// for HMAC keys, which must never be published.
    pub fn public_jwk(&self) -> Option<Value> {
        let mut jwk = self.public_jwk.clone()?;
        let obj = jwk.as_object_mut()?;
        obj.insert("use".into(), "sig".into());
        obj.insert("alg".into(), algorithm_name(self.alg).into());
        if let Some(kid) = &self.kid {
            obj.insert("kid".into(), kid.clone().into());
        }
        Some(jwk)
    }
}

/// A freshly generated key pair, both halves PEM-encoded: the private key as
/// PKCS#8 (`BEGIN PRIVATE KEY`), the public key as SPKI (`BEGIN PUBLIC KEY`).
pub struct GeneratedKeyPair {
    /// The private key; keep it secret.
    pub private_pem: String,
    /// The public key, for verifiers and the JWKS.
    pub public_pem: String,
}

impl fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKeyPair")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

/// Generates a key pair for `alg` from the OS's CSPRNG (for a
/// `create-jwt-key` command): RSA 2048-bit for RS*/PS*, P-256 for ES256,
/// Ed25519 for EdDSA. HMAC algorithms need no key pair (use the secret key),
/// so they are an error. RSA generation takes a while: call it from a
/// command or `spawn_blocking`, not on the async runtime.
pub fn generate_key_pair(alg: Algorithm) -> Result<GeneratedKeyPair, KeyError> {
    use rand::rngs::OsRng;
    let gen = |e: &dyn fmt::Display| KeyError::Generation(e.to_string());
    match family(alg)? {
        Family::Hmac => Err(KeyError::WrongKind {
            kind: "key pair",
            alg,
        }),
        Family::Rsa => {
            use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
            let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(|e| gen(&e))?;
            Ok(GeneratedKeyPair {
                private_pem: key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| gen(&e))?
                    .to_string(),
                public_pem: key
                    .to_public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| gen(&e))?,
            })
        }
        Family::P256 => {
            use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
            let key = p256::SecretKey::random(&mut OsRng);
            Ok(GeneratedKeyPair {
                private_pem: key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| gen(&e))?
                    .to_string(),
                public_pem: key
                    .public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| gen(&e))?,
            })
        }
        Family::Ed25519 => {
            let (private_pem, public_pem) =
                crate::keygen::ed25519_pem_pair().map_err(|e| gen(&e))?;
            Ok(GeneratedKeyPair {
                private_pem,
                public_pem,
            })
        }
    }
}

/// The keys a [`Jwt`](super::Jwt) uses: one to sign with, every one
/// (including the signing key) to verify with.
#[derive(Clone, Debug)]
pub(crate) struct KeySet {
    pub(crate) signing: JwtKey,
    pub(crate) verifying: Vec<JwtKey>,
}

impl KeySet {
    /// The keys that may verify a token whose header names `alg` and `kid`.
    /// A `kid` that matches a key selects that key alone; otherwise every key
    /// of that algorithm is tried (tokens from other libraries carry no kid).
    pub(crate) fn candidates(&self, alg: Algorithm, kid: Option<&str>) -> Vec<&JwtKey> {
        let same_alg = || self.verifying.iter().filter(move |k| k.alg == alg);
        if let Some(kid) = kid {
            let by_kid: Vec<_> = same_alg()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect();
            if !by_kid.is_empty() {
                return by_kid;
            }
        }
        same_alg().collect()
    }

    /// The public JWKS document.
    pub(crate) fn jwks(&self) -> Value {
        let mut keys: Vec<Value> = Vec::new();
        for k in &self.verifying {
            if let Some(jwk) = k.public_jwk() {
                if !keys.contains(&jwk) {
                    keys.push(jwk);
                }
            }
        }
        json!({ "keys": keys })
    }
}
