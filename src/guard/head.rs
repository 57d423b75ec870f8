//! Request limits: checks on the raw HTTP/1 head before Pingora parses it, the same rules for an
//! HTTP/2 request h2 parsed (`check_h2`), and limits on parsed headers.
//!
//! Longer than 400 lines only with its unit tests, which sit beside the code.

use crate::config::Limits;
use crate::telemetry::vocabulary::RejectReason;
use pingora::http::RequestHeader;

/// What the raw bytes read so far say about the request head.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadState {
    /// The head is complete within limits.
    Complete,
    /// More bytes are needed.
    Partial,
    /// Refuse the request.
    Reject(RejectReason),
}

/// Checks a raw HTTP/1 request head (possibly incomplete) against the limits.
///
/// Runs before Pingora's parser so that oversized or smuggling-prone heads never go further.
/// One `memchr` pass over the line ends finds the request line, counts the header lines and
/// finds the blank line that ends the head.
pub fn check_raw_head(buf: &[u8], limits: &Limits) -> HeadState {
    // Skip the blank lines that RFC 9112 allows before a request line.
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let head = &buf[start..];
    let mut line_end = None;
    let mut lines: usize = 0;
    let mut end = None;
    for i in memchr::memchr_iter(b'\n', head) {
        lines += 1;
        line_end.get_or_insert(i);
        end = blank_line_after(head, i);
        if end.is_some() {
            lines += 1;
            break;
        }
    }
    let examined = end.unwrap_or(head.len());

    // Request line length: the URI check does not need the whole head.
    let line = &head[..line_end.unwrap_or(head.len())];
    let uri_len = memchr::memchr(b' ', line)
        .map(|s| {
            let rest = &line[s + 1..];
            memchr::memchr(b' ', rest).unwrap_or(rest.len())
        })
        .unwrap_or(0);
    if uri_len > limits.max_uri_bytes {
        return HeadState::Reject(RejectReason::UriTooLong);
    }
    if line_end.is_none() && line.len() > limits.max_uri_bytes + 64 {
        return HeadState::Reject(RejectReason::UriTooLong);
    }
    let header_bytes = examined.saturating_sub(line_end.map_or(examined, |e| e + 1));
    if header_bytes > limits.max_header_bytes {
        return HeadState::Reject(RejectReason::HeaderTooLarge);
    }
    // Header lines seen so far (the request line's end is not one).
    if lines.saturating_sub(1) > limits.max_headers {
        return HeadState::Reject(RejectReason::TooManyHeaders);
    }
    let Some(end) = end else {
        return HeadState::Partial;
    };
    check_framing(&head[..end])
}

/// Where a head ends when the line ending at `lf` (a `\n`) is followed by the blank line that
/// ends it: `\n\n` or `\n\r\n`.
pub fn blank_line_after(buf: &[u8], lf: usize) -> Option<usize> {
    match buf.get(lf + 1..)? {
        [b'\n', ..] => Some(lf + 2),
        [b'\r', b'\n', ..] => Some(lf + 3),
        _ => None,
    }
}

