//! The `portcullis` command and the reference app it serves.
//!
//! The binary is thin (`main` parses, calls [`run`], and prints one line
//! `error: ...` on failure): each command is a function in its own module
//! under [`cmd`] that calls into `portcullis` and `portcullis-store`.
//!
//! | command | module |
//! |---|---|
//! | `migrate` | [`cmd::migrate`] |
//! | `createuser` | [`cmd::createuser`] |
//! | `changepassword` | [`cmd::changepassword`] |
//! | `create-token` | [`cmd::create_token`] |
//! | `activate`, `deactivate`, `deleteuser` | [`cmd::users`] |
//! | `serve` | [`cmd::serve`] |
//! | `create-jwt-key`, `flush-expired-tokens` | [`cmd::jwt`] |
//! | `add-signature-key` | [`cmd::httpsig`] |
//! | `create-oauth1-consumer`, `create-oauth1-token` | [`cmd::oauth1`] |
//!
//! Settings and their defaults are listed in [`config`].

pub mod app;
pub mod cli;
pub mod cmd;
pub mod config;

use std::io::IsTerminal;

use anyhow::{anyhow, Context};

pub use cli::Cli;

/// An error whose message is printed exactly as it is, without the
/// `error: ` prefix, because a contract fixes its wording (DRF's
/// `drf_create_token` message).
#[derive(Debug)]
pub struct Verbatim(pub String);

impl std::fmt::Display for Verbatim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Verbatim {}
pub use config::Settings;

use cli::Command;
use config::Overrides;

/// Runs one command line: loads the settings, sets up logging, and runs the
/// command on a tokio runtime.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let overrides = Overrides {
        database_url: cli.database.database_url.clone(),
        bind: match &cli.command {
            Command::Serve(args) => args.bind.clone(),
            _ => None,
        },
    };
    let settings = Settings::load(cli.config.as_deref(), &overrides)?;
    let default_filter = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    init_tracing(settings.log.as_deref().unwrap_or(default_filter))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(cmd::dispatch(cli.command, settings))
}

/// Logs go to standard error, filtered by `filter` (a tracing
/// `EnvFilter` directive such as `info,sqlx=warn`).
fn init_tracing(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow!("invalid log filter {filter:?}: {e}"))?;
    // A second initialisation (tests that call `run` twice) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    Ok(())
}
