//! The contract every secret source must pass, whatever its backend.
//!
//! Each backend's test provides a [`Fixture`] that can store secrets in a real server (or
//! file) and open the source under test; [`check`] then drives the source through the trait,
//! exactly as the core does.

use std::time::Duration;

use secrecy::ExposeSecret;
use stepsecret::error::ErrorKind;
use stepsecret::reference::{Location, Reference, Selector};
use stepsecret::secret::Selected;
use stepsecret::sources::{FetchContext, SecretSource};

/// A backend under test.
pub(crate) trait Fixture {
    /// Stores one secret whose value is a JSON object of these string fields, and returns a
    /// reference to it without `#key` (e.g. `vault://secret/contract/a`).
    fn put(&mut self, name: &str, fields: &[(&str, &str)]) -> String;
    /// A reference, without `#key`, to a secret that does not exist.
    fn missing(&self) -> String;
    /// Opens the source under test.
    fn open(&self) -> Box<dyn SecretSource>;
}

fn location(reference: &str) -> Location {
    reference
        .parse::<Reference>()
        .unwrap_or_else(|e| panic!("{reference}: {e}"))
        .location
}

fn one(selected: Selected) -> Vec<u8> {
    match selected {
        Selected::One(v) => v.expose_secret().to_vec(),
        Selected::Many(_) => panic!("expected one value"),
    }
}

/// Runs the whole contract against a fixture.
pub(crate) fn check(fixture: &mut impl Fixture) {
    // 25 secrets, each with a unique password, fetched in ONE batch with a missing one in the
    // middle: results come back in order, each from the right secret.
    let mut refs = Vec::new();
    let mut passwords = Vec::new();
    for i in 0..25 {
        let password = format!("contract-pw-{i}-{:08x}", rand_u32());
        let user = format!("user-{i}");
        refs.push(fixture.put(
            &format!("contract-{i}"),
            &[("user", user.as_str()), ("password", password.as_str())],
        ));
        passwords.push(password);
    }
    let missing = fixture.missing();
    let mut batch: Vec<Location> = refs.iter().map(|r| location(r)).collect();
    batch.insert(12, location(&missing));

    let source = fixture.open();
    assert_eq!(source.backend(), batch[0].backend(), "the source's backend");
    let cx = FetchContext::new(Duration::from_secs(30));
    let results = source
        .fetch(&batch, &cx)
        .expect("a batch with one missing secret still answers");
    assert_eq!(results.len(), batch.len(), "one result per location");

    let mut expected = passwords.iter();
    for (i, result) in results.iter().enumerate() {
        if i == 12 {
            let err = result.as_ref().expect_err("the missing secret is an error");
            assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
            for p in &passwords {
                assert!(
                    !err.message.contains(p.as_str()),
                    "error leaks a value: {err}"
                );
            }
            continue;
        }
        let found = result
            .as_ref()
            .unwrap_or_else(|e| panic!("location {i}: {e}"));
        let password = expected.next().unwrap();
        let got = one(found
            .document
            .select(&Selector::Key("password".into()))
            .unwrap());
        assert_eq!(got, password.as_bytes(), "location {i}");
        let pointer = one(found
            .document
            .select(&Selector::Pointer("/password".into()))
            .unwrap());
        assert_eq!(pointer, password.as_bytes());
        let whole = one(found.document.select(&Selector::Whole).unwrap());
        let whole: serde_json::Value =
            serde_json::from_slice(&whole).expect("the whole secret is JSON");
        assert_eq!(whole["password"], password.as_str());
        assert!(
            found.meta.lease_id.is_none(),
            "a static secret has no lease"
        );
        let Selected::Many(all) = found.document.select(&Selector::All).unwrap() else {
            panic!("#* gives many")
        };
        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            keys.contains(&"user") && keys.contains(&"password"),
            "{keys:?}"
        );
        assert!(
            format!("{:?}", found.document)
                .find(password.as_str())
                .is_none(),
            "Debug output must not show values"
        );
    }

    // An empty batch is not an error.
    assert!(source.fetch(&[], &cx).unwrap().is_empty());

    // Cleanup after a run of static secrets reports no failures.
    for event in source.finish() {
        assert!(event.error.is_none(), "cleanup failed: {event:?}");
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .elapsed()
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish() as u32
}
