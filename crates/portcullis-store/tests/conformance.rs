//! One suite, every backend: the in-memory store from the core, SQLite,
//! PostgreSQL, MariaDB, and each SQL engine again through [`Store`].
//!
//! Every test gets a database of its own (`portcullis_store::testing`).
//! PostgreSQL and MariaDB must be running (see the `testing` module for the
//! variables naming them); when they are not, their tests fail, never skip.
//!
//! Run: `cargo test -p portcullis-store --all-features`.

use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use portcullis::store::{
    MemoryStore, NewUser, Ping, SeparateSessions, SessionRecord, SessionStore, StoreError,
    TokenRecord, TokenStore, UserAdmin, UserStore,
};
use portcullis_store::{testing, MySqlStore, PostgresStore, RedisStore, SqliteStore, Store};
use serde_json::json;
use tempfile::TempDir;

/// What every backend under test is.
trait Backend: UserAdmin + TokenStore + SessionStore + Ping + Clone {}
impl<S: UserAdmin + TokenStore + SessionStore + Ping + Clone> Backend for S {}

/// A store with its database, removed again when the fixture is dropped
/// (also when the test fails). Fields drop in order: the store first.
struct Fixture<S> {
    store: S,
    _cleanup: Option<testing::DropOnExit>,
    _dir: Option<TempDir>,
}

/// A SQL store that can open a fresh database.
trait Sql: Backend {
    async fn open(url: &str) -> Self;
}

macro_rules! open_sql {
    ($($store:ty),*) => {$(
        impl Sql for $store {
            async fn open(url: &str) -> Self {
                let store = <$store>::connect(url).await.unwrap();
                store.migrate().await.unwrap();
                store
            }
        }
    )*};
}
open_sql!(SqliteStore, PostgresStore, MySqlStore, Store);

/// Opens and migrates the fresh database at `url`, dropping it afterwards.
async fn fresh<S: Sql>(url: String, dir: Option<TempDir>) -> Fixture<S> {
    let cleanup = testing::DropOnExit::new(&url);
    Fixture {
        store: S::open(&url).await,
        _cleanup: Some(cleanup),
        _dir: dir,
    }
}

// ----- set-ups, one per backend -----

async fn memory() -> Fixture<MemoryStore> {
    Fixture {
        store: MemoryStore::new(),
        _cleanup: None,
        _dir: None,
    }
}

fn sqlite_url() -> (String, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (testing::fresh_sqlite_url(dir.path()), dir)
}

async fn sqlite() -> Fixture<SqliteStore> {
    let (url, dir) = sqlite_url();
    fresh(url, Some(dir)).await
}

async fn postgres() -> Fixture<PostgresStore> {
    fresh(testing::fresh_postgres_url().await, None).await
}

async fn mysql() -> Fixture<MySqlStore> {
    fresh(testing::fresh_mysql_url().await, None).await
}

async fn store_sqlite() -> Fixture<Store> {
    let (url, dir) = sqlite_url();
    fresh(url, Some(dir)).await
}

async fn store_postgres() -> Fixture<Store> {
    fresh(testing::fresh_postgres_url().await, None).await
}

async fn store_mysql() -> Fixture<Store> {
    fresh(testing::fresh_mysql_url().await, None).await
}

/// SQLite for the users and tokens, Redis (a key prefix of its own) for
/// the sessions, as `serve` runs with `redis_sessions`.
async fn sqlite_redis_sessions() -> Fixture<SeparateSessions<SqliteStore, RedisStore>> {
    let Fixture {
        store,
        _cleanup,
        _dir,
    } = sqlite().await;
    let redis = RedisStore::connect(&testing::redis_url())
        .await
        .unwrap_or_else(|e| panic!("the Redis test server is unreachable ({e})"))
        .with_prefix(testing::fresh_redis_prefix());
    Fixture {
        store: SeparateSessions::new(store, redis),
        _cleanup,
        _dir,
    }
}

// ----- helpers -----

fn new_user(username: &str) -> NewUser {
    NewUser {
        username: username.to_owned(),
        email: format!("{username}@example.com"),
        password_hash: "pbkdf2_sha256$870000$salt$hash".to_owned(),
        is_active: true,
        ..NewUser::default()
    }
}

fn token(user_id: i64, digest: &str) -> TokenRecord {
    TokenRecord {
        user_id,
        digest: digest.to_owned(),
        sealed_key: format!("sealed-{digest}"),
        created: Utc::now().trunc_subsecs(6),
    }
}

fn session(key: &str, user_id: i64, expires_in: chrono::Duration) -> SessionRecord {
    SessionRecord {
        key_digest: key.to_owned(),
        user_id,
        // Text that JSON must escape, and numbers at the edges, come back
        // as they went in (SQLite's batched reads carry `data` inside JSON).
        data: json!({
            "_auth_user_id": user_id.to_string(),
            "cart": [1, 2, {"x": "ü"}],
            "note": "a \"quoted\" \\ line\nbreak\u{1}",
            "numbers": [u64::MAX, i64::MIN, 0.1, 1.5e300, -0.0],
        }),
        expires: (Utc::now() + expires_in).trunc_subsecs(6),
    }
}

fn hour() -> chrono::Duration {
    chrono::Duration::hours(1)
}

// ----- the suite: one behaviour a function -----

async fn create_and_get_by_id_and_username<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    assert!(ada.id > 0);
    assert_eq!(ada.username, "ada");
    assert_eq!(ada.email, "ada@example.com");
    assert_eq!(ada.password, "pbkdf2_sha256$870000$salt$hash");
    assert!(ada.is_active && !ada.is_staff && !ada.is_superuser);
    assert_eq!(ada.last_login, None);
    assert!((Utc::now() - ada.date_joined).num_seconds().abs() < 60);
    assert_eq!(s.user_by_id(ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(s.user_by_username("ada").await.unwrap(), Some(ada.clone()));
    let bob = s.create_user(new_user("bob")).await.unwrap();
    assert_ne!(bob.id, ada.id);
    assert_eq!(s.user_by_id(bob.id).await.unwrap(), Some(bob));
}

async fn missing_users_are_none<S: Backend>(s: &S) {
    assert_eq!(s.user_by_id(424242).await.unwrap(), None);
    assert_eq!(s.user_by_username("nobody").await.unwrap(), None);
}

async fn flags_are_stored_as_given<S: Backend>(s: &S) {
    let admin = s
        .create_user(NewUser {
            is_staff: true,
            is_superuser: true,
            ..new_user("root")
        })
        .await
        .unwrap();
    let staff = s
        .create_user(NewUser {
            is_staff: true,
            is_active: false,
            ..new_user("clerk")
        })
        .await
        .unwrap();
    let got = s.user_by_id(admin.id).await.unwrap().unwrap();
    assert!(got.is_staff && got.is_superuser && got.is_active);
    let got = s.user_by_id(staff.id).await.unwrap().unwrap();
    assert!(got.is_staff && !got.is_superuser && !got.is_active);
}

async fn usernames_are_case_sensitive<S: Backend>(s: &S) {
    let upper = s.create_user(new_user("Ada")).await.unwrap();
    let lower = s.create_user(new_user("ada")).await.unwrap();
    assert_ne!(upper.id, lower.id);
    assert_eq!(
        s.user_by_username("Ada").await.unwrap().unwrap().id,
        upper.id
    );
    assert_eq!(
        s.user_by_username("ada").await.unwrap().unwrap().id,
        lower.id
    );
    assert_eq!(s.user_by_username("ADA").await.unwrap(), None);
    assert_eq!(s.user_by_username("ada ").await.unwrap(), None);
}

async fn duplicate_username_is_conflict<S: Backend>(s: &S) {
    s.create_user(new_user("ada")).await.unwrap();
    let err = s.create_user(new_user("ada")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let err = s.create_remote_user("ada").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn unicode_usernames<S: Backend>(s: &S) {
    let names = [
        "Zoë", "Zoe", "用户", "straße", "strasse", "🦀crab", "ÅSA", "åsa",
    ];
    let mut ids = Vec::new();
    for name in names {
        let u = s.create_user(new_user(name)).await.unwrap();
        assert_eq!(u.username, name);
        ids.push(u.id);
    }
    for (name, id) in names.iter().zip(&ids) {
        let got = s.user_by_username(name).await.unwrap().unwrap();
        assert_eq!((got.id, got.username.as_str()), (*id, *name));
    }
    let err = s.create_user(new_user("用户")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn set_active_toggles<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    s.set_active(ada.id, false).await.unwrap();
    assert!(!s.user_by_id(ada.id).await.unwrap().unwrap().is_active);
    // Setting the value it already has still finds the user.
    s.set_active(ada.id, false).await.unwrap();
    s.set_active(ada.id, true).await.unwrap();
    assert!(s.user_by_id(ada.id).await.unwrap().unwrap().is_active);
}

async fn set_password_hash_replaces_the_hash<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    s.set_password_hash(ada.id, "argon2$argon2id$new")
        .await
        .unwrap();
    s.set_password_hash(ada.id, "argon2$argon2id$new")
        .await
        .unwrap();
    let got = s.user_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(got.password, "argon2$argon2id$new");
}

async fn touch_last_login_records_the_time<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    let at = (Utc::now() - chrono::Duration::minutes(5)).trunc_subsecs(6);
    s.touch_last_login(ada.id, at).await.unwrap();
    assert_eq!(
        s.user_by_id(ada.id).await.unwrap().unwrap().last_login,
        Some(at)
    );
}

async fn create_remote_user_is_active_without_usable_password<S: Backend>(s: &S) {
    let remote = s.create_remote_user("proxy-user").await.unwrap();
    assert_eq!(remote.username, "proxy-user");
    assert!(remote.is_active && !remote.is_staff && !remote.is_superuser);
    // Unusable: empty (memory) or "!" and random characters (SQL, as Django).
    assert!(remote.password.is_empty() || remote.password.starts_with('!'));
    assert_eq!(
        s.user_by_username("proxy-user").await.unwrap(),
        Some(remote)
    );
}

async fn unknown_ids_are_not_found<S: Backend>(s: &S) {
    for err in [
        s.set_active(424242, true).await.unwrap_err(),
        s.set_password_hash(424242, "x").await.unwrap_err(),
        s.delete_user(424242).await.unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    }
    assert_eq!(s.token_for_user(424242).await.unwrap(), None);
    assert!(!s.delete_token(424242).await.unwrap());
    assert_eq!(s.delete_user_sessions(424242, None).await.unwrap(), 0);
}

async fn delete_user_cascades_token_and_sessions<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    let bob = s.create_user(new_user("bob")).await.unwrap();
    s.insert_token(&token(ada.id, "d-ada")).await.unwrap();
    s.insert_token(&token(bob.id, "d-bob")).await.unwrap();
    s.save_session(&session("s-ada-1", ada.id, hour()))
        .await
        .unwrap();
    s.save_session(&session("s-ada-2", ada.id, hour()))
        .await
        .unwrap();
    s.save_session(&session("s-bob", bob.id, hour()))
        .await
        .unwrap();

    s.delete_user(ada.id).await.unwrap();

    assert_eq!(s.user_by_id(ada.id).await.unwrap(), None);
    assert_eq!(s.user_by_username("ada").await.unwrap(), None);
    assert_eq!(s.token_for_user(ada.id).await.unwrap(), None);
    assert_eq!(s.token_by_digest("d-ada").await.unwrap(), None);
    assert_eq!(s.load_session("s-ada-1").await.unwrap(), None);
    assert_eq!(s.load_session("s-ada-2").await.unwrap(), None);
    // Bob is untouched.
    assert!(s.token_for_user(bob.id).await.unwrap().is_some());
    assert!(s.load_session("s-bob").await.unwrap().is_some());
    // The name is free again.
    s.create_user(new_user("ada")).await.unwrap();
}

async fn tokens_insert_and_look_up<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    let t = token(ada.id, "v1$digest-of-ada");
    s.insert_token(&t).await.unwrap();
    assert_eq!(
        s.token_by_digest("v1$digest-of-ada").await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(s.token_for_user(ada.id).await.unwrap(), Some(t));
    assert_eq!(s.token_by_digest("v1$DIGEST-OF-ADA").await.unwrap(), None);
    assert_eq!(s.token_by_digest("v1$other").await.unwrap(), None);
}

async fn tokens_and_sessions_come_with_their_user<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    let bob = s.create_user(new_user("bob")).await.unwrap();
    let t = token(ada.id, "v1$digest-of-ada");
    s.insert_token(&t).await.unwrap();
    s.insert_token(&token(bob.id, "v1$digest-of-bob"))
        .await
        .unwrap();
    assert_eq!(
        s.token_with_user("v1$digest-of-ada").await.unwrap(),
        Some((t, Some(ada.clone())))
    );
    assert_eq!(s.token_with_user("v1$other").await.unwrap(), None);

    let live = session("s-ada", ada.id, hour());
    s.save_session(&live).await.unwrap();
    s.save_session(&session("s-old", ada.id, -hour()))
        .await
        .unwrap();
    assert_eq!(
        s.session_with_user("s-ada").await.unwrap(),
        Some((live, Some(ada.clone())))
    );
    assert_eq!(s.session_with_user("s-old").await.unwrap(), None, "expired");
    assert_eq!(s.session_with_user("s-none").await.unwrap(), None);

    // The user as stored now, not as it was when the token was made.
    s.set_active(ada.id, false).await.unwrap();
    let (_, user) = s
        .token_with_user("v1$digest-of-ada")
        .await
        .unwrap()
        .unwrap();
    assert!(!user.unwrap().is_active);
    let (_, user) = s.session_with_user("s-ada").await.unwrap().unwrap();
    assert!(!user.unwrap().is_active);
}

