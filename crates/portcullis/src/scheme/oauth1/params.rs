//! Reading OAuth 1.0a protocol parameters and building the signature base
//! string (RFC 5849 §3.4.1 and §3.5). Pure functions: malformed input is
//! `400` ([`AuthError::BadRequest`]).

use std::collections::BTreeSet;

use crate::error::AuthError;

/// The longest `Authorization` header or form body read for parameters.
pub const MAX_PARAMS_LEN: usize = 64 * 1024;
/// The most parameters one request may carry.
pub const MAX_PARAMS: usize = 256;

/// The protocol parameters this server understands (RFC 5849 §3.1, §2).
pub const PROTOCOL_PARAMS: &[&str] = &[
    "oauth_consumer_key",
    "oauth_token",
    "oauth_signature_method",
    "oauth_signature",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_version",
    "oauth_callback",
    "oauth_verifier",
];

fn bad(msg: &'static str) -> AuthError {
    AuthError::bad_request(msg)
}

/// RFC 5849 §3.6 percent-encoding: every byte but `A-Z a-z 0-9 - . _ ~`
/// as `%XX` with upper-case hex.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (no `+` rule, as the `Authorization` header
/// values are encoded); malformed escapes and non-UTF-8 results are `400`.
pub fn percent_decode(s: &str) -> Result<String, AuthError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("Malformed percent-encoding in OAuth parameters."))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("OAuth parameters must be UTF-8."))
}

/// Whether an `Authorization` value uses the `OAuth` scheme.
pub fn is_oauth_header(value: &[u8]) -> bool {
    value.len() >= 5
        && value[..5].eq_ignore_ascii_case(b"OAuth")
        && (value.len() == 5 || value[5] == b' ' || value[5] == b'\t')
}

/// The parameters of an `Authorization: OAuth ...` header (RFC 5849
/// §3.5.1), decoded, `realm` left out. Duplicated names, a missing `=` or
/// unquoted values are `400`.
pub fn parse_authorization(value: &str) -> Result<Vec<(String, String)>, AuthError> {
    if value.len() > MAX_PARAMS_LEN {
        return Err(bad("Authorization header too large."));
    }
    // Callers check `is_oauth_header` first; anything shorter has no
    // parameters.
    let rest = value.get(5..).unwrap_or("").trim();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    if rest.is_empty() {
        return Ok(out);
    }
    for part in split_params(rest)? {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, quoted) = part
            .split_once('=')
            .ok_or_else(|| bad("Malformed OAuth Authorization header."))?;
        let name = name.trim();
        let quoted = quoted.trim();
        let inner = quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .filter(|_| quoted.len() >= 2)
            .ok_or_else(|| bad("OAuth parameter values must be quoted."))?;
        let name = percent_decode(name)?;
        let value = percent_decode(inner)?;
        if !seen.insert(name.clone()) {
            return Err(bad("Duplicated OAuth protocol parameter."));
        }
        if name == "realm" {
            continue;
        }
        out.push((name, value));
        if out.len() > MAX_PARAMS {
            return Err(bad("Too many OAuth parameters."));
        }
    }
    Ok(out)
}

/// Splits on commas outside double quotes.
fn split_params(s: &str) -> Result<Vec<&str>, AuthError> {
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
        return Err(bad("Malformed OAuth Authorization header."));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// `application/x-www-form-urlencoded` pairs (query strings and form
/// bodies), decoded.
pub fn parse_form(text: &[u8]) -> Result<Vec<(String, String)>, AuthError> {
    if text.len() > MAX_PARAMS_LEN {
        return Err(bad("Too many OAuth parameters."));
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(text)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.len() > MAX_PARAMS {
        return Err(bad("Too many OAuth parameters."));
    }
    Ok(pairs)
}

/// The normalized parameter string of RFC 5849 §3.4.1.3.2: every pair
/// encoded, sorted by name then value, joined with `&`. `oauth_signature`
/// is left out.
pub fn normalize_params<'a>(params: impl IntoIterator<Item = &'a (String, String)>) -> String {
    let mut encoded: Vec<(String, String)> = params
        .into_iter()
        .filter(|(k, _)| k != "oauth_signature")
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The base string URI of RFC 5849 §3.4.1.2: scheme and host in lower
/// case, the default port left out, the path, no query.
pub fn base_uri(scheme: &str, authority: &str, path: &str) -> String {
    let scheme = scheme.to_ascii_lowercase();
    let host = authority.to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    let host = match host.strip_suffix(default) {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => host,
    };
    let path = if path.is_empty() { "/" } else { path };
    format!("{scheme}://{host}{path}")
}

/// The signature base string of RFC 5849 §3.4.1.1.
pub fn signature_base_string(method: &str, base_uri: &str, normalized_params: &str) -> String {
    format!(
        "{}&{}&{}",
        percent_encode(&method.to_ascii_uppercase()),
        percent_encode(base_uri),
        percent_encode(normalized_params)
    )
}
