//! The HTTP/1 fast path (`relay`): which requests it takes, framing, pooling and retries.
//!
//! The rest of the suite runs with the fast path on (the default), so every mechanic tested
//! there (forwarding, context stripping, limits, failures, telemetry) is tested through it for
//! plain requests; this file checks what is particular to it, and that turning it off changes
//! nothing a client or Django can see.

mod common;

use common::*;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const RELAY: &str = "authz_edge_proxied_requests_total{proxy_loop=\"relay\"}";
const PINGORA: &str = "authz_edge_proxied_requests_total{proxy_loop=\"pingora\"}";
const H2: &str = "authz_edge_proxied_requests_total{proxy_loop=\"h2\"}";

fn upstream_errors(p: &Proxy) -> f64 {
    ["connect", "timeout", "reset", "other"]
        .iter()
        .map(|k| {
            p.metric(&format!(
                "authz_edge_upstream_errors_total{{kind=\"{k}\",upstream=\"default\"}}"
            ))
        })
        .sum()
}

/// Echoes the path as the body, with a context header that must not reach the client.
fn path_echo() -> Upstream {
    Upstream::start(|seen| {
        Reply::new(200, &seen.path)
            .header("X-Authz-Route", "/echo/")
            .header("X-App-Release", "r1")
            .header("Keep-Alive", "timeout=5")
    })
}

/// Sends `request` on a new connection and reads everything until the proxy closes it.
fn until_close(p: &Proxy, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(p.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read to close");
    all
}

fn connect(p: &Proxy) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(p.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let r = BufReader::new(s.try_clone().expect("clone"));
    (s, r)
}

#[test]
fn plain_requests_take_the_fast_path_over_one_upstream_connection() {
    let up = path_echo();
    let p = Proxy::start(&config_for(&[up.addr], ""));
    let (mut w, mut r) = connect(&p);
    for i in 0..5 {
        let req = format!("GET /item/{i}/ HTTP/1.1\r\nHost: shop.test\r\nX-Authz-User: 7\r\n\r\n");
        w.write_all(req.as_bytes()).expect("write");
        let resp = read_response(&mut r, false).expect("response");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), format!("/item/{i}/"));
        assert_eq!(resp.header("connection"), Some("keep-alive"));
        assert_eq!(
            resp.header("content-length"),
            Some(&*format!("/item/{i}/").len().to_string())
        );
        for gone in ["x-authz-route", "x-app-release", "keep-alive"] {
            assert!(resp.header(gone).is_none(), "{gone} reached the client");
        }
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 5);
    for s in &seen {
        assert_eq!(s.header("host"), Some("shop.test"));
        assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(s.header("x-forwarded-proto"), Some("http"));
        assert_eq!(s.header("x-real-ip"), Some("127.0.0.1"));
        assert!(
            !s.has("x-authz-user"),
            "a client's context header reached Django"
        );
        assert!(!s.has("connection"));
        assert_eq!(s.header("x-request-id").map(str::len), Some(32));
    }
    // One client connection, five requests, one upstream connection kept between them.
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(p.metric(RELAY), 5.0);
    assert_eq!(p.metric(PINGORA), 0.0);
    // Recorded once the response is written: the last one may land just after the client read it.
    p.wait_metric(
        "authz_edge_requests_total{route=\"/echo/\",status_class=\"2xx\"}",
        5.0,
    );
    assert_eq!(upstream_errors(&p), 0.0);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let up = path_echo();
    let p = Proxy::start(&config_for(&[up.addr], ""));
    let (mut w, mut r) = connect(&p);
    // Three requests in one write, the second with a body; then one that Pingora takes
    // (a chunked body) with another behind it.
    w.write_all(
        b"GET /a/ HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /b/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          GET /c/ HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /d/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /e/ HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("write");
    for path in ["/a/", "/b/", "/c/", "/d/"] {
        let resp = read_response(&mut r, false).unwrap_or_else(|| panic!("no response for {path}"));
        assert_eq!((resp.status, resp.text()), (200, path.to_string()));
    }
    // Pingora does not pipeline: with bytes read past its request it answers, then closes
    // (RFC 9112 9.3.2; the client sends /e/ again on a new connection).
    assert!(read_response(&mut r, false).is_none());
    let seen = up.requests();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/a/", "/b/", "/c/", "/d/"]);
    assert_eq!(seen[1].body, b"hello");
    assert_eq!(seen[1].header("content-length"), Some("5"));
    assert_eq!(seen[3].body, b"abc");
    assert_eq!(seen[3].header("content-length"), Some("3"));
    assert!(!seen[3].has("transfer-encoding"));
    assert_eq!(p.metric(RELAY), 3.0);
    assert_eq!(p.metric(PINGORA), 1.0);

    // After a request Pingora took, the next one on the connection is the relay's again.
    let (mut w, mut r) = connect(&p);
    w.write_all(
        b"POST /f/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
    )
    .expect("write");
    assert_eq!(
        read_response(&mut r, false).map(|r| r.text()).as_deref(),
        Some("/f/")
    );
    w.write_all(b"GET /g/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert_eq!(
        read_response(&mut r, false).map(|r| r.text()).as_deref(),
        Some("/g/")
    );
    assert_eq!(p.metric(RELAY), 4.0);
    assert_eq!(p.metric(PINGORA), 2.0);
}