/// Many look-ups at once (which the SQL stores answer in batches): each
/// gets its own row, repeated keys the same row, unknown, expired and
/// near-miss keys nothing.
async fn concurrent_reads_each_get_their_own_row<S: Backend + Send + Sync + 'static>(s: &S) {
    let mut users = Vec::new();
    for i in 0..12 {
        // Names that need escaping in JSON or SQL, and a recorded login.
        let name = format!("user{i} \"q\" \\ 'é' \u{1F980}");
        let mut user = s.create_user(new_user(&name)).await.unwrap();
        if i % 2 == 0 {
            let at = Utc::now().trunc_subsecs(6);
            s.touch_last_login(user.id, at).await.unwrap();
            user.last_login = Some(at);
        }
        s.insert_token(&token(user.id, &format!("v1$d-{i}")))
            .await
            .unwrap();
        let ttl = if i % 3 == 0 { -hour() } else { hour() };
        s.save_session(&session(&format!("s-{i}"), user.id, ttl))
            .await
            .unwrap();
        users.push(user);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..3 {
        for i in 0..14 {
            let s = s.clone();
            let user = users.get(i).cloned();
            tasks.spawn(async move {
                let digest = format!("v1$d-{i}");
                let found = s.token_with_user(&digest).await.unwrap();
                match &user {
                    Some(u) => {
                        let (t, tu) = found.unwrap();
                        assert_eq!((t.user_id, t.digest.as_str()), (u.id, digest.as_str()));
                        assert_eq!(tu.as_ref(), Some(u));
                    }
                    None => assert_eq!(found, None, "{digest}"),
                }
                // A key that differs only by case or a trailing space.
                let near = if round == 0 {
                    digest.to_uppercase()
                } else {
                    format!("{digest} ")
                };
                assert_eq!(s.token_with_user(&near).await.unwrap(), None, "{near:?}");

                let key = format!("s-{i}");
                let found = s.session_with_user(&key).await.unwrap();
                match &user {
                    Some(u) if i % 3 != 0 => {
                        let (rec, su) = found.unwrap();
                        assert_eq!((rec.user_id, rec.key_digest.as_str()), (u.id, key.as_str()));
                        assert_eq!(su.as_ref(), Some(u));
                    }
                    _ => assert_eq!(found, None, "{key} is expired or unknown"),
                }

                let id = user.as_ref().map_or(987_654_321, |u| u.id);
                assert_eq!(s.user_by_id(id).await.unwrap(), user);
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

async fn second_token_is_conflict<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    s.insert_token(&token(ada.id, "first")).await.unwrap();
    let err = s.insert_token(&token(ada.id, "second")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        s.token_for_user(ada.id).await.unwrap().unwrap().digest,
        "first"
    );
}

async fn delete_token_reports_whether_there_was_one<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    s.insert_token(&token(ada.id, "d")).await.unwrap();
    assert!(s.delete_token(ada.id).await.unwrap());
    assert!(!s.delete_token(ada.id).await.unwrap());
    assert_eq!(s.token_by_digest("d").await.unwrap(), None);
    // A new token may follow (DRF's regenerate).
    s.insert_token(&token(ada.id, "d2")).await.unwrap();
    assert_eq!(
        s.token_for_user(ada.id).await.unwrap().unwrap().digest,
        "d2"
    );
}

async fn sessions_save_and_load<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    let sess = session("key-1", ada.id, hour());
    s.save_session(&sess).await.unwrap();
    assert_eq!(s.load_session("key-1").await.unwrap(), Some(sess));
    assert_eq!(s.load_session("KEY-1").await.unwrap(), None);
    assert_eq!(s.load_session("missing").await.unwrap(), None);
}

async fn save_session_upserts<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    s.save_session(&session("key-1", ada.id, hour()))
        .await
        .unwrap();
    let mut changed = session("key-1", ada.id, chrono::Duration::days(14));
    changed.data = json!({"theme": "dark"});
    s.save_session(&changed).await.unwrap();
    assert_eq!(s.load_session("key-1").await.unwrap(), Some(changed));
}

async fn expired_sessions_are_ignored_and_purged<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    s.save_session(&session("old-1", ada.id, -hour()))
        .await
        .unwrap();
    s.save_session(&session("old-2", ada.id, -chrono::Duration::seconds(1)))
        .await
        .unwrap();
    s.save_session(&session("live", ada.id, hour()))
        .await
        .unwrap();
    assert_eq!(s.load_session("old-1").await.unwrap(), None);
    assert_eq!(s.load_session("old-2").await.unwrap(), None);
    assert_eq!(s.purge_expired_sessions().await.unwrap(), 2);
    assert_eq!(s.purge_expired_sessions().await.unwrap(), 0);
    assert!(s.load_session("live").await.unwrap().is_some());
    // An expired session can be brought back by saving it again.
    s.save_session(&session("old-1", ada.id, hour()))
        .await
        .unwrap();
    assert!(s.load_session("old-1").await.unwrap().is_some());
}

async fn delete_session_removes_one<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    s.save_session(&session("a", ada.id, hour())).await.unwrap();
    s.save_session(&session("b", ada.id, hour())).await.unwrap();
    s.delete_session("a").await.unwrap();
    s.delete_session("a").await.unwrap();
    assert_eq!(s.load_session("a").await.unwrap(), None);
    assert!(s.load_session("b").await.unwrap().is_some());
}

async fn delete_user_sessions_keeps_one<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    let bob = s.create_user(new_user("bob")).await.unwrap();
    for key in ["a1", "a2", "a3"] {
        s.save_session(&session(key, ada.id, hour())).await.unwrap();
    }
    s.save_session(&session("b1", bob.id, hour()))
        .await
        .unwrap();
    assert_eq!(s.delete_user_sessions(ada.id, Some("a2")).await.unwrap(), 2);
    assert!(s.load_session("a2").await.unwrap().is_some());
    assert_eq!(s.load_session("a1").await.unwrap(), None);
    assert!(s.load_session("b1").await.unwrap().is_some());
    assert_eq!(s.delete_user_sessions(ada.id, None).await.unwrap(), 1);
    assert_eq!(s.load_session("a2").await.unwrap(), None);
    assert!(s.load_session("b1").await.unwrap().is_some());
}

async fn a_session_saved_for_another_user_moves_to_that_user<S: Backend>(s: &S) {
    let ada = s.create_user(new_user("ada")).await.unwrap();
    let bob = s.create_user(new_user("bob")).await.unwrap();
    s.save_session(&session("k", ada.id, hour())).await.unwrap();
    s.save_session(&session("k", bob.id, hour())).await.unwrap();
    assert_eq!(s.delete_user_sessions(ada.id, None).await.unwrap(), 0);
    assert_eq!(s.load_session("k").await.unwrap().unwrap().user_id, bob.id);
    assert_eq!(s.delete_user_sessions(bob.id, None).await.unwrap(), 1);
    assert_eq!(s.load_session("k").await.unwrap(), None);
}

async fn ping_answers<S: Backend>(s: &S) {
    s.ping().await.unwrap();
}

/// One `#[tokio::test]` a behaviour, for one backend's set-up.
macro_rules! suite {
    ($backend:ident, $setup:path) => {
        mod $backend {
            suite!(@tests $setup;
                create_and_get_by_id_and_username,
                missing_users_are_none,
                flags_are_stored_as_given,
                usernames_are_case_sensitive,
                duplicate_username_is_conflict,
                unicode_usernames,
                set_active_toggles,
                set_password_hash_replaces_the_hash,
                touch_last_login_records_the_time,
                create_remote_user_is_active_without_usable_password,
                unknown_ids_are_not_found,
                delete_user_cascades_token_and_sessions,
                tokens_insert_and_look_up,
                tokens_and_sessions_come_with_their_user,
                concurrent_reads_each_get_their_own_row,
                second_token_is_conflict,
                delete_token_reports_whether_there_was_one,
                sessions_save_and_load,
                save_session_upserts,
                expired_sessions_are_ignored_and_purged,
                delete_session_removes_one,
                delete_user_sessions_keeps_one,
                a_session_saved_for_another_user_moves_to_that_user,
                ping_answers,
            );
        }
    };
    (@tests $setup:path; $($test:ident,)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                let fixture = $setup().await;
                super::$test(&fixture.store).await;
            }
        )*
    };
}

suite!(memory_store, super::memory);
suite!(sqlite_store, super::sqlite);
suite!(postgres_store, super::postgres);
suite!(mysql_store, super::mysql);
suite!(store_enum_sqlite, super::store_sqlite);
suite!(store_enum_postgres, super::store_postgres);
suite!(store_enum_mysql, super::store_mysql);
suite!(sqlite_redis_sessions, super::sqlite_redis_sessions);

