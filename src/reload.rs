//! SIGHUP: load -> validate -> compile -> swap; a bad config is refused and the old one stays.

use crate::config;
use crate::runtime::{Runtime, Shared};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;

/// The outcome of one reload attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Swapped in; the strings name listener changes that need `--upgrade`.
    Applied {
        generation: u64,
        needs_upgrade: Vec<String>,
    },
    Refused(String),
}

/// Reloads remembered for the findings engine.
const RELOADS_KEPT: usize = 16;

/// Remembers a reload (when, generation, keys changed) for findings to correlate with.
fn remember(shared: &Shared, generation: u64, changed: &[String]) {
    let event = crate::findings::ReloadEvent {
        at: crate::telemetry::unix_now().1,
        generation,
        changed: changed.to_vec(),
    };
    let mut r = match shared.reloads.lock() {
        Ok(r) => r,
        Err(p) => p.into_inner(),
    };
    if r.len() >= RELOADS_KEPT {
        r.pop_front();
    }
    r.push_back(event);
}

/// The last config reloads, oldest first (for findings and the console).
pub fn recent(shared: &Shared) -> Vec<crate::findings::ReloadEvent> {
    match shared.reloads.lock() {
        Ok(r) => r.iter().cloned().collect(),
        Err(p) => p.into_inner().iter().cloned().collect(),
    }
}

/// Reloads the config file once; the running config is untouched on any error.
pub fn reload(shared: &Shared) -> Outcome {
    let current = shared.runtime.load_full();
    let outcome = config::load(&shared.config_path)
        .map_err(|e| e.to_string())
        .and_then(|c| Runtime::build(c, current.generation + 1, &shared.metrics));
    match outcome {
        Ok(new) => {
            // Against what the process started with, not the last file loaded.
            let mut needs_upgrade = Vec::new();
            for ((key, value), (_, started)) in crate::runtime::restart_keys(&new.config)
                .iter()
                .zip(&shared.started_with)
            {
                shared.metrics.set_restart_required(key, value != started);
                if value != started {
                    needs_upgrade.push(key.to_string());
                }
            }
            // The parts that live outside the runtime follow it.
            shared.sink.reconfigure(&new.config.sink);
            shared
                .sampler
                .set_limits(crate::runtime::sampling_limits(&new.config));
            // The findings engine reads the detector's tuning at each tick.
            shared
                .detector
                .set_tuning(crate::runtime::tuning(&new.config));
            if let Err(e) = crate::access_log::set_target(new.config.access_log.path.as_deref()) {
                tracing::warn!("{e}; the access log keeps its previous target");
            }
            let generation = new.generation;
            let changed = config::changed_keys(&current.config.source, &new.config.source);
            remember(shared, generation, &changed);
            shared.runtime.store(Arc::new(new));
            shared.metrics.generation.set(generation as i64);
            shared.metrics.count_reload(true);
            tracing::info!(generation, changed = %changed.join(", "), "config reloaded");
            if !needs_upgrade.is_empty() {
                tracing::warn!(
                    keys = %needs_upgrade.join(", "),
                    "these changes take effect only after a restart or `--upgrade`; the rest is live"
                );
            }
            Outcome::Applied {
                generation,
                needs_upgrade,
            }
        }
        Err(e) => {
            shared.metrics.count_reload(false);
            for line in e.lines() {
                tracing::error!("config reload refused, the running config stays: {line}");
            }
            Outcome::Refused(e)
        }
    }
}

/// Waits for SIGHUP and reloads.
pub struct Reloader {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
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
