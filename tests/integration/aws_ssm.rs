//! The aws-ssm:// source end to end: the real binary, a real moto server (which serves SSM
//! Parameter Store) and the AWS proxy in front of it, which counts calls and, for throttling
//! moto cannot produce, answers in its place.
//!
//! Every test asserts that no parameter value appears in stepsecret's output; the child checks
//! its values itself (`expect_env`), so they are never printed.

#![cfg(feature = "aws")]

use serde_json::json;

use std::time::{Duration, Instant};

use crate::aws::{Aws, REGION, ROLE, expect_env, jwt, run_sh, unique};
use crate::support::moto::ParametersApi;
use crate::support::proxy::aws::{Fault, Rule};
use crate::support::ran_marker;

fn api(aws: &Aws) -> ParametersApi {
    aws.moto.parameters(REGION)
}

/// The names each GetParameters call asked for.
fn get_parameters_calls(aws: &Aws) -> Vec<Vec<String>> {
    aws.proxy
        .calls_to("GetParameters")
        .iter()
        .map(|c| {
            c.json()["Names"]
                .as_array()
                .expect("Names")
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn every_type_versions_labels_and_json_keys() {
    let aws = Aws::start();
    let api = api(&aws);
    let plain = unique("plain");
    let secure = unique("secure");
    let list = format!("{},{}", unique("one"), unique("two"));
    let (old, new) = (unique("old"), unique("new"));
    let password = unique("json-password");
    api.put("/ci/plain", "String", &plain);
    api.put("/ci/secure", "SecureString", &secure);
    api.put("/ci/list", "StringList", &list);
    let v1 = api.put("/ci/rotating", "SecureString", &old);
    let v2 = api.put("/ci/rotating", "SecureString", &new);
    assert_eq!((v1, v2), (1, 2));
    api.label("/ci/rotating", 1, &["blue"]);
    api.put(
        "/ci/config",
        "SecureString",
        &json!({"db": {"password": password}, "user": "app"}).to_string(),
    );

    let spec = "[env]\n\
        PLAIN = \"aws-ssm:///ci/plain\"\n\
        SECURE = \"aws-ssm:///ci/secure\"\n\
        LIST = \"aws-ssm:///ci/list\"\n\
        CURRENT = \"aws-ssm:///ci/rotating\"\n\
        FIRST = \"aws-ssm:///ci/rotating?version=1\"\n\
        SECOND = \"aws-ssm:///ci/rotating?version=2\"\n\
        BLUE = \"aws-ssm:///ci/rotating?label=blue\"\n\
        DB_PASSWORD = \"aws-ssm:///ci/config#/db/password\"\n\
        DB_USER = \"aws-ssm:///ci/config#user\"\n";
    let t = aws.test().file("stepsecret.toml", spec);
    let script = expect_env(&[
        ("PLAIN", &plain),
        ("SECURE", &secure),
        ("LIST", &list),
        ("CURRENT", &new),
        ("FIRST", &old),
        ("SECOND", &new),
        ("BLUE", &old),
        ("DB_PASSWORD", &password),
        ("DB_USER", "app"),
    ]);
    let values = [&plain, &secure, &list, &old, &new, &password];
    let values: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
    run_sh(&t, &[], &script).code(0).leaks_none(&values);

    // Three selectors of one name never share a call; everything else is batched.
    let calls = get_parameters_calls(&aws);
    assert!(calls.iter().all(|names| names.len() <= 10), "{calls:?}");
    assert_eq!(calls.len(), 4, "{calls:?}");
    for call in &aws.proxy.calls_to("GetParameters") {
        assert_eq!(call.json()["WithDecryption"], true);
    }
    aws.assert_no_imds();

    // check shows each version, and when it was last modified (its age).
    let check = aws
        .test()
        .args([
            "check",
            "-s",
            "CURRENT=aws-ssm:///ci/rotating",
            "-s",
            "BLUE=aws-ssm:///ci/rotating?label=blue",
        ])
        .run();
    check.code(0).leaks_none(&values);
    assert!(check.stdout.contains("type=SecureString"), "{check:#?}");
    assert!(check.stdout.contains(" old)"), "{check:#?}");
    assert_eq!(aws.proxy.count("GetCallerIdentity"), 1);
}

#[test]
fn a_path_with_more_than_ten_parameters_is_paged_and_expanded() {
    let aws = Aws::start();
    let api = api(&aws);
    let mut pairs: Vec<(String, String)> = Vec::new();
    for i in 0..12 {
        let value = unique(&format!("path-{i}"));
        api.put(&format!("/app/ci/key{i:02}"), "SecureString", &value);
        pairs.push((format!("APP_KEY{i:02}"), value));
    }
    let host = unique("host");
    api.put("/app/ci/db-host.name", "String", &host);
    pairs.push(("APP_DB_HOST_NAME".into(), host));
    // Not directly under the path: not recursive.
    let deep = unique("deep");
    api.put("/app/ci/nested/deep", "String", &deep);

    let spec = "[expand]\nAPP_ = \"aws-ssm:///app/ci/*\"\n";
    let t = aws.test().file("stepsecret.toml", spec);
    let expected: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let script = format!(
        "{}[ -z \"${{APP_DEEP:-}}\" ] || exit 4\n",
        expect_env(&expected)
    );
    let mut values: Vec<&str> = pairs.iter().map(|(_, v)| v.as_str()).collect();
    values.push(&deep);
    run_sh(&t, &[], &script).code(0).leaks_none(&values);

    let pages = aws.proxy.calls_to("GetParametersByPath");
    assert!(pages.len() >= 2, "{} pages", pages.len());
    for page in &pages {
        let body = page.json();
        assert_eq!(body["Path"], "/app/ci");
        assert_eq!(body["Recursive"], false);
        assert_eq!(body["WithDecryption"], true);
    }
    assert_eq!(aws.proxy.count("GetParameters"), 0);
}

#[test]
fn missing_parameters_versions_and_labels_fail_naming_the_variable() {
    let aws = Aws::start();
    let api = api(&aws);
    let value = unique("present");
    api.put("/miss/present", "String", &value);
    let out = run_sh(
        &aws.test(),
        &[
            "-s",
            "PRESENT=aws-ssm:///miss/present",
            "-s",
            "GONE=aws-ssm:///miss/gone",
            "-s",
            "OLD=aws-ssm:///miss/present?version=7",
            "-s",
            "GREEN=aws-ssm:///miss/present?label=green",
        ],
        "exit 0",
    );
    out.code(69)
        .leaks_none(&[&value])
        .stderr_contains("GONE")
        .stderr_contains("/miss/gone")
        .stderr_contains("OLD")
        .stderr_contains("/miss/present:7")
        .stderr_contains("GREEN")
        .stderr_contains("InvalidParameters");
    assert!(!out.stderr.contains("PRESENT"), "{out:#?}");
}

#[test]
fn an_expansion_that_names_two_parameters_alike_fails_naming_both() {
    let aws = Aws::start();
    let api = api(&aws);
    let (a, b) = (unique("dash"), unique("dot"));
    api.put("/clash/db-host", "String", &a);
    api.put("/clash/db.host", "String", &b);
    let t = aws.test().file(
        "stepsecret.toml",
        "[expand]\nDB_ = \"aws-ssm:///clash/*\"\n",
    );
    let out = run_sh(&t, &[], "exit 0");
    out.code(78)
        .leaks_none(&[&a, &b])
        .stderr_contains("parameter `/clash/db-host`")
        .stderr_contains("parameter `/clash/db.host`")
        .stderr_contains("DB_DB_HOST");
}

#[test]
fn throttling_is_retried_and_a_denied_path_names_the_permission() {
    let aws = Aws::start();
    let api = api(&aws);
    let value = unique("throttled");
    api.put("/slow/key", "SecureString", &value);
    aws.proxy
        .inject(Rule::new("GetParameters", Fault::Throttle).times(3));
    run_sh(
        &aws.test(),
        &["-s", "KEY=aws-ssm:///slow/key"],
        &expect_env(&[("KEY", &value)]),
    )
    .code(0)
    .leaks_none(&[&value]);
    assert_eq!(
        aws.proxy.count("GetParameters"),
        4,
        "3 throttled, then moto"
    );

    aws.proxy
        .inject(Rule::new("GetParametersByPath", Fault::AccessDenied));
    let t = aws
        .test()
        .file("stepsecret.toml", "[expand]\nS_ = \"aws-ssm:///slow/*\"\n");
    run_sh(&t, &[], "exit 0")
        .code(77)
        .leaks_none(&[&value])
        .stderr_contains("ssm:GetParametersByPath");
}

#[test]
fn the_audit_record_has_the_version_date_and_hmac_never_the_value() {
    let aws = Aws::start();
    let value = unique("audited");
    api(&aws).put("/audit/key", "SecureString", &value);
    let key = "an-audit-key-of-32-bytes-or-more!";
    let t = aws.test().env("STEPSECRET_AUDIT_KEY", key);
    let log = t.path().join("audit.jsonl");
    let log_arg = log.to_str().unwrap().to_string();
    run_sh(
        &t,
        &["--audit-log", &log_arg, "-s", "KEY=aws-ssm:///audit/key"],
        "exit 0",
    )
    .code(0)
    .leaks_none(&[&value]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&value), "the audit log holds the value");
    let record: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let var = &record["variables"][0];
    assert_eq!(var["name"], "KEY");
    assert_eq!(var["backend"], "aws-ssm");
    assert_eq!(var["reference"], "aws-ssm:///audit/key");
    assert_eq!(var["version"], "1");
    assert!(
        var["created"].as_str().is_some_and(|d| d.ends_with('Z')),
        "{var}"
    );
    assert_eq!(
        var["hmac_sha256"].as_str().unwrap(),
        stepsecret::audit::hmac_hex(key.as_bytes(), value.as_bytes())
    );
}

#[test]
fn web_identity_from_the_ci_token_signs_the_parameter_calls() {
    let aws = Aws::start();
    let value = unique("ssm-deploy");
    api(&aws).put("/ci/deploy", "SecureString", &value);
    let token = jwt(json!({
        "iss": "https://oidc.circleci.com/org/0f5a3b5c-1111-2222-3333-444455556666",
        "aud": "0f5a3b5c-1111-2222-3333-444455556666",
        "sub": "org/0f5a3b5c-1111-2222-3333-444455556666/project/7c1e/user/9d2f",
        "exp": 4_102_444_800u64
    }));
    let t = aws
        .bare()
        .env("CIRCLECI", "true")
        .env("CIRCLE_BUILD_NUM", "77")
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .env("AWS_ROLE_ARN", ROLE);
    let script = format!(
        "{}[ -z \"${{CIRCLE_OIDC_TOKEN_V2+set}}\" ] || exit 4",
        expect_env(&[("DEPLOY", &value)])
    );
    run_sh(&t, &["-s", "DEPLOY=aws-ssm:///ci/deploy"], &script)
        .code(0)
        .leaks_none(&[&value, &token]);
    let sts = aws.proxy.calls_to("AssumeRoleWithWebIdentity");
    assert_eq!(sts.len(), 1, "one AssumeRoleWithWebIdentity");
    assert_eq!(
        sts[0].form().get("RoleSessionName").map(String::as_str),
        Some("stepsecret-circleci-77")
    );
    let calls = aws.proxy.calls_to("GetParameters");
    assert_eq!(calls.len(), 1);
    let key = calls[0].access_key().unwrap();
    assert!(
        key.starts_with("ASIA"),
        "signed with {key}, not the assumed role"
    );
    aws.assert_no_imds();
}

#[test]
fn a_throttling_storm_past_the_deadline_gives_up_with_75() {
    let aws = Aws::start();
    let value = unique("never-fetched");
    api(&aws).put("/storm/forever", "String", &value);
    aws.proxy
        .inject(Rule::new("GetParameters", Fault::Throttle));
    let t = aws.test();
    let (marker, touch) = ran_marker(&t);
    let started = Instant::now();
    let out = run_sh(
        &t,
        &["--timeout", "2s", "-s", "F=aws-ssm:///storm/forever"],
        &touch,
    );
    let took = started.elapsed();
    out.code(75)
        .stderr_contains("F (aws-ssm:///storm/forever): ")
        .stderr_contains("deadline")
        .leaks_none(&[&value]);
    assert!(!marker.exists());
    assert!(took < Duration::from_millis(4500), "gave up after {took:?}");
    assert!(
        aws.proxy.count("GetParameters") >= 3,
        "retried before giving up"
    );
}

#[test]
fn both_aws_schemes_share_one_session_and_one_assumed_role() {
    let aws = Aws::start();
    let (secret, parameter) = (unique("sm-value"), unique("ssm-value"));
    aws.api().create("mixed/secret", &secret);
    api(&aws).put("/mixed/parameter", "SecureString", &parameter);
    let token = jwt(json!({
        "iss": "https://oidc.circleci.com/org/0f5a3b5c-1111-2222-3333-444455556666",
        "aud": "0f5a3b5c-1111-2222-3333-444455556666",
        "sub": "org/0f5a3b5c-1111-2222-3333-444455556666/project/7c1e/user/9d2f",
        "exp": 4_102_444_800u64
    }));
    let t = aws
        .bare()
        .env("CIRCLECI", "true")
        .env("CIRCLE_BUILD_NUM", "78")
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .env("AWS_ROLE_ARN", ROLE);
    let refs = [
        "-s",
        "S=aws-sm://mixed/secret",
        "-s",
        "P=aws-ssm:///mixed/parameter",
    ];
    run_sh(&t, &refs, &expect_env(&[("S", &secret), ("P", &parameter)]))
        .code(0)
        .leaks_none(&[&secret, &parameter, &token]);
    assert_eq!(aws.proxy.count("AssumeRoleWithWebIdentity"), 1);
    assert_eq!(aws.proxy.count("BatchGetSecretValue"), 1);
    assert_eq!(aws.proxy.count("GetParameters"), 1);

    let mut args = vec!["check"];
    args.extend(refs);
    let check = t.args(args).run();
    check.code(0).leaks_none(&[&secret, &parameter, &token]);
    assert_eq!(
        aws.proxy.count("AssumeRoleWithWebIdentity"),
        2,
        "one per run"
    );
    assert_eq!(aws.proxy.count("GetCallerIdentity"), 1, "asked once");
    assert!(
        check.stdout.contains("credentials=web-identity"),
        "{check:#?}"
    );
}
