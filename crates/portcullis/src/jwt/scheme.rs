//! [`JwtAuth`]: simplejwt's `JWTAuthentication`.

use std::fmt;

use async_trait::async_trait;
use http::HeaderValue;
use serde_json::json;

use super::{Claims, Jwt, JwtError, TokenError, UserIdField};
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
#[derive(Clone)]
pub struct JwtAuth<S> {
    jwt: Jwt,
    store: S,
    challenge: HeaderValue,
}

impl<S> fmt::Debug for JwtAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

impl<S: UserStore> JwtAuth<S> {
    /// The scheme, looking users up in `store`.
    pub fn new(jwt: Jwt, store: S) -> Self {
        let challenge =
            HeaderValue::from_str(&jwt.challenge()).expect("header types are checked by Jwt::new");
        JwtAuth {
            jwt,
            store,
            challenge,
        }
    }

    /// The token service.
    pub fn jwt(&self) -> &Jwt {
        &self.jwt
    }

    async fn user_for(&self, claims: &Claims) -> Outcome<S::User> {
        let s = self.jwt.settings();
        let user = match s.user_id_field {
            UserIdField::Id => {
                let Some(id) = claims.user_id_i64() else {
                    return Err(AuthError::Failed(
                        Failure::new(NO_USER_ID).with_code("token_not_valid"),
                    ));
                };
                self.store.user_by_id(id).await?
            }
            UserIdField::Username => {
                let Some(name) = claims.user_id().and_then(|v| v.as_str()) else {
                    return Err(AuthError::Failed(
                        Failure::new(NO_USER_ID).with_code("token_not_valid"),
                    ));
                };
                self.store.user_by_username(name).await?
            }
        };
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
        let info =
            AuthInfo::new(format!("jwt access jti={}", claims.jti())).with_data(claims.clone());
        Ok(Some(Authenticated::new(user, "jwt").with_auth(info)))
    }
}

#[async_trait]
impl<S: UserStore> Scheme<S::User> for JwtAuth<S> {
    fn name(&self) -> &'static str {
        "jwt"
    }

    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        req.headers.contains_key(http::header::AUTHORIZATION)
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<S::User> {
        let words = req.authorization_words3();
        let Some(raw) = parse_authorization(&words, &self.jwt.settings().auth_header_types)? else {
            return Ok(None);
        };
        let token = std::str::from_utf8(raw).map_err(|_| invalid_token(TokenError::Invalid))?;
        let claims = match self.jwt.validate_access(token).await {
            Ok(c) => c,
            Err(JwtError::Token(e)) => {
                tracing::debug!(reason = %e, "JWT access token refused");
                return Err(invalid_token(e));
            }
            Err(JwtError::Store(e)) => return Err(AuthError::Store(e)),
            Err(JwtError::Signing(_)) => return Err(invalid_token(TokenError::Invalid)),
        };
        self.user_for(&claims).await
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(self.challenge.clone())
    }
}
