//! authz-edge's own HTTP/1 proxy loop for plain requests; everything else goes to Pingora.
//!
//! Pingora's proxy spends about three times nginx's user-space CPU per request (boxed futures,
//! two header maps per exchange, its connection pool). Most traffic in front of Django is plain:
//! a request with no body or a small one with a `Content-Length`, answered with a length or a
//! chunked body. `plan` picks those out; `serve` relays them with the same modules as the
//! Pingora phases in `phases` (limits, forwarding, routes, telemetry, sampling, access log), so
//! what Django sees and what is counted does not depend on the path taken.
//!
//! Anything else goes to Pingora with the head already read: upgrades, `Expect`, chunked or
//! large request bodies, absolute-form targets, static mounts, the HTTPS redirect, and anything
//! the limits refuse. `server.fast_path = false` sends everything there.
//!
//! Longer than 400 lines only with its unit tests, which sit beside the code.

use crate::exchange::{self, RequestCtx};
use crate::response::error_page;
use crate::rules::forwarding::{self, Client};
use crate::rules::sites::Action;
use crate::runtime::{Runtime, Shared};
use crate::telemetry::vocabulary::ProxyLoop;
use crate::upstream::request_head::Forward;
use crate::upstream::send::{self, Request};
use bytes::{Buf, BufMut, BytesMut};
use http::Method;
use pingora::http::RequestHeader;
use pingora::protocols::Stream;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

mod request;
mod response;

pub use request::Plan;

/// Request bodies up to this size are read before a server is chosen, so that a request on a
/// keepalive connection the server had closed can be sent again. Larger ones go to Pingora.
pub const BODY_MAX: u64 = 64 * 1024;
/// Per read or write on the client side once a request has started (nginx's
/// `client_body_timeout` and `send_timeout`).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How the client connection goes on after a relayed request.
pub enum Next {
    /// Keep it open; the bytes already read past this request start the next one.
    KeepAlive(BytesMut),
    Close,
}

/// Decides whether the relay takes the request whose complete head starts `buf`.
/// `local` gives the listener's address, asked for only when sites are bound to listeners.
pub fn plan(
    buf: &[u8],
    rt: &Runtime,
    client: &Client,
    local: impl FnOnce() -> Option<std::net::SocketAddr>,
) -> Option<Plan> {
    if !rt.fast_path || (rt.https_redirect_port.is_some() && !client.tls) {
        return None;
    }
    let limits = &rt.limits;
    let plan = Plan::parse(buf, limits.max_head_bytes())?;
    // The head guard checked the raw limits; a body over them is refused by Pingora's path.
    if plan.body_len as u64 > BODY_MAX.min(limits.max_body_bytes) {
        return None;
    }
    // Only a location that does nothing but proxy (no header rules, limits or files), in a
    // site that follows no `X-Accel-Redirect`; the rest goes through the session loop.
    let mut plan = plan;
    if !rt.sites.is_plain() {
        let host = plan
            .header("host")
            .and_then(|h| std::str::from_utf8(h).ok());
        let site = rt.sites.for_host(host, local());
        if site.ret.is_some() {
            return None;
        }
        let path = plan.path();
        let found = site.locate(path, &crate::rules::locations::uri_of(path))?;
        let loc = site.locations.get(found.index)?;
        match loc.action {
            Action::Proxy { pool } if loc.plain && !site.has_internal => plan.pool = pool,
            _ => return None,
        }
    }
    Some(plan)
}

