//! The response side of the relay: Django's head read (`ResponseHead::read`), written for the
//! HTTP/1 client (`ResponseHead::write_h1`), then its body as it arrives (`upstream::response_body`),
//! re-chunked when Django chunked it (decoded for an HTTP/1.0 client, which reads to the close).

use super::{Plan, CLIENT_TIMEOUT};
use crate::exchange::observe::Observed;
use crate::exchange::{self, observe, RequestCtx};
use crate::response::delivery::{self, ClientSide};
use crate::response::error_page;
use crate::runtime::{Runtime, Shared};
use crate::telemetry::vocabulary::UpstreamErrorKind;
use crate::upstream::response_body::{Broken, Reply};
use crate::upstream::response_head::{Framing, ResponseHead};
use crate::upstream::MAX_HEADERS;
use bytes::{Bytes, BytesMut};
use http::{Method, Version};
use pingora::http::RequestHeader;
use pingora::protocols::Stream;
use std::future::Future;
use std::task::Poll;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

/// The request a response answers: the relay's plan, and its header map once built.
pub(super) struct Request<'a> {
    pub plan: &'a Plan,
    /// Built from the raw head when the response is a denial (classification and sample).
    pub header: &'a mut Option<RequestHeader>,
}

/// What Django's head decides for the rest of the exchange.
struct Answer {
    status: u16,
    framing: Framing,
    server_keeps: bool,
    keep_client: bool,
    /// The head written for the client.
    out: BytesMut,
    plan: delivery::Plan,
}

/// Reads Django's head (`ResponseHead::read`), tells telemetry, chooses the coding and writes
/// the head for the client. A plain function, so that the parse's header array is on its own
/// stack, not in the request's future (which is moved into its box for every request).
fn answer(
    shared: &Shared,
    rt: &Runtime,
    obs: &mut Observed,
    req: Request<'_>,
    head: &[u8],
    keep_client: bool,
) -> Option<Answer> {
    let head_only = req.plan.method == Method::HEAD;
    let http10 = req.plan.version == Version::HTTP_10;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let raw = head;
    let mut head = ResponseHead::read(raw, &mut headers, &rt.limits, &rt.context, head_only)?;
    if rt.telemetry && head.is_denial(&rt.context.login_paths) && req.header.is_none() {
        *req.header = req.plan.request_header();
    }
    exchange::response_seen(shared, rt, &head, req.header.as_ref(), obs);
    let accept = || req.plan.header("accept-encoding");
    let plan =
        delivery::Plan::for_head(&rt.compression, rt.buffering, accept, &mut head, head_only);
    // Chunks for an HTTP/1.1 client when the length is not known (Django chunked, or the body
    // is compressed); an HTTP/1.0 client reads to the close instead, as for a body that runs
    // until Django closes.
    let unsized_body = plan.compressor.is_some() || head.framing == Framing::Chunked;
    let ends_by_close = head.framing == Framing::UntilClose || (unsized_body && http10);
    let chunked = unsized_body && !http10;
    let keep_client = keep_client && !ends_by_close;
    let mut out = BytesMut::with_capacity(raw.len() + 64);
    // A HEAD answer says what the body would be, as Django said it.
    let declared_chunked = head.declared.chunked && head_only && !http10;
    head.write_h1(&mut out, chunked || declared_chunked, keep_client);
    Some(Answer {
        status: head.status,
        framing: head.framing,
        server_keeps: head.server_keeps,
        keep_client,
        out,
        plan: delivery::Plan { chunked, ..plan },
    })
}

/// Writes the response to the client and returns the status to record and whether the client
/// connection stays open. The upstream connection goes back to the pool when its response ended
/// cleanly and the server keeps it (`upstream::response_body`).
pub(super) async fn relay_response(
    shared: &Shared,
    ctx: &mut RequestCtx,
    stream: &mut Stream,
    req: Request<'_>,
    reply: Reply,
    keep_client: bool,
) -> (u16, bool) {
    let rt = ctx.rt.clone();
    let head_only = req.plan.method == Method::HEAD;
    let answered = answer(shared, &rt, &mut ctx.obs, req, reply.head(), keep_client);
    let Some(Answer {
        status,
        framing,
        server_keeps,
        keep_client,
        out,
        plan,
    }) = answered
    else {
        shared
            .metrics
            .count_upstream_error(&rt.pool(ctx.pool).name, UpstreamErrorKind::Other);
        error_page::write_h1(stream, 502, head_only).await;
        return (502, false);
    };
    let body = reply.into_body(framing, server_keeps, &rt.pool(ctx.pool).pool);
    let buffers = exchange::buffers(shared, &rt, ctx.pool);
    let obs = &mut ctx.obs;
    let seen = |d: &[u8]| observe::observe_body(obs, d);
    let client = &mut H1Client(stream);
    let sent = delivery::deliver(body, out, client, plan, &buffers, seen).await;
    match sent {
        Ok(()) => (status, keep_client),
        Err(broken) => {
            exchange::body_broken(shared, &rt.pool(ctx.pool).name, broken);
            (status, false)
        }
    }
}

/// The relay's client: bytes on an HTTP/1 connection, each write flushed.
struct H1Client<'a>(&'a mut Stream);

impl ClientSide for H1Client<'_> {
    async fn send(&mut self, data: Bytes, _done: bool) -> Result<(), Broken> {
        if data.is_empty() {
            return Ok(());
        }
        client_write(self.0, &data).await
    }
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
