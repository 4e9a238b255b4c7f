//! A loopback HTTP proxy between stepsecret and a real server (OpenBao or moto), with two rule
//! sets: [`faults`] (429/503 storms, dropped connections, answers cut off, latency) and [`aws`]
//! (counts AWS calls per operation, keeps what was sent, answers AWS errors in moto's place).
//!
//! It is a hand-written fake on purpose (std only, no mocking crate) and only for what a real
//! server cannot be made to do on demand: fail, throttle, deny, or show what it was asked.
//! Everything else is forwarded to the real server unchanged, so the real clients talk to a
//! real server over real HTTP. Every answer the proxy makes up carries the header
//! `x-stepsecret-test-proxy: injected` and says "injected by the test proxy", so no one
//! mistakes it for the server's behaviour.
//!
//! One accept loop and one forwarding core: HTTP/1.1, Content-Length or chunked bodies, each
//! forwarded request on a fresh upstream connection. A rule set decides, per request, whether
//! to forward it, delay it, cut its answer, answer in the server's place or drop the
//! connection, and may edit and record what went through.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The header every made-up answer carries.
const INJECTED_HEADER: (&str, &str) = ("x-stepsecret-test-proxy", "injected");

/// An HTTP/1.1 request or response. The body is complete; `headers` hold neither
/// Content-Length nor Transfer-Encoding (they are written from the body).
pub(crate) struct Message {
    /// The request or status line.
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A request's path.
    pub(crate) fn path(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }

    /// An answer made up by the proxy, marked as such.
    pub(crate) fn injected(status: u16, content_type: &str, body: String) -> Message {
        Message {
            start: format!("HTTP/1.1 {status} Injected"),
            headers: vec![
                ("Content-Type".into(), content_type.into()),
                (INJECTED_HEADER.0.into(), INJECTED_HEADER.1.into()),
            ],
            body: body.into_bytes(),
        }
    }

    /// Marks a forwarded answer the proxy changed.
    pub(crate) fn mark_injected(&mut self) {
        self.headers
            .push((INJECTED_HEADER.0.into(), INJECTED_HEADER.1.into()));
    }

    fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let mut head = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case("connection") {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        let connection = if keep_alive { "keep-alive" } else { "close" };
        head.push_str(&format!("Connection: {connection}\r\n\r\n"));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// What to do with one request.
pub(crate) enum Action {
    /// Forward it and pass the server's answer back.
    Forward,
    /// Wait, then forward (a slow server).
    Delay(Duration),
    /// Forward, then send only the first half of the server's answer and close.
    Truncate,
    /// Answer this instead of the server.
    Answer(Message),
    /// Close the connection without answering.
    Drop,
}

/// A rule set: what the proxy does with each request, and what it keeps of it.
pub(crate) trait Rules: Default + Send + 'static {
    /// Whether a client's connection stays open after an answer.
    const KEEP_ALIVE: bool;
    /// What [`Rules::decide`] passes on to [`Rules::answered`] about one request.
    type Ticket;
    /// What to do with `request`.
    fn decide(&mut self, request: &Message) -> (Action, Self::Ticket);
    /// Sees, and may change, the answer about to go back (forwarded or made up).
    fn answered(&mut self, request: &Message, ticket: Self::Ticket, answer: &mut Message);
}

/// The proxy, on a free loopback port; stops accepting when dropped.
pub(crate) struct Proxy<R: Rules> {
    pub addr: SocketAddr,
    rules: Arc<Mutex<R>>,
    stop: Arc<AtomicBool>,
}

impl<R: Rules> Proxy<R> {
    /// Starts a proxy to the server listening on loopback port `upstream`.
    pub(crate) fn start(upstream: u16) -> Proxy<R> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let upstream: SocketAddr = ([127, 0, 0, 1], upstream).into();
        let rules = Arc::new(Mutex::new(R::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rs, sp) = (Arc::clone(&rules), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let rules = Arc::clone(&rs);
                std::thread::spawn(move || serve(stream, upstream, &rules));
            }
        });
        Proxy { addr, rules, stop }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn rules(&self) -> MutexGuard<'_, R> {
        self.rules.lock().unwrap()
    }
}

