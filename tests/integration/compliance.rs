//! Least privilege and compliance through the real binary: `policy` applied to a real OpenBao
//! (a matching CI token works, another project's or branch's is refused), the AWS policy's
//! shape, rotation age (`--max-age`, `[policy] max_age`), the audit record, and `scan`.

#![cfg(all(feature = "vault", feature = "aws"))]

use std::path::PathBuf;
use std::time::Duration;

use crate::support::moto::Moto;
use crate::support::openbao::{
    OpenBao, Signer, bao, bitbucket_claims, circleci_claims, configure_jwt,
};
use crate::support::{Output, Test, ran_marker};
use serde_json::{Value, json};

const PASSWORD: &str = "compliance-pw-4f1c9e2a77";
const OTHER: &str = "not-granted-9b3e1d0c55";

/// OpenBao with JWT auth trusting `signer` and two secrets: one the spec reads, one it doesn't.
fn server() -> (OpenBao, Signer) {
    let bao = OpenBao::start();
    let signer = Signer::new();
    configure_jwt(&bao, &signer);
    bao.put("prod/db", json!({ "password": PASSWORD }));
    bao.put("prod/other", json!({ "token": OTHER }));
    bao.pki();
    (bao, signer)
}

const SPEC: &str = "[vault]\nrole = \"stepsecret-ci\"\n\n[env]\nDB_PASSWORD = \"vault://secret/prod/db#password\"\n\n[files]\nTLS_KEY = \"vault://pki/issue/web?common_name=app.example.com#private_key\"\n";

/// PATH with the directory of `bao` first, so the generated script finds it.
fn path_with_bao() -> String {
    let dir = std::fs::canonicalize(bao())
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Generates the Vault policy for `flags` and applies it with the bao CLI, as a user would
/// (`stepsecret policy ... | sh`).
#[track_caller]
fn apply_vault_policy(bao: &OpenBao, flags: &[&str]) -> String {
    let test = Test::new().file("stepsecret.toml", SPEC);
    let mut args = vec!["policy", "--for", "vault"];
    args.extend(flags);
    let out = test.args(args).run();
    out.code(0).leaks_none(&[PASSWORD, OTHER]);
    let applied = std::process::Command::new("sh")
        .arg("-c")
        .arg(&out.stdout)
        .env("PATH", path_with_bao())
        .env("VAULT_ADDR", bao.url())
        .env("VAULT_TOKEN", bao.root)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "the generated script applies: {}\n{}",
        String::from_utf8_lossy(&applied.stderr),
        out.stdout
    );
    out.stdout
}

fn run_with_token(bao: &OpenBao, variable: &str, token: &str, extra: &[&str]) -> (Output, bool) {
    let test = Test::new()
        .file("stepsecret.toml", SPEC)
        .env("VAULT_ADDR", bao.url())
        .env(variable, token);
    let (marker, script) = ran_marker(&test);
    let script = format!(
        "test \"$DB_PASSWORD\" = '{PASSWORD}' && grep -q 'PRIVATE KEY' \"$TLS_KEY\" && {script}"
    );
    let mut args = vec!["run"];
    args.extend(extra);
    args.extend(["--", "sh", "-c", &script]);
    // The test (and its folder, where the marker is) must outlive the check.
    let test = test.args(args);
    let out = test.run();
    (out, marker.exists())
}

