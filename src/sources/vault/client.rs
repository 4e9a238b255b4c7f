//! The Vault HTTP API client: one ureq agent (kept-alive connections, rustls on ring), the
//! token and namespace headers, and retries with exponential backoff and full jitter under the
//! run's deadline.
//!
//! Retried: 429 (rate limited), 412 (the token has not reached this standby yet), 500, 502,
//! 503, 504, and failures to connect or to read a whole answer. Everything else is final at
//! once, because waiting will not turn a 403 into a 200. Answers are read into zeroized
//! buffers and parsed into [`SecretJson`], since most of them carry secrets.

use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
use zeroize::Zeroizing;

use super::settings::Tls;
use crate::error::SourceError;
use crate::secret::SecretJson;

/// Statuses worth another try.
const RETRY_STATUSES: [u16; 6] = [412, 429, 500, 502, 503, 504];
/// The first backoff ceiling; doubled per attempt up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The longest one attempt may take: a request hanging this long is on a dead connection or a
/// stuck server, and a new attempt has a better chance than more waiting.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time kept for a last attempt before the deadline.
const LAST_TRY_MARGIN: Duration = Duration::from_millis(20);
/// Answers larger than this are refused rather than buffered (a secret is far smaller).
const MAX_BODY: u64 = 32 * 1024 * 1024;

/// HTTP methods the source uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Put,
}

/// A failed call, classified.
#[derive(Debug, Clone)]
pub(super) enum ApiError {
    /// The server answered with a final error status. `errors` is Vault's own explanation.
    Status { status: u16, errors: String },
    /// The server answered 2xx with a body that is not the JSON expected (cut short, HTML).
    Malformed(String),
    /// The TLS handshake failed on the server's certificate (never retried).
    Tls(String),
    /// Retries ran out before the deadline: the last thing that went wrong, and how often.
    GaveUp {
        attempts: u32,
        last: String,
        /// The last failure was a connection error (the server is down or unreachable), not a
        /// retryable status.
        unreachable: bool,
    },
}

/// A request to the Vault API.
pub(super) struct Call<'a> {
    pub method: Method,
    /// The path after `/v1/`, e.g. `secret/data/prod/db`.
    pub path: &'a str,
    pub query: &'a [(&'a str, String)],
    pub token: Option<&'a SecretString>,
    pub body: Option<&'a Value>,
}

impl<'a> Call<'a> {
    pub(super) fn get(path: &'a str, token: &'a SecretString) -> Self {
        Call {
            method: Method::Get,
            path,
            query: &[],
            token: Some(token),
            body: None,
        }
    }
}

/// The client for one Vault server. Clones share the connection pool.
#[derive(Clone)]
pub(super) struct Client {
    agent: ureq::Agent,
    /// `https://host:port/v1/`.
    base: String,
    namespace: Option<String>,
    /// The address as configured, for messages.
    pub address: String,
}

impl Client {
    /// Builds the agent. Reads the CA and client certificate files; touches no network.
    pub(super) fn new(
        address: &str,
        namespace: Option<String>,
        tls: &Tls,
        concurrency: usize,
    ) -> Result<Client, SourceError> {
        let mut tls_config = TlsConfig::builder();
        if address.starts_with("https:") {
            tls_config = tls_config.root_certs(root_certs(tls)?);
            if let Some(cert) = client_cert(tls)? {
                tls_config = tls_config.client_cert(Some(cert));
            }
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls_config.build())
            .max_idle_connections_per_host(concurrency.max(1))
            .max_idle_connections(concurrency.max(1) * 2)
            .max_redirects(0)
            .user_agent(concat!("stepsecret/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client {
            agent,
            base: format!("{}/v1/", address.trim_end_matches('/')),
            namespace,
            address: address.to_string(),
        })
    }

