//! The `stepsecret` command: parses what the user typed, captures the environment once, runs
//! the subcommand, and maps its outcome to the process exit code. Everything else is the
//! library.

use std::process::ExitCode;

use clap::Parser;
use stepsecret::cli::Cli;
use stepsecret::commands;
use stepsecret::env::Env;
use stepsecret::error::exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    match commands::dispatch(cli, &Env::capture()) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            for line in err.to_string().lines() {
                eprintln!("stepsecret: {line}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
