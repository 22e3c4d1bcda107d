//! `portcullis createuser USERNAME [--email E] [--password P |
//! --password-stdin] [--inactive] [--staff] [--superuser]`.

use anyhow::bail;
use portcullis::password::{self, PasswordHasher};
use portcullis::scheme::digest;
use portcullis::store::{NewUser, StoreError, UserAdmin};

use crate::cli::CreateUserArgs;
use crate::config::Settings;

/// Longest username Django accepts.
pub const MAX_USERNAME_LEN: usize = 150;

/// Django's `UnicodeUsernameValidator`: letters, digits and `@.+-_`, at
/// most [`MAX_USERNAME_LEN`] characters.
pub fn validate_username(username: &str) -> anyhow::Result<()> {
    super::check_username_given(username)?;
    if username.chars().count() > MAX_USERNAME_LEN {
        bail!("the username must be at most {MAX_USERNAME_LEN} characters long");
    }
    if !username
        .chars()
        .all(|c| c.is_alphanumeric() || "_@.+-".contains(c))
    {
        bail!(
            "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
        );
    }
    Ok(())
}

/// Creates the user; a taken username is an error. Without a password the
/// user gets an unusable one.
pub async fn run(settings: &Settings, args: CreateUserArgs) -> anyhow::Result<()> {
    validate_username(&args.username)?;
    let password = super::read_password(&args.password)?;
    settings.require_secret()?;
    let store = super::open(settings).await?;
    // Read (or create) the secret exactly as `serve` does.
    let secret = settings.secret_key()?;
    let taken = || anyhow::anyhow!("user {} already exists", args.username);
    if super::find_user(settings, &store, &args.username)
        .await?
        .is_some()
    {
        return Err(taken());
    }
    let password_hash = match &password {
        Some(p) => PasswordHasher::new(settings.hasher_config())
            .hash(p)
            .await
            .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?,
        None => password::make_unusable(),
    };
    let new = NewUser {
        username: args.username.clone(),
        email: args.email,
        password_hash,
        is_active: !args.inactive,
        is_staff: args.staff || args.superuser,
        is_superuser: args.superuser,
    };
    let user = match store.create_user(new).await {
        Ok(user) => user,
        Err(StoreError::Conflict(_)) => return Err(taken()),
        Err(e) => return Err(super::store_error(settings, e)),
    };
    if let Some(p) = &password {
        // Digest cannot use the PBKDF2 hash: keep the realm digest, sealed.
        digest::store_password(&store, &secret, digest::DEFAULT_REALM, &user, Some(p))
            .await
            .map_err(|e| super::store_error(settings, e))?;
    }
    println!("Created user {}", args.username);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_djangos_validator() {
        assert!(validate_username("ada.lovelace+x@example-1_2").is_ok());
        assert!(validate_username("Zoë").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("has space").is_err());
        assert!(validate_username("a:b").is_err());
        assert!(validate_username(&"a".repeat(151)).is_err());
    }
}