/// Two servers on one Redis (one prefix) see each other's sessions at
/// once, and ending a user's sessions on one ends them for both.
#[tokio::test]
async fn two_servers_share_sessions_in_redis() {
    let a = sqlite_redis_sessions().await;
    let other = RedisStore::connect(&testing::redis_url())
        .await
        .unwrap()
        .with_prefix(a.store.sessions().prefix());
    let b = SeparateSessions::new(a.store.inner().clone(), other);
    let ada = a.store.create_user(new_user("ada")).await.unwrap();
    a.store
        .save_session(&session("s1", ada.id, hour()))
        .await
        .unwrap();
    let (found, user) = b.session_with_user("s1").await.unwrap().unwrap();
    assert_eq!(
        (found.user_id, user.unwrap().username),
        (ada.id, "ada".into())
    );
    b.save_session(&session("s2", ada.id, hour()))
        .await
        .unwrap();
    assert_eq!(a.store.delete_user_sessions(ada.id, None).await.unwrap(), 2);
    assert_eq!(b.load_session("s1").await.unwrap(), None);
    assert_eq!(b.load_session("s2").await.unwrap(), None);
    // A different prefix is a different set of sessions.
    let elsewhere = RedisStore::connect(&testing::redis_url())
        .await
        .unwrap()
        .with_prefix(testing::fresh_redis_prefix());
    a.store
        .save_session(&session("s3", ada.id, hour()))
        .await
        .unwrap();
    assert_eq!(elsewhere.load_session("s3").await.unwrap(), None);
}

/// Every key the Redis sessions leave behind expires on its own (but the
/// expiry index, which the purge prunes), even when a session is saved
/// long after it expired.
#[tokio::test]
async fn redis_session_keys_all_expire() {
    let f = sqlite_redis_sessions().await;
    let s = &f.store;
    let ada = s.create_user(new_user("ada")).await.unwrap();
    let bob = s.create_user(new_user("bob")).await.unwrap();
    s.save_session(&session("old", ada.id, -chrono::Duration::days(2)))
        .await
        .unwrap();
    s.save_session(&session("live", bob.id, hour()))
        .await
        .unwrap();
    let mut conn = redis::Client::open(testing::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let prefix = s.sessions().prefix().to_owned();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.contains(&format!("{prefix}session:live")), "{keys:?}");
    for key in keys {
        if key == format!("{prefix}session_expiry") {
            continue;
        }
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        // -2: gone since listed; -1 would be a key kept for ever.
        assert!(ttl > 0 || ttl == -2, "{key}: {ttl}");
        if key.ends_with("live") || key.ends_with(&format!(":{}", bob.id)) {
            assert!(ttl > 3_600_000, "{key} outlives its session: {ttl}");
        }
    }
    assert_eq!(s.purge_expired_sessions().await.unwrap(), 0, "old is gone");

    // A session whose hash Redis dropped, saved again for another user,
    // stays when the first user's sessions end.
    s.save_session(&session("k", ada.id, hour())).await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}session:k"))
        .query_async(&mut conn)
        .await
        .unwrap();
    s.save_session(&session("k", bob.id, hour())).await.unwrap();
    assert_eq!(s.delete_user_sessions(ada.id, None).await.unwrap(), 0);
    assert_eq!(s.load_session("k").await.unwrap().unwrap().user_id, bob.id);
    assert_eq!(s.delete_user_sessions(bob.id, None).await.unwrap(), 2);
}

