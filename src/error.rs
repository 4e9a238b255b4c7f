//! Errors, and the one table that maps them to exit codes.
//!
//! Every failure before the command starts ends the run with one of the sysexits-style codes
//! below and no child process. Messages name the variable and the reference that failed and say
//! what to fix; they never contain a secret value, so every constructor here takes only text that
//! was written by stepsecret itself or copied from the user's spec.

use std::fmt;

/// The documented exit codes. The command's own exit code is passed through unchanged, and a
/// command killed by signal N gives 128+N, so these are only stepsecret's own failures.
pub mod exit {
    /// Bad flags or a missing command.
    pub const USAGE: u8 = 64;
    /// A secret, key, file or server was not found or could not be reached, or its backend is
    /// not built into this binary.
    pub const UNAVAILABLE: u8 = 69;
    /// A bug in stepsecret.
    pub const SOFTWARE: u8 = 70;
    /// The operating system refused something stepsecret needs (temp files, pipes, threads).
    pub const OSERR: u8 = 71;
    /// Reading or writing a local file failed.
    pub const IOERR: u8 = 74;
    /// Gave up after retries, or the overall deadline passed.
    pub const TEMPFAIL: u8 = 75;
    /// A secret's current value is older than the allowed maximum age (`--max-age`).
    pub const DATAERR: u8 = 65;
    /// Permission denied: a 403, a login refused, or an age identity that does not match.
    pub const NOPERM: u8 = 77;
    /// The spec, a reference or a backend setting is invalid.
    pub const CONFIG: u8 = 78;
    /// The command exists but could not be executed.
    pub const CANNOT_EXECUTE: u8 = 126;
    /// The command was not found.
    pub const NOT_FOUND: u8 = 127;
}

/// Prints a warning line on stderr. A warning never changes the exit code; like an error, it
/// never holds a secret value.
pub(crate) fn warn(message: impl fmt::Display) {
    eprintln!("stepsecret: warning: {message}");
}

/// What kind of failure a backend reported; each kind has one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The secret, the key inside it, or the file does not exist (69).
    NotFound,
    /// The server could not be reached, answered garbage, or the backend is not built in (69).
    Unavailable,
    /// The server or the key material refused access (77).
    Denied,
    /// Retries ran out or the deadline passed (75).
    GaveUp,
    /// A backend setting or a reference is invalid (78).
    Config,
    /// A local file could not be read or written (74).
    Io,
    /// A bug (70).
    Internal,
    /// The value is older than the allowed maximum age (65).
    Stale,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::NotFound | ErrorKind::Unavailable => exit::UNAVAILABLE,
            ErrorKind::Denied => exit::NOPERM,
            ErrorKind::GaveUp => exit::TEMPFAIL,
            ErrorKind::Config => exit::CONFIG,
            ErrorKind::Io => exit::IOERR,
            ErrorKind::Internal => exit::SOFTWARE,
            ErrorKind::Stale => exit::DATAERR,
        }
    }

    /// A short word for tables and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Denied => "denied",
            ErrorKind::GaveUp => "gave-up",
            ErrorKind::Config => "config",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
            ErrorKind::Stale => "too-old",
        }
    }
}

/// A failure reported by a secret source, for one reference or for a whole batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub kind: ErrorKind,
    pub message: String,
}

impl SourceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SourceError {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Denied, message)
    }
    pub fn gave_up(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::GaveUp, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

/// One variable that could not be resolved.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The variable (or expansion prefix) as the user named it.
    pub name: String,
    /// The reference as the user wrote it.
    pub reference: String,
    pub error: SourceError,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.name, self.reference, self.error)
    }
}

/// Everything that can end a stepsecret command before (or instead of) the child's exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command-line input.
    #[error("{0}")]
    Usage(String),
    /// The spec, a NAME=REF entry or a reference is invalid. The message starts with where.
    #[error("{0}")]
    Spec(String),
    /// One or more variables could not be resolved; one line each.
    #[error("{}", lines(.0))]
    Resolve(Vec<Failure>),
    /// A backend failed as a whole (login refused, server unreachable) before any reference.
    /// The source's message names the backend; the variables that needed it follow.
    #[error("{error} (needed by {})", .names.join(", "))]
    Source {
        backend: &'static str,
        error: SourceError,
        names: Vec<String>,
    },
    /// The command could not be started.
    #[error("cannot run `{program}`: {reason}")]
    Spawn {
        program: String,
        reason: String,
        code: u8,
    },
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The operating system refused a resource stepsecret needs.
    #[error("{context}: {source}")]
    Os {
        context: String,
        source: std::io::Error,
    },
    /// A signal arrived before the command started; nothing was run.
    #[error("stopped by signal {0} before the command started")]
    Interrupted(i32),
}

fn lines(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn os(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Os {
            context: context.into(),
            source,
        }
    }

    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Spec(_) => exit::CONFIG,
            Error::Resolve(failures) => failures
                .first()
                .map_or(exit::SOFTWARE, |f| f.error.kind.exit_code()),
            Error::Source { error, .. } => error.kind.exit_code(),
            Error::Spawn { code, .. } => *code,
            Error::Io { .. } => exit::IOERR,
            Error::Os { .. } => exit::OSERR,
            Error::Interrupted(signal) => 128u8.saturating_add(*signal as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_error_takes_the_first_failures_code_and_prints_one_line_each() {
        let err = Error::Resolve(vec![
            Failure {
                name: "A".into(),
                reference: "age://a.age#x".into(),
                error: SourceError::denied("no identity matches"),
            },
            Failure {
                name: "B".into(),
                reference: "age://b.age#y".into(),
                error: SourceError::not_found("no such file"),
            },
        ]);
        assert_eq!(err.exit_code(), exit::NOPERM);
        assert_eq!(
            err.to_string(),
            "A (age://a.age#x): no identity matches\nB (age://b.age#y): no such file"
        );
    }

    #[test]
    fn interrupted_maps_to_128_plus_signal() {
        assert_eq!(Error::Interrupted(15).exit_code(), 143);
    }
}
