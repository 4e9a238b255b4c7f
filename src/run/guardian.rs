//! The guardian: cleanup that survives a SIGKILL of stepsecret itself.
//!
//! A SIGKILL runs no destructor, so file secrets would stay on /dev/shm until reboot, and a
//! login token or a dynamic secret would stay valid until its TTL. When a run has something to
//! undo, stepsecret starts a copy of itself (`stepsecret __guard`) in its own session, so a
//! signal to stepsecret's process group does not reach it, and keeps the write end of a pipe
//! to its stdin. The guardian waits for that pipe to close. If stepsecret said `done` first, it
//! exits; if the pipe closed without it (stepsecret died), it undoes what it was told.
//! Together with the command's parent-death signal (see [`super::pre_exec`]), a killed run
//! leaves neither files, tokens, leases nor a running command behind.
//!
//! The protocol is one JSON object per line, backend-neutral: [`Message::Watch`] a path to
//! remove, [`Message::Revoke`] a source's own payload (handed back to that source by
//! `sources::revoke_orphaned`; the guardian never knows what is in it), and
//! [`Message::Done`] to stand down. The pipe is private to the two processes; nothing in it is
//! ever printed.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::pre_exec;
use super::secret_files::Created;
use super::signals::FORWARDED;
use crate::cleanup::Orphan;

/// The hidden subcommand the guardian runs as.
pub(crate) const SUBCOMMAND: &str = "__guard";

/// When set, runs go without a guardian and the command survives stepsecret (only to measure
/// what a SIGKILL leaves behind without them).
pub(crate) const DISABLE_ENV: &str = "STEPSECRET_UNGUARDED";

/// One instruction to the guardian.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Message {
    /// Remove this file or directory (with everything in it) if stepsecret dies.
    Watch(PathBuf),
    /// Remove this file (or empty folder) at a chosen path if stepsecret dies and it is still
    /// the one stepsecret created.
    Created(Created),
    /// Have its source undo this (revoke a token, leases) if stepsecret dies.
    Revoke(Orphan),
    /// Cleanup was done by stepsecret; exit without touching anything.
    Done,
}

/// stepsecret's handle on its guardian. Dropping it tells the guardian to stand down, so it
/// must be dropped only once stepsecret's own cleanup is done.
pub(crate) struct Guardian {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guardian {
    /// Starts the guardian, detached into its own session, with an empty environment.
    pub(crate) fn start() -> std::io::Result<Guardian> {
        let exe = crate::env::Env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg(SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .env_clear();
        pre_exec::new_session(&mut cmd);
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        Ok(Guardian { child, stdin })
    }

    /// Sends one instruction.
    pub(crate) fn send(&mut self, message: &Message) -> std::io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        let mut line =
            zeroize::Zeroizing::new(serde_json::to_vec(message).map_err(std::io::Error::other)?);
        line.push(b'\n');
        stdin.write_all(&line)
    }

    /// Asks the guardian to remove `path` should stepsecret die.
    pub(crate) fn watch(&mut self, path: &Path) -> std::io::Result<()> {
        self.send(&Message::Watch(path.to_path_buf()))
    }
}

impl Drop for Guardian {
    /// Dropping means stepsecret is alive and has run its own cleanup, so the guardian stands
    /// down.
    fn drop(&mut self) {
        let _ = self.send(&Message::Done);
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// The guardian's own main loop: read instructions until EOF, then clean up unless told the
/// run finished normally. Returns the exit code.
pub(crate) fn run() -> u8 {
    // Signals meant for the run must not stop the cleanup: only the pipe decides. Each is
    // caught into a flag nobody reads, which keeps it from ending the process.
    let caught = Arc::new(AtomicBool::new(false));
    for signal in FORWARDED {
        let _ = signal_hook::flag::register(signal, Arc::clone(&caught));
    }
    let mut watched: Vec<PathBuf> = Vec::new();
    let mut orphans: Vec<Orphan> = Vec::new();
    let mut created: Vec<Created> = Vec::new();
    let mut done = false;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = zeroize::Zeroizing::new(line);
        match serde_json::from_str::<Message>(&line) {
            Ok(Message::Watch(path)) => watched.push(path),
            Ok(Message::Revoke(orphan)) => orphans.push(orphan),
            Ok(Message::Created(c)) => created.push(c),
            Ok(Message::Done) => done = true,
            Err(_) => {}
        }
    }
    if done {
        return 0;
    }
    for orphan in &orphans {
        for event in crate::sources::revoke_orphaned(orphan) {
            match event.error {
                None => eprintln!(
                    "stepsecret: guardian: the run ended without cleaning up; {} done",
                    event.what
                ),
                Some(e) => eprintln!("stepsecret: guardian: {} failed: {e}", event.what),
            }
        }
    }
    // Newest first: a file before the folders made for it.
    for c in created.iter().rev() {
        if c.remove() {
            eprintln!(
                "stepsecret: guardian: the run ended without cleaning up; removed {}",
                c.path.display()
            );
        }
    }
    for path in watched {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if removed.is_ok() {
            eprintln!(
                "stepsecret: guardian: the run ended without cleaning up; removed {}",
                path.display()
            );
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Backend;

    #[test]
    fn messages_are_one_json_object_per_line() {
        let json = serde_json::to_string(&Message::Watch("/dev/shm/x".into())).unwrap();
        assert_eq!(json, r#"{"watch":"/dev/shm/x"}"#);
        assert_eq!(serde_json::to_string(&Message::Done).unwrap(), r#""done""#);
        let revoke = Message::Revoke(Orphan {
            backend: Backend::Vault,
            payload: "{}".into(),
        });
        let json = serde_json::to_string(&revoke).unwrap();
        assert_eq!(json, r#"{"revoke":{"backend":"vault","payload":"{}"}}"#);
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), revoke);
    }
}
