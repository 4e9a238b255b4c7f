//! Property tests of the streaming redactor: random output with random secrets and their
//! derived forms embedded, cut into random read sizes down to one byte.
//!
//! Two independent checks: the streamed result equals a simple whole-buffer implementation of
//! the same semantics, and it contains no secret and no 4-byte window of one (escape sequences
//! aside). Secrets use an alphabet with no lower-case letters and none of `[`, `]`, `:`, so no
//! window of a secret can occur inside a `[masked:...]` marker by chance.
//!
//! Every derived form (shell-quoted, wrapped base64, hex, base32, entities, UTF-16LE, of the
//! value and of its trimmed form) is embedded through `Embed::Form`, values coloured with
//! terminal escapes through `Embed::Coloured`; all three automata (DFA, NFA, gated) are checked, and
//! one stream written from two sides in random interleaving.
//! The gated automaton (a DFA of pattern heads in front of the sorted patterns) is checked too.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use stepsecret::redact::escapes::strip;
use stepsecret::redact::forms::derived_forms;
use stepsecret::redact::{Redactor, reference_redact};

const SECRET_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./;<=>?@^_{|}~ \n\"\\";

fn secret_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(SECRET_ALPHABET), 4..40)
}

/// Ways a secret can appear in output.
#[derive(Debug, Clone)]
enum Embed {
    Raw(usize),
    Base64(usize),
    Base64Inside {
        secret: usize,
        before: Vec<u8>,
        after: Vec<u8>,
    },
    Percent(usize),
    Json(usize),
    Line(usize),
    /// Two secrets overlapping: the first's tail is the second's head.
    Overlap(usize, usize),
    /// Any derived form, as the library lists them.
    Form(usize, usize),
    /// The value with escape sequences between its characters: (position, kind).
    Coloured(usize, Vec<(usize, usize)>),
}

/// Escape sequences loggers and `grep --color` put inside values.
const ESCAPES: &[&[u8]] = &[
    b"\x1b[01;31m\x1b[K",
    b"\x1b[m\x1b[K",
    b"\x1b[0m",
    b"\x1b[38;5;208m",
    b"\x1b[2K",
    b"\x1b]0;title\x07",
    b"\x1b]8;;https://example.com/x\x1b\\",
];

fn embed_strategy(n: usize) -> impl Strategy<Value = Embed> {
    let i = 0..n;
    prop_oneof![
        i.clone().prop_map(Embed::Raw),
        i.clone().prop_map(Embed::Base64),
        (
            i.clone(),
            prop::collection::vec(any::<u8>(), 0..5),
            prop::collection::vec(any::<u8>(), 0..5)
        )
            .prop_map(|(secret, before, after)| Embed::Base64Inside {
                secret,
                before,
                after
            }),
        i.clone().prop_map(Embed::Percent),
        i.clone().prop_map(Embed::Json),
        i.clone().prop_map(Embed::Line),
        (i.clone(), i.clone()).prop_map(|(a, b)| Embed::Overlap(a, b)),
        (i.clone(), 0usize..1000).prop_map(|(a, k)| Embed::Form(a, k)),
        (
            i,
            prop::collection::vec((0usize..100, 0..ESCAPES.len()), 1..4)
        )
            .prop_map(|(a, cuts)| Embed::Coloured(a, cuts)),
    ]
}

fn render(embed: &Embed, secrets: &[Vec<u8>]) -> Vec<u8> {
    match embed {
        Embed::Raw(i) => secrets[*i].clone(),
        Embed::Base64(i) => STANDARD.encode(&secrets[*i]).into_bytes(),
        Embed::Base64Inside {
            secret,
            before,
            after,
        } => {
            let mut data = before.clone();
            data.extend_from_slice(&secrets[*secret]);
            data.extend_from_slice(after);
            URL_SAFE_NO_PAD.encode(data).into_bytes()
        }
        Embed::Percent(i) => secrets[*i]
            .iter()
            .flat_map(|&b| {
                if b.is_ascii_alphanumeric() {
                    vec![b]
                } else {
                    format!("%{b:02X}").into_bytes()
                }
            })
            .collect(),
        Embed::Json(i) => {
            let text = String::from_utf8(secrets[*i].clone()).unwrap();
            let json = serde_json::to_string(&text).unwrap();
            json.as_bytes()[1..json.len() - 1].to_vec()
        }
        Embed::Line(i) => secrets[*i]
            .split(|&b| b == b'\n')
            .max_by_key(|l| l.len())
            .unwrap()
            .to_vec(),
        Embed::Overlap(a, b) => {
            let (a, b) = (&secrets[*a], &secrets[*b]);
            let mut out = a.clone();
            let shared = (1..a.len().min(b.len()))
                .rev()
                .find(|&k| a.ends_with(&b[..k]))
                .unwrap_or(0);
            out.extend_from_slice(&b[shared..]);
            out
        }
        Embed::Form(i, k) => {
            let forms = derived_forms(&secrets[*i]);
            forms[k % forms.len()].clone()
        }
        Embed::Coloured(i, cuts) => {
            let secret = &secrets[*i];
            let mut positions: Vec<(usize, usize)> = cuts
                .iter()
                .map(|&(p, k)| (1 + p % (secret.len() - 1), k))
                .collect();
            positions.sort();
            let mut out = Vec::new();
            let mut at = 0;
            for (p, k) in positions {
                out.extend_from_slice(&secret[at..p]);
                out.extend_from_slice(ESCAPES[k]);
                at = p;
            }
            out.extend_from_slice(&secret[at..]);
            out
        }
    }
}

