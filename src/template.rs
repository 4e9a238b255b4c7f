//! `[templates]`: config files rendered from the run's secrets (`.npmrc`, a docker
//! `config.json`, a kubeconfig) with Jinja syntax, through minijinja.
//!
//! A template is checked twice. While the plan is built ([`Template::check`]): it must parse
//! and use only the filters listed in [`FILTERS`] (no tests, functions or includes), and the
//! plan checks that the variables it reads ([`Template::variables`]) are the spec's; each
//! mistake is a spec error naming the template file and line, before anything is fetched. When it is rendered ([`Template::render`]): undefined
//! values are errors (strict mode), so a name an expansion did not produce fails the run
//! before the command starts.
//!
//! The output is exact: no auto-escaping, the template's trailing newline kept, and a value
//! printed byte for byte. A value that is not UTF-8 text cannot be printed into a template
//! (minijinja renders text): it fails with a message saying to use `b64encode` or `[files]`,
//! rather than be corrupted silently.
//!
//! Filters whose output is a new secret (base64 of `user:password`, a decoded value) report
//! it, so the redactor masks it too ([`Rendered::derived`]). Error messages never hold a
//! value: minijinja's debug mode, which dumps the render state into errors, is not compiled
//! in, and a render error shows only its kind unless the detail is one of ours.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
// The instruction stream is minijinja's "unstable machinery": it is the only way to find the
// filters a template applies, with their lines, before it runs. Cargo.lock pins the version.
use minijinja::machinery::{Instruction, Instructions, get_compiled_template};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, ErrorKind, Output, State, UndefinedBehavior, Value};
use zeroize::Zeroizing;

use crate::error::{SpecError, escape_controls};

/// The filters a template may use.
pub const FILTERS: [&str; 5] = ["b64decode", "b64encode", "tojson", "trim", "urlencode"];

/// Our own error details: the only ones a render error may show (minijinja's could quote a
/// value).
const NOT_TEXT: &str =
    "the value is not UTF-8 text; print it through b64encode, or deliver it with [files]";
const B64_INPUT: &str = "b64encode and b64decode take text";
const B64_INVALID: &str = "b64decode: the value is not valid base64";

/// A template file, read and checked.
#[derive(Debug, Clone)]
pub struct Template {
    /// The file, as shown in messages.
    path: PathBuf,
    source: String,
    /// The variables it reads from the run, each with the first line that reads it.
    variables: Vec<(String, usize)>,
}

/// A rendered template: the file's bytes, and values the filters made from secrets.
pub struct Rendered {
    /// The file's exact contents.
    pub bytes: Zeroizing<Vec<u8>>,
    /// Outputs of `b64encode` / `b64decode` whose input held a secret: secrets themselves.
    pub derived: Vec<Zeroizing<Vec<u8>>>,
}

impl Template {
    /// Reads `path` (a UTF-8 file); [`Template::check`] then checks it.
    pub fn load(path: &Path) -> Result<Template, std::io::Error> {
        let source = std::fs::read_to_string(path)?;
        Ok(Template {
            path: path.to_path_buf(),
            source,
            variables: Vec::new(),
        })
    }

    /// Compiles the template and checks what it uses; on success, records the variables it
    /// reads (see [`Template::variables`]).
    pub fn check(mut self) -> Result<Template, SpecError> {
        let env = environment(Arc::new(Taint::default()));
        let name = self.path.display().to_string();
        let compiled = env
            .template_from_named_str(&name, &self.source)
            .map_err(|e| self.error(&e, true))?;
        let code = get_compiled_template(&compiled);
        let streams = std::iter::once(&code.instructions).chain(code.blocks.values());
        let mut first_use = std::collections::BTreeMap::new();
        for instructions in streams {
            for (idx, instruction) in instructions_of(instructions) {
                let line = instructions.get_line(idx);
                let unknown = match instruction {
                    Instruction::ApplyFilter(name, ..) if !FILTERS.contains(name) => Some(format!(
                        "unknown filter `{name}` (use {})",
                        FILTERS.join(", ")
                    )),
                    Instruction::PerformTest(name, ..) => Some(format!("unknown test `{name}`")),
                    Instruction::CallFunction(name, ..) => {
                        Some(format!("unknown function `{name}`"))
                    }
                    Instruction::Lookup(name) => {
                        first_use.entry(name.to_string()).or_insert(line);
                        None
                    }
                    _ => None,
                };
                if let Some(message) = unknown {
                    return Err(self.at(line, message));
                }
            }
        }
        let mut variables: Vec<(String, usize)> = compiled
            .undeclared_variables(false)
            .into_iter()
            .map(|name| {
                let line = first_use.get(&name).copied().flatten().unwrap_or(1);
                (name, line)
            })
            .collect();
        variables.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        self.variables = variables;
        Ok(self)
    }

