//! The Vault source against the shared source contract, on a real OpenBao server (KV v2).
//!
//! The source reads its address and token from the process environment, as it does in a CI
//! job. This binary holds this one test only, so setting the environment once, before anything
//! else runs, is safe.

#![cfg(feature = "vault")]

mod support;

use std::path::Path;

use serde_json::{Map, Value};
use stepsecret::sources::SecretSource;
use stepsecret::sources::vault::VaultSource;
use stepsecret::spec::VaultSettings;
use support::contract;
use support::openbao::OpenBao;

struct VaultFixture<'a> {
    bao: &'a OpenBao,
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
            VaultSource::open(&VaultSettings::default(), Path::new("."))
                .expect("open the Vault source"),
        )
    }
}

#[test]
fn vault_source_passes_the_contract() {
    let bao = OpenBao::start();
    // SAFETY: the only test in this binary; no other thread reads the environment yet.
    unsafe {
        for var in [
            "CIRCLE_OIDC_TOKEN",
            "CIRCLE_OIDC_TOKEN_V2",
            "BITBUCKET_STEP_OIDC_TOKEN",
            "STEPSECRET_OIDC_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "VAULT_NAMESPACE",
        ] {
            std::env::remove_var(var);
        }
        std::env::set_var("VAULT_ADDR", bao.url());
        std::env::set_var("VAULT_TOKEN", bao.root);
    }
    contract::check(&mut VaultFixture { bao: &bao });
}
