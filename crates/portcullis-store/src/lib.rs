//! # portcullis-store
//!
//! SQL backends for [portcullis](portcullis): they implement the core's
//! store traits ([`UserStore`], [`UserAdmin`], [`TokenStore`],
//! [`SessionStore`], [`Ping`]) on SQLite, PostgreSQL and MariaDB/MySQL with
//! [sqlx](sqlx), and [`Store`] picks one at run time from a database URL.
//!
//! ```
//! use portcullis::store::{NewUser, Ping, UserAdmin};
//! use portcullis_store::Store;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! store.migrate().await.unwrap();
//! assert_eq!(store.kind(), "sqlite");
//! store.ping().await.unwrap();
//! let ada = store
//!     .create_user(NewUser { username: "ada".into(), is_active: true, ..Default::default() })
//!     .await
//!     .unwrap();
//! assert_eq!(ada.username, "ada");
//! # });
//! ```
//!
//! ## URLs
//!
//! | URL | store |
//! |---|---|
//! | `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:` | [`SqliteStore`] (the file is created if missing) |
//! | `postgres://…`, `postgresql://…` | [`PostgresStore`] |
//! | `mysql://…`, `mariadb://…` | [`MySqlStore`] |
//!
//! A database that cannot be reached fails within about three seconds with
//! [`StoreError::Unavailable`]. Errors and `Debug` output never show the URL.
//!
//! ## Schema
//!
//! Migrations are embedded (one directory a dialect, `migrations/`) and run
//! by each store's `migrate`, which is idempotent. The user table is
//! Django's `auth_user`, column for column (with a 64-bit `id`), so users
//! can be copied over from a Django project. After copying rows with
//! explicit ids into PostgreSQL, move the id sequence past them
//! (`SELECT setval(pg_get_serial_sequence('auth_user', 'id'), max(id)) FROM
//! auth_user`), as Django's `sqlsequencereset` does. Tokens
//! (`portcullis_token`) and sessions (`portcullis_session`) keep only keyed
//! digests of their keys and disappear with their user.
//!
//! Usernames are case-sensitive on every engine: `ada` and `Ada` are two
//! users. On MariaDB the username column uses `utf8mb4_bin`, a PAD SPACE
//! collation, so a username differing only by trailing spaces counts as a
//! duplicate (as it does under Django); look-ups still return only the exact
//! name. Timestamps are UTC with microsecond precision.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `sqlite` | yes | [`SqliteStore`] |
//! | `postgres` | no | [`PostgresStore`] |
//! | `mysql` | no | [`MySqlStore`] (MariaDB and MySQL) |
//! | `redis` | no | the Redis client dependency |
//! | `testing` | no | the `testing` module: a fresh database for every test |
//!
//! ## Errors
//!
//! Driver errors are mapped in one place, [`map_sqlx_error`]: a unique
//! violation is [`StoreError::Conflict`], a foreign-key violation
//! [`StoreError::NotFound`], a database that cannot be reached
//! [`StoreError::Unavailable`], anything else [`StoreError::Backend`].

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod error;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
pub use error::map_sqlx_error;
#[cfg(feature = "mysql")]
pub use mysql::MySqlStore;
pub use portcullis::store::{
    NewUser, Ping, SessionRecord, SessionStore, StoreError, TokenRecord, TokenStore, UserAdmin,
    UserStore,
};
use portcullis::User;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use sqlx;

/// The database engine a URL names, read from its scheme.
///
/// ```
/// use portcullis_store::DatabaseKind;
///
/// assert_eq!(DatabaseKind::from_url("sqlite://portcullis.db").unwrap(), DatabaseKind::Sqlite);
/// assert_eq!(DatabaseKind::from_url("postgresql://db/app").unwrap(), DatabaseKind::Postgres);
/// assert_eq!(DatabaseKind::from_url("mariadb://db/app").unwrap(), DatabaseKind::MySql);
/// assert!(DatabaseKind::from_url("redis://cache").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DatabaseKind {
    /// `sqlite://PATH` or `sqlite:PATH`.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
    /// `mysql://…` or `mariadb://…`.
    MySql,
}

/// A database URL portcullis cannot use.
#[derive(Debug, thiserror::Error)]
enum UrlError {
    #[error(
        "unknown database URL scheme `{0}`: expected sqlite:, postgres:, postgresql:, mysql: or mariadb:"
    )]
    UnknownScheme(String),
    #[error("the database URL has no scheme: expected sqlite://PATH, postgres://… or mysql://…")]
    NoScheme,
    #[error("a {expected} store cannot open a {found} URL")]
    WrongStore {
        expected: &'static str,
        found: &'static str,
    },
}

impl DatabaseKind {
    /// The engine a URL's scheme names (case-insensitive). The error names
    /// the scheme, never the rest of the URL.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .filter(|s| {
                s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            })
            .ok_or_else(|| StoreError::backend(UrlError::NoScheme))?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(DatabaseKind::Sqlite),
            "postgres" | "postgresql" => Ok(DatabaseKind::Postgres),
            "mysql" | "mariadb" => Ok(DatabaseKind::MySql),
            _ => Err(StoreError::backend(UrlError::UnknownScheme(
                scheme.to_owned(),
            ))),
        }
    }

    /// `"sqlite"`, `"postgres"` or `"mysql"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::MySql => "mysql",
        }
    }

    /// Checks that a URL is for this engine (used by each store's
    /// `connect`).
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
        allow(dead_code)
    )]
    pub(crate) fn expect(self, url: &str) -> Result<(), StoreError> {
        let found = DatabaseKind::from_url(url)?;
        if found == self {
            Ok(())
        } else {
            Err(StoreError::backend(UrlError::WrongStore {
                expected: self.as_str(),
                found: found.as_str(),
            }))
        }
    }
}

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
            #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
            _ => match *$store {},
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
            #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
            _ => match *self {},
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
impl Ping for Store {
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_case_insensitive() {
        assert_eq!(
            DatabaseKind::from_url("SQLite:x.db").unwrap(),
            DatabaseKind::Sqlite
        );
        assert_eq!(
            DatabaseKind::from_url("sqlite::memory:").unwrap(),
            DatabaseKind::Sqlite
        );
        assert_eq!(
            DatabaseKind::from_url("postgres://u@h/d").unwrap(),
            DatabaseKind::Postgres
        );
        assert_eq!(
            DatabaseKind::from_url("mysql://u@h/d").unwrap(),
            DatabaseKind::MySql
        );
    }

    #[test]
    fn unknown_scheme_names_only_the_scheme() {
        let e = DatabaseKind::from_url("redis://user:hunter2@cache:6379").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("`redis`"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_url_without_scheme_is_refused_without_echoing_it() {
        for url in [
            "portcullis.db",
            "user:hunter2@host/db",
            "/var/db.sqlite",
            "",
        ] {
            let text = DatabaseKind::from_url(url).unwrap_err().to_string();
            assert!(
                text.contains("no scheme") || text.contains("unknown"),
                "{text}"
            );
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn a_store_refuses_another_engines_url() {
        let e = DatabaseKind::Sqlite
            .expect("postgres://u:hunter2@h/d")
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }
}
