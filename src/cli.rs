//! The command line, as the user typed it (clap derive). Nothing here touches the network or the
//! disk; [`crate::plan`] turns these values into a validated plan first.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Fetch secrets at job time and run one command with them, masked in its output.
///
/// Secrets come from Vault / OpenBao (vault://), AWS Secrets Manager (aws-sm://) or an
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
pub struct CheckArgs {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
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
