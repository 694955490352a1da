//! The `pwsnas` binary: parses the command line and reports errors as one readable line.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    pwsnas::malloc::tune_for_training();
    let cli = pwsnas::cli::Cli::parse();
    match pwsnas::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
