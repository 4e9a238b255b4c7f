//! The CI job stepsecret runs in, and its OIDC identity token, for every backend that logs in
//! with one (Vault JWT auth, AWS AssumeRoleWithWebIdentity).
//!
//! Token lookup order: the variable the spec names (`oidc_token_env`, e.g. a GitLab id_token),
//! STEPSECRET_OIDC_TOKEN (minted for stepsecret, e.g. by the orb with a custom audience),
//! CircleCI's CIRCLE_OIDC_TOKEN_V2 then CIRCLE_OIDC_TOKEN, Bitbucket's
//! BITBUCKET_STEP_OIDC_TOKEN, then GitHub Actions, whose token is requested over HTTP with the
//! wanted audience. The token is held in memory only; its claims (iss, sub, aud, ...) are not
//! secret and are shown in messages and the audit record, the token never.

// Only the Vault and AWS sources log in with a token; an age-only build keeps `job`.
#![cfg_attr(not(any(feature = "vault", feature = "aws")), allow(dead_code))]
// `Job` is public through the AWS source's session names.
#![cfg_attr(not(feature = "aws"), allow(unreachable_pub))]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::env::Env;
use crate::error::SourceError;

/// A token minted for stepsecret by a wrapper (the orb, the pipe).
pub(crate) const STEPSECRET_OIDC_TOKEN: &str = "STEPSECRET_OIDC_TOKEN";
/// GitHub Actions' token request endpoint and bearer.
pub(crate) const GITHUB_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub(crate) const GITHUB_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// Variables that hold a CI OIDC token directly, in lookup order, with their provider.
const TOKEN_VARS: [(&str, &str); 4] = [
    (STEPSECRET_OIDC_TOKEN, "stepsecret"),
    ("CIRCLE_OIDC_TOKEN_V2", "circleci"),
    ("CIRCLE_OIDC_TOKEN", "circleci"),
    ("BITBUCKET_STEP_OIDC_TOKEN", "bitbucket"),
];

/// A CI OIDC token and what it says about the job.
pub(crate) struct OidcToken {
    /// Which CI issued it: circleci, bitbucket, github, or the variable's name.
    pub provider: String,
    /// Where it was found (a variable name, or the GitHub request URL variable).
    pub variable: String,
    pub token: SecretString,
    pub claims: Claims,
}

impl std::fmt::Debug for OidcToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcToken")
            .field("provider", &self.provider)
            .field("variable", &self.variable)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

/// The unverified claims of a JWT, for messages, policies and the audit record.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Claims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Vec<String>,
    /// Every claim, as sent.
    pub all: Map<String, Value>,
}

impl Claims {
    /// Decodes the payload of a JWT without verifying it (the server verifies).
    pub(crate) fn decode(jwt: &str) -> Option<Claims> {
        let payload = jwt.split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        let Value::Object(all) = serde_json::from_slice(&bytes).ok()? else {
            return None;
        };
        let text = |k: &str| all.get(k).and_then(Value::as_str).map(str::to_string);
        let aud = match all.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        Some(Claims {
            iss: text("iss"),
            sub: text("sub"),
            aud,
            all,
        })
    }

    /// `iss=... sub=... aud=...` for messages.
    pub(crate) fn summary(&self) -> String {
        format!(
            "iss={} sub={} aud={}",
            self.iss.as_deref().unwrap_or("-"),
            self.sub.as_deref().unwrap_or("-"),
            if self.aud.is_empty() {
                "-".to_string()
            } else {
                self.aud.join(",")
            }
        )
    }
}

/// Finds the CI's OIDC token, if this job has one.
///
/// `explicit` is a variable named in the spec; when set it must exist. `audience` is used
/// where the token is minted on request (GitHub Actions); elsewhere the audience was fixed when
/// the CI minted it.
pub(crate) fn oidc_token(
    env: &Env,
    explicit: Option<&str>,
    audience: Option<&str>,
) -> Result<Option<OidcToken>, SourceError> {
    if let Some(var) = explicit {
        let token = env.get(var).ok_or_else(|| {
            SourceError::config(format!("oidc_token_env names {var}, but {var} is not set"))
        })?;
        return from_text(var, var, token.to_string()).map(Some);
    }
    for (var, provider) in TOKEN_VARS {
        if let Some(token) = env.non_empty(var) {
            return from_text(var, provider, token.to_string()).map(Some);
        }
    }
    if let (Some(url), Some(bearer)) = (env.get(GITHUB_REQUEST_URL), env.get(GITHUB_REQUEST_TOKEN))
    {
        return github_token(url, SecretString::from(bearer.to_string()), audience).map(Some);
    }
    Ok(None)
}

/// Variables holding a CI OIDC token or the means to request one; removed from the command's
/// environment when a backend logged in with it.
pub(crate) fn token_variables(found: &OidcToken) -> Vec<String> {
    if found.provider == "github" {
        vec![GITHUB_REQUEST_TOKEN.to_string()]
    } else {
        vec![found.variable.clone()]
    }
}

fn from_text(var: &str, provider: &str, token: String) -> Result<OidcToken, SourceError> {
    let token = SecretString::from(token.trim().to_string());
    let claims = Claims::decode(token.expose_secret()).ok_or_else(|| {
        SourceError::config(format!(
            "{var} does not hold a JWT (header.payload.signature)"
        ))
    })?;
    Ok(OidcToken {
        provider: provider.to_string(),
        variable: var.to_string(),
        token,
        claims,
    })
}

