//! authz-edge's own HTTP/1 proxy loop for plain requests; everything else goes to Pingora.
//!
//! Pingora's proxy spends about three times nginx's user-space CPU per request (boxed futures,
//! two header maps per exchange, its connection pool). Most traffic in front of Django is plain:
//! a request with no body or a small one with a `Content-Length`, answered with a length or a
//! chunked body. `plan` picks those out; `serve` relays them with the same modules as the
//! Pingora phases in `proxy` (limits, forwarding, routes, telemetry, sampling, access log), so
//! what Django sees and what is counted does not depend on the path taken.
//!
//! Anything else goes to Pingora with the head already read: upgrades, `Expect`, chunked or
//! large request bodies, absolute-form targets, static mounts, the HTTPS redirect, and anything
//! the limits refuse. `server.fast_path = false` sends everything there.

use crate::classify;
use crate::forwarding::{self, Client};
use crate::limits;
use crate::metrics::UpstreamErrorKind;
use crate::runtime::{Runtime, Shared};
use crate::telemetry::{self, Observed};
use crate::{access_log, error_page, upstream};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Version};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::Stream;
use std::future::Future;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Headers parsed per request or response; a head with more goes to Pingora (or is a 502).
const MAX_HEADERS: usize = 128;
/// Request bodies up to this size are read before a server is chosen, so that a request on a
/// keepalive connection the server had closed can be sent again. Larger ones go to Pingora.
pub const BODY_MAX: u64 = 64 * 1024;
/// Per read or write on the client side once a request has started (nginx's
/// `client_body_timeout` and `send_timeout`).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// A response head larger than this is refused as invalid.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A request the relay takes: its parsed head and framing.
pub struct Plan {
    req: RequestHeader,
    head_len: usize,
    body_len: usize,
    /// The client asked to keep the connection (HTTP/1.1 default, or 1.0 with `keep-alive`).
    keepalive: bool,
}

/// How the client connection goes on after a relayed request.
pub enum Next {
    /// Keep it open; the bytes already read past this request start the next one.
    KeepAlive(BytesMut),
    Close,
}

/// Decides whether the relay takes the request whose complete head starts `buf`.
pub fn plan(buf: &[u8], rt: &Runtime, tls: bool) -> Option<Plan> {
    if !rt.config.server.fast_path || (rt.https_redirect_port.is_some() && !tls) {
        return None;
    }
    // One copy of the head; the header values share it instead of a copy each.
    let end = buf
        .len()
        .min(rt.limits.max_header_bytes + rt.limits.max_uri_bytes + 1024);
    let head = Bytes::copy_from_slice(&buf[..end]);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut p = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = p.parse(&head) else {
        return None;
    };
    let (Some(method), Some(path), Some(version)) = (p.method, p.path, p.version) else {
        return None;
    };
    let plain_method = matches!(
        method,
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
    );
    if !plain_method || !path.starts_with('/') {
        return None;
    }
    // Room for the headers the proxy adds, so that the map does not grow.
    let hint = p.headers.len() + 4;
    let mut req = RequestHeader::build_no_case(method, path.as_bytes(), Some(hint)).ok()?;
    if version == 0 {
        req.set_version(Version::HTTP_10);
    }
    let mut keepalive = version == 1;
    let mut body_len: Option<u64> = None;
    for h in p.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == header::TRANSFER_ENCODING || name == header::UPGRADE || name == header::EXPECT {
            return None;
        }
        if name == header::CONTENT_LENGTH {
            if body_len.is_some() {
                return None;
            }
            body_len = Some(digits(h.value)?);
        } else if name == header::CONNECTION {
            for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keepalive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keepalive = true;
                }
            }
        }
        let value = HeaderValue::from_maybe_shared(head.slice_ref(h.value)).ok()?;
        req.append_header(name, value).ok()?;
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > BODY_MAX || limits::check_parsed(&req, &rt.limits).is_err() {
        return None;
    }
    let path = req.uri.path();
    if rt.statics.iter().any(|m| path.starts_with(&m.prefix)) {
        return None;
    }
    Some(Plan {
        req,
        head_len,
        body_len: body_len as usize,
        keepalive,
    })
}

