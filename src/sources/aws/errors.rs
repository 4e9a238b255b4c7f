//! AWS failures turned into stepsecret's [`SourceError`]s: one line each, naming the secret and
//! region and the AWS error code, saying what to fix, and mapped to the documented exit codes
//! (denied 77, not found / unreachable 69, gave up 75, config 78).
//!
//! Nothing here ever formats a request or response body that could hold a value: only error
//! codes, AWS's error messages (which describe the failure, never a secret), HTTP statuses and
//! the SDK's error chain for connection failures.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_secretsmanager::error::{BoxError, ProvideErrorMetadata, SdkError};

use crate::error::SourceError;

/// What a failed request was about, for messages.
#[derive(Debug, Clone)]
pub(super) enum Subject<'a> {
    /// One secret (a batch entry, or a GetSecretValue / DescribeSecret).
    Secret { id: &'a str, region: &'a str },
    /// One version of a secret (`version` is `version-id=...` or `version-stage=...`).
    Version {
        id: &'a str,
        region: &'a str,
        version: &'a str,
    },
    /// A whole BatchGetSecretValue call: every secret in it fails the same way.
    Batch { count: usize, region: &'a str },
    /// AssumeRoleWithWebIdentity for a role.
    AssumeRole { role: &'a str, token: &'a str },
    /// One Parameter Store parameter (`selector` is `name`, `name:3` or `name:blue`).
    Parameter { selector: &'a str, region: &'a str },
    /// A GetParameters call: every parameter in it fails the same way.
    Parameters { count: usize, region: &'a str },
    /// GetParametersByPath for every parameter directly under `path`.
    Path { path: &'a str, region: &'a str },
}

impl Subject<'_> {
    fn describe(&self) -> String {
        match self {
            Subject::Secret { id, region } => format!("secret `{id}` in {region}"),
            Subject::Version {
                id,
                region,
                version,
            } => format!("secret `{id}` ({version}) in {region}"),
            Subject::Batch { count, region } => {
                format!("BatchGetSecretValue for {count} secret(s) in {region}")
            }
            Subject::AssumeRole { role, .. } => format!("AssumeRoleWithWebIdentity for {role}"),
            Subject::Parameter { selector, region } => {
                format!("parameter `{selector}` in {region}")
            }
            Subject::Parameters { count, region } => {
                format!("GetParameters for {count} parameter(s) in {region}")
            }
            Subject::Path { path, region } => {
                format!("the parameters under `{path}/` in {region}")
            }
        }
    }
}

/// Error codes AWS uses for throttling; the SDK retries them, so seeing one here means the
/// retries ran out.
const THROTTLING: [&str; 8] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "LimitExceededException",
];

/// Codes for credentials AWS does not accept (wrong, expired, or from another partition).
const BAD_CREDENTIALS: [&str; 7] = [
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
];