#[test]
fn response_framing_passes_through() {
    let body = "x".repeat(70_000);
    let b = body.clone();
    let up = Upstream::start(move |seen| match seen.path.as_str() {
        "/chunked/" => Reply::new(200, &b).chunked(1000),
        "/empty/" => Reply::new(204, ""),
        _ => Reply::new(200, &b),
    });
    let p = Proxy::start(&config_for(&[up.addr], ""));
    let (mut w, mut r) = connect(&p);
    for (method, path) in [
        ("GET", "/chunked/"),
        ("GET", "/long/"),
        ("HEAD", "/long/"),
        ("GET", "/empty/"),
        ("GET", "/chunked/"),
    ] {
        w.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .expect("write");
        let resp = read_response(&mut r, method == "HEAD").expect("response");
        match (method, path) {
            ("HEAD", _) => {
                assert_eq!(resp.status, 200);
                assert_eq!(resp.header("content-length"), Some("70000"));
            }
            (_, "/empty/") => assert_eq!((resp.status, resp.body.len()), (204, 0)),
            (_, "/chunked/") => {
                assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
                assert_eq!(resp.text(), body);
            }
            _ => assert_eq!(resp.text(), body),
        }
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::Relaxed), 1);

    // An HTTP/1.0 client gets a chunked body decoded, ended by the close.
    let all = until_close(&p, b"GET /chunked/ HTTP/1.0\r\nHost: x\r\n\r\n");
    let text = String::from_utf8(all).expect("utf8");
    let (head, rest) = text.split_once("\r\n\r\n").expect("head");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert!(head.contains("Connection: close"), "{head}");
    assert_eq!(rest, body);
    assert_eq!(p.metric(RELAY), 6.0);
    assert_eq!(upstream_errors(&p), 0.0);
}

#[test]
fn a_keepalive_connection_the_server_closed_is_retried_on_a_new_one() {
    // The server closes every connection after answering, without saying so, as gunicorn does
    // when its keepalive timeout passes between two requests.
    let up = Upstream::fixed(Reply::new(200, "ok").close_after());
    let p = Proxy::start(&config_for(&[up.addr], ""));
    for _ in 0..4 {
        let resp = get(p.http, "/");
        assert_eq!((resp.status, resp.text()), (200, "ok".to_string()));
    }
    assert_eq!(up.count(), 4);
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(upstream_errors(&p), 0.0);
    assert_eq!(p.metric(RELAY), 4.0);

    // A server that says `Connection: close` is not reused at all; the client's connection stays.
    let up2 = Upstream::fixed(
        Reply::new(200, "ok")
            .header("Connection", "close")
            .close_after(),
    );
    let p2 = Proxy::start(&config_for(&[up2.addr], ""));
    let (mut w, mut r) = connect(&p2);
    for _ in 0..3 {
        w.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let resp = read_response(&mut r, false).expect("response");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
    assert_eq!(
        up2.connections.load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(upstream_errors(&p2), 0.0);
}

/// A server that answers each connection's first request with `raw`, then closes.
fn raw_upstream(raw: &'static [u8]) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(raw);
        }
    });
    addr
}

#[test]
fn a_response_with_two_framings_is_refused_with_502() {
    let addr = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    let p = Proxy::start(&config_for(&[addr], ""));
    let r = get(p.http, "/");
    assert_eq!(r.status, 502);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(
        p.metric("authz_edge_upstream_errors_total{kind=\"other\",upstream=\"default\"}"),
        1.0
    );
    assert_eq!(upstream_errors(&p), 1.0);
}

