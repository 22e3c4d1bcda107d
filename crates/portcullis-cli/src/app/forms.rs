//! Request bodies as DRF's parsers read them: JSON, URL-encoded forms and
//! multipart forms, with DRF's error messages.

use axum::body::{Body, Bytes};
use axum::http::header::{HeaderMap, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::respond::detail;

/// The kinds of body the app understands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    UrlEncoded,
    /// `multipart/form-data`, with its boundary if it has one.
    Multipart(Option<String>),
    /// Anything else, or no `Content-Type` (the raw header, lossy).
    Other(String),
}

/// The body kind named by the request's `Content-Type`.
pub(crate) fn kind(headers: &HeaderMap) -> Kind {
    let Some(raw) = headers.get(CONTENT_TYPE) else {
        return Kind::Other(String::new());
    };
    let text = String::from_utf8_lossy(raw.as_bytes()).into_owned();
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Kind::Json,
        "application/x-www-form-urlencoded" => Kind::UrlEncoded,
        "multipart/form-data" => Kind::Multipart(multer::parse_boundary(&text).ok()),
        _ => Kind::Other(text),
    }
}

/// DRF's `request.data` for a parser list of JSON, form and multipart:
/// an empty body is an empty object; a body of another type is `415`;
/// a malformed body is `400` with DRF's parse-error wording.
pub(crate) async fn data(headers: &HeaderMap, body: Bytes) -> Result<Value, Response> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match kind(headers) {
        Kind::Json => serde_json::from_slice(&body)
            .map_err(|e| detail(StatusCode::BAD_REQUEST, &format!("JSON parse error - {e}"))),
        Kind::UrlEncoded => Ok(Value::Object(urlencoded(&body))),
        Kind::Multipart(boundary) => multipart(body, boundary).await.map(Value::Object),
        Kind::Other(ct) => Err(detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("Unsupported media type \"{ct}\" in request."),
        )),
    }
}

/// Django's `request.POST`: the fields of a URL-encoded or multipart form,
/// empty for any other body (so a form view sees missing fields, not an
/// error). A malformed multipart body is `400`.
pub(crate) async fn form(headers: &HeaderMap, body: Bytes) -> Result<Map<String, Value>, Response> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match kind(headers) {
        Kind::UrlEncoded => Ok(urlencoded(&body)),
        Kind::Multipart(boundary) => multipart(body, boundary).await,
        Kind::Json | Kind::Other(_) => Ok(Map::new()),
    }
}

/// A string field of a form, if present.
pub(crate) fn text<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields.get(name).and_then(Value::as_str)
}

/// URL-encoded pairs; the last value of a repeated name wins, as Django's
/// `QueryDict.__getitem__`. Invalid UTF-8 is replaced, as Django decodes.
pub(crate) fn urlencoded(body: &[u8]) -> Map<String, Value> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

/// The text fields of a multipart body; file parts (those with a file
/// name) are not form data and are skipped, as Django puts them in
/// `request.FILES`.
async fn multipart(body: Bytes, boundary: Option<String>) -> Result<Map<String, Value>, Response> {
    let parse_error = |e: &dyn std::fmt::Display| {
        detail(
            StatusCode::BAD_REQUEST,
            &format!("Multipart form parse error - {e}"),
        )
    };
    let Some(boundary) = boundary else {
        return Err(parse_error(&"Invalid boundary in multipart: None"));
    };
    let mut parts = multer::Multipart::new(Body::from(body).into_data_stream(), boundary);
    let mut out = Map::new();
    loop {
        match parts.next_field().await {
            Ok(None) => return Ok(out),
            Ok(Some(field)) => {
                let name = field.name().map(str::to_owned);
                let is_file = field.file_name().is_some();
                let value = field.text().await.map_err(|e| parse_error(&e))?;
                if let (Some(name), false) = (name, is_file) {
                    out.insert(name, Value::String(value));
                }
            }
            Err(e) => return Err(parse_error(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn kinds() {
        assert_eq!(
            kind(&headers("application/json; charset=utf-8")),
            Kind::Json
        );
        assert_eq!(
            kind(&headers("application/x-www-form-urlencoded")),
            Kind::UrlEncoded
        );
        assert_eq!(
            kind(&headers("multipart/form-data; boundary=xyz")),
            Kind::Multipart(Some("xyz".into()))
        );
        assert_eq!(kind(&HeaderMap::new()), Kind::Other(String::new()));
        assert_eq!(
            kind(&headers("text/plain")),
            Kind::Other("text/plain".into())
        );
    }

    #[test]
    fn last_value_wins() {
        let m = urlencoded(b"a=1&a=2&b=%FF");
        assert_eq!(m["a"], "2");
        assert_eq!(m["b"], "\u{FFFD}");
    }

    #[tokio::test]
    async fn multipart_text_fields() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nada\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n\r\nfile\r\n--b--\r\n";
        let m = form(
            &headers("multipart/form-data; boundary=b"),
            Bytes::from(body),
        )
        .await
        .unwrap();
        assert_eq!(m.get("username"), Some(&Value::from("ada")));
        assert!(m.get("f").is_none());
    }

    #[tokio::test]
    async fn bad_json_is_400_and_unknown_types_415() {
        let r = data(&headers("application/json"), Bytes::from_static(b"{"))
            .await
            .unwrap_err();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = data(&headers("text/plain"), Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
