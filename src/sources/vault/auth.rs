//! Logging in: JWT with the CI's OIDC token, AppRole, or a token the user already has.
//!
//! Without `[vault] auth`, the method follows from what the job has: the CI's OIDC token
//! (unless the user exported VAULT_TOKEN and named no role: an explicit token is a deliberate
//! choice, and CircleCI jobs carry an OIDC token whether the user wants it or not), then an
//! AppRole role id and secret id, then VAULT_TOKEN or ~/.vault-token.
//!
//! A token from a login belongs to this run and is revoked after it; a token the user supplied
//! is never revoked. Either way the credential's variable is kept from the command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::client::{ApiError, Call, Client, Method};
use super::settings::Settings;
use super::unreachable_or_gave_up;
use crate::ci::{self, OidcToken};
use crate::error::SourceError;
use crate::secret::SecretJson;
use crate::spec::{VaultAuth, plain_io_error};

/// A Vault token and how it was obtained.
pub(super) struct Login {
    pub token: SecretString,
    /// Issued by a login for this run (revoke it afterwards), not supplied by the user.
    pub issued: bool,
    /// A batch token (`token_type=batch` roles): it cannot be revoked, and expires with its
    /// TTL; revoke-self answers it with an error.
    pub batch: bool,
    /// What `check` shows: method, role, claims, policies. Never a credential.
    pub identity: Vec<(String, String)>,
    /// Variables holding the credential used, kept from the command.
    pub consumed: Vec<String>,
}

impl Login {
    /// Whether stepsecret revokes this token after the run: one it logged in for, unless it is
    /// a batch token (which cannot be revoked).
    pub(super) fn revocable(&self) -> bool {
        self.issued && !self.batch
    }
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("issued", &self.issued)
            .field("batch", &self.batch)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Logs in as the settings and the environment say. `check` also looks up the token's
/// policies when the login itself did not report them.
pub(super) fn login(
    settings: &Settings,
    client: &Client,
    deadline: Instant,
    check: bool,
) -> Result<Login, SourceError> {
    match method(settings)? {
        (VaultAuth::Jwt, Some(token)) => jwt(settings, client, deadline, token),
        (VaultAuth::Approle, _) => approle(settings, client, deadline),
        _ => supplied_token(settings, client, deadline, check),
    }
}

/// The method a login uses, as the module documentation says, with the CI's OIDC token when
/// it is JWT.
pub(super) fn method(settings: &Settings) -> Result<(VaultAuth, Option<OidcToken>), SourceError> {
    let oidc = || {
        ci::oidc_token(
            &settings.env,
            settings.oidc_token_env.as_deref(),
            settings.audience.as_deref(),
        )
        .map_err(|e| SourceError::new(e.kind, format!("[vault] jwt login: {e}")))
    };
    match settings.auth {
        Some(VaultAuth::Jwt) => match oidc()? {
            Some(token) => Ok((VaultAuth::Jwt, Some(token))),
            None => Err(SourceError::config(
                "[vault] auth = \"jwt\" but this job has no CI OIDC token: CircleCI sets CIRCLE_OIDC_TOKEN_V2 in jobs with a context, Bitbucket sets BITBUCKET_STEP_OIDC_TOKEN in steps with `oidc: true`, GitHub Actions needs `permissions: id-token: write`; or name the variable with [vault] oidc_token_env",
            )),
        },
        Some(other) => Ok((other, None)),
        None => {
            let explicit_token = settings.env.is_set("VAULT_TOKEN");
            if (!explicit_token || settings.role.is_some())
                && let Some(token) = oidc()?
            {
                return Ok((VaultAuth::Jwt, Some(token)));
            }
            if approle_configured(settings) {
                return Ok((VaultAuth::Approle, None));
            }
            Ok((VaultAuth::Token, None))
        }
    }
}

fn jwt(
    settings: &Settings,
    client: &Client,
    deadline: Instant,
    token: OidcToken,
) -> Result<Login, SourceError> {
    let mount = settings.auth_path.as_deref().unwrap_or("jwt");
    let mut body = json!({ "jwt": token.token.expose_secret() });
    if let Some(role) = &settings.role {
        body["role"] = Value::String(role.clone());
    }
    let body = SecretJson::new(body);
    let role_text = settings
        .role
        .as_deref()
        .map_or("the mount's default role".to_string(), |r| {
            format!("role `{r}`")
        });
    let answer = post_login(client, mount, "jwt", &body, deadline, |errors| {
        format!(
            "Vault refused the jwt login at auth/{mount} as {role_text}: {errors}; the token from {} has {}; the role's bound_audiences, bound_subject and bound_claims must match these claims",
            token.variable,
            claims_text(&token)
        )
    })?;
    let mut login = issued(&answer, "jwt")?;
    let mut identity = vec![
        ("auth".to_string(), format!("jwt (auth/{mount})")),
        (
            "role".to_string(),
            settings.role.clone().unwrap_or_else(|| "(default)".into()),
        ),
        ("oidc token".to_string(), token.variable.clone()),
    ];
    for (key, value) in [
        ("iss", token.claims.iss.clone()),
        ("sub", token.claims.sub.clone()),
        (
            "aud",
            (!token.claims.aud.is_empty()).then(|| token.claims.aud.join(",")),
        ),
    ] {
        if let Some(value) = value {
            identity.push((key.to_string(), value));
        }
    }
    identity.append(&mut login.identity);
    login.identity = identity;
    login.consumed = ci::token_variables(&token);
    Ok(login)
}

fn claims_text(token: &OidcToken) -> String {
    let mut text = token.claims.summary();
    for key in [
        "oidc.circleci.com/project-id",
        "repositoryUuid",
        "workspaceUuid",
        "branchName",
        "repository",
        "ref",
    ] {
        if let Some(Value::String(v)) = token.claims.all.get(key) {
            text.push_str(&format!(" {key}={v}"));
        }
    }
    text
}

fn approle_configured(settings: &Settings) -> bool {
    (settings.role_id.is_some()
        || settings.role_id_file.is_some()
        || settings.env.is_set("VAULT_ROLE_ID")
        || settings.env.is_set("VAULT_ROLE_ID_FILE"))
        && (settings.secret_id_file.is_some()
            || settings.env.is_set("VAULT_SECRET_ID")
            || settings.env.is_set("VAULT_SECRET_ID_FILE"))
}

fn read_trimmed(path: &Path, what: &str) -> Result<Zeroizing<String>, SourceError> {
    let text = std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| {
            SourceError::config(format!(
                "cannot read the AppRole {what} file {}: {}",
                path.display(),
                plain_io_error(&e)
            ))
        })?;
    Ok(Zeroizing::new(text.trim().to_string()))
}

