//! Fresh databases with a user and credentials for every scheme.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use portcullis::jwt::{Jwt, JwtSettings};
use portcullis::oauth2::{NewClient, OAuth2, OAuth2Settings};
use portcullis::scheme::session::Sessions;
use portcullis::scheme::token::Tokens;
use portcullis::store::{NewUser, UserAdmin, UserStore};
use portcullis::SecretKey;
use portcullis_store::{sqlx, SqliteStore, Store};

/// The benchmark's users' password (Basic).
pub(crate) const PASSWORD: &str = "bench-password-1";

/// How many plain users the token, session, JWT and OAuth2 scenarios
/// take turns with: more than wrk's connections, so requests in flight at
/// once are different users' (as on a real server), and no read is saved
/// because two requests carried the same credentials.
pub(crate) const USERS: usize = 64;

/// One plain user's credentials (`bench`, or `bench1` … `bench63`).
#[derive(Clone, Debug)]
pub(crate) struct UserCredentials {
    /// The user's token.
    pub(crate) token: String,
    /// A session key.
    pub(crate) session_key: String,
    /// A JWT access token, valid for a day (longer than any run; the
    /// server checks only its signature and expiry).
    pub(crate) jwt_access: String,
    /// An OAuth2 access token (scopes `read write`), issued to a
    /// confidential client registered for the run.
    pub(crate) oauth2_access: String,
}

/// The credentials each scenario sends.
#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    /// [`USERS`] plain users' credentials; the first are `bench`'s.
    pub(crate) users: Vec<UserCredentials>,
    /// A staff user's token.
    pub(crate) staff_token: String,
    /// The plain user's Hawk credentials (`create-hawk-credentials`).
    pub(crate) hawk: (String, String),
    /// The plain user's `hmac-sha256` signature key (`add-signature-key`):
    /// key id and secret.
    pub(crate) httpsig: (String, Vec<u8>),
    /// An OAuth 1.0a consumer (key, secret) and the plain user's token
    /// (token, secret), from the two commands.
    pub(crate) oauth1: [String; 4],
}

/// The value of a `name: value` line of a command's output.
fn field(output: &str, name: &str) -> anyhow::Result<String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| anyhow!("no {name:?} in the command's output: {output:?}"))
}

