//! `portcullis serve [--bind ADDR]`: migrates, then serves the reference
//! app until SIGINT or SIGTERM.
//!
//! Requests are logged (method, path, status, latency) with the
//! `Authorization`, `Proxy-Authorization`, `Cookie` and `Set-Cookie`
//! headers marked sensitive, so no credential reaches the logs; the query
//! string is not logged either. Expired sessions are purged every
//! [`PURGE_INTERVAL`].

use std::time::Duration;

use anyhow::{anyhow, Context};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use portcullis::jwt::Jwt;
use portcullis::scheme::digest::DigestStore;
use portcullis::scheme::hawk::HawkStore;
use portcullis::store::{Ping, SeparateSessions, SessionStore, TokenStore, UserAdmin};
use tower::{ServiceBuilder, ServiceExt as _};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use tracing::Level;

use crate::app::{
    service, AppConfig, SharedBlacklist, SharedOAuth1Store, SharedOAuth2Store, SharedSignatureKeys,
};
use crate::config::Settings;

/// How often expired sessions are deleted.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(300);
/// How long open connections may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The app's settings from ours.
pub fn app_config(settings: &Settings, secret: portcullis::SecretKey) -> AppConfig {
    let mut config = AppConfig::new(secret);
    config.hasher = settings.hasher_config();
    config.remote_user_header = settings.remote_user_header.clone();
    config.remote_user_create_unknown = settings.remote_user_create_unknown;
    if let Some(name) = &settings.unauthenticated_user {
        config.unauthenticated_user = Some(name.clone());
    }
    config.csrf_trusted_origins = settings.csrf_trusted_origins.clone();
    config.secure_proxy_ssl_header = settings.secure_proxy_ssl_header.clone();
    config.cookie_secure = settings.cookie_secure;
    config.session_age_secs = settings.session_age;
    config.form_limit = settings.form_limit;
    config.cache_ttl = Duration::from_millis(settings.cache_ttl_ms);
    config.basic_cache = settings.basic_cache;
    config.digest_nonce_lifetime = Duration::from_secs(settings.digest_nonce_lifetime);
    config.hawk_skew = Duration::from_secs(settings.hawk_skew);
    config.httpsig.max_age = Duration::from_secs(settings.signed.httpsig_max_age);
    config.httpsig.cavage = settings.signed.httpsig_cavage;
    config.oauth1.timestamp_window = Duration::from_secs(settings.signed.oauth1_timestamp_window);
    config.oauth1.plaintext_over_http = settings.signed.oauth1_plaintext_over_http;
    config
}

