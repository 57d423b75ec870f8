//! The differential suite: the same raw bytes through nginx, through the relay and through
//! Pingora's loop, each in front of its own recording upstream.
//!
//! Request side (`differential/requests.txt`): what each front end forwarded for a probe is
//! compared with what nginx forwarded. authz-edge must forward nothing nginx refuses (unless
//! the difference is listed below with its reason), every request it forwards carries its
//! forwarded headers and no context header, and no POST or PATCH reaches the upstream twice.
//!
//! Response side (`differential/responses.txt`): the upstream answers a probe with raw bytes.
//! authz-edge must pass on nothing nginx refuses, never let a context header reach the client
//! (heads, interim responses, trailers), and both of its loops must give the client the same
//! status, headers and body.
//!
//! After every probe a fresh request must get its own answer: no probe may desynchronise a
//! pooled upstream connection. nginx 1.22 from Debian is the reference (`.ci/run` installs it).

// Front ends are compared by index across parallel result arrays (nginx, relay, Pingora).
#![allow(clippy::needless_range_loop)]

mod common;

use common::nginx::*;
use common::recorder::*;
use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::thread;
use std::time::Duration;

/// Stricter verdicts than nginx's are allowed, and counted.
const STRICTER_THAN_NGINX_IS_FINE: &str = "allowed and counted";

/// Where authz-edge may pass what nginx refuses: (probe, front end, reason). Each is in the
/// README's list of differences from nginx.
const LOOSER_ALLOWED: &[(&str, &str, &str)] = &[(
    "te-ext-lf",
    "*",
    "chunked request bodies are decoded by Pingora's HTTP/1 server, which takes a bare LF inside \
     a chunk extension; the body reaches Django re-framed with a Content-Length, so no second \
     parser ever sees the original framing",
)];

fn looser_allowed(probe: &str, front_end: &str) -> bool {
    LOOSER_ALLOWED
        .iter()
        .any(|(p, f, _)| *p == probe && (*f == "*" || *f == front_end))
}

/// Response probes where the two loops of authz-edge may answer the client differently, both
/// at least as strict as nginx. None since both send Django's responses through one
/// codec (`upstream`, through `phases::forward`).
const LOOPS_MAY_DIFFER: &[(&str, &str)] = &[];

// ---------- corpus ----------

fn start_edge(upstream: SocketAddr, fast_path: bool) -> Proxy {
    let config = config_for(&[upstream], "").replace(
        "[server]\n",
        &format!("[server]\nfast_path = {fast_path}\n"),
    );
    Proxy::start(&config)
}

/// The front ends, each before its own recorder: nginx, the relay, Pingora's loop, and, when
/// `AUTHZ_EDGE_DIFF_HYPER` names its binary, the hyper-based relay of the load comparison
/// (`benches/load/hyper_relay.rs`), whose verdicts are counted but not asserted.
struct Bench {
    names: Vec<&'static str>,
    addrs: Vec<SocketAddr>,
    recorders: Vec<Recorder>,
    _nginx: Nginx,
    _edges: [Proxy; 2],
    _hyper: Option<Extra>,
}

/// A front end started from a binary (`BINARY LISTEN UPSTREAM`), killed when dropped.
struct Extra(Child);