/// A decimal `Content-Length` value; no sign, no spaces inside, no overflow.
fn digits(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Relays one planned request to Django and its response back, then records it.
///
/// `buf` holds the request head and whatever followed it; `may_keepalive` says whether this
/// connection may serve another request after this one (request cap, shutdown).
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
    shared.metrics.count_proxied(true);
    let Plan {
        mut req,
        head_len,
        body_len,
        keepalive,
    } = plan;
    buf.advance(head_len);
    while buf.len() < body_len {
        match timeout(CLIENT_TIMEOUT, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            // The client went away or stalled mid-body: nothing was sent to Django.
            _ => return Next::Close,
        }
    }
    let body = buf.split_to(body_len);

    let mut obs = Observed {
        route: rt.routes.find(req.uri.path()).cloned(),
        ..Observed::default()
    };
    let request_id = forwarding::request_id(&req);
    let set = forwarding::rewrite_upstream_request(&mut req, rt, client, &request_id);
    let mut wire = BytesMut::with_capacity(head_len + 256 + body_len);
    wire.put_slice(req.method.as_str().as_bytes());
    wire.put_u8(b' ');
    wire.put_slice(req.raw_path());
    wire.put_slice(b" HTTP/1.1\r\n");
    req.header_to_h1_wire(&mut wire);
    for (name, value) in set.iter() {
        wire.put_slice(name.as_bytes());
        wire.put_slice(b": ");
        wire.put_slice(value.as_bytes());
        wire.put_slice(b"\r\n");
    }
    wire.put_slice(b"\r\n");
    wire.put_slice(&body);

    let head_only = req.method == Method::HEAD;
    let (status, keep) = match exchange(shared, rt, &wire).await {
        Ok(x) => {
            let keep_client = keepalive && may_keepalive;
            relay_response(shared, rt, stream, &req, x, &mut obs, keep_client).await
        }
        Err((kind, counted)) => {
            if !counted {
                shared.metrics.count_upstream_error(kind);
            }
            let status = upstream::error_status(kind);
            error_page::write_h1(stream, status, head_only).await;
            (status, false)
        }
    };

    let seconds = start.elapsed().as_secs_f64();
    let route = telemetry::route_for(shared, &obs, req.uri.path());
    telemetry::record(&shared.metrics, &route, status, seconds, &obs);
    telemetry::sample(shared, &req, &route, seconds, &obs, &request_id);
    if rt.access_log {
        access_log::write(access_log::Entry {
            req: &req,
            client: client.ip,
            request_id: &request_id,
            obs: &obs,
            route: &route.label,
            status,
            seconds,
        });
    }
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

/// Sends the request to a server and waits for its response head, as Pingora's phases do:
/// round robin over ready servers, other servers tried when connecting fails (counted per
/// failure and marked failed), and a request on a reused connection that got nothing back sent
/// again once on a new one. Errors come with whether they were already counted.
async fn exchange(
    shared: &Shared,
    rt: &Runtime,
    wire: &[u8],
) -> Result<Exchange, (UpstreamErrorKind, bool)> {
    let up = &rt.upstream;
    let (mut tried, mut tries, mut counted) = (0u64, 0usize, false);
    loop {
        let Some(idx) = upstream::pick_index(rt, tried) else {
            return Err((UpstreamErrorKind::Connect, counted));
        };
        if idx < 64 {
            tried |= 1 << idx;
        }
        tries += 1;
        if let Some(conn) = up.pool.take(idx) {
            match attempt(rt, conn, wire).await {
                Ok((conn, buf, head_len)) => {
                    return Ok(Exchange {
                        conn,
                        idx,
                        buf,
                        head_len,
                    })
                }
                Err(Attempt::NothingBack) => {}
                Err(Attempt::Failed(kind)) => return Err((kind, counted)),
            }
        }
        let Some(addr) = up.servers.get(idx) else {
            return Err((UpstreamErrorKind::Connect, counted));
        };
        let conn = match timeout(up.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(c)) => c,
            _ => {
                up.mark_failed(idx);
                shared
                    .metrics
                    .count_upstream_error(UpstreamErrorKind::Connect);
                counted = true;
                if tries <= up.retries {
                    continue;
                }
                return Err((UpstreamErrorKind::Connect, counted));
            }
        };
        let _ = conn.set_nodelay(true);
        return match attempt(rt, conn, wire).await {
            Ok((conn, buf, head_len)) => Ok(Exchange {
                conn,
                idx,
                buf,
                head_len,
            }),
            Err(Attempt::NothingBack) => Err((UpstreamErrorKind::Reset, counted)),
            Err(Attempt::Failed(kind)) => Err((kind, counted)),
        };
    }
}