/// Maps an AWS error code (from an error response or a batch's `Errors[]`) to a SourceError.
pub(super) fn from_code(
    code: &str,
    aws_message: Option<&str>,
    status: Option<u16>,
    subject: &Subject<'_>,
    attempts: &Attempts,
) -> SourceError {
    let what = subject.describe();
    let said = aws_said(aws_message, subject);
    let id = match subject {
        Subject::Secret { id, .. } | Subject::Version { id, .. } => *id,
        _ => "ID",
    };
    match code {
        "AccessDeniedException" | "AccessDenied" => {
            let fix = match subject {
                Subject::AssumeRole { .. } => {
                    "the role's trust policy must allow sts:AssumeRoleWithWebIdentity for this token's issuer, audience and subject".to_string()
                }
                Subject::Batch { .. } => "allow secretsmanager:BatchGetSecretValue (and secretsmanager:GetSecretValue on each secret) for the caller; `stepsecret check` shows who that is".to_string(),
                Subject::Parameter { .. } | Subject::Parameters { .. } => "allow ssm:GetParameters on the parameters (and kms:Decrypt on a SecureString's key) for the caller; `stepsecret policy --for aws` writes it, `stepsecret check` shows who the caller is".to_string(),
                Subject::Path { path, .. } => format!("allow ssm:GetParametersByPath on the path `{path}` (and kms:Decrypt on a SecureString's key) for the caller; `stepsecret policy --for aws` writes it"),
                _ => "allow secretsmanager:GetSecretValue on it (and kms:Decrypt on its key) for the caller; `stepsecret check` shows who that is".to_string(),
            };
            SourceError::denied(format!("{what}: access denied ({code}{said}): {fix}"))
        }
        "ResourceNotFoundException" if matches!(subject, Subject::Version { .. }) => {
            SourceError::not_found(format!(
                "{what}: no such secret or version ({code}): check the name, the region and the version (aws secretsmanager list-secret-version-ids --secret-id {id} lists them)"
            ))
        }
        "ResourceNotFoundException" => SourceError::not_found(format!(
            "{what} does not exist ({code}): check the name, the region (?region= or [aws] region) and the account"
        )),
        "InvalidRequestException" if aws_message.is_some_and(|m| m.contains("delet")) => {
            SourceError::not_found(format!(
                "{what} is marked for deletion ({code}): restore it (aws secretsmanager restore-secret --secret-id {id}) or remove the reference"
            ))
        }
        "ParameterNotFound" | "ParameterVersionNotFound" | "ParameterVersionLabelNotFound" => {
            SourceError::not_found(format!(
                "{what} does not exist ({code}): check the name, the version or label, the region (?region= or [aws] region) and the account (aws ssm get-parameter-history --name NAME lists versions)"
            ))
        }
        "InvalidKeyId" => SourceError::denied(format!(
            "{what} cannot be decrypted: its KMS key is disabled or not usable ({code}{said})"
        )),
        "DecryptionFailure" => SourceError::denied(format!(
            "{what} cannot be decrypted with its KMS key ({code}{said}): allow kms:Decrypt on the key for the caller"
        )),
        "InvalidIdentityToken" | "IDPRejectedClaim" | "ExpiredTokenException"
            if matches!(subject, Subject::AssumeRole { .. }) =>
        {
            SourceError::denied(format!(
                "{what}: AWS rejected the CI OIDC token ({code}{said}): check the IAM OIDC provider and the role's trust policy (issuer, audience, subject)"
            ))
        }
        "IDPCommunicationError" => SourceError::unavailable(format!(
            "{what}: AWS could not reach the CI's OIDC issuer to check the token ({code}{said}); try again"
        )),
        c if BAD_CREDENTIALS.contains(&c) => SourceError::denied(format!(
            "{what}: AWS rejected the credentials ({code}{said}): check AWS_ACCESS_KEY_ID / AWS_SESSION_TOKEN, AWS_PROFILE or the role"
        )),
        c if THROTTLING.contains(&c) => SourceError::gave_up(format!(
            "{what}: still throttled by AWS ({code}) after {}; lower the number of parallel jobs or try again later",
            attempts.summary()
        )),
        "InternalServiceError" | "InternalFailure" | "ServiceUnavailable" => {
            SourceError::gave_up(format!(
                "{what}: AWS kept failing ({code}) after {}; try again later",
                attempts.summary()
            ))
        }
        "InvalidParameterException"
        | "InvalidFilterKey"
        | "InvalidFilterOption"
        | "InvalidFilterValue"
        | "InvalidNextToken"
        | "InvalidRequestException"
        | "ValidationException"
        | "MalformedPolicyDocument"
        | "PackedPolicyTooLarge"
        | "RegionDisabledException" => {
            SourceError::config(format!("{what}: AWS refused the request ({code}{said})"))
        }
        _ => match status {
            Some(s) if s >= 500 => SourceError::gave_up(format!(
                "{what}: AWS kept failing (HTTP {s} {code}) after {}; try again later",
                attempts.summary()
            )),
            _ => SourceError::unavailable(format!("{what}: AWS answered {code}{said}")),
        },
    }
}

