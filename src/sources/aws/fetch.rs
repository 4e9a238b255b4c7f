//! What to ask AWS for, and asking it: every reference grouped by region, unique secret ids
//! batched 20 to a BatchGetSecretValue call, references to a version through GetSecretValue,
//! all calls concurrent (paced under the quota), and for `check` a DescribeSecret per secret
//! and one GetCallerIdentity.
//!
//! A batch answers with values and an `Errors[]` list; each reference gets its own outcome,
//! so one missing secret fails that reference (the core names the variable) and the others
//! still report what they found.
//!
//! Many roles may read named secrets with GetSecretValue but not call BatchGetSecretValue
//! (which needs `Resource: "*"`, and some organizations deny it outright). When a batch call
//! is denied, that batch's ids and every later one of the run are fetched one GetSecretValue
//! each, concurrently under the same pacer and deadline, with one warning naming the
//! permission that would make it faster. A secret GetSecretValue itself denies still fails,
//! naming its variable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_secretsmanager::types::ApiErrorType;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::errors::{self, Attempts, Subject};
use super::pacer::Pacer;
use super::session::Session;
use super::values::{Answer, Match, rfc3339};
use crate::error::SourceError;
use crate::reference::AwsLocation;
use crate::sources::Fetched;

/// BatchGetSecretValue takes at most this many ids (moto does not enforce it; AWS does).
pub const BATCH_SIZE: usize = 20;
/// Requests in flight per region. A normal run has far fewer; this only bounds huge specs.
const IN_FLIGHT: usize = 16;
/// The version stage a batch returns, so a reference asking for it can be batched.
const CURRENT: &str = "AWSCURRENT";

/// The requests for one region.
#[derive(Debug, Default)]
pub(super) struct RegionWork {
    /// Unique ids to batch, in first-seen order, with the locations that want each.
    pub batched: Vec<(String, Vec<usize>)>,
    /// Locations asking for a version: one GetSecretValue each.
    pub single: Vec<usize>,
}

/// Groups located references by region. `regions[i]` is location i's region (already
/// resolved: its own, its ARN's, or the default).
pub(super) fn plan<'a>(
    items: impl Iterator<Item = (usize, &'a AwsLocation, &'a str)>,
) -> BTreeMap<String, RegionWork> {
    let mut work: BTreeMap<String, RegionWork> = BTreeMap::new();
    for (index, location, region) in items {
        let group = work.entry(region.to_string()).or_default();
        let batchable = location.version_id.is_none()
            && location
                .version_stage
                .as_deref()
                .is_none_or(|stage| stage == CURRENT);
        if !batchable {
            group.single.push(index);
        } else if let Some((_, users)) = group
            .batched
            .iter_mut()
            .find(|(id, _)| *id == location.secret_id)
        {
            users.push(index);
        } else {
            group
                .batched
                .push((location.secret_id.clone(), vec![index]));
        }
    }
    work
}

/// Whether BatchGetSecretValue was denied in this run: from then on, one GetSecretValue per
/// secret.
#[derive(Debug, Default)]
struct BatchDenied(AtomicBool);

impl BatchDenied {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Records the denial; the first one warns.
    fn set(&self) {
        if !self.0.swap(true, Ordering::Relaxed) {
            crate::error::warn(
                "BatchGetSecretValue was denied (AccessDeniedException): fetching each secret with GetSecretValue instead; allow secretsmanager:BatchGetSecretValue (Resource \"*\") to fetch 20 in one call",
            );
        }
    }
}

/// What one task found.
enum Done {
    Values(Vec<(usize, Fetched)>),
    /// DescribeSecret details for these locations.
    Details(Vec<usize>, Vec<(String, String)>),
    Caller(Vec<(String, String)>),
}

/// Collected outcomes: per location, and the caller identity for `check`.
pub(super) struct Outcomes {
    pub results: Vec<Option<Fetched>>,
    pub details: Vec<Vec<(String, String)>>,
    pub caller: Option<Vec<(String, String)>>,
}

impl Outcomes {
    pub(super) fn new(len: usize) -> Outcomes {
        Outcomes {
            results: (0..len).map(|_| None).collect(),
            details: vec![Vec::new(); len],
            caller: None,
        }
    }

