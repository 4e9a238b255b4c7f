//! Snapshots of the command line: every `tests/cmd/*.toml` case runs the binary once and pins
//! its exit code, stdout and stderr (see `tests/cmd/README.md`). `TRYCMD=overwrite cargo test
//! --test integration cli_snapshots` rewrites the snapshots after a deliberate change; review the diff.

use std::path::Path;

use base64::Engine;

#[test]
fn cli_snapshots() {
    trycmd::TestCases::new().case("tests/cmd/*.toml");
}

/// The values sealed in `tests/cmd/demo.in/*.age` that are long enough to be masked.
const DEMO_VALUES: [&str; 4] = [
    "s3cr3t-token-value",
    "demo-user-name",
    "hunter2-but-longer",
    "plain-json-value",
];

/// Every case runs with an empty environment (plus what it adds), in a fixture folder, and
/// no snapshot shows a demo value or its base64 (a value appears only as `[masked:NAME]`).
#[test]
fn snapshot_cases_are_hermetic_and_show_no_secret() {
    let dir = Path::new("tests/cmd");
    let mut cases = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        cases += 1;
        let shown = path.display();
        let case: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        assert_eq!(
            case.get("env").and_then(|e| e.get("inherit")),
            Some(&toml::Value::Boolean(false)),
            "{shown}: set env.inherit = false (the caller's VAULT_*, AWS_*, CI tokens must not leak in)"
        );
        assert!(
            case.get("fs").and_then(|f| f.get("cwd")).is_some()
                || path.with_extension("in").is_dir(),
            "{shown}: run in a fixture folder (fs.cwd or a .in folder), not the repository root"
        );
        for stream in ["stdout", "stderr"] {
            let inline = case
                .get(stream)
                .and_then(toml::Value::as_str)
                .map(str::to_string);
            let file = std::fs::read_to_string(path.with_extension(stream)).ok();
            let Some(text) = inline.or(file) else {
                panic!("{shown}: pin {stream} (an empty string for none)");
            };
            for value in DEMO_VALUES {
                for form in [
                    value.to_string(),
                    base64::engine::general_purpose::STANDARD.encode(value),
                ] {
                    assert!(
                        !text.contains(&form),
                        "{shown}: {stream} shows a secret value ({form})"
                    );
                }
            }
        }
    }
    assert!(cases > 0, "no case in {}", dir.display());
}
