//! Resolution: from a validated plan to secret values, all backends at once.
//!
//! Each backend used by the plan is opened once and given all of its locations in one batch,
//! on its own thread, so Vault, AWS and age work concurrently. Identical locations are fetched
//! once. The caller's `interrupted` check is polled while waiting, so a signal stops a slow fetch
//! at once, and a backstop deadline guards against a source that overruns its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use crate::cleanup::{CleanupEvent, Orphan};
use crate::error::{Error, Failure, SourceError};
use crate::plan::{Plan, Target, is_env_name};
use crate::reference::{Backend, Location, Selector};
use crate::secret::{SecretValue, Selected};
use crate::sources::{self, FetchContext, Fetched, Meta, SecretSource};

/// One variable ready for the command.
pub struct ResolvedVar {
    pub name: String,
    pub target: Target,
    pub value: SecretValue,
    /// Index of the plan entry it came from.
    pub entry: usize,
    pub meta: Meta,
}

/// The opened sources, kept until the command has exited so they can clean up. Dropping this
/// without calling [`Sources::finish`] still cleans up, so error paths revoke leases too.
pub(crate) struct Sources {
    list: Vec<Arc<dyn SecretSource>>,
    finished: bool,
}

impl Sources {
    /// Revokes leases and tokens; returns what happened, for warnings and the audit log.
    pub(crate) fn finish(&mut self) -> Vec<CleanupEvent> {
        if std::mem::replace(&mut self.finished, true) {
            return Vec::new();
        }
        self.list.iter().flat_map(|s| s.finish()).collect()
    }

    /// What the guardian must undo if stepsecret is killed, from every source.
    pub(crate) fn guard(&self) -> Vec<Orphan> {
        self.list.iter().flat_map(|s| s.guard()).collect()
    }

    /// Leaves every lease and login token in place (they expire with their TTL): for values
    /// that must outlive this process, such as a pipe's exported bundle.
    pub(crate) fn keep(&mut self) {
        self.finished = true;
    }

    /// Credential variables the sources consumed, to keep out of the command's environment.
    pub(crate) fn consumed_env(&self) -> Vec<String> {
        self.list.iter().flat_map(|s| s.consumed_env()).collect()
    }

    /// Each backend's identity, for `check`.
    /// How long each source's steps took, for the audit record.
    pub(crate) fn timings(&self) -> Vec<(&'static str, Duration)> {
        self.list.iter().flat_map(|s| s.timings()).collect()
    }

    /// Each backend's identity, for `check`.
    pub(crate) fn identities(&self) -> Vec<(Backend, Vec<(String, String)>)> {
        self.list
            .iter()
            .map(|s| (s.backend(), s.identity()))
            .collect()
    }
}

impl Drop for Sources {
    fn drop(&mut self) {
        for event in self.finish() {
            if let Some(error) = event.error {
                eprintln!("stepsecret: warning: {}: {error}", event.what);
            }
        }
    }
}

/// What resolution produced for every plan entry.
pub(crate) struct Outcome {
    /// Per plan entry: its variables (several for an expansion), or why it failed.
    pub entries: Vec<Result<Vec<ResolvedVar>, SourceError>>,
    /// Backends that failed as a whole (login refused, unreachable), each once.
    pub backend_errors: Vec<(Backend, SourceError)>,
    pub sources: Sources,
}

impl Outcome {
    /// All variables, or the error that ends the run: a failed backend first, else every
    /// failed variable (one line each), else a name produced twice by expansions.
    pub(crate) fn into_vars(self, plan: &Plan) -> Result<(Vec<ResolvedVar>, Sources), Error> {
        let Outcome {
            entries,
            backend_errors,
            sources,
        } = self;
        if let Some((backend, error)) = backend_errors.into_iter().next() {
            let routed: Vec<&crate::plan::Entry> = plan
                .entries
                .iter()
                .filter(|e| route(e.reference.backend()) == backend)
                .collect();
            let locations: Vec<Location> = routed
                .iter()
                .map(|e| e.reference.location.clone())
                .collect();
            return Err(Error::Source {
                backend: opened_as(backend, &locations).scheme(),
                error,
                names: routed.iter().map(|e| e.name.clone()).collect(),
            });
        }
        let mut vars = Vec::new();
        let mut failures: Vec<Failure> = Vec::new();
        // Variables that failed for the same reason at the same location (a file that cannot
        // be decrypted, a path that does not exist) are reported on one line.
        let mut failed_at: Vec<&Location> = Vec::new();
        for (i, result) in entries.into_iter().enumerate() {
            let error = match result {
                Ok(v) => {
                    vars.extend(v);
                    continue;
                }
                Err(error) => error,
            };
            let location = &plan.entries[i].reference.location;
            let same = failures
                .iter_mut()
                .zip(&failed_at)
                .find(|(f, at)| **at == location && f.error == error);
            match same {
                Some((f, _)) => {
                    f.name = format!("{}, {}", f.name, plan.entries[i].name);
                    f.reference = location.to_string();
                }
                None => {
                    failures.push(failure(plan, i, error));
                    failed_at.push(location);
                }
            }
        }
        failures.extend(collisions(plan, vars.iter()));
        if failures.is_empty() {
            Ok((vars, sources))
        } else {
            Err(Error::Resolve(failures))
        }
    }
}

