//! django-oauth-toolkit's scope permissions, reading the
//! [`AccessToken`] that [`OAuth2Auth`](super::OAuth2Auth) attaches.

use std::borrow::Cow;

use async_trait::async_trait;

use super::AccessToken;
use crate::error::AuthError;
use crate::identity::AuthUser;
use crate::permission::{Context, Permission};
use crate::scheme::is_safe_method;

async fn token<'a, U: AuthUser>(
    ctx: &Context<'a, U>,
) -> Result<Option<&'a AccessToken>, AuthError> {
    Ok(ctx
        .identity()
        .await?
        .auth()
        .and_then(|a| a.data::<AccessToken>()))
}

/// Every scope in the list is required (DOT's `TokenHasScope` with
/// `required_scopes`). A request not authenticated by an OAuth2 token is
/// refused.
#[derive(Clone, Debug)]
pub struct TokenHasScope {
    required: Vec<String>,
}

impl TokenHasScope {
    /// Requires all of `scopes`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        TokenHasScope {
            required: scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// The required scopes.
    pub fn required(&self) -> &[String] {
        &self.required
    }

    /// Whether `token` has them.
    pub fn allows(&self, token: &AccessToken) -> bool {
        token.has_scopes(&self.required)
    }
}

#[async_trait]
impl<U: AuthUser> Permission<U> for TokenHasScope {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        Ok(token(ctx).await?.is_some_and(|t| self.allows(t)))
    }

    fn message(&self) -> Option<Cow<'static, str>> {
        Some("You do not have the required scope.".into())
    }
}

/// Safe methods need the `read` scope, others `write`, plus any extra
/// required scopes (DOT's `TokenHasReadWriteScope`).
#[derive(Clone, Debug, Default)]
pub struct TokenHasReadWriteScope {
    extra: Vec<String>,
}

impl TokenHasReadWriteScope {
    /// `read`/`write` only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also requires `scopes`.
    pub fn with_required<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        TokenHasReadWriteScope {
            extra: scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// The scopes a request with `method` needs.
    pub fn required(&self, method: &http::Method) -> Vec<String> {
        let rw = if is_safe_method(method) {
            "read"
        } else {
            "write"
        };
        let mut v = vec![rw.to_owned()];
        v.extend(self.extra.iter().cloned());
        v
    }
}

#[async_trait]
impl<U: AuthUser> Permission<U> for TokenHasReadWriteScope {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        let need = self.required(ctx.request().method);
        Ok(token(ctx).await?.is_some_and(|t| t.has_scopes(&need)))
    }

    fn message(&self) -> Option<Cow<'static, str>> {
        Some("You do not have the required scope.".into())
    }
}

/// Per-method alternatives of scope sets (DOT's
/// `TokenMatchesOASRequirements`, OpenAPI security requirements): the
/// request passes when the token has every scope of at least one set
/// listed for its method. A method not listed is refused.
#[derive(Clone, Debug, Default)]
pub struct TokenMatchesOASRequirements {
    alternatives: Vec<(http::Method, Vec<Vec<String>>)>,
}

impl TokenMatchesOASRequirements {
    /// No method allowed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `method` for tokens with all of `scopes` (call again for
    /// another alternative).
    pub fn allow<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        method: http::Method,
        scopes: I,
    ) -> Self {
        let set: Vec<String> = scopes.into_iter().map(Into::into).collect();
        match self.alternatives.iter_mut().find(|(m, _)| *m == method) {
            Some((_, sets)) => sets.push(set),
            None => self.alternatives.push((method, vec![set])),
        }
        self
    }

    /// Whether `token` may use `method`.
    pub fn allows(&self, method: &http::Method, token: &AccessToken) -> bool {
        self.alternatives
            .iter()
            .filter(|(m, _)| m == method)
            .flat_map(|(_, sets)| sets)
            .any(|set| token.has_scopes(set))
    }
}

#[async_trait]
impl<U: AuthUser> Permission<U> for TokenMatchesOASRequirements {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        let method = ctx.request().method;
        Ok(token(ctx).await?.is_some_and(|t| self.allows(method, t)))
    }

    fn message(&self) -> Option<Cow<'static, str>> {
        Some("You do not have the required scope.".into())
    }
}
