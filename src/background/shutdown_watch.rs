//! Shutdown and upgrade: sets `Shared::draining` once Pingora's shutdown watch fires, so that
//! responses close their connections from then on (`runtime::drain`).

use crate::runtime::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Sets `Shared::draining` when Pingora's shutdown watch fires.
pub struct DrainWatch {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for DrainWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        self.shared.draining.store(true, Ordering::Release);
        // Idle keepalive connections wake to linger (`runtime::drain::next_request`).
        self.shared.connections.wake_all();
        tracing::info!("draining: responses now carry Connection: close");
    }
}
