//! [`Policy`]: a route's schemes, permission and anonymous values (DRF's
//! `authentication_classes`, `permission_classes` and the
//! `UNAUTHENTICATED_*` settings), and the tower [`AuthLayer`] it builds.
//!
//! # Global defaults, per-route overrides
//!
//! Build one `Policy` with the project's defaults (DRF's `REST_FRAMEWORK`
//! settings) and derive each route's from it; a route's policy replaces the
//! defaults rather than adding to them, as a DRF view's attributes do:
//!
//! ```
//! use std::sync::Arc;
//! use axum::{routing::get, Router};
//! use portcullis::scheme::token::{TokenAuth, Tokens};
//! use portcullis::store::MemoryStore;
//! use portcullis::{IsAdminUser, IsAuthenticated, Policy, SecretKey, User};
//!
//! let tokens = Tokens::new(MemoryStore::new(), SecretKey::new([9u8; 32]).unwrap());
//! let defaults = Policy::<User>::new()
//!     .scheme(TokenAuth::new(tokens))
//!     .permission(IsAuthenticated);
//!
//! let app: Router = Router::new()
//!     .route("/items", get(|| async { "items" }).layer(defaults.layer()))
//!     .route("/admin", get(|| async { "admin" }).layer(defaults.clone().permission(IsAdminUser).layer()));
//! ```
//!
//! Apply a policy to a group of routes with `Router::route_layer`.
//!
//! # What the layer does
//!
//! 1. On an unsafe request with a form body, when a scheme asks for it (the
//!    session scheme's CSRF field), it reads the body up to the policy's
//!    limit and hands it on intact. When a scheme signs the body (Digest's
//!    `auth-int`, Hawk's payload hash; [`Scheme::wants_body`]), it reads
//!    the whole body the same way and leaves a copy in the extensions as a
//!    [`RequestBody`](crate::scheme::RequestBody).
//! 2. It runs the permission, which resolves the identity only if it needs
//!    it; a denial is answered DRF's way (401 with the first scheme's
//!    challenge, 403 without one, 403 for an authenticated user).
//! 3. If the route has [throttles](crate::throttle), it resolves the
//!    identity (DRF authenticates before it throttles) and runs all of
//!    them, as DRF's `initial()` does after the permissions; if any
//!    refuses, it answers `429` with `Retry-After` set to the longest wait.
//! 4. It leaves a [`LazyIdentity`] in the request extensions for the
//!    extractors; the identity is resolved at most once per request.
//!
//! A request decided without waiting on anything (a permission that allows
//! anyone, credentials found in a cache, throttles in memory) goes to the
//! inner service at once, through its own future; only a request that must
//! wait (a database read, a body) gets a boxed future and a clone of the
//! inner service. With axum, prefer wrapping each handler's service
//! (`get_service(policy.layer().layer(handler.with_state(state)))`) to
//! layering a `MethodRouter` or a `Router`: axum boxes every router layer
//! and clones it on every request, while a wrapped handler costs neither.
//! (`get(handler.layer(policy.layer()))` works as well, at the cost of the
//! `Oneshot` and the mapping future that axum's `Handler::layer` adds.)

use std::any::TypeId;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response};
use tokio::sync::OnceCell;

use crate::error::{AuthError, Rejection, PERMISSION_DENIED};
use crate::identity::{Anonymous, AuthUser, Identity};
use crate::permission::{AllowAny, Context, Permission};
use crate::scheme::{RequestHead, Scheme};
use crate::throttle::{self, Throttle};

mod service;

pub use service::{AuthLayer, AuthService};

/// Renders a rejection; see [`Policy::on_rejection`].
pub type RejectionHandler = Arc<dyn Fn(&Rejection) -> Response<Bytes> + Send + Sync>;

/// Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`: 2.5 MiB.
pub const DEFAULT_FORM_LIMIT: usize = 2_621_440;

