//! Prints figures about the redactor built from a dotenv file of secrets (for
//! `scripts/bench-core.sh`): forms per secret, trie states, the automaton chosen and its
//! memory, and how long it took to build. Given a log too, the in-process throughput of
//! masking it in 256 KiB writes (no pipes: the automaton alone); given a size bound in MB
//! after that, the automaton is chosen under that bound instead of the default.
//!
//!     cargo run --release --example redact_stats -- SECRETS.env [LOG [DFA_MB]]

use std::io::Write;
use std::time::Instant;

use stepsecret::redact::Redactor;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .expect("usage: redact_stats SECRETS.env [LOG [DFA_MB]]");
    let bytes = std::fs::read(path).expect("read the secrets file");
    let vars = stepsecret::dotenv::parse(&bytes).expect("a dotenv file");
    let started = Instant::now();
    let (mut redactor, _) = Redactor::new(vars.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
    if let Some(mb) = args.get(2) {
        let mb: f64 = mb.parse().expect("DFA_MB is a number");
        redactor = redactor.with_dfa_limit((mb * 1e6) as usize);
    }
    let collected = started.elapsed();
    redactor.prepare();
    let built = started.elapsed();
    let s = redactor.stats();
    print!(
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
    if let Some(log) = args.get(1) {
        let log = std::fs::read(log).expect("read the log");
        let started = Instant::now();
        let mut w = redactor.writer(std::io::sink());
        for chunk in log.chunks(1 << 18) {
            w.write_all(chunk).expect("a sink takes everything");
        }
        w.finish().expect("a sink takes everything");
        let took = started.elapsed().as_secs_f64();
        print!(
            "; masks the log at {:.2} GB/s",
            log.len() as f64 / took / 1e9
        );
    }
    println!();
}
