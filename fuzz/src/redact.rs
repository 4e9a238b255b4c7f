//! `redact` (differential): 1 to 4 secrets, an output built from filler and secrets embedded
//! in the forms a tool prints them in, and a cutting of that output into writes, all derived
//! from the fuzz input. The streamed result must equal a simple whole-buffer implementation
//! of the documented semantics (this file's [`oracle`], which must itself agree with the
//! library's `reference_redact`), whatever the cutting.
//!
//! As in `tests/integration/redact_property.rs`, when the secrets are drawn from an alphabet with no
//! lower-case letters and none of `[`, `]`, `:` (so no window of a secret can come from a
//! `[masked:NAME]` marker), no 4-byte window of a secret (one not spanning a newline: short
//! lines of a multi-line value are not masked, by design) may survive in the output, unless
//! that window is also in the parts of the input that are not an embedded secret (filler, the
//! base64 characters that also encode neighbouring bytes, lines under 4 bytes).
//!
//! The v2 forms (shell-quoted, wrapped base64, hex, base32, entities, UTF-16LE, of a value and
//! of its trimmed form) come in through `Piece::Form`, which takes any form the library lists;
//! `Piece::Coloured` puts terminal escape sequences between a value's characters, which the
//! matcher must skip (the span, escapes included, becomes one marker, followed by `ESC[0m`
//! when it held an SGR sequence); and a case may be written as one stream from two sides
//! (stdout and stderr of one log), which must give the same bytes in write order.

use std::io::Write;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use stepsecret::redact::escapes::{self, Byte, Parser};
use stepsecret::redact::forms::derived_forms;
use stepsecret::redact::{MIN_LEN, Redactor, reference_redact};

/// The secret alphabet of `tests/integration/redact_property.rs`.
pub const SECRET_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./;<=>?@^_{|}~ \n\"\\";

const MAX_SECRET: usize = 48;
const MAX_INPUT: usize = 12 << 10;

#[derive(Debug, Arbitrary)]
enum SecretSpec {
    Bytes(Vec<u8>),
    /// A slice of an earlier secret: nested secrets.
    Slice {
        of: u8,
        start: u8,
        len: u8,
    },
}

#[derive(Debug, Arbitrary)]
enum Piece {
    Filler(Vec<u8>),
    /// Many copies of one byte: long writes, so the interleaved lanes run.
    Repeat(u8, u16),
    Raw(u8),
    Base64(u8),
    /// Inside longer base64, after and before up to 4 other bytes.
    Base64Inside {
        secret: u8,
        before: Vec<u8>,
        after: Vec<u8>,
        url_safe: bool,
    },
    Percent(u8),
    Json(u8),
    Line(u8),
    /// Two secrets overlapping: the first's tail is the second's head.
    Overlap(u8, u8),
    /// Any derived form, as the library lists them.
    Form(u8, u8),
    /// The start of a secret, cut short: held back, then released.
    Prefix(u8, u8),
    /// A secret with escape sequences between its characters: (position, which).
    Coloured(u8, Vec<(u8, u8)>),
    /// A secret with whitespace around it (masked as-is and trimmed).
    Padded(u8, u8),
}

/// Escape sequences loggers and `grep --color` put inside values.
const ESCAPES: &[&[u8]] = &[
    b"\x1b[01;31m\x1b[K",
    b"\x1b[m\x1b[K",
    b"\x1b[0m",
    b"\x1b[38;2;255;0;0m",
    b"\x1b[2K",
    b"\x1b]0;title\x07",
    b"\x1b]8;;https://example.com/x\x1b\\",
];

#[derive(Debug, Arbitrary)]
struct Case {
    restricted: bool,
    secrets: Vec<SecretSpec>,
    pieces: Vec<Piece>,
    sizes: Vec<u16>,
    /// Write from two sides (one bit per write) through one split stream.
    sides: Option<u64>,
}

pub fn run(data: &[u8]) {
    let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    check(case);
}

