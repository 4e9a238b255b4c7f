//! Errors, and the one table that maps them to exit codes.
//!
//! Every failure before the command starts ends the run with one of the sysexits-style codes
//! below and no child process. Messages name the variable and the reference that failed and say
//! what to fix; they never contain a secret value, so every constructor here takes only text that
//! was written by stepsecret itself or copied from the user's spec.

use std::fmt;
use std::path::PathBuf;

use crate::dotenv::DotenvError;
use crate::reference::{ReferenceError, is_env_name};

/// The audit log's HMAC key variable (`audit::KEY_ENV`; kept here so that this module, which
/// every other depends on, depends on none of them).
const KEY_ENV: &str = "STEPSECRET_AUDIT_KEY";
/// The Bitbucket step's id (`bundle::STEP_ENV`), for the same reason.
const STEP_ENV: &str = "BITBUCKET_STEP_UUID";

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
    /// A `path = "..."` file already exists: stepsecret does not overwrite it.
    pub const CANTCREAT: u8 = 73;
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
    /// The exit code a failure of this kind ends the process with.
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
    /// What kind of failure: decides the exit code.
    pub kind: ErrorKind,
    /// One line saying what failed and what to fix; never a value.
    pub message: String,
}

impl SourceError {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SourceError {
            kind,
            message: message.into(),
        }
    }
    /// The secret, key or file does not exist (69).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// The server could not be reached or the backend is not built in (69).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// Access was refused (77).
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Denied, message)
    }
    /// Retries ran out or the deadline passed (75).
    pub fn gave_up(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::GaveUp, message)
    }
    /// A setting or a reference is invalid (78).
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    /// A bug (70).
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
    /// Why it failed.
    pub error: SourceError,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.name, self.reference, self.error)
    }
}

/// Everything that can end a stepsecret command before (or instead of) the child's exit code.
#[derive(Debug, thiserror::Error)]
// Each variant's fields are named for what they hold, and its message shows them.
#[allow(missing_docs)]
pub enum Error {
    /// Bad command-line input (64).
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The spec, a NAME=REF entry or a reference is invalid (78). The message starts with where.
    #[error(transparent)]
    Spec(#[from] SpecError),
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
    /// A `path = "..."` file that exists before the run: stepsecret never overwrites (or
    /// deletes) a file it did not create (73).
    #[error(
        "{name}: {} already exists; stepsecret writes only files it creates (remove it, or choose another path)",
        shown(.path)
    )]
    Exists { name: String, path: PathBuf },
    /// A signal arrived before the command started; nothing was run.
    #[error("stopped by signal {0} before the command started")]
    Interrupted(i32),
}

