//! The compiled form of the config: what requests read through `ArcSwap`.
//!
//! `compile` reads the file once, checks it (`config`), and turns every section into the typed
//! values their users need (`Runtime`); `check` runs the same compile. A generation's values
//! are swapped whole by a reload (`reload`); what is fixed for the process (listeners, threads)
//! is named by `config::Process`. The state that outlives generations is in `shared`.

pub mod connections;
pub mod drain;
pub mod reload;
mod shared;

pub use shared::Shared;

use crate::config::{self, Config, ConfigError, Problem};
use crate::diagnostics::sampler;
use crate::rules::context::ContextHeaders;
use crate::rules::forwarding::TrustedProxies;
use crate::rules::routes::{Pattern, RouteMatcher};
use crate::telemetry::metrics::{Metrics, RouteStats};
use crate::telemetry::spike::Tuning;
use crate::upstream::Upstream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Configured `[[routes]]` with their metric handles resolved once per table.
pub struct CompiledRoutes {
    pub matcher: RouteMatcher,
    pub stats: Vec<Arc<RouteStats>>,
}

impl CompiledRoutes {
    /// The stats of the configured route matching `path`, if any.
    #[inline]
    pub fn find(&self, path: &str) -> Option<&Arc<RouteStats>> {
        self.matcher.find(path).and_then(|i| self.stats.get(i))
    }
}

/// One generation of the config, compiled: everything a request or a service reads from it.
pub struct Runtime {
    pub generation: u64,
    pub limits: config::Limits,
    pub trusted: TrustedProxies,
    /// `[upstream]`: the pool named `default`, index 0 of `pool`.
    pub upstream: Upstream,
    /// `[upstreams.NAME]`, in name order: pools 1, 2, … of `pool`.
    pub upstreams: Vec<Upstream>,
    /// `[[sites]]`, `[[locations]]` and `[[static]]`, compiled.
    pub sites: crate::rules::sites::Sites,
    pub context: ContextHeaders,
    pub routes: CompiledRoutes,
    pub telemetry: bool,
    /// `server.fast_path`: plain HTTP/1 goes through the relay.
    pub fast_path: bool,
    pub keepalive_timeout: Duration,
    /// `server.max_connection_age`.
    pub max_connection_age: Duration,
    /// `server.max_connections`.
    pub max_connections: usize,
    /// How long an idle keepalive connection waits for a request once draining
    /// (`drain::next_request`): half the grace period (the rest is for that request to
    /// finish), at most the keepalive timeout.
    pub linger: Duration,
    /// The HTTPS port plain-HTTP requests are redirected to, when `tls.redirect_http` is on.
    pub https_redirect_port: Option<u16>,
    pub access_log: bool,
    /// `access_log.path`: where the access log goes (standard output when none).
    pub access_log_path: Option<String>,
    /// `sampling.body_bytes`: how much of a denial's body a sample keeps.
    pub sample_body_bytes: usize,
    /// The sampler's limits, from `[sampling]` and `[metrics]`.
    pub sampling: sampler::Limits,
    /// The spike detector's tuning, from `[spike]`.
    pub tuning: Tuning,
    /// `[sink]`, which the sink follows on reload.
    pub sink: config::Sink,
    /// The admin listener's bearer token, if any (`admin::authorized`).
    pub admin_token: Option<String>,
    /// `server.admin_token_metrics`: whether `/metrics` needs the token too.
    pub admin_token_metrics: bool,
    /// `[compression]`, compiled.
    pub compression: crate::response::compression::Settings,
    /// `upstream.buffering`: Django read ahead of slow clients.
    pub buffering: bool,
    /// `upstream.max_buffered_bytes`: per response, the most held ahead of the client.
    pub max_buffered_bytes: u64,
    /// `upstream.buffer_memory`: the process's memory budget for them (`Shared::buffers`).
    pub buffer_memory: u64,
    /// Where response buffers past memory go: `limits.body_temp_dir`, else the system's.
    pub temp_dir: PathBuf,
    /// `metrics.max_routes` and `metrics.max_permissions`, set on the registries when this
    /// generation is installed (`install_label_caps`), not when it is built.
    pub label_caps: (usize, usize),
}

/// Reads `path` and checks it: every problem of the file with its key path, or the config.
pub fn check(path: &Path) -> Result<Config, ConfigError> {
    config::load(path)
}

/// Reads, checks and compiles `path` as `generation`: what `authz-edge check` and a reload run.
pub fn compile(
    path: &Path,
    generation: u64,
    metrics: &Metrics,
) -> Result<(Config, Runtime), ConfigError> {
    let config = check(path)?;
    let runtime = Runtime::build(&config, generation, metrics)
        .map_err(|problems| ConfigError::new(path, problems))?;
    Ok((config, runtime))
}

