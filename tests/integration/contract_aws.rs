//! The AWS source against the shared source contract, on a real moto server.
//!
//! The source is handed its endpoint and credentials in an explicit environment, as `main`
//! hands it the job's.

#![cfg(feature = "aws")]

use crate::support::contract;
use crate::support::moto::{Moto, SecretsApi};
use stepsecret::env::Env;
use stepsecret::sources::SecretSource;
use stepsecret::sources::aws::AwsSource;
use stepsecret::spec::AwsSettings;

struct AwsFixture {
    api: SecretsApi,
    count: usize,
    env: Env,
}

impl contract::Fixture for AwsFixture {
    fn put(&mut self, name: &str, fields: &[(&str, &str)]) -> String {
        let object: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        let created = self
            .api
            .create_json(&format!("contract/{name}"), &object.into());
        // Name, full ARN and partial ARN in turn: the batch must map each answer back to the
        // reference that asked for it, whichever way it was written.
        self.count += 1;
        match self.count % 3 {
            0 => format!("aws-sm://{}", created.name),
            1 => format!("aws-sm://{}", created.arn),
            _ => format!("aws-sm://{}", created.partial_arn()),
        }
    }

    fn missing(&self) -> String {
        "aws-sm://contract/does-not-exist".into()
    }

    fn open(&self) -> Box<dyn SecretSource> {
        Box::new(AwsSource::open(&AwsSettings::default(), &self.env).expect("open the AWS source"))
    }
}

#[test]
fn aws_source_passes_the_contract() {
    let moto = Moto::start();
    let env = Env::from_vars([
        ("AWS_ACCESS_KEY_ID", "AKIDCONTRACT".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "contract-secret-key".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", moto.url()),
    ]);
    contract::check(&mut AwsFixture {
        api: moto.secrets("us-east-1"),
        count: 0,
        env,
    });
}
