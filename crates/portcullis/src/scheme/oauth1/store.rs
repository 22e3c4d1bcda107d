//! Where OAuth 1.0a consumers and tokens live: the [`OAuth1Store`] trait
//! and [`MemoryOAuth1Store`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::StoreError;

/// The longest consumer key or token the stores hold.
pub const MAX_OAUTH1_ID: usize = 64;

/// A registered client (RFC 5849's "client credentials"). The secret is
/// sealed with the [`SecretKey`](crate::SecretKey) (HMAC needs it in clear
/// at request time, so it cannot be hashed); RSA-SHA1 consumers also have
/// a public key.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The `oauth_consumer_key`; unique.
    pub consumer_key: String,
    /// A name for people.
    pub name: String,
    /// The consumer secret, sealed.
    pub sealed_secret: String,
    /// The RSA public key PEM, for RSA-SHA1.
    pub rsa_public_key: Option<String>,
    /// The registered callback URI, if any (`oob` is always allowed).
    pub callback: Option<String>,
    /// When the consumer was created.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for ConsumerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerRecord")
            .field("consumer_key", &self.consumer_key)
            .field("name", &self.name)
            .field("rsa", &self.rsa_public_key.is_some())
            .field("callback", &self.callback)
            .finish_non_exhaustive()
    }
}

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// A temporary credential of the three-legged flow.
    Request,
    /// A token credential: it authenticates its user.
    Access,
}

impl TokenKind {
    /// `request` or `access`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Request => "request",
            TokenKind::Access => "access",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "request" => Some(TokenKind::Request),
            "access" => Some(TokenKind::Access),
            _ => None,
        }
    }
}

/// A token (RFC 5849's temporary or token credentials). The secret is
/// sealed; a verifier is kept only as a keyed digest.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth1TokenRecord {
    /// The `oauth_token`; unique.
    pub token: String,
    /// The consumer it was issued to.
    pub consumer_key: String,
    /// The user: always for access tokens; for request tokens once the
    /// user has authorized them.
    pub user_id: Option<i64>,
    /// Request or access token.
    pub kind: TokenKind,
    /// The token secret, sealed.
    pub sealed_secret: String,
    /// For request tokens: where to send the user back (`oob`: show the
    /// verifier).
    pub callback: Option<String>,
    /// For authorized request tokens: the keyed digest of the verifier.
    pub verifier_digest: Option<String>,
    /// When the token was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working (request tokens); `None` never.
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for OAuth1TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth1TokenRecord")
            .field("token", &self.token)
            .field("consumer_key", &self.consumer_key)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Refuses an identifier the stores cannot hold, before any SQL runs.
pub fn check_oauth1_id(id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > MAX_OAUTH1_ID {
        return Err(StoreError::backend(format!(
            "an OAuth 1.0a key or token must be 1 to {MAX_OAUTH1_ID} bytes"
        )));
    }
    Ok(())
}

/// Stores OAuth 1.0a consumers and tokens. Dyn-compatible; a store error
/// makes the scheme refuse the request (fail closed).
#[async_trait]
pub trait OAuth1Store: Send + Sync + 'static {
    /// Adds a consumer; [`StoreError::Conflict`] if the key is taken.
    async fn create_consumer(&self, consumer: &ConsumerRecord) -> Result<(), StoreError>;

    /// The consumer with this key, if any.
    async fn consumer(&self, consumer_key: &str) -> Result<Option<ConsumerRecord>, StoreError>;

    /// Adds a token; [`StoreError::Conflict`] if taken,
    /// [`StoreError::NotFound`] if its consumer or user does not exist (SQL
    /// stores).
    async fn insert_oauth1_token(&self, token: &OAuth1TokenRecord) -> Result<(), StoreError>;

    /// The token, if any (expired ones included: the caller checks).
    async fn oauth1_token(&self, token: &str) -> Result<Option<OAuth1TokenRecord>, StoreError>;

    /// Marks a request token authorized by `user_id` with a verifier
    /// digest; `false` when there is no such unauthorized request token.
    async fn authorize_request_token(
        &self,
        token: &str,
        user_id: i64,
        verifier_digest: &str,
    ) -> Result<bool, StoreError>;

    /// Deletes a token; `true` if it existed. Exchanging a request token
    /// deletes it first, so only one exchange can win.
    async fn delete_oauth1_token(&self, token: &str) -> Result<bool, StoreError>;
}

