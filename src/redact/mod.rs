//! The redactor: replaces every secret value and its derived forms with `[masked:NAME]` in a
//! byte stream, in real time.
//!
//! All forms of all values go into one Aho-Corasick automaton (aho-corasick's automaton API,
//! with overlapping "standard" semantics so nested and overlapping secrets are all seen): a
//! DFA when it is small, else a DFA of the patterns' first 4 bytes with the sorted patterns
//! behind it ([`gate`]), or for thousands of secrets a contiguous NFA ([`Engine`]). The stream
//! writer steps it itself, only near where a pattern may start ([`scan`]); see [`stream`] for
//! how it decides what to hold back.
//!
//! Semantics, shared by the streaming writer and the whole-buffer [`reference_redact`] used to
//! test it: every occurrence of every form is found, overlapping ones included; occurrences
//! that overlap merge into one masked span; each span becomes one marker, named after the
//! occurrence that starts first (the longest, on a tie). Everything else passes through
//! byte-exact.

pub mod escapes;
pub mod forms;
mod gate;
mod scan;
mod stream;

use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::nfa::contiguous;
use aho_corasick::{MatchKind, StartKind};
use gate::Gate;
use zeroize::Zeroizing;

pub use forms::MIN_LEN;
pub use stream::{
    IDLE_RELEASE, OutputWriter, Piece, Plain, RedactWriter, Sink, Split, SplitWriter, StreamWriter,
};

/// Above this estimated DFA size the patterns go into a gated automaton (a DFA of their heads,
/// see [`HEAD_DFA_MAX_BYTES`]) or aho-corasick's contiguous NFA instead: a DFA costs (states ×
/// byte classes × 4) bytes, about 85 KB per secret with every form, and thousands of secrets
/// would need gigabytes; the NFA needs a few bytes per state and is slower only on output
/// that walks deep into the trie.
pub const DFA_MAX_BYTES: usize = 8 << 20;

/// The bound for the DFA of pattern heads in front of the sorted patterns (see
/// [`Engine::Gated`]): the heads of a few hundred secrets' forms fit.
pub const HEAD_DFA_MAX_BYTES: usize = 3 << 20;

/// The compiled automaton.
pub(crate) enum Engine {
    Dfa(DFA),
    /// Too many states for a DFA: a DFA over the first `k` bytes of every pattern scans the
    /// stream, and each complete head starts a walk of the patterns that begin with it.
    Gated(DFA, Box<Gate>),
    Nfa(contiguous::NFA),
}

/// The head length of a gated automaton. The shortest: the scan steps the automaton only
/// near possible pattern starts (see [`scan`]), so a false head costs a byte or two of a walk,
/// while longer heads made the DFA twice the size and build time (8 bytes: 6 MB and 16 ms
/// for a hundred mixed secrets; 4 bytes: 2.7 MB and 6 ms; the same throughput).
const HEAD_LEN: usize = MIN_LEN;

/// Figures about a compiled redactor (for the benchmark).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Secrets long enough to be masked.
    pub secrets: usize,
    /// Distinct patterns: every derived form of every secret.
    pub patterns: usize,
    /// Trie states (one per distinct prefix of a pattern).
    pub states: usize,
    /// "dfa", "gated dfa+sorted", "nfa" or "none".
    pub engine: &'static str,
    /// Heap bytes of the automaton.
    pub memory: usize,
    /// The longest pattern, in bytes (the most a writer may hold back).
    pub max_len: usize,
}

/// A set of secrets to mask. Shared by the stdout and stderr pumps.
///
/// The automaton is built on first use, or ahead of time by [`Redactor::prepare`] on another
/// thread, so a run can start its command while it is still being compiled.
pub struct Redactor {
    /// The forms to compile, taken (and wiped) when the automaton is built.
    patterns: Mutex<Vec<Zeroizing<Vec<u8>>>>,
    /// `None` once built when there is nothing to mask (no values, or all too short).
    engine: OnceLock<Option<(Engine, scan::Starts)>>,
    /// For each pattern, the index of the secret (and marker) it belongs to.
    labels: Vec<u32>,
    /// `[masked:NAME]` for each secret.
    markers: Vec<Vec<u8>>,
    /// The longest pattern: how far back a match can start.
    max_len: usize,
    /// Trie states and distinct bytes over all patterns, to choose the automaton.
    states: usize,
    distinct_bytes: usize,
    /// The DFA size bound ([`DFA_MAX_BYTES`] unless a test changes it).
    dfa_max: usize,
    /// A head length to use whatever the sizes (tests).
    force_gate: Option<usize>,
}

