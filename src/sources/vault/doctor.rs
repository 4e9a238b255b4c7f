//! `doctor` for Vault: log in as a run would, then compare the JWT role's bound audiences,
//! subject and claims with the job's token, naming each mismatch and its fix. Most first-day
//! failures are here: a `bound_audiences` that is not the CI's audience, a `sub` glob, the
//! fixed Bitbucket audience, or (Vault 1.16.3 and later) a token carrying `aud` for a role with
//! no `bound_audiences` at all.

use secrecy::SecretString;
use serde_json::Value;

use super::VaultSource;
use super::auth::{self, Login};
use super::client::{ApiError, Call};
use crate::ci::Claims;
use crate::sources::{Diagnosis, FetchContext};
use crate::spec::VaultAuth;

/// Diagnoses `source`'s login; the login token is revoked before it returns.
pub(super) fn diagnose(source: &VaultSource, cx: &FetchContext) -> Diagnosis {
    let settings = &source.settings;
    let mut d = Diagnosis::default();
    let mut fact = |k: &str, v: String| d.facts.push((k.to_string(), v));
    fact("address", settings.address.clone());
    if let Some(namespace) = &settings.namespace {
        fact("namespace", namespace.clone());
    }
    let (method, token) = match auth::method(settings) {
        Ok(chosen) => chosen,
        Err(e) => {
            d.error = Some(e);
            return d;
        }
    };
    let (name, default_mount) = match method {
        VaultAuth::Jwt => ("jwt", "jwt"),
        VaultAuth::Approle => ("approle", "approle"),
        VaultAuth::Token => ("token", "token"),
    };
    let mount = settings
        .auth_path
        .clone()
        .unwrap_or_else(|| default_mount.to_string());
    fact("auth", format!("{name} (auth/{mount})"));
    if method != VaultAuth::Token {
        fact(
            "role",
            settings
                .role
                .clone()
                .unwrap_or_else(|| "(the mount's default role)".into()),
        );
    }
    let login = auth::login(settings, &source.client, cx.deadline, true);
    match &login {
        Ok(login) => {
            d.facts.push(("login".into(), "ok".into()));
            d.facts.extend(
                login
                    .identity
                    .iter()
                    .filter(|(k, _)| matches!(k.as_str(), "policies" | "token ttl" | "token type"))
                    .cloned(),
            );
        }
        Err(e) => d.error = Some(e.clone()),
    }
    if let (VaultAuth::Jwt, Some(token)) = (method, &token) {
        role_findings(
            source,
            cx,
            &mount,
            login.as_ref().ok(),
            &token.claims,
            &mut d,
        );
    }
    if let Ok(login) = &login
        && login.revocable()
        && let Err(e) = auth::revoke_self(&source.client, &login.token, cx.deadline)
    {
        d.findings.push(format!(
            "the login token could not be revoked ({e}); it expires with its TTL"
        ));
    }
    d
}

/// Reads the JWT role (with the login's token, else VAULT_TOKEN) and compares it with the
/// token's claims.
fn role_findings(
    source: &VaultSource,
    cx: &FetchContext,
    mount: &str,
    login: Option<&Login>,
    claims: &Claims,
    d: &mut Diagnosis,
) {
    let Some(role) = &source.settings.role else {
        d.findings.push(format!(
            "no role is named: Vault uses auth/{mount}'s default_role; name one with [vault] role so it can be checked"
        ));
        return;
    };
    let path = format!("auth/{mount}/role/{role}");
    let supplied = source
        .settings
        .env
        .non_empty("VAULT_TOKEN")
        .map(|t| SecretString::from(t.trim().to_string()));
    // The login's own token first (a role may grant reading itself), then VAULT_TOKEN.
    let readers: Vec<&SecretString> = login
        .map(|l| &l.token)
        .into_iter()
        .chain(&supplied)
        .collect();
    if readers.is_empty() {
        d.findings.push(format!(
            "cannot read {path} to compare it with the token: the login failed and no VAULT_TOKEN is set (run doctor with VAULT_TOKEN set to a token that may read it)"
        ));
        return;
    }
    for reader in readers {
        match source.client.call(&Call::get(&path, reader), cx.deadline) {
            Ok(answer) => {
                let data = answer.value().get("data").cloned().unwrap_or(Value::Null);
                d.facts.push(("role config".into(), format!("read {path}")));
                d.findings.extend(compare(&data, claims));
                return;
            }
            Err(ApiError::Status { status: 404, .. }) => {
                d.findings.push(format!(
                    "there is no role `{role}` at auth/{mount}: create it (`stepsecret policy --for vault ... | sh` does) or fix [vault] role / auth_path"
                ));
                return;
            }
            Err(ApiError::Status { status: 403, .. }) => continue,
            Err(e) => {
                d.findings
                    .push(format!("cannot read {path}: {}", super::describe(&e)));
                return;
            }
        }
    }
    let note = format!(
        "{path} is not readable with {}, so it was not compared with the token's claims (set VAULT_TOKEN to a token that may read it)",
        if supplied.is_some() {
            "these tokens"
        } else {
            "the login token"
        }
    );
    if login.is_some() {
        d.facts.push(("role config".into(), note));
    } else {
        d.findings.push(note);
    }
}

