//! The subcommands. Each takes its parsed arguments and returns the exit code to end with, or
//! an error that `main` prints and maps to its exit code.

mod check;
mod keys;
mod pipe;
mod policy;
mod redact;
mod run;
mod scan;

use crate::cli::{Cli, Command};
use crate::error::Error;

/// Runs the subcommand the user chose.
pub fn dispatch(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Redact(args) => redact::redact(args),
        Command::Keygen(args) => keys::keygen(args),
        Command::Seal(args) => keys::seal(args),
        Command::Policy(args) => policy::policy(*args),
        Command::Scan(args) => scan::scan(args),
        Command::Pipe => pipe::pipe(),
        Command::Guard => Ok(crate::guardian::run()),
    }
}

/// Prints a warning line on stderr.
pub(crate) fn warn(message: impl std::fmt::Display) {
    eprintln!("stepsecret: warning: {message}");
}
