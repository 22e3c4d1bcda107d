//! `portcullis create-hawk-credentials USERNAME`.

use portcullis::scheme::hawk;

use crate::config::Settings;

/// Issues Hawk credentials for the user and prints them, three lines:
/// `id: ...`, `key: ...`, `algorithm: sha256`. The key is shown this once
/// and stored sealed with the secret key. Inactive users get credentials
/// too (they just won't authenticate), as with `create-token`.
pub async fn create_credentials(settings: &Settings, username: &str) -> anyhow::Result<()> {
    super::check_username_given(username)?;
    settings.require_secret()?;
    let store = super::open(settings).await?;
    let secret = settings.secret_key()?;
    let user = super::existing_user(settings, &store, username).await?;
    let (id, key) = hawk::issue(&store, &secret, user.id)
        .await
        .map_err(|e| super::store_error(settings, e))?;
    println!("id: {id}");
    println!("key: {key}");
    println!("algorithm: sha256");
    Ok(())
}