/// A bus with nothing to say publishes heartbeats, which its listeners
/// never see (they would read as "drop everything").
#[tokio::test]
async fn an_idle_bus_sends_heartbeats_that_listeners_never_see() {
    use std::sync::{Arc, Mutex};

    use portcullis::cache::Invalidation;

    let store = RedisStore::connect(&testing::redis_url())
        .await
        .unwrap_or_else(|e| panic!("the Redis test server is unreachable ({e})"))
        .with_prefix(testing::fresh_redis_prefix());
    let mut raw = redis::Client::open(testing::redis_url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    raw.subscribe(store.invalidation_channel()).await.unwrap();
    let (bus, task) = store.invalidation_bus();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    bus.listen(move |m| log.lock().unwrap().push(m.clone()));
    let task = tokio::spawn(task);
    let first = tokio::time::timeout(Duration::from_secs(8), async {
        use futures_util::StreamExt as _;
        raw.on_message().next().await.unwrap()
    })
    .await
    .expect("a heartbeat within 8 s");
    assert_eq!(first.get_payload::<String>().unwrap(), "heartbeat");
    // Give the bus's own subscription time to hear it too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*seen.lock().unwrap(), [Invalidation::All]);
    task.abort();
}

/// The caches' bus over Redis pub/sub: what one server publishes, every
/// server on the same prefix hears (after an `All` when it subscribes);
/// another prefix hears nothing.
#[tokio::test]
async fn invalidations_travel_between_servers_through_redis() {
    use std::sync::{Arc, Mutex};

    use portcullis::cache::Invalidation;

    let prefix = testing::fresh_redis_prefix();
    let connect = |prefix: String| async move {
        RedisStore::connect(&testing::redis_url())
            .await
            .unwrap_or_else(|e| panic!("the Redis test server is unreachable ({e})"))
            .with_prefix(prefix)
    };
    let (a, b) = (connect(prefix.clone()).await, connect(prefix).await);
    let elsewhere = connect(testing::fresh_redis_prefix()).await;
    let (bus_a, task_a) = a.invalidation_bus();
    let mut tasks = vec![tokio::spawn(task_a)];
    let mut heard = Vec::new();
    for store in [&b, &elsewhere] {
        let (bus, task) = store.invalidation_bus();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        bus.listen(move |m| log.lock().unwrap().push(m.clone()));
        tasks.push(tokio::spawn(task));
        heard.push(seen);
    }
    let wait_for = |seen: &Arc<Mutex<Vec<Invalidation>>>, want: Invalidation| {
        let seen = seen.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !seen.lock().unwrap().contains(&want) {
                assert!(Instant::now() < deadline, "{want:?} never arrived");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // Subscribed: each starts by dropping everything.
    wait_for(&heard[0], Invalidation::All).await;
    wait_for(&heard[1], Invalidation::All).await;
    bus_a.publish(Invalidation::User(7));
    wait_for(&heard[0], Invalidation::User(7)).await;
    // A command publishes without a bus.
    let gone = Invalidation::Session("v1$00ff".into());
    a.publish_invalidation(&gone).await.unwrap();
    wait_for(&heard[0], gone).await;
    assert_eq!(*heard[1].lock().unwrap(), [Invalidation::All]);
    for task in tasks {
        task.abort();
    }
}

// ----- what only the SQL stores promise -----

/// Migrating twice changes nothing; rows survive.
async fn migrate_twice_is_fine(store: &Store) {
    let ada = store.create_user(new_user("ada")).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.user_by_id(ada.id).await.unwrap(), Some(ada));
}

/// Tokens and sessions must belong to a user that exists (on SQLite this
/// proves `foreign_keys` is on).
async fn orphans_are_not_found(store: &Store) {
    let err = store
        .insert_token(&token(424242, "orphan"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = store
        .save_session(&session("orphan", 424242, hour()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

/// A digest belongs to one token only.
async fn duplicate_digest_is_conflict(store: &Store) {
    let ada = store.create_user(new_user("ada")).await.unwrap();
    let bob = store.create_user(new_user("bob")).await.unwrap();
    store.insert_token(&token(ada.id, "same")).await.unwrap();
    let err = store
        .insert_token(&token(bob.id, "same"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

/// Conflict errors name the field, never the stored values.
async fn conflict_text_leaks_no_digest(store: &Store) {
    let ada = store.create_user(new_user("ada")).await.unwrap();
    let bob = store.create_user(new_user("bob")).await.unwrap();
    store
        .insert_token(&token(ada.id, "secret-digest"))
        .await
        .unwrap();
    let err = store
        .insert_token(&token(bob.id, "secret-digest"))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("secret-digest"), "{err}");
}

/// The SQL engine matches the URL.
async fn kind_matches_the_url(store: &Store, kind: &str) {
    assert_eq!(store.kind(), kind);
    assert_eq!(store.is_sqlite(), kind == "sqlite");
}

macro_rules! sql_suite {
    ($backend:ident, $setup:path, $kind:literal) => {
        mod $backend {
            #[tokio::test]
            async fn migrate_twice_is_fine() {
                let f = $setup().await;
                super::migrate_twice_is_fine(&f.store).await;
            }

            #[tokio::test]
            async fn orphans_are_not_found() {
                let f = $setup().await;
                super::orphans_are_not_found(&f.store).await;
            }

            #[tokio::test]
            async fn duplicate_digest_is_conflict() {
                let f = $setup().await;
                super::duplicate_digest_is_conflict(&f.store).await;
            }

            #[tokio::test]
            async fn conflict_text_leaks_no_digest() {
                let f = $setup().await;
                super::conflict_text_leaks_no_digest(&f.store).await;
            }

            #[tokio::test]
            async fn kind_matches_the_url() {
                let f = $setup().await;
                super::kind_matches_the_url(&f.store, $kind).await;
            }
        }
    };
}

sql_suite!(sql_sqlite, super::store_sqlite, "sqlite");
sql_suite!(sql_postgres, super::store_postgres, "postgres");
sql_suite!(sql_mysql, super::store_mysql, "mysql");

// ----- a database that is down -----

/// Connecting to a closed port fails with `Unavailable` soon, and the error
/// shows neither the URL nor its password.
async fn down_is_unavailable_quickly(url: &str) {
    let started = Instant::now();
    let err = Store::connect(url).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn postgres_down_is_unavailable_quickly() {
    down_is_unavailable_quickly("postgres://ada:hunter2@127.0.0.1:1/app").await;
}

#[tokio::test]
async fn mysql_down_is_unavailable_quickly() {
    down_is_unavailable_quickly("mysql://ada:hunter2@127.0.0.1:1/app").await;
}

#[tokio::test]
async fn mariadb_scheme_down_is_unavailable_quickly() {
    down_is_unavailable_quickly("mariadb://ada:hunter2@127.0.0.1:1/app").await;
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/no/such/dir/db.sqlite", dir.path().display());
    down_is_unavailable_quickly(&url).await;
}

#[tokio::test]
async fn a_closed_store_is_unavailable() {
    let f = store_sqlite().await;
    f.store.close().await;
    let err = f.store.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

// ----- URLs -----

#[tokio::test]
async fn unknown_scheme_is_a_clear_error() {
    let err = Store::connect("redis://:hunter2@127.0.0.1:6379")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("unknown database URL scheme `redis`"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn a_url_for_another_engine_is_refused() {
    let err = SqliteStore::connect("postgres://127.0.0.1/app")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot open a postgres URL"),
        "{err}"
    );
}

#[tokio::test]
async fn sqlite_urls_with_and_without_slashes() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("sqlite://{}/a.db", dir.path().display()),
        format!("sqlite:{}/b.db", dir.path().display()),
        "sqlite::memory:".to_owned(),
    ] {
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store.create_user(new_user("ada")).await.unwrap();
        assert!(store.is_sqlite());
        store.close().await;
    }
    assert!(dir.path().join("a.db").exists() && dir.path().join("b.db").exists());
}

#[tokio::test]
async fn sqlite_data_survives_reconnecting() {
    let (url, _dir) = sqlite_url();
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let ada = store.create_user(new_user("ada")).await.unwrap();
    store.close().await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.user_by_username("ada").await.unwrap(), Some(ada));
}

#[tokio::test]
async fn debug_shows_no_password() {
    // The test server trusts local connections, so any password connects;
    // a URL that already has one keeps it.
    let url = testing::fresh_postgres_url().await;
    let _cleanup = testing::DropOnExit::new(&url);
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let (with_password, secret) = match user.split_once(':') {
        Some((_, password)) => (url.clone(), password.to_owned()),
        None => (
            format!("{scheme}://{user}:hunter2@{host}"),
            "hunter2".to_owned(),
        ),
    };
    let store = Store::connect(&with_password).await.unwrap();
    let debug = format!("{store:?}");
    assert!(
        !debug.contains(&secret) && !debug.contains("pc_t_"),
        "{debug}"
    );
    store.close().await;
}

#[tokio::test]
async fn drop_on_exit_removes_the_database() {
    let url = testing::fresh_postgres_url().await;
    {
        let _cleanup = testing::DropOnExit::new(&url);
        let store = PostgresStore::connect(&url).await.unwrap();
        store.ping().await.unwrap();
        // The pool stays open: the drop must not wait for it.
    }
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(!matches!(err, StoreError::Unavailable(_)) || err.to_string().contains("exist"));
}

/// A username no engine can store (a NUL byte, hostile length) is simply
/// not found: hostile input must never become a store error (a 5xx).
#[tokio::test]
async fn hostile_usernames_are_not_found_on_every_engine() {
    use portcullis::store::UserStore;
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        portcullis_store::testing::fresh_sqlite_url(dir.path()),
        portcullis_store::testing::fresh_postgres_url().await,
        portcullis_store::testing::fresh_mysql_url().await,
    ];
    for url in urls {
        let _guard = portcullis_store::testing::DropOnExit::new(&url);
        let store = portcullis_store::Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        for name in ["\0", "a\0b", &"\0".repeat(12_000), &"x".repeat(20_000)] {
            assert!(
                store.user_by_username(name).await.unwrap().is_none(),
                "{} on {}",
                name.len(),
                store.kind()
            );
        }
    }
}

// ----- the JWT blacklist (simplejwt's token_blacklist app) -----

mod jwt_blacklist {
    //! [`JwtBlacklist`] on the core's [`MemoryBlacklist`] and on every SQL
    //! engine, directly and through [`Store`].

    use chrono::{DateTime, Duration, SubsecRound, Utc};
    use portcullis::jwt::{JwtBlacklist, MemoryBlacklist, OutstandingToken};
    use portcullis::store::{MemoryStore, UserAdmin};
    use portcullis_store::{MySqlStore, PostgresStore, SqliteStore, Store};

    use super::Fixture;

    fn now() -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }

    fn tok(jti: &str, user_id: Option<i64>, expires_in_secs: i64) -> OutstandingToken {
        OutstandingToken {
            jti: jti.to_owned(),
            user_id,
            created_at: now(),
            expires_at: now() + Duration::seconds(expires_in_secs),
        }
    }

    async fn record_then_blacklist<U: UserAdmin, B: JwtBlacklist>(users: &U, b: &B) {
        let ada = users.create_user(super::new_user("ada")).await.unwrap();
        let t = tok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Some(ada.id), 3600);
        b.record_outstanding(&t).await.unwrap();
        assert!(!b.is_blacklisted(&t.jti).await.unwrap());
        assert!(b.blacklist(&t).await.unwrap());
        assert!(b.is_blacklisted(&t.jti).await.unwrap());
        // Another token is untouched.
        assert!(!b
            .is_blacklisted("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
            .await
            .unwrap());
    }

    async fn duplicate_blacklist_is_idempotent<U: UserAdmin, B: JwtBlacklist>(users: &U, b: &B) {
        let ada = users.create_user(super::new_user("ada")).await.unwrap();
        let t = tok("dup", Some(ada.id), 3600);
        b.record_outstanding(&t).await.unwrap();
        assert!(b.blacklist(&t).await.unwrap());
        assert!(!b.blacklist(&t).await.unwrap());
        assert!(!b.blacklist(&t).await.unwrap());
        assert!(b.is_blacklisted("dup").await.unwrap());
    }

    async fn record_outstanding_is_idempotent<U: UserAdmin, B: JwtBlacklist>(users: &U, b: &B) {
        let ada = users.create_user(super::new_user("ada")).await.unwrap();
        let t = tok("twice", Some(ada.id), 3600);
        b.record_outstanding(&t).await.unwrap();
        b.record_outstanding(&tok("twice", Some(ada.id), -60))
            .await
            .unwrap();
        // The first record stands: flushing now removes nothing.
        assert_eq!(b.flush_expired(now()).await.unwrap(), 0);
        assert!(!b.is_blacklisted("twice").await.unwrap());
    }

    async fn blacklist_records_unseen_tokens<U: UserAdmin, B: JwtBlacklist>(_: &U, b: &B) {
        // Issued before the blacklist was switched on, or by another server.
        let t = tok("never-recorded", None, 3600);
        assert!(b.blacklist(&t).await.unwrap());
        assert!(b.is_blacklisted("never-recorded").await.unwrap());
    }

    async fn tokens_of_missing_users_are_kept<U: UserAdmin, B: JwtBlacklist>(_: &U, b: &B) {
        // A refresh token whose user is gone can still be logged out.
        let t = tok("orphan", Some(424_242), 3600);
        b.record_outstanding(&t).await.unwrap();
        assert!(b.blacklist(&t).await.unwrap());
        assert!(b.is_blacklisted("orphan").await.unwrap());
    }

    async fn jti_compare_exactly<U: UserAdmin, B: JwtBlacklist>(_: &U, b: &B) {
        assert!(b.blacklist(&tok("AbC", None, 3600)).await.unwrap());
        assert!(b.is_blacklisted("AbC").await.unwrap());
        assert!(!b.is_blacklisted("abc").await.unwrap());
        assert!(!b.is_blacklisted("AbC ").await.unwrap());
        assert!(b.blacklist(&tok("abc", None, 3600)).await.unwrap());
    }

    async fn flush_expired_removes_expired_and_their_blacklist<U: UserAdmin, B: JwtBlacklist>(
        users: &U,
        b: &B,
    ) {
        let ada = users.create_user(super::new_user("ada")).await.unwrap();
        b.record_outstanding(&tok("old", Some(ada.id), -10))
            .await
            .unwrap();
        assert!(b
            .blacklist(&tok("old-black", Some(ada.id), -1))
            .await
            .unwrap());
        b.record_outstanding(&tok("live", Some(ada.id), 3600))
            .await
            .unwrap();
        assert!(b.blacklist(&tok("live-black", None, 3600)).await.unwrap());

        assert_eq!(b.flush_expired(now()).await.unwrap(), 2);
        // The expired blacklist entry went with its outstanding token …
        assert!(!b.is_blacklisted("old-black").await.unwrap());
        // … the live ones stay.
        assert!(b.is_blacklisted("live-black").await.unwrap());
        assert!(!b.is_blacklisted("live").await.unwrap());
        assert_eq!(b.flush_expired(now()).await.unwrap(), 0);
        // A flushed jti can be recorded again.
        assert!(b.blacklist(&tok("old-black", None, 60)).await.unwrap());
    }

    /// SQL only: the rows go with their user, and deleting a user with
    /// recorded tokens works.
    async fn delete_user_removes_its_tokens<S: UserAdmin + JwtBlacklist>(s: &S, _: &S) {
        let ada = s.create_user(super::new_user("ada")).await.unwrap();
        let bob = s.create_user(super::new_user("bob")).await.unwrap();
        s.record_outstanding(&tok("ada-1", Some(ada.id), 3600))
            .await
            .unwrap();
        assert!(s
            .blacklist(&tok("ada-2", Some(ada.id), 3600))
            .await
            .unwrap());
        assert!(s
            .blacklist(&tok("bob-1", Some(bob.id), 3600))
            .await
            .unwrap());
        s.delete_user(ada.id).await.unwrap();
        assert_eq!(s.user_by_id(ada.id).await.unwrap(), None);
        assert!(!s.is_blacklisted("ada-2").await.unwrap());
        assert!(s.is_blacklisted("bob-1").await.unwrap());
    }

    async fn memory() -> (Fixture<MemoryStore>, MemoryBlacklist) {
        (super::memory().await, MemoryBlacklist::new())
    }

    fn both<S: Clone>(f: Fixture<S>) -> (Fixture<S>, S) {
        let s = f.store.clone();
        (f, s)
    }

    async fn sqlite() -> (Fixture<SqliteStore>, SqliteStore) {
        both(super::sqlite().await)
    }

    async fn postgres() -> (Fixture<PostgresStore>, PostgresStore) {
        both(super::postgres().await)
    }

    async fn mysql() -> (Fixture<MySqlStore>, MySqlStore) {
        both(super::mysql().await)
    }

    async fn store_sqlite() -> (Fixture<Store>, Store) {
        both(super::store_sqlite().await)
    }

    async fn store_postgres() -> (Fixture<Store>, Store) {
        both(super::store_postgres().await)
    }

    async fn store_mysql() -> (Fixture<Store>, Store) {
        both(super::store_mysql().await)
    }

    /// One `#[tokio::test]` a behaviour, for one backend's set-up.
    macro_rules! blacklist_suite {
        ($backend:ident, $setup:path $(, $extra:ident)*) => {
            mod $backend {
                blacklist_suite!(@tests $setup;
                    record_then_blacklist,
                    duplicate_blacklist_is_idempotent,
                    record_outstanding_is_idempotent,
                    blacklist_records_unseen_tokens,
                    tokens_of_missing_users_are_kept,
                    jti_compare_exactly,
                    flush_expired_removes_expired_and_their_blacklist,
                    $($extra,)*
                );
            }
        };
        (@tests $setup:path; $($test:ident,)*) => {
            $(
                #[tokio::test]
                async fn $test() {
                    let (fixture, blacklist) = $setup().await;
                    super::$test(&fixture.store, &blacklist).await;
                }
            )*
        };
    }

    blacklist_suite!(memory_store, super::memory);
    blacklist_suite!(sqlite_store, super::sqlite, delete_user_removes_its_tokens);
    blacklist_suite!(
        postgres_store,
        super::postgres,
        delete_user_removes_its_tokens
    );
    blacklist_suite!(mysql_store, super::mysql, delete_user_removes_its_tokens);
    blacklist_suite!(
        store_enum_sqlite,
        super::store_sqlite,
        delete_user_removes_its_tokens
    );
    blacklist_suite!(
        store_enum_postgres,
        super::store_postgres,
        delete_user_removes_its_tokens
    );
    blacklist_suite!(
        store_enum_mysql,
        super::store_mysql,
        delete_user_removes_its_tokens
    );
}

// ----- login lockout and throttle counts -----

/// The core's `LockoutStore` semantics on memory, the three SQL engines
/// (directly and through `Store`) and Redis; its `RateStore` semantics on
/// memory and Redis. Each Redis test uses a key prefix of its own, so the
/// tests share one Redis (`PORTCULLIS_TEST_REDIS_URL`, default
/// `redis://127.0.0.1:6379`) in parallel; a Redis that is down fails them.
mod lockout_and_rate {
    use std::collections::BTreeSet;
    use std::time::{Duration, SystemTime};

    use portcullis::lockout::{Failures, LockoutStore, MemoryLockoutStore};
    use portcullis::throttle::{Hit, MemoryRateStore, RateStore};
    use portcullis_store::{testing, RedisStore};

    use super::Fixture;

    const COOLOFF: Duration = Duration::from_secs(900);
    const MIN: Duration = Duration::from_secs(60);

    fn t(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    async fn redis() -> Fixture<RedisStore> {
        let store = RedisStore::connect(&testing::redis_url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the Redis test server at {} is unreachable ({e}); start it or set {}",
                    testing::DEFAULT_REDIS_URL,
                    testing::REDIS_URL_VAR
                )
            })
            .with_prefix(testing::fresh_redis_prefix());
        Fixture {
            store,
            _cleanup: None,
            _dir: None,
        }
    }

    async fn memory_lockout() -> Fixture<MemoryLockoutStore> {
        Fixture {
            store: MemoryLockoutStore::new(),
            _cleanup: None,
            _dir: None,
        }
    }

    async fn memory_rate() -> Fixture<MemoryRateStore> {
        Fixture {
            store: MemoryRateStore::new(),
            _cleanup: None,
            _dir: None,
        }
    }

    // ----- LockoutStore -----

    async fn failures_count_up_and_expire<S: LockoutStore>(s: &S) {
        let k = "lockout:username:ada";
        assert_eq!(s.failures(k, t(0)).await.unwrap(), None);
        assert_eq!(s.record_failure(k, t(0), COOLOFF).await.unwrap(), 1);
        assert_eq!(s.record_failure(k, t(10_000), COOLOFF).await.unwrap(), 2);
        assert_eq!(
            s.failures(k, t(10_000)).await.unwrap(),
            Some(Failures {
                count: 2,
                last_failure: t(10_000)
            })
        );
        // Present until a cool-off after the last failure, gone at it.
        assert!(s.failures(k, t(909_999)).await.unwrap().is_some());
        assert_eq!(s.failures(k, t(910_000)).await.unwrap(), None);
        // A failure after the expiry starts again at one.
        assert_eq!(s.record_failure(k, t(910_000), COOLOFF).await.unwrap(), 1);
    }

    async fn the_cooloff_runs_from_the_last_failure<S: LockoutStore>(s: &S) {
        let k = "lockout:ip:192.0.2.1";
        s.record_failure(k, t(0), COOLOFF).await.unwrap();
        s.record_failure(k, t(800_000), COOLOFF).await.unwrap();
        let f = s.failures(k, t(1_000_000)).await.unwrap().unwrap();
        assert_eq!(f.count, 2);
        assert_eq!(f.last_failure, t(800_000));
        // The cool-off given by the last failure is the one that counts.
        s.record_failure(k, t(1_000_000), secs(1)).await.unwrap();
        assert!(s.failures(k, t(1_000_999)).await.unwrap().is_some());
        assert_eq!(s.failures(k, t(1_001_000)).await.unwrap(), None);
    }

    async fn clear_forgets_one_key<S: LockoutStore>(s: &S) {
        s.record_failure("a", t(0), COOLOFF).await.unwrap();
        s.record_failure("b", t(0), COOLOFF).await.unwrap();
        s.clear("a").await.unwrap();
        s.clear("a").await.unwrap();
        s.clear("never-seen").await.unwrap();
        assert_eq!(s.failures("a", t(1)).await.unwrap(), None);
        assert_eq!(s.failures("b", t(1)).await.unwrap().unwrap().count, 1);
        assert_eq!(s.record_failure("a", t(2), COOLOFF).await.unwrap(), 1);
    }

    async fn keys_compare_exactly<S: LockoutStore>(s: &S) {
        let keys = [
            "lockout:username:ada",
            "lockout:username:Ada",
            "lockout:username:ada ",
            "lockout:username:ádá",
            "lockout:username:adá",
            "lockout:username:'; DROP TABLE portcullis_login_failure; --",
        ];
        for (i, k) in keys.iter().enumerate() {
            for _ in 0..=i {
                s.record_failure(k, t(0), COOLOFF).await.unwrap();
            }
        }
        for (i, k) in keys.iter().enumerate() {
            let f = s.failures(k, t(1)).await.unwrap().unwrap();
            assert_eq!(f.count as usize, i + 1, "{k:?}");
        }
        let long = format!("lockout:username:{}", "é".repeat(75));
        assert_eq!(s.record_failure(&long, t(0), COOLOFF).await.unwrap(), 1);
        assert_eq!(s.failures(&long, t(1)).await.unwrap().unwrap().count, 1);
    }

    async fn concurrent_failures_are_all_counted<S: LockoutStore + Clone>(s: &S) {
        let k = "lockout:username:racer";
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.record_failure(k, t(i), COOLOFF).await.unwrap() })
            })
            .collect();
        let mut counts = BTreeSet::new();
        for task in tasks {
            counts.insert(task.await.unwrap());
        }
        assert_eq!(counts, (1..=20).collect::<BTreeSet<u32>>());
        assert_eq!(s.failures(k, t(100)).await.unwrap().unwrap().count, 20);
    }

    macro_rules! lockout_suite {
        ($backend:ident, $setup:path) => {
            mod $backend {
                lockout_suite!(@tests $setup;
                    failures_count_up_and_expire,
                    the_cooloff_runs_from_the_last_failure,
                    clear_forgets_one_key,
                    keys_compare_exactly,
                    concurrent_failures_are_all_counted,
                );
            }
        };
        (@tests $setup:path; $($test:ident,)*) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let fixture = $setup().await;
                    super::$test(&fixture.store).await;
                }
            )*
        };
    }

    lockout_suite!(memory, super::memory_lockout);
    lockout_suite!(sqlite, super::super::sqlite);
    lockout_suite!(postgres, super::super::postgres);
    lockout_suite!(mysql, super::super::mysql);
    lockout_suite!(store_enum_sqlite, super::super::store_sqlite);
    lockout_suite!(store_enum_postgres, super::super::store_postgres);
    lockout_suite!(store_enum_mysql, super::super::store_mysql);
    lockout_suite!(redis, super::redis);

    // ----- RateStore -----

    async fn a_sliding_window<S: RateStore>(s: &S) {
        assert_eq!(s.hit("k", 2, MIN, t(0)).await.unwrap(), Hit::Allowed);
        assert_eq!(s.hit("k", 2, MIN, t(10_000)).await.unwrap(), Hit::Allowed);
        assert_eq!(
            s.hit("k", 2, MIN, t(15_000)).await.unwrap(),
            Hit::Limited { wait: secs(45) }
        );
        // At exactly now - period the old request no longer counts.
        assert_eq!(s.hit("k", 2, MIN, t(60_000)).await.unwrap(), Hit::Allowed);
        assert_eq!(
            s.hit("k", 2, MIN, t(60_001)).await.unwrap(),
            Hit::Limited {
                wait: Duration::from_millis(9_999)
            }
        );
    }

    async fn refused_hits_are_not_counted<S: RateStore>(s: &S) {
        s.hit("k", 2, MIN, t(0)).await.unwrap();
        s.hit("k", 2, MIN, t(30_000)).await.unwrap();
        for i in 0..10 {
            assert!(matches!(
                s.hit("k", 2, MIN, t(31_000 + i)).await.unwrap(),
                Hit::Limited { .. }
            ));
        }
        assert_eq!(s.hit("k", 2, MIN, t(60_000)).await.unwrap(), Hit::Allowed);
    }

    async fn limits_of_zero_and_lowered_limits<S: RateStore>(s: &S) {
        assert_eq!(
            s.hit("z", 0, MIN, t(0)).await.unwrap(),
            Hit::Limited { wait: MIN }
        );
        for i in 0..3 {
            s.hit("k", 3, MIN, t(i * 10_000)).await.unwrap();
        }
        assert_eq!(
            s.hit("k", 1, MIN, t(25_000)).await.unwrap(),
            Hit::Limited { wait: secs(55) }
        );
    }

    async fn same_millisecond_hits_all_count<S: RateStore>(s: &S) {
        for _ in 0..3 {
            assert_eq!(s.hit("k", 3, MIN, t(5)).await.unwrap(), Hit::Allowed);
        }
        assert!(matches!(
            s.hit("k", 3, MIN, t(5)).await.unwrap(),
            Hit::Limited { .. }
        ));
        assert_eq!(s.hit("other", 3, MIN, t(5)).await.unwrap(), Hit::Allowed);
    }

    async fn concurrent_hits_never_exceed_the_limit<S: RateStore + Clone>(s: &S) {
        let tasks: Vec<_> = (0..30)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.hit("k", 5, MIN, t(0)).await.unwrap() })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            if task.await.unwrap() == Hit::Allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
    }

    macro_rules! rate_suite {
        ($backend:ident, $setup:path) => {
            mod $backend {
                rate_suite!(@tests $setup;
                    a_sliding_window,
                    refused_hits_are_not_counted,
                    limits_of_zero_and_lowered_limits,
                    same_millisecond_hits_all_count,
                    concurrent_hits_never_exceed_the_limit,
                );
            }
        };
        (@tests $setup:path; $($test:ident,)*) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let fixture = $setup().await;
                    super::$test(&fixture.store).await;
                }
            )*
        };
    }

    rate_suite!(rate_memory, super::memory_rate);
    rate_suite!(rate_redis, super::redis);

    /// Two clients with their own connections share one budget.
    #[tokio::test]
    async fn two_redis_clients_share_one_budget() {
        let a = redis().await.store;
        let b = RedisStore::connect(&testing::redis_url())
            .await
            .unwrap()
            .with_prefix(a.prefix().to_owned());
        for s in [&a, &b, &a] {
            assert_eq!(s.hit("k", 3, MIN, t(0)).await.unwrap(), Hit::Allowed);
        }
        assert!(matches!(
            b.hit("k", 3, MIN, t(1)).await.unwrap(),
            Hit::Limited { .. }
        ));
        a.record_failure("f", t(0), COOLOFF).await.unwrap();
        assert_eq!(b.record_failure("f", t(1), COOLOFF).await.unwrap(), 2);
        b.clear("f").await.unwrap();
        assert_eq!(a.failures("f", t(2)).await.unwrap(), None);
    }
}

