//! The connection loop in front of Pingora's HTTP/1 parser: header deadline and raw limits.
//!
//! Pingora only has a per-read timeout, so a client trickling one header byte at a time
//! (slowloris) would hold a connection forever. Here the whole head must arrive within
//! `limits.header_timeout`, and it is checked against the limits before Pingora parses it.
//! The bytes read are then handed to Pingora as a pipelined prefix, so nothing is parsed twice.

use crate::error_page;
use crate::limits::{check_raw_head, HeadState};
use crate::metrics::RejectReason;
use crate::proxy::EdgeProxy;
use crate::runtime::Shared;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, timeout_at, Instant};

/// The listening app: HTTP/2 goes straight to Pingora, HTTP/1 through the head guard.
pub struct EdgeApp {
    pub proxy: Arc<HttpProxy<EdgeProxy>>,
    pub shared: Arc<Shared>,
}

enum Head {
    Ready(BytesMut),
    Closed,
    Reject(RejectReason),
}

/// Reads one request head within the deadline, checking limits as bytes arrive.
async fn read_head(
    stream: &mut Stream,
    shared: &Shared,
    idle: Duration,
    shutdown: Option<&ShutdownWatch>,
) -> Head {
    let limits = shared.runtime.load().limits.clone();
    let mut buf = BytesMut::with_capacity(4096);
    // Waiting for the first byte is idling; the head deadline starts with it. An idle
    // keepalive connection is closed at shutdown; a new connection still gets its answer.
    let first = match shutdown {
        Some(watch) => {
            let mut watch = watch.clone();
            if *watch.borrow() {
                return Head::Closed;
            }
            tokio::select! {
                r = timeout(idle, stream.read_buf(&mut buf)) => r,
                _ = watch.changed() => return Head::Closed,
            }
        }
        None => timeout(idle, stream.read_buf(&mut buf)).await,
    };
    match first {
        Ok(Ok(n)) if n > 0 => {}
        _ => return Head::Closed,
    }
    let deadline = Instant::now() + limits.header_timeout.0;
    // Enough room for the largest head the limits allow; past it the head is too large.
    let ceiling = limits.max_header_bytes + limits.max_uri_bytes + 1024;
    loop {
        match check_raw_head(&buf, &limits) {
            HeadState::Complete => return Head::Ready(buf),
            HeadState::Reject(r) => return Head::Reject(r),
            HeadState::Partial if buf.len() > ceiling => {
                return Head::Reject(RejectReason::HeaderTooLarge)
            }
            HeadState::Partial => {}
        }
        match timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return Head::Reject(RejectReason::HeaderTimeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Closed,
            Ok(Ok(_)) => {}
        }
    }
}

/// Answers a refused head and closes: the request never reaches Django.
async fn refuse(stream: &mut Stream, reason: RejectReason) {
    let status = reason.status();
    let body = error_page::body(status);
    let resp = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
        error_page::reason(status),
        body.len()
    );
    let _ = timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(resp.as_bytes()).await;
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[async_trait]
impl ServerApp for EdgeApp {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // HTTP/2: Pingora's h2 server; limits are checked on the parsed request.
            return self.proxy.process_new(stream, shutdown).await;
        }
        let (header_timeout, keepalive, max_requests) = {
            let rt = self.shared.runtime.load();
            (
                rt.limits.header_timeout.0,
                rt.config.server.keepalive_timeout.0,
                rt.limits.max_requests_per_connection,
            )
        };
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut first = true;
        loop {
            let idle = if first { header_timeout } else { keepalive };
            let watch = (!first).then_some(shutdown);
            let head = match read_head(&mut stream, &self.shared, idle, watch).await {
                Head::Ready(h) => h,
                Head::Closed => return None,
                Head::Reject(reason) => {
                    self.shared.metrics.count_rejected(reason);
                    self.shared
                        .metrics
                        .routes
                        .other()
                        .count_request(reason.status());
                    refuse(&mut stream, reason).await;
                    return None;
                }
            };
            let mut session = ServerSession::new_http1(stream);
            if *shutdown.borrow() {
                session.set_keepalive(None);
            } else {
                session.set_keepalive(Some(keepalive.as_secs().max(1)));
            }
            match settings.take() {
                Some(s) => s.apply_to_session(&mut session),
                // N requests in all: the first plus N-1 reuses.
                None => session.set_keepalive_reuses_remaining(Some(max_requests - 1)),
            }
            session.set_pipelined_prefix(head);
            first = false;
            let reused = self.proxy.process_new_http(session, shutdown).await?;
            let (s, p) = reused.consume();
            stream = s;
            settings = p;
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}
