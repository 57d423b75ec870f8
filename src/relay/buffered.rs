//! The relay's upstream side for requests Pingora's loop has read in full: unsized bodies
//! (chunked HTTP/1.1, HTTP/2 without a length), which Django can only take with a
//! `Content-Length`.
//!
//! Pingora can send on a body it buffered only up to its 64 KiB retry buffer. Here the body,
//! up to `limits.max_body_bytes`, goes to Django in one exchange through the relay's pool and
//! retry policy (`send`), the response head is checked by the same rule
//! (`response_head::check`) and observed by the same telemetry as in `proxy::response_filter`,
//! and the response streams back through the Pingora session, whatever the client's protocol.

use super::chunked::ChunkScanner;
use super::{connection_keepalive, send, Exchange, MAX_HEADERS};
use crate::forwarding::{self, Client};
use crate::metrics::UpstreamErrorKind;
use crate::response_head;
use crate::runtime::{Runtime, Shared};
use crate::telemetry::{self, Observed};
use crate::{error_page, exchange};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Writes a request head for Django from a header map already prepared by `forwarding`.
fn write_head(req: &RequestHeader, wire: &mut BytesMut) {
    wire.put_slice(req.method.as_str().as_bytes());
    wire.put_u8(b' ');
    wire.put_slice(req.raw_path());
    wire.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers.iter() {
        wire.put_slice(name.as_str().as_bytes());
        wire.put_slice(b": ");
        wire.put_slice(value.as_bytes());
        wire.put_slice(b"\r\n");
    }
    wire.put_slice(b"\r\n");
}

/// How the body of Django's response is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Sends the request with its buffered `body` to Django and its response to the client.
/// Returns the status to record.
pub async fn forward(
    shared: &Shared,
    rt: &Runtime,
    session: &mut Session,
    client: &Client,
    request_id: &str,
    body: Bytes,
    obs: &mut Observed,
) -> u16 {
    let mut req = session.req_header().clone();
    forwarding::prepare_upstream_request(&mut req, rt, client, request_id);
    req.remove_header(&header::TRANSFER_ENCODING);
    let _ = req.insert_header(header::CONTENT_LENGTH, body.len().to_string());
    let mut wire = BytesMut::with_capacity(1024 + body.len());
    write_head(&req, &mut wire);
    wire.put_slice(&body);
    let head_only = req.method == http::Method::HEAD;
    let x = match send(shared, rt, &req.method, &wire).await {
        Ok(x) => x,
        Err((kind, counted)) => {
            let status = exchange::upstream_failed(shared, kind, counted);
            return error_page::respond(session, status, None).await;
        }
    };
    let Exchange {
        mut conn,
        idx,
        mut buf,
        head_len,
    } = x;
    let Some((resp, framing, reusable)) = response_header(rt, &buf[..head_len], head_only) else {
        shared
            .metrics
            .count_upstream_error(UpstreamErrorKind::Other);
        return error_page::respond(session, 502, None).await;
    };
    buf.advance(head_len);
    let mut resp = resp;
    exchange::response_head_seen(shared, rt, session.req_header(), &mut resp, obs);
    let status = resp.status.as_u16();
    let empty = framing == Framing::Empty;
    if session
        .write_response_header(Box::new(resp), empty)
        .await
        .is_err()
    {
        return status;
    }
    if empty {
        if reusable && buf.is_empty() {
            rt.upstream.pool.put(idx, conn);
        }
        return status;
    }
    match stream_body(rt, session, &mut conn, &mut buf, framing, obs).await {
        Ok(()) => {
            if reusable && buf.is_empty() && framing != Framing::UntilClose {
                rt.upstream.pool.put(idx, conn);
            }
        }
        Err(Some(kind)) => shared.metrics.count_upstream_error(kind),
        Err(None) => {}
    }
    status
}

/// Django's response head as a header map for the client: checked by `response_head::check`,
/// hop-by-hop and framing headers left to the client's protocol. Also how its body is framed
/// and whether the connection can be reused.
fn response_header(
    rt: &Runtime,
    head: &[u8],
    head_only: bool,
) -> Option<(ResponseHeader, Framing, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut p = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = p.parse(head) else {
        return None;
    };
    let (status, version) = (p.code?, p.version?);
    let framing = response_head::check(
        status,
        p.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
        &rt.limits,
    )
    .ok()?;
    let mut reusable = version == 1;
    let mut resp = ResponseHeader::build(status, Some(p.headers.len())).ok()?;
    for h in p.headers.iter() {
        let is = |n: &str| h.name.eq_ignore_ascii_case(n);
        if is("connection") {
            reusable = connection_keepalive(h.value).unwrap_or(reusable);
            continue;
        }
        if is("transfer-encoding") || is("keep-alive") || is("proxy-connection") {
            continue;
        }
        resp.append_header(h.name.to_string(), h.value).ok()?;
    }
    let body = if head_only || status == 204 || status == 304 {
        Framing::Empty
    } else if framing.chunked {
        Framing::Chunked
    } else {
        framing.length.map_or(Framing::UntilClose, Framing::Length)
    };
    Some((resp, body, reusable))
}

/// Streams the body to the client. `Err(Some(kind))`: Django broke it off; `Err(None)`: the
/// client went away.
async fn stream_body(
    rt: &Runtime,
    session: &mut Session,
    conn: &mut TcpStream,
    buf: &mut BytesMut,
    framing: Framing,
    obs: &mut Observed,
) -> Result<(), Option<UpstreamErrorKind>> {
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
            Framing::Chunked => {
                let mut out = BytesMut::new();
                let used = scan
                    .feed(buf, |d| out.put_slice(d))
                    .ok_or(Some(UpstreamErrorKind::Other))?;
                buf.advance(used);
                (out.freeze(), scan.done())
            }
            Framing::UntilClose | Framing::Empty => (buf.split().freeze(), false),
        };
        if !data.is_empty() || done {
            telemetry::observe_body(obs, &data);
            session
                .write_response_body(Some(data), done)
                .await
                .map_err(|_| None)?;
        }
        if done {
            return Ok(());
        }
        let read = timeout(rt.config.upstream.read_timeout.0, conn.read_buf(buf)).await;
        match read {
            Err(_) => return Err(Some(UpstreamErrorKind::Timeout)),
            Ok(Err(_)) => return Err(Some(UpstreamErrorKind::Reset)),
            Ok(Ok(0)) if framing == Framing::UntilClose => {
                session
                    .write_response_body(Some(Bytes::new()), true)
                    .await
                    .map_err(|_| None)?;
                return Ok(());
            }
            Ok(Ok(0)) => return Err(Some(UpstreamErrorKind::Reset)),
            Ok(Ok(_)) => {}
        }
    }
}
