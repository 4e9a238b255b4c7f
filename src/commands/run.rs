//! `stepsecret run`: resolve everything, then run one command with the secrets.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use secrecy::ExposeSecret;

use super::warn;
use crate::audit::AuditLog;
use crate::bundle;
use crate::child::{self, Launch};
use crate::cli::RunArgs;
use crate::error::{Error, ErrorKind, Failure, SourceError, UsageError};
use crate::guardian::{self, Guardian};
use crate::plan::{Plan, Target};
use crate::redact::{MIN_LEN, Redactor};
use crate::resolve::resolve;
use crate::rotation;
use crate::secret_files::SecretDir;
use crate::signals::Signals;
use crate::sources::ALWAYS_REMOVED;

pub fn run(args: RunArgs) -> Result<u8, Error> {
    // Opened before anything is fetched: a run whose record cannot be written never starts.
    let mut audit = match &args.audit_log {
        Some(path) => Some(AuditLog::open(path)?),
        None => None,
    };
    let result = run_audited(args, audit.as_mut());
    if let Some(audit) = audit {
        audit.write(&result);
    }
    result
}

fn run_audited(args: RunArgs, mut audit: Option<&mut AuditLog>) -> Result<u8, Error> {
    let started = Instant::now();
    let plan = Plan::build(&args.spec)?;
    if plan.entries.is_empty() && args.bundle.is_none() {
        return Err(UsageError::NothingToResolve.into());
    }
    if let Some(a) = audit.as_deref_mut() {
        a.phase("plan", started);
    }
    let signals = Signals::install().map_err(|e| Error::os("cannot install signal handlers", e))?;
    let fetching = Instant::now();
    let outcome = resolve(&plan, &|| signals.received())?;
    if let Some(a) = audit.as_deref_mut() {
        a.identities(&outcome.sources.identities());
        a.phase("resolve", fetching);
    }
    let (vars, mut sources) = outcome.into_vars(&plan)?;
    if let Some(a) = audit.as_deref_mut() {
        a.variables(&plan, &vars);
    }

    if let Some(limit) = args.max_age.or(plan.max_age) {
        let stale: Vec<Failure> = vars
            .iter()
            .filter_map(|v| {
                rotation::stale(&v.meta, limit).map(|why| Failure {
                    name: v.name.clone(),
                    reference: plan.entries[v.entry].reference.raw.clone(),
                    error: SourceError::new(ErrorKind::Stale, why),
                })
            })
            .collect();
        if !stale.is_empty() {
            if args.enforce_max_age {
                return Err(Error::Resolve(stale));
            }
            for failure in &stale {
                warn(failure);
            }
        }
    }

    // Opened (and deleted) only once everything else resolved: a failed run leaves the bundle
    // for the next try.
    let bundled = match &args.bundle {
        Some(path) => bundle::open(path)?,
        None => Vec::new(),
    };
    if let Some(a) = audit.as_deref_mut() {
        a.bundled(&bundled);
    }
    // Every variable for the command: (name, target, value).
    let all: Vec<(&str, Target, &[u8])> = vars
        .iter()
        .map(|v| (v.name.as_str(), v.target, v.value.expose_secret()))
        .chain(
            bundled
                .iter()
                .map(|v| (v.name.as_str(), v.target, v.value.expose_secret())),
        )
        .collect();
    if let Some(b) = bundled
        .iter()
        .find(|b| vars.iter().any(|v| v.name == b.name))
    {
        return Err(UsageError::SetByBundleAndSpec {
            name: b.name.clone(),
        }
        .into());
    }

    // Values of env secrets were checked (no NUL byte, valid UTF-8) by `resolve`.

    let dir = if all.iter().any(|(_, target, _)| *target == Target::File) {
        Some(SecretDir::create()?)
    } else {
        None
    };
    // Declared after `dir`, so it stands down (on drop) before `dir` removes the files.
    let guarded = std::env::var_os(guardian::DISABLE_ENV).is_none();
    let to_undo = sources.guard();
    let _guardian = match &dir {
        _ if !guarded || (dir.is_none() && to_undo.is_empty()) => None,
        dir => {
            let started = Guardian::start().and_then(|mut g| {
                if let Some(dir) = dir {
                    g.watch_dir(dir.path())?;
                }
                for message in &to_undo {
                    g.send(message)?;
                }
                Ok(g)
            });
            match started {
                Ok(g) => Some(g),
                Err(e) => {
                    warn(format!(
                        "no guardian ({e}): a SIGKILL would leave file secrets, leases and tokens behind"
                    ));
                    None
                }
            }
        }
    };
    drop(to_undo);
    let mut paths = Vec::new();
    if let Some(dir) = &dir {
        for (name, _, value) in all.iter().filter(|(_, t, _)| *t == Target::File) {
            paths.push((*name, dir.write(name, value)?));
        }
    }

    let redactor = if args.no_redact {
        None
    } else {
        let (redactor, too_short) =
            Redactor::new(all.iter().map(|(name, _, value)| (*name, *value)));
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
    let mut set: Vec<(&str, &[u8])> = all
        .iter()
        .filter(|(_, target, _)| *target == Target::Env)
        .map(|(name, _, value)| (*name, *value))
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
    let running = Instant::now();
    let code = child::run(launch, &signals);
    if let Some(a) = audit.as_deref_mut() {
        a.phase("command", running);
    }
    let cleaning = Instant::now();
    let events = sources.finish();
    for event in &events {
        if let Some(error) = &event.error {
            warn(format!("{}: {error}", event.what));
        }
    }
    drop(dir);
    if let Some(a) = audit {
        a.cleanup(&events);
        a.phase("cleanup", cleaning);
    }
    code
}
