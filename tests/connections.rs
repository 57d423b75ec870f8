//! Client connections governed as nginx governs them, on every protocol: idle HTTP/2
//! connections get GOAWAY and close after `server.keepalive_timeout`; a TLS handshake, and an
//! HTTP/2 connection's preface and first request, must come within `limits.header_timeout`;
//! `limits.max_requests_per_connection` and `server.max_connection_age` end connections
//! gracefully; `server.max_connections` sheds the longest-idle connection first, and refuses a
//! new one only when none is idle.

mod common;

use common::h2raw::{tls_config, tls_connect, Frame, Outcome, H2};
use common::*;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

fn ok_upstream() -> Upstream {
    Upstream::start(|_| Reply::new(200, "ok"))
}

/// The proxy with TLS and `extra` config, and the raw client's TLS settings.
fn tls_proxy(
    up: &Upstream,
    server: &str,
    limits: &str,
) -> (Proxy, Arc<rustls::ClientConfig>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let config = config_for(&[up.addr], &format!("{tls}\n[limits]\n{limits}\n"))
        .replace("[server]\n", &format!("[server]\n{server}\n"));
    (Proxy::start(&config), tls_config(&cert_pem), dir)
}

fn get(stream: u32, path: &str) -> Frame {
    Frame::get(stream, path)
}

fn ok(o: &Outcome) -> bool {
    matches!(
        o,
        Outcome::Response {
            status: 200,
            complete: true,
            ..
        }
    )
}