// ----- replay caches -----

/// The core's `ReplayCache` on memory and on Redis (a key prefix per test),
/// and two Redis clients refusing each other's nonces.
mod replay {
    use std::time::{Duration, SystemTime};

    use portcullis::replay::{MemoryReplayCache, ReplayCache};
    use portcullis_store::{testing, RedisStore};

    async fn redis() -> RedisStore {
        RedisStore::connect(&testing::redis_url())
            .await
            .unwrap_or_else(|e| panic!("the Redis test server is unreachable ({e})"))
            .with_prefix(testing::fresh_redis_prefix())
    }

    async fn once_then_refused(cache: &dyn ReplayCache) {
        let now = SystemTime::now();
        let ttl = Duration::from_secs(30);
        assert!(cache.first_use("n:1", ttl, now).await.unwrap());
        assert!(!cache.first_use("n:1", ttl, now).await.unwrap());
        assert!(cache.first_use("n:2", ttl, now).await.unwrap());
    }

    #[tokio::test]
    async fn memory_accepts_a_nonce_once() {
        once_then_refused(&MemoryReplayCache::new()).await;
    }

    #[tokio::test]
    async fn redis_accepts_a_nonce_once() {
        once_then_refused(&redis().await).await;
    }

    #[tokio::test]
    async fn redis_forgets_a_nonce_after_its_ttl() {
        let cache = redis().await;
        let ttl = Duration::from_millis(50);
        assert!(cache.first_use("n", ttl, SystemTime::now()).await.unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(cache.first_use("n", ttl, SystemTime::now()).await.unwrap());
    }

    #[tokio::test]
    async fn two_redis_clients_share_their_nonces() {
        let a = redis().await;
        let b = RedisStore::connect(&testing::redis_url())
            .await
            .unwrap()
            .with_prefix(a.prefix().to_owned());
        let ttl = Duration::from_secs(30);
        assert!(a.first_use("n", ttl, SystemTime::now()).await.unwrap());
        assert!(!b.first_use("n", ttl, SystemTime::now()).await.unwrap());
    }
}

// ----- OAuth2 clients, tokens and codes (django-oauth-toolkit's tables) -----

mod oauth2 {
    //! [`OAuth2Store`] on the core's [`MemoryOAuth2Store`] and on every SQL
    //! engine, directly and through [`Store`], driven through the
    //! [`OAuth2`] server as the app drives it.

