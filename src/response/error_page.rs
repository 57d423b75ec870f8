//! The proxy's own short plain-text responses: refused requests, upstream failures, static errors.

use crate::response::header_edits::Edits;
use bytes::Bytes;
use http::{header, Method};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use tokio::io::AsyncWriteExt;

/// The body of a proxy-made response with `status`.
pub fn body(status: u16) -> &'static str {
    match status {
        400 => "400 Bad Request\n",
        404 => "404 Not Found\n",
        405 => "405 Method Not Allowed\n",
        408 => "408 Request Timeout\n",
        411 => "411 Length Required\n",
        413 => "413 Content Too Large\n",
        414 => "414 URI Too Long\n",
        431 => "431 Request Header Fields Too Large\n",
        502 => "502 Bad Gateway: the application server could not be reached\n",
        504 => "504 Gateway Timeout: the application server did not answer in time\n",
        _ => "500 Internal Server Error\n",
    }
}

/// The reason phrase for the status line of a raw HTTP/1 response.
pub fn reason(status: u16) -> &'static str {
    crate::upstream::response_head::reason_phrase(status)
}

/// Writes a proxy-made response straight to an HTTP/1 connection that is then closed (refused
/// heads, and upstream failures in the relay).
pub async fn write_h1(stream: &mut Stream, status: u16, head_only: bool) {
    let text = body(status);
    let mut resp = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        reason(status),
        text.len()
    );
    if !head_only {
        resp.push_str(text);
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = stream.write_all(resp.as_bytes()).await;
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Writes a proxy-made response (`Allow` for a 405); returns its status.
pub async fn respond(session: &mut ServerSession, status: u16, allow: Option<&'static str>) -> u16 {
    respond_edited(session, status, allow, None).await
}

/// `respond`, with a location's header rules applied.
pub async fn respond_edited(
    session: &mut ServerSession,
    status: u16,
    allow: Option<&'static str>,
    edits: Option<&Edits>,
) -> u16 {
    let text = body(status);
    let Ok(mut resp) = ResponseHeader::build(status, Some(4)) else {
        return status;
    };
    let _ = resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    let _ = resp.insert_header(header::CONTENT_LENGTH, text.len().to_string());
    let _ = resp.insert_header(header::CACHE_CONTROL, "no-store");
    if let Some(a) = allow {
        let _ = resp.insert_header(header::ALLOW, a);
    }
    Edits::apply_opt(edits, &mut resp);
    let head_only = session.req_header().method == Method::HEAD;
    if session.write_response_header(Box::new(resp)).await.is_ok() && !head_only {
        let _ = session
            .write_response_body(Bytes::from_static(text.as_bytes()), true)
            .await;
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_start_with_their_status() {
        for s in [400, 404, 405, 408, 411, 413, 414, 431, 500, 502, 504] {
            assert!(body(s).starts_with(&s.to_string()), "{s}");
        }
        assert_eq!(reason(431), "Request Header Fields Too Large");
    }
}
