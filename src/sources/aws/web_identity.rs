//! CI web identity: AssumeRoleWithWebIdentity with the job's OIDC token (found by
//! [`crate::ci`], the same lookup the Vault source uses).
//!
//! The token stays in memory: it goes from the CI's variable straight into the STS request,
//! never into a token file the way the SDK's own web identity provider wants it, because a
//! file in the workspace or /tmp outlives the step and is readable by everything after it.
//! The session is named after the job (`stepsecret-circleci-1234`) so CloudTrail shows which
//! job read which secret, and lasts 900 s by default: the credentials are only used while
//! fetching.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::errors::{self, Attempts, Subject};
use super::settings::{self, Role, Settings};
use super::values::rfc3339;
use crate::ci::{self, OidcToken};
use crate::env::Env;
use crate::error::SourceError;

/// The role this run assumed, for `check`. Never a credential.
#[derive(Debug, Clone)]
pub(super) struct AssumedRole {
    pub role_arn: String,
    pub session_name: String,
    /// The assumed-role ARN AWS answered with.
    pub assumed_arn: Option<String>,
    /// Where the token came from (`CIRCLE_OIDC_TOKEN_V2`, ...).
    pub token_variable: String,
    pub claims: ci::Claims,
    pub expires: Option<String>,
}

/// Assumes `role` with `token`; returns the temporary credentials and what to show about them.
pub(super) async fn assume(
    sts: &aws_sdk_sts::Client,
    role: &Role,
    token: &OidcToken,
    settings: &Settings,
    env: &Env,
    attempts: &Arc<Attempts>,
) -> Result<(Credentials, AssumedRole), SourceError> {
    let session_name = settings::session_name(ci::job(env).as_ref());
    let jwt = token.token.expose_secret();
    let answer = sts
        .assume_role_with_web_identity()
        .role_arn(&role.arn)
        .role_session_name(&session_name)
        .web_identity_token(jwt)
        .duration_seconds(settings.duration_seconds as i32)
        .send()
        .await
        .map_err(|e| {
            let error = errors::from_sdk(
                &e,
                &Subject::AssumeRole {
                    role: &role.arn,
                    token: jwt,
                },
                attempts,
            );
            SourceError::new(
                error.kind,
                format!(
                    "{} (token from {}: {})",
                    error.message,
                    token.variable,
                    token.claims.summary()
                ),
            )
        })?;
    let assumed_arn = answer.assumed_role_user.as_ref().map(|u| u.arn.clone());
    let Some(issued) = answer.credentials else {
        return Err(SourceError::unavailable(format!(
            "AssumeRoleWithWebIdentity for {} answered without credentials",
            role.arn
        )));
    };
    let expires = rfc3339(&issued.expiration);
    let expiry = SystemTime::try_from(issued.expiration).ok();
    // Moved, not copied, into the SDK's credentials (which zeroize on drop).
    let access_key_id = Zeroizing::new(issued.access_key_id);
    let secret_access_key = Zeroizing::new(issued.secret_access_key);
    let session_token = Zeroizing::new(issued.session_token);
    let credentials = Credentials::new(
        access_key_id.as_str(),
        secret_access_key.as_str(),
        Some(session_token.to_string()),
        expiry,
        "stepsecret-web-identity",
    );
    Ok((
        credentials,
        AssumedRole {
            role_arn: role.arn.clone(),
            session_name,
            assumed_arn,
            token_variable: token.variable.clone(),
            claims: token.claims.clone(),
            expires,
        },
    ))
}
