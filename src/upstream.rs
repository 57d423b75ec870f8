//! Django upstream: peer choice (round robin, skipping servers already tried), error kinds,
//! and the health-check ticker that always checks the pool of the config in use.

use crate::metrics::UpstreamErrorKind;
use crate::runtime::{Runtime, Shared};
use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::{Error, ErrorType};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Picks the next healthy server not in `tried` (a bit per index in `rt.upstream.servers`),
/// preferring servers that have not failed recently (nginx's `fail_timeout`).
pub fn pick_peer(rt: &Runtime, tried: u64) -> Option<(Box<HttpPeer>, usize)> {
    let idx = pick_index(rt, tried)?;
    Some((Box::new(rt.upstream.peers.get(idx)?.clone()), idx))
}

/// The index in `rt.upstream.servers` of the server `pick_peer` would choose.
pub fn pick_index(rt: &Runtime, tried: u64) -> Option<usize> {
    let up = &rt.upstream;
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
pub fn mark_failed(rt: &Runtime, peer: &HttpPeer) {
    let addr = pingora::upstreams::peer::Peer::address(peer)
        .as_inet()
        .copied();
    if let Some(i) = rt.upstream.servers.iter().position(|s| Some(*s) == addr) {
        rt.upstream.mark_failed(i);
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

/// Runs the configured health checks against whichever pool the current config has.
pub struct HealthChecker {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut last_generation = 0;
        let mut next_check = Instant::now();
        let mut next_sweep = Instant::now();
        loop {
            let rt = self.shared.runtime.load_full();
            if rt.generation != last_generation {
                // A new pool: check it now rather than after a whole interval.
                last_generation = rt.generation;
                next_check = Instant::now();
            }
            if Instant::now() >= next_check {
                rt.upstream.lb.backends().run_health_check(true).await;
                rt.upstream.refresh_health();
                next_check = Instant::now() + rt.upstream.health_interval;
            }
            if Instant::now() >= next_sweep {
                // Idle relay connections past their timeout, or that the server wrote to or
                // closed, are closed now rather than when next taken.
                rt.upstream.pool.sweep();
                next_sweep = Instant::now() + Duration::from_secs(1);
            }
            drop(rt);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}
