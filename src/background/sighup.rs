//! SIGHUP: each one reloads the config (`runtime::reload`).

use crate::runtime::reload::reload;
use crate::runtime::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Waits for SIGHUP and reloads.
pub struct Reloader {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let hup = signal(SignalKind::hangup());
        // From here a SIGHUP is a reload; before, `main` ignores it. The "listening" line waits
        // for this, so that a reload sent once it is printed is never lost.
        self.shared.reload_ready.store(true, Ordering::Release);
        let mut hup = match hup {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP, reload is off: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    reload(&self.shared);
                }
            }
        }
    }
}
