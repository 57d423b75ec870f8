//! The exchange with Django for a request Pingora parsed (Pingora's HTTP/1 loop and HTTP/2
//! streams; everything but upgrades), through the same upstream codec as the relay.
//!
//! The request and its whole body were read first (`body::read_whole`); here they go to Django
//! in one exchange (`upstream::send`), with a `Content-Length` (Django cannot read chunked
//! bodies; Pingora could resend only what fits its 64 KiB retry buffer). Django's head is
//! written straight from the client's header map (`request_head::write_parsed`). Its response
//! head is read once (`ResponseHead::read`) and turned into the header map Pingora writes for
//! the client's protocol (`ResponseHead::header_map`); its body is read by its framing
//! (`upstream::response_body`) and streams back through the Pingora session.

use crate::exchange::observe::Observed;
use crate::exchange::{self, observe, RequestCtx};
use crate::guard::body::Body;
use crate::response::delivery::{self, ClientSide};
use crate::response::header_edits::Edits;
use crate::rules::forwarding::Client;
use crate::runtime::{Runtime, Shared};
use crate::telemetry::vocabulary::UpstreamErrorKind;
use crate::upstream::request_head::{self, Forward};
use crate::upstream::response_body::Broken;
use crate::upstream::response_head::{Framing, ResponseHead};
use crate::upstream::send::{self, Request};
use crate::upstream::MAX_HEADERS;
use bytes::{BufMut, Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

/// The request Pingora's loop read, with its whole body.
pub struct Buffered {
    pub body: Body,
    /// Django is told the body's length (it had one, or said `Content-Length`).
    pub with_length: bool,
}

/// How an exchange with Django ended.
pub enum Outcome {
    /// Django's response went out: its status; `Err` with it when it was cut off after its
    /// head went out, so that the client connection is closed rather than the body looking
    /// whole.
    Sent(Result<u16, u16>),
    /// Nothing went out yet: the proxy answers this status (Django unreachable or its head
    /// unreadable, or a status the location answers with its own error page).
    Failed(u16),
    /// Django's `X-Accel-Redirect`: the URI the edge serves instead, with the headers of
    /// Django's response that nginx keeps.
    Accel {
        target: String,
        keep: Vec<(http::HeaderName, http::HeaderValue)>,
    },
}

/// What the location asks of the exchange besides forwarding.
pub struct Rules<'a> {
    /// Follow `X-Accel-Redirect` (the site has internal locations).
    pub accel: bool,
    /// Django's statuses the location answers with its error pages instead.
    pub intercept: &'a [u16],
}

/// The headers of a response with `X-Accel-Redirect` that nginx keeps for the one it serves.
const KEPT_ON_ACCEL: [http::HeaderName; 6] = [
    http::header::CONTENT_TYPE,
    http::header::CONTENT_DISPOSITION,
    http::header::CACHE_CONTROL,
    http::header::EXPIRES,
    http::header::SET_COOKIE,
    http::header::ACCEPT_RANGES,
];