/// `: <AWS's message>` cut to one short line, or nothing. AWS's messages say which policy or
/// principal was involved, which is what someone fixing a denial needs. A message that quotes
/// the web identity token (no AWS message does, but a proxy might) is dropped.
fn aws_said(message: Option<&str>, subject: &Subject<'_>) -> String {
    let Some(message) = message else {
        return String::new();
    };
    if let Subject::AssumeRole { token, .. } = subject
        && token
            .split('.')
            .any(|part| part.len() >= 8 && message.contains(part))
    {
        return String::new();
    }
    let mut line: String = message
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if line.chars().count() > 240 {
        line = line.chars().take(240).collect::<String>() + "...";
    }
    if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}

/// Maps a failed SDK call.
pub(super) fn from_sdk<E, R>(
    err: &SdkError<E, R>,
    subject: &Subject<'_>,
    attempts: &Attempts,
) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let what = subject.describe();
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let status = attempts.last_status();
            match e.code() {
                Some(code) => from_code(code, e.message(), status, subject, attempts),
                None => SourceError::unavailable(format!(
                    "{what}: AWS answered an error without a code{}",
                    status.map_or_else(String::new, |s| format!(" (HTTP {s})"))
                )),
            }
        }
        SdkError::TimeoutError(_) => SourceError::gave_up(format!(
            "{what}: no answer from AWS in time after {}; check the network, or raise --timeout",
            attempts.summary()
        )),
        SdkError::DispatchFailure(failure) => {
            if let Some(creds) = find_source::<CredentialsError>(err) {
                return from_credentials(creds, None);
            }
            let chain = chain(err);
            if failure.is_timeout() {
                SourceError::gave_up(format!(
                    "{what}: no answer from AWS in time after {} ({chain}); check the network, or raise --timeout",
                    attempts.summary()
                ))
            } else if failure.is_user() {
                SourceError::config(format!("{what}: {chain}"))
            } else if chain.contains("certificate") {
                SourceError::unavailable(format!(
                    "{what}: the TLS certificate of AWS{} is not trusted ({chain}); check AWS_ENDPOINT_URL, or add its CA to SSL_CERT_FILE",
                    endpoint_hint(attempts)
                ))
            } else {
                SourceError::unavailable(format!(
                    "{what}: cannot reach AWS{} ({chain}); check the network and AWS_ENDPOINT_URL",
                    endpoint_hint(attempts)
                ))
            }
        }
        SdkError::ConstructionFailure(_) => {
            SourceError::config(format!("{what}: cannot build the request ({})", chain(err)))
        }
        SdkError::ResponseError(_) => SourceError::unavailable(format!(
            "{what}: AWS{} answered something that is not an AWS response ({}); check AWS_ENDPOINT_URL",
            endpoint_hint(attempts),
            chain(err)
        )),
        _ => SourceError::unavailable(format!("{what}: {}", chain(err))),
    }
}

