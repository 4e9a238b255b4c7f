//! The Vault source against the shared source contract, on a real OpenBao server (KV v2).
//!
//! The source is handed its address and token in an explicit environment, as `main` hands it
//! the job's.

#![cfg(feature = "vault")]

use std::path::Path;

use crate::support::contract;
use crate::support::openbao::OpenBao;
use serde_json::{Map, Value};
use stepsecret::env::Env;
use stepsecret::sources::SecretSource;
use stepsecret::sources::vault::VaultSource;
use stepsecret::spec::VaultSettings;

struct VaultFixture<'a> {
    bao: &'a OpenBao,
    env: Env,
}

impl contract::Fixture for VaultFixture<'_> {
    fn put(&mut self, name: &str, fields: &[(&str, &str)]) -> String {
        let object: Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        self.bao
            .put(&format!("contract/{name}"), Value::Object(object));
        format!("vault://secret/contract/{name}")
    }

    fn missing(&self) -> String {
        "vault://secret/contract/does-not-exist".into()
    }

    fn open(&self) -> Box<dyn SecretSource> {
        Box::new(
            VaultSource::open(&VaultSettings::default(), Path::new("."), &self.env)
                .expect("open the Vault source"),
        )
    }
}

#[test]
fn vault_source_passes_the_contract() {
    let bao = OpenBao::start();
    let env = Env::from_vars([
        ("VAULT_ADDR", bao.url()),
        ("VAULT_TOKEN", bao.root.to_string()),
    ]);
    contract::check(&mut VaultFixture { bao: &bao, env });
}
