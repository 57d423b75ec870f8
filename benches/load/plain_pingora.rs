//! Plain Pingora: the passthrough that the load comparison measures as variant P.
//!
//! Pingora's defaults throughout (its `ServerConf`, the system allocator, the default downstream
//! modules), no header rewriting and no telemetry: what any Pingora proxy starts from. It shows
//! how much of authz-edge's cost per request is Pingora's own.
//!
//!   cargo build --release --example plain_pingora
//!   target/release/examples/plain_pingora LISTEN UPSTREAM THREADS

use async_trait::async_trait;
use pingora::prelude::{HttpPeer, Session};
use pingora::proxy::{http_proxy_service, ProxyHttp};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use std::net::SocketAddr;

struct Passthrough {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream), Some(threads)) = (
        args.get(1),
        args.get(2).and_then(|a| a.parse().ok()),
        args.get(3).and_then(|a| a.parse().ok()),
    ) else {
        eprintln!("usage: plain_pingora LISTEN UPSTREAM THREADS");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, Passthrough { upstream });
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever();
}
