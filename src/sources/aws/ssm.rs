//! The `aws-ssm://` requests: Parameter Store parameters through the same [`Session`] as
//! Secrets Manager (credentials, web identity, region, the shared HTTP client, retries,
//! timeouts, AWS_ENDPOINT_URL).
//!
//! Named parameters go 10 to a GetParameters call (its limit), with decryption; a version or
//! label rides in the same call as a selector (`name:3`, `name:blue`). A call never holds two
//! selectors of one name, so each parameter in the answer belongs to exactly one request (moto,
//! unlike AWS, does not echo the selector). `/*` pages through GetParametersByPath, not
//! recursively, and becomes one JSON document keyed by each parameter's last path segment, which
//! the core expands like `#*`. Every call starts under a pacer for Parameter Store's default
//! throughput (40 requests per second per region and account, shared with other jobs).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_ssm::types::Parameter;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use zeroize::Zeroize;

use super::errors::{self, Attempts, Subject};
use super::fetch::{Outcomes, caller};
use super::pacer::Pacer;
use super::session::Session;
use super::values::rfc3339;
use crate::error::SourceError;
use crate::reference::{Selector, SsmLocation};
use crate::secret::{Document, Selected, Structure};
use crate::sources::{Fetched, Found, Meta};
use secrecy::ExposeSecret;

/// GetParameters takes at most this many names.
pub const PARAMETER_BATCH: usize = 10;
/// First attempts started per second and region: under Parameter Store's default 40.
const RATE: usize = 30;
/// Requests in flight per region.
const IN_FLIGHT: usize = 16;

/// One name-with-selector to fetch, and the locations that want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    /// `name`, `name:3` or `name:blue`: what GetParameters is asked for.
    pub selector: String,
    /// The parameter's name.
    pub name: String,
    pub users: Vec<usize>,
}

/// The requests for one region.
#[derive(Debug, Default)]
pub(super) struct RegionWork {
    /// Named parameters, each selector once, in first-seen order.
    pub named: Vec<Wanted>,
    /// Paths (`/*`), each once, with the locations that want them.
    pub paths: Vec<(String, Vec<usize>)>,
}

/// Groups located references by region, each selector and path once.
pub(super) fn plan<'a>(
    items: impl Iterator<Item = (usize, &'a SsmLocation, &'a str)>,
) -> BTreeMap<String, RegionWork> {
    let mut work: BTreeMap<String, RegionWork> = BTreeMap::new();
    for (index, location, region) in items {
        let group = work.entry(region.to_string()).or_default();
        if location.path {
            match group.paths.iter_mut().find(|(p, _)| *p == location.name) {
                Some((_, users)) => users.push(index),
                None => group.paths.push((location.name.clone(), vec![index])),
            }
            continue;
        }
        let selector = location.selector();
        match group.named.iter_mut().find(|w| w.selector == selector) {
            Some(wanted) => wanted.users.push(index),
            None => group.named.push(Wanted {
                selector,
                name: location.name.clone(),
                users: vec![index],
            }),
        }
    }
    work
}

/// Splits the wanted selectors into GetParameters calls of at most [`PARAMETER_BATCH`], none
/// naming a parameter twice (so an answer's name says which request it answers).
pub(super) fn batches(named: &[Wanted]) -> Vec<Vec<Wanted>> {
    let mut calls: Vec<Vec<Wanted>> = Vec::new();
    for wanted in named {
        let open = calls.iter_mut().find(|call| {
            call.len() < PARAMETER_BATCH && call.iter().all(|w| w.name != wanted.name)
        });
        match open {
            Some(call) => call.push(wanted.clone()),
            None => calls.push(vec![wanted.clone()]),
        }
    }
    calls
}

