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
/// The value itself comes first. A value with leading or trailing whitespace (a trailing
/// newline from a secret file) also yields every form of its trimmed self.
pub fn derived_forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = Forms::default();
    if value.len() < MIN_LEN {
        return forms.list;
    }
    forms_of(value, &mut forms);
    let trimmed = value.trim_ascii();
    if trimmed.len() != value.len() && trimmed.len() >= MIN_LEN {
        forms_of(trimmed, &mut forms);
    }
    forms.list
}

/// The forms collected so far, without duplicates.
#[derive(Default)]
struct Forms {
    list: Vec<Vec<u8>>,
    seen: super::FastSet<Vec<u8>>,
}

impl Forms {
    fn add(&mut self, form: Vec<u8>) {
        if form.len() >= MIN_LEN && !self.seen.contains(&form) {
            self.seen.insert(form.clone());
            self.list.push(form);
        }
    }

    /// A textual form, and each line of it when it spans lines (as-is and trimmed).
    fn add_text(&mut self, form: Vec<u8>) {
        if form.contains(&b'\n') {
            for line in form.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                self.add(line.to_vec());
                self.add(line.trim_ascii().to_vec());
            }
        }
        self.add(form);
    }

    /// An encoding as a tool wraps it at `width` columns: each full line, and the last two
    /// lines together (a short last line alone could match anywhere; after the line before it,
    /// it cannot).
    fn add_wrapped(&mut self, encoded: &[u8], width: usize) {
        if encoded.len() <= width {
            return;
        }
        let lines: Vec<&[u8]> = encoded.chunks(width).collect();
        for line in &lines {
            if line.len() == width {
                self.add(line.to_vec());
            }
        }
        if let [.., before, last] = lines.as_slice()
            && last.len() < width
        {
            let mut pair = before.to_vec();
            pair.push(b'\n');
            pair.extend_from_slice(last);
            self.add(pair);
        }
    }
}

/// Values longer than this (keys, certificates, whole documents) get only the forms tools apply
/// to files and documents: raw and per line, standard base64 (plain and wrapped), a PEM body,
/// shell quoting, JSON and entities. Hex, base32, percent-encoding, UTF-16LE, URL-safe base64
/// and base64 at other alignments of a 2 KB key would cost some 30 000 automaton states each
/// for leaks no tool makes of such values in practice.
pub const LONG: usize = 256;

/// The forms of one value (the caller adds those of its trimmed form too).
fn forms_of(value: &[u8], forms: &mut Forms) {
    let long = value.len() > LONG;
    // The value, and each line of a multi-line value, as-is and trimmed (indented YAML, PEM
    // bodies).
    forms.add_text(value.to_vec());

    // Base64, both alphabets, padded and not, and inside longer base64 at each alignment.
    forms.add(STANDARD.encode(value).into_bytes());
    forms.add(STANDARD_NO_PAD.encode(value).into_bytes());
    if !long {
        forms.add(URL_SAFE.encode(value).into_bytes());
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            forms.add(engine.encode(value).into_bytes());
            for offset in 0..3 {
                if let Some(core) = aligned_base64(engine, value, offset) {
                    forms.add(core);
                }
            }
        }
    }
    // Base64 as tools wrap it: coreutils `base64` at 76 columns, openssl and PEM at 64; of the
    // value and of the value and a newline (`echo "$V" | base64`).
    let with_newline = [value, b"\n"].concat();
    for data in [value, with_newline.as_slice()] {
        let encoded = STANDARD.encode(data).into_bytes();
        forms.add_wrapped(&encoded, 76);
        forms.add_wrapped(&encoded, 64);
        forms.add(encoded);
    }
    // A PEM value: its body in one piece and re-wrapped at 76 columns.
    if let Some(body) = pem_body(value) {
        forms.add_wrapped(&body, 76);
        forms.add(body);
    }

    if !long {
        encodings(value, &with_newline, forms);
    }
    text_forms(value, forms, long);
}

/// Hex, base32 and percent-encoding.
fn encodings(value: &[u8], with_newline: &[u8], forms: &mut Forms) {
    // Hex, lower and upper case, and as `xxd -p` wraps it (60 columns).
    for digits in [LOWER_HEX, UPPER_HEX] {
        let encoded = hex(value, digits);
        forms.add_wrapped(&encoded, 60);
        forms.add(encoded);
    }

    // Base32 (RFC 4648), padded and not, and as coreutils `base32` wraps it (76 columns).
    for data in [value, with_newline] {
        let padded = base32(data);
        forms.add_wrapped(&padded, 76);
        let unpadded = padded
            .iter()
            .copied()
            .take_while(|&b| b != b'=')
            .collect::<Vec<u8>>();
        forms.add(padded);
        forms.add(unpadded);
    }

    // Percent-encoding as common libraries write it: RFC 3986 unreserved kept (Go, PHP,
    // Python quote_plus) in upper- and lower-case hex and with space as +; every symbol encoded;
    // JavaScript's encodeURIComponent; Python's quote, which keeps `/`.
    const UNRESERVED: &[u8] = b"-._~";
    for (keep, hex, plus) in [
        (UNRESERVED, UPPER_HEX, false),
        (UNRESERVED, LOWER_HEX, false),
        (UNRESERVED, UPPER_HEX, true),
        (UNRESERVED, LOWER_HEX, true),
        (b"".as_slice(), UPPER_HEX, false),
        (b"-_.!~*'()".as_slice(), UPPER_HEX, false),
        (b"-._~/".as_slice(), UPPER_HEX, false),
    ] {
        forms.add(percent_encode(value, keep, hex, plus));
    }
}

