//! Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT are caught from the start of a run.
//!
//! Before the command starts, a signal stops the run (nothing is spawned, cleanup runs). Once
//! it runs, each signal is forwarded to it, and a second SIGINT or SIGTERM kills it outright.
//! A signal the terminal sent to the whole foreground process group (Ctrl-C, Ctrl-\) already
//! reached the command, so it is counted but not sent twice.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rustix::process::{Pid, Signal, kill_process};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::{Handle, SignalsInfo};
use signal_hook::low_level::siginfo::Cause;

/// The signals a run catches.
pub(crate) const FORWARDED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

#[derive(Default)]
struct State {
    /// The command's pid while it runs.
    child: Option<Pid>,
    /// The first signal received, if any.
    first: Option<i32>,
    /// Signals received before the command started, to deliver if it starts anyway.
    early: Vec<i32>,
    /// SIGINT/SIGTERM received while the command ran.
    stops: u32,
}

/// Catches the signals of a run until dropped.
pub(crate) struct Signals {
    state: Arc<Mutex<State>>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Signals {
    /// Starts catching [`FORWARDED`] signals.
    pub(crate) fn install() -> std::io::Result<Signals> {
        let mut info = SignalsInfo::<WithOrigin>::new(FORWARDED)?;
        let handle = info.handle();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for origin in info.forever() {
                    let from_terminal = matches!(origin.cause, Cause::Kernel);
                    deliver(&mut lock(&shared), origin.signal, from_terminal);
                }
            })?;
        Ok(Signals {
            state,
            handle,
            thread: Some(thread),
        })
    }

    /// The first signal received so far.
    pub(crate) fn received(&self) -> Option<i32> {
        lock(&self.state).first
    }

    /// Starts forwarding to `pid`, delivering anything that arrived since the last check.
    pub(crate) fn attach(&self, pid: Pid) {
        let mut state = lock(&self.state);
        state.child = Some(pid);
        for signal in std::mem::take(&mut state.early) {
            deliver(&mut state, signal, false);
        }
    }

    /// Stops forwarding (the command has exited).
    pub(crate) fn detach(&self) {
        lock(&self.state).child = None;
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn deliver(state: &mut State, signal: i32, from_terminal: bool) {
    state.first.get_or_insert(signal);
    let Some(pid) = state.child else {
        state.early.push(signal);
        return;
    };
    // The pid is our own child, which has not been reaped yet (detach runs before the wait's
    // result is used), so it cannot have been recycled.
    if !from_terminal && let Some(signal) = Signal::from_named_raw(signal) {
        let _ = kill_process(pid, signal);
    }
    if signal == SIGINT || signal == SIGTERM {
        state.stops += 1;
        if state.stops >= 2 {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
