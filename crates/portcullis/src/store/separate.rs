//! [`SeparateSessions`]: users and tokens in one store, sessions in
//! another (say, the users in PostgreSQL and the sessions in Redis).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    DigestMac, NewUser, Ping, SessionRecord, SessionStore, StoreError, TokenRecord, TokenStore,
    UserAdmin, UserStore,
};
use crate::identity::User;
use crate::scheme::digest::DigestStore;
use crate::scheme::hawk::{HawkCredential, HawkStore};

/// A store that keeps its sessions apart: every session call goes to
/// `T`, everything else to `S`.
///
/// A session is read in two steps, the session from `T`, then its user
/// from `S` (the default [`SessionStore::session_with_user`]), since no
/// single query reaches both. Deleting a user through
/// [`UserAdmin::delete_user`] deletes the user's sessions in `T` first,
/// then the user in `S`, so a failure in between leaves sessions of a
/// user who still exists, never sessions of one who is gone. [`Ping`]
/// asks both.
///
/// ```
/// use portcullis::store::{
///     MemoryStore, NewUser, SeparateSessions, SessionRecord, SessionStore, UserAdmin,
/// };
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let users = MemoryStore::new();
/// let sessions = MemoryStore::new();
/// let store = SeparateSessions::new(users.clone(), sessions.clone());
/// let new = || NewUser { username: "ada".into(), is_active: true, ..Default::default() };
/// let ada = store.create_user(new()).await.unwrap();
/// // A MemoryStore keeps sessions of its own users only.
/// sessions.create_user(new()).await.unwrap();
/// let session = SessionRecord {
///     key_digest: "v1$0a".into(),
///     user_id: ada.id,
///     data: serde_json::json!({}),
///     expires: chrono::Utc::now() + chrono::Duration::hours(1),
/// };
/// store.save_session(&session).await.unwrap();
/// assert!(sessions.load_session("v1$0a").await.unwrap().is_some());
/// assert!(users.load_session("v1$0a").await.unwrap().is_none());
/// let (_, user) = store.session_with_user("v1$0a").await.unwrap().unwrap();
/// assert_eq!(user.unwrap().username, "ada");
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct SeparateSessions<S, T> {
    inner: S,
    sessions: T,
}

impl<S, T> SeparateSessions<S, T> {
    /// Users, tokens and the rest from `inner`; sessions from `sessions`.
    pub fn new(inner: S, sessions: T) -> Self {
        SeparateSessions { inner, sessions }
    }

    /// The store of everything but sessions.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The session store.
    pub fn sessions(&self) -> &T {
        &self.sessions
    }
}

#[async_trait]
impl<S: UserStore, T: Send + Sync + 'static> UserStore for SeparateSessions<S, T> {
    type User = S::User;

    async fn user_by_id(&self, id: i64) -> Result<Option<Self::User>, StoreError> {
        self.inner.user_by_id(id).await
    }

    fn user_by_id_cached(&self, id: i64) -> Option<Self::User> {
        self.inner.user_by_id_cached(id)
    }

    fn remembers_reads(&self) -> bool {
        self.inner.remembers_reads()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<Self::User>, StoreError> {
        self.inner.user_by_username(username).await
    }

    fn user_by_username_cached(&self, username: &str) -> Option<Self::User> {
        self.inner.user_by_username_cached(username)
    }

    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        self.inner.set_password_hash(id, hash).await
    }

    async fn touch_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.touch_last_login(id, at).await
    }

    async fn create_remote_user(&self, username: &str) -> Result<Self::User, StoreError> {
        self.inner.create_remote_user(username).await
    }
}

#[async_trait]
impl<S: UserAdmin, T: SessionStore> UserAdmin for SeparateSessions<S, T> {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.inner.create_user(user).await
    }

    async fn set_active(&self, id: i64, active: bool) -> Result<(), StoreError> {
        self.inner.set_active(id, active).await
    }

    async fn delete_user(&self, id: i64) -> Result<(), StoreError> {
        self.sessions.delete_user_sessions(id, None).await?;
        self.inner.delete_user(id).await
    }
}

