//! Pipe bundles: how a Bitbucket pipe hands secrets to a later command of the same step.
//!
//! A pipe runs in its own container and cannot change the step's environment. With
//! EXPORT_RECIPIENT set, `stepsecret pipe` resolves the secrets and writes them, age-encrypted
//! to that recipient, into the pipe's shared storage (never in plain text), bound to the step
//! (BITBUCKET_STEP_UUID) and valid for a few minutes. `stepsecret run --bundle FILE` in the same
//! step decrypts it with STEPSECRET_AGE_IDENTITY, refuses another step's or an expired bundle,
//! and deletes it once read, so it can be used once.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;
use serde_json::json;
use zeroize::Zeroizing;

use crate::env::Env;
use crate::error::{Error, Failure, SourceError, UsageError};
use crate::plan::Target;
use crate::resolve::ResolvedVar;
use crate::secret::{SecretJson, SecretValue, secret_value};

/// The variable naming the step a bundle belongs to.
pub(crate) const STEP_ENV: &str = "BITBUCKET_STEP_UUID";
/// The file name a pipe writes.
pub(crate) const FILE_NAME: &str = "stepsecret-bundle.age";
/// Where Bitbucket puts the pipes' shared storage, under the build folder: the step's own
/// script does not get BITBUCKET_PIPE_SHARED_STORAGE_DIR, only the pipes do.
const SHARED_STORAGE: &str = ".bitbucket/pipelines/generated/pipeline/pipes";

/// The pipes' shared storage folder: BITBUCKET_PIPE_SHARED_STORAGE_DIR when set (inside a
/// pipe), else its default place under BITBUCKET_CLONE_DIR (in the step's script), else under
/// the working directory.
pub(crate) fn shared_storage(env: &Env) -> PathBuf {
    if let Some(dir) = env.non_empty("BITBUCKET_PIPE_SHARED_STORAGE_DIR") {
        return PathBuf::from(dir);
    }
    env.path("BITBUCKET_CLONE_DIR")
        .unwrap_or_default()
        .join(SHARED_STORAGE)
}

/// The bundle file `given` names: a folder means the bundle in it; a path that does not exist
/// but ends in the bundle's file name (e.g. `"$BITBUCKET_PIPE_SHARED_STORAGE_DIR/stepsecret-bundle.age"`
/// typed in the step's script, where that variable is unset) is looked for in the shared storage.
fn locate(given: &Path, env: &Env) -> PathBuf {
    if given.is_dir() {
        return given.join(FILE_NAME);
    }
    if !given.exists() && given.file_name() == Some(std::ffi::OsStr::new(FILE_NAME)) {
        let fallback = shared_storage(env).join(FILE_NAME);
        if fallback.is_file() {
            return fallback;
        }
    }
    given.to_path_buf()
}
const FORMAT: &str = "stepsecret-bundle/1";

/// A variable read from a bundle.
pub struct BundledVar {
    pub name: String,
    pub target: Target,
    pub value: SecretValue,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Encrypts `vars` to `recipient` into `dir`/[`FILE_NAME`], for step `step`, valid for `ttl`.
pub(crate) fn write(
    dir: &Path,
    recipient: &str,
    step: &str,
    ttl: Duration,
    vars: &[ResolvedVar],
) -> Result<PathBuf, Error> {
    let recipient = age::x25519::Recipient::from_str(recipient.trim())
        .map_err(|_| UsageError::BadExportRecipient)?;
    let document = SecretJson::new(json!({
        "format": FORMAT,
        "step": step,
        "expires": now() + ttl.as_secs(),
        "vars": vars.iter().map(|v| json!({
            "name": v.name,
            "target": v.target.as_str(),
            "value": STANDARD.encode(v.value.expose_secret()),
        })).collect::<Vec<_>>(),
    }));
    let plaintext = Zeroizing::new(serde_json::to_vec(document.value()).expect("plain JSON"));
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|e| UsageError::CannotEncryptToExportRecipient {
                reason: e.to_string(),
            })?;
    let mut sealed = Vec::new();
    let mut writer = encryptor
        .wrap_output(&mut sealed)
        .map_err(|e| Error::io("cannot encrypt the bundle", e))?;
    writer
        .write_all(&plaintext)
        .and_then(|()| writer.finish().map(|_| ()))
        .map_err(|e| Error::io("cannot encrypt the bundle", e))?;
    let path = dir.join(FILE_NAME);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot write the bundle {}", path.display()), e))?;
    file.write_all(&sealed)
        .map_err(|e| Error::io(format!("cannot write the bundle {}", path.display()), e))?;
    Ok(path)
}