pub(crate) struct PolicyInner<U: AuthUser> {
    pub(crate) schemes: Vec<Arc<dyn Scheme<U>>>,
    pub(crate) permission: Arc<dyn Permission<U>>,
    /// The permission is [`AllowAny`]: nothing to run.
    pub(crate) allow_any: bool,
    pub(crate) throttles: Vec<Arc<dyn Throttle<U>>>,
    pub(crate) anonymous: Anonymous,
    /// `Identity::Anonymous(anonymous)`, kept in step with it by
    /// [`Policy::edit`]: what every request that no scheme authenticates
    /// resolves to (shared by the layer, so that such a request allocates
    /// no identity; cloned by `authenticate`).
    pub(crate) anonymous_identity: Identity<U>,
    pub(crate) form_limit: usize,
    pub(crate) on_rejection: RejectionHandler,
}

impl<U: AuthUser> Clone for PolicyInner<U> {
    fn clone(&self) -> Self {
        PolicyInner {
            schemes: self.schemes.clone(),
            permission: self.permission.clone(),
            allow_any: self.allow_any,
            throttles: self.throttles.clone(),
            anonymous: self.anonymous.clone(),
            anonymous_identity: self.anonymous_identity.clone(),
            form_limit: self.form_limit,
            on_rejection: self.on_rejection.clone(),
        }
    }
}

/// A route's authentication and permission settings; cheap to clone.
pub struct Policy<U: AuthUser> {
    pub(crate) inner: Arc<PolicyInner<U>>,
}

impl<U: AuthUser> Clone for Policy<U> {
    fn clone(&self) -> Self {
        Policy {
            inner: self.inner.clone(),
        }
    }
}

impl<U: AuthUser> fmt::Debug for Policy<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field(
                "schemes",
                &self
                    .inner
                    .schemes
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>(),
            )
            .field("throttles", &self.inner.throttles.len())
            .field("anonymous", &self.inner.anonymous)
            .field("form_limit", &self.inner.form_limit)
            .finish_non_exhaustive()
    }
}

impl<U: AuthUser> Default for Policy<U> {
    fn default() -> Self {
        Self::new()
    }
}

impl<U: AuthUser> Policy<U> {
    /// No schemes, [`AllowAny`], anonymous user `"AnonymousUser"`: DRF's
    /// settings with empty authentication classes.
    pub fn new() -> Self {
        Policy {
            inner: Arc::new(PolicyInner {
                schemes: Vec::new(),
                permission: Arc::new(AllowAny),
                allow_any: true,
                throttles: Vec::new(),
                anonymous: Anonymous::default(),
                anonymous_identity: Identity::Anonymous(Anonymous::default()),
                form_limit: DEFAULT_FORM_LIMIT,
                on_rejection: Arc::new(Rejection::to_response),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut PolicyInner<U>)) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        f(inner);
        inner.anonymous_identity = Identity::Anonymous(inner.anonymous.clone());
        self
    }

    /// Appends a scheme; schemes run in the order they were added.
    pub fn scheme(self, scheme: impl Scheme<U>) -> Self {
        self.edit(|p| p.schemes.push(Arc::new(scheme)))
    }

    /// Replaces the list of schemes (a route's `authentication_classes`).
    pub fn schemes(self, schemes: Vec<Arc<dyn Scheme<U>>>) -> Self {
        self.edit(|p| p.schemes = schemes)
    }

    /// The schemes, in order.
    pub fn scheme_list(&self) -> &[Arc<dyn Scheme<U>>] {
        &self.inner.schemes
    }

    /// Replaces the permission (a route's `permission_classes`; combine
    /// several with [`and`](crate::PermissionExt::and)).
    pub fn permission<P: Permission<U>>(self, permission: P) -> Self {
        let allow_any = TypeId::of::<P>() == TypeId::of::<AllowAny>();
        self.edit(|p| {
            p.permission = Arc::new(permission);
            p.allow_any = allow_any;
        })
    }

    /// Appends a throttle (DRF's `throttle_classes`); every throttle runs
    /// after the permission check.
    pub fn throttle(self, throttle: impl Throttle<U>) -> Self {
        self.edit(|p| p.throttles.push(Arc::new(throttle)))
    }

    /// Replaces the list of throttles (a route's `throttle_classes`).
    pub fn throttles(self, throttles: Vec<Arc<dyn Throttle<U>>>) -> Self {
        self.edit(|p| p.throttles = throttles)
    }

    /// The throttles, in order.
    pub fn throttle_list(&self) -> &[Arc<dyn Throttle<U>>] {
        &self.inner.throttles
    }

    /// The name of the unauthenticated user (DRF's `UNAUTHENTICATED_USER`,
    /// default `"AnonymousUser"`; `None` for none).
    pub fn unauthenticated_user(self, name: Option<&str>) -> Self {
        self.edit(|p| p.anonymous.name = name.map(Arc::from))
    }

    /// The unauthenticated token (DRF's `UNAUTHENTICATED_TOKEN`, default
    /// `None`).
    pub fn unauthenticated_token(self, token: Option<&str>) -> Self {
        self.edit(|p| p.anonymous.token = token.map(Arc::from))
    }

    /// The largest body read for a CSRF field or for a scheme that signs
    /// the body (default 2.5 MiB, Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`);
    /// larger bodies get `413`.
    ///
    /// # Panics
    ///
    /// If `bytes` is zero.
    pub fn form_limit(self, bytes: usize) -> Self {
        assert!(bytes > 0, "the form limit must be positive");
        self.edit(|p| p.form_limit = bytes)
    }

    /// Replaces how rejections are rendered (default: DRF's JSON).
    pub fn on_rejection(
        self,
        f: impl Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|p| p.on_rejection = Arc::new(f))
    }

