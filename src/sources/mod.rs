//! The source seam: the one trait every backend implements, and the factory that opens them.
//!
//! A source receives every location of its backend in ONE call, so it can dedupe paths, log in
//! once, batch requests and run them concurrently. It returns a [`Document`] per location; the
//! core applies selectors (`#key`, `#/pointer`, `#*`) itself. Each backend sits behind a cargo
//! feature; a reference to a backend that is not compiled in fails with a clear message.
//!
//! Every source must pass the shared contract in `tests/integration/support/contract.rs`.

#[cfg(feature = "age-source")]
pub mod age;
#[cfg(feature = "aws")]
pub mod aws;
pub mod env;
#[cfg(feature = "vault")]
pub mod vault;

/// The variables through which wrappers (the orb, the pipe) pass Vault settings; read by the
/// Vault source, named here so that they exist in every build.
pub mod vault_env {
    /// The Vault role (the pipe's VAULT_ROLE, the orb's vault_role).
    pub const ROLE: &str = "STEPSECRET_VAULT_ROLE";
    /// Where the auth method is mounted.
    pub const AUTH_PATH: &str = "STEPSECRET_VAULT_AUTH_PATH";
    /// The auth method: jwt, approle or token.
    pub const AUTH: &str = "STEPSECRET_VAULT_AUTH";
}

use std::time::{Duration, Instant};

use crate::cleanup::{CleanupEvent, Orphan};
use crate::error::SourceError;
use crate::plan::Plan;
use crate::reference::{Backend, Location};
use crate::secret::Document;

/// A backend that fetches secrets.
pub trait SecretSource: Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Fetches every location of `batch` (all of this backend, each at most once).
    ///
    /// Returns one result per location, in order. `Err` is for a failure of the backend as a
    /// whole that no single location explains (login refused, server unreachable); its message
    /// names the backend (e.g. `vault login ... refused`). Must return by `cx.deadline`.
    /// Messages never contain a secret value.
    fn fetch(&self, batch: &[Location], cx: &FetchContext) -> Result<Vec<Fetched>, SourceError>;

    /// Who the source authenticated as, for `check`: claims, role, policies. Never a credential.
    fn identity(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Environment variables holding credentials this source consumed; they are removed from
    /// the command's environment.
    fn consumed_env(&self) -> Vec<String> {
        Vec::new()
    }

    /// What the guardian must undo should stepsecret be killed before [`SecretSource::finish`]
    /// (see `run::guardian`); [`revoke_orphaned`] hands it back to this backend's code.
    fn guard(&self) -> Vec<Orphan> {
        Vec::new()
    }

    /// For `doctor`: logs in as a run would, reads no secret, and says what it found (the
    /// address, method and role, the login's outcome, what in the server's configuration does
    /// not match this job's identity and how to fix it); then undoes the login. The default
    /// has nothing to check beyond opening the source.
    fn diagnose(&self, cx: &FetchContext) -> Diagnosis {
        let _ = cx;
        Diagnosis::default()
    }

    /// How long this source's steps took (login, reads, revocation), in order, for the audit
    /// record's `durations_ms` and the benchmarks. Asked after [`SecretSource::finish`].
    fn timings(&self) -> Vec<(&'static str, Duration)> {
        Vec::new()
    }

    /// Runs once after the command exits, or when the run fails: revoke leases and tokens.
    /// Failures are reported, never raised: they must not change the exit code.
    fn finish(&self) -> Vec<CleanupEvent> {
        Vec::new()
    }
}

/// What `doctor` found for one backend. Never a credential.
#[derive(Debug, Default)]
pub struct Diagnosis {
    /// What it would use and what it learned, in order (`address`, `auth`, `role`, ...).
    pub facts: Vec<(String, String)>,
    /// Each problem found, with how to fix it.
    pub findings: Vec<String>,
    /// The login's outcome: `None` when it worked or there is none to try.
    pub error: Option<SourceError>,
}

/// What a fetch may take into account beyond the locations.
#[derive(Debug, Clone, Copy)]
pub struct FetchContext {
    /// The overall deadline, retries included.
    pub deadline: Instant,
    /// The fetch is for `check`: a source may spend extra requests on what `check` shows
    /// (version history, rotation dates, who it is logged in as) that `run` does not need.
    pub check: bool,
}

impl FetchContext {
    /// A context whose deadline is `timeout` from now.
    pub fn new(timeout: Duration) -> Self {
        FetchContext {
            deadline: Instant::now() + timeout,
            check: false,
        }
    }

    /// The same context, marked as a `check`.
    pub fn for_check(self) -> Self {
        FetchContext {
            check: true,
            ..self
        }
    }

    /// Time left before the deadline (zero when it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// The outcome for one location: a document, or why there is none.
pub type Fetched = Result<Found, SourceError>;

/// A fetched document and what is known about its version.
#[derive(Debug)]
pub struct Found {
    /// What was fetched.
    pub document: Document,
    /// Its version, dates and lease.
    pub meta: Meta,
}

/// What `check` and the audit log may show about a secret: never its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The backend's version label (KV version, AWS VersionId).
    pub version: Option<String>,
    /// When this version was created, RFC 3339.
    pub created: Option<String>,
    /// A lease to revoke after the run.
    pub lease_id: Option<String>,
    /// Anything else worth showing (stages, rotation dates).
    pub details: Vec<(String, String)>,
}

/// Opens the source for `backend` with the plan's settings. Fails for a backend that is not
/// compiled into this binary, or whose settings are invalid.
pub fn open(backend: Backend, plan: &Plan) -> Result<Box<dyn SecretSource>, SourceError> {
    let _ = plan;
    match backend {
        #[cfg(feature = "age-source")]
        Backend::Age => Ok(Box::new(age::AgeSource::from_env(
            &plan.base_dir,
            &plan.env,
        )?)),
        #[cfg(feature = "vault")]
        Backend::Vault => Ok(Box::new(vault::VaultSource::open(
            &plan.vault,
            &plan.base_dir,
            &plan.env,
        )?)),
        #[cfg(feature = "aws")]
        Backend::Aws => Ok(Box::new(aws::AwsSource::open(&plan.aws, &plan.env)?)),
        #[cfg(feature = "aws")]
        Backend::Ssm => Ok(Box::new(aws::AwsSource::open_parameters(
            &plan.aws, &plan.env,
        )?)),
        Backend::Env => Ok(Box::new(env::EnvSource::new(&plan.env))),
        #[allow(unreachable_patterns)]
        other => Err(SourceError::unavailable(format!(
            "{other}:// references are not built in yet: this stepsecret was built without the {other} source"
        ))),
    }
}

/// Undoes what a source handed the guardian (see [`SecretSource::guard`]), in a guardian
/// whose run was killed: the backend's own code reads its payload back. A backend that is not
/// built in, or a payload it cannot read, is reported as a failed step.
pub fn revoke_orphaned(orphan: &Orphan) -> Vec<CleanupEvent> {
    match orphan.backend {
        #[cfg(feature = "vault")]
        Backend::Vault => vault::revoke_orphaned(&orphan.payload),
        #[allow(unreachable_patterns)]
        other => vec![CleanupEvent {
            what: format!("undo what the {other} source left"),
            error: Some(format!("this stepsecret has no {other} source")),
        }],
    }
}
