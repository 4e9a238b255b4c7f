//! The integration tests, in one test binary (as ripgrep and just have): one module per area,
//! sharing `support`. One binary links the library and the dev-dependencies once, and lets
//! `cargo test` run every test in one process with the usual filters
//! (`cargo test --test integration vault::`).

mod support;

mod aws;
mod aws_ssm;
mod cli;
mod cli_snapshots;
mod compliance;
mod contract_age;
mod contract_aws;
mod contract_aws_ssm;
mod contract_env;
mod contract_vault;
mod delivery;
mod doctor;
mod env_source;
mod kill;
mod kill_vault;
mod load;
mod pipe;
mod public;
mod redact_property;
mod redact_real_tools;
mod run;
mod vault;
