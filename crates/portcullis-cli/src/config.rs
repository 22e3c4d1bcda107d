//! Settings: what they are, their defaults, and where they come from.
//!
//! Every setting can come from a TOML file (`--config FILE`, keys as named
//! below), from an environment variable `PORTCULLIS_<NAME>` (the setting's
//! name in upper case), or from a flag where there is one. Flags beat the
//! environment, which beats the file, which beats the default. An empty
//! environment variable counts as unset.
//!
//! | setting | env | default | what |
//! |---|---|---|---|
//! | `secret_key` | `PORTCULLIS_SECRET_KEY` | none: generated on SQLite, required otherwise | Django's `SECRET_KEY`: signs sessions and CSRF tokens, keys the hashes of tokens at rest; at least 32 bytes |
//! | `database_url` | `PORTCULLIS_DATABASE_URL`, then `DATABASE_URL` | `sqlite://portcullis.db` | `sqlite://PATH`, `postgres://...` or `mysql://...` (MariaDB); flag `--database-url`. An in-memory SQLite database (`sqlite://`, `sqlite::memory:`) is refused by the commands whose work would vanish with it: all but `serve`, `create-jwt-key`, and `unlock` with `redis_url` set |
//! | `bind` | `PORTCULLIS_BIND` | `127.0.0.1:8000` | where `serve` listens; flag `serve --bind` |
//! | `password_iterations` | `PORTCULLIS_PASSWORD_ITERATIONS` | `1200000` | PBKDF2-SHA256 iterations for new password hashes (Django 6.0's) |
//! | `remote_user_header` | `PORTCULLIS_REMOTE_USER_HEADER` | `Remote-User` | the header a fronting proxy sets, for `/remote-user/` |
//! | `remote_user_create_unknown` | `PORTCULLIS_REMOTE_USER_CREATE_UNKNOWN` | `true` | whether RemoteUser creates unknown users (DRF's `create_unknown_user`) |
//! | `unauthenticated_user` | `PORTCULLIS_UNAUTHENTICATED_USER` | `AnonymousUser` | the name anonymous requests get (DRF's `UNAUTHENTICATED_USER`) |
//! | `csrf_trusted_origins` | `PORTCULLIS_CSRF_TRUSTED_ORIGINS` | empty | origins trusted for unsafe requests besides the host itself; comma-separated in the environment, a list (or a comma-separated string) in the file |
//! | `secure_proxy_ssl_header` | `PORTCULLIS_SECURE_PROXY_SSL_HEADER` | none | `NAME,VALUE`: a request carrying this header is taken to be HTTPS (Django's `SECURE_PROXY_SSL_HEADER`); in the file also a two-string list |
//! | `cookie_secure` | `PORTCULLIS_COOKIE_SECURE` | `false` | marks the session and CSRF cookies `Secure` |
//! | `session_age` | `PORTCULLIS_SESSION_AGE` | `1209600` (two weeks) | session lifetime in seconds (Django's `SESSION_COOKIE_AGE`) |
//! | `form_limit` | `PORTCULLIS_FORM_LIMIT` | `2621440` (2.5 MiB) | the largest request body accepted, in bytes (Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`) |
//! | `header_read_timeout` | `PORTCULLIS_HEADER_READ_TIMEOUT` | `30` | seconds `serve` gives a client to send a request's headers, counted from when it is ready to read them (so an idle keep-alive connection is closed after as long: behind a proxy that reuses connections, keep it above the proxy's idle timeout); then the connection is closed without an answer, so a stalled or trickling client holds a connection at most this long; 1 to 86400 |
//! | `cache_ttl_ms` | `PORTCULLIS_CACHE_TTL_MS` | `500` | how long `serve` keeps users, tokens, sessions and OAuth2 access tokens it has read, the JWTs it has verified, and the usernames and addresses it last found with no failed logins, in milliseconds; `0` turns the cache off. Writes by this server invalidate at once; writes by other processes (`deactivate`, `changepassword`, `create-token -r`, another server) are seen after at most this long, so keep it below `1000` to keep the one-second promise |
//! | `basic_cache` | `PORTCULLIS_BASIC_CACHE` | `true` | whether `serve` remembers verified Basic credentials (found by an HMAC under the secret key of username and password, never the password, and only while the user's password hash is the one they verified against) for 60 s, so repeated Basic requests skip PBKDF2; a password change or deactivation takes effect as fast as `cache_ttl_ms` allows. Off: every Basic request pays a full hash |
//! | `throttle_rates` | `PORTCULLIS_THROTTLE_RATES` | `anon=5/min,user=10/min,burst=3/min` | DRF's `DEFAULT_THROTTLE_RATES` as `scope=N/PERIOD,...` (PERIOD's first letter: `s`, `m`, `h`, `d`); sets only the scopes it names, the others keep their defaults |
//! | `num_proxies` | `PORTCULLIS_NUM_PROXIES` | `0` | DRF's `NUM_PROXIES`: trust the last N `X-Forwarded-For` hops for the client address; `0` uses the socket's address (a spoofed header is ignored) |
//! | `lockout_failures` | `PORTCULLIS_LOCKOUT_FAILURES` | `5` | failed logins per username or client address before logins are refused with `429` |
//! | `lockout_cooloff` | `PORTCULLIS_LOCKOUT_COOLOFF` | `900` | seconds a lockout lasts after the last counted failure |
//! | `login_throttle` | `PORTCULLIS_LOGIN_THROTTLE` | `on` | the login lockout; `off` turns it off (the throttled routes keep their rates) |
//! | `redis_url` | `PORTCULLIS_REDIS_URL` | none | unset: throttle counts and signed-request nonces in memory, lockout counts in the database; set: all three in this Redis, shared by every server using it (a Redis that is down refuses signed requests), and the servers' caches hear of each other's writes, and of the commands' (`deactivate`, `changepassword`, `create-token -r`, …), at once through pub/sub on `<redis_prefix>invalidate` (`cache_ttl_ms` stays the bound when a message is lost). What happens when Redis is down: the next two settings |
//! | `redis_throttle_fail_open` | `PORTCULLIS_REDIS_THROTTLE_FAIL_OPEN` | `true` | Redis down: plain rate limits let requests through (logged); `false` answers `503` |
//! | `redis_lockout_fail_open` | `PORTCULLIS_REDIS_LOCKOUT_FAIL_OPEN` | `false` | Redis down: logins are answered `503` (fail closed); `true` lets them proceed without a lockout (logged) |
//! | `redis_sessions` | `PORTCULLIS_REDIS_SESSIONS` | `false` | keep sessions in Redis (`redis_url`, which must be set) instead of the database's session table, so servers sharing that Redis and prefix share them; the database keeps users and tokens. `changepassword` and `deleteuser` end the sessions kept there. Redis down: session requests and logins answer `503` |
//! | `redis_prefix` | `PORTCULLIS_REDIS_PREFIX` | `portcullis:` | put before every Redis key, so several apps (or test runs) can share one Redis |
//! | `log` | `PORTCULLIS_LOG`, then `RUST_LOG` | `info` for `serve`, `warn` for the other commands | a tracing filter, e.g. `info,sqlx=warn` |
//! | `jwt_access_token_lifetime` | `PORTCULLIS_JWT_ACCESS_TOKEN_LIFETIME` | `300` | JWT access token lifetime in seconds (simplejwt's `ACCESS_TOKEN_LIFETIME`) |
//! | `jwt_refresh_token_lifetime` | `PORTCULLIS_JWT_REFRESH_TOKEN_LIFETIME` | `86400` | JWT refresh token lifetime in seconds (`REFRESH_TOKEN_LIFETIME`) |
//! | `jwt_rotate_refresh_tokens` | `PORTCULLIS_JWT_ROTATE_REFRESH_TOKENS` | `false` | `/api/token/refresh/` also returns a new refresh token (`ROTATE_REFRESH_TOKENS`) |
//! | `jwt_blacklist_after_rotation` | `PORTCULLIS_JWT_BLACKLIST_AFTER_ROTATION` | `false` | with rotation, the refresh token used is blacklisted (`BLACKLIST_AFTER_ROTATION`) |
//! | `jwt_algorithm` | `PORTCULLIS_JWT_ALGORITHM` | `HS256` | `HS256`/`HS384`/`HS512` sign with the secret key; `RS256`/`RS384`/`RS512`, `PS256`/`PS384`/`PS512`, `ES256` and `EdDSA` need `jwt_signing_key_file` |
//! | `jwt_signing_key_file` | `PORTCULLIS_JWT_SIGNING_KEY_FILE` | none | private key PEM for an asymmetric `jwt_algorithm` (`portcullis create-jwt-key`); read when `serve` starts |
//! | `jwt_verifying_key_file` | `PORTCULLIS_JWT_VERIFYING_KEY_FILE` | none | an extra public key PEM whose tokens are accepted too (key rotation); the signing key always verifies |
//! | `jwt_audience` | `PORTCULLIS_JWT_AUDIENCE` | none | written as `aud` and required in incoming JWTs |
//! | `jwt_issuer` | `PORTCULLIS_JWT_ISSUER` | none | written as `iss` and required in incoming JWTs |
//! | `jwt_leeway` | `PORTCULLIS_JWT_LEEWAY` | `0` | seconds of clock skew allowed for a JWT's `exp`, `nbf` and `iat` |
//! | `oauth2_access_token_lifetime` | `PORTCULLIS_OAUTH2_ACCESS_TOKEN_LIFETIME` | `36000` | OAuth2 access token lifetime in seconds (django-oauth-toolkit's `ACCESS_TOKEN_EXPIRE_SECONDS`) |
//! | `oauth2_code_lifetime` | `PORTCULLIS_OAUTH2_CODE_LIFETIME` | `60` | OAuth2 authorization code lifetime in seconds |
//! | `oauth2_password_grant` | `PORTCULLIS_OAUTH2_PASSWORD_GRANT` | `true` | whether `/oauth2/token/` serves the legacy `password` grant (clients must also be allowed it) |
//! | `digest_nonce_lifetime` | `PORTCULLIS_DIGEST_NONCE_LIFETIME` | `300` | seconds a Digest nonce is accepted on `/digest/`; older nonces get the challenge again with `stale=true` |
//! | `hawk_skew` | `PORTCULLIS_HAWK_SKEW` | `60` | seconds a Hawk timestamp may differ from the server's clock on `/hawk/`; outside it the answer carries `ts`/`tsm` |
//! | `httpsig_max_age` | `PORTCULLIS_HTTPSIG_MAX_AGE` | `300` | seconds an HTTP message signature's `created` may be old (`expires` is always enforced) |
//! | `httpsig_cavage` | `PORTCULLIS_HTTPSIG_CAVAGE` | `false` | also accept the older draft-cavage `Signature` header at `/httpsig/` |
//! | `oauth1_timestamp_window` | `PORTCULLIS_OAUTH1_TIMESTAMP_WINDOW` | `300` | seconds an OAuth 1.0a `oauth_timestamp` may be off; nonces are remembered this long |
//! | `oauth1_plaintext_over_http` | `PORTCULLIS_OAUTH1_PLAINTEXT_OVER_HTTP` | `false` | accept OAuth 1.0a `PLAINTEXT` over plain HTTP too (HTTPS only otherwise) |
//!
//! Booleans are `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
//!
//! The secret key never goes into the database. When none is given and the
//! database is SQLite, one is generated on first use and kept beside the
//! database in `<database path>.secret_key`, readable by its owner only,
//! and reused after; with PostgreSQL or MariaDB, where several servers share
//! one database, a command that needs it refuses to run without one
//! ([`Settings::secret_key`]).

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use portcullis::password::HasherConfig;
use portcullis::throttle::{ClientIp, ThrottleConfig};
use portcullis::SecretKey;
use serde::Deserialize;

