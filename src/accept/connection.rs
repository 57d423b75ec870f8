//! The connection loop in front of Pingora's HTTP/1 parser: header deadline and raw limits.
//!
//! Pingora only has a per-read timeout, so a client trickling one header byte at a time
//! (slowloris) would hold a connection forever. Here the whole head must arrive within
//! `limits.header_timeout`, and it is checked against the limits before Pingora parses it.
//! A plain HTTP/1 request then goes to `relay`; anything else is handed to Pingora with the bytes
//! read as a pipelined prefix.

use crate::guard::head::{check_raw_head, HeadState};
use crate::phases::EdgeProxy;
use crate::relay::{self, Next};
use crate::response::error_page;
use crate::rules::forwarding::Client;
use crate::runtime::connections::{Admission, Slot};
use crate::runtime::Shared;
use crate::telemetry::vocabulary::ConnProtocol;
use crate::telemetry::vocabulary::RejectReason;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpServerApp, ServerApp};
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
    /// The HTTPS listeners, whose connections begin with the TLS handshake (`accept::tls`).
    pub tls: Option<super::tls::Listeners>,
}

enum Head {
    Ready(BytesMut),
    Closed,
    Reject(RejectReason),
}

/// Waits for the first bytes of a request (idling): `false` when the connection is to close.
///
/// A keepalive connection waits through `drain::next_request`, which lingers at shutdown so
/// that a request already on its way is served; a new connection still gets its answer. Either
/// closes when it is shed at the connection cap.
async fn wait_for_request(
    stream: &mut Stream,
    shared: &Shared,
    idle: Duration,
    keepalive: bool,
    buf: &mut BytesMut,
    slot: &Slot,
) -> bool {
    use crate::runtime::drain;
    if keepalive {
        drain::next_request(stream, buf, idle, shared, slot)
            .await
            .is_some()
    } else {
        tokio::select! {
            r = timeout(idle, drain::read_idle(stream, buf)) => matches!(r, Ok(Ok(n)) if n > 0),
            // A drain's wake-up is not for a new connection: it still gets its answer.
            () = slot.shed() => false,
        }
    }
}

/// Reads the rest of a request head within `limits.header_timeout` of its first bytes,
/// checking the limits as bytes arrive.
async fn read_head(stream: &mut Stream, shared: &Shared, mut buf: BytesMut) -> Head {
    let limits = shared.runtime.load().limits.clone();
    let deadline = Instant::now() + limits.header_timeout.0;
    // Past the largest head the limits allow, the head is too large.
    let ceiling = limits.max_head_bytes();
    loop {
        match check_raw_head(&buf, &limits) {
            HeadState::Complete => return Head::Ready(buf),
            HeadState::Reject(r) => return Head::Reject(r),
            HeadState::Partial if buf.len() > ceiling => {
                return Head::Reject(RejectReason::HeaderTooLarge)
            }
            HeadState::Partial => {}
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(4096);
        }
        match timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return Head::Reject(RejectReason::HeaderTimeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Closed,
            Ok(Ok(_)) => {}
        }
    }
}

/// What one request leaves its connection with.
enum After {
    /// Ready for the next request, with the bytes already read past this one.
    Next(Stream, BytesMut),
    Close,
}

/// The connection's fixed facts, for each request on it.
struct Conn<'a> {
    client: Client,
    header_timeout: Duration,
    keepalive: Duration,
    max_requests: u32,
    shutdown: &'a ShutdownWatch,
}

/// The address of the listener the connection came in on (sites may be bound to listeners).
fn local_addr(stream: &Stream) -> Option<std::net::SocketAddr> {
    let digest = stream.get_socket_digest()?;
    digest.local_addr().and_then(|a| a.as_inet()).copied()
}

/// Answers a refused head and closes: the request never reaches Django.
async fn refuse(stream: &mut Stream, reason: RejectReason) {
    error_page::write_h1(stream, reason.status(), false).await;
}

impl EdgeApp {
    /// Serves one request whose first bytes are in `buf`: its head read and checked, then the
    /// relay or Pingora's loop.
    async fn serve(
        &self,
        mut stream: Stream,
        buf: BytesMut,
        served: u32,
        conn: &Conn<'_>,
        admitted: &Admission<'_>,
    ) -> After {
        let head = match read_head(&mut stream, &self.shared, buf).await {
            Head::Ready(h) => h,
            Head::Closed => return After::Close,
            Head::Reject(reason) => {
                self.shared.metrics.count_rejected(reason);
                self.shared
                    .metrics
                    .routes
                    .other()
                    .count_request(reason.status());
                refuse(&mut stream, reason).await;
                return After::Close;
            }
        };
        // N requests in all: after this one, N - served more; none once the connection is old.
        let reuses_left = match admitted.retired() {
            false => conn.max_requests.saturating_sub(served),
            true => 0,
        };
        let rt = self.shared.runtime.load_full();
        if let Some(plan) = relay::plan(&head, &rt, &conn.client, || local_addr(&stream)) {
            let may_keepalive = reuses_left > 0;
            let next = relay::serve(
                &self.shared,
                rt,
                &mut stream,
                head,
                plan,
                &conn.client,
                may_keepalive,
            )
            .await;
            return match next {
                // Nothing pipelined: the request's buffer goes while the connection idles.
                Next::KeepAlive(rest) if rest.is_empty() => After::Next(stream, BytesMut::new()),
                Next::KeepAlive(rest) => After::Next(stream, rest),
                Next::Close => {
                    let _ = stream.shutdown().await;
                    After::Close
                }
            };
        }
        drop(rt);
        let mut session = ServerSession::new_http1(stream);
        if crate::runtime::drain::draining(&self.shared) {
            session.set_keepalive(None);
        } else {
            session.set_keepalive(Some(conn.keepalive.as_secs().max(1)));
        }
        session.set_keepalive_reuses_remaining(Some(reuses_left));
        session.set_pipelined_prefix(head);
        match self.proxy.process_new_http(session, conn.shutdown).await {
            Some(reused) => After::Next(reused.consume().0, BytesMut::new()),
            None => After::Close,
        }
    }
}

