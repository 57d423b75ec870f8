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

use crate::exchange;
use crate::exchange::observe::Observed;
use crate::guard::body::Spool;
use crate::response::error_page;
use crate::rules::forwarding::{self, Client};
use crate::runtime::{Runtime, Shared};
use crate::telemetry::metrics::UpstreamErrorKind;
use crate::upstream::{self, retry};
use bytes::{Buf, BufMut, BytesMut};
use http::Method;
use pingora::http::RequestHeader;
use pingora::protocols::Stream;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

pub mod buffered;
pub mod chunked;
mod context;
mod request;
mod response;

pub use request::Plan;

/// Headers parsed per request or response, as in Pingora; a head with more goes to Pingora
/// (a request) or is a 502 (a response).
const MAX_HEADERS: usize = 256;
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
pub fn plan(buf: &[u8], rt: &Runtime, tls: bool) -> Option<Plan> {
    if !rt.fast_path || (rt.https_redirect_port.is_some() && !tls) {
        return None;
    }
    let limits = &rt.limits;
    let plan = Plan::parse(buf, limits.max_head_bytes())?;
    // The head guard checked the raw limits; a body over them is refused by Pingora's path.
    if plan.body_len as u64 > BODY_MAX.min(limits.max_body_bytes) {
        return None;
    }
    let path = plan.path();
    if rt.statics.iter().any(|m| path.starts_with(&m.prefix)) {
        return None;
    }
    Some(plan)
}

/// What a `Connection` value says of keeping the connection: the last of `close` and
/// `keep-alive` it lists, if any.
fn connection_keepalive(value: &[u8]) -> Option<bool> {
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

/// Relays one planned request to Django and its response back, then records it.
///
/// `buf` holds the request head and whatever followed it; `may_keepalive` says whether this
/// connection may serve another request after this one (request cap). Shutdown is read when the
/// response head goes out (`drain::draining`), however long Django took.
pub async fn serve(
    shared: &Shared,
    rt: &Runtime,
    stream: &mut Stream,
    mut buf: BytesMut,
    plan: Plan,
    client: &Client,
    may_keepalive: bool,
) -> Next {
    let start = Instant::now();
    let _in_flight = shared.sink.request();
    shared
        .metrics
        .count_proxied(crate::telemetry::metrics::ProxyLoop::Relay);
    buf.advance(plan.head_len);
    while buf.len() < plan.body_len {
        match timeout(CLIENT_TIMEOUT, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            // The client went away or stalled mid-body: nothing was sent to Django.
            _ => return Next::Close,
        }
    }
    let body = buf.split_to(plan.body_len);

    let path = plan.path();
    let mut obs = Observed {
        route: rt.routes.find(path).cloned(),
        ..Observed::default()
    };
    let request_id = forwarding::request_id_from(plan.header("x-request-id"));
    let mut wire = BytesMut::with_capacity(plan.head_len + 256 + plan.body_len);
    plan.write_upstream_head(rt, client, &request_id, &mut wire);
    wire.put_slice(&body);

    let head_only = plan.method == Method::HEAD;
    // Built from the raw head only for a denial: classification and the sample read it.
    let mut client_req: Option<RequestHeader> = None;
    let (status, keep) = match send(shared, rt, &plan.method, &wire, None).await {
        Ok(x) => {
            let keep_client =
                plan.keepalive && may_keepalive && !crate::runtime::drain::draining(shared);
            let req = response::Request {
                plan: &plan,
                header: &mut client_req,
            };
            response::relay_response(shared, rt, stream, req, x, &mut obs, keep_client).await
        }
        Err((kind, counted)) => {
            let status = exchange::upstream_failed(shared, kind, counted);
            error_page::write_h1(stream, status, head_only).await;
            (status, false)
        }
    };

    let ending = exchange::Ending {
        method: plan.method.as_str(),
        path,
        client: client.ip,
        request_id: &request_id,
        status,
        seconds: start.elapsed().as_secs_f64(),
        request: client_req.as_ref(),
    };
    exchange::finish(shared, rt, &obs, ending);
    if keep {
        Next::KeepAlive(buf)
    } else {
        Next::Close
    }
}

/// An upstream connection whose response head has arrived.
struct Exchange {
    conn: TcpStream,
    idx: usize,
    /// The response head (`head_len` bytes) and whatever of the body came with it.
    buf: BytesMut,
    head_len: usize,
}

/// Why one attempt on one connection failed.
enum Attempt {
    /// Nothing came back: on a reused keepalive connection, the server had closed it.
    NothingBack,
    Failed(UpstreamErrorKind),
}

/// Sends the request to a server and waits for its response head, by the rules of `retry`:
/// round robin over ready servers, another server tried when connecting fails (counted per
/// failure and marked failed), and a request whose pooled connection died with nothing back
/// sent once more on a new connection only if its method is idempotent. Errors come with
/// whether they were already counted.
async fn send(
    shared: &Shared,
    rt: &Runtime,
    method: &Method,
    wire: &[u8],
    spooled: Option<&Spool>,
) -> Result<Exchange, (UpstreamErrorKind, bool)> {
    let up = &rt.upstream;
    let max_idle = retry::max_idle_for(method, up.pool.idle_timeout());
    let (mut tried, mut tries, mut counted) = (0u64, 0usize, false);
    loop {
        let Some(idx) = upstream::pick_index(&rt.upstream, tried) else {
            return Err((UpstreamErrorKind::Connect, counted));
        };
        if idx < 64 {
            tried |= 1 << idx;
        }
        tries += 1;
        if let Some(conn) = up.pool.take(idx, max_idle) {
            match attempt(rt, conn, idx, wire, spooled).await {
                Ok(x) => return Ok(x),
                Err(Attempt::NothingBack) if retry::may_resend(method, true, true) => {}
                // Django may have run it: never sent twice (RFC 9110 §9.2.2), as in nginx.
                Err(Attempt::NothingBack) => return Err((UpstreamErrorKind::Reset, counted)),
                Err(Attempt::Failed(kind)) => return Err((kind, counted)),
            }
        }
        let Some(addr) = up.servers.get(idx) else {
            return Err((UpstreamErrorKind::Connect, counted));
        };
        let conn = match timeout(rt.upstream.timeouts.connect, TcpStream::connect(addr)).await {
            Ok(Ok(c)) => c,
            _ => {
                up.mark_failed(idx);
                shared
                    .metrics
                    .count_upstream_error(UpstreamErrorKind::Connect);
                counted = true;
                if retry::may_try_another(tries, up.retries) {
                    continue;
                }
                return Err((UpstreamErrorKind::Connect, counted));
            }
        };
        let _ = conn.set_nodelay(true);
        return match attempt(rt, conn, idx, wire, spooled).await {
            Ok(x) => Ok(x),
            Err(Attempt::NothingBack) => Err((UpstreamErrorKind::Reset, counted)),
            Err(Attempt::Failed(kind)) => Err((kind, counted)),
        };
    }
}

/// Writes the request on `conn` (to server `idx`), then the body spooled to a file if any, and
/// reads until a final (non-1xx) response head is complete.
async fn attempt(
    rt: &Runtime,
    mut conn: TcpStream,
    idx: usize,
    wire: &[u8],
    spooled: Option<&Spool>,
) -> Result<Exchange, Attempt> {
    // A request fits the socket buffer at once; only one that does not waits, with a timer.
    let sent = match conn.try_write(wire) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => return Err(Attempt::NothingBack),
    };
    if sent < wire.len() {
        match timeout(rt.upstream.timeouts.write, conn.write_all(&wire[sent..])).await {
            Err(_) => return Err(Attempt::Failed(UpstreamErrorKind::Timeout)),
            Ok(Err(_)) => return Err(Attempt::NothingBack),
            Ok(Ok(())) => {}
        }
    }
    if let Some(spool) = spooled {
        write_spooled(rt, &mut conn, spool).await?;
    }
    let mut buf = BytesMut::with_capacity(8192);
    let mut got_any = false;
    let max_head = rt.limits.max_head_bytes();
    loop {
        if let Some(end) = head_end(&buf) {
            // The relay sends neither `Expect` nor `Upgrade`, so no interim response is
            // allowed (`upstream_head::interim_allowed`), nor a status below 100.
            match status_of(&buf) {
                None => return Err(Attempt::Failed(UpstreamErrorKind::Other)),
                Some(s) if s < 200 => return Err(Attempt::Failed(UpstreamErrorKind::Other)),
                Some(_) if end > max_head => return Err(Attempt::Failed(UpstreamErrorKind::Other)),
                Some(_) => {
                    return Ok(Exchange {
                        conn,
                        idx,
                        buf,
                        head_len: end,
                    })
                }
            }
        }
        if buf.len() > max_head {
            return Err(Attempt::Failed(UpstreamErrorKind::Other));
        }
        match timeout(rt.upstream.timeouts.read, conn.read_buf(&mut buf)).await {
            Err(_) => return Err(Attempt::Failed(UpstreamErrorKind::Timeout)),
            Ok(Ok(0)) | Ok(Err(_)) if !got_any => return Err(Attempt::NothingBack),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(Attempt::Failed(UpstreamErrorKind::Reset)),
            Ok(Ok(_)) => got_any = true,
        }
    }
}