/// Runs a `portcullis` command with the database and secret set.
pub(crate) fn cli(binary: &Path, url: &str, secret: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(binary)
        .args(args)
        .env("PORTCULLIS_DATABASE_URL", url)
        .env("PORTCULLIS_SECRET_KEY", secret)
        .env("PORTCULLIS_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "portcullis {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn token_of(output: &str) -> anyhow::Result<String> {
    // "Generated token KEY for user USERNAME"
    output
        .split_whitespace()
        .nth(2)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("unexpected create-token output: {output:?}"))
}

/// Migrates, creates `bench` and `staff` (default hasher) and their tokens
/// through the CLI, as a user would; then, through the library, the other
/// plain users (with `bench`'s password hash, which saves hashing 63
/// passwords) and every plain user's token, session, JWT and OAuth2 token.
pub(crate) async fn prepare(binary: &Path, url: &str, secret: &str) -> anyhow::Result<Credentials> {
    cli(binary, url, secret, &["migrate"])?;
    cli(
        binary,
        url,
        secret,
        &["createuser", "bench", "--password", PASSWORD],
    )?;
    cli(
        binary,
        url,
        secret,
        &["createuser", "staff", "--staff", "--password", PASSWORD],
    )?;
    let token = token_of(&cli(binary, url, secret, &["create-token", "bench"])?)?;
    let staff_token = token_of(&cli(binary, url, secret, &["create-token", "staff"])?)?;
    let hawk = cli(binary, url, secret, &["create-hawk-credentials", "bench"])?;
    let hawk = (field(&hawk, "id")?, field(&hawk, "key")?);
    let sig = cli(
        binary,
        url,
        secret,
        &[
            "add-signature-key",
            "bench",
            "--key-id",
            "bench-hmac",
            "--alg",
            "hmac-sha256",
            "--generate",
        ],
    )?;
    let httpsig = (
        "bench-hmac".to_owned(),
        base64::engine::general_purpose::STANDARD
            .decode(field(&sig, "secret")?)
            .context("the signature key's secret is base64")?,
    );
    let consumer = cli(binary, url, secret, &["create-oauth1-consumer", "bench"])?;
    let consumer_key = field(&consumer, "consumer_key")?;
    let oauth1_token = cli(
        binary,
        url,
        secret,
        &["create-oauth1-token", &consumer_key, "bench"],
    )?;
    let oauth1 = [
        consumer_key,
        field(&consumer, "consumer_secret")?,
        field(&oauth1_token, "token")?,
        field(&oauth1_token, "token_secret")?,
    ];
    let store = Store::connect(url).await?;
    let key = SecretKey::new(secret.as_bytes()).map_err(|e| anyhow!("{e}"))?;
    let bench = store
        .user_by_username("bench")
        .await?
        .ok_or_else(|| anyhow!("user bench is missing"))?;
    let sessions = Sessions::new(store.clone(), key.clone());
    let tokens = Tokens::new(store.clone(), key.clone());
    let mut settings = JwtSettings::default();
    settings.access_token_lifetime = std::time::Duration::from_secs(86_400);
    let jwt = Jwt::new(settings, &key).map_err(|e| anyhow!("JWT settings: {e}"))?;
    let oauth2 = OAuth2::new(store.clone(), &key, OAuth2Settings::default());
    let (client, _) = oauth2
        .register_client(NewClient::confidential("bench"))
        .await
        .map_err(|e| anyhow!("cannot register an OAuth2 client: {e}"))?;
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let user = if i == 0 {
            bench.clone()
        } else {
            store
                .create_user(NewUser {
                    username: format!("bench{i}"),
                    password_hash: bench.password.clone(),
                    is_active: true,
                    ..NewUser::default()
                })
                .await?
        };
        let token = if i == 0 {
            token.clone()
        } else {
            tokens.get_or_create(user.id).await?.0
        };
        users.push(UserCredentials {
            token,
            session_key: sessions.login(&user, None).await?.session_key,
            jwt_access: jwt
                .for_user(&user)
                .await
                .map_err(|e| anyhow!("cannot issue a JWT: {e}"))?
                .access,
            oauth2_access: oauth2
                .issue(&client, Some(user.id), &client.scopes, None)
                .await
                .map_err(|e| anyhow!("cannot issue an OAuth2 token: {e}"))?
                .access_token,
        });
    }
    store.close().await;
    Ok(Credentials {
        users,
        staff_token,
        hawk,
        httpsig,
        oauth1,
    })
}

/// Creates a fresh PostgreSQL database under `admin_url` (which names the
/// server, e.g. `postgres://postgres@127.0.0.1:5432`, with parameters such
/// as `?sslmode=disable` if any); returns its URL.
pub(crate) fn create_postgres_db(admin_url: &str, name: &str) -> anyhow::Result<String> {
    psql(admin_url, &format!("CREATE DATABASE {name}"))?;
    Ok(database_url(admin_url, name))
}

/// The URL of database `name` on the server `server_url` names, its
/// query parameters kept.
fn database_url(server_url: &str, name: &str) -> String {
    let (server, params) = match server_url.split_once('?') {
        Some((server, params)) => (server, format!("?{params}")),
        None => (server_url, String::new()),
    };
    format!("{}/{name}{params}", server.trim_end_matches('/'))
}

/// Drops a database made by [`create_postgres_db`].
pub(crate) fn drop_postgres_db(admin_url: &str, name: &str) {
    let _ = psql(
        admin_url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

fn psql(admin_url: &str, sql: &str) -> anyhow::Result<()> {
    let url = database_url(admin_url, "postgres");
    let out = Command::new("psql")
        .arg(&url)
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-qAtc")
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .context("cannot run psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Inserts `n` users, each with a token and a session, in one transaction
/// (the CLI would take minutes); returns the `Authorization` values and
/// the session cookies, one a line.
pub(crate) async fn bulk(
    url: &str,
    secret: &str,
    n: usize,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let store = SqliteStore::connect(url).await?;
    let key = SecretKey::new(secret.as_bytes()).map_err(|e| anyhow!("{e}"))?;
    let tokens = Tokens::new(store.clone(), key.clone());
    let sessions = Sessions::new(store.clone(), key);
    let ts = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::days(14);
    let unusable = "!bench";
    let auth_hash = sessions.auth_hash(unusable);
    let mut tx = store.pool().begin().await?;
    let mut token_lines = Vec::with_capacity(n);
    let mut cookie_lines = Vec::with_capacity(n);
    for i in 0..n {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, \
             last_name, email, is_staff, is_active, date_joined) \
             VALUES (?, NULL, 0, ?, '', '', '', 0, 1, ?) RETURNING id",
        )
        .bind(unusable)
        .bind(format!("mem{i}"))
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        let token = portcullis::secret::random_hex(20);
        sqlx::query(
            "INSERT INTO portcullis_token (user_id, digest, sealed_key, created) \
             VALUES (?, ?, 'unsealed', ?)",
        )
        .bind(id)
        .bind(tokens.digest(&token))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        let session = portcullis::secret::random_alphanumeric(32).to_ascii_lowercase();
        let data = serde_json::json!({
            "_auth_user_id": id.to_string(),
            "_auth_user_hash": auth_hash,
        });
        sqlx::query(
            "INSERT INTO portcullis_session (key_digest, user_id, data, expires) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(sessions.digest(&session))
        .bind(id)
        .bind(data.to_string())
        .bind(ts(expires))
        .execute(&mut *tx)
        .await?;
        token_lines.push(format!("Token {token}"));
        cookie_lines.push(format!("sessionid={session}"));
    }
    tx.commit().await?;
    store.close().await;
    Ok((token_lines, cookie_lines))
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn a_database_url_keeps_the_server_parameters() {
        let server = "postgres://postgres@127.0.0.1:5432";
        assert_eq!(database_url(server, "b"), format!("{server}/b"));
        assert_eq!(
            database_url(&format!("{server}/"), "b"),
            format!("{server}/b")
        );
        assert_eq!(
            database_url(&format!("{server}?sslmode=disable"), "b"),
            format!("{server}/b?sslmode=disable")
        );
    }
}
