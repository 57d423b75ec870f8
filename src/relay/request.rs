//! The request side of the relay: the client's head parsed once, and the head Django gets
//! written straight from it by the rules of `forwarding` (`fate`, `keeps_forwarded`,
//! `listed_in_connection`, `forwarded_values`), which Pingora's path applies to its header map.
//!
//! No header map is built for a request unless it is denied: classification and the sample
//! read the client's headers through `Plan::request_header`.

use super::MAX_HEADERS;
use crate::rules::forwarding::{self, Client, Fate, SeenForwarded};
use crate::runtime::Runtime;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Version};
use pingora::http::RequestHeader;
use std::fmt::Write as _;
use std::ops::Range;

/// A request the relay takes: its head as the client sent it, and its framing.
pub struct Plan {
    /// A copy of the head (and what followed it in the first read); everything below points
    /// into it.
    head: Bytes,
    pub method: Method,
    pub version: Version,
    target: Range<usize>,
    /// The length of the path within the target (before any `?`).
    path_len: usize,
    headers: Vec<(Range<usize>, Range<usize>)>,
    pub head_len: usize,
    pub body_len: usize,
    /// The client asked to keep the connection (HTTP/1.1 default, or 1.0 with `keep-alive`).
    pub keepalive: bool,
}

impl Plan {
    /// Parses the complete head at the start of `buf`; `None` when the relay does not take it
    /// (see `relay::plan`).
    pub fn parse(buf: &[u8], max_head: usize) -> Option<Plan> {
        let head = Bytes::copy_from_slice(&buf[..buf.len().min(max_head)]);
        let base = head.as_ptr() as usize;
        let range = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut p = httparse::Request::new(&mut parsed);
        let Ok(httparse::Status::Complete(head_len)) = p.parse(&head) else {
            return None;
        };
        let (Some(method), Some(target), Some(version)) = (p.method, p.path, p.version) else {
            return None;
        };
        let plain_method = matches!(
            method,
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
        );
        if !plain_method || !target.starts_with('/') {
            return None;
        }
        let mut keepalive = version == 1;
        let mut body_len: Option<u64> = None;
        let mut headers = Vec::with_capacity(p.headers.len());
        for h in p.headers.iter() {
            let is = |n: &str| h.name.eq_ignore_ascii_case(n);
            if is("transfer-encoding") || is("upgrade") || is("expect") {
                return None;
            }
            if is("content-length") {
                if body_len.is_some() {
                    return None;
                }
                body_len = Some(crate::response::upstream_head::digits(h.value)?);
            } else if is("connection") {
                keepalive = super::connection_keepalive(h.value).unwrap_or(keepalive);
            }
            headers.push((range(h.name.as_bytes()), range(h.value)));
        }
        Some(Plan {
            method: Method::from_bytes(method.as_bytes()).ok()?,
            version: if version == 0 {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            },
            target: range(target.as_bytes()),
            path_len: target.find('?').unwrap_or(target.len()),
            headers,
            head_len,
            body_len: usize::try_from(body_len.unwrap_or(0)).ok()?,
            keepalive,
            head,
        })
    }

    fn target(&self) -> &[u8] {
        &self.head[self.target.clone()]
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        // httparse hands the target out as a `str`; the path is a prefix ending at an ASCII `?`.
        std::str::from_utf8(&self.target()[..self.path_len]).unwrap_or("/")
    }

    /// The headers, names as the client spelt them.
    fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (&self.head[n.clone()], &self.head[v.clone()]))
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The client's request as a header map, for classifying a denial and for its sample.
    /// The values share the head's copy.
    pub fn request_header(&self) -> Option<RequestHeader> {
        let mut parts = http::Request::new(()).into_parts().0;
        parts.method = self.method.clone();
        parts.uri = http::Uri::from_maybe_shared(self.head.slice(self.target.clone())).ok()?;
        parts.version = self.version;
        parts.headers.reserve(self.headers.len());
        for (n, v) in &self.headers {
            let name = HeaderName::from_bytes(&self.head[n.clone()]).ok()?;
            let value = HeaderValue::from_maybe_shared(self.head.slice(v.clone())).ok()?;
            parts.headers.try_append(name, value).ok()?;
        }
        Some(RequestHeader::from(parts))
    }

    /// Writes the request line and headers Django gets into `wire`.
    pub(super) fn write_upstream_head(
        &self,
        rt: &Runtime,
        client: &Client,
        request_id: &str,
        wire: &mut BytesMut,
    ) {
        let line = RequestLine {
            method: self.method.as_str().as_bytes(),
            target: self.target(),
            authority: None,
            length: Length::AsSent,
        };
        write_upstream_head(rt, client, request_id, &line, || self.headers(), wire);
    }
}

