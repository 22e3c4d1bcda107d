//! `portcullis createclient`, `listclients`, `deleteclient` and
//! `cleartokens`: django-oauth-toolkit's application admin and
//! `cleartokens` command.

use anyhow::{anyhow, bail};
use portcullis::cache::Invalidation;
use portcullis::oauth2::{GrantType, NewClient, OAuth2, OAuth2Error, OAuth2Store};

use crate::cli::CreateClientArgs;
use crate::config::Settings;

async fn server(settings: &Settings) -> anyhow::Result<OAuth2> {
    settings.require_secret()?;
    let store = super::open(settings).await?;
    let secret = settings.secret_key()?;
    Ok(OAuth2::new(store, &secret, settings.oauth2.settings()))
}

/// The client a command line describes, checked before anything is
/// stored.
fn new_client(args: CreateClientArgs) -> anyhow::Result<NewClient> {
    if args.name.trim().is_empty() {
        bail!("the client name must not be empty");
    }
    let mut new = if args.public {
        NewClient::public(args.name)
    } else {
        NewClient::confidential(args.name)
    };
    if !args.grants.is_empty() {
        new.grant_types = args
            .grants
            .iter()
            .map(|g| {
                GrantType::parse(g).ok_or_else(|| {
                    anyhow!(
                        "unknown grant {g:?}: use authorization-code, client-credentials, \
                         password or refresh-token"
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?;
    } else if args.public {
        // A public client cannot authenticate, so the default leaves out
        // the grant that rests on client authentication alone.
        new.grant_types
            .retain(|g| *g != GrantType::ClientCredentials);
    }
    if args.public && new.grant_types.contains(&GrantType::ClientCredentials) {
        bail!("a public client cannot use the client-credentials grant");
    }
    // The default grants name authorization-code; without a redirect URI
    // it is unusable until one is added, but naming it outright without one
    // is a mistake.
    if !args.grants.is_empty()
        && new.grant_types.contains(&GrantType::AuthorizationCode)
        && args.redirect_uris.is_empty()
    {
        bail!("the authorization-code grant needs at least one --redirect-uri");
    }
    new.redirect_uris = args.redirect_uris;
    if !args.scopes.is_empty() {
        new.scopes = args
            .scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    new.skip_authorization = args.skip_authorization;
    Ok(new)
}

/// Registers a client and prints `client_id: ID` and, for a confidential
/// client, `client_secret: SECRET` (shown this once; only a keyed digest is
/// stored).
pub async fn create_client(settings: &Settings, args: CreateClientArgs) -> anyhow::Result<()> {
    let new = new_client(args)?;
    let oauth2 = server(settings).await?;
    let (client, secret) = oauth2.register_client(new).await.map_err(|e| match e {
        OAuth2Error::InvalidRequest(d) => anyhow!("{d}"),
        OAuth2Error::Store(e) => super::store_error(settings, e),
        other => anyhow!("{other}"),
    })?;
    println!("client_id: {}", client.client_id);
    if let Some(secret) = secret {
        println!("client_secret: {secret}");
    }
    Ok(())
}

/// Prints one line a client: id, type, name, grants, scopes, redirect
/// URIs (tab-separated; never the secret).
pub async fn list_clients(settings: &Settings) -> anyhow::Result<()> {
    let store = super::open(settings).await?;
    let clients = store
        .clients()
        .await
        .map_err(|e| super::store_error(settings, e))?;
    for c in clients {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.cli_name()).collect();
        println!(
            "{}\t{}\t{}\tgrants={}\tscope={}\tredirect_uris={}{}",
            c.client_id,
            if c.public { "public" } else { "confidential" },
            c.name,
            grants.join(","),
            c.scopes.join(" "),
            c.redirect_uris.join(" "),
            if c.skip_authorization {
                "\tskip_authorization"
            } else {
                ""
            },
        );
    }
    Ok(())
}

/// Deletes a client and every token issued to it; an unknown id is an
/// error.
pub async fn delete_client(settings: &Settings, client_id: &str) -> anyhow::Result<()> {
    let store = super::open(settings).await?;
    let deleted = store
        .delete_client(client_id)
        .await
        .map_err(|e| super::store_error(settings, e))?;
    if !deleted {
        bail!("client {client_id} does not exist");
    }
    super::announce(settings, Invalidation::OAuth2Tokens).await;
    println!("Deleted client {client_id}");
    Ok(())
}

/// Deletes expired access tokens and authorization codes; prints how many.
pub async fn clear_tokens(settings: &Settings) -> anyhow::Result<()> {
    let store = super::open(settings).await?;
    let n = store
        .clear_expired(chrono::Utc::now())
        .await
        .map_err(|e| super::store_error(settings, e))?;
    println!(
        "Removed {n} expired OAuth2 token{}",
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}
