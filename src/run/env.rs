//! The command's environment: the variables stepsecret sets for it and the credentials it
//! keeps from it. Everything else the command inherits from stepsecret unchanged.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::plan::Target;

/// Credentials that are never passed to the command, whichever sources ran: the age identity,
/// an OIDC token minted for stepsecret by a wrapper, and the audit log's HMAC key.
pub(crate) const ALWAYS_REMOVED: [&str; 4] = [
    crate::identity::IDENTITY_ENV,
    crate::identity::IDENTITY_FILE_ENV,
    crate::ci::STEPSECRET_OIDC_TOKEN,
    crate::audit::KEY_ENV,
];

/// One secret for the command: its name, where it goes, its value.
pub(crate) type Secret<'a> = (&'a str, Target, &'a [u8]);

/// What the command's environment gets and loses.
#[derive(Default)]
pub(crate) struct ChildEnv<'a> {
    /// Variables to set; values may be secrets (or, for file secrets, their paths).
    pub(crate) set: Vec<(&'a str, &'a [u8])>,
    /// Variables to remove.
    pub(crate) remove: Vec<String>,
}

impl<'a> ChildEnv<'a> {
    /// Env secrets by value, file secrets by the path they were written to, and without
    /// [`ALWAYS_REMOVED`] or the credentials the sources `consumed`.
    pub(crate) fn new(
        secrets: &[Secret<'a>],
        files: &'a [(&'a str, PathBuf)],
        consumed: Vec<String>,
    ) -> ChildEnv<'a> {
        let mut remove: BTreeSet<String> = ALWAYS_REMOVED.iter().map(|s| s.to_string()).collect();
        remove.extend(consumed);
        let mut set: Vec<(&str, &[u8])> = secrets
            .iter()
            .filter(|(_, target, _)| *target == Target::Env)
            .map(|(name, _, value)| (*name, *value))
            .collect();
        set.extend(
            files
                .iter()
                .map(|(name, path)| (*name, path.as_os_str().as_encoded_bytes())),
        );
        ChildEnv {
            set,
            remove: remove.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_and_files_are_set_by_path() {
        let secrets: [Secret<'_>; 2] = [("A", Target::Env, b"one"), ("F", Target::File, b"two")];
        let files = [("F", PathBuf::from("/dev/shm/x/F"))];
        let env = ChildEnv::new(&secrets, &files, vec!["VAULT_TOKEN".into()]);
        assert_eq!(env.set, [("A", &b"one"[..]), ("F", &b"/dev/shm/x/F"[..])]);
        assert!(env.remove.contains(&"VAULT_TOKEN".to_string()));
        assert!(env.remove.contains(&"STEPSECRET_AGE_IDENTITY".to_string()));
    }
}