    /// The file, as shown in messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run's variables the template reads, with the first line reading each.
    pub fn variables(&self) -> &[(String, usize)] {
        &self.variables
    }

    /// A spec error at `line` of this template.
    pub fn at(&self, line: Option<usize>, message: String) -> SpecError {
        SpecError::Template {
            path: self.path.clone(),
            line,
            message: escape_controls(&message),
        }
    }

    /// Renders the template with `vars` (name, value). `secrets` are the values to mask: a
    /// filter output made from one of them is reported in [`Rendered::derived`].
    pub fn render(&self, vars: &[(&str, &[u8])], secrets: &[&[u8]]) -> Result<Rendered, SpecError> {
        let taint = Arc::new(Taint {
            secrets: secrets.iter().map(|s| Zeroizing::new(s.to_vec())).collect(),
            derived: Mutex::default(),
        });
        let env = environment(Arc::clone(&taint));
        let name = self.path.display().to_string();
        let compiled = env
            .template_from_named_str(&name, &self.source)
            .map_err(|e| self.error(&e, true))?;
        let context: std::collections::BTreeMap<String, Value> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), to_value(value)))
            .collect();
        let context = Value::from(context);
        let text = compiled
            .render(context)
            .map(Zeroizing::new)
            .map_err(|e| self.error(&e, false))?;
        drop(compiled);
        drop(env);
        let derived = std::mem::take(&mut *taint.derived.lock().expect("not poisoned"));
        Ok(Rendered {
            bytes: Zeroizing::new(text.as_bytes().to_vec()),
            derived,
        })
    }

    /// A minijinja error as a spec error. At plan time (`checking`) the detail is about the
    /// template's text; at render time it is shown only when it is ours.
    fn error(&self, e: &minijinja::Error, checking: bool) -> SpecError {
        let detail = e
            .detail()
            .filter(|d| checking || [NOT_TEXT, B64_INPUT, B64_INVALID].contains(d));
        let message = match (e.kind(), detail) {
            (ErrorKind::UndefinedError, _) => {
                "a variable is not defined: name only variables the spec resolves".to_string()
            }
            (kind, Some(detail)) => format!("{kind}: {detail}"),
            (kind, None) => kind.to_string(),
        };
        self.at(e.line(), message)
    }
}

/// Every instruction with its index.
fn instructions_of<'i, 's>(
    instructions: &'i Instructions<'s>,
) -> impl Iterator<Item = (u32, &'i Instruction<'s>)> {
    (0u32..).map_while(move |idx| instructions.get(idx).map(|i| (idx, i)))
}

/// A value for the template: text when it is UTF-8 (so `trim` and `urlencode` work), bytes
/// otherwise (printing it fails, `b64encode` works).
fn to_value(value: &[u8]) -> Value {
    match std::str::from_utf8(value) {
        Ok(text) => Value::from(text),
        Err(_) => Value::from_bytes(value.to_vec()),
    }
}

/// The secrets the filters compare their input with, and what they derived from them.
#[derive(Default)]
struct Taint {
    secrets: Vec<Zeroizing<Vec<u8>>>,
    derived: Mutex<Vec<Zeroizing<Vec<u8>>>>,
}

impl Taint {
    /// Records `output` when `input` holds a secret.
    fn note(&self, input: &[u8], output: &[u8]) {
        let holds_secret = self
            .secrets
            .iter()
            .any(|s| !s.is_empty() && memchr::memmem::find(input, s).is_some());
        if holds_secret {
            let mut derived = self.derived.lock().expect("not poisoned");
            derived.push(Zeroizing::new(output.to_vec()));
        }
    }
}