impl Redactor {
    /// Collects the forms of `(name, value)` pairs. Returns the redactor and the names whose
    /// values are too short to mask (under [`MIN_LEN`] bytes), for the caller to warn about.
    pub fn new<'a>(
        secrets: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> (Redactor, Vec<String>) {
        let secrets: Vec<(&str, &[u8])> = secrets.into_iter().collect();
        let derived = all_forms(&secrets);
        let mut markers: Vec<Vec<u8>> = Vec::new();
        let mut too_short = Vec::new();
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut labels: Vec<u32> = Vec::new();
        // Copies of the forms, to dedupe; wiped below.
        let mut seen: FastSet<Vec<u8>> = FastSet::default();
        for ((name, value), forms) in secrets.iter().zip(derived) {
            if value.len() < MIN_LEN {
                too_short.push(name.to_string());
                continue;
            }
            let label = markers.len() as u32;
            markers.push(format!("[masked:{name}]").into_bytes());
            for form in forms {
                if form.len() >= MIN_LEN && seen.insert(form.to_vec()) {
                    patterns.push(form);
                    labels.push(label);
                }
            }
        }
        for mut key in seen.drain() {
            zeroize::Zeroize::zeroize(&mut key);
        }
        let max_len = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        let (states, distinct_bytes) = trie_size(patterns.iter().map(|p| p.as_slice()));
        let redactor = Redactor {
            patterns: Mutex::new(patterns),
            engine: OnceLock::new(),
            labels,
            markers,
            max_len,
            states,
            distinct_bytes,
            dfa_max: DFA_MAX_BYTES,
            force_gate: None,
        };
        (redactor, too_short)
    }

    /// Sets the DFA size bound (0: always the NFA), for tests of both automata.
    #[doc(hidden)]
    pub fn with_dfa_limit(mut self, bytes: usize) -> Self {
        self.dfa_max = bytes;
        self
    }

    /// Uses the gated automaton with heads of `k` bytes, for tests of it.
    #[doc(hidden)]
    pub fn with_gate(mut self, k: usize) -> Self {
        self.force_gate = Some(k.max(MIN_LEN));
        self
    }

    /// Compiles the automaton now (idempotent; concurrent callers wait for one build).
    pub fn prepare(&self) {
        self.engine();
    }

    pub(crate) fn engine(&self) -> Option<&Engine> {
        self.compiled().map(|(engine, _)| engine)
    }

    /// The automaton and the set of pattern heads it skips by (see [`scan`]).
    pub(crate) fn compiled(&self) -> Option<(&Engine, &scan::Starts)> {
        self.engine
            .get_or_init(|| {
                let patterns =
                    std::mem::take(&mut *self.patterns.lock().unwrap_or_else(|p| p.into_inner()));
                if patterns.is_empty() {
                    return None;
                }
                let starts = scan::Starts::new(patterns.iter().map(|p| p.as_slice()));
                Some((self.build(patterns), starts))
            })
            .as_ref()
            .map(|(engine, starts)| (engine, starts))
    }

