use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = eye_cli::cli::Cli::parse();
    match eye_cli::cli::run(args) {
        Ok(code) => code,
        Err(e) => e.exit(),
    }
}