/// The environment every template is compiled and rendered in: exact output, strict
/// undefined values, and only the filters in [`FILTERS`].
fn environment(taint: Arc<Taint>) -> Environment<'static> {
    let mut env = Environment::empty();
    let syntax = SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("the default delimiters are valid");
    env.set_syntax(syntax);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(print_value);
    env.add_filter("trim", minijinja::filters::trim);
    env.add_filter("tojson", minijinja::filters::tojson);
    env.add_filter("urlencode", minijinja::filters::urlencode);
    let encode = Arc::clone(&taint);
    env.add_filter("b64encode", move |value: &Value| {
        let input = value
            .as_bytes()
            .ok_or_else(|| minijinja::Error::new(ErrorKind::InvalidOperation, B64_INPUT))?;
        let output = STANDARD.encode(input);
        encode.note(input, output.as_bytes());
        Ok::<_, minijinja::Error>(Value::from(output))
    });
    env.add_filter("b64decode", move |value: &Value| {
        let input = value
            .as_bytes()
            .ok_or_else(|| minijinja::Error::new(ErrorKind::InvalidOperation, B64_INPUT))?;
        let output = Zeroizing::new(
            b64decode(input)
                .ok_or_else(|| minijinja::Error::new(ErrorKind::InvalidOperation, B64_INVALID))?,
        );
        taint.note(input, &output);
        Ok::<_, minijinja::Error>(to_value(&output))
    });
    env
}

/// Decodes standard or URL-safe base64, padded or not, ignoring line breaks (PEM, `base64`'s
/// 76 columns).
fn b64decode(input: &[u8]) -> Option<Vec<u8>> {
    let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
        input
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(&*compact).ok())
}

/// Prints a value exactly: text as it is, bytes only when they are UTF-8.
fn print_value(out: &mut Output, state: &mut State, value: &Value) -> Result<(), minijinja::Error> {
    if value.kind() == ValueKind::Bytes {
        let bytes = value.as_bytes().unwrap_or_default();
        let text = std::str::from_utf8(bytes)
            .map_err(|_| minijinja::Error::new(ErrorKind::InvalidOperation, NOT_TEXT))?;
        return out
            .write_str(text)
            .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "cannot write"));
    }
    minijinja::escape_formatter(out, state, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(source: &str) -> Result<Template, SpecError> {
        Template {
            path: PathBuf::from("ci/t.tpl"),
            source: source.to_string(),
            variables: Vec::new(),
        }
        .check()
    }

    fn render(source: &str, vars: &[(&str, &[u8])]) -> Result<Rendered, SpecError> {
        let secrets: Vec<&[u8]> = vars.iter().map(|(_, v)| *v).collect();
        template(source)?.render(vars, &secrets)
    }

    #[test]
    fn output_is_exact() {
        let out = render("a={{ A }}\n\n", &[("A", b" x\n")]).unwrap();
        assert_eq!(&out.bytes[..], b"a= x\n\n\n");
        let out = render("<{{ A }}>", &[("A", b"&'\"<")]).unwrap();
        assert_eq!(&out.bytes[..], b"<&'\"<>");
    }

    #[test]
    fn variables_are_listed_with_their_first_line() {
        let t =
            template("x\n{{ B }}\n{% for i in [1] %}{{ A|trim }}{{ i }}{% endfor %}\n").unwrap();
        assert_eq!(t.variables(), [("B".to_string(), 2), ("A".to_string(), 3)]);
    }

    #[test]
    fn unknown_filters_tests_and_functions_name_their_line() {
        for (source, line, word) in [
            ("a\n{{ A|upper }}", 2, "unknown filter `upper`"),
            ("{% if A is defined %}x{% endif %}", 1, "unknown test"),
            ("\n\n{{ range(3) }}", 3, "unknown function `range`"),
            ("a\n{{ A ", 2, "syntax error"),
        ] {
            let e = template(source).unwrap_err();
            let SpecError::Template {
                line: l, message, ..
            } = &e
            else {
                panic!("{e:?}")
            };
            assert_eq!(*l, Some(line), "{source}: {e}");
            assert!(message.contains(word), "{source}: {e}");
        }
    }

    #[test]
    fn base64_of_a_secret_is_a_derived_secret() {
        let out = render(
            r#"{{ (U ~ ":" ~ P) | b64encode }} {{ "public" | b64encode }}"#,
            &[("U", b"user"), ("P", b"pa ss")],
        )
        .unwrap();
        assert_eq!(&out.bytes[..], b"dXNlcjpwYSBzcw== cHVibGlj");
        assert_eq!(out.derived.len(), 1);
        assert_eq!(&out.derived[0][..], b"dXNlcjpwYSBzcw==");
    }

    #[test]
    fn binary_values_print_only_through_base64() {
        let out = render("{{ B|b64encode }}", &[("B", b"\xff\x00\x01")]).unwrap();
        assert_eq!(&out.bytes[..], b"/wAB");
        let e = render("{{ B }}", &[("B", b"\xff\x00\x01")]).err().unwrap();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        let out = render("{{ E|b64decode }}", &[("E", b"aGk=\n")]).unwrap();
        assert_eq!(&out.bytes[..], b"hi");
    }
}
