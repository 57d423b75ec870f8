//! The proxy's own mechanics against in-test upstreams: forwarding, pools, failures, lifecycle.

mod common;

use common::*;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn echo() -> Upstream {
    Upstream::fixed(Reply::new(200, "ok"))
}

#[test]
fn forwarded_headers_from_an_untrusted_client_are_overwritten() {
    let up = echo();
    let p = Proxy::start(&config_for(&[up.addr], ""));
    let r = request(
        p.http,
        "GET",
        "/page/?q=1",
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Real-IP", "6.6.6.6"),
            ("X_Custom_Header", "shadow"),
            ("X-Authz-User", "1"),
            ("x_authz_kind", "permission"),
            ("X-AUTHZ-ROUTE", "/forged/"),
            ("X-App-Release", "forged"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic eDp5"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.path, "/page/?q=1");
    // Host is kept as the client sent it (the harness's own Host comes first).
    assert_eq!(s.header("host"), Some("test.local"));
    assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(s.header("x-forwarded-proto"), Some("http"));
    assert_eq!(s.header("x-real-ip"), Some("127.0.0.1"));
    for gone in [
        "x-forwarded-host",
        "x_custom_header",
        "x-authz-user",
        "x_authz_kind",
        "x-authz-route",
        "x-app-release",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
    ] {
        assert!(!s.has(gone), "{gone} reached the upstream: {:?}", s.headers);
    }
    let id = s.header("x-request-id").expect("request id set");
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn forwarded_headers_from_a_trusted_proxy_are_kept_and_a_request_id_is_kept() {
    let up = echo();
    let p = Proxy::start(&config_for(
        &[up.addr],
        "[forwarding]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
    ));
    let r = request(
        p.http,
        "GET",
        "/",
        &[
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Proto", "https"),
            ("X-Real-IP", "1.2.3.4"),
            ("X-Request-Id", "req-abc.123"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let s = &up.requests()[0];
    assert_eq!(s.header("x-forwarded-for"), Some("1.2.3.4, 127.0.0.1"));
    assert_eq!(s.header("x-forwarded-proto"), Some("https"));
    assert_eq!(s.header("x-real-ip"), Some("1.2.3.4"));
    assert_eq!(s.header("x-request-id"), Some("req-abc.123"));
}

/// Django answering every kind of response with context headers in every spelling.
fn leaky(seen: &Seen) -> Reply {
    let status = match seen.path.trim_start_matches('/').split('/').next() {
        Some("s") => seen.path[3..].parse().unwrap_or(200),
        _ => 200,
    };
    let mut r = Reply::new(status, "body with enough text to stream in several chunks")
        .header("X-Authz-User", "42")
        .header("x-authz-kind", "permission")
        .header("X-AUTHZ-PERMISSION", "app.perm")
        .header("X-Authz-Route", "/s/<int:code>")
        .header("X-Authz-Reason", "nope")
        .header("X-App-Release", "v9")
        .header("X-Authz-Future-Field", "x");
    if status == 301 {
        r = r.header("Location", "/elsewhere/");
    }
    if seen.path.ends_with("?stream") {
        r = r.chunked(7);
    }
    r
}

#[test]
fn context_headers_never_reach_the_client() {
    let up = Upstream::start(leaky);
    let p = Proxy::start(&config_for(&[up.addr], ""));
    let cases: Vec<(&str, &str)> = vec![
        ("GET", "/s/200"),
        ("GET", "/s/204"),
        ("GET", "/s/301"),
        ("GET", "/s/304"),
        ("GET", "/s/401"),
        ("GET", "/s/403"),
        ("GET", "/s/404"),
        ("GET", "/s/500"),
        ("HEAD", "/s/200"),
        ("HEAD", "/s/403"),
        ("GET", "/s/200?stream"),
        ("POST", "/s/403"),
    ];
    for (method, path) in cases {
        let r = request(p.http, method, path, &[], b"");
        for n in r.names() {
            assert!(
                !n.starts_with("x-authz") && n != "x-app-release",
                "{method} {path} leaked {n}"
            );
        }
    }
    // A streamed body arrives whole.
    let r = get(p.http, "/s/200?stream");
    assert_eq!(
        r.text(),
        "body with enough text to stream in several chunks"
    );
}

/// HTTP/2 streams are served by their own loop (`accept::h2`), which writes Django's request
/// head straight from the client's header map and builds the client's response head from
/// Django's: the same rules as the other loops, both ways.
#[test]
fn an_http2_request_gets_the_same_header_rules_both_ways() {
    let up = Upstream::start(leaky);
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let p = Proxy::start(&config_for(&[up.addr], &tls));
    let https = p.https.expect("https listener");
    let client = https_client(&cert_pem, https, false);
    let r = client
        .get(format!("https://localhost:{}/s/403", https.port()))
        .header("x-keep", "1")
        .header("x-authz-user", "7")
        .header("x-app-release", "forged")
        .header("x_custom", "1")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-real-ip", "1.2.3.4")
        .header("x-request-id", "req-h2.1")
        .header("te", "trailers")
        .send()
        .expect("h2 request");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 403);
    let mut names: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["content-length", "content-type", "date"]);
    assert_eq!(
        r.text().expect("body"),
        "body with enough text to stream in several chunks"
    );

    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    let mut names: Vec<&str> = seen[0].headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "accept",
            "host",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-keep",
            "x-real-ip",
            "x-request-id"
        ]
    );
    let host = format!("localhost:{}", https.port());
    assert_eq!(seen[0].header("host"), Some(&*host));
    assert_eq!(seen[0].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen[0].header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen[0].header("x-request-id"), Some("req-h2.1"));

    // Django's context headers, kept from the client, were read: one denial, with its user.
    p.wait_metric(
        "authz_edge_denials_total{authn=\"authenticated\",kind=\"permission\",route=\"/s/<int:code>\",status=\"403\"}",
        1.0,
    );
    assert_eq!(
        p.metric(
            "authz_edge_permission_denials_total{permission=\"app.perm\",route=\"/s/<int:code>\"}"
        ),
        1.0
    );
    assert_eq!(
        p.metric("authz_edge_proxied_requests_total{proxy_loop=\"h2\"}"),
        1.0
    );
}

#[test]
fn round_robin_over_servers_with_keepalive_reuse() {
    let (a, b) = (echo(), echo());
    let p = Proxy::start(&config_for(&[a.addr, b.addr], ""));
    for _ in 0..10 {
        assert_eq!(get(p.http, "/").status, 200);
    }
    assert_eq!(a.count(), 5);
    assert_eq!(b.count(), 5);
    // Sequential requests reuse pooled upstream connections.
    let conns = a.connections.load(std::sync::atomic::Ordering::Relaxed)
        + b.connections.load(std::sync::atomic::Ordering::Relaxed);
    assert!(conns <= 4, "{conns} upstream connections for 10 requests");
}

#[test]
fn a_refused_server_is_skipped_and_counted() {
    let live = echo();
    let dead: std::net::SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let p = Proxy::start(&config_for(&[dead, live.addr], ""));
    for _ in 0..6 {
        assert_eq!(get(p.http, "/").status, 200);
    }
    assert_eq!(live.count(), 6);
    // One refusal, then the server is skipped for upstream.fail_timeout (10s by default).
    assert_eq!(
        p.metric("authz_edge_upstream_errors_total{kind=\"connect\",upstream=\"default\"}"),
        1.0
    );
}

#[test]
fn no_reachable_server_gives_502_and_a_slow_one_504() {
    let dead: std::net::SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let p = Proxy::start(&config_for(&[dead], ""));
    let r = get(p.http, "/x/");
    assert_eq!(r.status, 502);
    assert!(r.text().contains("Bad Gateway"), "{}", r.text());
    assert_eq!(
        p.metric("authz_edge_upstream_errors_total{kind=\"connect\",upstream=\"default\"}"),
        1.0
    );
    let m = p.wait_metric(
        "authz_edge_requests_total{route=\"/x/\",status_class=\"5xx\"}",
        1.0,
    );
    assert_eq!(
        metric_value(
            &m,
            "authz_edge_requests_total{route=\"/x/\",status_class=\"5xx\"}"
        ),
        1.0
    );
    drop(p);

    let slow = Upstream::fixed(Reply::new(200, "late").delay(Duration::from_millis(1500)));
    let p = Proxy::start(
        &config_for(&[slow.addr], "")
            .replace("[upstream]\n", "[upstream]\nread_timeout = \"300ms\"\n"),
    );
    let r = get(p.http, "/slow/");
    assert_eq!(r.status, 504);
    assert!(r.text().contains("Gateway Timeout"), "{}", r.text());
    assert_eq!(
        p.metric("authz_edge_upstream_errors_total{kind=\"timeout\",upstream=\"default\"}"),
        1.0
    );
    assert_eq!(
        p.metric("authz_edge_upstream_errors_total{kind=\"connect\",upstream=\"default\"}"),
        0.0
    );
}

const LIMITS: &str = "[limits]\nmax_header_bytes = 2048\nmax_headers = 20\nmax_uri_bytes = 256\nmax_body_bytes = 1000\nheader_timeout = \"500ms\"\n";

#[test]
fn oversized_and_malformed_requests_never_reach_django() {
    let up = echo();
    let p = Proxy::start(&config_for(&[up.addr], LIMITS));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(3000)
    );
    let many = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        (0..30)
            .map(|i| format!("X-H{i}: 1\r\n"))
            .collect::<String>()
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(300));
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (big_header.into_bytes(), 431, "header_too_large"),
        (many.into_bytes(), 431, "too_many_headers"),
        (long_uri.into_bytes(), 414, "uri_too_long"),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n".to_vec(),
            413,
            "body_too_large",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "conflicting_length",
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n".to_vec(), 400, "bad_request"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n".to_vec(), 400, "bad_request"),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n".to_vec(), 400, "bad_request"),
    ];
    for (raw, status, _) in &cases {
        let r = raw_request(p.http, raw, false).expect("a response");
        assert_eq!(
            r.status,
            *status,
            "{}",
            String::from_utf8_lossy(&raw[..40.min(raw.len())])
        );
    }
    // A chunked body over the limit, streamed in pieces.
    let mut s = TcpStream::connect(p.http).expect("connect");
    s.write_all(b"POST /upload/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("write");
    for _ in 0..3 {
        s.write_all(format!("190\r\n{}\r\n", "b".repeat(400)).as_bytes())
            .expect("write chunk");
    }
    s.write_all(b"0\r\n\r\n").expect("write end");
    let r = read_response(&mut BufReader::new(s), false).expect("a response");
    assert_eq!(r.status, 413);

    assert_eq!(up.count(), 0, "a refused request reached the upstream");
    let m = p.metrics();
    let count = |reason: &str| {
        metric_value(
            &m,
            &format!("authz_edge_rejected_requests_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(count("header_too_large"), 1.0);
    assert_eq!(count("too_many_headers"), 1.0);
    assert_eq!(count("uri_too_long"), 1.0);
    assert_eq!(count("body_too_large"), 2.0);
    assert_eq!(count("conflicting_length"), 1.0);
    assert_eq!(count("bad_request"), 3.0);
}

#[test]
fn a_small_chunked_body_is_forwarded_with_a_length() {
    let up = echo();
    let p = Proxy::start(&config_for(&[up.addr], LIMITS));
    let raw = b"POST /form/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let r = raw_request(p.http, raw, false).expect("response");
    assert_eq!(r.status, 200);
    let s = &up.requests()[0];
    assert_eq!(s.body, b"hello world");
    assert_eq!(s.header("content-length"), Some("11"));
    assert!(!s.has("transfer-encoding"));
}

#[test]
fn a_slow_request_head_is_cut_off() {
    let up = echo();
    let p = Proxy::start(&config_for(&[up.addr], LIMITS));
    let mut s = TcpStream::connect(p.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // Trickle a head that never ends; the deadline covers the whole head, not each read.
    let started = Instant::now();
    let mut answered = None;
    for i in 0..40 {
        if s.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
            .is_err()
            && i > 0
        {
            break;
        }
        if i == 0 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
                .expect("write");
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    let mut reader = BufReader::new(s);
    if let Some(r) = read_response(&mut reader, false) {
        answered = Some(r.status);
    }
    assert_eq!(answered, Some(408));
    assert_eq!(up.count(), 0);
    assert_eq!(
        p.metric("authz_edge_rejected_requests_total{reason=\"header_timeout\"}"),
        1.0
    );
}

#[test]
fn a_keepalive_connection_serves_a_bounded_number_of_requests() {
    let up = echo();
    let p = Proxy::start(&config_for(
        &[up.addr],
        "[limits]\nmax_requests_per_connection = 3\n",
    ));
    let s = TcpStream::connect(p.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut answered = 0;
    for _ in 0..5 {
        if w.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_err() {
            break;
        }
        match read_response(&mut r, false) {
            Some(resp) => {
                assert_eq!(resp.status, 200);
                answered += 1;
            }
            None => break,
        }
    }
    assert_eq!(answered, 3);
}

#[test]
fn https_with_http2_and_a_redirect_from_http() {
    let up = echo();
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "redirect_http = true\n");
    let p = Proxy::start(&config_for(&[up.addr], &tls));
    let https = p.https.expect("https listener");
    let client = https_client(&cert_pem, https, false);
    let resp = client
        .get(format!("https://localhost:{}/secure/", https.port()))
        .send()
        .expect("https request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let s = &up.requests()[0];
    assert_eq!(s.header("x-forwarded-proto"), Some("https"));
    assert_eq!(
        s.header("host"),
        Some(&*format!("localhost:{}", https.port()))
    );

    let r = get(p.http, "/login/?next=/a/");
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(&*format!(
            "https://test.local:{}/login/?next=/a/",
            https.port()
        ))
    );
    assert_eq!(up.count(), 1, "the redirect never reaches Django");
}

#[test]
fn sighup_swaps_a_good_config_and_refuses_a_bad_one() {
    let (a, b) = (echo(), echo());
    let p = Proxy::start(&config_for(&[a.addr], ""));
    assert_eq!(get(p.http, "/").status, 200);
    assert_eq!(a.count(), 1);

    p.reload(&config_for(&[b.addr], ""));
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.metric("authz_edge_config_generation") < 2.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(p.metric("authz_edge_config_generation"), 2.0);
    assert_eq!(
        p.metric("authz_edge_config_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(get(p.http, "/").status, 200);
    assert_eq!(b.count(), 1);

    p.reload(&config_for(&[b.addr], "").replace("[upstream]\n", "[upstream]\ncolour = \"blue\"\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.metric("authz_edge_config_reloads_total{result=\"error\"}") < 1.0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        p.metric("authz_edge_config_reloads_total{result=\"error\"}"),
        1.0
    );
    assert_eq!(p.metric("authz_edge_config_generation"), 2.0);
    assert_eq!(get(p.http, "/").status, 200);
    assert_eq!(b.count(), 2, "the old config keeps serving");
    p.wait_stderr("upstream.colour");
    // One ERROR line per problem, and no stray line: a file with two bad keys gives two.
    p.reload(&config_for(&[b.addr], "").replace(
        "[upstream]\n",
        "[upstream]\ncolour = \"blue\"\nread_timeout = 60\n",
    ));
    let text = p.wait_stderr("upstream.read_timeout");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("config reload refused"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l.contains(" ERROR ")), "{text}");
    assert!(
        lines[2].ends_with(
            "upstream.read_timeout: 60 has no unit: write a duration such as \"60s\" (a string)"
        ) || lines[1].ends_with(
            "upstream.read_timeout: 60 has no unit: write a duration such as \"60s\" (a string)"
        ),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("in `")),
        "no stray line: {text}"
    );

    // A listener change is applied only by a restart or --upgrade; the reload says so.
    let moved = config_for(&[b.addr], "").replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"127.0.0.1:0\", \"127.0.0.1:1\"]",
    );
    p.reload(&moved);
    p.wait_metric("authz_edge_config_generation", 3.0);
    let log = p.wait_stderr("--upgrade");
    assert!(
        log.lines()
            .any(|l| l.contains("server.listen") && l.contains("--upgrade")),
        "{log}"
    );
}

#[test]
fn health_checks_take_a_failing_server_out_and_readyz_follows() {
    let good = echo();
    let sick = Upstream::start(|s| {
        if s.path == "/healthz" {
            Reply::new(500, "sick")
        } else {
            Reply::new(200, "ok")
        }
    });
    let hc = "[upstream]\nhealth_check = { path = \"/healthz\", interval = \"200ms\", timeout = \"500ms\" }\n";
    let p = Proxy::start(&config_for(&[good.addr, sick.addr], "").replace("[upstream]\n", hc));
    // Wait for two failed checks (the threshold), then all traffic goes to the good one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sick
        .requests()
        .iter()
        .filter(|s| s.path == "/healthz")
        .count()
        < 3
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = sick
        .requests()
        .iter()
        .filter(|s| s.path != "/healthz")
        .count();
    for _ in 0..6 {
        assert_eq!(get(p.http, "/page/").status, 200);
    }
    let after = sick
        .requests()
        .iter()
        .filter(|s| s.path != "/healthz")
        .count();
    assert_eq!(after, before, "traffic went to the unhealthy server");
    assert_eq!(get(p.admin, "/readyz").status, 200);

    // With every server unhealthy, /readyz says so.
    let p2 = Proxy::start(&config_for(&[sick.addr], "").replace("[upstream]\n", hc));
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(p2.admin, "/readyz").status != 503 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(p2.admin, "/readyz").status, 503);
    assert_eq!(get(p2.admin, "/healthz").status, 200);
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let slow = Upstream::fixed(Reply::new(200, "done").delay(Duration::from_millis(800)));
    let p = Proxy::start(
        &config_for(&[slow.addr], "").replace("grace_period = \"1s\"", "grace_period = \"2s\""),
    );
    let addr = p.http;
    let t = std::thread::spawn(move || get(addr, "/slow/"));
    while slow.count() == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    p.signal(libc::SIGTERM);
    let r = t.join().expect("join");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "done");
    let mut p = p;
    let status = wait_exit(&mut p.child, Duration::from_secs(15));
    assert!(status.success() || status.code().is_none(), "{status:?}");
}

/// The same over HTTP/2: the connection gets GOAWAY, and its open stream is answered whole
/// before the proxy exits (`accept::h2` keeps Pingora's drain).
#[test]
fn sigterm_lets_an_in_flight_http2_stream_finish() {
    let slow = Upstream::fixed(Reply::new(200, "done").delay(Duration::from_millis(800)));
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let p = Proxy::start(
        &config_for(&[slow.addr], &tls).replace("grace_period = \"1s\"", "grace_period = \"2s\""),
    );
    let https = p.https.expect("https");
    let client = https_client(&cert_pem, https, false);
    let url = format!("https://localhost:{}/slow/", https.port());
    let t = std::thread::spawn(move || {
        let r = client.get(url).send().expect("h2 request");
        (r.version(), r.status().as_u16(), r.text().expect("body"))
    });
    while slow.count() == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    p.signal(libc::SIGTERM);
    let (version, status, body) = t.join().expect("join");
    assert_eq!(
        (version, status, body.as_str()),
        (reqwest::Version::HTTP_2, 200, "done")
    );
    let mut p = p;
    let status = wait_exit(&mut p.child, Duration::from_secs(15));
    assert!(status.success() || status.code().is_none(), "{status:?}");
}

#[test]
fn upgrade_hands_the_sockets_over_without_refusing_a_connection() {
    let up = echo();
    let port = free_port();
    let admin = free_port();
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("up.sock");
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nadmin = \"127.0.0.1:{admin}\"\ngrace_period = \"1s\"\n\
         upgrade_sock = \"{}\"\npid_file = \"{}\"\n[upstream]\nservers = [\"{}\"]\n[sink]\ntype = \"none\"\n",
        sock.display(),
        dir.path().join("pid").display(),
        up.addr
    );
    let old = Proxy::start(&config);
    let addr = old.http;

    // Load: a new connection per request, until told to stop (bounded by count and time).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let load = std::thread::spawn(move || {
        let (mut ok, mut failed) = (0u32, Vec::new());
        let started = Instant::now();
        while !s2.load(std::sync::atomic::Ordering::Relaxed)
            && started.elapsed() < Duration::from_secs(30)
            && ok < 100_000
        {
            match TcpStream::connect(addr) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
                    match read_response(&mut BufReader::new(s), false) {
                        Some(r) if r.status == 200 => ok += 1,
                        other => failed.push(format!("{:?}", other.map(|r| r.status))),
                    }
                }
                Err(e) => failed.push(e.to_string()),
            }
        }
        (ok, failed)
    });
    std::thread::sleep(Duration::from_millis(300));

    // The new process waits for the sockets; then the old one is told to hand them over.
    let mut new = std::process::Command::new(bin())
        .args([
            "--config",
            &old.config_path.display().to_string(),
            "--upgrade",
        ])
        .env("AUTHZ_EDGE_HASH_KEY", "test-key")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn new");
    std::thread::sleep(Duration::from_millis(500));
    old.signal(libc::SIGQUIT);
    let mut old = old;
    wait_exit(&mut old.child, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.join().expect("join");
    // The new process serves.
    assert_eq!(get(addr, "/after/").status, 200);
    unsafe {
        libc::kill(new.id() as i32, libc::SIGINT);
    }
    wait_exit(&mut new, Duration::from_secs(10));
    assert!(ok > 20, "only {ok} requests under load");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

#[test]
fn http2_requests_get_the_same_limits() {
    let up = echo();
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let p = Proxy::start(&config_for(&[up.addr], &format!("{tls}{LIMITS}")));
    let https = p.https.expect("https");
    let client = https_client(&cert_pem, https, false);
    let base = format!("https://localhost:{}", https.port());

    let mut many = reqwest::header::HeaderMap::new();
    for i in 0..30 {
        many.insert(
            reqwest::header::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).expect("name"),
            "1".parse().expect("value"),
        );
    }
    let r = client
        .get(format!("{base}/many/"))
        .headers(many)
        .send()
        .expect("h2");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 431);
    let r = client
        .get(format!("{base}/{}", "u".repeat(300)))
        .send()
        .expect("h2");
    assert_eq!(r.status(), 414);
    let r = client
        .post(format!("{base}/upload/"))
        .body(vec![b'x'; 5000])
        .send()
        .expect("h2");
    assert_eq!(r.status(), 413);
    let r = client.get(format!("{base}/fine/")).send().expect("h2");
    assert_eq!(r.status(), 200);
    assert_eq!(
        up.count(),
        1,
        "only the request within limits reached the upstream"
    );
    // Every stream went through the HTTP/2 stream loop, refusals included.
    assert_eq!(
        p.metric("authz_edge_proxied_requests_total{proxy_loop=\"h2\"}"),
        4.0
    );
    assert_eq!(
        p.metric("authz_edge_proxied_requests_total{proxy_loop=\"pingora\"}"),
        0.0
    );
    assert_eq!(
        p.metric("authz_edge_rejected_requests_total{reason=\"header_too_large\"}")
            + p.metric("authz_edge_rejected_requests_total{reason=\"too_many_headers\"}"),
        1.0
    );
}

