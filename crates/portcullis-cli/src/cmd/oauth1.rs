//! `portcullis create-oauth1-consumer NAME [--rsa-public-key-file PEM]
//! [--callback URI]` and `portcullis create-oauth1-token CONSUMER_KEY
//! USERNAME`: OAuth 1.0a credentials for `/oauth1/`.

use std::io::Read;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use portcullis::replay::MemoryReplayCache;
use portcullis::scheme::oauth1::{is_rsa_public_key, OAuth1, OAuth1Config, OAuth1Store};
use portcullis_store::Store;

use crate::cli::{CreateOAuth1ConsumerArgs, CreateOAuth1TokenArgs};
use crate::config::Settings;

/// The largest public key file read.
const MAX_KEY_FILE: u64 = 64 * 1024;

async fn service(settings: &Settings) -> anyhow::Result<(Store, OAuth1)> {
    settings.require_secret()?;
    let store = super::open(settings).await?;
    let secret = settings.secret_key()?;
    let oauth = OAuth1::new(
        store.clone(),
        secret,
        Arc::new(MemoryReplayCache::new()),
        OAuth1Config::default(),
    );
    Ok((store, oauth))
}

/// Prints `consumer_key: ...` and `consumer_secret: ...` (the secret is
/// shown once; it is stored sealed with the secret key).
pub async fn create_consumer(
    settings: &Settings,
    args: CreateOAuth1ConsumerArgs,
) -> anyhow::Result<()> {
    if args.name.trim().is_empty() || args.name.chars().count() > 255 {
        bail!("the consumer name must be 1 to 255 characters");
    }
    if let Some(cb) = &args.callback {
        let ok = (cb.starts_with("https://") || cb.starts_with("http://"))
            && cb.len() <= 2048
            && cb.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !ok {
            bail!("the callback must be an http:// or https:// URI without spaces");
        }
    }
    let rsa = match &args.rsa_public_key_file {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
            let mut text = String::new();
            file.take(MAX_KEY_FILE)
                .read_to_string(&mut text)
                .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
            if !is_rsa_public_key(&text) {
                bail!("{}: not an RSA public key in PEM", path.display());
            }
            Some(format!("{}\n", text.trim()))
        }
        None => None,
    };
    let (_, oauth) = service(settings).await?;
    let (key, secret) = oauth
        .create_consumer(args.name.trim(), rsa, args.callback.clone())
        .await
        .map_err(|e| super::store_error(settings, e))?;
    println!("consumer_key: {key}");
    println!("consumer_secret: {secret}");
    Ok(())
}

/// Prints `token: ...` and `token_secret: ...`.
pub async fn create_token(settings: &Settings, args: CreateOAuth1TokenArgs) -> anyhow::Result<()> {
    super::check_username_given(&args.username)?;
    let (store, oauth) = service(settings).await?;
    let consumer = store
        .consumer(&args.consumer_key)
        .await
        .map_err(|e| super::store_error(settings, e))?;
    if consumer.is_none() {
        bail!("consumer {} does not exist", args.consumer_key);
    }
    let user = super::existing_user(settings, &store, &args.username).await?;
    let (token, secret) = oauth
        .create_access_token(&args.consumer_key, user.id)
        .await
        .map_err(|e| super::store_error(settings, e))?;
    println!("token: {token}");
    println!("token_secret: {secret}");
    Ok(())
}
