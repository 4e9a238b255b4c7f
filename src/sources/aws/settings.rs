//! The AWS source's settings: the spec's `[aws]` table merged with the environment, validated
//! before any request is made, so a typo fails as a config error (78) naming the setting rather
//! than as a confusing AWS answer later.

use crate::ci::Job;
use crate::env::Env;
use crate::error::SourceError;
use crate::spec::AwsSettings;

/// AssumeRoleWithWebIdentity's DurationSeconds when the spec does not say: AWS's minimum. The
/// credentials are only used while fetching, so the shortest session is the safest.
pub const DEFAULT_DURATION_SECONDS: u32 = 900;
/// AWS's bounds for DurationSeconds (the role's MaxSessionDuration may lower the upper one).
const DURATION_RANGE: std::ops::RangeInclusive<u32> = 900..=43_200;
/// The audience to ask for where the token is minted on request (GitHub Actions); the one
/// AWS's own GitHub action uses, so existing OIDC providers in IAM accept it.
pub(super) const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
/// The SDK's own variables for a role and a token file (EKS, GitLab's documented setup).
pub(super) const ROLE_ARN_ENV: &str = "AWS_ROLE_ARN";
pub(super) const TOKEN_FILE_ENV: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `[aws] region`: the default for references without `?region=` or an ARN region. When
    /// absent, the SDK's AWS_REGION / AWS_DEFAULT_REGION / profile lookup decides.
    pub region: Option<String>,
    /// The role to assume with the CI's OIDC token, and where it was set (for messages).
    pub role: Option<Role>,
    /// AssumeRoleWithWebIdentity's DurationSeconds.
    pub duration_seconds: u32,
    /// A variable the spec names as holding the OIDC token.
    pub oidc_token_env: Option<String>,
    /// The audience to ask for where the token is minted on request.
    pub audience: String,
}

/// A role to assume with web identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub arn: String,
    /// `[aws] role_arn` or `AWS_ROLE_ARN`.
    pub from: &'static str,
}

impl Settings {
    /// Merges the spec with the environment and validates the result.
    pub fn new(spec: &AwsSettings, vars: &Env) -> Result<Settings, SourceError> {
        let env = |name: &str| vars.get(name).map(str::to_string);
        let non_empty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        if let Some(region) = &spec.region {
            check_region(region, "[aws] region")?;
        }
        // AWS_ROLE_ARN together with AWS_WEB_IDENTITY_TOKEN_FILE is the SDK's own web identity
        // setup (EKS, GitLab docs): leave that pair to the SDK's chain, which reads the file.
        let env_role =
            non_empty(env(ROLE_ARN_ENV)).filter(|_| non_empty(env(TOKEN_FILE_ENV)).is_none());
        let role = match (non_empty(spec.role_arn.clone()), env_role) {
            (Some(arn), _) => Some(Role {
                arn,
                from: "[aws] role_arn",
            }),
            (None, Some(arn)) => Some(Role {
                arn,
                from: ROLE_ARN_ENV,
            }),
            (None, None) => None,
        };
        if let Some(role) = &role {
            check_role_arn(role)?;
        }
        let duration_seconds = spec.duration_seconds.unwrap_or(DEFAULT_DURATION_SECONDS);
        if !DURATION_RANGE.contains(&duration_seconds) {
            return Err(SourceError::config(format!(
                "[aws] duration_seconds = {duration_seconds} is out of range: AWS accepts {} to {} seconds",
                DURATION_RANGE.start(),
                DURATION_RANGE.end()
            )));
        }
        Ok(Settings {
            region: spec.region.clone(),
            role,
            duration_seconds,
            oidc_token_env: non_empty(spec.oidc_token_env.clone()),
            audience: non_empty(spec.audience.clone())
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_string()),
        })
    }
}

/// A region name as AWS writes them (`eu-west-1`, `us-gov-east-1`, `cn-north-1`).
pub(super) fn check_region(region: &str, from: &str) -> Result<(), SourceError> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && region.contains('-');
    if ok {
        Ok(())
    } else {
        Err(SourceError::config(format!(
            "{from} `{region}` is not an AWS region name (e.g. eu-west-1)"
        )))
    }
}

fn check_role_arn(role: &Role) -> Result<(), SourceError> {
    // arn:PARTITION:iam::ACCOUNT:role/PATH/NAME
    let parts: Vec<&str> = role.arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len();
    if ok {
        Ok(())
    } else {
        Err(SourceError::config(format!(
            "{} `{}` is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)",
            role.from, role.arn
        )))
    }
}

