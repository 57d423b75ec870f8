//! The request side of the relay: the client's head parsed once, and the head Django gets
//! written straight from it (`upstream::request_head`).
//!
//! No header map is built for a request unless it is denied: classification and the sample
//! read the client's headers through `Plan::request_header`.

use crate::upstream::request_head::{self, Forward, Length, RequestLine};
use crate::upstream::response_head;
use crate::upstream::MAX_HEADERS;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Version};
use pingora::http::RequestHeader;
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
    /// The upstream pool of the request's location (`relay::plan`).
    pub pool: usize,
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
                body_len = Some(response_head::digits(h.value)?);
            } else if is("connection") {
                keepalive = response_head::connection_keepalive(h.value).unwrap_or(keepalive);
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
            pool: 0,
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
    pub(super) fn write_upstream_head(&self, fwd: &Forward<'_>, wire: &mut BytesMut) {
        let line = RequestLine {
            method: self.method.as_str().as_bytes(),
            target: self.target(),
            authority: None,
            length: Length::AsSent,
        };
        request_head::write(fwd, &line, || self.headers(), wire);
    }
}