/// Requests a token from GitHub Actions for `audience`.
fn github_token(
    url: &str,
    bearer: SecretString,
    audience: Option<&str>,
) -> Result<OidcToken, SourceError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut request = agent.get(url).header(
        "Authorization",
        format!("bearer {}", bearer.expose_secret()),
    );
    if let Some(audience) = audience {
        request = request.query("audience", audience);
    }
    let failed = |what: String| {
        SourceError::unavailable(format!(
            "cannot get a GitHub Actions OIDC token ({what}); does the job have `permissions: id-token: write`?"
        ))
    };
    let mut response = request.call().map_err(|e| failed(e.to_string()))?;
    let text = zeroize::Zeroizing::new(
        response
            .body_mut()
            .read_to_string()
            .map_err(|e| failed(e.to_string()))?,
    );
    let body: Value =
        serde_json::from_str(&text).map_err(|_| failed("the answer is not JSON".into()))?;
    let token = body
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| failed("no `value` in the answer".into()))?;
    from_text(GITHUB_REQUEST_URL, "github", token.to_string())
}

/// The CI job, for session names and the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// circleci, bitbucket, github, gitlab.
    pub provider: &'static str,
    /// Identifiers of the job (build number, project, branch...), as the CI names them.
    pub fields: Vec<(&'static str, String)>,
}

/// For each CI: the variable that says we are in it, its name, and the variables worth keeping.
const JOBS: [(&str, &str, &[&str]); 4] = [
    (
        "CIRCLECI",
        "circleci",
        &[
            "CIRCLE_BUILD_NUM",
            "CIRCLE_JOB",
            "CIRCLE_WORKFLOW_ID",
            "CIRCLE_PROJECT_USERNAME",
            "CIRCLE_PROJECT_REPONAME",
            "CIRCLE_BRANCH",
            "CIRCLE_SHA1",
        ],
    ),
    (
        "BITBUCKET_BUILD_NUMBER",
        "bitbucket",
        &[
            "BITBUCKET_BUILD_NUMBER",
            "BITBUCKET_WORKSPACE",
            "BITBUCKET_REPO_SLUG",
            "BITBUCKET_PIPELINE_UUID",
            "BITBUCKET_STEP_UUID",
            "BITBUCKET_BRANCH",
            "BITBUCKET_COMMIT",
        ],
    ),
    (
        "GITHUB_ACTIONS",
        "github",
        &[
            "GITHUB_RUN_ID",
            "GITHUB_RUN_ATTEMPT",
            "GITHUB_JOB",
            "GITHUB_REPOSITORY",
            "GITHUB_REF",
            "GITHUB_SHA",
        ],
    ),
    (
        "GITLAB_CI",
        "gitlab",
        &[
            "CI_JOB_ID",
            "CI_PIPELINE_ID",
            "CI_PROJECT_PATH",
            "CI_COMMIT_REF_NAME",
            "CI_COMMIT_SHA",
        ],
    ),
];

/// Which CI this is, if any.
pub(crate) fn job(env: &Env) -> Option<Job> {
    JOBS.iter().find_map(|(marker, provider, vars)| {
        env.get_os(marker)?;
        let fields = vars
            .iter()
            .filter_map(|v| env.get(v).map(|value| (*v, value.to_string())))
            .collect();
        Some(Job { provider, fields })
    })
}

impl Job {
    /// A short label such as `circleci-1234`: the provider and its build number.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub fn label(&self) -> String {
        let number = self
            .fields
            .iter()
            .find(|(k, _)| {
                matches!(
                    *k,
                    "CIRCLE_BUILD_NUM" | "BITBUCKET_BUILD_NUMBER" | "GITHUB_RUN_ID" | "CI_JOB_ID"
                )
            })
            .map(|(_, v)| v.as_str());
        match number {
            Some(n) => format!("{}-{n}", self.provider),
            None => self.provider.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        format!(
            "{}.{}.sig",
            enc(&serde_json::json!({"alg": "RS256"})),
            enc(&claims)
        )
    }

    #[test]
    fn claims_of_a_circleci_token() {
        let token = jwt(serde_json::json!({
            "iss": "https://oidc.circleci.com/org/o1",
            "sub": "org/o1/project/p1/user/u1",
            "aud": "o1",
            "oidc.circleci.com/project-id": "p1"
        }));
        let claims = Claims::decode(&token).unwrap();
        assert_eq!(claims.aud, ["o1"]);
        assert_eq!(claims.all["oidc.circleci.com/project-id"], "p1");
        assert_eq!(
            claims.summary(),
            "iss=https://oidc.circleci.com/org/o1 sub=org/o1/project/p1/user/u1 aud=o1"
        );
    }

    #[test]
    fn audience_lists_and_garbage() {
        let claims = Claims::decode(&jwt(serde_json::json!({"aud": ["a", "b"]}))).unwrap();
        assert_eq!(claims.aud, ["a", "b"]);
        assert!(Claims::decode("not-a-jwt").is_none());
        assert!(Claims::decode("a.!!!.c").is_none());
    }

    #[test]
    fn job_labels() {
        let job = Job {
            provider: "circleci",
            fields: vec![("CIRCLE_BUILD_NUM", "42".into())],
        };
        assert_eq!(job.label(), "circleci-42");
    }
}
