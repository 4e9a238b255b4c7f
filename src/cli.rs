//! The command line, as the user typed it (clap derive). Nothing here touches the network or the
//! disk; [`crate::plan`] turns these values into a validated plan first.
//!
//! clap turns doc comments into help text, so the types and fields here are documented by
//! their help (`stepsecret help run`); a doc comment written for rustdoc alone would change
//! it, hence no `missing_docs` here.

#![allow(missing_docs)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Fetch secrets at job time and run one command with them, masked in its output.
///
/// Secrets come from Vault / OpenBao (vault://), AWS Secrets Manager (aws-sm://), AWS SSM
/// Parameter Store (aws-ssm://), the job's own variables (env://) or an
/// age-encrypted file (age://). They exist only in the command's environment, or in 0600 files
/// that are removed when it exits, and every value (and its base64, URL- and JSON-encoded forms)
/// is replaced by [masked:NAME] in the command's output.
#[derive(Debug, Parser)]
#[command(name = "stepsecret", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve every secret, then run COMMAND with them in its environment.
    ///
    /// Example: stepsecret run --spec stepsecret.toml -- ./deploy.sh --prod
    Run(RunArgs),
    /// Resolve and authenticate everything and print what would be set; never a value.
    ///
    /// Exits non-zero when anything is missing.
    Check(CheckArgs),
    /// Diagnose the CI identity and each backend's login (OIDC trust misconfiguration above
    /// all); reads no secret, never prints a token.
    ///
    /// Example: stepsecret doctor --spec stepsecret.toml
    Doctor(DoctorArgs),
    /// Mask secrets in stdin, writing the result to stdout.
    ///
    /// Example: ./noisy-tool 2>&1 | stepsecret redact --env API_TOKEN
    Redact(RedactArgs),
    /// Create an age identity file (mode 0600) and print its public recipient.
    Keygen(KeygenArgs),
    /// Encrypt a dotenv or JSON file for `age://` references.
    ///
    /// Example: stepsecret seal -r age1... -o secrets/ci.env.age ci.env
    Seal(SealArgs),
    /// Print the Vault or AWS configuration that grants exactly what the spec reads, and only
    /// to this project's CI identity.
    ///
    /// Example: stepsecret policy --for vault --ci circleci --org ORG_ID --project PROJECT_ID --branch main | sh
    Policy(Box<PolicyArgs>),
    /// Report files that contain a value a run used, by the HMACs in its audit log; names the
    /// variable, never the value. Exits 1 when any file does.
    ///
    /// Example: STEPSECRET_AUDIT_KEY=... stepsecret scan --audit-log audit.jsonl ./artifacts
    Scan(ScanArgs),
    /// The Bitbucket pipe's entry point: reads the pipe variables (COMMAND, SPEC, SECRETS,
    /// VAULT_ROLE, EXPORT_RECIPIENT, ...) and runs like `run`.
    Pipe,
    /// Internal: the guardian that cleans up if a run is killed.
    #[command(name = "__guard", hide = true)]
    Guard,
}

/// Where the secrets to resolve are listed. Every source may be combined; a name may appear
/// only once across them.
#[derive(Debug, Args, Clone, Default)]
pub struct SpecArgs {
    /// The spec file (TOML with [env], [files], [expand], [vault], [aws]). Default:
    /// ./stepsecret.toml when it exists.
    #[arg(long, env = "STEPSECRET_SPEC", value_name = "FILE")]
    pub spec: Option<PathBuf>,

    /// Set variable NAME to a secret. Repeatable.
    ///
    /// Example: -s DB_PASSWORD=vault://secret/prod/db#password
    #[arg(short = 's', long = "secret", value_name = "NAME=REF")]
    pub secret: Vec<String>,

    /// Write a secret to a 0600 file and set NAME to its path. Repeatable.
    ///
    /// Example: --file KUBECONFIG=vault://secret/prod/k8s#kubeconfig
    #[arg(long = "file", value_name = "NAME=REF")]
    pub file: Vec<String>,

