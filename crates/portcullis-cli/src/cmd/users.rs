//! `portcullis deactivate|activate|deleteuser USERNAME`: what Django's
//! admin does to `is_active` or the row.

use portcullis::cache::Invalidation;
use portcullis::store::UserAdmin;

use crate::config::Settings;

/// Sets the user's `is_active`.
pub async fn set_active(settings: &Settings, username: &str, active: bool) -> anyhow::Result<()> {
    super::check_username_given(username)?;
    let store = super::open(settings).await?;
    let user = super::existing_user(settings, &store, username).await?;
    store
        .set_active(user.id, active)
        .await
        .map_err(|e| super::store_error(settings, e))?;
    super::announce(settings, Invalidation::User(user.id)).await;
    if active {
        println!("Activated user {username}");
    } else {
        println!("Deactivated user {username}");
    }
    Ok(())
}

/// Deletes the user with the user's token and sessions (in Redis too
/// with `redis_sessions`).
pub async fn delete(settings: &Settings, username: &str) -> anyhow::Result<()> {
    super::check_username_given(username)?;
    let store = super::open(settings).await?;
    let user = super::existing_user(settings, &store, username).await?;
    // The sessions first (Redis's too, with `redis_sessions`): a failure
    // then leaves a user without sessions, never sessions without a user.
    super::end_sessions(settings, &store, user.id).await?;
    store
        .delete_user(user.id)
        .await
        .map_err(|e| super::store_error(settings, e))?;
    super::announce(settings, Invalidation::User(user.id)).await;
    println!("Deleted user {username}");
    Ok(())
}
