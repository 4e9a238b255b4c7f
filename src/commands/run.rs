//! `stepsecret run`: resolve everything, then run one command with the secrets.

use std::collections::BTreeSet;
use std::sync::Arc;

use secrecy::ExposeSecret;

use super::warn;
use crate::child::{self, Launch};
use crate::cli::RunArgs;
use crate::error::Error;
use crate::guardian::{self, Guardian};
use crate::plan::{Plan, Target};
use crate::redact::{MIN_LEN, Redactor};
use crate::resolve::resolve;
use crate::secret_files::SecretDir;
use crate::signals::Signals;
use crate::sources::ALWAYS_REMOVED;

pub fn run(args: RunArgs) -> Result<u8, Error> {
    let plan = Plan::build(&args.spec)?;
    if plan.entries.is_empty() {
        return Err(Error::Usage(
            "no secrets to resolve: give --spec FILE (or ./stepsecret.toml), -s NAME=REF, --file NAME=REF or STEPSECRET_SECRETS".into(),
        ));
    }
    let signals = Signals::install().map_err(|e| Error::os("cannot install signal handlers", e))?;
    let (vars, mut sources) = resolve(&plan, &|| signals.received())?.into_vars(&plan)?;

    // Values of env secrets were checked (no NUL byte, valid UTF-8) by `resolve`.

    let dir = if vars.iter().any(|v| v.target == Target::File) {
        Some(SecretDir::create()?)
    } else {
        None
    };
    // Declared after `dir`, so it stands down (on drop) before `dir` removes the files.
    let guarded = std::env::var_os(guardian::DISABLE_ENV).is_none();
    let _guardian = match &dir {
        Some(dir) if guarded => {
            let started = Guardian::start().and_then(|mut g| g.watch_dir(dir.path()).map(|()| g));
            match started {
                Ok(g) => Some(g),
                Err(e) => {
                    warn(format!(
                        "no guardian ({e}): a SIGKILL would leave file secrets behind"
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    let mut paths = Vec::new();
    if let Some(dir) = &dir {
        for var in vars.iter().filter(|v| v.target == Target::File) {
            paths.push((
                var.name.as_str(),
                dir.write(&var.name, var.value.expose_secret())?,
            ));
        }
    }

    let redactor = if args.no_redact {
        None
    } else {
        let (redactor, too_short) = Redactor::new(
            vars.iter()
                .map(|v| (v.name.as_str(), v.value.expose_secret())),
        );
        for name in too_short {
            warn(format!(
                "{name} is shorter than {MIN_LEN} bytes and will not be masked in the output"
            ));
        }
        let redactor = Arc::new(redactor);
        // Compile the automaton while the command starts; the first output waits for it.
        let early = Arc::clone(&redactor);
        let _ = std::thread::Builder::new()
            .name("redactor".into())
            .spawn(move || early.prepare());
        Some(redactor)
    };

    let mut remove: BTreeSet<String> = ALWAYS_REMOVED.iter().map(|s| s.to_string()).collect();
    remove.extend(sources.consumed_env());
    let mut set: Vec<(&str, &[u8])> = vars
        .iter()
        .filter(|v| v.target == Target::Env)
        .map(|v| (v.name.as_str(), v.value.expose_secret()))
        .collect();
    set.extend(
        paths
            .iter()
            .map(|(name, path)| (*name, path.as_os_str().as_encoded_bytes())),
    );

    if let Some(signal) = signals.received() {
        return Err(Error::Interrupted(signal));
    }
    let launch = Launch {
        command: &args.command,
        set,
        remove: remove.into_iter().collect(),
        redactor,
        die_with_parent: guarded,
    };
    let code = child::run(launch, &signals)?;
    for event in sources.finish() {
        if let Some(error) = event.error {
            warn(format!("{}: {error}", event.what));
        }
    }
    drop(dir);
    Ok(code)
}