/// What both sides got, in order: (side, bytes) per write.
type Log = Rc<RefCell<Vec<(usize, Vec<u8>)>>>;

/// A writer that logs what it gets, in order, with the side it belongs to.
struct Tap {
    side: usize,
    log: Log,
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.log.borrow_mut().push((self.side, buf.to_vec()));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Feeds `input` in the given sizes, each write from side `sides[k]`, through one split
/// stream; returns everything written, in order, and what each side got.
fn stream_split(
    redactor: &Redactor,
    input: &[u8],
    sizes: &[usize],
    sides: &[usize],
) -> (Vec<u8>, [Vec<u8>; 2]) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let tap = |side| Tap {
        side,
        log: Rc::clone(&log),
    };
    let mut w = redactor.split_writer([tap(0), tap(1)]);
    let mut at = 0;
    let mut k = 0;
    while at < input.len() {
        let n = sizes[k % sizes.len()].min(input.len() - at);
        w.write_side(sides[k % sides.len()], &input[at..at + n])
            .unwrap();
        at += n;
        k += 1;
    }
    drop(w.finish().unwrap());
    let mut all = Vec::new();
    let mut per_side = [Vec::new(), Vec::new()];
    for (side, bytes) in log.borrow().iter() {
        all.extend_from_slice(bytes);
        per_side[*side].extend_from_slice(bytes);
    }
    (all, per_side)
}

/// Feeds `input` through a streaming writer in the given read sizes.
fn stream(redactor: &Redactor, input: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut w = redactor.writer(Vec::new());
    let mut at = 0;
    let mut k = 0;
    while at < input.len() {
        let n = sizes[k % sizes.len()].min(input.len() - at);
        w.write_all(&input[at..at + n]).unwrap();
        at += n;
        k += 1;
    }
    w.finish().unwrap()
}

/// Random output between secrets. No ESC: a stray ESC right before a value could make its
/// first byte the end of an escape sequence (`Embed::Coloured` has well-formed ones).
fn filler_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_map(|b| if b == 0x1b { b'.' } else { b }),
        0..30,
    )
}

fn windows_of(secret: &[u8]) -> Vec<&[u8]> {
    // Windows that do not span a newline: a multi-line value's lines under 4 bytes are, by
    // design, not masked when printed alone, and a window across a newline only appears if
    // the whole value does.
    secret.windows(4).filter(|w| !w.contains(&b'\n')).collect()
}

