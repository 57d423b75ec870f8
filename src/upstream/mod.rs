//! Django's side of an exchange. This file: the servers of `[upstream]` (`Upstream::compile`),
//! peer choice (round robin, skipping servers already tried) and error kinds. Beside it, in
//! the order of an exchange: the request head Django gets (`request_head`), one request sent
//! and its response head awaited (`send`, by the `retry` policy, over the `pool`), Django's
//! response head read once for every loop (`response_head`), and its body read by its framing
//! (`response_body`, `chunked`) until the connection goes back to the pool.

pub mod chunked;
pub mod conn;
pub mod pool;
pub mod request_head;
pub mod response_body;
pub mod response_head;
pub mod retry;
pub mod send;

use crate::config;
use crate::config::ServerAddr;
use crate::telemetry::vocabulary::UpstreamErrorKind;
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::Backend;
use pingora::lb::LoadBalancer;
use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Headers parsed per request or response by authz-edge's own codec, as in Pingora; a head
/// with more goes to Pingora (a request) or is a 502 (a response).
pub const MAX_HEADERS: usize = 256;

/// The index in `up.servers` of the next healthy server not in `tried` (a bit per index),
/// preferring servers that have not failed recently (nginx's `fail_timeout`). Requests pick
/// through `retry::Tries::next_server`.
fn pick_index(up: &Upstream, tried: u64) -> Option<usize> {
    let n = up.servers.len();
    let start = up.next_start();
    let untried = |i: usize| i >= 64 || tried & (1 << i) == 0;
    let candidate = |avoid_failed: bool| {
        (0..n)
            .map(|k| start.wrapping_add(k) % n)
            .find(|&i| up.is_ready(i) && untried(i) && !(avoid_failed && up.recently_failed(i)))
    };
    // Every candidate failed recently: try them anyway rather than fail outright. And when
    // the health check has marked every server down, still try one, as nginx does: a server
    // that came back answers at once instead of after the next check.
    candidate(true).or_else(|| candidate(false)).or_else(|| {
        let all_down = (0..n).all(|i| !up.is_ready(i));
        (0..n)
            .map(|k| start.wrapping_add(k) % n)
            .find(|&i| all_down && untried(i))
    })
}

/// Marks the server behind `peer` as recently failed.
pub fn mark_failed(up: &Upstream, peer: &HttpPeer) {
    let addr = pingora::upstreams::peer::Peer::address(peer);
    if let Some(i) = up.backends.iter().position(|b| b == addr) {
        up.mark_failed(i);
    }
}

/// Maps a Pingora error to the kind counted in `authz_edge_upstream_errors_total`.
pub fn error_kind(e: &Error) -> UpstreamErrorKind {
    match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::BindError
        | ErrorType::SocketError
        | ErrorType::ConnectProxyFailure
        | ErrorType::TLSHandshakeFailure => UpstreamErrorKind::Connect,
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => UpstreamErrorKind::Timeout,
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => {
            UpstreamErrorKind::Reset
        }
        _ => UpstreamErrorKind::Other,
    }
}

/// The status a client gets for an upstream failure of this kind.
pub fn error_status(kind: UpstreamErrorKind) -> u16 {
    match kind {
        UpstreamErrorKind::Timeout => 504,
        _ => 502,
    }
}

pub use crate::config::DEFAULT_POOL;

/// How often servers are probed by TCP connect when no HTTP health check is configured.
pub const TCP_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The Django upstream pool and how to talk to it.
pub struct Upstream {
    /// The pool's name: `default` for `[upstream]`, else its key in `[upstreams]`.
    pub name: String,
    pub lb: Arc<LoadBalancer<RoundRobin>>,
    pub servers: Vec<ServerAddr>,
    /// `servers` as Pingora's addresses, to find a server from its load balancer's verdicts.
    backends: Vec<pingora::protocols::l4::socket::SocketAddr>,
    /// Further servers tried when connecting fails.
    pub retries: usize,
    /// How often the pool's health check runs.
    pub health_interval: Duration,
    /// Passive failure marking: per server, when it may be tried again.
    pub fail_timeout: Duration,
    down_until: Vec<std::sync::atomic::AtomicU64>,
    epoch: std::time::Instant,
    /// Per server, whether the health check holds it ready; copied from the load balancer
    /// after every check so that picking a server reads one flag instead of a hash map.
    /// Ready until a check says otherwise, as in Pingora.
    ready: Vec<AtomicBool>,
    /// Round-robin position.
    next: AtomicUsize,
    /// Per server, the peer handed to Pingora (timeouts set once, cloned per request).
    pub peers: Vec<HttpPeer>,
    /// Connect, read and write timeouts, for the relay (Pingora's peers carry their own).
    pub timeouts: Timeouts,
    /// Idle connections for the HTTP/1 relay (Pingora keeps its own for its requests).
    pub pool: crate::upstream::pool::Pool,
}

impl Upstream {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Marks server `idx` as failed for `fail_timeout`.
    pub fn mark_failed(&self, idx: usize) {
        if let Some(d) = self.down_until.get(idx) {
            let until = self.now_ms() + self.fail_timeout.as_millis() as u64;
            d.store(until, Ordering::Relaxed);
        }
    }

    /// Whether server `idx` failed recently.
    pub fn recently_failed(&self, idx: usize) -> bool {
        self.down_until
            .get(idx)
            .is_some_and(|d| d.load(Ordering::Relaxed) > self.now_ms())
    }

    /// Whether at least one server is currently healthy.
    pub fn any_healthy(&self) -> bool {
        self.ready.iter().any(|r| r.load(Ordering::Relaxed))
    }