/// The RoleSessionName for a CI job: `stepsecret-<job label>`, e.g. `stepsecret-circleci-1234`,
/// so CloudTrail shows which job read which secret. AWS allows `[\w+=,.@-]`, 2 to 64
/// characters; anything else becomes `-`, and the name is cut at 64.
pub fn session_name(job: Option<&Job>) -> String {
    let label = job.map_or_else(|| format!("local-{}", std::process::id()), Job::label);
    let mut name: String = format!("stepsecret-{label}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(64);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(spec: AwsSettings, env: &[(&str, &str)]) -> Result<Settings, SourceError> {
        Settings::new(&spec, &Env::from_vars(env.iter().copied()))
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/ci-deploy";

    #[test]
    fn defaults_and_role_sources() {
        let s = settings(AwsSettings::default(), &[]).unwrap();
        assert_eq!(s.role, None);
        assert_eq!(s.duration_seconds, 900);
        assert_eq!(s.audience, "sts.amazonaws.com");

        let s = settings(AwsSettings::default(), &[(ROLE_ARN_ENV, ROLE)]).unwrap();
        assert_eq!(s.role.unwrap().from, "AWS_ROLE_ARN");

        let spec = AwsSettings {
            role_arn: Some(ROLE.into()),
            ..Default::default()
        };
        let s = settings(spec, &[(ROLE_ARN_ENV, "arn:aws:iam::999999999999:role/x")]).unwrap();
        assert_eq!(
            s.role,
            Some(Role {
                arn: ROLE.into(),
                from: "[aws] role_arn"
            })
        );
    }

    #[test]
    fn the_aws_table_accepts_every_setting_and_nothing_else() {
        let parse = |text: &str| {
            crate::spec::Spec::parse(std::path::Path::new("s.toml"), text.to_string())
                .map(|s| s.file.aws)
        };
        let aws = parse(
            "[aws]\nregion = \"eu-west-1\"\nrole_arn = \"arn:aws:iam::123456789012:role/ci\"\nduration_seconds = 1800\noidc_token_env = \"CI_JOB_JWT_V2\"\naudience = \"sts.amazonaws.com\"\n",
        )
        .unwrap();
        let s = settings(aws, &[]).unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.duration_seconds, 1800);
        assert_eq!(s.oidc_token_env.as_deref(), Some("CI_JOB_JWT_V2"));
        let err = parse("[aws]\nrole = \"x\"\n").unwrap_err();
        assert!(
            matches!(&err, crate::error::SpecError::Toml { line: Some(2), message, .. }
                if message.contains("`role`")),
            "{err:?}"
        );
    }

    #[test]
    fn a_token_file_leaves_aws_role_arn_to_the_sdk() {
        let s = settings(
            AwsSettings::default(),
            &[(ROLE_ARN_ENV, ROLE), (TOKEN_FILE_ENV, "/var/run/token")],
        )
        .unwrap();
        assert_eq!(s.role, None);
    }

    #[test]
    fn bad_settings_are_config_errors_naming_the_setting() {
        let err = settings(
            AwsSettings {
                role_arn: Some("ci-deploy".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Config);
        assert!(err.message.contains("[aws] role_arn `ci-deploy`"), "{err}");

        let err = settings(
            AwsSettings {
                duration_seconds: Some(60),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        assert!(err.message.contains("900 to 43200"), "{err}");

        let err = settings(
            AwsSettings {
                region: Some("EU West".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        assert!(err.message.contains("not an AWS region"), "{err}");
    }

    #[test]
    fn session_names_are_sanitized_and_bounded() {
        let job = Job {
            provider: "circleci",
            fields: vec![("CIRCLE_BUILD_NUM", "1234".into())],
        };
        assert_eq!(session_name(Some(&job)), "stepsecret-circleci-1234");
        let odd = Job {
            provider: "bitbucket",
            fields: vec![(
                "BITBUCKET_BUILD_NUMBER",
                format!("7 {{x}}/{}", "9".repeat(80)),
            )],
        };
        let name = session_name(Some(&odd));
        assert_eq!(name.len(), 64);
        assert!(name.starts_with("stepsecret-bitbucket-7--x--9"), "{name}");
        assert!(session_name(None).starts_with("stepsecret-local-"));
    }
}
