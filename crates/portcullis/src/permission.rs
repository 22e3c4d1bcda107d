//! Permissions: DRF's `BasePermission` and the four built-ins, composable
//! with [`and`](PermissionExt::and), [`or`](PermissionExt::or) and [`not`].
//!
//! A permission sees the request through a [`Context`], which resolves the
//! identity only when asked: [`AllowAny`] never asks, so a route that allows
//! anyone does no authentication work unless its handler looks.
//!
//! ```
//! use async_trait::async_trait;
//! use portcullis::permission::{Context, Permission, PermissionExt, IsAuthenticated};
//! use portcullis::{AuthError, AuthUser, User};
//!
//! /// Only users whose name starts with "a".
//! struct NameStartsWithA;
//!
//! #[async_trait]
//! impl<U: AuthUser> Permission<U> for NameStartsWithA {
//!     async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
//!         Ok(ctx.identity().await?.user().is_some_and(|u| u.username().starts_with('a')))
//!     }
//! }
//!
//! let _combined = IsAuthenticated.and(NameStartsWithA);
//! ```

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::AuthError;
use crate::identity::{AuthUser, Identity};
use crate::layer::LazyIdentity;
use crate::scheme::RequestHead;

/// What a permission sees: the request and its (lazily resolved) identity.
pub struct Context<'a, U: AuthUser> {
    pub(crate) head: RequestHead<'a>,
    pub(crate) lazy: &'a LazyIdentity<U>,
}

impl<'a, U: AuthUser> Context<'a, U> {
    /// A context over a request and its lazy identity.
    pub fn new(head: RequestHead<'a>, lazy: &'a LazyIdentity<U>) -> Self {
        Context { head, lazy }
    }

    /// The request.
    pub fn request(&self) -> &RequestHead<'a> {
        &self.head
    }

    /// Authenticates the request (at most once) and returns the identity.
    pub async fn identity(&self) -> Result<&'a Identity<U>, AuthError> {
        self.lazy.resolve(&self.head).await
    }

    /// The identity if it has been resolved already (what
    /// [`identity`](Self::identity) would answer without waiting), else
    /// `None`.
    pub fn resolved_identity(&self) -> Option<Result<&'a Identity<U>, AuthError>> {
        self.lazy.resolved()
    }
}

/// A permission: DRF's `BasePermission`.
#[async_trait]
pub trait Permission<U: AuthUser>: Send + Sync + 'static {
    /// Whether the request may reach the handler.
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError>;

    /// [`has_permission`](Permission::has_permission) answered without
    /// waiting, when the permission can (say, from an identity that is
    /// resolved already); the layer then decides the request without a
    /// boxed future. `None`, the default, means "call `has_permission`";
    /// an answer must be the one `has_permission` would give.
    fn has_permission_now(&self, ctx: &Context<'_, U>) -> Option<Result<bool, AuthError>> {
        let _ = ctx;
        None
    }

    /// Whether the request may act on `object`; checked by handlers through
    /// [`Guard::check_object`](crate::extract::Guard::check_object). Default: yes.
    async fn has_object_permission(
        &self,
        ctx: &Context<'_, U>,
        object: &(dyn Any + Send + Sync),
    ) -> Result<bool, AuthError> {
        let _ = (ctx, object);
        Ok(true)
    }

    /// The `detail` for a denied, authenticated request; default DRF's
    /// "You do not have permission to perform this action."
    fn message(&self) -> Option<Cow<'static, str>> {
        None
    }
}

#[async_trait]
impl<U: AuthUser, P: Permission<U> + ?Sized> Permission<U> for Arc<P> {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        (**self).has_permission(ctx).await
    }
    fn has_permission_now(&self, ctx: &Context<'_, U>) -> Option<Result<bool, AuthError>> {
        (**self).has_permission_now(ctx)
    }
    async fn has_object_permission(
        &self,
        ctx: &Context<'_, U>,
        object: &(dyn Any + Send + Sync),
    ) -> Result<bool, AuthError> {
        (**self).has_object_permission(ctx, object).await
    }
    fn message(&self) -> Option<Cow<'static, str>> {
        (**self).message()
    }
}

/// Everyone may pass; the identity is not even resolved.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAny;

#[async_trait]
impl<U: AuthUser> Permission<U> for AllowAny {
    async fn has_permission(&self, _ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        Ok(true)
    }
    fn has_permission_now(&self, _ctx: &Context<'_, U>) -> Option<Result<bool, AuthError>> {
        Some(Ok(true))
    }
}

/// Authenticated requests only.
#[derive(Clone, Copy, Debug, Default)]
pub struct IsAuthenticated;

#[async_trait]
impl<U: AuthUser> Permission<U> for IsAuthenticated {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        Ok(ctx.identity().await?.is_authenticated())
    }
    fn has_permission_now(&self, ctx: &Context<'_, U>) -> Option<Result<bool, AuthError>> {
        Some(ctx.resolved_identity()?.map(Identity::is_authenticated))
    }
}

