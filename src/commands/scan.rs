//! `stepsecret scan`: finds files (artifacts, the workspace, test reports) that contain a value
//! a run used, by the HMACs its audit record holds, and names the variable, never the value.
//!
//! For every distinct value length in the log, every window of that length in every file is
//! hashed with the key (STEPSECRET_AUDIT_KEY) and compared: about a million HMACs per megabyte
//! and length, so a few seconds for a typical artifacts folder. Files larger than `--max-size`
//! are skipped and listed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::warn;
use crate::audit::key_from_env;
use crate::cli::ScanArgs;
use crate::env::Env;
use crate::error::{Error, SpecError, UsageError};

/// One value to look for.
struct Wanted {
    names: BTreeSet<String>,
}

pub(super) fn scan(args: ScanArgs, env: &Env) -> Result<u8, Error> {
    let key = key_from_env(env)?.ok_or(UsageError::AuditKeyMissing)?;
    let text = std::fs::read_to_string(&args.audit_log).map_err(|e| {
        Error::io(
            format!("cannot read the audit log {}", args.audit_log.display()),
            e,
        )
    })?;
    // (length, hmac) -> the variables that had that value.
    let mut wanted: BTreeMap<(usize, Vec<u8>), Wanted> = BTreeMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record: Value = serde_json::from_str(line).map_err(|e| SpecError::AuditRecord {
            path: args.audit_log.clone(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        for var in record["variables"].as_array().into_iter().flatten() {
            let (Some(name), Some(hmac), Some(length)) = (
                var["name"].as_str(),
                var["hmac_sha256"].as_str(),
                var["length"].as_u64(),
            ) else {
                continue;
            };
            let Some(digest) = unhex(hmac) else { continue };
            wanted
                .entry((length as usize, digest))
                .or_insert_with(|| Wanted {
                    names: BTreeSet::new(),
                })
                .names
                .insert(name.to_string());
        }
    }
    if wanted.is_empty() {
        return Err(UsageError::NoValueHmacs {
            path: args.audit_log.clone(),
        }
        .into());
    }
    let lengths: BTreeSet<usize> = wanted.keys().map(|(l, _)| *l).collect();
    let keyed = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");

    let mut files = Vec::new();
    for path in &args.paths {
        collect(path, &mut files);
    }
    let mut found = 0usize;
    let mut skipped = Vec::new();
    for file in &files {
        let size = std::fs::metadata(file).map_or(0, |m| m.len());
        if size > args.max_size {
            skipped.push(file);
            continue;
        }
        let Ok(bytes) = std::fs::read(file) else {
            warn(format!("cannot read {}", file.display()));
            continue;
        };
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for &length in &lengths {
            if length == 0 || length > bytes.len() {
                continue;
            }
            for window in bytes.windows(length) {
                let mut mac = keyed.clone();
                mac.update(window);
                let digest = mac.finalize().into_bytes().to_vec();
                if let Some(w) = wanted.get(&(length, digest)) {
                    names.extend(w.names.iter().map(String::as_str));
                }
            }
        }
        if !names.is_empty() {
            found += 1;
            println!(
                "{}: contains the value of {}",
                file.display(),
                names.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
    }
    for file in &skipped {
        warn(format!(
            "skipped {} (larger than --max-size)",
            file.display()
        ));
    }
    eprintln!(
        "stepsecret: scanned {} file(s) for {} value(s); {found} contain one",
        files.len() - skipped.len(),
        wanted.len()
    );
    Ok(if found > 0 { 1 } else { 0 })
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        warn(format!("no such file or folder: {}", path.display()));
        return;
    };
    if meta.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            warn(format!("cannot list {}", path.display()));
            return;
        };
        let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        children.sort();
        for child in children {
            collect(&child, out);
        }
    } else if meta.is_file() {
        out.push(path.to_path_buf());
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
