//! The command line: parse arguments (`args.rs`), call one operation
//! (`run.rs`), print the result (`render.rs`; `--json` prints the same JSON
//! the MCP tools return). Errors are one sentence on stderr and a non-zero
//! exit; logs go to stderr via tracing.

mod args;
mod render;
mod run;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = args::Cli::parse();
    match run::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let mut sentence = match e.downcast_ref::<waymark::Error>() {
                Some(error) => render::cli_error(error),
                None => render::speak_cli(&e.to_string()),
            };
            if let Some(cause) = e.chain().nth(1)
                && e.downcast_ref::<waymark::Error>().is_none()
            {
                sentence = format!("{sentence}: {}", render::speak_cli(&cause.to_string()));
            }
            let _ = writeln!(io::stderr(), "error: {sentence}");
            ExitCode::FAILURE
        }
    }
}