mod jwt;
mod oauth2;
mod signed;
pub use jwt::{
    is_hmac, parse_algorithm, JwtConfig, DEFAULT_ACCESS_TOKEN_LIFETIME,
    DEFAULT_REFRESH_TOKEN_LIFETIME,
};
pub use oauth2::{
    OAuth2Config, DEFAULT_OAUTH2_ACCESS_TOKEN_LIFETIME, DEFAULT_OAUTH2_CODE_LIFETIME,
};
pub use signed::{SignedConfig, DEFAULT_HTTPSIG_MAX_AGE, DEFAULT_OAUTH1_TIMESTAMP_WINDOW};

/// The embedded default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://portcullis.db";
/// Where `serve` listens by default.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// PBKDF2 iterations for new password hashes by default (Django 6.0).
pub const DEFAULT_PASSWORD_ITERATIONS: u32 = 1_200_000;
/// Most PBKDF2 iterations accepted (the hasher's cap on stored hashes).
pub const MAX_PASSWORD_ITERATIONS: u32 = 10_000_000;
/// The proxy header RemoteUser trusts by default.
pub const DEFAULT_REMOTE_USER_HEADER: &str = "Remote-User";
/// Session lifetime by default: two weeks, in seconds.
pub const DEFAULT_SESSION_AGE: i64 = 1_209_600;
/// How long `serve` waits for a request's headers by default, in seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT: u64 = 30;
/// The longest `header_read_timeout` accepted: a day.
pub const MAX_HEADER_READ_TIMEOUT: u64 = 86_400;
/// The largest request body accepted by default: 2.5 MiB, as Django's
/// `DATA_UPLOAD_MAX_MEMORY_SIZE`.
pub const DEFAULT_FORM_LIMIT: usize = portcullis::layer::DEFAULT_FORM_LIMIT;
/// How long `serve` caches store reads by default, in milliseconds.
pub const DEFAULT_CACHE_TTL_MS: u64 = 500;
/// DRF-style throttle rates by default.
pub const DEFAULT_THROTTLE_RATES: &str = "anon=5/min,user=10/min,burst=3/min";
/// Failed logins before a lockout, by default.
pub const DEFAULT_LOCKOUT_FAILURES: u32 = 5;
/// Lockout cool-off by default, in seconds.
pub const DEFAULT_LOCKOUT_COOLOFF: u64 = 900;
/// The Redis key prefix by default.
pub const DEFAULT_REDIS_PREFIX: &str = "portcullis:";
/// Digest nonce lifetime by default, in seconds.
pub const DEFAULT_DIGEST_NONCE_LIFETIME: u64 = 300;
/// Hawk timestamp skew by default, in seconds.
pub const DEFAULT_HAWK_SKEW: u64 = 60;
/// Prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "PORTCULLIS_";