/// Serves until SIGINT or SIGTERM, then finishes open requests and returns.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    // Everything that can fail for a user error comes first, before any
    // log line, so that a failure is the one line `main` prints.
    settings.require_secret()?;
    // JWT key files are read now: a bad one is a user error too.
    let jwt_settings = settings.jwt.settings()?;
    // So is a malformed Redis URL (Redis itself is reached later).
    let redis = super::limits::redis(settings)?;
    // Catch signals from the start: one that arrives while migrating, or
    // right after the ready line, is a clean stop.
    let signals = Signals::new()?;
    let listener = tokio::net::TcpListener::bind(&settings.bind)
        .await
        .with_context(|| format!("cannot listen on {}", settings.bind))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let store = super::open(settings).await?;
    let secret = settings.secret_key()?;
    tracing::info!(
        database = %settings.database_url_redacted(),
        "using the {} store",
        store.kind()
    );
    if settings.cache_ttl_ms >= 1000 && settings.redis_url.is_none() {
        tracing::warn!(
            cache_ttl_ms = settings.cache_ttl_ms,
            "the cache TTL is 1 s or more: changes made by other processes \
             (deactivate, changepassword, create-token -r) take that long to apply here"
        );
    } else if settings.cache_ttl_ms >= 1000 {
        tracing::warn!(
            cache_ttl_ms = settings.cache_ttl_ms,
            "the cache TTL is 1 s or more: changes made by other processes reach this \
             server through Redis at once, but take that long when a message is lost"
        );
    }
    let mut config = app_config(settings, secret);
    config.jwt = jwt_settings;
    config.jwt_blacklist = Some(SharedBlacklist::new(store.clone()));
    config.oauth2 = settings.oauth2.settings();
    config.oauth2_store = Some(SharedOAuth2Store::with_users(store.clone()));
    config.signature_keys = Some(SharedSignatureKeys::new(store.clone()));
    config.oauth1_store = Some(SharedOAuth1Store::new(store.clone()));
    // Throttle counts and login failures: in Redis when set (shared by
    // every server using it), else in memory and in the database, where
    // `portcullis unlock` reaches them.
    if let Some(r) = &redis {
        match portcullis::store::Ping::ping(r).await {
            Ok(()) => tracing::info!(prefix = r.prefix(), "throttles and lockout in Redis"),
            Err(e) => tracing::warn!(
                error = %e,
                "Redis is unreachable: logins (and, with redis_sessions, session \
                 requests) fail (503) and rate limits are not enforced until it answers"
            ),
        }
    }
    // The caches hear of other servers' (and commands') writes through
    // Redis at once, and tell them of this one's.
    let bus_task = redis.as_ref().map(|r| {
        let (bus, task) = r.invalidation_bus();
        config.invalidation_bus = Some(bus);
        tokio::spawn(task)
    });
    config.throttle = super::limits::throttle(settings, redis.as_ref())?;
    // Nonces of the signed-request schemes: shared through Redis when set.
    // A Redis that is down refuses signed requests (fail closed).
    if let Some(r) = &redis {
        config.replay = std::sync::Arc::new(r.clone());
    }
    config.lockout = super::limits::lockout(
        settings,
        super::limits::lockout_store(settings, redis.as_ref(), &store),
    );
    if config.lockout.is_none() {
        tracing::warn!("the login lockout is off (PORTCULLIS_LOGIN_THROTTLE=off)");
    }
    Jwt::new(config.jwt.clone(), &config.secret).map_err(|e| anyhow!("JWT settings: {e}"))?;
    let header_read_timeout = Duration::from_secs(settings.header_read_timeout);
    let stopped = async move {
        let name = signals.recv().await;
        tracing::info!("{name} received: finishing open requests, then stopping");
    };
    // Sessions deleted on expiry wherever they are kept: in the database
    // always (sessions left there from before `redis_sessions`), and in
    // Redis when they are kept there.
    let mut purgers = vec![tokio::spawn(purge_expired_sessions(store.clone()))];
    match redis.filter(|_| settings.redis_sessions) {
        Some(r) => {
            tracing::info!(prefix = r.prefix(), "sessions in Redis");
            purgers.push(tokio::spawn(purge_expired_sessions(r.clone())));
            let store = SeparateSessions::new(store, r);
            serve_app(store, config, listener, addr, header_read_timeout, stopped).await;
        }
        None => serve_app(store, config, listener, addr, header_read_timeout, stopped).await,
    }
    for task in purgers.into_iter().chain(bus_task) {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Serves the app over `store` on `listener` until `shutdown` resolves.
async fn serve_app<S>(
    store: S,
    config: AppConfig,
    listener: tokio::net::TcpListener,
    addr: std::net::SocketAddr,
    header_read_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) where
    S: UserAdmin + TokenStore + SessionStore + Ping + DigestStore + HawkStore + Clone,
{
    // Around the whole router, not `Router::layer`: that would wrap (and
    // clone, per request) every route separately.
    let app = ServiceBuilder::new()
        .map_response(|res: http::Response<_>| res.map(Body::new))
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            PROXY_AUTHORIZATION,
            COOKIE,
        ]))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                    )
                })
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Millis),
                ),
        )
        // `Set-Cookie` is marked sensitive by the app's own outermost layer,
        // before any answer reaches the tracing above.
        .service(service(store, config));
    println!("portcullis listening on http://{addr}");
    serve_connections(listener, app, header_read_timeout, shutdown).await;
}

/// Serves HTTP/1.1 connections from `listener` until `shutdown` resolves,
/// then stops accepting and lets open requests finish for up to
/// [`SHUTDOWN_GRACE`].
///
/// A connection must deliver each request's headers within
/// `header_read_timeout`, counted from when the server is ready to read
/// them, so an idle keep-alive connection is closed after that long too; a
/// client that sends its headers a byte at a time (slowloris) cannot hold
/// a connection open. Each request carries axum's
/// `ConnectInfo<SocketAddr>` for the throttles and the lockout.
async fn serve_connections<S, B>(
    listener: tokio::net::TcpListener,
    app: S,
    header_read_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) where
    S: tower::Service<Request, Response = http::Response<B>, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let keeper = tokio::spawn(keep_a_timer_pending());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = app
            .clone()
            .map_request(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                req.map(Body::new)
            });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}: closing them");
        }
    }
    keeper.abort();
}

/// Keeps one timer due within a second in tokio's timer wheel, for good.
///
/// hyper arms the header-read timeout when it starts reading a request's
/// head and drops it once the head is read, so while every connection is
/// busy with a request (waiting on the database, say) no timer is left.
/// When the runtime then parks with an empty wheel, tokio wakes its
/// driver (a write to an eventfd, from the very thread that is running)
/// for each timer armed before it parks again: most requests paid that
/// system call with the caches off. With a nearer timer always pending,
/// a new 30 s deadline is never the next one and arming it costs no call.
/// The price is one wake-up a second.
async fn keep_a_timer_pending() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// What to do when `accept` fails: a connection that went away before it
/// was accepted is nothing; anything else (out of file descriptors, say)
/// is logged and accepting pauses for a second rather than spinning.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection: pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Deletes expired sessions every [`PURGE_INTERVAL`], starting now.
async fn purge_expired_sessions(store: impl SessionStore) {
    let mut every = tokio::time::interval(PURGE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match store.purge_expired_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "purged expired sessions"),
            Err(e) => tracing::warn!(error = %e, "could not purge expired sessions"),
        }
    }
}

/// SIGINT and SIGTERM, registered when created.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
                terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// Waits for the first of them; returns its name.
    async fn recv(mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
