//! `check`, `redact`, `seal`, `--version` and `--help` through the real binary.

use crate::support::{AgeKey, Test};

const TOKEN: &str = "chk-5e8d1a7c3f";

fn with_secrets() -> Test {
    let key = AgeKey::generate();
    Test::new()
        .file("ci/s.age", key.seal(format!("{{\"token\": \"{TOKEN}\", \"db\": {{\"pass\": \"pw-{TOKEN}\"}}}}").as_bytes(), true))
        .file(
            "ci/stepsecret.toml",
            "[env]\nTOKEN = \"age://s.age#token\"\nDB_PASS = \"age://s.age#/db/pass\"\n\n[files]\nCONF = \"age://s.age\"\n",
        )
        .env("STEPSECRET_AGE_IDENTITY", key.secret())
        .env("STEPSECRET_SPEC", "ci/stepsecret.toml")
}

#[test]
fn check_lists_every_secret_and_never_a_value() {
    let out = with_secrets().args(["check"]).run();
    out.code(0).leaks_none(&[TOKEN]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("REFERENCE"),
        "{out:?}"
    );
    for (name, target, reference) in [
        ("TOKEN", "env", "age://s.age#token"),
        ("DB_PASS", "env", "age://s.age#/db/pass"),
        ("CONF", "file", "age://s.age"),
    ] {
        let row = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1..4], [target, "age", reference], "{row}");
        assert!(row.ends_with("ok"), "{row}");
    }
    assert!(out.stdout.contains("3 secret(s) ok"));
}

#[test]
fn check_reports_every_failure_and_exits_non_zero() {
    let t = with_secrets().file(
        "ci/stepsecret.toml",
        "[env]\nTOKEN = \"age://s.age#token\"\nNOPE = \"age://s.age#nope\"\nGONE = \"age://gone.age#x\"\n",
    );
    let out = t.args(["check", "--format", "json"]).run();
    out.code(69).leaks_none(&[TOKEN]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["exit_code"], 69);
    let status: Vec<(String, String)> = report["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("GONE".into(), "error".into()),
            ("NOPE".into(), "error".into()),
            ("TOKEN".into(), "ok".into())
        ]
    );
    assert_eq!(report["errors"].as_array().unwrap().len(), 2);
    assert_eq!(report["secrets"][0]["error"]["kind"], "not-found");
}

#[test]
fn redact_filters_stdin_with_the_specs_secrets_and_named_variables() {
    with_secrets()
        .env("OTHER", "other-secret-value")
        .args(["redact", "--env", "OTHER"])
        .stdin(format!(
            "a {TOKEN} b other-secret-value c pw-{TOKEN}\nno newline at the end"
        ))
        .run()
        .code(0)
        .stdout_is("a [masked:TOKEN] b [masked:OTHER] c [masked:DB_PASS]\nno newline at the end");
}

#[test]
fn redact_without_secrets_is_a_usage_error() {
    Test::new()
        .args(["redact"])
        .stdin("x")
        .run()
        .code(64)
        .stderr_contains("nothing to mask");
}

#[test]
fn seal_validates_and_never_overwrites() {
    let key = AgeKey::generate();
    let recipient = key.recipient();
    let t = Test::new()
        .file("bad.env", "GOOD=1\nBAD LINE\n")
        .file("ok.env", "A=1234\n")
        .args(["seal", "-r", &recipient, "bad.env"]);
    t.run()
        .code(64)
        .stderr_contains("bad.env: is neither a JSON object nor valid dotenv (line 2:");
    assert!(!t.path().join("bad.env.age").exists());

    let dir = t.path().to_path_buf();
    let seal = |args: &[&str]| {
        std::process::Command::new(crate::support::binary())
            .current_dir(&dir)
            .args(["seal", "-r", &recipient])
            .args(args)
            .output()
            .unwrap()
    };
    assert!(seal(&["-a", "ok.env"]).status.success());
    let sealed = std::fs::read_to_string(dir.join("ok.env.age")).unwrap();
    assert!(
        sealed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{sealed}"
    );
    let again = seal(&["ok.env"]);
    assert_eq!(again.status.code(), Some(74));
    assert!(String::from_utf8_lossy(&again.stderr).contains("use --force"));
    assert!(seal(&["--force", "ok.env"]).status.success());
    assert!(
        !std::fs::read(dir.join("ok.env.age"))
            .unwrap()
            .starts_with(b"-----BEGIN")
    );

    Test::new()
        .args(["seal", "-r", "age1notakey", "x"])
        .run()
        .code(64)
        .stderr_contains("is not an age recipient");
    Test::new()
        .args(["seal", "x"])
        .run()
        .code(64)
        .stderr_contains("no recipients");
}

#[test]
fn version_and_help() {
    let out = Test::new().args(["--version"]).run();
    out.code(0);
    assert_eq!(
        out.stdout,
        format!("stepsecret {}\n", env!("CARGO_PKG_VERSION"))
    );
    let help = Test::new().args(["run", "--help"]).run();
    help.code(0);
    for flag in [
        "--spec",
        "--secret",
        "--file",
        "--timeout",
        "--no-redact",
        "STEPSECRET_SPEC",
        "Example",
    ] {
        assert!(help.stdout.contains(flag), "run --help lacks {flag}");
    }
}