/// The database engines portcullis speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// `sqlite://PATH` (the embedded default).
    Sqlite,
    /// `postgres://...` or `postgresql://...`.
    Postgres,
    /// `mysql://...` or `mariadb://...` (MariaDB).
    MySql,
}

impl DbKind {
    /// The engine a database URL names.
    pub fn of_url(url: &str) -> anyhow::Result<DbKind> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            Ok(DbKind::Sqlite)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(DbKind::Postgres)
        } else if lower.starts_with("mysql://") || lower.starts_with("mariadb://") {
            Ok(DbKind::MySql)
        } else {
            bail!(
                "unsupported database URL {}: expected sqlite://PATH, postgres://... or mysql://...",
                redact_url(url)
            )
        }
    }

    /// The engine's name for messages.
    pub fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "SQLite",
            DbKind::Postgres => "PostgreSQL",
            DbKind::MySql => "MariaDB/MySQL",
        }
    }
}

/// Settings given as flags; they beat the environment and the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `serve --bind`.
    pub bind: Option<String>,
}

/// Every setting, resolved. See the [module docs](self) for the table.
#[derive(Clone)]
pub struct Settings {
    /// The secret key as given, if given (`PORTCULLIS_SECRET_KEY`); see
    /// [`Settings::secret_key`] for the rules when it is not.
    pub secret_key: Option<String>,
    /// The database URL. Default [`DEFAULT_DATABASE_URL`].
    pub database_url: String,
    /// Address `serve` listens on. Default [`DEFAULT_BIND`].
    pub bind: String,
    /// PBKDF2-SHA256 iterations for new hashes. Default
    /// [`DEFAULT_PASSWORD_ITERATIONS`].
    pub password_iterations: u32,
    /// RemoteUser's header. Default [`DEFAULT_REMOTE_USER_HEADER`].
    pub remote_user_header: String,
    /// Whether RemoteUser creates unknown users. Default `true`.
    pub remote_user_create_unknown: bool,
    /// The anonymous user's name; `None` keeps the app's default
    /// (`AnonymousUser`).
    pub unauthenticated_user: Option<String>,
    /// Extra origins trusted for unsafe requests. Default empty.
    pub csrf_trusted_origins: Vec<String>,
    /// Header name and value that mark a request as HTTPS. Default none.
    pub secure_proxy_ssl_header: Option<(String, String)>,
    /// Whether cookies are `Secure`. Default `false`.
    pub cookie_secure: bool,
    /// Redis down: let rate-limited requests through. Default `true`.
    pub redis_throttle_fail_open: bool,
    /// Redis down: let logins proceed without a lockout. Default `false`.
    pub redis_lockout_fail_open: bool,
    /// Session lifetime in seconds. Default [`DEFAULT_SESSION_AGE`].
    pub session_age: i64,
    /// The largest request body accepted, in bytes. Default
    /// [`DEFAULT_FORM_LIMIT`].
    pub form_limit: usize,
    /// Seconds a client has to send a request's headers. Default
    /// [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: u64,
    /// How long store reads are cached, in milliseconds; `0` is off.
    /// Default [`DEFAULT_CACHE_TTL_MS`].
    pub cache_ttl_ms: u64,
    /// Whether verified Basic credentials are remembered. Default `true`.
    pub basic_cache: bool,
    /// Throttle rates given, `scope=N/PERIOD,...`, applied over
    /// [`DEFAULT_THROTTLE_RATES`]. Default none.
    pub throttle_rates: Option<String>,
    /// Trusted proxies in front of `serve` (DRF's `NUM_PROXIES`). Default 0.
    pub num_proxies: usize,
    /// Failed logins before a lockout. Default [`DEFAULT_LOCKOUT_FAILURES`].
    pub lockout_failures: u32,
    /// Lockout cool-off in seconds. Default [`DEFAULT_LOCKOUT_COOLOFF`].
    pub lockout_cooloff: u64,
    /// Whether the login lockout is on. Default `true`.
    pub login_throttle: bool,
    /// Redis for throttle counts and lockouts; `None` keeps them in memory
    /// and the database. Default none.
    pub redis_url: Option<String>,
    /// The Redis key prefix. Default [`DEFAULT_REDIS_PREFIX`].
    pub redis_prefix: String,
    /// Whether sessions live in Redis rather than the database. Default
    /// `false`; needs [`redis_url`](Settings::redis_url).
    pub redis_sessions: bool,
    /// The JWT settings (`jwt_*`, [`JwtConfig`]).
    pub jwt: JwtConfig,
    /// The OAuth2 settings (`oauth2_*`, [`OAuth2Config`]).
    pub oauth2: OAuth2Config,
    /// Seconds a Digest nonce is accepted. Default
    /// [`DEFAULT_DIGEST_NONCE_LIFETIME`].
    pub digest_nonce_lifetime: u64,
    /// Seconds of Hawk timestamp skew allowed. Default [`DEFAULT_HAWK_SKEW`].
    pub hawk_skew: u64,
    /// The HTTP Message Signatures and OAuth 1.0a settings
    /// (`httpsig_*`, `oauth1_*`, [`SignedConfig`]).
    pub signed: SignedConfig,
    /// The tracing filter, if given; `None` means the command's default
    /// (`info` for `serve`, `warn` otherwise).
    pub log: Option<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("database_url", &redact_url(&self.database_url))
            .field("bind", &self.bind)
            .field("password_iterations", &self.password_iterations)
            .field("remote_user_header", &self.remote_user_header)
            .field(
                "remote_user_create_unknown",
                &self.remote_user_create_unknown,
            )
            .field("unauthenticated_user", &self.unauthenticated_user)
            .field("csrf_trusted_origins", &self.csrf_trusted_origins)
            .field("secure_proxy_ssl_header", &self.secure_proxy_ssl_header)
            .field("cookie_secure", &self.cookie_secure)
            .field("redis_throttle_fail_open", &self.redis_throttle_fail_open)
            .field("redis_lockout_fail_open", &self.redis_lockout_fail_open)
            .field("session_age", &self.session_age)
            .field("form_limit", &self.form_limit)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("cache_ttl_ms", &self.cache_ttl_ms)
            .field("basic_cache", &self.basic_cache)
            .field("throttle_rates", &self.throttle_rates)
            .field("num_proxies", &self.num_proxies)
            .field("lockout_failures", &self.lockout_failures)
            .field("lockout_cooloff", &self.lockout_cooloff)
            .field("login_throttle", &self.login_throttle)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("redis_sessions", &self.redis_sessions)
            .field("log", &self.log)
            .field("jwt", &self.jwt)
            .field("oauth2", &self.oauth2)
            .field("digest_nonce_lifetime", &self.digest_nonce_lifetime)
            .field("hawk_skew", &self.hawk_skew)
            .field("signed", &self.signed)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            secret_key: None,
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            bind: DEFAULT_BIND.to_owned(),
            password_iterations: DEFAULT_PASSWORD_ITERATIONS,
            remote_user_header: DEFAULT_REMOTE_USER_HEADER.to_owned(),
            remote_user_create_unknown: true,
            unauthenticated_user: None,
            csrf_trusted_origins: Vec::new(),
            secure_proxy_ssl_header: None,
            cookie_secure: false,
            redis_throttle_fail_open: true,
            redis_lockout_fail_open: false,
            session_age: DEFAULT_SESSION_AGE,
            form_limit: DEFAULT_FORM_LIMIT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            cache_ttl_ms: DEFAULT_CACHE_TTL_MS,
            basic_cache: true,
            throttle_rates: None,
            num_proxies: 0,
            lockout_failures: DEFAULT_LOCKOUT_FAILURES,
            lockout_cooloff: DEFAULT_LOCKOUT_COOLOFF,
            login_throttle: true,
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            redis_sessions: false,
            log: None,
            jwt: JwtConfig::default(),
            oauth2: OAuth2Config::default(),
            digest_nonce_lifetime: DEFAULT_DIGEST_NONCE_LIFETIME,
            hawk_skew: DEFAULT_HAWK_SKEW,
            signed: SignedConfig::default(),
        }
    }
}

