//! Parsing `Signature-Input` and `Signature` (RFC 8941 structured fields,
//! with the `sfv` crate) and rebuilding the signature base (RFC 9421 §2.5).
//!
//! Everything here is pure: it reads a request head and returns either
//! the parsed signature and its base or an [`AuthError`] (`400` for
//! malformed input, `401` for a component the request lacks).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{HeaderMap, Method};
use sfv::{BareItem, Dictionary, InnerList, Item, ListEntry, ListSerializer, Parser};

use crate::error::AuthError;

/// The longest `Signature-Input`, `Signature` or covered field accepted,
/// in bytes (all its lines together).
pub const MAX_FIELD_LEN: usize = 16 * 1024;
/// The most components one signature may cover.
pub const MAX_COMPONENTS: usize = 64;
/// The longest `keyid`, `nonce`, `tag` or `alg` accepted.
pub const MAX_PARAM_LEN: usize = 255;

/// Dictionary-valued fields whose `;sf` form this verifier can rebuild.
const DICTIONARY_FIELDS: &[&str] = &[
    "accept-signature",
    "content-digest",
    "priority",
    "repr-digest",
    "signature",
    "signature-input",
    "want-content-digest",
    "want-repr-digest",
];

/// The signature metadata parameters of RFC 9421 §2.3.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureParams {
    /// `created`: when the signature was made (Unix seconds).
    pub created: Option<i64>,
    /// `expires`: when it stops being valid (Unix seconds).
    pub expires: Option<i64>,
    /// `nonce`: a value the signer never repeats.
    pub nonce: Option<String>,
    /// `alg`: the algorithm the signer names.
    pub alg: Option<String>,
    /// `keyid`: which key signed.
    pub keyid: Option<String>,
    /// `tag`: an application-specific label.
    pub tag: Option<String>,
}

/// One signature from a request: its label, what it covers, its
/// parameters and the signature bytes.
#[derive(Clone, Debug)]
pub struct ParsedSignature {
    /// The dictionary key shared by `Signature-Input` and `Signature`.
    pub label: String,
    /// The covered components, as sent (with their parameters).
    pub components: InnerList,
    /// The metadata parameters, typed.
    pub params: SignatureParams,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

impl ParsedSignature {
    /// The plain names of the covered components (`@method`,
    /// `content-digest`, ...).
    pub fn component_names(&self) -> impl Iterator<Item = &str> {
        self.components
            .items
            .iter()
            .filter_map(|i| i.bare_item.as_string().map(|s| s.as_str()))
    }

    /// Whether a component with this name is covered (with or without
    /// parameters).
    pub fn covers(&self, name: &str) -> bool {
        self.component_names().any(|n| n == name)
    }
}

/// What a signature base is built from: the request as the server saw it.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The method.
    pub method: &'a Method,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The authority as sent (`Host` or the URI's), e.g. `example.com:8080`.
    pub authority: &'a str,
    /// The path; empty is read as `/`.
    pub path: &'a str,
    /// The query without `?`, if any.
    pub query: Option<&'a str>,
    /// The header fields.
    pub headers: &'a HeaderMap,
}

fn bad(msg: &'static str) -> AuthError {
    AuthError::bad_request(msg)
}

/// Every line of a field, trimmed and joined with `", "` (RFC 9421 §2.1);
/// `None` when absent. Non-visible-ASCII values and fields over
/// [`MAX_FIELD_LEN`] are refused with `400`.
pub fn combined_field(headers: &HeaderMap, name: &str) -> Result<Option<String>, AuthError> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let text = v
            .to_str()
            .map_err(|_| bad("Signed header fields must be ASCII."))?;
        let text = text.trim_matches(|c| c == ' ' || c == '\t');
        match out.as_mut() {
            Some(o) => {
                o.push_str(", ");
                o.push_str(text);
            }
            None => out = Some(text.to_owned()),
        }
        if out.as_ref().map_or(0, String::len) > MAX_FIELD_LEN {
            return Err(bad("Header field too large."));
        }
    }
    Ok(out)
}

fn parse_dictionary(text: &str, what: &'static str) -> Result<Dictionary, AuthError> {
    Parser::new(text)
        .parse::<Dictionary>()
        .map_err(|_| bad(what))
}

fn string_param(item: &BareItem, too_long: &'static str) -> Result<String, AuthError> {
    let s = item
        .as_string()
        .ok_or_else(|| bad("Signature parameters keyid, nonce, alg and tag must be strings."))?;
    if s.as_str().len() > MAX_PARAM_LEN {
        return Err(bad(too_long));
    }
    Ok(s.as_str().to_owned())
}

fn int_param(item: &BareItem) -> Result<i64, AuthError> {
    item.as_integer()
        .map(i64::from)
        .ok_or_else(|| bad("Signature parameters created and expires must be integers."))
}