/// Bad command-line input: a flag, a pipe variable or an argument (exit 64). Each message is one
/// line and says what to give instead.
#[derive(Debug, thiserror::Error)]
// Each variant's fields are named for what they hold, and its message shows them.
#[allow(missing_docs)]
pub enum UsageError {
    /// A `-s` / `--file` entry that is invalid; the origin is the flag.
    #[error("{origin}: {error}")]
    Entry {
        origin: Origin,
        /// Boxed: a reference error holds several strings, and every `Result<_, Error>` carries
        /// room for the largest variant.
        #[source]
        error: Box<EntryError>,
    },
    /// `run` without a command after `--`.
    #[error("no command given: stepsecret run [OPTIONS] -- COMMAND [ARGS]...")]
    NoCommand,
    /// `run` with nothing to resolve and no bundle.
    #[error(
        "no secrets to resolve: give --spec FILE (or ./stepsecret.toml), -s NAME=REF, --file NAME=REF, STEPSECRET_SECRETS or --bundle FILE"
    )]
    NothingToResolve,
    /// A variable set both by `--bundle` and by the spec or flags.
    #[error("{name} is set by the bundle and by the spec; remove one")]
    SetByBundleAndSpec { name: String },
    /// `redact` with nothing to mask.
    #[error("nothing to mask: give --spec FILE, -s NAME=REF, STEPSECRET_SECRETS or --env NAME")]
    NothingToMask,
    /// STEPSECRET_AUDIT_KEY shorter than 16 bytes.
    #[error(
        "{KEY_ENV} is shorter than 16 bytes; use a long random key (e.g. `openssl rand -hex 32`)"
    )]
    AuditKeyTooShort,
    /// `scan` without STEPSECRET_AUDIT_KEY.
    #[error("{KEY_ENV} is not set: scan needs the key the audit log's HMACs were made with")]
    AuditKeyMissing,
    /// `scan` of an audit log written without STEPSECRET_AUDIT_KEY.
    #[error("{} holds no value HMACs: runs must set {KEY_ENV} for scan to work", .path.display())]
    NoValueHmacs { path: PathBuf },
    /// `seal` of a file that starts like JSON but is another JSON value.
    #[error("{input}: is JSON but not an object")]
    SealJsonNotObject { input: String },
    /// `seal` of a file that starts like JSON but does not parse.
    #[error("{input}: is not valid JSON (line {line} column {column})")]
    SealInvalidJson {
        input: String,
        line: usize,
        column: usize,
    },
    /// `seal` of a file that is not dotenv either (the line and what was expected, no content).
    #[error("{input}: is neither a JSON object nor valid dotenv ({reason})")]
    SealInvalidDotenv { input: String, reason: DotenvError },
    /// `seal -` without `-o`.
    #[error("reading stdin needs -o FILE")]
    SealStdinNeedsOutput,
    /// `seal` without `-r` or `-R`.
    #[error("no recipients: give -r age1... or -R FILE (see `stepsecret keygen`)")]
    NoRecipients,
    /// A `-R` file that cannot be read.
    #[error("cannot read {}: {}", .path.display(), plain_io_error(.source))]
    RecipientsFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `-r` value or `-R` line that is not an age recipient; `from` is `-r` or FILE:LINE.
    #[error("{from}: `{text}` is not an age recipient (age1...)")]
    BadRecipient { from: String, text: String },
    /// age refused the recipients (e.g. a plugin recipient mixed with others).
    #[error("cannot encrypt to these recipients: {reason}")]
    CannotEncrypt { reason: String },
    /// The pipe's EXPORT_RECIPIENT is not an age recipient.
    #[error("EXPORT_RECIPIENT is not an age recipient (age1..., from `stepsecret keygen`)")]
    BadExportRecipient,
    /// age refused the pipe's EXPORT_RECIPIENT.
    #[error("cannot encrypt to EXPORT_RECIPIENT: {reason}")]
    CannotEncryptToExportRecipient { reason: String },
    /// The pipe's SECRETS_COUNT is not a number.
    #[error("SECRETS_COUNT `{count}` is not a number")]
    SecretsCountNotANumber { count: String },
    /// The pipe's SECRETS_COUNT promises a SECRETS_N that is not set.
    #[error("SECRETS_COUNT is {count} but SECRETS_{index} is not set")]
    SecretsEntryMissing { count: usize, index: usize },
    /// A pipe variable holding a duration (TIMEOUT, BUNDLE_TTL) that does not parse.
    #[error("{variable}: {reason}")]
    BadDuration {
        variable: &'static str,
        reason: String,
    },
    /// The pipe given both COMMAND and EXPORT_RECIPIENT.
    #[error(
        "set COMMAND (run it here) or EXPORT_RECIPIENT (hand the secrets to a later `stepsecret run --bundle`), not both"
    )]
    CommandAndExport,
    /// The pipe given neither COMMAND nor EXPORT_RECIPIENT.
    #[error(
        "the pipe needs COMMAND (the command to run with the secrets), EXPORT_RECIPIENT or INSTALL"
    )]
    NoCommandOrExport,
    /// A boolean pipe variable (INSTALL) that is neither true nor false.
    #[error("{name} must be true or false, not `{}`", .value.escape_debug())]
    NotABoolean { name: String, value: String },
    /// EXPORT_RECIPIENT without the step's UUID.
    #[error("EXPORT_RECIPIENT needs {STEP_ENV} (set by Bitbucket)")]
    ExportNeedsStep,
    /// EXPORT_RECIPIENT with a spec that renders templates or writes files at chosen paths:
    /// a bundle carries variables, and files belong to the run that uses them.
    #[error(
        "EXPORT_RECIPIENT hands over variables only: [templates] and path = \"...\" files are written by the run that uses them; run that COMMAND in this pipe instead"
    )]
    ExportWithFiles,
    /// EXPORT_RECIPIENT with nothing to export.
    #[error("nothing to export: set SPEC or SECRETS")]
    NothingToExport,
    /// `policy --ci circleci` without `--org`.
    #[error("--ci circleci needs --org ORG_ID (Organization Settings > Overview)")]
    PolicyNeedsOrg,
    /// `policy --ci circleci` without `--project`.
    #[error("--ci circleci needs --project PROJECT_ID (Project Settings > Overview)")]
    PolicyNeedsProject,
    /// `policy --ci bitbucket` without `--workspace`.
    #[error("--ci bitbucket needs --workspace UUID (Repository settings > OpenID Connect)")]
    PolicyNeedsWorkspace,
    /// `policy --ci bitbucket` without `--repo`.
    #[error("--ci bitbucket needs --repo UUID (Repository settings > OpenID Connect)")]
    PolicyNeedsRepo,
    /// `policy --ci bitbucket --for aws` without `--workspace-name`.
    #[error(
        "--ci bitbucket --for aws needs --workspace-name SLUG: the workspace's name in the OIDC issuer URL"
    )]
    PolicyNeedsWorkspaceName,
    /// An org / project / workspace / repo id with spaces, quotes or wildcards; `flag` names
    /// the pair of flags. Control characters in the value are shown escaped.
    #[error("{flag} `{}` is not an id (no spaces, quotes or wildcards)", escape_controls(.value))]
    PolicyBadId { flag: &'static str, value: String },
    /// `policy --for vault` of a spec without a vault:// reference.
    #[error("the spec reads nothing from Vault: there is no vault:// reference to grant")]
    PolicyNothingFromVault,
    /// `policy --for aws` of a spec without an aws-sm:// or aws-ssm:// reference.
    #[error(
        "the spec reads nothing from AWS: there is no aws-sm:// or aws-ssm:// reference to grant"
    )]
    PolicyNothingFromAws,
    /// `policy --for aws` without an account id anywhere.
    #[error("no AWS account id: give --account ID (or set [aws] role_arn in the spec)")]
    PolicyNoAccount,
    /// `policy --for aws` of a secret or parameter named without a region anywhere.
    #[error("no region for {reference}: give --region, [aws] region or ?region=")]
    PolicyNoRegion { reference: String },
}