/// Every way the role's bounds refuse (or will refuse) the token's claims, each with its fix
/// as the JSON line `stepsecret policy` writes.
pub(super) fn compare(role: &Value, claims: &Claims) -> Vec<String> {
    let mut findings = Vec::new();
    let audiences = strings(role.get("bound_audiences"));
    let aud_line = format!(
        "\"bound_audiences\": {}",
        serde_json::to_string(&claims.aud).unwrap_or_default()
    );
    if !audiences.is_empty() {
        if !claims.aud.iter().any(|a| audiences.contains(a)) {
            findings.push(format!(
                "bound_audiences is {} but the token's aud is {}: set {aud_line}",
                list(&audiences),
                list(&claims.aud)
            ));
        }
    } else if !claims.aud.is_empty() {
        findings.push(format!(
            "the role has no bound_audiences but the token carries aud {}: Vault 1.16.3 and later refuse it; set {aud_line}",
            list(&claims.aud)
        ));
    }
    let glob = role.get("bound_claims_type").and_then(Value::as_str) == Some("glob");
    if let Some(subject) = role
        .get("bound_subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        && claims.sub.as_deref() != Some(subject)
    {
        findings.push(format!(
            "bound_subject is \"{subject}\" but the token's sub is \"{}\": set \"bound_subject\": \"{}\" or remove it",
            claims.sub.as_deref().unwrap_or("-"),
            claims.sub.as_deref().unwrap_or("-")
        ));
    }
    if let Some(Value::Object(bounds)) = role.get("bound_claims") {
        for (key, wanted) in bounds {
            let wanted = match wanted {
                Value::String(s) => vec![s.clone()],
                other => strings(Some(other)),
            };
            let actual = claims.all.get(key).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let matched = actual.as_deref().is_some_and(|actual| {
                wanted.iter().any(|w| {
                    if glob {
                        glob_match(w, actual)
                    } else {
                        w == actual
                    }
                })
            });
            if matched {
                continue;
            }
            let fix = match &actual {
                Some(actual) => format!(
                    "set \"bound_claims\": {{\"{key}\": {}}}",
                    serde_json::to_string(actual).unwrap_or_default()
                ),
                None => format!("remove {key} from bound_claims, or use a token that carries it"),
            };
            findings.push(format!(
                "bound_claims.{key} is {}{} but the token's {key} is {}: {fix}",
                list(&wanted),
                if glob { " (glob)" } else { "" },
                actual.map_or("missing".to_string(), |a| format!("\"{a}\"")),
            ));
        }
    }
    findings
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// Vault's bound_claims glob: `*` matches any run of characters, nothing else is special.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Claims {
        let text = serde_json::to_vec(&value).unwrap();
        let enc =
            |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
        Claims::decode(&format!("{}.{}.s", enc(b"{}"), enc(&text))).unwrap()
    }

    #[test]
    fn each_mismatch_is_named_with_its_fix() {
        let token = claims(json!({
            "aud": "org-1",
            "sub": "org/org-1/project/p1/user/u1",
            "oidc.circleci.com/project-id": "p1"
        }));
        let good = json!({
            "bound_audiences": ["org-1"],
            "bound_claims": { "oidc.circleci.com/project-id": "p1" }
        });
        assert!(compare(&good, &token).is_empty());

        let wrong_aud = json!({ "bound_audiences": ["org-2"] });
        let found = compare(&wrong_aud, &token);
        assert_eq!(
            found,
            [
                "bound_audiences is [\"org-2\"] but the token's aud is [\"org-1\"]: set \"bound_audiences\": [\"org-1\"]"
            ]
        );
        let none = compare(&json!({}), &token);
        assert!(
            none[0].contains("no bound_audiences") && none[0].contains("1.16.3"),
            "{none:?}"
        );

        let sub_glob = json!({
            "bound_audiences": ["org-1"],
            "bound_claims_type": "glob",
            "bound_claims": { "sub": "org/org-1/project/p2/*" }
        });
        let found = compare(&sub_glob, &token);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("bound_claims.sub is [\"org/org-1/project/p2/*\"] (glob)"));
        let ok_glob = json!({
            "bound_audiences": ["org-1"],
            "bound_claims_type": "glob",
            "bound_claims": { "sub": "org/org-1/project/p1/*" }
        });
        assert!(compare(&ok_glob, &token).is_empty());
    }

    #[test]
    fn globs() {
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("*", ""));
        assert!(glob_match("refs/heads/*", "refs/heads/main"));
        assert!(!glob_match("refs/heads/*", "refs/tags/v1"));
        assert!(glob_match("a*b*c", "a-b-c"));
        assert!(!glob_match("a*b*c", "a-c"));
    }
}
