//! The request head Django gets, written straight from the client's headers (the relay's raw
//! head, or Pingora's header map for its loop and HTTP/2 streams) by the rules of `forwarding`
//! (`fate`, `keeps_forwarded`, `listed_in_connection`, `forwarded_values`), without a copy of
//! the headers.

use super::MAX_HEADERS;
use crate::rules::context::ContextHeaders;
use crate::rules::forwarding::{self, Client, Fate, SeenForwarded, TrustedProxies};
use bytes::{BufMut, BytesMut};
use pingora::http::RequestHeader;
use std::borrow::Cow;
use std::fmt::Write as _;

/// How Django learns the request body's length.
#[derive(Clone, Copy)]
pub enum Length {
    /// From the client's own `Content-Length` (the relay takes no other framing).
    AsSent,
    /// From this value, replacing the client's framing headers (`Content-Length`,
    /// `Transfer-Encoding`, `Expect`): the body was read whole. `None` for a request that had
    /// no body and said no length.
    Whole(Option<u64>),
}

/// What Django's request head says besides the client's headers that `forwarding` keeps.
pub struct RequestLine<'a> {
    pub method: &'a [u8],
    /// In origin form.
    pub target: &'a [u8],
    /// Written as `Host` when the client sent none (HTTP/2's `:authority`).
    pub authority: Option<&'a [u8]>,
    pub length: Length,
}

/// Who a request is from and the rules its head is forwarded by.
pub struct Forward<'a> {
    pub context: &'a ContextHeaders,
    pub trusted: &'a TrustedProxies,
    pub client: &'a Client,
    pub request_id: &'a str,
    /// A location's `set_headers`, filled: they replace the client's headers and the
    /// forwarded ones of the same name; an empty value removes the header.
    pub set: &'a [(http::HeaderName, http::HeaderValue)],
}

/// Writes the head Django gets into `wire`, straight from the client's headers by
/// `forwarding`'s rules: the relay's own loop from the raw head, and `write_parsed` from
/// Pingora's header map, without copying it. Each call of `headers` walks them, names as they
/// are to be written.
pub fn write<'h, I>(
    fwd: &Forward<'_>,
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
    let overridden = |name: &[u8]| {
        fwd.set
            .iter()
            .any(|(n, _)| name.eq_ignore_ascii_case(n.as_str().as_bytes()))
    };
    let fate = |name: &[u8]| {
        if !fwd.set.is_empty() && overridden(name) {
            Fate::Drop
        } else if listed.iter().any(|t| name.eq_ignore_ascii_case(t)) {
            Fate::HopByHop
        } else if whole && is_framing(name) {
            Fate::Drop
        } else {
            forwarding::fate(name, fwd.context)
        }
    };
    // Each name's fate, worked out once for the first `MAX_HEADERS` (more than the relay
    // parses; Pingora's limit is `limits.max_headers`), again for any past them.
    let mut fates = [Fate::Keep; MAX_HEADERS];
    let mut seen = SeenForwarded::default();
    let mut has_host = fwd.set.iter().any(|(n, _)| n == http::header::HOST);
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
    let client = fwd.client;
    let trusted = client.ip.is_some_and(|ip| fwd.trusted.contains(ip));
    let set = forwarding::forwarded_values(trusted, &seen, client, fwd.request_id);

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
        if fwd.set.is_empty() || !overridden(name.as_bytes()) {
            put_header(wire, name.as_bytes(), value.as_bytes());
        }
    }
    for (name, value) in fwd.set.iter().filter(|(_, v)| !v.is_empty()) {
        put_header(wire, name.as_str().as_bytes(), value.as_bytes());
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

/// Writes the head Django gets for a request Pingora parsed into `wire`, from its header map;
/// `length` replaces the client's framing headers (the body was read whole), `None` for a
/// request without a body or a length.
pub fn write_parsed(
    fwd: &Forward<'_>,
    req: &RequestHeader,
    length: Option<u64>,
    wire: &mut BytesMut,
) {
    // An absolute-form target goes on in origin form, as nginx sends it.
    let raw = req.raw_path();
    let origin;
    let target = match raw.first() {
        Some(b'/') => raw,
        _ => {
            let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
            origin = match pq.starts_with('/') {
                true => Cow::Borrowed(pq),
                false => Cow::Owned(format!("/{pq}")),
            };
            origin.as_bytes()
        }
    };
    let line = RequestLine {
        method: req.method.as_str().as_bytes(),
        target,
        authority: req.uri.authority().map(|a| a.as_str().as_bytes()),
        length: Length::Whole(length),
    };
    let headers = || {
        req.headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
    };
    write(fwd, &line, headers, wire);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(line: &RequestLine<'_>, headers: &[(&[u8], &[u8])]) -> String {
        let client = Client {
            ip: Some("192.0.2.7".parse().expect("ip")),
            tls: true,
        };
        let fwd = Forward {
            context: &ContextHeaders::default(),
            trusted: &TrustedProxies::default(),
            client: &client,
            request_id: "rid",
            set: &[],
        };
        let mut wire = BytesMut::new();
        let walk = || headers.iter().map(|(n, v)| (*n, *v));
        write(&fwd, line, walk, &mut wire);
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
        let head = written(
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
        let head = written(&line, &[(b"host", b"own.example")]);
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
        let head = written(&line, &headers);
        assert_eq!(head.matches("\r\nx-h").count(), MAX_HEADERS + 10);
        assert!(head.contains("\r\nx-last: kept\r\n"));
        assert!(!head.contains("x-authz-user") && !head.contains("x_under"));
        assert_eq!(head.matches("X-Forwarded-For: 192.0.2.7\r\n").count(), 1);
        assert!(!head.contains("1.2.3.4"));
    }
}