#[async_trait]
impl ServerApp for EdgeApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let tls = self.tls.as_ref().and_then(|t| t.tls_for(&stream));
        let first = match tls {
            Some(_) => ConnProtocol::TlsHandshake,
            None => ConnProtocol::Http1,
        };
        let admitted = {
            let rt = self.shared.runtime.load();
            let (max, age) = (rt.max_connections, rt.max_connection_age);
            self.shared.connections.admit(max, age, first)
        };
        // At the cap with no idle connection to close instead, this one is closed.
        let mut admitted = admitted?;
        let mut stream = match tls {
            Some(acceptor) => {
                let within = self.shared.runtime.load().limits.header_timeout.0;
                // Boxed: rustls's handshake state is several KiB, which the connection's task
                // would otherwise keep for its whole life, idle or not.
                let stream = Box::pin(super::tls::handshake(acceptor, stream, within)).await?;
                let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
                admitted.set_protocol(match h2 {
                    true => ConnProtocol::H2,
                    false => ConnProtocol::Http1Tls,
                });
                stream
            }
            None => stream,
        };
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // HTTP/2: Pingora's h2 server, our stream loop; limits are checked on the parsed
            // request.
            // Boxed, as a request is below: an HTTP/1 connection's future does not carry it.
            Box::pin(super::h2::serve(&self.shared, stream, shutdown, &admitted)).await;
            return None;
        }
        let conn = {
            let rt = self.shared.runtime.load();
            Conn {
                client: Client {
                    ip: stream
                        .get_socket_digest()
                        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip())),
                    tls: stream.get_ssl_digest().is_some(),
                },
                header_timeout: rt.limits.header_timeout.0,
                keepalive: rt.keepalive_timeout,
                max_requests: rt.limits.max_requests_per_connection,
                shutdown,
            }
        };
        // Bytes read past the last request (pipelined), then the next request's first bytes.
        let mut buf = BytesMut::new();
        // Requests served on this connection so far, by either path.
        let mut served: u32 = 0;
        loop {
            // Waiting for a request is the only state an idle connection is in, and all this
            // task holds then: the request's own work is one boxed future, gone once it ends.
            // (`tests` keeps the whole under 640 bytes, one of mimalloc's size classes.)
            if buf.is_empty() {
                let (idle, keepalive) = match served {
                    0 => (conn.header_timeout, false),
                    _ => (conn.keepalive, true),
                };
                admitted.idle();
                let slot = &admitted.slot;
                if !wait_for_request(&mut stream, &self.shared, idle, keepalive, &mut buf, slot)
                    .await
                {
                    return None;
                }
                admitted.busy();
            }
            served += 1;
            let request = std::mem::take(&mut buf);
            match Box::pin(self.serve(stream, request, served, &conn, &admitted)).await {
                After::Next(s, rest) => {
                    stream = s;
                    buf = rest;
                }
                After::Close => return None,
            }
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::identity::HashKey;

    /// An idle connection costs little more than its task's future, which holds only the wait
    /// for the next request (a request's work is boxed apart). A future inlined into it again
    /// (a TLS handshake is several KiB) would make every idle connection pay for it.
    #[tokio::test]
    async fn an_idle_connection_holds_a_small_future() {
        let dir = std::env::temp_dir().join(format!("authz-edge-size-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("c.toml");
        let text = "[upstream]\nservers = [\"127.0.0.1:9\"]\n[sink]\ntype = \"none\"\n";
        std::fs::write(&path, text).expect("write");
        let config = crate::config::load(&path).expect("config");
        let shared = Shared::start(&path, &config, HashKey::from_env()).expect("shared");
        let conf = Arc::new(pingora::server::configuration::ServerConf::default());
        let proxy = pingora::proxy::http_proxy(
            &conf,
            EdgeProxy {
                shared: shared.clone(),
            },
        );
        let app = Arc::new(EdgeApp {
            proxy: Arc::new(proxy),
            shared,
            tls: None,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let _client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(server));
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let admitted = app
            .shared
            .connections
            .admit(10, Duration::from_secs(60), ConnProtocol::Http1)
            .expect("admitted");
        let conn = Conn {
            client: Client {
                ip: None,
                tls: false,
            },
            header_timeout: Duration::from_secs(1),
            keepalive: Duration::from_secs(1),
            max_requests: 1,
            shutdown: &shutdown,
        };
        let (_peer, other) = (
            tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
                .await
                .expect("connect"),
            listener.accept().await.expect("accept").0,
        );
        let other: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(other));
        // A request's future is moved into its box for every request, so its size is copied
        // each time: a header array or a compressor held in it costs every request (2,208
        // bytes before response buffering; 12,288 with the parse arrays inside it).
        let request = app.serve(other, BytesMut::new(), 1, &conn, &admitted);
        let request_size = std::mem::size_of_val(&request);
        assert!(
            request_size <= 3072,
            "a request's future is {request_size} bytes"
        );
        drop(request);
        drop(admitted);
        let connection = app.process_new(stream, &shutdown);
        let size = std::mem::size_of_val(&*connection);
        assert!(size <= 640, "the connection's future is {size} bytes");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
