//! Delivery (issue 14): config files rendered from templates, and files at the paths tools
//! expect, each removed on every way a run can end.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::support::{AgeKey, Test, ran_marker, wait_for};

const NPM_TOKEN: &str = "npm_Zq8vR2xkP0wLm4Tn";
const DOCKER_USER: &str = "ci-robot";
const DOCKER_PASSWORD: &str = "hunter2-but<longer>&\"quoted\"";

/// A PEM certificate as a kubeconfig carries it: several lines, a trailing newline.
fn certificate() -> String {
    let body = STANDARD.encode((0u8..=200).collect::<Vec<u8>>());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// A test directory with one age file holding the secrets (as JSON, so values may hold line
/// breaks), the identity in the environment, and `spec` as stepsecret.toml.
fn fixture(values: &[(&str, &str)], spec: &str) -> Test {
    let key = AgeKey::generate();
    let json: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let plaintext = serde_json::to_vec(&json).unwrap();
    Test::new()
        .file("s.age", key.seal(&plaintext, false))
        .file("stepsecret.toml", spec)
        .env("STEPSECRET_AGE_IDENTITY", key.secret())
}

fn registry_fixture() -> Test {
    fixture(
        &[
            ("NPM_TOKEN", NPM_TOKEN),
            ("DOCKER_USER", DOCKER_USER),
            ("DOCKER_PASSWORD", DOCKER_PASSWORD),
        ],
        r#"
[values]
NPM_TOKEN = "age://s.age#NPM_TOKEN"
DOCKER_USER = "age://s.age#DOCKER_USER"
DOCKER_PASSWORD = "age://s.age#DOCKER_PASSWORD"

[templates]
NPMRC = { template = "ci/npmrc.tpl", path = ".npmrc" }
DOCKER_CONFIG_JSON = { template = "ci/docker.json.tpl", path = ".docker/config.json" }
"#,
    )
    .file(
        "ci/npmrc.tpl",
        "//registry.npmjs.org/:_authToken={{ NPM_TOKEN }}\nalways-auth=true\n",
    )
    .file(
        "ci/docker.json.tpl",
        r#"{"auths":{"registry.example.com":{"auth":"{{ (DOCKER_USER ~ ":" ~ DOCKER_PASSWORD) | b64encode }}"}}}"#,
    )
}

#[test]
fn npmrc_and_docker_config_are_rendered_masked_and_removed() {
    // The command copies what it was given (to check the bytes), prints it (to check the
    // masking), and dumps its own environment.
    let t = registry_fixture().args(["run", "--", "sh", "-c"]).args([
        r#"stat -c %a .npmrc .docker .docker/config.json > modes
            cp .npmrc npmrc.copy; cp .docker/config.json docker.copy
            echo "$NPMRC|$DOCKER_CONFIG_JSON" > paths
            tr '\0' '\n' < /proc/$$/environ > environ
            cat .npmrc .docker/config.json"#,
    ]);
    let out = t.run();
    out.code(0).leaks_none(&[NPM_TOKEN, DOCKER_PASSWORD]);
    let dir = t.path();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(
        read("npmrc.copy"),
        format!("//registry.npmjs.org/:_authToken={NPM_TOKEN}\nalways-auth=true\n")
    );
    let auth = STANDARD.encode(format!("{DOCKER_USER}:{DOCKER_PASSWORD}"));
    assert_eq!(
        read("docker.copy"),
        format!(r#"{{"auths":{{"registry.example.com":{{"auth":"{auth}"}}}}}}"#)
    );
    // The base64 of user:password is a secret the template made: masked too.
    assert!(!out.stdout.contains(&auth), "{}", out.stdout);
    assert!(
        out.stdout.contains("_authToken=[masked:NPM_TOKEN]"),
        "{}",
        out.stdout
    );
    assert_eq!(read("modes"), "600\n700\n600\n");
    assert_eq!(
        read("paths").trim(),
        format!(
            "{}|{}",
            dir.join(".npmrc").display(),
            dir.join(".docker/config.json").display()
        )
    );
    // Template-only values never reach the command's environment.
    let environ = read("environ");
    for name in ["NPM_TOKEN", "DOCKER_USER", "DOCKER_PASSWORD"] {
        assert!(
            !environ.contains(&format!("{name}=")),
            "{name} in the environment"
        );
    }
    assert!(!environ.contains(NPM_TOKEN) && !environ.contains(DOCKER_PASSWORD));
    // Gone afterwards, with the folder made for it.
    assert!(!dir.join(".npmrc").exists());
    assert!(!dir.join(".docker").exists());
}

#[test]
fn a_kubeconfig_with_a_multi_line_certificate_goes_to_the_private_directory() {
    let cert = certificate();
    let t = fixture(
        &[("CA_CERT", &cert), ("KUBE_TOKEN", "eyJhbGciOiJSUzI1NiJ9.kube-token-value")],
        r#"
[values]
CA_CERT = "age://s.age#CA_CERT"
KUBE_TOKEN = "age://s.age#KUBE_TOKEN"

[templates]
KUBECONFIG = { template = "kubeconfig.tpl" }
"#,
    )
    .file(
        "kubeconfig.tpl",
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {{ CA_CERT | b64encode }}\n    server: https://k8s.example.com\n  name: ci\nusers:\n- name: ci\n  user:\n    token: {{ KUBE_TOKEN }}\n",
    )
    .args(["run", "--", "sh", "-c"])
    .args([r#"echo "$KUBECONFIG" > path; cp "$KUBECONFIG" copy; stat -c %a "$KUBECONFIG" > mode; cat "$KUBECONFIG""#]);
    let out = t.run();
    out.code(0)
        .leaks_none(&["kube-token-value", &STANDARD.encode(&cert)]);
    let dir = t.path();
    let copy = std::fs::read_to_string(dir.join("copy")).unwrap();
    assert!(copy.contains(&format!(
        "certificate-authority-data: {}\n",
        STANDARD.encode(&cert)
    )));
    assert!(copy.ends_with("token: eyJhbGciOiJSUzI1NiJ9.kube-token-value\n"));
    assert_eq!(std::fs::read_to_string(dir.join("mode")).unwrap(), "600\n");
    let path = PathBuf::from(std::fs::read_to_string(dir.join("path")).unwrap().trim());
    assert!(
        !path.starts_with(dir) && !path.exists(),
        "{}",
        path.display()
    );
}

#[test]
fn rendered_bytes_are_exact() {
    // Spaces, line breaks (a secret file's trailing newline), quotes, braces and non-ASCII
    // text: all kept, and nothing added after a template without a final newline.
    let value = "  two\nlines {{ not a tag }} 'q' \"dq\" \\ é€\n\n";
    let t = fixture(
        &[("V", value)],
        "[values]\nV = \"age://s.age#V\"\n[templates]\nOUT = { template = \"t.tpl\", path = \"out.txt\" }\n",
    )
    .file("t.tpl", "<{{ V }}>")
    .args(["run", "--", "cp", "out.txt", "copy"]);
    t.run().code(0);
    assert_eq!(
        std::fs::read(t.path().join("copy")).unwrap(),
        format!("<{value}>").as_bytes()
    );
}

#[test]
fn a_binary_file_secret_at_a_chosen_path_is_byte_exact() {
    let key = AgeKey::generate();
    let bytes: Vec<u8> = (0u8..=255).rev().collect();
    let t = Test::new()
        .file("bin.age", key.seal(&bytes, false))
        .env("STEPSECRET_AGE_IDENTITY", key.secret())
        .file(
            "stepsecret.toml",
            "[files]\nSA = { ref = \"age://bin.age\", path = \"keys/sa.bin\" }\n",
        )
        .args([
            "run",
            "--",
            "sh",
            "-c",
            r#"cp "$SA" copy; echo "$SA" > path"#,
        ]);
    t.run().code(0);
    assert_eq!(std::fs::read(t.path().join("copy")).unwrap(), bytes);
    assert_eq!(
        std::fs::read_to_string(t.path().join("path"))
            .unwrap()
            .trim(),
        t.path().join("keys/sa.bin").display().to_string()
    );
    assert!(!t.path().join("keys").exists());
}

#[test]
fn home_relative_paths_are_expanded() {
    let t = registry_fixture();
    let spec = std::fs::read_to_string(t.path().join("stepsecret.toml"))
        .unwrap()
        .replace("path = \".npmrc\"", "path = \"~/cfg/.npmrc\"");
    let home = t.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let t = t.file("stepsecret.toml", spec).env("HOME", home).args([
        "run",
        "--",
        "sh",
        "-c",
        r#"test "$NPMRC" = "$HOME/cfg/.npmrc" && test -f "$NPMRC""#,
    ]);
    t.run().code(0);
    assert!(!t.path().join("home/cfg").exists());
    assert!(
        t.path().join("home").exists(),
        "a folder it did not make stays"
    );
}

#[test]
fn an_existing_file_is_refused_untouched_before_anything_runs() {
    for existing in [".npmrc", ".docker/config.json"] {
        let t = registry_fixture().file(existing, "mine\n");
        let (marker, script) = ran_marker(&t);
        let t = t.args(["run", "--", "sh", "-c", &script]);
        let out = t.run();
        out.code(73)
            .stderr_contains(&t.path().join(existing).display().to_string())
            .stderr_contains("already exists");
        assert!(!marker.exists(), "no child may start");
        assert_eq!(
            std::fs::read_to_string(t.path().join(existing)).unwrap(),
            "mine\n"
        );
        // Nothing else was written either.
        assert!(!t.path().join(".npmrc").exists() || existing == ".npmrc");
    }
}

#[test]
fn template_mistakes_are_spec_errors_naming_the_file_and_line_with_no_child() {
    for (template, line, words) in [
        ("a\n{{ NPM_TOKEN \n", "ci/npmrc.tpl:2", "syntax error"),
        (
            "a\nb\n{{ NPM_TOKNE }}\n",
            "ci/npmrc.tpl:3",
            "unknown variable `NPM_TOKNE`",
        ),
        (
            "{{ NPM_TOKEN | rot13 }}",
            "ci/npmrc.tpl:1",
            "unknown filter `rot13`",
        ),
        ("{% for x in y %}", "ci/npmrc.tpl:1", "syntax error"),
    ] {
        let t = registry_fixture().file("ci/npmrc.tpl", template);
        let (marker, script) = ran_marker(&t);
        let t = t.args(["run", "--", "sh", "-c", &script]);
        let out = t.run();
        out.code(78).stderr_contains(line).stderr_contains(words);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(!marker.exists(), "no child may start");
    }
    // A missing template names the spec's line.
    let t = registry_fixture();
    std::fs::remove_file(t.path().join("ci/npmrc.tpl")).unwrap();
    let out = t.args(["run", "--", "true"]).run();
    out.code(78)
        .stderr_contains("stepsecret.toml:8: NPMRC: cannot read template ci/npmrc.tpl");
}

#[test]
fn two_entries_writing_one_path_are_a_spec_error() {
    let t = registry_fixture();
    let spec = std::fs::read_to_string(t.path().join("stepsecret.toml"))
        .unwrap()
        .replace(".docker/config.json", "./x/../.npmrc");
    let out = t
        .file("stepsecret.toml", spec)
        .args(["run", "--", "true"])
        .run();
    out.code(78)
        .stderr_contains("is also written by the entry at");
}

#[test]
fn check_lists_templates_and_paths_and_never_a_value() {
    let t = registry_fixture().args(["check"]);
    let out = t.run();
    out.code(0)
        .leaks_none(&[NPM_TOKEN, DOCKER_PASSWORD])
        .stdout_contains_all(&[
            &format!("template NPMRC: {}", t.path().join(".npmrc").display()),
            "template: ci/npmrc.tpl",
            "reads DOCKER_PASSWORD, DOCKER_USER",
            "value",
        ]);
    assert!(!t.path().join(".npmrc").exists(), "check writes nothing");
}

#[test]
fn the_audit_record_lists_the_written_paths() {
    let t = registry_fixture().args(["run", "--audit-log", "audit.jsonl", "--", "true"]);
    t.run().code(0);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("audit.jsonl")).unwrap())
            .unwrap();
    let files: Vec<(&str, &str)> = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["path"].as_str().unwrap()))
        .collect();
    let npmrc = t.path().join(".npmrc").display().to_string();
    assert!(files.contains(&("NPMRC", npmrc.as_str())), "{files:?}");
    assert_eq!(files.len(), 2);
}

