//! [`SharedUsers`]: a store whose users are shared (`Arc<User>`), so that
//! a cache in front of it hands a request its user without copying it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    DigestMac, Ping, SessionRecord, SessionStore, StoreError, TokenRecord, TokenStore, UserStore,
};
use crate::scheme::digest::DigestStore;
use crate::scheme::hawk::{HawkCredential, HawkStore};

/// A store that answers with `Arc<S::User>` instead of `S::User`.
///
/// Every read, write and join goes to `S` unchanged; only the users it
/// returns are wrapped. Put a [`CachedStore`](crate::cache::CachedStore)
/// in front of it: the cache then holds shared users, and a request whose
/// credentials it recognises gets its user for the price of a reference
/// count, instead of a copy of the user and its strings (and freeing that
/// copy when the request ends). Build the policy for `Arc<User>`; handlers
/// read the user through the `Arc` as before.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use portcullis::cache::CachedStore;
/// use portcullis::scheme::token::{TokenAuth, Tokens};
/// use portcullis::store::{MemoryStore, NewUser, SharedUsers, UserAdmin, UserStore};
/// use portcullis::{Policy, SecretKey, User};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let memory = MemoryStore::new();
/// let new = NewUser { username: "ada".into(), is_active: true, ..Default::default() };
/// let ada = memory.create_user(new).await.unwrap();
///
/// let store = CachedStore::new(SharedUsers::new(memory), Duration::from_secs(5));
/// let first: Arc<User> = store.user_by_id(ada.id).await.unwrap().unwrap();
/// let again = store.user_by_id(ada.id).await.unwrap().unwrap();
/// assert!(Arc::ptr_eq(&first, &again), "the cache hands out the same user");
///
/// let tokens = Tokens::new(store, SecretKey::new([7u8; 32]).unwrap());
/// let policy = Policy::<Arc<User>>::new().scheme(TokenAuth::new(tokens));
/// # let _ = policy;
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct SharedUsers<S> {
    inner: S,
}

impl<S> SharedUsers<S> {
    /// `inner`, answering with shared users.
    pub fn new(inner: S) -> Self {
        SharedUsers { inner }
    }

    /// The store inside.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The store inside, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// A record read together with its user, the user shared.
fn share<R, U>(pair: Option<(R, Option<U>)>) -> Option<(R, Option<Arc<U>>)> {
    pair.map(|(record, user)| (record, user.map(Arc::new)))
}

#[async_trait]
impl<S: UserStore> UserStore for SharedUsers<S> {
    type User = Arc<S::User>;

    async fn user_by_id(&self, id: i64) -> Result<Option<Self::User>, StoreError> {
        Ok(self.inner.user_by_id(id).await?.map(Arc::new))
    }

    fn user_by_id_cached(&self, id: i64) -> Option<Self::User> {
        self.inner.user_by_id_cached(id).map(Arc::new)
    }

    fn remembers_reads(&self) -> bool {
        self.inner.remembers_reads()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<Self::User>, StoreError> {
        Ok(self.inner.user_by_username(username).await?.map(Arc::new))
    }

    fn user_by_username_cached(&self, username: &str) -> Option<Self::User> {
        self.inner.user_by_username_cached(username).map(Arc::new)
    }

    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        self.inner.set_password_hash(id, hash).await
    }

    async fn touch_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.touch_last_login(id, at).await
    }

    async fn create_remote_user(&self, username: &str) -> Result<Self::User, StoreError> {
        self.inner.create_remote_user(username).await.map(Arc::new)
    }
}

#[async_trait]
impl<S: UserStore + TokenStore> TokenStore for SharedUsers<S> {
    async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.token_by_digest(digest).await
    }

    fn token_by_digest_cached(&self, mac: &DigestMac) -> Option<Arc<TokenRecord>> {
        self.inner.token_by_digest_cached(mac)
    }

    async fn token_with_user(
        &self,
        digest: &str,
    ) -> Result<Option<(TokenRecord, Option<<Self as UserStore>::User>)>, StoreError> {
        Ok(share(self.inner.token_with_user(digest).await?))
    }

    async fn token_for_user(&self, user_id: i64) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.token_for_user(user_id).await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.inner.insert_token(token).await
    }

    async fn delete_token(&self, user_id: i64) -> Result<bool, StoreError> {
        self.inner.delete_token(user_id).await
    }
}

#[async_trait]
impl<S: UserStore + SessionStore> SessionStore for SharedUsers<S> {
    async fn load_session(&self, key_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.load_session(key_digest).await
    }

    fn load_session_cached(&self, mac: &DigestMac) -> Option<Arc<SessionRecord>> {
        self.inner.load_session_cached(mac)
    }

    async fn session_with_user(
        &self,
        key_digest: &str,
    ) -> Result<Option<(SessionRecord, Option<<Self as UserStore>::User>)>, StoreError> {
        Ok(share(self.inner.session_with_user(key_digest).await?))
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.inner.save_session(session).await
    }

    async fn delete_session(&self, key_digest: &str) -> Result<(), StoreError> {
        self.inner.delete_session(key_digest).await
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.inner.delete_user_sessions(user_id, keep).await
    }

    async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
        self.inner.purge_expired_sessions().await
    }
}

