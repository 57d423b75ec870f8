//! The response side of the relay: the head rewritten for the client, then the body by its framing.

use super::chunked::{self, ChunkScanner};
use super::context::{denial_head, ContextValues};
use super::{connection_keepalive, Exchange, Plan, CLIENT_TIMEOUT, MAX_HEADERS};
use crate::exchange::observe::{self, Observed};
use crate::response::error_page;
use crate::response::upstream_head;
use crate::runtime::{Runtime, Shared};
use crate::telemetry::classify;
use crate::telemetry::metrics::UpstreamErrorKind;
use crate::upstream::pool::ResponseEnd;
use bytes::{Buf, BufMut, BytesMut};
use http::{Method, Version};
use pingora::http::RequestHeader;
use pingora::protocols::Stream;
use std::future::Future;
use std::task::Poll;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How the response body is delimited, for the relay and its path for Pingora's loop
/// (`relay::buffered`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Chunked from Django, decoded for an HTTP/1.0 client and ended by closing.
    ChunkedToClose,
    UntilClose,
}

/// What the response head said, beyond the bytes rewritten for the client.
struct ResponseHead {
    status: u16,
    framing: Framing,
    /// The server will keep the connection (HTTP/1.1 default, no `Connection: close`).
    reusable: bool,
    /// The client's connection stays open after this response (what `Connection` says).
    keep_client: bool,
}

/// The request a response answers: the relay's plan, and its header map once built.
pub(super) struct Request<'a> {
    pub plan: &'a Plan,
    /// Built from the raw head when the response is a denial (classification and sample).
    pub header: &'a mut Option<RequestHeader>,
}

