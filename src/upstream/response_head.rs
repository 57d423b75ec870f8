//! Django's response head, read once for every loop: `ResponseHead::read` parses it strictly,
//! checks it by the rules below, and returns a plain value (status, framing, whether Django
//! keeps the connection, the context headers taken out). Beside it are its two writers: the
//! bytes an HTTP/1 client gets (`write_h1`, the relay) and the header map for a Pingora session,
//! HTTP/1 or HTTP/2 (`header_map`).
//!
//! The rules: one framing, stated once; a real status; within the same caps as a request head.
//! A head that breaks one is a 502 (counted as `kind="other"`), never passed on: an ambiguous
//! framing is how responses are smuggled, and nginx refuses the same heads.
//!
//! Longer than 400 lines only with its unit tests, which sit beside the code.

use crate::config::Limits;
use crate::rules::context::ContextHeaders;
use crate::rules::forwarding;
use crate::telemetry::classify;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;

/// Why a response head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A status code below 100.
    Status,
    /// A `Content-Length` that is not one decimal number.
    BadLength,
    /// More than one `Content-Length` line, even with equal values (nginx: "upstream sent
    /// duplicate header line").
    DuplicateLength,
    /// A `Transfer-Encoding` other than a single `chunked`, or on more than one line.
    BadTransferEncoding,
    /// Both `Content-Length` and `Transfer-Encoding`.
    BothFramings,
    /// More header lines than `limits.max_headers`.
    TooManyHeaders,
    /// More header bytes than `limits.max_header_bytes`.
    TooLarge,
}

/// What a valid head declares of its body's framing (`check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Declared {
    pub length: Option<u64>,
    pub chunked: bool,
}

/// How a response body is delimited on the connection from Django.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a HEAD request, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// The body ends when Django closes the connection.
    UntilClose,
}

impl Framing {
    /// How a response with `status` and the `declared` framing is delimited; `head_only` for
    /// the answer to a HEAD request.
    pub fn of(head_only: bool, status: u16, declared: Declared) -> Framing {
        if head_only || status == 204 || status == 304 {
            Framing::Empty
        } else if declared.chunked {
            Framing::Chunked
        } else {
            declared.length.map_or(Framing::UntilClose, Framing::Length)
        }
    }
}

/// A decimal `Content-Length` value: digits only (optional surrounding blanks), no sign, no
/// overflow.
pub fn digits(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// What a `Connection` value says of keeping the connection: the last of `close` and
/// `keep-alive` it lists, if any.
pub fn connection_keepalive(value: &[u8]) -> Option<bool> {
    value
        .rsplit(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .find_map(|t| {
            if t.eq_ignore_ascii_case(b"close") {
                Some(false)
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                Some(true)
            } else {
                None
            }
        })
}

/// The values of Django's context headers in a response head, which the client never gets:
/// the route and release always, the kind, path and user of a `PermissionError` only on a 5xx,
/// the kind of a login redirect on a 302.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct ContextValues<'a> {
    pub route: Option<&'a [u8]>,
    pub release: Option<&'a [u8]>,
    pub kind: Option<&'a [u8]>,
    pub fs_path: Option<&'a [u8]>,
    pub run_as: Option<&'a [u8]>,
}

impl<'a> ContextValues<'a> {
    /// Whether `name` is a context header; if so its value is kept when telemetry reads it.
    fn take(&mut self, names: &ContextHeaders, status: u16, name: &str, value: &'a [u8]) -> bool {
        if !forwarding::is_context_header(name, names) {
            return false;
        }
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        let slot = if is(names.route.as_str()) {
            &mut self.route
        } else if is(names.release.as_str()) {
            &mut self.release
        } else if is(names.kind.as_str()) && (status >= 500 || status == 302) {
            // On a 5xx the mark of a `PermissionError`; on a 302, of a login redirect.
            &mut self.kind
        } else if status < 500 {
            return true;
        } else if is(classify::PATH_HEADER) {
            &mut self.fs_path
        } else if is(classify::RUN_AS_HEADER) {
            &mut self.run_as
        } else {
            return true;
        };
        *slot = Some(value);
        true
    }
}

/// Django's final response head, read: the one value every loop works from.
pub struct ResponseHead<'h, 'b> {
    pub status: u16,
    /// The reason phrase, when Django sent one.
    pub reason: Option<&'b str>,
    pub framing: Framing,
    /// The framing the head declared (a HEAD answer's too, whose body is `Empty`).
    pub declared: Declared,
    /// Django keeps the connection: HTTP/1.1 without `Connection: close`, or 1.0 with
    /// `keep-alive`. The body's end decides the rest (`pool::ResponseEnd`).
    pub server_keeps: bool,
    pub context: ContextValues<'b>,
    /// `X-Accel-Buffering: no` (nginx's convention) or `text/event-stream`: each piece goes to
    /// the client as it comes, never read ahead.
    pub streams: bool,
    /// The content coding the body goes out in (`response::compression`), which the writers
    /// state: `Content-Encoding`, `Vary: Accept-Encoding`, no `Content-Length`, a weak `ETag`.
    pub coding: Option<&'static str>,
    /// A 302's `Location`, to tell a redirect to the login page (`ResponseHead::is_denial`).
    pub location: Option<&'b [u8]>,
    /// Every header as received; the ones that go on to the client first.
    headers: &'h [httparse::Header<'b>],
    forwarded: usize,
}