/// An invalid spec file, STEPSECRET_SECRETS entry, `[policy]` setting or audit record (exit
/// 78). Each message starts with the file and line (or the list's line) and is one line.
#[derive(Debug, thiserror::Error)]
// Each variant's fields are named for what they hold, and its message shows them.
#[allow(missing_docs)]
pub enum SpecError {
    /// The spec file does not exist.
    #[error(
        "cannot read spec {}: {} (pass --spec FILE or set STEPSECRET_SPEC)",
        .path.display(),
        plain_io_error(.source)
    )]
    Missing {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The spec file exists but cannot be read (permissions, a folder, not UTF-8).
    #[error("cannot read spec {}: {}", .path.display(), plain_io_error(.source))]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key or a value of the wrong type; `message` is the TOML
    /// parser's, on one line (control and line-separator characters escaped).
    #[error("{}{}: {message}", .path.display(), line_suffix(*.line))]
    Toml {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// An invalid `[env]` / `[files]` / `[expand]` entry or STEPSECRET_SECRETS line.
    #[error("{origin}: {error}")]
    Entry {
        origin: Origin,
        /// Boxed: a reference error holds several strings, and every `Result<_, Error>` carries
        /// room for the largest variant.
        #[source]
        error: Box<EntryError>,
    },
    /// `[policy] max_age` that is not a duration.
    #[error("{}:{line}: [policy] max_age: {reason}", .path.display())]
    MaxAge {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A public name (`[mask] public`, `--public`, STEPSECRET_PUBLIC) that names no variable.
    #[error("{from}: {} names no variable of this run; list only variables the spec sets", .name.escape_debug())]
    PublicUnknown { name: String, from: String },
    /// A template that does not parse, uses a filter, test or function that does not exist,
    /// names a variable the spec does not resolve, or fails to render. `path` is the
    /// template file.
    #[error("{}{}: {message}", shown(.path), line_suffix(*.line))]
    Template {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A line of the audit log given to `scan` that is not a JSON record.
    #[error("{}:{line}: not an audit record ({reason})", .path.display())]
    AuditRecord {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// A path from the spec in a one-line message: control characters escaped.
fn shown(path: &std::path::Path) -> String {
    escape_controls(&path.display().to_string())
}

fn line_suffix(line: Option<usize>) -> String {
    line.map_or_else(String::new, |line| format!(":{line}"))
}

/// `text` with control and line-separator characters escaped, so that a message echoing it
/// stays on one line.
pub(crate) fn escape_controls(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let hidden = c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}');
            let shown: Vec<char> = if hidden {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            shown
        })
        .collect()
}

fn lines(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// A local file operation failed (74); `context` says which.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The operating system refused a resource (71); `context` says which.
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
            Error::Exists { .. } => exit::CANTCREAT,
            Error::Interrupted(signal) => 128u8.saturating_add(*signal as u8),
        }
    }
}

/// An entry without `=`, for its error message: a bare upper-case name (`TOKEN`, a forgotten
/// `=REF`) or a reference is shown; anything else may be a value and is not (see
/// [`crate::reference::echo`]).
fn echo_entry(text: &str) -> String {
    let name =
        !text.is_empty() && is_env_name(text) && !text.bytes().any(|b| b.is_ascii_lowercase());
    if name {
        format!("`{text}`")
    } else {
        crate::reference::echo(text)
    }
}

/// Where an entry was written, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of the spec file.
    #[allow(missing_docs)]
    Spec { path: PathBuf, line: usize },
    /// A `-s NAME=REF` flag.
    SecretFlag,
    /// A `--file NAME=REF` flag.
    FileFlag,
    /// A line of STEPSECRET_SECRETS.
    #[allow(missing_docs)]
    SecretsList { line: usize },
}

