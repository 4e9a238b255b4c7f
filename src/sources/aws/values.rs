//! From Secrets Manager's answer to a [`Found`]: the value as a document, and what `check` may
//! show about its version (never the value).
//!
//! A SecretString is handed over whole as JSON-or-text ([`Structure::Json`]): the core applies
//! `#key`, `#/pointer` and `#*` itself, and only parses it when a reference asks for a key. A
//! SecretBinary is handed over as its raw bytes; whether they can go in an environment variable
//! (valid UTF-8, no NUL) is the core's check, which points to `--file` when they cannot.
//!
//! The SDK's response strings are moved, not copied, into zeroizing boxes. The SDK's own
//! buffers (the HTTP body, its JSON parse) are freed without zeroizing: that is outside our
//! control and the reason values never stay in memory longer than the run.

use aws_smithy_types::Blob;
use aws_smithy_types::date_time::{DateTime, Format};
use zeroize::Zeroize;

use crate::error::SourceError;
use crate::secret::{Document, Structure};
use crate::sources::{Found, Meta};

/// The parts of a GetSecretValue answer or a BatchGetSecretValue entry that matter.
pub(super) struct Answer {
    pub arn: Option<String>,
    pub name: Option<String>,
    pub version_id: Option<String>,
    pub secret_string: Option<String>,
    pub secret_binary: Option<Blob>,
    pub version_stages: Option<Vec<String>>,
    pub created_date: Option<DateTime>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("arn", &self.arn)
            .field("version_id", &self.version_id)
            .finish_non_exhaustive()
    }
}

impl Drop for Answer {
    /// Wipes a value that was never taken (a duplicate entry, or one no location asked for).
    fn drop(&mut self) {
        if let Some(text) = self.secret_string.as_mut() {
            text.zeroize();
        }
        if let Some(blob) = self.secret_binary.take() {
            blob.into_inner().zeroize();
        }
    }
}

impl From<aws_sdk_secretsmanager::types::SecretValueEntry> for Answer {
    fn from(e: aws_sdk_secretsmanager::types::SecretValueEntry) -> Self {
        Answer {
            arn: e.arn,
            name: e.name,
            version_id: e.version_id,
            secret_string: e.secret_string,
            secret_binary: e.secret_binary,
            version_stages: e.version_stages,
            created_date: e.created_date,
        }
    }
}

impl From<aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput> for Answer {
    fn from(o: aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput) -> Self {
        Answer {
            arn: o.arn,
            name: o.name,
            version_id: o.version_id,
            secret_string: o.secret_string,
            secret_binary: o.secret_binary,
            version_stages: o.version_stages,
            created_date: o.created_date,
        }
    }
}

impl Answer {
    /// A copy, for each location that asks for the same secret (wiped on drop like the
    /// original).
    pub(super) fn duplicate(&self) -> Answer {
        Answer {
            arn: self.arn.clone(),
            name: self.name.clone(),
            version_id: self.version_id.clone(),
            secret_string: self.secret_string.clone(),
            secret_binary: self.secret_binary.clone(),
            version_stages: self.version_stages.clone(),
            created_date: self.created_date,
        }
    }

    /// Whether this entry is the secret `requested` names: its name, its full ARN, or a
    /// partial ARN (the full ARN without the `-xxxxxx` suffix AWS appends).
    pub(super) fn is(&self, requested: &str) -> Match {
        if self.arn.as_deref() == Some(requested) || self.name.as_deref() == Some(requested) {
            return Match::Exact;
        }
        let partial = self.arn.as_deref().is_some_and(|arn| {
            arn.len() == requested.len() + 7
                && arn.starts_with(requested)
                && arn.as_bytes()[requested.len()] == b'-'
        });
        if partial { Match::Partial } else { Match::No }
    }

    /// Moves the value out into a document; `id` is only used in messages.
    pub(super) fn into_found(mut self, id: &str) -> Result<Found, SourceError> {
        let binary = self.secret_binary.is_some();
        let mut meta = Meta {
            version: self.version_id.take(),
            created: self.created_date.as_ref().and_then(rfc3339),
            lease_id: None,
            details: Vec::new(),
        };
        if let Some(stages) = self.version_stages.take().filter(|s| !s.is_empty()) {
            meta.details.push(("stages".into(), stages.join(",")));
        }
        if let Some(arn) = self.arn.take().filter(|arn| arn != id) {
            meta.details.push(("arn".into(), arn));
        }
        if binary {
            meta.details.push(("type".into(), "binary".into()));
        }
        let bytes = match (self.secret_string.take(), self.secret_binary.take()) {
            // Moves, not copies: the buffer the SDK parsed into becomes the document's.
            (Some(text), _) => text.into_bytes(),
            (None, Some(blob)) => blob.into_inner(),
            (None, None) => {
                return Err(SourceError::not_found(format!(
                    "secret `{id}` has no value in this version (neither SecretString nor SecretBinary): put one with `aws secretsmanager put-secret-value`"
                )));
            }
        };
        Ok(Found {
            document: Document::raw(bytes, Structure::Json),
            meta,
        })
    }
}

/// How an answer matches a requested id; exact matches win over partial ARNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Match {
    No,
    Partial,
    Exact,
}

/// A timestamp as RFC 3339 (`2024-05-01T12:00:00Z`).
pub(super) fn rfc3339(date: &DateTime) -> Option<String> {
    date.fmt(Format::DateTime).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Selector;
    use crate::secret::Selected;
    use secrecy::ExposeSecret;

    fn answer() -> Answer {
        Answer {
            arn: Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf".into()),
            name: Some("prod/db".into()),
            version_id: Some("v1".into()),
            secret_string: Some(r#"{"password":"hunter22"}"#.into()),
            secret_binary: None,
            version_stages: Some(vec!["AWSCURRENT".into()]),
            created_date: Some(DateTime::from_secs(1_700_000_000)),
        }
    }

    #[test]
    fn names_full_and_partial_arns_match() {
        let a = answer();
        assert_eq!(a.is("prod/db"), Match::Exact);
        assert_eq!(
            a.is("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"),
            Match::Exact
        );
        assert_eq!(
            a.is("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db"),
            Match::Partial
        );
        assert_eq!(a.is("prod/d"), Match::No);
        assert_eq!(
            a.is("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/d"),
            Match::No
        );
    }

    #[test]
    fn strings_become_json_documents_with_version_meta() {
        let found = answer().into_found("prod/db").unwrap();
        assert_eq!(found.meta.version.as_deref(), Some("v1"));
        assert_eq!(found.meta.created.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert!(
            found
                .meta
                .details
                .contains(&("stages".into(), "AWSCURRENT".into()))
        );
        let Selected::One(v) = found
            .document
            .select(&Selector::Key("password".into()))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(v.expose_secret(), b"hunter22");
    }

    #[test]
    fn binaries_are_raw_bytes_and_no_value_is_not_found() {
        let mut a = answer();
        a.secret_string = None;
        a.secret_binary = Some(Blob::new(vec![0xff, 0x00, 0x10]));
        let found = a.into_found("prod/db").unwrap();
        assert!(
            found
                .meta
                .details
                .contains(&("type".into(), "binary".into()))
        );
        let Selected::One(v) = found.document.select(&Selector::Whole).unwrap() else {
            panic!()
        };
        assert_eq!(v.expose_secret(), &[0xff, 0x00, 0x10]);

        let mut empty = answer();
        empty.secret_string = None;
        let err = empty.into_found("prod/db").unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::NotFound);
    }
}