/// How a run ends, for the removal test.
enum Ending {
    /// The command's script decides (exit code, a signal to itself, a missing program).
    Command(&'static [&'static str], i32),
    /// A signal to stepsecret once the command runs.
    Signal(&'static str),
}

#[test]
fn files_at_chosen_paths_are_removed_on_every_exit_path() {
    let wait = "touch ready; while :; do sleep 0.05; done";
    for ending in [
        Ending::Command(&["sh", "-c", "exit 0"], 0),
        Ending::Command(&["sh", "-c", "exit 3"], 3),
        Ending::Command(&["sh", "-c", "kill -9 $$"], 137),
        Ending::Command(&["./no-such-program"], 127),
        Ending::Signal("-TERM"),
        Ending::Signal("-INT"),
        Ending::Signal("-HUP"),
        Ending::Signal("-KILL"),
    ] {
        let t = registry_fixture();
        let dir = t.path().to_path_buf();
        match ending {
            Ending::Command(command, code) => {
                let t = t.args(["run", "--"]).args(command);
                t.run().code(code);
                assert_gone(&dir);
            }
            Ending::Signal(signal) => {
                let t = t.args(["run", "--", "sh", "-c", wait]);
                let mut child = t
                    .command()
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                wait_for("the command", Duration::from_secs(20), || {
                    dir.join("ready").exists()
                });
                assert!(dir.join(".npmrc").exists() && dir.join(".docker/config.json").exists());
                let pid = child.id().to_string();
                let status = std::process::Command::new("kill")
                    .args([signal, &pid])
                    .status()
                    .unwrap();
                assert!(status.success());
                let _ = child.wait();
                if signal == "-KILL" {
                    // Only the guardian is left to remove them.
                    wait_for("the guardian", Duration::from_secs(5), || {
                        !dir.join(".docker").exists()
                    });
                }
                assert_gone(&dir);
            }
        }
    }
}

