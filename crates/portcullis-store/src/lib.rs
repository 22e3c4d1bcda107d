//! # portcullis-store
//!
//! SQL backends for [`portcullis`]: they implement the core's
//! store traits ([`UserStore`], [`UserAdmin`], [`TokenStore`],
//! [`SessionStore`], [`Ping`]) on SQLite, PostgreSQL and MariaDB/MySQL with
//! [`sqlx`], and [`Store`] picks one at run time from a database URL.
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
//! PostgreSQL and MariaDB connections take TLS (rustls, the system's
//! trusted certificates) from the URL's own parameters: `sslmode=prefer`
//! (the default: TLS when offered, certificate unchecked), `require`,
//! `verify-full` (`sslrootcert=PATH` for a private CA) or `disable`;
//! `ssl-mode=PREFERRED` (the default), `REQUIRED` or `VERIFY_IDENTITY`
//! (`ssl-ca=PATH`). A mode that requires TLS refuses a server without it.
//! [`RedisStore`] takes `rediss://` for TLS.
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
//! digests of their keys and disappear with their user. Every SQL store
//! (and [`Store`]) is also a [`JwtBlacklist`](portcullis::jwt::JwtBlacklist):
//! simplejwt's outstanding and blacklisted refresh tokens, by `jti` only
//! (`portcullis_jwt_outstanding`, `portcullis_jwt_blacklisted`).
//! Each is also an [`OAuth2Store`](portcullis::oauth2::OAuth2Store):
//! clients, tokens and codes by keyed digest (`portcullis_oauth2_client`,
//! `portcullis_oauth2_token`).
//! Every SQL store is also a
//! [`DigestStore`](portcullis::scheme::digest::DigestStore) and a
//! [`HawkStore`](portcullis::scheme::hawk::HawkStore) (migration `0005`):
//! realm digests for HTTP Digest (`portcullis_digest_ha1`) and Hawk
//! credentials (`portcullis_hawk_credential`), both sealed with the secret
//! key and gone with their user.
//! (`portcullis_jwt_outstanding`, `portcullis_jwt_blacklisted`). They are
//! also a [`SignatureKeyStore`](portcullis::scheme::httpsig::SignatureKeyStore)
//! (HTTP Message Signatures keys, `portcullis_signature_key`) and an
//! [`OAuth1Store`](portcullis::scheme::oauth1::OAuth1Store) (OAuth 1.0a
//! consumers and tokens, `portcullis_oauth1_consumer`,
//! `portcullis_oauth1_token`), migration `0006`; shared secrets there are
//! sealed with the secret key.
//!
//! Usernames are case-sensitive on every engine: `ada` and `Ada` are two
//! users. On MariaDB the username column uses `utf8mb4_bin`, a PAD SPACE
//! collation, so a username differing only by trailing spaces counts as a
//! duplicate (as it does under Django); look-ups still return only the exact
//! name. Timestamps are UTC with microsecond precision.
//!
//! ## Batched reads
//!
//! The reads every authenticated request makes when nothing is cached
//! (`user_by_id`, `token_with_user`, `session_with_user`, and for OAuth2
//! Bearer `OAuth2Store::token` and the joined
//! `OAuth2UserStore::oauth2_token_with_user`) are coalesced:
//! while one such query runs, the same reads of other requests wait, and
//! the next query fetches all their keys at once (`IN (…)`; on
//! PostgreSQL `IN (SELECT unnest($1))`, one array parameter; at most 64
//! keys).
//! Under load this turns many round trips into one; a lone request still
//! gets its own query at once. Nothing is remembered between queries:
//! every read is answered by a query that started after it was asked, so
//! a write that finished before the read began is always seen. When the
//! query fails, every read in its batch fails with the same error. While
//! such reads keep coming, their queries run one after another on one
//! connection, which goes back to the pool when none waits, after a
//! failed query, at least once a second, and after every query while the
//! pool has no other connection to give.
//!
//! ## Connections
//!
//! The PostgreSQL and MariaDB pools made by `connect` ping a connection
//! before handing it out only when it has sat idle for a second or more
//! (sqlx's default pings before every use, a second round trip on every
//! query). So after the database restarts, idle connections are found out
//! and replaced before use; a connection that breaks while in use fails
//! its query (with [`StoreError::Unavailable`]) and is then dropped. The
//! SQLite pool never pings: a connection to a local file does not go stale.
//! Pools passed to `from_pool` are used as they are.
//!
//! ## Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `sqlite` | yes | [`SqliteStore`] |
//! | `postgres` | no | [`PostgresStore`] |
//! | `mysql` | no | [`MySqlStore`] (MariaDB and MySQL) |
//! | `redis` | no | [`RedisStore`]: throttle counts, login lockouts, replay-cache nonces and sessions shared by several servers, and the caches' invalidation bus between them |
//! | `testing` | no | the `testing` module: a fresh database for every test |
//!
//! [`Store`] has a variant for each SQL feature enabled and exists when at
//! least one is.
//!
//! ## Login lockout and throttle counts
//!
//! Every SQL store (and [`Store`]) is also a
//! [`LockoutStore`](portcullis::lockout::LockoutStore): failed logins are
//! counted in `portcullis_login_failure` (migration `0003`), one statement
//! (or one transaction on MariaDB) a call and no cache, so `portcullis
//! unlock` run from another process reaches a running server at once.
//! [`RedisStore`] (feature `redis`) is a `LockoutStore` and a
//! [`RateStore`](portcullis::throttle::RateStore), for throttle budgets
//! shared by several servers, and a
//! [`SessionStore`]: with
//! [`SeparateSessions`](portcullis::store::SeparateSessions), users and
//! tokens stay in SQL and sessions go to Redis.
//!
//! ## Errors
//!
//! Driver errors are mapped in one place, [`map_sqlx_error`]: a unique
//! violation is [`StoreError::Conflict`], a foreign-key violation
//! [`StoreError::NotFound`], a database that cannot be reached
//! [`StoreError::Unavailable`], anything else [`StoreError::Backend`].

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod any;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod batch;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod digest_hawk;
mod error;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod httpsig;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod jwt;
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis"
))]
mod millis;
#[cfg(feature = "mysql")]
mod mysql;
mod oauth1;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod oauth2;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_json;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use any::Store;
pub use error::map_sqlx_error;
#[cfg(feature = "mysql")]
pub use mysql::MySqlStore;
pub use portcullis::store::{
    NewUser, Ping, SessionRecord, SessionStore, StoreError, TokenRecord, TokenStore, UserAdmin,
    UserStore,
};
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
