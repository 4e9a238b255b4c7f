//! The forms in which a secret value can show up in output.
//!
//! A tool rarely prints a secret as-is: it logs an `Authorization: Basic` header (base64 of
//! `user:password`), a URL with the password percent-encoded, a JSON document, or one line of a
//! PEM key. Each of those is a byte string to mask, derived here.
//!
//! Base64 inside a longer base64 string is the subtle one. When the value starts at byte offset
//! `o` (mod 3) of the encoded data, the characters that encode only bytes of the value are fixed
//! whatever surrounds it; the first and last one or two characters also carry neighbouring bits.
//! So for each alignment we encode the value after `o` placeholder bytes and keep only the
//! characters fully determined by the value.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Values (and derived forms) shorter than this are not masked: they would match ordinary
/// output everywhere.
pub const MIN_LEN: usize = 4;

/// Every form of `value` worth masking, each at least [`MIN_LEN`] bytes, without duplicates.
/// The value itself comes first.
pub fn derived_forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms: Vec<Vec<u8>> = Vec::new();
    if value.len() < MIN_LEN {
        return forms;
    }
    let mut add = |form: Vec<u8>| {
        if form.len() >= MIN_LEN && !forms.contains(&form) {
            forms.push(form);
        }
    };
    add(value.to_vec());

    // Each line of a multi-line value, as-is and trimmed (indented YAML, PEM bodies).
    if value.contains(&b'\n') {
        for line in value.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            add(line.to_vec());
            add(line.trim_ascii().to_vec());
        }
    }

    // Base64, both alphabets, padded and not, and inside longer base64 at each alignment.
    for engine in [&STANDARD, &URL_SAFE] {
        add(engine.encode(value).into_bytes());
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        add(engine.encode(value).into_bytes());
        for offset in 0..3 {
            if let Some(core) = aligned_base64(engine, value, offset) {
                add(core);
            }
        }
    }

    // Percent-encoding as common libraries write it: RFC 3986 unreserved kept (Go, PHP,
    // Python quote_plus) in upper- and lower-case hex and with space as +; every symbol encoded;
    // JavaScript's encodeURIComponent; Python's quote, which keeps `/`.
    const UNRESERVED: &[u8] = b"-._~";
    for (keep, hex, plus) in [
        (UNRESERVED, UPPER_HEX, false),
        (UNRESERVED, LOWER_HEX, false),
        (UNRESERVED, UPPER_HEX, true),
        (b"".as_slice(), UPPER_HEX, false),
        (b"-_.!~*'()".as_slice(), UPPER_HEX, false),
        (b"-._~/".as_slice(), UPPER_HEX, false),
    ] {
        add(percent_encode(value, keep, hex, plus));
    }

    // JSON string escapes, as serde / Go / Python write them.
    if let Ok(text) = std::str::from_utf8(value) {
        let escaped = serde_json::to_string(text).expect("a str always serializes");
        let inner = &escaped[1..escaped.len() - 1];
        add(inner.as_bytes().to_vec());
        add(inner.replace('/', "\\/").into_bytes());
        add(json_ascii(inner).into_bytes());
        add(json_html_safe(inner).into_bytes());
    }
    forms
}

/// The base64 characters fixed by `value` when it starts at `offset` (0, 1 or 2) bytes into a
/// 3-byte group of a longer encoded string.
fn aligned_base64(
    engine: &base64::engine::GeneralPurpose,
    value: &[u8],
    offset: usize,
) -> Option<Vec<u8>> {
    let mut shifted = vec![0u8; offset];
    shifted.extend_from_slice(value);
    let encoded = engine.encode(&shifted).into_bytes();
    // Characters before the value's first fully-owned 6 bits: offset 1 shares two, offset 2
    // shares three (the last of which holds two bits of the placeholder).
    let lead = [0, 2, 3][offset];
    // A trailing partial group's last character mixes in bits of whatever follows.
    let trail = usize::from(!shifted.len().is_multiple_of(3));
    (encoded.len() > lead + trail).then(|| encoded[lead..encoded.len() - trail].to_vec())
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

/// Percent-encodes every byte except ASCII letters, digits and `keep`.
fn percent_encode(value: &[u8], keep: &[u8], hex: &[u8; 16], space_as_plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b);
        } else if space_as_plus && b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[b'%', hex[usize::from(b >> 4)], hex[usize::from(b & 15)]]);
        }
    }
    out
}

