//! `stepsecret check`: resolve and authenticate everything, print what would be set (names,
//! backends, references, versions), never a value. Exits non-zero when anything fails.

use serde_json::{Value, json};

use crate::cli::{CheckArgs, Format};
use crate::env::Env;
use crate::error::{Error, ErrorKind, Failure, SourceError};
use crate::plan::Plan;
use crate::resolve::{collisions, resolve_with};
use crate::rotation;
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
    /// Listed as public: set as usual, never masked.
    public: bool,
    details: Vec<(String, String)>,
    error: Option<(String, String)>,
}

pub(super) fn check(args: CheckArgs, env: &Env) -> Result<u8, Error> {
    let plan = Plan::build(&args.spec, env)?;
    let cx = FetchContext::new(plan.timeout).for_check();
    let outcome = resolve_with(&plan, cx, &|| None)?;
    let max_age = args.max_age.or(plan.max_age);
    let mut rows = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    for (i, result) in outcome.entries.iter().enumerate() {
        let entry = &plan.entries[i];
        let row = |name: String| Row {
            public: plan.is_public(&name),
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
            Ok(vars) => {
                for v in vars {
                    let too_old = max_age.and_then(|limit| rotation::stale(&v.meta, limit));
                    if let Some(why) = &too_old {
                        failures.push(Failure {
                            name: v.name.clone(),
                            reference: entry.reference.raw.clone(),
                            error: SourceError::new(ErrorKind::Stale, why.clone()),
                        });
                    }
                    rows.push(Row {
                        version: v.meta.version.clone(),
                        created: rotation::set_at(&v.meta).map(str::to_string),
                        lease: v.meta.lease_id.is_some(),
                        details: v.meta.details.clone(),
                        error: too_old.map(|why| (ErrorKind::Stale.as_str().to_string(), why)),
                        ..row(v.name.clone())
                    });
                }
            }
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
    if failures.is_empty() {
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        plan.check_public(&names)?;
    }
    let identities = outcome.sources.identities();

    match args.format {
        Format::Text => print_text(&plan, &rows, &identities, &failures),
        Format::Json => print_json(&plan, &rows, &identities, &failures),
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
                match rotation::age(created) {
                    Some(age) => {
                        version.push_str(&format!(" ({created}, {} old)", rotation::short(age)))
                    }
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
    let public: Vec<&str> = rows
        .iter()
        .filter(|r| r.public)
        .map(|r| r.name.as_str())
        .collect();
    if !public.is_empty() {
        println!("public (set, never masked): {}", public.join(", "));
    }
    print_files(plan);
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

/// One line per file at a chosen path and per template (and the template's file).
fn print_files(plan: &Plan) {
    for file in files(plan) {
        let exists = if file.exists {
            " (exists: run refuses to overwrite it)"
        } else {
            ""
        };
        let reads = if file.reads.is_empty() {
            String::new()
        } else {
            format!(", reads {}", file.reads.join(", "))
        };
        println!(
            "{} {}: {}{exists}{reads}",
            file.kind,
            file.name,
            file.path.as_deref().unwrap_or("private directory"),
        );
        if let Some(template) = &file.template {
            println!("  template: {template}");
        }
    }
}

/// A file the run writes, as `check` lists it: never its contents.
struct FileRow {
    kind: &'static str,
    name: String,
    /// The chosen path; `None` for the private directory.
    path: Option<String>,
    exists: bool,
    template: Option<String>,
    /// The variables a template reads.
    reads: Vec<String>,
}

/// The files at chosen paths and the templates of the plan.
fn files(plan: &Plan) -> Vec<FileRow> {
    let shown = |p: Option<&std::path::PathBuf>| p.map(|p| p.display().to_string());
    let exists = |p: Option<&std::path::PathBuf>| p.is_some_and(|p| p.symlink_metadata().is_ok());
    let files = plan
        .entries
        .iter()
        .filter(|e| e.path.is_some())
        .map(|e| FileRow {
            kind: "file",
            name: e.name.clone(),
            path: shown(e.path.as_ref()),
            exists: exists(e.path.as_ref()),
            template: None,
            reads: Vec::new(),
        });
    let templates = plan.templates.iter().map(|t| FileRow {
        kind: "template",
        name: t.name.clone(),
        path: shown(t.path.as_ref()),
        exists: exists(t.path.as_ref()),
        template: Some(t.template.path().display().to_string()),
        reads: t
            .template
            .variables()
            .iter()
            .map(|(n, _)| n.clone())
            .collect(),
    });
    files.chain(templates).collect()
}

fn print_json(
    plan: &Plan,
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
                "age_seconds": r.created.as_deref().and_then(rotation::age).map(|a| a.as_secs()),
                "lease": r.lease,
                "public": r.public,
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
        "files": files(plan).iter().map(|f| json!({
            "kind": f.kind,
            "name": f.name,
            "path": f.path,
            "exists": f.exists,
            "template": f.template,
            "reads": f.reads,
        })).collect::<Vec<_>>(),
        "identities": identities,
        "errors": failures.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("JSON of plain values")
    );
}
