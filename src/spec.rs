//! `stepsecret.toml`, as the user typed it (stage one of two; [`crate::plan`] validates it).
//!
//! The spec is committed to the repository, so it holds references and backend settings, never
//! values. Every table rejects unknown keys, and errors name the file and line, because a typo in
//! a CI config otherwise fails far from its cause.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub(crate) use crate::error::plain_io_error;
use crate::error::{SpecError, escape_controls};

/// The whole spec file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    #[serde(default)]
    /// `[vault]`: the Vault source's settings.
    pub vault: VaultSettings,
    #[serde(default)]
    /// `[aws]`: the AWS source's settings.
    pub aws: AwsSettings,
    /// `NAME = "REF"`: environment variables for the command.
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    /// `NAME = "REF"` or `NAME = { ref = "REF", path = "PATH" }`: 0600 files; the variable
    /// holds the file's path.
    #[serde(default)]
    pub files: BTreeMap<Spanned<String>, Spanned<FileSpec>>,
    /// `NAME = "REF"`: values only templates and the redactor see, never the command's
    /// environment.
    #[serde(default)]
    pub values: BTreeMap<Spanned<String>, Spanned<String>>,
    /// `NAME = { template = "FILE", path = "PATH" }`: files rendered from templates; the
    /// variable holds the file's path.
    #[serde(default)]
    pub templates: BTreeMap<Spanned<String>, Spanned<TemplateSpec>>,
    /// `PREFIX = "REF"`: every top-level key K of the secret becomes `PREFIX` + K.
    #[serde(default)]
    pub expand: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    /// `[policy]`: rules the run enforces (max age).
    pub policy: PolicySettings,
    #[serde(default)]
    /// `[mask]`: what the redactor leaves alone.
    pub mask: MaskSettings,
}

/// A `[files]` entry: a reference, and where the file goes (the private directory when no
/// `path` is given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The reference, as written.
    pub reference: String,
    /// The file's path, as written: relative to the command's working directory, or `~/...`.
    pub path: Option<String>,
}

impl<'de> Deserialize<'de> for FileSpec {
    /// `"REF"` or `{ ref = "REF", path = "PATH" }` (an untagged enum would lose the TOML
    /// parser's line numbers and say only "did not match any variant").
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(rename = "ref")]
            reference: String,
            path: Option<String>,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FileSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a reference, or a table { ref = \"REF\", path = \"PATH\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileSpec, E> {
                Ok(FileSpec {
                    reference: v.to_string(),
                    path: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FileSpec, A::Error> {
                let table = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(FileSpec {
                    reference: table.reference,
                    path: table.path,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A `[templates]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// The template file, relative to the spec's folder (as `age://` paths are).
    pub template: String,
    /// Where the rendered file goes, as for `[files]`; the private directory when absent.
    pub path: Option<String>,
}

/// `[mask]`: values that are not secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskSettings {
    /// Variables whose values are not secret (hosts, ports, user names): set as usual, never
    /// masked, left out of the audit record's HMACs. Each must name a variable of the spec.
    #[serde(default)]
    pub public: Vec<Spanned<String>>,
}

/// `[policy]`: rules every run and check of this spec must follow.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// The oldest a secret's current value may be (e.g. "90d"); `check` fails past it, `run`
    /// warns (or fails with --enforce-max-age).
    pub max_age: Option<Spanned<String>>,
}

/// How the Vault / OpenBao source logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultAuth {
    /// JWT auth with the CI's OIDC token.
    Jwt,
    /// AppRole: a role id and a secret id.
    Approle,
    /// A token the user supplies (VAULT_TOKEN, ~/.vault-token).
    Token,
}

/// `[vault]`: settings for `vault://` references. Each falls back to the usual VAULT_*
/// environment variable where one exists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSettings {
    /// Server address; else VAULT_ADDR.
    pub address: Option<String>,
    /// jwt | approle | token; by default jwt when a CI OIDC token is present, else token.
    pub auth: Option<VaultAuth>,
    /// The auth role (JWT or AppRole).
    pub role: Option<String>,
    /// Where the auth method is mounted (default `jwt` or `approle`).
    pub auth_path: Option<String>,
    /// Enterprise / OpenBao namespace; else VAULT_NAMESPACE.
    pub namespace: Option<String>,
    /// The variable holding the CI's OIDC token when it is not one stepsecret knows (e.g. a
    /// GitLab `id_tokens` entry).
    pub oidc_token_env: Option<String>,
    /// The audience asked for where the token is minted on request (GitHub Actions).
    pub audience: Option<String>,
    /// AppRole role id (not a secret); else VAULT_ROLE_ID or `role_id_file`.
    pub role_id: Option<String>,
    /// A file holding the AppRole role id; else VAULT_ROLE_ID_FILE.
    pub role_id_file: Option<PathBuf>,
    /// A file holding the AppRole secret id; else VAULT_SECRET_ID (the text) or
    /// VAULT_SECRET_ID_FILE.
    pub secret_id_file: Option<PathBuf>,
    /// PEM file of the CA that signed the server's certificate; else VAULT_CACERT.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for mutual TLS; else VAULT_CLIENT_CERT.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate; else VAULT_CLIENT_KEY.
    pub client_key: Option<PathBuf>,
    /// How many requests may be in flight at once (default 16).
    pub concurrency: Option<usize>,
}

/// `[aws]`: settings for `aws-sm://` references.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Default region; else AWS_REGION or the profile's.
    pub region: Option<String>,
    /// A role to assume with the CI's OIDC token; else AWS_ROLE_ARN.
    pub role_arn: Option<String>,
    /// How long the assumed role's session lasts, in seconds (900 to 43200; default 900: the
    /// credentials are only used while fetching).
    pub duration_seconds: Option<u32>,
    /// The variable holding the CI's OIDC token when it is not one stepsecret knows (e.g. a
    /// GitLab `id_tokens` entry).
    pub oidc_token_env: Option<String>,
    /// The audience asked for where the token is minted on request (GitHub Actions); default
    /// `sts.amazonaws.com`.
    pub audience: Option<String>,
}

