//! The process environment, read once.
//!
//! `main` takes one [`Env`] snapshot before any work and hands it down: to the plan, the
//! sources, the CI token lookup, the audit log and the run. Nothing else in the crate reads
//! (or ever writes) the process environment, so a test or a wrapper builds the environment it
//! wants with [`Env::from_vars`] or [`Env::with`] instead of mutating the process's, which is
//! unsound once threads exist.
//!
//! Values here may be secrets (tokens, keys): `Env`'s `Debug` shows variable names only.
//!
//! Two readers stay outside on purpose: clap's `env = "..."` attributes, which are part of
//! what the user typed and are parsed with the flags, and the AWS SDK's default credential
//! chain (profiles, SSO, container and instance metadata), which reads the process
//! environment itself; stepsecret passes the SDK what it read here explicitly (region,
//! static credentials, endpoint).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// An immutable snapshot of environment variables; clones share it.
#[derive(Clone, Default)]
pub struct Env {
    vars: Arc<BTreeMap<OsString, OsString>>,
}

impl Env {
    /// The process environment as it is now. Called once, by `main`.
    pub fn capture() -> Env {
        Env::from_vars(std::env::vars_os())
    }

    /// An environment holding exactly `vars` (tests, the guardian, wrappers).
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Env
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Env {
            vars: Arc::new(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// This environment with `name` set to `value` (the snapshot itself is unchanged).
    pub fn with(&self, name: impl Into<OsString>, value: impl Into<OsString>) -> Env {
        let mut vars = (*self.vars).clone();
        vars.insert(name.into(), value.into());
        Env {
            vars: Arc::new(vars),
        }
    }

    /// The variable as text, when it is set and valid UTF-8 (like `std::env::var(..).ok()`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_os(name)?.to_str()
    }

    /// The variable as the OS gave it, when set.
    pub fn get_os(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    /// Whether the variable is set at all (even empty).
    pub fn is_set(&self, name: &str) -> bool {
        self.vars.contains_key(OsStr::new(name))
    }

    /// The variable as text when it holds something besides whitespace.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// The variable as a path, when set (and, for text, not blank).
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.get_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// The home directory (HOME).
    pub fn home(&self) -> Option<PathBuf> {
        self.path("HOME")
    }

    /// The running stepsecret binary (to start the guardian as a copy of itself). Not a
    /// variable, but read from the process like one, so it is read here too.
    pub fn current_exe() -> std::io::Result<PathBuf> {
        std::env::current_exe()
    }

    /// The working directory the command will run in (fixed-path files are relative to it).
    /// Not a variable either, and read here for the same reason.
    pub fn current_dir() -> std::io::Result<PathBuf> {
        std::env::current_dir()
    }

    /// Where temporary files go: TMPDIR, else /tmp (what `std::env::temp_dir` does on Unix).
    pub fn temp_dir(&self) -> PathBuf {
        self.path("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp"))
    }
}

impl fmt::Debug for Env {
    /// Names only: values may be credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("vars", &self.vars.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_overlays_leave_the_snapshot_alone() {
        let env = Env::from_vars([("A", "1"), ("BLANK", "  "), ("TMPDIR", "/var/tmp")]);
        assert_eq!(env.get("A"), Some("1"));
        assert_eq!(env.non_empty("BLANK"), None);
        assert!(env.is_set("BLANK"));
        assert_eq!(env.temp_dir(), PathBuf::from("/var/tmp"));
        let more = env.with("B", "2");
        assert_eq!(more.get("B"), Some("2"));
        assert_eq!(env.get("B"), None);
        assert_eq!(Env::default().temp_dir(), PathBuf::from("/tmp"));
    }

    #[test]
    fn debug_never_shows_a_value() {
        let env = Env::from_vars([("VAULT_TOKEN", "s.very-secret")]);
        let shown = format!("{env:?}");
        assert!(!shown.contains("very-secret") && !shown.contains("VAULT_TOKEN"));
    }
}
