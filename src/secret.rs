//! Secret values and the documents they are selected from.
//!
//! A backend returns a [`Document`] per location; the core applies the reference's
//! [`Selector`] to it, so `#key`, `#/json/pointer` and `#*` behave the same for every backend.
//! Values live in `secrecy` boxes that zeroize on drop; parsed JSON is wrapped so its strings
//! are zeroized too. Parse errors report positions, never content.

use std::sync::OnceLock;

use secrecy::{ExposeSecret, SecretSlice};
use serde_json::Value;
use zeroize::Zeroize;

use crate::dotenv;
use crate::reference::Selector;

/// A secret value: bytes, zeroized on drop, never printed (its `Debug` is redacted).
pub type SecretValue = SecretSlice<u8>;

/// Builds a [`SecretValue`] from bytes, taking ownership so no copy is left behind.
pub fn secret_value(bytes: Vec<u8>) -> SecretValue {
    SecretSlice::from(bytes)
}

/// JSON whose strings are zeroized when it is dropped.
pub struct SecretJson(Value);

impl SecretJson {
    /// Wraps a JSON value that may hold secrets.
    pub fn new(value: Value) -> Self {
        SecretJson(value)
    }

    /// The value, for reading keys out of it.
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// Moves out the member `key` of an object (null when there is none), still wrapped, so
    /// part of an answer can be kept without copying its strings.
    pub fn take(&mut self, key: &str) -> SecretJson {
        SecretJson(self.0.get_mut(key).map(Value::take).unwrap_or(Value::Null))
    }
}

impl Drop for SecretJson {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => s.zeroize(),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(map) => map.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

impl std::fmt::Debug for SecretJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretJson([REDACTED])")
    }
}

/// How the bytes of a raw document may be structured when a reference asks for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// JSON only (AWS SecretString).
    Json,
    /// JSON when it starts with `{`, else dotenv (age files).
    JsonOrDotenv,
}

/// What a backend fetched for one location.
pub enum Document {
    /// Bytes as stored; parsed on first use when a selector needs a key.
    Raw {
        /// The bytes.
        bytes: SecretValue,
        /// How to parse them when a key is asked for.
        structure: Structure,
        /// The parse, done at most once.
        parsed: OnceLock<Result<SecretJson, String>>,
    },
    /// Already-structured data (a Vault secret's `data`).
    Json(SecretJson),
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Document([REDACTED])")
    }
}

/// The outcome of applying a selector.
pub enum Selected {
    /// One value (a key, a pointer, or the whole document).
    One(SecretValue),
    /// `#*`: each top-level key with its value, in the document's key order.
    Many(Vec<(String, SecretValue)>),
}

impl Document {
    /// A document as stored, parsed on first use.
    pub fn raw(bytes: Vec<u8>, structure: Structure) -> Self {
        Document::Raw {
            bytes: secret_value(bytes),
            structure,
            parsed: OnceLock::new(),
        }
    }

    /// A document that is already JSON.
    pub fn json(value: Value) -> Self {
        Document::Json(SecretJson::new(value))
    }

    /// Applies a selector. Errors describe what is missing or malformed; never a value.
    pub fn select(&self, selector: &Selector) -> Result<Selected, String> {
        if let (Selector::Whole, Document::Raw { bytes, .. }) = (selector, self) {
            return Ok(Selected::One(secret_value(bytes.expose_secret().to_vec())));
        }
        let root = self.structured()?;
        match selector {
            Selector::Whole => Ok(Selected::One(json_value_bytes(root)?)),
            Selector::Key(key) => {
                let object = root.as_object().ok_or_else(|| {
                    format!(
                        "the secret is {}, not an object, so it has no key `{key}`",
                        kind(root)
                    )
                })?;
                let value = object.get(key).ok_or_else(|| {
                    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
                    keys.truncate(20);
                    format!("no key `{key}` (keys present: {})", list(&keys))
                })?;
                Ok(Selected::One(json_value_bytes(value)?))
            }
            Selector::Pointer(pointer) => {
                let value = root
                    .pointer(pointer)
                    .ok_or_else(|| format!("nothing at JSON pointer `{pointer}`"))?;
                Ok(Selected::One(json_value_bytes(value)?))
            }
            Selector::All => Ok(Selected::Many(expand(root)?)),
        }
    }

    /// Applies `#*` to the object at `selector` (for [expand] entries that name a nested object).
    pub fn expand_at(&self, selector: &Selector) -> Result<Vec<(String, SecretValue)>, String> {
        let root = self.structured()?;
        let target = match selector {
            Selector::Whole | Selector::All => root,
            Selector::Key(key) => root
                .get(key)
                .ok_or_else(|| format!("no key `{key}` to expand"))?,
            Selector::Pointer(pointer) => root
                .pointer(pointer)
                .ok_or_else(|| format!("nothing at JSON pointer `{pointer}` to expand"))?,
        };
        expand(target)
    }

