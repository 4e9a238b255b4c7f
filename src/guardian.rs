//! The guardian: cleanup that survives a SIGKILL of stepsecret itself.
//!
//! A SIGKILL runs no destructor, so file secrets would stay on /dev/shm until reboot. When a
//! run writes file secrets, stepsecret starts a copy of itself (`stepsecret __guard`) in its own
//! session, so a signal to stepsecret's process group does not reach it, and keeps the write
//! end of a pipe to its stdin. The guardian waits for that pipe to close. If stepsecret said
//! `done` first, it exits; if the pipe closed without it (stepsecret died), it removes what it
//! was told to watch. Together with the command's parent-death signal (see `child.rs`), a
//! killed run leaves neither files nor a running command behind.
//!
//! The same holds for what a source must undo: the Vault source hands the guardian its login
//! token and leases, so a killed run's token and dynamic secrets are revoked at once instead of
//! living until their TTL.
//!
//! The protocol is one JSON object per line on the guardian's stdin:
//! `{"dir": "/dev/shm/stepsecret-x"}` to watch a directory, `{"vault": {...}}` to revoke, and
//! `{"done": true}` to stand down. The pipe is private to the two processes; nothing in it is
//! ever printed.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde::{Deserialize, Serialize};

/// The hidden subcommand the guardian runs as.
pub const SUBCOMMAND: &str = "__guard";

/// When set, runs go without a guardian and the command survives stepsecret (only to measure
/// what a SIGKILL leaves behind without them).
pub const DISABLE_ENV: &str = "STEPSECRET_UNGUARDED";

/// One instruction to the guardian.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Message {
    /// Remove this directory if stepsecret dies.
    Dir(PathBuf),
    /// Revoke these Vault leases and token if stepsecret dies.
    Vault(VaultCleanup),
    /// Cleanup was done by stepsecret; exit without touching anything.
    Done(bool),
}

/// What the guardian needs to revoke a run's Vault leases and login token on its own.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
pub struct VaultCleanup {
    pub address: String,
    pub namespace: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The token the leases were created with (wiped on drop).
    pub token: String,
    /// Revoke the token itself (a login token; never one the user supplied).
    pub revoke_token: bool,
    pub leases: Vec<String>,
}

impl Drop for VaultCleanup {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

impl std::fmt::Debug for VaultCleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultCleanup")
            .field("address", &self.address)
            .field("revoke_token", &self.revoke_token)
            .field("leases", &self.leases)
            .finish_non_exhaustive()
    }
}

/// stepsecret's handle on its guardian.
pub struct Guardian {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guardian {
    /// Starts the guardian, detached into its own session.
    pub fn start() -> std::io::Result<Guardian> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg(SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .env_clear();
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        Ok(Guardian { child, stdin })
    }

    /// Asks the guardian to remove `dir` should stepsecret die.
    pub fn watch_dir(&mut self, dir: &Path) -> std::io::Result<()> {
        self.send(&Message::Dir(dir.to_path_buf()))
    }

    pub fn send(&mut self, message: &Message) -> std::io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
        line.push(b'\n');
        stdin.write_all(&line)
    }
}

impl Drop for Guardian {
    /// Dropping means stepsecret is alive and running its own destructors (which remove the
    /// files), so the guardian stands down.
    fn drop(&mut self) {
        let _ = self.send(&Message::Done(true));
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// The guardian's own main loop: read instructions until EOF, then clean up unless told the
/// run finished normally. Returns the exit code.
pub fn run() -> u8 {
    // Signals meant for the run must not stop the cleanup: only the pipe decides.
    // SAFETY: setting dispositions to SIG_IGN before any other thread exists.
    unsafe {
        for signal in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut vault: Vec<VaultCleanup> = Vec::new();
    let mut done = false;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = zeroize::Zeroizing::new(line);
        match serde_json::from_str::<Message>(&line) {
            Ok(Message::Dir(dir)) => dirs.push(dir),
            Ok(Message::Vault(cleanup)) => vault.push(cleanup),
            Ok(Message::Done(flag)) => done = flag,
            Err(_) => {}
        }
    }
    if done {
        return 0;
    }
    for cleanup in vault {
        revoke_vault(cleanup);
    }
    for dir in dirs {
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!(
                "stepsecret: guardian: the run ended without cleaning up; removed {}",
                dir.display()
            );
        }
    }
    0
}

#[cfg(feature = "vault")]
fn revoke_vault(cleanup: VaultCleanup) {
    for event in crate::sources::vault::revoke_orphaned(cleanup) {
        match event.error {
            None => eprintln!(
                "stepsecret: guardian: the run ended without cleaning up; {} done",
                event.what
            ),
            Some(e) => eprintln!("stepsecret: guardian: {} failed: {e}", event.what),
        }
    }
}

#[cfg(not(feature = "vault"))]
fn revoke_vault(_cleanup: VaultCleanup) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_json_object_per_line() {
        let json = serde_json::to_string(&Message::Dir("/dev/shm/x".into())).unwrap();
        assert_eq!(json, r#"{"dir":"/dev/shm/x"}"#);
        assert_eq!(
            serde_json::to_string(&Message::Done(true)).unwrap(),
            r#"{"done":true}"#
        );
    }
}
