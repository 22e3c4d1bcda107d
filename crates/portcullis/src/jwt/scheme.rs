//! [`JwtAuth`]: simplejwt's `JWTAuthentication`.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderValue;
use serde_json::json;

use super::{Claims, Jwt, JwtError, TokenError, UserIdField};
use crate::cache::ttl::FastCache;
use crate::cache::{DEFAULT_CAPACITY, DEFAULT_TTL};
use crate::error::{AuthError, Failure};
use crate::identity::{AuthInfo, AuthUser};
use crate::scheme::{Authenticated, Outcome, RequestHead, Scheme};
use crate::store::UserStore;

/// simplejwt's message for a header with a keyword but not exactly one
/// token.
pub const BAD_HEADER: &str = "Authorization header must contain two space-delimited values";
/// simplejwt's `detail` when the token is refused.
pub const NOT_VALID_FOR_ANY_TYPE: &str = "Given token not valid for any token type";
/// simplejwt's message for a token without a usable user-id claim.
pub const NO_USER_ID: &str = "Token contained no recognizable user identification";
/// simplejwt's message for a token whose user does not exist.
pub const USER_NOT_FOUND: &str = "User not found";
/// simplejwt's message for a token whose user is inactive.
pub const USER_INACTIVE: &str = "User is inactive";

/// Parses an `Authorization` header's words for one of `types` (matched
/// case-insensitively): `Ok(None)` when the header is absent or names
/// another scheme, the raw token otherwise, and simplejwt's
/// `bad_authorization_header` failure when the keyword is not followed by
/// exactly one value.
pub fn parse_authorization<'a>(
    words: &[&'a [u8]],
    types: &[String],
) -> Result<Option<&'a [u8]>, AuthError> {
    let Some(first) = words.first() else {
        return Ok(None);
    };
    if !types
        .iter()
        .any(|t| first.eq_ignore_ascii_case(t.as_bytes()))
    {
        return Ok(None);
    }
    if words.len() != 2 {
        return Err(AuthError::Failed(
            Failure::new(BAD_HEADER).with_code("bad_authorization_header"),
        ));
    }
    Ok(Some(words[1]))
}

/// A refused access token, logged at debug level.
fn refused(e: TokenError) -> AuthError {
    tracing::debug!(reason = %e, "JWT access token refused");
    invalid_token(e)
}

fn from_jwt_error(e: JwtError) -> AuthError {
    match e {
        JwtError::Token(e) => refused(e),
        JwtError::Store(e) => AuthError::Store(e),
        JwtError::Signing(_) => invalid_token(TokenError::Invalid),
    }
}

/// simplejwt's `InvalidToken` for the access token class.
fn invalid_token(e: TokenError) -> AuthError {
    AuthError::Failed(
        Failure::new(NOT_VALID_FOR_ANY_TYPE)
            .with_code("token_not_valid")
            .with_field(
                "messages",
                json!([{
                    "token_class": "AccessToken",
                    "token_type": "access",
                    "message": e.to_string(),
                }]),
            ),
    )
}

/// JWT authentication: `Authorization: Bearer <access token>` (the keywords
/// are [`JwtSettings::auth_header_types`](super::JwtSettings::auth_header_types)).
///
/// | request | answer |
/// |---|---|
/// | no header, or another keyword | `Ok(None)`: the next scheme runs |
/// | keyword without exactly one value | `bad_authorization_header` |
/// | bad, expired or refresh token | `token_not_valid` with `messages` |
/// | no user-id claim | `token_not_valid`, "Token contained no recognizable user identification" |
/// | unknown user | `user_not_found`, "User not found" |
/// | inactive user | `user_inactive`, "User is inactive" |
///
/// On success the [`AuthInfo`] reads `jwt access jti=<jti>` and carries the
/// [`Claims`]. The challenge is `Bearer realm="api"`.
///
/// Access tokens it has accepted are remembered for a short time
/// ([`with_verified_cache`](Self::with_verified_cache), default 500 ms), so
/// a client that sends the same token again skips the signature check and
/// the JSON parsing. A remembered token is looked up by a keyed hash and
/// then compared whole, in constant time; its `exp`, `nbf` and `iat` are
/// checked against the clock again, and the blacklist (when
/// [`blacklist_access_tokens`](super::JwtSettings::blacklist_access_tokens)
/// is on) and the user are read again, as on a first use. The verifying
/// keys of a [`Jwt`] do not change, so the cache changes no answer. It
/// holds the tokens themselves for the TTL, as the requests carrying them
/// do while they run (and where this process issues them, its signing key
/// is in the same memory).
#[derive(Clone)]
pub struct JwtAuth<S> {
    jwt: Jwt,
    store: S,
    challenge: HeaderValue,
    verified: Option<Arc<VerifiedTokens>>,
}