    /// The automaton for `patterns`: a DFA, a gated DFA or an NFA, by size.
    fn build(&self, patterns: Vec<Zeroizing<Vec<u8>>>) -> Engine {
        // Byte classes: at most one per distinct byte, plus one for all the others.
        let dfa_bytes = self.states * (self.distinct_bytes + 1) * 4;
        if self.force_gate.is_none() && dfa_bytes <= self.dfa_max {
            return Engine::Dfa(
                DFA::builder()
                    .match_kind(MatchKind::Standard)
                    .start_kind(StartKind::Unanchored)
                    .prefilter(false)
                    .byte_classes(true)
                    .build(patterns.iter().map(|p| p.as_slice()))
                    .expect("a DFA under DFA_MAX_BYTES always builds"),
            );
        }
        let k = self.force_gate.or_else(|| {
            let (states, distinct) =
                trie_size(patterns.iter().map(|p| &p[..p.len().min(HEAD_LEN)]));
            let bytes = states * (distinct + 1) * 4;
            (bytes <= self.dfa_max.min(HEAD_DFA_MAX_BYTES)).then_some(HEAD_LEN)
        });
        if let Some(k) = k {
            return self.gated(&patterns, k);
        }
        Engine::Nfa(
            contiguous::NFA::builder()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .byte_classes(true)
                .build(patterns.iter().map(|p| p.as_slice()))
                .expect("an NFA over the forms of at most a few thousand secrets builds"),
        )
    }

    /// A DFA of the first `k` bytes of each pattern in front of the sorted patterns.
    fn gated(&self, patterns: &[Zeroizing<Vec<u8>>], k: usize) -> Engine {
        let (gate, mut keys) = Gate::new(patterns, &self.labels, k);
        let dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .byte_classes(true)
            .build(&keys)
            .expect("a DFA of heads under the bound always builds");
        for key in &mut keys {
            zeroize::Zeroize::zeroize(key);
        }
        Engine::Gated(dfa, Box::new(gate))
    }

    /// Figures about the compiled automaton (compiles it).
    pub fn stats(&self) -> Stats {
        let (engine, memory) = match self.engine() {
            None => ("none", 0),
            Some(Engine::Dfa(a)) => ("dfa", a.memory_usage()),
            Some(Engine::Gated(a, g)) => ("gated dfa+sorted", a.memory_usage() + g.memory_usage()),
            Some(Engine::Nfa(a)) => ("nfa", a.memory_usage()),
        };
        Stats {
            secrets: self.markers.len(),
            patterns: self.labels.len(),
            states: self.states,
            engine,
            memory,
            max_len: self.max_len,
        }
    }

    /// Whether anything will be masked.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A writer that masks everything written through it into `out`. Call
    /// [`RedactWriter::finish`] at the end of the stream to release held-back bytes.
    pub fn writer<W: Write>(&self, out: W) -> RedactWriter<'_, W> {
        RedactWriter::new(stream::RRef::Borrowed(self), Plain::new(out))
    }

    /// One stream written from two sides, each output byte going back to the writer of the
    /// side its input came from (a marker: that of its span's first byte). See
    /// [`Redactor::output_writers`].
    pub fn split_writer<W: Write>(&self, outs: [W; 2]) -> SplitWriter<'_, W> {
        let [a, b] = outs;
        StreamWriter::new(stream::RRef::Borrowed(self), Split::new([Some(a), Some(b)]))
    }

    /// Writers for a command's stdout and stderr, going to `sinks` (our fd 1 and fd 2).
    ///
    /// When both sinks are the same file, pipe or terminal (same device and inode), as in a
    /// CI log, the two writers mask ONE stream in the order the writes reach them, each byte
    /// still going to the sink it was written for, so a value split across stdout and stderr
    /// is masked. Otherwise each masks its own stream.
    pub fn output_writers(self: &Arc<Self>, sinks: [Option<File>; 2]) -> [Option<OutputWriter>; 2] {
        stream::output_writers(self, sinks)
    }

    /// Masks a whole buffer.
    pub fn redact(&self, input: &[u8]) -> Vec<u8> {
        let mut w = self.writer(Vec::new());
        w.write_all(input).expect("writing to a Vec cannot fail");
        w.finish().expect("writing to a Vec cannot fail")
    }
}

