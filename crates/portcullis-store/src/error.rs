//! One mapping from sqlx's errors into the core's [`StoreError`].
//!
//! Classification uses the driver's structured information only
//! ([`ErrorKind`], SQLSTATE classes, SQLite result codes), never the text of
//! a message. The resulting error texts never carry values from the query
//! (a duplicate username, a token digest) or the connection URL: callers add
//! their own non-secret context with [`relabel`].

use portcullis::store::StoreError;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::migrate::MigrateError;

/// What kind of failure a sqlx error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Conflict,
    NotFound,
    Unavailable,
    Backend,
}

fn classify(error: &sqlx::Error) -> Class {
    match error {
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => Class::Conflict,
            ErrorKind::ForeignKeyViolation => Class::NotFound,
            _ if database_unavailable(db.as_ref()) => Class::Unavailable,
            _ => Class::Backend,
        },
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => Class::Unavailable,
        sqlx::Error::Migrate(m) => match m.as_ref() {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)
                if classify(e) == Class::Unavailable =>
            {
                Class::Unavailable
            }
            _ => Class::Backend,
        },
        _ => Class::Backend,
    }
}

/// Database errors that mean "cannot be served now" rather than "this
/// statement is wrong".
fn database_unavailable(db: &dyn DatabaseError) -> bool {
    #[cfg(feature = "sqlite")]
    if let Some(e) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        // Primary result codes: SQLITE_BUSY (5), SQLITE_LOCKED (6),
        // SQLITE_IOERR (10), SQLITE_CANTOPEN (14).
        return e
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 14));
    }
    // SQLSTATE classes (PostgreSQL, MariaDB/MySQL): 08 connection exception,
    // 28 invalid authorization, 53 insufficient resources (too many
    // connections), 57P operator intervention (shutdown, cannot connect now).
    db.code().is_some_and(|c| {
        c.starts_with("08") || c.starts_with("28") || c.starts_with("53") || c.starts_with("57P")
    })
}

/// Maps a sqlx error into a [`StoreError`].
///
/// | sqlx error | `StoreError` |
/// |---|---|
/// | database error of kind [`ErrorKind::UniqueViolation`] | [`Conflict`](StoreError::Conflict) |
/// | database error of kind [`ErrorKind::ForeignKeyViolation`] | [`NotFound`](StoreError::NotFound) |
/// | pool timed out or closed, I/O, TLS, protocol, crashed SQLite worker; SQLSTATE classes 08, 28, 53, 57P; SQLite busy, locked, I/O, cannot open | [`Unavailable`](StoreError::Unavailable) |
/// | anything else | [`Backend`](StoreError::Backend) |
///
/// Use it for your own queries on a store's [`pool`](crate::SqliteStore::pool).
pub fn map_sqlx_error(error: sqlx::Error) -> StoreError {
    match classify(&error) {
        Class::Conflict => StoreError::Conflict(match &error {
            sqlx::Error::Database(db) => match db.constraint() {
                Some(c) => format!("unique constraint {c}"),
                None => "unique constraint".to_owned(),
            },
            _ => "unique constraint".to_owned(),
        }),
        Class::NotFound => StoreError::NotFound("referenced row".to_owned()),
        Class::Unavailable => StoreError::unavailable(error),
        Class::Backend => StoreError::backend(error),
    }
}

/// Maps a migration failure; a database that cannot be reached is
/// [`Unavailable`](StoreError::Unavailable), anything else
/// [`Backend`](StoreError::Backend).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) fn map_migrate_error(error: MigrateError) -> StoreError {
    map_sqlx_error(sqlx::Error::Migrate(Box::new(error)))
}

/// Maps an error and names what conflicted or was missing, in the words of
/// the operation (`"username"`, `"user 7"`), never with secret values.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) fn relabel(error: sqlx::Error, conflict: &str, missing: &str) -> StoreError {
    match map_sqlx_error(error) {
        StoreError::Conflict(_) => StoreError::Conflict(conflict.to_owned()),
        StoreError::NotFound(_) => StoreError::NotFound(missing.to_owned()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeout_is_unavailable() {
        assert!(map_sqlx_error(sqlx::Error::PoolTimedOut).is_unavailable());
    }

    #[test]
    fn io_error_is_unavailable() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(map_sqlx_error(sqlx::Error::Io(io)).is_unavailable());
    }

    #[test]
    fn row_not_found_is_backend() {
        assert!(matches!(
            map_sqlx_error(sqlx::Error::RowNotFound),
            StoreError::Backend(_)
        ));
    }

    #[test]
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    fn unreachable_migration_is_unavailable() {
        let e = MigrateError::Execute(sqlx::Error::PoolTimedOut);
        assert!(map_migrate_error(e).is_unavailable());
    }

    #[test]
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    fn relabel_keeps_other_classes() {
        let e = relabel(sqlx::Error::PoolClosed, "username", "user 1");
        assert!(e.is_unavailable());
    }
}
