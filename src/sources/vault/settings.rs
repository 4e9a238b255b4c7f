//! The `[vault]` settings, completed from the environment the way the Vault CLI reads it
//! (VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT, ...) and validated before any request.

use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::SourceError;
use crate::spec::{VaultAuth, VaultSettings};
use crate::tls::SystemStore;

/// Requests in flight at once unless `[vault] concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Where the orb and the pipe pass their parameters (the spec wins when it sets them).
pub use crate::sources::vault_env::{
    AUTH as AUTH_ENV, AUTH_PATH as AUTH_PATH_ENV, ROLE as ROLE_ENV,
};

/// TLS files.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The system's trust store, used when no CA certificate is given.
    pub(crate) system: SystemStore,
}

/// Everything the Vault source needs to know before it sends a request.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `http(s)://HOST[:PORT]`, without a trailing slash.
    pub address: String,
    /// The method asked for; `None` picks one from what the job has.
    pub auth: Option<VaultAuth>,
    /// The role to log in as (jwt, approle).
    pub role: Option<String>,
    /// Where the auth method is mounted, without `auth/` (e.g. `jwt`, `circleci`).
    pub auth_path: Option<String>,
    /// The Vault Enterprise namespace (X-Vault-Namespace).
    pub namespace: Option<String>,
    /// A variable the spec names as holding the OIDC token.
    pub oidc_token_env: Option<String>,
    /// The audience to ask for where the token is minted on request.
    pub audience: Option<String>,
    /// The AppRole role id from the spec.
    pub role_id: Option<String>,
    /// A file holding the AppRole role id.
    pub role_id_file: Option<PathBuf>,
    /// A file holding the AppRole secret id.
    pub secret_id_file: Option<PathBuf>,
    /// CA, client certificate and the system's trust store.
    pub tls: Tls,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The run's environment, for the credentials a login reads (VAULT_TOKEN, AppRole ids,
    /// the CI's OIDC token).
    pub env: Env,
}

impl Settings {
    /// The spec's `[vault]` table, then the environment. Relative paths in the spec start at
    /// the spec's folder.
    pub fn new(spec: &VaultSettings, base_dir: &Path, env: &Env) -> Result<Settings, SourceError> {
        let var = |name: &str| env.non_empty(name).map(str::to_string);
        let var_path = |name: &str| var(name).map(PathBuf::from);
        let in_spec = |p: &Option<PathBuf>| p.as_ref().map(|p| base_dir.join(p));
        let address = spec
            .address
            .clone()
            .or_else(|| var("VAULT_ADDR"))
            .ok_or_else(|| {
                SourceError::config(
                    "no Vault address: set [vault] address in the spec or VAULT_ADDR (e.g. https://vault.example.com:8200)",
                )
            })?;
        let address = address.trim().trim_end_matches('/').to_string();
        let rest = address
            .strip_prefix("https://")
            .or_else(|| address.strip_prefix("http://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', ' '])) {
            return Err(SourceError::config(format!(
                "Vault address `{address}` is not http(s)://HOST[:PORT] (set [vault] address or VAULT_ADDR)"
            )));
        }
        let auth = match spec.auth {
            Some(a) => Some(a),
            None => match var(AUTH_ENV).as_deref() {
                None => None,
                Some("jwt") => Some(VaultAuth::Jwt),
                Some("approle") => Some(VaultAuth::Approle),
                Some("token") => Some(VaultAuth::Token),
                Some(other) => {
                    return Err(SourceError::config(format!(
                        "{AUTH_ENV}=`{other}` is not jwt, approle or token"
                    )));
                }
            },
        };
        let auth_path = spec
            .auth_path
            .clone()
            .or_else(|| var(AUTH_PATH_ENV))
            .map(|p| {
                p.trim_matches('/')
                    .trim_start_matches("auth/")
                    .trim_matches('/')
                    .to_string()
            });
        if let Some(path) = &auth_path
            && (path.is_empty() || path.split('/').any(|s| s.is_empty() || s == ".."))
        {
            return Err(SourceError::config(format!(
                "Vault auth path `{path}` is not a mount path such as `jwt` or `ci/jwt`"
            )));
        }
        let concurrency = spec.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=256).contains(&concurrency) {
            return Err(SourceError::config(format!(
                "[vault] concurrency = {concurrency}: use 1 to 256"
            )));
        }
        Ok(Settings {
            address,
            auth,
            role: spec.role.clone().or_else(|| var(ROLE_ENV)),
            auth_path,
            namespace: spec
                .namespace
                .clone()
                .or_else(|| var("VAULT_NAMESPACE"))
                .map(|n| n.trim_matches('/').to_string()),
            oidc_token_env: spec.oidc_token_env.clone(),
            audience: spec.audience.clone(),
            role_id: spec.role_id.clone(),
            role_id_file: in_spec(&spec.role_id_file),
            secret_id_file: in_spec(&spec.secret_id_file),
            tls: Tls {
                ca_cert: in_spec(&spec.ca_cert).or_else(|| var_path("VAULT_CACERT")),
                client_cert: in_spec(&spec.client_cert).or_else(|| var_path("VAULT_CLIENT_CERT")),
                client_key: in_spec(&spec.client_key).or_else(|| var_path("VAULT_CLIENT_KEY")),
                system: SystemStore::from_env(env),
            },
            concurrency,
            env: env.clone(),
        })
    }
}

impl Settings {
    /// Settings for revoking on behalf of a killed run: only the address matters.
    pub fn orphan(address: &str) -> Settings {
        Settings {
            address: address.to_string(),
            auth: None,
            role: None,
            auth_path: None,
            namespace: None,
            oidc_token_env: None,
            audience: None,
            role_id: None,
            role_id_file: None,
            secret_id_file: None,
            tls: Tls::default(),
            concurrency: 4,
            env: Env::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_address(address: &str) -> Result<Settings, SourceError> {
        let spec = VaultSettings {
            address: Some(address.into()),
            ..VaultSettings::default()
        };
        Settings::new(&spec, Path::new("ci"), &Env::default())
    }

    #[test]
    fn addresses_must_be_a_scheme_and_a_host() {
        assert_eq!(
            with_address("https://vault.example.com:8200/")
                .unwrap()
                .address,
            "https://vault.example.com:8200"
        );
        for bad in ["vault.example.com", "https://", "ftp://x", "https://x/v1"] {
            let err = with_address(bad).unwrap_err();
            assert!(err.message.contains("is not http(s)://"), "{bad}: {err}");
        }
    }

    #[test]
    fn spec_paths_are_relative_to_the_spec() {
        let spec = VaultSettings {
            address: Some("http://127.0.0.1:8200".into()),
            ca_cert: Some("certs/ca.pem".into()),
            auth_path: Some("/auth/ci/jwt/".into()),
            ..VaultSettings::default()
        };
        let s = Settings::new(&spec, Path::new("ci"), &Env::default()).unwrap();
        assert_eq!(s.tls.ca_cert, Some(PathBuf::from("ci/certs/ca.pem")));
        assert_eq!(s.auth_path.as_deref(), Some("ci/jwt"));
    }
}
