//! `stepsecret policy`: the server-side configuration that grants exactly what the spec reads,
//! and only to this project's CI identity.
//!
//! For Vault: an ACL policy with `read` on exactly the paths the spec reads (KV v2 paths under
//! `data/`, `create`/`update` on paths written to generate a secret) and a JWT auth role bound
//! to the project's audience and claims, with a short token TTL. For AWS: the IAM role's trust
//! policy (the CI's OIDC provider, its audience and subject) and a permissions policy on
//! exactly the spec's secret and parameter ARNs. Reads only the spec: no network, no
//! credentials.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::cli::{CiKind, Format, PolicyArgs, PolicyFor};
use crate::env::Env;
use crate::error::{Error, UsageError, warn};
use crate::plan::Plan;
use crate::reference::{AwsLocation, Location, SsmLocation, VaultLocation};

/// The name when neither `--name` nor the spec gives one.
const DEFAULT_NAME: &str = "stepsecret-ci";

pub(super) fn policy(args: PolicyArgs, env: &Env) -> Result<u8, Error> {
    let plan = Plan::build(&args.spec, env)?;
    let identity = Identity::new(&args)?;
    let name = role_name(&plan, &args);
    let output = match args.target {
        PolicyFor::Vault => vault(&plan, &args, &identity, &name)?,
        PolicyFor::Aws => aws(&plan, &args, &identity, &name)?,
    };
    print!("{output}");
    Ok(0)
}

/// The CI identity the policy is for.
struct Identity {
    ci: CiKind,
    /// CircleCI org id, or Bitbucket workspace UUID (without braces).
    org: String,
    /// CircleCI project id, or Bitbucket repository UUID (without braces).
    project: String,
    branch: Option<String>,
}

fn unbrace(uuid: &str) -> String {
    uuid.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_string()
}

impl Identity {
    fn new(args: &PolicyArgs) -> Result<Identity, Error> {
        let (org, project) = match args.ci {
            CiKind::Circleci => (
                args.org.clone().ok_or(UsageError::PolicyNeedsOrg)?,
                args.project.clone().ok_or(UsageError::PolicyNeedsProject)?,
            ),
            CiKind::Bitbucket => (
                args.workspace
                    .as_deref()
                    .map(unbrace)
                    .ok_or(UsageError::PolicyNeedsWorkspace)?,
                args.repo
                    .as_deref()
                    .map(unbrace)
                    .ok_or(UsageError::PolicyNeedsRepo)?,
            ),
        };
        for (flag, value) in [("--org/--workspace", &org), ("--project/--repo", &project)] {
            if value.is_empty() || value.contains(['*', '"', '\n', ' ']) {
                return Err(UsageError::PolicyBadId {
                    flag,
                    value: value.clone(),
                }
                .into());
            }
        }
        Ok(Identity {
            ci: args.ci,
            org,
            project,
            branch: args.branch.clone(),
        })
    }

    /// The audience the CI puts in its tokens by default.
    fn audience(&self) -> String {
        match self.ci {
            CiKind::Circleci => self.org.clone(),
            CiKind::Bitbucket => format!("ari:cloud:bitbucket::workspace/{}", self.org),
        }
    }

    /// A glob of the `sub` claim of this project's tokens.
    fn subject(&self) -> String {
        match self.ci {
            CiKind::Circleci => match &self.branch {
                Some(branch) => format!(
                    "org/{}/project/{}/user/*/vcs-origin/*/vcs-ref/refs/heads/{branch}",
                    self.org, self.project
                ),
                None => format!("org/{}/project/{}/user/*", self.org, self.project),
            },
            CiKind::Bitbucket => format!("{{{}}}:*", self.project),
        }
    }
}

/// The Vault paths and capabilities the spec needs, sorted.
fn vault_paths(
    plan: &Plan,
    args: &PolicyArgs,
) -> Result<BTreeMap<String, Vec<&'static str>>, Error> {
    let mut paths: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    let is_mount = |list: &[String], path: &str| {
        list.iter().any(|m| {
            let m = m.trim_matches('/');
            path == m || path.starts_with(&format!("{m}/"))
        })
    };
    for entry in &plan.entries {
        let Location::Vault(VaultLocation { path, params, .. }) = &entry.reference.location else {
            continue;
        };
        let (route, caps) = if !params.is_empty() {
            (path.clone(), vec!["create", "update"])
        } else if is_mount(&args.kv1, path) || is_mount(&args.read_mount, path) {
            (path.clone(), vec!["read"])
        } else {
            let mount = args
                .kv2
                .iter()
                .map(|m| m.trim_matches('/'))
                .filter(|m| path.starts_with(&format!("{m}/")))
                .max_by_key(|m| m.len())
                .unwrap_or_else(|| path.split('/').next().unwrap_or_default());
            let inside = &path[mount.len() + 1..];
            (format!("{mount}/data/{inside}"), vec!["read"])
        };
        let entry = paths.entry(route).or_default();
        for cap in caps {
            if !entry.contains(&cap) {
                entry.push(cap);
            }
        }
    }
    if paths.is_empty() {
        return Err(UsageError::PolicyNothingFromVault.into());
    }
    Ok(paths)
}