#[test]
fn a_circleci_vault_policy_admits_this_project_and_branch_only() {
    let (bao, signer) = server();
    let script = apply_vault_policy(
        &bao,
        &[
            "--ci",
            "circleci",
            "--org",
            "org-1",
            "--project",
            "proj-1",
            "--branch",
            "main",
        ],
    );
    assert!(script.contains("path \"secret/data/prod/db\""), "{script}");
    assert!(!script.contains("prod/other"), "{script}");

    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let (out, ran) = run_with_token(&bao, "CIRCLE_OIDC_TOKEN_V2", &token, &[]);
    out.code(0).stderr_is("").leaks_none(&[PASSWORD, &token]);
    assert!(ran);

    for (why, claims) in [
        (
            "another project",
            circleci_claims("org-1", "proj-2", "main"),
        ),
        (
            "another branch",
            circleci_claims("org-1", "proj-1", "feature/x"),
        ),
        ("another org", circleci_claims("org-2", "proj-1", "main")),
    ] {
        let token = signer.sign(claims);
        let (out, ran) = run_with_token(&bao, "CIRCLE_OIDC_TOKEN_V2", &token, &[]);
        assert_eq!(out.code, Some(77), "{why}: {out:?}");
        assert!(
            out.stderr.contains("refused the jwt login"),
            "{why}: {out:?}"
        );
        assert!(!ran, "{why}: the command must not run");
    }

    // The role reads what the spec names and nothing else.
    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let out = Test::new()
        .file("stepsecret.toml", SPEC)
        .env("VAULT_ADDR", bao.url())
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .args([
            "run",
            "-s",
            "X=vault://secret/prod/other#token",
            "--",
            "true",
        ])
        .run();
    out.code(77).leaks_none(&[OTHER]);
}

#[test]
fn a_bitbucket_vault_policy_admits_this_repository_only() {
    let (bao, signer) = server();
    apply_vault_policy(
        &bao,
        &[
            "--ci",
            "bitbucket",
            "--workspace",
            "{ws-1}",
            "--repo",
            "{repo-1}",
        ],
    );
    let token = signer.sign(bitbucket_claims("{ws-1}", "{repo-1}", "main"));
    let (out, ran) = run_with_token(&bao, "BITBUCKET_STEP_OIDC_TOKEN", &token, &[]);
    out.code(0).leaks_none(&[PASSWORD, &token]);
    assert!(ran);
    let token = signer.sign(bitbucket_claims("{ws-1}", "{repo-2}", "main"));
    let (out, ran) = run_with_token(&bao, "BITBUCKET_STEP_OIDC_TOKEN", &token, &[]);
    out.code(77);
    assert!(!ran);
}

#[test]
fn the_aws_policy_names_exactly_the_spec_secrets() {
    // moto does not enforce IAM, so this checks the documents' structure and contents; AWS
    // itself is the judge of whether it admits the role.
    let out = Test::new()
        .file(
            "stepsecret.toml",
            "[aws]\nregion = \"eu-west-1\"\nrole_arn = \"arn:aws:iam::123456789012:role/ci\"\n[env]\nA = \"aws-sm://prod/stripe#key\"\nB = \"aws-sm://prod/stripe#other\"\nC = \"aws-sm://arn:aws:secretsmanager:us-east-2:123456789012:secret:prod/db-AbCdEf#password\"\nD = \"aws-sm://prod/eu?region=eu-central-1\"\nV = \"vault://secret/x#y\"\n",
        )
        .args([
            "policy", "--for", "aws", "--org", "org-1", "--project", "proj-1", "--format", "json",
            "--kms-key", "arn:aws:kms:eu-west-1:123456789012:key/k-1",
        ])
        .run();
    out.code(0);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let read = &doc["permissions_policy"]["Statement"][0];
    assert_eq!(
        read["Action"],
        json!([
            "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret"
        ])
    );
    assert_eq!(
        read["Resource"],
        json!([
            "arn:aws:secretsmanager:eu-central-1:123456789012:secret:prod/eu-??????",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/stripe-??????",
            "arn:aws:secretsmanager:us-east-2:123456789012:secret:prod/db-AbCdEf",
        ])
    );
    assert_eq!(
        doc["permissions_policy"]["Statement"][1]["Action"],
        "secretsmanager:BatchGetSecretValue"
    );
    assert_eq!(
        doc["permissions_policy"]["Statement"][2]["Action"],
        "kms:Decrypt"
    );
    let trust = &doc["trust_policy"]["Statement"][0];
    assert_eq!(
        trust["Principal"]["Federated"],
        "arn:aws:iam::123456789012:oidc-provider/oidc.circleci.com/org/org-1"
    );
    assert_eq!(trust["Action"], "sts:AssumeRoleWithWebIdentity");
    assert_eq!(
        trust["Condition"]["StringEquals"]["oidc.circleci.com/org/org-1:aud"],
        "org-1"
    );
    assert_eq!(
        trust["Condition"]["StringLike"]["oidc.circleci.com/org/org-1:sub"],
        "org/org-1/project/proj-1/user/*"
    );

    let missing = Test::new()
        .file(
            "stepsecret.toml",
            "[env]\nA = \"aws-sm://prod/stripe#key\"\n",
        )
        .args(["policy", "--for", "aws", "--org", "o", "--project", "p"])
        .run();
    missing.code(64).stderr_contains("--account");
}

