//! The AWS SDK set up once per run: one HTTP client shared by every region
//! ([`super::http`]), retries tuned for a CLI that must finish under a deadline, the region
//! and credentials resolved up front, and one Secrets Manager or Parameter Store client per
//! region.
//!
//! Credentials come from the SDK's default chain (environment, profile, SSO, web identity
//! token file, ECS, EC2 metadata), or, when a role is configured and the CI gave this job an
//! OIDC token, from AssumeRoleWithWebIdentity with that token ([`super::web_identity`]).
//! They are resolved before the first request, so "no credentials" or "token rejected" is
//! reported once, for the backend, instead of once per secret.
//!
//! EC2 metadata (IMDS) is only asked for a region when nothing else could have answered:
//! with credentials in the environment or web identity, this is not an EC2 instance worth
//! waiting a second or more for, and CI containers that are not on EC2 would stall on it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_secretsmanager::config::Region;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use super::errors::{self, AttemptLog, Attempts};
use super::http::{NoRetryOnBadCertificate, RetryTooManyRequests};
use super::settings::{self, Settings};
use super::web_identity::{self, AssumedRole};
use crate::ci::OidcToken;
use crate::env::Env;
use crate::error::SourceError;

/// Attempts per request, retries included. Throttling, 5xx, timeouts and connection errors
/// are retried with exponential backoff and full jitter (the SDK's standard strategy); the
/// run's deadline cuts it short anyway. Not the SDK's adaptive mode: after one throttle it
/// estimates a send rate from the one or two requests a run makes and waits seconds for it,
/// which a CLI with a deadline cannot afford (the pacer already keeps the rate down).
const MAX_ATTEMPTS: u32 = 8;
/// The first retry waits up to this long (uniformly random: full jitter), doubling each time.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// No single wait is longer than this, so a throttling storm that ends is noticed quickly.
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// A connection that cannot be made in this time is retried (a blackholed endpoint).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt that takes longer than this is abandoned and retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Variables that, when set, mean the user tuned retries themselves: theirs win.
const RETRY_ENV: [&str; 2] = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"];

/// What the run needs from the environment to set up the SDK.
pub(super) struct Options<'a> {
    pub settings: &'a Settings,
    /// The run's environment (see `crate::env` for what the SDK still reads itself).
    pub env: &'a Env,
    /// The CI token to assume the role with; `Some` only when a role is configured.
    pub token: Option<&'a OidcToken>,
    /// The role's setting name when a role is configured but no token was found.
    pub role_without_token: Option<&'static str>,
    /// Whether some reference has no region of its own.
    pub needs_default_region: bool,
    /// A region some reference names, for STS when there is no default region.
    pub any_region: Option<&'a str>,
}

/// How the run authenticated, for `check` and messages. Never a credential.
#[derive(Debug, Clone, Default)]
pub(super) struct Authenticated {
    pub web_identity: Option<AssumedRole>,
    pub default_region: Option<String>,
}

/// The configured SDK for one run.
pub(super) struct Session {
    base: SdkConfig,
    pub default_region: Option<String>,
    pub attempts: Arc<Attempts>,
    pub authenticated: Authenticated,
    clients: Mutex<BTreeMap<String, aws_sdk_secretsmanager::Client>>,
    parameters: Mutex<BTreeMap<String, aws_sdk_ssm::Client>>,
}

impl Session {
    /// Sets up the SDK and resolves credentials (assuming the role when asked).
    pub(super) async fn open(options: Options<'_>) -> Result<Session, SourceError> {
        let endpoint = options
            .env
            .non_empty("AWS_ENDPOINT_URL")
            .map(str::to_string);
        let attempts = Arc::new(Attempts::for_endpoint(endpoint.clone()));
        let base = loader(&options, endpoint).load().await;
        // An empty AWS_REGION is "unset", not a region; a malformed one is named here rather
        // than failing later inside endpoint resolution.
        let default_region = base
            .region()
            .map(ToString::to_string)
            .filter(|r| !r.is_empty());
        if let Some(region) = &default_region {
            settings::check_region(region, "the default region (AWS_REGION or the profile)")?;
        }
        let mut authenticated = Authenticated {
            web_identity: None,
            default_region: default_region.clone(),
        };
        let credentials = match (options.token, &options.settings.role) {
            (Some(token), Some(role)) => {
                let region = default_region
                    .as_deref()
                    .or(options.any_region)
                    .ok_or_else(no_region)?;
                let sts = sts_client(&base, region, &attempts);
                let (credentials, assumed) = web_identity::assume(
                    &sts,
                    role,
                    token,
                    options.settings,
                    options.env,
                    &attempts,
                )
                .await?;
                authenticated.web_identity = Some(assumed);
                credentials
            }
            _ => default_chain(&base, options.role_without_token).await?,
        };
        // The credentials were just resolved; hand them to every client as they are so no
        // provider runs twice (SSO, credential_process and IMDS each cost a round trip).
        let base = base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build();
        Ok(Session {
            base,
            default_region,
            attempts,
            authenticated,
            clients: Mutex::new(BTreeMap::new()),
            parameters: Mutex::new(BTreeMap::new()),
        })
    }

