//! The `age://` source: age-encrypted (binary or armored) dotenv or JSON files.
//!
//! The identity comes from STEPSECRET_AGE_IDENTITY (the key text, e.g. from a CI secret
//! variable) or STEPSECRET_AGE_IDENTITY_FILE (a file from `stepsecret keygen`); both are removed
//! from the command's environment. Relative paths start at the spec file's folder. Each file is
//! decrypted once per run however many variables use it (the core dedupes locations).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::{ErrorKind, SourceError};
use crate::reference::{Backend, Location};
use crate::secret::{Document, Structure};
use crate::sources::{FetchContext, Fetched, Found, Meta, SecretSource};
use crate::spec::plain_io_error;

pub use crate::identity::{IDENTITY_ENV, IDENTITY_FILE_ENV};

use crate::identity;
pub use crate::identity::{Identities, decrypt, parse_identities};

/// Decrypts age files with the identities from the environment.
pub struct AgeSource {
    base_dir: PathBuf,
    identities: Identities,
}

impl AgeSource {
    /// Reads the identity from STEPSECRET_AGE_IDENTITY or STEPSECRET_AGE_IDENTITY_FILE.
    pub fn from_env(base_dir: &Path, env: &Env) -> Result<Self, SourceError> {
        Ok(Self::with_identities(base_dir, identity::from_env(env)?))
    }

    /// A source with identities given directly (tests, bundles).
    pub fn with_identities(base_dir: &Path, identities: Identities) -> Self {
        AgeSource {
            base_dir: base_dir.to_path_buf(),
            identities,
        }
    }

    fn decrypt_file(&self, relative: &str) -> Fetched {
        let path = self.base_dir.join(relative);
        let shown = path.display();
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                SourceError::not_found(format!("no such file: {shown}"))
            }
            _ => SourceError::new(
                ErrorKind::Io,
                format!("cannot read {shown}: {}", plain_io_error(&e)),
            ),
        })?;
        let capacity = file.metadata().map_or(0, |m| m.len() as usize);
        let plaintext = decrypt(file, &self.identities, capacity)
            .map_err(|e| describe(e, &shown.to_string()))?;
        Ok(Found {
            document: Document::raw(plaintext, Structure::JsonOrDotenv),
            meta: Meta::default(),
        })
    }
}

fn describe(e: age::DecryptError, path: &str) -> SourceError {
    match e {
        age::DecryptError::NoMatchingKeys => SourceError::denied(format!(
            "no age identity matches {path}: it was sealed to other recipients (check {IDENTITY_FILE_ENV} / {IDENTITY_ENV})"
        )),
        age::DecryptError::Io(io) => SourceError::config(format!(
            "{path} is not a complete age file ({}): seal it again with `stepsecret seal`",
            plain_io_error(&io)
        )),
        age::DecryptError::ExcessiveWork { .. } => SourceError::config(format!(
            "{path} is passphrase-encrypted; seal it to a recipient with `stepsecret seal -r age1...`"
        )),
        _ => SourceError::config(format!(
            "{path} is not a valid age file (damaged or truncated): seal it again with `stepsecret seal`"
        )),
    }
}

impl SecretSource for AgeSource {
    fn backend(&self) -> Backend {
        Backend::Age
    }

    fn fetch(&self, batch: &[Location], _cx: &FetchContext) -> Result<Vec<Fetched>, SourceError> {
        Ok(batch
            .iter()
            .map(|location| match location {
                Location::Age(age) => self.decrypt_file(&age.path),
                other => Err(SourceError::internal(format!(
                    "the age source was given {other}"
                ))),
            })
            .collect())
    }

    fn consumed_env(&self) -> Vec<String> {
        vec![IDENTITY_ENV.to_string(), IDENTITY_FILE_ENV.to_string()]
    }
}