fn approle(settings: &Settings, client: &Client, deadline: Instant) -> Result<Login, SourceError> {
    let env = &settings.env;
    let env_path = |name: &str| env.get_os(name).map(PathBuf::from);
    let role_id = match (&settings.role_id, &settings.role_id_file) {
        (Some(id), _) => Zeroizing::new(id.clone()),
        (None, Some(path)) => read_trimmed(path, "role id")?,
        (None, None) => match (env.get("VAULT_ROLE_ID"), env_path("VAULT_ROLE_ID_FILE")) {
            (Some(id), _) => Zeroizing::new(id.trim().to_string()),
            (None, Some(path)) => read_trimmed(&path, "role id")?,
            _ => {
                return Err(SourceError::config(
                    "AppRole login needs a role id: set [vault] role_id, VAULT_ROLE_ID or VAULT_ROLE_ID_FILE",
                ));
            }
        },
    };
    let (secret_id, consumed) = match (&settings.secret_id_file, env.get("VAULT_SECRET_ID")) {
        (Some(path), _) => (read_trimmed(path, "secret id")?, Vec::new()),
        (None, Some(id)) => (
            Zeroizing::new(id.trim().to_string()),
            vec!["VAULT_SECRET_ID".to_string()],
        ),
        (None, None) => match env_path("VAULT_SECRET_ID_FILE") {
            Some(path) => (read_trimmed(&path, "secret id")?, Vec::new()),
            None => {
                return Err(SourceError::config(
                    "AppRole login needs a secret id: set VAULT_SECRET_ID, VAULT_SECRET_ID_FILE or [vault] secret_id_file",
                ));
            }
        },
    };
    let mount = settings.auth_path.as_deref().unwrap_or("approle");
    let body = SecretJson::new(json!({ "role_id": *role_id, "secret_id": *secret_id }));
    let answer = post_login(client, mount, "approle", &body, deadline, |errors| {
        format!(
            "Vault refused the approle login at auth/{mount}: {errors}; check the role id and that the secret id is valid and not used up or expired"
        )
    })?;
    let mut login = issued(&answer, "approle")?;
    let mut identity = vec![("auth".to_string(), format!("approle (auth/{mount})"))];
    identity.append(&mut login.identity);
    login.identity = identity;
    login.consumed = consumed;
    Ok(login)
}