    /// The `WWW-Authenticate` challenge of the first scheme.
    pub fn challenge(&self) -> Option<HeaderValue> {
        self.inner.schemes.first().and_then(|s| s.challenge())
    }

    /// Renders an error for this route.
    pub fn reject(&self, error: AuthError) -> Response<Bytes> {
        let r = Rejection {
            error,
            challenge: self.challenge(),
        };
        (self.inner.on_rejection)(&r)
    }

    /// The tower layer.
    pub fn layer(&self) -> AuthLayer<U> {
        AuthLayer::new(self.clone())
    }

    /// Runs the schemes in order (DRF's `Request._authenticate`).
    pub async fn authenticate(&self, head: &RequestHead<'_>) -> Result<Identity<U>, AuthError> {
        for scheme in &self.inner.schemes {
            if !scheme.sees_credentials(head) {
                continue;
            }
            // Through the `dyn`, not `Arc`'s impl: one boxed future, not two.
            match (**scheme).authenticate(head).await {
                Ok(None) => continue,
                Ok(Some(a)) => return Ok(a.into()),
                Err(e) => return Err(failed(&**scheme, e)),
            }
        }
        Ok(self.inner.anonymous_identity.clone())
    }

    /// [`authenticate`](Self::authenticate) answered without waiting, when
    /// every scheme it comes to can answer at once
    /// ([`Scheme::authenticate_now`]); `None` otherwise.
    pub(crate) fn authenticate_now(
        &self,
        head: &RequestHead<'_>,
    ) -> Option<Result<Identity<U>, AuthError>> {
        for scheme in &self.inner.schemes {
            // The scheme's own answer first: one that can answer has looked
            // for its credentials already, and saying "none" is what
            // `sees_credentials` would have promised. Only a scheme that
            // cannot answer at once is asked whether it would run at all.
            match scheme.authenticate_now(head) {
                Some(Ok(None)) => continue,
                Some(Ok(Some(a))) => return Some(Ok(a.into())),
                Some(Err(e)) => return Some(Err(failed(&**scheme, e))),
                None if !scheme.sees_credentials(head) => continue,
                None => return None,
            }
        }
        Some(Ok(self.inner.anonymous_identity.clone()))
    }

