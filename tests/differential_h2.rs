//! The HTTP/2 differential suite: raw HTTP/2 frames, written exactly as each probe gives them
//! (malformed ones too), through nginx 1.22 and through authz-edge over TLS, each in front of
//! its own recording upstream (HTTP/1.1, as Django is reached).
//!
//! What each front end forwarded is compared with what nginx forwarded. authz-edge fails the
//! suite if it
//! - forwards what nginx refuses, unless the probe is in `LOOSER_ALLOWED` with its reason;
//! - forwards something other than nginx did for the same probe (method, path, body length,
//!   the `Cookie` header: HTTP/2's cookie fields must arrive joined with `"; "`);
//! - lets anything be smuggled: two requests from one, a header that a CR or LF made, a body
//!   that its `content-length` does not match, a request the recorder cannot read;
//! - forwards a context header (`X-Authz-*`, `X-App-Release`) in any spelling;
//! - answers a request the guard refuses with another status than `expect` says (the same
//!   status the HTTP/1 guard gives the same request).
//!
//! Categories: `cl` and `te` (downgrade smuggling by framing), `crlf` (CR, LF, NUL and case in
//! names and values), `pseudo` (pseudo-headers, `:path`, `:method`), `authority`
//! (`:authority` and `host`), `cookie`, `trailers`, `upgrade` (HTTP/1 upgrade headers, h2c,
//! extended CONNECT), `framing` (padding, priority, CONTINUATION, DATA split), `hpack` (static
//! and dynamic indexes, never-indexed literals, bad indexes, a table resize too large),
//! `limits` (the caps HTTP/1 has) and `context`. nginx 1.22 from Debian is the reference.

mod common;

use common::h2raw::{Frame, Outcome, CONTINUATION, DATA, H2, HEADERS};
use common::nginx::{start_nginx_with, wait_listening};
use common::recorder::{response_probes, Got, Recorder};
use common::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where authz-edge may forward what nginx refuses: (probe, reason). Each is in the README's
/// list of differences from nginx.
const LOOSER_ALLOWED: &[(&str, &str)] = &[];

/// Where authz-edge forwards something other than nginx does for the same probe: (probe,
/// reason). Each is in the README's list of differences from nginx.
const DIFFERENT_ALLOWED: &[(&str, &str)] = &[(
    "path-fragment",
    "h2's URI parser (the http crate) drops a fragment in :path before authz-edge sees it, so \
     Django gets the path without `#frag`; nginx passes it on. A fragment is no part of a \
     request target, and over HTTP/1 the guard refuses it with 400",
)];

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One probe: its frames on stream 1, and for the guard's refusals the status authz-edge must
/// answer with.
struct Probe {
    name: String,
    category: &'static str,
    frames: Vec<Frame>,
    expect: Option<&'static str>,
}

fn fields(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// A request's pseudo-headers, then `extra`.
fn request(method: &str, path: &str, extra: &[(&str, &str)]) -> Fields {
    let mut f = fields(&[
        (":method", method),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", path),
    ]);
    f.extend(fields(extra));
    f
}

fn headers_frame(f: &Fields, end_stream: bool) -> Frame {
    let borrowed: Vec<(&[u8], &[u8])> = f.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    Frame::headers(1, &borrowed, end_stream)
}

/// A header block as HEADERS and as many CONTINUATION frames as the 16 KiB frame size needs.
fn header_frames(f: &Fields, end_stream: bool) -> Vec<Frame> {
    let whole = headers_frame(f, end_stream);
    if whole.payload.len() <= 16_384 {
        return vec![whole];
    }
    let pieces: Vec<&[u8]> = whole.payload.chunks(16_384).collect();
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| Frame {
            kind: if i == 0 { HEADERS } else { CONTINUATION },
            flags: match (i, i == last) {
                (0, _) => whole.flags & 0x1,
                (_, true) => 0x4,
                _ => 0,
            },
            stream: 1,
            payload: piece.to_vec(),
        })
        .collect()
}

/// Probes that are one header block, and a body when given.
fn simple(name: &str, category: &'static str, f: Fields, body: Option<&[u8]>) -> Probe {
    let mut frames = header_frames(&f, body.is_none());
    if let Some(b) = body {
        frames.push(Frame::data(1, b, true));
    }
    Probe {
        name: name.to_string(),
        category,
        frames,
        expect: None,
    }
}

fn expect(mut p: Probe, status: &'static str) -> Probe {
    p.expect = Some(status);
    p
}