impl<R: Rules> Drop for Proxy<R> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve<R: Rules>(client: TcpStream, upstream: SocketAddr, rules: &Mutex<R>) {
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut client = client;
    while let Some(request) = read_message(&mut reader, false) {
        let (action, ticket) = rules.lock().unwrap().decide(&request);
        let truncate = matches!(action, Action::Truncate);
        let mut answer = match action {
            Action::Drop => return,
            Action::Answer(answer) => answer,
            Action::Forward | Action::Truncate | Action::Delay(_) => {
                if let Action::Delay(pause) = action {
                    std::thread::sleep(pause);
                }
                match forward(upstream, &request) {
                    Some(answer) => answer,
                    None => return,
                }
            }
        };
        rules
            .lock()
            .unwrap()
            .answered(&request, ticket, &mut answer);
        let bytes = answer.to_bytes(R::KEEP_ALIVE && !truncate);
        if truncate {
            let _ = client.write_all(&bytes[..bytes.len() / 2]);
            return;
        }
        if client
            .write_all(&bytes)
            .and_then(|()| client.flush())
            .is_err()
            || !R::KEEP_ALIVE
        {
            return;
        }
    }
}

/// Sends `request` to the server on a fresh connection and reads its whole answer.
fn forward(upstream: SocketAddr, request: &Message) -> Option<Message> {
    let mut server = TcpStream::connect(upstream).ok()?;
    server.write_all(&request.to_bytes(false)).ok()?;
    read_message(&mut BufReader::new(server), true)
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

/// Faults for any HTTP server (OpenBao, moto): statuses, drops, cut answers, latency, chosen by
/// path; every request is counted. Each answer closes the client's connection, as the servers
/// behind it do when asked to.
#[cfg(feature = "vault")]
pub(crate) mod faults {
    use std::time::Duration;

    use super::{Action, Message, Proxy, Rules};

    /// The proxy with the fault rules.
    pub(crate) type FaultProxy = Proxy<Faults>;

    /// What to do instead of forwarding.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Fault {
        /// Answer with this status and a Vault-style error body.
        Status(u16),
        /// Close the connection without answering.
        Drop,
        /// Forward, then send only the first half of the server's answer and close.
        Truncate,
        /// Wait this many milliseconds, then forward (a slow server).
        Delay(u64),
    }

    /// A fault for requests whose path contains `path` (empty: every request).
    #[derive(Debug, Clone)]
    pub(crate) struct Rule {
        pub path: &'static str,
        pub fault: Fault,
        /// How many requests to hit; `None`: all of them from now on.
        pub times: Option<usize>,
        /// Hit only every n-th matching request (1: each one).
        pub every: usize,
    }

    impl Rule {
        /// A rule for every matching request from now on.
        pub(crate) fn always(path: &'static str, fault: Fault) -> Rule {
            Rule {
                path,
                fault,
                times: None,
                every: 1,
            }
        }

        /// A rule for the next `n` matching requests.
        pub(crate) fn times(path: &'static str, fault: Fault, n: usize) -> Rule {
            Rule {
                times: Some(n),
                ..Rule::always(path, fault)
            }
        }

        /// A rule for every `n`-th matching request.
        pub(crate) fn every(path: &'static str, fault: Fault, n: usize) -> Rule {
            Rule {
                every: n.max(1),
                ..Rule::always(path, fault)
            }
        }
    }

    #[derive(Default)]
    pub(crate) struct Faults {
        rules: Vec<Rule>,
        /// Matching requests seen per rule, for `every`.
        matched: Vec<usize>,
        /// (path, fault) of every request seen.
        seen: Vec<(String, Option<Fault>)>,
    }

    impl Rules for Faults {
        const KEEP_ALIVE: bool = false;
        type Ticket = ();

        fn decide(&mut self, request: &Message) -> (Action, ()) {
            let path = request.path();
            let mut fault = None;
            for (rule, seen) in self.rules.iter_mut().zip(self.matched.iter_mut()) {
                if !path.contains(rule.path) || rule.times == Some(0) {
                    continue;
                }
                *seen += 1;
                if *seen % rule.every != 0 {
                    continue;
                }
                if let Some(n) = &mut rule.times {
                    *n -= 1;
                }
                fault = Some(rule.fault);
                break;
            }
            self.seen.push((path.to_string(), fault));
            let action = match fault {
                None => Action::Forward,
                Some(Fault::Status(status)) => Action::Answer(Message::injected(
                    status,
                    "application/json",
                    r#"{"errors":["injected by the test proxy"]}"#.into(),
                )),
                Some(Fault::Drop) => Action::Drop,
                Some(Fault::Truncate) => Action::Truncate,
                Some(Fault::Delay(ms)) => Action::Delay(Duration::from_millis(ms)),
            };
            (action, ())
        }

        fn answered(&mut self, _: &Message, (): (), _: &mut Message) {}
    }

    impl FaultProxy {
        pub(crate) fn add(&self, rule: Rule) {
            let mut faults = self.rules();
            faults.rules.push(rule);
            faults.matched.push(0);
        }

        /// Requests that met a fault so far.
        pub(crate) fn injected(&self) -> usize {
            self.rules()
                .seen
                .iter()
                .filter(|(_, f)| f.is_some())
                .count()
        }

        /// Requests whose path contains `path` that met `fault`.
        pub(crate) fn count_fault(&self, path: &str, fault: Fault) -> usize {
            self.rules()
                .seen
                .iter()
                .filter(|(p, f)| p.contains(path) && *f == Some(fault))
                .count()
        }

        /// Requests seen whose path contains `path`: (forwarded, injected).
        pub(crate) fn count(&self, path: &str) -> (usize, usize) {
            let faults = self.rules();
            let hits = faults.seen.iter().filter(|(p, _)| p.contains(path));
            let injected = hits.clone().filter(|(_, f)| f.is_some()).count();
            (hits.count() - injected, injected)
        }
    }
}

