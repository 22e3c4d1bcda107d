//! One module a command; each calls into `portcullis` and
//! `portcullis-store` and prints what Django's management commands would.
//!
//! The helpers here are shared: connecting (and migrating, so every
//! command works on a fresh database), finding a user, reading a password.

pub mod changepassword;
pub mod create_token;
pub mod createuser;
pub mod hawk;
pub mod httpsig;
pub mod jwt;
pub mod limits;
pub mod migrate;
pub mod oauth1;
pub mod oauth2;
pub mod serve;
pub mod unlock;
pub mod users;

use std::io::Read;

use anyhow::{anyhow, bail};
use portcullis::cache::Invalidation;
use portcullis::store::{SessionStore, UserStore};
use portcullis::User;
use portcullis_store::Store;

use crate::cli::{Command, PasswordOpt};
use crate::config::{scrub, Settings};

/// Runs a parsed command with resolved settings.
pub async fn dispatch(command: Command, settings: Settings) -> anyhow::Result<()> {
    // An in-memory SQLite database ends with the process: every command but
    // `serve` (which may run on one, for a throwaway server) would report
    // work that is gone when it returns. `create-jwt-key` uses no database,
    // and `unlock` clears Redis when the lockouts are kept there.
    let url = &settings.database_url;
    let in_memory = url.starts_with("sqlite:") && crate::config::sqlite_path(url).is_none();
    let lasting = match &command {
        Command::Serve(_) | Command::CreateJwtKey(_) => true,
        Command::Unlock(_) => settings.redis_url.is_some(),
        _ => false,
    };
    if in_memory && !lasting {
        bail!(
            "the database {} is in memory, so nothing this command does would last; \
             name a file (sqlite://PATH)",
            settings.database_url_redacted()
        );
    }
    match command {
        Command::Migrate => migrate::run(&settings).await,
        Command::CreateUser(args) => createuser::run(&settings, args).await,
        Command::ChangePassword(args) => changepassword::run(&settings, args).await,
        Command::CreateToken(args) => create_token::run(&settings, args).await,
        Command::Deactivate(args) => users::set_active(&settings, &args.username, false).await,
        Command::Activate(args) => users::set_active(&settings, &args.username, true).await,
        Command::DeleteUser(args) => users::delete(&settings, &args.username).await,
        Command::Unlock(args) => unlock::run(&settings, &args.target).await,
        Command::Serve(_) => serve::run(&settings).await,
        Command::CreateJwtKey(args) => jwt::create_key(&args),
        Command::CreateHawkCredentials(args) => {
            hawk::create_credentials(&settings, &args.username).await
        }
        Command::FlushExpiredTokens => jwt::flush_expired(&settings).await,
        Command::CreateClient(args) => oauth2::create_client(&settings, args).await,
        Command::ListClients => oauth2::list_clients(&settings).await,
        Command::DeleteClient(args) => oauth2::delete_client(&settings, &args.client_id).await,
        Command::ClearTokens => oauth2::clear_tokens(&settings).await,
        Command::AddSignatureKey(args) => httpsig::add_key(&settings, args).await,
        Command::CreateOAuth1Consumer(args) => oauth1::create_consumer(&settings, args).await,
        Command::CreateOAuth1Token(args) => oauth1::create_token(&settings, args).await,
    }
}

/// A store error as a one-line message, with the database password
/// scrubbed in case the driver echoed it.
pub fn store_error(settings: &Settings, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}", scrub(&e.to_string(), &settings.database_url))
}

/// Connects to the settings' database (creating a SQLite file on first
/// use) without migrating.
pub async fn connect(settings: &Settings) -> anyhow::Result<Store> {
    let url = &settings.database_url;
    Store::connect(url).await.map_err(|e| {
        anyhow!(
            "cannot open the database {}: {}",
            settings.database_url_redacted(),
            scrub(&e.to_string(), url)
        )
    })
}

/// Connects and brings the schema up to date, so that every command works
/// on a fresh database as `serve` does.
pub async fn open(settings: &Settings) -> anyhow::Result<Store> {
    let store = connect(settings).await?;
    store.migrate().await.map_err(|e| {
        anyhow!(
            "cannot migrate the database {}: {}",
            settings.database_url_redacted(),
            scrub(&e.to_string(), &settings.database_url)
        )
    })?;
    Ok(store)
}

/// A Redis error as text, with the Redis password scrubbed in case the
/// client echoed the URL.
fn redis_error(settings: &Settings, e: impl std::fmt::Display) -> String {
    scrub(
        &e.to_string(),
        settings.redis_url.as_deref().unwrap_or_default(),
    )
}

/// Ends every session of a user: in the database, and in Redis too when
/// `redis_sessions` keeps them there.
pub async fn end_sessions(settings: &Settings, store: &Store, user_id: i64) -> anyhow::Result<()> {
    store
        .delete_user_sessions(user_id, None)
        .await
        .map_err(|e| store_error(settings, e))?;
    if let Some(redis) = limits::redis(settings)?.filter(|_| settings.redis_sessions) {
        redis
            .delete_user_sessions(user_id, None)
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot end the sessions kept in Redis: {}",
                    redis_error(settings, e)
                )
            })?;
    }
    Ok(())
}

/// Tells the running servers, through Redis when `redis_url` is set, that
/// a write made `what` stale, so that they drop it from their caches at
/// once rather than when the entries expire. A failure is a warning on
/// stderr, not an error: the write is done, and the servers still apply
/// it within their cache TTL.
pub async fn announce(settings: &Settings, what: Invalidation) {
    let Ok(Some(redis)) = limits::redis(settings) else {
        return;
    };
    if let Err(e) = redis.publish_invalidation(&what).await {
        eprintln!(
            "warning: cannot tell the servers through Redis ({}); they apply the change \
             within their cache TTL",
            redis_error(settings, e)
        );
    }
}

/// Refuses an empty username before anything else is done.
pub fn check_username_given(username: &str) -> anyhow::Result<()> {
    if username.is_empty() {
        bail!("the username must not be empty");
    }
    Ok(())
}

/// The user with exactly this username, or `None`.
pub async fn find_user(
    settings: &Settings,
    store: &Store,
    username: &str,
) -> anyhow::Result<Option<User>> {
    store
        .user_by_username(username)
        .await
        .map_err(|e| store_error(settings, e))
}

/// The user with exactly this username, or the error `user X does not
/// exist`.
pub async fn existing_user(
    settings: &Settings,
    store: &Store,
    username: &str,
) -> anyhow::Result<User> {
    find_user(settings, store, username)
        .await?
        .ok_or_else(|| anyhow!("user {username} does not exist"))
}

/// The password given with `--password` or on standard input
/// (`--password-stdin`, one trailing newline removed), or `None` if
/// neither. An empty password is refused, as Django's commands do.
pub fn read_password(opt: &PasswordOpt) -> anyhow::Result<Option<String>> {
    let password = if opt.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| anyhow!("cannot read the password from standard input: {e}"))?;
        if let Some(t) = text.strip_suffix('\n') {
            text.truncate(t.strip_suffix('\r').unwrap_or(t).len());
        }
        if text.is_empty() {
            bail!("no password on standard input");
        }
        Some(text)
    } else {
        opt.password.clone()
    };
    if password.as_deref() == Some("") {
        bail!("the password must not be empty");
    }
    Ok(password)
}