    /// Whether the health check holds server `idx` ready.
    pub fn is_ready(&self, idx: usize) -> bool {
        self.ready
            .get(idx)
            .is_some_and(|r| r.load(Ordering::Relaxed))
    }

    /// Copies the load balancer's health verdicts into the per-server flags, and says in one
    /// line when a server leaves or rejoins the pool.
    pub fn refresh_health(&self) {
        let backends = self.lb.backends();
        let pool = &self.name;
        for b in backends.get_backend().iter() {
            if let Some(i) = self.backends.iter().position(|s| *s == b.addr) {
                let ready = backends.ready(b);
                let was = self.ready[i].swap(ready, Ordering::Relaxed);
                let server = &self.servers[i];
                match (was, ready) {
                    (true, false) => tracing::warn!(
                        "upstream {server} (pool {pool}) failed its health check twice: out of the pool until it passes"
                    ),
                    (false, true) => {
                        tracing::info!("upstream {server} (pool {pool}) passed its health check: back in the pool")
                    }
                    _ => {}
                }
            }
        }
    }

    /// The next round-robin starting position.
    pub fn next_start(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// The upstream's I/O timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
}

impl Upstream {
    /// Builds the pool `name` (`default` is `[upstream]`, others `[upstreams.NAME]`, whose
    /// keys problems name): the load balancer with its health check, the peers with their
    /// timeouts, and the relay's idle connections.
    pub fn compile(name: &str, u: &config::Upstream) -> Result<Upstream, config::Problem> {
        let section = if name == DEFAULT_POOL {
            "upstream".to_string()
        } else {
            format!("upstreams.{name}")
        };
        let problem = |key: &str, message: String| config::Problem {
            key: format!("{section}.{key}"),
            message,
        };
        let servers = u.servers.clone();
        let mut backends = Vec::with_capacity(servers.len());
        for s in &servers {
            backends.push(match s {
                ServerAddr::Tcp(a) => pingora::protocols::l4::socket::SocketAddr::Inet(*a),
                ServerAddr::Unix(p) => {
                    let unix = std::os::unix::net::SocketAddr::from_pathname(p)
                        .map_err(|e| problem("servers", format!("`{s}`: {e}")))?;
                    pingora::protocols::l4::socket::SocketAddr::Unix(Box::new(unix))
                }
            });
        }
        let mut peers = Vec::with_capacity(servers.len());
        for s in &servers {
            let mut peer = match s {
                ServerAddr::Tcp(a) => HttpPeer::new(*a, false, String::new()),
                ServerAddr::Unix(p) => {
                    HttpPeer::new_uds(&p.to_string_lossy(), false, String::new())
                        .map_err(|e| problem("servers", format!("`{s}`: {e}")))?
                }
            };
            peer.options.connection_timeout = Some(u.connect_timeout.0);
            peer.options.read_timeout = Some(u.read_timeout.0);
            peer.options.write_timeout = Some(u.write_timeout.0);
            peer.options.idle_timeout = Some(u.idle_timeout.0);
            peers.push(peer);
        }
        let set: BTreeSet<Backend> = backends
            .iter()
            .map(|addr| Backend {
                addr: addr.clone(),
                weight: 1,
                ext: Default::default(),
            })
            .collect();
        let discovery = pingora::lb::discovery::Static::new(set);
        let mut lb =
            LoadBalancer::<RoundRobin>::from_backends(pingora::lb::Backends::new(discovery));
        futures_util::FutureExt::now_or_never(lb.update())
            .ok_or_else(|| problem("servers", "the server list could not be loaded".into()))?
            .map_err(|e| problem("servers", e.to_string()))?;
        let health_interval;
        if let Some(hc) = &u.health_check {
            let mut check = HttpHealthCheck::new(&hc.host, false);
            check.req = pingora::http::RequestHeader::build("GET", hc.path.as_bytes(), None)
                .map_err(|e| problem("health_check.path", e.to_string()))?;
            check
                .req
                .insert_header("Host", hc.host.as_str())
                .map_err(|e| problem("health_check.host", e.to_string()))?;
            check.peer_template.options.connection_timeout = Some(hc.timeout.0);
            check.peer_template.options.read_timeout = Some(hc.timeout.0);
            check.consecutive_failure = 2;
            check.consecutive_success = 1;
            lb.set_health_check(Box::new(check));
            lb.parallel_health_check = true;
            health_interval = hc.interval.0;
        } else {
            // No HTTP check configured: a TCP connect check, so that /readyz and the pool
            // still know whether Django is listening at all.
            let mut check = TcpHealthCheck::new();
            check.peer_template.options.connection_timeout = Some(u.connect_timeout.0);
            check.consecutive_failure = 2;
            check.consecutive_success = 1;
            lb.set_health_check(check);
            lb.parallel_health_check = true;
            health_interval = TCP_CHECK_INTERVAL;
        }
        let upstream = Upstream {
            name: name.to_string(),
            backends,
            lb: Arc::new(lb),
            retries: u
                .retries
                .unwrap_or(servers.len().saturating_sub(1))
                .min(servers.len().saturating_sub(1)),
            health_interval,
            fail_timeout: u.fail_timeout.0,
            down_until: (0..u.servers.len())
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
            epoch: std::time::Instant::now(),
            ready: servers.iter().map(|_| AtomicBool::new(true)).collect(),
            next: AtomicUsize::new(0),
            peers,
            timeouts: Timeouts {
                connect: u.connect_timeout.0,
                read: u.read_timeout.0,
                write: u.write_timeout.0,
            },
            pool: crate::upstream::pool::Pool::new(
                servers.len(),
                u.keepalive_pool,
                u.idle_timeout.0,
            ),
            // Last: the fields above read it.
            servers,
        };
        upstream.refresh_health();
        Ok(upstream)
    }
}
