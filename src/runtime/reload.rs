//! SIGHUP: load -> validate -> compile -> swap; a bad config is refused and the old one stays.

use crate::config;
use crate::runtime::Shared;
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
    let event = crate::telemetry::findings::ReloadEvent {
        at: crate::clock::unix_now().1,
        generation,
        changed: changed.to_vec(),
    };
    let mut r = crate::sync::lock(&shared.reloads);
    if r.len() >= RELOADS_KEPT {
        r.pop_front();
    }
    r.push_back(event);
}

/// The last config reloads, oldest first (for findings and the console).
pub fn recent(shared: &Shared) -> Vec<crate::telemetry::findings::ReloadEvent> {
    crate::sync::lock(&shared.reloads).iter().cloned().collect()
}

/// Reloads the config file once; the running config is untouched on any error.
pub fn reload(shared: &Shared) -> Outcome {
    let current = shared.runtime.load_full();
    match crate::runtime::compile(&shared.config_path, current.generation + 1, &shared.metrics) {
        Ok((config, new)) => {
            // Against what the process started with, not the last file loaded.
            let mut needs_upgrade = Vec::new();
            let next = config::Process::of(&config);
            for (key, changed) in shared.started_with.changed(&next) {
                shared.metrics.set_restart_required(key, changed);
                if changed {
                    needs_upgrade.push(key.to_string());
                }
            }
            // The parts that live outside the runtime follow it.
            shared.sink.reconfigure(&new.sink);
            shared.sampler.set_limits(new.sampling);
            // The findings engine reads the detector's tuning at each tick.
            shared.detector.set_tuning(new.tuning);
            if let Err(e) =
                crate::diagnostics::access_log::set_target(new.access_log_path.as_deref())
            {
                tracing::warn!("{e}; the access log keeps its previous target");
            }
            let generation = new.generation;
            let changed = {
                let mut source = crate::sync::lock(&shared.source);
                let changed = config::changed_keys(&source, &config.source);
                *source = config.source;
                changed
            };
            remember(shared, generation, &changed);
            new.install_label_caps(&shared.metrics);
            shared.buffers.set_limit(new.buffer_memory);
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
            let e = e.to_string();
            for line in e.lines() {
                tracing::error!("config reload refused, the running config stays: {line}");
            }
            Outcome::Refused(e)
        }
    }
}
