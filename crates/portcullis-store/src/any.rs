//! [`Store`]: whichever SQL store a database URL names.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portcullis::lockout::{Failures, LockoutStore};
use portcullis::store::{
    NewUser, Ping, SessionRecord, SessionStore, StoreError, TokenRecord, TokenStore, UserAdmin,
    UserStore,
};
use portcullis::User;

use crate::DatabaseKind;
#[cfg(feature = "mysql")]
use crate::MySqlStore;
#[cfg(feature = "postgres")]
use crate::PostgresStore;
#[cfg(feature = "sqlite")]
use crate::SqliteStore;

/// One of the SQL stores, chosen at run time from a database URL, so a
/// program can hold a single store type whatever the database.
///
/// It implements every store trait by handing the call to the store inside.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Store {
    /// A SQLite database.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
    /// A MariaDB or MySQL database.
    #[cfg(feature = "mysql")]
    MySql(MySqlStore),
}

/// Runs `$body` with `$s` bound to the store inside a [`Store`].
macro_rules! dispatch {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            #[cfg(feature = "sqlite")]
            Store::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            Store::Postgres($s) => $body,
            #[cfg(feature = "mysql")]
            Store::MySql($s) => $body,
        }
    };
}

/// The error for a URL whose engine this build leaves out.
#[cfg_attr(
    all(feature = "sqlite", feature = "postgres", feature = "mysql"),
    allow(dead_code)
)]
fn not_built(kind: DatabaseKind) -> StoreError {
    StoreError::Unsupported(match kind {
        DatabaseKind::Sqlite => "SQLite: portcullis-store was built without the `sqlite` feature",
        DatabaseKind::Postgres => {
            "PostgreSQL: portcullis-store was built without the `postgres` feature"
        }
        DatabaseKind::MySql => {
            "MariaDB/MySQL: portcullis-store was built without the `mysql` feature"
        }
    })
}

impl Store {
    /// Connects to the database a URL names (see the [URL table](crate#urls)).
    ///
    /// Run [`migrate`](Self::migrate) before first use.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let kind = DatabaseKind::from_url(url)?;
        match kind {
            #[cfg(feature = "sqlite")]
            DatabaseKind::Sqlite => SqliteStore::connect(url).await.map(Store::Sqlite),
            #[cfg(feature = "postgres")]
            DatabaseKind::Postgres => PostgresStore::connect(url).await.map(Store::Postgres),
            #[cfg(feature = "mysql")]
            DatabaseKind::MySql => MySqlStore::connect(url).await.map(Store::MySql),
            #[allow(unreachable_patterns)]
            other => Err(not_built(other)),
        }
    }

    /// Creates or upgrades the schema; running it again does nothing.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate().await)
    }

    /// Closes the connection pool.
    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    /// The engine: `"sqlite"`, `"postgres"` or `"mysql"`.
    pub fn kind(&self) -> &'static str {
        self.database_kind().as_str()
    }

    /// The engine as a [`DatabaseKind`].
    pub fn database_kind(&self) -> DatabaseKind {
        match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(_) => DatabaseKind::Sqlite,
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => DatabaseKind::Postgres,
            #[cfg(feature = "mysql")]
            Store::MySql(_) => DatabaseKind::MySql,
        }
    }

    /// Whether this is the embedded SQLite store (one process owns the
    /// database) rather than a server several processes share.
    pub fn is_sqlite(&self) -> bool {
        self.database_kind() == DatabaseKind::Sqlite
    }
}

#[cfg(feature = "sqlite")]
impl From<SqliteStore> for Store {
    fn from(store: SqliteStore) -> Self {
        Store::Sqlite(store)
    }
}

#[cfg(feature = "postgres")]
impl From<PostgresStore> for Store {
    fn from(store: PostgresStore) -> Self {
        Store::Postgres(store)
    }
}

#[cfg(feature = "mysql")]
impl From<MySqlStore> for Store {
    fn from(store: MySqlStore) -> Self {
        Store::MySql(store)
    }
}

#[async_trait]
impl UserStore for Store {
    type User = User;

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        dispatch!(self, s => s.user_by_id(id).await)
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        dispatch!(self, s => s.user_by_username(username).await)
    }

    async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_password_hash(id, hash).await)
    }

    async fn touch_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        dispatch!(self, s => s.touch_last_login(id, at).await)
    }

    async fn create_remote_user(&self, username: &str) -> Result<User, StoreError> {
        dispatch!(self, s => s.create_remote_user(username).await)
    }
}

#[async_trait]
impl UserAdmin for Store {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        dispatch!(self, s => s.create_user(user).await)
    }

    async fn set_active(&self, id: i64, active: bool) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_active(id, active).await)
    }

    async fn delete_user(&self, id: i64) -> Result<(), StoreError> {
        dispatch!(self, s => s.delete_user(id).await)
    }
}

#[async_trait]
impl TokenStore for Store {
    async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        dispatch!(self, s => s.token_by_digest(digest).await)
    }

    async fn token_with_user(
        &self,
        digest: &str,
    ) -> Result<Option<(TokenRecord, Option<User>)>, StoreError> {
        dispatch!(self, s => s.token_with_user(digest).await)
    }

    async fn token_for_user(&self, user_id: i64) -> Result<Option<TokenRecord>, StoreError> {
        dispatch!(self, s => s.token_for_user(user_id).await)
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_token(token).await)
    }

    async fn delete_token(&self, user_id: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_token(user_id).await)
    }
}

#[async_trait]
impl SessionStore for Store {
    async fn load_session(&self, key_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(self, s => s.load_session(key_digest).await)
    }

    async fn session_with_user(
        &self,
        key_digest: &str,
    ) -> Result<Option<(SessionRecord, Option<User>)>, StoreError> {
        dispatch!(self, s => s.session_with_user(key_digest).await)
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.save_session(session).await)
    }

    async fn delete_session(&self, key_digest: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.delete_session(key_digest).await)
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        dispatch!(self, s => s.delete_user_sessions(user_id, keep).await)
    }

    async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.purge_expired_sessions().await)
    }
}

#[async_trait]
impl LockoutStore for Store {
    async fn record_failure(
        &self,
        key: &str,
        now: SystemTime,
        cooloff: Duration,
    ) -> Result<u32, StoreError> {
        dispatch!(self, s => s.record_failure(key, now, cooloff).await)
    }

    async fn failures(&self, key: &str, now: SystemTime) -> Result<Option<Failures>, StoreError> {
        dispatch!(self, s => s.failures(key, now).await)
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        dispatch!(self, s => LockoutStore::clear(s, key).await)
    }
}

#[async_trait]
impl Ping for Store {
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }
}
