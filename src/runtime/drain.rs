//! Shutdown and upgrade without a lost request: `Connection: close` and lame-duck keepalive.
//!
//! After SIGQUIT (once the sockets are handed over) or SIGTERM, Pingora stops accepting and sets
//! its shutdown watch. From then on:
//! - every HTTP/1 response carries `Connection: close` (`draining`, read when the head is
//!   written), so the client opens its next connection to the new process;
//! - a keepalive connection waiting for its next request is not closed at once: a request
//!   already on its way would be lost. It lingers (`linger`) and a request that arrives is
//!   served, with `Connection: close`. At the end of the linger it is closed only when no request
//!   byte is pending on its socket (`pending`);
//! - HTTP/2 connections get GOAWAY from Pingora's h2 accept loop and finish their streams.

use crate::runtime::{Runtime, Shared};
use bytes::BytesMut;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::time::{timeout_at, Instant};

/// Whether the process is shutting down: HTTP/1 responses then close their connection.
pub fn draining(shared: &Shared) -> bool {
    shared.draining.load(Ordering::Acquire)
}

/// How long an idle keepalive connection waits for a request once draining: half the grace
/// period (the rest is for that request to finish), at most the keepalive timeout.
pub fn linger(rt: &Runtime) -> Duration {
    rt.linger
}

/// Whether bytes are waiting on the connection's socket (`MSG_PEEK`, never blocks).
fn pending(stream: &Stream) -> bool {
    let mut byte = 0u8;
    // SAFETY: `id()` is the stream's socket, open for as long as `stream` lives; one byte is
    // peeked into a valid buffer and nothing is consumed.
    let n = unsafe {
        libc::recv(
            stream.id(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n > 0
}

/// Waits on a keepalive connection for the first bytes of its next request.
///
/// `None` means close it: idle past `idle`, closed by the client, or draining with nothing
/// arriving within the linger.
pub async fn next_request(
    stream: &mut Stream,
    buf: &mut BytesMut,
    idle: Duration,
    watch: &ShutdownWatch,
    linger: Duration,
) -> Option<usize> {
    let idle_end = Instant::now() + idle;
    let mut watch = watch.clone();
    if !*watch.borrow() {
        tokio::select! {
            r = timeout_at(idle_end, stream.read_buf(buf)) => return r.ok().and_then(read_some),
            _ = watch.changed() => {}
        }
    }
    // Draining: a request already on its way still gets its answer.
    let end = (Instant::now() + linger).min(idle_end);
    match timeout_at(end, stream.read_buf(buf)).await {
        Ok(r) => read_some(r),
        // Bytes that reached the socket but not yet the reactor are a request too.
        Err(_) if pending(stream) => {
            let r = tokio::time::timeout(Duration::from_secs(1), stream.read_buf(buf)).await;
            r.ok().and_then(read_some)
        }
        Err(_) => None,
    }
}

/// A read that brought bytes; end of stream and errors close the connection.
fn read_some(r: std::io::Result<usize>) -> Option<usize> {
    r.ok().filter(|n| *n > 0)
}