#[test]
fn without_an_http_check_readyz_follows_a_tcp_check() {
    let dead: std::net::SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let p = Proxy::start(&config_for(&[dead], ""));
    // Two failed connects in a row (at start and one interval later) take the server out.
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(p.admin, "/readyz").status != 503 {
        assert!(
            Instant::now() < deadline,
            "/readyz never said 503 with nothing listening"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let up = echo();
    let p2 = Proxy::start(&config_for(&[up.addr], ""));
    assert_eq!(get(p2.admin, "/readyz").status, 200);
    assert_eq!(get(p2.http, "/").status, 200);
}

#[test]
fn https_with_http1_goes_through_the_head_guard() {
    let up = echo();
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let p = Proxy::start(&config_for(&[up.addr], &format!("{tls}{LIMITS}")));
    let https = p.https.expect("https");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .resolve("localhost", https)
        .http1_only()
        .build()
        .expect("client");
    let base = format!("https://localhost:{}", https.port());
    for _ in 0..3 {
        let r = client
            .get(format!("{base}/page/"))
            .send()
            .expect("h1 over tls");
        assert_eq!(r.version(), reqwest::Version::HTTP_11);
        assert_eq!(r.status(), 200);
    }
    let r = client
        .get(format!("{base}/{}", "u".repeat(300)))
        .send()
        .expect("h1 over tls");
    assert_eq!(r.status(), 414);
    assert_eq!(up.count(), 3);
    assert!(up
        .requests()
        .iter()
        .all(|s| s.header("x-forwarded-proto") == Some("https")));
}

#[test]
fn a_websocket_upgrade_passes_through() {
    use std::io::{BufRead, Read};
    // An upstream that switches protocols, then echoes what it receives.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let up_addr = listener.local_addr().expect("addr");
    let seen_head = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = seen_head.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut r = BufReader::new(stream.try_clone().expect("clone"));
            let mut w = stream;
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            if !head.to_ascii_lowercase().contains("upgrade: websocket") {
                continue; // a health-check probe
            }
            *seen.lock().expect("lock") = head;
            let _ = w.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Authz-Route: /ws/\r\n\r\n",
            );
            let mut buf = [0u8; 64];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 || w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    // Tunnel bytes are not a request body: a session may carry more than max_body_bytes.
    let p = Proxy::start(&config_for(&[up_addr], "[limits]\nmax_body_bytes = 4096\n"));
    // Pingora 0.9 sometimes tears a fresh tunnel down right after the 101 when the upstream
    // answers before the request's (empty) body end is processed: cloudflare/pingora#946, fix
    // pending upstream. What authz-edge controls is checked on every attempt; bytes must flow
    // through the tunnel on at least one of a few attempts.
    let mut echoed = 0;
    for _ in 0..5 {
        let mut s = TcpStream::connect(p.http).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(
            b"GET /ws/ HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .expect("write");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let mut status = String::new();
        r.read_line(&mut status).expect("status line");
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        let mut headers = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            headers.push_str(&line.to_ascii_lowercase());
        }
        assert!(headers.contains("upgrade: websocket"), "{headers}");
        assert!(
            !headers.contains("x-authz"),
            "context header leaked: {headers}"
        );
        let head = seen_head.lock().expect("lock").to_ascii_lowercase();
        assert!(
            head.contains("connection: upgrade") && head.contains("upgrade: websocket"),
            "{head}"
        );
        s.write_all(b"ping-frame").expect("write frame");
        let mut echo = [0u8; 10];
        if r.read_exact(&mut echo).is_ok() {
            assert_eq!(&echo, b"ping-frame");
            // 16 KiB more, four times the body limit, in 1 KiB frames.
            for i in 0..16u8 {
                let frame = [b'a' + i; 1024];
                s.write_all(&frame).expect("write frame");
                let mut back = [0u8; 1024];
                r.read_exact(&mut back).expect("echo past max_body_bytes");
                assert_eq!(back, frame);
            }
            echoed += 1;
        }
    }
    assert!(echoed >= 1, "no tunnel carried bytes in 5 attempts");
}

#[test]
fn unsized_bodies_up_to_the_limit_reach_django_with_a_length() {
    let up = echo();
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let limits = "[limits]\nmax_body_bytes = 300000\n";
    let p = Proxy::start(&config_for(&[up.addr], &format!("{tls}{limits}")));

    // HTTP/1.1 chunked, 200 000 bytes in 50 chunks: far past Pingora's 64 KiB retry buffer.
    let mut raw = b"POST /upload/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..50 {
        raw.extend_from_slice(b"fa0\r\n");
        raw.extend_from_slice(&[b'c'; 4000]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = raw_request(p.http, &raw, false).expect("response");
    assert_eq!(r.status, 200);
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.len(), 200_000);
    assert_eq!(seen[0].header("content-length"), Some("200000"));
    assert!(!seen[0].has("transfer-encoding"));

    // HTTP/2 without a length (a streamed body), 250 000 bytes.
    let https = p.https.expect("https");
    let client = https_client(&cert_pem, https, false);
    let base = format!("https://localhost:{}", https.port());
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(vec![b'h'; 250_000]));
    let r = client
        .post(format!("{base}/upload/h2/"))
        .body(body)
        .send()
        .expect("h2");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].path, "/upload/h2/");
    assert_eq!(seen[1].body.len(), 250_000);
    assert_eq!(seen[1].header("content-length"), Some("250000"));
    assert!(seen[1].has("x-forwarded-for"));

    // Past the limit: 413 as soon as the limit is passed (the client may still be sending and
    // see its stream reset instead), and Django sees nothing.
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(vec![b'h'; 400_000]));
    match client.post(format!("{base}/upload/big/")).body(body).send() {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_body() || e.is_request(), "{e}"),
    }
    assert_eq!(up.count(), 2);
    assert_eq!(
        p.metric("authz_edge_rejected_requests_total{reason=\"body_too_large\"}"),
        1.0
    );
    // Both were past limits.body_buffer_bytes (64 KiB): written to a file, not held.
    assert_eq!(p.metric("authz_edge_request_bodies_spooled_total"), 2.0);
}

