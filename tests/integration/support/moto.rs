//! A real moto server (a local AWS: Secrets Manager, SSM Parameter Store and STS) for the
//! aws-sm:// and aws-ssm:// tests, and small clients to put secrets and parameters into it.
//!
//! Each [`Moto`] is its own process on a free loopback port, so tests (and test binaries run
//! in parallel) never share state or collide: the port is picked by binding port 0, and if
//! another process takes it before moto binds, moto says so on stderr and we try another.
//! moto is found through STEPSECRET_MOTO_SERVER, then PATH, then the link
//! `scripts/deps/aws.sh` leaves at ~/.cache/stepsecret/bin/moto_server.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// The moto_server to run.
pub(crate) fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("STEPSECRET_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|candidate| candidate.is_file())
    }) {
        return path;
    }
    let linked = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/stepsecret/bin/moto_server");
    if linked.exists() {
        return linked;
    }
    panic!("moto_server not found: run scripts/deps/aws.sh (or set STEPSECRET_MOTO_SERVER)");
}

/// A running moto server; killed when dropped.
pub(crate) struct Moto {
    child: Child,
    pub port: u16,
    /// The CA that signed its certificate, when it serves HTTPS.
    ca: Option<PathBuf>,
}

impl Moto {
    /// Starts moto (plain HTTP) on a free port and waits until it listens.
    pub(crate) fn start() -> Moto {
        Self::launch(None)
    }

    /// Starts moto serving HTTPS with a certificate for 127.0.0.1 signed by `tls.ca`.
    pub(crate) fn start_tls(tls: &TestCa) -> Moto {
        Self::launch(Some(tls))
    }

    fn launch(tls: Option<&TestCa>) -> Moto {
        let program = moto_server();
        for _ in 0..5 {
            let port = super::free_port(1);
            let mut args = vec![
                "-H".to_string(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ];
            if let Some(tls) = tls {
                args.extend([
                    "-s".into(),
                    "-c".into(),
                    tls.cert.display().to_string(),
                    "-k".into(),
                    tls.key.display().to_string(),
                ]);
            }
            let mut child = Command::new(&program)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            // Werkzeug prints "Running on http://127.0.0.1:PORT" once the socket is bound, or
            // "Address already in use" and exits. Its request log goes to stderr too, so a
            // thread keeps draining it for the server's whole life.
            let stderr = child.stderr.take().unwrap();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(tx) = &tx {
                        if line.contains("Running on") {
                            let _ = tx.send(true);
                        } else if line.contains("in use") {
                            let _ = tx.send(false);
                        } else {
                            continue;
                        }
                    }
                    tx = None;
                }
            });
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(true) => {
                    return Moto {
                        child,
                        port,
                        ca: tls.map(|t| t.ca.clone()),
                    };
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("moto_server did not start on a free port after 5 tries");
    }

    pub(crate) fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A Secrets Manager client for `region`.
    pub(crate) fn secrets(&self, region: &str) -> SecretsApi {
        SecretsApi {
            endpoint: self.url(),
            region: region.to_string(),
            ca: self.ca.clone(),
        }
    }
}

impl Moto {
    /// A Parameter Store client for `region` (plain HTTP moto only).
    pub(crate) fn parameters(&self, region: &str) -> ParametersApi {
        assert!(self.ca.is_none(), "ParametersApi speaks plain HTTP only");
        ParametersApi {
            endpoint: self.url(),
            region: region.to_string(),
        }
    }
}

/// Puts parameters into moto the way the AWS CLI would (JSON 1.1, `AmazonSSM.*`).
pub(crate) struct ParametersApi {
    endpoint: String,
    region: String,
}

