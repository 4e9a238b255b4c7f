//! A logging, fault-injecting HTTP proxy between stepsecret and moto, on loopback.
//!
//! Hand-written (std only, about 300 lines) rather than a mocking crate on purpose: the point
//! is to keep the real SDK talking to a real server over real HTTP, and only watch and
//! occasionally replace what goes through. It exists because moto does not check the things
//! the issue asks us to prove:
//!
//! - moto does not enforce BatchGetSecretValue's 20-id limit, so the proxy counts calls per
//!   operation (`X-Amz-Target` for Secrets Manager, the form's `Action` for STS) and keeps
//!   every request body, so tests can check the number of calls and ids per call;
//! - moto accepts any web identity token, so the proxy keeps what was sent to STS (the token,
//!   RoleSessionName, DurationSeconds) and what signed the later calls (`Authorization`);
//! - moto never denies or throttles, so a test can make the proxy answer instead of moto:
//!   AccessDeniedException, ThrottlingException bursts, 5xx, any STS error. Every injected
//!   answer carries the header `x-stepsecret-test-proxy: injected`, its message says
//!   "(injected by the test proxy)", and the call is logged with `injected: true`, so no one
//!   mistakes it for moto's behaviour;
//! - EC2 metadata: tests point AWS_EC2_METADATA_SERVICE_ENDPOINT here, so a probe would be
//!   logged (operation `IMDS`) instead of leaving the machine, and tests assert there is none.
//!
//! HTTP/1.1 only, keep-alive towards the client, one fresh upstream connection per request.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

/// A call that went through the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    /// `BatchGetSecretValue`, `AssumeRoleWithWebIdentity`, `IMDS`, ...
    pub operation: String,
    pub body: Vec<u8>,
    pub authorization: Option<String>,
    /// Whether the proxy answered instead of moto.
    pub injected: bool,
    pub at: Instant,
}

impl Call {
    /// The body as JSON (Secrets Manager).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as a decoded form (STS).
    pub fn form(&self) -> BTreeMap<String, String> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (percent_decode(k), percent_decode(v)))
            .collect()
    }

    /// The access key id that signed the request.
    pub fn access_key(&self) -> Option<String> {
        let auth = self.authorization.as_deref()?;
        let start = auth.find("Credential=")? + "Credential=".len();
        Some(auth[start..].split('/').next()?.to_string())
    }
}

/// What to answer instead of moto.
#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP 400 ThrottlingException.
    Throttle,
    /// AccessDeniedException (Secrets Manager) or AccessDenied (STS).
    AccessDenied,
    /// HTTP 500 InternalServiceError.
    ServerError,
    /// Any status and error code.
    Error(u16, &'static str),
}

/// When to inject a fault.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The operation it applies to (`BatchGetSecretValue`, `AssumeRoleWithWebIdentity`...).
    pub operation: &'static str,
    pub fault: Fault,
    /// How many calls to answer; `None` for every call from now on.
    pub times: Option<usize>,
    /// Only for this secret id. In a BatchGetSecretValue answer, that secret is moved from
    /// `SecretValues` to `Errors` (as AWS does for a secret the caller may not read) and the
    /// rest of moto's answer is kept.
    pub secret: Option<String>,
}

impl Rule {
    pub fn new(operation: &'static str, fault: Fault) -> Rule {
        Rule {
            operation,
            fault,
            times: None,
            secret: None,
        }
    }

    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    pub fn secret(mut self, id: &str) -> Rule {
        self.secret = Some(id.to_string());
        self
    }
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    rules: Vec<Rule>,
}

