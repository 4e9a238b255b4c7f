//! The aws-sm:// source end to end: the real binary, a real moto server, and the logging proxy
//! between them (tests/integration/support/proxy.rs), which counts calls, keeps what was sent to STS,
//! and, where a test says so, answers in moto's place (access denied, throttling, 5xx).
//!
//! Every test asserts that no secret value (and no OIDC token) appears in stepsecret's output,
//! and that nothing asked EC2 metadata (the proxy stands in for it, so a probe is logged and
//! never leaves the machine).

#![cfg(feature = "aws")]

use std::time::{Duration, Instant};

use crate::support::moto::{Moto, SecretsApi, TestCa};
use crate::support::proxy::aws::{AwsProxy, Fault, Rule};
use crate::support::{Output, Test, free_port, ran_marker};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub(crate) const REGION: &str = "us-east-1";
pub(crate) const ROLE: &str = "arn:aws:iam::123456789012:role/ci-deploy";

/// moto with the proxy in front of it.
pub(crate) struct Aws {
    pub(crate) proxy: AwsProxy,
    pub(crate) moto: Moto,
}

impl Aws {
    pub(crate) fn start() -> Aws {
        let moto = Moto::start();
        let proxy = AwsProxy::start(moto.port);
        Aws { proxy, moto }
    }

    /// Puts secrets straight into moto (not through the proxy, so they are not counted).
    pub(crate) fn api(&self) -> SecretsApi {
        self.moto.secrets(REGION)
    }

    /// A test with only what every AWS run needs: the endpoint (the proxy), a default
    /// region, no profile files, and EC2 metadata pointed at the proxy.
    pub(crate) fn bare(&self) -> Test {
        Test::new()
            .env("AWS_ENDPOINT_URL", self.proxy.url())
            .env("AWS_REGION", REGION)
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                format!("{}/", self.proxy.url()),
            )
    }

    /// [`Aws::bare`] with static credentials in the environment.
    pub(crate) fn test(&self) -> Test {
        self.bare()
            .env("AWS_ACCESS_KEY_ID", "AKIDSTEPSECRETTEST")
            .env("AWS_SECRET_ACCESS_KEY", "static-secret-access-key")
    }

    #[track_caller]
    pub(crate) fn assert_no_imds(&self) {
        assert_eq!(self.proxy.count("IMDS"), 0, "EC2 metadata was probed");
    }

    /// The secret ids each BatchGetSecretValue call asked for.
    fn batches(&self) -> Vec<Vec<String>> {
        self.proxy
            .calls_to("BatchGetSecretValue")
            .iter()
            .map(|c| {
                c.json()["SecretIdList"]
                    .as_array()
                    .expect("SecretIdList")
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    }
}

/// A value unique to this run, so a leak cannot be a coincidence.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}", nanos ^ (std::process::id() as u128) << 64)
}

/// `[ "$NAME" = 'value' ] || exit 3` for each pair: the child checks its values itself, so
/// they never need to be printed.
pub(crate) fn expect_env(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| {
            format!("[ \"${name}\" = '{value}' ] || {{ echo 'wrong {name}' >&2; exit 3; }}\n")
        })
        .collect()
}

pub(crate) fn run_sh(test: &Test, extra: &[&str], script: &str) -> Output {
    let mut args: Vec<&str> = vec!["run"];
    args.extend(extra);
    args.extend(["--", "sh", "-c", script]);
    let mut cmd = test.command();
    cmd.args(&args);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run stepsecret");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An unsigned JWT with these claims (moto does not verify it; the test checks it arrives).
pub(crate) fn jwt(claims: Value) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!(
        "{}.{}.{}",
        enc(&json!({"alg": "RS256", "typ": "JWT", "kid": "test"})),
        enc(&claims),
        URL_SAFE_NO_PAD.encode(unique("signature").as_bytes())
    )
}

