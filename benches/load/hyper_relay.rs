//! The relay's codec weighed against hyper's: the same proxy job (forwarded headers set,
//! context headers dropped both ways, keepalive to one upstream) on hyper 1's
//! `server::conn::http1` toward the client and `client::conn::http1` toward Django. Variant H
//! of the load comparison, and an extra front end of the differential suite
//! (`AUTHZ_EDGE_DIFF_HYPER=target/release/examples/hyper_relay`), so that strictness and speed
//! of both codecs are measured side by side. No telemetry, limits or error pages: compare it
//! with variant D (authz-edge, telemetry off).
//!
//!   cargo build --release --example hyper_relay
//!   target/release/examples/hyper_relay LISTEN UPSTREAM [THREADS]

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

type Body = BoxBody<Bytes, hyper::Error>;

/// Idle upstream senders, newest first.
struct Pool {
    upstream: SocketAddr,
    idle: Mutex<Vec<SendRequest<Incoming>>>,
}

impl Pool {
    async fn take(&self) -> Option<SendRequest<Incoming>> {
        loop {
            let popped = self.idle.lock().ok()?.pop();
            match popped {
                Some(s) if s.is_ready() => return Some(s),
                Some(_) => continue,
                None => break,
            }
        }
        let stream = TcpStream::connect(self.upstream).await.ok()?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        Some(sender)
    }

    fn put(&self, s: SendRequest<Incoming>) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < 128 {
                idle.push(s);
            }
        }
    }
}

fn is_context(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("x-authz-") || n.starts_with("x_authz_") || n == "x-app-release"
}

fn error(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(b"bad gateway\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

async fn handle(req: Request<Incoming>, pool: Arc<Pool>, peer: IpAddr) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let origin = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    if let Ok(uri) = origin.parse::<Uri>() {
        parts.uri = uri;
    }
    let drop: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|k| is_context(k) || k.as_str().contains('_'))
        .cloned()
        .collect();
    for k in drop {
        parts.headers.remove(&k);
    }
    for hop in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        parts.headers.remove(hop);
    }
    let ip = HeaderValue::from_str(&peer.to_string()).unwrap_or(HeaderValue::from_static(""));
    parts.headers.insert("x-forwarded-for", ip.clone());
    parts.headers.insert("x-real-ip", ip);
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    parts
        .headers
        .insert("x-request-id", HeaderValue::from_static("hyper-relay"));
    let Some(mut sender) = pool.take().await else {
        return error(StatusCode::BAD_GATEWAY);
    };
    let resp = sender.send_request(Request::from_parts(parts, body)).await;
    pool.put(sender);
    match resp {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            let drop: Vec<HeaderName> = parts
                .headers
                .keys()
                .filter(|k| is_context(k))
                .cloned()
                .collect();
            for k in drop {
                parts.headers.remove(&k);
            }
            parts.headers.remove("connection");
            parts.headers.remove("keep-alive");
            Response::from_parts(parts, body.boxed())
        }
        Err(_) => error(StatusCode::BAD_GATEWAY),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: hyper_relay LISTEN UPSTREAM [THREADS]");
        std::process::exit(2);
    };
    let threads: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let upstream: SocketAddr = upstream.parse().expect("upstream address");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).await.expect("bind");
        let pool = Arc::new(Pool {
            upstream,
            idle: Mutex::new(Vec::new()),
        });
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let pool = pool.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let pool = pool.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(req, pool, peer.ip()).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
