//! A background service that panics ends the process (exit 70) with one line saying which,
//! instead of leaving it half alive: the proxy answering, `/healthz` 200, and no spike ticks,
//! findings, health checks, reloads or sink. A supervisor then restarts it whole.
//!
//! `AUTHZ_EDGE_FAULT=panic:NAME` makes the service named NAME panic as it starts: the fault
//! the tests inject to see the process end.

use async_trait::async_trait;
use futures_util::FutureExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService, GenBackgroundService};
use std::panic::AssertUnwindSafe;

/// The exit code of a process whose background service panicked (`EX_SOFTWARE`).
pub const EXIT_CODE: i32 = 70;

/// `service` as the Pingora background service `name`, ending the process if it panics.
pub fn supervised<S: BackgroundService + Send + Sync + 'static>(
    name: &'static str,
    service: S,
) -> GenBackgroundService<ExitOnPanic<S>> {
    background_service(name, ExitOnPanic { name, service })
}

/// `service` under its `name`, ending the process if it panics.
pub struct ExitOnPanic<S> {
    pub name: &'static str,
    pub service: S,
}

#[async_trait]
impl<S: BackgroundService + Send + Sync> BackgroundService for ExitOnPanic<S> {
    async fn start(&self, shutdown: ShutdownWatch) {
        let injected = std::env::var("AUTHZ_EDGE_FAULT")
            .is_ok_and(|f| f.strip_prefix("panic:") == Some(self.name));
        let run = async {
            if injected {
                panic!("AUTHZ_EDGE_FAULT=panic:{}", self.name);
            }
            self.service.start(shutdown).await;
        };
        if AssertUnwindSafe(run).catch_unwind().await.is_err() {
            tracing::error!(
                "the {} service panicked: authz-edge stops (exit {EXIT_CODE}) rather than run without it",
                self.name
            );
            std::process::exit(EXIT_CODE);
        }
    }
}
