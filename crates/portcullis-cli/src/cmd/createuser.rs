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

/// Longest email address Django's `EmailField` stores.
pub const MAX_EMAIL_LEN: usize = 254;

/// An email address as Django's `EmailValidator` takes it, in its common
/// forms: a dot-atom local part, `@`, and a domain of two or more labels
/// (internationalised labels allowed) or `localhost`. Quoted local parts
/// and address literals are refused. An empty address is no address.
pub fn validate_email(email: &str) -> anyhow::Result<()> {
    if email.is_empty() {
        return Ok(());
    }
    let invalid = || anyhow::anyhow!("Enter a valid email address.");
    if email.len() > MAX_EMAIL_LEN {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    let atom_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(atom_char));
    let label_ok = |l: &str| {
        (1..=63).contains(&l.chars().count())
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain == "localhost"
        || (labels.len() >= 2
            && labels.iter().all(|l| label_ok(l))
            && labels.last().is_some_and(|tld| tld.chars().count() >= 2));
    if !local_ok || !domain_ok {
        return Err(invalid());
    }
    Ok(())
}

/// Creates the user; a taken username is an error. Without a password the
/// user gets an unusable one.
pub async fn run(settings: &Settings, args: CreateUserArgs) -> anyhow::Result<()> {
    validate_username(&args.username)?;
    validate_email(&args.email)?;
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

    #[test]
    fn emails_follow_djangos_validator() {
        for good in [
            "",
            "ada@example.com",
            "ada.lovelace+tag@mail.example.co.uk",
            "o'neil@example.org",
            "ada@localhost",
            "ada@exämple.de",
        ] {
            assert!(validate_email(good).is_ok(), "{good}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "not-an-email",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@example.c",
            "ada..x@example.com",
            ".ada@example.com",
            "ada@-example.com",
            "ada@exa mple.com",
            "a b@example.com",
            "ada@example.com\n",
            long.as_str(),
        ] {
            let err = validate_email(bad).unwrap_err();
            assert_eq!(err.to_string(), "Enter a valid email address.", "{bad:?}");
        }
    }
}