#[async_trait]
impl<S: Ping> Ping for SharedUsers<S> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[async_trait]
impl<S: DigestStore> DigestStore for SharedUsers<S> {
    async fn realm_digest(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        self.inner.realm_digest(user_id).await
    }

    async fn set_realm_digest(&self, user_id: i64, sealed: Option<&str>) -> Result<(), StoreError> {
        self.inner.set_realm_digest(user_id, sealed).await
    }
}

#[async_trait]
impl<S: HawkStore> HawkStore for SharedUsers<S> {
    async fn hawk_credential(&self, id: &str) -> Result<Option<HawkCredential>, StoreError> {
        self.inner.hawk_credential(id).await
    }

    async fn insert_hawk_credential(&self, credential: &HawkCredential) -> Result<(), StoreError> {
        self.inner.insert_hawk_credential(credential).await
    }
}

#[cfg(feature = "oauth2")]
#[async_trait]
impl<S: crate::oauth2::OAuth2UserStore> crate::oauth2::OAuth2UserStore for SharedUsers<S> {
    async fn oauth2_token_with_user(
        &self,
        digest: &str,
    ) -> Result<Option<(crate::oauth2::OAuth2Token, Option<Self::User>)>, StoreError> {
        Ok(share(self.inner.oauth2_token_with_user(digest).await?))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::CachedStore;
    use crate::identity::{AuthUser, User};
    use crate::store::{MemoryStore, NewUser, UserAdmin};

    async fn setup() -> (MemoryStore, User) {
        let memory = MemoryStore::new();
        let ada = memory
            .create_user(NewUser {
                username: "ada".into(),
                password_hash: "pbkdf2_sha256$1$salt$hash".into(),
                is_active: true,
                is_staff: true,
                ..Default::default()
            })
            .await
            .unwrap();
        (memory, ada)
    }

    fn token(user_id: i64) -> TokenRecord {
        TokenRecord {
            user_id,
            digest: "v1$t".into(),
            sealed_key: "sealed".into(),
            created: Utc::now(),
        }
    }

    fn session(user_id: i64) -> SessionRecord {
        SessionRecord {
            key_digest: "v1$s".into(),
            user_id,
            data: serde_json::json!({}),
            expires: Utc::now() + chrono::Duration::hours(1),
        }
    }

    #[tokio::test]
    async fn every_read_answers_what_the_store_inside_answers() {
        let (memory, ada) = setup().await;
        let shared = SharedUsers::new(memory.clone());
        shared.insert_token(&token(ada.id)).await.unwrap();
        shared.save_session(&session(ada.id)).await.unwrap();

        let by_id = shared.user_by_id(ada.id).await.unwrap().unwrap();
        assert_eq!(*by_id, ada);
        let by_name = shared.user_by_username("ada").await.unwrap().unwrap();
        assert_eq!(*by_name, ada);
        assert!(shared.user_by_username("ADA").await.unwrap().is_none());
        assert!(shared.user_by_id(ada.id + 1).await.unwrap().is_none());
        // The trait's answers come through the Arc.
        assert_eq!(by_id.username(), "ada");
        assert!(by_id.is_staff() && by_id.is_active() && !by_id.is_superuser());
        assert_eq!(by_id.password_hash(), ada.password);

        let (t, user) = shared.token_with_user("v1$t").await.unwrap().unwrap();
        assert_eq!((t.user_id, user.as_deref()), (ada.id, Some(&ada)));
        let (s, user) = shared.session_with_user("v1$s").await.unwrap().unwrap();
        assert_eq!((s.user_id, user.as_deref()), (ada.id, Some(&ada)));
        assert!(shared.token_with_user("v1$x").await.unwrap().is_none());

        // Writes reach the store inside.
        shared.set_password_hash(ada.id, "!").await.unwrap();
        assert_eq!(
            memory.user_by_id(ada.id).await.unwrap().unwrap().password,
            "!"
        );
        assert!(shared.delete_token(ada.id).await.unwrap());
        assert!(memory.token_by_digest("v1$t").await.unwrap().is_none());
        assert_eq!(shared.delete_user_sessions(ada.id, None).await.unwrap(), 1);
        assert!(memory.load_session("v1$s").await.unwrap().is_none());
        assert!(!shared.remembers_reads());
    }

    #[tokio::test]
    async fn a_cache_in_front_hands_out_one_shared_user_until_a_write() {
        let (memory, ada) = setup().await;
        let store = CachedStore::new(SharedUsers::new(memory.clone()), Duration::from_secs(60));
        store.insert_token(&token(ada.id)).await.unwrap();
        assert!(store.remembers_reads());

        let first = store.user_by_id(ada.id).await.unwrap().unwrap();
        let cached = store.user_by_id_cached(ada.id).unwrap();
        assert!(Arc::ptr_eq(&first, &cached));
        let (_, joined) = store.token_with_user("v1$t").await.unwrap().unwrap();
        assert_eq!(joined.as_deref(), Some(&ada));

        // A write through the cache drops the shared user: the next read
        // sees the new row, not the old Arc.
        store.set_password_hash(ada.id, "!").await.unwrap();
        assert!(store.user_by_id_cached(ada.id).is_none());
        let fresh = store.user_by_id(ada.id).await.unwrap().unwrap();
        assert!(!Arc::ptr_eq(&first, &fresh));
        assert_eq!(fresh.password, "!");
        assert_eq!(first.password, ada.password, "readers keep what they read");
    }
}
