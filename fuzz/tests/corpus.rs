//! Replays the committed corpus (`corpus/<target>/`) through the target bodies as ordinary
//! tests: what `scripts/fuzz-smoke.sh` falls back to when cargo-fuzz cannot run.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", file.display());
    }
    println!("{target}: {} inputs", files.len());
}

#[test]
fn spec_corpus() {
    replay("spec", stepsecret_fuzz::spec::run);
}

#[test]
fn reference_corpus() {
    replay("reference", stepsecret_fuzz::reference::run);
}

#[test]
fn redact_corpus() {
    replay("redact", stepsecret_fuzz::redact::run);
}
