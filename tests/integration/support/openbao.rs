//! A real OpenBao server (the open-source Vault fork, same HTTP API) for the vault:// tests,
//! a small admin client to configure it, and CI-shaped OIDC tokens signed with a local RSA key.
//!
//! Each [`OpenBao`] is its own dev-mode process on free loopback ports (dev mode also binds
//! PORT+1 for its cluster listener, so both must be free), with root token `root` and KV v2 at
//! `secret/`. `bao` is found through STEPSECRET_BAO, then the link `scripts/deps/vault.sh`
//! leaves at ~/.cache/stepsecret/bin/bao, then PATH.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The `bao` binary.
pub(crate) fn bao() -> PathBuf {
    if let Some(path) = std::env::var_os("STEPSECRET_BAO") {
        return PathBuf::from(path);
    }
    let linked = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/stepsecret/bin/bao");
    if linked.exists() {
        return linked;
    }
    if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("bao"))
            .find(|candidate| candidate.is_file())
    }) {
        return path;
    }
    panic!("bao not found: run scripts/deps/vault.sh (or set STEPSECRET_BAO)");
}

/// A running OpenBao dev server; killed when dropped.
pub(crate) struct OpenBao {
    child: Child,
    pub port: u16,
    pub root: &'static str,
}

impl OpenBao {
    pub(crate) fn start() -> OpenBao {
        Self::launch(&[], health)
    }

    /// Starts `bao server -dev` with `extra` arguments on a free port pair and waits until
    /// `ready(port)`; another pair is tried when it loses the race for the ports or dies.
    fn launch(extra: &[String], ready: impl Fn(u16) -> bool) -> OpenBao {
        let program = bao();
        for _ in 0..10 {
            let port = super::free_port(2);
            let child = Command::new(&program)
                .args(["server", "-dev", "-dev-root-token-id=root"])
                .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                .args(extra)
                .env_remove("VAULT_ADDR")
                .env_remove("BAO_ADDR")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            // Dropping it kills it, whether it came up or lost the race for the ports.
            let mut server = OpenBao {
                child,
                port,
                root: "root",
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if ready(port) {
                    return server;
                }
                if let Ok(Some(_)) = server.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("OpenBao did not start on free ports after 10 tries");
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts OpenBao serving HTTPS with the certificate `-dev-tls` makes; returns it, its
    /// `https://` address and the CA file that signed its certificate (in `dir`).
    pub(crate) fn start_tls(dir: &std::path::Path) -> (OpenBao, String, PathBuf) {
        let ca = dir.join("vault-ca.pem");
        let extra = [
            "-dev-tls".to_string(),
            format!("-dev-tls-cert-dir={}", dir.display()),
        ];
        let server = Self::launch(&extra, |port| {
            ca.exists()
                && Command::new("curl")
                    .args(["-s", "-f", "-o", "/dev/null", "--cacert"])
                    .arg(&ca)
                    .arg(format!("https://127.0.0.1:{port}/v1/sys/health"))
                    .status()
                    .is_ok_and(|s| s.success())
        });
        let url = format!("https://127.0.0.1:{}", server.port);
        (server, url, ca)
    }

    /// Calls the API with the root token; panics on an error status.
    pub(crate) fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.api_as(self.root, method, path, body)
            .unwrap_or_else(|(status, text)| panic!("{method} {path}: HTTP {status} {text}"))
    }

    /// Calls the API with `token`; returns the status and text on an error.
    pub(crate) fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (u16, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let url = format!("{}/v1/{path}", self.url());
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("X-Vault-Token", token)
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .unwrap();
        let mut response = agent.run(request).unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if status >= 300 {
            return Err((status, text));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Writes a KV v2 secret at `secret/PATH`; returns its new version.
    pub(crate) fn put(&self, path: &str, data: Value) -> u64 {
        let out = self.api(
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({ "data": data })),
        );
        out["data"]["version"].as_u64().unwrap()
    }

    /// Mounts a secrets engine.
    pub(crate) fn mount(&self, path: &str, kind: &str, options: Value) {
        self.api(
            "POST",
            &format!("sys/mounts/{path}"),
            Some(json!({ "type": kind, "options": options })),
        );
    }

    /// Writes an ACL policy.
    pub(crate) fn policy(&self, name: &str, hcl: &str) {
        self.api(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        );
    }

    /// How many tokens exist (root included).
    pub(crate) fn token_count(&self) -> usize {
        let out = self.api("LIST", "auth/token/accessors", None);
        out["data"]["keys"].as_array().map_or(0, Vec::len)
    }

    /// Leases under a prefix (e.g. `pki/issue/web/`).
    pub(crate) fn leases(&self, prefix: &str) -> Vec<String> {
        match self.api_as(
            self.root,
            "LIST",
            &format!("sys/leases/lookup/{prefix}"),
            None,
        ) {
            Ok(out) => out["data"]["keys"]
                .as_array()
                .map(|keys| {
                    keys.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            Err((404, _)) => Vec::new(),
            Err(e) => panic!("list leases: {e:?}"),
        }
    }

    /// A PKI engine at `pki/` with role `web` (example.com, leases generated, 1h).
    pub(crate) fn pki(&self) {
        self.mount("pki", "pki", json!({}));
        self.api(
            "POST",
            "sys/mounts/pki/tune",
            Some(json!({ "max_lease_ttl": "24h" })),
        );
        self.api(
            "POST",
            "pki/root/generate/internal",
            Some(json!({ "common_name": "stepsecret test root", "ttl": "24h" })),
        );
        self.api(
            "POST",
            "pki/roles/web",
            Some(json!({
                "allowed_domains": "example.com",
                "allow_subdomains": true,
                "generate_lease": true,
                "max_ttl": "1h",
            })),
        );
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn health(port: u16) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_millis(500)))
        .build()
        .into();
    agent
        .get(&format!("http://127.0.0.1:{port}/v1/sys/health"))
        .call()
        .is_ok_and(|r| r.status() == 200)
}

/// An RSA key that signs test OIDC tokens (RS256), made with the openssl CLI.
pub(crate) struct Signer {
    dir: tempfile::TempDir,
    /// The public key, PEM, for `jwt_validation_pubkeys`.
    pub public_pem: String,
}

impl Signer {
    pub(crate) fn new() -> Signer {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl (scripts/deps/vault.sh installs it)");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
            out.stdout
        };
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ]);
        let public_pem = String::from_utf8(run(&["pkey", "-in", "key.pem", "-pubout"])).unwrap();
        Signer { dir, public_pem }
    }

    /// A signed JWT with these claims, plus iat/nbf/exp (10 minutes).
    pub(crate) fn sign(&self, mut claims: Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        claims["iat"] = json!(now);
        claims["nbf"] = json!(now - 5);
        claims["exp"] = json!(now + 600);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT","kid":"test"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign", "key.pem"])
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
    }
}