/// Refuses heads whose message framing is ambiguous: CL with TE, bad CL, obsolete line folding,
/// and malformed header lines (which Pingora would otherwise try to repair).
fn check_framing(head: &[u8]) -> HeadState {
    let mut has_cl = false;
    let mut has_te = false;
    let mut cl_value: Option<&[u8]> = None;
    let mut lines = LineIter { rest: head };
    let Some(request_line) = lines.next() else {
        return HeadState::Reject(RejectReason::BadRequest);
    };
    let request_line = request_line.strip_suffix(b"\r").unwrap_or(request_line);
    let mut parts = request_line.split(|b| *b == b' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let well_formed_line = matches!((method, target, version, parts.next()),
        (Some(m), Some(t), Some(v), None)
            if !m.is_empty() && m.iter().all(|c| c.is_ascii_uppercase() || *c == b'-')
                && !t.is_empty()
                && t.iter().all(|c| c.is_ascii_graphic())
                && (v == b"HTTP/1.1" || v == b"HTTP/1.0"));
    let (Some(method), Some(target), Some(version), true) =
        (method, target, version, well_formed_line)
    else {
        return HeadState::Reject(RejectReason::BadRequest);
    };
    if let Err(r) = crate::guard::target::check_target(method, target) {
        return HeadState::Reject(r);
    }
    let mut hosts = 0u8;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // Obsolete line folding: a classic smuggling vector.
            return HeadState::Reject(RejectReason::BadRequest);
        }
        // The name runs over token characters up to the colon; anything else before it
        // (`Transfer-Encoding : chunked`, a space before the colon) is refused.
        let colon = line
            .iter()
            .position(|c| !is_token(*c))
            .unwrap_or(line.len());
        if colon == 0 || line.get(colon) != Some(&b':') {
            return HeadState::Reject(RejectReason::BadRequest);
        }
        let name = &line[..colon];
        // Optional whitespace is spaces and tabs only: `trim_ascii` would also take a form feed.
        let value = trim_ows(&line[colon + 1..]);
        // RFC 9110 §5.5: visible characters, obs-text, space and tab; no other control.
        if has_control(value) {
            return HeadState::Reject(RejectReason::BadRequest);
        }
        if name.eq_ignore_ascii_case(b"host") {
            hosts = hosts.saturating_add(1);
            if hosts > 1 || !crate::guard::target::valid_host(value) {
                return HeadState::Reject(RejectReason::BadHost);
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if !value.iter().all(u8::is_ascii_digit) || value.is_empty() {
                return HeadState::Reject(RejectReason::BadRequest);
            }
            if cl_value.is_some() {
                // Even two equal lines: nginx refuses them, and so does RFC 9112 §6.3.
                return HeadState::Reject(RejectReason::BadRequest);
            }
            cl_value = Some(value);
            has_cl = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only spaces before the value (nginx does not skip a tab here).
            let raw = line[colon + 1..].trim_ascii_end();
            let spaced = &raw[raw.iter().take_while(|c| **c == b' ').count()..];
            if has_te || !spaced.eq_ignore_ascii_case(b"chunked") {
                return HeadState::Reject(RejectReason::BadRequest);
            }
            has_te = true;
        }
    }
    if has_cl && has_te {
        return HeadState::Reject(RejectReason::ConflictingLength);
    }
    if hosts == 0 && version == b"HTTP/1.1" {
        // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without Host.
        return HeadState::Reject(RejectReason::BadHost);
    }
    HeadState::Complete
}

/// Whether `value` holds a control character other than tab. Without an early exit, so that
/// the loop vectorises: it runs over every header value of every request.
fn has_control(value: &[u8]) -> bool {
    value.iter().fold(0u8, |acc, &c| {
        acc | u8::from((c < 0x20) & (c != b'\t')) | u8::from(c == 0x7f)
    }) != 0
}

/// `value` without leading and trailing spaces and tabs (RFC 9110's OWS).
fn trim_ows(value: &[u8]) -> &[u8] {
    let ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = value.iter().position(|c| !ows(c)).unwrap_or(value.len());
    let end = value.iter().rposition(|c| !ows(c)).map_or(start, |e| e + 1);
    &value[start..end]
}

/// Lines split at `\n` by `memchr`; unlike `split`, no empty piece after a final `\n`.
struct LineIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for LineIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match memchr::memchr(b'\n', self.rest) {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &self.rest[self.rest.len()..]),
        };
        self.rest = rest;
        Some(line)
    }
}

/// RFC 9110 token characters, by byte.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        c += 1;
    }
    t
};

fn is_token(c: u8) -> bool {
    TOKEN[usize::from(c)]
}