    /// Sends `call`, retrying what is worth retrying until `deadline`. Returns the parsed JSON
    /// of a 2xx answer (`Value::Null` for 204).
    pub(super) fn call(&self, call: &Call<'_>, deadline: Instant) -> Result<SecretJson, ApiError> {
        let mut attempts = 0u32;
        let mut jitter = Jitter::new();
        loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let (last, unreachable, retry_after) = if remaining.is_zero() {
                return Err(ApiError::GaveUp {
                    attempts: attempts - 1,
                    last: "the deadline passed".into(),
                    unreachable: false,
                });
            } else {
                match self.once(call, remaining.min(ATTEMPT_TIMEOUT)) {
                    Outcome::Done(result) => return result,
                    Outcome::Retry {
                        why,
                        unreachable,
                        retry_after,
                    } => (why, unreachable, retry_after),
                }
            };
            let ceiling = BASE_BACKOFF
                .saturating_mul(1u32 << attempts.min(16))
                .min(MAX_BACKOFF);
            let wait = jitter.below(ceiling).max(retry_after.unwrap_or_default());
            // The last try is made just before the deadline rather than given up early: the
            // deadline is the user's budget, and the server may be back by then.
            let left = deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(LAST_TRY_MARGIN);
            if left.is_zero() {
                return Err(ApiError::GaveUp {
                    attempts,
                    last,
                    unreachable,
                });
            }
            std::thread::sleep(wait.min(left));
        }
    }

    fn once(&self, call: &Call<'_>, remaining: Duration) -> Outcome {
        let url = format!("{}{}", self.base, call.path);
        let sent = match call.method {
            Method::Get => self.decorate(self.agent.get(&url), call, remaining).call(),
            Method::Post | Method::Put => {
                let request = match call.method {
                    Method::Post => self.agent.post(&url),
                    _ => self.agent.put(&url),
                };
                let request = self.decorate(request, call, remaining);
                match call.body {
                    Some(value) => {
                        let body = Zeroizing::new(serde_json::to_vec(value).unwrap_or_default());
                        request
                            .header("Content-Type", "application/json")
                            .send(&body[..])
                    }
                    None => request.send_empty(),
                }
            }
        };
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return transport_error(&e),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(10)));
        let mut bytes = Zeroizing::new(Vec::new());
        let read = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .reader()
            .read_to_end(&mut bytes);
        if let Err(e) = read {
            // A connection dropped mid-answer: the request may be repeated.
            return Outcome::Retry {
                why: format!("the answer was cut short ({})", short(&e.to_string())),
                unreachable: true,
                retry_after: None,
            };
        }
        if RETRY_STATUSES.contains(&status) {
            return Outcome::Retry {
                why: format!(
                    "HTTP {status}{}",
                    vault_errors(&bytes).map_or(String::new(), |e| format!(": {e}"))
                ),
                unreachable: false,
                retry_after,
            };
        }
        if !(200..300).contains(&status) {
            return Outcome::Done(Err(ApiError::Status {
                status,
                errors: vault_errors(&bytes).unwrap_or_else(|| format!("HTTP {status}")),
            }));
        }
        if status == 204 || bytes.is_empty() {
            return Outcome::Done(Ok(SecretJson::new(Value::Null)));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => Outcome::Done(Ok(SecretJson::new(value))),
            // Position only: the text may hold a secret.
            Err(e) => Outcome::Done(Err(ApiError::Malformed(format!(
                "the answer is not valid JSON ({} at line {} column {})",
                match e.classify() {
                    serde_json::error::Category::Eof => "cut short",
                    _ => "syntax error",
                },
                e.line(),
                e.column()
            )))),
        }
    }
}