/// AWS-aware rules, in front of moto. moto does not check what the tests must prove, so:
///
/// - moto does not enforce BatchGetSecretValue's 20-id limit: calls are counted per operation
///   (`X-Amz-Target` for Secrets Manager, the form's `Action` for STS) and every request body
///   is kept, so tests can check the number of calls and ids per call;
/// - moto accepts any web identity token: what was sent to STS (the token, RoleSessionName,
///   DurationSeconds) and what signed the later calls (`Authorization`) are kept;
/// - moto never denies or throttles: a test can have the proxy answer instead of moto
///   (AccessDeniedException, ThrottlingException bursts, 5xx, any STS error) or deny one secret
///   inside a batch answer; such calls are logged with `injected: true`;
/// - EC2 metadata: tests point AWS_EC2_METADATA_SERVICE_ENDPOINT here, so a probe is logged
///   (operation `IMDS`) instead of leaving the machine, and tests assert there is none.
///
/// Client connections are kept alive, as AWS's are.
#[cfg(feature = "aws")]
pub(crate) mod aws {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use serde_json::{Value, json};

    use super::{Action, Message, Proxy, Rules};

    /// The proxy with the AWS rules.
    pub(crate) type AwsProxy = Proxy<Aws>;

    /// A call that went through the proxy.
    #[derive(Debug, Clone)]
    pub(crate) struct Call {
        /// `BatchGetSecretValue`, `AssumeRoleWithWebIdentity`, `IMDS`, ...
        pub operation: String,
        pub body: Vec<u8>,
        pub authorization: Option<String>,
        /// Whether the proxy answered instead of moto, or changed moto's answer.
        pub injected: bool,
        pub at: Instant,
    }

    impl Call {
        /// The body as JSON (Secrets Manager).
        pub(crate) fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        }