#[async_trait]
impl<T: OAuth1Store + ?Sized> OAuth1Store for Arc<T> {
    async fn create_consumer(&self, consumer: &ConsumerRecord) -> Result<(), StoreError> {
        (**self).create_consumer(consumer).await
    }
    async fn consumer(&self, consumer_key: &str) -> Result<Option<ConsumerRecord>, StoreError> {
        (**self).consumer(consumer_key).await
    }
    async fn insert_oauth1_token(&self, token: &OAuth1TokenRecord) -> Result<(), StoreError> {
        (**self).insert_oauth1_token(token).await
    }
    async fn oauth1_token(&self, token: &str) -> Result<Option<OAuth1TokenRecord>, StoreError> {
        (**self).oauth1_token(token).await
    }
    async fn authorize_request_token(
        &self,
        token: &str,
        user_id: i64,
        verifier_digest: &str,
    ) -> Result<bool, StoreError> {
        (**self)
            .authorize_request_token(token, user_id, verifier_digest)
            .await
    }
    async fn delete_oauth1_token(&self, token: &str) -> Result<bool, StoreError> {
        (**self).delete_oauth1_token(token).await
    }
}

#[derive(Default)]
struct Inner {
    consumers: HashMap<String, ConsumerRecord>,
    tokens: HashMap<String, OAuth1TokenRecord>,
}

/// OAuth 1.0a consumers and tokens in process memory, for tests and
/// single-process apps; clones share them.
#[derive(Clone, Default)]
pub struct MemoryOAuth1Store {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for MemoryOAuth1Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.lock();
        f.debug_struct("MemoryOAuth1Store")
            .field("consumers", &g.consumers.len())
            .field("tokens", &g.tokens.len())
            .finish()
    }
}

impl MemoryOAuth1Store {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl OAuth1Store for MemoryOAuth1Store {
    async fn create_consumer(&self, consumer: &ConsumerRecord) -> Result<(), StoreError> {
        check_oauth1_id(&consumer.consumer_key)?;
        let mut g = self.lock();
        if g.consumers.contains_key(&consumer.consumer_key) {
            return Err(StoreError::Conflict("consumer key".into()));
        }
        g.consumers
            .insert(consumer.consumer_key.clone(), consumer.clone());
        Ok(())
    }

    async fn consumer(&self, consumer_key: &str) -> Result<Option<ConsumerRecord>, StoreError> {
        Ok(self.lock().consumers.get(consumer_key).cloned())
    }

    async fn insert_oauth1_token(&self, token: &OAuth1TokenRecord) -> Result<(), StoreError> {
        check_oauth1_id(&token.token)?;
        let mut g = self.lock();
        if !g.consumers.contains_key(&token.consumer_key) {
            return Err(StoreError::NotFound("consumer".into()));
        }
        if g.tokens.contains_key(&token.token) {
            return Err(StoreError::Conflict("token".into()));
        }
        g.tokens.insert(token.token.clone(), token.clone());
        Ok(())
    }

    async fn oauth1_token(&self, token: &str) -> Result<Option<OAuth1TokenRecord>, StoreError> {
        Ok(self.lock().tokens.get(token).cloned())
    }

    async fn authorize_request_token(
        &self,
        token: &str,
        user_id: i64,
        verifier_digest: &str,
    ) -> Result<bool, StoreError> {
        let mut g = self.lock();
        match g.tokens.get_mut(token) {
            Some(t) if t.kind == TokenKind::Request && t.user_id.is_none() => {
                t.user_id = Some(user_id);
                t.verifier_digest = Some(verifier_digest.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_oauth1_token(&self, token: &str) -> Result<bool, StoreError> {
        Ok(self.lock().tokens.remove(token).is_some())
    }
}
