//! The signing secret (Django's `SECRET_KEY`) and the keys derived from it.
//!
//! One secret keys everything that must not be forgeable from a stolen
//! database: the hashes that stand in for tokens and session keys at rest,
//! the encrypted copy of each token, CSRF and session signatures. Each use
//! gets its own subkey (HMAC-SHA256 of a purpose label), so a key for one
//! purpose never serves another.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Why a secret was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("the secret key must be at least {MIN_SECRET_LEN} bytes long")]
    TooShort,
}

/// The secret key. Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct SecretKey {
    inner: Arc<[u8]>,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// Wraps a secret of at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, SecretError> {
        let s = secret.as_ref();
        if s.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort);
        }
        Ok(SecretKey { inner: s.into() })
    }

    /// A fresh random secret, as text (64 URL-safe characters).
    pub fn generate_text() -> String {
        let mut b = [0u8; 48];
        rand::rngs::OsRng.fill_bytes(&mut b);
        URL_SAFE_NO_PAD.encode(b)
    }

    /// The raw secret, for schemes that sign with it directly (HS256 JWTs).
    pub fn expose(&self) -> &[u8] {
        &self.inner
    }

    /// The subkey for one purpose.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.inner).expect("HMAC takes any key length");
        mac.update(b"portcullis.derive:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// HMAC-SHA256 of `data` under the subkey for `purpose`.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        self.subkey(purpose).mac(data)
    }

    /// The subkey for `purpose`, keyed once: hold it where the same MAC is
    /// computed on every request, so each computation costs one HMAC
    /// instead of deriving the subkey again.
    pub fn subkey(&self, purpose: &str) -> Subkey {
        Subkey {
            keyed: <HmacSha256 as Mac>::new_from_slice(&self.derive(purpose))
                .expect("HMAC takes any key length"),
        }
    }

    /// Encrypts `plaintext` (XChaCha20-Poly1305 under the subkey for
    /// `purpose`, random nonce); the result is URL-safe base64 text.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let cipher = XChaCha20Poly1305::new((&self.derive(purpose)).into());
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .expect("encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(24 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Decrypts what [`seal`](SecretKey::seal) produced; `None` if it was
    /// made with another key or purpose, or was tampered with.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < 24 + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(24);
        let cipher = XChaCha20Poly1305::new((&self.derive(purpose)).into());
        cipher.decrypt(XNonce::from_slice(nonce), ct).ok()
    }
}

/// A subkey of the [`SecretKey`] for one purpose, ready to MAC with;
/// [`SecretKey::subkey`] makes one. Its `Debug` output shows nothing.
#[derive(Clone)]
pub struct Subkey {
    keyed: HmacSha256,
}

impl fmt::Debug for Subkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subkey(<redacted>)")
    }
}

impl Subkey {
    /// HMAC-SHA256 of `data` under this subkey (the same value as
    /// [`SecretKey::mac`] with the subkey's purpose).
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        self.mac_parts([data])
    }

    /// [`mac`](Self::mac) in lowercase hex, on the stack.
    pub(crate) fn mac_hex(&self, data: &[u8]) -> MacHex {
        let mut out = [0u8; 64];
        hex::encode_to_slice(self.mac(data), &mut out).expect("32 bytes fill 64 hex digits");
        MacHex(out)
    }

    /// `v1$` and [`mac_hex`](Self::mac_hex): the form in which token and
    /// session keys are stored, on the stack (it is computed on every
    /// request that carries one).
    pub(crate) fn v1_digest(&self, data: &[u8]) -> V1Digest {
        let mut out = [0u8; 67];
        out[..3].copy_from_slice(b"v1$");
        out[3..].copy_from_slice(self.mac_hex(data).as_bytes());
        V1Digest(out)
    }

    /// HMAC-SHA256 of the concatenation of `parts`, without copying them
    /// into one buffer.
    pub fn mac_parts<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// A stored key's digest, `v1$` and 64 hex digits ([`Subkey::v1_digest`]).
pub(crate) struct V1Digest([u8; 67]);

/// An HMAC-SHA256 in lowercase hex, on the stack
/// ([`Subkey::mac_hex`]).
#[derive(Clone)]
pub(crate) struct MacHex([u8; 64]);

impl MacHex {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex is ASCII")
    }
}

impl V1Digest {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex is ASCII")
    }
}

/// Whether `a` and `b` hold the same bytes, in time that depends on their
/// lengths only (lengths are not secret here: digests, MACs and tokens have
/// fixed or public sizes). Every comparison of a secret, a digest or a MAC
/// goes through this; never `==`.
///
/// ```
/// use portcullis::secret::ct_eq;
///
/// assert!(ct_eq(b"v1$abc", b"v1$abc"));
/// assert!(!ct_eq(b"v1$abc", b"v1$abd"));
/// assert!(!ct_eq(b"v1$abc", b"v1$ab"));
/// ```
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time_eq::constant_time_eq(a, b)
}

/// Random text from `[a-zA-Z0-9]` drawn from the OS's CSPRNG.
pub fn random_alphanumeric(len: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, len)
}

/// Random lowercase hex from the OS's CSPRNG (`bytes` bytes, twice as many
/// characters).
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::new("x".repeat(40)).unwrap()
    }

    #[test]
    fn hex_and_v1_forms_spell_the_mac_in_lowercase() {
        let sub = key().subkey("p");
        for data in [&b""[..], b"a", b"some token", &[0xff; 100]] {
            let mac = sub.mac(data);
            assert_eq!(sub.mac_hex(data).as_str(), hex::encode(mac));
            assert_eq!(
                sub.v1_digest(data).as_str(),
                format!("v1${}", hex::encode(mac))
            );
            assert_eq!(
                crate::store::digest_mac(sub.v1_digest(data).as_str()),
                Some(mac)
            );
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(SecretKey::new("short").is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        assert!(!format!("{:?}", key()).contains("xxxx"));
    }

    #[test]
    fn purposes_derive_different_keys() {
        assert_ne!(key().derive("a"), key().derive("b"));
        assert_eq!(key().mac("a", b"m"), key().mac("a", b"m"));
        assert_ne!(key().mac("a", b"m"), key().mac("b", b"m"));
    }

    #[test]
    fn a_held_subkey_macs_like_the_secret_key() {
        let sub = key().subkey("a");
        assert_eq!(sub.mac(b"m"), key().mac("a", b"m"));
        assert_eq!(
            sub.mac(b"m"),
            sub.mac(b"m"),
            "the keyed state is reused, not consumed"
        );
        assert_ne!(sub.mac(b"m"), sub.mac(b"n"));
        assert!(!format!("{sub:?}").contains('['));
    }

    #[test]
    fn seal_round_trips_and_rejects_tampering() {
        let k = key();
        let s = k.seal("token", b"hello");
        assert_eq!(k.open("token", &s).unwrap(), b"hello");
        assert!(k.open("other", &s).is_none());
        let other = SecretKey::new("y".repeat(40)).unwrap();
        assert!(other.open("token", &s).is_none());
        let mut bad = s.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert!(k
            .open("token", std::str::from_utf8(&bad).unwrap())
            .is_none());
        assert!(k.open("token", "not base64!").is_none());
    }

    #[test]
    fn random_text_has_the_asked_shape() {
        let s = random_alphanumeric(32);
        assert_eq!(s.len(), 32);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(random_hex(20).len(), 40);
    }
}
