//! HTTP/2 connections: Pingora's h2 server frames the streams, and each stream is served by
//! `phases::handle` in the connection's task, without Pingora's proxy loop around it.
//!
//! Pingora's loop would add, per stream, a boxed future of about 14 KiB (its whole proxy state
//! machine, copied into the heap for every request) and phases that HTTP/2 never uses here
//! (upstream peers, caching, modules): `phases::handle` answers every HTTP/2 request itself,
//! through the relay's upstream side. The rules are the same functions Pingora's loop calls, so
//! both keep one set: `handle`, `fail` and `log`.

use crate::phases::{self, RequestCtx};
use crate::runtime::Shared;
use crate::telemetry::metrics::ProxyLoop;
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
use std::sync::Arc;

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

/// Serves an HTTP/2 connection (ALPN `h2`) until it closes.
///
/// The streams run inside this connection's task, not as tasks of their own: with several
/// worker threads, a spawned stream could run on another thread than its connection, and then
/// every frame crossed threads through h2's shared state (with two threads, 1.39x nginx's CPU
/// per request spawned, 1.16x in the connection's task). As in nginx, a connection is served
/// by one thread at a time.
///
/// At shutdown: GOAWAY, then the streams already open (and those the client had sent before it
/// saw the GOAWAY) are served until the connection ends, as Pingora's own accept loop does.
/// Past `server::MAX_MALFORMED_STREAMS_PER_CONN` malformed streams, h2's connection is reset
/// (Pingora's budget, kept per connection).
pub async fn serve(shared: &Shared, stream: Stream, shutdown: &ShutdownWatch) {
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    });
    let Ok(mut conn) = handshake(stream, Some(options())).await else {
        return;
    };
    let mut shutdown = shutdown.clone();
    let mut going_away = *shutdown.borrow();
    if going_away {
        conn.graceful_shutdown();
    }
    let mut malformed = 0usize;
    // Each stream's future is boxed: its size is the request's, not the connection's.
    let mut streams: FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send + '_>>> =
        FuturesUnordered::new();
    loop {
        let accepted = tokio::select! {
            biased;
            changed = shutdown.changed(), if !going_away => {
                if changed.is_err() || *shutdown.borrow() {
                    conn.graceful_shutdown();
                    going_away = true;
                }
                continue;
            }
            Some(()) = streams.next(), if !streams.is_empty() => continue,
            // Cancel-safe: a stream not taken here is taken on the next turn.
            a = HttpSession::from_h2_conn_with_malformed_budget(&mut conn, digest.clone(), &mut malformed) => a,
        };
        match accepted {
            Ok(Some(H2Accept::Session(h2))) => {
                let session = ServerSession::new_http2(h2);
                streams.push(Box::pin(serve_stream(shared, session)));
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
async fn serve_stream(shared: &Shared, mut session: ServerSession) {
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
            let summary = phases::summary(session.req_header());
            tracing::error!("Fail to proxy: {e}, status: {status}, {summary}");
            phases::log(shared, &session, &ctx);
            // Dropped unfinished: h2 resets the stream, so a body cut off does not look whole.
        }
    }
}