impl Origin {
    fn is_flag(&self) -> bool {
        matches!(self, Origin::SecretFlag | Origin::FileFlag)
    }

    /// The error for a mistake made here: a usage error in a flag, else a spec error.
    pub(crate) fn error(&self, error: EntryError) -> Error {
        let origin = self.clone();
        let error = Box::new(error);
        if self.is_flag() {
            UsageError::Entry { origin, error }.into()
        } else {
            SpecError::Entry { origin, error }.into()
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Spec { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::SecretFlag => f.write_str("-s"),
            Origin::FileFlag => f.write_str("--file"),
            Origin::SecretsList { line } => write!(f, "STEPSECRET_SECRETS line {line}"),
        }
    }
}

/// Why one `NAME = "REF"` / `NAME=REF` entry is invalid. It is reported after its [`Origin`],
/// as a usage error for a flag and a spec error elsewhere. Names and text that may hold a line
/// break are shown escaped, so the message stays one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// Each variant's fields are named for what they hold, and its message shows them.
#[allow(missing_docs)]
pub enum EntryError {
    /// A `-s` / `--file` value or STEPSECRET_SECRETS line without `=`.
    #[error(
        "{} is not NAME=REF (e.g. DB_PASSWORD=vault://secret/prod/db#password)",
        echo_entry(.text)
    )]
    NotAssignment { text: String },
    /// A name that is not `[A-Za-z_][A-Za-z0-9_]*` (an `[expand]` prefix may also be empty).
    #[error(
        "`{}` is not a valid variable name (letters, digits and _, not starting with a digit)",
        .name.escape_debug()
    )]
    InvalidName { name: String },
    /// A name starting with STEPSECRET_.
    #[error("{name} is reserved: names starting with STEPSECRET_ configure stepsecret itself")]
    Reserved { name: String },
    /// The reference does not parse.
    #[error("{name}: {error}")]
    Reference {
        name: String,
        #[source]
        error: ReferenceError,
    },
    /// `#*` in `[files]` or `--file`.
    #[error(
        "{name}: #* expands into variables and cannot be written to one file; name a key instead"
    )]
    ExpandIntoFile { name: String },
    /// `aws-ssm:///PATH/*` outside `[expand]` (or with `#KEY`): a path holds many parameters.
    #[error(
        "{name}: `{raw}` names every parameter under a path, which only [expand] (or #*) can take: write [expand] {name}_ = \"{raw}\", or name one parameter"
    )]
    PathNotExpanded { name: String, raw: String },
    /// A name (or `[expand]` prefix) defined twice; `first` is where it was first defined.
    #[error("{name} is already defined at {first}; each name may appear once")]
    Duplicate { name: String, first: Origin },
    /// A `[templates]` entry whose template file cannot be read (missing, not UTF-8).
    #[error("{name}: cannot read template {}: {reason}", shown(.path))]
    TemplateUnreadable {
        name: String,
        path: PathBuf,
        reason: String,
    },
    /// A `path = "..."` that cannot name a file (empty, a folder, `~user`, no HOME).
    #[error("{name}: path `{}` {reason}", escape_controls(.path))]
    BadPath {
        name: String,
        path: String,
        reason: &'static str,
    },
    /// Two entries writing the same file; `first` is where the path was first given.
    #[error("{name}: {} is also written by the entry at {first}; give each file its own path", shown(.path))]
    SamePath {
        name: String,
        path: PathBuf,
        first: Origin,
    },
}

