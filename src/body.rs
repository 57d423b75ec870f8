//! Request body limits: `Content-Length` is checked up front; a body without one (chunked, or
//! HTTP/2 without a length) is read and counted before Django sees anything.
//!
//! Django cannot read a chunked body under WSGI, and nginx buffers request bodies for the same
//! reason; here such a body is held in Pingora's retry buffer (64 KiB) and sent on with a
//! `Content-Length`. Larger unsized bodies get 411, oversized ones 413, and neither reaches Django.

use crate::config::Limits;
use crate::metrics::RejectReason;
use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

/// Pingora's retry buffer holds this much; an unsized body must fit in it.
pub const UNSIZED_BODY_MAX: u64 = 64 * 1024;

/// What is known of the request body so far.
#[derive(Debug, Default)]
pub struct BodyState {
    /// Bytes seen streaming through to Django.
    pub streamed: u64,
    /// Length of an unsized body read in full before forwarding.
    pub buffered: Option<u64>,
}

/// Reads an unsized request body up front, refusing it when it is too large.
pub async fn buffer_unsized_body(
    session: &mut Session,
    limits: &Limits,
    state: &mut BodyState,
) -> std::result::Result<(), RejectReason> {
    let req = session.req_header();
    let sized = req.headers.contains_key(http::header::CONTENT_LENGTH);
    let chunked = req.headers.contains_key(http::header::TRANSFER_ENCODING);
    let h2_with_body = req.version == http::Version::HTTP_2 && !sized;
    if sized || !(chunked || h2_with_body) || session.is_body_empty() {
        return Ok(());
    }
    session.enable_retry_buffering();
    let cap = limits.max_body_bytes.min(UNSIZED_BODY_MAX);
    let mut total = 0u64;
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                total += chunk.len() as u64;
                if total > limits.max_body_bytes {
                    return Err(RejectReason::BodyTooLarge);
                }
                if total > cap {
                    return Err(RejectReason::LengthRequired);
                }
            }
            Ok(None) => break,
            Err(_) => return Err(RejectReason::BadRequest),
        }
    }
    state.buffered = Some(total);
    Ok(())
}

/// Replaces chunked framing with the length of a body read in full.
pub fn set_buffered_length(req: &mut RequestHeader, state: &BodyState) {
    if let Some(n) = state.buffered {
        req.remove_header(&http::header::TRANSFER_ENCODING);
        let _ = req.insert_header(http::header::CONTENT_LENGTH, n.to_string());
    }
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