impl Drop for Extra {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bench() -> Bench {
    let hyper = std::env::var("AUTHZ_EDGE_DIFF_HYPER").ok();
    let n = if hyper.is_some() { 4 } else { 3 };
    let recorders: Vec<Recorder> = (0..n).map(|_| Recorder::start()).collect();
    let nginx = start_nginx(recorders[0].addr);
    let relay = start_edge(recorders[1].addr, true);
    let pingora = start_edge(recorders[2].addr, false);
    let mut names = vec!["nginx", "relay", "pingora"];
    let mut addrs = vec![nginx.addr, relay.http, pingora.http];
    let hyper = hyper.map(|bin| {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = Command::new(bin)
            .arg(addr.to_string())
            .arg(recorders[3].addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the hyper relay");
        wait_listening(addr, "the hyper relay");
        names.push("hyper");
        addrs.push(addr);
        Extra(child)
    });
    Bench {
        names,
        addrs,
        recorders,
        _nginx: nginx,
        _edges: [relay, pingora],
        _hyper: hyper,
    }
}

/// Counts of one front end's verdicts against nginx's: agree, stricter, looser.
fn tally(name: &str, verdicts: &[std::cmp::Ordering], probes: &[&str]) {
    use std::cmp::Ordering::*;
    let count = |o| verdicts.iter().filter(|v| **v == o).count();
    let looser: Vec<&str> = verdicts
        .iter()
        .zip(probes)
        .filter(|(v, _)| **v == Less)
        .map(|(_, p)| *p)
        .collect();
    println!(
        "{name}: {} agree, {} stricter, {} looser {looser:?}",
        count(Equal),
        count(Greater),
        count(Less)
    );
    // By category: the probe name up to its first `-`.
    let mut by: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for (v, p) in verdicts.iter().zip(probes) {
        let cat = p.split('-').next().unwrap_or(p);
        by.entry(cat).or_default()[match v {
            Equal => 0,
            Greater => 1,
            Less => 2,
        }] += 1;
    }
    let cats: Vec<String> = by
        .iter()
        .map(|(c, [a, s, l])| format!("{c} {a}/{s}/{l}"))
        .collect();
    println!(
        "  {name} by category (agree/stricter/looser): {}",
        cats.join(", ")
    );
}

// ---------- the client ----------

/// What a client read back.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
    /// The body ended where its framing said (or at a close, for close-delimited bodies).
    complete: bool,
}

/// Sends `raw` and reads one response; `None` when the connection closed or stalled first.
fn exchange(addr: SocketAddr, raw: &[u8], head_request: bool) -> Option<Answer> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let _ = s.write_all(raw);
    let mut buf = Vec::new();
    let mut interim: Vec<(String, String)> = Vec::new();
    let read_more = |s: &mut TcpStream, buf: &mut Vec<u8>| -> bool {
        let mut chunk = [0u8; 16384];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    };
    let (status, headers, head_len) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 256];
        let mut resp = httparse::Response::new(&mut hs);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let code = resp.code.unwrap_or(0);
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                if (100..200).contains(&code) {
                    // An interim response passed on: its headers count for the context check.
                    buf.drain(..n);
                    interim.extend(headers);
                    continue;
                }
                break (code, headers, n);
            }
            Ok(httparse::Status::Partial) => {
                if !read_more(&mut s, &mut buf) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    };
    buf.drain(..head_len);
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut answer = Answer {
        status,
        headers: headers.iter().cloned().chain(interim).collect(),
        body: Vec::new(),
        trailers: Vec::new(),
        complete: false,
    };
    if head_request || status == 204 || status == 304 {
        answer.complete = true;
    } else if find("transfer-encoding").is_some() {
        let mut at = 0;
        loop {
            match httparse::parse_chunk_size(&buf[at..]) {
                Ok(httparse::Status::Complete((n, 0))) => {
                    at += n;
                    loop {
                        match buf[at..].windows(2).position(|w| w == b"\r\n") {
                            Some(0) => {
                                answer.complete = true;
                                return Some(answer);
                            }
                            Some(e) => {
                                let line = String::from_utf8_lossy(&buf[at..at + e]).into_owned();
                                if let Some((k, v)) = line.split_once(':') {
                                    answer
                                        .trailers
                                        .push((k.trim().to_ascii_lowercase(), v.trim().into()));
                                }
                                at += e + 2;
                            }
                            None if read_more(&mut s, &mut buf) => {}
                            None => return Some(answer),
                        }
                    }
                }
                Ok(httparse::Status::Complete((n, size))) => {
                    let size = size as usize;
                    while buf.len() < at + n + size + 2 {
                        if !read_more(&mut s, &mut buf) {
                            return Some(answer);
                        }
                    }
                    answer.body.extend_from_slice(&buf[at + n..at + n + size]);
                    at += n + size + 2;
                }
                Ok(httparse::Status::Partial) if read_more(&mut s, &mut buf) => {}
                _ => return Some(answer),
            }
        }
    } else if let Some(n) = find("content-length").and_then(|v| v.trim().parse::<usize>().ok()) {
        while buf.len() < n {
            if !read_more(&mut s, &mut buf) {
                answer.body = buf;
                return Some(answer);
            }
        }
        answer.body = buf[..n].to_vec();
        answer.complete = true;
    } else {
        while read_more(&mut s, &mut buf) {}
        answer.body = buf;
        answer.complete = true;
    }
    Some(answer)
}

/// A fresh request on a new connection must get its own answer.
fn in_sync(addr: SocketAddr, n: usize) -> Result<(), String> {
    let path = format!("/__check/{n}");
    let raw = format!("GET {path} HTTP/1.1\r\nHost: shop.test\r\n\r\n");
    match exchange(addr, raw.as_bytes(), false) {
        Some(a) if a.status == 200 && a.body == path.as_bytes() => Ok(()),
        other => Err(format!("asked {path}, got {other:?}")),
    }
}

fn is_context_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('_', "-");
    n.starts_with("x-authz-") || n == "x-app-release"
}

fn count_unsafe(raw: &[u8]) -> usize {
    let text = String::from_utf8_lossy(raw);
    text.split('\n')
        .filter(|l| {
            let l = l.trim_start_matches('\r');
            l.starts_with("POST ") || l.starts_with("PATCH ")
        })
        .count()
}