/// Reads `Signature-Input` and `Signature`.
///
/// `Ok(None)` when the request has neither. The first signature named in
/// `Signature-Input` is the one returned (the verifier's choice, RFC 9421
/// §3.2); it must have a byte-sequence entry under the same label in
/// `Signature`. Malformed fields, a missing partner field, components that
/// are not lowercase strings, duplicated components, unknown or mistyped
/// metadata parameters are all `400`.
pub fn parse_signature(headers: &HeaderMap) -> Result<Option<ParsedSignature>, AuthError> {
    let input = combined_field(headers, "signature-input")?;
    let sig = combined_field(headers, "signature")?;
    let (input, sig) = match (input, sig) {
        (None, None) => return Ok(None),
        (None, Some(_)) => return Err(bad("Signature-Input header missing.")),
        (Some(_), None) => return Err(bad("Signature header missing.")),
        (Some(i), Some(s)) => (i, s),
    };
    let input = parse_dictionary(&input, "Malformed Signature-Input header.")?;
    let sig = parse_dictionary(&sig, "Malformed Signature header.")?;
    let Some((label, entry)) = input.iter().next() else {
        return Err(bad("Signature-Input header is empty."));
    };
    let ListEntry::InnerList(components) = entry else {
        return Err(bad("Signature-Input members must be inner lists."));
    };
    let signature = match sig.get(label) {
        Some(ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(b),
            ..
        })) => b.clone(),
        Some(_) => return Err(bad("Signature members must be byte sequences.")),
        None => return Err(bad("Signature-Input names a label missing from Signature.")),
    };
    if components.items.len() > MAX_COMPONENTS {
        return Err(bad("Too many covered components."));
    }
    let mut seen: Vec<String> = Vec::with_capacity(components.items.len());
    for item in &components.items {
        let Some(name) = item.bare_item.as_string() else {
            return Err(bad("Covered components must be strings."));
        };
        let name = name.as_str();
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("Covered component names must be lowercase."));
        }
        if name == "@signature-params" {
            return Err(bad("@signature-params cannot be covered."));
        }
        let id = serialize_identifier(item);
        if seen.contains(&id) {
            return Err(bad("Duplicated covered component."));
        }
        seen.push(id);
    }
    let mut params = SignatureParams::default();
    for (key, value) in &components.params {
        match key.as_str() {
            "created" => params.created = Some(int_param(value)?),
            "expires" => params.expires = Some(int_param(value)?),
            "nonce" => params.nonce = Some(string_param(value, "nonce too long.")?),
            "alg" => params.alg = Some(string_param(value, "alg too long.")?),
            "keyid" => params.keyid = Some(string_param(value, "keyid too long.")?),
            "tag" => params.tag = Some(string_param(value, "tag too long.")?),
            _ => return Err(bad("Unsupported signature parameter.")),
        }
    }
    Ok(Some(ParsedSignature {
        label: label.as_str().to_owned(),
        components: components.clone(),
        params,
        signature,
    }))
}

/// A component identifier as it appears in the base: the quoted name with
/// its parameters (`"@query-param";name="Pet"`).
pub fn serialize_identifier(item: &Item) -> String {
    let mut ser = ListSerializer::new();
    ser.members([&ListEntry::Item(item.clone())]);
    ser.finish().unwrap_or_default()
}

/// The `@signature-params` value: the inner list with its parameters.
pub fn serialize_params(list: &InnerList) -> String {
    let mut ser = ListSerializer::new();
    ser.members([&ListEntry::InnerList(list.clone())]);
    ser.finish().unwrap_or_else(|| "()".to_owned())
}