/// Relays one planned request to Django and its response back, then records it.
///
/// `buf` holds the request head and whatever followed it; `may_keepalive` says whether this
/// connection may serve another request after this one (request cap). Shutdown is read when the
/// response head goes out (`drain::draining`), however long Django took.
pub async fn serve(
    shared: &Shared,
    rt: Arc<Runtime>,
    stream: &mut Stream,
    mut buf: BytesMut,
    plan: Plan,
    client: &Client,
    may_keepalive: bool,
) -> Next {
    let mut ctx = RequestCtx::under(shared, rt);
    ctx.pool = plan.pool;
    shared.metrics.count_proxied(ProxyLoop::Relay);
    buf.advance(plan.head_len);
    while buf.len() < plan.body_len {
        match timeout(CLIENT_TIMEOUT, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            // The client went away or stalled mid-body: nothing was sent to Django.
            _ => return Next::Close,
        }
    }
    let body = buf.split_to(plan.body_len);

    let rt = ctx.rt.clone();
    let path = plan.path();
    ctx.obs.route = rt.routes.find(path).cloned();
    ctx.request_id = forwarding::request_id_from(plan.header("x-request-id"));
    let mut wire = BytesMut::with_capacity(plan.head_len + 256 + plan.body_len);
    let fwd = Forward {
        context: &rt.context,
        trusted: &rt.trusted,
        client,
        request_id: &ctx.request_id,
        set: &[],
    };
    plan.write_upstream_head(&fwd, &mut wire);
    wire.put_slice(&body);

    // Built from the raw head only for a denial: classification and the sample read it.
    let mut client_req: Option<RequestHeader> = None;
    let request = Request {
        method: &plan.method,
        wire: &wire,
        spooled: None,
    };
    let max_head = rt.limits.max_head_bytes();
    let sent = send::send(
        rt.pool(ctx.pool),
        max_head,
        &shared.metrics,
        &mut ctx.tries,
        request,
    )
    .await;
    let (status, keep) = match sent {
        Ok(reply) => {
            let keep_client =
                plan.keepalive && may_keepalive && !crate::runtime::drain::draining(shared);
            let req = response::Request {
                plan: &plan,
                header: &mut client_req,
            };
            response::relay_response(shared, &mut ctx, stream, req, reply, keep_client).await
        }
        Err(kind) => {
            let status =
                exchange::upstream_failed(shared, &rt.pool(ctx.pool).name, kind, &ctx.tries);
            error_page::write_h1(stream, status, plan.method == Method::HEAD).await;
            (status, false)
        }
    };

    let ending = exchange::Ending {
        method: plan.method.as_str(),
        path,
        client: client.ip,
        status,
        request: client_req.as_ref(),
    };
    exchange::finish(shared, &ctx, ending);
    if keep {
        Next::KeepAlive(buf)
    } else {
        Next::Close
    }
}

/// A runtime for the relay's unit tests: one server, plus `extra` config.
#[cfg(test)]
fn test_runtime(extra: &str) -> Runtime {
    let config = crate::config::parse(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:8000\"]\n{extra}"
    ))
    .expect("config");
    Runtime::build(&config, 1, &crate::telemetry::metrics::Metrics::new(10, 10)).expect("runtime")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Metrics;

    #[test]
    fn plain_requests_are_taken_and_the_rest_left_to_pingora() {
        let rt = test_runtime("[[static]]\nprefix = \"/static/\"\nroot = \"/tmp\"\n");
        let plain = Client {
            ip: None,
            tls: false,
        };
        let keeps = |raw: &[u8]| plan(raw, &rt, &plain, || None).map(|p| p.keepalive);
        assert_eq!(keeps(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"), Some(true));
        assert_eq!(
            keeps(b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"),
            Some(false)
        );
        assert_eq!(keeps(b"GET /a HTTP/1.0\r\n\r\n"), Some(false));
        assert_eq!(
            keeps(b"GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
            Some(true)
        );
        let p = plan(
            b"POST /f HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET",
            &rt,
            &plain,
            || None,
        )
        .expect("taken");
        assert_eq!((p.body_len, p.head_len), (3, 39));
        for raw in [
            &b"POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"POST /f HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            b"POST /f HTTP/1.1\r\nContent-Length: 65537\r\n\r\n",
            b"POST /f HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n\r\n",
            b"TRACE / HTTP/1.1\r\n\r\n",
            b"GET /static/app.css HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\r\n",
        ] {
            assert!(
                plan(raw, &rt, &plain, || None).is_none(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(test_runtime("").fast_path, "on by default");
        let config = crate::config::parse(
            "[server]\nfast_path = false\n[upstream]\nservers = [\"127.0.0.1:8000\"]\n",
        )
        .expect("parses");
        let rt = Runtime::build(&config, 1, &Metrics::new(10, 10)).expect("runtime");
        assert!(plan(b"GET /a HTTP/1.1\r\n\r\n", &rt, &plain, || None).is_none());
    }
}
