//! The `env://` source: a variable the job already has (a CircleCI context or project
//! variable, a Bitbucket secured or deployment variable), brought under stepsecret's scoping
//! and masking.
//!
//! The CI platforms mask such a variable's raw value at most; once a reference names it, its
//! value is set under the spec's name, masked in every derived form, recorded in the audit log
//! (name and HMAC), and removed from the command's environment under its original name (unless
//! the spec sets that name itself). An unset or empty variable fails like a missing secret.
//! `#KEY` selects from a JSON value, as for the other sources.

use crate::env::Env;
use crate::error::SourceError;
use crate::reference::{Backend, Location};
use crate::secret::{Document, Structure};
use crate::sources::{FetchContext, Fetched, Found, Meta, SecretSource};

/// Reads values from the run's environment.
pub struct EnvSource {
    env: Env,
    /// The variables read, kept from the command under their own names.
    read: std::sync::Mutex<Vec<String>>,
}

impl EnvSource {
    /// A source reading `env` (the environment the run started with).
    pub fn new(env: &Env) -> EnvSource {
        EnvSource {
            env: env.clone(),
            read: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn read(&self, name: &str) -> Fetched {
        let value = self
            .env
            .get_os(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                SourceError::not_found(format!(
                    "{name} is not set in the job's environment (or is empty): add it to the job (a CircleCI context or project variable, a Bitbucket secured variable)"
                ))
            })?;
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.to_string());
        Ok(Found {
            document: Document::raw(value.as_encoded_bytes().to_vec(), Structure::Json),
            meta: Meta::default(),
        })
    }
}

impl SecretSource for EnvSource {
    fn backend(&self) -> Backend {
        Backend::Env
    }

    fn fetch(&self, batch: &[Location], _cx: &FetchContext) -> Result<Vec<Fetched>, SourceError> {
        Ok(batch
            .iter()
            .map(|location| match location {
                Location::Env(env) => self.read(&env.name),
                other => Err(SourceError::internal(format!(
                    "the env source was given {other}"
                ))),
            })
            .collect())
    }

    /// The variables read: the command sees their values under the spec's names only.
    fn consumed_env(&self) -> Vec<String> {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