#[test]
fn bodies_past_the_memory_threshold_go_through_a_file_intact() {
    let up = echo();
    let dir = tempfile::tempdir().expect("tmp");
    let temp = dir.path().join("bodies");
    std::fs::create_dir(&temp).expect("mkdir");
    let limits = format!(
        "[limits]\nmax_body_bytes = 2000000\nbody_buffer_bytes = 1024\nbody_temp_dir = \"{}\"\n",
        temp.display()
    );
    let p = Proxy::start(&config_for(&[up.addr], &limits));
    // Every byte different from its neighbours, so that a chunk out of place shows.
    let body: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let post = |path: &str, chunked: bool| {
        let mut raw = format!("POST {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
        if chunked {
            raw.push_str("Transfer-Encoding: chunked\r\n\r\n");
            let mut raw = raw.into_bytes();
            for piece in body.chunks(70_000) {
                raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                raw.extend_from_slice(piece);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"0\r\n\r\n");
            raw
        } else {
            raw.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            let mut raw = raw.into_bytes();
            raw.extend_from_slice(&body);
            raw
        }
    };
    let r = raw_request(p.http, &post("/chunked/", true), false).expect("response");
    assert_eq!(r.status, 200);
    let r = raw_request(p.http, &post("/sized/", false), false).expect("response");
    assert_eq!(r.status, 200);
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.header("content-length"), Some("1500000"), "{}", s.path);
        assert!(s.body == body, "{}: the body arrived changed", s.path);
    }
    assert_eq!(p.metric("authz_edge_request_bodies_spooled_total"), 2.0);
    // The files have no name: nothing is left in the directory.
    assert_eq!(std::fs::read_dir(&temp).expect("dir").count(), 0);
    // A small body stays in memory.
    let r = raw_request(
        p.http,
        b"POST /small/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        false,
    )
    .expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(p.metric("authz_edge_request_bodies_spooled_total"), 2.0);
    assert_eq!(up.requests()[2].body, b"hello");

    // The directory gone: the body cannot be written, so 503, and Django sees nothing.
    std::fs::remove_dir(&temp).expect("rmdir");
    let r = raw_request(p.http, &post("/lost/", true), false).expect("response");
    assert_eq!(r.status, 503);
    assert_eq!(up.count(), 3);
    assert_eq!(
        p.metric("authz_edge_rejected_requests_total{reason=\"body_buffer_full\"}"),
        1.0
    );
    p.wait_stderr("cannot write a request body to limits.body_temp_dir");
}