/// Sends every request and records each outcome in `out` as it arrives.
pub(super) async fn run(
    session: &Session,
    work: BTreeMap<String, RegionWork>,
    check: bool,
    check_region: Option<String>,
    out: &mut Outcomes,
) {
    let mut tasks: JoinSet<Vec<(usize, Fetched)>> = JoinSet::new();
    for (region, group) in work {
        let client = session.parameters(&region);
        let pacer = Arc::new(Pacer::new(RATE));
        let gate = Arc::new(Semaphore::new(IN_FLIGHT));
        for call in batches(&group.named) {
            let (client, pacer, gate, attempts, region) = (
                client.clone(),
                Arc::clone(&pacer),
                Arc::clone(&gate),
                Arc::clone(&session.attempts),
                region.clone(),
            );
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                get_parameters(&client, &region, call, &pacer, &attempts).await
            });
        }
        for (path, users) in group.paths {
            let (client, pacer, gate, attempts, region) = (
                client.clone(),
                Arc::clone(&pacer),
                Arc::clone(&gate),
                Arc::clone(&session.attempts),
                region.clone(),
            );
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                share(
                    by_path(&client, &region, &path, &pacer, &attempts).await,
                    &users,
                )
            });
        }
    }
    let mut who = JoinSet::new();
    if check && let Some(region) = check_region {
        let sts = session.sts(&region);
        who.spawn(async move { caller(&sts).await });
    }
    while let Some(joined) = tasks.join_next().await {
        // A task that panicked leaves its locations unanswered; they are reported so.
        if let Ok(values) = joined {
            for (i, fetched) in values {
                out.results[i] = Some(fetched);
            }
        }
    }
    if let Some(Ok(identity)) = who.join_next().await {
        out.caller = Some(identity);
    }
}

/// One GetParameters call for up to 10 selectors, each answered by its own outcome.
async fn get_parameters(
    client: &aws_sdk_ssm::Client,
    region: &str,
    call: Vec<Wanted>,
    pacer: &Pacer,
    attempts: &Attempts,
) -> Vec<(usize, Fetched)> {
    pacer.wait().await;
    let result = client
        .get_parameters()
        .set_names(Some(call.iter().map(|w| w.selector.clone()).collect()))
        .with_decryption(true)
        .send()
        .await;
    let output = match result {
        Ok(output) => output,
        Err(e) => {
            let subject = match call.as_slice() {
                [one] => Subject::Parameter {
                    selector: &one.selector,
                    region,
                },
                _ => Subject::Parameters {
                    count: call.len(),
                    region,
                },
            };
            let error = errors::from_sdk(&e, &subject, attempts);
            return call
                .iter()
                .flat_map(|w| w.users.iter().map(|&i| (i, Err(error.clone()))))
                .collect();
        }
    };
    let invalid = output.invalid_parameters.unwrap_or_default();
    let mut answers = output.parameters.unwrap_or_default();
    let mut results = Vec::new();
    for wanted in &call {
        let subject = Subject::Parameter {
            selector: &wanted.selector,
            region,
        };
        let position = answers
            .iter()
            .position(|p| p.name.as_deref() == Some(wanted.name.as_str()));
        let outcome = match position {
            _ if invalid.contains(&wanted.selector) => Err(missing(&wanted.selector, region)),
            Some(at) => found(answers.swap_remove(at)),
            None => Err(errors::from_code(
                "MissingAnswer",
                Some("GetParameters answered neither the parameter nor InvalidParameters for it"),
                None,
                &subject,
                attempts,
            )),
        };
        results.extend(share(outcome, &wanted.users));
    }
    for mut unclaimed in answers {
        if let Some(value) = unclaimed.value.as_mut() {
            value.zeroize();
        }
    }
    results
}

/// One outcome for every location that wants it: copies for all but the last, which takes it.
fn share(outcome: Fetched, users: &[usize]) -> Vec<(usize, Fetched)> {
    let Some((&last, rest)) = users.split_last() else {
        return Vec::new();
    };
    let mut shared: Vec<(usize, Fetched)> = rest
        .iter()
        .map(|&i| {
            let copy = match &outcome {
                Ok(found) => Ok(Found {
                    document: copy(&found.document),
                    meta: found.meta.clone(),
                }),
                Err(e) => Err(e.clone()),
            };
            (i, copy)
        })
        .collect();
    shared.push((last, outcome));
    shared
}

/// A document's bytes in a new document (zeroized on drop like the original).
fn copy(document: &Document) -> Document {
    let bytes = match document.select(&Selector::Whole) {
        Ok(Selected::One(value)) => value.expose_secret().to_vec(),
        _ => Vec::new(),
    };
    Document::raw(bytes, Structure::Json)
}

/// GetParameters listed the selector under InvalidParameters: no such parameter, version or
/// label.
fn missing(selector: &str, region: &str) -> SourceError {
    SourceError::not_found(format!(
        "parameter `{selector}` in {region} does not exist (InvalidParameters): check the name, the version or label, the region (?region= or [aws] region) and the account (aws ssm get-parameter-history --name NAME lists versions and labels)"
    ))
}