/// Variables set twice (an expansion produced a name that is already taken).
pub(crate) fn collisions<'a>(
    plan: &Plan,
    vars: impl Iterator<Item = &'a ResolvedVar>,
) -> Vec<Failure> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for var in vars {
        match seen.get(var.name.as_str()) {
            Some(&first) => failures.push(failure(
                plan,
                var.entry,
                SourceError::config(format!(
                    "{} would be set twice (also by {}); rename one or change the expansion prefix",
                    var.name, plan.entries[first].name
                )),
            )),
            None => {
                seen.insert(&var.name, var.entry);
            }
        }
    }
    failures
}

fn failure(plan: &Plan, entry: usize, error: SourceError) -> Failure {
    let e = &plan.entries[entry];
    Failure {
        name: e.name.clone(),
        reference: e.reference.raw.clone(),
        error,
    }
}

/// How much longer than the plan's timeout to wait for a source before giving up on it.
const BACKSTOP: Duration = Duration::from_secs(2);

/// Fetches everything the plan names. `interrupted` is polled while waiting; when it returns a
/// signal number, resolution stops and `Error::Interrupted` is returned.
pub(crate) fn resolve(
    plan: &Plan,
    interrupted: &dyn Fn() -> Option<i32>,
) -> Result<Outcome, Error> {
    resolve_with(plan, FetchContext::new(plan.timeout), interrupted)
}

/// [`resolve`] with a given context (e.g. [`FetchContext::for_check`]).
pub(crate) fn resolve_with(
    plan: &Plan,
    cx: FetchContext,
    interrupted: &dyn Fn() -> Option<i32>,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    let batches = batches(plan);
    let mut sources = Sources {
        list: Vec::new(),
        finished: false,
    };
    let mut backend_errors = Vec::new();
    let (tx, rx) = mpsc::channel::<(Backend, Result<Vec<Fetched>, SourceError>)>();
    let mut waiting = 0;
    for (backend, batch) in &batches {
        let source: Arc<dyn SecretSource> = match sources::open(opened_as(*backend, batch), plan) {
            Ok(s) => Arc::from(s),
            Err(e) => {
                backend_errors.push((*backend, e));
                continue;
            }
        };
        sources.list.push(Arc::clone(&source));
        let (tx, batch, backend) = (tx.clone(), batch.clone(), *backend);
        waiting += 1;
        std::thread::Builder::new()
            .name(format!("fetch-{backend}"))
            .spawn(move || {
                let result = source.fetch(&batch, &cx);
                let _ = tx.send((backend, result));
            })
            .map_err(|e| Error::os("cannot start a fetch thread", e))?;
    }
    drop(tx);

    let mut fetched: BTreeMap<Backend, Vec<Fetched>> = BTreeMap::new();
    Answers {
        rx,
        waiting,
        batches: &batches,
        backstop: started + plan.timeout + BACKSTOP,
        timeout: plan.timeout,
    }
    .collect(interrupted, &mut fetched, &mut backend_errors)?;
    // A fetch thread that ended without answering (it panicked) fails its backend, rather
    // than the lookup below.
    for backend in batches.keys() {
        if !fetched.contains_key(backend) && !backend_errors.iter().any(|(b, _)| b == backend) {
            backend_errors.push((
                *backend,
                SourceError::internal("the source stopped without an answer (a bug in stepsecret)"),
            ));
        }
    }

    let entries = plan
        .entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let location = &entry.reference.location;
            let backend = route(location.backend());
            if let Some((_, e)) = backend_errors.iter().find(|(b, _)| *b == backend) {
                return Err(e.clone());
            }
            let index = batches[&backend]
                .iter()
                .position(|l| l == location)
                .expect("every location is in its batch");
            let found = fetched[&backend][index].as_ref().map_err(Clone::clone)?;
            select(i, entry, found)
        })
        .collect();
    backend_errors.sort_by_key(|(b, _)| *b);
    Ok(Outcome {
        entries,
        backend_errors,
        sources,
    })
}