/// Sends the request with its buffered body to Django and its response to the client.
pub async fn forward(
    shared: &Shared,
    session: &mut ServerSession,
    client: &Client,
    r: Buffered,
    ctx: &mut RequestCtx,
    rules: &Rules<'_>,
) -> Outcome {
    let rt = ctx.rt.clone();
    let Buffered { body, with_length } = r;
    let (in_memory, spooled) = match &body {
        Body::Memory(b) => (b.as_ref(), None),
        Body::File(spool) => (&[][..], Some(spool)),
    };
    let req = session.req_header();
    let mut wire = BytesMut::with_capacity(1024 + in_memory.len());
    let fwd = Forward {
        context: &rt.context,
        trusted: &rt.trusted,
        client,
        request_id: &ctx.request_id,
        set: &ctx.set_headers,
    };
    request_head::write_parsed(&fwd, req, with_length.then_some(body.len()), &mut wire);
    wire.put_slice(in_memory);
    let method = req.method.clone();
    let request = Request {
        method: &method,
        wire: &wire,
        spooled,
    };
    let max_head = rt.limits.max_head_bytes();
    let reply = match send::send(
        rt.pool(ctx.pool),
        max_head,
        &shared.metrics,
        &mut ctx.tries,
        request,
    )
    .await
    {
        Ok(reply) => reply,
        Err(kind) => {
            return Outcome::Failed(exchange::upstream_failed(
                shared,
                &rt.pool(ctx.pool).name,
                kind,
                &ctx.tries,
            ));
        }
    };
    // A copy of just the head: the values of an HTTP/2 response are slices of it, and h2's
    // HPACK table may keep one for the connection's life (a slice of the read buffer would
    // keep all of it).
    let raw = Bytes::copy_from_slice(reply.head());
    let head_only = method == http::Method::HEAD;
    let seen = answer(shared, &rt, &mut ctx.obs, session, &raw, head_only);
    let Some((resp, framing, server_keeps, plan)) = seen else {
        shared
            .metrics
            .count_upstream_error(&rt.pool(ctx.pool).name, UpstreamErrorKind::Other);
        return Outcome::Failed(502);
    };
    let status = resp.status.as_u16();
    if rules.accel {
        if let Some(target) = resp.headers.get("x-accel-redirect") {
            let target = String::from_utf8_lossy(target.as_bytes()).into_owned();
            let keep = KEPT_ON_ACCEL
                .iter()
                .flat_map(|n| {
                    resp.headers
                        .get_all(n)
                        .iter()
                        .map(|v| (n.clone(), v.clone()))
                })
                .collect();
            return Outcome::Accel { target, keep };
        }
    }
    if rules.intercept.contains(&status) {
        return Outcome::Failed(status);
    }
    let mut resp = resp;
    Edits::apply_opt(ctx.edits.as_deref(), &mut resp);
    if crate::runtime::drain::draining(shared) {
        // HTTP/1: `Connection: close`; HTTP/2 has had GOAWAY from Pingora.
        session.set_keepalive(None);
    }
    let body = reply.into_body(framing, server_keeps, &rt.pool(ctx.pool).pool);
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return Outcome::Sent(Err(status));
    }
    if framing == Framing::Empty {
        return Outcome::Sent(Ok(status));
    }
    let buffers = exchange::buffers(shared, &rt, ctx.pool);
    let obs = &mut ctx.obs;
    let seen = |d: &[u8]| observe::observe_body(obs, d);
    let mut client = SessionClient(session);
    let sent = delivery::deliver(body, BytesMut::new(), &mut client, plan, &buffers, seen).await;
    Outcome::Sent(sent.map(|()| status).map_err(|broken| {
        exchange::body_broken(shared, &rt.pool(ctx.pool).name, broken);
        status
    }))
}

/// Reads Django's head (`ResponseHead::read`), tells telemetry, chooses the coding, and
/// returns the header map for the client with what the body needs. A plain function, so that
/// the parse's header array is on its own stack, not in the request's future.
fn answer(
    shared: &Shared,
    rt: &Runtime,
    obs: &mut Observed,
    session: &ServerSession,
    raw: &Bytes,
    head_only: bool,
) -> Option<(ResponseHeader, Framing, bool, delivery::Plan)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = ResponseHead::read(raw, &mut headers, &rt.limits, &rt.context, head_only)?;
    let req = session.req_header();
    exchange::response_seen(shared, rt, &head, Some(req), obs);
    let accept = || {
        req.headers
            .get(http::header::ACCEPT_ENCODING)
            .map(|v| v.as_bytes())
    };
    // Pingora frames the body for the client's protocol: never chunked here.
    let plan =
        delivery::Plan::for_head(&rt.compression, rt.buffering, accept, &mut head, head_only);
    let resp = head.header_map(raw, !session.is_http2())?;
    Some((resp, head.framing, head.server_keeps, plan))
}

/// Pingora's session as a body's client: it frames the bytes for HTTP/1 or HTTP/2.
struct SessionClient<'a>(&'a mut ServerSession);

impl ClientSide for SessionClient<'_> {
    async fn send(&mut self, data: Bytes, done: bool) -> Result<(), Broken> {
        if data.is_empty() && !done {
            return Ok(());
        }
        self.0
            .write_response_body(data, done)
            .await
            .map_err(|_| Broken::Client)
    }
}