/// VAULT_TOKEN, else ~/.vault-token (what `vault login` leaves).
fn supplied_token(
    settings: &Settings,
    client: &Client,
    deadline: Instant,
    check: bool,
) -> Result<Login, SourceError> {
    let (token, source, consumed) = match settings.env.get("VAULT_TOKEN") {
        Some(t) if !t.trim().is_empty() => (
            SecretString::from(t.trim().to_string()),
            "VAULT_TOKEN".to_string(),
            vec!["VAULT_TOKEN".to_string()],
        ),
        _ => {
            let path = settings
                .env
                .home()
                .map(|h| h.join(".vault-token"))
                .filter(|p| p.is_file())
                .ok_or_else(|| {
                    SourceError::config(
                        "no Vault credentials: in CI, give the job an OIDC token and set [vault] role (jwt); or set VAULT_ROLE_ID and VAULT_SECRET_ID (approle), or VAULT_TOKEN",
                    )
                })?;
            let text = read_trimmed(&path, "token")
                .map_err(|e| SourceError::config(e.message.replace("AppRole token", "token")))?;
            (
                SecretString::from(text.to_string()),
                path.display().to_string(),
                Vec::new(),
            )
        }
    };
    let mut identity = vec![
        ("auth".to_string(), "token".to_string()),
        ("token".to_string(), source),
    ];
    if check {
        let answer = client
            .call(&Call::get("auth/token/lookup-self", &token), deadline)
            .map_err(|e| match e {
                ApiError::Status { status: 403, .. } => SourceError::denied(
                    "Vault refused the token (VAULT_TOKEN or ~/.vault-token): it is expired, revoked or not a token of this server (or namespace)",
                ),
                other => login_error(client, "token", other),
            })?;
        let data = answer.value().get("data").cloned().unwrap_or_default();
        if let Some(policies) = strings(data.get("policies")) {
            identity.push(("policies".into(), policies));
        }
        if let Some(name) = data.get("display_name").and_then(Value::as_str) {
            identity.push(("display name".into(), name.to_string()));
        }
        if let Some(ttl) = data.get("ttl").and_then(Value::as_u64) {
            identity.push(("ttl".into(), format!("{ttl}s")));
        }
    }
    Ok(Login {
        token,
        issued: false,
        batch: false,
        identity,
        consumed,
    })
}

/// The token and policies of a successful login answer.
fn issued(answer: &SecretJson, method: &str) -> Result<Login, SourceError> {
    let auth = answer.value().get("auth");
    let token = auth
        .and_then(|a| a.get("client_token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            SourceError::unavailable(format!(
                "the Vault {method} login answer has no auth.client_token"
            ))
        })?;
    let mut identity = Vec::new();
    if let Some(policies) = strings(auth.and_then(|a| a.get("policies"))) {
        identity.push(("policies".to_string(), policies));
    }
    if let Some(ttl) = auth
        .and_then(|a| a.get("lease_duration"))
        .and_then(Value::as_u64)
    {
        identity.push(("token ttl".to_string(), format!("{ttl}s")));
    }
    // Vault and OpenBao say so in `token_type`; older servers only in the prefix.
    let batch = match auth
        .and_then(|a| a.get("token_type"))
        .and_then(Value::as_str)
    {
        Some(kind) => kind == "batch",
        None => token.starts_with("hvb.") || token.starts_with("b."),
    };
    if batch {
        identity.push(("token type".to_string(), "batch".to_string()));
    }
    Ok(Login {
        token: SecretString::from(token.to_string()),
        issued: true,
        batch,
        identity,
        consumed: Vec::new(),
    })
}

fn strings(value: Option<&Value>) -> Option<String> {
    let list: Vec<&str> = value?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    Some(list.join(","))
}

/// POSTs a login to `auth/MOUNT/login`. A 400 or 403 is a refusal, explained by `refused`
/// from Vault's own errors; a 404 means no such auth mount.
fn post_login(
    client: &Client,
    mount: &str,
    method: &str,
    body: &SecretJson,
    deadline: Instant,
    refused: impl FnOnce(&str) -> String,
) -> Result<SecretJson, SourceError> {
    let path = format!("auth/{mount}/login");
    let call = Call {
        method: Method::Post,
        path: &path,
        query: &[],
        token: None,
        body: Some(body.value()),
    };
    client.call(&call, deadline).map_err(|e| match e {
        ApiError::Status { status, errors } if status == 400 || status == 403 => {
            SourceError::denied(refused(&errors))
        }
        ApiError::Status { status: 404, .. } => no_auth_mount(mount, method),
        other => login_error(client, method, other),
    })
}

fn no_auth_mount(mount: &str, method: &str) -> SourceError {
    SourceError::config(format!(
        "no {method} auth method is mounted at auth/{mount}: set [vault] auth_path to where it is mounted"
    ))
}

fn login_error(client: &Client, method: &str, e: ApiError) -> SourceError {
    match e {
        ApiError::Status { status, errors } => SourceError::unavailable(format!(
            "the Vault {method} login failed with HTTP {status}: {errors}"
        )),
        ApiError::Malformed(why) => SourceError::unavailable(format!(
            "the Vault {method} login answer from {} is unusable: {why}",
            client.address
        )),
        gave_up => unreachable_or_gave_up(client, &format!("{method} login"), gave_up),
    }
}

/// Revokes a token this run logged in with.
pub(super) fn revoke_self(
    client: &Client,
    token: &SecretString,
    deadline: Instant,
) -> Result<(), String> {
    let call = Call {
        method: Method::Post,
        path: "auth/token/revoke-self",
        query: &[],
        token: Some(token),
        body: None,
    };
    match client.call(&call, deadline) {
        Ok(_) => Ok(()),
        // Vault refuses a token it no longer knows: an earlier attempt whose answer was lost
        // on the way back already revoked it, or it expired. Either way it is unusable now.
        Err(ApiError::Status { status: 403, .. }) => Ok(()),
        Err(e) => Err(super::describe(&e)),
    }
}