/// Whether a response header stops at the edge: hop-by-hop, or framing the client's protocol
/// states anew.
fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        // nginx's convention, for the proxy alone (nginx hides it too).
        "x-accel-buffering",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// What the coding changes in one header.
enum Edited {
    Same,
    Dropped,
    Value(Vec<u8>),
}

impl<'h, 'b> ResponseHead<'h, 'b> {
    /// Parses the complete head `head` with httparse's strict defaults (no obs-fold, no space
    /// before a colon) into `headers`, and checks it by `check`; `head_only` for the answer to
    /// a HEAD request. `None`: a 502.
    pub fn read(
        head: &'b [u8],
        headers: &'h mut [httparse::Header<'b>],
        limits: &Limits,
        names: &ContextHeaders,
        head_only: bool,
    ) -> Option<Self> {
        let mut p = httparse::Response::new(headers);
        let Ok(httparse::Status::Complete(_)) = p.parse(head) else {
            return None;
        };
        let (status, version, reason) = (p.code?, p.version?, p.reason);
        let headers = std::mem::take(&mut p.headers);
        let declared = check(
            status,
            headers.iter().map(|h| (h.name.as_bytes(), h.value)),
            limits,
        )
        .ok()?;
        let mut server_keeps = version == 1;
        let mut streams = false;
        let mut context = ContextValues::default();
        let mut location = None;
        // The headers that go on are moved to the front, in their order.
        let mut forwarded = 0;
        for i in 0..headers.len() {
            let h = headers[i];
            if h.name.eq_ignore_ascii_case("connection") {
                server_keeps = connection_keepalive(h.value).unwrap_or(server_keeps);
            } else if h.name.eq_ignore_ascii_case("x-accel-buffering") {
                streams |= h.value.trim_ascii().eq_ignore_ascii_case(b"no");
            } else if h.name.eq_ignore_ascii_case("content-type") {
                let t = h.value.split(|b| *b == b';').next().unwrap_or_default();
                streams |= t.trim_ascii().eq_ignore_ascii_case(b"text/event-stream");
            } else if status == 302 && h.name.eq_ignore_ascii_case("location") {
                location = Some(h.value);
            }
            if is_hop_by_hop(h.name) || context.take(names, status, h.name, h.value) {
                continue;
            }
            headers.swap(forwarded, i);
            forwarded += 1;
        }
        Some(ResponseHead {
            status,
            reason,
            framing: Framing::of(head_only, status, declared),
            declared,
            server_keeps,
            context,
            streams,
            coding: None,
            location,
            headers,
            forwarded,
        })
    }

    /// Whether this is a denial telemetry watches: a 401, a 403, or a 302 to the login page
    /// (`classify::is_denial`).
    pub fn is_denial(&self, login_paths: &[String]) -> bool {
        classify::is_denial(
            self.status,
            self.context.kind.is_some(),
            self.location,
            login_paths,
        )
    }

    /// The headers that go on to the client: not hop-by-hop, not framing, not context.
    pub fn forwarded(&self) -> &[httparse::Header<'b>] {
        &self.headers[..self.forwarded]
    }

    /// What the chosen coding makes of header `h`.
    fn edited(&self, h: &httparse::Header<'_>) -> Edited {
        if self.coding.is_none() {
            return Edited::Same;
        }
        let is = |n: &str| h.name.eq_ignore_ascii_case(n);
        if is("content-length") || is("accept-ranges") {
            // Ranges of the encoded bytes are not offered, as nginx's gzip clears them.
            Edited::Dropped
        } else if is("etag") && !h.value.starts_with(b"W/") {
            // The bytes differ now: equivalent, not identical (as nginx's gzip).
            Edited::Value([&b"W/"[..], h.value].concat())
        } else if is("vary") && !vary_lists_encoding(h.value) {
            Edited::Value([h.value, &b", Accept-Encoding"[..]].concat())
        } else {
            Edited::Same
        }
    }

    /// The headers the coding adds: `Content-Encoding`, and `Vary` when Django sent none.
    fn added(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        let vary = !self
            .forwarded()
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("vary"));
        let coding = self.coding.map(|c| ("Content-Encoding", c));
        let vary = self
            .coding
            .filter(|_| vary)
            .map(|_| ("Vary", "Accept-Encoding"));
        coding.into_iter().chain(vary)
    }

    /// The head for an HTTP/1 client, into `out`: status line, the forwarded headers,
    /// `Transfer-Encoding: chunked` when `chunked` (the body goes out re-chunked, or a HEAD
    /// answer says it would), and `Connection`.
    pub fn write_h1(&self, out: &mut BytesMut, chunked: bool, keep_client: bool) {
        let status = self.status;
        out.put_slice(b"HTTP/1.1 ");
        // httparse holds the code to three digits.
        out.put_slice(&[
            b'0' + (status / 100 % 10) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
            b' ',
        ]);
        match self.reason.filter(|r| !r.is_empty()) {
            Some(r) => out.put_slice(r.as_bytes()),
            None => out.put_slice(reason_phrase(status).as_bytes()),
        }
        out.put_slice(b"\r\n");
        let mut put = |name: &[u8], value: &[u8]| {
            out.put_slice(name);
            out.put_slice(b": ");
            out.put_slice(value);
            out.put_slice(b"\r\n");
        };
        for h in self.forwarded() {
            match self.edited(h) {
                Edited::Same => put(h.name.as_bytes(), h.value),
                Edited::Value(v) => put(h.name.as_bytes(), &v),
                Edited::Dropped => {}
            }
        }
        for (name, value) in self.added() {
            put(name.as_bytes(), value.as_bytes());
        }
        if chunked {
            out.put_slice(b"Transfer-Encoding: chunked\r\n");
        }
        out.put_slice(if keep_client {
            b"Connection: keep-alive\r\n\r\n"
        } else {
            b"Connection: close\r\n\r\n"
        });
    }

    /// The head for a Pingora session (HTTP/1 or HTTP/2), which frames the body for the
    /// client's protocol. `head` is the bytes the head was read from.
    ///
    /// `keep_case`: the names keep Django's spelling (an HTTP/1 client). For HTTP/2 the names
    /// are lowercase anyway, so the map is built without Pingora's case map, and the values
    /// are slices of `head`, not copies.
    pub fn header_map(&self, head: &Bytes, keep_case: bool) -> Option<ResponseHeader> {
        let mut resp = if keep_case {
            let mut resp = ResponseHeader::build(self.status, Some(self.forwarded)).ok()?;
            for h in self.forwarded() {
                match self.edited(h) {
                    Edited::Same => resp.append_header(h.name.to_string(), h.value).ok()?,
                    Edited::Value(v) => resp.append_header(h.name.to_string(), v).ok()?,
                    Edited::Dropped => false,
                };
            }
            for (name, value) in self.added() {
                resp.append_header(name, value).ok()?;
            }
            resp
        } else {
            let mut map = http::HeaderMap::with_capacity(self.forwarded + 2);
            for h in self.forwarded() {
                let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
                let value = match self.edited(h) {
                    Edited::Same => HeaderValue::from_maybe_shared(shared_slice(head, h.value)?),
                    Edited::Value(v) => HeaderValue::from_bytes(&v),
                    Edited::Dropped => continue,
                };
                map.append(name, value.ok()?);
            }
            for (name, value) in self.added() {
                let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
                map.append(name, HeaderValue::from_static(value));
            }
            let (mut parts, ()) = http::Response::new(()).into_parts();
            parts.status = http::StatusCode::from_u16(self.status).ok()?;
            parts.headers = map;
            ResponseHeader::from(parts)
        };
        if self.coding.is_some() || matches!(self.framing, Framing::Chunked | Framing::UntilClose) {
            // Re-framed for the client: chunked on HTTP/1.1 (Pingora drops it for HTTP/2), so
            // that a body Django breaks off reaches the client cut off, not seemingly whole.
            resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")
                .ok()?;
        }
        Some(resp)
    }

    /// A denial's whole head, context headers included, as a header map for its
    /// classification and sample.
    pub fn denial_head(&self) -> Option<ResponseHeader> {
        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = http::StatusCode::from_u16(self.status).ok()?;
        parts.headers.reserve(self.headers.len());
        for h in self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(h.name.as_bytes()),
                HeaderValue::from_bytes(h.value),
            ) {
                parts.headers.append(n, v);
            }
        }
        Some(ResponseHeader::from(parts))
    }
}