/// How Django learns the request body's length.
#[derive(Clone, Copy)]
pub(super) enum Length {
    /// From the client's own `Content-Length` (the relay takes no other framing).
    AsSent,
    /// From this value, replacing the client's framing headers (`Content-Length`,
    /// `Transfer-Encoding`, `Expect`): the body was read whole. `None` for a request that had
    /// no body and said no length.
    Whole(Option<u64>),
}

/// What Django's request head says besides the client's headers that `forwarding` keeps.
pub(super) struct RequestLine<'a> {
    pub method: &'a [u8],
    /// In origin form.
    pub target: &'a [u8],
    /// Written as `Host` when the client sent none (HTTP/2's `:authority`).
    pub authority: Option<&'a [u8]>,
    pub length: Length,
}

/// Writes the head Django gets into `wire`, straight from the client's headers by
/// `forwarding`'s rules: the relay's own loop from the raw head, and `relay::buffered` from
/// Pingora's header map, without copying it. Each call of `headers` walks them, names as they
/// are to be written.
pub(super) fn write_upstream_head<'h, I>(
    rt: &Runtime,
    client: &Client,
    request_id: &str,
    line: &RequestLine<'_>,
    headers: impl Fn() -> I,
    wire: &mut BytesMut,
) where
    I: Iterator<Item = (&'h [u8], &'h [u8])>,
{
    // Names a `Connection` header lists go with it.
    let mut listed: Vec<&[u8]> = Vec::new();
    for (name, value) in headers() {
        if name.eq_ignore_ascii_case(b"connection") {
            listed.extend(forwarding::listed_in_connection(value));
        }
    }
    let whole = matches!(line.length, Length::Whole(_));
    let fate = |name: &[u8]| {
        if listed.iter().any(|t| name.eq_ignore_ascii_case(t)) {
            Fate::HopByHop
        } else if whole && is_framing(name) {
            Fate::Drop
        } else {
            forwarding::fate(name, &rt.context)
        }
    };
    // Each name's fate, worked out once for the first `MAX_HEADERS` (more than the relay
    // parses; Pingora's limit is `limits.max_headers`), again for any past them.
    let mut fates = [Fate::Keep; MAX_HEADERS];
    let mut seen = SeenForwarded::default();
    let mut has_host = false;
    for (i, (name, value)) in headers().enumerate() {
        let f = fate(name);
        if let Some(slot) = fates.get_mut(i) {
            *slot = f;
        }
        match f {
            Fate::Host => has_host = true,
            Fate::Forwarded if name.eq_ignore_ascii_case(b"x-forwarded-for") => {
                seen.xff = seen.xff.or(Some(value));
            }
            Fate::Forwarded if name.eq_ignore_ascii_case(b"x-forwarded-proto") => {
                seen.proto = true;
            }
            Fate::Forwarded if name.eq_ignore_ascii_case(b"x-real-ip") => seen.real_ip = true,
            _ => {}
        }
    }
    let trusted = client.ip.is_some_and(|ip| rt.trusted.contains(ip));
    let set = forwarding::forwarded_values(trusted, &seen, client, request_id);

    wire.put_slice(line.method);
    wire.put_u8(b' ');
    wire.put_slice(line.target);
    wire.put_slice(b" HTTP/1.1\r\n");
    if let Some(authority) = line.authority.filter(|_| !has_host) {
        put_header(wire, b"Host", authority);
    }
    for (i, (name, value)) in headers().enumerate() {
        let keep = match fates.get(i).copied().unwrap_or_else(|| fate(name)) {
            Fate::Keep | Fate::Host => true,
            Fate::Forwarded => forwarding::keeps_forwarded(name, trusted),
            // The request id is always among the values set.
            Fate::RequestId | Fate::HopByHop | Fate::Drop => false,
        };
        if keep {
            put_header(wire, name, value);
        }
    }
    for (name, value) in set.iter() {
        put_header(wire, name.as_bytes(), value.as_bytes());
    }
    if let Length::Whole(Some(n)) = line.length {
        let _ = write!(wire, "Content-Length: {n}\r\n");
    }
    wire.put_slice(b"\r\n");
}