/// Replaces the pseudo-header `name`'s value (or removes it with `None`).
fn with_pseudo(mut f: Fields, name: &str, value: Option<&[u8]>) -> Fields {
    match value {
        Some(v) => {
            for (n, val) in f.iter_mut() {
                if n == name.as_bytes() {
                    *val = v.to_vec();
                }
            }
        }
        None => f.retain(|(n, _)| n != name.as_bytes()),
    }
    f
}

fn probes() -> Vec<Probe> {
    let mut p = Vec::new();
    let path = |n: &str| format!("/p/{n}");
    // --- cl: content-length against the DATA frames ---
    for (name, cl, data) in [
        ("cl-match", Some("5"), vec![&b"hello"[..]]),
        ("cl-split-data", Some("10"), vec![&b"hello"[..], b"world"]),
        ("cl-longer-body", Some("5"), vec![&b"hello world"[..]]),
        ("cl-shorter-body", Some("10"), vec![&b"hello"[..]]),
        ("cl-zero-then-data", Some("0"), vec![&b"x"[..]]),
        ("cl-zero-empty-data", Some("0"), vec![&b""[..]]),
        ("cl-negative", Some("-5"), vec![&b"hello"[..]]),
        ("cl-plus", Some("+5"), vec![&b"hello"[..]]),
        ("cl-hex", Some("0x5"), vec![&b"hello"[..]]),
        ("cl-inner-space", Some("5 5"), vec![&b"hello"[..]]),
        ("cl-comma-equal", Some("5, 5"), vec![&b"hello"[..]]),
        ("cl-comma-differ", Some("5, 6"), vec![&b"hello"[..]]),
        ("cl-huge", Some("99999999999999999999"), vec![&b"hello"[..]]),
        ("cl-none", None, vec![&b"hello"[..]]),
    ] {
        let extra: Vec<(&str, &str)> = cl.map(|v| ("content-length", v)).into_iter().collect();
        let mut frames = vec![headers_frame(&request("POST", &path(name), &extra), false)];
        let last = data.len() - 1;
        for (i, d) in data.iter().enumerate() {
            frames.push(Frame::data(1, d, i == last));
        }
        p.push(Probe {
            name: name.into(),
            category: "cl",
            frames,
            expect: None,
        });
    }
    for (name, extra) in [
        (
            "cl-two-equal",
            vec![("content-length", "5"), ("content-length", "5")],
        ),
        (
            "cl-two-zero",
            vec![("content-length", "0"), ("content-length", "0")],
        ),
        (
            "cl-two-differ",
            vec![("content-length", "5"), ("content-length", "6")],
        ),
    ] {
        let f = request("POST", &path(name), &extra);
        p.push(simple(name, "cl", f, Some(b"hello")));
    }
    let f = request("GET", &path("cl-get-body"), &[("content-length", "5")]);
    p.push(simple("cl-get-body", "cl", f, Some(b"hello")));
    // --- te ---
    for (name, extra, body) in [
        (
            "te-chunked",
            vec![("transfer-encoding", "chunked")],
            &b"5\r\nhello\r\n0\r\n\r\n"[..],
        ),
        (
            "te-chunked-with-cl",
            vec![("content-length", "5"), ("transfer-encoding", "chunked")],
            b"hello",
        ),
        (
            "te-identity",
            vec![("transfer-encoding", "identity")],
            b"hello",
        ),
        ("te-header-trailers", vec![("te", "trailers")], b"hello"),
        ("te-header-gzip", vec![("te", "gzip")], b"hello"),
    ] {
        let f = request("POST", &path(name), &extra);
        p.push(simple(name, "te", f, Some(body)));
    }
    // --- crlf: bytes h2 must refuse in names and values, and ones that are fine ---
    let raw_field = |name: &str, n: &[u8], v: &[u8]| {
        let mut f = request("GET", &path(name), &[]);
        f.push((n.to_vec(), v.to_vec()));
        simple(name, "crlf", f, None)
    };
    for (name, n, v) in [
        ("value-crlf", &b"x-a"[..], &b"1\r\nx-smuggled: yes"[..]),
        ("value-lf", b"x-a", b"1\nx-smuggled: yes"),
        ("value-cr", b"x-a", b"1\rx-smuggled: yes"),
        ("value-nul", b"x-a", b"1\x00x"),
        ("value-del", b"x-a", b"1\x7fx"),
        ("value-obs-text", b"x-a", b"caf\xc3\xa9"),
        ("value-tab-inside", b"x-a", b"a\tb"),
        ("value-leading-space", b"x-a", b" a"),
        ("value-trailing-space", b"x-a", b"a "),
        ("name-crlf", b"x-a\r\nx-smuggled", b"yes"),
        ("name-upper", b"X-Upper", b"1"),
        ("name-space", b"x a", b"1"),
        ("name-colon", b"x:a", b"1"),
        ("name-empty", b"", b"1"),
        ("name-nul", b"x\x00a", b"1"),
        ("name-underscore", b"x_a", b"1"),
    ] {
        p.push(raw_field(name, n, v));
    }
    for (name, pseudo, value) in [
        (
            "path-crlf",
            ":path",
            &b"/p/path-crlf\r\nx-smuggled: yes"[..],
        ),
        (
            "path-lf-request-line",
            ":path",
            b"/p/x HTTP/1.1\nx-smuggled: yes\n\nGET /p/y",
        ),
        ("path-space", ":path", b"/p/a b"),
        ("method-crlf", ":method", b"GET\r\nx-smuggled: yes"),
        (
            "authority-crlf",
            ":authority",
            b"localhost\r\nx-smuggled: yes",
        ),
    ] {
        let f = with_pseudo(request("GET", &path(name), &[]), pseudo, Some(value));
        p.push(simple(name, "crlf", f, None));
    }
    // --- pseudo: pseudo-headers, :path and :method ---
    let get = |name: &str| request("GET", &path(name), &[]);
    p.push(simple(
        "path-missing",
        "pseudo",
        with_pseudo(get("x"), ":path", None),
        None,
    ));
    p.push(simple(
        "method-missing",
        "pseudo",
        with_pseudo(get("method-missing"), ":method", None),
        None,
    ));
    p.push(simple(
        "scheme-missing",
        "pseudo",
        with_pseudo(get("scheme-missing"), ":scheme", None),
        None,
    ));
    p.push(simple(
        "path-empty",
        "pseudo",
        with_pseudo(get("x"), ":path", Some(b"")),
        None,
    ));
    let mut dup = get("path-dup");
    dup.push((b":path".to_vec(), b"/p/other".to_vec()));
    p.push(simple("path-dup", "pseudo", dup, None));
    let mut late = fields(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost"),
    ]);
    late.push((b"accept".to_vec(), b"*/*".to_vec()));
    late.push((b":path".to_vec(), b"/p/pseudo-after-regular".to_vec()));
    p.push(simple("pseudo-after-regular", "pseudo", late, None));
    let mut unknown = get("pseudo-unknown");
    unknown.insert(0, (b":foo".to_vec(), b"bar".to_vec()));
    p.push(simple("pseudo-unknown", "pseudo", unknown, None));
    let mut status = get("pseudo-status");
    status.insert(0, (b":status".to_vec(), b"200".to_vec()));
    p.push(simple("pseudo-status", "pseudo", status, None));
    for (name, method, target, status) in [
        ("path-star-options", "OPTIONS", "*", Some("400")),
        ("path-star-get", "GET", "*", Some("400")),
        (
            "path-absolute",
            "GET",
            "https://evil.example/p/path-absolute",
            None,
        ),
        ("path-no-slash", "GET", "p/path-no-slash", None),
        ("path-fragment", "GET", "/p/path-fragment#frag", None),
        ("path-dotdot-root", "GET", "/../p/x", Some("400")),
        ("path-dotdot-climb", "GET", "/p/../../x", Some("400")),
        ("path-pct-dotdot", "GET", "/%2e%2e/p/x", Some("400")),
        ("path-pct-dotdot-upper", "GET", "/%2E%2E/p/x", Some("400")),
        (
            "path-encoded-slash-climb",
            "GET",
            "/p%2f..%2f..%2fx",
            Some("400"),
        ),
        ("path-pct-nul", "GET", "/p/a%00b", Some("400")),
        ("path-bad-escape", "GET", "/p/a%zzb", Some("400")),
        ("path-double-slash", "GET", "//p/path-double-slash", None),
        (
            "path-dot-segments-inside",
            "GET",
            "/p/a/./b/../path-dot-segments-inside",
            None,
        ),
        ("path-query", "GET", "/p/path-query?a=1&b=%20", None),
        ("method-lower", "get", "/p/method-lower", Some("400")),
        ("method-mixed", "Get", "/p/method-mixed", Some("400")),
        ("method-trace", "TRACE", "/p/method-trace", Some("405")),
        ("method-track", "TRACK", "/p/method-track", Some("405")),
        ("method-purge", "PURGE", "/p/method-purge", None),
        ("method-nontoken", "GE(T", "/p/method-nontoken", None),
        ("method-dash", "X-GET", "/p/method-dash", None),
    ] {
        let f = request(method, target, &[]);
        let probe = simple(name, "pseudo", f, None);
        p.push(match status {
            Some(s) => expect(probe, s),
            None => probe,
        });
    }
    let connect = fields(&[(":method", "CONNECT"), (":authority", "localhost:443")]);
    p.push(simple("method-connect", "pseudo", connect, None));
    p.push(simple(
        "scheme-http",
        "pseudo",
        with_pseudo(get("scheme-http"), ":scheme", Some(b"http")),
        None,
    ));
    p.push(simple(
        "scheme-unknown",
        "pseudo",
        with_pseudo(get("scheme-unknown"), ":scheme", Some(b"foo")),
        None,
    ));
    // --- authority: :authority and host ---
    for (name, authority, hosts, status) in [
        // h2 resets these malformed streams itself (RFC 9113 §8.1.1), before the guard.
        (
            "authority-slash",
            Some(&b"localhost/evil"[..]),
            vec![],
            Some("rst:1"),
        ),
        (
            "authority-space",
            Some(b"local host"),
            vec![],
            Some("rst:1"),
        ),
        ("authority-empty", Some(b""), vec![], Some("rst:1")),
        (
            "authority-userinfo",
            Some(b"user@localhost"),
            vec![],
            Some("400"),
        ),
        ("authority-port", Some(b"localhost:8443"), vec![], None),
        (
            "authority-bad-port",
            Some(b"localhost:99999x"),
            vec![],
            Some("400"),
        ),
        ("authority-ipv6", Some(b"[::1]:443"), vec![], None),
        ("authority-dotdot", Some(b"a..b"), vec![], Some("400")),
        ("host-only", None, vec![&b"localhost"[..]], None),
        ("host-neither", None, vec![], Some("400")),
        (
            "host-disagree",
            Some(b"localhost"),
            vec![&b"evil.example"[..]],
            Some("400"),
        ),
        // nginx takes :authority as a Host line: a host field beside it is a duplicate.
        (
            "host-agree",
            Some(b"localhost"),
            vec![&b"localhost"[..]],
            Some("400"),
        ),
        (
            "host-two",
            None,
            vec![&b"localhost"[..], b"localhost"],
            Some("400"),
        ),
        (
            "host-slash",
            None,
            vec![&b"localhost/evil"[..]],
            Some("400"),
        ),
        ("host-empty", None, vec![&b""[..]], Some("400")),
        ("host-space", None, vec![&b"local host"[..]], Some("400")),
    ] {
        let mut f = with_pseudo(get(name), ":authority", authority);
        for h in hosts {
            f.push((b"host".to_vec(), h.to_vec()));
        }
        let probe = simple(name, "authority", f, None);
        p.push(match status {
            Some(s) => expect(probe, s),
            None => probe,
        });
    }
    // --- cookie: fields joined with "; " ---
    for (name, cookies) in [
        ("cookie-two", vec!["csrftoken=abc", "sessionid=s3cr3t"]),
        ("cookie-three", vec!["a=1", "b=2", "c=3"]),
        ("cookie-one-with-semicolons", vec!["a=1; b=2"]),
        ("cookie-comma-value", vec!["a=1,2", "b=3"]),
        ("cookie-empty-field", vec!["", "a=1"]),
    ] {
        let mut f = get(name);
        for (i, c) in cookies.iter().enumerate() {
            f.push((b"cookie".to_vec(), c.as_bytes().to_vec()));
            if i == 0 {
                f.push((b"accept".to_vec(), b"*/*".to_vec()));
            }
        }
        p.push(simple(name, "cookie", f, None));
    }
    let mut upper = get("cookie-upper-name");
    upper.push((b"Cookie".to_vec(), b"a=1".to_vec()));
    p.push(simple("cookie-upper-name", "cookie", upper, None));
    // --- trailers ---
    let post = |name: &str, extra: &[(&str, &str)]| request("POST", &path(name), extra);
    let trailer = |f: &[(&str, &str)], end: bool| headers_frame(&fields(f), end);
    for (name, frames) in [
        (
            "trailers-after-body",
            vec![
                headers_frame(
                    &post("trailers-after-body", &[("content-length", "5")]),
                    false,
                ),
                Frame::data(1, b"hello", false),
                trailer(&[("x-trailer", "1")], true),
            ],
        ),
        (
            "trailers-pseudo-path",
            vec![
                headers_frame(&post("trailers-pseudo-path", &[]), false),
                Frame::data(1, b"hello", false),
                trailer(&[(":path", "/p/evil")], true),
            ],
        ),
        (
            "trailers-no-body",
            vec![
                headers_frame(&post("trailers-no-body", &[]), false),
                trailer(&[("x-trailer", "1")], true),
            ],
        ),
        (
            "trailers-content-length",
            vec![
                headers_frame(&post("trailers-content-length", &[]), false),
                Frame::data(1, b"hello", false),
                trailer(&[("content-length", "99")], true),
            ],
        ),
        (
            "trailers-without-end-stream",
            vec![
                headers_frame(&post("trailers-without-end-stream", &[]), false),
                Frame::data(1, b"hello", false),
                trailer(&[("x-trailer", "1")], false),
            ],
        ),
    ] {
        p.push(Probe {
            name: name.into(),
            category: "trailers",
            frames,
            expect: None,
        });
    }
    // --- upgrade: HTTP/1's upgrade and connection headers, h2c, extended CONNECT ---
    for (name, extra) in [
        (
            "upgrade-websocket",
            vec![("connection", "upgrade"), ("upgrade", "websocket")],
        ),
        (
            "upgrade-h2c",
            vec![
                ("connection", "upgrade, http2-settings"),
                ("upgrade", "h2c"),
                ("http2-settings", "AAMAAABkAAQAAP__"),
            ],
        ),
        ("upgrade-alone", vec![("upgrade", "websocket")]),
        (
            "http2-settings-alone",
            vec![("http2-settings", "AAMAAABkAAQAAP__")],
        ),
        ("connection-keep-alive", vec![("connection", "keep-alive")]),
        ("keep-alive-header", vec![("keep-alive", "timeout=5")]),
        ("proxy-connection", vec![("proxy-connection", "keep-alive")]),
        (
            "sec-websocket-key-only",
            vec![
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("sec-websocket-version", "13"),
            ],
        ),
    ] {
        p.push(simple(
            name,
            "upgrade",
            request("GET", &path(name), &extra),
            None,
        ));
    }
    let ext = fields(&[
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/p/extended-connect"),
        ("sec-websocket-version", "13"),
    ]);
    p.push(simple("extended-connect", "upgrade", ext, None));
    // --- framing: how the head and body are framed on the wire (padding, priority,
    // CONTINUATION, DATA split) must not change what is forwarded ---
    let base = |name: &str| request("POST", &path(name), &[("content-length", "10")]);
    let block = |f: &Fields| headers_frame(f, false).payload;
    let raw = |kind: u8, flags: u8, payload: Vec<u8>| Frame {
        kind,
        flags,
        stream: 1,
        payload,
    };
    let padded_headers = {
        let mut payload = vec![4u8];
        payload.extend(block(&base("frame-padded-headers")));
        payload.extend([0u8; 4]);
        vec![
            raw(HEADERS, 0x4 | 0x8, payload),
            Frame::data(1, b"helloworld", true),
        ]
    };
    let priority_headers = {
        let mut payload = vec![0, 0, 0, 0, 15];
        payload.extend(block(&base("frame-priority-headers")));
        vec![
            raw(HEADERS, 0x4 | 0x20, payload),
            Frame::data(1, b"helloworld", true),
        ]
    };
    let continuation = {
        let whole = block(&base("frame-continuation"));
        let (a, b) = whole.split_at(whole.len() / 2);
        vec![
            raw(HEADERS, 0, a.to_vec()),
            raw(CONTINUATION, 0x4, b.to_vec()),
            Frame::data(1, b"helloworld", true),
        ]
    };
    let padded_data = {
        let mut payload = vec![3u8];
        payload.extend(b"helloworld");
        payload.extend([0u8; 3]);
        vec![
            headers_frame(&base("frame-padded-data"), false),
            raw(DATA, 0x1 | 0x8, payload),
        ]
    };
    let one_byte_data = {
        let mut frames = vec![headers_frame(&base("frame-one-byte-data"), false)];
        for (i, b) in b"helloworld".iter().enumerate() {
            frames.push(Frame::data(1, &[*b], i == 9));
        }
        frames
    };
    let empty_end = vec![
        headers_frame(&base("frame-empty-end-data"), false),
        Frame::data(1, b"helloworld", false),
        Frame::data(1, b"", true),
    ];
    let data_on_zero = vec![
        headers_frame(&base("frame-data-on-stream-0"), false),
        Frame {
            kind: DATA,
            flags: 0x1,
            stream: 0,
            payload: b"helloworld".to_vec(),
        },
    ];
    let continuation_other_stream = {
        let whole = block(&base("frame-continuation-other-stream"));
        let (a, b) = whole.split_at(whole.len() / 2);
        vec![
            raw(HEADERS, 0, a.to_vec()),
            Frame {
                kind: CONTINUATION,
                flags: 0x4,
                stream: 3,
                payload: b.to_vec(),
            },
        ]
    };
    for (name, frames) in [
        ("frame-padded-headers", padded_headers),
        ("frame-priority-headers", priority_headers),
        ("frame-continuation", continuation),
        ("frame-padded-data", padded_data),
        ("frame-one-byte-data", one_byte_data),
        ("frame-empty-end-data", empty_end),
        ("frame-data-on-stream-0", data_on_zero),
        ("frame-continuation-other-stream", continuation_other_stream),
    ] {
        p.push(Probe {
            name: name.into(),
            category: "framing",
            frames,
            expect: None,
        });
    }
    // --- hpack: the same request through HPACK's other representations ---
    let hpack = |name: &str, block: Vec<u8>| Probe {
        name: name.into(),
        category: "hpack",
        frames: vec![Frame {
            kind: HEADERS,
            flags: 0x4 | 0x1,
            stream: 1,
            payload: block,
        }],
        expect: None,
    };
    let literal_path = |name: &str| common::h2raw::literal(b":path", path(name).as_bytes());
    // Static table: 2 `:method GET`, 7 `:scheme https`; `:authority` by indexed name (1).
    let mut indexed = vec![0x82, 0x87, 0x41, 9];
    indexed.extend(b"localhost");
    indexed.extend(literal_path("hpack-static-indexed"));
    p.push(hpack("hpack-static-indexed", indexed));
    // A literal with incremental indexing, then used from the dynamic table (index 62).
    let mut dynamic = vec![0x82, 0x87, 0x40, 10];
    dynamic.extend(b":authority");
    dynamic.push(9);
    dynamic.extend(b"localhost");
    dynamic.extend(literal_path("hpack-dynamic"));
    dynamic.extend([0x40, 6]);
    dynamic.extend(b"x-dyn1");
    dynamic.push(1);
    dynamic.extend(b"1");
    dynamic.push(0xbe);
    p.push(hpack("hpack-dynamic", dynamic));
    // Never-indexed literals (0x10), as for a cookie.
    let mut never = vec![0x82, 0x87];
    for (n, v) in [
        (&b":authority"[..], &b"localhost"[..]),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
    ] {
        never.push(0x10);
        never.push(n.len() as u8);
        never.extend(n);
        never.push(v.len() as u8);
        never.extend(v);
    }
    never.extend(literal_path("hpack-never-indexed-cookies"));
    p.push(hpack("hpack-never-indexed-cookies", never));
    let mut never2 = vec![0x82, 0x87];
    never2.extend(literal_path("hpack-never-indexed-cookies-only"));
    never2.extend(common::h2raw::literal(b":authority", b"localhost"));
    for (n, v) in [(&b"cookie"[..], &b"a=1"[..]), (b"cookie", b"b=2")] {
        never2.push(0x10);
        never2.push(n.len() as u8);
        never2.extend(n);
        never2.push(v.len() as u8);
        never2.extend(v);
    }
    p.push(hpack("hpack-never-indexed-cookies-only", never2));
    let mut plain = vec![0x82, 0x87];
    plain.extend(literal_path("hpack-path-first"));
    plain.extend(common::h2raw::literal(b":authority", b"localhost"));
    p.push(hpack("hpack-path-first", plain));
    // Index 0 and an index past both tables: COMPRESSION_ERROR.
    let mut zero = vec![0x82, 0x87, 0x80];
    zero.extend(literal_path("hpack-index-zero"));
    p.push(hpack("hpack-index-zero", zero));
    let mut past = vec![0x82, 0x87, 0xff, 0x40];
    past.extend(literal_path("hpack-index-past"));
    p.push(hpack("hpack-index-past", past));
    // A dynamic table size update above the SETTINGS value (4,096).
    let mut resize = vec![0x3f, 0xe1, 0x7f, 0x82, 0x87];
    resize.extend(literal_path("hpack-resize-too-large"));
    p.push(hpack("hpack-resize-too-large", resize));
    // --- limits: the same caps as HTTP/1 ---
    let long_path = format!("/p/limits-long-path/{}", "a".repeat(9000));
    let long_value = "v".repeat(40_000);
    let many: Vec<(String, String)> = (0..101).map(|i| (format!("x-h{i}"), "1".into())).collect();
    let many_refs: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let cookies: Vec<(&str, &str)> = (0..60).map(|_| ("cookie", "c=1")).collect();
    for (name, f, status) in [
        (
            "limits-long-path",
            request("GET", &long_path, &[]),
            Some("414"),
        ),
        (
            "limits-long-value",
            request("GET", &path("limits-long-value"), &[("x-big", &long_value)]),
            None,
        ),
        (
            "limits-101-headers",
            request("GET", &path("limits-101-headers"), &many_refs),
            Some("431"),
        ),
        (
            "limits-60-cookie-fields",
            request("GET", &path("limits-60-cookie-fields"), &cookies),
            None,
        ),
    ] {
        let probe = simple(name, "limits", f, None);
        p.push(match status {
            Some(s) => expect(probe, s),
            None => probe,
        });
    }
    let over = request(
        "POST",
        &path("limits-body-over-max"),
        &[("content-length", "20000000")],
    );
    p.push(expect(
        Probe {
            name: "limits-body-over-max".into(),
            category: "limits",
            frames: vec![headers_frame(&over, false), Frame::data(1, b"hello", false)],
            expect: None,
        },
        "413",
    ));
    // --- context: the companion's headers never reach Django from a client ---
    for (name, n) in [
        ("context-user", "x-authz-user"),
        ("context-kind-underscore", "x_authz_kind"),
        ("context-release", "x-app-release"),
        ("context-release-underscore", "x_app_release"),
        ("context-session", "x-authz-session"),
        ("context-any", "x-authz-anything"),
    ] {
        p.push(simple(
            name,
            "context",
            request("GET", &path(name), &[(n, "forged")]),
            None,
        ));
    }
    p
}

