//! The tower [`Layer`] and [`Service`] that enforce a [`Policy`].

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower::{Layer, Service};

use super::{LazyIdentity, Policy};
use crate::error::AuthError;
use crate::identity::AuthUser;
use crate::permission::Context;
use crate::scheme::csrf::FormToken;
use crate::scheme::{RequestBody, RequestHead};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Applies a [`Policy`] to a service; build it with [`Policy::layer`].
pub struct AuthLayer<U: AuthUser> {
    policy: Policy<U>,
}

impl<U: AuthUser> AuthLayer<U> {
    /// A layer for `policy`.
    pub fn new(policy: Policy<U>) -> Self {
        AuthLayer { policy }
    }
}

impl<U: AuthUser> Clone for AuthLayer<U> {
    fn clone(&self) -> Self {
        AuthLayer {
            policy: self.policy.clone(),
        }
    }
}

impl<U: AuthUser> fmt::Debug for AuthLayer<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S, U: AuthUser> Layer<S> for AuthLayer<U> {
    type Service = AuthService<S, U>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service [`AuthLayer`] produces.
pub struct AuthService<S, U: AuthUser> {
    inner: S,
    policy: Policy<U>,
}

impl<S: Clone, U: AuthUser> Clone for AuthService<S, U> {
    fn clone(&self) -> Self {
        AuthService {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S, U: AuthUser> fmt::Debug for AuthService<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, U, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S, U>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    U: AuthUser,
    ReqBody: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let policy = self.policy.clone();
        // The clone is the one that is not ready; keep the ready one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match prepare(&policy, req).await {
                Ok(req) => inner.call(req).await,
                Err(e) => Ok(policy.reject(e).map(ResBody::from)),
            }
        })
    }
}

/// Reads the CSRF form field if a scheme wants it, runs the permission and
/// the throttles, and leaves the lazy identity in the extensions.
async fn prepare<U, B>(policy: &Policy<U>, req: Request<B>) -> Result<Request<B>, AuthError>
where
    U: AuthUser,
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut req = req;
    let field = if form_kind(&req).is_some() {
        let head = RequestHead::from_request(&req);
        policy
            .inner
            .schemes
            .iter()
            .find_map(|s| s.form_field(&head).map(str::to_owned))
    } else {
        None
    };
    if let Some(field) = field {
        req = read_form_token(req, &field, policy.inner.form_limit).await?;
    }
    let wants_body = {
        let head = RequestHead::from_request(&req);
        policy.inner.schemes.iter().any(|s| s.wants_body(&head))
    };
    if wants_body {
        req = read_body(req, policy.inner.form_limit).await?;
    }
    let lazy = LazyIdentity::new(policy.clone());
    {
        let ctx = Context::new(RequestHead::from_request(&req), &lazy);
        policy.check(&ctx).await?;
        policy.check_throttles(&ctx).await?;
    }
    req.extensions_mut().insert(lazy);
    Ok(req)
}

enum FormKind {
    UrlEncoded,
    Multipart(String),
}

fn form_kind<B>(req: &Request<B>) -> Option<FormKind> {
    let ct = req.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let mime: mime::Mime = ct.parse().ok()?;
    match (mime.type_(), mime.subtype()) {
        (mime::APPLICATION, mime::WWW_FORM_URLENCODED) => Some(FormKind::UrlEncoded),
        (mime::MULTIPART, mime::FORM_DATA) => mime
            .get_param(mime::BOUNDARY)
            .map(|b| FormKind::Multipart(b.to_string())),
        _ => None,
    }
}

async fn read_form_token<B>(
    req: Request<B>,
    field: &str,
    limit: usize,
) -> Result<Request<B>, AuthError>
where
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let kind = form_kind(&req);
    let (mut parts, body) = req.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(AuthError::PayloadTooLarge);
            }
            // A broken body: no token can be read from it.
            Bytes::new()
        }
    };
    let token = match kind {
        Some(FormKind::UrlEncoded) => form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.into_owned()),
        Some(FormKind::Multipart(boundary)) => {
            multipart_field(bytes.clone(), boundary, field).await
        }
        None => None,
    };
    if let Some(t) = token {
        parts.extensions.insert(FormToken(t));
    }
    Ok(Request::from_parts(parts, B::from(bytes)))
}

/// Reads the whole body (up to `limit`) for a scheme that signs it, and
/// leaves a copy in the extensions as a [`RequestBody`].
async fn read_body<B>(req: Request<B>, limit: usize) -> Result<Request<B>, AuthError>
where
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(AuthError::PayloadTooLarge);
            }
            return Err(AuthError::bad_request("Malformed request body."));
        }
    };
    parts.extensions.insert(RequestBody(bytes.clone()));
    Ok(Request::from_parts(parts, B::from(bytes)))
}

async fn multipart_field(body: Bytes, boundary: String, name: &str) -> Option<String> {
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = mp.next_field().await {
        if field.name() == Some(name) {
            return field.text().await.ok();
        }
    }
    None
}
