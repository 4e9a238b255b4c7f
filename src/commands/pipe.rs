//! `stepsecret pipe`: the Bitbucket pipe's entry point. It maps the pipe's variables onto the
//! same engine as `run`, so a pipe step gets exactly the per-run semantics of the binary:
//!
//! | pipe variable | becomes |
//! |---|---|
//! | COMMAND | the command, run with `sh -c` inside the pipe container |
//! | SPEC | `--spec` |
//! | SECRETS, or the list SECRETS_0..N with SECRETS_COUNT | STEPSECRET_SECRETS (NAME=REF lines) |
//! | VAULT_ADDR, AWS_ROLE_ARN, AWS_REGION | read as they are |
//! | VAULT_ROLE, VAULT_AUTH_PATH | STEPSECRET_VAULT_ROLE, STEPSECRET_VAULT_AUTH_PATH |
//! | PUBLIC | `--public` (names whose values are not masked) |
//! | TIMEOUT | `--timeout` |
//! | BUNDLE_TTL | how long an exported bundle stays valid (default 10m) |
//! | AUDIT_LOG | `--audit-log` |
//! | DEBUG | prints the plan (names and references, never values) |
//! | EXPORT_RECIPIENT | instead of running a command, writes an encrypted bundle (see [`crate::bundle`]) |
//! | INSTALL, INSTALL_DIR | copies this binary to INSTALL_DIR (default `$BITBUCKET_CLONE_DIR/.stepsecret/bin`) |
//!
//! With INSTALL alone, nothing is fetched: the step's own image then runs the installed
//! `stepsecret run` with its own tools. INSTALL may be combined with COMMAND or
//! EXPORT_RECIPIENT; the copy is made first. `--version` is the image's: its entry point is
//! `stepsecret` with `pipe` as the default argument.
//!
//! BITBUCKET_STEP_OIDC_TOKEN reaches the pipe when the step has `oidc: true`; the sources find
//! it as they do in any Bitbucket step.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::warn;
use crate::bundle;
use crate::cli::{RunArgs, SpecArgs, parse_duration};
use crate::env::Env;
use crate::error::{Error, UsageError};
use crate::plan::Plan;
use crate::resolve::resolve;

/// How long an exported bundle stays valid unless BUNDLE_TTL says otherwise.
const DEFAULT_BUNDLE_TTL: Duration = Duration::from_secs(600);

/// The pipe variable `name` when it holds something besides whitespace.
fn var(env: &Env, name: &str) -> Option<String> {
    env.non_empty(name).map(str::to_string)
}