/// Writes the request on `conn` and reads until a final (non-1xx) response head is complete.
async fn attempt(
    rt: &Runtime,
    mut conn: TcpStream,
    wire: &[u8],
) -> Result<(TcpStream, BytesMut, usize), Attempt> {
    let up = &rt.upstream;
    // A request fits the socket buffer at once; only one that does not waits, with a timer.
    let sent = match conn.try_write(wire) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => return Err(Attempt::NothingBack),
    };
    if sent < wire.len() {
        match timeout(up.write_timeout, conn.write_all(&wire[sent..])).await {
            Err(_) => return Err(Attempt::Failed(UpstreamErrorKind::Timeout)),
            Ok(Err(_)) => return Err(Attempt::NothingBack),
            Ok(Ok(())) => {}
        }
    }
    let mut buf = BytesMut::with_capacity(8192);
    let mut got_any = false;
    loop {
        if let Some(end) = head_end(&buf) {
            // Informational responses (100, 103) are dropped: the relay never sends `Expect`.
            match status_of(&buf) {
                Some(101) | None => return Err(Attempt::Failed(UpstreamErrorKind::Other)),
                Some(s) if s < 200 => {
                    buf.advance(end);
                    continue;
                }
                Some(_) => return Ok((conn, buf, end)),
            }
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(Attempt::Failed(UpstreamErrorKind::Other));
        }
        match timeout(up.read_timeout, conn.read_buf(&mut buf)).await {
            Err(_) => return Err(Attempt::Failed(UpstreamErrorKind::Timeout)),
            Ok(Ok(0)) | Ok(Err(_)) if !got_any => return Err(Attempt::NothingBack),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(Attempt::Failed(UpstreamErrorKind::Reset)),
            Ok(Ok(_)) => got_any = true,
        }
    }
}

/// The length of the head at the start of `buf`, once its blank line has arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| match &buf[i + 1..] {
        [b'\n', ..] => Some(i + 2),
        [b'\r', b'\n', ..] => Some(i + 3),
        _ => None,
    })
}

/// The status code of the response head at the start of `buf` (`HTTP/1.x NNN`).
fn status_of(buf: &[u8]) -> Option<u16> {
    let code = buf.get(9..12)?;
    if !buf.starts_with(b"HTTP/1.") || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

/// How the response body is delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
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
}

