//! `stepsecret pipe` (the Bitbucket pipe's entry point) and `run --bundle`, through the real
//! binary, the way Bitbucket runs a pipe: its variables in the environment, the build folder
//! as working directory, the pipes' shared storage folder. (The container image itself is
//! tested by scripts/test-pipe.sh with podman.)

use std::path::Path;

use crate::support::{AgeKey, Test, ran_marker};

const TOKEN: &str = "pipe-token-3c9e1f7a20";
const DB: &str = "pipe-db-pw-8d2b6e4f13";

/// A build folder with an age-sealed secrets file and a spec, as a repository would have.
fn build_dir(key: &AgeKey) -> Test {
    Test::new()
        .file(
            "ci/secrets.env.age",
            key.seal(format!("API_TOKEN={TOKEN}\nDB_PASSWORD={DB}\n").as_bytes(), false),
        )
        .file(
            "ci/stepsecret.toml",
            "[env]\nAPI_TOKEN = \"age://secrets.env.age#API_TOKEN\"\n\n[files]\nDB_FILE = \"age://secrets.env.age#DB_PASSWORD\"\n",
        )
        .env("STEPSECRET_AGE_IDENTITY", key.secret())
        .env("BITBUCKET_BUILD_NUMBER", "12")
        .env("BITBUCKET_STEP_UUID", "{step-aaaa}")
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[track_caller]
fn assert_no_plain_secret_under(dir: &Path) {
    for file in files_under(dir) {
        let bytes = std::fs::read(&file).unwrap();
        for value in [TOKEN, DB] {
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "{} holds a plain secret",
                file.display()
            );
        }
    }
}

#[test]
fn command_runs_with_the_secrets_masked_and_its_exit_code() {
    let key = AgeKey::generate();
    let out = build_dir(&key)
        .env("SPEC", "ci/stepsecret.toml")
        .env(
            "COMMAND",
            "echo \"token=$API_TOKEN\"; test \"$(cat \"$DB_FILE\")\" = '".to_string()
                + DB
                + "' && exit 7",
        )
        .args(["pipe"])
        .run();
    out.code(7)
        .stdout_is("token=[masked:API_TOKEN]\n")
        .leaks_none(&[TOKEN, DB]);
}

#[test]
fn the_secrets_list_form_and_debug_never_show_values() {
    let key = AgeKey::generate();
    let out = build_dir(&key)
        .env("SECRETS_COUNT", "2")
        .env("SECRETS_0", "A=age://ci/secrets.env.age#API_TOKEN")
        .env("SECRETS_1", "B=age://ci/secrets.env.age#DB_PASSWORD")
        .env("DEBUG", "true")
        .env(
            "COMMAND",
            format!("test \"$A\" = '{TOKEN}' && test \"$B\" = '{DB}' && echo ok"),
        )
        .args(["pipe"])
        .run();
    out.code(0)
        .stdout_is("ok\n")
        .stderr_contains("stepsecret pipe: A (env) <- age://ci/secrets.env.age#API_TOKEN")
        .leaks_none(&[TOKEN, DB]);

    let missing = build_dir(&key)
        .env("SECRETS_COUNT", "2")
        .env("SECRETS_0", "A=age://ci/secrets.env.age#API_TOKEN")
        .env("COMMAND", "true")
        .args(["pipe"])
        .run();
    missing.code(64).stderr_contains("SECRETS_1 is not set");
}

#[test]
fn nothing_to_do_is_a_usage_error_and_no_command_runs() {
    let key = AgeKey::generate();
    let out = build_dir(&key)
        .env("SPEC", "ci/stepsecret.toml")
        .args(["pipe"])
        .run();
    out.code(64).stderr_contains("needs COMMAND");
}

