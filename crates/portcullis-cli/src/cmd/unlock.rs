//! `portcullis unlock USERNAME|ADDRESS`: clears the login failures counted
//! against a username or a client address (django-axes' `axes_reset_*`).
//!
//! It clears them where `serve` counts them (the database, or Redis when
//! `PORTCULLIS_REDIS_URL` is set), which a running server reads on every
//! login attempt, so the next attempt is let through. Exits 0 whether or
//! not there were failures to clear.

use crate::config::Settings;

/// Clears the failures of `target`, a username or an IP address (an
/// address clears the username spelled the same way too).
pub async fn run(settings: &Settings, target: &str) -> anyhow::Result<()> {
    if target.is_empty() {
        anyhow::bail!("give the username or the address to unlock");
    }
    let redis = super::limits::redis(settings)?;
    // The database is opened (and migrated) either way, so a mistyped
    // database URL is reported rather than silently ignored.
    let store = super::open(settings).await?;
    let lockout = portcullis::lockout::Lockout::new(super::limits::lockout_store(
        settings,
        redis.as_ref(),
        &store,
    ));
    lockout.unlock(target).await.map_err(|e| {
        let place = if redis.is_some() {
            "Redis"
        } else {
            "the database"
        };
        anyhow::anyhow!(
            "cannot clear the login failures in {place}: {}",
            crate::config::scrub(&e.to_string(), &settings.database_url)
        )
    })?;
    println!("Unlocked {target}");
    Ok(())
}