#[test]
fn forty_five_secrets_take_at_most_three_batch_calls() {
    let aws = Aws::start();
    let api = aws.api();
    let mut spec = String::from("[env]\n");
    let mut values = Vec::new();
    for i in 0..45 {
        let password = unique(&format!("batch-pw-{i}"));
        api.create_json(
            &format!("app/s{i:02}"),
            &json!({"user": format!("user{i}"), "password": password}),
        );
        spec.push_str(&format!("S{i:02} = \"aws-sm://app/s{i:02}#password\"\n"));
        values.push((format!("S{i:02}"), password));
    }
    let t = aws.test().file("stepsecret.toml", &spec);
    let (marker, touch) = ran_marker(&t);
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let script = format!("{}{touch}", expect_env(&pairs));
    let out = run_sh(&t, &[], &script);
    let secrets: Vec<&str> = values.iter().map(|(_, v)| v.as_str()).collect();
    out.code(0).leaks_none(&secrets);
    assert!(marker.exists());

    let batches = aws.batches();
    assert!(
        batches.len() <= 3,
        "{} BatchGetSecretValue calls",
        batches.len()
    );
    assert!(batches.iter().all(|ids| ids.len() <= 20), "{batches:?}");
    let mut all: Vec<String> = batches.concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 45, "every secret asked for once");
    assert_eq!(aws.proxy.count("GetSecretValue"), 0);
    assert_eq!(
        aws.proxy.count("DescribeSecret"),
        0,
        "run does not describe"
    );
    assert_eq!(
        aws.proxy.count("GetCallerIdentity"),
        0,
        "run does not ask who it is"
    );
    aws.assert_no_imds();
}

#[test]
fn names_full_and_partial_arns_json_keys_and_pointers() {
    let aws = Aws::start();
    let api = aws.api();
    let password = unique("db-password");
    let user = unique("admin");
    let value = json!({
        "user": user,
        "password": password,
        "db": {"host": "db.internal.example", "port": 5432, "tls": true}
    });
    let created = api.create_json("prod/db", &value);
    let text = unique("plain-text-token");
    api.create("prod/token", &text);

    let t = aws.test();
    let (marker, touch) = ran_marker(&t);
    let script = format!(
        "{}[ \"$(cat \"$PW_FILE\")\" = '{password}' ] || exit 4\n[ \"$WHOLE\" = '{}' ] || exit 5\n{touch}",
        expect_env(&[
            ("BY_NAME", &password),
            ("BY_ARN", &user),
            ("BY_PARTIAL_ARN", "db.internal.example"),
            ("PORT", "5432"),
            (
                "DB",
                r#"{"host":"db.internal.example","port":5432,"tls":true}"#
            ),
            ("TEXT", &text),
        ]),
        value
    );
    let full_arn = format!("BY_ARN=aws-sm://{}#user", created.arn);
    let partial = format!("BY_PARTIAL_ARN=aws-sm://{}#/db/host", created.partial_arn());
    let out = run_sh(
        &t,
        &[
            "-s",
            "BY_NAME=aws-sm://prod/db#password",
            "-s",
            &full_arn,
            "-s",
            &partial,
            "-s",
            "PORT=aws-sm://prod/db#/db/port",
            "-s",
            "DB=aws-sm://prod/db#db",
            "-s",
            "WHOLE=aws-sm://prod/db",
            "-s",
            "TEXT=aws-sm://prod/token",
            "--file",
            "PW_FILE=aws-sm://prod/db#password",
        ],
        &script,
    );
    out.code(0).leaks_none(&[&password, &user, &text]);
    assert!(marker.exists());
    // prod/db three ways (name, ARN, partial ARN) and prod/token: one call.
    let batches = aws.batches();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0].len(), 4, "{batches:?}");
    aws.assert_no_imds();
}

#[test]
fn version_stages_and_ids_go_through_get_secret_value() {
    let aws = Aws::start();
    let api = aws.api();
    let old = unique("rotated-old");
    let new = unique("rotated-new");
    let v1 = api.create("rotating/key", &old).version_id;
    let v2 = api.put("rotating/key", &new);

    let t = aws.test();
    let by_id = format!("BY_ID=aws-sm://rotating/key?version-id={v1}");
    let script = expect_env(&[
        ("CURRENT", &new),
        ("STAGED_CURRENT", &new),
        ("PREVIOUS", &old),
        ("BY_ID", &old),
    ]);
    let out = run_sh(
        &t,
        &[
            "-s",
            "CURRENT=aws-sm://rotating/key",
            "-s",
            "STAGED_CURRENT=aws-sm://rotating/key?version-stage=AWSCURRENT",
            "-s",
            "PREVIOUS=aws-sm://rotating/key?version-stage=AWSPREVIOUS",
            "-s",
            &by_id,
        ],
        &script,
    );
    out.code(0).leaks_none(&[&old, &new]);
    // AWSCURRENT is what a batch returns, so only the other two need GetSecretValue.
    assert_eq!(aws.batches(), vec![vec!["rotating/key".to_string()]]);
    assert_eq!(aws.proxy.count("GetSecretValue"), 2);

    // check shows each version id and its stages.
    let check = aws
        .test()
        .args([
            "check",
            "-s",
            "CURRENT=aws-sm://rotating/key",
            "-s",
            "PREVIOUS=aws-sm://rotating/key?version-stage=AWSPREVIOUS",
        ])
        .run();
    check.code(0).leaks_none(&[&old, &new]);
    assert!(check.stdout.contains(&v2), "{check:#?}");
    assert!(check.stdout.contains(&v1), "{check:#?}");
    assert!(check.stdout.contains("stages=AWSCURRENT"), "{check:#?}");
    assert!(check.stdout.contains("stages=AWSPREVIOUS"), "{check:#?}");
    aws.assert_no_imds();
}