/// The backend whose source fetches `backend`'s locations: Parameter Store rides on the AWS
/// source, so a spec with both `aws-sm://` and `aws-ssm://` sets the SDK up (and assumes the
/// role) once.
fn route(backend: Backend) -> Backend {
    match backend {
        #[cfg(feature = "aws")]
        Backend::Ssm => Backend::Aws,
        other => other,
    }
}

/// What the source of a routed batch is opened as: the scheme of its locations when they all
/// have one (so `check` and messages say `aws-ssm` for a run that reads only parameters).
fn opened_as(backend: Backend, batch: &[Location]) -> Backend {
    match batch.first().map(Location::backend) {
        Some(first) if batch.iter().all(|l| l.backend() == first) => first,
        _ => backend,
    }
}

/// Every unique location per backend, in a stable order: each backend's batch.
fn batches(plan: &Plan) -> BTreeMap<Backend, Vec<Location>> {
    let mut batches: BTreeMap<Backend, Vec<Location>> = BTreeMap::new();
    for entry in &plan.entries {
        let location = &entry.reference.location;
        let batch = batches.entry(route(location.backend())).or_default();
        if !batch.contains(location) {
            batch.push(location.clone());
        }
    }
    batches
}

/// The fetch threads' answers, still to come.
struct Answers<'a> {
    rx: mpsc::Receiver<(Backend, Result<Vec<Fetched>, SourceError>)>,
    /// Threads that have not answered yet.
    waiting: usize,
    batches: &'a BTreeMap<Backend, Vec<Location>>,
    /// Past this, a backend that has not answered has failed (its source overran).
    backstop: Instant,
    /// The run's timeout, for that message.
    timeout: Duration,
}

