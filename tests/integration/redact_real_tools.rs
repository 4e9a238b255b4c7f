//! Each class of derived form against the REAL tool's output, not hand-built bytes: the shells'
//! `set -x`, `printf %q`, `${v@Q}`, `declare -p` and `export -p` (bash, dash, busybox sh),
//! coreutils `base64` and `base32`, `basenc`, `openssl base64`, `xxd -p`, `iconv -t UTF-16LE`
//! and `grep --color=always`. Each tool runs on secrets of mixed shapes; its output goes through
//! the redactor (all the secrets loaded at once), and no 4-byte window of a secret, of its
//! trimmed form or of the tool's encoded form may survive (escape sequences aside).
//!
//! `scripts/deps/core.sh` installs the tools. Failure messages give the case, the secret's
//! name and offsets, never a value.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use stepsecret::redact::Redactor;
use stepsecret::redact::escapes::strip;

/// Secrets of mixed shapes: (name, value).
fn secrets() -> &'static [(String, Vec<u8>)] {
    // The PEM key is over `forms::LONG` bytes: it gets only the document forms (raw, lines,
    // standard base64, shell quoting, JSON), so the hex, base32 and UTF-16 tests leave it out.
    static SECRETS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    SECRETS.get_or_init(|| {
        // 150 printable bytes, deterministic: long enough to wrap at 60, 64 and 76 columns.
        let mut x: u32 = 0x2545_f491;
        let long: Vec<u8> = (0..150)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.~+/="
                    [(x % 64) as usize]
            })
            .collect();
        let pem = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
            ])
            .stderr(Stdio::null())
            .output()
            .expect("openssl is installed (scripts/deps/core.sh)");
        assert!(pem.status.success(), "openssl genpkey failed");
        vec![
            (
                "QUOTED".into(),
                b"it's a \"pa$$w0rd\" with \\back`tick` & <b>".to_vec(),
            ),
            (
                "UNICODE".into(),
                "tab\there \u{fc}n\u{ef} caf\u{e9}\nline two"
                    .as_bytes()
                    .to_vec(),
            ),
            (
                "TOKEN".into(),
                b"ghp_9fK2xQ7LmZ4pR8sT1vW3yB6nD0cE5hJ2aG".to_vec(),
            ),
            ("LONG".into(), long),
            ("PADDED".into(), b"  padded-secret-value \n".to_vec()),
            ("PEM".into(), pem.stdout),
        ]
    })
}

/// The secrets that get every form (up to `forms::LONG` bytes).
fn short_secrets() -> impl Iterator<Item = &'static (String, Vec<u8>)> {
    secrets()
        .iter()
        .filter(|(_, v)| v.len() <= stepsecret::redact::forms::LONG)
}

fn redactor() -> &'static Redactor {
    static REDACTOR: OnceLock<Redactor> = OnceLock::new();
    REDACTOR.get_or_init(|| {
        let (r, short) = Redactor::new(secrets().iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        assert!(short.is_empty());
        r
    })
}

/// Runs `program args` with `V` (and only PATH and the locale) in its environment and
/// `stdin`; returns stdout and stderr together (stderr first: `set -x` writes there).
fn tool(program: &str, args: &[&str], value: &[u8], locale: &str, stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LC_ALL", locale)
        .env("V", OsStr::from_bytes(value))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is installed (scripts/deps/core.sh): {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: exit {:?}",
        out.status.code()
    );
    let mut all = out.stderr;
    all.extend_from_slice(&out.stdout);
    all
}

/// A shell script run with `V` set; `$V` is the secret.
fn sh(shell: &str, script: &str, value: &[u8], locale: &str) -> Vec<u8> {
    let (program, mut args) = match shell {
        "busybox" => ("busybox", vec!["sh"]),
        other => (other, vec![]),
    };
    args.extend(["-c", script]);
    tool(program, &args, value, locale, b"")
}

/// Masks `output` and checks that no 4-byte window of any secret (as-is and trimmed), nor of
/// `encoded` (the tool's rendering of the secret), survives.
fn check(case: &str, output: &[u8], encoded: &[u8]) {
    let masked = redactor().redact(output);
    let visible = strip(&masked);
    let markers: Vec<Vec<u8>> = secrets()
        .iter()
        .map(|(n, _)| format!("[masked:{n}]").into_bytes())
        .collect();
    let survives = |window: &[u8]| -> Option<usize> {
        if window.contains(&b'\n') || markers.iter().any(|m| m.windows(4).any(|w| w == window)) {
            return None;
        }
        visible.windows(4).position(|w| w == window)
    };
    for (name, value) in secrets() {
        for part in [value.as_slice(), value.trim_ascii()] {
            for (at, window) in part.windows(4).enumerate() {
                if let Some(pos) = survives(window) {
                    panic!(
                        "{case}: the 4 bytes at offset {at} of {name} survived at offset {pos} of the masked output ({} bytes)",
                        visible.len()
                    );
                }
            }
        }
    }
    for (at, window) in encoded.windows(4).enumerate() {
        if let Some(pos) = survives(window) {
            panic!(
                "{case}: the 4 bytes at offset {at} of the tool's encoded form ({} bytes) survived at offset {pos} of the masked output",
                encoded.len()
            );
        }
    }
}

