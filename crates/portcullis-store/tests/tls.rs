//! TLS to PostgreSQL, MariaDB and Redis. A URL that asks for it
//! (`sslmode=require`, `ssl-mode=REQUIRED`, `rediss://`) gets an encrypted
//! connection, or no connection at all: never a plain one. The database
//! tests first ask the server, over a plain connection, whether it offers
//! TLS, and check the answer that fits; the Redis test starts a Redis that
//! serves TLS only.
//!
//! Run: `cargo test -p portcullis-store --all-features`.

use portcullis_store::{testing, MySqlStore, PostgresStore};

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// `url` without its `key` query parameters, so that the test, not the
/// test server's URL, chooses the mode.
fn without_param(url: &str, key: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| p.split('=').next() != Some(key))
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

#[test]
fn without_param_drops_only_that_parameter() {
    let url = "postgres://u@h/db?sslmode=disable&host=/run/pg&x_sslmode=1";
    assert_eq!(
        without_param(url, "sslmode"),
        "postgres://u@h/db?host=/run/pg&x_sslmode=1"
    );
    assert_eq!(
        without_param("postgres://u@h/db?sslmode=require", "sslmode"),
        "postgres://u@h/db"
    );
    assert_eq!(
        without_param("postgres://u@h/db", "sslmode"),
        "postgres://u@h/db"
    );
}

/// Whether this PostgreSQL connection is encrypted, and with which version.
async fn postgres_tls(store: &PostgresStore) -> (bool, Option<String>) {
    sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn postgres_sslmode_require_is_encrypted_or_refused() {
    let url = testing::fresh_postgres_url().await;
    let _cleanup = testing::DropOnExit::new(&url);
    let url = without_param(&url, "sslmode");

    let plain = PostgresStore::connect(&with_param(&url, "sslmode=disable"))
        .await
        .unwrap();
    let offered: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(plain.pool())
        .await
        .unwrap();
    assert_eq!(postgres_tls(&plain).await, (false, None));
    plain.close().await;

    // The default, `prefer`, takes TLS where it is offered.
    let default = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(postgres_tls(&default).await.0, offered == "on");
    default.close().await;

    let required = PostgresStore::connect(&with_param(&url, "sslmode=require")).await;
    if offered == "on" {
        let store = required.unwrap();
        let (encrypted, version) = postgres_tls(&store).await;
        assert!(encrypted);
        assert!(version.unwrap_or_default().starts_with("TLS"));
        store.close().await;
    } else {
        let err = required.expect_err("a plain connection where TLS was required");
        assert!(err.is_unavailable(), "{err:?}");
    }
}

/// No certificate names `127.0.0.1`, so checking the name refuses the
/// server (and a server without TLS is refused too).
#[tokio::test]
async fn postgres_sslmode_verify_full_refuses_a_certificate_for_another_name() {
    let url = testing::fresh_postgres_url().await;
    let _cleanup = testing::DropOnExit::new(&url);
    let url = without_param(&url, "sslmode");
    assert!(url.contains("@127.0.0.1:"), "the test server is {url}");
    let err = PostgresStore::connect(&with_param(&url, "sslmode=verify-full"))
        .await
        .expect_err("a server whose certificate does not name 127.0.0.1");
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn mariadb_ssl_mode_required_is_encrypted_or_refused() {
    let url = testing::fresh_mysql_url().await;
    let _cleanup = testing::DropOnExit::new(&url);
    let url = without_param(&url, "ssl-mode");

    let plain = MySqlStore::connect(&with_param(&url, "ssl-mode=DISABLED"))
        .await
        .unwrap();
    let (_, offered): (String, String) = sqlx::query_as("SHOW VARIABLES LIKE 'have_ssl'")
        .fetch_one(plain.pool())
        .await
        .unwrap();
    plain.close().await;

    let required = MySqlStore::connect(&with_param(&url, "ssl-mode=REQUIRED")).await;
    if offered == "YES" {
        let store = required.unwrap();
        let (_, version): (String, String) =
            sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_version'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert!(version.starts_with("TLS"), "{version:?}");
        store.close().await;
    } else {
        let err = required.expect_err("a plain connection where TLS was required");
        assert!(err.is_unavailable(), "{err:?}");
        assert!(err.to_string().contains("TLS"), "{err}");
    }
}

/// A Redis of this test's own, serving TLS only, with the machine's
/// `localhost` certificate (Debian's `ssl-cert` snakeoil pair, which the
/// system's trust store holds); stopped when dropped.
struct TlsRedis {
    port: u16,
    child: std::process::Child,
}

impl TlsRedis {
    fn start() -> Self {
        const CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
        const KEY: &str = "/etc/ssl/private/ssl-cert-snakeoil.key";
        for file in [CERT, KEY] {
            assert!(
                std::path::Path::new(file).exists(),
                "{file} is missing: install Debian's ssl-cert package"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--tls-auth-clients", "no"])
            .args(["--tls-cert-file", CERT, "--tls-key-file", KEY])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (built with TLS) must be installed");
        let redis = TlsRedis { port, child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("redis-server did not listen on port {port}");
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_rediss_urls_talk_tls_and_only_tls() {
    use portcullis::store::Ping;
    use portcullis_store::RedisStore;

    let tls = TlsRedis::start();
    let store = RedisStore::connect(&format!("rediss://localhost:{}", tls.port))
        .await
        .unwrap();
    store.ping().await.unwrap();

    // The name must match the certificate's, as for any TLS client.
    let err = RedisStore::connect(&format!("rediss://127.0.0.1:{}", tls.port))
        .await
        .expect_err("a certificate that does not name 127.0.0.1");
    assert!(err.is_unavailable(), "{err:?}");
    // A plain client cannot talk to it, and a TLS client does not fall
    // back to plain text with the test suite's own, plain Redis.
    let plain = RedisStore::connect(&format!("redis://localhost:{}", tls.port)).await;
    assert!(plain.is_err());
    let downgraded =
        RedisStore::connect(&testing::redis_url().replacen("redis://", "rediss://", 1))
            .await
            .expect_err("a TLS connection to a server without TLS");
    assert!(downgraded.is_unavailable(), "{downgraded:?}");
}
