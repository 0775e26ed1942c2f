//! The `waymark` binary: the command line over the library's operations.
//! Only this binary knows clap and anyhow.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
