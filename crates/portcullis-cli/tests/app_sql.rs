//! The reference app's suite (tests/common/suite.rs) on every SQL engine:
//! SQLite, PostgreSQL and MariaDB, a fresh database per test, and once more
//! on PostgreSQL with the sessions in Redis (a key prefix per test). The servers
//! must be running (`scripts/services`); a test fails, never skips, when one
//! is unreachable. `scripts/test` drops the `pc_t_*` databases afterwards.

#[macro_use]
mod common;

use portcullis::store::SeparateSessions;
use portcullis_store::{testing, RedisStore, Store};

async fn migrated(url: String) -> Store {
    let store = Store::connect(&url)
        .await
        .expect("connect to the test database");
    store.migrate().await.expect("migrate the test database");
    store
}

async fn sqlite_store() -> Store {
    // The directory must outlive the test; it is in the system temp dir.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    migrated(testing::fresh_sqlite_url(&dir)).await
}

async fn postgres_store() -> Store {
    migrated(testing::fresh_postgres_url().await).await
}

async fn mariadb_store() -> Store {
    migrated(testing::fresh_mysql_url().await).await
}

/// PostgreSQL for the users and tokens, Redis for the sessions, as
/// `serve` runs with `redis_sessions`.
async fn postgres_redis_sessions() -> common::RedisSessions {
    let redis = RedisStore::connect(&testing::redis_url())
        .await
        .expect("connect to the test Redis")
        .with_prefix(testing::fresh_redis_prefix());
    SeparateSessions::new(postgres_store().await, redis)
}

app_suite!(sqlite, sqlite_store);
app_suite!(postgres, postgres_store);
app_suite!(mariadb, mariadb_store);
app_suite!(postgres_redis_sessions, postgres_redis_sessions);