    /// Runs the permission (DRF's `check_permissions` and
    /// `permission_denied`).
    pub async fn check(&self, ctx: &Context<'_, U>) -> Result<(), AuthError> {
        if self.inner.allow_any || (*self.inner.permission).has_permission(ctx).await? {
            return Ok(());
        }
        Err(self.denial(ctx.identity().await))
    }

    /// [`check`](Self::check) answered without waiting, when the
    /// permission can ([`Permission::has_permission_now`]); `None`
    /// otherwise.
    pub(crate) fn check_now(&self, ctx: &Context<'_, U>) -> Option<Result<(), AuthError>> {
        if self.inner.allow_any {
            return Some(Ok(()));
        }
        match self.inner.permission.has_permission_now(ctx)? {
            Ok(true) => Some(Ok(())),
            Ok(false) => Some(Err(self.denial(ctx.resolved_identity()?))),
            Err(e) => Some(Err(e)),
        }
    }

    /// DRF's `permission_denied` for the resolved identity:
    /// `NotAuthenticated` when the route has schemes and none authenticated
    /// the request, else `PermissionDenied` with the permission's message.
    fn denial(&self, identity: Result<&Identity<U>, AuthError>) -> AuthError {
        match identity {
            Err(e) => e,
            Ok(id) if !self.inner.schemes.is_empty() && !id.is_authenticated() => {
                AuthError::NotAuthenticated
            }
            Ok(_) => AuthError::PermissionDenied(
                self.inner
                    .permission
                    .message()
                    .unwrap_or(Cow::Borrowed(PERMISSION_DENIED)),
            ),
        }
    }

    /// Runs the throttles (DRF's `check_throttles`): every one of them,
    /// then [`AuthError::Throttled`] with the longest wait if any refused.
    /// The identity is resolved first, as DRF authenticates in `initial()`
    /// before it throttles.
    pub async fn check_throttles(&self, ctx: &Context<'_, U>) -> Result<(), AuthError> {
        throttle::check_throttles(&self.inner.throttles, ctx).await
    }

    /// Runs the object-level permission for `object`.
    pub async fn check_object(
        &self,
        ctx: &Context<'_, U>,
        object: &(dyn std::any::Any + Send + Sync),
    ) -> Result<(), AuthError> {
        if self.inner.allow_any
            || (*self.inner.permission)
                .has_object_permission(ctx, object)
                .await?
        {
            return Ok(());
        }
        Err(self.denial(ctx.identity().await))
    }
}

/// Logs a scheme's refusal (never the credentials) and passes it on.
fn failed<U: AuthUser>(scheme: &dyn Scheme<U>, e: AuthError) -> AuthError {
    tracing::debug!(scheme = scheme.name(), error = %e, "authentication failed");
    e
}

/// The request's identity, resolved on first use and then remembered.
///
/// The layer puts one in the request extensions; extractors and
/// permissions call [`resolve`](LazyIdentity::resolve).
pub struct LazyIdentity<U: AuthUser> {
    state: Lazy<U>,
}

enum Lazy<U: AuthUser> {
    /// Resolved on first use, or settled when made.
    Cell(Arc<LazyInner<U>>),
    /// Anonymous, known when made: the policy's shared anonymous
    /// identity, with nothing allocated for the request.
    Anonymous(Policy<U>),
}

struct LazyInner<U: AuthUser> {
    policy: Policy<U>,
    cell: OnceCell<Result<Identity<U>, AuthError>>,
}

impl<U: AuthUser> Clone for LazyIdentity<U> {
    fn clone(&self) -> Self {
        let state = match &self.state {
            Lazy::Cell(inner) => Lazy::Cell(inner.clone()),
            Lazy::Anonymous(policy) => Lazy::Anonymous(policy.clone()),
        };
        LazyIdentity { state }
    }
}

impl<U: AuthUser> fmt::Debug for LazyIdentity<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyIdentity")
            .field("resolved", &self.is_resolved())
            .finish()
    }
}

