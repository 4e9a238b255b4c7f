//! The run lifecycle, in one place: `stepsecret run` (and the pipe's COMMAND mode) from the
//! user's arguments to the command's exit code.
//!
//! A [`Session`] owns everything a run opens, and tears it down in one explicit order whatever
//! the way out (the command's exit, a signal, an error before the command started):
//!
//! 1. the command has exited and its output pumps have drained ([`child`]);
//! 2. the sources clean up: Vault leases and the login token are revoked (the guardian is still
//!    watching, so a SIGKILL during this step still revokes them);
//! 3. the file secrets and their private directory, and the files written at chosen paths
//!    (with the folders made for them), are removed ([`secret_files`]);
//! 4. the guardian stands down ([`guardian`]): only now is there nothing left for it to undo;
//! 5. signal handling ends ([`signals`]) and the redactor's secrets are dropped (wiped);
//! 6. the audit record is written, with the cleanup's outcome and the exit code.
//!
//! Opening goes the other way: the audit log before anything is fetched (a run whose record
//! cannot be written never starts), signals before the first request, the guardian before the
//! first file is written.

mod child;
mod env;
pub(crate) mod guardian;
mod pre_exec;
mod secret_files;
mod signals;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use secrecy::ExposeSecret;

use self::child::Launch;
use self::env::{ChildEnv, Secret};
use self::guardian::Guardian;
use self::secret_files::{Placed, SecretDir};
use self::signals::Signals;
use crate::audit::AuditLog;
use crate::bundle::{self, BundledVar};
use crate::cleanup::CleanupEvent;
use crate::cli::RunArgs;
use crate::env::Env;
use crate::error::{Error, ErrorKind, Failure, SourceError, UsageError, warn};
use crate::plan::{Plan, Target};
use crate::redact::{MIN_LEN, Redactor};
use crate::resolve::{ResolvedVar, Sources, resolve};
use crate::rotation;
use crate::template::Rendered;

/// Runs `args.command` with the secrets `args` names; returns the exit code to end with.
pub(crate) fn run(args: &RunArgs, env: &Env) -> Result<u8, Error> {
    let mut session = Session::open(args, env)?;
    let result = session.execute(args);
    session.close(result)
}

/// Everything a run has opened, torn down by [`Session::close`] (or, on a panic, by `Drop`)
/// in the order the module documentation gives.
pub(crate) struct Session<'e> {
    env: &'e Env,
    audit: Option<AuditLog>,
    signals: Option<Signals>,
    sources: Option<Sources>,
    dir: Option<SecretDir>,
    /// Files at the paths the spec chose.
    placed: Placed,
    guardian: Option<Guardian>,
    /// Masks the command's output; `None` with `--no-redact` or before the secrets are known.
    redactor: Option<Arc<Redactor>>,
    cleanup: Vec<CleanupEvent>,
    /// How long the sources' own steps took, for the audit record.
    timings: Vec<(&'static str, std::time::Duration)>,
}