/// The shell's quoted word in a line like `+ : 'it'\''s'` or `declare -- V="..."`: everything
/// after the prefix, without the final newline.
fn word<'a>(output: &'a [u8], prefix: &str) -> &'a [u8] {
    let start = match prefix.len() {
        0 => 0,
        n => output
            .windows(n)
            .position(|w| w == prefix.as_bytes())
            .map_or(0, |p| p + n),
    };
    let rest = &output[start..];
    rest.strip_suffix(b"\n").unwrap_or(rest)
}

#[test]
fn bash_xtrace_printf_q_at_q_declare_and_export() {
    for locale in ["C", "C.UTF-8"] {
        for (name, value) in secrets() {
            let case = |what: &str| format!("bash {what}, {name}, LC_ALL={locale}");
            let out = sh("bash", "set -x; : \"$V\"", value, locale);
            check(&case("-x"), &out, word(&out, "+ : "));
            let out = sh("bash", "printf '%q\\n' \"$V\"", value, locale);
            check(&case("printf %q"), &out, word(&out, ""));
            let out = sh("bash", "printf '%s\\n' \"${V@Q}\"", value, locale);
            check(&case("${V@Q}"), &out, word(&out, ""));
            let out = sh("bash", "declare -p V", value, locale);
            check(&case("declare -p"), &out, word(&out, "declare -x V="));
            let out = sh("bash", "export -p", value, locale);
            check(&case("export -p"), &out, word(&out, "declare -x V="));
        }
    }
}

#[test]
fn dash_and_busybox_xtrace_and_export() {
    for shell in ["dash", "busybox"] {
        for (name, value) in secrets() {
            let out = sh(shell, "set -x; : \"$V\"", value, "C");
            check(&format!("{shell} -x, {name}"), &out, word(&out, "+ : "));
            let out = sh(shell, "export -p", value, "C");
            check(
                &format!("{shell} export -p, {name}"),
                &out,
                word(&out, "export V="),
            );
        }
    }
}

#[test]
fn coreutils_base64_wrapped_and_not() {
    for (name, value) in secrets() {
        for script in [
            "printf %s \"$V\" | base64",
            "printf '%s\\n' \"$V\" | base64",
            "printf %s \"$V\" | base64 -w0",
            "printf %s \"$V\" | base64 -w 64",
        ] {
            let out = sh("sh", script, value, "C");
            check(&format!("{script}, {name}"), &out, &out);
        }
    }
}

#[test]
fn a_pem_body_re_wrapped_by_base64() {
    let (_, pem) = secrets().iter().find(|(n, _)| n == "PEM").unwrap();
    // The key's DER, as base64 writes it: the PEM body at 76 columns.
    let out = tool(
        "sh",
        &["-c", "grep -v -- ----- | base64 -d | base64"],
        b"",
        "C",
        pem,
    );
    check("grep -v -- ----- | base64 -d | base64", &out, &out);
}

#[test]
fn openssl_base64() {
    for (name, value) in secrets() {
        for script in [
            "printf %s \"$V\" | openssl base64",
            "printf '%s\\n' \"$V\" | openssl base64",
            "printf %s \"$V\" | openssl base64 -A",
        ] {
            let out = sh("sh", script, value, "C");
            check(&format!("{script}, {name}"), &out, &out);
        }
    }
}

#[test]
fn xxd_plain_hex() {
    for (name, value) in short_secrets() {
        for script in [
            "printf %s \"$V\" | xxd -p",
            "printf '%s\\n' \"$V\" | xxd -p",
            "printf %s \"$V\" | xxd -p -u",
            "printf %s \"$V\" | xxd -p -c 4096",
        ] {
            let out = sh("sh", script, value, "C");
            check(&format!("{script}, {name}"), &out, &out);
        }
    }
}

#[test]
fn iconv_utf16le_and_its_base64() {
    for (name, value) in short_secrets() {
        for script in [
            "printf %s \"$V\" | iconv -f UTF-8 -t UTF-16LE",
            "printf %s \"$V\" | iconv -f UTF-8 -t UTF-16LE | base64",
            "printf %s \"$V\" | iconv -f UTF-8 -t UTF-16LE | base64 -w0",
        ] {
            let out = sh("sh", script, value, "C");
            check(&format!("{script}, {name}"), &out, &out);
        }
    }
}

#[test]
fn base32_and_basenc() {
    for (name, value) in short_secrets() {
        for script in [
            "printf %s \"$V\" | base32",
            "printf '%s\\n' \"$V\" | base32",
            "printf %s \"$V\" | basenc --base32",
            "printf %s \"$V\" | base32 -w0 | tr -d =",
        ] {
            let out = sh("sh", script, value, "C");
            check(&format!("{script}, {name}"), &out, &out);
        }
    }
}

#[test]
fn grep_color_inside_a_value() {
    for (name, value) in secrets() {
        // Colour a piece from the middle of the first line, as a search for it would.
        let line = value.split(|&b| b == b'\n').next().unwrap();
        if line.len() < 12 {
            continue;
        }
        let needle = &line[4..10];
        let pattern: String = needle
            .iter()
            .map(|&b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("[{}]", b as char)
                }
            })
            .collect();
        let out = tool(
            "grep",
            &["--color=always", "-e", &pattern],
            b"",
            "C",
            &[line, b"\n"].concat(),
        );
        assert!(out.contains(&0x1b), "grep coloured {name}");
        check(&format!("grep --color=always, {name}"), &out, line);
        let masked = redactor().redact(&out);
        assert!(
            masked.windows(4).any(|w| w == b"\x1b[0m"),
            "{name}: a reset follows the marker of a coloured span"
        );
    }
}