impl<U: AuthUser> LazyIdentity<U> {
    /// An unresolved identity for a request under `policy`.
    pub fn new(policy: Policy<U>) -> Self {
        LazyIdentity {
            state: Lazy::Cell(Arc::new(LazyInner {
                policy,
                cell: OnceCell::new(),
            })),
        }
    }

    /// An identity resolved already: anonymous, for a request that no
    /// scheme of `policy` sees credentials in (what
    /// [`Policy::authenticate`] would answer, without running it).
    pub(crate) fn anonymous(policy: Policy<U>) -> Self {
        LazyIdentity {
            state: Lazy::Anonymous(policy),
        }
    }

    /// An identity resolved already, to `result` (what
    /// [`Policy::authenticate`] answered).
    pub(crate) fn settled(policy: Policy<U>, result: Result<Identity<U>, AuthError>) -> Self {
        LazyIdentity {
            state: Lazy::Cell(Arc::new(LazyInner {
                policy,
                cell: OnceCell::new_with(Some(result)),
            })),
        }
    }

    /// The policy of the route.
    pub fn policy(&self) -> &Policy<U> {
        match &self.state {
            Lazy::Cell(inner) => &inner.policy,
            Lazy::Anonymous(policy) => policy,
        }
    }

    /// Whether the schemes have run.
    pub fn is_resolved(&self) -> bool {
        match &self.state {
            Lazy::Cell(inner) => inner.cell.initialized(),
            Lazy::Anonymous(_) => true,
        }
    }

    /// What the schemes answered, if they have run.
    pub fn resolved(&self) -> Option<Result<&Identity<U>, AuthError>> {
        match &self.state {
            Lazy::Cell(inner) => inner.cell.get().map(|r| r.as_ref().map_err(Clone::clone)),
            Lazy::Anonymous(policy) => Some(Ok(&policy.inner.anonymous_identity)),
        }
    }

    /// The identity, if the schemes have run and accepted the request.
    #[cfg(feature = "axum")]
    pub(crate) fn resolved_ok(&self) -> Option<&Identity<U>> {
        match &self.state {
            Lazy::Cell(inner) => inner.cell.get().and_then(|r| r.as_ref().ok()),
            Lazy::Anonymous(policy) => Some(&policy.inner.anonymous_identity),
        }
    }