/// SECRETS as text, or Bitbucket's list form SECRETS_0..SECRETS_{COUNT-1}.
fn secrets(env: &Env) -> Result<Option<String>, Error> {
    let var = |name: &str| var(env, name);
    if let Some(text) = var("SECRETS") {
        return Ok(Some(text));
    }
    let Some(count) = var("SECRETS_COUNT") else {
        return Ok(None);
    };
    let count: usize = count
        .trim()
        .parse()
        .map_err(|_| UsageError::SecretsCountNotANumber {
            count: count.clone(),
        })?;
    let lines: Vec<String> = (0..count)
        .map(|i| {
            var(&format!("SECRETS_{i}")).ok_or(UsageError::SecretsEntryMissing { count, index: i })
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(lines.join("\n")))
}

pub(super) fn pipe(env: &Env) -> Result<u8, Error> {
    // The pipe's names for the Vault source's settings, in the environment the run sees.
    let mut env = env.clone();
    for (from, to) in [
        ("VAULT_ROLE", crate::sources::vault_env::ROLE),
        ("VAULT_AUTH_PATH", crate::sources::vault_env::AUTH_PATH),
    ] {
        if let Some(value) = var(&env, from) {
            env = env.with(to, value);
        }
    }
    let env = &env;
    let var = |name: &str| var(env, name);
    let timeout = match var("TIMEOUT") {
        Some(t) => parse_duration(&t).map_err(|reason| UsageError::BadDuration {
            variable: "TIMEOUT",
            reason,
        })?,
        None => Duration::from_secs(30),
    };
    let spec = SpecArgs {
        spec: var("SPEC").map(PathBuf::from),
        secret: Vec::new(),
        file: Vec::new(),
        secrets: secrets(env)?,
        // PUBLIC: names not to mask, separated by commas, spaces or lines.
        public: var("PUBLIC")
            .or_else(|| var("STEPSECRET_PUBLIC"))
            .map(|list| {
                list.split([',', ' ', '\n'])
                    .filter(|n| !n.trim().is_empty())
                    .map(|n| n.trim().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        timeout,
    };
    let debug = var("DEBUG").is_some_and(|d| d.eq_ignore_ascii_case("true") || d == "1");
    if debug {
        let plan = Plan::build(&spec, env)?;
        for entry in &plan.entries {
            eprintln!(
                "stepsecret pipe: {} ({}) <- {}",
                entry.name,
                entry.target.as_str(),
                entry.reference.raw
            );
        }
        for name in [
            "BITBUCKET_STEP_OIDC_TOKEN",
            "VAULT_ADDR",
            "AWS_ROLE_ARN",
            "AWS_REGION",
        ] {
            eprintln!(
                "stepsecret pipe: {name} is {}",
                if var(name).is_some() {
                    "set"
                } else {
                    "not set"
                }
            );
        }
    }
    let install = flag(env, "INSTALL")?;
    if install {
        let dir = match var("INSTALL_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => env
                .path("BITBUCKET_CLONE_DIR")
                .unwrap_or_default()
                .join(".stepsecret/bin"),
        };
        let installed = install_self(&dir)?;
        println!(
            "stepsecret: installed {} ({}); in this step run: {} run -- COMMAND",
            installed.display(),
            env!("CARGO_PKG_VERSION"),
            installed.display()
        );
    }
    match (var("EXPORT_RECIPIENT"), var("COMMAND")) {
        (Some(_), Some(_)) => Err(UsageError::CommandAndExport.into()),
        (Some(recipient), None) => export(&spec, &recipient, env),
        (None, Some(command)) => super::run::run(
            RunArgs {
                spec,
                no_redact: false,
                max_age: None,
                enforce_max_age: false,
                bundle: None,
                audit_log: var("AUDIT_LOG").map(PathBuf::from),
                command: vec![
                    OsString::from("sh"),
                    OsString::from("-c"),
                    OsString::from(command),
                ],
            },
            env,
        ),
        (None, None) if install => Ok(0),
        (None, None) => Err(UsageError::NoCommandOrExport.into()),
    }
}

/// A boolean pipe variable: `true`/`1` or `false`/`0`/unset.
fn flag(env: &Env, name: &str) -> Result<bool, Error> {
    match var(env, name) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") || v.trim() == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v.trim() == "0" => Ok(false),
        Some(value) => Err(UsageError::NotABoolean {
            name: name.to_string(),
            value,
        }
        .into()),
    }
}

/// Copies the running binary to `dir`/stepsecret, mode 0755, replacing what was there.
fn install_self(dir: &Path) -> Result<PathBuf, Error> {
    let me = Env::current_exe().map_err(|e| Error::io("INSTALL: cannot find this binary", e))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("INSTALL: cannot create {}", dir.display()), e))?;
    let target = dir.join("stepsecret");
    // Through a temporary name, so a binary that is running from `target` is not overwritten.
    let partial = dir.join(".stepsecret.partial");
    std::fs::copy(&me, &partial)
        .and_then(|_| std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)))
        .and_then(|()| std::fs::rename(&partial, &target))
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            Error::io(format!("INSTALL: cannot write {}", target.display()), e)
        })?;
    Ok(target)
}

fn export(spec: &SpecArgs, recipient: &str, env: &Env) -> Result<u8, Error> {
    let var = |name: &str| var(env, name);
    let dir = bundle::shared_storage(env);
    let step = var(bundle::STEP_ENV).ok_or(UsageError::ExportNeedsStep)?;
    let ttl = match var("BUNDLE_TTL") {
        Some(t) => parse_duration(&t).map_err(|reason| UsageError::BadDuration {
            variable: "BUNDLE_TTL",
            reason,
        })?,
        None => DEFAULT_BUNDLE_TTL,
    };
    let plan = Plan::build(spec, env)?;
    if !plan.templates.is_empty() || plan.entries.iter().any(|e| e.path.is_some()) {
        return Err(UsageError::ExportWithFiles.into());
    }
    if plan.entries.is_empty() {
        return Err(UsageError::NothingToExport.into());
    }
    let (vars, mut sources) = resolve(&plan, &|| None)?.into_vars(&plan)?;
    std::fs::create_dir_all(&dir).map_err(|e| {
        Error::io(
            format!("cannot create the pipes' shared storage {}", dir.display()),
            e,
        )
    })?;
    let path = bundle::write(&dir, recipient, &step, ttl, &vars)?;
    if vars.iter().any(|v| v.meta.lease_id.is_some()) {
        warn(
            "the bundle holds dynamic secrets: their leases are not revoked by the pipe and last until their TTL",
        );
    }
    // The bundle's values must stay valid after the pipe exits: no lease or login token is
    // revoked here; they expire with their TTL.
    sources.keep();
    println!(
        "stepsecret: {} secret(s) sealed to EXPORT_RECIPIENT in {} for step {step}, valid {}; in this step run: stepsecret run --bundle {} -- COMMAND",
        vars.len(),
        path.display(),
        humantime::format_duration(ttl),
        path.display()
    );
    Ok(0)
}
