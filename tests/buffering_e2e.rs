//! The jobs nginx does for gunicorn, against a real Django under gunicorn with **one sync
//! worker** (its default deployment): slow readers over HTTP/1.1 and HTTP/2 do not hold the
//! worker (Django's response is read whole, into memory then a temp file); memory stays bounded
//! with 64 MiB in flight; a disk that cannot take the file degrades to streaming; an event
//! stream's first event arrives before Django has finished; and Django's responses are
//! compressed (gzip, brotli, zstd) byte-exact, with every case that must pass untouched.

mod common;

use common::django::Django;
use common::h2raw::{tls_config, Frame, H2};
use common::*;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

fn one_sync_worker() -> Django {
    let dir = tempfile::tempdir().expect("tmp");
    Django::start_in(dir, &[("AUTHZ_E2E_ONE_SYNC_WORKER", "1")])
}

/// A client that asks for `path` and then reads nothing.
fn slow_reader(proxy: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(proxy).expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .expect("write");
    s
}

/// Reads the whole response a slow reader asked for, at last.
fn read_all(s: TcpStream) -> Resp {
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    read_response(&mut BufReader::new(s), false).expect("the whole response")
}

fn buffered(p: &Proxy) -> (f64, f64) {
    let m = p.metrics();
    (
        metric_value(
            &m,
            "authz_edge_response_bytes_buffered_total{where=\"memory\"}",
        ),
        metric_value(
            &m,
            "authz_edge_response_bytes_buffered_total{where=\"file\"}",
        ),
    )
}

#[test]
fn slow_readers_over_http1_and_http2_do_not_hold_the_one_sync_worker() {
    let django = one_sync_worker();
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let p = Proxy::start(&config_for(&[django.addr], &tls));
    // Two HTTP/1.1 clients and two HTTP/2 streams ask for 8 MiB each and read none of it (the
    // HTTP/2 client never opens its window past the first 64 KiB).
    let a = slow_reader(p.http, "/big/8/");
    let b = slow_reader(p.http, "/big/8/");
    let mut h2 = H2::connect(p.https.expect("https"), &tls_config(&cert_pem));
    h2.send(&[Frame::get(1, "/big/8/"), Frame::get(3, "/big/8/")]);
    // gunicorn's one worker answers in turn: the page after them comes at once, since the
    // proxy read each 8 MiB whole and freed the worker. Without buffering the worker waits
    // on the first slow reader and this request times out.
    let tiny = get(p.http, "/tiny/");
    assert_eq!((tiny.status, tiny.text()), (200, "ok".to_string()));
    poll::until_true("the four responses held for their clients", || {
        let (memory, file) = buffered(&p);
        // Each is 8 MiB, less what the sockets took (at most a few MiB on loopback).
        memory + file >= (4 * 4 * MIB) as f64
    });
    // The slow readers get every byte at last.
    for s in [a, b] {
        let r = read_all(s);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 8 * MIB);
        assert!(r.body.iter().all(|c| *c == b'x'));
    }
    let again = get(p.http, "/tiny/");
    assert_eq!(again.status, 200);
}