    /// Runs the schemes the first time; afterwards returns what they
    /// answered.
    pub async fn resolve(&self, head: &RequestHead<'_>) -> Result<&Identity<U>, AuthError> {
        match &self.state {
            Lazy::Cell(inner) => inner
                .cell
                .get_or_init(|| inner.policy.authenticate(head))
                .await
                .as_ref()
                .map_err(Clone::clone),
            Lazy::Anonymous(policy) => Ok(&policy.inner.anonymous_identity),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::User;

    fn anonymous_of(lazy: &LazyIdentity<User>) -> Anonymous {
        match lazy.resolved() {
            Some(Ok(Identity::Anonymous(a))) => a.clone(),
            other => panic!("not anonymous: {other:?}"),
        }
    }

    /// A scheme that counts how often it is asked, answering from fixed
    /// settings: whether it sees credentials, and what it answers at once.
    struct Counted {
        sees: bool,
        now: Option<Result<Option<&'static str>, &'static str>>,
        looks: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Scheme<User> for Counted {
        fn name(&self) -> &'static str {
            "counted"
        }
        async fn authenticate(&self, _: &RequestHead<'_>) -> crate::scheme::Outcome<User> {
            unreachable!("the at-once path never waits")
        }
        fn authenticate_now(&self, _: &RequestHead<'_>) -> Option<crate::scheme::Outcome<User>> {
            let answer = self.now?;
            Some(match answer {
                Ok(None) => Ok(None),
                Ok(Some(name)) => {
                    let user = User::for_tests(1, name);
                    Ok(Some(crate::scheme::Authenticated::new(user, "counted")))
                }
                Err(detail) => Err(AuthError::failed(detail)),
            })
        }
        fn sees_credentials(&self, _: &RequestHead<'_>) -> bool {
            self.looks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.sees
        }
    }

    fn counted(
        sees: bool,
        now: Option<Result<Option<&'static str>, &'static str>>,
    ) -> Arc<Counted> {
        Arc::new(Counted {
            sees,
            now,
            looks: Default::default(),
        })
    }

    fn looks(s: &Counted) -> usize {
        s.looks.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn at_once_the_schemes_answer_first_and_are_asked_to_look_only_when_they_cannot() {
        let parts = http::Request::new(()).into_parts().0;
        let head = RequestHead::from_parts(&parts);
        let run = |schemes: &[&Arc<Counted>]| {
            let list = schemes
                .iter()
                .map(|s| (*s).clone() as Arc<dyn Scheme<User>>)
                .collect();
            Policy::<User>::new().schemes(list).authenticate_now(&head)
        };

        // Cannot answer at once, and sees nothing: skipped, the next answers.
        let skipped = counted(false, None);
        let ada = counted(true, Some(Ok(Some("ada"))));
        let id = run(&[&skipped, &ada]).expect("answered at once").unwrap();
        assert_eq!(id.username(), Some("ada"));
        assert_eq!(
            (looks(&skipped), looks(&ada)),
            (1, 0),
            "ada answered without a look"
        );

        // Cannot answer at once, but sees credentials: the request waits.
        let waits = counted(true, None);
        assert!(run(&[&waits, &ada]).is_none());
        assert_eq!(looks(&waits), 1);

        // No credentials of its kind, said at once: the next scheme decides,
        // and the first is never asked to look.
        let none = counted(true, Some(Ok(None)));
        let refuses = counted(true, Some(Err("bad")));
        let e = run(&[&none, &refuses]).unwrap().unwrap_err();
        assert_eq!(e.to_string(), AuthError::failed("bad").to_string());
        assert_eq!((looks(&none), looks(&refuses)), (0, 0));

        // Nobody answers a user: anonymous.
        let id = run(&[&none, &skipped]).unwrap().unwrap();
        assert!(!id.is_authenticated());
    }

    #[tokio::test]
    async fn a_shared_anonymous_identity_follows_every_edit_of_the_policy() {
        let policy = Policy::<User>::new();
        let lazy = LazyIdentity::anonymous(policy.clone());
        assert!(lazy.is_resolved());
        assert_eq!(anonymous_of(&lazy), Anonymous::default());

        // Each builder step (on a shared policy, so on a copy) must carry
        // the new name and token into the identity that requests share.
        let guest = policy
            .clone()
            .unauthenticated_user(Some("guest"))
            .unauthenticated_token(Some("tok"));
        let a = anonymous_of(&LazyIdentity::anonymous(guest.clone()));
        assert_eq!((a.name(), a.token()), (Some("guest"), Some("tok")));
        let nameless = guest.clone().unauthenticated_user(None).form_limit(10);
        let a = anonymous_of(&LazyIdentity::anonymous(nameless.clone()));
        assert_eq!((a.name(), a.token()), (None, Some("tok")));
        // The original is untouched.
        assert_eq!(anonymous_of(&lazy), Anonymous::default());

        // `resolve` answers the same as `authenticate` would, without
        // running a scheme.
        let parts = http::Request::new(()).into_parts().0;
        let head = RequestHead::from_parts(&parts);
        let lazy = LazyIdentity::anonymous(nameless.clone());
        let resolved = lazy.resolve(&head).await.unwrap();
        let authenticated = nameless.authenticate(&head).await.unwrap();
        assert!(!resolved.is_authenticated());
        assert_eq!(resolved.username(), authenticated.username());
        assert_eq!(resolved.username(), None);
        assert_eq!(anonymous_of(&lazy.clone()).token(), Some("tok"));
    }
}