/// A parameter's value as a document (SecureString decrypted by AWS, String and StringList as
/// they are), with its version and when it was last set.
fn found(mut parameter: Parameter) -> Fetched {
    let name = parameter.name.clone().unwrap_or_default();
    let value = parameter.value.take().ok_or_else(|| {
        SourceError::not_found(format!("parameter `{name}` came back without a value"))
    })?;
    let mut meta = Meta {
        version: Some(parameter.version.to_string()),
        created: parameter.last_modified_date.as_ref().and_then(rfc3339),
        lease_id: None,
        details: Vec::new(),
    };
    if let Some(kind) = &parameter.r#type {
        meta.details
            .push(("type".into(), kind.as_str().to_string()));
    }
    if let Some(selector) = parameter.selector.take() {
        meta.details.push(("selector".into(), selector));
    }
    Ok(Found {
        document: Document::raw(value.into_bytes(), Structure::Json),
        meta,
    })
}

/// Every parameter directly under `path`, as one JSON object keyed by each one's last path
/// segment; `check` shows how many there were and the oldest LastModifiedDate among them
/// (rotation age counts from it).
async fn by_path(
    client: &aws_sdk_ssm::Client,
    region: &str,
    path: &str,
    pacer: &Pacer,
    attempts: &Attempts,
) -> Fetched {
    let subject = Subject::Path { path, region };
    let asked = if path.is_empty() { "/" } else { path };
    let mut members = Map::new();
    let mut oldest: Option<aws_smithy_types::DateTime> = None;
    let mut next_token: Option<String> = None;
    loop {
        pacer.wait().await;
        let output = client
            .get_parameters_by_path()
            .path(asked)
            .recursive(false)
            .with_decryption(true)
            .max_results(PARAMETER_BATCH as i32)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|e| errors::from_sdk(&e, &subject, attempts))?;
        for mut parameter in output.parameters.unwrap_or_default() {
            let (Some(name), Some(value)) = (parameter.name.take(), parameter.value.take()) else {
                continue;
            };
            let key = name.rsplit('/').next().unwrap_or(&name).to_string();
            if let Some(date) = parameter.last_modified_date {
                oldest =
                    Some(oldest.map_or(date, |o| if date.secs() < o.secs() { date } else { o }));
            }
            members.insert(key, Value::String(value));
        }
        match output.next_token {
            Some(token) if !token.is_empty() => next_token = Some(token),
            _ => break,
        }
    }
    if members.is_empty() {
        return Err(SourceError::not_found(format!(
            "no parameters directly under `{asked}` in {region} (not recursive): check the path, the region and the account"
        )));
    }
    let meta = Meta {
        version: None,
        created: oldest.as_ref().and_then(rfc3339),
        lease_id: None,
        details: vec![("parameters".into(), members.len().to_string())],
    };
    Ok(Found {
        document: Document::json(Value::Object(members)),
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(reference: &str) -> SsmLocation {
        match reference
            .parse::<crate::reference::Reference>()
            .unwrap()
            .location
        {
            crate::reference::Location::Ssm(s) => s,
            _ => panic!(),
        }
    }

    #[test]
    fn selectors_are_deduplicated_and_a_call_never_names_a_parameter_twice() {
        let locations = [
            loc("aws-ssm:///a"),
            loc("aws-ssm:///a?version=2"),
            loc("aws-ssm:///a#key"),
            loc("aws-ssm:///p/*"),
            loc("aws-ssm:///a?label=blue"),
            loc("aws-ssm:///p/*"),
        ];
        let work = plan(locations.iter().enumerate().map(|(i, l)| (i, l, "r")));
        let group = &work["r"];
        assert_eq!(group.paths, [("/p".to_string(), vec![3, 5])]);
        let selectors: Vec<&str> = group.named.iter().map(|w| w.selector.as_str()).collect();
        assert_eq!(selectors, ["/a", "/a:2", "/a:blue"]);
        assert_eq!(group.named[0].users, [0, 2]);
        let calls = batches(&group.named);
        assert_eq!(calls.len(), 3);

        let many: Vec<Wanted> = (0..25)
            .map(|i| Wanted {
                selector: format!("/n{i}"),
                name: format!("/n{i}"),
                users: vec![i],
            })
            .collect();
        let sizes: Vec<usize> = batches(&many).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
    }
}