impl<'e> Session<'e> {
    /// Opens the audit log, when asked for; nothing else happens yet.
    fn open(args: &RunArgs, env: &'e Env) -> Result<Session<'e>, Error> {
        let audit = match &args.audit_log {
            Some(path) => Some(AuditLog::open(path, env)?),
            None => None,
        };
        Ok(Session {
            env,
            audit,
            signals: None,
            sources: None,
            dir: None,
            placed: Placed::default(),
            guardian: None,
            redactor: None,
            cleanup: Vec::new(),
            timings: Vec::new(),
        })
    }

    /// Plan, fetch, deliver, run. Everything opened on the way stays in the session.
    fn execute(&mut self, args: &RunArgs) -> Result<u8, Error> {
        let started = Instant::now();
        let plan = Plan::build(&args.spec, self.env)?;
        if plan.entries.is_empty() && plan.templates.is_empty() && args.bundle.is_none() {
            return Err(UsageError::NothingToResolve.into());
        }
        secret_files::refuse_existing(plan.chosen_paths())?;
        self.phase("plan", started);
        let signals = self.signals.insert(
            Signals::install().map_err(|e| Error::os("cannot install signal handlers", e))?,
        );
        let fetching = Instant::now();
        let outcome = resolve(&plan, &|| signals.received())?;
        if let Some(audit) = &mut self.audit {
            audit.identities(&outcome.sources.identities());
        }
        self.phase("resolve", fetching);
        let (vars, sources) = outcome.into_vars(&plan)?;
        let sources = self.sources.insert(sources);
        if let Some(audit) = &mut self.audit {
            audit.variables(&plan, &vars);
        }
        check_ages(args, &plan, &vars)?;

        // Opened (and deleted) only once everything else resolved: a failed run leaves the
        // bundle for the next try.
        let bundled = match &args.bundle {
            Some(path) => bundle::open(path, self.env)?,
            None => Vec::new(),
        };
        if let Some(audit) = &mut self.audit {
            audit.bundled(&bundled);
        }
        let secrets = secrets(&vars, &bundled)?;
        let names: Vec<&str> = secrets.iter().map(|(name, _, _)| *name).collect();
        plan.check_public(&names)?;
        let consumed = sources.consumed_env();
        let by_name: Vec<(&str, &[u8])> = secrets.iter().map(|(n, _, v)| (*n, *v)).collect();
        let rendered = plan.render(&by_name)?;
        let files = deliveries(&plan, &vars, &bundled, &rendered);
        self.start_guardian(&files)?;
        let files = self.write_files(&files)?;
        if let Some(audit) = &mut self.audit {
            audit.files(&files);
        }
        self.redactor = (!args.no_redact).then(|| redactor(&plan, &secrets, &rendered));
        self.command(args, ChildEnv::new(&secrets, &files, consumed))
    }

    /// Starts the guardian when there is something a SIGKILL would leave behind, after
    /// creating the private directory for file secrets (so the guardian watches it before the
    /// first file is written).
    fn start_guardian(&mut self, files: &[Delivery<'_>]) -> Result<(), Error> {
        if files.iter().any(|f| f.path.is_none()) {
            self.dir = Some(SecretDir::create(&self.env.temp_dir())?);
        }
        let to_undo = self
            .sources
            .as_ref()
            .map(Sources::guard)
            .unwrap_or_default();
        let placed = files.iter().any(|f| f.path.is_some());
        if self.env.is_set(guardian::DISABLE_ENV)
            || (self.dir.is_none() && !placed && to_undo.is_empty())
        {
            return Ok(());
        }
        let started = Guardian::start().and_then(|mut g| {
            if let Some(dir) = &self.dir {
                g.watch(dir.path())?;
            }
            for orphan in to_undo {
                g.send(&guardian::Message::Revoke(orphan))?;
            }
            Ok(g)
        });
        match started {
            Ok(g) => self.guardian = Some(g),
            Err(e) => warn(format!(
                "no guardian ({e}): a SIGKILL would leave file secrets, leases and tokens behind"
            )),
        }
        Ok(())
    }

    /// Writes each file (secret or rendered template); returns (name, path) for the
    /// command's environment.
    fn write_files<'s>(
        &mut self,
        files: &[Delivery<'s>],
    ) -> Result<Vec<(&'s str, PathBuf)>, Error> {
        let mut written = Vec::with_capacity(files.len());
        for file in files {
            let path = match (file.path, &self.dir) {
                (Some(path), _) => {
                    let guardian = &mut self.guardian;
                    let mut watch = |created: &secret_files::Created| {
                        if let Some(g) = guardian.as_mut() {
                            let _ = g.send(&guardian::Message::Created(created.clone()));
                        }
                    };
                    self.placed.write(file.name, path, file.bytes, &mut watch)?;
                    path.to_path_buf()
                }
                (None, Some(dir)) => dir.write(file.name, file.bytes)?,
                (None, None) => unreachable!("the private directory exists for such files"),
            };
            written.push((file.name, path));
        }
        Ok(written)
    }

    /// Starts the command unless a signal came first, and waits for it.
    fn command(&mut self, args: &RunArgs, env: ChildEnv<'_>) -> Result<u8, Error> {
        let signals = self.signals.as_ref().expect("signals are installed first");
        if let Some(signal) = signals.received() {
            return Err(Error::Interrupted(signal));
        }
        let launch = Launch {
            command: &args.command,
            env,
            redactor: self.redactor.clone(),
            die_with_parent: !self.env.is_set(guardian::DISABLE_ENV),
        };
        let running = Instant::now();
        let code = child::run(launch, signals);
        self.phase("command", running);
        code
    }

    /// Tears the session down (see the module documentation for the order), writes the audit
    /// record, and passes `result` on.
    fn close(mut self, result: Result<u8, Error>) -> Result<u8, Error> {
        let cleaning = Instant::now();
        self.teardown();
        if let Some(mut audit) = self.audit.take() {
            audit.cleanup(&self.cleanup);
            audit.phase("cleanup", cleaning);
            for (name, took) in &self.timings {
                audit.duration(name, *took);
            }
            audit.write(&result);
        }
        result
    }

    /// Steps 2 to 5 of the teardown; each runs once, so `Drop` after `close` does nothing.
    fn teardown(&mut self) {
        if let Some(mut sources) = self.sources.take() {
            let events = sources.finish();
            for event in &events {
                if let Some(error) = &event.error {
                    warn(format!("{}: {error}", event.what));
                }
            }
            self.cleanup.extend(events);
            self.timings = sources.timings();
        }
        drop(self.dir.take());
        drop(std::mem::take(&mut self.placed));
        drop(self.guardian.take());
        drop(self.signals.take());
        drop(self.redactor.take());
    }

    fn phase(&mut self, name: &str, since: Instant) {
        if let Some(audit) = &mut self.audit {
            audit.phase(name, since);
        }
    }
}

impl Drop for Session<'_> {
    /// Only reached without [`Session::close`] on a panic: the same teardown, no record.
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Fails (with `--enforce-max-age`) or warns for secrets older than the allowed age.
fn check_ages(args: &RunArgs, plan: &Plan, vars: &[ResolvedVar]) -> Result<(), Error> {
    let Some(limit) = args.max_age.or(plan.max_age) else {
        return Ok(());
    };
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
    if stale.is_empty() {
        return Ok(());
    }
    if args.enforce_max_age {
        return Err(Error::Resolve(stale));
    }
    for failure in &stale {
        warn(failure);
    }
    Ok(())
}

/// Every secret for the command, the spec's and the bundle's; a name set by both is refused.
/// (Values of env secrets were checked by `resolve`: no NUL byte, valid UTF-8.)
fn secrets<'a>(
    vars: &'a [ResolvedVar],
    bundled: &'a [BundledVar],
) -> Result<Vec<Secret<'a>>, Error> {
    if let Some(b) = bundled
        .iter()
        .find(|b| vars.iter().any(|v| v.name == b.name))
    {
        return Err(UsageError::SetByBundleAndSpec {
            name: b.name.clone(),
        }
        .into());
    }
    Ok(vars
        .iter()
        .map(|v| (v.name.as_str(), v.target, v.value.expose_secret()))
        .chain(
            bundled
                .iter()
                .map(|v| (v.name.as_str(), v.target, v.value.expose_secret())),
        )
        .collect())
}