/// A list given either as a TOML array or as a comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrString {
    List(Vec<String>),
    Text(String),
}

/// The config file: the same names as the settings, all optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    secret_key: Option<String>,
    database_url: Option<String>,
    bind: Option<String>,
    password_iterations: Option<u32>,
    remote_user_header: Option<String>,
    remote_user_create_unknown: Option<bool>,
    unauthenticated_user: Option<String>,
    csrf_trusted_origins: Option<ListOrString>,
    secure_proxy_ssl_header: Option<ListOrString>,
    cookie_secure: Option<bool>,
    redis_throttle_fail_open: Option<bool>,
    redis_lockout_fail_open: Option<bool>,
    session_age: Option<i64>,
    form_limit: Option<usize>,
    header_read_timeout: Option<u64>,
    cache_ttl_ms: Option<u64>,
    basic_cache: Option<bool>,
    throttle_rates: Option<String>,
    num_proxies: Option<usize>,
    lockout_failures: Option<u32>,
    lockout_cooloff: Option<u64>,
    login_throttle: Option<LoginThrottle>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    redis_sessions: Option<bool>,
    log: Option<String>,
    jwt_access_token_lifetime: Option<u64>,
    jwt_refresh_token_lifetime: Option<u64>,
    jwt_rotate_refresh_tokens: Option<bool>,
    jwt_blacklist_after_rotation: Option<bool>,
    jwt_algorithm: Option<String>,
    jwt_signing_key_file: Option<PathBuf>,
    jwt_verifying_key_file: Option<PathBuf>,
    jwt_audience: Option<String>,
    jwt_issuer: Option<String>,
    jwt_leeway: Option<u64>,
    oauth2_access_token_lifetime: Option<u64>,
    oauth2_code_lifetime: Option<u64>,
    oauth2_password_grant: Option<bool>,
    digest_nonce_lifetime: Option<u64>,
    hawk_skew: Option<u64>,
    httpsig_max_age: Option<u64>,
    httpsig_cavage: Option<bool>,
    oauth1_timestamp_window: Option<u64>,
    oauth1_plaintext_over_http: Option<bool>,
}

/// `login_throttle` in the file: a boolean or `"on"`/`"off"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum LoginThrottle {
    Bool(bool),
    Text(String),
}

