//! The redactor: replaces every secret value and its derived forms with `[masked:NAME]` in a
//! byte stream, in real time.
//!
//! All forms of all values go into one Aho-Corasick DFA (aho-corasick's automaton API, with
//! overlapping "standard" semantics so nested and overlapping secrets are all seen). The stream
//! writer steps that DFA itself; see [`stream`] for how it decides what to hold back.
//!
//! Semantics, shared by the streaming writer and the whole-buffer [`reference_redact`] used to
//! test it: every occurrence of every form is found, overlapping ones included; occurrences
//! that overlap merge into one masked span; each span becomes one marker, named after the
//! occurrence that starts first (the longest, on a tie). Everything else passes through
//! byte-exact.

pub mod forms;
mod stream;

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use aho_corasick::dfa::DFA;
use aho_corasick::{MatchKind, StartKind};
use zeroize::Zeroizing;

pub use forms::MIN_LEN;
pub use stream::RedactWriter;

/// A set of secrets to mask. Shared by the stdout and stderr pumps.
///
/// The DFA is built on first use, or ahead of time by [`Redactor::prepare`] on another thread,
/// so a run can start its command while the automaton is still being compiled.
pub struct Redactor {
    /// The forms to compile, taken (and wiped) when the DFA is built.
    patterns: Mutex<Vec<Zeroizing<Vec<u8>>>>,
    /// `None` once built when there is nothing to mask (no values, or all too short).
    dfa: OnceLock<Option<DFA>>,
    /// For each pattern, the index of the secret (and marker) it belongs to.
    labels: Vec<u32>,
    /// `[masked:NAME]` for each secret.
    markers: Vec<Vec<u8>>,
    /// The longest pattern: how far back a match can start.
    max_len: usize,
}

impl Redactor {
    /// Collects the forms of `(name, value)` pairs. Returns the redactor and the names whose
    /// values are too short to mask (under [`MIN_LEN`] bytes), for the caller to warn about.
    pub fn new<'a>(
        secrets: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> (Redactor, Vec<String>) {
        let mut markers: Vec<Vec<u8>> = Vec::new();
        let mut too_short = Vec::new();
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut labels: Vec<u32> = Vec::new();
        // Copies of the forms, to dedupe; wiped below.
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        for (name, value) in secrets {
            if value.len() < MIN_LEN {
                too_short.push(name.to_string());
                continue;
            }
            let label = markers.len() as u32;
            markers.push(format!("[masked:{name}]").into_bytes());
            for form in forms::derived_forms(value) {
                let form = Zeroizing::new(form);
                if seen.insert(form.to_vec()) {
                    patterns.push(form);
                    labels.push(label);
                }
            }
        }
        for mut key in seen.drain() {
            zeroize::Zeroize::zeroize(&mut key);
        }
        let max_len = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        let redactor = Redactor {
            patterns: Mutex::new(patterns),
            dfa: OnceLock::new(),
            labels,
            markers,
            max_len,
        };
        (redactor, too_short)
    }

    /// Compiles the DFA now (idempotent; concurrent callers wait for one build).
    pub fn prepare(&self) {
        self.dfa();
    }

    pub(crate) fn dfa(&self) -> Option<&DFA> {
        self.dfa
            .get_or_init(|| {
                let patterns =
                    std::mem::take(&mut *self.patterns.lock().unwrap_or_else(|p| p.into_inner()));
                (!patterns.is_empty()).then(|| {
                    DFA::builder()
                        .match_kind(MatchKind::Standard)
                        .start_kind(StartKind::Unanchored)
                        .prefilter(false)
                        .byte_classes(true)
                        .build(patterns.iter().map(|p| p.as_slice()))
                        .expect("a DFA over at most a few thousand patterns always builds")
                })
            })
            .as_ref()
    }

    /// Whether anything will be masked.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A writer that masks everything written through it into `out`. Call
    /// [`RedactWriter::finish`] at the end of the stream to release held-back bytes.
    pub fn writer<W: Write>(&self, out: W) -> RedactWriter<'_, W> {
        RedactWriter::new(self, out)
    }

    /// Masks a whole buffer.
    pub fn redact(&self, input: &[u8]) -> Vec<u8> {
        let mut w = self.writer(Vec::new());
        w.write_all(input).expect("writing to a Vec cannot fail");
        w.finish().expect("writing to a Vec cannot fail")
    }
}

/// A deliberately simple whole-buffer implementation of the same semantics, built from the same
/// derived forms: the oracle for the streaming writer in tests and fuzzing. Built only for
/// them (the `testing` feature): it is no part of the product.
#[cfg(any(test, feature = "testing"))]
pub fn reference_redact(secrets: &[(&str, &[u8])], input: &[u8]) -> Vec<u8> {
    let mut patterns: Vec<(Vec<u8>, usize)> = Vec::new();
    let mut label = 0;
    let mut names = Vec::new();
    for (name, value) in secrets {
        if value.len() < MIN_LEN {
            continue;
        }
        for form in forms::derived_forms(value) {
            if !patterns.iter().any(|(p, _)| *p == form) {
                patterns.push((form, label));
            }
        }
        names.push(*name);
        label += 1;
    }
    // Every occurrence: (start, end, label).
    let mut found: Vec<(usize, usize, usize)> = Vec::new();
    for (pattern, label) in &patterns {
        for start in 0..input.len() {
            if input[start..].starts_with(pattern) {
                found.push((start, start + pattern.len(), *label));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while i < found.len() {
        let (start, mut end, label) = found[i];
        i += 1;
        while i < found.len() && found[i].0 < end {
            end = end.max(found[i].1);
            i += 1;
        }
        out.extend_from_slice(&input[at..start]);
        out.extend_from_slice(format!("[masked:{}]", names[label]).as_bytes());
        at = end;
    }
    out.extend_from_slice(&input[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(secrets: &[(&str, &[u8])], input: &[u8]) -> Vec<u8> {
        Redactor::new(secrets.iter().copied()).0.redact(input)
    }

    #[test]
    fn nested_and_overlapping_secrets_leave_no_fragment() {
        let secrets: &[(&str, &[u8])] = &[("OUTER", b"abcdefgh"), ("INNER", b"cdef")];
        assert_eq!(redact(secrets, b"x abcdefgh y"), b"x [masked:OUTER] y");
        assert_eq!(redact(secrets, b"x cdef y"), b"x [masked:INNER] y");
        let overlapping: &[(&str, &[u8])] = &[("A", b"1234wxyz"), ("B", b"wxyz5678")];
        assert_eq!(redact(overlapping, b"-1234wxyz5678-"), b"-[masked:A]-");
    }

    #[test]
    fn short_values_are_reported_not_masked() {
        let (r, short) = Redactor::new([("PORT", b"80".as_slice()), ("KEY", b"long-enough")]);
        assert_eq!(short, ["PORT"]);
        assert_eq!(r.redact(b"80 long-enough"), b"80 [masked:KEY]");
        let (empty, _) = Redactor::new([("X", b"".as_slice())]);
        assert!(empty.is_empty());
        assert_eq!(empty.redact(b"anything"), b"anything");
    }

    #[test]
    fn the_reference_agrees_on_a_simple_case() {
        let secrets: &[(&str, &[u8])] = &[("A", b"hunter22")];
        let input = b"pw=hunter22 b64=aHVudGVyMjI= url=hunter22";
        assert_eq!(redact(secrets, input), reference_redact(secrets, input));
        assert_eq!(
            redact(secrets, input),
            b"pw=[masked:A] b64=[masked:A] url=[masked:A]"
        );
    }
}
