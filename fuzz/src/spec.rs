//! `spec`: any text through `Spec::parse`, then through `Plan::build` the way a run reads a
//! spec file. Neither may panic, every error is one line and starts with where (`FILE:LINE: `,
//! or a template's `TEMPLATE:LINE: `), and when the plan builds, its entries are exactly the
//! spec's entries, in table order, each with a valid name, a parsed reference and the line its
//! name is on. A spec with `[templates]` or `path = "..."` may also be refused for a template
//! file or a path (which this oracle does not model), always with exit 78.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use stepsecret::cli::SpecArgs;
use stepsecret::env::Env;
use stepsecret::plan::{Plan, Target, is_env_name};
use stepsecret::reference::{Reference, Selector};
use stepsecret::spec::Spec;

use crate::is_one_line;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
}

/// A spec path of this process's own, for `Plan::build`, which reads the spec from a file.
fn spec_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("stepsecret-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir.join("stepsecret.toml")
    })
}

/// What `Plan` should make of one spec entry.
#[derive(Debug)]
struct Expected {
    name: String,
    target: Target,
    reference: String,
    expand: Option<String>,
    line: usize,
    /// The entry is invalid (bad name, reserved name, bad reference, #* in [files]).
    invalid: bool,
}

pub fn check(text: &str) {
    let lines = text.lines().count().max(1) + 1;
    let path = spec_path();
    let prefix = format!("{}:", path.display());

    let spec = match Spec::parse(path, text.to_string()) {
        Ok(spec) => spec,
        Err(e) => {
            let message = e.to_string();
            assert!(is_one_line(&message), "multi-line spec error: {message:?}");
            assert!(message.starts_with(&prefix), "{message:?}");
            return;
        }
    };

    // The entries the plan is built from, computed here with the public API.
    let mut expected: Vec<Expected> = Vec::new();
    // (name, reference) of each table, in the order the plan takes them.
    let env = spec.file.env.iter().map(|(n, r)| (n, r.get_ref().clone()));
    let files = spec
        .file
        .files
        .iter()
        .map(|(n, f)| (n, f.get_ref().reference.clone()));
    let values = spec
        .file
        .values
        .iter()
        .map(|(n, r)| (n, r.get_ref().clone()));
    let expand = spec
        .file
        .expand
        .iter()
        .map(|(n, r)| (n, r.get_ref().clone()));
    let tables: [(Vec<_>, Target, bool); 4] = [
        (env.collect(), Target::Env, false),
        (files.collect(), Target::File, false),
        (values.collect(), Target::Value, false),
        (expand.collect(), Target::Env, true),
    ];
    let unmodelled = !spec.file.templates.is_empty()
        || spec.file.files.values().any(|f| f.get_ref().path.is_some());
    for (table, target, expand_table) in tables {
        for (name, reference) in table {
            let line = spec.line(name.span().start);
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
            assert_eq!(line, spec.line(name.span().start.min(text.len())));
            let name = name.get_ref().clone();
            let name_ok = if expand_table {
                name.is_empty() || is_env_name(&name)
            } else {
                is_env_name(&name)
            };
            let parsed = reference.parse::<Reference>();
            let mut invalid = !name_ok || name.starts_with("STEPSECRET_") || parsed.is_err();
            let mut expand = None;
            if let Ok(r) = &parsed {
                if expand_table {
                    expand = Some(name.clone());
                } else if r.selector == Selector::All {
                    invalid |= target == Target::File;
                    expand = Some(format!("{name}_"));
                }
            }
            expected.push(Expected {
                name,
                target,
                reference,
                expand,
                line,
                invalid,
            });
        }
    }
    let mut keys = BTreeSet::new();
    let duplicate = expected.iter().any(|e| {
        let key = match &e.expand {
            Some(prefix) => format!("[expand] {prefix}"),
            None => e.name.clone(),
        };
        !keys.insert(key)
    });
    let any_invalid = expected.iter().any(|e| e.invalid);

    std::fs::write(path, text).expect("writing the spec copy");
    let args = SpecArgs {
        spec: Some(path.to_path_buf()),
        secret: Vec::new(),
        file: Vec::new(),
        secrets: None,
        public: Vec::new(),
        timeout: Duration::from_secs(1),
    };
    match Plan::build(&args, &Env::default()) {
        Ok(plan) => {
            assert!(
                !any_invalid,
                "a plan built from invalid entries: {expected:?}"
            );
            assert!(!duplicate, "a plan built with a name twice: {expected:?}");
            assert_eq!(plan.entries.len(), expected.len());
            for (entry, want) in plan.entries.iter().zip(&expected) {
                assert_eq!(entry.name, want.name);
                assert_eq!(entry.target, want.target);
                assert_eq!(entry.reference.raw, want.reference);
                assert_eq!(entry.expand, want.expand);
                assert_eq!(entry.origin.to_string(), format!("{prefix}{}", want.line));
            }
            assert_eq!(plan.spec_path.as_deref(), Some(path));
            assert_eq!(plan.base_dir, path.parent().unwrap());
        }
        Err(e) => {
            let message = e.to_string();
            assert!(is_one_line(&message), "multi-line plan error: {message:?}");
            assert_eq!(e.exit_code(), 78, "{message}");
            if !unmodelled {
                assert!(message.starts_with(&prefix), "{message:?}");
                assert!(
                    any_invalid || duplicate,
                    "the plan refused valid entries: {message}\n{expected:?}"
                );
            }
        }
    }
}