impl Settings {
    /// Reads the settings from the file (if any), the process environment
    /// and the flags.
    pub fn load(config: Option<&Path>, flags: &Overrides) -> anyhow::Result<Settings> {
        let file = match config {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?,
            ),
            None => None,
        };
        let name = config.map(|p| p.display().to_string());
        Settings::from_sources(
            file.as_deref()
                .map(|text| (name.as_deref().unwrap_or(""), text)),
            |k| std::env::var(k).ok(),
            flags,
        )
    }

    /// Resolves the settings from a config file's `(name, text)`, an
    /// environment look-up and the flags.
    pub fn from_sources(
        file: Option<(&str, &str)>,
        env: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> anyhow::Result<Settings> {
        let mut s = Settings::default();
        if let Some((name, text)) = file {
            let f: FileSettings = toml::from_str(text).map_err(|e| {
                anyhow!(
                    "config file {name}: {}",
                    e.message().lines().next().unwrap_or("invalid TOML")
                )
            })?;
            s.apply_file(f)
                .with_context(|| format!("config file {name}"))?;
        }
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        s.apply_env(&env)?;
        if let Some(url) = &flags.database_url {
            s.database_url = url.clone();
        }
        if let Some(bind) = &flags.bind {
            s.bind = bind.clone();
        }
        s.validate()?;
        Ok(s)
    }

    fn apply_file(&mut self, f: FileSettings) -> anyhow::Result<()> {
        self.jwt.apply_file(&f)?;
        self.oauth2.apply_file(&f);
        self.signed.apply_file(&f);
        set(&mut self.secret_key, f.secret_key.map(Some));
        set(&mut self.database_url, f.database_url);
        set(&mut self.bind, f.bind);
        set(&mut self.password_iterations, f.password_iterations);
        set(&mut self.remote_user_header, f.remote_user_header);
        set(
            &mut self.remote_user_create_unknown,
            f.remote_user_create_unknown,
        );
        set(
            &mut self.unauthenticated_user,
            f.unauthenticated_user.map(Some),
        );
        if let Some(list) = f.csrf_trusted_origins {
            self.csrf_trusted_origins = match list {
                ListOrString::List(items) => items,
                ListOrString::Text(text) => split_list(&text),
            };
        }
        if let Some(header) = f.secure_proxy_ssl_header {
            self.secure_proxy_ssl_header = match header {
                ListOrString::List(items) => Some(pair(items)?),
                ListOrString::Text(text) => Some(parse_pair(&text)?),
            };
        }
        set(&mut self.cookie_secure, f.cookie_secure);
        set(
            &mut self.redis_throttle_fail_open,
            f.redis_throttle_fail_open,
        );
        set(&mut self.redis_lockout_fail_open, f.redis_lockout_fail_open);
        set(&mut self.session_age, f.session_age);
        set(&mut self.form_limit, f.form_limit);
        set(&mut self.header_read_timeout, f.header_read_timeout);
        set(&mut self.cache_ttl_ms, f.cache_ttl_ms);
        set(&mut self.basic_cache, f.basic_cache);
        set(&mut self.throttle_rates, f.throttle_rates.map(Some));
        set(&mut self.num_proxies, f.num_proxies);
        set(&mut self.lockout_failures, f.lockout_failures);
        set(&mut self.lockout_cooloff, f.lockout_cooloff);
        if let Some(v) = f.login_throttle {
            self.login_throttle = match v {
                LoginThrottle::Bool(b) => b,
                LoginThrottle::Text(t) => parse_bool(&t).context("login_throttle")?,
            };
        }
        set(&mut self.redis_url, f.redis_url.map(Some));
        set(&mut self.redis_prefix, f.redis_prefix);
        set(&mut self.redis_sessions, f.redis_sessions);
        set(&mut self.log, f.log.map(Some));
        set(&mut self.digest_nonce_lifetime, f.digest_nonce_lifetime);
        set(&mut self.hawk_skew, f.hawk_skew);
        Ok(())
    }

    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        self.jwt.apply_env(env)?;
        self.oauth2.apply_env(env)?;
        self.signed.apply_env(env)?;
        let var = |name: &str| env(&format!("{ENV_PREFIX}{}", name.to_ascii_uppercase()));
        set(&mut self.secret_key, var("secret_key").map(Some));
        set(
            &mut self.database_url,
            var("database_url").or_else(|| env("DATABASE_URL")),
        );
        set(&mut self.bind, var("bind"));
        if let Some(v) = var("password_iterations") {
            self.password_iterations = v.trim().parse().map_err(|_| {
                anyhow!("PORTCULLIS_PASSWORD_ITERATIONS must be a whole number, not {v:?}")
            })?;
        }
        set(&mut self.remote_user_header, var("remote_user_header"));
        if let Some(v) = var("remote_user_create_unknown") {
            self.remote_user_create_unknown =
                parse_bool(&v).context("PORTCULLIS_REMOTE_USER_CREATE_UNKNOWN")?;
        }
        set(
            &mut self.unauthenticated_user,
            var("unauthenticated_user").map(Some),
        );
        if let Some(v) = var("csrf_trusted_origins") {
            self.csrf_trusted_origins = split_list(&v);
        }
        if let Some(v) = var("secure_proxy_ssl_header") {
            self.secure_proxy_ssl_header =
                Some(parse_pair(&v).context("PORTCULLIS_SECURE_PROXY_SSL_HEADER")?);
        }
        if let Some(v) = var("cookie_secure") {
            self.cookie_secure = parse_bool(&v).context("PORTCULLIS_COOKIE_SECURE")?;
        }
        if let Some(v) = var("redis_throttle_fail_open") {
            self.redis_throttle_fail_open =
                parse_bool(&v).context("PORTCULLIS_REDIS_THROTTLE_FAIL_OPEN")?;
        }
        if let Some(v) = var("redis_lockout_fail_open") {
            self.redis_lockout_fail_open =
                parse_bool(&v).context("PORTCULLIS_REDIS_LOCKOUT_FAIL_OPEN")?;
        }
        if let Some(v) = var("session_age") {
            self.session_age = v.trim().parse().map_err(|_| {
                anyhow!("PORTCULLIS_SESSION_AGE must be a whole number of seconds, not {v:?}")
            })?;
        }
        if let Some(v) = var("form_limit") {
            self.form_limit = v.trim().parse().map_err(|_| {
                anyhow!("PORTCULLIS_FORM_LIMIT must be a whole number of bytes, not {v:?}")
            })?;
        }
        if let Some(v) = var("header_read_timeout") {
            self.header_read_timeout = v.trim().parse().map_err(|_| {
                anyhow!(
                    "PORTCULLIS_HEADER_READ_TIMEOUT must be a whole number of seconds, not {v:?}"
                )
            })?;
        }
        if let Some(v) = var("cache_ttl_ms") {
            self.cache_ttl_ms = v.trim().parse().map_err(|_| {
                anyhow!("PORTCULLIS_CACHE_TTL_MS must be a whole number of milliseconds, not {v:?}")
            })?;
        }
        if let Some(v) = var("basic_cache") {
            self.basic_cache = parse_bool(&v).context("PORTCULLIS_BASIC_CACHE")?;
        }
        set(&mut self.throttle_rates, var("throttle_rates").map(Some));
        if let Some(v) = var("num_proxies") {
            self.num_proxies = v
                .trim()
                .parse()
                .map_err(|_| anyhow!("PORTCULLIS_NUM_PROXIES must be a whole number, not {v:?}"))?;
        }
        if let Some(v) = var("lockout_failures") {
            self.lockout_failures = v.trim().parse().map_err(|_| {
                anyhow!("PORTCULLIS_LOCKOUT_FAILURES must be a whole number, not {v:?}")
            })?;
        }
        if let Some(v) = var("lockout_cooloff") {
            self.lockout_cooloff = v.trim().parse().map_err(|_| {
                anyhow!("PORTCULLIS_LOCKOUT_COOLOFF must be a whole number of seconds, not {v:?}")
            })?;
        }
        if let Some(v) = var("login_throttle") {
            self.login_throttle = parse_bool(&v).context("PORTCULLIS_LOGIN_THROTTLE")?;
        }
        set(&mut self.redis_url, var("redis_url").map(Some));
        set(&mut self.redis_prefix, var("redis_prefix"));
        if let Some(v) = var("redis_sessions") {
            self.redis_sessions = parse_bool(&v).context("PORTCULLIS_REDIS_SESSIONS")?;
        }
        if let Some(v) = var("digest_nonce_lifetime") {
            self.digest_nonce_lifetime = v.trim().parse().map_err(|_| {
                anyhow!(
                    "PORTCULLIS_DIGEST_NONCE_LIFETIME must be a whole number of seconds, not {v:?}"
                )
            })?;
        }
        if let Some(v) = var("hawk_skew") {
            self.hawk_skew = v.trim().parse().map_err(|_| {
                anyhow!("PORTCULLIS_HAWK_SKEW must be a whole number of seconds, not {v:?}")
            })?;
        }
        set(
            &mut self.log,
            var("log").or_else(|| env("RUST_LOG")).map(Some),
        );
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.signed.validate()?;
        if self.password_iterations == 0 || self.password_iterations > MAX_PASSWORD_ITERATIONS {
            bail!("password_iterations must be between 1 and {MAX_PASSWORD_ITERATIONS}");
        }
        if self.session_age <= 0 {
            bail!("session_age must be a positive number of seconds");
        }
        if self.form_limit == 0 {
            bail!("form_limit must be at least 1 byte");
        }
        if self.header_read_timeout == 0 || self.header_read_timeout > MAX_HEADER_READ_TIMEOUT {
            bail!(
                "header_read_timeout must be between 1 and {MAX_HEADER_READ_TIMEOUT} seconds \
                 (PORTCULLIS_HEADER_READ_TIMEOUT)"
            );
        }
        if self.lockout_failures == 0 {
            bail!("lockout_failures must be at least 1 (PORTCULLIS_LOCKOUT_FAILURES)");
        }
        if self.lockout_cooloff == 0 {
            bail!("lockout_cooloff must be at least 1 second (PORTCULLIS_LOCKOUT_COOLOFF)");
        }
        if self.digest_nonce_lifetime == 0 {
            bail!("digest_nonce_lifetime must be at least 1 second (PORTCULLIS_DIGEST_NONCE_LIFETIME)");
        }
        if self.hawk_skew == 0 {
            bail!("hawk_skew must be at least 1 second (PORTCULLIS_HAWK_SKEW)");
        }
        self.throttle_config()?;
        if let Some(url) = &self.redis_url {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("redis://")
                || lower.starts_with("rediss://")
                || lower.starts_with("redis+unix://")
                || lower.starts_with("unix://"))
            {
                bail!(
                    "unsupported Redis URL {}: expected redis://HOST[:PORT][/DB]",
                    redact_url(url)
                );
            }
        }
        if self.redis_sessions && self.redis_url.is_none() {
            bail!(
                "redis_sessions (PORTCULLIS_REDIS_SESSIONS) keeps sessions in Redis: \
                 set redis_url (PORTCULLIS_REDIS_URL) too"
            );
        }
        if self.remote_user_header.trim().is_empty() {
            bail!("remote_user_header must not be empty");
        }
        if let Some(key) = &self.secret_key {
            SecretKey::new(key.as_bytes())
                .map_err(|e| anyhow!("secret_key (PORTCULLIS_SECRET_KEY): {e}"))?;
        }
        self.jwt.validate()?;
        self.oauth2.validate()?;
        DbKind::of_url(&self.database_url)?;
        Ok(())
    }

    /// The throttles' shared settings: [`DEFAULT_THROTTLE_RATES`] with the
    /// rates given on top, and the client address per
    /// [`num_proxies`](Settings::num_proxies). Counts go to a fresh memory
    /// store; `serve` swaps in Redis when [`redis_url`](Settings::redis_url)
    /// is set.
    pub fn throttle_config(&self) -> anyhow::Result<ThrottleConfig> {
        let config = ThrottleConfig::new()
            .client_ip(ClientIp::behind_proxies(self.num_proxies))
            .rates(DEFAULT_THROTTLE_RATES)
            .expect("the default rates parse");
        match &self.throttle_rates {
            Some(rates) => config
                .rates(rates)
                .map_err(|e| anyhow!("throttle_rates (PORTCULLIS_THROTTLE_RATES): {e}")),
            None => Ok(config),
        }
    }

    /// The engine the database URL names.
    pub fn db_kind(&self) -> DbKind {
        DbKind::of_url(&self.database_url).unwrap_or(DbKind::Sqlite)
    }

    /// The database URL with any password hidden, for logs and errors.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url)
    }

    /// The password hasher's settings: Django's defaults with
    /// [`password_iterations`](Settings::password_iterations).
    pub fn hasher_config(&self) -> HasherConfig {
        HasherConfig {
            pbkdf2_iterations: self.password_iterations,
            ..HasherConfig::default()
        }
    }

    /// Checks that a secret key is available without creating one: `Ok`
    /// when one is given or the database is SQLite (where it is generated
    /// on first use), else the error every command that needs it reports.
    pub fn require_secret(&self) -> anyhow::Result<()> {
        if self.secret_key.is_some() || self.db_kind() == DbKind::Sqlite {
            return Ok(());
        }
        bail!(
            "no secret key: set PORTCULLIS_SECRET_KEY (or secret_key in the config file); \
             it is never generated for a shared {} database",
            self.db_kind().name()
        )
    }

    /// The secret key, by the rules every command shares with `serve`:
    ///
    /// - the one given (`secret_key`, `PORTCULLIS_SECRET_KEY`), if any;
    /// - else, on SQLite, the one in `<database path>.secret_key`, generated
    ///   there on first use (mode 0600, created atomically, so concurrent
    ///   first runs agree on one key); an in-memory database gets a fresh
    ///   key for the life of the process;
    /// - else an error: PostgreSQL and MariaDB are shared by several servers,
    ///   which must all be given the same secret.
    ///
    /// Call it after connecting, so the database file exists first.
    pub fn secret_key(&self) -> anyhow::Result<SecretKey> {
        if let Some(key) = &self.secret_key {
            return SecretKey::new(key.as_bytes())
                .map_err(|e| anyhow!("secret_key (PORTCULLIS_SECRET_KEY): {e}"));
        }
        self.require_secret()?;
        match sqlite_path(&self.database_url) {
            None => {
                tracing::warn!(
                    "no secret key for an in-memory database: using a random one for this process"
                );
                SecretKey::new(SecretKey::generate_text()).map_err(|e| anyhow!("{e}"))
            }
            Some(db) => {
                let path = secret_file_path(&db);
                let text = load_or_create_secret_file(&path)?;
                SecretKey::new(text.as_bytes()).map_err(|_| {
                    anyhow!(
                        "the secret key file {} is too short (at least 32 bytes are needed); \
                         set PORTCULLIS_SECRET_KEY or remove the file to generate a new key",
                        path.display()
                    )
                })
            }
        }
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn pair(items: Vec<String>) -> anyhow::Result<(String, String)> {
    match <[String; 2]>::try_from(items) {
        Ok([name, value]) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => bail!("secure_proxy_ssl_header must be a header name and a value"),
    }
}

fn parse_pair(text: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = text
        .split_once(',')
        .or_else(|| text.split_once(':'))
        .ok_or_else(|| anyhow!("expected NAME,VALUE, e.g. X-Forwarded-Proto,https"))?;
    pair(vec![name.to_owned(), value.to_owned()])
}

fn parse_bool(text: &str) -> anyhow::Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => bail!("expected true or false, not {text:?}"),
    }
}

