//! Token authentication, DRF's `TokenAuthentication`, with the tokens
//! themselves ([`Tokens`]): 40 hex characters from the OS's CSPRNG, one per
//! user.
//!
//! `Authorization: Token <key>`; the keyword is configurable (`Bearer`,
//! …) and matched case-insensitively. On `401` the challenge is the
//! keyword.
//!
//! Unlike DRF, no key is stored in plaintext: the look-up column holds a
//! keyed hash (`v1$` + HMAC-SHA256 under a subkey of the secret key), and a
//! copy of the key sealed with XChaCha20-Poly1305 under another subkey is
//! kept so `/auth-token/` and `create-token` can hand an existing key back,
//! as DRF's `get_or_create` does. A stolen database without the secret key
//! yields no usable token.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use portcullis::scheme::token::{TokenAuth, Tokens};
//! use portcullis::store::{MemoryStore, NewUser, UserAdmin};
//! use portcullis::{IsAuthenticated, Policy, SecretKey, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let ada = store.create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await.unwrap();
//! let tokens = Tokens::new(store, SecretKey::new([7u8; 32]).unwrap());
//! let (key, _created) = tokens.get_or_create(ada.id).await.unwrap();
//!
//! let policy = Policy::<User>::new().scheme(TokenAuth::new(tokens)).permission(IsAuthenticated);
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(policy.layer());
//!
//! let good = http::Request::get("/").header("authorization", format!("Token {key}"))
//!     .body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(good).await.unwrap().status(), 200);
//! let bad = http::Request::get("/").header("authorization", "Token nope")
//!     .body(Body::empty()).unwrap();
//! let res = app.oneshot(bad).await.unwrap();
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], "Token");
//! # });
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::HeaderValue;

use crate::error::AuthError;
use crate::identity::{AuthInfo, AuthUser};
use crate::scheme::{Authenticated, Outcome, RequestHead, Scheme};
use crate::secret::{random_hex, SecretKey, Subkey};
use crate::store::{StoreError, TokenRecord, TokenStore, UserStore};

const LOOKUP_PURPOSE: &str = "token-lookup-v1";
const SEAL_PURPOSE: &str = "token-seal-v1";

/// DRF's message for an unknown key.
pub const INVALID_TOKEN: &str = "Invalid token.";
/// DRF's message for a token whose user is inactive.
pub const USER_INACTIVE: &str = "User inactive or deleted.";

/// What the token scheme attaches to [`AuthInfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token's owner.
    pub user_id: i64,
    /// When the token was created.
    pub created: DateTime<Utc>,
}

/// Issues, finds and revokes tokens.
#[derive(Clone)]
pub struct Tokens<S> {
    store: S,
    secret: SecretKey,
    lookup: Subkey,
}