    /// The Secrets Manager client for `region` (one per region, sharing connections).
    pub(super) fn secrets(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let config = aws_sdk_secretsmanager::config::Builder::from(&self.base)
                    .region(Region::new(region.to_string()))
                    .interceptor(AttemptLog(Arc::clone(&self.attempts)))
                    .retry_classifier(NoRetryOnBadCertificate)
                    .retry_classifier(RetryTooManyRequests)
                    .build();
                aws_sdk_secretsmanager::Client::from_conf(config)
            })
            .clone()
    }

    /// The Parameter Store client for `region`, configured like [`Session::secrets`].
    pub(super) fn parameters(&self, region: &str) -> aws_sdk_ssm::Client {
        let mut clients = self.parameters.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let config = aws_sdk_ssm::config::Builder::from(&self.base)
                    .region(Region::new(region.to_string()))
                    .interceptor(AttemptLog(Arc::clone(&self.attempts)))
                    .retry_classifier(NoRetryOnBadCertificate)
                    .retry_classifier(RetryTooManyRequests)
                    .build();
                aws_sdk_ssm::Client::from_conf(config)
            })
            .clone()
    }

    /// An STS client with the run's credentials (for GetCallerIdentity).
    pub(super) fn sts(&self, region: &str) -> aws_sdk_sts::Client {
        sts_client(&self.base, region, &self.attempts)
    }
}

/// The SDK's loader for this run: the shared HTTP client, the region chain, timeouts and
/// retries for a deadline, AWS_ENDPOINT_URL, and the credentials the run's environment holds.
fn loader(options: &Options<'_>, endpoint: Option<String>) -> aws_config::ConfigLoader {
    let env = options.env;
    let http = super::http::Client::shared(env);
    // Static credentials from the run's environment, handed to the SDK as they are: the first
    // link of its default chain, read from the snapshot rather than the process.
    let env_credentials = match (
        env.get("AWS_ACCESS_KEY_ID").filter(|v| !v.is_empty()),
        env.get("AWS_SECRET_ACCESS_KEY").filter(|v| !v.is_empty()),
    ) {
        (Some(id), Some(secret)) => Some(Credentials::new(
            id,
            secret,
            env.get("AWS_SESSION_TOKEN")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            None,
            "Environment",
        )),
        _ => None,
    };
    let env_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| env.non_empty(v))
        .map(|r| Region::new(r.to_string()));

    // The providers we chain ourselves need the HTTP client too (the SDK is built without a
    // default one); the loader hands the same client to the credential providers.
    let providers = ProviderConfig::without_region().with_http_client(http.clone());
    let mut region =
        RegionProviderChain::first_try(options.settings.region.clone().map(Region::new))
            .or_else(env_region)
            .or_else(
                ProfileFileRegionProvider::builder()
                    .configure(&providers)
                    .build(),
            );
    if options.needs_default_region && env_credentials.is_none() && options.token.is_none() {
        region = region.or_else(ImdsRegionProvider::builder().configure(&providers).build());
    }

    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(region)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if !RETRY_ENV.iter().any(|v| env.is_set(v)) {
        loader = loader.retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(INITIAL_BACKOFF)
                .with_max_backoff(MAX_BACKOFF),
        );
    }
    if options.token.is_some() {
        // AssumeRoleWithWebIdentity is unsigned; nothing else may be looked up.
        loader = loader.no_credentials();
    } else if let Some(credentials) = env_credentials {
        loader = loader.credentials_provider(credentials);
    }
    loader
}

/// Credentials from the SDK's default chain (environment, profile, SSO, web identity file,
/// container, instance metadata), resolved once.
async fn default_chain(
    base: &SdkConfig,
    role_without_token: Option<&str>,
) -> Result<Credentials, SourceError> {
    let provider = base.credentials_provider().ok_or_else(|| {
        errors::from_credentials(
            &aws_credential_types::provider::error::CredentialsError::not_loaded("no provider"),
            role_without_token,
        )
    })?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| errors::from_credentials(&e, role_without_token))
}

fn sts_client(base: &SdkConfig, region: &str, attempts: &Arc<Attempts>) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::config::Builder::from(base)
        .region(Region::new(region.to_string()))
        .interceptor(AttemptLog(Arc::clone(attempts)))
        .retry_classifier(NoRetryOnBadCertificate)
        .retry_classifier(RetryTooManyRequests)
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

/// The error for a run with no region anywhere.
pub(super) fn no_region() -> SourceError {
    SourceError::config(
        "no AWS region: set [aws] region in the spec, AWS_REGION, a region in the AWS profile, or ?region=... on the reference",
    )
}
