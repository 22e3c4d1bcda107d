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
use crate::scheme::{RequestBody, RequestHead, DUPLICATE_AUTHORIZATION};
use crate::throttle::{finish_throttles, run_throttles_now, Tally};

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
    type Future = AuthFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Most requests are decided without waiting on anything (a route
        // that allows anyone, cached credentials, in-memory throttles): for
        // those the inner service, which `poll_ready` made ready, is called
        // at once, with no clone of it and no boxed future around it.
        let mut prepared = match prepare_now(&self.policy, req) {
            Now::Ready(req) => return AuthFuture::inner(self.inner.call(req)),
            Now::Rejected(e) => {
                return AuthFuture::rejected(self.policy.reject(e).map(ResBody::from))
            }
            Now::Check(prepared) => prepared,
        };
        let waker = std::task::Waker::noop();
        match prepared.as_mut().poll(&mut TaskContext::from_waker(waker)) {
            Poll::Ready(Ok(req)) => AuthFuture::inner(self.inner.call(req)),
            Poll::Ready(Err(e)) => AuthFuture::rejected(self.policy.reject(e).map(ResBody::from)),
            Poll::Pending => {
                // Waiting on a store or a body: polled again with the
                // task's real waker. The clone is the one that is not
                // ready; keep the ready one.
                let policy = self.policy.clone();
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                AuthFuture::waiting(Box::pin(async move {
                    match prepared.await {
                        Ok(req) => inner.call(req).await,
                        Err(e) => Ok(policy.reject(e).map(ResBody::from)),
                    }
                }))
            }
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project_lite::pin_project! {
    /// The future of [`AuthService`]: the inner service's own future when
    /// the request was decided at once, else a boxed one that finishes the
    /// checks first.
    pub struct AuthFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<B>> },
        Waiting { future: BoxFuture<Result<Response<B>, E>> },
    }
}

impl<F, B, E> AuthFuture<F, B, E> {
    fn inner(future: F) -> Self {
        AuthFuture {
            state: State::Inner { future },
        }
    }

    fn rejected(response: Response<B>) -> Self {
        AuthFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    fn waiting(future: BoxFuture<Result<Response<B>, E>>) -> Self {
        AuthFuture {
            state: State::Waiting { future },
        }
    }
}

impl<F, B, E> fmt::Debug for AuthFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for AuthFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("AuthFuture polled after it completed"))),
            StateProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}

enum Now<B> {
    /// Checked: the request goes on.
    Ready(Request<B>),
    /// Checked: the request is refused.
    Rejected(AuthError),
    /// The checks to run.
    Check(BoxFuture<Result<Request<B>, AuthError>>),
}

/// Decides at once what can be decided without waiting:
///
/// - a route with a permission that allows anyone, no throttles and no
///   body to read lets the request through; the identity is resolved
///   lazily, by the handler (or known already: anonymous when no scheme
///   sees credentials);
/// - on such a route with throttles, a request that no scheme sees
///   credentials in is anonymous, so throttles that keep their counts in
///   memory answer at once;
/// - otherwise, when every scheme answers from its caches
///   ([`Scheme::authenticate_now`](crate::Scheme::authenticate_now)), the
///   permission and the throttles are asked the same way, and the request
///   is decided at once if they answer.
///
/// Whatever cannot be decided at once goes on in a boxed future, from
/// where this stopped.
fn prepare_now<U, B>(policy: &Policy<U>, mut req: Request<B>) -> Now<B>
where
    U: AuthUser,
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let inner = &policy.inner;
    if RequestHead::from_request(&req).has_duplicate_authorization()
        && inner.schemes.iter().any(|s| s.reads_authorization())
    {
        return Now::Rejected(AuthError::failed(DUPLICATE_AUTHORIZATION));
    }
    if needs_body(policy, &req) {
        return Now::Check(Box::pin(prepare(policy.clone(), req)));
    }
    let head = RequestHead::from_request(&req);
    let anonymous = inner.allow_any && !inner.schemes.iter().any(|s| s.sees_credentials(&head));
    if inner.allow_any && inner.throttles.is_empty() {
        // Anonymous is known now; anything else is left to the handler.
        let lazy = if anonymous {
            LazyIdentity::anonymous(policy.clone())
        } else {
            LazyIdentity::new(policy.clone())
        };
        req.extensions_mut().insert(lazy);
        return Now::Ready(req);
    }
    let lazy = if anonymous {
        LazyIdentity::anonymous(policy.clone())
    } else {
        match policy.authenticate_now(&head) {
            Some(result) => LazyIdentity::settled(policy.clone(), result),
            None => return Now::Check(Box::pin(check(policy.clone(), req, None))),
        }
    };
    // The identity is known: the permission and the throttles, as far as
    // they answer without waiting.
    let ctx = Context::new(head, &lazy);
    match policy.check_now(&ctx) {
        Some(Ok(())) => {}
        Some(Err(e)) => return Now::Rejected(e),
        None => return Now::Check(Box::pin(check(policy.clone(), req, Some(lazy)))),
    }
    let mut tally = Tally::default();
    match run_throttles_now(&inner.throttles, &ctx, &mut tally) {
        Some(Ok(())) => {
            req.extensions_mut().insert(lazy);
            Now::Ready(req)
        }
        Some(Err(e)) => Now::Rejected(e),
        None => Now::Check(Box::pin(finish_check(policy.clone(), req, lazy, tally))),
    }
}