/// Staff users only (`is_staff`).
#[derive(Clone, Copy, Debug, Default)]
pub struct IsAdminUser;

#[async_trait]
impl<U: AuthUser> Permission<U> for IsAdminUser {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        Ok(ctx.identity().await?.user().is_some_and(|u| u.is_staff()))
    }
    fn has_permission_now(&self, ctx: &Context<'_, U>) -> Option<Result<bool, AuthError>> {
        Some(
            ctx.resolved_identity()?
                .map(|id| id.user().is_some_and(|u| u.is_staff())),
        )
    }
}

/// Anyone may read (safe methods); only authenticated requests may write.
#[derive(Clone, Copy, Debug, Default)]
pub struct IsAuthenticatedOrReadOnly;

#[async_trait]
impl<U: AuthUser> Permission<U> for IsAuthenticatedOrReadOnly {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        if ctx.request().is_safe_method() {
            return Ok(true);
        }
        Ok(ctx.identity().await?.is_authenticated())
    }
    fn has_permission_now(&self, ctx: &Context<'_, U>) -> Option<Result<bool, AuthError>> {
        if ctx.request().is_safe_method() {
            return Some(Ok(true));
        }
        Some(ctx.resolved_identity()?.map(Identity::is_authenticated))
    }
}

/// Both permissions must pass (DRF's `&`).
#[derive(Clone, Copy, Debug)]
pub struct And<A, B>(pub A, pub B);

#[async_trait]
impl<U: AuthUser, A: Permission<U>, B: Permission<U>> Permission<U> for And<A, B> {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        Ok(self.0.has_permission(ctx).await? && self.1.has_permission(ctx).await?)
    }
    fn has_permission_now(&self, ctx: &Context<'_, U>) -> Option<Result<bool, AuthError>> {
        match self.0.has_permission_now(ctx)? {
            Ok(true) => self.1.has_permission_now(ctx),
            decided => Some(decided),
        }
    }
    async fn has_object_permission(
        &self,
        ctx: &Context<'_, U>,
        object: &(dyn Any + Send + Sync),
    ) -> Result<bool, AuthError> {
        Ok(self.0.has_object_permission(ctx, object).await?
            && self.1.has_object_permission(ctx, object).await?)
    }
    fn message(&self) -> Option<Cow<'static, str>> {
        self.0.message().or_else(|| self.1.message())
    }
}

/// Either permission may pass (DRF's `|`).
#[derive(Clone, Copy, Debug)]
pub struct Or<A, B>(pub A, pub B);

#[async_trait]
impl<U: AuthUser, A: Permission<U>, B: Permission<U>> Permission<U> for Or<A, B> {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        Ok(self.0.has_permission(ctx).await? || self.1.has_permission(ctx).await?)
    }
    fn has_permission_now(&self, ctx: &Context<'_, U>) -> Option<Result<bool, AuthError>> {
        match self.0.has_permission_now(ctx)? {
            Ok(false) => self.1.has_permission_now(ctx),
            decided => Some(decided),
        }
    }
    async fn has_object_permission(
        &self,
        ctx: &Context<'_, U>,
        object: &(dyn Any + Send + Sync),
    ) -> Result<bool, AuthError> {
        // As DRF 3.14: a side counts only if it also grants the request.
        Ok(
            (self.0.has_permission(ctx).await?
                && self.0.has_object_permission(ctx, object).await?)
                || (self.1.has_permission(ctx).await?
                    && self.1.has_object_permission(ctx, object).await?),
        )
    }
}

/// The permission must fail (DRF's `~`).
#[derive(Clone, Copy, Debug)]
pub struct Not<A>(pub A);

#[async_trait]
impl<U: AuthUser, A: Permission<U>> Permission<U> for Not<A> {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        Ok(!self.0.has_permission(ctx).await?)
    }
    fn has_permission_now(&self, ctx: &Context<'_, U>) -> Option<Result<bool, AuthError>> {
        Some(self.0.has_permission_now(ctx)?.map(|allowed| !allowed))
    }
    async fn has_object_permission(
        &self,
        ctx: &Context<'_, U>,
        object: &(dyn Any + Send + Sync),
    ) -> Result<bool, AuthError> {
        Ok(!self.0.has_object_permission(ctx, object).await?)
    }
}

/// Negates a permission (DRF's `~P`).
pub fn not<A>(p: A) -> Not<A> {
    Not(p)
}

/// `a.and(b)`, `a.or(b)` for every permission.
pub trait PermissionExt: Sized {
    /// Both must pass.
    fn and<B>(self, other: B) -> And<Self, B> {
        And(self, other)
    }
    /// Either may pass.
    fn or<B>(self, other: B) -> Or<Self, B> {
        Or(self, other)
    }
}

impl<T> PermissionExt for T {}
