//! `stepsecret doctor` against a real OpenBao with CircleCI- and Bitbucket-shaped tokens: a
//! good role, a wrong audience, a missing bound_audiences, a sub that does not match. The token
//! never appears in the output.

#![cfg(feature = "vault")]

use serde_json::json;

use crate::support::openbao::{OpenBao, Signer, bitbucket_claims, circleci_claims, configure_jwt};
use crate::support::{Output, Test};

fn server() -> (OpenBao, Signer) {
    let bao = OpenBao::start();
    let signer = Signer::new();
    configure_jwt(&bao, &signer);
    (bao, signer)
}

/// `doctor` for a spec logging in as `role`, with `token` in `variable` (and the root token in
/// VAULT_TOKEN when `admin`, so the role can be read even when the login fails).
fn doctor(bao: &OpenBao, role: &str, variable: &str, token: &str, admin: bool) -> Output {
    let mut t = Test::new()
        .file(
            "stepsecret.toml",
            format!("[vault]\nrole = \"{role}\"\n\n[env]\nPW = \"vault://secret/app#password\"\n"),
        )
        .env("VAULT_ADDR", bao.url())
        .env(variable, token)
        .args(["doctor"]);
    if admin {
        t = t.env("VAULT_TOKEN", bao.root);
    }
    let out = t.run();
    out.leaks_none(&[token, bao.root]);
    out
}

#[test]
fn a_good_circleci_role_logs_in_and_shows_the_claims() {
    let (bao, signer) = server();
    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let tokens_before = bao.token_count();
    doctor(&bao, "circleci", "CIRCLE_OIDC_TOKEN_V2", &token, false)
        .code(0)
        .stdout_contains_all(&[
            "oidc token: CIRCLE_OIDC_TOKEN_V2 (circleci)\n",
            "  aud: org-1\n",
            "  oidc.circleci.com/project-id: proj-1\n",
            "vault:\n",
            "  auth: jwt (auth/jwt)\n",
            "  role: circleci\n",
            "  login: ok\n",
            "result: every login works\n",
        ]);
    assert_eq!(
        bao.token_count(),
        tokens_before,
        "the login token was revoked"
    );
}

#[test]
fn a_wrong_audience_is_named_with_its_fix() {
    let (bao, signer) = server();
    let token = signer.sign(circleci_claims("org-2", "proj-1", "main"));
    let out = doctor(&bao, "circleci", "CIRCLE_OIDC_TOKEN_V2", &token, true);
    out.code(77).stdout_contains_all(&[
        "  login: failed (denied): ",
        "  problem: bound_audiences is [\"org-1\"] but the token's aud is [\"org-2\"]: set \"bound_audiences\": [\"org-2\"]\n",
        "result: 1 of 1 backends failed\n",
    ]);
    // Without a token that may read the role, doctor says so instead of guessing.
    doctor(&bao, "circleci", "CIRCLE_OIDC_TOKEN_V2", &token, false)
        .code(77)
        .stdout_contains_all(&["cannot read auth/jwt/role/circleci to compare it with the token"]);
}

#[test]
fn a_role_without_bound_audiences_and_a_sub_that_does_not_match() {
    let (bao, signer) = server();
    bao.api(
        "POST",
        "auth/jwt/role/no-aud",
        Some(json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_subject": "org/org-1/project/proj-1/user/u1",
            "token_policies": ["read-secrets"],
        })),
    );
    bao.api(
        "POST",
        "auth/jwt/role/other-project",
        Some(json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["org-1"],
            "bound_claims_type": "glob",
            "bound_claims": { "sub": "org/org-1/project/proj-9/*" },
            "token_policies": ["read-secrets"],
        })),
    );
    let token = signer.sign(circleci_claims("org-1", "proj-1", "main"));
    let out = doctor(&bao, "no-aud", "CIRCLE_OIDC_TOKEN_V2", &token, true);
    out.stdout_contains_all(&[
        "  problem: the role has no bound_audiences but the token carries aud [\"org-1\"]: Vault 1.16.3 and later refuse it; set \"bound_audiences\": [\"org-1\"]\n",
    ]);
    let out = doctor(&bao, "other-project", "CIRCLE_OIDC_TOKEN_V2", &token, true);
    out.code(77).stdout_contains_all(&[
        "  problem: bound_claims.sub is [\"org/org-1/project/proj-9/*\"] (glob) but the token's sub is \"",
    ]);
}

#[test]
fn bitbucket_tokens_good_role_and_wrong_audience() {
    let (bao, signer) = server();
    let good = signer.sign(bitbucket_claims("{ws-1}", "{repo-1}", "main"));
    doctor(&bao, "bitbucket", "BITBUCKET_STEP_OIDC_TOKEN", &good, false)
        .code(0)
        .stdout_contains_all(&[
            "oidc token: BITBUCKET_STEP_OIDC_TOKEN (bitbucket)\n",
            "  repositoryUuid: {repo-1}\n",
            "  login: ok\n",
        ]);
    let other = signer.sign(bitbucket_claims("{ws-2}", "{repo-1}", "main"));
    doctor(&bao, "bitbucket", "BITBUCKET_STEP_OIDC_TOKEN", &other, true)
        .code(77)
        .stdout_contains_all(&["  problem: bound_audiences is [\"ari:cloud:bitbucket::workspace/ws-1\"] but the token's aud is [\"ari:cloud:bitbucket::workspace/ws-2\"]"]);
}