/// The head guard's rules for an HTTP/2 request, which h2 parsed from its frames: what
/// `check_raw_head` refuses in an HTTP/1 head is refused here with the same reason (h2 itself
/// refuses CR, LF, NUL and upper case in names and values, and `Connection`-specific headers).
///
/// - the method: a token of upper-case letters and `-`, as the HTTP/1 guard takes it; TRACE,
///   TRACK and CONNECT get 405;
/// - `:path`: origin form only, with the HTTP/1 target's rules (escapes, `%00`, dot segments;
///   `*` is refused as over HTTP/1);
/// - the host: `:authority` or `host`, exactly one of them, a valid host, else 400 `bad_host`
///   (nginx 1.22 takes `:authority` as a `Host` line, so a `host` beside it is a duplicate);
/// - at most one `content-length` field, even two equal ones (as the HTTP/1 guard, and nginx);
///   h2 itself refuses a body that does not match it.
pub fn check_h2(req: &RequestHeader) -> Result<(), RejectReason> {
    let method = req.method.as_str().as_bytes();
    if !method.iter().all(|c| c.is_ascii_uppercase() || *c == b'-') {
        return Err(RejectReason::BadRequest);
    }
    let target = req.raw_path();
    crate::guard::target::check_target(method, target)?;
    if target.first() != Some(&b'/') {
        return Err(RejectReason::BadRequest);
    }
    let mut lengths = req.headers.get_all(http::header::CONTENT_LENGTH).iter();
    if lengths.next().is_some() && lengths.next().is_some() {
        return Err(RejectReason::BadRequest);
    }
    let authority = req.uri.authority().map(|a| a.as_str().as_bytes());
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let host = hosts.next().map(|h| h.as_bytes());
    let one = match (authority, host, hosts.next()) {
        (Some(one), None, None) | (None, Some(one), None) => one,
        _ => return Err(RejectReason::BadHost),
    };
    match crate::guard::target::valid_host(one) {
        true => Ok(()),
        false => Err(RejectReason::BadHost),
    }
}

