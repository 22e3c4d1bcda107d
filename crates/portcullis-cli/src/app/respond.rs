//! Responses every route shares: DRF-style JSON errors, the 404 and 405
//! answers, the body-size guard, and the safety net that turns any error
//! response without a JSON body into `{"detail": ...}`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::{Layer, Service};

/// How long a handler waits for a request body before answering `408`.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Django's `DATA_UPLOAD_MAX_MEMORY_SIZE` wording, as the core's layer says it.
pub(crate) const TOO_LARGE: &str = "Request body too large.";

/// The methods a protected route answers.
pub(crate) const PROTECTED_METHODS: &str = "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE";

/// A JSON response (a typed body serialises without building a `Value`).
pub(crate) fn json(status: StatusCode, body: impl serde::Serialize) -> Response {
    json_bytes(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// A JSON response from a body written already (see [`push_json_str`]).
pub(crate) fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut res = Response::new(Body::from(bytes));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// Appends `s` as a JSON string, exactly as serde_json writes it. The
/// bodies of the protected routes are a few short strings written on every
/// authenticated request; most need no escape, and those are copied whole
/// after one pass that only looks for what needs escaping.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing a str to a Vec cannot fail");
    }
}

/// Whether serde_json would escape a byte of `b`: it escapes the control
/// characters, `"` and `\`, and nothing else (it writes other characters
/// as UTF-8).
fn needs_escape(b: &[u8]) -> bool {
    // No early exit and no branch per byte: for the short strings written
    // here, cheaper than `any` (callgrind: some 350 instructions less a
    // Token request).
    b.iter().fold(false, |any, &x| {
        any | (x < 0x20) | (x == b'"') | (x == b'\\')
    })
}

/// Appends `s` as a JSON string, or `null`.
pub(crate) fn push_json_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// `{"detail": message}` with a status.
pub(crate) fn detail(status: StatusCode, message: &str) -> Response {
    json(status, json!({ "detail": message }))
}

/// DRF's `NotFound`: `404 {"detail": "Not found."}`.
pub(crate) async fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not found.")
}

/// DRF's `MethodNotAllowed`: `405 {"detail": "Method \"X\" not allowed."}`
/// with the route's `Allow` header.
pub(crate) fn method_not_allowed(method: &Method, allow: &'static str) -> Response {
    let mut res = detail(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method \"{}\" not allowed.", method.as_str()),
    );
    res.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    res
}

/// A handler answering 405 for every method, for a method router's
/// fallback.
pub(crate) fn not_allowed_handler(
    allow: &'static str,
) -> impl Fn(Method) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |method: Method| std::future::ready(method_not_allowed(&method, allow))
}

/// Reads the whole body, up to the limit [`Respond`] set, within
/// [`BODY_TIMEOUT`]; failures are answered as JSON (`413`, `408`, `400`).
pub(crate) async fn read_body(req: Request) -> Result<Bytes, Response> {
    match tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, &())).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(detail(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE))
        }
        Ok(Err(_)) => Err(detail(
            StatusCode::BAD_REQUEST,
            "Malformed request. The request body could not be read.",
        )),
        Err(_) => Err(detail(
            StatusCode::REQUEST_TIMEOUT,
            "The request body was not received in time.",
        )),
    }
}

/// The app's outermost rules, in one layer (one service to clone per
/// request rather than one per rule):
///
/// - a body whose declared `Content-Length` exceeds the limit is refused
///   with `413` before any handler or scheme reads it (bodies without a
///   length are limited where they are read);
/// - the safety net: an error response (4xx or 5xx) that does not already
///   carry JSON gets a DRF-style `{"detail": ...}` body, whatever produced
///   it (an axum rejection, a tower layer, a method router's default).
///   Headers such as `Allow` and `WWW-Authenticate` are kept;
/// - a request that has a body gets the limit as axum's `DefaultBodyLimit`,
///   for [`read_body`]. One without (most `GET`s) is left as it is: every
///   extension costs an allocation, and a fourth one (after the client
///   address `serve` leaves, axum's `UrlParams` and the authentication
///   layer's identity) makes the request's extension map grow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RespondLayer {
    pub(crate) limit: usize,
}

impl<S> Layer<S> for RespondLayer {
    type Service = Respond<S>;

    fn layer(&self, inner: S) -> Respond<S> {
        Respond {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`RespondLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Respond<S> {
    inner: S,
    limit: usize,
}

impl<S> Service<Request> for Respond<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RespondFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limit as u64) {
            return RespondFuture {
                state: RespondState::Refused {
                    response: Some(detail(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE)),
                },
            };
        }
        if !http_body::Body::is_end_stream(req.body()) {
            DefaultBodyLimit::max(self.limit).apply(&mut req);
        }
        let method = req.method().clone();
        RespondFuture {
            state: RespondState::Inner {
                future: self.inner.call(req),
                method: Some(method),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Respond`].
    pub(crate) struct RespondFuture<F> {
        #[pin]
        state: RespondState<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = RespondProj]
    enum RespondState<F> {
        Inner { #[pin] future: F, method: Option<Method> },
        Refused { response: Option<Response> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for RespondFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            RespondProj::Inner { future, method } => {
                let Ok(res) = std::task::ready!(future.poll(cx));
                let method = method
                    .take()
                    .expect("RespondFuture polled after it completed");
                Poll::Ready(Ok(as_json_error(&method, res)))
            }
            RespondProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("RespondFuture polled after it completed"))),
        }
    }
}

/// An error response that is not JSON, made a `{"detail": ...}` one.
fn as_json_error(method: &Method, res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return res;
    }
    let message = match status {
        StatusCode::BAD_REQUEST => "Malformed request.".to_owned(),
        StatusCode::NOT_FOUND => "Not found.".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => format!("Method \"{}\" not allowed.", method.as_str()),
        StatusCode::PAYLOAD_TOO_LARGE => TOO_LARGE.to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type in request.".to_owned(),
        s if s.is_server_error() => "A server error occurred.".to_owned(),
        s => s.canonical_reason().unwrap_or("Bad request.").to_owned(),
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    let fresh = detail(status, &message);
    let (fresh_parts, body) = fresh.into_parts();
    parts
        .headers
        .insert(CONTENT_TYPE, fresh_parts.headers[CONTENT_TYPE].clone());
    Response::from_parts(parts, body).into_response()
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }

    #[test]
    fn method_not_allowed_names_the_method() {
        let res = method_not_allowed(&Method::from_bytes(b"BREW").unwrap(), "POST, OPTIONS");
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[ALLOW], "POST, OPTIONS");
    }
}