/// Access tokens accepted recently, under a keyed 64-bit hash of their
/// signature.
///
/// Only tokens that verified are held, and their signatures are MACs or
/// signatures under the server's keys, which no client can choose: a fast
/// seeded hash (foldhash) suffices, and a collision costs only a compare.
struct VerifiedTokens {
    map: FastCache<u64, Arc<Verified>>,
    hasher: foldhash::fast::RandomState,
}

/// An accepted access token, with what authentication hands out for it.
struct Verified {
    token: Box<[u8]>,
    info: AuthInfo,
}

/// What authentication hands out for an accepted access token: its
/// description and its [`Claims`].
fn auth_info(claims: Claims) -> AuthInfo {
    AuthInfo::new(format!("jwt access jti={}", claims.jti())).with_data(claims)
}

/// The claims [`auth_info`] put in `info`.
fn claims_of(info: &AuthInfo) -> &Claims {
    info.data().expect("made by auth_info")
}

impl VerifiedTokens {
    /// The map's key: a keyed hash of the signature, the part after the
    /// last dot (a MAC or signature: unpredictable, and short to hash).
    fn key(&self, token: &[u8]) -> u64 {
        let signature = token.rsplit(|b| *b == b'.').next().unwrap_or(token);
        self.hasher.hash_one(signature)
    }

    fn get(&self, token: &[u8]) -> Option<Arc<Verified>> {
        let hit = self.map.get(&self.key(token))?;
        // A hash collision finds another token: compare the whole of it.
        crate::secret::ct_eq(hit.token.as_ref(), token).then_some(hit)
    }

    fn insert(&self, token: &[u8], info: AuthInfo) {
        let verified = Verified {
            token: token.into(),
            info,
        };
        self.map.insert(self.key(token), Arc::new(verified));
    }
}