/// Streams a spooled body to Django, a chunk at a time from its start (so a resent request
/// sends it whole again).
async fn write_spooled(rt: &Runtime, conn: &mut TcpStream, spool: &Spool) -> Result<(), Attempt> {
    let mut offset = 0;
    while offset < spool.len {
        let chunk = spool
            .read_at(offset)
            .await
            .map_err(|_| Attempt::Failed(UpstreamErrorKind::Other))?;
        match timeout(rt.upstream.timeouts.write, conn.write_all(&chunk)).await {
            Err(_) => return Err(Attempt::Failed(UpstreamErrorKind::Timeout)),
            // As for the head: resent only if the method is idempotent (`retry`).
            Ok(Err(_)) => return Err(Attempt::NothingBack),
            Ok(Ok(())) => {}
        }
        offset += chunk.len() as u64;
    }
    Ok(())
}

/// The length of the head at the start of `buf`, once its blank line has arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| crate::guard::head::blank_line_after(buf, i))
}

/// The status code of the response head at the start of `buf` (`HTTP/1.x NNN`).
fn status_of(buf: &[u8]) -> Option<u16> {
    let code = buf.get(9..12)?;
    if !buf.starts_with(b"HTTP/1.") || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
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
        let keeps = |raw: &[u8]| plan(raw, &rt, false).map(|p| p.keepalive);
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
            false,
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
                plan(raw, &rt, false).is_none(),
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
        assert!(plan(b"GET /a HTTP/1.1\r\n\r\n", &rt, false).is_none());
    }

    #[test]
    fn connection_values() {
        assert_eq!(connection_keepalive(b"close"), Some(false));
        assert_eq!(connection_keepalive(b" Keep-Alive , X-Hop"), Some(true));
        assert_eq!(connection_keepalive(b"keep-alive, close"), Some(false));
        assert_eq!(connection_keepalive(b"X-Hop"), None);
    }

    #[test]
    fn response_heads_end_and_status() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"), Some(25));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 403 Forbidden\r\n"), Some(403));
        assert_eq!(status_of(b"HTTP/2 200\r\n"), None);
    }
}