/// Rewrites the upstream response head for the client into `out` (context and hop-by-hop headers
/// dropped, `Connection` set) and observes it for telemetry.
#[allow(clippy::too_many_arguments)]
fn rewrite_head(
    shared: &Shared,
    rt: &Runtime,
    req: &RequestHeader,
    head: &[u8],
    obs: &mut Observed,
    keep_client: bool,
    out: &mut BytesMut,
) -> Option<ResponseHead> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut p = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = p.parse(head) else {
        return None;
    };
    let (Some(status), Some(version)) = (p.code, p.version) else {
        return None;
    };
    let mut reusable = version == 1;
    let (mut length, mut chunked, mut coded) = (None, false, false);
    let (mut route, mut release) = (None, None);
    let names = &rt.context;
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
        if is("content-length") {
            let n = digits(h.value)?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        } else if is("transfer-encoding") {
            coded = true;
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if chunked && req.version == Version::HTTP_10 {
                continue;
            }
        } else if is("connection") {
            for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    reusable = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    reusable = true;
                }
            }
            continue;
        } else if is("keep-alive") || is("proxy-connection") {
            continue;
        }
        if forwarding::is_context_header(name, names) {
            if is(names.route.as_str()) {
                route = Some(h.value);
            } else if is(names.release.as_str()) {
                release = Some(h.value);
            }
            continue;
        }
        out.put_slice(name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(h.value);
        out.put_slice(b"\r\n");
    }
    if rt.telemetry {
        telemetry::observe_context(shared, obs, route, release);
        if classify::is_denial(status) {
            let mut resp = ResponseHeader::build_no_case(status, Some(p.headers.len())).ok()?;
            for h in p.headers.iter() {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(h.name.as_bytes()),
                    HeaderValue::from_bytes(h.value),
                ) {
                    let _ = resp.append_header(n, v);
                }
            }
            telemetry::observe_denial(shared, rt, req, &resp, obs);
        }
    }
    let framing = if req.method == Method::HEAD || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked && req.version == Version::HTTP_10 {
        Framing::ChunkedToClose
    } else if chunked {
        Framing::Chunked
    } else if coded {
        Framing::UntilClose
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
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
    })
}

impl Framing {
    /// Whether the client connection can carry another request after this body.
    fn keeps_client(self) -> bool {
        !matches!(self, Framing::UntilClose | Framing::ChunkedToClose)
    }
}

/// Writes the response to the client and returns the status to record and whether the client
/// connection stays open. The upstream connection goes back to the pool when its response ended
/// cleanly and the server keeps it.
async fn relay_response(
    shared: &Shared,
    rt: &Runtime,
    stream: &mut Stream,
    req: &RequestHeader,
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
        error_page::write_h1(stream, 502, req.method == Method::HEAD).await;
        return (502, false);
    };
    buf.advance(head_len);
    let keep_client = keep_client && head.framing.keeps_client();
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
    match sent {
        Ok(()) => {
            if head.reusable && buf.is_empty() {
                rt.upstream.pool.put(idx, conn);
            }
            (head.status, keep_client)
        }
        Err(Broken::Upstream(kind)) => {
            shared.metrics.count_upstream_error(kind);
            (head.status, false)
        }
        Err(Broken::Client) => (head.status, false),
    }
}

/// Which side broke off a response in flight.
enum Broken {
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

async fn upstream_read(
    rt: &Runtime,
    conn: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<usize, Broken> {
    match timeout(rt.upstream.read_timeout, conn.read_buf(buf)).await {
        Err(_) => Err(Broken::Upstream(UpstreamErrorKind::Timeout)),
        Ok(Err(_)) => Err(Broken::Upstream(UpstreamErrorKind::Reset)),
        Ok(Ok(n)) => Ok(n),
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
        telemetry::observe_body(obs, &chunk);
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
        if upstream_read(rt, conn, buf).await? == 0 {
            return Err(Broken::Upstream(UpstreamErrorKind::Reset));
        }
    }
}

/// A chunked body, passed on as it is (an HTTP/1.0 client gets it decoded, then the close).
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
                telemetry::observe_body(obs, data);
                if decode {
                    out.put_slice(data);
                }
            })
            .ok_or(Broken::Upstream(UpstreamErrorKind::Other))?;
        if !decode {
            out.put_slice(&buf[..used]);
        }
        buf.advance(used);
        if !out.is_empty() {
            client_write(stream, &out).await?;
            out.clear();
        }
        if scan.done() {
            return Ok(());
        }
        if upstream_read(rt, conn, buf).await? == 0 {
            return Err(Broken::Upstream(UpstreamErrorKind::Reset));
        }
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
        telemetry::observe_body(obs, &buf);
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

