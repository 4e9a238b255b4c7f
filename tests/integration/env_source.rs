//! `env://`: a variable the job already has, brought under stepsecret's scoping and masking,
//! through the real binary.

use crate::support::{Test, ran_marker};

const TOKEN: &str = "ctx-token-5b9e2f71d4";

#[test]
fn an_env_reference_is_scoped_to_its_new_name_and_masked_in_every_form() {
    Test::new()
        .env("CI_DEPLOY_TOKEN", TOKEN)
        .args([
            "run",
            "-s",
            "DEPLOY=env://CI_DEPLOY_TOKEN",
            "--",
            "sh",
            "-c",
            r#"test "$DEPLOY" = "ctx-token-5b9e2f71d4" && echo "$DEPLOY" && printf %s "$DEPLOY" | base64 && echo "original=${CI_DEPLOY_TOKEN-unset}""#,
        ])
        .run()
        .code(0)
        .stdout_is("[masked:DEPLOY]\n[masked:DEPLOY]\noriginal=unset\n")
        .leaks_none(&[TOKEN]);
}

#[test]
fn a_name_the_spec_sets_itself_is_kept_and_json_keys_are_selected() {
    Test::new()
        .env("CI_DEPLOY_TOKEN", TOKEN)
        .env("DB_JSON", r#"{"user":"app","password":"db-pw-1c8e4a"}"#)
        .file(
            "stepsecret.toml",
            "[env]\nCI_DEPLOY_TOKEN = \"env://CI_DEPLOY_TOKEN\"\nDB_PASSWORD = \"env://DB_JSON#password\"\n",
        )
        .args([
            "run",
            "--",
            "sh",
            "-c",
            r#"test "$CI_DEPLOY_TOKEN" = "ctx-token-5b9e2f71d4" && test "$DB_PASSWORD" = db-pw-1c8e4a && echo "${DB_JSON-unset} $DB_PASSWORD""#,
        ])
        .run()
        .code(0)
        .stdout_is("unset [masked:DB_PASSWORD]\n")
        .leaks_none(&[TOKEN, "db-pw-1c8e4a"]);
}

#[test]
fn an_unset_or_empty_variable_fails_like_a_missing_secret() {
    for value in [None, Some("")] {
        let mut t = Test::new();
        if let Some(value) = value {
            t = t.env("CI_DEPLOY_TOKEN", value);
        }
        let (marker, script) = ran_marker(&t);
        t.args(["run", "-s", "DEPLOY=env://CI_DEPLOY_TOKEN", "--", "sh", "-c", &script])
            .run()
            .code(69)
            .stderr_contains("DEPLOY (env://CI_DEPLOY_TOKEN): CI_DEPLOY_TOKEN is not set in the job's environment (or is empty)");
        assert!(!marker.exists(), "the command ran");
    }
}

#[test]
fn the_audit_record_holds_the_name_and_hmac_never_the_value() {
    let t = Test::new()
        .env("CI_DEPLOY_TOKEN", TOKEN)
        .env("STEPSECRET_AUDIT_KEY", "an-audit-key-of-32-bytes-or-more!");
    let log = t.path().join("audit.jsonl");
    let t = t.args([
        "run",
        "--audit-log",
        log.to_str().unwrap(),
        "-s",
        "DEPLOY=env://CI_DEPLOY_TOKEN",
        "--",
        "true",
    ]);
    t.run().code(0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(TOKEN), "the audit log holds the value");
    let record: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let var = &record["variables"][0];
    assert_eq!(var["name"], "DEPLOY");
    assert_eq!(var["backend"], "env");
    assert_eq!(var["reference"], "env://CI_DEPLOY_TOKEN");
    assert_eq!(
        var["hmac_sha256"].as_str().unwrap(),
        stepsecret::audit::hmac_hex(b"an-audit-key-of-32-bytes-or-more!", TOKEN.as_bytes())
    );
}
