//! The `vault://` source: HashiCorp Vault and OpenBao, over their HTTP API.
//!
//! One [`VaultSource::fetch`] call gets every `vault://` location of the run: one login
//! ([`auth`]: JWT with the CI's OIDC token, AppRole, or the user's token), one engine question
//! per mount ([`read::mounts`]), then every read at once through a bounded pool of threads
//! sharing kept-alive connections ([`client`]), each retried with backoff and jitter under the
//! run's deadline. After the command, [`SecretSource::finish`] revokes every lease the reads
//! created and the login token (never a token the user supplied).
//!
//! The API is spoken directly rather than through vaultrs: vaultrs is async on reqwest (a second
//! HTTP and TLS stack in a binary that must stay small and static), drops the `lease_id` of
//! generic reads, and has no hook for retrying 412/429/5xx under one deadline. The source needs
//! eight endpoints, all documented in the Vault API.

mod auth;
mod client;
mod doctor;
mod read;
mod settings;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use settings::{AUTH_ENV, AUTH_PATH_ENV, DEFAULT_CONCURRENCY, ROLE_ENV, Settings};

use self::auth::Login;
use self::client::{ApiError, Call, Client, Method, parallel};
use crate::cleanup::{CleanupEvent, Orphan};
use crate::env::Env;
use crate::error::SourceError;
use crate::reference::{Backend, Location, VaultLocation};
use crate::sources::{FetchContext, Fetched, SecretSource};
use crate::spec::VaultSettings;
use secrecy::ExposeSecret;

