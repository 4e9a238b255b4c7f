//! What a SIGKILL of stepsecret itself leaves behind: no file secrets (the guardian removes
//! them) and no running command (it gets the parent-death signal).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{AgeKey, Test, wait_for};

/// Whether `pid` is a live process (not gone, not a zombie awaiting its reaper).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn sigkill_leaves_no_file_secret_and_no_running_command() {
    let key = AgeKey::generate();
    let t = Test::new()
        .file("s.age", key.seal(b"CONF=kubeconfig-contents-1234\n", false))
        .env("STEPSECRET_AGE_IDENTITY", key.secret());
    let mut child = t
        .command()
        .args(["run", "--file", "CONF=age://s.age#CONF", "--", "sh", "-c"])
        .arg(r#"echo "$CONF" > conf.path; echo $$ > cmd.pid; touch ready; while :; do sleep 0.05; done"#)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = t.path().to_path_buf();
    wait_for("the command", Duration::from_secs(20), || {
        dir.join("ready").exists()
    });
    let conf = PathBuf::from(
        std::fs::read_to_string(dir.join("conf.path"))
            .unwrap()
            .trim(),
    );
    let pid: i32 = std::fs::read_to_string(dir.join("cmd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(conf.exists() && alive(pid));

    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    wait_for(
        "the guardian to remove the files",
        Duration::from_secs(5),
        || !conf.parent().unwrap().exists(),
    );
    wait_for(
        "the command to die with stepsecret",
        Duration::from_secs(5),
        || !alive(pid),
    );
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(
        stderr.contains("guardian: the run ended without cleaning up; removed"),
        "{stderr}"
    );
}

#[test]
fn a_normal_run_stands_the_guardian_down_quietly() {
    let key = AgeKey::generate();
    Test::new()
        .file("s.age", key.seal(b"CONF=kubeconfig-contents-1234\n", false))
        .env("STEPSECRET_AGE_IDENTITY", key.secret())
        .args([
            "run",
            "--file",
            "CONF=age://s.age#CONF",
            "--",
            "sh",
            "-c",
            "test -s \"$CONF\"",
        ])
        .run()
        .code(0)
        .stdout_is("")
        .stderr_is("");
}
