//! The findings engine's tick: once a second, opens and closes findings and sends
//! each change to the sink as a `{"type":"finding"}` record.

use crate::clock::rfc3339_millis;
use crate::diagnostics::sink::record::{FindingRecord, Record};
use crate::runtime::Shared;
use crate::telemetry::findings::{Finding, World, TICK};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::SystemTime;

pub struct FindingsService {
    pub shared: Arc<Shared>,
}

/// One tick of the engine against the proxy's current state.
pub fn tick(shared: &Shared, now: SystemTime) -> Vec<Finding> {
    let release = shared.metrics.release.current();
    let reloads = crate::runtime::reload::recent(shared);
    let world = World {
        now,
        release: release.as_deref().map(String::as_str),
        release_changed_at: shared.metrics.release.changed_at(),
        reloads: &reloads,
        proxy_user: crate::response::file_access::running_as(),
        tuning: shared.detector.tuning(),
    };
    shared.findings.tick(&world)
}

#[async_trait]
impl BackgroundService for FindingsService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = interval.tick() => {
                    let now = SystemTime::now();
                    for f in tick(&self.shared, now) {
                        self.shared.sink.offer(Record::Finding(Box::new(FindingRecord {
                            finding: f,
                            ts: rfc3339_millis(now),
                        })));
                    }
                }
            }
        }
    }
}
