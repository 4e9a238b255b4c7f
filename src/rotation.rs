//! Rotation age: how old each secret's current value is, and which ones are older than the
//! limit (`--max-age`, STEPSECRET_MAX_AGE, or `[policy] max_age` in the spec).
//!
//! The age is taken from when the backend says the value was last set: Vault KV v2's
//! `created_time` of the version read; for AWS, LastRotatedDate, else LastChangedDate (both
//! known to `check`, which asks DescribeSecret), else the version's CreatedDate (all `run`
//! has without an extra request). Age files and other engines carry no date, so no age: they
//! are never called stale, and `check` says so.

use std::time::{Duration, SystemTime};

use crate::sources::Meta;

/// When the value was last set, as the backend wrote it (RFC 3339).
pub(crate) fn set_at(meta: &Meta) -> Option<&str> {
    let detail = |key: &str| {
        meta.details
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    detail("last_rotated")
        .or_else(|| detail("last_changed"))
        .or(meta.created.as_deref())
}

/// How long ago an RFC 3339 time was, if it parses and is in the past.
pub(crate) fn age(at: &str) -> Option<Duration> {
    let trimmed = at.trim();
    let utc = trimmed
        .strip_suffix('Z')
        .or_else(|| trimmed.strip_suffix("+00:00"))?;
    let at = humantime::parse_rfc3339_weak(utc).ok()?;
    SystemTime::now().duration_since(at).ok()
}

/// `3d 4h`, `5h 12m`, `42s`: the two largest units.
pub(crate) fn short(age: Duration) -> String {
    let s = age.as_secs();
    let (d, h, m) = (s / 86_400, s / 3_600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}

/// A limit as the user likely wrote it: `90d`, `12h`, `30m`, `45s`.
fn whole(limit: Duration) -> String {
    let s = limit.as_secs();
    match s {
        0 => format!("{}ms", limit.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Why a value is too old, when it is: `last set 2024-01-02T..., 120d 3h ago, older than the 90d limit`.
pub(crate) fn stale(meta: &Meta, limit: Duration) -> Option<String> {
    let at = set_at(meta)?;
    let age = age(at)?;
    (age > limit).then(|| {
        format!(
            "last set {at}, {} ago, older than the {} limit; rotate it",
            short(age),
            whole(limit)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(created: &str, details: &[(&str, &str)]) -> Meta {
        Meta {
            created: Some(created.into()),
            details: details
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Meta::default()
        }
    }

    #[test]
    fn ages_of_vault_and_aws_timestamps() {
        assert!(age("2020-01-02T03:04:05.123456789Z").unwrap().as_secs() > 5 * 365 * 86_400);
        assert!(age("2020-01-02T03:04:05+00:00").is_some());
        assert!(age("yesterday").is_none());
        assert!(
            age("2999-01-01T00:00:00Z").is_none(),
            "the future has no age"
        );
        assert_eq!(short(Duration::from_secs(3 * 86_400 + 7_300)), "3d 2h");
        assert_eq!(short(Duration::from_secs(125)), "2m 5s");
    }

    #[test]
    fn aws_rotation_dates_win_over_the_version_date() {
        let m = meta(
            "2026-01-01T00:00:00Z",
            &[
                ("last_changed", "2025-06-01T00:00:00Z"),
                ("last_rotated", "2025-01-01T00:00:00Z"),
            ],
        );
        assert_eq!(set_at(&m), Some("2025-01-01T00:00:00Z"));
        let m = meta(
            "2026-01-01T00:00:00Z",
            &[("last_changed", "2025-06-01T00:00:00Z")],
        );
        assert_eq!(set_at(&m), Some("2025-06-01T00:00:00Z"));
    }

    #[test]
    fn stale_only_past_the_limit_and_never_without_a_date() {
        let old = meta("2020-01-01T00:00:00Z", &[]);
        let why = stale(&old, Duration::from_secs(90 * 86_400)).unwrap();
        assert!(why.contains("older than the 90d limit"), "{why}");
        assert!(stale(&old, Duration::from_secs(100 * 365 * 86_400)).is_none());
        assert!(stale(&Meta::default(), Duration::ZERO).is_none());
    }
}