/// Rewrites the upstream response head for the client into `out` (context and hop-by-hop headers
/// dropped, `Connection` set) and observes it for telemetry.
fn rewrite_head(
    shared: &Shared,
    rt: &Runtime,
    req: Request<'_>,
    head: &[u8],
    obs: &mut Observed,
    keep_client: bool,
    out: &mut BytesMut,
) -> Option<ResponseHead> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (p, framing) = upstream_head::parse(head, &mut headers, &rt.limits)?;
    let (status, version) = (p.code?, p.version?);
    let mut reusable = version == 1;
    let mut context = ContextValues::default();
    let names = &rt.context;
    let http10 = req.plan.version == Version::HTTP_10;
    out.put_slice(b"HTTP/1.1 ");
    // httparse holds the code to three digits.
    out.put_slice(&[
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    match p.reason.filter(|r| !r.is_empty()) {
        Some(r) => out.put_slice(r.as_bytes()),
        None => out.put_slice(error_page::reason(status).as_bytes()),
    }
    out.put_slice(b"\r\n");
    for h in p.headers.iter() {
        let name = h.name;
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if is("transfer-encoding") && http10 {
            // Decoded for an HTTP/1.0 client, which then reads to the close.
            continue;
        } else if is("connection") {
            reusable = connection_keepalive(h.value).unwrap_or(reusable);
            continue;
        } else if is("keep-alive") || is("proxy-connection") {
            continue;
        }
        if context.take(names, status, name, h.value) {
            continue;
        }
        out.put_slice(name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(h.value);
        out.put_slice(b"\r\n");
    }
    if rt.telemetry {
        context.observe(shared, obs, status);
        if classify::is_denial(status) {
            let resp = denial_head(status, p.headers)?;
            if req.header.is_none() {
                *req.header = req.plan.request_header();
            }
            if let Some(client_req) = req.header.as_ref() {
                observe::observe_denial(shared, rt, client_req, &resp, obs);
            }
        }
    }
    let framing = Framing::of(req.plan.method == Method::HEAD, status, framing, http10);
    let keep_client = keep_client && framing.keeps_client();
    out.put_slice(if keep_client {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    Some(ResponseHead {
        status,
        framing,
        reusable: reusable && framing != Framing::UntilClose,
        keep_client,
    })
}

impl Framing {
    /// How a response to a HEAD request (`head_only`) or not, with `status` and the framing
    /// its head declares, is delimited; `decode_for_http10` when chunked data goes to an
    /// HTTP/1.0 client, which reads to the close.
    pub(super) fn of(
        head_only: bool,
        status: u16,
        declared: upstream_head::Framing,
        decode_for_http10: bool,
    ) -> Framing {
        if head_only || status == 204 || status == 304 {
            Framing::Empty
        } else if declared.chunked && decode_for_http10 {
            Framing::ChunkedToClose
        } else if declared.chunked {
            Framing::Chunked
        } else {
            declared.length.map_or(Framing::UntilClose, Framing::Length)
        }
    }

    /// Whether the client connection can carry another request after this body.
    fn keeps_client(self) -> bool {
        !matches!(self, Framing::UntilClose | Framing::ChunkedToClose)
    }
}

/// Writes the response to the client and returns the status to record and whether the client
/// connection stays open. The upstream connection goes back to the pool when its response ended
/// cleanly and the server keeps it.
pub(super) async fn relay_response(
    shared: &Shared,
    rt: &Runtime,
    stream: &mut Stream,
    req: Request<'_>,
    x: Exchange,
    obs: &mut Observed,
    keep_client: bool,
) -> (u16, bool) {
    let Exchange {
        mut conn,
        idx,
        mut buf,
        head_len,
    } = x;
    let head_only = req.plan.method == Method::HEAD;
    let mut out = BytesMut::with_capacity(head_len + 64 + buf.len());
    let Some(head) = rewrite_head(
        shared,
        rt,
        req,
        &buf[..head_len],
        obs,
        keep_client,
        &mut out,
    ) else {
        shared
            .metrics
            .count_upstream_error(UpstreamErrorKind::Other);
        error_page::write_h1(stream, 502, head_only).await;
        return (502, false);
    };
    buf.advance(head_len);
    let sent = match head.framing {
        Framing::Empty => client_write(stream, &out).await,
        Framing::Length(n) => relay_length(rt, stream, &mut conn, &mut buf, out, n, obs).await,
        Framing::Chunked | Framing::ChunkedToClose => {
            let decode = head.framing == Framing::ChunkedToClose;
            relay_chunked(rt, stream, &mut conn, &mut buf, out, obs, decode).await
        }
        Framing::UntilClose => {
            relay_until_close(rt, stream, &mut conn, buf.split(), out, obs).await
        }
    };
    let ending = ResponseEnd {
        server_keeps: head.reusable,
        whole: sent.is_ok(),
        bytes_past_end: !buf.is_empty(),
        until_close: head.framing == Framing::UntilClose,
    };
    let _ = rt.upstream.pool.give_back(idx, conn, ending);
    match sent {
        Ok(()) => (head.status, head.keep_client),
        Err(Broken::Upstream(kind)) => {
            shared.metrics.count_upstream_error(kind);
            (head.status, false)
        }
        Err(Broken::Client) => (head.status, false),
    }
}

/// Which side broke off a response in flight.
pub(super) enum Broken {
    Upstream(UpstreamErrorKind),
    Client,
}

async fn client_write(stream: &mut Stream, bytes: &[u8]) -> Result<(), Broken> {
    let mut write = std::pin::pin!(async {
        stream.write_all(bytes).await?;
        stream.flush().await
    });
    // Most writes complete at once; only one that has to wait gets a timer.
    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    let done = match first {
        Poll::Ready(r) => r,
        Poll::Pending => match timeout(CLIENT_TIMEOUT, write).await {
            Ok(r) => r,
            Err(_) => return Err(Broken::Client),
        },
    };
    done.map_err(|_| Broken::Client)
}

/// One read from Django within `upstream.read_timeout`: the bytes read (0 when it closed).
pub(super) async fn upstream_read(
    rt: &Runtime,
    conn: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<usize, Broken> {
    match timeout(rt.upstream.timeouts.read, conn.read_buf(buf)).await {
        Err(_) => Err(Broken::Upstream(UpstreamErrorKind::Timeout)),
        Ok(Err(_)) => Err(Broken::Upstream(UpstreamErrorKind::Reset)),
        Ok(Ok(n)) => Ok(n),
    }
}

/// Reads more of a body that has not ended: the server closing now cuts it short.
async fn read_more(rt: &Runtime, conn: &mut TcpStream, buf: &mut BytesMut) -> Result<(), Broken> {
    match upstream_read(rt, conn, buf).await? {
        0 => Err(Broken::Upstream(UpstreamErrorKind::Reset)),
        _ => Ok(()),
    }
}

/// A body of `n` bytes: what came with the head goes out with it, the rest as it arrives.
async fn relay_length(
    rt: &Runtime,
    stream: &mut Stream,
    conn: &mut TcpStream,
    buf: &mut BytesMut,
    mut out: BytesMut,
    n: u64,
    obs: &mut Observed,
) -> Result<(), Broken> {
    let mut left = n;
    loop {
        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let chunk = buf.split_to(take);
        observe::observe_body(obs, &chunk);
        left -= take as u64;
        if out.is_empty() {
            client_write(stream, &chunk).await?;
        } else {
            out.put_slice(&chunk);
            client_write(stream, &out).await?;
            out = BytesMut::new();
        }
        if left == 0 {
            return Ok(());
        }
        read_more(rt, conn, buf).await?;
    }
}

/// A chunked body, decoded strictly and written to the client re-framed, without trailers
/// (an HTTP/1.0 client gets the data alone, then the close).
async fn relay_chunked(
    rt: &Runtime,
    stream: &mut Stream,
    conn: &mut TcpStream,
    buf: &mut BytesMut,
    mut out: BytesMut,
    obs: &mut Observed,
    decode: bool,
) -> Result<(), Broken> {
    let mut scan = ChunkScanner::default();
    loop {
        let used = scan
            .feed(buf, |data| {
                observe::observe_body(obs, data);
                if decode {
                    out.put_slice(data);
                } else {
                    chunked::encode(data, &mut out);
                }
            })
            .ok_or(Broken::Upstream(UpstreamErrorKind::Other))?;
        buf.advance(used);
        if scan.done() && !decode {
            out.put_slice(chunked::LAST_CHUNK);
        }
        if !out.is_empty() {
            client_write(stream, &out).await?;
            out.clear();
        }
        if scan.done() {
            return Ok(());
        }
        read_more(rt, conn, buf).await?;
    }
}

/// A body that ends when the server closes the connection.
async fn relay_until_close(
    rt: &Runtime,
    stream: &mut Stream,
    conn: &mut TcpStream,
    mut buf: BytesMut,
    mut out: BytesMut,
    obs: &mut Observed,
) -> Result<(), Broken> {
    loop {
        observe::observe_body(obs, &buf);
        out.put_slice(&buf);
        buf.clear();
        if !out.is_empty() {
            client_write(stream, &out).await?;
            out.clear();
        }
        if upstream_read(rt, conn, &mut buf).await? == 0 {
            return Ok(());
        }
    }
}