/// The role (and Vault policy) name: `--name`, else the one the spec logs in as, so that the
/// configuration this prints is the one the spec's runs look for. A `--name` that disagrees
/// with the spec is used, with a warning: runs of this spec would not find that role.
fn role_name(plan: &Plan, args: &PolicyArgs) -> String {
    let (in_spec, setting) = match args.target {
        PolicyFor::Vault => (
            plan.vault.role.clone().filter(|r| !r.trim().is_empty()),
            "[vault] role",
        ),
        PolicyFor::Aws => (
            plan.aws
                .role_arn
                .as_deref()
                .and_then(|arn| arn.rsplit_once(":role/"))
                .and_then(|(_, path)| path.rsplit('/').next())
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            "[aws] role_arn",
        ),
    };
    match (&args.name, in_spec) {
        (Some(name), Some(spec)) if *name != spec => {
            warn(format!(
                "--name {name} differs from the spec's {setting} ({spec}): runs of this spec log in as {spec}, not {name}"
            ));
            name.clone()
        }
        (Some(name), _) => name.clone(),
        (None, Some(spec)) => spec,
        (None, None) => DEFAULT_NAME.to_string(),
    }
}

fn vault(plan: &Plan, args: &PolicyArgs, id: &Identity, name: &str) -> Result<String, Error> {
    let paths = vault_paths(plan, args)?;
    let mut hcl = format!(
        "# {name}: exactly what {} reads, for {}.\n",
        plan.spec_path
            .as_ref()
            .map_or("the spec".to_string(), |p| p.display().to_string()),
        match id.ci {
            CiKind::Circleci => format!("CircleCI project {}", id.project),
            CiKind::Bitbucket => format!("Bitbucket repository {{{}}}", id.project),
        }
    );
    for (path, caps) in &paths {
        let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
        hcl.push_str(&format!(
            "path \"{path}\" {{\n  capabilities = [{}]\n}}\n",
            caps.join(", ")
        ));
    }
    let mut bound_claims = serde_json::Map::new();
    bound_claims.insert("sub".into(), Value::String(id.subject()));
    match id.ci {
        CiKind::Circleci => {
            bound_claims.insert(
                "oidc.circleci.com/project-id".into(),
                Value::String(id.project.clone()),
            );
            if let Some(branch) = &id.branch {
                bound_claims.insert(
                    "oidc.circleci.com/vcs-ref".into(),
                    Value::String(format!("refs/heads/{branch}")),
                );
            }
        }
        CiKind::Bitbucket => {
            bound_claims.insert(
                "repositoryUuid".into(),
                Value::String(format!("{{{}}}", id.project)),
            );
            bound_claims.insert(
                "workspaceUuid".into(),
                Value::String(format!("{{{}}}", id.org)),
            );
            if let Some(branch) = &id.branch {
                bound_claims.insert("branchName".into(), Value::String(branch.clone()));
            }
        }
    }
    let ttl = args.token_ttl.as_secs().max(60);
    let role = json!({
        "role_type": "jwt",
        "user_claim": "sub",
        "bound_audiences": [id.audience()],
        "bound_claims_type": "glob",
        "bound_claims": bound_claims,
        "token_policies": [name],
        "token_ttl": ttl,
        "token_max_ttl": ttl,
        "token_explicit_max_ttl": ttl,
    });
    let auth_path = args.auth_path.trim_matches('/');
    let issuer = match id.ci {
        CiKind::Circleci => format!("https://oidc.circleci.com/org/{}", id.org),
        CiKind::Bitbucket => {
            "https://api.bitbucket.org/2.0/workspaces/WORKSPACE/pipelines-config/identity/oidc"
                .into()
        }
    };
    Ok(match args.format {
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({
                "policy_name": name,
                "policy": hcl,
                "role_path": format!("auth/{auth_path}/role/{name}"),
                "role": role,
                "auth_config": { "oidc_discovery_url": issuer, "bound_issuer": issuer },
            }))
            .expect("plain JSON")
        ),
        Format::Text => format!(
            "#!/bin/sh\n# Generated by `stepsecret policy --for vault`: apply with VAULT_ADDR and an admin token.\n# The JWT auth method, once per CI organisation:\n#   bao auth enable -path={auth_path} jwt\n#   bao write auth/{auth_path}/config oidc_discovery_url={issuer} bound_issuer={issuer}\nset -e\nbao policy write {name} - <<'POLICY'\n{hcl}POLICY\nbao write auth/{auth_path}/role/{name} - <<'ROLE'\n{}\nROLE\n",
            serde_json::to_string_pretty(&role).expect("plain JSON")
        ),
    })
}