/// Whether the server closed `s` (EOF or reset) before the read timeout set on it.
fn closed_by_server(s: &mut impl Read) -> bool {
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// h2's graceful GOAWAY: NO_ERROR naming the highest stream id, then (once the client answered
/// its PING, which the raw client does at once) NO_ERROR naming `last`, the last stream taken.
/// The second is not awaited when the connection closed first (1 s after the first).
fn assert_graceful(goaways: &[(u32, u32)], last: u32) {
    match goaways {
        [(0x7fff_ffff, 0), (l, 0)] if *l == last => {}
        [(0x7fff_ffff, 0)] => {}
        other => panic!("GOAWAY frames {other:?}, not a graceful shutdown naming {last}"),
    }
}

fn shed(metrics: &str, reason: &str) -> f64 {
    metric_value(
        metrics,
        &format!("authz_edge_connections_shed_total{{reason=\"{reason}\"}}"),
    )
}

fn client_connections(p: &Proxy, protocol: &str) -> f64 {
    metric_value(
        &p.metrics(),
        &format!("authz_edge_client_connections{{protocol=\"{protocol}\"}}"),
    )
}

#[test]
fn an_idle_http2_connection_gets_goaway_then_closes() {
    let up = ok_upstream();
    let (p, tls, _dir) = tls_proxy(&up, "keepalive_timeout = \"1s\"", "header_timeout = \"1s\"");
    let mut c = H2::connect(p.https.expect("https"), &tls);
    c.send(&[get(1, "/a")]);
    assert!(ok(&c.outcome(1)));
    assert_eq!(client_connections(&p, "h2"), 1.0);
    // Idle from here: GOAWAY (NO_ERROR; h2's graceful shutdown sends one naming the highest
    // stream id, then one naming stream 1, the last taken), then the close, well before the
    // client's 5 s read timeout.
    assert!(c.until_closed(), "the idle connection was not closed");
    assert_graceful(&c.goaways, 1);
    poll::until_true("the gauge back to 0", || {
        client_connections(&p, "h2") == 0.0
    });
}

#[test]
fn silent_connections_close_within_the_header_timeout() {
    let up = ok_upstream();
    let (p, tls, _dir) = tls_proxy(
        &up,
        "keepalive_timeout = \"30s\"",
        "header_timeout = \"1s\"",
    );
    let https = p.https.expect("https");
    // TCP only: no ClientHello.
    let mut tcp = TcpStream::connect(https).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert!(
        closed_by_server(&mut tcp),
        "a connection without a ClientHello stayed open"
    );
    // TLS done with ALPN h2, then nothing: not even the preface.
    let mut silent = tls_connect(https, &tls);
    assert!(
        closed_by_server(&mut silent),
        "a TLS connection without a preface stayed open"
    );
    // The preface and SETTINGS, then no request.
    let mut preface = H2::connect(https, &tls);
    assert!(
        preface.until_closed(),
        "an HTTP/2 connection without a request stayed open"
    );
    // A request within the timeout is served, and its connection is kept past it (the
    // keepalive timeout is 30 s).
    let mut served = H2::connect(https, &tls);
    served.send(&[get(1, "/a")]);
    assert!(ok(&served.outcome(1)));
    served.send(&[get(3, "/b")]);
    assert!(ok(&served.outcome(3)));
    assert!(served.goaways.is_empty());
}

#[test]
fn max_requests_per_connection_ends_an_http2_connection_with_goaway() {
    let up = ok_upstream();
    let (p, tls, _dir) = tls_proxy(&up, "", "max_requests_per_connection = 3");
    let mut c = H2::connect(p.https.expect("https"), &tls);
    for id in [1, 3, 5] {
        c.send(&[get(id, "/a")]);
        assert!(ok(&c.outcome(id)), "stream {id}");
    }
    // The third stream was the last: GOAWAY says 5, and a sixth request is not taken.
    c.send(&[get(7, "/a")]);
    let seventh = c.outcome(7);
    assert!(!ok(&seventh), "{seventh:?}");
    assert!(c.until_closed());
    assert_graceful(&c.goaways, 5);
    assert_eq!(up.count(), 3);
}

#[test]
fn max_connection_age_retires_connections_gracefully_on_every_protocol() {
    let up = ok_upstream();
    let (p, tls, _dir) = tls_proxy(&up, "max_connection_age = \"1s\"", "");
    // HTTP/1: requests on one connection until a response says Connection: close; the ones
    // before it keep the connection.
    let s = TcpStream::connect(p.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut served = 0;
    let last = poll::until("a response with Connection: close", || {
        w.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("write");
        let resp = read_response(&mut r, false).expect("response");
        assert_eq!(resp.status, 200);
        served += 1;
        match resp.header("connection") {
            Some(v) if v.eq_ignore_ascii_case("close") => Ok(served),
            _ => Err(served),
        }
    });
    assert!(last > 1, "the first response already closed the connection");
    assert!(closed_by_server(r.get_mut()));
    // HTTP/2: GOAWAY once old, the streams in flight finished.
    let mut c = H2::connect(p.https.expect("https"), &tls);
    let mut id = 1;
    poll::until("GOAWAY from an old HTTP/2 connection", || {
        c.send(&[get(id, "/a")]);
        let o = c.outcome(id);
        assert!(ok(&o), "stream {id}: {o:?}");
        id += 2;
        match c.goaways.is_empty() {
            false => Ok(()),
            true => Err(id),
        }
    });
    assert!(c.until_closed());
    assert_eq!(c.goaways.last().map(|g| g.1), Some(0));
}

/// A plain HTTP/1 connection that has made one request and now idles on keepalive.
fn idle_keepalive(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    w.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(&mut r, false).expect("response").status, 200);
    r
}

#[test]
fn at_the_connection_cap_the_longest_idle_connection_makes_room() {
    // Django: `/slow` waits until the test releases it.
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let held = release.clone();
    let slow_seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = slow_seen.clone();
    let up = Upstream::start(move |s| {
        if s.path == "/slow" {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            while !held.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Reply::new(200, "ok")
    });
    struct Slow(Arc<std::sync::atomic::AtomicUsize>);
    impl Slow {
        fn count(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }
    let slow = Slow(slow_seen);
    let p = Proxy::start(
        &config_for(&[up.addr], "").replace("[server]\n", "[server]\nmax_connections = 4\n"),
    );
    let mut idle: Vec<BufReader<TcpStream>> = (0..4).map(|_| idle_keepalive(p.http)).collect();
    poll::until_true("4 open connections", || {
        client_connections(&p, "http1") == 4.0
    });
    // A fifth client is served: the connection idle longest (the first) was closed for it.
    let mut fifth = idle_keepalive(p.http);
    assert!(
        closed_by_server(idle[0].get_mut()),
        "the longest-idle connection stayed open"
    );
    for (i, other) in idle.iter_mut().enumerate().skip(1) {
        other
            .get_mut()
            .write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("write");
        let r = read_response(other, false).expect("still served");
        assert_eq!(r.status, 200, "connection {i}");
    }
    let m = p.metrics();
    assert_eq!(shed(&m, "idle"), 1.0);
    assert_eq!(shed(&m, "refused"), 0.0);
    poll::until_true("4 open connections", || {
        client_connections(&p, "http1") == 4.0
    });
    // All four busy (each waiting for Django's answer): a new connection is refused, closed at
    // once.
    let mut busy: Vec<TcpStream> = idle.drain(1..).map(BufReader::into_inner).collect();
    busy.push(fifth.get_mut().try_clone().expect("clone"));
    for s in &mut busy {
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("write");
    }
    poll::until_true("Django holding the four requests", || slow.count() == 4);
    let mut refused = TcpStream::connect(p.http).expect("connect");
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert!(
        closed_by_server(&mut refused),
        "a fifth connection was kept at the cap"
    );
    release.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in busy {
        let r = read_response(&mut BufReader::new(s), false).expect("answered");
        assert_eq!(r.status, 200);
    }
    let m = p.metrics();
    assert_eq!(shed(&m, "refused"), 1.0);
    assert_eq!(shed(&m, "idle"), 1.0);
    let logged = p.wait_stderr("server.max_connections reached");
    assert_eq!(
        logged.matches("server.max_connections reached").count(),
        1,
        "one line per episode"
    );
}
