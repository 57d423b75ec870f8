//! What every service of the process shares, across config generations: the current
//! `Runtime`, the metrics, the detector, the findings engine, the sampler and the sink.

use super::Runtime;
use crate::config::Process;
use crate::config::{Config, ConfigError};
use crate::diagnostics::sampler::Sampler;
use crate::diagnostics::sink::{Sink, SinkWriter};
use crate::telemetry::detector::Detector;
use crate::telemetry::identity::HashKey;
use crate::telemetry::metrics::Metrics;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What every service of the process shares.
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Metrics,
    pub hash_key: HashKey,
    pub config_path: PathBuf,
    pub detector: Detector,
    pub sampler: Sampler,
    pub sink: Sink,
    /// The sink's background end, taken once when the services are built.
    pub sink_writer: std::sync::Mutex<Option<SinkWriter>>,
    /// The first HTTPS port actually bound, for redirects when the config says port 0.
    pub bound_https_port: std::sync::atomic::AtomicU16,
    /// The findings engine: the named causes of denials.
    pub findings: crate::telemetry::findings::Findings,
    /// The last config reloads (time, generation, keys changed), for findings.
    pub reloads:
        std::sync::Mutex<std::collections::VecDeque<crate::telemetry::findings::ReloadEvent>>,
    /// The settings this process started with, which a reload cannot change.
    pub started_with: Process,
    /// Set once shutdown or upgrade has begun (`drain`): responses then close their connection.
    pub draining: std::sync::atomic::AtomicBool,
    /// The open client connections: the cap, and how a drain wakes the idle ones.
    pub connections: super::connections::Connections,
    /// Set once SIGHUP reloads (`background::sighup`); the "listening" line waits for it.
    pub reload_ready: std::sync::atomic::AtomicBool,
    /// The memory budget of the responses held ahead of slow clients, all generations
    /// together (`upstream.buffer_memory`, changed in place by a reload).
    pub buffers: Arc<crate::response::buffers::Budget>,
    /// The file of the running generation as TOML, for the keys a reload changes.
    pub source: std::sync::Mutex<toml::Table>,
}

impl Shared {
    /// Starts the process's state with `config`, loaded from `path` (read again on SIGHUP),
    /// compiled as generation 1.
    pub fn start(
        path: &Path,
        config: &Config,
        hash_key: HashKey,
    ) -> Result<Arc<Shared>, ConfigError> {
        let metrics = Metrics::new(config.metrics.max_routes, config.metrics.max_permissions);
        let runtime = Runtime::build(config, 1, &metrics)
            .map_err(|problems| ConfigError::new(path, problems))?;
        let (sink, sink_writer) =
            crate::diagnostics::sink::build(&runtime.sink, &metrics, config.server.grace_period.0);
        let detector = Detector::new(runtime.tuning);
        let findings = crate::telemetry::findings::Findings::new(metrics.finding_active.clone());
        let sampler = Sampler::new(runtime.sampling, crate::clock::unix_now().1);
        let started_with = Process::of(config);
        for (key, _) in started_with.changed(&started_with) {
            metrics.set_restart_required(key, false);
        }
        runtime.install_label_caps(&metrics);
        metrics.generation.set(runtime.generation as i64);
        let buffers = crate::response::buffers::Budget::new(runtime.buffer_memory);
        Ok(Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
            connections: super::connections::Connections::new(&metrics),
            buffers,
            metrics,
            hash_key,
            config_path: path.to_path_buf(),
            detector,
            sampler,
            sink,
            sink_writer: std::sync::Mutex::new(Some(sink_writer)),
            bound_https_port: std::sync::atomic::AtomicU16::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
            findings,
            reloads: std::sync::Mutex::new(std::collections::VecDeque::new()),
            started_with,
            source: std::sync::Mutex::new(config.source.clone()),
            reload_ready: std::sync::atomic::AtomicBool::new(false),
        }))
    }
}