fn make_secrets(specs: &[SecretSpec], restricted: bool) -> Vec<Vec<u8>> {
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for spec in specs.iter().take(4) {
        let mut value = match spec {
            SecretSpec::Slice { of, start, len } if !secrets.is_empty() => {
                let of = &secrets[usize::from(*of) % secrets.len()];
                let len = MIN_LEN + usize::from(*len) % (of.len() - MIN_LEN + 1);
                let start = usize::from(*start) % (of.len() - len + 1);
                of[start..start + len].to_vec()
            }
            SecretSpec::Slice { of, start, len } => vec![*of, *start, *len],
            SecretSpec::Bytes(bytes) => bytes.clone(),
        };
        value.truncate(MAX_SECRET);
        if restricted {
            for b in &mut value {
                *b = SECRET_ALPHABET[usize::from(*b) % SECRET_ALPHABET.len()];
            }
        }
        while value.len() < MIN_LEN {
            value.push(if restricted { b'0' } else { 0xa5 });
        }
        secrets.push(value);
    }
    if secrets.is_empty() {
        secrets.push(b"SECRET".to_vec());
    }
    secrets
}

/// The input, and the regions of it (start, end) that the redactor must mask.
/// With `restricted`, filler has no ESC: a stray `ESC [` right before a value would make its
/// first bytes part of an escape sequence (documented; `Piece::Coloured` has well-formed ones).
fn render(
    pieces: &[Piece],
    secrets: &[Vec<u8>],
    restricted: bool,
) -> (Vec<u8>, Vec<(usize, usize)>) {
    let no_esc = |b: u8| if restricted && b == 0x1b { b'.' } else { b };
    let pick = |i: &u8| &secrets[usize::from(*i) % secrets.len()];
    let mut input: Vec<u8> = Vec::new();
    let mut cores: Vec<(usize, usize)> = Vec::new();
    for piece in pieces {
        if input.len() >= MAX_INPUT {
            break;
        }
        let at = input.len();
        let start_of_piece = at;
        let mut whole = |input: &mut Vec<u8>, bytes: &[u8]| {
            input.extend_from_slice(bytes);
            cores.push((at, at + bytes.len()));
        };
        match piece {
            Piece::Filler(bytes) => input.extend(bytes.iter().map(|&b| no_esc(b))),
            Piece::Repeat(b, n) => {
                input.extend(std::iter::repeat_n(no_esc(*b), usize::from(*n) % 4096))
            }
            Piece::Raw(i) => whole(&mut input, pick(i)),
            Piece::Base64(i) => whole(&mut input, STANDARD.encode(pick(i)).as_bytes()),
            Piece::Base64Inside {
                secret,
                before,
                after,
                url_safe,
            } => {
                let secret = pick(secret);
                let before = &before[..before.len().min(4)];
                let after = &after[..after.len().min(4)];
                let mut data = before.to_vec();
                data.extend_from_slice(secret);
                data.extend_from_slice(after);
                let text = if *url_safe {
                    URL_SAFE_NO_PAD.encode(&data)
                } else {
                    STANDARD.encode(&data)
                };
                // The characters whose 6 bits all come from the secret.
                let first = (8 * before.len()).div_ceil(6);
                let last = 8 * (before.len() + secret.len()) / 6;
                input.extend_from_slice(text.as_bytes());
                cores.push((at + first, at + last));
            }
            Piece::Percent(i) => {
                let encoded: Vec<u8> = pick(i)
                    .iter()
                    .flat_map(|&b| {
                        if b.is_ascii_alphanumeric() {
                            vec![b]
                        } else {
                            format!("%{b:02X}").into_bytes()
                        }
                    })
                    .collect();
                whole(&mut input, &encoded);
            }
            Piece::Json(i) => match std::str::from_utf8(pick(i)) {
                Ok(text) => {
                    let json = serde_json::to_string(text).expect("a str serializes");
                    whole(&mut input, &json.as_bytes()[1..json.len() - 1]);
                }
                Err(_) => whole(&mut input, pick(i)),
            },
            Piece::Line(i) => {
                let line = pick(i)
                    .split(|&b| b == b'\n')
                    .max_by_key(|l| l.len())
                    .expect("split yields at least one part");
                if line.len() >= MIN_LEN {
                    whole(&mut input, line);
                } else {
                    input.extend_from_slice(line);
                }
            }
            Piece::Overlap(a, b) => {
                let (a, b) = (pick(a), pick(b));
                let mut out = a.clone();
                let shared = (1..a.len().min(b.len()))
                    .rev()
                    .find(|&k| a.ends_with(&b[..k]))
                    .unwrap_or(0);
                out.extend_from_slice(&b[shared..]);
                whole(&mut input, &out);
            }
            Piece::Form(i, k) => {
                let forms = derived_forms(pick(i));
                whole(&mut input, &forms[usize::from(*k) % forms.len()]);
            }
            Piece::Prefix(i, n) => {
                let secret = pick(i);
                input.extend_from_slice(&secret[..usize::from(*n) % secret.len()]);
            }
            Piece::Coloured(i, cuts) => {
                let secret = pick(i);
                let mut positions: Vec<(usize, usize)> = cuts
                    .iter()
                    .take(4)
                    .map(|&(p, k)| {
                        (
                            1 + usize::from(p) % (secret.len() - 1),
                            usize::from(k) % ESCAPES.len(),
                        )
                    })
                    .collect();
                positions.sort();
                let mut at = 0;
                for (p, k) in positions {
                    input.extend_from_slice(&secret[at..p]);
                    input.extend_from_slice(ESCAPES[k]);
                    at = p;
                }
                input.extend_from_slice(&secret[at..]);
                // The secret's characters are all there, with escapes between them.
                cores.push((start_of_piece, input.len()));
            }
            Piece::Padded(i, pad) => {
                let secret = pick(i);
                let pad = [b" ".as_slice(), b"\t", b"\n", b"  \n"][usize::from(*pad) % 4];
                input.extend_from_slice(pad);
                // The secret starts after the pad (`whole` would record the piece's start).
                let start = input.len();
                input.extend_from_slice(secret);
                cores.push((start, input.len()));
                input.extend_from_slice(pad);
            }
        }
    }
    (input, cores)
}

