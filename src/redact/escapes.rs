//! Terminal escape sequences in output: loggers, `grep --color` and diff colouring put them
//! between the characters of a value. The matcher skips them (they are not bytes of any value)
//! and a masked span that holds one swallows it; see [`super::stream`].
//!
//! Recognised, after ESC (0x1b): CSI `ESC [ params intermediates final` (parameter and
//! intermediate bytes 0x20..=0x3f, final 0x40..=0x7e, at most [`CSI_MAX`] bytes); OSC
//! `ESC ] text` ended by BEL or `ESC \` (text 0x20 and above, at most [`OSC_MAX`] bytes); any
//! other ESC is skipped alone (the byte after it is output: `ESC ( B` leaves `(B`). A byte that
//! cannot continue a sequence ends it and is read as ordinary output, so a stray ESC can hide
//! at most those bounded lengths from the matcher.

/// The longest CSI (after `ESC [`) recognised.
pub const CSI_MAX: u16 = 64;
/// The longest OSC text (after `ESC ]`) recognised.
pub const OSC_MAX: u16 = 2048;

const ESC: u8 = 0x1b;

/// Where the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parser {
    /// Outside any escape sequence.
    #[default]
    Ground,
    /// After ESC.
    Esc,
    /// Inside a CSI sequence (`ESC [`), with how many bytes it has had.
    Csi(u16),
    /// Inside an OSC sequence (`ESC ]`), with how many bytes it has had.
    Osc(u16),
    /// ESC inside an OSC: `\` ends it (ST); anything else starts a new escape.
    OscEsc,
}

/// What one byte was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byte {
    /// Ordinary output: the matcher sees it.
    Visible,
    /// Part of an escape sequence.
    Escape,
    /// The final byte of an SGR sequence (`ESC [ ... m`).
    SgrEnd,
}

impl Parser {
    /// Classifies the next byte.
    pub fn step(&mut self, b: u8) -> Byte {
        match *self {
            Parser::Ground => {
                if b == ESC {
                    *self = Parser::Esc;
                    Byte::Escape
                } else {
                    Byte::Visible
                }
            }
            Parser::Esc => match b {
                b'[' => {
                    *self = Parser::Csi(0);
                    Byte::Escape
                }
                b']' => {
                    *self = Parser::Osc(0);
                    Byte::Escape
                }
                // Any other ESC is skipped alone: the byte after it is read as output, so a
                // stray ESC never hides a byte of a value.
                _ => self.restart(b),
            },
            Parser::Csi(n) => match b {
                0x20..=0x3f if n < CSI_MAX => {
                    *self = Parser::Csi(n + 1);
                    Byte::Escape
                }
                0x40..=0x7e => {
                    *self = Parser::Ground;
                    if b == b'm' {
                        Byte::SgrEnd
                    } else {
                        Byte::Escape
                    }
                }
                _ => self.restart(b),
            },
            Parser::Osc(n) => match b {
                0x07 => {
                    *self = Parser::Ground;
                    Byte::Escape
                }
                ESC => {
                    *self = Parser::OscEsc;
                    Byte::Escape
                }
                0x20.. if n < OSC_MAX => {
                    *self = Parser::Osc(n + 1);
                    Byte::Escape
                }
                _ => self.restart(b),
            },
            Parser::OscEsc => {
                if b == b'\\' {
                    *self = Parser::Ground;
                    Byte::Escape
                } else {
                    // The ESC ended the OSC and starts a sequence of its own.
                    *self = Parser::Esc;
                    self.step(b)
                }
            }
        }
    }

    /// A byte that cannot continue the sequence: it ends it and is read afresh.
    fn restart(&mut self, b: u8) -> Byte {
        *self = Parser::Ground;
        self.step(b)
    }
}

/// The length of the whole CSI sequence `bytes` starts with, and whether it is SGR (ends in
/// `m`): what [`Parser::step`] would classify as one run of escape bytes from
/// [`Parser::Ground`], in one call. `None` if `bytes` does not start with one that ends
/// within it (the parser then takes it byte by byte).
pub fn csi_len(bytes: &[u8]) -> Option<(usize, bool)> {
    let rest = bytes.strip_prefix(b"\x1b[")?;
    // At most CSI_MAX parameter and intermediate bytes, then a final byte.
    let params = rest
        .iter()
        .take(usize::from(CSI_MAX) + 1)
        .position(|b| !(0x20..=0x3f).contains(b))?;
    let last = rest[params];
    (0x40..=0x7e)
        .contains(&last)
        .then_some((params + 3, last == b'm'))
}

/// The bytes of `text` that are not part of an escape sequence.
pub fn strip(text: &[u8]) -> Vec<u8> {
    // Almost every form has no ESC at all: the parser would call every byte visible.
    if memchr::memchr(ESC, text).is_none() {
        return text.to_vec();
    }
    let mut parser = Parser::default();
    text.iter()
        .copied()
        .filter(|&b| parser.step(b) == Byte::Visible)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csi_osc_and_short_escapes_are_skipped() {
        assert_eq!(strip(b"a\x1b[01;31mb\x1b[mc\x1b[Kd"), b"abcd");
        assert_eq!(strip(b"a\x1b]0;title\x07b\x1b]8;;http://x\x1b\\c"), b"abc");
        assert_eq!(strip(b"a\x1b(Bb\x1b7c"), b"a(Bb7c");
        assert_eq!(strip(b"plain"), b"plain");
    }

    #[test]
    fn a_whole_csi_is_one_run_as_the_parser_sees_it() {
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', usize::from(CSI_MAX)));
        let mut too_long = long.clone();
        too_long.push(b'1');
        long.push(b'm');
        too_long.push(b'm');
        for input in [
            b"\x1b[mx".as_slice(),
            b"\x1b[01;31mx",
            b"\x1b[Kx",
            b"\x1b[?25h",
            b"\x1b[12\nx",
            b"\x1b[12",
            b"\x1b]0;t\x07",
            b"\x1bx",
            b"\x1b",
            &long,
            &too_long,
        ] {
            // The parser's view: a CSI from the start that it ends (back to ground) on an
            // escape byte, before any visible byte.
            let mut parser = Parser::default();
            let mut want = None;
            for (i, &b) in input.iter().enumerate() {
                let kind = parser.step(b);
                if kind == Byte::Visible {
                    break;
                }
                if parser == Parser::Ground {
                    want = Some((i + 1, kind == Byte::SgrEnd));
                    break;
                }
            }
            let want = want.filter(|_| input.starts_with(b"\x1b["));
            assert_eq!(csi_len(input), want, "{input:?}");
        }
    }

    #[test]
    fn broken_sequences_end_at_the_first_byte_that_cannot_continue_them() {
        // A newline ends a CSI and an OSC and is output.
        assert_eq!(strip(b"a\x1b[12\nb"), b"a\nb");
        assert_eq!(strip(b"a\x1b]0;t\nb"), b"a\nb");
        // ESC ESC: the second starts the sequence.
        assert_eq!(strip(b"a\x1b\x1b[1mb"), b"ab");
        // An OSC cut by ESC that is not ST: that ESC starts a new sequence.
        assert_eq!(strip(b"a\x1b]t\x1b[1mb"), b"ab");
        // Bounded: a runaway CSI gives its bytes back after CSI_MAX.
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', 100));
        assert_eq!(strip(&long).len(), 100 - usize::from(CSI_MAX));
    }
}
