//! The relay's upstream side for the requests of Pingora's loop and of the HTTP/2 stream loop
//! (chunked or large bodies, HTTP/2, everything but upgrades): one codec toward Django for all
//! loops.
//!
//! The request and its whole body are read first (`body::read_whole`); here they go to Django
//! in one exchange through the relay's pool and retry policy (`send`), with a `Content-Length`
//! (Django cannot read chunked bodies; Pingora could resend only what fits its 64 KiB retry
//! buffer). Django's head is written straight from the client's header map by the relay's
//! rules (`write_head`), without a copy of the map. Django's response head is read by the
//! relay's strict parser and rule (`upstream_head::check`: no obs-fold, no space before a
//! colon, one framing), its context headers taken out and observed as in the relay's own loop
//! (`context`), and its body decoded by the relay's chunked decoder; then it streams back
//! through the Pingora session, whatever the client's protocol.

use super::chunked::ChunkScanner;
use super::context::{denial_head, ContextValues};
use super::request::{write_upstream_head, Length, RequestLine};
use super::response::{upstream_read, Broken, Framing};
use super::{connection_keepalive, send, Exchange, MAX_HEADERS};
use crate::exchange;
use crate::exchange::observe::{self, Observed};
use crate::guard::body::Body;
use crate::response::error_page;
use crate::response::upstream_head;
use crate::rules::forwarding::Client;
use crate::runtime::{Runtime, Shared};
use crate::telemetry::classify;
use crate::telemetry::metrics::UpstreamErrorKind;
use crate::upstream::pool::ResponseEnd;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use std::borrow::Cow;
use tokio::net::TcpStream;

/// The request Pingora's loop read, with its whole body.
pub struct Buffered<'a> {
    pub client: &'a Client,
    pub request_id: &'a str,
    pub body: Body,
    /// Django is told the body's length (it had one, or said `Content-Length`).
    pub with_length: bool,
}

/// Sends the request with its buffered body to Django and its response to the client.
/// Returns the status to record; `Err` with it when the response was cut off after its head
/// went out, so that the client connection is closed rather than the body looking whole.
pub async fn forward(
    shared: &Shared,
    rt: &Runtime,
    session: &mut ServerSession,
    r: Buffered<'_>,
    obs: &mut Observed,
) -> Result<u16, u16> {
    let Buffered {
        client,
        request_id,
        body,
        with_length,
    } = r;
    let (in_memory, spooled) = match &body {
        Body::Memory(b) => (b.as_ref(), None),
        Body::File(spool) => (&[][..], Some(spool)),
    };
    let req = session.req_header();
    let mut wire = BytesMut::with_capacity(1024 + in_memory.len());
    let length = with_length.then_some(body.len());
    write_head(rt, req, client, request_id, length, &mut wire);
    wire.put_slice(in_memory);
    let method = req.method.clone();
    let head_only = method == http::Method::HEAD;
    let x = match send(shared, rt, &method, &wire, spooled).await {
        Ok(x) => x,
        Err((kind, counted)) => {
            let status = exchange::upstream_failed(shared, kind, counted);
            return Ok(error_page::respond(session, status, None).await);
        }
    };
    let Exchange {
        mut conn,
        idx,
        mut buf,
        head_len,
    } = x;
    // A copy of just the head: the values of an HTTP/2 response are slices of it, and h2's
    // HPACK table may keep one for the connection's life (a slice of `buf` would keep all of
    // the read buffer).
    let head = Bytes::copy_from_slice(&buf[..head_len]);
    buf.advance(head_len);
    let keep_case = !session.is_http2();
    let seen = response_header(
        shared,
        rt,
        session.req_header(),
        &head,
        head_only,
        keep_case,
        obs,
    );
    let Some((resp, framing, reusable)) = seen else {
        shared
            .metrics
            .count_upstream_error(UpstreamErrorKind::Other);
        return Ok(error_page::respond(session, 502, None).await);
    };
    let status = resp.status.as_u16();
    let empty = framing == Framing::Empty;
    if crate::runtime::drain::draining(shared) {
        // HTTP/1: `Connection: close`; HTTP/2 has had GOAWAY from Pingora.
        session.set_keepalive(None);
    }
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return Err(status);
    }
    let sent = match empty {
        true => Ok(()),
        false => stream_body(rt, session, &mut conn, &mut buf, framing, obs).await,
    };
    let ending = ResponseEnd {
        server_keeps: reusable,
        whole: sent.is_ok(),
        bytes_past_end: !buf.is_empty(),
        until_close: framing == Framing::UntilClose,
    };
    let _ = rt.upstream.pool.give_back(idx, conn, ending);
    match sent {
        Ok(()) => Ok(status),
        Err(Broken::Upstream(kind)) => {
            shared.metrics.count_upstream_error(kind);
            Err(status)
        }
        Err(Broken::Client) => Err(status),
    }
}

/// Writes the head Django gets for a request Pingora parsed into `wire`, straight from its
/// header map by the relay's rules (`request::write_upstream_head`); `length` replaces the
/// client's framing headers (the body was read whole), `None` for a request without a body or
/// a length.
pub fn write_head(
    rt: &Runtime,
    req: &RequestHeader,
    client: &Client,
    request_id: &str,
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
    write_upstream_head(rt, client, request_id, &line, headers, wire);
}