#[async_trait]
impl<S: UserStore + TokenStore, T: Send + Sync + 'static> TokenStore for SeparateSessions<S, T> {
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
        self.inner.token_with_user(digest).await
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

/// Every call but the joined read goes to `T` unchanged; the joined read
/// is the trait's default: `T`'s session, then `S`'s user.
#[async_trait]
impl<S: Send + Sync + 'static, T: SessionStore> SessionStore for SeparateSessions<S, T> {
    async fn load_session(&self, key_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.sessions.load_session(key_digest).await
    }

    fn load_session_cached(&self, mac: &DigestMac) -> Option<Arc<SessionRecord>> {
        self.sessions.load_session_cached(mac)
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.sessions.save_session(session).await
    }

    async fn delete_session(&self, key_digest: &str) -> Result<(), StoreError> {
        self.sessions.delete_session(key_digest).await
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.sessions.delete_user_sessions(user_id, keep).await
    }

    async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
        self.sessions.purge_expired_sessions().await
    }
}

#[async_trait]
impl<S: Ping, T: Ping> Ping for SeparateSessions<S, T> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await?;
        self.sessions.ping().await
    }
}

#[async_trait]
impl<S: DigestStore, T: Send + Sync + 'static> DigestStore for SeparateSessions<S, T> {
    async fn realm_digest(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        self.inner.realm_digest(user_id).await
    }

    async fn set_realm_digest(&self, user_id: i64, sealed: Option<&str>) -> Result<(), StoreError> {
        self.inner.set_realm_digest(user_id, sealed).await
    }
}

#[async_trait]
impl<S: HawkStore, T: Send + Sync + 'static> HawkStore for SeparateSessions<S, T> {
    async fn hawk_credential(&self, id: &str) -> Result<Option<HawkCredential>, StoreError> {
        self.inner.hawk_credential(id).await
    }

    async fn insert_hawk_credential(&self, credential: &HawkCredential) -> Result<(), StoreError> {
        self.inner.insert_hawk_credential(credential).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn session(user_id: i64, digest: &str) -> SessionRecord {
        SessionRecord {
            key_digest: digest.into(),
            user_id,
            data: serde_json::json!({"k": 1}),
            expires: Utc::now() + chrono::Duration::hours(1),
        }
    }

    /// Ada in both stores: a `MemoryStore` keeps sessions of its own users
    /// only.
    async fn ada(users: &MemoryStore, sessions: &MemoryStore) -> User {
        let new = || NewUser {
            username: "ada".into(),
            is_active: true,
            ..Default::default()
        };
        sessions.create_user(new()).await.unwrap();
        users.create_user(new()).await.unwrap()
    }

    #[tokio::test]
    async fn deleting_a_user_deletes_the_sessions_kept_apart() {
        let (users, sessions) = (MemoryStore::new(), MemoryStore::new());
        let store = SeparateSessions::new(users.clone(), sessions.clone());
        let ada = ada(&users, &sessions).await;
        store.save_session(&session(ada.id, "a")).await.unwrap();
        store.save_session(&session(ada.id, "b")).await.unwrap();
        store.delete_user(ada.id).await.unwrap();
        assert_eq!(sessions.load_session("a").await.unwrap(), None);
        assert_eq!(sessions.load_session("b").await.unwrap(), None);
        assert_eq!(users.user_by_id(ada.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn sessions_down_fails_the_joined_read_and_the_ping_closed() {
        let (users, sessions) = (MemoryStore::new(), MemoryStore::new());
        let store = SeparateSessions::new(users.clone(), sessions.clone());
        let ada = ada(&users, &sessions).await;
        store.save_session(&session(ada.id, "a")).await.unwrap();
        sessions.set_down(true);
        assert!(matches!(
            store.session_with_user("a").await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(store.ping().await.is_err());
        // A user whose sessions cannot be deleted is not deleted either.
        assert!(store.delete_user(ada.id).await.is_err());
        assert!(users.user_by_id(ada.id).await.unwrap().is_some());
        // The users' side answers on its own.
        assert!(store.user_by_id(ada.id).await.unwrap().is_some());
    }
}