#[test]
fn tls_sessions_resume_with_tickets_on_tls12_and_tls13() {
    let up = echo();
    let dir = tempfile::tempdir().expect("tmp");
    let (_, tls) = self_signed_tls(dir.path(), "");
    let p = Proxy::start(&config_for(&[up.addr], &tls));
    let https = p.https.expect("https");
    // Python's ssl (OpenSSL) as the client: a full handshake, then one resuming its session.
    let script = r#"
import socket, ssl, sys
port = int(sys.argv[1])
def context(version, alpn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols(alpn)
    return ctx
for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
    probe = context(version, ["h2", "http/1.1"]).wrap_socket(
        socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    alpn = probe.selected_alpn_protocol()
    probe.close()
    ctx = context(version, ["http/1.1"])
    session, seen = None, []
    for _ in range(2):
        raw = socket.create_connection(("127.0.0.1", port))
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while True:
            got = s.recv(65536)
            if not got:
                break
            answer += got
        seen.append((s.version(), s.session_reused, answer.split(b"\r\n")[0].decode()))
        session = s.session
        s.close()
    print(alpn, seen)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &https.port().to_string()])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "h2 [('TLSv1.2', False, 'HTTP/1.1 200 X'), ('TLSv1.2', True, 'HTTP/1.1 200 X')]\n\
         h2 [('TLSv1.3', False, 'HTTP/1.1 200 X'), ('TLSv1.3', True, 'HTTP/1.1 200 X')]\n",
        "ALPN prefers h2, and the second connection resumes the first one's session"
    );
    assert_eq!(up.count(), 4);
}