/// Resident memory of `pid`, in bytes.
fn rss(pid: i32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[test]
fn memory_stays_bounded_with_64_mib_in_flight_and_the_rest_goes_to_files() {
    let django = one_sync_worker();
    let temp = tempfile::tempdir().expect("tmp");
    let extra = format!("[limits]\nbody_temp_dir = \"{}\"\n", temp.path().display());
    let config = config_for(&[django.addr], &extra)
        .replace("[upstream]\n", "[upstream]\nbuffer_memory = 1048576\n");
    let p = Proxy::start(&config);
    assert_eq!(get(p.http, "/tiny/").status, 200);
    let before = rss(p.pid());
    let readers: Vec<TcpStream> = (0..8).map(|_| slow_reader(p.http, "/big/8/")).collect();
    poll::until_true("every response read from Django", || {
        let (memory, file) = buffered(&p);
        memory + file >= (8 * 4 * MIB) as f64 && get(p.http, "/tiny/").status == 200
    });
    let (memory, file) = buffered(&p);
    // The process-wide budget (1 MiB) holds at most that much at once; the rest is in files.
    assert!(file >= (8 * 4 * MIB) as f64 - memory, "{memory} {file}");
    let grown = rss(p.pid()).saturating_sub(before);
    assert!(
        grown < 24 * MIB,
        "64 MiB in flight grew the proxy's memory by {} MiB",
        grown / MIB
    );
    for s in readers {
        assert_eq!(read_all(s).body.len(), 8 * MIB);
    }
}

#[test]
fn a_disk_that_cannot_take_the_file_degrades_to_streaming() {
    let django = one_sync_worker();
    let p = Proxy::start_for_file_limits(&config_for(&[django.addr], ""));
    // Every write to a file now fails (EFBIG), as on a full disk.
    sink::file_size_limit(p.pid(), Some(0));
    let s = slow_reader(p.http, "/big/8/");
    poll::until_true("the response's first bytes held in memory", || {
        buffered(&p).0 > 0.0
    });
    let r = read_all(s);
    assert_eq!((r.status, r.body.len()), (200, 8 * MIB));
    assert_eq!(buffered(&p).1, 0.0, "nothing went to a file");
    sink::file_size_limit(p.pid(), None);
    assert_eq!(get(p.http, "/tiny/").status, 200);
}

/// Reads from `r` until `needle` has arrived; returns everything read so far.
fn read_until(r: &mut impl Read, seen: &mut Vec<u8>, needle: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let n = r.read(&mut chunk).expect("read");
        assert!(n > 0, "closed before {:?}", String::from_utf8_lossy(needle));
        seen.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn an_event_stream_s_first_event_arrives_before_django_has_finished() {
    let django = one_sync_worker();
    let p = Proxy::start(&config_for(&[django.addr], ""));
    let flags = tempfile::tempdir().expect("tmp");
    for (query, header) in [("", None), ("&accel=1", Some("x-accel-buffering"))] {
        let flag = flags.path().join(format!("seen{}", query.len()));
        let mut s = TcpStream::connect(p.http).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let path = format!("/events/?flag={}{query}", flag.display());
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .expect("write");
        let mut seen = Vec::new();
        // Django is still in its view, waiting for the flag: the event came through anyway.
        read_until(&mut s, &mut seen, b"data: first\n\n");
        std::fs::write(&flag, b"").expect("flag");
        read_until(&mut s, &mut seen, b"0\r\n\r\n");
        let text = String::from_utf8_lossy(&seen).to_lowercase();
        assert!(text.contains("data: second"), "{text}");
        assert!(!text.contains("timed out"), "{text}");
        if let Some(h) = header {
            assert!(
                !text.contains(h),
                "nginx's header stays at the edge: {text}"
            );
        }
    }
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

fn decode(coding: &str, b: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => gunzip(b),
        "br" => {
            let mut out = Vec::new();
            brotli::Decompressor::new(b, 4096)
                .read_to_end(&mut out)
                .expect("brotli");
            out
        }
        "zstd" => zstd::stream::decode_all(b).expect("zstd"),
        other => panic!("{other}"),
    }
}

#[test]
fn responses_are_compressed_byte_exact_and_what_must_pass_does() {
    let django = Django::start(false, None);
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let p = Proxy::start(&config_for(&[django.addr], &tls));
    let plain = get(p.http, "/page/");
    assert_eq!(plain.header("content-encoding"), None);
    assert!(plain.body.len() > 20_000, "{}", plain.body.len());
    let html = plain.body.clone();
    let json = get(p.http, "/page/?type=application/json").body;
    assert_eq!(json, html, "the same bytes whatever the type");

    // Each coding the client asks for, decoded back to Django's exact bytes.
    for (coding, path) in [
        ("gzip", "/page/"),
        ("zstd", "/page/"),
        ("br", "/page/?type=application/json"),
        ("gzip", "/page/?stream=1"),
    ] {
        let r = request(p.http, "GET", path, &[("Accept-Encoding", coding)], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(coding), "{path}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{path}");
        assert_eq!(r.header("content-length"), None, "{path}");
        assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{path}");
        assert!(r.body.len() < html.len() / 4, "{coding} {path}");
        assert_eq!(decode(coding, &r.body), html, "{coding} {path}");
    }
    // The browser's list: zstd first by the server's order; HTML never brotli.
    let r = request(
        p.http,
        "GET",
        "/page/",
        &[("Accept-Encoding", "gzip, deflate, br, zstd")],
        b"",
    );
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    let r = request(p.http, "GET", "/page/", &[("Accept-Encoding", "br")], b"");
    assert_eq!(
        (r.header("content-encoding"), r.body.len()),
        (None, html.len())
    );
    // HTML is padded against BREACH: the same page compresses to different lengths.
    let lengths: std::collections::BTreeSet<usize> = (0..6)
        .map(|_| {
            request(p.http, "GET", "/page/", &[("Accept-Encoding", "gzip")], b"")
                .body
                .len()
        })
        .collect();
    assert!(lengths.len() > 1, "{lengths:?}");
    // A strong ETag is weakened, a Vary extended.
    let r = request(
        p.http,
        "GET",
        "/page/?etag=%22v1%22&vary=Cookie",
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    assert_eq!(r.header("vary"), Some("Cookie, Accept-Encoding"));

    // What must pass untouched, with the client asking for gzip.
    for path in [
        "/page/?small=1",
        "/page/?type=image/png",
        "/page/?no_transform=1",
        "/page/?range=1",
        "/page/?encoded=1",
        "/page/?status=204",
        "/page/?status=304",
    ] {
        let r = request(p.http, "GET", path, &[("Accept-Encoding", "gzip")], b"");
        let direct = request(
            django.addr,
            "GET",
            path,
            &[("Accept-Encoding", "gzip")],
            b"",
        );
        assert_eq!(r.status, direct.status, "{path}");
        assert_eq!(r.body, direct.body, "{path}: Django's bytes as they were");
        assert_eq!(
            r.header("content-encoding"),
            direct.header("content-encoding"),
            "{path}"
        );
        assert_eq!(r.header("vary"), direct.header("vary"), "{path}");
    }
    let head = request(
        p.http,
        "HEAD",
        "/page/",
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(head.header("content-encoding"), None);
    assert_eq!(
        head.header("content-length"),
        Some(html.len().to_string().as_str())
    );

    // Over HTTP/2, through Pingora's session: the same.
    let client = https_client(&cert_pem, p.https.expect("https"), false);
    let r = client
        .get("https://localhost/page/")
        .header("accept-encoding", "gzip")
        .send()
        .expect("h2");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        r.headers().get("content-encoding").map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    assert!(r.headers().get("content-length").is_none());
    assert_eq!(gunzip(&r.bytes().expect("body")), html);

    // Off by config: nothing compressed.
    drop(client);
    let off = Proxy::start(&config_for(
        &[django.addr],
        "[compression]\nenabled = false\n",
    ));
    let r = request(
        off.http,
        "GET",
        "/page/",
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(
        (r.header("content-encoding"), r.body.len()),
        (None, html.len())
    );
}

#[test]
fn a_compressed_denial_is_classified_and_sampled_from_django_s_own_bytes() {
    let django = Django::start(false, None);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("diag.jsonl");
    let config = config_for(&[django.addr], "").replace(
        "[sink]\ntype = \"none\"\n",
        &sink::sink_config(&path.display().to_string(), ""),
    );
    let p = Proxy::start(&config);
    let r = request(
        p.http,
        "GET",
        "/page/?status=403",
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(
        (r.status, r.header("content-encoding")),
        (403, Some("gzip"))
    );
    assert!(gunzip(&r.body).starts_with(b"<!doctype html>"));
    let counted = p.metrics();
    let denial = counted
        .lines()
        .find(|l| l.starts_with("authz_edge_denials_total{") && l.contains("route=\"/page/\""));
    eprintln!("{denial:?}");
    let recs = poll::until("the denial's sample", || {
        let recs = sink::lines_of(&path);
        if recs.iter().any(|r| r["type"] == "sample") {
            Ok(recs)
        } else {
            Err(recs.len())
        }
    });
    let sample = recs.iter().find(|r| r["type"] == "sample").expect("sample");
    assert_eq!(sample["status"], 403);
    let excerpt = sample["body_excerpt"].as_str().expect("excerpt");
    assert!(
        excerpt.starts_with("<!doctype html><html><body><table>"),
        "{excerpt}"
    );
}