/// Shell quoting, entities, JSON and (unless `long`) UTF-16LE.
fn text_forms(value: &[u8], forms: &mut Forms, long: bool) {
    // Shell quoting, as shells print values (`set -x`, `printf %q`, `${v@Q}`, `declare -p`,
    // `export -p`): the part inside the quotes.
    forms.add_text(replace(value, b"'", b"'\\''"));
    forms.add_text(replace(value, b"'", b"'\"'\"'"));
    forms.add_text(backslash_quote(value));
    forms.add_text(double_quote(value));
    forms.add(ansi_c_quote(value, false));
    forms.add(ansi_c_quote(value, true));
    forms.add_text(replace(value, b"$", b"$$"));

    // XML / HTML entities, as the common escapers combine them.
    for (quot, apos) in [
        ("&quot;", "&apos;"),
        ("&quot;", "&#x27;"),
        ("&quot;", "&#39;"),
        ("&#34;", "&#39;"),
        ("&#x22;", "&#x27;"),
        ("&quot;", "'"),
        ("\"", "'"),
    ] {
        let mut out = Vec::with_capacity(value.len());
        for &b in value {
            match b {
                b'<' => out.extend_from_slice(b"&lt;"),
                b'>' => out.extend_from_slice(b"&gt;"),
                b'&' => out.extend_from_slice(b"&amp;"),
                b'"' => out.extend_from_slice(quot.as_bytes()),
                b'\'' => out.extend_from_slice(apos.as_bytes()),
                _ => out.push(b),
            }
        }
        forms.add_text(out);
    }

    // JSON string escapes, as serde / Go / Python write them.
    if let Ok(text) = std::str::from_utf8(value) {
        let escaped = serde_json::to_string(text).expect("a str always serializes");
        let inner = &escaped[1..escaped.len() - 1];
        forms.add(inner.as_bytes().to_vec());
        forms.add(inner.replace('/', "\\/").into_bytes());
        forms.add(json_ascii(inner).into_bytes());
        forms.add(json_html_safe(inner).into_bytes());
        forms.add(json_html_safe_quotes(text).into_bytes());

        if long {
            return;
        }
        // UTF-16LE (PowerShell, Windows tools), and its base64 (`-EncodedCommand`), alone,
        // inside a longer command and as `base64` wraps it.
        let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let encoded = STANDARD.encode(&utf16).into_bytes();
        forms.add_wrapped(&encoded, 76);
        forms.add(encoded);
        for offset in 0..3 {
            if let Some(core) = aligned_base64(&STANDARD_NO_PAD, &utf16, offset) {
                forms.add(core);
            }
        }
        forms.add(utf16);
    }
}

/// `value` with every `from` replaced by `to`.
fn replace(value: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Bash's `printf %q` of a printable value: each shell-special character after a backslash
/// (`~` and `#` only at the start, as bash does).
fn backslash_quote(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    for (i, &b) in value.iter().enumerate() {
        let special =
            b" \t\n'\"\\|&;()<>!{}*[?]^$`,".contains(&b) || (i == 0 && (b == b'~' || b == b'#'));
        if special {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Inside double quotes, as `declare -p` writes them: `\"`, `\\`, `\$`, `` \` ``.
fn double_quote(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    for &b in value {
        if b"\"\\$`".contains(&b) {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Inside bash's `$'...'`: `\n`, `\t`, `\r` and the other C escapes, `\\`, `\'`, and other
/// unprintable bytes as `\NNN` octal: every non-ASCII byte in the C locale, or only those not
/// in a valid UTF-8 character when `utf8` (a UTF-8 locale).
fn ansi_c_quote(value: &[u8], utf8: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if utf8 && b >= 0x80 {
            let n = match b {
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => 0,
            };
            if n > 0 && i + n <= value.len() && std::str::from_utf8(&value[i..i + n]).is_ok() {
                out.extend_from_slice(&value[i..i + n]);
                i += n;
                continue;
            }
        }
        match b {
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x1b => out.extend_from_slice(b"\\E"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x0b => out.extend_from_slice(b"\\v"),
            b'\\' | b'\'' => out.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
        }
        i += 1;
    }
    out
}

/// The base64 body of a PEM value (the lines between BEGIN and END), whitespace removed.
fn pem_body(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    let begin = text.find("-----BEGIN ")?;
    let body_start = begin + text[begin..].find('\n')? + 1;
    let body_end = body_start + text[body_start..].find("-----END ")?;
    let body: Vec<u8> = text[body_start..body_end]
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    (!body.is_empty()).then_some(body)
}

fn hex(value: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    value
        .iter()
        .flat_map(|&b| [digits[usize::from(b >> 4)], digits[usize::from(b & 15)]])
        .collect()
}

/// RFC 4648 base32, padded.
fn base32(value: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::with_capacity(value.len().div_ceil(5) * 8);
    for group in value.chunks(5) {
        let mut block = [0u8; 5];
        block[..group.len()].copy_from_slice(group);
        let bits = block.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let chars = [0, 2, 4, 5, 7, 8][group.len()];
        for k in 0..8 {
            if k < chars {
                out.push(ALPHABET[((bits >> (35 - 5 * k)) & 31) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
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

/// JSON with `< > & ' "` all as `\u00XX` (HTML-safe encoders that escape quotes too).
fn json_html_safe_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' | '>' | '&' | '\'' | '"' => out.push_str(&format!("\\u{:04x}", c as u32)),
            _ => {
                let one = serde_json::to_string(&c.to_string()).expect("a str always serializes");
                out.push_str(&one[1..one.len() - 1]);
            }
        }
    }
    out
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
