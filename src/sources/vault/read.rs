//! Reading: which engine serves a path (KV v1, KV v2, anything else), then one request per
//! location.
//!
//! The engine is asked of the server once per mount (`sys/internal/ui/mounts/PATH`, the same
//! preflight the Vault CLI makes, allowed to any token that may use the path) and cached for
//! the run. KV v2 reads go to `MOUNT/data/PATH`; KV v1 reads to the path itself; any other
//! engine gets a plain read, or a write when the reference carries parameters (PKI `issue`),
//! and its lease is recorded so it can be revoked after the run.

use std::time::Instant;

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::client::{ApiError, Call, Client, Method, parallel};
use super::unreachable_or_gave_up;
use crate::error::SourceError;
use crate::reference::VaultLocation;
use crate::secret::{Document, SecretJson};
use crate::sources::{Found, Meta};

/// What serves a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Engine {
    KvV1,
    KvV2,
    /// Any other engine, by its type (`pki`, `database`, ...).
    Other(String),
}

/// A mount: its path (with a trailing `/`) and engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mount {
    pub path: String,
    pub engine: Engine,
}

/// Finds the mount of every location, asking once per mount. Returns, per location, its
/// mount or why it has none.
pub(super) fn mounts(
    client: &Client,
    token: &SecretString,
    locations: &[&VaultLocation],
    deadline: Instant,
    workers: usize,
) -> Vec<Result<Mount, SourceError>> {
    // One question per first path segment; a nested mount (`team/kv/...`) that the answer
    // does not cover is asked about on its own.
    let mut firsts: Vec<&str> = locations
        .iter()
        .map(|l| l.path.split('/').next().unwrap_or_default())
        .collect();
    firsts.sort_unstable();
    firsts.dedup();
    let representatives: Vec<&str> = firsts
        .iter()
        .map(|first| {
            locations
                .iter()
                .find(|l| l.path.split('/').next() == Some(first))
                .map(|l| l.path.as_str())
                .unwrap_or_default()
        })
        .collect();
    let known: Vec<Result<Mount, SourceError>> = parallel(&representatives, workers, |path| {
        detect(client, token, path, deadline)
    });
    locations
        .iter()
        .map(|location| {
            let first = location.path.split('/').next().unwrap_or_default();
            let i = firsts.binary_search(&first).unwrap_or_default();
            match &known[i] {
                Ok(mount) if within(&location.path, &mount.path) => Ok(mount.clone()),
                Ok(_) => detect(client, token, &location.path, deadline),
                Err(e) => Err(e.clone()),
            }
        })
        .collect()
}

fn within(path: &str, mount: &str) -> bool {
    format!("{path}/").starts_with(mount)
}

fn detect(
    client: &Client,
    token: &SecretString,
    path: &str,
    deadline: Instant,
) -> Result<Mount, SourceError> {
    let route = format!("sys/internal/ui/mounts/{path}");
    let answer = client
        .call(&Call::get(&route, token), deadline)
        .map_err(|e| match e {
            // Vault says "preflight capability check returned 403" for a valid token without
            // grants there (or no mount at all), and a bare "permission denied" for a token it
            // does not accept.
            ApiError::Status { status: 403, errors } if errors.contains("preflight") => {
                let first = path.split('/').next().unwrap_or_default();
                SourceError::denied(format!(
                    "no access to {path}: nothing is mounted at {first}/, or the token's policies grant nothing under it"
                ))
            }
            ApiError::Status { status: 403, errors } => SourceError::denied(format!(
                "Vault refused the token ({errors}): it is expired or revoked, or not a token of this server or namespace"
            )),
            other => read_error(client, path, other),
        })?;
    let data = answer.value().get("data");
    let text = |key: &str| data.and_then(|d| d.get(key)).and_then(Value::as_str);
    let mount_path = text("path").unwrap_or_default().to_string();
    let kind = text("type").unwrap_or_default();
    let version = data
        .and_then(|d| d.get("options"))
        .and_then(|o| o.get("version"))
        .and_then(Value::as_str)
        .unwrap_or("1");
    let engine = match kind {
        "kv" if version == "2" => Engine::KvV2,
        "kv" | "generic" => Engine::KvV1,
        other => Engine::Other(other.to_string()),
    };
    if mount_path.is_empty() || !within(path, &mount_path) {
        return Err(SourceError::unavailable(format!(
            "Vault did not say which mount serves {path}"
        )));
    }
    Ok(Mount {
        path: mount_path,
        engine,
    })
}