fn refused(path: &Path, error: SourceError) -> Error {
    Error::Resolve(vec![Failure {
        name: "--bundle".into(),
        reference: path.display().to_string(),
        error,
    }])
}

/// Opens a bundle for this step with the identities from the environment, and deletes it.
pub(crate) fn open(path: &Path, env: &Env) -> Result<Vec<BundledVar>, Error> {
    let located = locate(path, env);
    let path = located.as_path();
    let identities = crate::identity::from_env(env).map_err(|e| refused(path, e))?;
    let file = std::fs::File::open(path).map_err(|e| {
        refused(
            path,
            SourceError::not_found(format!(
                "cannot open the bundle: {} (the pipe writes it with EXPORT_RECIPIENT set, into the pipes' shared storage, {})",
                crate::spec::plain_io_error(&e),
                shared_storage(env).display()
            )),
        )
    })?;
    let plaintext = Zeroizing::new(
        crate::identity::decrypt(file, &identities, 0).map_err(|e| {
            refused(
                path,
                match e {
                    age::DecryptError::NoMatchingKeys => SourceError::denied(
                        "no age identity matches the bundle: it was sealed to another EXPORT_RECIPIENT",
                    ),
                    _ => SourceError::config("the bundle is damaged or not an age file"),
                },
            )
        })?,
    );
    let document = SecretJson::new(serde_json::from_slice(&plaintext).map_err(|_| {
        refused(
            path,
            SourceError::config("the bundle's content is not a stepsecret bundle"),
        )
    })?);
    let doc = document.value();
    if doc["format"] != FORMAT {
        return Err(refused(
            path,
            SourceError::config(format!("the bundle is not in the {FORMAT} format")),
        ));
    }
    let step = doc["step"].as_str().unwrap_or_default();
    let here = env.get(STEP_ENV).unwrap_or_default();
    if here.is_empty() || step != here {
        return Err(refused(
            path,
            SourceError::denied(format!(
                "the bundle belongs to step {step}, but this is {}: a bundle is only valid in the step that wrote it",
                if here.is_empty() {
                    format!("no step ({STEP_ENV} is not set)")
                } else {
                    format!("step {here}")
                }
            )),
        ));
    }
    let expires = doc["expires"].as_u64().unwrap_or(0);
    if now() > expires {
        let _ = std::fs::remove_file(path);
        return Err(refused(
            path,
            SourceError::denied(format!(
                "the bundle expired {}s ago (deleted); run the pipe again",
                now() - expires
            )),
        ));
    }
    let mut vars = Vec::new();
    for var in doc["vars"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default().to_string();
        let target = match var["target"].as_str() {
            Some("file") => Target::File,
            Some("value") => Target::Value,
            _ => Target::Env,
        };
        let Some(value) = var["value"].as_str().and_then(|v| STANDARD.decode(v).ok()) else {
            return Err(refused(
                path,
                SourceError::config(format!("the bundle's value of {name} is damaged")),
            ));
        };
        if !crate::plan::is_env_name(&name) {
            return Err(refused(
                path,
                SourceError::config("the bundle names an invalid variable"),
            ));
        }
        vars.push(BundledVar {
            name,
            target,
            value: secret_value(value),
        });
    }
    // Used once: a bundle left behind would outlive the step's need for it.
    std::fs::remove_file(path)
        .map_err(|e| Error::io(format!("cannot delete the bundle {}", path.display()), e))?;
    Ok(vars)
}