// ---------- the tests ----------

/// Runs `probe` for every probe index on every front end, each front end in its own thread,
/// then the sync check after each probe.
fn run_all<T: Send>(
    b: &Bench,
    n: usize,
    probe: impl Fn(usize, SocketAddr, &Recorder) -> T + Sync,
) -> Runs<T> {
    thread::scope(|scope| {
        let handles: Vec<_> = (0..b.addrs.len())
            .map(|i| {
                let (addr, rec, probe) = (b.addrs[i], &b.recorders[i], &probe);
                scope.spawn(move || {
                    (0..n)
                        .map(|k| {
                            let out = probe(k, addr, rec);
                            let sync = in_sync(addr, k);
                            rec.take();
                            (out, sync)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("front end"))
            .collect()
    })
}

/// Whether a fresh request after a probe got its own answer.
type InSync = Result<(), String>;
/// Per front end, per probe: what the probe produced, and the sync check after it.
type Runs<T> = Vec<Vec<(T, InSync)>>;

#[test]
fn request_probes_are_at_least_as_strict_as_nginx() {
    let probes: Vec<(String, Vec<u8>)> = corpus("requests.txt")
        .into_iter()
        .map(|f| (f[0].clone(), unescape(&f[1])))
        .collect();
    assert!(probes.len() >= 300, "{} request probes", probes.len());
    let b = bench();
    let checks = AtomicUsize::new(0);
    // Each front end runs the whole corpus in its own thread.
    let results: Runs<Vec<Got>> = run_all(&b, probes.len(), |k, addr, rec| {
        let raw = &probes[k].1;
        let _ = exchange(addr, raw, raw.starts_with(b"HEAD "));
        thread::sleep(Duration::from_millis(30));
        checks.fetch_add(1, Ordering::Relaxed);
        rec.take()
    });

    let (mut agree, mut stricter, mut looser) = (0, Vec::new(), Vec::new());
    let mut failures = Vec::new();
    let mut per_front_end = vec![Vec::new(); b.addrs.len()];
    for (k, (name, raw)) in probes.iter().enumerate() {
        let keys = |i: usize| {
            let mut v: Vec<String> = results[i][k].0.iter().map(Got::key).collect();
            v.sort();
            v
        };
        let reference = keys(0);
        for (i, verdicts) in per_front_end.iter_mut().enumerate().skip(1) {
            let ours = keys(i);
            verdicts.push(if ours.iter().any(|o| !reference.contains(o)) {
                std::cmp::Ordering::Less
            } else if ours.len() < reference.len() {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            });
        }
        for i in 0..3 {
            if let Err(e) = &results[i][k].1 {
                failures.push(format!("{name}: {} desynchronised: {e}", b.names[i]));
            }
        }
        let mut verdict = "agree";
        for i in 1..3 {
            let ours = keys(i);
            for got in &results[i][k].0 {
                let who = b.names[i];
                if !(got.has("x-forwarded-for")
                    && got.has("x-request-id")
                    && got.has("x-forwarded-proto"))
                {
                    failures.push(format!(
                        "{name}: {who} forwarded without its forwarded headers: {got:?}"
                    ));
                }
                if let Some((h, _)) = got.headers.iter().find(|(h, _)| is_context_header(h)) {
                    failures.push(format!("{name}: {who} let the client's {h} through"));
                }
            }
            let unsafe_sent = results[i][k]
                .0
                .iter()
                .filter(|g| g.method == "POST" || g.method == "PATCH")
                .count();
            if unsafe_sent > count_unsafe(raw) {
                failures.push(format!("{name}: {} sent a POST or PATCH twice", b.names[i]));
            }
            let extra: Vec<&String> = ours.iter().filter(|o| !reference.contains(o)).collect();
            if !extra.is_empty() {
                if looser_allowed(name, b.names[i]) {
                    verdict = "looser-listed";
                } else {
                    verdict = "looser";
                    failures.push(format!(
                        "{name}: {} forwarded {extra:?} where nginx forwarded {reference:?}",
                        b.names[i]
                    ));
                }
            } else if ours.len() < reference.len() && verdict == "agree" {
                verdict = "stricter";
            }
        }
        match verdict {
            "agree" => agree += 1,
            "stricter" => stricter.push(name.clone()),
            _ => looser.push(name.clone()),
        }
    }
    println!(
        "request probes: {} in all, {agree} agree, {} stricter ({STRICTER_THAN_NGINX_IS_FINE}), {} looser",
        probes.len(),
        stricter.len(),
        looser.len()
    );
    println!("stricter than nginx: {stricter:?}");
    let names: Vec<&str> = probes.iter().map(|(n, _)| n.as_str()).collect();
    for (i, verdicts) in per_front_end.iter().enumerate().skip(1) {
        tally(b.names[i], verdicts, &names);
    }
    // The list of differences stays honest: each entry is still needed.
    for (probe, _, _) in LOOSER_ALLOWED {
        if names.contains(probe) {
            assert!(
                looser.contains(&probe.to_string()),
                "{probe} is listed but no longer looser"
            );
        }
    }
    assert_eq!(checks.load(Ordering::Relaxed), b.addrs.len() * probes.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn response_probes_are_at_least_as_strict_as_nginx_and_both_loops_agree() {
    let probes = response_probes();
    assert!(probes.len() >= 100, "{} response probes", probes.len());
    let b = bench();
    let results: Runs<Option<Answer>> = run_all(&b, probes.len(), |k, addr, rec| {
        let p = &probes[k];
        *rec.probe.lock().expect("lock") = Some(p.clone());
        let raw = format!(
            "{} /__probe/{k} HTTP/1.1\r\nHost: shop.test\r\n\r\n",
            p.method
        );
        let answer = exchange(addr, raw.as_bytes(), p.method == "HEAD");
        if !p.late.is_empty() {
            thread::sleep(Duration::from_millis(300));
        }
        *rec.probe.lock().expect("lock") = None;
        answer
    });

    let passed = |a: &Option<Answer>| {
        a.as_ref()
            .is_some_and(|a| a.complete && a.status != 502 && a.status != 504)
    };
    let (mut agree, mut stricter, mut looser) = (0, Vec::new(), Vec::new());
    let mut failures = Vec::new();
    let mut loops_differ = 0;
    let mut per_front_end = vec![Vec::new(); b.addrs.len()];
    for (k, p) in probes.iter().enumerate() {
        let name = &p.name;
        for (i, verdicts) in per_front_end.iter_mut().enumerate().skip(1) {
            let (ours, theirs) = (passed(&results[i][k].0), passed(&results[0][k].0));
            verdicts.push(ours.cmp(&theirs).reverse());
        }
        for i in 0..3 {
            if let Err(e) = &results[i][k].1 {
                failures.push(format!("{name}: {} desynchronised: {e}", b.names[i]));
            }
        }
        let reference = passed(&results[0][k].0);
        let mut verdict = "agree";
        for i in 1..3 {
            let who = b.names[i];
            if let Some(a) = &results[i][k].0 {
                for (h, _) in a.headers.iter().chain(&a.trailers) {
                    if is_context_header(h) {
                        failures.push(format!("{name}: {who} passed {h} to the client"));
                    }
                }
            }
            let ours = passed(&results[i][k].0);
            if ours && !reference {
                if looser_allowed(name, who) {
                    verdict = "looser-listed";
                } else {
                    verdict = "looser";
                    failures.push(format!(
                        "{name}: {who} passed {:?} where nginx gave {:?}",
                        results[i][k].0, results[0][k].0
                    ));
                }
            } else if !ours && reference && verdict == "agree" {
                verdict = "stricter";
            }
        }
        match verdict {
            "agree" => agree += 1,
            "stricter" => stricter.push(name.clone()),
            _ => looser.push(name.clone()),
        }
        // Both loops give the client the same answer when either passes it on; when both
        // refuse, they may fail differently (a 502, or a response cut off after its head).
        let normal = |a: &Option<Answer>| {
            a.as_ref().map(|a| {
                let headers: BTreeMap<String, String> = a
                    .headers
                    .iter()
                    .filter(|(h, _)| {
                        !matches!(
                            h.as_str(),
                            "connection"
                                | "keep-alive"
                                | "date"
                                | "content-length"
                                | "transfer-encoding"
                        )
                    })
                    .cloned()
                    .collect();
                (a.status, headers, a.body.clone(), a.complete)
            })
        };
        let either = passed(&results[1][k].0) || passed(&results[2][k].0);
        if either
            && !looser_allowed(name, "pingora")
            && normal(&results[1][k].0) != normal(&results[2][k].0)
            && !LOOPS_MAY_DIFFER.iter().any(|(n, _)| n == name)
        {
            loops_differ += 1;
            failures.push(format!(
                "{name}: the loops differ: relay {:?} / pingora {:?}",
                results[1][k].0, results[2][k].0
            ));
        }
    }
    println!(
        "response probes: {} in all, {agree} agree, {} stricter, {} looser, loops differ on {loops_differ}",
        probes.len(),
        stricter.len(),
        looser.len()
    );
    println!("stricter than nginx: {stricter:?}");
    let names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
    for (i, verdicts) in per_front_end.iter().enumerate().skip(1) {
        tally(b.names[i], verdicts, &names);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