#[test]
fn a_server_that_dies_mid_body_is_counted_and_the_client_cut_off() {
    // Announces 100 bytes, sends 2, closes.
    let addr = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhi");
    let p = Proxy::start(&config_for(&[addr], ""));
    let all = until_close(&p, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhi"), "{text}");
    p.wait_metric(
        "authz_edge_upstream_errors_total{kind=\"reset\",upstream=\"default\"}",
        1.0,
    );
    assert_eq!(upstream_errors(&p), 1.0);
}

/// HTTP/2's stream loop ends a stream whose body Django broke off with a reset, never as if
/// whole, and answers the next stream on the same connection.
#[test]
fn an_http2_stream_whose_body_django_cuts_off_is_reset() {
    let addr = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhi");
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let p = Proxy::start(&config_for(&[addr], &tls));
    let https = p.https.expect("https");
    let client = https_client(&cert_pem, https, false);
    let url = format!("https://localhost:{}/cut/", https.port());
    for _ in 0..2 {
        let r = client.get(&url).send().expect("h2 head");
        assert_eq!(
            (r.version(), r.status().as_u16()),
            (reqwest::Version::HTTP_2, 200)
        );
        assert!(r.bytes().is_err(), "a body cut off must not read as whole");
    }
    p.wait_metric(
        "authz_edge_upstream_errors_total{kind=\"reset\",upstream=\"default\"}",
        2.0,
    );
    assert_eq!(upstream_errors(&p), 2.0);
    assert_eq!(
        (p.metric(H2), p.metric(PINGORA), p.metric(RELAY)),
        (2.0, 0.0, 0.0)
    );
}

/// What Django saw of one request with every kind of header the rewrite treats specially, and
/// the client's response; the fast path on or off, the client a trusted proxy or not.
fn seen_by_django(fast: bool, trusted: bool) -> (Vec<(String, String)>, Vec<u8>) {
    let up = path_echo();
    let mut config = config_for(
        &[up.addr],
        if trusted {
            "[forwarding]\ntrusted_proxies = [\"127.0.0.0/8\"]\n"
        } else {
            ""
        },
    );
    if !fast {
        config = config.replacen("[server]\n", "[server]\nfast_path = false\n", 1);
    }
    let p = Proxy::start(&config);
    // One `Connection` header (the harness's `request` adds its own), listing a header.
    let head = "POST /form/?a=1 HTTP/1.1\r\nHost: test.local\r\n\
        X-Forwarded-For: 6.6.6.6\r\nx-forwarded-proto: https\r\n\
        X-Forwarded-Host: shop.example\r\nX-Forwarded-Port: 443\r\n\
        X_Shadow: 1\r\nX-Authz-Kind: forged\r\nx_app_release: forged\r\n\
        Cookie: sessionid=abcdef123\r\nContent-Type: application/x-www-form-urlencoded\r\n\
        Connection: close, X-Listed\r\nX-Listed: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
        Proxy-Authorization: Basic eDp5\r\nX-Request-Id: req-42.a_b\r\nX-Custom: kept\r\n\
        Content-Length: 3\r\n\r\nx=1";
    let r = raw_request(p.http, head.as_bytes(), false).expect("response");
    assert_eq!((r.status, r.text()), (200, "/form/?a=1".to_string()));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.header("x-authz-route").is_none());
    let (fast_count, pingora_count) = (p.metric(RELAY), p.metric(PINGORA));
    assert_eq!(
        (fast_count, pingora_count),
        if fast { (1.0, 0.0) } else { (0.0, 1.0) }
    );
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    let mut h = seen[0].headers.clone();
    h.sort();
    (h, seen[0].body.clone())
}

