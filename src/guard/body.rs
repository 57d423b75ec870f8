//! Request bodies on Pingora's loop: read in full and counted before Django sees anything, as
//! nginx does with `proxy_request_buffering on`.
//!
//! Django cannot read a chunked body under WSGI; here any body up to `limits.max_body_bytes`,
//! sized or not, is held in memory and sent on with a `Content-Length` by the relay's upstream
//! side (`relay::buffered`); a larger one gets 413 and never reaches Django. The bytes held for
//! all requests together are bounded (`BUFFER_BUDGET`): past it a request gets 503 rather than
//! the process growing without end. Upgrades stream (`count_streamed`).

use crate::config::Limits;
use crate::telemetry::metrics::RejectReason;
use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most bytes of unsized request bodies held at once, all requests together.
pub const BUFFER_BUDGET: usize = 256 * 1024 * 1024;

/// Bytes of unsized request bodies held now, all requests together.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// A request's share of `BUFFER_BUDGET`, given back when dropped (once its body is sent).
#[must_use]
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

/// Reads the request body in full, sized or not, refusing it when it is too large; answers
/// `Expect: 100-continue` first, as nginx does when it reads a body itself. Returns the body
/// (empty when there is none), its share of the budget, and whether Django must be told its
/// length (the request had a body, or said `Content-Length`).
pub async fn read_whole(
    session: &mut Session,
    limits: &Limits,
) -> std::result::Result<(Bytes, BodyLease, bool), RejectReason> {
    let req = session.req_header();
    let sized = req.headers.contains_key(http::header::CONTENT_LENGTH);
    let expects = expects_continue(req);
    let http11 = req.version == http::Version::HTTP_11;
    let mut held = BodyLease(0);
    if session.is_body_empty() {
        return Ok((Bytes::new(), held, sized));
    }
    if expects && http11 {
        if let Ok(cont) = pingora::http::ResponseHeader::build(100, Some(0)) {
            let _ = session.write_response_header(Box::new(cont), false).await;
        }
    }
    let mut body = BytesMut::new();
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
    let tell = sized || !body.is_empty();
    Ok((body.freeze(), held, tell))
}

/// Whether the request asks for `100 Continue` before sending its body.
pub fn expects_continue(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
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
