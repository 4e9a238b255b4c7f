//! Running the command: its environment, its output pumps, its exit status.
//!
//! The command inherits stdin untouched. When redacting, its stdout and stderr are pipes, each
//! drained by one pump thread through an [`OutputWriter`] straight to our fd 1 / fd 2
//! (unbuffered, so a prompt without a newline shows at once); when fd 1 and fd 2 are the same
//! file, the two writers mask one stream (see [`Redactor::output_writers`]). The exit code is the command's,
//! or 128+N when signal N killed it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, WaitId, WaitIdOptions};
use zeroize::Zeroize;

use super::pre_exec;
use super::signals::Signals;
use crate::error::{Error, UsageError, exit};
use crate::redact::{OutputWriter, Redactor};

/// How long the pumps wait for more output once the command has exited and the pipes are idle:
/// a background process it left behind may hold them open forever.
const DRAIN_IDLE: Duration = Duration::from_millis(100);
/// The most the pumps keep relaying after the command has exited.
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// Pipe capacity asked for, so a chatty command rarely blocks on us.
const PIPE_SIZE: usize = 1 << 20;

/// What to run and with what.
pub(crate) struct Launch<'a> {
    pub(crate) command: &'a [OsString],
    /// Variables to set (values may be secrets) and to remove (credentials stepsecret
    /// consumed).
    pub(crate) env: super::env::ChildEnv<'a>,
    /// Mask the command's output with this, or let it write to our stdout/stderr directly.
    pub(crate) redactor: Option<Arc<Redactor>>,
    /// Kill the command if stepsecret itself dies (SIGKILL runs no cleanup of ours).
    pub(crate) die_with_parent: bool,
}

/// Runs the command to completion and returns the exit code to pass on.
pub(crate) fn run(launch: Launch<'_>, signals: &Signals) -> Result<u8, Error> {
    let (program, args) = launch
        .command
        .split_first()
        .ok_or(Error::Usage(UsageError::NoCommand))?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::inherit());
    for name in &launch.env.remove {
        cmd.env_remove(name);
    }
    for (name, value) in &launch.env.set {
        cmd.env(name, OsStr::from_bytes(value));
    }
    if launch.redactor.is_some() {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    // The command holds the secrets: if stepsecret is killed outright, it goes too.
    if launch.die_with_parent {
        pre_exec::die_with_parent(&mut cmd, rustix::process::getpid());
    }
    let spawned = cmd.spawn();
    // The Command holds copies of the values; drop them as soon as the child has its own.
    drop(cmd);
    let mut child = spawned.map_err(|e| spawn_error(program, &e))?;
    signals.attach(Pid::from_child(&child));

    let exited: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let mut pumps: Vec<JoinHandle<io::Result<()>>> = Vec::new();
    if let Some(redactor) = &launch.redactor {
        let sinks = [
            io::stdout().as_fd().try_clone_to_owned(),
            io::stderr().as_fd().try_clone_to_owned(),
        ];
        let writers = redactor.output_writers(sinks.map(|s| s.ok().map(File::from)));
        let sources = [
            child.stdout.take().map(OwnedFd::from),
            child.stderr.take().map(OwnedFd::from),
        ];
        for (source, writer) in sources.into_iter().zip(writers) {
            let (Some(source), Some(writer)) = (source, writer) else {
                continue;
            };
            let exited = Arc::clone(&exited);
            let pump = std::thread::Builder::new()
                .name("pump".into())
                .spawn(move || pump(source, writer, &exited))
                .map_err(|e| Error::os("cannot start an output thread", e))?;
            pumps.push(pump);
        }
    }

    // Wait without reaping, stop forwarding, then reap: a signal can never reach a recycled pid.
    wait_for_exit(Pid::from_child(&child));
    signals.detach();
    let status = child
        .wait()
        .map_err(|e| Error::os("cannot wait for the command", e))?;
    let _ = exited.set(Instant::now());
    for pump in pumps {
        match pump.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("stepsecret: warning: output was cut short: {e}"),
            Err(_) => eprintln!("stepsecret: warning: an output thread panicked"),
        }
    }
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.wrapping_add(signal as u8),
        (None, None) => exit::SOFTWARE,
    })
}

fn spawn_error(program: &OsStr, e: &io::Error) -> Error {
    let program = program.to_string_lossy().into_owned();
    let (reason, code) = match e.kind() {
        io::ErrorKind::NotFound => ("command not found".to_string(), exit::NOT_FOUND),
        io::ErrorKind::PermissionDenied => ("permission denied".to_string(), exit::CANNOT_EXECUTE),
        _ => (crate::spec::plain_io_error(e), exit::CANNOT_EXECUTE),
    };
    Error::Spawn {
        program,
        reason,
        code,
    }
}

/// Blocks until `pid` has exited, leaving it to be reaped.
fn wait_for_exit(pid: Pid) {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
    while let Err(Errno::INTR) = rustix::process::waitid(WaitId::Pid(pid), options) {}
}

/// Copies `source` through `writer` (the redactor) until EOF, or until the pipe has been idle
/// for a moment after the command exited.
fn pump(source: OwnedFd, mut writer: OutputWriter, exited: &OnceLock<Instant>) -> io::Result<()> {
    // Failure only means the default size stays.
    let _ = rustix::pipe::fcntl_setpipe_size(&source, PIPE_SIZE);
    let mut source = File::from(source);
    let mut buf = vec![0u8; 1 << 18];
    let result = loop {
        if !readable(&source, Duration::from_millis(50)) {
            // 50 ms without output: a held tail under 4 bytes (a prompt's end) goes out.
            if let Err(e) = writer.idle() {
                break if e.kind() == io::ErrorKind::BrokenPipe {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            match exited.get() {
                Some(at) if at.elapsed() >= DRAIN_IDLE => break Ok(()),
                _ => continue,
            }
        }
        let n = match source.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        if let Err(e) = writer.write_all(&buf[..n]) {
            // Our reader went away (e.g. `| head`): stop reading so the command sees EPIPE.
            break if e.kind() == io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(e)
            };
        }
        if exited.get().is_some_and(|at| at.elapsed() >= DRAIN_MAX) {
            break Ok(());
        }
    };
    buf.zeroize();
    let finished = writer.finish().map(drop);
    result.and(finished.or_else(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    }))
}

/// Whether `file` has data (or EOF) within `timeout`. A poll cut short by a signal (EINTR)
/// is "not yet": the caller checks its drain limits and polls again. Any other failure is
/// "readable", so the read that follows reports it.
fn readable(file: &File, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(file, PollFlags::IN)];
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    });
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(ready) => ready > 0,
        Err(Errno::INTR) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_errors_use_shell_conventions() {
        let e = spawn_error(
            OsStr::new("nope"),
            &io::Error::from(io::ErrorKind::NotFound),
        );
        assert_eq!(e.exit_code(), 127);
        let e = spawn_error(
            OsStr::new("x"),
            &io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.exit_code(), 126);
    }
}