/// A spec file read from disk, with what is needed to point errors at lines.
#[derive(Debug)]
pub struct Spec {
    /// Where it was read from.
    pub path: PathBuf,
    source: String,
    /// What it says.
    pub file: SpecFile,
}

impl Spec {
    /// Reads and parses a spec file. Does not validate references (that is the plan's job).
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let source = std::fs::read_to_string(path).map_err(|source| {
            let path = path.to_path_buf();
            if source.kind() == std::io::ErrorKind::NotFound {
                SpecError::Missing { path, source }
            } else {
                SpecError::Unreadable { path, source }
            }
        })?;
        Spec::parse(path, source)
    }

    /// Parses spec text; `path` is only used in messages and for relative `age://` paths.
    pub fn parse(path: &Path, source: String) -> Result<Spec, SpecError> {
        let file: SpecFile = toml::from_str(&source).map_err(|e| {
            let line = e.span().map(|s| line_of(&source, s.start));
            // One line whatever the TOML parser echoes: line breaks become spaces, and any
            // other control or separator character in a quoted key is escaped.
            let message =
                escape_controls(&e.message().trim().split('\n').collect::<Vec<_>>().join(" "));
            SpecError::Toml {
                path: path.to_path_buf(),
                line,
                message,
            }
        })?;
        Ok(Spec {
            path: path.to_path_buf(),
            source,
            file,
        })
    }

    /// The 1-based line of a byte offset in the spec, for messages.
    pub fn line(&self, offset: usize) -> usize {
        line_of(&self.source, offset)
    }

    /// The folder `age://` paths are relative to.
    pub fn base_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

fn line_of(source: &str, offset: usize) -> usize {
    source.as_bytes()[..offset.min(source.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Spec, String> {
        Spec::parse(Path::new("ci/stepsecret.toml"), text.to_string()).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_design_example() {
        let spec = parse(
            r#"
[vault]
address = "https://vault.example.com"
auth = "jwt"
role = "ci-deploy"

[aws]
region = "eu-west-1"
role_arn = "arn:aws:iam::123456789012:role/ci-deploy"

[env]
DB_PASSWORD = "vault://secret/prod/db#password"
STRIPE_KEY  = "aws-sm://prod/stripe#api_key"

[files]
KUBECONFIG = "vault://secret/prod/k8s#kubeconfig"
"#,
        )
        .unwrap();
        assert_eq!(spec.file.vault.auth, Some(VaultAuth::Jwt));
        assert_eq!(spec.file.env.len(), 2);
        let (name, _) = spec.file.files.iter().next().unwrap();
        assert_eq!(name.get_ref(), "KUBECONFIG");
        assert_eq!(spec.line(name.span().start), 16);
        assert_eq!(spec.base_dir(), PathBuf::from("ci"));
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let err = parse("[vault]\nrole = \"x\"\nadress = \"https://v\"\n").unwrap_err();
        assert!(err.starts_with("ci/stepsecret.toml:3: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = Spec::parse(
            Path::new("ci/stepsecret.toml"),
            "[env]\nA = \"age://x#k\"\n[secrets]\nB = \"x\"\n".to_string(),
        )
        .unwrap_err();
        // The TOML parser's own words; the variant and the line are ours.
        assert!(
            matches!(&err, SpecError::Toml { line: Some(3), message, .. } if message.contains("secrets")),
            "{err:?}"
        );
        let err = Spec::parse(
            Path::new("ci/stepsecret.toml"),
            "[vault]\nrole = \"x\"\nadress = \"https://v\"\n".to_string(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, SpecError::Toml { line: Some(3), message, .. } if message.contains("adress")),
            "{err:?}"
        );
    }

    #[test]
    fn an_error_echoing_a_key_with_a_line_break_stays_one_line() {
        for key in ["a\\rb", "a\\u2028b", "a\\u000bb"] {
            let err = parse(&format!("[vault]\n\"{key}\" = 1\n")).unwrap_err();
            assert!(
                !err.chars().any(|c| c.is_control() || c == '\u{2028}'),
                "{err:?}"
            );
            assert!(err.starts_with("ci/stepsecret.toml:2: "), "{err}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_with_its_line() {
        let err = parse("[env]\nA = 3\n").unwrap_err();
        assert!(err.starts_with("ci/stepsecret.toml:2: "), "{err}");
        let err = Spec::parse(
            Path::new("ci/stepsecret.toml"),
            "[vault]\nauth = \"kerberos\"\n".to_string(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, SpecError::Toml { line: Some(2), message, .. } if message.contains("kerberos")),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_spec_says_how_to_name_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let err = Spec::load(&path).unwrap_err();
        assert!(matches!(&err, SpecError::Missing { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read spec {}: No such file or directory (pass --spec FILE or set STEPSECRET_SPEC)",
                path.display()
            )
        );
        let err = Spec::load(dir.path()).unwrap_err();
        assert!(matches!(&err, SpecError::Unreadable { .. }), "{err:?}");
        assert!(!err.to_string().contains("--spec"), "{err}");
    }
}
