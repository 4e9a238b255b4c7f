//! The audit record: one JSON line per run, appended to `--audit-log FILE`
//! (STEPSECRET_AUDIT_LOG), for the security team's log pipeline.
//!
//! A record says when and where the run happened (the CI job's identifiers), who stepsecret
//! authenticated as (OIDC claims, roles, policies; never a token), every variable with its
//! backend, reference, version, lease and whether the lease was revoked, the command's exit
//! code (or the error that stopped the run) and how long each phase took. It never holds a
//! value. With STEPSECRET_AUDIT_KEY set, it holds each value's HMAC-SHA256 under that key and
//! its length, so `stepsecret scan` can later find files that contain a value without the log
//! ever being able to reveal one.
//!
//! The file is opened (created 0600, append-only) before anything is fetched, so a run whose
//! record cannot be written never starts.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::cleanup::CleanupEvent;
use crate::env::Env;
use crate::error::{Error, UsageError};
use crate::plan::Plan;
use crate::reference::Backend;
use crate::resolve::ResolvedVar;

/// The variable holding the HMAC key (any text; at least 16 bytes).
pub const KEY_ENV: &str = "STEPSECRET_AUDIT_KEY";

/// HMAC-SHA256 of `value` under `key`, hex.
pub fn hmac_hex(key: &[u8], value: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(value);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The HMAC key from the environment, if set. Too short a key is refused: the log is meant
/// to be shared, and a guessable key would let anyone test candidate values against it.
pub fn key_from_env(env: &Env) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    match env.get_os(KEY_ENV).map(OsStr::to_os_string) {
        None => Ok(None),
        Some(key) if key.len() < 16 => Err(UsageError::AuditKeyTooShort.into()),
        Some(key) => Ok(Some(Zeroizing::new(key.into_encoded_bytes()))),
    }
}

/// A run's record, filled in as the run goes and written once at the end.
pub struct AuditLog {
    file: File,
    path: PathBuf,
    key: Option<Zeroizing<Vec<u8>>>,
    /// The CI job, as the environment describes it.
    job: Option<crate::ci::Job>,
    started: SystemTime,
    phases: Map<String, Value>,
    variables: Vec<Value>,
    identities: Map<String, Value>,
    cleanup: Vec<CleanupEvent>,
    /// The files the run wrote: (variable, path).
    files: Vec<Value>,
}

impl AuditLog {
    /// Opens (creates 0600) the log for appending.
    pub fn open(path: &Path, env: &Env) -> Result<AuditLog, Error> {
        let key = key_from_env(env)?;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(format!("cannot open the audit log {}", path.display()), e))?;
        Ok(AuditLog {
            file,
            path: path.to_path_buf(),
            key,
            job: crate::ci::job(env),
            started: SystemTime::now(),
            phases: Map::new(),
            variables: Vec::new(),
            identities: Map::new(),
            cleanup: Vec::new(),
            files: Vec::new(),
        })
    }

    /// Records how long a source's step took (`vault login`, `vault reads`...).
    pub(crate) fn duration(&mut self, name: &str, took: std::time::Duration) {
        self.phases.insert(
            name.to_string(),
            json!((took.as_secs_f64() * 1e6).round() / 1e3),
        );
    }

    /// Records how long a phase took, from `since` until now.
    pub fn phase(&mut self, name: &str, since: Instant) {
        self.duration(name, since.elapsed());
    }

    /// Records every variable (names, references, versions, leases; HMACs with a key).
    pub fn variables(&mut self, plan: &Plan, vars: &[ResolvedVar]) {
        self.variables = vars
            .iter()
            .map(|v| {
                let entry = &plan.entries[v.entry];
                let mut record = json!({
                    "name": v.name,
                    "target": v.target.as_str(),
                    "backend": entry.reference.backend().scheme(),
                    "reference": entry.reference.raw,
                    "version": v.meta.version,
                    "created": v.meta.created,
                    "lease_id": v.meta.lease_id,
                });
                if plan.is_public(&v.name) {
                    // Not secret: no HMAC, so `scan` never flags a file for holding it.
                    record["public"] = Value::Bool(true);
                } else if let Some(key) = &self.key {
                    let value = v.value.expose_secret();
                    record["hmac_sha256"] = Value::String(hmac_hex(key, value));
                    record["length"] = json!(value.len());
                }
                record
            })
            .collect();
    }

    /// Records the variables a pipe bundle brought (names only: the bundle held the values).
    pub fn bundled(&mut self, vars: &[crate::bundle::BundledVar]) {
        self.variables.extend(
            vars.iter().map(
                |v| json!({ "name": v.name, "target": v.target.as_str(), "backend": "bundle" }),
            ),
        );
    }

    /// Records who each backend authenticated as (claims, roles; never a credential).
    pub fn identities(&mut self, identities: &[(Backend, Vec<(String, String)>)]) {
        for (backend, fields) in identities {
            let fields: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            self.identities
                .insert(backend.scheme().to_string(), Value::Object(fields));
        }
    }

    /// Records the files written for the command (file secrets and rendered templates), by
    /// variable and path.
    pub fn files(&mut self, files: &[(&str, PathBuf)]) {
        self.files.extend(
            files
                .iter()
                .map(|(name, path)| json!({ "name": name, "path": path.display().to_string() })),
        );
    }

    /// Records the cleanup steps and how each went.
    pub fn cleanup(&mut self, events: &[CleanupEvent]) {
        self.cleanup.extend(events.iter().cloned());
    }

    /// Appends the record. A failure is a warning: the command has already run.
    pub fn write(mut self, outcome: &Result<u8, Error>) {
        for variable in &mut self.variables {
            let Some(lease) = variable["lease_id"].as_str().map(str::to_string) else {
                continue;
            };
            let revoked = self
                .cleanup
                .iter()
                .find(|e| e.what.contains(&lease))
                .map_or(Value::Null, |e| match &e.error {
                    None => Value::String("revoked".into()),
                    Some(why) => Value::String(format!("failed: {why}")),
                });
            variable["lease_revoked"] = revoked;
        }
        let mut record = json!({
            "time": humantime::format_rfc3339_millis(self.started).to_string(),
            "stepsecret": env!("CARGO_PKG_VERSION"),
            "ci": self.job.as_ref().map(|job| {
                let mut fields: Map<String, Value> = job
                    .fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
                    .collect();
                fields.insert("provider".into(), Value::String(job.provider.into()));
                Value::Object(fields)
            }),
            "identities": self.identities,
            "variables": self.variables,
            "files": self.files,
            "cleanup": self.cleanup.iter().map(|e| json!({"what": e.what, "error": e.error})).collect::<Vec<_>>(),
            "durations_ms": self.phases,
        });
        match outcome {
            Ok(code) => record["exit_code"] = json!(code),
            Err(e) => {
                record["exit_code"] = json!(e.exit_code());
                record["error"] = Value::String(e.to_string());
            }
        }
        let mut line = record.to_string();
        line.push('\n');
        // One write call: appends from concurrent runs never interleave within a line.
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            eprintln!(
                "stepsecret: warning: cannot write the audit log {}: {e}",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_name_the_key_variable_and_the_step_variable() {
        // error.rs spells both out itself, so that it depends on no other module.
        assert!(UsageError::AuditKeyMissing.to_string().starts_with(KEY_ENV));
        let step = UsageError::ExportNeedsStep.to_string();
        assert!(step.contains(crate::bundle::STEP_ENV), "{step}");
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