/// One file for the command: a file secret or a rendered template.
struct Delivery<'a> {
    name: &'a str,
    bytes: &'a [u8],
    /// The path the spec chose; `None` for the private directory.
    path: Option<&'a Path>,
}

/// Every file to write: `[files]` secrets (and the bundle's), then rendered templates.
fn deliveries<'a>(
    plan: &'a Plan,
    vars: &'a [ResolvedVar],
    bundled: &'a [BundledVar],
    rendered: &'a [Rendered],
) -> Vec<Delivery<'a>> {
    let files = vars
        .iter()
        .filter(|v| v.target == Target::File)
        .map(|v| Delivery {
            name: &v.name,
            bytes: v.value.expose_secret(),
            path: plan.entries[v.entry].path.as_deref(),
        });
    let bundled = bundled
        .iter()
        .filter(|v| v.target == Target::File)
        .map(|v| Delivery {
            name: &v.name,
            bytes: v.value.expose_secret(),
            path: None,
        });
    let templates = plan.templates.iter().zip(rendered).map(|(t, r)| Delivery {
        name: &t.name,
        bytes: &r.bytes,
        path: t.path.as_deref(),
    });
    files.chain(bundled).chain(templates).collect()
}

/// The redactor for every secret, its automaton compiled on a thread of its own while the
/// command starts (the first output waits for it).
/// Public values (`[mask] public`, `--public`) are left out: they are not secret. Values a
/// template's filters derived from secrets are masked under the template's name.
fn redactor(plan: &Plan, secrets: &[Secret<'_>], rendered: &[Rendered]) -> Arc<Redactor> {
    let (redactor, too_short) = Redactor::new(
        secrets
            .iter()
            .filter(|(name, _, _)| !plan.is_public(name))
            .map(|(name, _, value)| (*name, *value))
            .chain(plan.derived(rendered)),
    );
    for name in too_short {
        warn(format!(
            "{name} is shorter than {MIN_LEN} bytes and will not be masked in the output"
        ));
    }
    let redactor = Arc::new(redactor);
    let early = Arc::clone(&redactor);
    let _ = std::thread::Builder::new()
        .name("redactor".into())
        .spawn(move || early.prepare());
    redactor
}