proptest! {
    // Past failures are replayed from redact_property.proptest-regressions, next to this file.
    // (proptest's default would look in tests/proptest-regressions/, since main.rs sits here.)
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn streamed_output_never_leaks_and_matches_the_whole_buffer_reference(
        (secrets, embeds, filler, sizes) in prop::collection::vec(secret_strategy(), 1..6)
            .prop_flat_map(|secrets| {
                let n = secrets.len();
                (
                    Just(secrets),
                    prop::collection::vec(embed_strategy(n), 1..8),
                    prop::collection::vec(filler_strategy(), 8),
                    prop::collection::vec(1usize..70, 1..10),
                )
            })
    ) {
        // Nested secrets too: a slice of the first secret is itself a secret.
        let mut secrets = secrets;
        if secrets[0].len() >= 8 {
            let inner = secrets[0][2..6].to_vec();
            secrets.push(inner);
        }
        let names: Vec<String> = (0..secrets.len()).map(|i| format!("S{i}")).collect();
        let pairs: Vec<(&str, &[u8])> = names.iter().map(String::as_str).zip(secrets.iter().map(Vec::as_slice)).collect();

        let mut input = Vec::new();
        for (i, embed) in embeds.iter().enumerate() {
            input.extend_from_slice(&filler[i % filler.len()]);
            input.extend_from_slice(&render(embed, &secrets));
        }
        input.extend_from_slice(&filler[filler.len() - 1]);

        let (redactor, _) = Redactor::new(pairs.iter().copied());
        let (nfa, _) = Redactor::new(pairs.iter().copied());
        let nfa = nfa.with_dfa_limit(0);
        let streamed = stream(&redactor, &input, &sizes);
        let one_byte = stream(&nfa, &input, &[1]);
        let (gated, _) = Redactor::new(pairs.iter().copied());
        let gated = gated.with_gate(4 + secrets.len() % 3);
        let gated_streamed = stream(&gated, &input, &sizes);
        let gated_one_byte = stream(&gated, &input, &[1]);
        let expected = reference_redact(&pairs, &input);
        // Lengths only: the outputs may hold secrets when this fails.
        prop_assert!(streamed == expected, "streamed (DFA) differs from the reference: {} vs {} bytes", streamed.len(), expected.len());
        prop_assert!(one_byte == expected, "one byte at a time (NFA) differs from the reference: {} vs {} bytes", one_byte.len(), expected.len());
        prop_assert!(gated_streamed == expected, "streamed (gated) differs from the reference: {} vs {} bytes", gated_streamed.len(), expected.len());
        prop_assert!(gated_one_byte == expected, "one byte at a time (gated) differs from the reference: {} vs {} bytes", gated_one_byte.len(), expected.len());

        let visible = strip(&streamed);
        for (i, secret) in secrets.iter().enumerate() {
            for window in windows_of(secret) {
                let at = visible.windows(4).position(|w| w == window);
                prop_assert!(at.is_none(), "a 4-byte window of secret {} survived at visible offset {:?}", i, at);
            }
        }
    }

    #[test]
    fn two_interleaved_streams_mask_as_one(
        (secrets, embeds, filler, sizes, sides) in prop::collection::vec(secret_strategy(), 1..4)
            .prop_flat_map(|secrets| {
                let n = secrets.len();
                (
                    Just(secrets),
                    prop::collection::vec(embed_strategy(n), 1..6),
                    prop::collection::vec(filler_strategy(), 8),
                    prop::collection::vec(1usize..40, 1..10),
                    prop::collection::vec(0usize..2, 1..10),
                )
            })
    ) {
        let names: Vec<String> = (0..secrets.len()).map(|i| format!("S{i}")).collect();
        let pairs: Vec<(&str, &[u8])> = names.iter().map(String::as_str).zip(secrets.iter().map(Vec::as_slice)).collect();
        let mut input = Vec::new();
        for (i, embed) in embeds.iter().enumerate() {
            input.extend_from_slice(&filler[i % filler.len()]);
            input.extend_from_slice(&render(embed, &secrets));
        }
        let (redactor, _) = Redactor::new(pairs.iter().copied());
        let redactor = if sizes.len() % 2 == 0 { redactor.with_gate(5) } else { redactor };
        let (all, per_side) = stream_split(&redactor, &input, &sizes, &sides);
        let expected = reference_redact(&pairs, &input);
        prop_assert!(all == expected, "the two sides, in write order, differ from the reference: {} vs {} bytes", all.len(), expected.len());
        for (side, out) in per_side.iter().enumerate() {
            let visible = strip(out);
            for (i, secret) in secrets.iter().enumerate() {
                for window in windows_of(secret) {
                    let at = visible.windows(4).position(|w| w == window);
                    prop_assert!(at.is_none(), "side {}: a 4-byte window of secret {} survived at visible offset {:?}", side, i, at);
                }
            }
        }
    }

    #[test]
    fn output_without_secrets_passes_through_byte_exact(
        secrets in prop::collection::vec(secret_strategy(), 1..4),
        text in prop::collection::vec(prop::sample::select(b"abcdefghijklmnopqrstuvwxyz\r\n\0\xff\xfe\t".as_slice()), 0..2000),
        sizes in prop::collection::vec(1usize..300, 1..6),
    ) {
        // Lower-case text, CR, NUL and invalid UTF-8 can never contain these secrets.
        let names: Vec<String> = (0..secrets.len()).map(|i| format!("S{i}")).collect();
        let pairs: Vec<(&str, &[u8])> = names.iter().map(String::as_str).zip(secrets.iter().map(Vec::as_slice)).collect();
        let (redactor, _) = Redactor::new(pairs.iter().copied());
        prop_assert_eq!(stream(&redactor, &text, &sizes), text);
    }
}

#[test]
fn very_long_lines_and_binary_pass_through() {
    let (redactor, _) = Redactor::new([("K", b"KEY-0123456789".as_slice())]);
    let mut input: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
    input.extend_from_slice(b"...KEY-0123456789...");
    input.extend(std::iter::repeat_n(b'x', 1 << 20));
    let out = stream(&redactor, &input, &[65536, 17, 100_000]);
    let mut want: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
    want.extend_from_slice(b"...[masked:K]...");
    want.extend(std::iter::repeat_n(b'x', 1 << 20));
    assert_eq!(out, want);
}
