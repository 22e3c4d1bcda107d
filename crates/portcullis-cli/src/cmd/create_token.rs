//! `portcullis create-token USERNAME [-r|--regenerate]`, DRF's
//! `drf_create_token`.

use portcullis::cache::Invalidation;
use portcullis::scheme::token::Tokens;

use crate::cli::CreateTokenArgs;
use crate::config::Settings;

/// Prints `Generated token KEY for user USERNAME`: the user's existing
/// token, or a new one with `-r` or when there is none. Inactive users get
/// one too (it just won't authenticate).
pub async fn run(settings: &Settings, args: CreateTokenArgs) -> anyhow::Result<()> {
    let missing = || {
        anyhow::Error::new(crate::Verbatim(format!(
            "Cannot create the Token: user {} does not exist",
            args.username
        )))
    };
    super::check_username_given(&args.username)?;
    settings.require_secret()?;
    let store = super::open(settings).await?;
    let secret = settings.secret_key()?;
    let user = super::find_user(settings, &store, &args.username)
        .await?
        .ok_or_else(missing)?;
    let tokens = Tokens::new(store, secret);
    let key = if args.regenerate {
        tokens.regenerate(user.id).await
    } else {
        tokens.get_or_create(user.id).await.map(|(key, _)| key)
    }
    .map_err(|e| super::store_error(settings, e))?;
    if args.regenerate {
        super::announce(settings, Invalidation::User(user.id)).await;
    }
    println!("Generated token {key} for user {}", args.username);
    Ok(())
}