/// Whether a `Vary` value already covers `Accept-Encoding` (or everything).
fn vary_lists_encoding(value: &[u8]) -> bool {
    value.split(|b| *b == b',').any(|t| {
        let t = t.trim_ascii();
        t == b"*" || t.eq_ignore_ascii_case(b"accept-encoding")
    })
}

/// The standard reason phrase of `status`, for a head that came without one.
pub fn reason_phrase(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// `part` of `head` as a `Bytes` sharing its memory; `None` if `part` is not within it.
fn shared_slice(head: &Bytes, part: &[u8]) -> Option<Bytes> {
    let start = (part.as_ptr() as usize).checked_sub(head.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= head.len()).then(|| head.slice(start..end))
}

/// Checks a final response head's status and headers (names and values as received).
pub fn check<'a>(
    status: u16,
    headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    limits: &Limits,
) -> Result<Declared, Fault> {
    if status < 100 {
        return Err(Fault::Status);
    }
    let mut framing = Declared::default();
    let (mut count, mut bytes, mut te_lines) = (0usize, 0usize, 0u8);
    for (name, value) in headers {
        count += 1;
        bytes += name.len() + value.len() + 4;
        if name.eq_ignore_ascii_case(b"content-length") {
            if framing.length.is_some() {
                return Err(Fault::DuplicateLength);
            }
            framing.length = Some(digits(value).ok_or(Fault::BadLength)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_lines += 1;
            if te_lines > 1 || !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(Fault::BadTransferEncoding);
            }
            framing.chunked = true;
        }
    }
    if count > limits.max_headers {
        return Err(Fault::TooManyHeaders);
    }
    if bytes > limits.max_header_bytes {
        return Err(Fault::TooLarge);
    }
    if framing.chunked && framing.length.is_some() {
        return Err(Fault::BothFramings);
    }
    Ok(framing)
}