/// Feeds `input` through a streaming writer in the given write sizes, round-robin.
pub fn stream(redactor: &Redactor, input: &[u8], sizes: &[usize]) -> Vec<u8> {
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

/// Like [`stream`], each write from side `bits >> (k % 64) & 1` of one split stream; returns
/// what both sides got, in write order.
pub fn stream_split(redactor: &Redactor, input: &[u8], sizes: &[usize], bits: u64) -> Vec<u8> {
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let tap = |_side: usize| Tap(std::rc::Rc::clone(&log));
    let mut w = redactor.split_writer([tap(0), tap(1)]);
    let mut at = 0;
    let mut k = 0;
    while at < input.len() {
        let n = sizes[k % sizes.len()].min(input.len() - at);
        let side = ((bits >> (k % 64)) & 1) as usize;
        w.write_side(side, &input[at..at + n]).unwrap();
        at += n;
        k += 1;
    }
    drop(w.finish().unwrap());
    log.take()
}

/// A writer appending to a shared log.
struct Tap(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The documented semantics, written from the module docs of `stepsecret::redact`: every
/// occurrence of every form (overlapping ones included) is masked; occurrences that overlap
/// merge into one span; each span becomes one `[masked:NAME]` named after the occurrence that
/// starts first (the longest on a tie); a form shared by two secrets belongs to the first.
pub fn oracle(secrets: &[(&str, &[u8])], input: &[u8]) -> Vec<u8> {
    // Escape sequences are invisible to matching: forms are matched against the visible
    // bytes (and so are written without escapes), a span runs from its first to its last
    // visible byte, and a span that held an SGR sequence is followed by ESC[0m.
    let mut parser = Parser::default();
    let mut visible = Vec::new();
    let mut at_input = Vec::new();
    let mut sgr_end = vec![false; input.len()];
    for (i, &b) in input.iter().enumerate() {
        match parser.step(b) {
            Byte::Visible => {
                visible.push(b);
                at_input.push(i);
            }
            Byte::SgrEnd => sgr_end[i] = true,
            Byte::Escape => {}
        }
    }
    // For each visible position, the occurrence starting there that names a span: the
    // longest, and its owner.
    let mut best: Vec<Option<(usize, usize)>> = vec![None; visible.len()];
    let mut owned: Vec<Vec<u8>> = Vec::new();
    for (index, (_, value)) in secrets.iter().enumerate() {
        for form in derived_forms(value) {
            let form = escapes::strip(&form);
            if form.len() < MIN_LEN || owned.contains(&form) {
                continue;
            }
            for (start, window) in visible.windows(form.len()).enumerate() {
                if window == form.as_slice() && best[start].is_none_or(|(len, _)| len < form.len())
                {
                    best[start] = Some((form.len(), index));
                }
            }
            owned.push(form);
        }
    }
    let mut out = Vec::new();
    let mut written = 0;
    let mut i = 0;
    while i < visible.len() {
        let Some((len, owner)) = best[i] else {
            i += 1;
            continue;
        };
        // Extend over every occurrence that starts inside the span.
        let mut end = i + len;
        let mut j = i + 1;
        while j < end {
            if let Some((len, _)) = best[j] {
                end = end.max(j + len);
            }
            j += 1;
        }
        let (from, to) = (at_input[i], at_input[end - 1] + 1);
        out.extend_from_slice(&input[written..from]);
        out.extend_from_slice(format!("[masked:{}]", secrets[owner].0).as_bytes());
        if sgr_end[from..to].iter().any(|&s| s) {
            out.extend_from_slice(b"\x1b[0m");
        }
        written = to;
        i = end;
    }
    out.extend_from_slice(&input[written..]);
    out
}

/// Where two outputs first differ, with some context (the outputs can be kilobytes long).
fn first_difference(got: &[u8], want: &[u8]) -> String {
    let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    let around = |v: &[u8]| {
        let from = at.saturating_sub(60);
        String::from_utf8_lossy(&v[from..v.len().min(at + 60)]).into_owned()
    };
    format!(
        "differs from the reference at byte {at} (lengths {} and {})\n       got: {:?}\n  expected: {:?}",
        got.len(),
        want.len(),
        around(got),
        around(want)
    )
}

fn check(case: Case) {
    let secrets = make_secrets(&case.secrets, case.restricted);
    let (input, cores) = render(&case.pieces, &secrets, case.restricted);
    let sizes: Vec<usize> = case
        .sizes
        .iter()
        .take(16)
        .map(|&s| {
            if s < 0xc000 {
                1 + usize::from(s) % 64
            } else {
                1 + usize::from(s) % 8192
            }
        })
        .collect();
    let sizes = if sizes.is_empty() {
        vec![input.len().max(1)]
    } else {
        sizes
    };

    let names: Vec<String> = (0..secrets.len()).map(|i| format!("S{i}")).collect();
    let pairs: Vec<(&str, &[u8])> = names
        .iter()
        .map(String::as_str)
        .zip(secrets.iter().map(Vec::as_slice))
        .collect();
    let (redactor, too_short) = Redactor::new(pairs.iter().copied());
    assert!(too_short.is_empty());

    let expected = oracle(&pairs, &input);
    assert!(
        reference_redact(&pairs, &input) == expected,
        "the library's reference_redact disagrees with the documented semantics"
    );
    let streamed = match case.sides {
        None => stream(&redactor, &input, &sizes),
        Some(bits) => stream_split(&redactor, &input, &sizes, bits),
    };
    if streamed != expected {
        panic!(
            "streamed in {sizes:?}: {}",
            first_difference(&streamed, &expected)
        );
    }
    let whole = redactor.redact(&input);
    if whole != expected {
        panic!("one whole write: {}", first_difference(&whole, &expected));
    }

    if !case.restricted {
        return;
    }
    // The parts of the input that are not an embedded secret.
    let mut unsecret: Vec<&[u8]> = Vec::new();
    let mut at = 0;
    let mut sorted = cores.clone();
    sorted.sort();
    for (start, end) in sorted {
        if start > at {
            unsecret.push(&input[at..start]);
        }
        at = at.max(end);
    }
    unsecret.push(&input[at.min(input.len())..]);
    // Escapes aside: a value coloured but not masked would show through them.
    let visible = escapes::strip(&streamed);
    for (index, secret) in secrets.iter().enumerate() {
        for (offset, window) in secret.windows(4).enumerate() {
            if window.contains(&b'\n') {
                continue;
            }
            if let Some(pos) = visible.windows(4).position(|w| w == window)
                && !unsecret
                    .iter()
                    .any(|part| part.windows(4).any(|w| w == window))
            {
                panic!(
                    "the 4 bytes at offset {offset} of secret {index} survived at visible offset {pos} of {} output bytes",
                    visible.len()
                );
            }
        }
    }
}
