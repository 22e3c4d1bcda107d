//! `portcullis changepassword USERNAME [--password P | --password-stdin]`.

use anyhow::{anyhow, bail};
use portcullis::cache::Invalidation;
use portcullis::password::PasswordHasher;
use portcullis::scheme::digest;
use portcullis::store::UserStore;

use crate::cli::ChangePasswordArgs;
use crate::config::Settings;

/// Sets the user's password and ends the user's sessions (in Redis too
/// with `redis_sessions`), as Django does when a password changes.
pub async fn run(settings: &Settings, args: ChangePasswordArgs) -> anyhow::Result<()> {
    super::check_username_given(&args.username)?;
    let Some(password) = super::read_password(&args.password)? else {
        bail!("give the new password with --password P or --password-stdin");
    };
    settings.require_secret()?;
    let store = super::open(settings).await?;
    let secret = settings.secret_key()?;
    let user = super::existing_user(settings, &store, &args.username).await?;
    let hash = PasswordHasher::new(settings.hasher_config())
        .hash(&password)
        .await
        .map_err(|e| anyhow!("cannot hash the password: {e}"))?;
    store
        .set_password_hash(user.id, &hash)
        .await
        .map_err(|e| super::store_error(settings, e))?;
    // The servers drop the old hash now, whatever fails below; they are
    // told again once the sessions are ended.
    super::announce(settings, Invalidation::User(user.id)).await;
    // The realm digest for Digest, sealed and bound to the new hash; the
    // old one stops working with the old hash.
    let user = portcullis::User {
        password: hash,
        ..user
    };
    digest::store_password(
        &store,
        &secret,
        digest::DEFAULT_REALM,
        &user,
        Some(&password),
    )
    .await
    .map_err(|e| super::store_error(settings, e))?;
    super::end_sessions(settings, &store, user.id).await?;
    super::announce(settings, Invalidation::User(user.id)).await;
    println!("Password changed successfully for user '{}'", args.username);
    Ok(())
}
