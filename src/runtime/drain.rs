//! Shutdown and upgrade without a lost request: `Connection: close` and lame-duck keepalive.
//!
//! After SIGQUIT (once the sockets are handed over) or SIGTERM, Pingora stops accepting and sets
//! its shutdown watch. From then on:
//! - every HTTP/1 response carries `Connection: close` (`draining`, read when the head is
//!   written), so the client opens its next connection to the new process;
//! - a keepalive connection waiting for its next request is not closed at once: a request
//!   already on its way would be lost. It lingers (`Runtime::linger`) and a request that arrives is
//!   served, with `Connection: close`. At the end of the linger it is closed only when no request
//!   byte is pending on its socket (`pending`);
//! - HTTP/2 connections get GOAWAY from Pingora's h2 accept loop and finish their streams.

use crate::runtime::connections::Slot;
use crate::runtime::Shared;
use bytes::BytesMut;
use pingora::protocols::Stream;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::time::{timeout_at, Instant};

/// Whether the process is shutting down: HTTP/1 responses then close their connection.
pub fn draining(shared: &Shared) -> bool {
    shared.draining.load(Ordering::Acquire)
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
/// `None` means close it: idle past `idle`, closed by the client, shed at the connection cap
/// (`connections`), or draining with nothing arriving within the linger.
///
/// A drain or the cap is learnt from the connection's `Slot::wake` (a `Notify`, 64 bytes of the
/// idle connection's future where a clone of Pingora's shutdown watch and its `changed()` took
/// 136), which both notify.
pub async fn next_request(
    stream: &mut Stream,
    buf: &mut BytesMut,
    idle: Duration,
    shared: &Shared,
    slot: &Slot,
) -> Option<usize> {
    let idle_end = Instant::now() + idle;
    while !draining(shared) {
        if slot.is_shed() {
            // Shed at the cap: closed at once, as nginx closes a reusable connection.
            return None;
        }
        let woken = slot.wake.notified();
        tokio::pin!(woken);
        // Registered before the flags are read, so that a drain or a shed in between still
        // wakes it.
        woken.as_mut().enable();
        if draining(shared) || slot.is_shed() {
            continue;
        }
        tokio::select! {
            r = timeout_at(idle_end, read_idle(stream, buf)) => return r.ok().and_then(read_some),
            // Drained, shed, or a wake-up left for the slot's previous connection: see which.
            () = &mut woken => {}
        }
    }
    // Draining: a request already on its way still gets its answer.
    let end = (Instant::now() + shared.runtime.load().linger).min(idle_end);
    match timeout_at(end, read_idle(stream, buf)).await {
        Ok(r) => read_some(r),
        // Bytes that reached the socket but not yet the reactor are a request too.
        Err(_) if pending(stream) => {
            let r = tokio::time::timeout(Duration::from_secs(1), read_idle(stream, buf)).await;
            r.ok().and_then(read_some)
        }
        Err(_) => None,
    }
}

/// The scratch space of an idle connection's first read, one per thread.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    static SCRATCH_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
}

/// Reads the first bytes of a request into `buf` without holding a buffer while it waits:
/// the read goes into a per-thread scratch buffer (borrowed only inside each poll, never across
/// a wait) and what arrived is copied into `buf`, sized for it. So an idle connection holds no
/// read buffer, as in nginx (which frees its header buffer at keepalive), and its first read is
/// still one `read(2)`. With room already in `buf` (bytes carried over), it reads there.
pub async fn read_idle(stream: &mut Stream, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() >= 1024 {
        return stream.read_buf(buf).await;
    }
    std::future::poll_fn(|cx| {
        SCRATCH_BUF.with(|scratch| {
            // Never nested (a poll does not poll another connection); were it, a buffer of
            // its own for this poll.
            let mut own;
            let mut shared = scratch.try_borrow_mut();
            let space: &mut [u8] = match shared.as_mut() {
                Ok(s) => &mut s[..],
                Err(_) => {
                    own = vec![0u8; 1024];
                    &mut own[..]
                }
            };
            let mut read = ReadBuf::new(space);
            match Pin::new(&mut *stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let got = read.filled();
                    buf.reserve(got.len().max(1024));
                    buf.extend_from_slice(got);
                    Poll::Ready(Ok(got.len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    })
    .await
}

/// A read that brought bytes; end of stream and errors close the connection.
fn read_some(r: std::io::Result<usize>) -> Option<usize> {
    r.ok().filter(|n| *n > 0)
}