fn is_context_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('_', "-");
    n.starts_with("x-authz-") || n == "x-app-release"
}

struct FrontEnd {
    name: &'static str,
    addr: SocketAddr,
    recorder: Recorder,
}

/// What a front end did with a probe: the client's outcome and what its upstream received.
struct Seen {
    outcome: Outcome,
    forwarded: Vec<Got>,
}

/// Sends the probe on a fresh connection, then a sentinel request on another: once the
/// sentinel reaches the upstream, everything the probe caused has too, and the front end is
/// shown to be in sync.
fn run(fe: &FrontEnd, tls: &Arc<rustls::ClientConfig>, probe: &Probe, i: usize) -> Seen {
    let mut conn = H2::connect(fe.addr, tls);
    conn.send(&probe.frames);
    let outcome = conn.outcome(1);
    drop(conn);
    let sentinel = format!("/__sync/{i}");
    let mut sync = H2::connect(fe.addr, tls);
    let f = request("GET", &sentinel, &[]);
    sync.send(&[headers_frame(&f, true)]);
    let answer = sync.outcome(1);
    assert!(
        matches!(answer, Outcome::Response { status: 200, .. }),
        "{}: the request after probe {} got {answer:?}",
        fe.name,
        probe.name
    );
    poll::until(&format!("{} to forward {sentinel}", fe.name), || {
        let log = fe.recorder.log.lock().expect("lock");
        match log.iter().any(|g| g.target == sentinel) {
            true => Ok(()),
            false => Err(log.len()),
        }
    });
    let mut got = fe.recorder.take();
    got.retain(|g| g.target != sentinel);
    Seen {
        outcome,
        forwarded: got,
    }
}