/// `part` of `head` as a `Bytes` sharing its memory; `None` if `part` is not within it.
fn shared_slice(head: &Bytes, part: &[u8]) -> Option<Bytes> {
    let start = (part.as_ptr() as usize).checked_sub(head.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= head.len()).then(|| head.slice(start..end))
}

/// Django's response head as a header map for the client: checked by `upstream_head::check`,
/// observed for telemetry, its context headers taken out and hop-by-hop and framing headers
/// left to the client's protocol. Also how its body is framed and whether the connection can
/// be reused.
///
/// `keep_case`: the names keep Django's spelling (an HTTP/1 client). For HTTP/2 the names are
/// lowercase anyway, so the map is built without Pingora's case map, and the values are slices
/// of `head`, not copies.
fn response_header(
    shared: &Shared,
    rt: &Runtime,
    req: &RequestHeader,
    head: &Bytes,
    head_only: bool,
    keep_case: bool,
    obs: &mut Observed,
) -> Option<(ResponseHeader, Framing, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (p, framing) = upstream_head::parse(head, &mut headers, &rt.limits)?;
    let (status, version) = (p.code?, p.version?);
    let mut reusable = version == 1;
    let mut context = ContextValues::default();
    let mut with_case = match keep_case {
        true => Some(ResponseHeader::build(status, Some(p.headers.len())).ok()?),
        false => None,
    };
    let mut map = http::HeaderMap::with_capacity(if keep_case { 0 } else { p.headers.len() });
    for h in p.headers.iter() {
        let is = |n: &str| h.name.eq_ignore_ascii_case(n);
        if is("connection") {
            reusable = connection_keepalive(h.value).unwrap_or(reusable);
            continue;
        }
        if is("transfer-encoding") || is("keep-alive") || is("proxy-connection") {
            continue;
        }
        if context.take(&rt.context, status, h.name, h.value) {
            continue;
        }
        match with_case.as_mut() {
            Some(resp) => {
                resp.append_header(h.name.to_string(), h.value).ok()?;
            }
            None => {
                let name = header::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
                let value =
                    header::HeaderValue::from_maybe_shared(shared_slice(head, h.value)?).ok()?;
                map.append(name, value);
            }
        }
    }
    if rt.telemetry {
        context.observe(shared, obs, status);
        if classify::is_denial(status) {
            observe::observe_denial(shared, rt, req, &denial_head(status, p.headers)?, obs);
        }
    }
    let mut resp = match with_case {
        Some(resp) => resp,
        None => {
            let (mut parts, ()) = http::Response::new(()).into_parts();
            parts.status = http::StatusCode::from_u16(status).ok()?;
            parts.headers = map;
            ResponseHeader::from(parts)
        }
    };
    // Pingora frames the body for the client's protocol: nothing is decoded for HTTP/1.0 here.
    let body = Framing::of(head_only, status, framing, false);
    if matches!(body, Framing::Chunked | Framing::UntilClose) {
        // Re-framed for the client: chunked on HTTP/1.1 (Pingora drops it for HTTP/2), so that a
        // body Django breaks off reaches the client cut off, not seemingly whole.
        resp.insert_header(header::TRANSFER_ENCODING, "chunked")
            .ok()?;
    }
    Some((resp, body, reusable))
}

/// Streams the body to the client; `Err` says which side broke it off.
async fn stream_body(
    rt: &Runtime,
    session: &mut ServerSession,
    conn: &mut TcpStream,
    buf: &mut BytesMut,
    framing: Framing,
    obs: &mut Observed,
) -> Result<(), Broken> {
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut scan = ChunkScanner::default();
    loop {
        let (data, done) = match framing {
            Framing::Length(_) => {
                let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                left -= take as u64;
                (buf.split_to(take).freeze(), left == 0)
            }
            // `of` gives ChunkedToClose only for an HTTP/1.0 client of the relay's own loop.
            Framing::Chunked | Framing::ChunkedToClose => {
                let mut out = BytesMut::new();
                let used = scan
                    .feed(buf, |d| out.put_slice(d))
                    .ok_or(Broken::Upstream(UpstreamErrorKind::Other))?;
                buf.advance(used);
                (out.freeze(), scan.done())
            }
            Framing::UntilClose | Framing::Empty => (buf.split().freeze(), false),
        };
        if !data.is_empty() || done {
            observe::observe_body(obs, &data);
            session
                .write_response_body(data, done)
                .await
                .map_err(|_| Broken::Client)?;
        }
        if done {
            return Ok(());
        }
        if upstream_read(rt, conn, buf).await? == 0 {
            if framing != Framing::UntilClose {
                // Closed before the body ended: cut short.
                return Err(Broken::Upstream(UpstreamErrorKind::Reset));
            }
            session
                .write_response_body(Bytes::new(), true)
                .await
                .map_err(|_| Broken::Client)?;
            return Ok(());
        }
    }
}