/// The account of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:...`).
fn arn_account(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")?
        .split(':')
        .nth(3)
        .filter(|a| !a.is_empty())
}

fn aws(plan: &Plan, args: &PolicyArgs, id: &Identity, name: &str) -> Result<String, Error> {
    let locations: Vec<&AwsLocation> = plan
        .entries
        .iter()
        .filter_map(|e| match &e.reference.location {
            Location::Aws(a) => Some(a),
            _ => None,
        })
        .collect();
    let parameters: Vec<&SsmLocation> = plan
        .entries
        .iter()
        .filter_map(|e| match &e.reference.location {
            Location::Ssm(p) => Some(p),
            _ => None,
        })
        .collect();
    if locations.is_empty() && parameters.is_empty() {
        return Err(UsageError::PolicyNothingFromAws.into());
    }
    let account = aws_account(plan, args, &locations)?;
    let default_region = args
        .region
        .clone()
        .or_else(|| plan.aws.region.clone())
        .or_else(|| plan.env.non_empty("AWS_REGION").map(str::to_string));
    let arns = secret_arns(&locations, default_region.as_deref(), &account)?;
    let parameter_arns = parameter_arns(&parameters, default_region.as_deref(), &account)?;
    let trust = aws_trust(args, id, &account)?;
    let permissions = aws_permissions(&arns, &parameter_arns, &args.kms_key);
    let mut notes = Vec::new();
    if id.ci == CiKind::Bitbucket && id.branch.is_some() {
        notes.push("AWS cannot condition on Bitbucket's branchName claim; the branch is not enforced by this role");
    }
    if id.ci == CiKind::Circleci && id.branch.is_some() {
        notes.push("the branch is part of the sub claim only in CIRCLE_OIDC_TOKEN_V2 tokens");
    }
    Ok(match args.format {
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({
                "role_name": name,
                "trust_policy": trust,
                "permissions_policy": permissions,
                "notes": notes,
            }))
            .expect("plain JSON")
        ),
        Format::Text => {
            let mut text = format!(
                "# Trust policy: aws iam create-role --role-name {name} --assume-role-policy-document file://trust.json\n{}\n# Permissions: aws iam put-role-policy --role-name {name} --policy-name {name}-read --policy-document file://permissions.json\n{}\n",
                serde_json::to_string_pretty(&trust).expect("plain JSON"),
                serde_json::to_string_pretty(&permissions).expect("plain JSON"),
            );
            for note in notes {
                text.push_str(&format!("# note: {note}\n"));
            }
            text
        }
    })
}

/// The AWS account: `--account`, else the spec's role ARN's, else a secret ARN's.
fn aws_account(
    plan: &Plan,
    args: &PolicyArgs,
    locations: &[&AwsLocation],
) -> Result<String, Error> {
    Ok(args
        .account
        .clone()
        .or_else(|| {
            plan.aws
                .role_arn
                .as_deref()
                .and_then(arn_account)
                .map(str::to_string)
        })
        .or_else(|| {
            locations
                .iter()
                .find_map(|l| arn_account(&l.secret_id).map(str::to_string))
        })
        .ok_or(UsageError::PolicyNoAccount)?)
}

/// The ARN of every secret the spec reads, sorted, each once. AWS appends "-" and 6 random
/// characters to a secret's name in its ARN, so a name (or partial ARN) becomes a pattern.
fn secret_arns(
    locations: &[&AwsLocation],
    default_region: Option<&str>,
    account: &str,
) -> Result<Vec<String>, Error> {
    let mut arns: Vec<String> = Vec::new();
    for l in locations {
        let arn = if l.secret_id.starts_with("arn:") {
            let name = l.secret_id.rsplit(':').next().unwrap_or_default();
            let full = name.len() > 7
                && name.as_bytes()[name.len() - 7] == b'-'
                && name[name.len() - 6..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric());
            if full {
                l.secret_id.clone()
            } else {
                format!("{}-??????", l.secret_id)
            }
        } else {
            let region = l.region.as_deref().or(default_region).ok_or_else(|| {
                UsageError::PolicyNoRegion {
                    reference: format!("aws-sm://{}", l.secret_id),
                }
            })?;
            format!(
                "arn:aws:secretsmanager:{region}:{account}:secret:{}-??????",
                l.secret_id
            )
        };
        if !arns.contains(&arn) {
            arns.push(arn);
        }
    }
    arns.sort();
    Ok(arns)
}