/// The client's framing headers, which a body read whole replaces with its length.
fn is_framing(name: &[u8]) -> bool {
    ["content-length", "transfer-encoding", "expect"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

fn put_header(wire: &mut BytesMut, name: &[u8], value: &[u8]) {
    wire.put_slice(name);
    wire.put_slice(b": ");
    wire.put_slice(value);
    wire.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(line: &RequestLine<'_>, headers: &[(&[u8], &[u8])]) -> String {
        let rt = super::super::test_runtime("");
        let client = Client {
            ip: Some("192.0.2.7".parse().expect("ip")),
            tls: true,
        };
        let mut wire = BytesMut::new();
        let walk = || headers.iter().map(|(n, v)| (*n, *v));
        write_upstream_head(&rt, &client, "rid", line, walk, &mut wire);
        String::from_utf8(wire.to_vec()).expect("ascii")
    }

    #[test]
    fn a_body_read_whole_replaces_the_framing_and_authority_becomes_host() {
        let line = RequestLine {
            method: b"POST",
            target: b"/f?x=1",
            authority: Some(b"example.com"),
            length: Length::Whole(Some(5)),
        };
        let head = write(
            &line,
            &[
                (b"transfer-encoding", b"chunked"),
                (b"expect", b"100-continue"),
                (b"content-length", b"9"),
                (b"connection", b"x-secret"),
                (b"x-secret", b"1"),
                (b"x-authz-user", b"forged"),
                (b"accept", b"*/*"),
            ],
        );
        assert_eq!(
            head,
            "POST /f?x=1 HTTP/1.1\r\nHost: example.com\r\naccept: */*\r\n\
             X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\nX-Real-IP: 192.0.2.7\r\n\
             X-Request-Id: rid\r\nContent-Length: 5\r\n\r\n"
        );
        // A client's own Host stays, and is the only one; no body and no length: none said.
        let line = RequestLine {
            length: Length::Whole(None),
            method: b"GET",
            ..line
        };
        let head = write(&line, &[(b"host", b"own.example")]);
        assert!(head.starts_with("GET /f?x=1 HTTP/1.1\r\nhost: own.example\r\nX-Forwarded-For"));
        assert!(!head.contains("Content-Length") && !head.contains("Host: example.com"));
    }

    #[test]
    fn headers_past_the_relay_s_count_follow_the_same_rules() {
        let names: Vec<String> = (0..MAX_HEADERS + 10).map(|i| format!("x-h{i}")).collect();
        let mut headers: Vec<(&[u8], &[u8])> =
            names.iter().map(|n| (n.as_bytes(), &b"v"[..])).collect();
        headers.push((b"x-authz-user", b"forged"));
        headers.push((b"x_under", b"1"));
        headers.push((b"x-forwarded-for", b"1.2.3.4"));
        headers.push((b"x-last", b"kept"));
        let line = RequestLine {
            method: b"GET",
            target: b"/",
            authority: None,
            length: Length::AsSent,
        };
        let head = write(&line, &headers);
        assert_eq!(head.matches("\r\nx-h").count(), MAX_HEADERS + 10);
        assert!(head.contains("\r\nx-last: kept\r\n"));
        assert!(!head.contains("x-authz-user") && !head.contains("x_under"));
        assert_eq!(head.matches("X-Forwarded-For: 192.0.2.7\r\n").count(), 1);
        assert!(!head.contains("1.2.3.4"));
    }
}
