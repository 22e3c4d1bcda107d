//! `portcullis migrate`: creates or upgrades the schema; idempotent.

use crate::config::Settings;

/// Applies every pending migration and says which database is up to date.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let store = super::open(settings).await?;
    println!(
        "Migrations applied: the {} database is up to date",
        store.kind()
    );
    Ok(())
}