fn cookies(g: &Got) -> Vec<&str> {
    g.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn http2_probes_are_at_least_as_strict_as_nginx() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls_section) = self_signed_tls(dir.path(), "");
    let nginx_rec = Recorder::start();
    let edge_rec = Recorder::start();
    let d = dir.path().display();
    let nginx = start_nginx_with(
        nginx_rec.addr,
        "ssl http2",
        &format!("ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;"),
    );
    let edge = Proxy::start(&config_for(&[edge_rec.addr], &tls_section));
    let edge_addr = edge.https.expect("https");
    wait_listening(edge_addr, "authz-edge");
    let tls = common::h2raw::tls_config(&cert_pem);
    let fronts = [
        FrontEnd {
            name: "nginx",
            addr: nginx.addr,
            recorder: nginx_rec,
        },
        FrontEnd {
            name: "authz-edge",
            addr: edge_addr,
            recorder: edge_rec,
        },
    ];
    let probes = probes();
    let mut problems = Vec::new();
    // category -> [probes, both refused, both forwarded, stricter, looser allowed]
    let mut table: BTreeMap<&str, [usize; 5]> = BTreeMap::new();
    let mut report = Vec::new();
    for (i, probe) in probes.iter().enumerate() {
        let [reference, ours] = [&fronts[0], &fronts[1]].map(|fe| run(fe, &tls, probe, i));
        let row = table.entry(probe.category).or_default();
        row[0] += 1;
        let name = &probe.name;
        for g in &ours.forwarded {
            if g.method == "GARBAGE" {
                problems.push(format!(
                    "{name}: the upstream got bytes it cannot read: {g:?}"
                ));
            }
            for (n, v) in &g.headers {
                if is_context_header(n) {
                    problems.push(format!("{name}: context header {n} reached the upstream"));
                }
                if n.eq_ignore_ascii_case("x-smuggled") || v.contains('\r') || v.contains('\n') {
                    problems.push(format!("{name}: smuggled header {n}: {v:?}"));
                }
            }
        }
        if ours.forwarded.len() > 1 {
            problems.push(format!(
                "{name}: one probe became {} requests",
                ours.forwarded.len()
            ));
        }
        match (reference.forwarded.first(), ours.forwarded.first()) {
            (None, None) => row[1] += 1,
            (Some(r), Some(o)) => {
                row[2] += 1;
                if r.key() != o.key() && !DIFFERENT_ALLOWED.iter().any(|(p, _)| p == name) {
                    problems.push(format!(
                        "{name}: forwarded {} where nginx forwarded {}",
                        o.key(),
                        r.key()
                    ));
                }
                if cookies(r) != cookies(o) {
                    problems.push(format!(
                        "{name}: Cookie {:?} where nginx sent {:?}",
                        cookies(o),
                        cookies(r)
                    ));
                }
            }
            (Some(_), None) => row[3] += 1,
            (None, Some(o)) => match LOOSER_ALLOWED.iter().any(|(p, _)| p == name) {
                true => row[4] += 1,
                false => problems.push(format!(
                    "{name}: forwarded {} where nginx refused ({})",
                    o.key(),
                    reference.outcome.label()
                )),
            },
        }
        if let Some(status) = probe.expect {
            if ours.outcome.label() != status {
                problems.push(format!(
                    "{name}: answered {} where the HTTP/1 guard answers {status}",
                    ours.outcome.label()
                ));
            }
        }
        report.push(format!(
            "{:<8} {:<30} nginx {:<10} {:<9} authz-edge {:<10} {}",
            probe.category,
            name,
            reference.outcome.label(),
            if reference.forwarded.is_empty() {
                "refused"
            } else {
                "forwarded"
            },
            ours.outcome.label(),
            if ours.forwarded.is_empty() {
                "refused"
            } else {
                "forwarded"
            },
        ));
    }
    for line in &report {
        println!("{line}");
    }
    println!("category   probes  both-refused  both-forwarded  stricter  looser-allowed");
    for (c, r) in &table {
        println!(
            "{c:<10} {:>6}  {:>12}  {:>14}  {:>8}  {:>14}",
            r[0], r[1], r[2], r[3], r[4]
        );
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(probes.len() >= 100, "{} probes", probes.len());
}