#[test]
fn binary_secrets_go_to_files_and_refuse_env_vars_unless_text() {
    let aws = Aws::start();
    let api = aws.api();
    let mut keystore: Vec<u8> = vec![0xfe, 0xed, 0xfe, 0xed, 0x00, 0x02, 0xff, 0x80];
    keystore.extend(unique("keystore").bytes());
    keystore.extend([0xc3, 0x28, 0x00, 0x9f]);
    api.create_binary("bin/keystore", &keystore);
    let text = unique("binary-but-text");
    api.create_binary("bin/text", text.as_bytes());

    let t = aws.test().file("expected.bin", &keystore);
    let out = run_sh(
        &t,
        &[
            "--file",
            "KEYSTORE=aws-sm://bin/keystore",
            "-s",
            "TEXT=aws-sm://bin/text",
        ],
        &format!(
            "cmp \"$KEYSTORE\" expected.bin && {}",
            expect_env(&[("TEXT", &text)])
        ),
    );
    out.code(0).leaks_none(&[&text]);

    let t = aws.test();
    let (marker, touch) = ran_marker(&t);
    let out = run_sh(&t, &["-s", "KEYSTORE=aws-sm://bin/keystore"], &touch);
    out.code(78)
        .stderr_contains("KEYSTORE (aws-sm://bin/keystore): ")
        .stderr_contains("not valid UTF-8")
        .stderr_contains("--file")
        .leaks_none(&[&text]);
    assert!(!marker.exists(), "the command must not run");
    aws.assert_no_imds();
}

#[test]
fn a_deleted_secret_fails_closed_and_says_how_to_restore_it() {
    let aws = Aws::start();
    let api = aws.api();
    let value = unique("deleted-value");
    api.create("old/secret", &value);
    api.delete("old/secret");
    let t = aws.test();
    let (marker, touch) = ran_marker(&t);
    let out = run_sh(&t, &["-s", "OLD=aws-sm://old/secret"], &touch);
    out.code(69)
        .stderr_contains("OLD (aws-sm://old/secret): ")
        .stderr_contains("marked for deletion")
        .stderr_contains("restore-secret")
        .leaks_none(&[&value]);
    assert!(!marker.exists());
    aws.assert_no_imds();
}

