//! The `aws-sm://` and `aws-ssm://` sources: AWS Secrets Manager and Systems Manager Parameter
//! Store. One [`AwsSource`] serves both schemes (the core routes `aws-ssm://` locations to it):
//! it sets the SDK up once ([`session`]: one credential resolution, one AssumeRoleWithWebIdentity)
//! and runs both services' requests concurrently on it ([`fetch`] for Secrets Manager, [`ssm`]
//! for Parameter Store).
//!
//! One [`AwsSource::fetch`] call gets every `aws-sm://` location of the run. It sets up the SDK
//! once ([`session`]: region, credentials, web identity with the CI's OIDC token when a role is
//! configured), groups the references by region, and fetches them all concurrently
//! ([`fetch`]): unique ids 20 to a BatchGetSecretValue call, references to a version through
//! GetSecretValue, everything under the run's deadline with the SDK's retries tuned for it.
//! Values come back as documents the core selects keys from ([`values`]); failures become
//! one-line errors with the documented exit codes ([`errors`]).
//!
//! The trait is synchronous and the SDK is async, so the source owns a single-threaded tokio
//! runtime: the requests are I/O-bound and all in flight at once, so one thread is enough, and
//! it starts in microseconds.

mod errors;
mod fetch;
mod http;
mod pacer;
mod session;
mod settings;
mod ssm;
mod values;
mod web_identity;

use std::sync::Mutex;

pub use fetch::BATCH_SIZE;
pub use settings::{DEFAULT_DURATION_SECONDS, Settings, session_name};
pub use ssm::PARAMETER_BATCH;

use self::fetch::Outcomes;
use self::session::{Authenticated, Options, Session, no_region};
use crate::ci::{self, OidcToken};
use crate::env::Env;
use crate::error::SourceError;
use crate::reference::{AwsLocation, Backend, Location, SsmLocation};
use crate::sources::{FetchContext, Fetched, SecretSource};
use crate::spec::AwsSettings;

/// Fetches secrets from AWS Secrets Manager and parameters from Parameter Store, both through
/// one session: the core hands it the locations of both schemes in one batch.
pub struct AwsSource {
    /// What it reports as its backend: [`Backend::Ssm`] when opened for parameters only.
    backend: Backend,
    settings: Settings,
    /// The run's environment: credentials, region and endpoint the SDK is handed.
    env: Env,
    runtime: tokio::runtime::Runtime,
    state: Mutex<State>,
}

/// What a fetch learned that later trait calls report.
#[derive(Debug, Default)]
struct State {
    consumed: Vec<String>,
    identity: Vec<(String, String)>,
}

impl AwsSource {
    /// The Secrets Manager source. Validates the settings; touches no network (credentials
    /// are resolved by `fetch`, under the run's deadline).
    pub fn open(spec: &AwsSettings, env: &Env) -> Result<AwsSource, SourceError> {
        Self::open_for(Backend::Aws, spec, env)
    }

    /// The same source, reporting [`Backend::Ssm`]: for a run that reads only parameters.
    pub fn open_parameters(spec: &AwsSettings, env: &Env) -> Result<AwsSource, SourceError> {
        Self::open_for(Backend::Ssm, spec, env)
    }

