//! `stepsecret check`: resolve and authenticate everything, print what would be set (names,
//! backends, references, versions), never a value. Exits non-zero when anything fails.

use serde_json::{Value, json};

use crate::cli::{CheckArgs, Format};
use crate::error::{Error, Failure};
use crate::plan::Plan;
use crate::resolve::{collisions, resolve_with};
use crate::sources::FetchContext;

/// One row of the report.
struct Row {
    name: String,
    target: &'static str,
    backend: &'static str,
    reference: String,
    version: Option<String>,
    created: Option<String>,
    lease: bool,
    details: Vec<(String, String)>,
    error: Option<(String, String)>,
}

pub fn check(args: CheckArgs) -> Result<u8, Error> {
    let plan = Plan::build(&args.spec)?;
    let cx = FetchContext::new(plan.timeout).for_check();
    let outcome = resolve_with(&plan, cx, &|| None)?;
    let mut rows = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    for (i, result) in outcome.entries.iter().enumerate() {
        let entry = &plan.entries[i];
        let row = |name: String| Row {
            name,
            target: entry.target.as_str(),
            backend: entry.reference.backend().scheme(),
            reference: entry.reference.raw.clone(),
            version: None,
            created: None,
            lease: false,
            details: Vec::new(),
            error: None,
        };
        match result {
            Ok(vars) => rows.extend(vars.iter().map(|v| Row {
                version: v.meta.version.clone(),
                created: v.meta.created.clone(),
                lease: v.meta.lease_id.is_some(),
                details: v.meta.details.clone(),
                ..row(v.name.clone())
            })),
            Err(e) => {
                failures.push(Failure {
                    name: entry.name.clone(),
                    reference: entry.reference.raw.clone(),
                    error: e.clone(),
                });
                rows.push(Row {
                    error: Some((e.kind.as_str().to_string(), e.message.clone())),
                    ..row(entry.name.clone())
                });
            }
        }
    }
    let duplicates = collisions(&plan, outcome.entries.iter().flatten().flatten());
    for dup in &duplicates {
        if let Some(row) = rows
            .iter_mut()
            .rev()
            .find(|r| r.name == dup.name || r.reference == dup.reference)
        {
            row.error = Some((
                dup.error.kind.as_str().to_string(),
                dup.error.message.clone(),
            ));
        }
    }
    failures.extend(duplicates);
    let identities = outcome.sources.identities();

    match args.format {
        Format::Text => print_text(&plan, &rows, &identities, &failures),
        Format::Json => print_json(&rows, &identities, &failures),
    }
    Ok(failures.first().map_or(0, |f| f.error.kind.exit_code()))
}

fn print_text(
    plan: &Plan,
    rows: &[Row],
    identities: &[(crate::reference::Backend, Vec<(String, String)>)],
    failures: &[Failure],
) {
    let header = [
        "NAME",
        "TARGET",
        "BACKEND",
        "REFERENCE",
        "VERSION",
        "STATUS",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let mut version = r.version.clone().unwrap_or_else(|| "-".into());
            if let Some(created) = &r.created {
                match age(created) {
                    Some(age) => version.push_str(&format!(" ({created}, {} old)", short_age(age))),
                    None => version.push_str(&format!(" ({created})")),
                }
            }
            if r.lease {
                version.push_str(" [lease]");
            }
            let status = r
                .error
                .as_ref()
                .map_or_else(|| "ok".to_string(), |(kind, _)| kind.clone());
            [
                r.name.clone(),
                r.target.to_string(),
                r.backend.to_string(),
                r.reference.clone(),
                version,
                status,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cols: [&str; 6]| {
        let mut text = String::new();
        for (i, col) in cols.iter().enumerate() {
            if i == 5 {
                text.push_str(col);
            } else {
                text.push_str(&format!("{col:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", text.trim_end());
    };
    line(header);
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
    for row in rows.iter().filter(|r| !r.details.is_empty()) {
        let details: Vec<String> = row
            .details
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("  {}: {}", row.name, details.join(" "));
    }
    for (backend, identity) in identities.iter().filter(|(_, id)| !id.is_empty()) {
        let parts: Vec<String> = identity.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{backend} identity: {}", parts.join(" "));
    }
    if let Some(spec) = &plan.spec_path {
        println!("spec: {}", spec.display());
    }
    if failures.is_empty() {
        println!("{} secret(s) ok", rows.len());
    } else {
        for failure in failures {
            eprintln!("stepsecret: {failure}");
        }
        println!("{} of {} failed", failures.len(), rows.len());
    }
}

/// How long ago an RFC 3339 time was (Vault's created_time, AWS's dates), if it parses and is
/// in the past.
pub fn age(created: &str) -> Option<std::time::Duration> {
    let at =
        humantime::parse_rfc3339_weak(created.trim_end_matches('Z').split('+').next()?).ok()?;
    std::time::SystemTime::now().duration_since(at).ok()
}

/// `3d 4h`, `5h 12m`, `42s`: the two largest units.
fn short_age(age: std::time::Duration) -> String {
    let s = age.as_secs();
    let (d, h, m) = (s / 86_400, s / 3_600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}

fn print_json(
    rows: &[Row],
    identities: &[(crate::reference::Backend, Vec<(String, String)>)],
    failures: &[Failure],
) {
    let secrets: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = json!({
                "name": r.name,
                "target": r.target,
                "backend": r.backend,
                "reference": r.reference,
                "version": r.version,
                "created": r.created,
                "age_seconds": r.created.as_deref().and_then(age).map(|a| a.as_secs()),
                "lease": r.lease,
                "details": r
                    .details
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<serde_json::Map<String, Value>>(),
                "status": if r.error.is_some() { "error" } else { "ok" },
            });
            if let Some((kind, message)) = &r.error {
                v["error"] = json!({ "kind": kind, "message": message });
            }
            v
        })
        .collect();
    let identities: serde_json::Map<String, Value> = identities
        .iter()
        .map(|(b, id)| {
            let fields: serde_json::Map<String, Value> = id
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            (b.scheme().to_string(), Value::Object(fields))
        })
        .collect();
    let report = json!({
        "ok": failures.is_empty(),
        "exit_code": failures.first().map_or(0, |f| f.error.kind.exit_code()),
        "secrets": secrets,
        "identities": identities,
        "errors": failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("JSON of plain values")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_of_vault_and_aws_timestamps() {
        let long_ago = age("2020-01-02T03:04:05.123456789Z").unwrap();
        assert!(long_ago.as_secs() > 5 * 365 * 86_400);
        assert!(age("2020-01-02T03:04:05Z").is_some());
        assert!(age("2020-01-02T03:04:05+00:00").is_some());
        assert!(age("yesterday").is_none());
        assert_eq!(
            short_age(std::time::Duration::from_secs(3 * 86_400 + 7_300)),
            "3d 2h"
        );
        assert_eq!(short_age(std::time::Duration::from_secs(125)), "2m 5s");
    }
}
