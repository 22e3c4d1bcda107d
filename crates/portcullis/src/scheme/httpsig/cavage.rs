//! The older draft-cavage-http-signatures `Signature` header (versions 10
//! to 12, as Mastodon, ActivityPub servers and many API gateways send it),
//! accepted only when [`HttpSigConfig::cavage`](super::HttpSigConfig::cavage)
//! is on.
//!
//! `Signature: keyId="k",algorithm="hs2019",created=1402170695,
//! headers="(request-target) (created) host digest",signature="..."` (or the
//! same after `Authorization: Signature`). The signing string is one
//! `name: value` line per listed header; `(request-target)` is the
//! lower-case method, a space and the path with its query.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderMap;

use super::base::{combined_field, MAX_FIELD_LEN, MAX_PARAM_LEN};
use super::keys::Algorithm;
use crate::error::AuthError;

fn bad(msg: &'static str) -> AuthError {
    AuthError::bad_request(msg)
}

/// A parsed draft-cavage signature.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CavageSignature {
    /// `keyId`.
    pub key_id: String,
    /// `algorithm`, if given (`hs2019` or a legacy name).
    pub algorithm: Option<String>,
    /// `created`, if given.
    pub created: Option<i64>,
    /// `expires`, if given.
    pub expires: Option<i64>,
    /// `headers`, lower-cased (default `(created)`).
    pub headers: Vec<String>,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

impl CavageSignature {
    /// Whether `name` is among the signed headers.
    pub fn covers(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h == name)
    }

    /// Whether the legacy `algorithm` name (when given) fits a key's
    /// algorithm; `hs2019` fits any.
    pub fn algorithm_fits(&self, alg: Algorithm) -> bool {
        match self.algorithm.as_deref() {
            None | Some("hs2019") => true,
            Some("rsa-sha256") => alg == Algorithm::RsaV15Sha256,
            Some("hmac-sha256") => alg == Algorithm::HmacSha256,
            Some("ecdsa-sha256") => alg == Algorithm::EcdsaP256Sha256,
            Some("ed25519") => alg == Algorithm::Ed25519,
            Some(_) => false,
        }
    }
}

/// The `Signature` header's (or `Authorization: Signature ...`'s)
/// parameters; `Ok(None)` when neither is present. Malformed, duplicated
/// or missing parameters are `400`.
pub fn parse_cavage(headers: &HeaderMap) -> Result<Option<CavageSignature>, AuthError> {
    let from_auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("Signature")
                .then(|| rest.to_owned())
        });
    let text = match from_auth {
        Some(t) => t,
        None => match combined_field(headers, "signature")? {
            Some(t) => t,
            None => return Ok(None),
        },
    };
    if text.len() > MAX_FIELD_LEN {
        return Err(bad("Signature header too large."));
    }
    let mut sig = CavageSignature::default();
    let mut seen: Vec<String> = Vec::new();
    let mut have_sig = false;
    for part in split_quoted(&text)? {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| bad("Malformed Signature header."))?;
        let name = name.trim();
        let value = value.trim();
        if seen.iter().any(|s| s == name) {
            return Err(bad("Duplicated Signature parameter."));
        }
        seen.push(name.to_owned());
        let quoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .filter(|_| value.len() >= 2);
        let number = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| bad("Signature created and expires must be integers."))
        };
        match name {
            "keyId" => sig.key_id = quoted.ok_or_else(|| bad("keyId must be quoted."))?.into(),
            "algorithm" => {
                sig.algorithm = Some(
                    quoted
                        .ok_or_else(|| bad("algorithm must be quoted."))?
                        .into(),
                )
            }
            "created" => sig.created = Some(number(quoted.unwrap_or(value))?),
            "expires" => sig.expires = Some(number(quoted.unwrap_or(value))?),
            "headers" => {
                sig.headers = quoted
                    .ok_or_else(|| bad("headers must be quoted."))?
                    .split_ascii_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect();
            }
            "signature" => {
                let b64 = quoted.ok_or_else(|| bad("signature must be quoted."))?;
                sig.signature = STANDARD
                    .decode(b64)
                    .map_err(|_| bad("signature is not valid base64."))?;
                have_sig = true;
            }
            _ => return Err(bad("Unsupported Signature parameter.")),
        }
    }
    if sig.key_id.is_empty() || sig.key_id.len() > MAX_PARAM_LEN || !have_sig {
        return Err(bad("Signature needs keyId and signature."));
    }
    if sig.headers.is_empty() {
        sig.headers = vec!["(created)".into()];
    }
    Ok(Some(sig))
}

fn split_quoted(s: &str) -> Result<Vec<&str>, AuthError> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(bad("Malformed Signature header."));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// The signing string: one `name: value` line per signed header.
pub fn signing_string(
    sig: &CavageSignature,
    method: &http::Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Result<String, AuthError> {
    let mut lines = Vec::with_capacity(sig.headers.len());
    for h in &sig.headers {
        let value = match h.as_str() {
            "(request-target)" => {
                format!("{} {path_and_query}", method.as_str().to_ascii_lowercase())
            }
            "(created)" => sig
                .created
                .ok_or_else(|| bad("(created) is signed but created is missing."))?
                .to_string(),
            "(expires)" => sig
                .expires
                .ok_or_else(|| bad("(expires) is signed but expires is missing."))?
                .to_string(),
            name => combined_field(headers, name)?.ok_or_else(|| {
                AuthError::failed(format!("Signed header {name} is missing from the request."))
            })?,
        };
        lines.push(format!("{h}: {value}"));
    }
    Ok(lines.join("\n"))
}

/// Checks a `Digest` field (RFC 3230, `SHA-256=` or `SHA-512=`) against
/// the body.
pub fn check_digest(value: &str, body: &[u8]) -> Result<(), AuthError> {
    use sha2::{Digest, Sha256, Sha512};
    let mut checked = false;
    for part in value.split(',') {
        let Some((alg, b64)) = part.trim().split_once('=') else {
            return Err(bad("Malformed Digest header."));
        };
        let expected = match alg.to_ascii_uppercase().as_str() {
            "SHA-256" => Sha256::digest(body).to_vec(),
            "SHA-512" => Sha512::digest(body).to_vec(),
            _ => continue,
        };
        let got = STANDARD
            .decode(b64.trim())
            .map_err(|_| bad("Malformed Digest header."))?;
        if !crate::secret::ct_eq(&expected, &got) {
            return Err(AuthError::failed("Digest does not match the request body."));
        }
        checked = true;
    }
    if !checked {
        return Err(AuthError::failed("Digest must use SHA-256 or SHA-512."));
    }
    Ok(())
}