/// A response head larger than `limits.max_header_bytes` is a 502 on every loop (the relay,
/// Pingora's loop for a chunked request body, and HTTP/2), as nginx answers 502 to a head past
/// `proxy_buffer_size`; one just under it passes.
#[test]
fn a_response_head_over_max_header_bytes_is_a_502_on_every_loop() {
    let up = Upstream::start(|s| {
        let size = if s.path.starts_with("/big") {
            20_000
        } else {
            7_000
        };
        Reply::new(200, "ok").header("X-Big", &"b".repeat(size))
    });
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let p = Proxy::start(&config_for(
        &[up.addr],
        &format!("{tls}\n[limits]\nmax_header_bytes = 8192\n"),
    ));
    for path in ["/big", "/small"] {
        let want = if path == "/big" { 502 } else { 200 };
        assert_eq!(get(p.http, path).status, want, "relay {path}");
        let chunked = raw_request(
            p.http,
            format!("POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n").as_bytes(),
            false,
        )
        .expect("response");
        assert_eq!(chunked.status, want, "Pingora's loop {path}");
        let client = https_client(&cert_pem, p.https.expect("https"), false);
        let https = p.https.expect("https").port();
        let r = client
            .get(format!("https://localhost:{https}{path}"))
            .send()
            .expect("h2");
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status().as_u16(), want, "HTTP/2 {path}");
    }
    let m = p.metrics();
    assert_eq!(
        metric_value(
            &m,
            "authz_edge_upstream_errors_total{kind=\"other\",upstream=\"default\"}"
        ),
        3.0
    );
}

