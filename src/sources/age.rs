//! The `age://` source: age-encrypted (binary or armored) dotenv or JSON files.
//!
//! The identity comes from STEPSECRET_AGE_IDENTITY (the key text, e.g. from a CI secret
//! variable) or STEPSECRET_AGE_IDENTITY_FILE (a file from `stepsecret keygen`); both are removed
//! from the command's environment. Relative paths start at the spec file's folder. Each file is
//! decrypted once per run however many variables use it (the core dedupes locations).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use age::armor::ArmoredReader;
use zeroize::Zeroizing;

use crate::error::{ErrorKind, SourceError};
use crate::reference::{Backend, Location};
use crate::secret::{Document, Structure};
use crate::sources::{FetchContext, Fetched, Found, Meta, SecretSource};
use crate::spec::plain_io_error;

pub use crate::sources::{
    AGE_IDENTITY_ENV as IDENTITY_ENV, AGE_IDENTITY_FILE_ENV as IDENTITY_FILE_ENV,
};

type Identities = Vec<Box<dyn age::Identity + Send + Sync>>;

/// Decrypts age files with the identities from the environment.
pub struct AgeSource {
    base_dir: PathBuf,
    identities: Identities,
}

impl AgeSource {
    /// Reads the identity from STEPSECRET_AGE_IDENTITY or STEPSECRET_AGE_IDENTITY_FILE.
    pub fn from_env(base_dir: &Path) -> Result<Self, SourceError> {
        let text = std::env::var(IDENTITY_ENV).ok().map(Zeroizing::new);
        let file = std::env::var_os(IDENTITY_FILE_ENV).map(PathBuf::from);
        let identities = match (text, file) {
            (Some(text), _) => parse_identities(text.as_bytes(), IDENTITY_ENV)?,
            (None, Some(path)) => {
                let bytes = std::fs::read(&path).map(Zeroizing::new).map_err(|e| {
                    SourceError::config(format!(
                        "cannot read {IDENTITY_FILE_ENV}={}: {}",
                        path.display(),
                        plain_io_error(&e)
                    ))
                })?;
                parse_identities(&bytes, IDENTITY_FILE_ENV)?
            }
            (None, None) => {
                return Err(SourceError::config(format!(
                    "no age identity: set {IDENTITY_FILE_ENV} to a key file (from `stepsecret keygen`) or {IDENTITY_ENV} to the key text"
                )));
            }
        };
        Ok(Self::with_identities(base_dir, identities))
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

/// Decrypts one age stream (binary or armored). The plaintext buffer is sized up front so it
/// never reallocates and leaves unzeroized copies behind.
pub fn decrypt(
    input: impl Read,
    identities: &Identities,
    capacity: usize,
) -> Result<Vec<u8>, age::DecryptError> {
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(BufReader::new(input)))?;
    let mut reader =
        decryptor.decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))?;
    let mut plaintext = Zeroizing::new(Vec::with_capacity(capacity));
    reader.read_to_end(&mut plaintext)?;
    Ok(std::mem::take(&mut *plaintext))
}

/// Parses identity text; the error never echoes it.
pub fn parse_identities(text: &[u8], from: &str) -> Result<Identities, SourceError> {
    let bad = || {
        SourceError::config(format!(
            "{from} is not an age identity (expected a line starting with AGE-SECRET-KEY-1, as written by `stepsecret keygen`)"
        ))
    };
    let identities = age::IdentityFile::from_buffer(text)
        .map_err(|_| bad())?
        .into_identities()
        .map_err(|_| bad())?;
    if identities.is_empty() {
        return Err(bad());
    }
    Ok(identities)
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
