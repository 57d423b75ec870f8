//! HTTP/2 connections: Pingora's h2 server frames the streams, and each stream is served by
//! `phases::handle` in a task of its own, without Pingora's proxy loop around it.
//!
//! Pingora's loop would add, per stream, a boxed future of about 14 KiB (its whole proxy state
//! machine, copied into the heap for every request) and phases that HTTP/2 never uses here
//! (upstream peers, caching, modules): `phases::handle` answers every HTTP/2 request itself,
//! through the relay's upstream side. The rules are the same functions Pingora's loop calls, so
//! both keep one set: `handle`, `fail` and `log`.

use crate::phases::{self, RequestCtx};
use crate::runtime::Shared;
use crate::telemetry::metrics::ProxyLoop;
use pingora::protocols::http::v2::server::{
    accept_downstream_sessions, default_h2_options, handshake, H2Options,
};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Digest, Stream};
use pingora::server::ShutdownWatch;
use pingora::ErrorType;
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

/// Serves an HTTP/2 connection (ALPN `h2`) until it closes; at shutdown, GOAWAY and the
/// streams already open are finished (Pingora's `accept_downstream_sessions`).
pub async fn serve(shared: &Arc<Shared>, stream: Stream, shutdown: &ShutdownWatch) {
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    });
    let Ok(conn) = handshake(stream, Some(options())).await else {
        return;
    };
    accept_downstream_sessions(conn, digest, shutdown.clone(), None, |h2, guard| {
        let shared = shared.clone();
        // Boxed before it is spawned: tokio moves a task's future several times on its way
        // into the task (and each move copies the whole future), a box is one pointer.
        tokio::spawn(Box::pin(async move {
            // Held for the stream's life: the connection is busy while a stream is served.
            let _guard = guard;
            serve_stream(&shared, ServerSession::new_http2(h2)).await;
        }));
    })
    .await;
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
            let req = session.req_header();
            tracing::error!(
                "Fail to proxy: {e}, status: {status}, {} {}",
                req.method,
                req.uri.path()
            );
            phases::log(shared, &session, &ctx);
            // Dropped unfinished: h2 resets the stream, so a body cut off does not look whole.
        }
    }
}