#[test]
fn a_missing_secret_fails_closed_naming_the_variable() {
    let aws = Aws::start();
    let present = unique("present-value");
    aws.api().create("here", &present);
    let t = aws.test();
    let (marker, touch) = ran_marker(&t);
    let out = run_sh(
        &t,
        &[
            "-s",
            "HERE=aws-sm://here",
            "-s",
            "NOPE=aws-sm://not/there#key",
        ],
        &touch,
    );
    out.code(69)
        .stderr_contains("NOPE (aws-sm://not/there#key): ")
        .stderr_contains("ResourceNotFoundException")
        .leaks_none(&[&present]);
    assert!(
        !out.stderr.contains("HERE ("),
        "only the failed variable is named\n{out:#?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "one line\n{out:#?}");
    assert!(!marker.exists(), "the command must not run");
    aws.assert_no_imds();
}

#[test]
fn access_denied_is_exit_77_naming_the_variable_and_aws_code() {
    let aws = Aws::start();
    let api = aws.api();
    let open_value = unique("open");
    let locked_value = unique("locked");
    api.create("team/open", &open_value);
    api.create("team/locked", &locked_value);

    // Injected: the proxy moves team/locked from moto's answer to Errors[] as
    // AccessDeniedException, as AWS does for a secret the caller may not read.
    aws.proxy
        .inject(Rule::new("BatchGetSecretValue", Fault::AccessDenied).secret("team/locked"));
    let t = aws.test();
    let (marker, touch) = ran_marker(&t);
    let out = run_sh(
        &t,
        &[
            "-s",
            "OPEN=aws-sm://team/open",
            "-s",
            "LOCKED=aws-sm://team/locked",
        ],
        &touch,
    );
    out.code(77)
        .stderr_contains("LOCKED (aws-sm://team/locked): ")
        .stderr_contains("AccessDeniedException")
        .leaks_none(&[&open_value, &locked_value]);
    assert!(!marker.exists());
    assert!(aws.proxy.calls_to("BatchGetSecretValue")[0].injected);

    // Injected: GetSecretValue (a versioned reference) denied.
    aws.proxy
        .inject(Rule::new("GetSecretValue", Fault::AccessDenied).times(1));
    let out = run_sh(
        &aws.test(),
        &[
            "-s",
            "CUR=aws-sm://team/open?version-stage=AWSCURRENT&region=us-east-1",
            "-s",
            "V=aws-sm://team/open?version-stage=AWSPENDING",
        ],
        "true",
    );
    out.code(77)
        .stderr_contains("V (aws-sm://team/open?version-stage=AWSPENDING): ")
        .leaks_none(&[&open_value]);
    aws.assert_no_imds();
}

#[test]
fn a_throttling_storm_is_retried_with_backoff_then_recovers() {
    let aws = Aws::start();
    let api = aws.api();
    let mut pairs = Vec::new();
    for i in 0..25 {
        let v = unique(&format!("storm-{i}"));
        api.create(&format!("storm/s{i}"), &v);
        pairs.push((format!("S{i}"), v));
    }
    // Injected: the next 6 BatchGetSecretValue calls are answered with ThrottlingException.
    aws.proxy
        .inject(Rule::new("BatchGetSecretValue", Fault::Throttle).times(6));
    let spec: String = std::iter::once("[env]\n".to_string())
        .chain(
            pairs
                .iter()
                .enumerate()
                .map(|(i, (n, _))| format!("{n} = \"aws-sm://storm/s{i}\"\n")),
        )
        .collect();
    let t = aws.test().file("stepsecret.toml", spec);
    let expected: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let started = Instant::now();
    let out = run_sh(&t, &[], &expect_env(&expected));
    let values: Vec<&str> = pairs.iter().map(|(_, v)| v.as_str()).collect();
    out.code(0).leaks_none(&values);
    let calls = aws.proxy.calls_to("BatchGetSecretValue");
    assert_eq!(calls.iter().filter(|c| c.injected).count(), 6);
    assert_eq!(
        calls.iter().filter(|c| !c.injected).count(),
        2,
        "two batches of ≤ 20 got through"
    );
    // Backoff: the retries were spread out, not fired back to back.
    let span = calls.last().unwrap().at - calls[0].at;
    assert!(
        span >= Duration::from_millis(50),
        "retries {span:?} apart in all"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // 5xx are retried too. Injected: two InternalServiceError answers.
    aws.proxy.clear();
    aws.proxy
        .inject(Rule::new("BatchGetSecretValue", Fault::ServerError).times(2));
    run_sh(
        &aws.test(),
        &["-s", "S0=aws-sm://storm/s0"],
        &expect_env(&expected[..1]),
    )
    .code(0)
    .leaks_none(&values);
    aws.assert_no_imds();
}

#[test]
fn a_storm_past_the_deadline_gives_up_with_75() {
    let aws = Aws::start();
    let value = unique("never-fetched");
    aws.api().create("storm/forever", &value);
    // Injected: every BatchGetSecretValue call is throttled, for good.
    aws.proxy
        .inject(Rule::new("BatchGetSecretValue", Fault::Throttle));
    let t = aws.test();
    let (marker, touch) = ran_marker(&t);
    let started = Instant::now();
    let out = run_sh(
        &t,
        &["--timeout", "2s", "-s", "F=aws-sm://storm/forever"],
        &touch,
    );
    let took = started.elapsed();
    out.code(75)
        .stderr_contains("F (aws-sm://storm/forever): ")
        .stderr_contains("deadline")
        .stderr_contains("ThrottlingException")
        .leaks_none(&[&value]);
    assert!(!marker.exists());
    assert!(took < Duration::from_millis(4500), "gave up after {took:?}");
    assert!(
        aws.proxy.count("BatchGetSecretValue") >= 3,
        "retried before giving up"
    );
    aws.assert_no_imds();
}

/// Checks the one AssumeRoleWithWebIdentity call and returns its form.
#[track_caller]
fn assert_assumed(aws: &Aws, token: &str, session: &str, duration: &str) {
    let sts = aws.proxy.calls_to("AssumeRoleWithWebIdentity");
    assert_eq!(sts.len(), 1, "one AssumeRoleWithWebIdentity");
    let form = sts[0].form();
    assert_eq!(
        form.get("WebIdentityToken").map(String::as_str),
        Some(token),
        "the CI token was sent"
    );
    assert_eq!(
        form.get("RoleSessionName").map(String::as_str),
        Some(session)
    );
    assert_eq!(
        form.get("DurationSeconds").map(String::as_str),
        Some(duration)
    );
    assert_eq!(form.get("RoleArn").map(String::as_str), Some(ROLE));
    assert!(
        sts[0].authorization.is_none(),
        "AssumeRoleWithWebIdentity is unsigned"
    );
    // The secrets were read with the role's temporary credentials.
    for call in aws.proxy.calls_to("BatchGetSecretValue") {
        let key = call.access_key().unwrap();
        assert!(
            key.starts_with("ASIA"),
            "signed with {key}, not the assumed role"
        );
    }
}

#[test]
fn circleci_web_identity_sends_the_ci_token_to_sts() {
    let aws = Aws::start();
    let value = unique("deploy-key");
    aws.api().create("ci/deploy", &value);
    let token = jwt(json!({
        "iss": "https://oidc.circleci.com/org/0f5a3b5c-1111-2222-3333-444455556666",
        "aud": "0f5a3b5c-1111-2222-3333-444455556666",
        "sub": "org/0f5a3b5c-1111-2222-3333-444455556666/project/7c1e/user/9d2f/vcs-origin/github.com/acme/app/vcs-ref/refs/heads/main",
        "oidc.circleci.com/project-id": "7c1e",
        "oidc.circleci.com/vcs-ref": "refs/heads/main",
        "exp": 4_102_444_800u64
    }));
    let older = jwt(json!({"iss": "https://oidc.circleci.com/org/x", "sub": "v1"}));
    let t = aws
        .bare()
        .env("CIRCLECI", "true")
        .env("CIRCLE_BUILD_NUM", "1234")
        .env("CIRCLE_PROJECT_REPONAME", "app")
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .env("CIRCLE_OIDC_TOKEN", &older)
        .env("AWS_ROLE_ARN", ROLE);
    let script = format!(
        "{}[ -z \"${{CIRCLE_OIDC_TOKEN_V2+set}}\" ] || {{ echo 'token passed on' >&2; exit 4; }}",
        expect_env(&[("DEPLOY", &value)])
    );
    let out = run_sh(&t, &["-s", "DEPLOY=aws-sm://ci/deploy"], &script);
    out.code(0).leaks_none(&[&value, &token]);
    assert_assumed(&aws, &token, "stepsecret-circleci-1234", "900");
    aws.assert_no_imds();

    // check names the role, the session and the token's claims, never the token.
    let out = t.args(["check", "-s", "DEPLOY=aws-sm://ci/deploy"]).run();
    out.code(0).leaks_none(&[&value, &token]);
    for expected in [
        "credentials=web-identity",
        &format!("role={ROLE}"),
        "session=stepsecret-circleci-1234",
        "token=CIRCLE_OIDC_TOKEN_V2",
        "iss=https://oidc.circleci.com/org/",
        "account=123456789012",
    ] {
        assert!(out.stdout.contains(expected), "{expected}\n{out:#?}");
    }
}

#[test]
fn bitbucket_web_identity_with_spec_settings() {
    let aws = Aws::start();
    let value = unique("bb-secret");
    aws.api().create("bb/secret", &value);
    let token = jwt(json!({
        "iss": "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc",
        "aud": "ari:cloud:bitbucket::workspace/0c0c0c0c-aaaa-bbbb-cccc-ddddeeeeffff",
        "sub": "{11111111-2222-3333-4444-555555555555}:{66666666-7777-8888-9999-000000000000}",
        "workspaceUuid": "{0c0c0c0c-aaaa-bbbb-cccc-ddddeeeeffff}",
        "repositoryUuid": "{11111111-2222-3333-4444-555555555555}",
        "pipelineUuid": "{22222222-3333-4444-5555-666666666666}",
        "stepUuid": "{66666666-7777-8888-9999-000000000000}",
        "branchName": "main"
    }));
    let spec = format!(
        "[aws]\nregion = \"{REGION}\"\nrole_arn = \"{ROLE}\"\nduration_seconds = 1800\n\n[env]\nSECRET = \"aws-sm://bb/secret\"\n"
    );
    let t = Test::new()
        .env("AWS_ENDPOINT_URL", aws.proxy.url())
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("{}/", aws.proxy.url()),
        )
        .env("BITBUCKET_BUILD_NUMBER", "77")
        .env("BITBUCKET_REPO_SLUG", "app")
        .env("BITBUCKET_STEP_OIDC_TOKEN", &token)
        .file("stepsecret.toml", spec);
    let script = format!(
        "{}[ -z \"${{BITBUCKET_STEP_OIDC_TOKEN+set}}\" ] || exit 4",
        expect_env(&[("SECRET", &value)])
    );
    let out = run_sh(&t, &[], &script);
    out.code(0).leaks_none(&[&value, &token]);
    assert_assumed(&aws, &token, "stepsecret-bitbucket-77", "1800");
    aws.assert_no_imds();
}

#[test]
fn a_rejected_ci_token_is_exit_77_without_the_token() {
    let aws = Aws::start();
    aws.api().create("ci/x", &unique("x"));
    let token = jwt(
        json!({"iss": "https://oidc.circleci.com/org/o", "sub": "org/o/project/p/user/u", "aud": "o"}),
    );
    // Injected: STS rejects the token, as it does when the trust policy does not match.
    aws.proxy.inject(Rule::new(
        "AssumeRoleWithWebIdentity",
        Fault::Error(400, "InvalidIdentityToken"),
    ));
    let t = aws
        .bare()
        .env("CIRCLECI", "true")
        .env("CIRCLE_BUILD_NUM", "5")
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .env("AWS_ROLE_ARN", ROLE);
    let (marker, touch) = ran_marker(&t);
    let out = run_sh(&t, &["-s", "X=aws-sm://ci/x"], &touch);
    out.code(77)
        .stderr_contains("InvalidIdentityToken")
        .stderr_contains("CIRCLE_OIDC_TOKEN_V2")
        .stderr_contains("sub=org/o/project/p/user/u")
        .leaks_none(&[&token]);
    for part in token.split('.') {
        assert!(
            !out.stderr.contains(part),
            "token part in the output\n{out:#?}"
        );
    }
    assert!(!marker.exists());
    assert_eq!(aws.proxy.count("BatchGetSecretValue"), 0);
    aws.assert_no_imds();
}

#[test]
fn a_role_without_a_ci_token_says_what_is_missing() {
    let aws = Aws::start();
    aws.api().create("ci/y", &unique("y"));
    // No credentials anywhere: the default chain ends at EC2 metadata, pointed at a closed
    // loopback port, so it fails at once and nothing leaves the machine.
    let closed = free_port(1);
    let t = aws.bare().env("AWS_ROLE_ARN", ROLE).env(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://127.0.0.1:{closed}/"),
    );
    let (marker, touch) = ran_marker(&t);
    let out = run_sh(&t, &["-s", "Y=aws-sm://ci/y"], &touch);
    out.code(78)
        .stderr_contains("no AWS credentials")
        .stderr_contains("AWS_ROLE_ARN is set but this job has no CI OIDC token");
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
    assert!(!marker.exists());

    // moto also plays EC2 metadata, and answers a token request wrongly: the error is one
    // line and never shows what the metadata service sent (the SDK's own error report would).
    let t = aws.bare().env("AWS_ROLE_ARN", ROLE);
    let out = run_sh(&t, &["-s", "Y=aws-sm://ci/y"], "true");
    out.code(78)
        .stderr_contains("AWS_ROLE_ARN is set but this job has no CI OIDC token")
        .leaks_none(&["fake-imdsv2-token", "SdkBody"]);
    assert_eq!(out.stderr.lines().count(), 1, "{out:#?}");
}

#[test]
fn expansion_end_to_end_and_a_collision_is_an_error() {
    let aws = Aws::start();
    let password = unique("exp-pw");
    let user = unique("exp-user");
    aws.api().create_json(
        "app/config",
        &json!({"user": user, "password": password, "db-host": "db.example", "port": 5432}),
    );
    let spec = "[expand]\nCFG_ = \"aws-sm://app/config\"\n";
    let t = aws.test().file("stepsecret.toml", spec);
    let script = expect_env(&[
        ("APP_USER", &user),
        ("APP_PASSWORD", &password),
        ("APP_DB_HOST", "db.example"),
        ("APP_PORT", "5432"),
        ("CFG_USER", &user),
        ("CFG_DB_HOST", "db.example"),
    ]);
    run_sh(&t, &["-s", "APP=aws-sm://app/config#*"], &script)
        .code(0)
        .leaks_none(&[&password, &user]);
    // One location, fetched once, however many variables it became.
    assert_eq!(aws.batches(), vec![vec!["app/config".to_string()]]);

    let other = unique("other");
    aws.api().create("app/other", &other);
    let t = aws.test();
    let (marker, touch) = ran_marker(&t);
    let out = run_sh(
        &t,
        &[
            "-s",
            "APP_USER=aws-sm://app/other",
            "-s",
            "APP=aws-sm://app/config#*",
        ],
        &touch,
    );
    out.code(78)
        .stderr_contains("APP_USER would be set twice")
        .leaks_none(&[&password, &user, &other]);
    assert!(!marker.exists());
    aws.assert_no_imds();
}

#[test]
fn check_shows_versions_dates_and_caller_and_run_skips_them() {
    let aws = Aws::start();
    let value = unique("checked");
    let created = aws.api().create_json("svc/api", &json!({"key": value}));
    let t = aws.test();
    let out = t
        .args([
            "check",
            "-s",
            "KEY=aws-sm://svc/api#key",
            "--format",
            "json",
        ])
        .run();
    out.code(0).leaks_none(&[&value]);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let secret = &report["secrets"][0];
    assert_eq!(secret["version"], created.version_id.as_str());
    assert!(secret["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(secret["details"]["stages"], "AWSCURRENT");
    assert!(secret["details"]["last_changed"].is_string(), "{secret}");
    assert_eq!(secret["details"]["rotation"], "off");
    let identity = &report["identities"]["aws-sm"];
    assert_eq!(identity["credentials"], "default-chain");
    assert_eq!(identity["account"], "123456789012");
    assert!(identity["arn"].as_str().unwrap().starts_with("arn:aws:"));
    assert_eq!(aws.proxy.count("DescribeSecret"), 1);
    assert_eq!(aws.proxy.count("GetCallerIdentity"), 1);
    aws.assert_no_imds();
}

#[test]
fn references_are_grouped_per_region() {
    let aws = Aws::start();
    let here = unique("us");
    let there = unique("eu");
    aws.api().create("multi/here", &here);
    let eu = aws.moto.secrets("eu-west-1").create("multi/there", &there);
    let t = aws.test();
    let arn = format!("ARN=aws-sm://{}", eu.arn);
    let out = run_sh(
        &t,
        &[
            "-s",
            "HERE=aws-sm://multi/here",
            "-s",
            "THERE=aws-sm://multi/there?region=eu-west-1",
            "-s",
            &arn,
        ],
        &expect_env(&[("HERE", &here), ("THERE", &there), ("ARN", &there)]),
    );
    out.code(0).leaks_none(&[&here, &there]);
    let calls = aws.proxy.calls_to("BatchGetSecretValue");
    assert_eq!(calls.len(), 2, "one batch per region");
    let scopes: Vec<bool> = calls
        .iter()
        .map(|c| c.authorization.as_deref().unwrap().contains("/eu-west-1/"))
        .collect();
    assert_eq!(
        scopes.iter().filter(|eu| **eu).count(),
        1,
        "one signed for eu-west-1"
    );
    aws.assert_no_imds();
}

#[test]
fn an_unreachable_endpoint_is_exit_69() {
    let aws = Aws::start();
    let closed = free_port(1);
    let t = aws
        .test()
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}"));
    let (marker, touch) = ran_marker(&t);
    let out = run_sh(&t, &["-s", "X=aws-sm://any"], &touch);
    out.code(69).stderr_contains("cannot reach AWS");
    assert!(!marker.exists());
}

#[test]
fn https_endpoints_use_rustls_and_the_system_trust_store() {
    let ca = TestCa::new();
    let moto = Moto::start_tls(&ca);
    let value = unique("over-tls");
    moto.secrets(REGION).create("tls/secret", &value);
    let base = |t: Test| {
        t.env("AWS_ENDPOINT_URL", moto.url())
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "AKIDSTEPSECRETTEST")
            .env("AWS_SECRET_ACCESS_KEY", "static-secret-access-key")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
    };
    // Trusted through SSL_CERT_FILE, as a company CA would be.
    let t = base(Test::new()).env("SSL_CERT_FILE", &ca.ca);
    run_sh(
        &t,
        &["-s", "V=aws-sm://tls/secret"],
        &expect_env(&[("V", &value)]),
    )
    .code(0)
    .leaks_none(&[&value]);

    // Not trusted: refused at once (a certificate does not fix itself), saying what to do.
    let t = base(Test::new()).env("SSL_CERT_FILE", "/nonexistent/ca.pem");
    let started = Instant::now();
    run_sh(&t, &["-s", "V=aws-sm://tls/secret"], "true")
        .code(69)
        .stderr_contains("V (aws-sm://tls/secret): ")
        .stderr_contains("not trusted")
        .stderr_contains("SSL_CERT_FILE")
        .leaks_none(&[&value]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "retried a bad certificate"
    );
}

#[test]
fn a_denied_batch_call_falls_back_to_one_get_secret_value_each_with_one_warning() {
    let aws = Aws::start();
    let api = aws.api();
    // 25 secrets: two batches, both denied (a role with GetSecretValue on named ARNs only).
    let values: Vec<String> = (0..25).map(|i| unique(&format!("fb{i}"))).collect();
    let mut flags = Vec::new();
    for (i, value) in values.iter().enumerate() {
        api.create(&format!("fallback/s{i}"), value);
        flags.push("-s".to_string());
        flags.push(format!("S{i}=aws-sm://fallback/s{i}"));
    }
    // Injected: AWS answers AccessDeniedException to every BatchGetSecretValue call (moto
    // enforces no IAM).
    aws.proxy
        .inject(Rule::new("BatchGetSecretValue", Fault::AccessDenied));
    let expected: Vec<(String, &str)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("S{i}"), v.as_str()))
        .collect();
    let pairs: Vec<(&str, &str)> = expected.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let out = run_sh(&aws.test(), &flag_refs, &expect_env(&pairs));
    let values_ref: Vec<&str> = values.iter().map(String::as_str).collect();
    out.code(0).leaks_none(&values_ref);
    assert_eq!(
        out.stderr.matches("warning:").count(),
        1,
        "one warning: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("allow secretsmanager:BatchGetSecretValue"),
        "{}",
        out.stderr
    );
    assert_eq!(
        aws.proxy.count("GetSecretValue"),
        25,
        "one GetSecretValue per secret"
    );
    assert!(aws.proxy.count("BatchGetSecretValue") <= 2);

    // A secret GetSecretValue denies too still fails, naming its variable.
    aws.proxy
        .inject(Rule::new("GetSecretValue", Fault::AccessDenied).secret("fallback/s3"));
    let t = aws.test();
    let (marker, touch) = ran_marker(&t);
    let out = run_sh(
        &t,
        &[
            "-s",
            "OK=aws-sm://fallback/s1",
            "-s",
            "LOCKED=aws-sm://fallback/s3",
        ],
        &touch,
    );
    out.code(77)
        .stderr_contains("LOCKED (aws-sm://fallback/s3): ")
        .stderr_contains("AccessDeniedException")
        .leaks_none(&values_ref);
    assert!(!marker.exists());
    aws.assert_no_imds();
}

