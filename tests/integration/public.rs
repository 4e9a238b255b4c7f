//! Values that are not secret (`[mask] public`, `--public`, STEPSECRET_PUBLIC): set as usual,
//! never masked, shown as public by `check`, left out of the audit record's HMACs; a public
//! name that names no variable is a spec error before anything runs.

use crate::support::{AgeKey, Test, ran_marker};

const HOST: &str = "db.internal.example.com";
const PORT: &str = "54321";
const PASSWORD: &str = "Tr0ub4dor-and-3";

/// A test dir with `db.json.age` (host, port, password) and the identity in the environment.
fn db() -> Test {
    let key = AgeKey::generate();
    let json = format!(r#"{{"host":"{HOST}","port":"{PORT}","password":"{PASSWORD}"}}"#);
    Test::new()
        .file("db.json.age", key.seal(json.as_bytes(), false))
        .env("STEPSECRET_AGE_IDENTITY", key.secret())
}

const SPEC: &str = "[env]\nPG_HOST = \"age://db.json.age#host\"\nPG_PORT = \"age://db.json.age#port\"\nPG_PASSWORD = \"age://db.json.age#password\"\n";
const ECHO: &str = r#"echo "$PG_HOST:$PG_PORT $PG_PASSWORD""#;

#[test]
fn public_values_from_the_spec_are_set_and_shown_and_secrets_stay_masked() {
    db().file(
        "stepsecret.toml",
        format!("{SPEC}\n[mask]\npublic = [\"PG_HOST\", \"PG_PORT\"]\n"),
    )
    .args(["run", "--", "sh", "-c", ECHO])
    .run()
    .code(0)
    .stdout_is(&format!("{HOST}:{PORT} [masked:PG_PASSWORD]\n"))
    .leaks_none(&[PASSWORD]);
}

#[test]
fn public_names_from_the_flag_and_the_environment_add_to_the_spec() {
    let spec = format!("{SPEC}\n[mask]\npublic = [\"PG_HOST\"]\n");
    db().file("stepsecret.toml", &spec)
        .args(["run", "--public", "PG_PORT", "--", "sh", "-c", ECHO])
        .run()
        .code(0)
        .stdout_is(&format!("{HOST}:{PORT} [masked:PG_PASSWORD]\n"));
    db().file("stepsecret.toml", SPEC)
        .env("STEPSECRET_PUBLIC", "PG_HOST,PG_PORT")
        .args(["run", "--", "sh", "-c", ECHO])
        .run()
        .code(0)
        .stdout_is(&format!("{HOST}:{PORT} [masked:PG_PASSWORD]\n"));
    // Without them, everything is masked.
    db().file("stepsecret.toml", SPEC)
        .args(["run", "--", "sh", "-c", ECHO])
        .run()
        .code(0)
        .stdout_is("[masked:PG_HOST]:[masked:PG_PORT] [masked:PG_PASSWORD]\n");
}

#[test]
fn redact_leaves_public_values_alone() {
    db().file("stepsecret.toml", SPEC)
        .args(["redact", "--public", "PG_HOST"])
        .stdin(format!("connect {HOST} as {PASSWORD}\n"))
        .run()
        .code(0)
        .stdout_is(&format!("connect {HOST} as [masked:PG_PASSWORD]\n"));
}

#[test]
fn a_public_name_that_names_no_variable_is_a_spec_error_and_nothing_runs() {
    let t = db().file(
        "stepsecret.toml",
        format!("{SPEC}\n[mask]\npublic = [\"PG_HOTS\"]\n"),
    );
    let (marker, script) = ran_marker(&t);
    t.args(["run", "--", "sh", "-c", &script])
        .run()
        .code(78)
        .stderr_is("stepsecret: stepsecret.toml:7: [mask] public: PG_HOTS names no variable of this run; list only variables the spec sets\n");
    assert!(!marker.exists(), "the command ran");

    // One an expansion might produce is checked once the expansion ran.
    let t = db().file(
        "stepsecret.toml",
        "[expand]\nPG_ = \"age://db.json.age#*\"\n\n[mask]\npublic = [\"PG_HOST\", \"PG_NOPE\"]\n",
    );
    let (marker, script) = ran_marker(&t);
    t.args(["run", "--", "sh", "-c", &script])
        .run()
        .code(78)
        .stderr_contains("PG_NOPE names no variable of this run");
    assert!(!marker.exists(), "the command ran");
}

#[test]
fn expanded_public_names_are_not_masked() {
    db().file(
        "stepsecret.toml",
        "[expand]\nPG_ = \"age://db.json.age#*\"\n\n[mask]\npublic = [\"PG_HOST\"]\n",
    )
    .args(["run", "--", "sh", "-c", r#"echo "$PG_HOST $PG_PASSWORD""#])
    .run()
    .code(0)
    .stdout_is(&format!("{HOST} [masked:PG_PASSWORD]\n"));
}

#[test]
fn check_shows_public_names_and_the_audit_record_has_no_hmac_for_them() {
    let spec = format!("{SPEC}\n[mask]\npublic = [\"PG_HOST\"]\n");
    db().file("stepsecret.toml", &spec)
        .args(["check"])
        .run()
        .code(0)
        .stdout_contains_all(&["public (set, never masked): PG_HOST\n"]);
    let out = db()
        .file("stepsecret.toml", &spec)
        .args(["check", "--format", "json"])
        .run();
    out.code(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let public: Vec<(&str, bool)> = report["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["public"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        public,
        [
            ("PG_HOST", true),
            ("PG_PASSWORD", false),
            ("PG_PORT", false)
        ]
    );

    let t = db()
        .file("stepsecret.toml", &spec)
        .env("STEPSECRET_AUDIT_KEY", "an-audit-key-of-32-bytes-or-more!");
    let log = t.path().join("audit.jsonl");
    let t = t.args(["run", "--audit-log", log.to_str().unwrap(), "--", "true"]);
    t.run().code(0);
    let record: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    for var in record["variables"].as_array().unwrap() {
        let public = var["name"] == "PG_HOST";
        assert_eq!(var.get("public").is_some(), public, "{var}");
        assert_eq!(var.get("hmac_sha256").is_some(), !public, "{var}");
    }
}
