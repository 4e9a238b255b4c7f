//! The env source against the shared source contract: each secret is a JSON variable of an
//! explicit environment.

use std::collections::BTreeMap;

use crate::support::contract;
use stepsecret::env::Env;
use stepsecret::sources::SecretSource;
use stepsecret::sources::env::EnvSource;

#[derive(Default)]
struct EnvFixture {
    vars: BTreeMap<String, String>,
}

impl contract::Fixture for EnvFixture {
    fn put(&mut self, name: &str, fields: &[(&str, &str)]) -> String {
        let object: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        let var: String = format!("CONTRACT_{name}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.vars
            .insert(var.clone(), serde_json::Value::Object(object).to_string());
        format!("env://{var}")
    }

    fn missing(&self) -> String {
        "env://CONTRACT_DOES_NOT_EXIST".into()
    }

    fn open(&self) -> Box<dyn SecretSource> {
        Box::new(EnvSource::new(&Env::from_vars(self.vars.clone())))
    }
}

#[test]
fn env_source_passes_the_contract() {
    contract::check(&mut EnvFixture::default());
}
