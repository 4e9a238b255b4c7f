//! The two things a run does between `fork` and `exec`: the only `unsafe` code in stepsecret.
//!
//! `CommandExt::pre_exec` is unsafe because its closure runs in the forked child of a
//! multi-threaded process, where only async-signal-safe work is allowed: no allocation, no
//! lock, nothing that touches memory another thread may have been changing. Both hooks here
//! make raw system calls through rustix (no libc wrapper state, no allocation) and build their
//! errors from an errno, which `io::Error` stores inline.

#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::io::Errno;
use rustix::process::{Pid, Signal, getppid, set_parent_process_death_signal, setsid};

/// Kills the command with SIGKILL if stepsecret dies (a SIGKILL of stepsecret runs none of
/// its cleanup, and the command holds the secrets). `parent` is stepsecret's pid: if it died
/// before the hook ran, the command does not start.
pub(crate) fn die_with_parent(cmd: &mut Command, parent: Pid) {
    // SAFETY: the closure only makes two raw system calls (prctl, getppid) and builds an
    // `io::Error` from an errno, which does not allocate; it captures a `Pid` by copy.
    unsafe {
        cmd.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL)).map_err(io::Error::from)?;
            if getppid() != Some(parent) {
                // The parent died before the prctl took effect.
                return Err(io::Error::from(Errno::SRCH));
            }
            Ok(())
        });
    }
}

/// Starts the process in a session of its own, so that neither a signal to stepsecret's
/// process group nor the terminal's hang-up reaches it (the guardian).
pub(crate) fn new_session(cmd: &mut Command) {
    // SAFETY: the closure only makes one raw system call (setsid) and builds an `io::Error`
    // from an errno, which does not allocate.
    unsafe {
        cmd.pre_exec(|| setsid().map(drop).map_err(io::Error::from));
    }
}