    use chrono::{Duration, TimeZone, Utc};
    use portcullis::oauth2::{
        GrantType, MemoryOAuth2Store, NewClient, OAuth2, OAuth2Error, OAuth2Settings, OAuth2Store,
        OAuth2Token, OAuth2UserStore, TokenKind,
    };
    use portcullis::store::{MemoryStore, StoreError, UserAdmin};
    use portcullis::SecretKey;
    use portcullis::User;
    use portcullis_store::{MySqlStore, PostgresStore, SqliteStore, Store};

    use super::Fixture;

    fn server<O: OAuth2Store + Clone>(store: &O) -> OAuth2 {
        OAuth2::new(
            store.clone(),
            &SecretKey::new([3u8; 32]).unwrap(),
            OAuth2Settings::default(),
        )
    }

    fn new_client() -> NewClient {
        let mut c = NewClient::confidential("Ünïcode app");
        c.redirect_uris = vec![
            "https://app.example/cb".into(),
            "http://127.0.0.1:9/cb?x=1".into(),
        ];
        c.grant_types.push(GrantType::Password);
        c.skip_authorization = true;
        c
    }

    fn row(client_id: &str, digest: &str, family: &str, user_id: Option<i64>) -> OAuth2Token {
        OAuth2Token {
            digest: digest.into(),
            kind: TokenKind::Code,
            client_id: client_id.into(),
            user_id,
            scopes: vec!["read".into()],
            family: family.into(),
            revoked: false,
            expires_at: Some(Utc.timestamp_opt(2_000_000_000, 0).unwrap()),
            redirect_uri: Some("https://app.example/cb".into()),
            code_challenge: Some("c".repeat(43)),
            code_challenge_method: Some("S256".into()),
            created: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        }
    }

    async fn clients_round_trip<U: UserAdmin, O: OAuth2Store + Clone>(_users: &U, store: &O) {
        let o = server(store);
        let (c, secret) = o.register_client(new_client()).await.unwrap();
        let secret = secret.unwrap();
        let back = store.client(&c.client_id).await.unwrap().unwrap();
        assert_eq!(back.name, "Ünïcode app");
        assert_eq!(back.redirect_uris, c.redirect_uris);
        assert_eq!(back.grant_types, c.grant_types);
        assert_eq!(back.scopes, vec!["read", "write"]);
        assert!(back.skip_authorization && !back.public);
        assert_eq!(back.secret_digest, c.secret_digest);
        assert_ne!(back.secret_digest.as_deref(), Some(secret.as_str()));
        assert!(o
            .authenticate_client(&c.client_id, Some(&secret))
            .await
            .is_ok());
        assert!(matches!(
            store.create_client(&back).await,
            Err(StoreError::Conflict(_))
        ));
        let (p, none) = o.register_client(NewClient::public("p")).await.unwrap();
        assert!(none.is_none() && p.public && p.secret_digest.is_none());
        assert_eq!(store.clients().await.unwrap().len(), 2);
    }

    async fn client_ids_compare_exactly<U: UserAdmin, O: OAuth2Store + Clone>(_u: &U, store: &O) {
        let o = server(store);
        let (c, _) = o.register_client(new_client()).await.unwrap();
        let other_case = if c.client_id.to_lowercase() != c.client_id {
            c.client_id.to_lowercase()
        } else {
            c.client_id.to_uppercase()
        };
        assert!(store.client(&other_case).await.unwrap().is_none());
        assert!(store
            .client(&format!("{} ", c.client_id))
            .await
            .unwrap()
            .is_none());
        assert!(store.client("é").await.unwrap().is_none());
        assert!(store.token("é").await.unwrap().is_none());
    }

