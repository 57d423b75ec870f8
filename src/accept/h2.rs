//! HTTP/2 connections: Pingora's h2 server frames the streams, and each stream is served by
//! `phases::handle` in the connection's task, without Pingora's proxy loop around it.
//!
//! Pingora's loop would add, per stream, a boxed future of about 14 KiB (its whole proxy state
//! machine, copied into the heap for every request) and phases that HTTP/2 never uses here
//! (upstream peers, caching, modules): `phases::handle` answers every HTTP/2 request itself,
//! through the relay's upstream side. The rules are the same functions Pingora's loop calls, so
//! both keep one set: `handle`, `fail` and `log`.

use crate::exchange::RequestCtx;
use crate::phases;
use crate::runtime::connections::Admission;
use crate::runtime::Shared;
use crate::telemetry::vocabulary::ProxyLoop;
use crate::telemetry::vocabulary::ShedReason;
use futures_util::stream::{FuturesUnordered, StreamExt};
use pingora::protocols::http::v2::server::{
    default_h2_options, handshake, H2Accept, H2Options, HttpSession,
};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Digest, Stream};
use pingora::server::ShutdownWatch;
use pingora::ErrorType;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Bytes h2 may hold per stream for a client that does not read (its default is 400 KiB).
pub const SEND_BUFFER: usize = 16 * 1024;
/// Streams per HTTP/2 connection, as Pingora's default (nginx: 128).
pub const MAX_STREAMS: u32 = 100;

/// HTTP/2 settings that bound the memory a connection can hold.
///
/// A response is read from Django only as fast as the client's flow-control window lets it out
/// (Pingora's h2 `write_body` waits for capacity), and h2 holds at most `SEND_BUFFER` per
/// stream that the socket has not taken (nginx's `http2_chunk_size` is 8 KiB). So a client that
/// opens every stream and never reads holds at most `MAX_STREAMS` x (`SEND_BUFFER` + the
/// relay's 8 KiB read buffer + the request's own state), measured at about 5.4 MiB per
/// connection, however large the responses (`tests/faults.rs`; nginx holds about 15 MiB). The
/// receive windows are nginx's: 64 KiB per stream (`http2_body_preread_size`), here 1 MiB for
/// the connection; request bodies are read whole and count against `body::BUFFER_BUDGET`.
pub fn options() -> H2Options {
    let mut o = default_h2_options();
    o.max_concurrent_streams(MAX_STREAMS)
        .max_send_buffer_size(SEND_BUFFER)
        .initial_window_size(65_535)
        .initial_connection_window_size(1 << 20);
    o
}

/// How long a connection that was told GOAWAY, with no stream left, is given to close before it
/// is dropped (a client that never answers h2's PING would otherwise hold it).
const GOAWAY_LINGER: Duration = Duration::from_secs(1);

/// Streams open at once in the whole process: past it a new stream is refused with
/// `REFUSED_STREAM`, which clients retry (counted as `shed{reason="h2_stream"}`). With the
/// per-stream bound above (at most about 54 KiB each for a client that does not read), this
/// bounds what HTTP/2 streams hold for the process, about 220 MiB, whatever the connections.
pub const MAX_PROCESS_STREAMS: usize = 4096;

/// Streams open now, process-wide.
static OPEN_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// A stream's place under `MAX_PROCESS_STREAMS`, given back when dropped.
struct StreamPermit;