#[test]
fn the_aws_policy_names_exactly_the_spec_parameters() {
    let out = Test::new()
        .file(
            "stepsecret.toml",
            "[aws]\nregion = \"eu-west-1\"\nrole_arn = \"arn:aws:iam::123456789012:role/ci\"\n[env]\nA = \"aws-ssm:///prod/app/db_password\"\nB = \"aws-ssm:///prod/app/db_password?version=3\"\nC = \"aws-ssm:///prod/app/config?label=blue&region=us-east-2#key\"\nT = \"aws-ssm://top_level\"\n[expand]\nAPP_ = \"aws-ssm:///prod/app/*\"\n",
        )
        .args([
            "policy", "--for", "aws", "--org", "org-1", "--project", "proj-1", "--format", "json",
            "--kms-key", "arn:aws:kms:eu-west-1:123456789012:key/k-1",
        ])
        .run();
    out.code(0);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let statements = doc["permissions_policy"]["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 3, "{statements:#?}");
    assert_eq!(statements[0]["Action"], "ssm:GetParameters");
    assert_eq!(
        statements[0]["Resource"],
        json!([
            "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/app/db_password",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/top_level",
            "arn:aws:ssm:us-east-2:123456789012:parameter/prod/app/config",
        ])
    );
    assert_eq!(statements[1]["Action"], "ssm:GetParametersByPath");
    assert_eq!(
        statements[1]["Resource"],
        json!([
            "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/app",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/app/*",
        ])
    );
    assert_eq!(statements[2]["Action"], "kms:Decrypt");
    assert_eq!(
        statements[2]["Condition"]["StringLike"]["kms:ViaService"],
        "ssm.*.amazonaws.com"
    );
    assert!(!out.stdout.contains("secretsmanager"), "{}", out.stdout);
}

fn vault_check(bao: &OpenBao, args: &[&str], spec: &str) -> Output {
    let mut all = vec!["check"];
    all.extend(args);
    Test::new()
        .file("stepsecret.toml", spec)
        .env("VAULT_ADDR", bao.url())
        .env("VAULT_TOKEN", bao.root)
        .args(all)
        .run()
}

#[test]
fn max_age_fails_check_lists_every_offender_and_run_warns_or_refuses() {
    let bao = OpenBao::start();
    bao.put("old/a", json!({ "k": "value-a-123456" }));
    bao.put("old/b", json!({ "k": "value-b-123456" }));
    std::thread::sleep(Duration::from_millis(2100));
    bao.put("fresh", json!({ "k": "value-c-123456" }));
    let spec = "[env]\nA = \"vault://secret/old/a#k\"\nB = \"vault://secret/old/b#k\"\nC = \"vault://secret/fresh#k\"\n";

    let out = vault_check(&bao, &["--max-age", "90d"], spec);
    out.code(0);
    let out = vault_check(&bao, &["--max-age", "2s"], spec);
    out.code(65)
        .stderr_contains("A (vault://secret/old/a#k): last set ")
        .stderr_contains("B (vault://secret/old/b#k): last set ")
        .stderr_contains("older than the 2s limit");
    assert!(!out.stderr.contains("C (vault://secret/fresh"), "{out:?}");
    assert!(out.stdout.contains("too-old"), "{out:?}");

    // The same limit from the spec.
    let out = vault_check(&bao, &[], &format!("[policy]\nmax_age = \"2s\"\n{spec}"));
    out.code(65);

    // run warns and goes on; with --enforce-max-age it refuses and the command never starts.
    let test = Test::new()
        .file(
            "stepsecret.toml",
            format!("[policy]\nmax_age = \"2s\"\n{spec}"),
        )
        .env("VAULT_ADDR", bao.url())
        .env("VAULT_TOKEN", bao.root);
    let out = test.args(["run", "--", "true"]).run();
    out.code(0)
        .stderr_contains("warning: A (vault://secret/old/a#k): last set");
    let test = Test::new()
        .file(
            "stepsecret.toml",
            format!("[policy]\nmax_age = \"2s\"\n{spec}"),
        )
        .env("VAULT_ADDR", bao.url())
        .env("VAULT_TOKEN", bao.root);
    let (marker, script) = ran_marker(&test);
    let out = test
        .args(["run", "--enforce-max-age", "--", "sh", "-c", &script])
        .run();
    out.code(65).stderr_contains("older than the 2s limit");
    assert!(!marker.exists());

    let bad = vault_check(&bao, &[], &format!("[policy]\nmax_age = \"soon\"\n{spec}"));
    bad.code(78)
        .stderr_contains("stepsecret.toml:2: [policy] max_age");
}

#[test]
fn max_age_on_aws_uses_the_secret_dates() {
    let moto = Moto::start();
    let api = moto.secrets("us-east-1");
    api.create("rotated/db", "{\"password\":\"aws-pw-771d0e\"}");
    std::thread::sleep(Duration::from_millis(2100));
    let out = Test::new()
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret-key")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "check",
            "--max-age",
            "2s",
            "-s",
            "P=aws-sm://rotated/db#password",
        ])
        .run();
    out.code(65)
        .stderr_contains("P (aws-sm://rotated/db#password): last set")
        .leaks_none(&["aws-pw-771d0e"]);
}

fn read_log(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_audit_log_records_every_run_and_never_a_value() {
    let (bao, signer) = server();
    apply_vault_policy(&bao, &["--org", "org-1", "--project", "proj-1"]);
    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.jsonl");
    let key = "audit-key-0123456789abcdef";
    let test = |extra: &[(&str, &str)]| {
        let mut t = Test::new()
            .file("stepsecret.toml", SPEC)
            .env("VAULT_ADDR", bao.url())
            .env("CIRCLE_OIDC_TOKEN_V2", &token)
            .env("CIRCLECI", "true")
            .env("CIRCLE_BUILD_NUM", "4242")
            .env("CIRCLE_PROJECT_REPONAME", "app")
            .env("STEPSECRET_AUDIT_LOG", log.display().to_string())
            .env("STEPSECRET_AUDIT_KEY", key);
        for (k, v) in extra {
            t = t.env(k, v);
        }
        t
    };
    let out = test(&[])
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "env | grep -c STEPSECRET_AUDIT_KEY; exit 3",
        ])
        .run();
    out.code(3).stdout_is("0\n");
    let out = test(&[])
        .args(["run", "-s", "GONE=vault://secret/prod/none#x", "--", "true"])
        .run();
    // Outside what the generated policy grants: refused, and recorded as such.
    out.code(77);

    let text = std::fs::read_to_string(&log).unwrap();
    for forbidden in [PASSWORD, token.as_str(), key, "PRIVATE KEY"] {
        assert!(
            !text.contains(forbidden),
            "the audit log holds {forbidden:?}"
        );
    }
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&log).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let records = read_log(&log);
    assert_eq!(records.len(), 2, "one line per run");

    let first = &records[0];
    assert_eq!(first["exit_code"], 3);
    assert_eq!(first["ci"]["provider"], "circleci");
    assert_eq!(first["ci"]["CIRCLE_BUILD_NUM"], "4242");
    assert_eq!(
        first["identities"]["vault"]["sub"],
        "org/org-1/project/proj-1/user/u-1/vcs-origin/github.com/acme/app/vcs-ref/refs/heads/main"
    );
    assert_eq!(first["identities"]["vault"]["role"], "stepsecret-ci");
    // The run's phases, and where the Vault source's time went.
    for phase in [
        "plan",
        "resolve",
        "command",
        "cleanup",
        "vault login",
        "vault mounts",
        "vault reads",
        "vault revoke",
    ] {
        assert!(first["durations_ms"][phase].is_number(), "{phase}: {first}");
    }
    let vars = first["variables"].as_array().unwrap();
    let db = vars.iter().find(|v| v["name"] == "DB_PASSWORD").unwrap();
    assert_eq!(db["backend"], "vault");
    assert_eq!(db["reference"], "vault://secret/prod/db#password");
    assert_eq!(db["version"], "1");
    assert_eq!(db["length"], PASSWORD.len());
    assert_eq!(
        db["hmac_sha256"],
        stepsecret::audit::hmac_hex(key.as_bytes(), PASSWORD.as_bytes())
    );
    let tls = vars.iter().find(|v| v["name"] == "TLS_KEY").unwrap();
    assert!(
        tls["lease_id"]
            .as_str()
            .unwrap()
            .starts_with("pki/issue/web/"),
        "{tls}"
    );
    assert_eq!(tls["lease_revoked"], "revoked");

    let second = &records[1];
    assert_eq!(second["exit_code"], 77);
    assert!(
        second["error"].as_str().unwrap().contains("GONE"),
        "{second}"
    );
}

#[test]
fn scan_finds_files_holding_a_value_by_name_never_printing_it() {
    let bao = OpenBao::start();
    bao.put("prod/db", json!({ "password": PASSWORD }));
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.jsonl");
    let key = "scan-key-0123456789abcdef";
    let out = Test::new()
        .env("VAULT_ADDR", bao.url())
        .env("VAULT_TOKEN", bao.root)
        .env("STEPSECRET_AUDIT_KEY", key)
        .args([
            "run",
            "--audit-log",
            &log.display().to_string(),
            "-s",
            "DB_PASSWORD=vault://secret/prod/db#password",
            "--",
            "true",
        ])
        .run();
    out.code(0);

    let workspace = Test::new()
        .file(
            "artifacts/report.xml",
            format!("<failure>connect failed: postgres://app:{PASSWORD}@db/app</failure>"),
        )
        .file("artifacts/clean.log", "nothing to see here\n")
        .file("artifacts/nested/deeper.txt", PASSWORD);
    let scan = |paths: &[&str]| {
        let mut args = vec![
            "scan".to_string(),
            "--audit-log".into(),
            log.display().to_string(),
        ];
        args.extend(
            paths
                .iter()
                .map(|p| workspace.path().join(p).display().to_string()),
        );
        let mut cmd = workspace.command();
        cmd.args(&args).env("STEPSECRET_AUDIT_KEY", key);
        let out = cmd.output().unwrap();
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let out = scan(&["artifacts"]);
    out.code(1).leaks_none(&[PASSWORD]);
    assert!(
        out.stdout
            .contains("report.xml: contains the value of DB_PASSWORD"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("deeper.txt: contains the value of DB_PASSWORD"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("clean.log"), "{out:?}");
    scan(&["artifacts/clean.log"]).code(0);
}

#[test]
fn policy_names_the_role_the_spec_logs_in_as() {
    let spec = "[vault]\nrole = \"ci-deploy\"\n\n[aws]\nrole_arn = \"arn:aws:iam::123456789012:role/ci/deploy-role\"\n\n[env]\nA = \"vault://secret/x#k\"\nB = \"aws-sm://prod/db#k\"\n";
    let ids = ["--org", "o", "--project", "p"];
    let vault = |extra: &[&str]| {
        let mut args = vec!["policy", "--for", "vault"];
        args.extend(ids);
        args.extend(extra);
        Test::new().file("stepsecret.toml", spec).args(args).run()
    };
    let out = vault(&[]);
    out.code(0).stderr_is("");
    assert!(
        out.stdout.contains("policy write ci-deploy -"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("auth/jwt/role/ci-deploy -"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("stepsecret-ci"), "{}", out.stdout);
    // A --name that disagrees is used, with a warning saying what the spec's runs look for.
    let out = vault(&["--name", "other"]);
    out.code(0).stderr_is("stepsecret: warning: --name other differs from the spec's [vault] role (ci-deploy): runs of this spec log in as ci-deploy, not other\n");
    assert!(
        out.stdout.contains("auth/jwt/role/other -"),
        "{}",
        out.stdout
    );

    let mut args = vec![
        "policy",
        "--for",
        "aws",
        "--region",
        "eu-west-1",
        "--format",
        "json",
    ];
    args.extend(ids);
    let out = Test::new().file("stepsecret.toml", spec).args(args).run();
    out.code(0);
    let policy: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(policy["role_name"], "deploy-role");
}
