//! Prints figures about the redactor built from a dotenv file of secrets (for
//! `scripts/bench-core.sh`): forms per secret, trie states, the automaton chosen and its
//! memory, and how long it took to build.
//!
//!     cargo run --release --example redact_stats -- SECRETS.env

use std::time::Instant;

use stepsecret::redact::Redactor;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: redact_stats SECRETS.env");
    let bytes = std::fs::read(&path).expect("read the secrets file");
    let vars = stepsecret::dotenv::parse(&bytes).expect("a dotenv file");
    let started = Instant::now();
    let (redactor, _) = Redactor::new(vars.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
    let collected = started.elapsed();
    redactor.prepare();
    let built = started.elapsed();
    let s = redactor.stats();
    println!(
        "{} secrets: {} patterns ({:.1} forms per secret), {} trie states, longest {} bytes; {} of {:.1} MB; forms in {:.0} ms, automaton in {:.0} ms",
        s.secrets,
        s.patterns,
        s.patterns as f64 / s.secrets.max(1) as f64,
        s.states,
        s.max_len,
        s.engine.to_uppercase(),
        s.memory as f64 / 1e6,
        collected.as_secs_f64() * 1e3,
        (built - collected).as_secs_f64() * 1e3,
    );
}
