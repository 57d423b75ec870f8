//! The HTTP/2 → HTTP/1 head writer: a request as h2 would hand it over (any method, `:path`,
//! `:authority` and fields that h2's types take), through the HTTP/2 guard
//! (`guard::head::check_h2`, `check_parsed`), the cookie join and `upstream::request_head::write_parsed`.
//! No panic; what is written is one strict HTTP/1.1 request head and nothing after it, with
//! one `Host`, at most one `Cookie` and one `Content-Length`, no `Transfer-Encoding` and no
//! context header.
//!
//! Input: lines; the first three are the method, `:path` and `:authority` (empty: none), each
//! further line a field `name:value`.
#![no_main]
use authz_edge::guard::head::{check_h2, check_parsed};
use authz_edge::rules::forwarding::{join_cookies, Client};
use authz_edge::runtime::Runtime;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pingora::http::RequestHeader;
use std::sync::OnceLock;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let config = authz_edge::config::parse(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:8000\"]\n",
        )
        .expect("config");
        let metrics = authz_edge::telemetry::metrics::Metrics::new(10, 10);
        Runtime::build(&config, 1, &metrics).expect("runtime")
    })
}

fn request(data: &[u8]) -> Option<RequestHeader> {
    let mut lines = data.split(|b| *b == b'\n');
    let method = http::Method::from_bytes(lines.next()?).ok()?;
    let path = lines.next()?;
    let authority = lines.next()?;
    let mut uri = http::Uri::builder();
    if !authority.is_empty() {
        uri = uri.scheme("https").authority(authority);
    }
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri.path_and_query(path).build().ok()?;
    parts.version = http::Version::HTTP_2;
    for line in lines {
        let colon = line.iter().skip(1).position(|b| *b == b':')? + 1;
        let name = http::HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = http::HeaderValue::from_bytes(&line[colon + 1..]).ok()?;
        parts.headers.append(name, value);
    }
    Some(RequestHeader::from(parts))
}

fuzz_target!(|data: &[u8]| {
    let Some(mut req) = request(data) else {
        return;
    };
    let rt = runtime();
    if check_h2(&req).is_err() || check_parsed(&req, &rt.limits).is_err() {
        return;
    }
    join_cookies(&mut req);
    let client = Client {
        ip: Some("192.0.2.1".parse().expect("ip")),
        tls: true,
    };
    let mut wire = BytesMut::new();
    let fwd = authz_edge::upstream::request_head::Forward {
        context: &rt.context,
        trusted: &rt.trusted,
        client: &client,
        request_id: "rid",
        set: &[],
    };
    authz_edge::upstream::request_head::write_parsed(&fwd, &req, Some(3), &mut wire);
    let mut headers = [httparse::EMPTY_HEADER; 512];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = parsed.parse(&wire) else {
        panic!("not one request head: {:?}", String::from_utf8_lossy(&wire));
    };
    assert_eq!(len, wire.len(), "bytes after the head");
    assert!(parsed.path.is_some_and(|p| p.starts_with('/')));
    let count = |n: &str| parsed.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(n)).count();
    assert_eq!(count("host"), 1);
    assert!(count("cookie") <= 1);
    assert_eq!(count("content-length"), 1);
    assert_eq!(count("transfer-encoding"), 0);
    for h in parsed.headers.iter() {
        let n = h.name.to_ascii_lowercase().replace('_', "-");
        assert!(!n.starts_with("x-authz-") && n != "x-app-release", "{n} reached Django");
    }
});