    fn open_for(backend: Backend, spec: &AwsSettings, env: &Env) -> Result<AwsSource, SourceError> {
        let settings = Settings::new(spec, env)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                SourceError::internal(format!("cannot start the AWS client's runtime: {e}"))
            })?;
        Ok(AwsSource {
            backend,
            settings,
            env: env.clone(),
            runtime,
            state: Mutex::new(State::default()),
        })
    }

    /// The CI token to assume the role with, and the role's setting name when a role is
    /// configured but the job has no token. The token is only looked for when a role is
    /// configured: without one, a token lying around in the job must not change which
    /// credentials are used.
    fn web_identity_token(&self) -> Result<(Option<OidcToken>, Option<&'static str>), SourceError> {
        let Some(role) = &self.settings.role else {
            return Ok((None, None));
        };
        let token = ci::oidc_token(
            &self.env,
            self.settings.oidc_token_env.as_deref(),
            Some(&self.settings.audience),
        )
        .map_err(|e| SourceError::new(e.kind, format!("[aws] web identity: {e}")))?;
        let without = token.is_none().then_some(role.from);
        Ok((token, without))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A location's own region: `?region=`, else its ARN's; `None` means the default region.
fn region_of(location: &AwsLocation) -> Result<Option<String>, SourceError> {
    if let Some(region) = &location.region {
        settings::check_region(region, "?region=")?;
    }
    match (location.region.as_deref(), location.arn_region()) {
        (Some(asked), Some(arn)) if asked != arn => Err(SourceError::config(format!(
            "the ARN names region {arn} but the reference says ?region={asked}; drop ?region= (an ARN already names its region)"
        ))),
        (Some(region), _) => Ok(Some(region.to_string())),
        (None, Some(arn)) => {
            settings::check_region(arn, "the ARN's region")?;
            Ok(Some(arn.to_string()))
        }
        (None, None) => Ok(None),
    }
}

impl SecretSource for AwsSource {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn fetch(&self, batch: &[Location], cx: &FetchContext) -> Result<Vec<Fetched>, SourceError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Outcomes::new(batch.len());
        let mut locations: Vec<Option<&AwsLocation>> = vec![None; batch.len()];
        let mut parameters: Vec<Option<&SsmLocation>> = vec![None; batch.len()];
        let mut regions: Vec<Option<String>> = vec![None; batch.len()];
        for (i, location) in batch.iter().enumerate() {
            match location {
                Location::Aws(aws) => match region_of(aws) {
                    Ok(region) => {
                        locations[i] = Some(aws);
                        regions[i] = region;
                    }
                    Err(e) => out.results[i] = Some(Err(e)),
                },
                Location::Ssm(ssm) => {
                    match ssm
                        .region
                        .as_deref()
                        .map(|r| settings::check_region(r, "?region="))
                    {
                        Some(Err(e)) => out.results[i] = Some(Err(e)),
                        _ => {
                            parameters[i] = Some(ssm);
                            regions[i] = ssm.region.clone();
                        }
                    }
                }
                other => {
                    out.results[i] = Some(Err(SourceError::internal(format!(
                        "the AWS source was given {other}"
                    ))))
                }
            }
        }

        let wanted = |i: usize| locations[i].is_some() || parameters[i].is_some();
        if !(0..batch.len()).any(wanted) {
            return Ok(out.into_results());
        }

        let (token, role_without_token) = self.web_identity_token()?;
        if let Some(token) = &token {
            self.state().consumed = ci::token_variables(token);
        }
        let needs_default_region = (0..batch.len()).any(|i| wanted(i) && regions[i].is_none());
        let any_region = regions.iter().flatten().next().cloned();
        let deadline = tokio::time::Instant::from_std(cx.deadline);

        let (authenticated, on_time, summary) = self.runtime.block_on(async {
            let options = Options {
                settings: &self.settings,
                env: &self.env,
                token: token.as_ref(),
                role_without_token,
                needs_default_region,
                any_region: any_region.as_deref(),
            };
            let session = match tokio::time::timeout_at(deadline, Session::open(options)).await {
                Ok(opened) => opened?,
                Err(_) => {
                    return Err(SourceError::gave_up(
                        "no AWS credentials before the deadline (the credential provider or STS did not answer in time); raise --timeout or check the network",
                    ));
                }
            };
            let default = session.default_region.clone();
            let mut region = |i: usize| match regions[i].as_deref().or(default.as_deref()) {
                Some(region) => Some(region.to_string()),
                None => {
                    out.results[i] = Some(Err(no_region()));
                    None
                }
            };
            let mut items: Vec<(usize, &AwsLocation, String)> = Vec::new();
            let mut parameter_items: Vec<(usize, &SsmLocation, String)> = Vec::new();
            for i in 0..batch.len() {
                if let Some(location) = locations[i] {
                    if let Some(r) = region(i) {
                        items.push((i, location, r));
                    }
                } else if let Some(location) = parameters[i]
                    && let Some(r) = region(i)
                {
                    parameter_items.push((i, location, r));
                }
            }
            // Both services concurrently, on the one session. `check`'s GetCallerIdentity is
            // asked once: by the Secrets Manager side when it has work, else by this one.
            let secrets = !items.is_empty();
            let work = fetch::plan(items.iter().map(|(i, l, r)| (*i, *l, r.as_str())));
            let parameter_work =
                ssm::plan(parameter_items.iter().map(|(i, l, r)| (*i, *l, r.as_str())));
            let check_region = match secrets {
                true => None,
                false => default.clone().or_else(|| any_region.clone()),
            };
            let mut parameters_out = Outcomes::new(batch.len());
            let on_time = tokio::time::timeout_at(
                deadline,
                both(
                    fetch::run(&session, &locations, work, cx.check && secrets, &mut out),
                    ssm::run(
                        &session,
                        parameter_work,
                        cx.check,
                        check_region,
                        &mut parameters_out,
                    ),
                ),
            )
            .await
            .is_ok();
            out.absorb(parameters_out);
            let summary = session.attempts.summary();
            Ok((session.authenticated, on_time, summary))
        })?;

        let mut identity = describe_identity(&authenticated);
        identity.extend(out.caller.take().unwrap_or_default());
        self.state().identity = identity;
        if !on_time {
            for result in out.results.iter_mut().filter(|r| r.is_none()) {
                *result = Some(Err(SourceError::gave_up(format!(
                    "no answer from AWS before the deadline after {summary}; raise --timeout or try again later"
                ))));
            }
        }
        Ok(out.into_results())
    }

    fn identity(&self) -> Vec<(String, String)> {
        self.state().identity.clone()
    }

    /// The role and how the credentials came (AssumeRoleWithWebIdentity with the CI's token,
    /// or the default chain), then who they belong to (GetCallerIdentity). Reads no secret.
    fn diagnose(&self, cx: &FetchContext) -> crate::sources::Diagnosis {
        let mut d = crate::sources::Diagnosis::default();
        match &self.settings.role {
            Some(role) => d
                .facts
                .push(("role".into(), format!("{} ({})", role.arn, role.from))),
            None => d.facts.push((
                "credentials".into(),
                "the SDK's default chain (no role)".into(),
            )),
        }
        let (token, role_without_token) = match self.web_identity_token() {
            Ok(found) => found,
            Err(e) => {
                d.error = Some(e);
                return d;
            }
        };
        let deadline = tokio::time::Instant::from_std(cx.deadline);
        let outcome = self.runtime.block_on(async {
            let options = Options {
                settings: &self.settings,
                env: &self.env,
                token: token.as_ref(),
                role_without_token,
                needs_default_region: true,
                any_region: None,
            };
            let session = match tokio::time::timeout_at(deadline, Session::open(options)).await {
                Ok(opened) => opened?,
                Err(_) => {
                    return Err(SourceError::gave_up(
                        "no AWS credentials before the deadline",
                    ));
                }
            };
            let caller = match &session.default_region {
                Some(region) => fetch::caller(&session.sts(region)).await,
                None => vec![("caller".into(), "unknown (no region to ask STS in)".into())],
            };
            Ok((session.authenticated, caller))
        });
        match outcome {
            Ok((authenticated, caller)) => {
                if let Some(assumed) = &authenticated.web_identity {
                    d.facts.push((
                        "AssumeRoleWithWebIdentity".into(),
                        format!(
                            "ok ({})",
                            assumed.assumed_arn.as_deref().unwrap_or(&assumed.role_arn)
                        ),
                    ));
                }
                d.facts.extend(caller);
            }
            Err(e) => d.error = Some(e),
        }
        d
    }

    fn consumed_env(&self) -> Vec<String> {
        self.state().consumed.clone()
    }
}