/// Maps a failure to find credentials. `role_without_token` is the setting that asked for web
/// identity when no CI token was found, so the message can say why the default chain ran.
pub(super) fn from_credentials(
    err: &CredentialsError,
    role_without_token: Option<&str>,
) -> SourceError {
    let chain = chain(err);
    // With a role configured, the default chain only ran because no CI token was found: say
    // so first, whatever the chain then failed on.
    let why = match role_without_token {
        Some(from) => format!(
            "{from} is set but this job has no CI OIDC token (CircleCI: CIRCLE_OIDC_TOKEN_V2; Bitbucket: `oidc: true` on the step; or name the variable with [aws] oidc_token_env), so the default credential chain ran and "
        ),
        None => String::new(),
    };
    match err {
        CredentialsError::CredentialsNotLoaded(_) => SourceError::config(format!(
            "no AWS credentials: {why}found none in the environment (AWS_ACCESS_KEY_ID), the profile (AWS_PROFILE, SSO), AWS_WEB_IDENTITY_TOKEN_FILE, ECS or EC2 metadata; set one, or [aws] role_arn for CI web identity"
        )),
        CredentialsError::ProviderTimedOut(_) => SourceError::gave_up(format!(
            "no AWS credentials: {why}the provider did not answer in time ({chain})"
        )),
        CredentialsError::InvalidConfiguration(_) => SourceError::config(format!(
            "no AWS credentials: {why}the configuration is invalid ({chain})"
        )),
        CredentialsError::ProviderError(_) if role_without_token.is_some() => {
            SourceError::config(format!("no AWS credentials: {why}failed ({chain})"))
        }
        CredentialsError::ProviderError(_) => SourceError::denied(format!(
            "no AWS credentials: the provider failed ({chain}); check the profile, SSO login or role"
        )),
        _ => SourceError::unavailable(format!("no AWS credentials: {why}{chain}")),
    }
}

/// An error and its sources, by their `Display` only, one line, at most 300 characters. Not
/// the SDK's `DisplayErrorContext`: that appends the error's `Debug`, which for a service error
/// includes the raw HTTP response, body and all (an IMDS or STS answer holds credentials).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    let mut line: String = parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if line.chars().count() > 300 {
        line = line.chars().take(300).collect::<String>() + "...";
    }
    line
}

fn endpoint_hint(attempts: &Attempts) -> String {
    attempts
        .endpoint
        .as_deref()
        .map(|e| format!(" at {e}"))
        .unwrap_or_default()
}

/// The first error of type `T` in `err`'s source chain.
fn find_source<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// Counts request attempts (first tries and retries) and remembers the last error answer, so a
/// "gave up" message can say what AWS kept answering. Attached to every client as an
/// interceptor; it only ever reads the status and error code of responses of 400 or more,
/// never a body that could hold a value.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    count: AtomicU32,
    last: Mutex<Option<(u16, Option<String>)>>,
    /// AWS_ENDPOINT_URL, when the requests go there, for messages.
    endpoint: Option<String>,
}

impl Attempts {
    /// A log for requests sent to `endpoint` (AWS_ENDPOINT_URL), or AWS's own when `None`.
    pub(super) fn for_endpoint(endpoint: Option<String>) -> Attempts {
        Attempts {
            endpoint,
            ..Attempts::default()
        }
    }

    pub(super) fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    fn last_status(&self) -> Option<u16> {
        self.last
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|(s, _)| *s))
    }

    /// `retries (14 requests in all; last error: HTTP 400 ThrottlingException)`: the counts
    /// are for the whole run, every request of this source.
    pub(super) fn summary(&self) -> String {
        let n = self.count();
        let last = match self.last.lock().ok().and_then(|l| l.clone()) {
            Some((status, Some(code))) => format!("; last error: HTTP {status} {code}"),
            Some((status, None)) => format!("; last error: HTTP {status}"),
            None => String::new(),
        };
        format!("retries ({n} requests in all{last})")
    }
}

/// The interceptor half of [`Attempts`].
#[derive(Debug, Clone)]
pub(super) struct AttemptLog(pub std::sync::Arc<Attempts>);

impl Intercept for AttemptLog {
    fn name(&self) -> &'static str {
        "stepsecret::AttemptLog"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.count.fetch_add(1, Ordering::Relaxed);
        if let Some(response) = context.response() {
            let status = response.status().as_u16();
            if status >= 400 {
                let code = error_code(response.headers().get("x-amzn-errortype"), || {
                    response.body().bytes()
                });
                if let Ok(mut last) = self.0.last.lock() {
                    *last = Some((status, code));
                }
            }
        }
        Ok(())
    }
}