/// The throttles that [`prepare_now`] could not run without waiting.
async fn finish_check<U: AuthUser, B>(
    policy: Policy<U>,
    mut req: Request<B>,
    lazy: LazyIdentity<U>,
    tally: Tally,
) -> Result<Request<B>, AuthError> {
    {
        let ctx = Context::new(RequestHead::from_request(&req), &lazy);
        finish_throttles(&policy.inner.throttles, &ctx, tally).await?;
    }
    req.extensions_mut().insert(lazy);
    Ok(req)
}

/// Whether a scheme wants the body, or a form field from it, before
/// authentication.
fn needs_body<U: AuthUser, B>(policy: &Policy<U>, req: &Request<B>) -> bool {
    let head = RequestHead::from_request(req);
    let schemes = &policy.inner.schemes;
    schemes.iter().any(|s| s.wants_body(&head))
        || (req.headers().contains_key(CONTENT_TYPE)
            && schemes.iter().any(|s| s.form_field(&head).is_some()))
}

/// Reads the CSRF form field if a scheme wants it, runs the permission and
/// the throttles, and leaves the lazy identity in the extensions.
async fn prepare<U, B>(policy: Policy<U>, req: Request<B>) -> Result<Request<B>, AuthError>
where
    U: AuthUser,
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut req = req;
    let wants_body = {
        let head = RequestHead::from_request(&req);
        policy.inner.schemes.iter().any(|s| s.wants_body(&head))
    };
    if wants_body {
        req = read_body(req, policy.inner.form_limit).await?;
    }
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
    check(policy, req, None).await
}

/// Runs the permission and the throttles, and leaves the lazy identity in
/// the extensions: `lazy`, when the identity is known already, else a new
/// one.
async fn check<U: AuthUser, B>(
    policy: Policy<U>,
    mut req: Request<B>,
    lazy: Option<LazyIdentity<U>>,
) -> Result<Request<B>, AuthError> {
    let lazy = lazy.unwrap_or_else(|| LazyIdentity::new(policy.clone()));
    {
        let ctx = Context::new(RequestHead::from_request(&req), &lazy);
        policy.check(&ctx).await?;
        policy.check_throttles(&ctx).await?;
    }
    req.extensions_mut().insert(lazy);
    Ok(req)
}

/// Reads the whole body (up to `limit`) for a scheme that signs it, and
/// leaves it in the extensions as a [`RequestBody`].
async fn read_body<B>(req: Request<B>, limit: usize) -> Result<Request<B>, AuthError>
where
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let bytes = collect_limited(body, limit).await?;
    parts.extensions.insert(RequestBody(bytes.clone()));
    Ok(Request::from_parts(parts, B::from(bytes)))
}

/// The body up to `limit` bytes; larger is `413`, a broken body is empty.
async fn collect_limited<B>(body: B, limit: usize) -> Result<Bytes, AuthError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(AuthError::PayloadTooLarge);
            }
            Ok(Bytes::new())
        }
    }
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
    // A broken body reads as empty: no token can be read from it.
    let bytes = collect_limited(body, limit).await?;
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