/// Hides the password of a database URL (`user:***@host`, and a
/// `password=` query parameter), for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..rest_start].to_owned();
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    match tail.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                        format!("{k}=***")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

/// Removes a database URL's password from a message (raw and
/// percent-decoded), in case a driver echoes it.
///
/// Only whole occurrences are replaced, not ones inside a longer word: a
/// short password such as `e` would otherwise be starred out of every
/// word of the message, garbling it and, by the pattern, giving the
/// password away.
pub fn scrub(message: &str, url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return message.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let mut out = message.replace(url, &redact_url(url));
    if let Some(at) = authority.rfind('@') {
        if let Some((_, password)) = authority[..at].split_once(':') {
            if !password.is_empty() {
                out = replace_whole(&out, password, "***");
                let decoded = percent_decode(password);
                if !decoded.is_empty() {
                    out = replace_whole(&out, &decoded, "***");
                }
            }
        }
    }
    out
}

/// `haystack` with each occurrence of `needle` that is not part of a
/// longer word (no letter or digit right before or after it) replaced.
fn replace_whole(haystack: &str, needle: &str, with: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(i) = rest.find(needle) {
        let end = i + needle.len();
        let before = if i == 0 {
            out.chars().next_back()
        } else {
            rest[..i].chars().next_back()
        };
        if word(before) || word(rest[end..].chars().next()) {
            // Part of a longer word: keep it, and look again one
            // character further on.
            let step = i + rest[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&rest[..step]);
            rest = &rest[step..];
        } else {
            out.push_str(&rest[..i]);
            out.push_str(with);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file a SQLite URL names (percent-decoded, as the driver reads it),
/// or `None` for an in-memory database.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.get("sqlite:".len()..)?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(percent_decode(path)))
}

/// Where the generated secret key of a SQLite database is kept:
/// `<database path>.secret_key`.
pub fn secret_file_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".secret_key");
    PathBuf::from(name)
}