#[test]
fn with_the_fast_path_off_pingora_takes_everything_and_django_sees_the_same() {
    for trusted in [false, true] {
        let fast = seen_by_django(true, trusted);
        let pingora = seen_by_django(false, trusted);
        assert_eq!(fast, pingora, "trusted: {trusted}");
        assert_eq!(fast.1, b"x=1");
        let get = |n: &str| fast.0.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-request-id"), Some("req-42.a_b"));
        assert_eq!(get("x-custom"), Some("kept"));
        assert_eq!(get("cookie"), Some("sessionid=abcdef123"));
        assert_eq!(get("content-length"), Some("3"));
        for gone in [
            "x_shadow",
            "x-authz-kind",
            "x_app_release",
            "connection",
            "x-listed",
            "keep-alive",
            "te",
            "proxy-authorization",
        ] {
            assert_eq!(
                get(gone),
                None,
                "{gone} reached Django (trusted: {trusted})"
            );
        }
        if trusted {
            assert_eq!(get("x-forwarded-for"), Some("6.6.6.6, 127.0.0.1"));
            assert_eq!(get("x-forwarded-proto"), Some("https"));
            assert_eq!(get("x-forwarded-host"), Some("shop.example"));
            assert_eq!(get("x-forwarded-port"), Some("443"));
            assert_eq!(get("x-real-ip"), Some("127.0.0.1"));
        } else {
            assert_eq!(get("x-forwarded-for"), Some("127.0.0.1"));
            assert_eq!(get("x-forwarded-proto"), Some("http"));
            assert_eq!(get("x-forwarded-host"), None);
            assert_eq!(get("x-forwarded-port"), None);
            assert_eq!(get("x-real-ip"), Some("127.0.0.1"));
        }
    }
}

/// Request lines a test server read, with the number of the connection each came on.
type RequestLines = std::sync::Arc<std::sync::Mutex<Vec<(usize, String)>>>;

/// A server that answers the first request on each connection (keeping it open), then reads
/// the next request on it and closes without a byte: the race of a keepalive timeout that
/// fires just as a request arrives. Returns the address and every request line it read, with
/// the connection it came on.
fn closes_on_second_request() -> (std::net::SocketAddr, RequestLines) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (conn, s) in listener.incoming().flatten().enumerate() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut w = s;
                for n in 0.. {
                    let mut line = String::new();
                    if std::io::BufRead::read_line(&mut r, &mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        if std::io::BufRead::read_line(&mut r, &mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if h.trim().is_empty() {
                            break;
                        }
                    }
                    let mut body = vec![0u8; len];
                    let _ = r.read_exact(&mut body);
                    log.lock()
                        .expect("lock")
                        .push((conn, line.trim().to_string()));
                    if n > 0 {
                        return; // closes with nothing back
                    }
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn a_reused_connection_that_dies_resends_a_get_once_and_never_a_post() {
    let (addr, seen) = closes_on_second_request();
    let p = Proxy::start(&config_for(&[addr], ""));
    // The connection goes back to the pool before the client is sent the response's last
    // byte (`upstream::response_body`), so the next request finds it there.
    assert_eq!(get(p.http, "/warm/").status, 200);
    // The GET goes out on the pooled connection, which dies with nothing back: it is sent once
    // more on a new connection, and answered there.
    assert_eq!(get(p.http, "/again/").status, 200);
    // Connection numbers count the health check's connects too: compare them to the first.
    let lines: Vec<(usize, String)> = seen.lock().expect("lock").clone();
    // A health check's connect may come between: the resend is on a later connection.
    let first = lines[0].0;
    let resent_on = lines.get(2).map_or(first, |l| l.0);
    assert!(resent_on > first, "resent on a new connection: {lines:?}");
    let on_first: Vec<(bool, &str)> = lines
        .iter()
        .map(|(c, l)| (*c == first, l.as_str()))
        .collect();
    assert_eq!(
        on_first,
        vec![
            (true, "GET /warm/ HTTP/1.1"),
            (true, "GET /again/ HTTP/1.1"),
            (false, "GET /again/ HTTP/1.1"),
        ]
    );
    // That connection now idles in the pool. A POST on it dies the same way: 502, never resent.
    let r = request(p.http, "POST", "/pay/", &[], b"amount=5");
    assert_eq!(r.status, 502);
    let posts: Vec<(usize, String)> = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, l)| l.starts_with("POST"))
        .cloned()
        .collect();
    assert_eq!(posts, vec![(resent_on, "POST /pay/ HTTP/1.1".to_string())]);
    assert_eq!(
        p.metric("authz_edge_upstream_errors_total{kind=\"reset\",upstream=\"default\"}"),
        1.0
    );
    // The same on Pingora's loop (fast_path off): one policy for both.
    let (addr, seen) = closes_on_second_request();
    let config = config_for(&[addr], "").replace("[server]\n", "[server]\nfast_path = false\n");
    let p = Proxy::start(&config);
    assert_eq!(get(p.http, "/warm/").status, 200);
    assert_eq!(request(p.http, "PATCH", "/pay/", &[], b"x").status, 502);
    assert_eq!(get(p.http, "/after/").status, 200);
    let patches = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, l)| l.starts_with("PATCH"))
        .count();
    assert_eq!(patches, 1);
}