/// JSON with every non-ASCII character as \uXXXX (Python's default `ensure_ascii`).
fn json_ascii(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    for c in escaped.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// JSON with <, > and & escaped, as Go's encoding/json writes it.
fn json_html_safe(escaped: &str) -> String {
    escaped
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(forms: &[Vec<u8>], s: &str) -> bool {
        forms.iter().any(|f| f == s.as_bytes())
    }

    #[test]
    fn the_common_encodings_are_there() {
        let forms = derived_forms(b"p@ss w/rd>");
        assert!(has(&forms, "p@ss w/rd>"));
        assert!(has(&forms, "cEBzcyB3L3JkPg=="));
        assert!(has(&forms, "cEBzcyB3L3JkPg"));
        assert!(has(&forms, "p%40ss%20w%2Frd%3E"));
        assert!(has(&forms, "p%40ss+w%2Frd%3E"));
        assert!(has(&forms, "p%40ss%20w%2frd%3e"));
        assert!(has(&forms, "p%40ss%20w/rd%3E"));
        assert!(has(&forms, "p@ss w\\/rd>"));
        assert!(has(&forms, "p@ss w/rd\\u003e"));
        let symbols = derived_forms(b"a_b-c!d(e)");
        assert!(
            has(&symbols, "a%5Fb%2Dc%21d%28e%29"),
            "every symbol encoded"
        );
        assert!(has(&symbols, "a_b-c%21d%28e%29"), "RFC 3986");
        assert!(
            has(&symbols, "a_b-c!d(e)"),
            "encodeURIComponent keeps these"
        );
    }

    #[test]
    fn json_escapes_control_and_non_ascii_characters() {
        let forms = derived_forms("tab\there \"q\" é".as_bytes());
        assert!(has(&forms, "tab\\there \\\"q\\\" é"));
        assert!(has(&forms, "tab\\there \\\"q\\\" \\u00e9"));
    }

    #[test]
    fn lines_of_a_multi_line_value() {
        let forms = derived_forms(b"-----BEGIN-----\r\n  MIIBOgIBAAJB\nab\n");
        assert!(has(&forms, "-----BEGIN-----"));
        assert!(has(&forms, "  MIIBOgIBAAJB"));
        assert!(has(&forms, "MIIBOgIBAAJB"));
        assert!(!has(&forms, "ab"), "lines under 4 bytes are not masked");
    }

    #[test]
    fn basic_auth_header_contains_an_aligned_form_of_the_password() {
        let password = b"correct-horse-battery";
        let forms = derived_forms(password);
        for user in ["a", "ab", "abc", "admin"] {
            let mut credentials = user.as_bytes().to_vec();
            credentials.push(b':');
            credentials.extend_from_slice(password);
            let header = STANDARD.encode(&credentials);
            let covered = forms.iter().any(|f| {
                header
                    .as_bytes()
                    .windows(f.len())
                    .any(|w| w == f.as_slice())
            });
            assert!(covered, "user {user}: {header}");
        }
    }

    #[test]
    fn every_alignment_is_found_inside_longer_base64() {
        let value = b"s3cr3t-value";
        let forms = derived_forms(value);
        for before in 0..6 {
            for after in 0..4 {
                let mut data = vec![b'x'; before];
                data.extend_from_slice(value);
                data.extend(std::iter::repeat_n(b'y', after));
                for engine in [&STANDARD, &URL_SAFE_NO_PAD] {
                    let text = engine.encode(&data);
                    assert!(
                        forms
                            .iter()
                            .any(|f| text.as_bytes().windows(f.len()).any(|w| w == f.as_slice())),
                        "{before}/{after}: {text}"
                    );
                }
            }
        }
    }

    #[test]
    fn short_values_yield_nothing_and_nothing_is_short() {
        assert!(derived_forms(b"abc").is_empty());
        assert!(derived_forms(b"").is_empty());
        assert!(derived_forms(b"abcd").iter().all(|f| f.len() >= MIN_LEN));
    }
}
