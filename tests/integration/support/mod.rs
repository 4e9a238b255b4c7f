//! Shared test support: a small builder that runs the real binary in a temp directory with a
//! clean environment, and helpers for age keys and sealed files.

#[cfg(any(feature = "age-source", feature = "vault", feature = "aws"))]
pub(crate) mod contract;
#[cfg(feature = "aws")]
pub(crate) mod moto;
#[cfg(feature = "vault")]
pub(crate) mod openbao;
#[cfg(any(feature = "vault", feature = "aws"))]
pub(crate) mod proxy;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;

/// The binary under test: STEPSECRET_TEST_BIN (e.g. the static release build) or Cargo's.
pub(crate) fn binary() -> PathBuf {
    std::env::var_os("STEPSECRET_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stepsecret")))
}

/// One invocation of stepsecret: a temp dir as working directory, only PATH and HOME set
/// unless the test adds more, optional stdin.
pub(crate) struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
}

/// What an invocation did.
#[derive(Debug)]
pub(crate) struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    pub(crate) fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub(crate) fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Test {
        self.env.push((key.into(), value.into()));
        self
    }

    pub(crate) fn stdin(mut self, input: impl Into<Vec<u8>>) -> Test {
        self.stdin = Some(input.into());
        self
    }

    /// Writes a file relative to the temp dir (creating folders).
    pub(crate) fn file(self, relative: &str, content: impl AsRef<[u8]>) -> Test {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    /// The command, ready to spawn (for tests that need the child handle).
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(&self.args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub(crate) fn run(&self) -> Output {
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn stepsecret");
        if let Some(input) = &self.stdin {
            let mut stdin = child.stdin.take().unwrap();
            let input = input.clone();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let out = child.wait_with_output().expect("wait for stepsecret");
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    /// Asserts the exit code, printing everything on failure.
    #[track_caller]
    pub(crate) fn code(&self, expected: i32) -> &Output {
        assert_eq!(self.code, Some(expected), "unexpected exit code\n{self:#?}");
        self
    }

    #[track_caller]
    pub(crate) fn stdout_is(&self, expected: &str) -> &Output {
        assert_eq!(self.stdout, expected, "stdout\n{self:#?}");
        self
    }

    #[track_caller]
    pub(crate) fn stderr_is(&self, expected: &str) -> &Output {
        assert_eq!(self.stderr, expected, "stderr\n{self:#?}");
        self
    }

    #[track_caller]
    pub(crate) fn stderr_contains(&self, needle: &str) -> &Output {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{self:#?}"
        );
        self
    }

    /// Asserts that stdout contains each of `needles`.
    #[track_caller]
    pub(crate) fn stdout_contains_all(&self, needles: &[&str]) -> &Output {
        for needle in needles {
            assert!(
                self.stdout.contains(needle),
                "stdout lacks {needle:?}\n{self:#?}"
            );
        }
        self
    }

    /// Asserts that none of `values` appears in stdout or stderr.
    #[track_caller]
    pub(crate) fn leaks_none(&self, values: &[&str]) -> &Output {
        // The value is not shown (a real one could reach a CI log through this test); the
        // output is: it holds the value, which is the failure.
        for (i, v) in values.iter().enumerate() {
            assert!(
                !self.stdout.contains(v) && !self.stderr.contains(v),
                "output contains secret value #{i} ({} bytes)\n{self:#?}",
                v.len()
            );
        }
        self
    }
}

/// An age key pair for tests.
pub(crate) struct AgeKey {
    pub identity: age::x25519::Identity,
}

impl AgeKey {
    pub(crate) fn generate() -> AgeKey {
        AgeKey {
            identity: age::x25519::Identity::generate(),
        }
    }

    /// The identity as STEPSECRET_AGE_IDENTITY text.
    pub(crate) fn secret(&self) -> String {
        self.identity.to_string().expose_secret().to_string()
    }

    pub(crate) fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// Encrypts `plaintext` to this key, binary or armored.
    pub(crate) fn seal(&self, plaintext: &[u8], armor: bool) -> Vec<u8> {
        let recipient = self.identity.to_public();
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .unwrap();
        let mut out = Vec::new();
        let format = if armor {
            age::armor::Format::AsciiArmor
        } else {
            age::armor::Format::Binary
        };
        let armored = age::armor::ArmoredWriter::wrap_output(&mut out, format).unwrap();
        let mut w = encryptor.wrap_output(armored).unwrap();
        w.write_all(plaintext).unwrap();
        w.finish().unwrap().finish().unwrap();
        out
    }
}

/// A loopback port P such that the `count` ports from P on are all free now (OpenBao's dev mode
/// binds P and P+1), for a server to bind, or, left unbound, for a client to find closed. Another process
/// may take it before the server binds it: launchers retry on another port.
#[cfg(any(feature = "vault", feature = "aws"))]
pub(crate) fn free_port(count: u16) -> u16 {
    use std::net::TcpListener;

    loop {
        let first = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = first.local_addr().unwrap().port();
        let rest: Option<Vec<TcpListener>> = (1..count)
            .map(|i| TcpListener::bind(("127.0.0.1", port.checked_add(i)?)).ok())
            .collect();
        if rest.is_some() {
            return port;
        }
    }
}

/// Polls `done` every 10 ms until it holds; fails the test after `limit`.
#[track_caller]
pub(crate) fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A marker file path the child creates when (and only when) it runs.
pub(crate) fn ran_marker(test: &Test) -> (PathBuf, String) {
    let marker = test.path().join("child-ran");
    let script = format!("touch '{}'", marker.display());
    (marker, script)
}