/// The signature base of RFC 9421 §2.5 for `sig` over `msg`.
pub fn signature_base(msg: &Message<'_>, sig: &ParsedSignature) -> Result<String, AuthError> {
    let mut base = String::new();
    for item in &sig.components.items {
        let value = component_value(msg, item)?;
        base.push_str(&serialize_identifier(item));
        base.push_str(": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&serialize_params(&sig.components));
    Ok(base)
}

fn missing(name: &str) -> AuthError {
    AuthError::failed(format!(
        "Covered component {name} is missing from the request."
    ))
}

fn no_params(item: &Item) -> Result<(), AuthError> {
    if item.params.is_empty() {
        Ok(())
    } else {
        Err(bad("Unsupported covered component parameter."))
    }
}

/// The value of one covered component.
fn component_value(msg: &Message<'_>, item: &Item) -> Result<String, AuthError> {
    let name = item
        .bare_item
        .as_string()
        .map(|s| s.as_str())
        .unwrap_or_default();
    let path = if msg.path.is_empty() { "/" } else { msg.path };
    match name {
        "@method" => {
            no_params(item)?;
            Ok(msg.method.as_str().to_owned())
        }
        "@target-uri" => {
            no_params(item)?;
            let mut uri = format!("{}://{}{}", msg.scheme, msg.authority, path);
            if let Some(q) = msg.query {
                uri.push('?');
                uri.push_str(q);
            }
            Ok(uri)
        }
        "@authority" => {
            no_params(item)?;
            Ok(normalized_authority(msg.scheme, msg.authority))
        }
        "@scheme" => {
            no_params(item)?;
            Ok(msg.scheme.to_owned())
        }
        "@request-target" => {
            no_params(item)?;
            Ok(match msg.query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_owned(),
            })
        }
        "@path" => {
            no_params(item)?;
            Ok(path.to_owned())
        }
        "@query" => {
            no_params(item)?;
            Ok(format!("?{}", msg.query.unwrap_or("")))
        }
        "@query-param" => query_param(msg, item),
        n if n.starts_with('@') => Err(bad("Unsupported derived component.")),
        field => field_value(msg.headers, field, item),
    }
}

/// Lowercase host, default port dropped (RFC 9421 §2.2.3).
pub fn normalized_authority(scheme: &str, authority: &str) -> String {
    let lower = authority.to_ascii_lowercase();
    let default = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    match lower.strip_suffix(default) {
        Some(host) if !host.is_empty() => host.to_owned(),
        _ => lower,
    }
}

/// Percent-encodes every byte outside the URI's unreserved set, as RFC
/// 9421 §2.2.8 re-encodes query parameter names and values.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query_param(msg: &Message<'_>, item: &Item) -> Result<String, AuthError> {
    if item.params.len() != 1 {
        return Err(bad("@query-param needs exactly one parameter, name."));
    }
    let Some(wanted) = item.params.get("name").and_then(|v| v.as_string()) else {
        return Err(bad("@query-param needs exactly one parameter, name."));
    };
    let query = msg.query.unwrap_or("");
    let mut found = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if percent_encode(&k) == wanted.as_str() {
            if found.is_some() {
                return Err(bad("A signed query parameter occurs more than once."));
            }
            found = Some(percent_encode(&v));
        }
    }
    found.ok_or_else(|| missing("@query-param"))
}

fn field_value(headers: &HeaderMap, name: &str, item: &Item) -> Result<String, AuthError> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(bad("Covered component is not a valid field name."));
    }
    let mut sf = false;
    let mut bs = false;
    let mut key = None;
    for (k, v) in &item.params {
        match (k.as_str(), v) {
            ("sf", BareItem::Boolean(true)) => sf = true,
            ("bs", BareItem::Boolean(true)) => bs = true,
            ("key", BareItem::String(s)) => key = Some(s.as_str().to_owned()),
            _ => return Err(bad("Unsupported covered component parameter.")),
        }
    }
    if bs && (sf || key.is_some()) {
        return Err(bad("bs cannot be combined with sf or key."));
    }
    if bs {
        let mut lines = Vec::new();
        for v in headers.get_all(name) {
            let trimmed = v.as_bytes().trim_ascii();
            lines.push(format!(":{}:", STANDARD.encode(trimmed)));
        }
        if lines.is_empty() {
            return Err(missing(name));
        }
        return Ok(lines.join(", "));
    }
    let value = combined_field(headers, name)?.ok_or_else(|| missing(name))?;
    if !sf && key.is_none() {
        return Ok(value);
    }
    if !DICTIONARY_FIELDS.contains(&name) {
        return Err(bad(
            "Structured serialization is supported only for known dictionary fields.",
        ));
    }
    let dict = parse_dictionary(&value, "A covered structured field is malformed.")?;
    match key {
        Some(key) => {
            let entry = dict
                .iter()
                .find(|(k, _)| k.as_str() == key)
                .map(|(_, v)| v)
                .ok_or_else(|| missing(name))?;
            let mut ser = ListSerializer::new();
            ser.members([entry]);
            Ok(ser.finish().unwrap_or_default())
        }
        None => {
            let mut ser = sfv::DictSerializer::new();
            ser.members(dict.iter());
            Ok(ser.finish().unwrap_or_default())
        }
    }
}

/// Checks a `Content-Digest` field (RFC 9530) against the body: every
/// `sha-256` and `sha-512` member must match and at least one must be
/// present (others are ignored). Malformed is `400`, a mismatch `401`.
pub fn check_content_digest(value: &str, body: &[u8]) -> Result<(), AuthError> {
    use sha2::{Digest, Sha256, Sha512};
    let dict = parse_dictionary(value, "Malformed Content-Digest header.")?;
    let mut checked = false;
    for (alg, entry) in &dict {
        let expected: Vec<u8> = match alg.as_str() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            _ => continue,
        };
        let ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(got),
            ..
        }) = entry
        else {
            return Err(bad("Malformed Content-Digest header."));
        };
        if !crate::secret::ct_eq(&expected, got) {
            return Err(AuthError::failed(
                "Content-Digest does not match the request body.",
            ));
        }
        checked = true;
    }
    if !checked {
        return Err(AuthError::failed(
            "Content-Digest must use sha-256 or sha-512.",
        ));
    }
    Ok(())
}