/// Finds where a chunked body ends, byte by byte as it arrives, and hands out its data.
#[derive(Default)]
struct ChunkScanner {
    state: ChunkState,
    size: u64,
    digits: u8,
    /// In the trailer section: the current line is still empty.
    line_empty: bool,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    Data,
    DataEnd,
    Trailer,
    Done,
}

impl ChunkScanner {
    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes of `buf` up to the end of the body; returns how many belong to it, or
    /// `None` when the framing is invalid.
    fn feed(&mut self, buf: &[u8], mut data: impl FnMut(&[u8])) -> Option<usize> {
        let mut i = 0;
        while i < buf.len() && self.state != ChunkState::Done {
            let c = buf[i];
            match self.state {
                ChunkState::Size => match c {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        self.digits += 1;
                        if self.digits > 15 {
                            return None;
                        }
                        let d = (c as char).to_digit(16)?;
                        self.size = self.size * 16 + u64::from(d);
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => self.state = ChunkState::Extension,
                    b'\r' if self.digits > 0 => self.state = ChunkState::Extension,
                    b'\n' if self.digits > 0 => self.end_size_line(),
                    _ => return None,
                },
                ChunkState::Extension => {
                    if c == b'\n' {
                        self.end_size_line();
                    }
                }
                ChunkState::Data => {
                    let n = (buf.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    data(&buf[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                    continue;
                }
                ChunkState::DataEnd => match c {
                    b'\r' => {}
                    b'\n' => self.state = ChunkState::Size,
                    _ => return None,
                },
                ChunkState::Trailer => match c {
                    b'\r' => {}
                    b'\n' if self.line_empty => self.state = ChunkState::Done,
                    b'\n' => self.line_empty = true,
                    _ => self.line_empty = false,
                },
                ChunkState::Done => {}
            }
            i += 1;
        }
        Some(i)
    }

    fn end_size_line(&mut self) {
        self.digits = 0;
        if self.size == 0 {
            self.state = ChunkState::Trailer;
            self.line_empty = true;
        } else {
            self.state = ChunkState::Data;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(parts: &[&[u8]]) -> (Option<usize>, bool, Vec<u8>) {
        let mut s = ChunkScanner::default();
        let mut data = Vec::new();
        let mut used = 0;
        for p in parts {
            match s.feed(p, |d| data.extend_from_slice(d)) {
                Some(n) => used += n,
                None => return (None, false, data),
            }
        }
        (Some(used), s.done(), data)
    }

    #[test]
    fn chunked_bodies_end_where_they_end() {
        let body: &[u8] = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT";
        let (used, done, data) = scan_all(&[body]);
        assert_eq!(used, Some(body.len() - 4));
        assert!(done);
        assert_eq!(data, b"hello world");
        // The same bytes one at a time.
        let bytes: Vec<&[u8]> = body[..body.len() - 4].chunks(1).collect();
        let (used, done, data) = scan_all(&bytes);
        assert_eq!(used, Some(body.len() - 4));
        assert!(done);
        assert_eq!(data, b"hello world");
        // Trailers are part of the body.
        let t: &[u8] = b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(scan_all(&[t]), (Some(t.len()), true, b"abc".to_vec()));
    }

    #[test]
    fn bad_chunk_framing_is_refused() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloX\r\n",
            b"\r\n",
            b"1000000000000000\r\n",
        ] {
            assert_eq!(
                scan_all(&[bad]).0,
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let partial: &[u8] = b"5\r\nhel";
        assert!(!scan_all(&[partial]).1);
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

    #[test]
    fn response_heads_end_and_status() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"), Some(25));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 403 Forbidden\r\n"), Some(403));
        assert_eq!(status_of(b"HTTP/2 200\r\n"), None);
    }
}