impl StreamPermit {
    fn take() -> Option<StreamPermit> {
        if OPEN_STREAMS.fetch_add(1, Ordering::Relaxed) >= MAX_PROCESS_STREAMS {
            OPEN_STREAMS.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(StreamPermit)
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        OPEN_STREAMS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// GOAWAY for a connection (its open streams finish), and the timer set to drop it
/// `GOAWAY_LINGER` after, if it is still there then.
fn go_away(
    conn: &mut h2::server::Connection<Stream, bytes::Bytes>,
    going_away: &mut bool,
    timer: Pin<&mut tokio::time::Sleep>,
) {
    conn.graceful_shutdown();
    *going_away = true;
    timer.reset(Instant::now() + GOAWAY_LINGER);
}

/// Serves an HTTP/2 connection (ALPN `h2`) until it closes.
///
/// The streams run inside this connection's task, not as tasks of their own: with several
/// worker threads, a spawned stream could run on another thread than its connection, and then
/// every frame crossed threads through h2's shared state (with two threads, 1.39x nginx's CPU
/// per request spawned, 1.16x in the connection's task). As in nginx, a connection is served
/// by one thread at a time.
///
/// The connection is governed as nginx governs HTTP/2 (`keepalive_timeout`,
/// `client_header_timeout`, `keepalive_requests`, `keepalive_time`): the preface and first
/// request must come within `limits.header_timeout` of the TLS handshake's end (which had as
/// long from the accept); with no stream open for
/// `server.keepalive_timeout` it gets GOAWAY and closes; after
/// `limits.max_requests_per_connection` streams, or past `server.max_connection_age`, it gets
/// GOAWAY and its open streams finish. A connection told GOAWAY closes once its streams are
/// done, and is dropped `GOAWAY_LINGER` later if the client does not close it. Shed at the
/// connection cap while idle, it is told GOAWAY too.
///
/// At shutdown: GOAWAY, then the streams already open (and those the client had sent before it
/// saw the GOAWAY) are served until the connection ends, as Pingora's own accept loop does.
/// Past `server::MAX_MALFORMED_STREAMS_PER_CONN` malformed streams, h2's connection is reset
/// (Pingora's budget, kept per connection).
///
/// `admitted` is the connection's place under the cap: idle while no stream is open; its slot
/// says when it was accepted and when it retires.
pub async fn serve(
    shared: &Shared,
    stream: Stream,
    shutdown: &ShutdownWatch,
    admitted: &Admission<'_>,
) {
    let born = Instant::now();
    let retire_at = born + admitted.retires_in();
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    });
    let (header_timeout, keepalive, max_requests) = {
        let rt = shared.runtime.load();
        (
            rt.limits.header_timeout.0,
            rt.keepalive_timeout,
            rt.limits.max_requests_per_connection,
        )
    };
    // One timer for the connection's life: the preface and first request, then idleness, age
    // and GOAWAY's linger. It is checked lazily, so that a request costs no timer reset.
    let first_by = born + header_timeout;
    let timer = tokio::time::sleep_until(first_by.min(retire_at));
    tokio::pin!(timer);
    let mut conn = tokio::select! {
        c = handshake(stream, Some(options())) => match c {
            Ok(c) => c,
            Err(_) => return,
        },
        () = &mut timer => return,
    };
    let mut shutdown = shutdown.clone();
    let mut going_away = *shutdown.borrow();
    if going_away {
        conn.graceful_shutdown();
    }
    let mut malformed = 0usize;
    let mut served: u32 = 0;
    // While no stream is open: when the connection is to close for it.
    let mut idle_end = Some(first_by);
    admitted.idle();
    // Each stream's future is boxed: its size is the request's, not the connection's.
    let mut streams: FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send + '_>>> =
        FuturesUnordered::new();
    loop {
        let accepted = tokio::select! {
            biased;
            changed = shutdown.changed(), if !going_away => {
                if changed.is_err() || *shutdown.borrow() {
                    go_away(&mut conn, &mut going_away, timer.as_mut());
                }
                continue;
            }
            Some(()) = streams.next(), if !streams.is_empty() => {
                if streams.is_empty() {
                    let now = Instant::now();
                    idle_end = Some(now + keepalive);
                    admitted.idle();
                    if going_away {
                        timer.as_mut().reset(now + GOAWAY_LINGER);
                    }
                }
                continue;
            }
            () = &mut timer => {
                let now = Instant::now();
                if going_away {
                    if streams.is_empty() && idle_end.is_some() {
                        break;
                    }
                    // Streams still open: they finish; checked again later.
                    timer.as_mut().reset(now + GOAWAY_LINGER);
                    continue;
                }
                match idle_end {
                    // Idle past its time, or too old: GOAWAY, and its streams finish.
                    _ if now >= retire_at => {}
                    Some(end) if now >= end => {}
                    Some(end) => {
                        timer.as_mut().reset(end.min(retire_at));
                        continue;
                    }
                    None => {
                        timer.as_mut().reset((now + keepalive).min(retire_at));
                        continue;
                    }
                }
                go_away(&mut conn, &mut going_away, timer.as_mut());
                continue;
            }
            () = admitted.slot.shed(), if !going_away && streams.is_empty() => {
                go_away(&mut conn, &mut going_away, timer.as_mut());
                continue;
            }
            // Cancel-safe: a stream not taken here is taken on the next turn.
            a = HttpSession::from_h2_conn_with_malformed_budget(&mut conn, digest.clone(), &mut malformed) => a,
        };
        match accepted {
            Ok(Some(H2Accept::Session(mut h2))) => {
                let Some(permit) = StreamPermit::take() else {
                    shared.metrics.connections_shed[ShedReason::H2Stream as usize].inc();
                    h2.shutdown_with_reason(h2::Reason::REFUSED_STREAM);
                    continue;
                };
                if streams.is_empty() {
                    admitted.busy();
                }
                idle_end = None;
                served = served.saturating_add(1);
                if served >= max_requests && !going_away {
                    // The last stream nginx's `keepalive_requests` allows: GOAWAY, and the
                    // streams already open finish.
                    go_away(&mut conn, &mut going_away, timer.as_mut());
                }
                let session = ServerSession::new_http2(h2);
                streams.push(Box::pin(serve_stream(shared, session, permit)));
            }
            Ok(Some(H2Accept::Rejected)) => {}
            // Closed (cleanly, or a connection error): what is left of the streams ends with it.
            Ok(None) | Err(_) => break,
        }
    }
    drop(conn);
    while streams.next().await.is_some() {}
}

/// One stream: its request answered by `phases::handle`, then recorded by `phases::log`.
async fn serve_stream(shared: &Shared, mut session: ServerSession, _permit: StreamPermit) {
    match session.read_request().await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            // As Pingora's loop: a malformed head gets 400, a broken stream nothing.
            if matches!(e.etype, ErrorType::InvalidHTTPHeader) {
                let _ = session.respond_error(400).await;
            }
            return;
        }
    }
    crate::rules::forwarding::join_cookies(session.req_header_mut());
    shared.metrics.count_proxied(ProxyLoop::H2);
    let mut ctx = RequestCtx::new(shared);
    let outcome = match phases::handle(shared, &mut session, &mut ctx).await {
        Ok(true) => Ok(()),
        // An HTTP/1 upgrade cannot be asked for in HTTP/2 (h2 refuses `Connection`).
        Ok(false) => pingora::Error::e_explain(ErrorType::HTTPStatus(400), "upgrade over h2"),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            phases::log(shared, &session, &ctx);
            // Ends the stream if the response did not (an empty body); nothing to reuse.
            let _ = session.finish().await;
        }
        Err(e) => {
            let status = phases::fail(shared, &mut session, &e, &mut ctx).await;
            if status != 444 {
                let summary = phases::summary(session.req_header());
                tracing::error!("Fail to proxy: {e}, status: {status}, {summary}");
            }
            phases::log(shared, &session, &ctx);
            // Dropped unfinished: h2 resets the stream, so a body cut off does not look whole.
        }
    }
}
