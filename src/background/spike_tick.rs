//! The spike detector's tick, at `spike.tick`: spikes that began are logged, told to the
//! findings engine and sent to the sink.

use crate::diagnostics::sink::Record;
use crate::runtime::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::SystemTime;

/// Ticks the detector and sends spike records to the sink.
pub struct DetectorService {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for DetectorService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let every = |secs: f64| {
            let mut i = tokio::time::interval(std::time::Duration::from_secs_f64(secs));
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        };
        let mut tick_secs = self.shared.detector.tuning().tick_secs;
        let mut interval = every(tick_secs);
        interval.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = interval.tick() => {
                    // A reload may have changed spike.tick.
                    let now_secs = self.shared.detector.tuning().tick_secs;
                    if now_secs != tick_secs {
                        tick_secs = now_secs;
                        interval = every(tick_secs);
                        interval.tick().await;
                    }
                    let records = self.shared.detector.tick(&self.shared.metrics, SystemTime::now());
                    for s in records {
                        {
                            tracing::warn!(route = %s.route, status = s.status, rate = s.rate, baseline = s.baseline, release = ?s.release, "denial spike");
                            self.shared.findings.spike_started(
                                self.shared.metrics.routes.get(&s.route),
                                s.status,
                                SystemTime::now(),
                                (s.rate, s.baseline),
                                (
                                    s.top_kinds.first().map(|k| k.kind.to_string()),
                                    s.top_permissions.first().map(|p| p.permission.clone()),
                                ),
                            );
                        }
                        self.shared.sink.offer(Record::Spike(Box::new(s)));
                    }
                }
            }
        }
    }
}
