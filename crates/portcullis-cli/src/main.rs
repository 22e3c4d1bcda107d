//! `portcullis`: parse, run, and on failure print one line and exit
//! non-zero.

use std::process::ExitCode;

use clap::Parser;
use portcullis_cli::Cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match portcullis_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<portcullis_cli::Verbatim>() {
                Some(v) => eprintln!("{}", one_line(&v.0)),
                None => eprintln!("error: {}", one_line(&format!("{e:#}"))),
            }
            ExitCode::FAILURE
        }
    }
}

/// `--help` and `--version` print as usual; a usage error is one line, as
/// every other error.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 2 } else { 0 })
        }
        _ => {
            // The message is the first paragraph (it may name the missing
            // arguments on lines of their own); the usage and tip follow.
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .trim_start()
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .collect();
            let message = one_line(&message.join(" "));
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("error: {message} (see 'portcullis --help')");
            ExitCode::from(2)
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
