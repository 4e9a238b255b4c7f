//! age identities from the environment (STEPSECRET_AGE_IDENTITY, the key text, or
//! STEPSECRET_AGE_IDENTITY_FILE, a file from `stepsecret keygen`), for `age://` files and
//! pipe bundles, and decryption with them. Errors never echo the key.

// Public through the age source (`sources::age`); crate-only in a build without it.
#![cfg_attr(not(feature = "age-source"), allow(unreachable_pub))]

use std::io::{BufReader, Read};
use std::path::PathBuf;

use age::armor::ArmoredReader;

use zeroize::Zeroizing;

use crate::env::Env;
use crate::error::SourceError;
use crate::spec::plain_io_error;

/// The variable holding an age identity's text (for `age://` and bundles).
pub const IDENTITY_ENV: &str = "STEPSECRET_AGE_IDENTITY";
/// The variable holding the path of an age identity file.
pub const IDENTITY_FILE_ENV: &str = "STEPSECRET_AGE_IDENTITY_FILE";

/// Decryption identities.
pub type Identities = Vec<Box<dyn age::Identity + Send + Sync>>;

/// The identities the environment names.
pub(crate) fn from_env(env: &Env) -> Result<Identities, SourceError> {
    let text = env.get(IDENTITY_ENV).map(|t| Zeroizing::new(t.to_string()));
    let file = env.get_os(IDENTITY_FILE_ENV).map(PathBuf::from);
    match (text, file) {
        (Some(text), _) => parse_identities(text.as_bytes(), IDENTITY_ENV),
        (None, Some(path)) => {
            let bytes = std::fs::read(&path).map(Zeroizing::new).map_err(|e| {
                SourceError::config(format!(
                    "cannot read {IDENTITY_FILE_ENV}={}: {}",
                    path.display(),
                    plain_io_error(&e)
                ))
            })?;
            parse_identities(&bytes, IDENTITY_FILE_ENV)
        }
        (None, None) => Err(SourceError::config(format!(
            "no age identity: set {IDENTITY_FILE_ENV} to a key file (from `stepsecret keygen`) or {IDENTITY_ENV} to the key text"
        ))),
    }
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