impl<S> fmt::Debug for JwtAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("jwt", &self.jwt)
            .field("verified_cache", &self.verified.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: UserStore> JwtAuth<S> {
    /// The scheme, looking users up in `store`, remembering accepted
    /// access tokens for 500 ms.
    pub fn new(jwt: Jwt, store: S) -> Self {
        let challenge =
            HeaderValue::from_str(&jwt.challenge()).expect("header types are checked by Jwt::new");
        JwtAuth {
            jwt,
            store,
            challenge,
            verified: None,
        }
        .with_verified_cache(DEFAULT_TTL)
    }

    /// Remembers accepted access tokens for `ttl` (at most 100,000 of
    /// them); zero turns the cache off.
    pub fn with_verified_cache(mut self, ttl: Duration) -> Self {
        self.verified = (!ttl.is_zero()).then(|| {
            Arc::new(VerifiedTokens {
                map: FastCache::new(ttl, DEFAULT_CAPACITY),
                hasher: foldhash::fast::RandomState::default(),
            })
        });
        self
    }

    /// Stores `claims` as if `token` had been accepted with them.
    #[cfg(test)]
    pub(crate) fn remember(&self, token: &str, claims: Claims) {
        let cache = self.verified.as_ref().expect("the cache is on");
        cache.insert(token.as_bytes(), auth_info(claims));
    }

    /// The token service.
    pub fn jwt(&self) -> &Jwt {
        &self.jwt
    }

    /// The active user that the claims in `info` name.
    async fn user_for(&self, info: AuthInfo) -> Outcome<S::User> {
        let claims = claims_of(&info);
        let user = match self.jwt.settings().user_id_field {
            UserIdField::Id => self.store.user_by_id(user_id(claims)?).await?,
            UserIdField::Username => {
                let Some(name) = claims.user_id().and_then(|v| v.as_str()) else {
                    return Err(no_user_id());
                };
                self.store.user_by_username(name).await?
            }
        };
        accept(user, info)
    }

    /// Whether a remembered token can be answered at once: it then needs
    /// nothing but the clock and the user cache (no blacklist to ask, users
    /// by id).
    fn answers_at_once(&self) -> bool {
        let s = self.jwt.settings();
        !s.blacklist_access_tokens && matches!(s.user_id_field, UserIdField::Id)
    }

    /// [`authenticate`](Scheme::authenticate) for a remembered token, when
    /// [`answers_at_once`](Self::answers_at_once).
    fn remembered_now(&self, hit: &Verified) -> Option<Outcome<S::User>> {
        let claims = claims_of(&hit.info);
        if let Err(e) = self.jwt.recheck_times(claims) {
            return Some(Err(refused(e)));
        }
        let id = match user_id(claims) {
            Ok(id) => id,
            Err(e) => return Some(Err(e)),
        };
        let user = self.store.user_by_id_cached(id)?;
        Some(accept(Some(user), hit.info.clone()))
    }
}

fn no_user_id() -> AuthError {
    AuthError::Failed(Failure::new(NO_USER_ID).with_code("token_not_valid"))
}

/// The claims' user id, as an integer.
fn user_id(claims: &Claims) -> Result<i64, AuthError> {
    claims.user_id_i64().ok_or_else(no_user_id)
}

/// The answer for a valid token, given its user (if any).
fn accept<U: AuthUser>(user: Option<U>, info: AuthInfo) -> Outcome<U> {
    let Some(user) = user else {
        return Err(AuthError::Failed(
            Failure::new(USER_NOT_FOUND).with_code("user_not_found"),
        ));
    };
    if !user.is_active() {
        return Err(AuthError::Failed(
            Failure::new(USER_INACTIVE).with_code("user_inactive"),
        ));
    }
    Ok(Some(Authenticated::new(user, "jwt").with_auth(info)))
}

#[async_trait]
impl<S: UserStore> Scheme<S::User> for JwtAuth<S> {
    fn name(&self) -> &'static str {
        "jwt"
    }

    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        req.headers.contains_key(http::header::AUTHORIZATION)
    }

    fn authenticate_now(&self, req: &RequestHead<'_>) -> Option<Outcome<S::User>> {
        let words = req.authorization_words3();
        let raw = match parse_authorization(&words, &self.jwt.settings().auth_header_types) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Some(Ok(None)),
            Err(e) => return Some(Err(e)),
        };
        if !self.answers_at_once() {
            // Every request waits anyway: no look-up to repeat.
            return None;
        }
        let hit = self.verified.as_ref()?.get(raw)?;
        self.remembered_now(&hit)
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<S::User> {
        let words = req.authorization_words3();
        let Some(raw) = parse_authorization(&words, &self.jwt.settings().auth_header_types)? else {
            return Ok(None);
        };
        if let Some(hit) = self.verified.as_ref().and_then(|v| v.get(raw)) {
            let claims = claims_of(&hit.info);
            self.jwt.recheck_times(claims).map_err(refused)?;
            if self.jwt.settings().blacklist_access_tokens {
                self.jwt
                    .check_blacklist(claims)
                    .await
                    .map_err(from_jwt_error)?;
            }
            return self.user_for(hit.info.clone()).await;
        }
        let token = std::str::from_utf8(raw).map_err(|_| invalid_token(TokenError::Invalid))?;
        let claims = self
            .jwt
            .validate_access(token)
            .await
            .map_err(from_jwt_error)?;
        let info = auth_info(claims);
        if let Some(cache) = &self.verified {
            cache.insert(raw, info.clone());
        }
        self.user_for(info).await
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(self.challenge.clone())
    }
}