/// CircleCI's OIDC claims for org `org`, project `project` (the v2 token's shape).
pub(crate) fn circleci_claims(org: &str, project: &str, branch: &str) -> Value {
    json!({
        "iss": format!("https://oidc.circleci.com/org/{org}"),
        "aud": org,
        "sub": format!("org/{org}/project/{project}/user/u-1/vcs-origin/github.com/acme/app/vcs-ref/refs/heads/{branch}"),
        "oidc.circleci.com/project-id": project,
        "oidc.circleci.com/vcs-ref": format!("refs/heads/{branch}"),
        "oidc.circleci.com/context-ids": ["ctx-1"],
    })
}

/// Bitbucket's OIDC claims for workspace `workspace`, repository `repo`.
pub(crate) fn bitbucket_claims(workspace: &str, repo: &str, branch: &str) -> Value {
    json!({
        "iss": format!("https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"),
        "aud": format!("ari:cloud:bitbucket::workspace/{}", workspace.trim_matches(|c| c == '{' || c == '}')),
        "sub": format!("{repo}:{{step-1}}"),
        "workspaceUuid": workspace,
        "repositoryUuid": repo,
        "pipelineUuid": "{pipe-1}",
        "stepUuid": "{step-1}",
        "branchName": branch,
    })
}

/// JWT auth at `auth/jwt` trusting `signer`, with a `circleci` role (org `org-1`, project
/// `proj-1`) and a `bitbucket` role (workspace `{ws-1}`, repo `{repo-1}`), both granted the
/// `read-secrets` policy (read on secret/data/*, pki/issue/web).
pub(crate) fn configure_jwt(bao: &OpenBao, signer: &Signer) {
    bao.api("POST", "sys/auth/jwt", Some(json!({ "type": "jwt" })));
    bao.api(
        "POST",
        "auth/jwt/config",
        Some(json!({ "jwt_validation_pubkeys": [signer.public_pem] })),
    );
    bao.policy(
        "read-secrets",
        r#"
path "secret/data/*" { capabilities = ["read"] }
path "kv1/*" { capabilities = ["read"] }
path "pki/issue/web" { capabilities = ["create", "update"] }
"#,
    );
    bao.api(
        "POST",
        "auth/jwt/role/circleci",
        Some(json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["org-1"],
            "bound_claims": { "oidc.circleci.com/project-id": "proj-1" },
            "token_policies": ["read-secrets"],
            "token_ttl": "5m",
        })),
    );
    bao.api(
        "POST",
        "auth/jwt/role/bitbucket",
        Some(json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["ari:cloud:bitbucket::workspace/ws-1"],
            "bound_claims": { "repositoryUuid": "{repo-1}" },
            "token_policies": ["read-secrets"],
            "token_ttl": "5m",
        })),
    );
}