impl Answers<'_> {
    /// Files every answer under `fetched` or `backend_errors`, polling `interrupted` while it
    /// waits, until each thread answered or the backstop passed.
    fn collect(
        mut self,
        interrupted: &dyn Fn() -> Option<i32>,
        fetched: &mut BTreeMap<Backend, Vec<Fetched>>,
        backend_errors: &mut Vec<(Backend, SourceError)>,
    ) -> Result<(), Error> {
        while self.waiting > 0 {
            if let Some(signal) = interrupted() {
                return Err(Error::Interrupted(signal));
            }
            match self.rx.recv_timeout(Duration::from_millis(20)) {
                Ok((backend, Ok(results))) => {
                    self.waiting -= 1;
                    if results.len() == self.batches[&backend].len() {
                        fetched.insert(backend, results);
                    } else {
                        backend_errors.push((
                            backend,
                            SourceError::internal(
                                "the source returned the wrong number of results",
                            ),
                        ));
                    }
                }
                Ok((backend, Err(e))) => {
                    self.waiting -= 1;
                    backend_errors.push((backend, e));
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > self.backstop => {
                    for backend in self.batches.keys() {
                        if !fetched.contains_key(backend)
                            && !backend_errors.iter().any(|(b, _)| b == backend)
                        {
                            backend_errors.push((
                                *backend,
                                SourceError::gave_up(format!(
                                    "no answer within the {} deadline (raise --timeout)",
                                    humantime::format_duration(self.timeout)
                                )),
                            ));
                        }
                    }
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    }
}

fn select(
    index: usize,
    entry: &crate::plan::Entry,
    found: &sources::Found,
) -> Result<Vec<ResolvedVar>, SourceError> {
    let var = |name: String, value: SecretValue| ResolvedVar {
        name,
        target: entry.target,
        value,
        entry: index,
        meta: found.meta.clone(),
    };
    match &entry.expand {
        None => match found.document.select(&entry.reference.selector) {
            Ok(Selected::One(value)) => {
                if entry.target == Target::Env
                    && let Some(problem) = env_value_problem(value.expose_secret())
                {
                    return Err(SourceError::config(problem));
                }
                Ok(vec![var(entry.name.clone(), value)])
            }
            Ok(Selected::Many(_)) => Err(SourceError::internal("unexpected expansion")),
            Err(message) => Err(SourceError::not_found(message)),
        },
        Some(prefix) => {
            let selector = match &entry.reference.selector {
                Selector::All => Selector::Whole,
                other => other.clone(),
            };
            let pairs = found
                .document
                .expand_at(&selector)
                .map_err(SourceError::not_found)?;
            let mut named: BTreeMap<String, &str> = BTreeMap::new();
            for (key, _) in &pairs {
                let name = expanded_name(prefix, key);
                if let Some(first) = named.insert(name.clone(), key) {
                    let (a, b) = (
                        member(&entry.reference.location, first),
                        member(&entry.reference.location, key),
                    );
                    return Err(SourceError::config(format!(
                        "{a} and {b} would both become {name}; rename one of them or expand them separately"
                    )));
                }
            }
            pairs
                .into_iter()
                .map(|(key, value)| {
                    let name = expanded_name(prefix, &key);
                    if let Some(problem) = env_value_problem(value.expose_secret()) {
                        Err(SourceError::config(format!("key `{key}`: {problem}")))
                    } else if is_env_name(&name) {
                        Ok(var(name, value))
                    } else {
                        Err(SourceError::config(format!(
                            "key `{key}` would become `{name}`, which is not a valid variable name; give the expansion a prefix"
                        )))
                    }
                })
                .collect()
        }
    }
}

/// One member of an expansion, for a message: a Parameter Store path's parameter by its full
/// name, else the document's key.
fn member(location: &Location, key: &str) -> String {
    match location {
        Location::Ssm(ssm) if ssm.path => format!("parameter `{}/{key}`", ssm.name),
        _ => format!("key `{key}`"),
    }
}

/// Why `value` cannot be an environment variable's value, if it cannot: a NUL byte ends a C
/// string early, and bytes that are not UTF-8 (binary data) reach most programs mangled or
/// rejected, so both must go to a file instead. Checked here rather than in `run` so that
/// `check` reports it too, naming the variable.
pub(crate) fn env_value_problem(value: &[u8]) -> Option<&'static str> {
    if std::str::from_utf8(value).is_err() {
        Some(
            "the value is binary (not valid UTF-8 text), which an environment variable cannot carry intact; write it to a file with --file NAME=REF (or [files] in the spec)",
        )
    } else if value.contains(&0) {
        Some(
            "the value contains a NUL byte, which an environment variable cannot hold; write it to a file with --file NAME=REF (or [files] in the spec)",
        )
    } else {
        None
    }
}

/// `PREFIX` + the key upper-cased, with every character that cannot be in a variable name
/// replaced by `_`.
pub(crate) fn expanded_name(prefix: &str, key: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + key.len());
    name.push_str(prefix);
    name.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_must_be_text_without_nul() {
        assert_eq!(env_value_problem(b"plain text \xc3\xa9"), None);
        assert!(env_value_problem(b"a\0b").unwrap().contains("NUL"));
        assert!(
            env_value_problem(&[0xff, 0xfe, 0x01])
                .unwrap()
                .contains("--file")
        );
    }

    #[cfg(feature = "aws")]
    #[test]
    fn parameters_ride_on_the_aws_source_which_says_what_it_serves() {
        let location = |r: &str| r.parse::<crate::reference::Reference>().unwrap().location;
        assert_eq!(route(Backend::Ssm), Backend::Aws);
        assert_eq!(route(Backend::Vault), Backend::Vault);
        let ssm = [location("aws-ssm:///a"), location("aws-ssm:///b/*")];
        assert_eq!(opened_as(Backend::Aws, &ssm), Backend::Ssm);
        let mixed = [location("aws-ssm:///a"), location("aws-sm://b")];
        assert_eq!(opened_as(Backend::Aws, &mixed), Backend::Aws);
    }

    #[test]
    fn expanded_names_are_upper_cased_and_sanitized() {
        assert_eq!(expanded_name("DB_", "user-name.v2"), "DB_USER_NAME_V2");
        assert_eq!(expanded_name("", "host"), "HOST");
        assert_eq!(expanded_name("", "1st"), "1ST");
    }
}