        /// The body as a decoded form (STS).
        pub(crate) fn form(&self) -> BTreeMap<String, String> {
            String::from_utf8_lossy(&self.body)
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (percent_decode(k), percent_decode(v)))
                .collect()
        }

        /// The access key id that signed the request.
        pub(crate) fn access_key(&self) -> Option<String> {
            let auth = self.authorization.as_deref()?;
            let start = auth.find("Credential=")? + "Credential=".len();
            Some(auth[start..].split('/').next()?.to_string())
        }
    }

    /// What to answer instead of moto.
    #[derive(Debug, Clone)]
    pub(crate) enum Fault {
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
    pub(crate) struct Rule {
        /// The operation it applies to (`BatchGetSecretValue`, `AssumeRoleWithWebIdentity`...).
        pub operation: &'static str,
        pub fault: Fault,
        /// How many calls to answer; `None` for every call from now on.
        pub times: Option<usize>,
        /// Only for this secret id. In a BatchGetSecretValue answer, that secret is moved from
        /// `SecretValues` to `Errors` (as AWS does for a secret the caller may not read) and
        /// the rest of moto's answer is kept.
        pub secret: Option<String>,
    }

    impl Rule {
        pub(crate) fn new(operation: &'static str, fault: Fault) -> Rule {
            Rule {
                operation,
                fault,
                times: None,
                secret: None,
            }
        }

        pub(crate) fn times(mut self, n: usize) -> Rule {
            self.times = Some(n);
            self
        }

        pub(crate) fn secret(mut self, id: &str) -> Rule {
            self.secret = Some(id.to_string());
            self
        }
    }

    #[derive(Default)]
    pub(crate) struct Aws {
        calls: Vec<Call>,
        rules: Vec<Rule>,
    }

    /// What the AWS rules decided about one request.
    pub(crate) struct Ticket {
        operation: String,
        injected: bool,
        /// The secret to move to a batch answer's errors.
        deny: Option<String>,
    }

    impl Rules for Aws {
        const KEEP_ALIVE: bool = true;
        type Ticket = Ticket;

        fn decide(&mut self, request: &Message) -> (Action, Ticket) {
            let operation = operation(request);
            let body = String::from_utf8_lossy(&request.body);
            let mut ticket = Ticket {
                operation,
                injected: false,
                deny: None,
            };
            let Some(index) = self.rules.iter().position(|r| {
                r.operation == ticket.operation
                    && r.secret
                        .as_ref()
                        .is_none_or(|s| body.contains(&format!("\"{s}\"")))
            }) else {
                return (Action::Forward, ticket);
            };
            let rule = self.rules[index].clone();
            if let Some(n) = &mut self.rules[index].times {
                *n -= 1;
                if *n == 0 {
                    self.rules.remove(index);
                }
            }
            ticket.injected = true;
            match (rule.secret, ticket.operation.as_str()) {
                (Some(secret), "BatchGetSecretValue") => {
                    ticket.deny = Some(secret);
                    (Action::Forward, ticket)
                }
                _ => {
                    let json_protocol = request.header("x-amz-target").is_some();
                    (Action::Answer(injected(&rule.fault, json_protocol)), ticket)
                }
            }
        }

        fn answered(&mut self, request: &Message, ticket: Ticket, answer: &mut Message) {
            if let Some(secret) = &ticket.deny {
                deny_in_batch(answer, secret);
            }
            self.calls.push(Call {
                operation: ticket.operation,
                body: request.body.clone(),
                authorization: request.header("authorization").map(str::to_string),
                injected: ticket.injected,
                at: Instant::now(),
            });
        }
    }

    impl AwsProxy {
        pub(crate) fn inject(&self, rule: Rule) {
            self.rules().rules.push(rule);
        }

        /// Stops injecting (e.g. the end of a throttling storm).
        pub(crate) fn clear(&self) {
            self.rules().rules.clear();
        }

        pub(crate) fn calls(&self) -> Vec<Call> {
            self.rules().calls.clone()
        }

        pub(crate) fn calls_to(&self, operation: &str) -> Vec<Call> {
            self.calls()
                .into_iter()
                .filter(|c| c.operation == operation)
                .collect()
        }

        pub(crate) fn count(&self, operation: &str) -> usize {
            self.calls_to(operation).len()
        }
    }

    fn operation(request: &Message) -> String {
        if let Some(target) = request.header("x-amz-target") {
            return target.rsplit('.').next().unwrap_or(target).to_string();
        }
        if request.path().starts_with("/latest/") {
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
        let mut answer = if json_protocol {
            Message::injected(
                status,
                "application/x-amz-json-1.1",
                json!({"__type": code, "message": message}).to_string(),
            )
        } else {
            Message::injected(
                status,
                "text/xml",
                format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
                ),
            )
        };
        answer
            .headers
            .push(("x-amzn-RequestId".into(), "injected".into()));
        answer
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
        response.mark_injected();
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
}
