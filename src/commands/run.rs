//! `stepsecret run`: resolve everything, then run one command with the secrets. The whole
//! lifecycle lives in [`crate::run`].

use crate::cli::RunArgs;
use crate::env::Env;
use crate::error::Error;

/// Runs the command; see [`crate::run`].
pub(crate) fn run(args: RunArgs, env: &Env) -> Result<u8, Error> {
    crate::run::run(&args, env)
}
