//! vault:// through the real binary, against a real OpenBao server per test: JWT logins with
//! CircleCI- and Bitbucket-shaped tokens, AppRole, tokens; KV v1 and v2; a PKI certificate with
//! a real lease; cleanup; and failures (403, 404, server down, retry storms through a
//! fault-injecting proxy that says it is one).

#![cfg(feature = "vault")]

use std::time::{Duration, Instant};

use crate::support::openbao::{OpenBao, Signer, bitbucket_claims, circleci_claims, configure_jwt};
use crate::support::proxy::faults::{Fault, FaultProxy, Rule};
use crate::support::{Test, free_port, ran_marker};
use serde_json::{Value, json};

const PASSWORD: &str = "vault-pw-7c1e9a3b55";
const API_KEY: &str = "vault-key-0d4f2b8e61";

/// OpenBao with JWT auth configured and secret/app holding two values.
fn server() -> (OpenBao, Signer) {
    let bao = OpenBao::start();
    let signer = Signer::new();
    configure_jwt(&bao, &signer);
    bao.put(
        "app",
        json!({ "password": PASSWORD, "api_key": API_KEY, "nested": { "deep": "deep-value-99" } }),
    );
    (bao, signer)
}

fn vault_test(bao: &OpenBao) -> Test {
    Test::new().env("VAULT_ADDR", bao.url())
}

#[test]
fn circleci_jwt_login_reads_kv_v2_and_revokes_its_token() {
    let (bao, signer) = server();
    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let tokens_before = bao.token_count();
    let out = vault_test(&bao)
        .file(
            "stepsecret.toml",
            "[vault]\nrole = \"circleci\"\n\n[env]\nDB_PASSWORD = \"vault://secret/app#password\"\nAPI_KEY = \"vault://secret/app#api_key\"\n",
        )
        .env("CIRCLECI", "true")
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .args([
            "run",
            "--",
            "sh",
            "-c",
            &format!(
                "test \"$DB_PASSWORD\" = '{PASSWORD}' && test \"$API_KEY\" = '{API_KEY}' && echo \"pw=$DB_PASSWORD\"; env | grep -c '^CIRCLE_OIDC_TOKEN_V2=' || true"
            ),
        ])
        .run();
    out.code(0)
        .stdout_is("pw=[masked:DB_PASSWORD]\n0\n")
        .stderr_is("")
        .leaks_none(&[PASSWORD, API_KEY, &token]);
    assert_eq!(
        bao.token_count(),
        tokens_before,
        "the login token was revoked"
    );
}

#[test]
fn bitbucket_jwt_login_with_the_role_from_the_pipe_variables() {
    let (bao, signer) = server();
    let token = signer.sign(bitbucket_claims("{ws-1}", "{repo-1}", "main"));
    let out = vault_test(&bao)
        .env("BITBUCKET_BUILD_NUMBER", "7")
        .env("BITBUCKET_STEP_OIDC_TOKEN", &token)
        .env("STEPSECRET_VAULT_ROLE", "bitbucket")
        .env(
            "STEPSECRET_SECRETS",
            "DEEP=vault://secret/app#/nested/deep\nPW=vault://secret/app#password",
        )
        .args([
            "run",
            "--",
            "sh",
            "-c",
            &format!(
                "test \"$DEEP\" = deep-value-99 && test \"$PW\" = '{PASSWORD}' && echo ok; env | grep -c '^BITBUCKET_STEP_OIDC_TOKEN=' || true"
            ),
        ])
        .run();
    out.code(0)
        .stdout_is("ok\n0\n")
        .leaks_none(&[PASSWORD, &token]);
}

