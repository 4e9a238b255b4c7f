//! `stepsecret doctor`: what a first-day failure usually is, without reading a secret. It says
//! which CI it detected and which OIDC token it found, shows the token's claims (never the
//! token), then for each backend the spec uses: the address, method and role it would use, the
//! login's outcome, and what in the server's configuration does not match this job (see
//! `SecretSource::diagnose`). Logins are undone before it exits. Exit 0 when every login works,
//! else the documented code of the first failure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::ci::{self, OidcToken};
use crate::cli::{DoctorArgs, Format};
use crate::env::Env;
use crate::error::{Error, SourceError};
use crate::plan::Plan;
use crate::reference::Backend;
use crate::sources::{self, Diagnosis, FetchContext};

/// Claims worth showing besides iss, sub, aud and exp: what `bound_claims` usually binds.
const SHOWN_CLAIMS: [&str; 12] = [
    "workspaceUuid",
    "repositoryUuid",
    "pipelineUuid",
    "stepUuid",
    "branchName",
    "deploymentEnvironmentUuid",
    "repository",
    "ref",
    "environment",
    "project_path",
    "ref_type",
    "job_workflow_ref",
];

pub(super) fn doctor(args: DoctorArgs, env: &Env) -> Result<u8, Error> {
    let plan = Plan::build(&args.spec, env)?;
    let job = ci::job(env);
    let explicit = plan
        .vault
        .oidc_token_env
        .as_deref()
        .or(plan.aws.oidc_token_env.as_deref());
    let audience = plan
        .vault
        .audience
        .as_deref()
        .or(plan.aws.audience.as_deref());
    let token = ci::oidc_token(env, explicit, audience);
    let cx = FetchContext::new(plan.timeout);
    let backends: Vec<(Backend, Diagnosis)> = plan
        .backends()
        .into_iter()
        .map(|backend| {
            let diagnosis = match sources::open(backend, &plan) {
                Ok(source) => source.diagnose(&cx),
                Err(e) => Diagnosis {
                    error: Some(e),
                    ..Diagnosis::default()
                },
            };
            (backend, diagnosis)
        })
        .collect();
    let first_failure = backends.iter().find_map(|(_, d)| d.error.as_ref());
    match args.format {
        Format::Text => print_text(job.as_ref(), &token, &backends),
        Format::Json => print_json(job.as_ref(), &token, &backends),
    }
    Ok(first_failure.map_or(0, |e| e.kind.exit_code()))
}

/// The claims shown: iss, sub, aud, exp (with how long it has left), then the ones roles bind.
fn claims(token: &OidcToken) -> Vec<(String, String)> {
    let c = &token.claims;
    let mut shown = Vec::new();
    for (key, value) in [("iss", c.iss.clone()), ("sub", c.sub.clone())] {
        shown.push((key.to_string(), value.unwrap_or_else(|| "-".into())));
    }
    shown.push((
        "aud".into(),
        if c.aud.is_empty() {
            "-".into()
        } else {
            c.aud.join(",")
        },
    ));
    if let Some(exp) = c.all.get("exp").and_then(Value::as_u64) {
        let at = UNIX_EPOCH + Duration::from_secs(exp);
        let left = match at.duration_since(SystemTime::now()) {
            Ok(left) => format!(
                "in {}",
                humantime::format_duration(Duration::from_secs(left.as_secs()))
            ),
            Err(_) => "expired".to_string(),
        };
        shown.push((
            "exp".into(),
            format!("{} ({left})", humantime::format_rfc3339_seconds(at)),
        ));
    }
    for (key, value) in &c.all {
        if key.starts_with("oidc.circleci.com/") || SHOWN_CLAIMS.contains(&key.as_str()) {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            shown.push((key.clone(), value));
        }
    }
    shown
}

fn print_text(
    job: Option<&ci::Job>,
    token: &Result<Option<OidcToken>, SourceError>,
    backends: &[(Backend, Diagnosis)],
) {
    match job {
        Some(job) => println!("ci: {} ({})", job.provider, job.label()),
        None => println!(
            "ci: none detected (no CIRCLECI, BITBUCKET_BUILD_NUMBER, GITHUB_ACTIONS or GITLAB_CI)"
        ),
    }
    match token {
        Ok(Some(token)) => {
            println!("oidc token: {} ({})", token.variable, token.provider);
            for (key, value) in claims(token) {
                println!("  {key}: {value}");
            }
        }
        Ok(None) => println!(
            "oidc token: none (CircleCI sets CIRCLE_OIDC_TOKEN_V2 in jobs with a context; Bitbucket sets BITBUCKET_STEP_OIDC_TOKEN in steps with `oidc: true`)"
        ),
        Err(e) => println!("oidc token: unusable: {e}"),
    }
    if backends.is_empty() {
        println!(
            "no backend to check: give --spec FILE (or ./stepsecret.toml), -s NAME=REF or STEPSECRET_SECRETS"
        );
    }
    for (backend, d) in backends {
        println!("{backend}:");
        for (key, value) in &d.facts {
            println!("  {key}: {value}");
        }
        if let Some(e) = &d.error {
            println!("  login: failed ({}): {}", e.kind.as_str(), e.message);
        }
        for finding in &d.findings {
            println!("  problem: {finding}");
        }
    }
    let failed = backends.iter().filter(|(_, d)| d.error.is_some()).count();
    match failed {
        0 if backends.iter().all(|(_, d)| d.findings.is_empty()) => {
            println!("result: every login works")
        }
        0 => println!("result: every login works, with problems to fix above"),
        n => println!("result: {n} of {} backends failed", backends.len()),
    }
}

fn print_json(
    job: Option<&ci::Job>,
    token: &Result<Option<OidcToken>, SourceError>,
    backends: &[(Backend, Diagnosis)],
) {
    let job = job.map(|job| json!({ "provider": job.provider, "label": job.label() }));
    let token = match token {
        Ok(Some(token)) => json!({
            "variable": token.variable,
            "provider": token.provider,
            "claims": claims(token).into_iter().map(|(k, v)| (k, Value::String(v))).collect::<Map<_, _>>(),
        }),
        Ok(None) => Value::Null,
        Err(e) => json!({ "error": { "kind": e.kind.as_str(), "message": e.message } }),
    };
    let backends: Vec<Value> = backends
        .iter()
        .map(|(backend, d)| {
            json!({
                "backend": backend.scheme(),
                "facts": d.facts.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>(),
                "login": if d.error.is_some() { "failed" } else { "ok" },
                "error": d.error.as_ref().map(|e| json!({ "kind": e.kind.as_str(), "message": e.message })),
                "problems": d.findings,
            })
        })
        .collect();
    let ok = backends.iter().all(|b| b["login"] == "ok");
    let report = json!({ "ci": job, "oidc_token": token, "backends": backends, "ok": ok });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("plain JSON")
    );
}