#[test]
fn an_exported_bundle_opens_once_in_the_same_step_only() {
    let key = AgeKey::generate();
    let step_key = AgeKey::generate();
    let test = build_dir(&key).env("SPEC", "ci/stepsecret.toml");
    let storage = test
        .path()
        .join(".bitbucket/pipelines/generated/pipeline/pipes/shared");
    std::fs::create_dir_all(&storage).unwrap();
    let out = test
        .env("EXPORT_RECIPIENT", step_key.recipient())
        .env(
            "BITBUCKET_PIPE_SHARED_STORAGE_DIR",
            storage.display().to_string(),
        )
        .args(["pipe"]);
    let exported = out.run();
    exported
        .code(0)
        .stdout_contains_all(&["2 secret(s) sealed", "stepsecret run --bundle"])
        .leaks_none(&[TOKEN, DB]);
    let bundle = storage.join("stepsecret-bundle.age");
    assert!(bundle.is_file());
    assert_no_plain_secret_under(out.path());
    let copy = out.path().join("bundle-copy.age");
    std::fs::copy(&bundle, &copy).unwrap();

    // Another step: refused, the command never runs, the bundle stays for its own step.
    let other = Test::new()
        .env("STEPSECRET_AGE_IDENTITY", step_key.secret())
        .env("BITBUCKET_STEP_UUID", "{step-bbbb}");
    let (marker, script) = ran_marker(&other);
    let refused = other
        .args([
            "run",
            "--bundle",
            &bundle.display().to_string(),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .run();
    refused
        .code(77)
        .stderr_contains("belongs to step {step-aaaa}, but this is step {step-bbbb}");
    assert!(!marker.exists());
    assert!(bundle.is_file());

    // The same step: the variables arrive (the file one as a file), masked; then it is gone.
    let same = Test::new()
        .env("STEPSECRET_AGE_IDENTITY", step_key.secret())
        .env("BITBUCKET_STEP_UUID", "{step-aaaa}")
        .args([
            "run",
            "--bundle",
            &bundle.display().to_string(),
            "--",
            "sh",
            "-c",
            &format!(
                "echo \"t=$API_TOKEN\"; test \"$(cat \"$DB_FILE\")\" = '{DB}' && echo file-ok"
            ),
        ])
        .run();
    same.code(0)
        .stdout_is("t=[masked:API_TOKEN]\nfile-ok\n")
        .leaks_none(&[TOKEN, DB]);
    assert!(!bundle.exists(), "deleted after use");

    // A bundle sealed to someone else does not open.
    let stranger = Test::new()
        .env("STEPSECRET_AGE_IDENTITY", key.secret())
        .env("BITBUCKET_STEP_UUID", "{step-aaaa}")
        .args(["run", "--bundle", &copy.display().to_string(), "--", "true"])
        .run();
    stranger
        .code(77)
        .stderr_contains("no age identity matches the bundle");
}

#[test]
fn an_expired_bundle_is_refused_and_deleted() {
    let key = AgeKey::generate();
    let step_key = AgeKey::generate();
    let test = build_dir(&key).env("SPEC", "ci/stepsecret.toml");
    let storage = test.path().join("shared");
    std::fs::create_dir_all(&storage).unwrap();
    let test = test
        .env("EXPORT_RECIPIENT", step_key.recipient())
        .env(
            "BITBUCKET_PIPE_SHARED_STORAGE_DIR",
            storage.display().to_string(),
        )
        .env("BUNDLE_TTL", "1s")
        .args(["pipe"]);
    test.run().code(0);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let bundle = storage.join("stepsecret-bundle.age");
    let out = Test::new()
        .env("STEPSECRET_AGE_IDENTITY", step_key.secret())
        .env("BITBUCKET_STEP_UUID", "{step-aaaa}")
        .args([
            "run",
            "--bundle",
            &bundle.display().to_string(),
            "--",
            "true",
        ])
        .run();
    out.code(77).stderr_contains("the bundle expired");
    assert!(!bundle.exists());
}

#[test]
fn install_copies_the_binary_into_the_build_folder_and_fetches_nothing() {
    // No identity and no spec: INSTALL alone needs neither.
    let test = Test::new()
        .env("BITBUCKET_STEP_UUID", "{step-aaaa}")
        .env("INSTALL", "true");
    let clone = test.path().to_path_buf();
    let test = test
        .env("BITBUCKET_CLONE_DIR", clone.display().to_string())
        .args(["pipe"]);
    let out = test.run();
    out.code(0)
        .stdout_contains_all(&[".stepsecret/bin/stepsecret"]);
    let installed = clone.join(".stepsecret/bin/stepsecret");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&installed).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o755, "installed with mode 0755");
    let version = std::process::Command::new(&installed)
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("stepsecret "));

    // INSTALL_DIR elsewhere, beside COMMAND: installed first, then the command runs.
    let key = AgeKey::generate();
    let test = build_dir(&key).env("SPEC", "ci/stepsecret.toml");
    let dir = test.path().join("tools");
    let test = test
        .env("INSTALL", "true")
        .env("INSTALL_DIR", dir.display().to_string())
        .env("COMMAND", "test -x tools/stepsecret && echo \"$API_TOKEN\"")
        .args(["pipe"]);
    let out = test.run();
    out.code(0)
        .stdout_contains_all(&["[masked:API_TOKEN]"])
        .leaks_none(&[TOKEN, DB]);

    let bad = Test::new()
        .env("INSTALL", "yes please")
        .args(["pipe"])
        .run();
    bad.code(64)
        .stderr_contains("INSTALL must be true or false");
}

#[test]
fn a_bundle_is_found_in_the_default_shared_storage_when_the_variable_is_unset() {
    // The pipe gets BITBUCKET_PIPE_SHARED_STORAGE_DIR; the step's own script does not, so
    // `--bundle "$BITBUCKET_PIPE_SHARED_STORAGE_DIR/stepsecret-bundle.age"` there reads
    // `/stepsecret-bundle.age`, and a folder or nothing but the file name must work too.
    let key = AgeKey::generate();
    let step_key = AgeKey::generate();
    let test = build_dir(&key)
        .env("SPEC", "ci/stepsecret.toml")
        .env("EXPORT_RECIPIENT", step_key.recipient());
    let clone = test.path().to_path_buf();
    let storage = clone.join(".bitbucket/pipelines/generated/pipeline/pipes");
    // Inside the pipe both variables are set; the pipe creates the folder.
    let pipe = test
        .env("BITBUCKET_CLONE_DIR", clone.display().to_string())
        .env(
            "BITBUCKET_PIPE_SHARED_STORAGE_DIR",
            storage.display().to_string(),
        )
        .args(["pipe"]);
    let export = || {
        pipe.run().code(0).leaks_none(&[TOKEN, DB]);
    };
    export();
    let step = |bundle: &str| {
        Test::new()
            .env("STEPSECRET_AGE_IDENTITY", step_key.secret())
            .env("BITBUCKET_STEP_UUID", "{step-aaaa}")
            .env("BITBUCKET_CLONE_DIR", clone.display().to_string())
            .args([
                "run",
                "--bundle",
                bundle,
                "--",
                "sh",
                "-c",
                "echo \"t=$API_TOKEN\"",
            ])
            .run()
    };
    step("/stepsecret-bundle.age")
        .code(0)
        .stdout_is("t=[masked:API_TOKEN]\n")
        .leaks_none(&[TOKEN, DB]);
    assert!(!storage.join("stepsecret-bundle.age").exists());

    export();
    step(&storage.display().to_string()).code(0);

    let missing = step("/stepsecret-bundle.age");
    missing
        .code(69)
        .stderr_contains(".bitbucket/pipelines/generated/pipeline/pipes");
}
