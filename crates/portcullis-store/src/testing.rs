//! A fresh database for every test (feature `testing`).
//!
//! Each helper creates a new, empty database with a random name
//! (`pc_t_…`) and returns its URL; connect a store to it and run its
//! `migrate`. The servers are found through environment variables:
//!
//! | helper | variable | default |
//! |---|---|---|
//! | [`fresh_postgres_url`] | `PORTCULLIS_TEST_POSTGRES_URL` | `postgres://postgres@127.0.0.1:5432/test` |
//! | [`fresh_mysql_url`] | `PORTCULLIS_TEST_MYSQL_URL` | `mysql://root@127.0.0.1:3306/test` |
//! | [`fresh_sqlite_url`] | none: a file in the directory you give | |
//! | [`redis_url`] (with [`fresh_redis_prefix`]) | `PORTCULLIS_TEST_REDIS_URL` | `redis://127.0.0.1:6379` |
//!
//! The variable names a database the user can connect to and create
//! databases from. When the server cannot be reached the helper **panics**
//! with a message saying which variable to set: a test never passes by
//! skipping silently.
//!
//! [`drop_database`] removes a database these helpers created (best effort;
//! it refuses any other name); [`DropOnExit`] does it when it goes out of
//! scope, so a failing test cleans up too.
//!
//! ```no_run
//! # async fn demo() {
//! use portcullis_store::{testing, Store};
//!
//! let url = testing::fresh_postgres_url().await;
//! let _cleanup = testing::DropOnExit::new(&url);
//! let store = Store::connect(&url).await.unwrap();
//! store.migrate().await.unwrap();
//! // … the test; the database is dropped when `_cleanup` is …
//! # }
//! ```
//!
//! Enable it for your tests only:
//!
//! ```toml
//! [dev-dependencies]
//! portcullis-store = { workspace = true, features = ["testing", "postgres", "mysql"] }
//! ```

use std::path::Path;

use rand::Rng;

/// The variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "PORTCULLIS_TEST_POSTGRES_URL";
/// The PostgreSQL server used when [`POSTGRES_URL_VAR`] is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The variable naming the MariaDB/MySQL server for tests.
pub const MYSQL_URL_VAR: &str = "PORTCULLIS_TEST_MYSQL_URL";
/// The MariaDB/MySQL server used when [`MYSQL_URL_VAR`] is unset.
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The variable naming the Redis server for tests.
pub const REDIS_URL_VAR: &str = "PORTCULLIS_TEST_REDIS_URL";
/// The Redis server used when [`REDIS_URL_VAR`] is unset.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The Redis server for tests: [`REDIS_URL_VAR`] if set, else
/// [`DEFAULT_REDIS_URL`]. Tests share it; give each its own key prefix
/// ([`fresh_redis_prefix`]) so they can run in parallel.
pub fn redis_url() -> String {
    std::env::var(REDIS_URL_VAR)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned())
}

/// A new key prefix, `pc_t_<16 hex digits>:`, unique to one test.
pub fn fresh_redis_prefix() -> String {
    format!("{}:", fresh_name())
}

/// The prefix of every database name these helpers make.
const PREFIX: &str = "pc_t_";

/// A new database name: the prefix and 16 random hex digits.
fn fresh_name() -> String {
    format!("{PREFIX}{:016x}", rand::thread_rng().gen::<u64>())
}

/// Whether a name is one [`fresh_name`] made, so safe to put in SQL
/// unquoted and to drop.
fn is_fresh_name(name: &str) -> bool {
    name.strip_prefix(PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// The server URL for tests: the variable if set, else the default.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
fn server_url(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// `url` with its password replaced by `***`, for messages.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `url` pointing at database `name` instead (query string kept).
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The database a server URL names (its path), if any.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
fn database_of(url: &str) -> Option<&str> {
    let base = url.split('?').next()?;
    let after = base.split_once("://")?.1;
    let path = &after[after.find('/')? + 1..];
    (!path.is_empty()).then_some(path)
}

/// Connects one connection to the test server or panics saying how to fix it.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn admin_connection<C: sqlx::Connection>(url: &str, engine: &str, var: &str) -> C {
    let connect = tokio::time::timeout(std::time::Duration::from_secs(10), C::connect(url));
    match connect.await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "portcullis-store testing: cannot connect to the {engine} test server at {}: {e}. \
             Start it, or set {var} to a server where this user may create databases.",
            redact(url)
        ),
        Err(_) => panic!(
            "portcullis-store testing: the {engine} test server at {} did not answer within \
             10 seconds. Start it, or set {var}.",
            redact(url)
        ),
    }
}

/// Creates an empty PostgreSQL database and returns its URL.
///
/// # Panics
///
/// When the server named by `PORTCULLIS_TEST_POSTGRES_URL` (default
/// `postgres://postgres@127.0.0.1:5432/test`) cannot be reached or refuses
/// to create the database.
#[cfg(feature = "postgres")]
pub async fn fresh_postgres_url() -> String {
    use sqlx::Connection;

    let server = server_url(POSTGRES_URL_VAR, DEFAULT_POSTGRES_URL);
    let mut conn: sqlx::PgConnection =
        admin_connection(&server, "PostgreSQL", POSTGRES_URL_VAR).await;
    let name = fresh_name();
    // `name` is checked to be `pc_t_` and hex digits; identifiers cannot
    // be bound as parameters.
    debug_assert!(is_fresh_name(&name));
    if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
    {
        panic!(
            "portcullis-store testing: cannot create a database on the PostgreSQL test server \
             at {}: {e}. Set {POSTGRES_URL_VAR} to a user who may.",
            redact(&server)
        );
    }
    let _ = conn.close().await;
    with_database(&server, &name)
}

