//! A strict dotenv parser for age-encrypted secret files.
//!
//! Hand-written on purpose: the common crates expand `$VAR` inside values, which would silently
//! change secrets that contain a `$` and read the process environment while parsing. Here a value
//! is exactly what is written:
//!
//! ```text
//! # comment
//! export TOKEN=abc123          # unquoted: trimmed, ` #` starts a comment
//! PASSWORD='p@ss $not-a-var'   # single quotes: literal, may span lines
//! KEY="line1\nline2"           # double quotes: \n \r \t \\ \" \$ escapes, may span lines
//! ```
//!
//! A key defined twice is an error, not a silent override. Errors give line numbers only.

use std::fmt;

/// Why a dotenv file did not parse: a line number and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    /// The 1-based line of the problem.
    pub line: usize,
    /// What was expected there (never the line's content, which may hold a value).
    pub message: &'static str,
}

impl fmt::Display for DotenvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses dotenv text into (key, value) pairs in file order.
pub fn parse(bytes: &[u8]) -> Result<Vec<(String, String)>, DotenvError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DotenvError {
        line: bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1,
        message: "not valid UTF-8",
    })?;
    Parser {
        rest: text,
        line: 1,
    }
    .run()
}

struct Parser<'a> {
    rest: &'a str,
    line: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, message: &'static str) -> Result<T, DotenvError> {
        Err(DotenvError {
            line: self.line,
            message,
        })
    }

    fn skip_blanks(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    fn bump(&mut self, n: usize) {
        self.line += self.rest[..n].matches('\n').count();
        self.rest = &self.rest[n..];
    }

    fn run(mut self) -> Result<Vec<(String, String)>, DotenvError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        loop {
            self.skip_blanks();
            match self.rest.chars().next() {
                None => return Ok(pairs),
                Some('\n' | '\r') => self.bump(1),
                Some('#') => self.skip_comment(),
                Some(_) => {
                    let line = self.line;
                    let (key, value) = self.assignment()?;
                    if pairs.iter().any(|(k, _)| *k == key) {
                        return Err(DotenvError {
                            line,
                            message: "this key is already defined earlier in the file",
                        });
                    }
                    pairs.push((key, value));
                }
            }
        }
    }

    fn skip_comment(&mut self) {
        let end = self.rest.find('\n').unwrap_or(self.rest.len());
        self.bump(end);
    }

    fn key(&mut self) -> Result<&'a str, DotenvError> {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
            .unwrap_or(self.rest.len());
        let key = &self.rest[..end];
        if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
            return self.err("expected KEY=VALUE (keys are letters, digits, _ . and -)");
        }
        self.rest = &self.rest[end..];
        Ok(key)
    }

    fn assignment(&mut self) -> Result<(String, String), DotenvError> {
        let mut key = self.key()?;
        if key == "export" && self.rest.starts_with([' ', '\t']) {
            self.skip_blanks();
            key = self.key()?;
        }
        self.skip_blanks();
        if !self.rest.starts_with('=') {
            return self.err("expected `=` after the key");
        }
        self.bump(1);
        self.skip_blanks();
        let value = match self.rest.chars().next() {
            Some('"') => self.double_quoted()?,
            Some('\'') => self.single_quoted()?,
            _ => self.unquoted(),
        };
        Ok((key.to_string(), value))
    }

    fn unquoted(&mut self) -> String {
        let end = self.rest.find('\n').unwrap_or(self.rest.len());
        let line = &self.rest[..end];
        let mut value_end = line.len();
        for (i, _) in line.match_indices('#') {
            if i > 0 && line[..i].ends_with([' ', '\t']) {
                value_end = i;
                break;
            }
        }
        let value = line[..value_end]
            .trim_end_matches([' ', '\t', '\r'])
            .to_string();
        self.bump(end);
        value
    }

    fn single_quoted(&mut self) -> Result<String, DotenvError> {
        let start_line = self.line;
        let Some(close) = self.rest[1..].find('\'') else {
            self.line = start_line;
            return self.err("unterminated single quote");
        };
        let value = self.rest[1..1 + close].to_string();
        self.bump(close + 2);
        self.after_quote()?;
        Ok(value)
    }

    fn double_quoted(&mut self) -> Result<String, DotenvError> {
        let start_line = self.line;
        let mut value = String::with_capacity(self.rest.len().min(1 << 16));
        let mut chars = self.rest.char_indices().skip(1);
        let close = loop {
            match chars.next() {
                None => {
                    self.line = start_line;
                    return self.err("unterminated double quote");
                }
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 'r')) => value.push('\r'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, c @ ('\\' | '"' | '$'))) => value.push(c),
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => {
                        self.line = start_line;
                        return self.err("unterminated double quote");
                    }
                },
                Some((_, c)) => value.push(c),
            }
        };
        self.bump(close + 1);
        self.after_quote()?;
        Ok(value)
    }

    /// After a closing quote only blanks and a comment may follow on the line.
    fn after_quote(&mut self) -> Result<(), DotenvError> {
        self.skip_blanks();
        match self.rest.chars().next() {
            None | Some('\n' | '\r') => Ok(()),
            Some('#') => {
                self.skip_comment();
                Ok(())
            }
            Some(_) => self.err("unexpected text after the closing quote"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn the_documented_forms() {
        let got = pairs(
            "# comment\nexport TOKEN=abc123   # trailing\r\nPASSWORD='p@ss $HOME'\nKEY=\"line1\\nline2 \\\"q\\\" \\$X\"\nURL=http://x/#frag\nEMPTY=\n",
        );
        let want = [
            ("TOKEN", "abc123"),
            ("PASSWORD", "p@ss $HOME"),
            ("KEY", "line1\nline2 \"q\" $X"),
            ("URL", "http://x/#frag"),
            ("EMPTY", ""),
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn quoted_values_may_span_lines() {
        let got = pairs("PEM=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\"\nNEXT=1\n");
        assert_eq!(got[0].1, "-----BEGIN KEY-----\nabc\n-----END KEY-----");
        assert_eq!(got[1], ("NEXT".to_string(), "1".to_string()));
    }

    #[test]
    fn errors_carry_lines() {
        let e = parse(b"A=1\nB\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse(b"A=1\nB=\"open\nC=2\n").unwrap_err();
        assert_eq!((e.line, e.message), (2, "unterminated double quote"));
        let e = parse(b"A=1\n\nA=2\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse(b"A='x' y\n").unwrap_err();
        assert_eq!(e.message, "unexpected text after the closing quote");
        assert_eq!(parse(b"A=\xff\n").unwrap_err().message, "not valid UTF-8");
    }
}