/// Django's redirects to the login page are denials: the companion marks them with its kind;
/// without it, a `Location` on `[context] login_paths` (`/accounts/login/` by default) is one.
/// Counted under `status="302"` by every loop (HTTP/1 here, HTTP/2 below); other redirects are
/// not denials.
#[test]
fn redirects_to_the_login_page_are_counted_as_denials() {
    let up = Upstream::start(|seen: &Seen| {
        let to = |loc: &str| Reply::new(302, "").header("Location", loc);
        match seen.path.as_str() {
            "/private" => to("/accounts/login/?next=/private"),
            "/absolute" => to("https://example.com/accounts/login/?next=/absolute"),
            "/moved" => to("/new/"),
            "/sso" => to("https://id.example.com/sso/start?next=/sso"),
            "/marked" => to("/welcome/")
                .header("X-Authz-Kind", "permission")
                .header("X-Authz-User", "5")
                .header("X-Authz-Route", "/marked/"),
            _ => Reply::new(200, "ok"),
        }
    });
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let p = Proxy::start(&config_for(&[up.addr], &tls));
    for path in ["/private", "/absolute", "/moved", "/sso", "/marked"] {
        let r = get(p.http, path);
        assert_eq!(r.status, 302, "{path}");
        assert!(
            r.names().iter().all(|n| !n.starts_with("x-authz")),
            "{path}: {:?}",
            r.names()
        );
    }
    let denials = |route: &str, kind: &str, authn: &str| {
        format!("authz_edge_denials_total{{authn=\"{authn}\",kind=\"{kind}\",route=\"{route}\",status=\"302\"}}")
    };
    p.wait_metric(&denials("/private", "login", "anonymous"), 1.0);
    p.wait_metric(&denials("/absolute", "login", "anonymous"), 1.0);
    p.wait_metric(&denials("/marked/", "permission", "authenticated"), 1.0);
    let m = p.metrics();
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("authz_edge_denials_total{") && l.contains("status=\"302\""))
            .count(),
        3,
        "only the three login redirects: {m}"
    );
    // Over HTTP/2, the same.
    let https = p.https.expect("https listener");
    let client = https_client(&cert_pem, https, false);
    let r = client
        .get(format!("https://localhost:{}/private", https.port()))
        .send()
        .expect("h2 request");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 302);
    p.wait_metric(&denials("/private", "login", "anonymous"), 2.0);

    // An app whose login page is elsewhere says so.
    let p = Proxy::start(&config_for(
        &[up.addr],
        "[context]\nlogin_paths = [\"/sso/start\"]\n",
    ));
    assert_eq!(get(p.http, "/sso").status, 302);
    assert_eq!(get(p.http, "/private").status, 302);
    p.wait_metric(&denials("/sso", "login", "anonymous"), 1.0);
    let m = p.metrics();
    assert!(!m.contains("route=\"/private\",status=\"302\""), "{m}");
}