    async fn tokens_round_trip_and_consume_once<U: UserAdmin, O: OAuth2Store + Clone>(
        users: &U,
        store: &O,
    ) {
        let ada = users.create_user(super::new_user("ada")).await.unwrap();
        let o = server(store);
        let (c, _) = o.register_client(new_client()).await.unwrap();
        let t = row(&c.client_id, "d1", "fam", Some(ada.id));
        store.insert_token(&t).await.unwrap();
        assert_eq!(store.token("d1").await.unwrap().unwrap(), t);
        assert!(matches!(
            store.insert_token(&t).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(store.consume_token("d1").await.unwrap());
        assert!(!store.consume_token("d1").await.unwrap());
        assert!(!store.consume_token("missing").await.unwrap());
        assert!(store.token("d1").await.unwrap().unwrap().revoked);
    }

    /// Reads in flight together (which the SQL stores answer with one
    /// query) each get their own row: distinct, repeated, near-miss and
    /// unknown digests, and a revoked token.
    async fn concurrent_token_reads_each_get_their_own_row<
        U: UserAdmin,
        O: OAuth2Store + Clone + Send + Sync + 'static,
    >(
        users: &U,
        store: &O,
    ) {
        let ada = users.create_user(super::new_user("ada")).await.unwrap();
        let o = server(store);
        let (c, _) = o.register_client(new_client()).await.unwrap();
        let mut rows = Vec::new();
        for i in 0..40 {
            let mut t = row(
                &c.client_id,
                &format!("dg{i:02}"),
                &format!("f{i}"),
                Some(ada.id),
            );
            t.kind = if i % 2 == 0 {
                TokenKind::Access
            } else {
                TokenKind::Refresh
            };
            t.scopes = vec![format!("s{i}")];
            store.insert_token(&t).await.unwrap();
            rows.push(t);
        }
        assert!(store.consume_token("dg07").await.unwrap());
        rows[7].revoked = true;
        let mut asks: Vec<(String, Option<OAuth2Token>)> = Vec::new();
        for (i, t) in rows.iter().enumerate() {
            asks.push((t.digest.clone(), Some(t.clone())));
            if i % 5 == 0 {
                asks.push((t.digest.clone(), Some(t.clone())));
                asks.push((format!("{}x", t.digest), None));
                asks.push((t.digest.to_uppercase(), None));
            }
        }
        asks.push(("missing".into(), None));
        let handles: Vec<_> = asks
            .iter()
            .map(|(digest, _)| {
                let (store, digest) = (store.clone(), digest.clone());
                tokio::spawn(async move { store.token(&digest).await })
            })
            .collect();
        for ((digest, want), h) in asks.into_iter().zip(handles) {
            assert_eq!(h.await.unwrap().unwrap(), want, "{digest}");
        }
    }

    /// The joined read answers as `token` and then `user_by_id` would, for
    /// concurrent reads of many tokens (batched), with users, without
    /// (client credentials), inactive, and for near misses.
    async fn tokens_are_read_with_their_users<
        U: UserAdmin,
        O: OAuth2Store + OAuth2UserStore<User = User> + Clone + Send + Sync + 'static,
    >(
        users: &U,
        store: &O,
    ) {
        let ada = users.create_user(super::new_user("ada")).await.unwrap();
        let mut inactive = super::new_user("bob");
        inactive.is_active = false;
        let bob = users.create_user(inactive).await.unwrap();
        let o = server(store);
        let (c, _) = o.register_client(new_client()).await.unwrap();
        let mut rows = Vec::new();
        for i in 0..40 {
            let user = [Some(ada.id), Some(bob.id), None][i % 3];
            let mut t = row(&c.client_id, &format!("jn{i:02}"), &format!("f{i}"), user);
            t.kind = [TokenKind::Access, TokenKind::Refresh, TokenKind::Code][i % 3];
            t.scopes = vec![format!("s{i}"), "read".into()];
            store.insert_token(&t).await.unwrap();
            rows.push(t);
        }
        assert!(store.consume_token("jn05").await.unwrap());
        rows[5].revoked = true;
        type Joined = Option<(OAuth2Token, Option<User>)>;
        let mut asks: Vec<(String, Joined)> = Vec::new();
        for (i, t) in rows.iter().enumerate() {
            let user = match t.user_id {
                Some(id) => Some(users.user_by_id(id).await.unwrap().unwrap()),
                None => None,
            };
            assert_eq!(store.token(&t.digest).await.unwrap().as_ref(), Some(t));
            asks.push((t.digest.clone(), Some((t.clone(), user))));
            if i % 4 == 0 {
                asks.push((format!("{}x", t.digest), None));
                asks.push((t.digest.to_uppercase(), None));
            }
        }
        asks.push(("missing".into(), None));
        asks.push(("not a digest".into(), None));
        let handles: Vec<_> = asks
            .iter()
            .map(|(digest, _)| {
                let (store, digest) = (store.clone(), digest.clone());
                tokio::spawn(async move { store.oauth2_token_with_user(&digest).await })
            })
            .collect();
        for ((digest, want), h) in asks.into_iter().zip(handles) {
            assert_eq!(h.await.unwrap().unwrap(), want, "{digest}");
        }
        let (_, found) = store.oauth2_token_with_user("jn01").await.unwrap().unwrap();
        let found = found.unwrap();
        assert_eq!((found.username.as_str(), found.is_active), ("bob", false));
    }

    async fn family_revocation_counts<U: UserAdmin, O: OAuth2Store + Clone>(users: &U, store: &O) {
        let ada = users.create_user(super::new_user("ada")).await.unwrap();
        let o = server(store);
        let (c, _) = o.register_client(new_client()).await.unwrap();
        for d in ["a", "b", "c"] {
            store
                .insert_token(&row(&c.client_id, d, "f1", Some(ada.id)))
                .await
                .unwrap();
        }
        store
            .insert_token(&row(&c.client_id, "z", "f2", None))
            .await
            .unwrap();
        store.consume_token("a").await.unwrap();
        assert_eq!(store.revoke_family("f1").await.unwrap(), 2);
        assert_eq!(store.revoke_family("f1").await.unwrap(), 0);
        assert!(!store.token("z").await.unwrap().unwrap().revoked);
    }

    async fn refresh_reuse_revokes_the_family<U: UserAdmin, O: OAuth2Store + Clone>(
        users: &U,
        store: &O,
    ) {
        let ada = users.create_user(super::new_user("ada")).await.unwrap();
        let o = server(store);
        let (c, _) = o.register_client(new_client()).await.unwrap();
        let first = o.issue(&c, Some(ada.id), &c.scopes, None).await.unwrap();
        let r1 = first.refresh_token.clone().unwrap();
        let (second, _) = o.refresh(&c, &r1, Some("read")).await.unwrap();
        assert_eq!(second.scope, "read");
        assert!(o
            .validate_access(&first.access_token)
            .await
            .unwrap()
            .is_none());
        assert!(o
            .validate_access(&second.access_token)
            .await
            .unwrap()
            .is_some());
        assert!(matches!(
            o.refresh(&c, &r1, None).await,
            Err(OAuth2Error::InvalidGrant(_))
        ));
        assert!(o
            .validate_access(&second.access_token)
            .await
            .unwrap()
            .is_none());
    }

    async fn delete_client_removes_its_tokens<U: UserAdmin, O: OAuth2Store + Clone>(
        _u: &U,
        store: &O,
    ) {
        let o = server(store);
        let (c, _) = o.register_client(new_client()).await.unwrap();
        let t = o.client_credentials(&c, None).await.unwrap();
        assert!(store.delete_client(&c.client_id).await.unwrap());
        assert!(!store.delete_client(&c.client_id).await.unwrap());
        assert!(o.validate_access(&t.access_token).await.unwrap().is_none());
        assert!(store.client(&c.client_id).await.unwrap().is_none());
    }

    async fn clear_expired_keeps_live_rows<U: UserAdmin, O: OAuth2Store + Clone>(
        _u: &U,
        store: &O,
    ) {
        let o = server(store);
        let (c, _) = o.register_client(new_client()).await.unwrap();
        let mut old = row(&c.client_id, "old", "f", None);
        old.expires_at = Some(Utc::now() - Duration::seconds(5));
        store.insert_token(&old).await.unwrap();
        let mut refresh = row(&c.client_id, "refresh", "f", None);
        refresh.kind = TokenKind::Refresh;
        refresh.expires_at = None;
        store.insert_token(&refresh).await.unwrap();
        store
            .insert_token(&row(&c.client_id, "live", "f", None))
            .await
            .unwrap();
        assert_eq!(store.clear_expired(Utc::now()).await.unwrap(), 1);
        assert!(store.token("old").await.unwrap().is_none());
        assert!(store.token("refresh").await.unwrap().is_some());
        assert!(store.token("live").await.unwrap().is_some());
    }

    async fn delete_user_removes_its_tokens<U: UserAdmin, O: OAuth2Store + Clone>(
        users: &U,
        store: &O,
    ) {
        let ada = users.create_user(super::new_user("ada")).await.unwrap();
        let o = server(store);
        let (c, _) = o.register_client(new_client()).await.unwrap();
        let t = o.issue(&c, Some(ada.id), &c.scopes, None).await.unwrap();
        users.delete_user(ada.id).await.unwrap();
        assert!(o.validate_access(&t.access_token).await.unwrap().is_none());
    }

    fn both<S: Clone>(f: Fixture<S>) -> (Fixture<S>, S) {
        let s = f.store.clone();
        (f, s)
    }

    async fn memory() -> (Fixture<MemoryStore>, MemoryOAuth2Store) {
        (super::memory().await, MemoryOAuth2Store::new())
    }
    async fn sqlite() -> (Fixture<SqliteStore>, SqliteStore) {
        both(super::sqlite().await)
    }
    async fn postgres() -> (Fixture<PostgresStore>, PostgresStore) {
        both(super::postgres().await)
    }
    async fn mysql() -> (Fixture<MySqlStore>, MySqlStore) {
        both(super::mysql().await)
    }
    async fn store_sqlite() -> (Fixture<Store>, Store) {
        both(super::store_sqlite().await)
    }
    async fn store_postgres() -> (Fixture<Store>, Store) {
        both(super::store_postgres().await)
    }
    async fn store_mysql() -> (Fixture<Store>, Store) {
        both(super::store_mysql().await)
    }

    /// One `#[tokio::test]` a behaviour, for one backend's set-up.
    macro_rules! oauth2_suite {
        ($backend:ident, $setup:path $(, $extra:ident)*) => {
            mod $backend {
                oauth2_suite!(@tests $setup;
                    clients_round_trip,
                    client_ids_compare_exactly,
                    tokens_round_trip_and_consume_once,
                    concurrent_token_reads_each_get_their_own_row,
                    family_revocation_counts,
                    refresh_reuse_revokes_the_family,
                    delete_client_removes_its_tokens,
                    clear_expired_keeps_live_rows,
                    $($extra,)*
                );
            }
        };
        (@tests $setup:path; $($test:ident,)*) => {
            $(
                #[tokio::test]
                async fn $test() {
                    let (fixture, store) = $setup().await;
                    super::$test(&fixture.store, &store).await;
                }
            )*
        };
    }

    oauth2_suite!(memory_store, super::memory);
    oauth2_suite!(
        sqlite_store,
        super::sqlite,
        delete_user_removes_its_tokens,
        tokens_are_read_with_their_users
    );
    oauth2_suite!(
        postgres_store,
        super::postgres,
        delete_user_removes_its_tokens,
        tokens_are_read_with_their_users
    );
    oauth2_suite!(
        mysql_store,
        super::mysql,
        delete_user_removes_its_tokens,
        tokens_are_read_with_their_users
    );
    oauth2_suite!(
        store_enum_sqlite,
        super::store_sqlite,
        delete_user_removes_its_tokens,
        tokens_are_read_with_their_users
    );
    oauth2_suite!(
        store_enum_postgres,
        super::store_postgres,
        delete_user_removes_its_tokens,
        tokens_are_read_with_their_users
    );
    oauth2_suite!(
        store_enum_mysql,
        super::store_mysql,
        delete_user_removes_its_tokens,
        tokens_are_read_with_their_users
    );
}

// ----- Digest realm digests and Hawk credentials -----

/// `DigestStore` and `HawkStore` on memory and the three SQL engines
/// (directly and through `Store`).
mod digest_hawk {
    use chrono::{SubsecRound, Utc};
    use portcullis::scheme::digest::DigestStore;
    use portcullis::scheme::hawk::{HawkCredential, HawkStore};
    use portcullis::store::StoreError;

    use super::{new_user, Backend};

    trait Signed: Backend + DigestStore + HawkStore {}
    impl<S: Backend + DigestStore + HawkStore> Signed for S {}

    fn hawk(id: &str, user_id: i64) -> HawkCredential {
        HawkCredential {
            id: id.to_owned(),
            user_id,
            sealed_key: format!("sealed-{id}"),
            created: Utc::now().trunc_subsecs(6),
        }
    }

    async fn realm_digest_set_replace_delete(s: &impl Signed) {
        let ada = s.create_user(new_user("ada")).await.unwrap();
        assert_eq!(s.realm_digest(ada.id).await.unwrap(), None);
        s.set_realm_digest(ada.id, Some("one")).await.unwrap();
        assert_eq!(
            s.realm_digest(ada.id).await.unwrap().as_deref(),
            Some("one")
        );
        s.set_realm_digest(ada.id, Some("two")).await.unwrap();
        assert_eq!(
            s.realm_digest(ada.id).await.unwrap().as_deref(),
            Some("two")
        );
        s.set_realm_digest(ada.id, None).await.unwrap();
        assert_eq!(s.realm_digest(ada.id).await.unwrap(), None);
        // Deleting what is not there is fine.
        s.set_realm_digest(ada.id, None).await.unwrap();
    }

    async fn realm_digest_of_unknown_user_is_not_found(s: &impl Signed) {
        assert!(matches!(
            s.set_realm_digest(424242, Some("x")).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(s.realm_digest(0).await.unwrap(), None);
    }

    async fn hawk_credentials_round_trip(s: &impl Signed) {
        let ada = s.create_user(new_user("ada")).await.unwrap();
        let c = hawk("AbC123", ada.id);
        s.insert_hawk_credential(&c).await.unwrap();
        assert_eq!(s.hawk_credential("AbC123").await.unwrap(), Some(c.clone()));
        // Ids compare exactly.
        assert_eq!(s.hawk_credential("abc123").await.unwrap(), None);
        assert_eq!(s.hawk_credential("AbC123 ").await.unwrap(), None);
        assert_eq!(s.hawk_credential(&"x".repeat(5000)).await.unwrap(), None);
        assert!(matches!(
            s.insert_hawk_credential(&hawk("AbC123", ada.id)).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.insert_hawk_credential(&hawk("other", 424242)).await,
            Err(StoreError::NotFound(_))
        ));
    }

    async fn delete_user_removes_its_credentials(s: &impl Signed) {
        let ada = s.create_user(new_user("ada")).await.unwrap();
        s.set_realm_digest(ada.id, Some("x")).await.unwrap();
        s.insert_hawk_credential(&hawk("h1", ada.id)).await.unwrap();
        s.delete_user(ada.id).await.unwrap();
        assert_eq!(s.realm_digest(ada.id).await.unwrap(), None);
        assert_eq!(s.hawk_credential("h1").await.unwrap(), None);
    }

    macro_rules! signed_suite {
        ($backend:ident, $setup:path) => {
            mod $backend {
                signed_suite!(@tests $setup;
                    realm_digest_set_replace_delete,
                    realm_digest_of_unknown_user_is_not_found,
                    hawk_credentials_round_trip,
                    delete_user_removes_its_credentials,
                );
            }
        };
        (@tests $setup:path; $($test:ident,)*) => {
            $(
                #[tokio::test]
                async fn $test() {
                    let fixture = $setup().await;
                    super::$test(&fixture.store).await;
                }
            )*
        };
    }

    signed_suite!(memory_store, super::super::memory);
    signed_suite!(sqlite_store, super::super::sqlite);
    signed_suite!(postgres_store, super::super::postgres);
    signed_suite!(mysql_store, super::super::mysql);
    signed_suite!(store_enum_sqlite, super::super::store_sqlite);
    signed_suite!(store_enum_postgres, super::super::store_postgres);
    signed_suite!(store_enum_mysql, super::super::store_mysql);
}

// ----- HTTP Message Signatures keys (migration 0006) -----

mod signature_keys {
    use portcullis::scheme::httpsig::{Algorithm, SignatureKeyRecord, SignatureKeyStore};
    use portcullis::store::{StoreError, UserAdmin};

    fn key(key_id: &str, user_id: i64, algorithm: Algorithm) -> SignatureKeyRecord {
        SignatureKeyRecord {
            key_id: key_id.into(),
            user_id,
            algorithm,
            key: format!("key data of {key_id}"),
            created_at: chrono::Utc::now(),
        }
    }

    async fn user<S: UserAdmin>(s: &S, name: &str) -> i64 {
        s.create_user(super::new_user(name)).await.unwrap().id
    }

    pub(super) async fn add_and_look_up<S: UserAdmin + SignatureKeyStore>(s: &S) {
        let ada = user(s, "ada").await;
        for (i, alg) in Algorithm::ALL.into_iter().enumerate() {
            s.add_signature_key(&key(&format!("k{i}"), ada, alg))
                .await
                .unwrap();
        }
        for (i, alg) in Algorithm::ALL.into_iter().enumerate() {
            let got = s.signature_key(&format!("k{i}")).await.unwrap().unwrap();
            assert_eq!(got.user_id, ada);
            assert_eq!(got.algorithm, alg);
            assert_eq!(got.key, format!("key data of k{i}"));
        }
        assert!(s.signature_key("missing").await.unwrap().is_none());
        assert!(s.signature_key(&"x".repeat(300)).await.unwrap().is_none());
    }

    pub(super) async fn key_ids_are_unique_and_exact<S: UserAdmin + SignatureKeyStore>(s: &S) {
        let ada = user(s, "ada").await;
        s.add_signature_key(&key("Key", ada, Algorithm::Ed25519))
            .await
            .unwrap();
        let dup = s
            .add_signature_key(&key("Key", ada, Algorithm::HmacSha256))
            .await
            .unwrap_err();
        assert!(matches!(dup, StoreError::Conflict(_)), "{dup:?}");
        assert!(s.signature_key("key").await.unwrap().is_none());
        assert!(s.signature_key("Key ").await.unwrap().is_none());
        s.add_signature_key(&key("key", ada, Algorithm::HmacSha256))
            .await
            .unwrap();
        assert_eq!(
            s.signature_key("key").await.unwrap().unwrap().algorithm,
            Algorithm::HmacSha256
        );
        assert!(s
            .add_signature_key(&key(&"x".repeat(300), ada, Algorithm::Ed25519))
            .await
            .is_err());
    }

    pub(super) async fn keys_belong_to_existing_users<S: UserAdmin + SignatureKeyStore>(s: &S) {
        let err = s
            .add_signature_key(&key("orphan", 424242, Algorithm::Ed25519))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
        let ada = user(s, "ada").await;
        s.add_signature_key(&key("k", ada, Algorithm::Ed25519))
            .await
            .unwrap();
        s.delete_user(ada).await.unwrap();
        assert!(s.signature_key("k").await.unwrap().is_none());
    }
}

macro_rules! signature_key_suite {
    ($backend:ident, $setup:path) => {
        mod $backend {
            #[tokio::test]
            async fn add_and_look_up() {
                let f = $setup().await;
                super::signature_keys::add_and_look_up(&f.store).await;
            }

            #[tokio::test]
            async fn key_ids_are_unique_and_exact() {
                let f = $setup().await;
                super::signature_keys::key_ids_are_unique_and_exact(&f.store).await;
            }

            #[tokio::test]
            async fn keys_belong_to_existing_users() {
                let f = $setup().await;
                super::signature_keys::keys_belong_to_existing_users(&f.store).await;
            }
        }
    };
}

signature_key_suite!(signature_keys_sqlite, super::store_sqlite);
signature_key_suite!(signature_keys_postgres, super::store_postgres);
signature_key_suite!(signature_keys_mysql, super::store_mysql);

/// The in-memory keys keep no users, so only the key rules apply.
mod signature_keys_memory {
    use portcullis::scheme::httpsig::MemorySignatureKeys;

    #[tokio::test]
    async fn add_and_look_up() {
        let users = portcullis::store::MemoryStore::new();
        let keys = MemorySignatureKeys::new();
        super::signature_keys::add_and_look_up(&Both(users, keys)).await;
    }

    #[tokio::test]
    async fn key_ids_are_unique_and_exact() {
        let users = portcullis::store::MemoryStore::new();
        let keys = MemorySignatureKeys::new();
        super::signature_keys::key_ids_are_unique_and_exact(&Both(users, keys)).await;
    }

    /// Users from one store, keys from the other.
    struct Both(portcullis::store::MemoryStore, MemorySignatureKeys);

    #[async_trait::async_trait]
    impl portcullis::store::UserStore for Both {
        type User = portcullis::User;
        async fn user_by_id(
            &self,
            id: i64,
        ) -> Result<Option<portcullis::User>, portcullis::store::StoreError> {
            self.0.user_by_id(id).await
        }
        async fn user_by_username(
            &self,
            name: &str,
        ) -> Result<Option<portcullis::User>, portcullis::store::StoreError> {
            self.0.user_by_username(name).await
        }
    }

    #[async_trait::async_trait]
    impl portcullis::store::UserAdmin for Both {
        async fn create_user(
            &self,
            user: portcullis::store::NewUser,
        ) -> Result<portcullis::User, portcullis::store::StoreError> {
            self.0.create_user(user).await
        }
        async fn set_active(
            &self,
            id: i64,
            active: bool,
        ) -> Result<(), portcullis::store::StoreError> {
            self.0.set_active(id, active).await
        }
        async fn delete_user(&self, id: i64) -> Result<(), portcullis::store::StoreError> {
            self.0.delete_user(id).await
        }
    }

    #[async_trait::async_trait]
    impl portcullis::scheme::httpsig::SignatureKeyStore for Both {
        async fn signature_key(
            &self,
            key_id: &str,
        ) -> Result<
            Option<portcullis::scheme::httpsig::SignatureKeyRecord>,
            portcullis::store::StoreError,
        > {
            self.1.signature_key(key_id).await
        }
        async fn add_signature_key(
            &self,
            key: &portcullis::scheme::httpsig::SignatureKeyRecord,
        ) -> Result<(), portcullis::store::StoreError> {
            self.1.add_signature_key(key).await
        }
    }
}

// ----- OAuth 1.0a consumers and tokens (migration 0006) -----

mod oauth1 {
    use chrono::Utc;
    use portcullis::scheme::oauth1::{ConsumerRecord, OAuth1Store, OAuth1TokenRecord, TokenKind};
    use portcullis::store::{StoreError, UserAdmin};

    fn consumer(key: &str) -> ConsumerRecord {
        ConsumerRecord {
            consumer_key: key.into(),
            name: "Ünïcode app".into(),
            sealed_secret: "sealed".into(),
            rsa_public_key: Some("pem".into()),
            callback: None,
            created_at: Utc::now(),
        }
    }

    fn token(t: &str, consumer: &str, user_id: Option<i64>, kind: TokenKind) -> OAuth1TokenRecord {
        OAuth1TokenRecord {
            token: t.into(),
            consumer_key: consumer.into(),
            user_id,
            kind,
            sealed_secret: "sealed-t".into(),
            callback: Some("oob".into()),
            verifier_digest: None,
            created_at: Utc::now(),
            expires_at: Some(Utc::now() + chrono::Duration::minutes(10)),
        }
    }

    pub(super) async fn consumers_and_tokens<S: UserAdmin + OAuth1Store>(s: &S) {
        let ada = s.create_user(super::new_user("ada")).await.unwrap().id;
        s.create_consumer(&consumer("ck")).await.unwrap();
        let dup = s.create_consumer(&consumer("ck")).await.unwrap_err();
        assert!(matches!(dup, StoreError::Conflict(_)), "{dup:?}");
        let got = s.consumer("ck").await.unwrap().unwrap();
        assert_eq!(got.name, "Ünïcode app");
        assert_eq!(got.rsa_public_key.as_deref(), Some("pem"));
        assert_eq!(got.callback, None);
        assert!(s.consumer("CK").await.unwrap().is_none());
        assert!(s.consumer(&"x".repeat(100)).await.unwrap().is_none());

        s.insert_oauth1_token(&token("rt", "ck", None, TokenKind::Request))
            .await
            .unwrap();
        s.insert_oauth1_token(&token("at", "ck", Some(ada), TokenKind::Access))
            .await
            .unwrap();
        let rt = s.oauth1_token("rt").await.unwrap().unwrap();
        assert_eq!(rt.consumer_key, "ck");
        assert_eq!(rt.kind, TokenKind::Request);
        assert_eq!(rt.user_id, None);
        assert!(rt.expires_at.is_some());
        assert_eq!(
            s.oauth1_token("at").await.unwrap().unwrap().user_id,
            Some(ada)
        );

        assert!(s
            .authorize_request_token("rt", ada, "digest")
            .await
            .unwrap());
        assert!(!s.authorize_request_token("rt", ada, "again").await.unwrap());
        assert!(!s.authorize_request_token("at", ada, "x").await.unwrap());
        let rt = s.oauth1_token("rt").await.unwrap().unwrap();
        assert_eq!(rt.user_id, Some(ada));
        assert_eq!(rt.verifier_digest.as_deref(), Some("digest"));

        assert!(s.delete_oauth1_token("rt").await.unwrap());
        assert!(!s.delete_oauth1_token("rt").await.unwrap());
        assert!(s.oauth1_token("rt").await.unwrap().is_none());
    }

    pub(super) async fn tokens_need_their_consumer_and_user<S: UserAdmin + OAuth1Store>(s: &S) {
        let err = s
            .insert_oauth1_token(&token("t", "missing", None, TokenKind::Request))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
        s.create_consumer(&consumer("ck")).await.unwrap();
        let err = s
            .insert_oauth1_token(&token("t", "ck", Some(424242), TokenKind::Access))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
        let ada = s.create_user(super::new_user("ada")).await.unwrap().id;
        s.insert_oauth1_token(&token("t", "ck", Some(ada), TokenKind::Access))
            .await
            .unwrap();
        s.delete_user(ada).await.unwrap();
        assert!(s.oauth1_token("t").await.unwrap().is_none());
    }
}

macro_rules! oauth1_suite {
    ($backend:ident, $setup:path) => {
        mod $backend {
            #[tokio::test]
            async fn consumers_and_tokens() {
                let f = $setup().await;
                super::oauth1::consumers_and_tokens(&f.store).await;
            }

            #[tokio::test]
            async fn tokens_need_their_consumer_and_user() {
                let f = $setup().await;
                super::oauth1::tokens_need_their_consumer_and_user(&f.store).await;
            }
        }
    };
}

oauth1_suite!(oauth1_sqlite, super::store_sqlite);
oauth1_suite!(oauth1_postgres, super::store_postgres);
oauth1_suite!(oauth1_mysql, super::store_mysql);

/// A connection the server dropped while it sat idle in the pool is found
/// out (pinged, since it was idle for over a second) and replaced before
/// use: the first read after the outage succeeds.
#[tokio::test]
async fn connections_killed_while_idle_are_replaced() {
    use sqlx::Connection;

    let pg_url = testing::fresh_postgres_url().await;
    let my_url = testing::fresh_mysql_url().await;
    let pg: Fixture<PostgresStore> = fresh(pg_url.clone(), None).await;
    let my: Fixture<MySqlStore> = fresh(my_url.clone(), None).await;
    let pg_ada = pg.store.create_user(new_user("ada")).await.unwrap();
    let my_ada = my.store.create_user(new_user("ada")).await.unwrap();

    // Kill every other session on each test database.
    let mut admin = sqlx::PgConnection::connect(&pg_url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the pool had connections to kill");
    let mut admin = sqlx::MySqlConnection::connect(&my_url).await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM information_schema.processlist \
         WHERE db = DATABASE() AND id <> CONNECTION_ID()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ids.is_empty(), "the pool had connections to kill");
    for id in ids {
        sqlx::query(&format!("KILL {id}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(pg.store.user_by_id(pg_ada.id).await.unwrap(), Some(pg_ada));
    assert_eq!(my.store.user_by_id(my_ada.id).await.unwrap(), Some(my_ada));
    assert!(pg.store.user_by_username("ada").await.unwrap().is_some());
    assert!(my.store.user_by_username("ada").await.unwrap().is_some());
}