    /// One result per location, `check`'s details added to each value found.
    pub(super) fn into_results(self) -> Vec<Fetched> {
        self.results
            .into_iter()
            .zip(self.details)
            .map(|(result, details)| {
                let mut result = result
                    .unwrap_or_else(|| Err(SourceError::internal("the AWS source lost an answer")));
                if let Ok(found) = &mut result {
                    found.meta.details.extend(details);
                }
                result
            })
            .collect()
    }

    /// Takes every outcome `other` has (the other service's half of the same batch).
    pub(super) fn absorb(&mut self, other: Outcomes) {
        for (mine, theirs) in self.results.iter_mut().zip(other.results) {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        for (mine, theirs) in self.details.iter_mut().zip(other.details) {
            mine.extend(theirs);
        }
        if self.caller.is_none() {
            self.caller = other.caller;
        }
    }

    fn record(&mut self, done: Done) {
        match done {
            Done::Values(values) => {
                for (i, fetched) in values {
                    self.results[i] = Some(fetched);
                }
            }
            Done::Details(indices, details) => {
                for i in indices {
                    self.details[i].extend(details.iter().cloned());
                }
            }
            Done::Caller(identity) => self.caller = Some(identity),
        }
    }
}

/// Sends every request and records each outcome in `out` as it arrives, so whatever arrived
/// before the deadline (the caller's timeout drops this future) is kept.
pub(super) async fn run(
    session: &Session,
    locations: &[Option<&AwsLocation>],
    work: BTreeMap<String, RegionWork>,
    check: bool,
    out: &mut Outcomes,
) {
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let attempts = &session.attempts;
    let denied = Arc::new(BatchDenied::default());
    for (region, group) in work {
        let client = session.secrets(&region);
        let pacer = Arc::new(Pacer::default());
        let gate = Arc::new(Semaphore::new(IN_FLIGHT));
        for chunk in group.batched.chunks(BATCH_SIZE) {
            let batch = Batch {
                client: client.clone(),
                region: region.clone(),
                pacer: Arc::clone(&pacer),
                attempts: Arc::clone(attempts),
                denied: Arc::clone(&denied),
            };
            let gate = Arc::clone(&gate);
            let chunk = chunk.to_vec();
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                Done::Values(batch.fetch(chunk).await)
            });
        }
        for &index in &group.single {
            let Some(location) = locations[index] else {
                continue;
            };
            let (client, pacer, gate, attempts) = (
                client.clone(),
                Arc::clone(&pacer),
                Arc::clone(&gate),
                Arc::clone(attempts),
            );
            let (location, region) = (location.clone(), region.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                pacer.wait().await;
                Done::Values(vec![(
                    index,
                    single(&client, &region, &location, &attempts).await,
                )])
            });
        }
        if check {
            // One DescribeSecret per secret, for every location that names it.
            let mut described: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (id, users) in &group.batched {
                described.entry(id.clone()).or_default().extend(users);
            }
            for &index in &group.single {
                if let Some(location) = locations[index] {
                    described
                        .entry(location.secret_id.clone())
                        .or_default()
                        .push(index);
                }
            }
            for (id, users) in described {
                let (client, pacer, gate) = (client.clone(), Arc::clone(&pacer), Arc::clone(&gate));
                tasks.spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    pacer.wait().await;
                    Done::Details(users, describe(&client, &id).await)
                });
            }
        }
    }
    if check {
        let region = session
            .default_region
            .clone()
            .or_else(|| locations.iter().flatten().find_map(|l| l.region.clone()));
        if let Some(region) = region {
            let sts = session.sts(&region);
            tasks.spawn(async move { Done::Caller(caller(&sts).await) });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => out.record(done),
            // A task panicked: its locations stay unanswered and are reported as such.
            Err(_) => continue,
        }
    }
}

/// What a batch of up to 20 ids is fetched with.
struct Batch {
    client: aws_sdk_secretsmanager::Client,
    region: String,
    pacer: Arc<Pacer>,
    attempts: Arc<Attempts>,
    denied: Arc<BatchDenied>,
}