    /// Newline-separated NAME=REF lines, usually from a CI variable. Lines starting with # are
    /// ignored.
    #[arg(
        long = "secrets",
        env = "STEPSECRET_SECRETS",
        value_name = "LINES",
        hide_env_values = true
    )]
    pub secrets: Option<String>,

    /// A variable whose value is not secret (a host, a port, a user name): it is set as usual
    /// but never masked. Repeatable; STEPSECRET_PUBLIC takes a comma-separated list. Adds to
    /// the spec's [mask] public.
    ///
    /// Example: --public PG_HOST --public PG_PORT
    #[arg(
        long = "public",
        env = "STEPSECRET_PUBLIC",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub public: Vec<String>,

    /// Give up on fetching after this long, retries included (e.g. 500ms, 30s, 2m).
    #[arg(long, env = "STEPSECRET_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Let the command write to the terminal directly, without masking its output.
    #[arg(long, env = "STEPSECRET_NO_REDACT")]
    pub no_redact: bool,

    /// Warn about secrets whose current value is older than this (default: the spec's
    /// [policy] max_age). Example: --max-age 90d
    #[arg(long, env = "STEPSECRET_MAX_AGE", value_name = "DURATION", value_parser = parse_duration)]
    pub max_age: Option<Duration>,

    /// Refuse to run (exit 65) instead of warning when a secret is older than the maximum age.
    #[arg(long, env = "STEPSECRET_ENFORCE_MAX_AGE")]
    pub enforce_max_age: bool,

    /// Also set the variables of a pipe bundle (written by the Bitbucket pipe with
    /// EXPORT_RECIPIENT), decrypted with STEPSECRET_AGE_IDENTITY; it must belong to this step
    /// (BITBUCKET_STEP_UUID) and not have expired, and is deleted once read.
    #[arg(long, env = "STEPSECRET_BUNDLE", value_name = "FILE")]
    pub bundle: Option<PathBuf>,

    /// Append one JSON line per run to FILE: who ran, which secrets (names, references,
    /// versions, leases; never values), the exit code and timings.
    ///
    /// With STEPSECRET_AUDIT_KEY set, each value's HMAC-SHA256 is recorded too, for
    /// `stepsecret scan`.
    #[arg(long, env = "STEPSECRET_AUDIT_LOG", value_name = "FILE")]
    pub audit_log: Option<PathBuf>,

    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,

    /// Fail (exit 65) when a secret's current value is older than this, listing every one
    /// (default: the spec's [policy] max_age). Example: --max-age 90d
    #[arg(long, env = "STEPSECRET_MAX_AGE", value_name = "DURATION", value_parser = parse_duration)]
    pub max_age: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct RedactArgs {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Also mask the value of environment variable NAME. Repeatable.
    ///
    /// Example: --env GITHUB_TOKEN
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the new identity (created with mode 0600; never overwritten).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// Encrypt to this age recipient (age1...). Repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Encrypt to every recipient listed in FILE (one per line, # comments).
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipients_file: Vec<PathBuf>,

    /// Write ASCII armor (-----BEGIN AGE ENCRYPTED FILE-----) instead of binary.
    #[arg(short, long)]
    pub armor: bool,

    /// Output file (default: INPUT.age). Never overwritten unless --force.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,

    /// The dotenv or JSON file to encrypt; `-` reads stdin.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
}

/// The server side a policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyFor {
    Vault,
    Aws,
}

/// The CI whose OIDC identity a policy trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CiKind {
    Circleci,
    Bitbucket,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Which server's configuration to print.
    #[arg(long = "for", value_enum, value_name = "vault|aws")]
    pub target: PolicyFor,

    /// The CI whose OIDC tokens the role trusts.
    #[arg(long, value_enum, default_value = "circleci")]
    pub ci: CiKind,

    /// CircleCI organization id (the tokens' audience).
    #[arg(long, value_name = "ID")]
    pub org: Option<String>,

    /// CircleCI project id.
    #[arg(long, value_name = "ID")]
    pub project: Option<String>,

    /// Bitbucket workspace UUID.
    #[arg(long, value_name = "UUID")]
    pub workspace: Option<String>,

    /// Bitbucket repository UUID.
    #[arg(long, value_name = "UUID")]
    pub repo: Option<String>,

    /// Only tokens of jobs on this branch.
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,

    /// Name of the Vault policy and role, or of the IAM role. Default: the role the spec logs
    /// in as ([vault] role, or the name in [aws] role_arn), else stepsecret-ci.
    #[arg(long)]
    pub name: Option<String>,

    /// Output: a shell script (vault) or annotated JSON documents (aws); or one JSON object.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,

    /// Vault: where the JWT auth method is mounted.
    #[arg(long, default_value = "jwt", value_name = "PATH")]
    pub auth_path: String,

    /// Vault: the role's token TTL (kept short: the token is only used while fetching).
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub token_ttl: Duration,

    /// Vault: a KV v1 mount (its paths are read as written). Repeatable.
    #[arg(long, value_name = "MOUNT")]
    pub kv1: Vec<String>,

    /// Vault: a KV v2 mount whose path has several segments (e.g. team/kv). Repeatable.
    /// Other paths are taken as KV v2 under their first segment.
    #[arg(long, value_name = "MOUNT")]
    pub kv2: Vec<String>,

    /// Vault: a mount of another engine read as written (e.g. database). Repeatable.
    #[arg(long, value_name = "MOUNT")]
    pub read_mount: Vec<String>,

    /// AWS: the account id (default: from [aws] role_arn or an ARN in the spec).
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,

    /// AWS: the region of secrets named without an ARN or ?region= (default: [aws] region,
    /// AWS_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// AWS: also allow kms:Decrypt with this customer-managed key. Repeatable.
    #[arg(long, value_name = "KEY_ARN")]
    pub kms_key: Vec<String>,

    /// AWS with Bitbucket: the workspace's name as it appears in the OIDC issuer URL.
    #[arg(long, value_name = "SLUG")]
    pub workspace_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The audit log written by `run --audit-log` with STEPSECRET_AUDIT_KEY set.
    #[arg(long, env = "STEPSECRET_AUDIT_LOG", value_name = "FILE")]
    pub audit_log: PathBuf,

    /// Skip files larger than this many bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    pub max_size: u64,

    /// Files or folders to scan (folders recursively; symbolic links are not followed).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Parses `500ms`, `30s`, `2m`, `1h30m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 500ms, 30s, 2m, 90d)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_everything_after_the_separator_verbatim() {
        let cli = Cli::try_parse_from([
            "stepsecret",
            "run",
            "-s",
            "A=age://a.age#k",
            "--",
            "sh",
            "-c",
            "echo -s",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!()
        };
        assert_eq!(run.spec.secret, ["A=age://a.age#k"]);
        assert_eq!(run.command, ["sh", "-c", "echo -s"]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("90d").unwrap(),
            Duration::from_secs(90 * 86400)
        );
        assert!(parse_duration("soon").is_err());
    }
}