    fn structured(&self) -> Result<&Value, String> {
        match self {
            Document::Json(json) => Ok(json.value()),
            Document::Raw {
                bytes,
                structure,
                parsed,
            } => parsed
                .get_or_init(|| parse_structured(bytes.expose_secret(), *structure))
                .as_ref()
                .map(SecretJson::value)
                .map_err(Clone::clone),
        }
    }
}

fn parse_structured(bytes: &[u8], structure: Structure) -> Result<SecretJson, String> {
    let looks_like_json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{' || b == b'[');
    if structure == Structure::Json || looks_like_json {
        return serde_json::from_slice::<Value>(bytes)
            .map(SecretJson::new)
            .map_err(|e| {
                format!(
                    "the secret is not valid JSON ({} at line {} column {}); drop the #key to take the whole value",
                    json_error_kind(&e),
                    e.line(),
                    e.column()
                )
            });
    }
    let pairs = dotenv::parse(bytes).map_err(|e| format!("the file is not valid dotenv: {e}"))?;
    let map = pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(SecretJson::new(Value::Object(map)))
}

/// serde_json's categories, without its message (which may quote input for some errors).
fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "truncated",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    }
}

/// The bytes a JSON value stands for: a string's contents, anything else as compact JSON.
fn json_value_bytes(value: &Value) -> Result<SecretValue, String> {
    match value {
        Value::String(s) => Ok(secret_value(s.as_bytes().to_vec())),
        Value::Null => Err("the value is null".to_string()),
        other => serde_json::to_vec(other)
            .map(secret_value)
            .map_err(|_| "the value cannot be written as JSON".to_string()),
    }
}

fn expand(value: &Value) -> Result<Vec<(String, SecretValue)>, String> {
    let object = value.as_object().ok_or_else(|| {
        format!(
            "#* needs a JSON object or dotenv file, but the secret is {}",
            kind(value)
        )
    })?;
    object
        .iter()
        .map(|(k, v)| {
            json_value_bytes(v)
                .map(|bytes| (k.clone(), bytes))
                .map_err(|e| format!("key `{k}`: {e}"))
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn list(keys: &[&str]) -> String {
    if keys.is_empty() {
        "none".to_string()
    } else {
        keys.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(doc: &Document, sel: Selector) -> Result<Vec<u8>, String> {
        match doc.select(&sel)? {
            Selected::One(v) => Ok(v.expose_secret().to_vec()),
            Selected::Many(_) => panic!("many"),
        }
    }

    #[test]
    fn raw_dotenv_and_json_select_keys() {
        let env = Document::raw(b"A=1\nB=\"two words\"\n".to_vec(), Structure::JsonOrDotenv);
        assert_eq!(one(&env, Selector::Key("B".into())).unwrap(), b"two words");
        assert_eq!(
            one(&env, Selector::Whole).unwrap(),
            b"A=1\nB=\"two words\"\n"
        );
        let json = Document::raw(
            br#"{"db":{"pass":"p4ss","port":5432}}"#.to_vec(),
            Structure::Json,
        );
        assert_eq!(
            one(&json, Selector::Pointer("/db/pass".into())).unwrap(),
            b"p4ss"
        );
        assert_eq!(
            one(&json, Selector::Pointer("/db/port".into())).unwrap(),
            b"5432"
        );
        assert_eq!(
            one(&json, Selector::Key("db".into())).unwrap(),
            br#"{"pass":"p4ss","port":5432}"#
        );
    }

    #[test]
    fn errors_name_keys_but_never_values() {
        let doc = Document::json(serde_json::json!({"user": "admin", "password": "hunter22"}));
        let err = one(&doc, Selector::Key("pass".into())).unwrap_err();
        assert!(
            err.contains("no key `pass`") && err.contains("password"),
            "{err}"
        );
        assert!(!err.contains("hunter22"));
        let bad = Document::raw(br#"{"password": "hunter22""#.to_vec(), Structure::Json);
        let err = one(&bad, Selector::Key("password".into())).unwrap_err();
        assert!(
            err.contains("truncated") && !err.contains("hunter22"),
            "{err}"
        );
        let text = Document::raw(b"hunter22".to_vec(), Structure::Json);
        let err = one(&text, Selector::Key("k".into())).unwrap_err();
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn expansion_lists_every_top_level_key() {
        let doc = Document::json(serde_json::json!({"user": "admin", "port": 5432}));
        let Selected::Many(pairs) = doc.select(&Selector::All).unwrap() else {
            panic!()
        };
        let got: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret().to_vec()))
            .collect();
        assert_eq!(
            got,
            [("port", b"5432".to_vec()), ("user", b"admin".to_vec())]
        );
        let scalar = Document::json(serde_json::json!("x"));
        assert!(scalar.select(&Selector::All).is_err());
    }
}