/// Whether an interim (1xx) response may go on to the client: `100 Continue` only when the
/// request asked for it with `Expect: 100-continue`, `101` only after an upgrade request.
/// Anything else (a stray `100`, `102`, `103`, an unknown 1xx) is a 502: nginx 1.22 passes no
/// 1xx from an upstream either, and `103 Early Hints` could carry headers past the rules for
/// final responses. The relay sends neither `Expect` nor `Upgrade`, so it refuses every 1xx.
pub fn interim_allowed(status: u16, asked_continue: bool, asked_upgrade: bool) -> bool {
    match status {
        100 => asked_continue,
        101 => asked_upgrade,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits {
            max_headers: 4,
            max_header_bytes: 64,
            ..Limits::default()
        }
    }

    fn check_h(status: u16, h: &[(&str, &str)]) -> Result<Declared, Fault> {
        check(
            status,
            h.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &lim(),
        )
    }

    #[test]
    fn one_framing_is_taken() {
        assert_eq!(
            check_h(200, &[("Content-Length", " 12 ")]),
            Ok(Declared {
                length: Some(12),
                chunked: false
            })
        );
        assert_eq!(
            check_h(200, &[("transfer-encoding", "Chunked")]),
            Ok(Declared {
                length: None,
                chunked: true
            })
        );
        assert_eq!(check_h(204, &[]), Ok(Declared::default()));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        type Case<'a> = (u16, &'a [(&'a str, &'a str)], Fault);
        let cases: [Case; 11] = [
            (0, &[], Fault::Status),
            (99, &[], Fault::Status),
            (
                200,
                &[("Content-Length", "5"), ("Content-Length", "5")],
                Fault::DuplicateLength,
            ),
            (200, &[("Content-Length", "5, 5")], Fault::BadLength),
            (200, &[("Content-Length", "-1")], Fault::BadLength),
            (200, &[("Content-Length", "")], Fault::BadLength),
            (
                200,
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "chunked"),
                ],
                Fault::BadTransferEncoding,
            ),
            (
                200,
                &[("Transfer-Encoding", "gzip, chunked")],
                Fault::BadTransferEncoding,
            ),
            (
                200,
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
                Fault::BothFramings,
            ),
            (
                200,
                &[("A", "1"), ("B", "1"), ("C", "1"), ("D", "1"), ("E", "1")],
                Fault::TooManyHeaders,
            ),
            (200, &[("A", &"x".repeat(80))], Fault::TooLarge),
        ];
        for (status, h, fault) in cases {
            assert_eq!(check_h(status, h), Err(fault), "{status} {h:?}");
        }
    }

    #[test]
    fn interim_statuses() {
        assert!(interim_allowed(100, true, false));
        assert!(interim_allowed(101, false, true));
        for s in [100, 101, 102, 103, 150, 199] {
            assert!(!interim_allowed(s, false, false), "{s}");
        }
        assert!(!interim_allowed(103, true, true));
    }

    fn read_head<'h, 'b>(
        raw: &'b [u8],
        headers: &'h mut [httparse::Header<'b>],
        head_only: bool,
    ) -> Option<ResponseHead<'h, 'b>> {
        let names = ContextHeaders::default();
        ResponseHead::read(raw, headers, &Limits::default(), &names, head_only)
    }

    #[test]
    fn a_head_is_read_into_one_plain_value() {
        let raw =
            b"HTTP/1.1 403 Denied\r\nX-Authz-Route: /r/<int:pk>/\r\nContent-Type: text/html\r\n\
            Connection: close\r\nX-App-Release: r2\r\nX-Authz-User: 42\r\nContent-Length: 5\r\n\
            Keep-Alive: timeout=5\r\nVary: Cookie\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let head = read_head(raw, &mut headers, false).expect("valid");
        assert_eq!(head.status, 403);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(!head.server_keeps, "Connection: close");
        assert_eq!(head.context.route, Some(&b"/r/<int:pk>/"[..]));
        assert_eq!(head.context.release, Some(&b"r2"[..]));
        let names: Vec<&str> = head.forwarded().iter().map(|h| h.name).collect();
        assert_eq!(names, ["Content-Type", "Content-Length", "Vary"]);
        let mut out = BytesMut::new();
        head.write_h1(&mut out, false, true);
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 403 Denied\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\
               Vary: Cookie\r\nConnection: keep-alive\r\n\r\n"[..]
        );
        // The denial's own map keeps what classification reads.
        let denial = head.denial_head().expect("map");
        assert_eq!(
            denial.headers.get("x-authz-user").map(|v| v.as_bytes()),
            Some(&b"42"[..])
        );
        let map = head
            .header_map(&Bytes::from_static(raw), false)
            .expect("map");
        assert_eq!(map.headers.len(), 3);
        assert!(map.headers.get("x-authz-route").is_none());
    }

    #[test]
    fn a_redirect_to_the_login_page_is_a_denial_by_its_mark_or_its_location() {
        let paths = vec!["/accounts/login/".to_string()];
        let cases: [(&[u8], bool); 5] = [
            (b"HTTP/1.1 302 Found\r\nLocation: /accounts/login/?next=/a/\r\nContent-Length: 0\r\n\r\n", true),
            (b"HTTP/1.1 302 Found\r\nLocation: /welcome/\r\nX-Authz-Kind: permission\r\nContent-Length: 0\r\n\r\n", true),
            (b"HTTP/1.1 302 Found\r\nLocation: /welcome/\r\nContent-Length: 0\r\n\r\n", false),
            (b"HTTP/1.1 301 Moved\r\nLocation: /accounts/login/\r\nContent-Length: 0\r\n\r\n", false),
            (b"HTTP/1.1 200 OK\r\nX-Authz-Kind: permission\r\nContent-Length: 0\r\n\r\n", false),
        ];
        for (raw, denial) in cases {
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let head = read_head(raw, &mut headers, false).expect("valid");
            assert_eq!(
                head.is_denial(&paths),
                denial,
                "{}",
                String::from_utf8_lossy(raw)
            );
            // The mark never reaches the client; Location always does.
            assert!(head
                .forwarded()
                .iter()
                .all(|h| !h.name.eq_ignore_ascii_case("x-authz-kind")));
        }
    }

    #[test]
    fn framing_follows_the_request_and_the_status() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut h = [httparse::EMPTY_HEADER; 4];
        let head = read_head(chunked, &mut h, false).expect("valid");
        assert_eq!(head.framing, Framing::Chunked);
        assert!(head.server_keeps && head.forwarded().is_empty());
        let mut h = [httparse::EMPTY_HEADER; 4];
        let head = read_head(chunked, &mut h, true).expect("valid");
        assert_eq!(head.framing, Framing::Empty, "a HEAD answer has no body");
        assert!(head.declared.chunked);
        let mut out = BytesMut::new();
        head.write_h1(&mut out, true, false);
        assert!(out.ends_with(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"));
        for (raw, framing, keeps) in [
            (
                &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
                Framing::Empty,
                true,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", Framing::UntilClose, true),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
                Framing::Length(2),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
                Framing::Length(2),
                true,
            ),
        ] {
            let mut h = [httparse::EMPTY_HEADER; 4];
            let head = read_head(raw, &mut h, false).expect("valid");
            assert_eq!((head.framing, head.server_keeps), (framing, keeps));
        }
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad : a\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            let mut h = [httparse::EMPTY_HEADER; 4];
            assert!(read_head(bad, &mut h, false).is_none());
        }
    }

    #[test]
    fn connection_values() {
        assert_eq!(connection_keepalive(b"close"), Some(false));
        assert_eq!(connection_keepalive(b" Keep-Alive , X-Hop"), Some(true));
        assert_eq!(connection_keepalive(b"keep-alive, close"), Some(false));
        assert_eq!(connection_keepalive(b"X-Hop"), None);
    }

    #[test]
    fn content_length_digits() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b" 1234 "), Some(1234));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1 2",
            b"0x10",
            b"99999999999999999999",
        ] {
            assert_eq!(digits(bad), None);
        }
    }
}