impl Batch {
    /// The chunk's values: one BatchGetSecretValue call, or one GetSecretValue per id once
    /// the batch call was denied in this run.
    async fn fetch(&self, chunk: Vec<(String, Vec<usize>)>) -> Vec<(usize, Fetched)> {
        if !self.denied.is_set() {
            match batch(
                &self.client,
                &self.region,
                &chunk,
                &self.pacer,
                &self.attempts,
            )
            .await
            {
                Ok(results) => return results,
                Err(()) => self.denied.set(),
            }
        }
        let mut singles: JoinSet<(String, Vec<usize>, Result<Answer, SourceError>)> =
            JoinSet::new();
        for (id, users) in chunk {
            let (client, region, pacer, attempts) = (
                self.client.clone(),
                self.region.clone(),
                Arc::clone(&self.pacer),
                Arc::clone(&self.attempts),
            );
            singles.spawn(async move {
                pacer.wait().await;
                let location = AwsLocation {
                    secret_id: id,
                    version_stage: None,
                    version_id: None,
                    region: None,
                };
                let answer = single_answer(&client, &region, &location, &attempts).await;
                (location.secret_id, users, answer)
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = singles.join_next().await {
            // A task that panicked leaves its locations unanswered; they are reported so.
            let Ok((id, users, answer)) = joined else {
                continue;
            };
            for index in users {
                let outcome = match &answer {
                    Ok(answer) => answer.duplicate().into_found(&id),
                    Err(e) => Err(e.clone()),
                };
                results.push((index, outcome));
            }
        }
        results
    }
}

/// One BatchGetSecretValue call (following NextToken if AWS splits the answer). `Err(())`
/// when the call itself was denied: the caller falls back to GetSecretValue.
async fn batch(
    client: &aws_sdk_secretsmanager::Client,
    region: &str,
    chunk: &[(String, Vec<usize>)],
    pacer: &Pacer,
    attempts: &Attempts,
) -> Result<Vec<(usize, Fetched)>, ()> {
    let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
    let mut answers: Vec<Answer> = Vec::new();
    let mut failed: Vec<ApiErrorType> = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        pacer.wait().await;
        let result = client
            .batch_get_secret_value()
            .set_secret_id_list(Some(ids.clone()))
            .set_next_token(next_token.take())
            .send()
            .await;
        match result {
            Ok(output) => {
                answers.extend(output.secret_values.into_iter().flatten().map(Answer::from));
                failed.extend(output.errors.into_iter().flatten());
                match output.next_token {
                    Some(token) if !token.is_empty() => next_token = Some(token),
                    _ => break,
                }
            }
            Err(e) => {
                let code = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e);
                if code == Some("AccessDeniedException") {
                    return Err(());
                }
                let error = errors::from_sdk(
                    &e,
                    &Subject::Batch {
                        count: ids.len(),
                        region,
                    },
                    attempts,
                );
                return Ok(chunk
                    .iter()
                    .flat_map(|(_, users)| users.iter().map(|&i| (i, Err(error.clone()))))
                    .collect());
            }
        }
    }
    let mut results = Vec::new();
    for (id, users) in chunk {
        let subject = Subject::Secret { id, region };
        let error = failed
            .iter()
            .find(|e| e.secret_id.as_deref() == Some(id.as_str()));
        let best = answers
            .iter()
            .map(|a| a.is(id))
            .enumerate()
            .filter(|(_, m)| *m != Match::No)
            .max_by_key(|(_, m)| *m)
            .map(|(i, _)| i);
        for &index in users {
            let outcome = match (error, best) {
                (Some(e), _) => Err(errors::from_code(
                    e.error_code.as_deref().unwrap_or("UnknownError"),
                    e.message.as_deref(),
                    None,
                    &subject,
                    attempts,
                )),
                (None, Some(i)) => answers[i].duplicate().into_found(id),
                (None, None) => Err(SourceError::unavailable(format!(
                    "secret `{id}` in {region}: BatchGetSecretValue answered neither its value nor an error for it"
                ))),
            };
            results.push((index, outcome));
        }
    }
    Ok(results)
}

/// One GetSecretValue, for a reference to a version.
async fn single(
    client: &aws_sdk_secretsmanager::Client,
    region: &str,
    location: &AwsLocation,
    attempts: &Attempts,
) -> Fetched {
    single_answer(client, region, location, attempts)
        .await
        .and_then(|answer| answer.into_found(&location.secret_id))
}

/// GetSecretValue's answer for `location` (a version, or the current value once batches are
/// denied).
async fn single_answer(
    client: &aws_sdk_secretsmanager::Client,
    region: &str,
    location: &AwsLocation,
    attempts: &Attempts,
) -> Result<Answer, SourceError> {
    let id = location.secret_id.as_str();
    let version = match (&location.version_id, &location.version_stage) {
        (Some(v), _) => format!("version-id={v}"),
        (None, Some(stage)) => format!("version-stage={stage}"),
        (None, None) => "AWSCURRENT".to_string(),
    };
    let subject = Subject::Version {
        id,
        region,
        version: &version,
    };
    client
        .get_secret_value()
        .secret_id(id)
        .set_version_id(location.version_id.clone())
        .set_version_stage(location.version_stage.clone())
        .send()
        .await
        .map(Answer::from)
        .map_err(|e| errors::from_sdk(&e, &subject, attempts))
}

/// DescribeSecret's dates and rotation, for `check`. A failure is shown, not raised: `check`
/// fails on values, and a role may read values without being allowed to describe them.
async fn describe(client: &aws_sdk_secretsmanager::Client, id: &str) -> Vec<(String, String)> {
    let output = match client.describe_secret().secret_id(id).send().await {
        Ok(output) => output,
        Err(e) => {
            let code = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("no answer")
                .to_string();
            return vec![("describe".into(), format!("failed ({code})"))];
        }
    };
    let mut details = Vec::new();
    let mut date = |key: &str, value: Option<&aws_smithy_types::DateTime>| {
        if let Some(text) = value.and_then(rfc3339) {
            details.push((key.to_string(), text));
        }
    };
    date("last_changed", output.last_changed_date.as_ref());
    date("last_rotated", output.last_rotated_date.as_ref());
    date("next_rotation", output.next_rotation_date.as_ref());
    date("deleted", output.deleted_date.as_ref());
    details.push((
        "rotation".into(),
        if output.rotation_enabled == Some(true) {
            "on".into()
        } else {
            "off".into()
        },
    ));
    if let Some(versions) = &output.version_ids_to_stages {
        details.push(("versions".into(), versions.len().to_string()));
    }
    details
}

/// STS GetCallerIdentity, for `check`: who the credentials belong to.
pub(super) async fn caller(sts: &aws_sdk_sts::Client) -> Vec<(String, String)> {
    match sts.get_caller_identity().send().await {
        Ok(who) => [
            ("account", who.account),
            ("arn", who.arn),
            ("user_id", who.user_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect(),
        Err(e) => {
            let code = aws_sdk_sts::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("no answer")
                .to_string();
            vec![(
                "caller".into(),
                format!("unknown (GetCallerIdentity failed: {code})"),
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(id: &str, stage: Option<&str>, version: Option<&str>) -> AwsLocation {
        AwsLocation {
            secret_id: id.into(),
            version_stage: stage.map(Into::into),
            version_id: version.map(Into::into),
            region: None,
        }
    }

    #[test]
    fn ids_are_grouped_by_region_deduplicated_and_versions_go_alone() {
        let locations = [
            loc("a", None, None),
            loc("b", None, None),
            loc("a", Some("AWSCURRENT"), None),
            loc("a", Some("AWSPREVIOUS"), None),
            loc("c", None, Some("v1")),
            loc("d", None, None),
        ];
        let regions = [
            "eu-west-1",
            "eu-west-1",
            "eu-west-1",
            "eu-west-1",
            "eu-west-1",
            "us-east-1",
        ];
        let work = plan(
            locations
                .iter()
                .zip(regions)
                .enumerate()
                .map(|(i, (l, r))| (i, l, r)),
        );
        let eu = &work["eu-west-1"];
        assert_eq!(
            eu.batched,
            [("a".to_string(), vec![0, 2]), ("b".to_string(), vec![1])]
        );
        assert_eq!(eu.single, [3, 4]);
        assert_eq!(work["us-east-1"].batched, [("d".to_string(), vec![5])]);
    }
}