#[track_caller]
fn assert_gone(dir: &Path) {
    for name in [".npmrc", ".docker/config.json", ".docker"] {
        assert!(!dir.join(name).exists(), "{name} left behind");
    }
    for name in ["ci/npmrc.tpl", "stepsecret.toml"] {
        assert!(dir.join(name).exists(), "{name} removed");
    }
}

#[test]
fn redact_masks_what_templates_derive_as_run_does() {
    let auth = STANDARD.encode(format!("{DOCKER_USER}:{DOCKER_PASSWORD}"));
    let t = registry_fixture()
        .args(["redact"])
        .stdin(format!("auth {auth}\ntoken {NPM_TOKEN}\n"));
    let out = t.run();
    out.code(0)
        .stdout_is("auth [masked:DOCKER_CONFIG_JSON]\ntoken [masked:NPM_TOKEN]\n");
    assert!(!t.path().join(".npmrc").exists(), "redact writes no file");
}

#[test]
fn a_template_is_found_beside_the_spec_or_from_the_working_directory() {
    for written in ["npmrc.tpl", "ci/npmrc.tpl"] {
        let t = fixture(
            &[("NPM_TOKEN", NPM_TOKEN)],
            "",
        )
        .file(
            "ci/stepsecret.toml",
            format!("[values]\nNPM_TOKEN = \"age://../s.age#NPM_TOKEN\"\n[templates]\nNPMRC = {{ template = \"{written}\", path = \".npmrc\" }}\n"),
        )
        .file("ci/npmrc.tpl", "t={{ NPM_TOKEN }}")
        .args(["run", "--spec", "ci/stepsecret.toml", "--", "cp", ".npmrc", "copy"]);
        t.run().code(0);
        assert_eq!(
            std::fs::read_to_string(t.path().join("copy")).unwrap(),
            format!("t={NPM_TOKEN}"),
            "{written}"
        );
    }
}