/// One read (or write) for one location.
pub(super) fn read(
    client: &Client,
    token: &SecretString,
    location: &VaultLocation,
    mount: &Mount,
    deadline: Instant,
) -> Result<Found, SourceError> {
    let inside = location
        .path
        .strip_prefix(&mount.path)
        .unwrap_or_default()
        .to_string();
    match &mount.engine {
        Engine::KvV2 | Engine::KvV1 if !location.params.is_empty() => {
            Err(SourceError::config(format!(
                "{} is on a KV mount, which takes no write parameters (only ?version=N on KV v2); remove `?{}=...`",
                location.path, location.params[0].0
            )))
        }
        Engine::KvV2 | Engine::KvV1 if inside.is_empty() => Err(SourceError::config(format!(
            "vault://{} names the KV mount itself: add the secret's path after it",
            location.path
        ))),
        Engine::KvV2 if inside.starts_with("data/") => Err(SourceError::config(format!(
            "vault://{} names the KV v2 API path: write it without data/ (stepsecret adds it), as vault://{}{}",
            location.path,
            mount.path,
            inside.trim_start_matches("data/")
        ))),
        Engine::KvV2 => {
            let route = format!("{}data/{inside}", mount.path);
            let version: Vec<(&str, String)> = location
                .version
                .map(|v| ("version", v.to_string()))
                .into_iter()
                .collect();
            let call = Call {
                query: &version,
                ..Call::get(&route, token)
            };
            let answer = client.call(&call, deadline).map_err(|e| match e {
                ApiError::Status { status: 404, .. } => missing(location, mount, "KV v2"),
                other => read_error(client, &location.path, other),
            })?;
            kv_v2(answer, location, mount)
        }
        Engine::KvV1 => {
            if location.version.is_some() {
                return Err(SourceError::config(format!(
                    "{} is on a KV v1 mount, which keeps no versions: remove ?version=",
                    location.path
                )));
            }
            let answer = client
                .call(&Call::get(&location.path, token), deadline)
                .map_err(|e| match e {
                    ApiError::Status { status: 404, .. } => missing(location, mount, "KV v1"),
                    other => read_error(client, &location.path, other),
                })?;
            let data = take_data(answer, &location.path)?;
            Ok(Found {
                document: Document::Json(data),
                meta: Meta {
                    details: vec![("engine".into(), "kv v1".into())],
                    ..Meta::default()
                },
            })
        }
        Engine::Other(kind) => {
            if location.version.is_some() {
                return Err(SourceError::config(format!(
                    "{} is on a {kind} mount; ?version= is only for KV v2",
                    location.path
                )));
            }
            other_engine(client, token, location, kind, deadline)
        }
    }
}

fn kv_v2(
    answer: SecretJson,
    location: &VaultLocation,
    mount: &Mount,
) -> Result<Found, SourceError> {
    let mut value = answer;
    let data = value.take("data");
    let metadata = data.value().get("metadata").cloned().unwrap_or_default();
    let version = metadata.get("version").and_then(Value::as_u64);
    let gone = metadata
        .get("deletion_time")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
        || metadata.get("destroyed").and_then(Value::as_bool) == Some(true);
    let mut data = data;
    let secret = data.take("data");
    if gone || !secret.value().is_object() {
        return Err(SourceError::not_found(format!(
            "version {} of {} is deleted or destroyed (KV v2 mount {}); undelete it or ask for another ?version=",
            version.map_or("?".into(), |v| v.to_string()),
            location.path,
            mount.path
        )));
    }
    Ok(Found {
        document: Document::Json(secret),
        meta: Meta {
            version: version.map(|v| v.to_string()),
            created: metadata
                .get("created_time")
                .and_then(Value::as_str)
                .map(str::to_string),
            lease_id: None,
            details: vec![("engine".into(), "kv v2".into())],
        },
    })
}

fn other_engine(
    client: &Client,
    token: &SecretString,
    location: &VaultLocation,
    kind: &str,
    deadline: Instant,
) -> Result<Found, SourceError> {
    let body: Option<Value> = (!location.params.is_empty()).then(|| {
        Value::Object(
            location
                .params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<String, Value>>(),
        )
    });
    let call = Call {
        method: if body.is_some() {
            Method::Post
        } else {
            Method::Get
        },
        body: body.as_ref(),
        ..Call::get(&location.path, token)
    };
    let answer = client.call(&call, deadline).map_err(|e| match e {
        ApiError::Status { status: 404, .. } => SourceError::not_found(format!(
            "nothing to read at {} ({kind} engine)",
            location.path
        )),
        ApiError::Status { status: 405, .. } => SourceError::config(format!(
            "{} cannot be read ({kind} engine); if it generates on write (e.g. pki/issue/ROLE), give the write's parameters: vault://{}?common_name=...",
            location.path, location.path
        )),
        ApiError::Status { status: 400, errors } => SourceError::config(format!(
            "Vault refused the request to {} ({kind} engine): {errors}",
            location.path
        )),
        other => read_error(client, &location.path, other),
    })?;
    let lease_id = answer
        .value()
        .get("lease_id")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    let mut details = vec![("engine".into(), kind.to_string())];
    if let Some(ttl) = answer.value().get("lease_duration").and_then(Value::as_u64)
        && ttl > 0
    {
        details.push(("lease ttl".into(), format!("{ttl}s")));
    }
    let data = take_data(answer, &location.path)?;
    Ok(Found {
        document: Document::Json(data),
        meta: Meta {
            lease_id,
            details,
            ..Meta::default()
        },
    })
}

fn take_data(mut answer: SecretJson, path: &str) -> Result<SecretJson, SourceError> {
    let data = answer.take("data");
    if data.value().is_object() {
        Ok(data)
    } else {
        Err(SourceError::not_found(format!(
            "Vault's answer for {path} has no data"
        )))
    }
}

fn missing(location: &VaultLocation, mount: &Mount, kind: &str) -> SourceError {
    let version = location
        .version
        .map_or(String::new(), |v| format!(" version {v}"));
    SourceError::not_found(format!(
        "no secret at {}{version} ({kind} mount {}); check the path, or write it first",
        location.path, mount.path
    ))
}

/// A failed read, as a one-line error that says what to fix.
pub(super) fn read_error(client: &Client, path: &str, e: ApiError) -> SourceError {
    match e {
        ApiError::Status {
            status: 403,
            errors,
        } => SourceError::denied(format!(
            "permission denied reading {path} ({errors}): the token is expired or revoked, or its policies do not grant `read` on this path"
        )),
        ApiError::Status { status, errors } => SourceError::unavailable(format!(
            "reading {path} failed with HTTP {status}: {errors}"
        )),
        ApiError::Malformed(why) => {
            SourceError::unavailable(format!("Vault's answer for {path} is unusable: {why}"))
        }
        gave_up => unreachable_or_gave_up(client, &format!("reading {path}"), gave_up),
    }
}
