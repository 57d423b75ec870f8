//! The upstream health checks, run against whichever pool the config in use has, and the sweep
//! of the relay's idle upstream connections.

use crate::runtime::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Runs the configured health checks against whichever pool the current config has.
pub struct HealthChecker {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut last_generation = 0;
        // Per pool (`Runtime::pools`), when its next check is due.
        let mut next_check: Vec<Instant> = Vec::new();
        let mut next_sweep = Instant::now();
        loop {
            let rt = self.shared.runtime.load_full();
            if rt.generation != last_generation {
                // A new pool: check it now rather than after a whole interval.
                last_generation = rt.generation;
                next_check = rt.pools().map(|_| Instant::now()).collect();
            }
            for (up, due) in rt.pools().zip(next_check.iter_mut()) {
                if Instant::now() >= *due {
                    up.lb.backends().run_health_check(true).await;
                    up.refresh_health();
                    *due = Instant::now() + up.health_interval;
                }
            }
            if Instant::now() >= next_sweep {
                // Idle relay connections past their timeout, or that the server wrote to or
                // closed, are closed now rather than when next taken.
                for up in rt.pools() {
                    up.pool.sweep();
                }
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