impl<S> fmt::Debug for Tokens<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl<S: TokenStore + UserStore + Clone> Tokens<S> {
    /// Tokens kept in `store`, hashed and sealed with `secret`.
    pub fn new(store: S, secret: SecretKey) -> Self {
        Tokens {
            lookup: secret.subkey(LOOKUP_PURPOSE),
            store,
            secret,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The look-up digest of a key: `v1$` and the hex HMAC.
    pub fn digest(&self, key: &str) -> String {
        self.lookup.v1_digest(key.as_bytes()).as_str().to_owned()
    }

    fn record(&self, user_id: i64, key: &str) -> TokenRecord {
        TokenRecord {
            user_id,
            digest: self.digest(key),
            sealed_key: self.secret.seal(SEAL_PURPOSE, key.as_bytes()),
            created: Utc::now(),
        }
    }

    /// The user's key, creating a token if there is none (DRF's
    /// `Token.objects.get_or_create`). The flag says whether it was created.
    pub async fn get_or_create(&self, user_id: i64) -> Result<(String, bool), StoreError> {
        if let Some(existing) = self.store.token_for_user(user_id).await? {
            if let Some(key) = self.unseal(&existing) {
                return Ok((key, false));
            }
            // Sealed with another secret: the old key can no longer
            // authenticate either, so replace it.
            self.store.delete_token(user_id).await?;
        }
        let key = random_hex(20);
        match self.store.insert_token(&self.record(user_id, &key)).await {
            Ok(()) => Ok((key, true)),
            // Another request created one at the same time: return that.
            Err(StoreError::Conflict(_)) => {
                let t = self
                    .store
                    .token_for_user(user_id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("token of user {user_id}")))?;
                let key = self
                    .unseal(&t)
                    .ok_or_else(|| StoreError::backend("token sealed with another key"))?;
                Ok((key, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces the user's token with a new one (`create-token -r`).
    pub async fn regenerate(&self, user_id: i64) -> Result<String, StoreError> {
        self.store.delete_token(user_id).await?;
        let key = random_hex(20);
        self.store.insert_token(&self.record(user_id, &key)).await?;
        Ok(key)
    }

    /// Deletes the user's token.
    pub async fn revoke(&self, user_id: i64) -> Result<bool, StoreError> {
        self.store.delete_token(user_id).await
    }

    fn unseal(&self, t: &TokenRecord) -> Option<String> {
        let raw = self.secret.open(SEAL_PURPOSE, &t.sealed_key)?;
        let key = String::from_utf8(raw).ok()?;
        // Only trust the copy if it still matches the look-up digest.
        crate::secret::ct_eq(self.digest(&key).as_bytes(), t.digest.as_bytes()).then_some(key)
    }

    /// The token for a key, if one matches (compared in constant time).
    pub async fn find(&self, key: &str) -> Result<Option<TokenRecord>, StoreError> {
        let buf = self.lookup.v1_digest(key.as_bytes());
        let digest = buf.as_str();
        let found = self.store.token_by_digest(digest).await?;
        Ok(found.filter(|t| crate::secret::ct_eq(t.digest.as_bytes(), digest.as_bytes())))
    }

    /// [`find`](Self::find) with the token's user, in one read where the
    /// store can ([`TokenStore::token_with_user`]).
    pub async fn find_with_user(
        &self,
        key: &str,
    ) -> Result<Option<(TokenRecord, Option<S::User>)>, StoreError> {
        let buf = self.lookup.v1_digest(key.as_bytes());
        let digest = buf.as_str();
        let found = self.store.token_with_user(digest).await?;
        Ok(found.filter(|(t, _)| crate::secret::ct_eq(t.digest.as_bytes(), digest.as_bytes())))
    }

    /// [`find`](Self::find) answered from the store's cache, without
    /// waiting: `Some` with the matching token when the cache holds one,
    /// `None` to ask the store.
    ///
    /// The cache is asked by the key's HMAC itself, not its hex: it holds
    /// only tokens whose own digest is that HMAC's
    /// ([`TokenStore::token_by_digest_cached`]), so a hit needs no
    /// further compare.
    fn find_cached(&self, key: &str) -> Option<Arc<TokenRecord>> {
        self.store
            .token_by_digest_cached(&self.lookup.mac(key.as_bytes()))
    }
}

/// `"<keyword> token of user <id>, created <RFC 3339, seconds, Z>"`, built
/// without chrono's formatter (this runs on every token request), in a
/// per-thread buffer so that the shared string is the one allocation.
fn describe(keyword: &str, user_id: i64, created: DateTime<Utc>) -> Arc<str> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH.with_borrow_mut(|out| {
        out.clear();
        write_description(out, keyword, user_id, created);
        Arc::from(out.as_str())
    })
}

fn write_description(out: &mut String, keyword: &str, user_id: i64, created: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    out.push_str(keyword);
    out.push_str(" token of user ");
    out.push_str(itoa::Buffer::new().format(user_id));
    out.push_str(", created ");
    // The UTC fields directly: `DateTime`'s own accessors add a zero offset
    // first.
    let t = created.naive_utc();
    match u32::try_from(t.year()) {
        Ok(year) if year <= 9999 => {
            // `YYYY-MM-DDTHH:MM:SSZ`, filled in place and appended once.
            let mut stamp = *b"0000-00-00T00:00:00Z";
            for (at, n) in [
                (0, year / 100),
                (2, year % 100),
                (5, t.month()),
                (8, t.day()),
                (11, t.hour()),
                (14, t.minute()),
                (17, t.second()),
            ] {
                stamp[at] = b'0' + (n / 10 % 10) as u8;
                stamp[at + 1] = b'0' + (n % 10) as u8;
            }
            out.push_str(std::str::from_utf8(&stamp).expect("ASCII digits and separators"));
        }
        _ => out.push_str(&created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    }
}

/// Parses an `Authorization` header's words into the key, for `keyword`.
pub fn parse(words: &[&[u8]], keyword: &str) -> Result<Option<String>, AuthError> {
    Ok(parse_borrowed(words, keyword)?.map(str::to_owned))
}

/// [`parse`] without copying the key.
fn parse_borrowed<'a>(words: &[&'a [u8]], keyword: &str) -> Result<Option<&'a str>, AuthError> {
    match words.first() {
        Some(kw) if kw.eq_ignore_ascii_case(keyword.as_bytes()) => {}
        _ => return Ok(None),
    }
    match words.len() {
        1 => Err(AuthError::failed(
            "Invalid token header. No credentials provided.",
        )),
        2 => std::str::from_utf8(words[1]).map(Some).map_err(|_| {
            AuthError::failed(
                "Invalid token header. Token string should not contain invalid characters.",
            )
        }),
        _ => Err(AuthError::failed(
            "Invalid token header. Token string should not contain spaces.",
        )),
    }
}

/// The token scheme.
#[derive(Clone, Debug)]
pub struct TokenAuth<S> {
    tokens: Tokens<S>,
    keyword: String,
    challenge: HeaderValue,
}

impl<S: TokenStore + UserStore + Clone> TokenAuth<S> {
    /// Token authentication with the keyword `Token`.
    pub fn new(tokens: Tokens<S>) -> Self {
        TokenAuth {
            tokens,
            keyword: "Token".into(),
            challenge: HeaderValue::from_static("Token"),
        }
    }

    /// Sets the keyword (DRF's `keyword` attribute), e.g. `Bearer`.
    ///
    /// # Panics
    ///
    /// If the keyword is empty or not an RFC 7230 token; checked when the
    /// scheme is built.
    pub fn keyword(mut self, keyword: &str) -> Self {
        assert!(
            !keyword.is_empty()
                && keyword
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
            "a token keyword must be a non-empty HTTP token"
        );
        self.keyword = keyword.to_owned();
        self.challenge = HeaderValue::from_str(keyword).expect("checked above");
        self
    }
}

#[async_trait]
impl<S: TokenStore + UserStore + Clone> Scheme<S::User> for TokenAuth<S> {
    fn name(&self) -> &'static str {
        "token"
    }

    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        req.headers.contains_key(http::header::AUTHORIZATION)
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<S::User> {
        let words = req.authorization_words3();
        let Some(key) = parse_borrowed(&words, &self.keyword)? else {
            return Ok(None);
        };
        let Some((token, user)) = self.tokens.find_with_user(key).await? else {
            return Err(AuthError::failed(INVALID_TOKEN));
        };
        self.accept(&token, user)
    }

    fn authenticate_now(&self, req: &RequestHead<'_>) -> Option<Outcome<S::User>> {
        if !self.tokens.store.remembers_reads() {
            // No cache to answer from: the header is read once, by
            // `authenticate`.
            return None;
        }
        let words = req.authorization_words3();
        let key = match parse_borrowed(&words, &self.keyword) {
            Ok(Some(key)) => key,
            Ok(None) => return Some(Ok(None)),
            Err(e) => return Some(Err(e)),
        };
        let token = self.tokens.find_cached(key)?;
        let user = self.tokens.store.user_by_id_cached(token.user_id)?;
        Some(self.accept(&token, Some(user)))
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(self.challenge.clone())
    }
}

impl<S: TokenStore + UserStore + Clone> TokenAuth<S> {
    /// The answer for a token that matched, given its user (if any).
    fn accept(&self, token: &TokenRecord, user: Option<S::User>) -> Outcome<S::User> {
        let Some(user) = user else {
            return Err(AuthError::failed(INVALID_TOKEN));
        };
        if !user.is_active() {
            return Err(AuthError::failed(USER_INACTIVE));
        }
        let info =
            AuthInfo::new(describe(&self.keyword, user.id(), token.created)).with_data(TokenInfo {
                user_id: token.user_id,
                created: token.created,
            });
        Ok(Some(Authenticated::new(user, "token").with_auth(info)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, NewUser, UserAdmin};

    fn words(h: &str) -> Vec<&[u8]> {
        crate::scheme::split_ascii_whitespace(h.as_bytes())
    }

    #[test]
    fn describes_tokens_as_chrono_would() {
        for created in [
            "2026-11-24T01:02:03Z",
            "1999-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00Z",
            "2000-02-29T23:09:10Z",
        ] {
            let t: DateTime<Utc> = created.parse().unwrap();
            for user in [42, 0, -7, i64::MAX] {
                assert_eq!(
                    &*describe("Token", user, t),
                    format!(
                        "Token token of user {user}, created {}",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                );
            }
        }
        let far = chrono::NaiveDate::from_ymd_opt(12345, 6, 7)
            .unwrap()
            .and_hms_opt(8, 9, 10)
            .unwrap()
            .and_utc();
        assert_eq!(
            &*describe("Bearer", 1, far),
            format!(
                "Bearer token of user 1, created {}",
                far.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        );
    }

    #[test]
    fn parses_keyword_case_insensitively() {
        assert_eq!(
            parse(&words("token abc"), "Token").unwrap(),
            Some("abc".into())
        );
        assert_eq!(
            parse(&words("BEARER abc"), "Bearer").unwrap(),
            Some("abc".into())
        );
        assert_eq!(parse(&words("Bearer abc"), "Token").unwrap(), None);
    }

    #[test]
    fn header_errors_use_drf_messages() {
        let e = parse(&words("Token"), "Token").unwrap_err().to_string();
        assert_eq!(e, "Invalid token header. No credentials provided.");
        let e = parse(&words("Token a b"), "Token").unwrap_err().to_string();
        assert_eq!(
            e,
            "Invalid token header. Token string should not contain spaces."
        );
        let e = parse(&[b"Token", b"\xff\xfe"], "Token")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid characters"));
    }

    #[tokio::test]
    async fn cached_tokens_are_answered_at_once_as_authenticate_would() {
        use crate::scheme::at_once::{answers_alike, cached_store_with_ada};
        let (store, ada) = cached_store_with_ada().await;
        let tokens = Tokens::new(store.clone(), SecretKey::new([1u8; 32]).unwrap());
        let (key, _) = tokens.get_or_create(ada.id).await.unwrap();
        let auth = TokenAuth::new(tokens);
        let request = |value: &str| {
            http::Request::get("/")
                .header("authorization", value)
                .body(())
                .unwrap()
        };
        let good = request(&format!("Token {key}"));
        let head = RequestHead::from_request(&good);

        assert!(auth.authenticate_now(&head).is_none(), "nothing cached yet");
        auth.authenticate(&head).await.unwrap();
        answers_alike(&auth, &head).await;
        // Another keyword, or a malformed header: answered at once, alike.
        for other in ["Bearer abc", "Token a b"] {
            answers_alike(&auth, &RequestHead::from_request(&request(other))).await;
        }

        // Deactivated through the store: the cached user is forgotten; what
        // the full path reads back is refused at once too.
        store.set_active(ada.id, false).await.unwrap();
        assert!(auth.authenticate_now(&head).is_none());
        auth.authenticate(&head).await.unwrap_err();
        answers_alike(&auth, &head).await;
    }

    #[tokio::test]
    async fn a_store_that_remembers_nothing_is_not_asked_at_once() {
        use crate::scheme::at_once::{cached_store_with_ada, Forgetful};
        let (store, ada) = cached_store_with_ada().await;
        let tokens = Tokens::new(Forgetful(store), SecretKey::new([1u8; 32]).unwrap());
        let (key, _) = tokens.get_or_create(ada.id).await.unwrap();
        let auth = TokenAuth::new(tokens);
        let good = http::Request::get("/")
            .header("authorization", format!("Token {key}"))
            .body(())
            .unwrap();
        let head = RequestHead::from_request(&good);
        // Fills the cache behind the store, which says it remembers nothing.
        auth.authenticate(&head).await.unwrap().unwrap();
        // Nothing is answered at once: the header is read once, by
        // `authenticate`.
        let other = http::Request::get("/")
            .header("authorization", "Bearer abc")
            .body(())
            .unwrap();
        let none = http::Request::get("/").body(()).unwrap();
        for req in [&good, &other, &none] {
            assert!(auth
                .authenticate_now(&RequestHead::from_request(req))
                .is_none());
        }
        assert!(auth
            .authenticate(&RequestHead::from_request(&other))
            .await
            .unwrap()
            .is_none());
        // A request without the header is still decided at once, by the
        // policy: the scheme sees no credentials.
        assert!(!auth.sees_credentials(&RequestHead::from_request(&none)));
    }

    async fn setup() -> (Tokens<MemoryStore>, i64) {
        let store = MemoryStore::new();
        let u = store
            .create_user(NewUser {
                username: "ada".into(),
                is_active: true,
                ..Default::default()
            })
            .await
            .unwrap();
        (Tokens::new(store, SecretKey::new([1u8; 32]).unwrap()), u.id)
    }

    #[tokio::test]
    async fn keys_are_40_hex_and_stored_hashed() {
        let (tokens, id) = setup().await;
        let (key, created) = tokens.get_or_create(id).await.unwrap();
        assert!(created);
        assert_eq!(key.len(), 40);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        let rec = tokens.store().token_for_user(id).await.unwrap().unwrap();
        assert!(!rec.digest.contains(&key));
        assert!(!rec.sealed_key.contains(&key));
        assert!(rec.digest.starts_with("v1$"));
    }

    #[tokio::test]
    async fn get_or_create_returns_the_existing_key() {
        let (tokens, id) = setup().await;
        let (a, _) = tokens.get_or_create(id).await.unwrap();
        let (b, created) = tokens.get_or_create(id).await.unwrap();
        assert_eq!(a, b);
        assert!(!created);
    }

    #[tokio::test]
    async fn regenerate_invalidates_the_old_key() {
        let (tokens, id) = setup().await;
        let (old, _) = tokens.get_or_create(id).await.unwrap();
        let new = tokens.regenerate(id).await.unwrap();
        assert_ne!(old, new);
        assert!(tokens.find(&old).await.unwrap().is_none());
        assert!(tokens.find(&new).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn another_secret_cannot_use_the_stored_tokens() {
        let (tokens, id) = setup().await;
        let (key, _) = tokens.get_or_create(id).await.unwrap();
        let other = Tokens::new(tokens.store().clone(), SecretKey::new([2u8; 32]).unwrap());
        assert!(other.find(&key).await.unwrap().is_none());
        // get_or_create with the new secret issues a fresh token.
        let (fresh, created) = other.get_or_create(id).await.unwrap();
        assert!(created);
        assert_ne!(fresh, key);
    }
}