/// The response side over HTTP/2: Django's raw responses (`differential/responses.txt`, the
/// HTTP/1 suite's corpus) relayed to an HTTP/2 client. authz-edge must pass on nothing nginx
/// refuses (a 502 or a stream cut off), and never a context header.
#[test]
fn http2_responses_are_at_least_as_strict_as_nginx() {
    let probes = response_probes();
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls_section) = self_signed_tls(dir.path(), "");
    let (nginx_rec, edge_rec) = (Recorder::start(), Recorder::start());
    let d = dir.path().display();
    let certs = format!("ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;");
    let nginx = start_nginx_with(nginx_rec.addr, "ssl http2", &certs);
    let edge = Proxy::start(&config_for(&[edge_rec.addr], &tls_section));
    let tls = common::h2raw::tls_config(&cert_pem);
    let fronts = [
        (nginx.addr, &nginx_rec),
        (edge.https.expect("https"), &edge_rec),
    ];
    let passed = |o: &Outcome| matches!(o, Outcome::Response { status, complete: true, .. } if *status != 502 && *status != 504);
    let (mut agree, mut stricter, mut problems) = (0, 0, Vec::new());
    for (k, p) in probes.iter().enumerate() {
        let [theirs, ours] = fronts.map(|(addr, rec)| {
            *rec.probe.lock().expect("lock") = Some(p.clone());
            let mut conn = H2::connect(addr, &tls);
            // nginx waits out its proxy_read_timeout on 15 of these heads: silence counts as
            // not passed on, and need not be waited for longer.
            conn.set_read_timeout(std::time::Duration::from_millis(1500));
            let f = request(&p.method, &format!("/__probe/{k}"), &[]);
            conn.send(&[headers_frame(&f, true)]);
            let outcome = conn.outcome(1);
            if !p.late.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            *rec.probe.lock().expect("lock") = None;
            rec.take();
            outcome
        });
        if let Outcome::Response { headers, .. } = &ours {
            for (h, _) in headers {
                if is_context_header(h) {
                    problems.push(format!("{}: {h} reached the client", p.name));
                }
            }
        }
        match (passed(&ours), passed(&theirs)) {
            (true, false) => problems.push(format!(
                "{}: authz-edge passed {} where nginx gave {}",
                p.name,
                ours.label(),
                theirs.label()
            )),
            (false, true) => stricter += 1,
            _ => agree += 1,
        }
    }
    println!(
        "response probes over HTTP/2: {} (agree {agree}, stricter {stricter})",
        probes.len()
    );
    assert!(probes.len() >= 100, "{} probes", probes.len());
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