fn read_secret_file(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?.read_to_string(&mut text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "the secret key file is readable by others than its owner; chmod 600 it"
            );
        }
    }
    Ok(text.trim().to_owned())
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Reads the secret file, creating it with a fresh key first if it does
/// not exist. The key is written to a private temporary file that is then
/// hard-linked into place, so no reader ever sees a partial key and when
/// two processes race, both end up with the one that was linked first.
fn load_or_create_secret_file(path: &Path) -> anyhow::Result<String> {
    let shown = path.display();
    match read_secret_file(path) {
        Ok(text) => return Ok(text),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => bail!("cannot read the secret key file {shown}: {e}"),
    }
    let key = SecretKey::generate_text();
    let tmp = {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(
            ".tmp-{}-{}",
            std::process::id(),
            portcullis::secret::random_hex(4)
        ));
        PathBuf::from(name)
    };
    let write = |p: &Path| -> std::io::Result<()> {
        let mut f = create_private(p)?;
        f.write_all(key.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    };
    write(&tmp).with_context(|| format!("cannot create the secret key file {shown}"))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(file = %shown, "generated a new secret key");
            Ok(key)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read_secret_file(path)
            .with_context(|| format!("cannot read the secret key file {shown}")),
        Err(_) => {
            // No hard links here: create the file in place instead.
            match write(path) {
                Ok(()) => {
                    tracing::info!(file = %shown, "generated a new secret key");
                    Ok(key)
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    // Another process is writing it: give it a moment.
                    for _ in 0..20 {
                        let text = read_secret_file(path)
                            .with_context(|| format!("cannot read the secret key file {shown}"))?;
                        if text.len() >= portcullis::secret::MIN_SECRET_LEN {
                            return Ok(text);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    read_secret_file(path)
                        .with_context(|| format!("cannot read the secret key file {shown}"))
                }
                Err(e) => bail!("cannot create the secret key file {shown}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_documented_values() {
        let s = Settings::from_sources(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(s.database_url, "sqlite://portcullis.db");
        assert_eq!(s.bind, "127.0.0.1:8000");
        assert_eq!(s.password_iterations, 1_200_000);
        assert_eq!(s.remote_user_header, "Remote-User");
        assert!(s.remote_user_create_unknown);
        assert!(!s.cookie_secure);
        assert_eq!(s.session_age, 1_209_600);
        assert_eq!(s.form_limit, 2_621_440);
        assert_eq!(s.header_read_timeout, 30);
        assert_eq!(s.cache_ttl_ms, 500);
        assert!(s.basic_cache);
        assert!(s.secret_key.is_none() && s.log.is_none());
    }

    #[test]
    fn cache_settings_come_from_env_and_file() {
        let file = "cache_ttl_ms = 250\nbasic_cache = false\n";
        let s = Settings::from_sources(Some(("f.toml", file)), env(&[]), &Overrides::default())
            .unwrap();
        assert_eq!((s.cache_ttl_ms, s.basic_cache), (250, false));
        let e = env(&[
            ("PORTCULLIS_CACHE_TTL_MS", "0"),
            ("PORTCULLIS_BASIC_CACHE", "on"),
        ]);
        let s = Settings::from_sources(Some(("f.toml", file)), e, &Overrides::default()).unwrap();
        assert_eq!((s.cache_ttl_ms, s.basic_cache), (0, true));
        let bad = env(&[("PORTCULLIS_CACHE_TTL_MS", "soon")]);
        assert!(Settings::from_sources(None, bad, &Overrides::default()).is_err());
    }

    #[test]
    fn header_read_timeout_comes_from_env_and_file() {
        let file = "header_read_timeout = 12\n";
        let s = Settings::from_sources(Some(("f.toml", file)), env(&[]), &Overrides::default())
            .unwrap();
        assert_eq!(s.header_read_timeout, 12);
        let e = env(&[("PORTCULLIS_HEADER_READ_TIMEOUT", "5")]);
        let s = Settings::from_sources(Some(("f.toml", file)), e, &Overrides::default()).unwrap();
        assert_eq!(s.header_read_timeout, 5);
        for bad in ["0", "-1", "soon", "86401", "18446744073709551615"] {
            let e = env(&[("PORTCULLIS_HEADER_READ_TIMEOUT", bad)]);
            let err = Settings::from_sources(None, e, &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("HEADER_READ_TIMEOUT"), "{err}");
        }
    }

    #[test]
    fn digest_and_hawk_windows() {
        let s = Settings::from_sources(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!((s.digest_nonce_lifetime, s.hawk_skew), (300, 60));
        let file = "digest_nonce_lifetime = 120\nhawk_skew = 30\n";
        let s = Settings::from_sources(Some(("f.toml", file)), env(&[]), &Overrides::default())
            .unwrap();
        assert_eq!((s.digest_nonce_lifetime, s.hawk_skew), (120, 30));
        let e = env(&[("PORTCULLIS_HAWK_SKEW", "5")]);
        let s = Settings::from_sources(Some(("f.toml", file)), e, &Overrides::default()).unwrap();
        assert_eq!((s.digest_nonce_lifetime, s.hawk_skew), (120, 5));
        for bad in [
            ("PORTCULLIS_DIGEST_NONCE_LIFETIME", "0"),
            ("PORTCULLIS_DIGEST_NONCE_LIFETIME", "soon"),
            ("PORTCULLIS_HAWK_SKEW", "0"),
            ("PORTCULLIS_HAWK_SKEW", "-1"),
        ] {
            let err = Settings::from_sources(None, env(&[bad]), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains(&bad.0[11..]), "{err}");
        }
    }

    #[test]
    fn redis_sessions_need_a_redis_url() {
        let s = Settings::from_sources(None, env(&[]), &Overrides::default()).unwrap();
        assert!(!s.redis_sessions);
        let e = env(&[("PORTCULLIS_REDIS_SESSIONS", "true")]);
        let err = Settings::from_sources(None, e, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("PORTCULLIS_REDIS_URL"), "{err}");
        let e = env(&[
            ("PORTCULLIS_REDIS_SESSIONS", "yes"),
            ("PORTCULLIS_REDIS_URL", "redis://127.0.0.1:6379"),
        ]);
        assert!(
            Settings::from_sources(None, e, &Overrides::default())
                .unwrap()
                .redis_sessions
        );
        let file = "redis_sessions = true\nredis_url = \"redis://cache\"\n";
        let s = Settings::from_sources(Some(("f", file)), env(&[]), &Overrides::default()).unwrap();
        assert!(s.redis_sessions);
        let e = env(&[("PORTCULLIS_REDIS_SESSIONS", "sometimes")]);
        let err = Settings::from_sources(None, e, &Overrides::default()).unwrap_err();
        assert!(
            format!("{err:#}").contains("PORTCULLIS_REDIS_SESSIONS"),
            "{err:#}"
        );
    }

    #[test]
    fn throttle_and_lockout_settings() {
        let s = Settings::from_sources(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(s.num_proxies, 0);
        assert_eq!((s.lockout_failures, s.lockout_cooloff), (5, 900));
        assert!(s.login_throttle && s.redis_url.is_none());
        assert_eq!(s.redis_prefix, "portcullis:");
        let t = s.throttle_config().unwrap();
        assert_eq!(t.rate_for("anon").unwrap().to_string(), "5/min");
        assert_eq!(t.rate_for("burst").unwrap().to_string(), "3/min");

        let e = env(&[
            ("PORTCULLIS_THROTTLE_RATES", "anon=100/day"),
            ("PORTCULLIS_NUM_PROXIES", "2"),
            ("PORTCULLIS_LOCKOUT_FAILURES", "3"),
            ("PORTCULLIS_LOCKOUT_COOLOFF", "60"),
            ("PORTCULLIS_LOGIN_THROTTLE", "off"),
            ("PORTCULLIS_REDIS_URL", "redis://:pw@cache:6379/1"),
        ]);
        let s = Settings::from_sources(None, e, &Overrides::default()).unwrap();
        let t = s.throttle_config().unwrap();
        assert_eq!(t.rate_for("anon").unwrap().to_string(), "100/day");
        assert_eq!(t.rate_for("user").unwrap().to_string(), "10/min");
        assert_eq!(t.client_ip_setting().num_proxies(), 2);
        assert_eq!((s.lockout_failures, s.lockout_cooloff), (3, 60));
        assert!(!s.login_throttle);
        assert!(!format!("{s:?}").contains(":pw@"));

        let file = "login_throttle = \"off\"\nlockout_failures = 7\n";
        let s = Settings::from_sources(Some(("f", file)), env(&[]), &Overrides::default()).unwrap();
        assert!(!s.login_throttle);
        assert_eq!(s.lockout_failures, 7);

        for (k, v) in [
            ("PORTCULLIS_THROTTLE_RATES", "anon=5/fortnight"),
            ("PORTCULLIS_LOCKOUT_FAILURES", "0"),
            ("PORTCULLIS_LOCKOUT_COOLOFF", "0"),
            ("PORTCULLIS_LOGIN_THROTTLE", "maybe"),
            ("PORTCULLIS_REDIS_URL", "http://cache"),
        ] {
            let r = Settings::from_sources(None, env(&[(k, v)]), &Overrides::default());
            assert!(r.is_err(), "{k}={v}");
        }
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let file = "database_url = \"sqlite://file.db\"\nbind = \"127.0.0.1:1\"\nsession_age = 5\n";
        let e = env(&[
            ("PORTCULLIS_DATABASE_URL", "sqlite://env.db"),
            ("PORTCULLIS_BIND", "127.0.0.1:2"),
        ]);
        let flags = Overrides {
            database_url: Some("sqlite://flag.db".into()),
            bind: None,
        };
        let s = Settings::from_sources(Some(("f.toml", file)), e, &flags).unwrap();
        assert_eq!(s.database_url, "sqlite://flag.db");
        assert_eq!(s.bind, "127.0.0.1:2");
        assert_eq!(s.session_age, 5);
    }

    #[test]
    fn portcullis_database_url_beats_database_url() {
        let s = Settings::from_sources(
            None,
            env(&[
                ("DATABASE_URL", "sqlite://plain.db"),
                ("PORTCULLIS_DATABASE_URL", "sqlite://ours.db"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.database_url, "sqlite://ours.db");
        let s = Settings::from_sources(
            None,
            env(&[("DATABASE_URL", "sqlite://plain.db")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.database_url, "sqlite://plain.db");
    }

    #[test]
    fn lists_and_pairs_parse_from_env_and_file() {
        let s = Settings::from_sources(
            Some((
                "f",
                "csrf_trusted_origins = [\"https://a.example\"]\nsecure_proxy_ssl_header = [\"X-Forwarded-Proto\", \"https\"]\n",
            )),
            env(&[("PORTCULLIS_COOKIE_SECURE", "yes")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.csrf_trusted_origins, vec!["https://a.example"]);
        assert_eq!(
            s.secure_proxy_ssl_header,
            Some(("X-Forwarded-Proto".into(), "https".into()))
        );
        assert!(s.cookie_secure);
        let s = Settings::from_sources(
            None,
            env(&[
                (
                    "PORTCULLIS_CSRF_TRUSTED_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                (
                    "PORTCULLIS_SECURE_PROXY_SSL_HEADER",
                    "X-Forwarded-Proto,https",
                ),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.csrf_trusted_origins.len(), 2);
        assert!(s.secure_proxy_ssl_header.is_some());
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for (k, v) in [
            ("PORTCULLIS_PASSWORD_ITERATIONS", "many"),
            ("PORTCULLIS_PASSWORD_ITERATIONS", "0"),
            ("PORTCULLIS_COOKIE_SECURE", "perhaps"),
            ("PORTCULLIS_SECRET_KEY", "short"),
            ("PORTCULLIS_DATABASE_URL", "oracle://x"),
        ] {
            let e =
                Settings::from_sources(None, env(&[(k, v)]), &Overrides::default()).unwrap_err();
            assert!(!format!("{e:#}").contains('\n'), "{e:#}");
        }
        let e = Settings::from_sources(Some(("f", "nope = 1")), env(&[]), &Overrides::default())
            .unwrap_err();
        assert!(format!("{e:#}").contains("nope"), "{e:#}");
    }

    #[test]
    fn empty_env_vars_count_as_unset() {
        let s = Settings::from_sources(
            None,
            env(&[
                ("PORTCULLIS_DATABASE_URL", ""),
                ("PORTCULLIS_SECRET_KEY", ""),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert!(s.secret_key.is_none());
    }

    #[test]
    fn debug_never_shows_the_secret_or_db_password() {
        let s = Settings::from_sources(
            None,
            env(&[
                ("PORTCULLIS_SECRET_KEY", &"s3cr3t".repeat(8)),
                ("PORTCULLIS_DATABASE_URL", "postgres://u:hunter2@h/db"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@h:5432/db?sslmode=disable"),
            "postgres://u:***@h:5432/db?sslmode=disable"
        );
        assert_eq!(redact_url("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=x"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
        assert_eq!(
            scrub("bad login for p@ss and p%40ss", "postgres://u:p%40ss@h/db"),
            "bad login for *** and ***"
        );
        // A short password is not starred out of the words around it.
        assert_eq!(
            scrub(
                "cannot open postgres://u:e@h/db: store unavailable: e",
                "postgres://u:e@h/db"
            ),
            "cannot open postgres://u:***@h/db: store unavailable: ***"
        );
        assert_eq!(replace_whole("pw pwd xpw pw.", "pw", "*"), "* pwd xpw *.");
        assert_eq!(replace_whole("aaa", "a", "*"), "aaa");
        assert_eq!(replace_whole("é-p-é", "p", "*"), "é-*-é");
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://portcullis.db"),
            Some("portcullis.db".into())
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db?mode=rwc"),
            Some("/tmp/x.db".into())
        );
        assert_eq!(sqlite_path("sqlite:x.db"), Some("x.db".into()));
        assert_eq!(sqlite_path("sqlite:///a%3Fb.db"), Some("/a?b.db".into()));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(
            secret_file_path(Path::new("/d/p.db")),
            PathBuf::from("/d/p.db.secret_key")
        );
    }

    #[test]
    fn shared_databases_need_an_explicit_secret() {
        let s = Settings::from_sources(
            None,
            env(&[("PORTCULLIS_DATABASE_URL", "postgres://h/db")]),
            &Overrides::default(),
        )
        .unwrap();
        let e = s.secret_key().unwrap_err();
        assert!(format!("{e:#}").contains("PORTCULLIS_SECRET_KEY"));
    }

    #[test]
    fn the_secret_file_is_private_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let s = Settings {
            database_url: format!("sqlite://{}", db.display()),
            ..Settings::default()
        };
        let a = s.secret_key().unwrap();
        let b = s.secret_key().unwrap();
        assert_eq!(a.expose(), b.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(secret_file_path(&db))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Racing first uses agree on one key.
        let db2 = dir.path().join("q.db");
        let url = format!("sqlite://{}", db2.display());
        let keys: Vec<Vec<u8>> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let url = url.clone();
                    sc.spawn(move || {
                        let s = Settings {
                            database_url: url,
                            ..Settings::default()
                        };
                        s.secret_key().unwrap().expose().to_vec()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }
}
