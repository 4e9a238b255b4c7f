//! The Parameter Store source against the shared source contract, on a real moto server.
//!
//! The source is handed its endpoint and credentials in an explicit environment, as `main`
//! hands it the job's.

#![cfg(feature = "aws")]

use crate::support::contract;
use crate::support::moto::{Moto, ParametersApi};
use stepsecret::env::Env;
use stepsecret::sources::SecretSource;
use stepsecret::sources::aws::AwsSource;
use stepsecret::spec::AwsSettings;

struct SsmFixture {
    api: ParametersApi,
    count: usize,
    env: Env,
}

impl contract::Fixture for SsmFixture {
    fn put(&mut self, name: &str, fields: &[(&str, &str)]) -> String {
        let object: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        let name = format!("/contract/{name}");
        // SecureString and String in turn: both come back as the value that was put.
        self.count += 1;
        let kind = if self.count.is_multiple_of(2) {
            "String"
        } else {
            "SecureString"
        };
        let version = self
            .api
            .put(&name, kind, &serde_json::Value::Object(object).to_string());
        if self.count.is_multiple_of(3) {
            format!("aws-ssm://{name}?version={version}")
        } else {
            format!("aws-ssm://{name}")
        }
    }

    fn missing(&self) -> String {
        "aws-ssm:///contract/does-not-exist".into()
    }

    fn open(&self) -> Box<dyn SecretSource> {
        Box::new(
            AwsSource::open_parameters(&AwsSettings::default(), &self.env)
                .expect("open the Parameter Store source"),
        )
    }
}

#[test]
fn parameter_store_source_passes_the_contract() {
    let moto = Moto::start();
    let env = Env::from_vars([
        ("AWS_ACCESS_KEY_ID", "AKIDCONTRACT".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "contract-secret-key".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", moto.url()),
    ]);
    contract::check(&mut SsmFixture {
        api: moto.parameters("us-east-1"),
        count: 0,
        env,
    });
}