#[test]
fn doctor_shows_the_role_the_assumed_identity_and_the_caller_never_the_token() {
    let aws = Aws::start();
    let token = jwt(json!({
        "iss": "https://oidc.circleci.com/org/o1",
        "aud": "o1",
        "sub": "org/o1/project/p1/user/u1",
        "oidc.circleci.com/project-id": "p1"
    }));
    let t = aws
        .bare()
        .env("CIRCLECI", "true")
        .env("CIRCLE_BUILD_NUM", "77")
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .env("AWS_ROLE_ARN", ROLE)
        .args(["doctor", "-s", "X=aws-sm://ci/never-read"]);
    let out = t.run();
    out.code(0).leaks_none(&[&token]).stdout_contains_all(&[
        "ci: circleci (circleci-77)\n",
        "oidc token: CIRCLE_OIDC_TOKEN_V2 (circleci)\n",
        "  oidc.circleci.com/project-id: p1\n",
        "aws-sm:\n",
        &format!("  role: {ROLE} (AWS_ROLE_ARN)\n"),
        "  AssumeRoleWithWebIdentity: ok (",
        "  account: 123456789012\n",
        "result: every login works\n",
    ]);
    // It read no secret (the one named does not even exist) and assumed the role once.
    assert_eq!(aws.proxy.count("GetSecretValue"), 0);
    assert_eq!(aws.proxy.count("BatchGetSecretValue"), 0);
    assert_eq!(aws.proxy.count("AssumeRoleWithWebIdentity"), 1);

    // A refused AssumeRoleWithWebIdentity is exit 77.
    aws.proxy
        .inject(Rule::new("AssumeRoleWithWebIdentity", Fault::AccessDenied));
    t.run().code(77).leaks_none(&[&token]);
}
