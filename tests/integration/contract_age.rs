//! The age source against the shared source contract.

#![cfg(feature = "age-source")]

use std::path::PathBuf;

use crate::support::{AgeKey, contract};
use stepsecret::sources::SecretSource;
use stepsecret::sources::age::AgeSource;

struct AgeFixture {
    dir: tempfile::TempDir,
    key: AgeKey,
    armor: bool,
}

impl contract::Fixture for AgeFixture {
    fn put(&mut self, name: &str, fields: &[(&str, &str)]) -> String {
        let object: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        let plaintext = serde_json::to_vec(&object).unwrap();
        let file = format!("{name}.json.age");
        std::fs::write(
            self.dir.path().join(&file),
            self.key.seal(&plaintext, self.armor),
        )
        .unwrap();
        // Alternate binary and armored files.
        self.armor = !self.armor;
        format!("age://{file}")
    }

    fn missing(&self) -> String {
        "age://does-not-exist.age".into()
    }

    fn open(&self) -> Box<dyn SecretSource> {
        let identities =
            stepsecret::sources::age::parse_identities(self.key.secret().as_bytes(), "test")
                .unwrap();
        Box::new(AgeSource::with_identities(
            &PathBuf::from(self.dir.path()),
            identities,
        ))
    }
}

#[test]
fn age_source_passes_the_contract() {
    contract::check(&mut AgeFixture {
        dir: tempfile::tempdir().unwrap(),
        key: AgeKey::generate(),
        armor: false,
    });
}