/// The error code of an error response: the `x-amzn-ErrorType` header, else the JSON body's
/// `__type` (awsJson) or the XML `<Code>` (STS). Only called for statuses of 400 or more.
fn error_code<'a>(header: Option<&str>, body: impl FnOnce() -> Option<&'a [u8]>) -> Option<String> {
    let clean = |s: &str| {
        // `ThrottlingException:http://internal.amazon.com/...` and `aws.protocoltests#Code`.
        let s = s.split(':').next().unwrap_or(s);
        let s = s.rsplit('#').next().unwrap_or(s);
        Some(s.trim().to_string()).filter(|s| !s.is_empty() && s.len() <= 64)
    };
    if let Some(h) = header {
        return clean(h);
    }
    let body = body()?;
    if body.len() > 4096 {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        return map
            .get("__type")
            .or_else(|| map.get("code"))
            .and_then(|v| v.as_str())
            .and_then(clean);
    }
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    clean(&text[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn code(c: &str, msg: Option<&str>) -> SourceError {
        from_code(
            c,
            msg,
            Some(400),
            &Subject::Secret {
                id: "prod/db",
                region: "eu-west-1",
            },
            &Attempts::default(),
        )
    }

    #[test]
    fn codes_map_to_exit_kinds() {
        assert_eq!(code("AccessDeniedException", None).kind, ErrorKind::Denied);
        assert_eq!(
            code("ResourceNotFoundException", None).kind,
            ErrorKind::NotFound
        );
        let deleted = code(
            "InvalidRequestException",
            Some("You tried to perform the operation on a secret that's currently marked deleted."),
        );
        assert_eq!(deleted.kind, ErrorKind::NotFound);
        assert!(
            deleted
                .message
                .contains("restore-secret --secret-id prod/db")
        );
        assert_eq!(code("ThrottlingException", None).kind, ErrorKind::GaveUp);
        assert_eq!(code("DecryptionFailure", None).kind, ErrorKind::Denied);
        assert_eq!(
            code("InvalidParameterException", None).kind,
            ErrorKind::Config
        );
        assert_eq!(
            code("UnrecognizedClientException", None).kind,
            ErrorKind::Denied
        );
    }

    #[test]
    fn messages_are_one_line_and_name_secret_region_and_code() {
        let e = code(
            "AccessDeniedException",
            Some("User: arn:aws:sts::1:assumed-role/x is not authorized\nto perform it"),
        );
        assert!(!e.message.contains('\n'), "{e}");
        assert!(
            e.message.starts_with("secret `prod/db` in eu-west-1: access denied (AccessDeniedException: User: arn:aws:sts::1:assumed-role/x is not authorized to perform it)"),
            "{e}"
        );
    }

    #[test]
    fn a_message_quoting_the_token_is_dropped() {
        let subject = Subject::AssumeRole {
            role: "arn:aws:iam::123456789012:role/ci",
            token: "eyJhbGciOi.eyJzdWIiOiJvcmcv.c2lnbmF0dXJl",
        };
        let e = from_code(
            "InvalidIdentityToken",
            Some("bad token eyJzdWIiOiJvcmcv"),
            Some(400),
            &subject,
            &Attempts::default(),
        );
        assert_eq!(e.kind, ErrorKind::Denied);
        assert!(!e.message.contains("eyJzdWIiOiJvcmcv"), "{e}");
    }

    #[test]
    fn error_codes_from_headers_json_and_xml() {
        assert_eq!(
            error_code(Some("ThrottlingException:http://x"), || None),
            Some("ThrottlingException".into())
        );
        let json = br#"{"__type":"com.amazonaws#AccessDeniedException","message":"no"}"#;
        assert_eq!(
            error_code(None, || Some(&json[..])),
            Some("AccessDeniedException".into())
        );
        let xml =
            b"<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>";
        assert_eq!(
            error_code(None, || Some(&xml[..])),
            Some("InvalidIdentityToken".into())
        );
    }
}