/// The forms of each value (none for one too short), without escape sequences (the matcher
/// never sees them, so neither may the patterns). Deriving them is half the redactor's build
/// time, so many secrets are split between this thread and another.
fn all_forms(secrets: &[(&str, &[u8])]) -> Vec<Vec<Zeroizing<Vec<u8>>>> {
    let forms_of = |&(_, value): &(&str, &[u8])| -> Vec<Zeroizing<Vec<u8>>> {
        if value.len() < MIN_LEN {
            return Vec::new();
        }
        let forms = forms::derived_forms(value).into_iter().map(Zeroizing::new);
        forms
            .map(|form| Zeroizing::new(escapes::strip(&form)))
            .collect()
    };
    if secrets.len() < 16 {
        return secrets.iter().map(forms_of).collect();
    }
    let (first, second) = secrets.split_at(secrets.len() / 2);
    std::thread::scope(|scope| {
        let other = std::thread::Builder::new()
            .name("forms".into())
            .spawn_scoped(scope, || second.iter().map(forms_of).collect::<Vec<_>>());
        let mut all: Vec<_> = first.iter().map(forms_of).collect();
        match other {
            Ok(other) => match other.join() {
                Ok(rest) => all.extend(rest),
                Err(panic) => std::panic::resume_unwind(panic),
            },
            // No second thread: this one does the rest.
            Err(_) => all.extend(second.iter().map(forms_of)),
        }
        all
    })
}

/// A set hashed eight bytes at a time. The sets here dedupe the forms of the spec's own
/// secrets, a few dozen per secret, where SipHash's resistance to crafted keys buys nothing
/// and hashing every form byte by byte cost a tenth of the redactor's build time.
pub(crate) type FastSet<T> = HashSet<T, BuildHasherDefault<WordHasher>>;

/// A multiply-rotate hash over 8-byte words (FxHash's).
#[derive(Default)]
pub(crate) struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The number of trie states (distinct prefixes, the root included) and of distinct bytes.
fn trie_size<'a>(patterns: impl Iterator<Item = &'a [u8]>) -> (usize, usize) {
    let mut sorted: Vec<&[u8]> = patterns.collect();
    sorted.sort_unstable();
    let mut states = 1;
    let mut bytes = [false; 256];
    let mut previous: &[u8] = &[];
    for p in sorted {
        let shared = p.iter().zip(previous).take_while(|(a, b)| a == b).count();
        states += p.len() - shared;
        for &b in &p[shared..] {
            bytes[usize::from(b)] = true;
        }
        previous = p;
    }
    (states, bytes.iter().filter(|&&b| b).count())
}

/// A deliberately simple whole-buffer implementation of the same semantics, built from the same
/// derived forms: the oracle for the streaming writer in tests and fuzzing. Built only for
/// them (the `testing` feature): it is no part of the product.
///
/// Escape sequences (see [`escapes`]) are invisible to matching: forms are matched against the
/// visible bytes, a match's span runs from its first to its last visible byte in the input
/// (escapes in between included), and a marker whose span held an SGR sequence is followed by
/// `ESC[0m`.
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
            let form = escapes::strip(&form);
            if form.len() >= MIN_LEN && !patterns.iter().any(|(p, _)| *p == form) {
                patterns.push((form, label));
            }
        }
        names.push(*name);
        label += 1;
    }
    // The visible bytes, where each sits in the input, and where SGR sequences end.
    let mut parser = escapes::Parser::default();
    let mut visible = Vec::new();
    let mut at = Vec::new();
    let mut sgr_ends = Vec::new();
    for (i, &b) in input.iter().enumerate() {
        match parser.step(b) {
            escapes::Byte::Visible => {
                visible.push(b);
                at.push(i);
            }
            escapes::Byte::SgrEnd => sgr_ends.push(i),
            escapes::Byte::Escape => {}
        }
    }
    // Every occurrence: (start, end, label), in input offsets.
    let mut found: Vec<(usize, usize, usize)> = Vec::new();
    for (pattern, label) in &patterns {
        for start in 0..visible.len() {
            if visible[start..].starts_with(pattern) {
                found.push((at[start], at[start + pattern.len() - 1] + 1, *label));
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
        if sgr_ends.iter().any(|&e| start <= e && e < end) {
            out.extend_from_slice(SGR_RESET);
        }
        at = end;
    }
    out.extend_from_slice(&input[at..]);
    out
}

/// Written after a marker whose span held a colour change, so the line goes on uncoloured
/// rather than in whatever colour the span left behind.
pub const SGR_RESET: &[u8] = b"\x1b[0m";

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
