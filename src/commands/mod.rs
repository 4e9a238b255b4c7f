//! The subcommands. Each takes its parsed arguments and returns the exit code to end with, or
//! an error that `main` prints and maps to its exit code.

mod check;
mod doctor;
mod keys;
mod pipe;
mod policy;
mod redact;
mod run;
mod scan;

use crate::cli::{Cli, Command};
use crate::env::Env;
use crate::error::Error;

/// Runs the subcommand the user chose, in the environment `main` captured.
pub fn dispatch(cli: Cli, env: &Env) -> Result<u8, Error> {
    match cli.command {
        Command::Run(args) => run::run(args, env),
        Command::Check(args) => check::check(args, env),
        Command::Doctor(args) => doctor::doctor(args, env),
        Command::Redact(args) => redact::redact(args, env),
        Command::Keygen(args) => keys::keygen(args),
        Command::Seal(args) => keys::seal(args),
        Command::Policy(args) => policy::policy(*args, env),
        Command::Scan(args) => scan::scan(args, env),
        Command::Pipe => pipe::pipe(env),
        Command::Guard => Ok(crate::run::guardian::run()),
    }
}

pub(crate) use crate::error::warn;