/// Parameter Store ARNs the spec reads, each sorted and once: named parameters (for
/// GetParameters; a version or label is no part of the ARN), and paths (for
/// GetParametersByPath, which AWS checks against the path and the parameters under it).
#[derive(Debug, Default)]
struct ParameterArns {
    named: Vec<String>,
    paths: Vec<String>,
}

fn parameter_arns(
    locations: &[&SsmLocation],
    default_region: Option<&str>,
    account: &str,
) -> Result<ParameterArns, Error> {
    let mut arns = ParameterArns::default();
    for l in locations {
        let region =
            l.region
                .as_deref()
                .or(default_region)
                .ok_or_else(|| UsageError::PolicyNoRegion {
                    reference: format!("aws-ssm://{}{}", l.name, if l.path { "/*" } else { "" }),
                })?;
        // A name outside any hierarchy (`db_password`) is `parameter/db_password` too.
        let arn = |name: &str| {
            let slash = if name.starts_with('/') { "" } else { "/" };
            format!("arn:aws:ssm:{region}:{account}:parameter{slash}{name}")
        };
        let (list, new) = if !l.path {
            (&mut arns.named, vec![arn(&l.name)])
        } else if l.name.is_empty() {
            (&mut arns.paths, vec![arn("/*")])
        } else {
            (
                &mut arns.paths,
                vec![arn(&l.name), arn(&format!("{}/*", l.name))],
            )
        };
        for a in new {
            if !list.contains(&a) {
                list.push(a);
            }
        }
    }
    arns.named.sort();
    arns.paths.sort();
    Ok(arns)
}

/// The role's trust policy: web identity from the CI's OIDC provider, for this audience and
/// subject.
fn aws_trust(args: &PolicyArgs, id: &Identity, account: &str) -> Result<Value, Error> {
    let (provider, provider_arn) = match id.ci {
        CiKind::Circleci => {
            let host = format!("oidc.circleci.com/org/{}", id.org);
            (
                host.clone(),
                format!("arn:aws:iam::{account}:oidc-provider/{host}"),
            )
        }
        CiKind::Bitbucket => {
            let slug = args
                .workspace_name
                .as_deref()
                .ok_or(UsageError::PolicyNeedsWorkspaceName)?;
            let host =
                format!("api.bitbucket.org/2.0/workspaces/{slug}/pipelines-config/identity/oidc");
            (
                host.clone(),
                format!("arn:aws:iam::{account}:oidc-provider/{host}"),
            )
        }
    };
    Ok(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "StepsecretCiWebIdentity",
            "Effect": "Allow",
            "Principal": { "Federated": provider_arn },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": { format!("{provider}:aud"): id.audience() },
                "StringLike": { format!("{provider}:sub"): id.subject() },
            },
        }],
    }))
}

/// The role's permissions: read exactly the spec's secrets (and batch them) and parameters,
/// and decrypt with the given KMS keys through the services the spec uses.
fn aws_permissions(arns: &[String], parameters: &ParameterArns, kms_keys: &[String]) -> Value {
    let mut statements = Vec::new();
    let mut via = Vec::new();
    if !arns.is_empty() {
        statements.push(json!({
            "Sid": "StepsecretReadSpecSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": arns,
        }));
        // BatchGetSecretValue has no resource-level permission; each secret in a batch is
        // still checked against GetSecretValue above.
        statements.push(json!({
            "Sid": "StepsecretBatch",
            "Effect": "Allow",
            "Action": "secretsmanager:BatchGetSecretValue",
            "Resource": "*",
        }));
        via.push("secretsmanager.*.amazonaws.com");
    }
    if !parameters.named.is_empty() {
        statements.push(json!({
            "Sid": "StepsecretReadSpecParameters",
            "Effect": "Allow",
            "Action": "ssm:GetParameters",
            "Resource": parameters.named,
        }));
    }
    if !parameters.paths.is_empty() {
        statements.push(json!({
            "Sid": "StepsecretReadSpecParameterPaths",
            "Effect": "Allow",
            "Action": "ssm:GetParametersByPath",
            "Resource": parameters.paths,
        }));
    }
    if !parameters.named.is_empty() || !parameters.paths.is_empty() {
        via.push("ssm.*.amazonaws.com");
    }
    if !kms_keys.is_empty() {
        let via: Value = match via.as_slice() {
            [one] => json!(one),
            _ => json!(via),
        };
        statements.push(json!({
            "Sid": "StepsecretDecrypt",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": kms_keys,
            "Condition": { "StringLike": { "kms:ViaService": via } },
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}
