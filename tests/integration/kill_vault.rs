//! What a SIGKILL of stepsecret leaves behind on Vault: with the guardian, nothing (it revokes
//! the login token and the leases at once); without it (STEPSECRET_UNGUARDED, only to measure
//! the difference), the token and the lease stay valid until their TTL.

#![cfg(feature = "vault")]

use std::process::Stdio;
use std::time::Duration;

use crate::support::openbao::{OpenBao, Signer, circleci_claims, configure_jwt};
use crate::support::{Test, wait_for};

/// Starts a run holding a JWT login token and a PKI lease, SIGKILLs stepsecret once the command
/// runs, and returns (tokens left over, leases left over, stepsecret's stderr).
fn kill_mid_run(unguarded: bool) -> (usize, usize, String) {
    let bao = OpenBao::start();
    let signer = Signer::new();
    configure_jwt(&bao, &signer);
    bao.pki();
    let tokens_before = bao.token_count();
    let mut test = Test::new()
        .env("VAULT_ADDR", bao.url())
        .env("STEPSECRET_VAULT_ROLE", "circleci")
        .env(
            "CIRCLE_OIDC_TOKEN_V2",
            signer.sign(circleci_claims("org-1", "proj-1", "main")),
        );
    if unguarded {
        test = test.env("STEPSECRET_UNGUARDED", "1");
    }
    let mut child = test
        .command()
        .args([
            "run",
            "-s",
            "KEY=vault://pki/issue/web?common_name=kill.example.com#private_key",
            "--",
            "sh",
            "-c",
            "echo $$ > cmd.pid; touch ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = test.path().join("ready");
    wait_for("the command", Duration::from_secs(20), || ready.exists());
    assert_eq!(
        bao.leases("pki/issue/web/").len(),
        1,
        "the run holds a lease"
    );
    assert_eq!(bao.token_count(), tokens_before + 1, "and a login token");

    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    if !unguarded {
        wait_for("the guardian to revoke", Duration::from_secs(10), || {
            bao.leases("pki/issue/web/").is_empty() && bao.token_count() == tokens_before
        });
    } else {
        std::thread::sleep(Duration::from_millis(500));
    }
    // In the unguarded case the command survives its parent: end it.
    let pid = std::fs::read_to_string(test.path().join("cmd.pid")).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    (
        bao.token_count() - tokens_before,
        bao.leases("pki/issue/web/").len(),
        stderr,
    )
}

#[test]
fn sigkill_of_a_vault_run_revokes_its_login_token_and_leases() {
    let (tokens, leases, stderr) = kill_mid_run(false);
    assert_eq!((tokens, leases), (0, 0));
    assert!(
        stderr.contains(
            "guardian: the run ended without cleaning up; revoke the Vault login token done"
        ),
        "{stderr}"
    );
}

#[test]
fn without_the_guardian_a_sigkill_leaves_the_token_and_the_lease() {
    // The "before" figure of the README's security section.
    let (tokens, leases, _) = kill_mid_run(true);
    assert_eq!((tokens, leases), (1, 1));
}