impl Client {
    /// Query, token, namespace, and a timeout that ends at the deadline.
    fn decorate<B>(
        &self,
        mut request: ureq::RequestBuilder<B>,
        call: &Call<'_>,
        remaining: Duration,
    ) -> ureq::RequestBuilder<B> {
        for (key, value) in call.query {
            request = request.query(*key, value);
        }
        if let Some(token) = call.token {
            request = request.header("X-Vault-Token", token.expose_secret());
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        request
            .header("X-Vault-Request", "true")
            .config()
            .timeout_global(Some(remaining))
            .build()
    }
}

enum Outcome {
    Done(Result<SecretJson, ApiError>),
    Retry {
        why: String,
        unreachable: bool,
        retry_after: Option<Duration>,
    },
}

fn transport_error(e: &ureq::Error) -> Outcome {
    use ureq::Error as E;
    // A certificate that is not trusted does not fix itself, so it is never retried. ureq's
    // error does not chain its cause: look inside the variants that carry one.
    let certificate = match e {
        E::Rustls(tls) => crate::tls::is_certificate_error(tls),
        E::Io(io) => crate::tls::is_certificate_error(io),
        _ => false,
    };
    if certificate {
        return Outcome::Done(Err(tls_error(&e.to_string())));
    }
    let why = match e {
        E::Timeout(_) => "timed out".to_string(),
        E::HostNotFound => "host not found".to_string(),
        E::ConnectionFailed => "connection failed".to_string(),
        E::Io(io) => short(&crate::spec::plain_io_error(io)),
        E::Tls(_) | E::Pem(_) | E::Rustls(_) => {
            return Outcome::Done(Err(tls_error(&e.to_string())));
        }
        other => short(&other.to_string()),
    };
    Outcome::Retry {
        why,
        unreachable: true,
        retry_after: None,
    }
}

fn tls_error(text: &str) -> ApiError {
    ApiError::Tls(format!(
        "TLS failed ({}); set VAULT_CACERT (or [vault] ca_cert) to the CA that signed the server's certificate",
        short(text.trim_start_matches("io: "))
    ))
}

/// Vault's `errors` array as one line, without the multierror decoration.
fn vault_errors(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let errors = value.get("errors")?.as_array()?;
    let text = errors
        .iter()
        .filter_map(Value::as_str)
        .map(|e| {
            e.replace("error occurred:", "")
                .replace("errors occurred:", "")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ' || c == '*')
                .to_string()
        })
        .filter(|e| !e.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Some(if text.is_empty() {
        "no explanation given".into()
    } else {
        short(&text)
    })
}

/// One line, at most 300 characters.
fn short(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line,
    }
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<Zeroizing<Vec<u8>>, SourceError> {
    std::fs::read(path).map(Zeroizing::new).map_err(|e| {
        SourceError::config(format!(
            "cannot read the {what} {}: {}",
            path.display(),
            crate::spec::plain_io_error(&e)
        ))
    })
}

fn certificates(
    pem: &[u8],
    path: &std::path::Path,
) -> Result<Vec<Certificate<'static>>, SourceError> {
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(SourceError::config(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// VAULT_CACERT when given; else the system's trust store (SSL_CERT_FILE, the Debian / Alpine /
/// Red Hat bundle), so that a company CA is trusted as it is by everything else; else the
/// Mozilla roots compiled in (a FROM-scratch container has no store).
fn root_certs(tls: &Tls) -> Result<RootCerts, SourceError> {
    if let Some(path) = &tls.ca_cert {
        let pem = read_pem(path, "CA certificate")?;
        return Ok(RootCerts::Specific(Arc::new(certificates(&pem, path)?)));
    }
    if let Some(path) = tls.system.bundle()
        && let Ok(pem) = std::fs::read(&path)
        && let Ok(certs) = certificates(&pem, &path)
    {
        return Ok(RootCerts::Specific(Arc::new(certs)));
    }
    Ok(RootCerts::WebPki)
}

fn client_cert(tls: &Tls) -> Result<Option<ClientCert>, SourceError> {
    let (cert_path, key_path) = match (&tls.client_cert, &tls.client_key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => {
            return Err(SourceError::config(
                "mutual TLS needs both VAULT_CLIENT_CERT and VAULT_CLIENT_KEY (or [vault] client_cert and client_key)",
            ));
        }
    };
    let chain = certificates(&read_pem(cert_path, "client certificate")?, cert_path)?;
    let key_pem = read_pem(key_path, "client key")?;
    let key = PrivateKey::from_pem(&key_pem).map_err(|_| {
        SourceError::config(format!("{} holds no PEM private key", key_path.display()))
    })?;
    Ok(Some(ClientCert::new_with_certs(&chain, key)))
}

/// Random waits for full jitter, without a random-number crate: std's per-process random
/// hash keys, advanced by a counter.
struct Jitter {
    state: std::collections::hash_map::RandomState,
    n: u64,
}

impl Jitter {
    fn new() -> Self {
        Jitter {
            state: std::collections::hash_map::RandomState::new(),
            n: 0,
        }
    }

    /// A uniformly random duration in `[0, ceiling)`.
    fn below(&mut self, ceiling: Duration) -> Duration {
        self.n += 1;
        let mut h = self.state.build_hasher();
        h.write_u64(self.n);
        let nanos = ceiling.as_nanos().max(1) as u64;
        Duration::from_nanos(h.finish() % nanos)
    }
}

/// Runs `f` on every item with at most `workers` threads, results in input order.
pub(super) fn parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if items.len() <= 1 {
        return items.iter().map(&f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every item was processed")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_errors_become_one_line() {
        let body = br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#;
        assert_eq!(vault_errors(body).unwrap(), "permission denied");
        assert_eq!(
            vault_errors(br#"{"errors":[]}"#).unwrap(),
            "no explanation given"
        );
        assert!(vault_errors(b"<html>").is_none());
    }

    #[test]
    fn jitter_stays_below_its_ceiling_and_varies() {
        let mut j = Jitter::new();
        let waits: Vec<Duration> = (0..50)
            .map(|_| j.below(Duration::from_millis(100)))
            .collect();
        assert!(waits.iter().all(|w| *w < Duration::from_millis(100)));
        assert!(waits.iter().any(|w| *w != waits[0]));
    }

    #[test]
    fn parallel_keeps_order() {
        let items: Vec<u32> = (0..100).collect();
        let out = parallel(&items, 7, |i| i * 2);
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }
}
