//! Request body limits: `Content-Length` is checked up front; a body without one (chunked, or
//! HTTP/2 without a length) is read in full and counted before Django sees anything.
//!
//! Django cannot read a chunked body under WSGI, and nginx buffers request bodies for the same
//! reason. Here an unsized body up to `limits.max_body_bytes` is held in memory and sent on
//! with a `Content-Length` by the relay's upstream side (`relay::buffered`); a larger one gets
//! 413 and never reaches Django. The bytes held for all requests together are bounded
//! (`BUFFER_BUDGET`): past it a request gets 503 rather than the process growing without end.

use crate::config::Limits;
use crate::metrics::RejectReason;
use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most bytes of unsized request bodies held at once, all requests together.
pub const BUFFER_BUDGET: usize = 256 * 1024 * 1024;

/// Bytes of unsized request bodies held now, all requests together.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// A request's share of `BUFFER_BUDGET`, given back when dropped (once its body is sent).
pub struct BodyLease(usize);

impl BodyLease {
    fn grow(&mut self, n: usize) -> bool {
        if HELD.fetch_add(n, Ordering::Relaxed) + n > BUFFER_BUDGET {
            HELD.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        self.0 += n;
        true
    }
}

impl Drop for BodyLease {
    fn drop(&mut self) {
        HELD.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// What is known of the request body so far.
#[derive(Debug, Default)]
pub struct BodyState {
    /// Bytes seen streaming through to Django.
    pub streamed: u64,
}

/// Reads an unsized request body in full, refusing it when it is too large. `Ok(None)` when
/// the request has a `Content-Length` or no body: Pingora's loop streams it as it is.
pub async fn buffer_unsized_body(
    session: &mut Session,
    limits: &Limits,
) -> std::result::Result<Option<(Bytes, BodyLease)>, RejectReason> {
    let req = session.req_header();
    let sized = req.headers.contains_key(http::header::CONTENT_LENGTH);
    let chunked = req.headers.contains_key(http::header::TRANSFER_ENCODING);
    let h2_with_body = req.version == http::Version::HTTP_2 && !sized;
    if sized || !(chunked || h2_with_body) || session.is_body_empty() {
        return Ok(None);
    }
    let mut body = BytesMut::new();
    let mut held = BodyLease(0);
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > limits.max_body_bytes {
                    return Err(RejectReason::BodyTooLarge);
                }
                if !held.grow(chunk.len()) {
                    return Err(RejectReason::BodyBufferFull);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Err(RejectReason::BadRequest),
        }
    }
    Ok(Some((body.freeze(), held)))
}

/// Counts a streamed chunk; past the limit the request fails with 413.
pub fn count_streamed(chunk: Option<&Bytes>, limits: &Limits, state: &mut BodyState) -> Result<()> {
    if let Some(c) = chunk {
        state.streamed += c.len() as u64;
        if state.streamed > limits.max_body_bytes {
            return Error::e_explain(
                ErrorType::HTTPStatus(413),
                "request body over limits.max_body_bytes",
            );
        }
    }
    Ok(())
}
