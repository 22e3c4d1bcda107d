//! [`OAuth2Auth`]: RFC 6750 Bearer tokens (django-oauth-toolkit's
//! `OAuth2Authentication`).

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderValue;

use super::{AccessToken, OAuth2, OAuth2UserStore};
use crate::error::{AuthError, Failure};
use crate::identity::{AuthInfo, AuthUser};
use crate::scheme::csrf::FormToken;
use crate::scheme::{Authenticated, Outcome, RequestHead, Scheme};
use crate::store::UserStore;

/// The `detail` for a bad, expired or revoked token.
pub const INVALID_TOKEN: &str = "Invalid token.";
/// The `detail` (`403`) for a client-credentials token on a route that
/// needs a user.
pub const CLIENT_TOKEN_NO_USER: &str = "This token was issued to a client, not a user.";

/// OAuth2 Bearer authentication (RFC 6750): `Authorization: Bearer
/// <token>` (keyword matched case-insensitively), and only when switched on
/// in [`OAuth2Settings`](super::OAuth2Settings), the form-body and query
/// forms.
///
/// | request | answer |
/// |---|---|
/// | no token | `Ok(None)`: the next scheme runs; `401` challenge `Bearer realm="api"` |
/// | keyword without exactly one value, or a token in two places | `401`, `error="invalid_request"` |
/// | unknown, expired or revoked token; its user gone or inactive | `401`, `error="invalid_token"` |
/// | a client-credentials token (no user) | `403` [`CLIENT_TOKEN_NO_USER`]; use [`OAuth2Auth::token_for`] where such tokens are welcome |
///
/// On success the [`AuthInfo`] reads `oauth2 client=<client_id>
/// scope=<scope>` and carries the [`AccessToken`] for the scope
/// permissions.
#[derive(Clone)]
pub struct OAuth2Auth<S> {
    oauth2: OAuth2,
    store: S,
    /// Reads a token with its user in one query; see
    /// [`with_joined_reads`](OAuth2Auth::with_joined_reads). A
    /// [`Joined`] of the store's user type, kept as `Any` so that the type
    /// needs no bound on `S`.
    joined: Option<Arc<dyn Any + Send + Sync>>,
    challenge: HeaderValue,
    invalid_token: HeaderValue,
    invalid_request: HeaderValue,
}

/// What [`OAuth2Auth::with_joined_reads`] keeps.
type Joined<U> = Arc<dyn OAuth2UserStore<User = U>>;

impl<S> fmt::Debug for OAuth2Auth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Auth")
            .field("joined_reads", &self.joined.is_some())
            .finish_non_exhaustive()
    }
}

/// What [`OAuth2Auth::token_for`] found: the token, and its user if it
/// has one.
#[derive(Clone, Debug)]
pub struct BearerToken<U> {
    /// The token's details.
    pub token: AccessToken,
    /// The user; `None` for client-credentials tokens.
    pub user: Option<U>,
}

impl<U> BearerToken<U> {
    /// The non-secret description used as `auth`: `oauth2
    /// client=<client_id> scope=<scope>`.
    pub fn description(&self) -> String {
        // Written in place, in one allocation: this runs on every request.
        let t = &self.token;
        let scopes: usize = t.scopes.iter().map(|s| s.len() + 1).sum();
        let mut out = String::with_capacity(21 + t.client_id.len() + scopes);
        out.push_str("oauth2 client=");
        out.push_str(&t.client_id);
        out.push_str(" scope=");
        for (i, scope) in t.scopes.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(scope);
        }
        out
    }
}

impl<S: UserStore> OAuth2Auth<S> {
    /// The scheme, looking users up in `store`.
    ///
    /// # Panics
    ///
    /// If the realm cannot be a header value.
    pub fn new(oauth2: OAuth2, store: S) -> Self {
        let realm = &oauth2.settings().realm;
        let h = |s: String| HeaderValue::from_str(&s).expect("the realm is a valid header value");
        OAuth2Auth {
            challenge: h(format!("Bearer realm=\"{realm}\"")),
            invalid_token: h(format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")),
            invalid_request: h(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_request\""
            )),
            oauth2,
            store,
            joined: None,
        }
    }

    /// Reads an uncached access token together with its user from `store`
    /// in one query ([`OAuth2UserStore`]; the SQL stores join the two
    /// tables), instead of the token from the server's store and then the
    /// user from the scheme's: one round trip a request instead of two,
    /// with the same answers.
    ///
    /// `store` must hold the tokens of the server's
    /// [`OAuth2Store`](super::OAuth2Store) and the users of the scheme's
    /// store: in practice the same SQL store passed to all three (as
    /// `portcullis serve` does). When the server's store remembers tokens
    /// ([`CachedOAuth2Store`](super::CachedOAuth2Store)), tokens are read
    /// through it as before, so that it fills, and `store` is not used.
    ///
    /// `portcullis-store`'s `oauth2` module shows it with a SQL store.
    pub fn with_joined_reads(mut self, store: Arc<dyn OAuth2UserStore<User = S::User>>) -> Self {
        self.joined = Some(Arc::new(store));
        self
    }

    /// The joined reader, while no cache remembers the tokens.
    fn joined_reads(&self) -> Option<&Joined<S::User>> {
        let joined = self.joined.as_ref()?;
        if self.oauth2.store().remembers_tokens() {
            return None;
        }
        joined.downcast_ref::<Joined<S::User>>()
    }

    /// The server.
    pub fn oauth2(&self) -> &OAuth2 {
        &self.oauth2
    }

    fn fail(&self, challenge: &HeaderValue, detail: &'static str) -> AuthError {
        AuthError::Failed(Failure::new(detail).with_challenge(challenge.clone()))
    }

