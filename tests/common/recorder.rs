//! The recording upstream of the differential suites (`tests/differential.rs`,
//! `tests/differential_h2.rs`): it reads requests as a server would, records each as received,
//! and answers `/__probe/` with the current response probe, anything else with its own target.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Clone)]
pub struct ResponseProbe {
    pub name: String,
    pub method: String,
    pub late: Vec<u8>,
    pub raw: Vec<u8>,
}

/// A request as the recording upstream received it.
#[derive(Debug, Clone)]
pub struct Got {
    pub method: String,
    pub target: String,
    /// Header names as received, with values.
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Got {
    pub fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
    /// The path, for comparing front ends: an absolute-form target loses scheme and host.
    pub fn key(&self) -> String {
        let t = &self.target;
        let path = ["http://", "https://"]
            .iter()
            .find_map(|s| {
                t.get(..s.len())
                    .filter(|p| p.eq_ignore_ascii_case(s))
                    .map(|_| &t[s.len()..])
            })
            .map(|rest| &rest[rest.find('/').unwrap_or(rest.len())..])
            .unwrap_or(t);
        format!("{} {} {}", self.method, path, self.body_len)
    }
}

pub struct Recorder {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Got>>>,
    pub probe: Arc<Mutex<Option<ResponseProbe>>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let probe = Arc::new(Mutex::new(None));
        let (l, p) = (log.clone(), probe.clone());
        thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let (l, p) = (l.clone(), p.clone());
                thread::spawn(move || serve(s, l, p));
            }
        });
        Recorder { addr, log, probe }
    }

    pub fn take(&self) -> Vec<Got> {
        std::mem::take(&mut *self.log.lock().expect("lock"))
    }
}

/// Reads requests as a server would and records them; answers `/__probe/` with the current
/// response probe and anything else with its own target as the body.
fn serve(mut s: TcpStream, log: Arc<Mutex<Vec<Got>>>, probe: Arc<Mutex<Option<ResponseProbe>>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let (got, used) = loop {
            if let Some(r) = parse_request(&buf) {
                break r;
            }
            let mut chunk = [0u8; 16384];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 1 << 22 {
                return;
            }
        };
        let Some(got) = got else {
            // Not a request this server can read: what a desync would look like.
            log.lock().expect("lock").push(Got {
                method: "GARBAGE".into(),
                target: String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned(),
                headers: Vec::new(),
                body_len: 0,
            });
            return;
        };
        buf.drain(..used);
        let target = got.target.clone();
        log.lock().expect("lock").push(got);
        let current = probe.lock().expect("lock").clone();
        match current.filter(|_| target.contains("/__probe/")) {
            Some(p) => {
                let _ = s.write_all(&p.raw);
                if !p.late.is_empty() {
                    thread::sleep(Duration::from_millis(100));
                    let _ = s.write_all(&p.late);
                }
                let raw = String::from_utf8_lossy(&p.raw).to_ascii_lowercase();
                if raw.contains("connection: close") || p.name.starts_with("status-") {
                    return;
                }
            }
            None => {
                let body = target.as_bytes();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                if s.write_all(&[head.as_bytes(), body].concat()).is_err() {
                    return;
                }
            }
        }
    }
}

/// One request at the start of `buf`: `None` until complete; `Some((None, _))` if unreadable.
fn parse_request(buf: &[u8]) -> Option<(Option<Got>, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some((None, buf.len())),
    };
    let hs: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let find = |n: &str| {
        hs.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let (body_len, used) = if find("transfer-encoding").is_some() {
        let mut at = head_len;
        let mut total = 0;
        loop {
            match httparse::parse_chunk_size(&buf[at..]) {
                Ok(httparse::Status::Complete((n, 0))) => {
                    let rest = &buf[at + n..];
                    let end = rest.windows(2).position(|w| w == b"\r\n")?;
                    if end == 0 {
                        break (total, at + n + 2);
                    }
                    at += n + end + 2;
                    // Trailers: skip lines until the empty one.
                    loop {
                        let rest = &buf[at..];
                        let e = rest.windows(2).position(|w| w == b"\r\n")?;
                        at += e + 2;
                        if e == 0 {
                            return Some((Some(got(&req, hs, total)), at));
                        }
                    }
                }
                Ok(httparse::Status::Complete((n, size))) => {
                    let size = size as usize;
                    if buf.len() < at + n + size + 2 {
                        return None;
                    }
                    total += size;
                    at += n + size + 2;
                }
                Ok(httparse::Status::Partial) => return None,
                Err(_) => return Some((None, buf.len())),
            }
        }
    } else {
        let n: usize = find("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() < head_len + n {
            return None;
        }
        (n, head_len + n)
    };
    Some((Some(got(&req, hs, body_len)), used))
}

fn got(req: &httparse::Request, headers: Vec<(String, String)>, body_len: usize) -> Got {
    Got {
        method: req.method.unwrap_or("").to_string(),
        target: req.path.unwrap_or("").to_string(),
        headers,
        body_len,
    }
}

/// A corpus field with its escapes (`\r`, `\n`, `\t`, `\\`, `\xHH`) turned into bytes.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex");
                    out.push(u8::from_str_radix(hex, 16).expect("hex"));
                    i += 4;
                    continue;
                }
                other => panic!("bad escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The lines of `tests/differential/FILE`, split at tabs (comments and blank lines skipped).
pub fn corpus(file: &str) -> Vec<Vec<String>> {
    let path = format!("{}/tests/differential/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .expect("corpus")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// The response-side probes (`differential/responses.txt`), which both suites relay.
pub fn response_probes() -> Vec<ResponseProbe> {
    corpus("responses.txt")
        .into_iter()
        .map(|f| ResponseProbe {
            name: f[0].clone(),
            method: f[1].clone(),
            late: unescape(&f[2]),
            raw: unescape(&f[3]),
        })
        .collect()
}