/// Checks a parsed request (HTTP/2 included) against the limits.
pub fn check_parsed(req: &RequestHeader, limits: &Limits) -> Result<(), RejectReason> {
    let uri_len = req.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Err(RejectReason::UriTooLong);
    }
    if req.headers.len() > limits.max_headers {
        return Err(RejectReason::TooManyHeaders);
    }
    let bytes: usize = req
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if bytes > limits.max_header_bytes {
        return Err(RejectReason::HeaderTooLarge);
    }
    // The body's size is checked against its location's limit (`body::read_whole`): a
    // location may allow more than `limits.max_body_bytes`, and a `return` answers first.
    if let Some(cl) = req.headers.get(http::header::CONTENT_LENGTH) {
        cl.to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(RejectReason::BadRequest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP/2 request as h2 hands it over: method, `:scheme`/`:authority`/`:path` in the URI.
    fn h2(method: &[u8], authority: Option<&str>, path: &str, hosts: &[&str]) -> RequestHeader {
        let uri = match authority {
            Some(a) => http::Uri::builder().scheme("https").authority(a),
            None => http::Uri::builder(),
        };
        let mut parts = http::Request::new(()).into_parts().0;
        parts.method = http::Method::from_bytes(method).expect("method");
        parts.uri = uri.path_and_query(path).build().expect("uri");
        parts.version = http::Version::HTTP_2;
        for h in hosts {
            parts
                .headers
                .append(http::header::HOST, h.parse().expect("host"));
        }
        RequestHeader::from(parts)
    }

    #[test]
    fn h2_requests_pass_the_http1_rules() {
        let ok = h2(b"GET", Some("example.com"), "/a/b?x=1", &[]);
        assert_eq!(check_h2(&ok), Ok(()));
        let port = h2(b"POST", Some("example.com:8443"), "/", &[]);
        assert_eq!(check_h2(&port), Ok(()));
        assert_eq!(check_h2(&h2(b"GET", None, "/", &["example.com"])), Ok(()));
        let mut two_lengths = h2(b"POST", Some("a"), "/", &[]);
        for _ in 0..2 {
            two_lengths.append_header("content-length", "5").expect("h");
        }
        assert_eq!(check_h2(&two_lengths), Err(RejectReason::BadRequest));
        for (req, reason) in [
            (h2(b"get", Some("a"), "/", &[]), RejectReason::BadRequest),
            (h2(b"G_T", Some("a"), "/", &[]), RejectReason::BadRequest),
            (
                h2(b"TRACE", Some("a"), "/", &[]),
                RejectReason::MethodNotAllowed,
            ),
            (
                h2(b"TRACK", Some("a"), "/", &[]),
                RejectReason::MethodNotAllowed,
            ),
            (
                h2(b"CONNECT", Some("a"), "/", &[]),
                RejectReason::MethodNotAllowed,
            ),
            (
                h2(b"GET", Some("a"), "/../etc/passwd", &[]),
                RejectReason::BadPath,
            ),
            (
                h2(b"GET", Some("a"), "/a/%2e%2e/%2e%2e/b", &[]),
                RejectReason::BadPath,
            ),
            (h2(b"GET", Some("a"), "/a%00b", &[]), RejectReason::BadPath),
            (h2(b"GET", Some("a"), "/a%zz", &[]), RejectReason::BadPath),
            (
                h2(b"OPTIONS", Some("a"), "*", &[]),
                RejectReason::BadRequest,
            ),
            (h2(b"GET", None, "/", &[]), RejectReason::BadHost),
            (h2(b"GET", Some("a"), "/", &["b"]), RejectReason::BadHost),
            (h2(b"GET", Some("a"), "/", &["a"]), RejectReason::BadHost),
            (
                h2(b"GET", Some("a"), "/", &["a", "a"]),
                RejectReason::BadHost,
            ),
            (h2(b"GET", None, "/", &["a b"]), RejectReason::BadHost),
            (
                h2(b"GET", None, "/", &["probe.local/evil"]),
                RejectReason::BadHost,
            ),
            (h2(b"GET", None, "/", &[""]), RejectReason::BadHost),
            (h2(b"GET", None, "/", &["a..b"]), RejectReason::BadHost),
        ] {
            assert_eq!(check_h2(&req), Err(reason), "{:?} {}", req.method, req.uri);
        }
    }

    fn lim() -> Limits {
        Limits {
            max_header_bytes: 2048,
            max_headers: 10,
            max_uri_bytes: 100,
            ..Limits::default()
        }
    }

    #[test]
    fn complete_and_partial_heads() {
        let l = lim();
        assert_eq!(
            check_raw_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &l),
            HeadState::Complete
        );
        assert_eq!(
            check_raw_head(b"GET / HTTP/1.1\r\nHost: a\r\n", &l),
            HeadState::Partial
        );
        assert_eq!(
            check_raw_head(b"\r\nGET / HTTP/1.1\nHost: a\n\n", &l),
            HeadState::Complete
        );
    }

    #[test]
    fn limits_give_their_reason() {
        let l = lim();
        let long_uri = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(200));
        assert_eq!(
            check_raw_head(long_uri.as_bytes(), &l),
            HeadState::Reject(RejectReason::UriTooLong)
        );
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: 1\r\n".repeat(11));
        assert_eq!(
            check_raw_head(many.as_bytes(), &l),
            HeadState::Reject(RejectReason::TooManyHeaders)
        );
        let big = format!("GET / HTTP/1.1\r\nX-A: {}\r\n", "b".repeat(3000));
        assert_eq!(
            check_raw_head(big.as_bytes(), &l),
            HeadState::Reject(RejectReason::HeaderTooLarge)
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let l = lim();
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding:\tchunked\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            b"GET /../a HTTP/1.1\r\nHost: a\r\n\r\n",
            b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n",
            // Found by the head_guard fuzz target: a control byte in a value, and a form feed
            // before the line end (which `trim_ascii` took for whitespace).
            b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\x0c\n\r\nhello",
            b"POST /p HTTP/1.1\r\nHost: a\r\nX-A: 1\x01\r\nContent-Length: 0\r\n\r\n",
            b"GET /p HTTP/1.1\r\nHost: a\r\nX-A: 1\x7f\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert!(
                matches!(check_raw_head(head, &l), HeadState::Reject(_)),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        assert_eq!(
            check_raw_head(
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                &l
            ),
            HeadState::Reject(RejectReason::ConflictingLength)
        );
    }
}
