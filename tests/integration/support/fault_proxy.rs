//! A fault-injecting HTTP proxy on loopback, between stepsecret and a real OpenBao.
//!
//! This is a hand-written fake on purpose and only for what a real server cannot be made to
//! do on demand: a 429 or 503 storm, a connection dropped before the answer, an answer cut off
//! mid-body. Everything else is forwarded to the real server, unchanged. Every injected answer
//! carries `x-stepsecret-test-proxy: injected` and says "injected by the test proxy", so no
//! one mistakes it for the server's behaviour. It also counts requests per path, so tests can
//! prove there was one login and one read per unique path.
//!
//! HTTP/1.1 with Content-Length bodies (what ureq and OpenBao send); each forwarded request
//! goes upstream on a fresh connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What to do instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
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
pub struct Rule {
    pub path: &'static str,
    pub fault: Fault,
    /// How many requests to hit; `None`: all of them from now on.
    pub times: Option<usize>,
    /// Hit only every n-th matching request (1: each one).
    pub every: usize,
}

impl Rule {
    /// A rule for every matching request from now on.
    pub fn always(path: &'static str, fault: Fault) -> Rule {
        Rule {
            path,
            fault,
            times: None,
            every: 1,
        }
    }

    /// A rule for the next `n` matching requests.
    pub fn times(path: &'static str, fault: Fault, n: usize) -> Rule {
        Rule {
            times: Some(n),
            ..Rule::always(path, fault)
        }
    }

    /// A rule for every `n`-th matching request.
    pub fn every(path: &'static str, fault: Fault, n: usize) -> Rule {
        Rule {
            every: n.max(1),
            ..Rule::always(path, fault)
        }
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// Matching requests seen per rule, for `every`.
    matched: Vec<usize>,
    /// (method, path, fault) of every request seen.
    seen: Vec<(String, String, Option<Fault>)>,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:PORT`) on a free loopback port.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if sp.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let st = Arc::clone(&st);
                std::thread::spawn(move || serve(stream, upstream, &st));
            }
        });
        FaultProxy { addr, state, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add(&self, rule: Rule) {
        let mut state = self.state.lock().unwrap();
        state.rules.push(rule);
        state.matched.push(0);
    }

    /// Requests that met a fault so far.
    pub fn injected(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|(_, _, f)| f.is_some())
            .count()
    }

    /// Requests whose path contains `path` that met `fault`.
    pub fn count_fault(&self, path: &str, fault: Fault) -> usize {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|(_, p, f)| p.contains(path) && *f == Some(fault))
            .count()
    }

    /// Requests seen whose path contains `path`: (forwarded, injected).
    pub fn count(&self, path: &str) -> (usize, usize) {
        let state = self.state.lock().unwrap();
        let hits = state.seen.iter().filter(|(_, p, _)| p.contains(path));
        let injected = hits.clone().filter(|(_, _, f)| f.is_some()).count();
        (hits.count() - injected, injected)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(client: TcpStream, upstream: SocketAddr, state: &Mutex<State>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    loop {
        let Some((head, body, method, path)) = read_request(&mut reader) else {
            return;
        };
        let fault = {
            let mut state = state.lock().unwrap();
            let State { rules, matched, .. } = &mut *state;
            let mut fault = None;
            for (rule, seen) in rules.iter_mut().zip(matched.iter_mut()) {
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
            state.seen.push((method.clone(), path.clone(), fault));
            fault
        };
        match fault {
            Some(Fault::Status(status)) => {
                let body = r#"{"errors":["injected by the test proxy"]}"#;
                let answer = format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-stepsecret-test-proxy: injected\r\n\r\n{body}",
                    body.len()
                );
                if client.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
            Some(Fault::Drop) => return,
            Some(Fault::Truncate) | Some(Fault::Delay(_)) | None => {
                if let Some(Fault::Delay(ms)) = fault {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                }
                let Some(answer) = forward(upstream, &head, &body) else {
                    return;
                };
                if fault == Some(Fault::Truncate) {
                    let _ = client.write_all(&answer[..answer.len() / 2]);
                    return;
                }
                if client.write_all(&answer).is_err() {
                    return;
                }
            }
        }
    }
}

/// One request: its head (with `Connection: close` for the upstream), body, method and path.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>, String, String)> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut head = request_line.clone();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        head.push_str(&line);
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body, method, path))
}

fn forward(upstream: SocketAddr, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut server = TcpStream::connect(upstream).ok()?;
    server.write_all(head.as_bytes()).ok()?;
    server.write_all(body).ok()?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).ok()?;
    // The server closes after answering; tell the client the connection ends too.
    Some(answer)
}