/// How long cleanup (revoking leases and the login token) may take after the command.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches secrets from Vault or OpenBao.
pub struct VaultSource {
    settings: Settings,
    client: Client,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    login: Option<Login>,
    /// Leases the reads created: (lease id, path).
    leases: Vec<(String, String)>,
    /// The login token's revocation, started as soon as nothing needs the token any more.
    early_revoke: Option<std::thread::JoinHandle<(Result<(), String>, Duration)>>,
    /// How long each step took: `vault login`, `vault mounts`, `vault reads`, `vault revoke`.
    timings: Vec<(&'static str, Duration)>,
}

impl VaultSource {
    /// Validates the settings and builds the HTTP client; touches no network.
    pub fn open(
        spec: &VaultSettings,
        base_dir: &Path,
        env: &Env,
    ) -> Result<VaultSource, SourceError> {
        let settings = Settings::new(spec, base_dir, env)?;
        let client = Client::new(
            &settings.address,
            settings.namespace.clone(),
            &settings.tls,
            settings.concurrency,
        )?;
        Ok(VaultSource {
            settings,
            client,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SecretSource for VaultSource {
    fn backend(&self) -> Backend {
        Backend::Vault
    }

    fn fetch(&self, batch: &[Location], cx: &FetchContext) -> Result<Vec<Fetched>, SourceError> {
        let mut results: Vec<Option<Fetched>> = (0..batch.len()).map(|_| None).collect();
        let mut wanted: Vec<(usize, &VaultLocation)> = Vec::new();
        for (i, location) in batch.iter().enumerate() {
            match location {
                Location::Vault(v) => wanted.push((i, v)),
                other => {
                    results[i] = Some(Err(SourceError::internal(format!(
                        "the Vault source was given {other}"
                    ))))
                }
            }
        }
        if wanted.is_empty() {
            return Ok(results.into_iter().flatten().collect());
        }

        let started = Instant::now();
        let login = auth::login(&self.settings, &self.client, cx.deadline, cx.check)?;
        let token = login.token.clone();
        {
            let mut state = self.state();
            state.login = Some(login);
            state.timings.push(("vault login", started.elapsed()));
        }

        let workers = self.settings.concurrency;
        let locations: Vec<&VaultLocation> = wanted.iter().map(|(_, l)| *l).collect();
        let started = Instant::now();
        let mounts = read::mounts(&self.client, &token, &locations, cx.deadline, workers);
        self.state()
            .timings
            .push(("vault mounts", started.elapsed()));
        let started = Instant::now();
        let work: Vec<(usize, &VaultLocation, Result<read::Mount, SourceError>)> = wanted
            .iter()
            .zip(mounts)
            .map(|((i, l), m)| (*i, *l, m))
            .collect();
        let fetched = parallel(&work, workers, |(_, location, mount)| match mount {
            Ok(mount) => read::read(&self.client, &token, location, mount, cx.deadline),
            Err(e) => Err(e.clone()),
        });

        let mut state = self.state();
        state.timings.push(("vault reads", started.elapsed()));
        for ((i, location, _), result) in work.iter().zip(fetched) {
            if let Ok(found) = &result
                && let Some(lease) = &found.meta.lease_id
            {
                state.leases.push((lease.clone(), location.path.clone()));
            }
            results[*i] = Some(result);
        }
        // Without leases, nothing needs the login token once the values are read: revoke it
        // now, while the command starts, rather than after it. It lives for the fetch only,
        // and the revocation is off the command's critical path. (With leases it must live
        // on: revoking it revokes them.)
        if state.leases.is_empty()
            && let Some(login) = state.login.as_ref().filter(|l| l.revocable())
        {
            let (client, token) = (self.client.clone(), login.token.clone());
            state.early_revoke = std::thread::Builder::new()
                .name("vault-revoke".into())
                .spawn(move || {
                    let started = Instant::now();
                    let result = auth::revoke_self(&client, &token, started + CLEANUP_TIMEOUT);
                    (result, started.elapsed())
                })
                .ok();
        }
        drop(state);
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(SourceError::internal("no result"))))
            .collect())
    }

    fn identity(&self) -> Vec<(String, String)> {
        let mut identity = vec![("address".to_string(), self.settings.address.clone())];
        if let Some(namespace) = &self.settings.namespace {
            identity.push(("namespace".to_string(), namespace.clone()));
        }
        if let Some(login) = &self.state().login {
            identity.extend(login.identity.iter().cloned());
        }
        identity
    }

    fn diagnose(&self, cx: &FetchContext) -> crate::sources::Diagnosis {
        doctor::diagnose(self, cx)
    }

    fn timings(&self) -> Vec<(&'static str, Duration)> {
        self.state().timings.clone()
    }

    fn consumed_env(&self) -> Vec<String> {
        self.state()
            .login
            .as_ref()
            .map(|l| l.consumed.clone())
            .unwrap_or_default()
    }

    fn guard(&self) -> Vec<Orphan> {
        let state = self.state();
        let Some(login) = &state.login else {
            return Vec::new();
        };
        if !login.revocable() && state.leases.is_empty() {
            return Vec::new();
        }
        let orphaned = Orphaned {
            address: self.settings.address.clone(),
            namespace: self.settings.namespace.clone(),
            ca_cert: self.settings.tls.ca_cert.clone(),
            client_cert: self.settings.tls.client_cert.clone(),
            client_key: self.settings.tls.client_key.clone(),
            token: login.token.expose_secret().to_string(),
            revoke_token: login.revocable(),
            leases: state.leases.iter().map(|(l, _)| l.clone()).collect(),
        };
        match serde_json::to_string(&orphaned) {
            Ok(payload) => vec![Orphan {
                backend: Backend::Vault,
                payload,
            }],
            Err(_) => Vec::new(),
        }
    }

    fn finish(&self) -> Vec<CleanupEvent> {
        let (login, leases, early) = {
            let mut state = self.state();
            (
                state.login.take(),
                std::mem::take(&mut state.leases),
                state.early_revoke.take(),
            )
        };
        let Some(login) = login else {
            return Vec::new();
        };
        let started = Instant::now();
        let deadline = started + CLEANUP_TIMEOUT;
        let revoked = parallel(&leases, self.settings.concurrency, |(lease, _)| {
            let body = serde_json::json!({ "lease_id": lease });
            let call = Call {
                method: Method::Put,
                body: Some(&body),
                ..Call::get("sys/leases/revoke", &login.token)
            };
            self.client.call(&call, deadline).map(|_| ())
        });
        let (token_revoked, took) = match early {
            // Revoked in the background while the command ran: its own time, not the wait.
            Some(handle) => match handle.join() {
                Ok((result, took)) => (Some(result), took),
                Err(_) => (
                    Some(Err("the revoking thread stopped".into())),
                    Duration::ZERO,
                ),
            },
            None => (
                login
                    .revocable()
                    .then(|| auth::revoke_self(&self.client, &login.token, deadline)),
                started.elapsed(),
            ),
        };
        self.state().timings.push(("vault revoke", took));
        let mut events: Vec<CleanupEvent> = leases
            .iter()
            .zip(revoked)
            .map(|((lease, _), result)| {
                let error = match result {
                    Ok(()) => None,
                    // Revoking the login token revokes the leases it created, so a policy
                    // that does not allow sys/leases/revoke is no failure then.
                    Err(_) if matches!(token_revoked, Some(Ok(()))) => None,
                    Err(e) => Some(format!(
                        "{}; it stays valid until its TTL runs out",
                        describe(&e)
                    )),
                };
                CleanupEvent {
                    what: format!("revoke Vault lease {lease}"),
                    error,
                }
            })
            .collect();
        if login.batch {
            // Not a failure, and nothing to warn about: said once, in the audit record.
            events.push(CleanupEvent {
                what: "the Vault batch token is not revocable; it expires with its TTL".into(),
                error: None,
            });
        }
        if let Some(result) = token_revoked {
            events.push(CleanupEvent {
                what: "revoke the Vault login token".into(),
                error: result
                    .err()
                    .map(|e| format!("{e}; it stays valid until its TTL runs out")),
            });
        }
        events
    }
}

/// What the guardian needs to revoke a run's Vault leases and login token on its own: the
/// payload of this source's [`Orphan`].
#[derive(serde::Serialize, serde::Deserialize)]
struct Orphaned {
    address: String,
    namespace: Option<String>,
    ca_cert: Option<std::path::PathBuf>,
    client_cert: Option<std::path::PathBuf>,
    client_key: Option<std::path::PathBuf>,
    /// The token the leases were created with (wiped on drop).
    token: String,
    /// Revoke the token itself (a login token; never one the user supplied).
    revoke_token: bool,
    leases: Vec<String>,
}

impl Drop for Orphaned {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

/// The guardian's cleanup of a killed run: the same revocations as [`SecretSource::finish`],
/// from the payload [`SecretSource::guard`] handed over.
pub(crate) fn revoke_orphaned(payload: &str) -> Vec<CleanupEvent> {
    let Ok(cleanup) = serde_json::from_str::<Orphaned>(payload) else {
        return vec![CleanupEvent {
            what: "revoke the Vault login token and leases".into(),
            error: Some("the run's cleanup instructions were unreadable".into()),
        }];
    };
    let tls = settings::Tls {
        ca_cert: cleanup.ca_cert.clone(),
        client_cert: cleanup.client_cert.clone(),
        client_key: cleanup.client_key.clone(),
        system: crate::tls::SystemStore::default(),
    };
    let client = match Client::new(&cleanup.address, cleanup.namespace.clone(), &tls, 4) {
        Ok(c) => c,
        Err(e) => {
            return vec![CleanupEvent {
                what: "revoke the Vault login token and leases".into(),
                error: Some(e.message),
            }];
        }
    };
    let source = VaultSource {
        settings: Settings::orphan(&cleanup.address),
        client,
        state: Mutex::new(State {
            login: Some(Login {
                token: secrecy::SecretString::from(cleanup.token.to_string()),
                issued: cleanup.revoke_token,
                batch: false,
                identity: Vec::new(),
                consumed: Vec::new(),
            }),
            leases: cleanup
                .leases
                .iter()
                .map(|l| (l.clone(), String::new()))
                .collect(),
            early_revoke: None,
            timings: Vec::new(),
        }),
    };
    source.finish()
}

/// An [`ApiError`] in a few words, for cleanup warnings.
fn describe(e: &ApiError) -> String {
    match e {
        ApiError::Status { status, errors } => format!("HTTP {status}: {errors}"),
        ApiError::Malformed(why) | ApiError::Tls(why) => why.clone(),
        ApiError::GaveUp { attempts, last, .. } => {
            format!("gave up after {attempts} attempts ({last})")
        }
    }
}

/// The error for a call that ran out of retries: unreachable (69) when the last failure was
/// a connection error, gave up (75) when the server kept answering with a retryable status.
fn unreachable_or_gave_up(client: &Client, what: &str, e: ApiError) -> SourceError {
    match e {
        ApiError::GaveUp {
            attempts,
            last,
            unreachable: true,
        } => SourceError::unavailable(format!(
            "cannot reach Vault at {} for {what} ({last}; {attempts} attempts before the deadline); check VAULT_ADDR or [vault] address, or raise --timeout",
            client.address
        )),
        ApiError::GaveUp { attempts, last, .. } => SourceError::gave_up(format!(
            "Vault at {} kept failing {what} ({last}; {attempts} attempts before the deadline); raise --timeout or try again later",
            client.address
        )),
        other => SourceError::unavailable(format!("{what}: {}", describe(&other))),
    }
}
