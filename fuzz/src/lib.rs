//! The bodies of the fuzz targets, as plain functions: the cargo-fuzz binaries in
//! `fuzz_targets/` call them, and so does `tests/corpus.rs`, which replays the committed corpus
//! as ordinary tests (the fallback of `scripts/fuzz-smoke.sh` when cargo-fuzz cannot run).
//!
//! Each function panics when a property fails.

pub mod redact;
pub mod reference;
pub mod spec;

/// Whether `message` is one line: no line feed, carriage return or other line separator.
pub fn is_one_line(message: &str) -> bool {
    !message.contains([
        '\n', '\r', '\u{0b}', '\u{0c}', '\u{85}', '\u{2028}', '\u{2029}',
    ])
}