/// An I/O error's text without the "(os error N)" suffix, for one-line messages.
pub(crate) fn plain_io_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
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
    fn usage_and_spec_errors_render_one_line_with_their_codes() {
        let usage = Error::from(UsageError::PolicyBadId {
            flag: "--org/--workspace",
            value: "a\nb c".into(),
        });
        assert_eq!(usage.exit_code(), exit::USAGE);
        assert_eq!(
            usage.to_string(),
            "--org/--workspace `a\\nb c` is not an id (no spaces, quotes or wildcards)"
        );
        assert_eq!(
            Error::from(UsageError::SecretsEntryMissing { count: 2, index: 1 }).to_string(),
            "SECRETS_COUNT is 2 but SECRETS_1 is not set"
        );
        assert_eq!(
            UsageError::AuditKeyTooShort.to_string(),
            "STEPSECRET_AUDIT_KEY is shorter than 16 bytes; use a long random key (e.g. `openssl rand -hex 32`)"
        );
        assert_eq!(
            UsageError::ExportNeedsStep.to_string(),
            "EXPORT_RECIPIENT needs BITBUCKET_STEP_UUID (set by Bitbucket)"
        );
        let spec = Error::from(SpecError::Toml {
            path: "ci/s.toml".into(),
            line: None,
            message: "expected a table".into(),
        });
        assert_eq!(spec.exit_code(), exit::CONFIG);
        assert_eq!(spec.to_string(), "ci/s.toml: expected a table");
        assert_eq!(
            SpecError::AuditRecord {
                path: "audit.jsonl".into(),
                line: 3,
                reason: "EOF while parsing".into(),
            }
            .to_string(),
            "audit.jsonl:3: not an audit record (EOF while parsing)"
        );
    }

    #[test]
    fn interrupted_maps_to_128_plus_signal() {
        assert_eq!(Error::Interrupted(15).exit_code(), 143);
    }
}