    /// The raw token of the request, wherever the settings allow it,
    /// borrowed from the request where it can be.
    fn raw_token<'a>(&self, req: &RequestHead<'a>) -> Result<Option<Cow<'a, str>>, AuthError> {
        if req.has_duplicate_authorization() {
            return Err(self.fail(
                &self.invalid_request,
                crate::scheme::DUPLICATE_AUTHORIZATION,
            ));
        }
        let mut found: Option<Cow<'a, str>> = None;
        let mut another = |t: Cow<'a, str>| match found {
            // RFC 6750 §2: one method per request.
            Some(_) => Err(self.fail(
                &self.invalid_request,
                "Use one way of sending the access token.",
            )),
            None => {
                found = Some(t);
                Ok(())
            }
        };
        let words = req.authorization_words3();
        if let Some(first) = words.first() {
            if first.eq_ignore_ascii_case(b"bearer") {
                if words.len() != 2 {
                    return Err(self.fail(
                        &self.invalid_request,
                        "Invalid bearer header. Expected one token.",
                    ));
                }
                let t = std::str::from_utf8(words[1])
                    .map_err(|_| self.fail(&self.invalid_token, INVALID_TOKEN))?;
                another(Cow::Borrowed(t))?;
            }
        }
        let settings = self.oauth2.settings();
        if settings.allow_query_token {
            if let Some(q) = req.uri.query() {
                for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                    if k == "access_token" {
                        another(v)?;
                    }
                }
            }
        }
        if settings.allow_form_token {
            if let Some(FormToken(t)) = req.extensions.get::<FormToken>() {
                another(Cow::Borrowed(t))?;
            }
        }
        Ok(found)
    }

    /// Authenticates the request's token, accepting client-credentials
    /// tokens too: `Ok(None)` without a token, the token and its user (if
    /// any) otherwise. For routes such as `/oauth2/client/`, where a
    /// client acting for itself is welcome.
    pub async fn token_for(
        &self,
        req: &RequestHead<'_>,
    ) -> Result<Option<BearerToken<S::User>>, AuthError> {
        let Some(raw) = self.raw_token(req)? else {
            return Ok(None);
        };
        if let Some(joined) = self.joined_reads() {
            let found = match self.oauth2.lookup_digest(&raw) {
                Some(digest) => joined.oauth2_token_with_user(digest.as_str()).await?,
                None => None,
            };
            return match found.filter(|(row, _)| self.oauth2.is_usable_access(row)) {
                Some((row, user)) => self.bearer(row.into(), user),
                None => Err(self.fail(&self.invalid_token, INVALID_TOKEN)),
            };
        }
        let Some(row) = self.oauth2.validate_access(&raw).await? else {
            return Err(self.fail(&self.invalid_token, INVALID_TOKEN));
        };
        let user = match row.user_id {
            None => None,
            Some(id) => self.store.user_by_id(id).await?,
        };
        self.bearer(row.into(), user)
    }

    /// [`token_for`](Self::token_for) answered from the caches, without
    /// waiting; `None` to ask the stores.
    fn token_for_now(
        &self,
        req: &RequestHead<'_>,
    ) -> Option<Result<Option<BearerToken<S::User>>, AuthError>> {
        let raw = match self.raw_token(req) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Some(Ok(None)),
            Err(e) => return Some(Err(e)),
        };
        if self.joined_reads().is_some() {
            // No cache remembers the tokens: nothing to look up here.
            return None;
        }
        let Some(row) = self.oauth2.validate_access_cached(&raw)? else {
            return Some(Err(self.fail(&self.invalid_token, INVALID_TOKEN)));
        };
        let user = match row.user_id {
            None => None,
            Some(id) => Some(self.store.user_by_id_cached(id)?),
        };
        // Shared with the cache: only what the request keeps is copied.
        let token = AccessToken {
            client_id: row.client_id.clone(),
            user_id: row.user_id,
            scopes: row.scopes.clone(),
            expires_at: row.expires_at,
        };
        Some(self.bearer(token, user))
    }

    /// What a valid access token stands for, given its user (read when the
    /// token has one): a missing or inactive user makes the token invalid.
    fn bearer(
        &self,
        token: AccessToken,
        user: Option<S::User>,
    ) -> Result<Option<BearerToken<S::User>>, AuthError> {
        let user = match (token.user_id, user) {
            (None, _) => None,
            (Some(_), Some(u)) if u.is_active() => Some(u),
            (Some(_), _) => return Err(self.fail(&self.invalid_token, INVALID_TOKEN)),
        };
        Ok(Some(BearerToken { token, user }))
    }
}

#[async_trait]
impl<S: UserStore> Scheme<S::User> for OAuth2Auth<S> {
    fn name(&self) -> &'static str {
        "oauth2"
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<S::User> {
        accept(self.token_for(req).await?)
    }

    fn authenticate_now(&self, req: &RequestHead<'_>) -> Option<Outcome<S::User>> {
        Some(self.token_for_now(req)?.and_then(accept))
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(self.challenge.clone())
    }

    fn form_field(&self, req: &RequestHead<'_>) -> Option<&str> {
        (self.oauth2.settings().allow_form_token && !req.is_safe_method()).then_some("access_token")
    }
}

/// The answer for a bearer token found (or none).
fn accept<U: AuthUser>(found: Option<BearerToken<U>>) -> Outcome<U> {
    let Some(found) = found else {
        return Ok(None);
    };
    let info = AuthInfo::new(found.description());
    let Some(user) = found.user else {
        // DRF with django-oauth-toolkit: `request.user` is None, so a
        // permission that needs a user is refused with 403.
        return Err(AuthError::denied(CLIENT_TOKEN_NO_USER));
    };
    Ok(Some(
        Authenticated::new(user, "oauth2").with_auth(info.with_data(found.token)),
    ))
}