/// The admin token: `$AUTHZ_EDGE_ADMIN_TOKEN`, else the trimmed contents of
/// `server.admin_token_file`, else none.
fn admin_token(config: &Config) -> Result<Option<String>, String> {
    if let Some(t) = std::env::var("AUTHZ_EDGE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(Some(t.trim().to_string()));
    }
    let Some(path) = &config.server.admin_token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(format!("the token in {path} is shorter than 16 characters"));
    }
    Ok(Some(token.to_string()))
}

impl Runtime {
    /// Upstream pool `i`: 0 is `[upstream]`, then `[upstreams]` in name order.
    pub fn pool(&self, i: usize) -> &Upstream {
        i.checked_sub(1)
            .and_then(|j| self.upstreams.get(j))
            .unwrap_or(&self.upstream)
    }

    /// Every pool, `[upstream]` first.
    pub fn pools(&self) -> impl Iterator<Item = &Upstream> {
        std::iter::once(&self.upstream).chain(&self.upstreams)
    }

    /// The label bounds of this generation, set on the registries when it is installed.
    pub fn install_label_caps(&self, metrics: &Metrics) {
        metrics.routes.set_max(self.label_caps.0);
        metrics.permissions.set_max(self.label_caps.1);
    }

    /// Compiles a validated config; fails only on what validation cannot see ahead, each
    /// problem with its key. Changes nothing the running generation uses: its configured
    /// routes are registered within its own `max_routes`, and its bounds are installed with
    /// it (`install_label_caps`).
    pub fn build(
        config: &Config,
        generation: u64,
        metrics: &Metrics,
    ) -> Result<Self, Vec<Problem>> {
        let patterns: Vec<Pattern> = config.routes.iter().map(|r| r.pattern.clone()).collect();
        let upstream = Upstream::compile(crate::upstream::DEFAULT_POOL, &config.upstream)
            .map_err(|p| vec![p])?;
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for (name, u) in &config.upstreams {
            upstreams.push(Upstream::compile(name, u).map_err(|p| vec![p])?);
            metrics.register_pool(name);
        }
        let mut names = vec![crate::upstream::DEFAULT_POOL];
        names.extend(config.upstreams.keys().map(String::as_str));
        let sites = crate::rules::sites::compile(config, &names)?;
        let admin_token = admin_token(config).map_err(|message| {
            let key = "server.admin_token_file".to_string();
            vec![Problem { key, message }]
        })?;
        let stats = patterns
            .iter()
            .map(|p| {
                metrics
                    .routes
                    .get_within(&p.text, config.metrics.max_routes)
            })
            .collect();
        let routes = CompiledRoutes {
            matcher: RouteMatcher::new(patterns),
            stats,
        };

        let https_redirect_port = config
            .tls
            .as_ref()
            .filter(|t| t.redirect_http)
            .and_then(|t| t.listen.first())
            .map(|a| a.port());
        let server = &config.server;
        Ok(Runtime {
            generation,
            limits: config.limits.clone(),
            trusted: TrustedProxies(config.forwarding.trusted_proxies.clone()),
            upstream,
            upstreams,
            sites,
            context: ContextHeaders::from_config(&config.context),
            routes,
            telemetry: config.telemetry.enabled,
            fast_path: server.fast_path,
            keepalive_timeout: server.keepalive_timeout.0,
            max_connection_age: server.max_connection_age.0,
            max_connections: server.max_connections,
            linger: (server.grace_period.0 / 2).min(server.keepalive_timeout.0),
            https_redirect_port,
            access_log: config.access_log.enabled,
            access_log_path: config.access_log.path.clone(),
            sample_body_bytes: config.sampling.body_bytes,
            sampling: sampling_limits(config),
            tuning: tuning(config),
            sink: config.sink.clone(),
            admin_token,
            admin_token_metrics: server.admin_token_metrics,
            label_caps: (config.metrics.max_routes, config.metrics.max_permissions),
            compression: crate::response::compression::Settings::from_config(&config.compression),
            buffering: config.upstream.buffering,
            max_buffered_bytes: config.upstream.max_buffered_bytes,
            buffer_memory: config.upstream.buffer_memory,
            temp_dir: crate::guard::body::temp_dir(&config.limits),
        })
    }
}

/// The sampler's limits from `[sampling]` and `[metrics]`.
fn sampling_limits(c: &Config) -> sampler::Limits {
    sampler::Limits {
        per_route_per_minute: c.sampling.per_route_per_minute,
        spike_boost: c.sampling.spike_boost.max(1),
        global_per_second: c.sampling.global_per_second,
        max_routes: c.metrics.max_routes + 1,
        ..sampler::Limits::default()
    }
}

/// The detector's tuning from `[spike]`.
fn tuning(c: &Config) -> Tuning {
    let tick = c.spike.tick.0.as_secs_f64();
    Tuning {
        window: ((c.spike.window.0.as_secs_f64() / tick).round() as usize).max(1),
        tick_secs: tick,
        baseline_secs: c.spike.baseline.0.as_secs_f64(),
        min_count: c.spike.min_count,
        cooldown: ((c.spike.cooldown.0.as_secs_f64() / tick).round() as u32).max(1),
        ..Tuning::default()
    }
}