/// The proxy; stops accepting when dropped.
pub struct AwsProxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl AwsProxy {
    /// Starts a proxy in front of `upstream` (moto's port).
    pub fn start(upstream: u16) -> AwsProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream: SocketAddr = ([127, 0, 0, 1], upstream).into();
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&st);
                std::thread::spawn(move || serve(stream, upstream, &state));
            }
        });
        AwsProxy { port, state, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn inject(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Stops injecting (e.g. the end of a throttling storm).
    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, operation: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.operation == operation)
            .collect()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.calls_to(operation).len()
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn serve(client: TcpStream, upstream: SocketAddr, state: &Mutex<State>) {
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut client = client;
    while let Some(request) = read_message(&mut reader, false) {
        let operation = operation(&request);
        let json_protocol = request.header("x-amz-target").is_some();
        let (fault, deny) = decide(state, &operation, &request.body);
        let response = match &fault {
            Some(fault) => injected(fault, json_protocol),
            None => match forward(upstream, &request) {
                Some(mut response) => {
                    if let Some(secret) = &deny {
                        deny_in_batch(&mut response, secret);
                    }
                    response
                }
                None => return,
            },
        };
        state.lock().unwrap().calls.push(Call {
            operation,
            body: request.body.clone(),
            authorization: request.header("authorization").map(str::to_string),
            injected: fault.is_some() || deny.is_some(),
            at: Instant::now(),
        });
        if write_message(&mut client, &response, true).is_err() {
            return;
        }
    }
}

/// Which fault to answer with, or which secret to deny inside a batch answer.
fn decide(state: &Mutex<State>, operation: &str, body: &[u8]) -> (Option<Fault>, Option<String>) {
    let mut state = state.lock().unwrap();
    let body = String::from_utf8_lossy(body);
    let Some(index) = state.rules.iter().position(|r| {
        r.operation == operation
            && r.secret
                .as_ref()
                .is_none_or(|s| body.contains(&format!("\"{s}\"")))
    }) else {
        return (None, None);
    };
    let rule = state.rules[index].clone();
    if let Some(n) = &mut state.rules[index].times {
        *n -= 1;
        if *n == 0 {
            state.rules.remove(index);
        }
    }
    match (&rule.secret, operation) {
        (Some(secret), "BatchGetSecretValue") => (None, Some(secret.clone())),
        _ => (Some(rule.fault), None),
    }
}

fn operation(request: &Message) -> String {
    if let Some(target) = request.header("x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let path = request.start.split(' ').nth(1).unwrap_or("");
    if path.starts_with("/latest/") {
        return "IMDS".to_string();
    }
    String::from_utf8_lossy(&request.body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map_or_else(|| "OTHER".to_string(), str::to_string)
}

fn injected(fault: &Fault, json_protocol: bool) -> Message {
    let (status, code) = match fault {
        Fault::Throttle => (400, "ThrottlingException"),
        Fault::AccessDenied if json_protocol => (400, "AccessDeniedException"),
        Fault::AccessDenied => (403, "AccessDenied"),
        Fault::ServerError if json_protocol => (500, "InternalServiceError"),
        Fault::ServerError => (500, "InternalFailure"),
        Fault::Error(status, code) => (*status, *code),
    };
    let message = format!("{code} (injected by the test proxy)");
    let (content_type, body) = if json_protocol {
        (
            "application/x-amz-json-1.1",
            json!({"__type": code, "message": message}).to_string(),
        )
    } else {
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
            ),
        )
    };
    Message {
        start: format!("HTTP/1.1 {status} Injected"),
        headers: vec![
            ("Content-Type".into(), content_type.into()),
            ("x-amzn-RequestId".into(), "injected".into()),
            ("x-stepsecret-test-proxy".into(), "injected".into()),
        ],
        body: body.into_bytes(),
    }
}

/// Moves `secret` from a BatchGetSecretValue answer's values to its errors.
fn deny_in_batch(response: &mut Message, secret: &str) {
    let Ok(mut answer) = serde_json::from_slice::<Value>(&response.body) else {
        return;
    };
    if let Some(values) = answer["SecretValues"].as_array_mut() {
        values.retain(|v| v["Name"] != secret && v["ARN"] != secret);
    }
    let error = json!({
        "SecretId": secret,
        "ErrorCode": "AccessDeniedException",
        "Message": "User is not authorized to perform secretsmanager:GetSecretValue (injected by the test proxy)"
    });
    match answer["Errors"].as_array_mut() {
        Some(errors) => errors.push(error),
        None => answer["Errors"] = json!([error]),
    }
    response.body = answer.to_string().into_bytes();
    response
        .headers
        .push(("x-stepsecret-test-proxy".into(), "injected".into()));
}

fn forward(upstream: SocketAddr, request: &Message) -> Option<Message> {
    let mut server = TcpStream::connect(upstream).ok()?;
    write_message(&mut server, &request.clone_for_upstream(), false).ok()?;
    let mut reader = BufReader::new(server);
    read_message(&mut reader, true)
}

impl Message {
    fn clone_for_upstream(&self) -> Message {
        Message {
            start: self.start.clone(),
            headers: self
                .headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("connection"))
                .cloned()
                .collect(),
            body: self.body.clone(),
        }
    }
}

/// Reads one HTTP/1.1 message. A response without a length is read to the end of the stream.
fn read_message(reader: &mut impl BufRead, response: bool) -> Option<Message> {
    let mut start = String::new();
    if reader.read_line(&mut start).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut message = Message {
        start: start.trim_end().to_string(),
        headers,
        body: Vec::new(),
    };
    if message
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            message.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = message.header("content-length") {
        let mut body = vec![0; length.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
        message.body = body;
    } else if response {
        reader.read_to_end(&mut message.body).ok()?;
    }
    message.headers.retain(|(k, _)| {
        !k.eq_ignore_ascii_case("transfer-encoding") && !k.eq_ignore_ascii_case("content-length")
    });
    Some(message)
}

fn write_message(
    stream: &mut TcpStream,
    message: &Message,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut head = format!("{}\r\n", message.start);
    for (k, v) in &message.headers {
        if k.eq_ignore_ascii_case("connection") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", message.body.len()));
    if keep_alive {
        head.push_str("Connection: keep-alive\r\n");
    } else {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&message.body)?;
    stream.flush()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