impl ParametersApi {
    /// Calls one SSM operation; panics with AWS's answer on an error (never a value: the
    /// tests only send values in PutParameter, whose errors do not echo them).
    pub(crate) fn call(&self, operation: &str, body: Value) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut response = agent
            .post(&format!("{}/", self.endpoint))
            .header("X-Amz-Target", &format!("AmazonSSM.{operation}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header("X-Amz-Date", "20240101T000000Z")
            .header("Authorization", &fake_sigv4("ssm", &self.region))
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("{operation}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(status < 300, "{operation} failed: HTTP {status}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Puts a parameter (`kind`: String, SecureString or StringList), overwriting: each put
    /// makes a new version. Returns the version.
    pub(crate) fn put(&self, name: &str, kind: &str, value: &str) -> u64 {
        let out = self.call(
            "PutParameter",
            json!({"Name": name, "Type": kind, "Value": value, "Overwrite": true}),
        );
        out["Version"].as_u64().expect("Version")
    }

    /// Attaches labels to a version.
    pub(crate) fn label(&self, name: &str, version: u64, labels: &[&str]) {
        self.call(
            "LabelParameterVersion",
            json!({"Name": name, "ParameterVersion": version, "Labels": labels}),
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `Authorization` header moto wants: any signature, as long as the credential scope names
/// the service (it routes on it) and the region (it keeps one store per region).
pub(crate) fn fake_sigv4(service: &str, region: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/{region}/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
    )
}

/// Puts secrets into moto the way the AWS CLI would (JSON 1.1 requests).
pub(crate) struct SecretsApi {
    endpoint: String,
    region: String,
    /// For an HTTPS moto: requests go through curl, trusting this CA.
    ca: Option<PathBuf>,
}

/// A created secret.
#[derive(Debug, Clone)]
pub(crate) struct Created {
    pub name: String,
    pub arn: String,
    pub version_id: String,
}

impl Created {
    /// The ARN without the 6-character suffix AWS adds: a partial ARN.
    pub(crate) fn partial_arn(&self) -> String {
        self.arn[..self.arn.len() - 7].to_string()
    }
}

impl SecretsApi {
    /// Calls one Secrets Manager operation; panics with AWS's answer on an error.
    pub(crate) fn call(&self, operation: &str, body: Value) -> Value {
        if let Some(ca) = &self.ca {
            let out = Command::new("curl")
                .args(["-s", "-f", "--cacert"])
                .arg(ca)
                .args(["-H", &format!("X-Amz-Target: secretsmanager.{operation}")])
                .args(["-H", "Content-Type: application/x-amz-json-1.1"])
                .args(["-H", "X-Amz-Date: 20240101T000000Z"])
                .args([
                    "-H",
                    &format!(
                        "Authorization: {}",
                        fake_sigv4("secretsmanager", &self.region)
                    ),
                ])
                .args([
                    "--data-binary",
                    &body.to_string(),
                    &format!("{}/", self.endpoint),
                ])
                .output()
                .expect("curl (scripts/deps/aws.sh installs it)");
            assert!(out.status.success(), "{operation} over TLS failed: {out:?}");
            return serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut response = agent
            .post(&format!("{}/", self.endpoint))
            .header("X-Amz-Target", &format!("secretsmanager.{operation}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header("X-Amz-Date", "20240101T000000Z")
            .header("Authorization", &fake_sigv4("secretsmanager", &self.region))
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("{operation}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(status < 300, "{operation} failed: HTTP {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates a secret holding `text` (a SecretString).
    pub(crate) fn create(&self, name: &str, text: &str) -> Created {
        let out = self.call("CreateSecret", json!({"Name": name, "SecretString": text}));
        created(name, &out)
    }

    /// Creates a secret holding a JSON object.
    pub(crate) fn create_json(&self, name: &str, value: &Value) -> Created {
        self.create(name, &value.to_string())
    }

    /// Creates a secret holding `bytes` (a SecretBinary).
    pub(crate) fn create_binary(&self, name: &str, bytes: &[u8]) -> Created {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        let out = self.call(
            "CreateSecret",
            json!({"Name": name, "SecretBinary": encoded}),
        );
        created(name, &out)
    }

    /// Puts a new version (it becomes AWSCURRENT; the old one AWSPREVIOUS). Returns its id.
    pub(crate) fn put(&self, id: &str, text: &str) -> String {
        let out = self.call(
            "PutSecretValue",
            json!({"SecretId": id, "SecretString": text}),
        );
        out["VersionId"].as_str().unwrap().to_string()
    }

    /// Schedules a secret for deletion (it can still be restored: AWS's default).
    pub(crate) fn delete(&self, id: &str) {
        self.call("DeleteSecret", json!({"SecretId": id}));
    }
}

fn created(name: &str, out: &Value) -> Created {
    Created {
        name: name.to_string(),
        arn: out["ARN"].as_str().expect("ARN").to_string(),
        version_id: out["VersionId"].as_str().unwrap_or_default().to_string(),
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 signed by it, made with the openssl
/// CLI (`scripts/deps/aws.sh` installs it).
pub(crate) struct TestCa {
    /// Holds the files below; they are deleted with it.
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub(crate) fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl (scripts/deps/aws.sh installs it)");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=stepsecret test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            path("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        TestCa {
            ca: path("ca.pem"),
            cert: path("server.pem"),
            key: path("server.key"),
            _dir: dir,
        }
    }
}