#[test]
fn a_token_for_another_project_is_refused_with_its_claims_and_the_role() {
    let (bao, signer) = server();
    let token = signer.sign(circleci_claims("org-1", "proj-OTHER", "main"));
    let test = vault_test(&bao)
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .env("STEPSECRET_VAULT_ROLE", "circleci");
    let (marker, script) = ran_marker(&test);
    let out = test
        .args([
            "run",
            "-s",
            "PW=vault://secret/app#password",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .run();
    out.code(77)
        .stderr_contains("refused the jwt login at auth/jwt as role `circleci`")
        .stderr_contains("sub=org/org-1/project/proj-OTHER/")
        .stderr_contains("aud=org-1")
        .stderr_contains("oidc.circleci.com/project-id=proj-OTHER")
        .stderr_contains("(needed by PW)")
        .leaks_none(&[PASSWORD, &token]);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
    assert!(!marker.exists(), "the command must not run");
}

#[test]
fn approle_login_and_the_secret_id_is_kept_from_the_command() {
    let (bao, _signer) = server();
    bao.api(
        "POST",
        "sys/auth/approle",
        Some(json!({ "type": "approle" })),
    );
    bao.api(
        "POST",
        "auth/approle/role/deploy",
        Some(json!({ "token_policies": ["read-secrets"], "token_ttl": "5m" })),
    );
    let role_id = bao.api("GET", "auth/approle/role/deploy/role-id", None)["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id =
        bao.api("POST", "auth/approle/role/deploy/secret-id", None)["data"]["secret_id"]
            .as_str()
            .unwrap()
            .to_string();
    let tokens_before = bao.token_count();
    let out = vault_test(&bao)
        .env("VAULT_ROLE_ID", &role_id)
        .env("VAULT_SECRET_ID", &secret_id)
        .args([
            "run",
            "-s",
            "PW=vault://secret/app#password",
            "--",
            "sh",
            "-c",
            &format!(
                "test \"$PW\" = '{PASSWORD}' && echo ok; env | grep -c '^VAULT_SECRET_ID=' || true"
            ),
        ])
        .run();
    out.code(0)
        .stdout_is("ok\n0\n")
        .leaks_none(&[PASSWORD, &secret_id]);
    assert_eq!(bao.token_count(), tokens_before);
}

#[test]
fn a_supplied_token_is_used_kept_from_the_command_and_never_revoked() {
    let (bao, _signer) = server();
    let created = bao.api(
        "POST",
        "auth/token/create",
        Some(json!({ "policies": ["read-secrets"], "ttl": "10m" })),
    );
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let out = vault_test(&bao)
        .env("VAULT_TOKEN", &token)
        .args([
            "run",
            "-s",
            "PW=vault://secret/app#password",
            "--",
            "sh",
            "-c",
            &format!(
                "test \"$PW\" = '{PASSWORD}' && echo ok; env | grep -c '^VAULT_TOKEN=' || true"
            ),
        ])
        .run();
    out.code(0)
        .stdout_is("ok\n0\n")
        .leaks_none(&[PASSWORD, &token]);
    bao.api_as(&token, "GET", "auth/token/lookup-self", None)
        .expect("the user's token still works");
}

#[test]
fn kv_v1_kv_v2_versions_and_json_pointers() {
    let (bao, _signer) = server();
    bao.mount("kv1", "kv", json!({ "version": "1" }));
    bao.api(
        "POST",
        "kv1/legacy",
        Some(json!({ "user": "legacy-user", "conf": "{\"a\": 1}" })),
    );
    bao.put("rotating", json!({ "key": "old-value-1111" }));
    bao.put("rotating", json!({ "key": "new-value-2222" }));
    let out = vault_test(&bao)
        .env("VAULT_TOKEN", bao.root)
        .args([
            "run",
            "-s",
            "V1=vault://kv1/legacy#user",
            "-s",
            "OLD=vault://secret/rotating?version=1#key",
            "-s",
            "NEW=vault://secret/rotating#key",
            "-s",
            "DEEP=vault://secret/app#/nested/deep",
            "-s",
            "WHOLE=vault://secret/app#/nested",
            "--",
            "sh",
            "-c",
            "test \"$V1\" = legacy-user && test \"$OLD\" = old-value-1111 && test \"$NEW\" = new-value-2222 && test \"$DEEP\" = deep-value-99 && test \"$WHOLE\" = '{\"deep\":\"deep-value-99\"}' && echo ok",
        ])
        .run();
    out.code(0).stdout_is("ok\n");

    let err = vault_test(&bao)
        .env("VAULT_TOKEN", bao.root)
        .args([
            "run",
            "-s",
            "X=vault://kv1/legacy?version=2#user",
            "--",
            "true",
        ])
        .run();
    err.code(78)
        .stderr_contains("KV v1 mount, which keeps no versions");
}

#[test]
fn a_pki_certificate_has_a_real_lease_that_is_revoked_after_the_run() {
    let (bao, signer) = server();
    bao.pki();
    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let tokens_before = bao.token_count();
    let test = vault_test(&bao);
    let seen = test.path().join("leases-during-run.json");
    // The command looks at the server's leases while it runs (through curl, with the root
    // token under another name), to prove the lease existed before it was revoked.
    let script = format!(
        "grep -q 'BEGIN CERTIFICATE' \"$CERT\" && test -n \"$KEY\" && curl -s -X LIST -H \"X-Vault-Token: $BAO_ROOT\" \"$VAULT_ADDR/v1/sys/leases/lookup/pki/issue/web/\" > '{}' && echo ok",
        seen.display()
    );
    let test = test
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .env("STEPSECRET_VAULT_ROLE", "circleci")
        .env("BAO_ROOT", bao.root)
        .args([
            "run",
            "--file",
            "CERT=vault://pki/issue/web?common_name=app.example.com&ttl=10m#certificate",
            "-s",
            "KEY=vault://pki/issue/web?common_name=app.example.com&ttl=10m#private_key",
            "--",
            "sh",
            "-c",
            &script,
        ]);
    let out = test.run();
    out.code(0).stdout_is("ok\n").stderr_is("");
    let during: serde_json::Value = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
    assert_eq!(
        during["data"]["keys"].as_array().map(Vec::len),
        Some(1),
        "one lease for both variables (one write per unique reference): {during}"
    );
    // The policy does not allow sys/leases/revoke, so the lease goes with the login token:
    // Vault revokes a revoked token's leases in the background, within moments.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !bao.leases("pki/issue/web/").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        bao.leases("pki/issue/web/").is_empty(),
        "the lease was revoked"
    );
    assert_eq!(
        bao.token_count(),
        tokens_before,
        "the login token was revoked"
    );
}

#[test]
fn with_a_supplied_token_the_lease_is_revoked_and_the_token_kept() {
    let (bao, _signer) = server();
    bao.pki();
    let tokens_before = bao.token_count();
    let out = vault_test(&bao)
        .env("VAULT_TOKEN", bao.root)
        .args([
            "run",
            "-s",
            "KEY=vault://pki/issue/web?common_name=a.example.com#private_key",
            "--",
            "true",
        ])
        .run();
    out.code(0).stderr_is("");
    assert!(bao.leases("pki/issue/web/").is_empty());
    assert_eq!(bao.token_count(), tokens_before);
}

#[test]
fn missing_path_and_missing_key_fail_closed_naming_the_variable() {
    let (bao, _signer) = server();
    let test = vault_test(&bao).env("VAULT_TOKEN", bao.root);
    let (marker, script) = ran_marker(&test);
    let out = test
        .args([
            "run",
            "-s",
            "GONE=vault://secret/nowhere#password",
            "-s",
            "NOKEY=vault://secret/app#no_such_key",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .run();
    out.code(69)
        .stderr_contains("GONE (vault://secret/nowhere#password): no secret at secret/nowhere")
        .stderr_contains("NOKEY (vault://secret/app#no_such_key):")
        .stderr_contains("no_such_key")
        .leaks_none(&[PASSWORD, API_KEY]);
    assert!(!marker.exists());
}

#[test]
fn a_server_that_is_down_fails_closed_at_the_deadline() {
    let port = free_port(1);
    let test = Test::new()
        .env("VAULT_ADDR", format!("http://127.0.0.1:{port}"))
        .env("VAULT_TOKEN", "s.whatever");
    let (marker, script) = ran_marker(&test);
    let started = Instant::now();
    let out = test
        .args([
            "run",
            "--timeout",
            "1s",
            "-s",
            "PW=vault://secret/app#password",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .run();
    out.code(69)
        .stderr_contains(&format!("cannot reach Vault at http://127.0.0.1:{port}"))
        .stderr_contains("check VAULT_ADDR");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "bounded by --timeout"
    );
    assert!(!marker.exists());
}

/// The fault proxy in front of `bao`.
fn proxy_for(bao: &OpenBao) -> FaultProxy {
    FaultProxy::start(bao.port)
}

/// A run reading secret/app#password through `proxy`; its command checks the value itself.
fn read_password_through(proxy: &FaultProxy, bao: &OpenBao) -> crate::support::Output {
    Test::new()
        .env("VAULT_ADDR", proxy.url())
        .env("VAULT_TOKEN", bao.root)
        .args([
            "run",
            "-s",
            "PW=vault://secret/app#password",
            "--",
            "sh",
            "-c",
            &format!("test \"$PW\" = '{PASSWORD}' && echo ok"),
        ])
        .run()
}

#[test]
fn a_503_storm_is_retried_and_the_run_goes_on() {
    let (bao, _signer) = server();
    let proxy = proxy_for(&bao);
    proxy.add(Rule::times("/v1/secret/data/app", Fault::Status(503), 3));
    proxy.add(Rule::times(
        "/v1/sys/internal/ui/mounts",
        Fault::Status(429),
        2,
    ));
    let out = read_password_through(&proxy, &bao);
    out.code(0).stdout_is("ok\n");
    assert_eq!(proxy.count("/v1/secret/data/app"), (1, 3));
    assert_eq!(proxy.count("/v1/sys/internal/ui/mounts"), (1, 2));
}

#[test]
fn dropped_connections_and_cut_answers_are_retried() {
    let (bao, _signer) = server();
    let proxy = proxy_for(&bao);
    proxy.add(Rule::times("/v1/secret/data/app", Fault::Drop, 2));
    proxy.add(Rule::times("/v1/secret/data/app", Fault::Truncate, 1));
    let out = read_password_through(&proxy, &bao);
    out.code(0).stdout_is("ok\n").leaks_none(&[PASSWORD]);
    assert_eq!(
        proxy.count("/v1/secret/data/app"),
        (1, 3),
        "two dropped, one cut short, then one whole"
    );
}

#[test]
fn an_endless_429_storm_gives_up_at_the_deadline_with_exit_75() {
    let (bao, _signer) = server();
    let proxy = proxy_for(&bao);
    proxy.add(Rule::always("/v1/secret/data/", Fault::Status(429)));
    let test = Test::new()
        .env("VAULT_ADDR", proxy.url())
        .env("VAULT_TOKEN", bao.root);
    let (marker, script) = ran_marker(&test);
    let started = Instant::now();
    let out = test
        .args([
            "run",
            "--timeout",
            "2s",
            "-s",
            "PW=vault://secret/app#password",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .run();
    out.code(75)
        .stderr_contains("PW (vault://secret/app#password): Vault at")
        .stderr_contains("kept failing reading secret/app (HTTP 429")
        .stderr_contains("raise --timeout");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(!marker.exists());
    let (_, injected) = proxy.count("/v1/secret/data/app");
    assert!(injected >= 3, "it retried: {injected}");
}

#[test]
fn truncated_json_from_the_server_is_a_clear_error() {
    // A 200 whose JSON ends early, every time: the proxy forwards and cuts each answer.
    let (bao, _signer) = server();
    let proxy = proxy_for(&bao);
    proxy.add(Rule::always("/v1/secret/data/app", Fault::Truncate));
    let out = Test::new()
        .env("VAULT_ADDR", proxy.url())
        .env("VAULT_TOKEN", bao.root)
        .args([
            "run",
            "--timeout",
            "1s",
            "-s",
            "PW=vault://secret/app#password",
            "--",
            "true",
        ])
        .run();
    out.code(69)
        .stderr_contains("answer was cut short")
        .leaks_none(&[PASSWORD]);
}

#[test]
fn one_login_one_mount_question_and_one_read_per_unique_path() {
    let (bao, signer) = server();
    for i in 0..3 {
        bao.put(
            &format!("svc/{i}"),
            json!({ "a": format!("value-a-{i}-xxxx"), "b": format!("value-b-{i}-xxxx") }),
        );
    }
    let proxy = proxy_for(&bao);
    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let mut lines = String::new();
    for i in 0..3 {
        lines.push_str(&format!(
            "A{i}=vault://secret/svc/{i}#a\nB{i}=vault://secret/svc/{i}#b\n"
        ));
    }
    let out = Test::new()
        .env("VAULT_ADDR", proxy.url())
        .env("CIRCLE_OIDC_TOKEN", &token)
        .env("STEPSECRET_VAULT_ROLE", "circleci")
        .env("STEPSECRET_SECRETS", lines)
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "test \"$B2\" = value-b-2-xxxx && echo ok",
        ])
        .run();
    out.code(0).stdout_is("ok\n");
    assert_eq!(proxy.count("/v1/auth/jwt/login"), (1, 0));
    assert_eq!(proxy.count("/v1/sys/internal/ui/mounts/"), (1, 0));
    assert_eq!(proxy.count("/v1/secret/data/svc/"), (3, 0));
    assert_eq!(proxy.count("/v1/auth/token/revoke-self"), (1, 0));
}

#[test]
fn an_expired_token_is_denied_with_a_message_that_says_so() {
    let (bao, _signer) = server();
    let created = bao.api(
        "POST",
        "auth/token/create",
        Some(json!({ "policies": ["read-secrets"], "ttl": "1s", "explicit_max_ttl": "1s" })),
    );
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let out = vault_test(&bao)
        .env("VAULT_TOKEN", &token)
        .args(["run", "-s", "PW=vault://secret/app#password", "--", "true"])
        .run();
    out.code(77)
        .stderr_contains("expired or revoked")
        .leaks_none(&[&token]);
}

#[test]
fn check_shows_versions_ages_and_who_logged_in() {
    let (bao, signer) = server();
    bao.put("app", json!({ "password": PASSWORD, "api_key": API_KEY }));
    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let out = vault_test(&bao)
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .env("STEPSECRET_VAULT_ROLE", "circleci")
        .args([
            "check",
            "--format",
            "json",
            "-s",
            "PW=vault://secret/app#password",
            "-s",
            "OLD=vault://secret/app?version=1#password",
        ])
        .run();
    out.code(0).leaks_none(&[PASSWORD, API_KEY, &token]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let text = report.to_string();
    assert!(
        text.contains("\"2\"") && text.contains("\"1\""),
        "versions: {text}"
    );
    assert!(text.contains("created"), "{text}");
    assert!(text.contains("read-secrets"), "policies: {text}");
    assert!(
        text.contains("sub") && text.contains("org/org-1/project/proj-1"),
        "{text}"
    );
}

#[test]
fn without_leases_the_login_token_is_revoked_while_the_command_runs() {
    let (bao, signer) = server();
    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let tokens_before = bao.token_count();
    // The command polls the server (root token under another name) for up to 5 s until the
    // login token is gone; it must not need to wait for its own exit.
    let count = "curl -s -X LIST -H \"X-Vault-Token: $BAO_ROOT\" \"$VAULT_ADDR/v1/auth/token/accessors\" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)[\"data\"][\"keys\"]))'";
    let script = format!(
        "for i in $(seq 50); do test \"$({count})\" -le {tokens_before} && {{ echo revoked-during-run; exit 0; }}; sleep 0.1; done; echo still-valid"
    );
    let out = vault_test(&bao)
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .env("STEPSECRET_VAULT_ROLE", "circleci")
        .env("BAO_ROOT", bao.root)
        .args([
            "run",
            "-s",
            "PW=vault://secret/app#password",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .run();
    out.code(0).stdout_is("revoked-during-run\n").stderr_is("");
    assert_eq!(bao.token_count(), tokens_before);
}

#[test]
fn https_with_vault_cacert_works_and_an_untrusted_certificate_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_bao, url, ca) = OpenBao::start_tls(dir.path());
    let put = std::process::Command::new("curl")
        .args(["-s", "-f", "-o", "/dev/null", "--cacert"])
        .arg(&ca)
        .args(["-H", "X-Vault-Token: root", "--data"])
        .arg(format!("{{\"data\":{{\"password\":\"{PASSWORD}\"}}}}"))
        .arg(format!("{url}/v1/secret/data/tls"))
        .status()
        .unwrap();
    assert!(put.success());
    let read = |ca: Option<&std::path::Path>| {
        let mut test = Test::new()
            .env("VAULT_ADDR", &url)
            .env("VAULT_TOKEN", "root");
        if let Some(ca) = ca {
            test = test.env("VAULT_CACERT", ca);
        }
        test.args([
            "run",
            "--timeout",
            "10s",
            "-s",
            "PW=vault://secret/tls#password",
            "--",
            "sh",
            "-c",
            &format!("test \"$PW\" = '{PASSWORD}' && echo ok"),
        ])
        .run()
    };
    read(Some(&ca)).code(0).stdout_is("ok\n");

    let started = Instant::now();
    read(None)
        .code(69)
        .stderr_contains("TLS failed (invalid peer certificate: UnknownIssuer); set VAULT_CACERT");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a bad certificate is not retried until the deadline"
    );
}

#[test]
fn vault_namespace_selects_the_namespace() {
    let bao = OpenBao::start();
    bao.api("POST", "sys/namespaces/team", None);
    // A fresh KV v2 mount upgrades itself for a moment before it takes writes: retry briefly.
    let in_team = |method: &str, path: &str, body: serde_json::Value| {
        let ok = (0..50).any(|_| {
            let done = std::process::Command::new("curl")
                .args(["-s", "-f", "-o", "/dev/null", "-X", method])
                .args(["-H", "X-Vault-Token: root", "-H", "X-Vault-Namespace: team"])
                .args(["--data", &body.to_string()])
                .arg(format!("{}/v1/{path}", bao.url()))
                .status()
                .unwrap()
                .success();
            if !done {
                std::thread::sleep(Duration::from_millis(100));
            }
            done
        });
        assert!(ok, "{method} {path}");
    };
    in_team(
        "POST",
        "sys/mounts/secret",
        json!({ "type": "kv", "options": { "version": "2" } }),
    );
    in_team(
        "POST",
        "secret/data/app",
        json!({ "data": { "password": PASSWORD } }),
    );
    let run = |namespace: Option<&str>| {
        let mut test = vault_test(&bao).env("VAULT_TOKEN", bao.root);
        if let Some(ns) = namespace {
            test = test.env("VAULT_NAMESPACE", ns);
        }
        test.args([
            "run",
            "-s",
            "PW=vault://secret/app#password",
            "--",
            "sh",
            "-c",
            &format!("test \"$PW\" = '{PASSWORD}' && echo ok"),
        ])
        .run()
    };
    run(Some("team")).code(0).stdout_is("ok\n");
    // The root namespace's secret/ has no such secret.
    run(None)
        .code(69)
        .stderr_contains("no secret at secret/app");
}

#[test]
fn a_batch_token_is_not_revoked_and_the_audit_record_says_so() {
    let (bao, signer) = server();
    bao.api(
        "POST",
        "auth/jwt/role/batch",
        Some(json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["org-1"],
            "token_policies": ["read-secrets"],
            "token_ttl": "5m",
            "token_type": "batch",
        })),
    );
    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let t = vault_test(&bao)
        .env("CIRCLE_OIDC_TOKEN_V2", &token)
        .env("STEPSECRET_VAULT_ROLE", "batch");
    let log = t.path().join("audit.jsonl");
    let t = t.args([
        "run",
        "--audit-log",
        log.to_str().unwrap(),
        "-s",
        "PW=vault://secret/app#password",
        "--",
        "sh",
        "-c",
        "test -n \"$PW\" && echo ok",
    ]);
    // No warning: a batch token that cannot be revoked is no failure.
    t.run().code(0).stdout_is("ok\n").stderr_is("");
    let record: Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(
        record["identities"]["vault"]["token type"], "batch",
        "{record}"
    );
    let cleanup = record["cleanup"].as_array().unwrap();
    assert_eq!(cleanup.len(), 1, "{record}");
    assert!(
        cleanup[0]["what"]
            .as_str()
            .unwrap()
            .contains("batch token is not revocable"),
        "{record}"
    );
    assert_eq!(cleanup[0]["error"], Value::Null);
}

#[test]
fn a_kv_v2_reference_with_data_in_it_names_the_corrected_reference() {
    let (bao, _signer) = server();
    let t = vault_test(&bao).env("VAULT_TOKEN", bao.root);
    let (marker, script) = ran_marker(&t);
    t.args(["run", "-s", "PW=vault://secret/data/app#password", "--", "sh", "-c", &script])
        .run()
        .code(78)
        .stderr_contains("vault://secret/data/app names the KV v2 API path: write it without data/ (stepsecret adds it), as vault://secret/app");
    assert!(!marker.exists(), "the command ran");
}