/// Creates an empty MariaDB/MySQL database (utf8mb4) and returns its URL.
///
/// # Panics
///
/// When the server named by `PORTCULLIS_TEST_MYSQL_URL` (default
/// `mysql://root@127.0.0.1:3306/test`) cannot be reached or refuses to
/// create the database.
#[cfg(feature = "mysql")]
pub async fn fresh_mysql_url() -> String {
    use sqlx::Connection;

    let server = server_url(MYSQL_URL_VAR, DEFAULT_MYSQL_URL);
    let mut conn: sqlx::MySqlConnection =
        admin_connection(&server, "MariaDB/MySQL", MYSQL_URL_VAR).await;
    let name = fresh_name();
    debug_assert!(is_fresh_name(&name));
    if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        .execute(&mut conn)
        .await
    {
        panic!(
            "portcullis-store testing: cannot create a database on the MariaDB/MySQL test \
             server at {}: {e}. Set {MYSQL_URL_VAR} to a user who may.",
            redact(&server)
        );
    }
    let _ = conn.close().await;
    with_database(&server, &name)
}

/// A `sqlite://` URL for a new database file in `dir` (a temporary
/// directory the test owns); the file is created on first connect.
pub fn fresh_sqlite_url(dir: &Path) -> String {
    let path = dir.join(format!("{}.db", fresh_name()));
    // `%`, `?` and `#` would be read as URL syntax.
    let path = path
        .display()
        .to_string()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    format!("sqlite://{path}")
}

/// Removes a database made by one of the `fresh_*_url` helpers; close the
/// stores using it first. Best effort: failures are ignored, and a URL
/// whose database name these helpers did not make is left alone.
pub async fn drop_database(url: &str) {
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match scheme.as_str() {
        "sqlite" => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or_default();
            let path = path
                .replace("%3F", "?")
                .replace("%23", "#")
                .replace("%25", "%");
            let is_ours = Path::new(&path)
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(is_fresh_name);
            if is_ours {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            use sqlx::Connection;
            let Some(name) = database_of(url).filter(|n| is_fresh_name(n)) else {
                return;
            };
            let server = server_url(POSTGRES_URL_VAR, DEFAULT_POSTGRES_URL);
            if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        }
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => {
            use sqlx::Connection;
            let Some(name) = database_of(url).filter(|n| is_fresh_name(n)) else {
                return;
            };
            let server = server_url(MYSQL_URL_VAR, DEFAULT_MYSQL_URL);
            if let Ok(mut conn) = sqlx::MySqlConnection::connect(&server).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        }
        _ => {}
    }
}

/// Drops a database made by a `fresh_*_url` helper when it goes out of
/// scope, also when the test panics.
///
/// Dropping runs [`drop_database`] on a thread of its own with its own
/// runtime, so it works inside `#[tokio::test]`; it blocks until done.
#[derive(Debug)]
#[must_use = "the database is dropped when this value is"]
pub struct DropOnExit {
    url: String,
}

impl DropOnExit {
    /// Drops the database at `url` when the returned value is dropped.
    pub fn new(url: &str) -> Self {
        DropOnExit {
            url: url.to_owned(),
        }
    }
}

impl Drop for DropOnExit {
    fn drop(&mut self) {
        let url = std::mem::take(&mut self.url);
        let cleanup = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&url));
            }
        });
        let _ = cleanup.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_are_random_and_recognised() {
        let (a, b) = (fresh_name(), fresh_name());
        assert_ne!(a, b);
        assert!(is_fresh_name(&a));
        assert!(!is_fresh_name("test"));
        assert!(!is_fresh_name("pc_t_"));
        assert!(!is_fresh_name("pc_t_x; DROP TABLE"));
    }

    #[test]
    fn with_database_replaces_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "pc_t_1"),
            "postgres://postgres@127.0.0.1:5432/pc_t_1"
        );
        assert_eq!(
            with_database("mysql://root@h:3306", "pc_t_1"),
            "mysql://root@h:3306/pc_t_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "pc_t_1"),
            "postgres://u:p@h/pc_t_1?sslmode=disable"
        );
    }

    #[test]
    fn database_of_reads_the_path() {
        assert_eq!(
            database_of("mysql://root@h:3306/pc_t_1?x=y"),
            Some("pc_t_1")
        );
        assert_eq!(database_of("mysql://root@h:3306"), None);
    }

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(
            redact("postgres://u:hunter2@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
    }

    #[test]
    fn sqlite_urls_are_in_the_directory() {
        let url = fresh_sqlite_url(Path::new("/tmp/a?b"));
        assert!(url.starts_with("sqlite:///tmp/a%3Fb/pc_t_"), "{url}");
    }

    #[tokio::test]
    async fn drop_database_removes_a_fresh_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_sqlite_url(dir.path());
        let path = url.trim_start_matches("sqlite://").to_owned();
        std::fs::write(&path, b"").unwrap();
        drop_database(&url).await;
        assert!(!Path::new(&path).exists());
    }

    #[tokio::test]
    async fn drop_database_leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.db");
        std::fs::write(&path, b"").unwrap();
        drop_database(&format!("sqlite://{}", path.display())).await;
        assert!(path.exists());
    }
}