/// Runs two futures concurrently to completion (tokio's `join!` needs its macros feature).
async fn both(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut a_done, mut b_done) = (false, false);
    std::future::poll_fn(|cx| {
        if !a_done {
            a_done = a.as_mut().poll(cx).is_ready();
        }
        if !b_done {
            b_done = b.as_mut().poll(cx).is_ready();
        }
        if a_done && b_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// `check`'s view of how the run authenticated. Never a credential.
fn describe_identity(authenticated: &Authenticated) -> Vec<(String, String)> {
    let mut identity = Vec::new();
    let mut add = |k: &str, v: String| identity.push((k.to_string(), v));
    match &authenticated.web_identity {
        Some(role) => {
            add("credentials", "web-identity".into());
            add("role", role.role_arn.clone());
            add("session", role.session_name.clone());
            if let Some(assumed) = &role.assumed_arn {
                add("assumed", assumed.clone());
            }
            add("token", role.token_variable.clone());
            if let Some(iss) = &role.claims.iss {
                add("iss", iss.clone());
            }
            if let Some(sub) = &role.claims.sub {
                add("sub", sub.clone());
            }
            if !role.claims.aud.is_empty() {
                add("aud", role.claims.aud.join(","));
            }
            if let Some(expires) = &role.expires {
                add("expires", expires.clone());
            }
        }
        None => add("credentials", "default-chain".into()),
    }
    if let Some(region) = &authenticated.default_region {
        add("region", region.clone());
    }
    identity
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(reference: &str) -> AwsLocation {
        match reference
            .parse::<crate::reference::Reference>()
            .unwrap()
            .location
        {
            Location::Aws(a) => a,
            _ => panic!(),
        }
    }

    #[test]
    fn a_reference_region_comes_from_the_query_or_the_arn() {
        assert_eq!(region_of(&aws("aws-sm://prod/db")).unwrap(), None);
        assert_eq!(
            region_of(&aws("aws-sm://prod/db?region=eu-west-1")).unwrap(),
            Some("eu-west-1".into())
        );
        let arn = "aws-sm://arn:aws:secretsmanager:us-east-2:123456789012:secret:prod/db";
        assert_eq!(region_of(&aws(arn)).unwrap(), Some("us-east-2".into()));
        // The parser refuses this already; the source does not rely on it.
        let mut clash = aws(arn);
        clash.region = Some("eu-west-1".into());
        let clash = region_of(&clash).unwrap_err();
        assert_eq!(clash.kind, crate::error::ErrorKind::Config);
        assert!(clash.message.contains("us-east-2"), "{clash}");
    }
}
