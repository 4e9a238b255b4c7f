//! stepsecret: fetch secrets at CI-job time and run one command with them, masked in its
//! output.
//!
//! The library is the whole engine; `main.rs` only parses arguments, captures the environment
//! ([`env`]) and maps errors to exit codes. A run goes: [`cli`] (what the user typed) →
//! [`plan`] (validated, no network) → `resolve` (every [`sources`] backend at once) → `run`
//! (the run's session: the command, its output through [`redact`], then cleanup of leases,
//! tokens and file secrets, in one documented order).
//!
//! Public modules are the parts other programs (the integration tests, the fuzzers) use;
//! everything else is private to the crate.

pub mod audit;
mod bundle;
mod ci;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod dotenv;
pub mod env;
pub mod error;
mod identity;
pub mod plan;
pub mod redact;
pub mod reference;
mod resolve;
mod rotation;
mod run;
pub mod secret;
pub mod sources;
pub mod spec;
pub mod template;
#[cfg(any(feature = "vault", feature = "aws"))]
mod tls;
