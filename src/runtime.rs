//! The compiled form of the config that requests read through `ArcSwap`, and the shared state.
//!
//! A `Runtime` is built whole from a validated `Config`; a reload swaps in a new one only once
//! it is complete, so a request always sees one consistent generation.

use crate::config::{self, Config};
use crate::detector::Detector;
use crate::identity::HashKey;
use crate::metrics::{Metrics, RouteStats};
use crate::routes::{Pattern, RouteMatcher};
use crate::sampler::Sampler;
use crate::sink::{Sink, SinkWriter};
use crate::spike::Tuning;
use arc_swap::ArcSwap;
use http::HeaderName;
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use pingora::prelude::HttpPeer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often servers are probed by TCP connect when no HTTP health check is configured.
pub const TCP_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The Django upstream pool and how to talk to it.
pub struct Upstream {
    pub lb: Arc<LoadBalancer<RoundRobin>>,
    pub servers: Vec<SocketAddr>,
    /// Further servers tried when connecting fails.
    pub retries: usize,
    /// How often the pool's health check runs.
    pub health_interval: Duration,
    /// Passive failure marking: per server, when it may be tried again.
    pub fail_timeout: Duration,
    down_until: Vec<std::sync::atomic::AtomicU64>,
    epoch: std::time::Instant,
    /// Per server, whether the health check holds it ready; copied from the load balancer
    /// after every check so that picking a server reads one flag instead of a hash map.
    /// Ready until a check says otherwise, as in Pingora.
    ready: Vec<AtomicBool>,
    /// Round-robin position.
    next: AtomicUsize,
    /// Per server, the peer handed to Pingora (timeouts set once, cloned per request).
    pub peers: Vec<HttpPeer>,
    /// Idle connections for the HTTP/1 relay (Pingora keeps its own for its requests).
    pub pool: crate::pool::Pool,
}

impl Upstream {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Marks server `idx` as failed for `fail_timeout`.
    pub fn mark_failed(&self, idx: usize) {
        if let Some(d) = self.down_until.get(idx) {
            let until = self.now_ms() + self.fail_timeout.as_millis() as u64;
            d.store(until, Ordering::Relaxed);
        }
    }

    /// Whether server `idx` failed recently.
    pub fn recently_failed(&self, idx: usize) -> bool {
        self.down_until
            .get(idx)
            .is_some_and(|d| d.load(Ordering::Relaxed) > self.now_ms())
    }

    /// Whether at least one server is currently healthy.
    pub fn any_healthy(&self) -> bool {
        self.ready.iter().any(|r| r.load(Ordering::Relaxed))
    }

    /// Whether the health check holds server `idx` ready.
    pub fn is_ready(&self, idx: usize) -> bool {
        self.ready
            .get(idx)
            .is_some_and(|r| r.load(Ordering::Relaxed))
    }

    /// Copies the load balancer's health verdicts into the per-server flags.
    pub fn refresh_health(&self) {
        let backends = self.lb.backends();
        for b in backends.get_backend().iter() {
            let addr = b.addr.as_inet().copied();
            if let Some(i) = self.servers.iter().position(|s| Some(*s) == addr) {
                self.ready[i].store(backends.ready(b), Ordering::Relaxed);
            }
        }
    }

    /// The next round-robin starting position.
    pub fn next_start(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// A `[[static]]` mount.
pub struct StaticMount {
    pub prefix: String,
    pub root: PathBuf,
    pub gzip: bool,
    pub cache_control: Option<String>,
}

/// The context header names, parsed once.
pub struct ContextHeaders {
    pub user: HeaderName,
    pub kind: HeaderName,
    pub permission: HeaderName,
    pub route: HeaderName,
    pub reason: HeaderName,
    pub release: HeaderName,
    /// Every configured name, for stripping.
    pub all: [HeaderName; 6],
    pub session_cookie: String,
}

impl ContextHeaders {
    /// Parses the `[context]` section's header names.
    pub fn from_config(c: &config::Context) -> Result<Self, String> {
        let names = [
            header_name(&c.user_header)?,
            header_name(&c.kind_header)?,
            header_name(&c.permission_header)?,
            header_name(&c.route_header)?,
            header_name(&c.reason_header)?,
            header_name(&c.release_header)?,
        ];
        let [user, kind, permission, route, reason, release] = names.clone();
        Ok(ContextHeaders {
            user,
            kind,
            permission,
            route,
            reason,
            release,
            all: names,
            session_cookie: c.session_cookie.clone(),
        })
    }
}

impl Default for ContextHeaders {
    /// The contract's names: `X-Authz-User`, ..., `X-App-Release`, cookie `sessionid`.
    fn default() -> Self {
        ContextHeaders::from_config(&config::Context::default())
            .expect("the default header names are valid")
    }
}

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

/// Everything a request needs from the config, compiled.
pub struct Runtime {
    pub generation: u64,
    pub config: Config,
    pub limits: config::Limits,
    pub trusted: Vec<ipnet::IpNet>,
    pub upstream: Upstream,
    pub statics: Vec<StaticMount>,
    pub context: ContextHeaders,
    pub routes: CompiledRoutes,
    pub telemetry: bool,
    /// The HTTPS port plain-HTTP requests are redirected to, when `tls.redirect_http` is on.
    pub https_redirect_port: Option<u16>,
    pub access_log: bool,
    /// The admin listener's bearer token, if any (`admin::authorized`).
    pub admin_token: Option<String>,
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
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("server.admin_token_file: cannot read {path}: {e}"))?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(format!(
            "server.admin_token_file: the token in {path} is shorter than 16 characters"
        ));
    }
    Ok(Some(token.to_string()))
}

fn header_name(s: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(s.as_bytes()).map_err(|e| format!("bad header name `{s}`: {e}"))
}

impl Runtime {
    /// Compiles a validated config; fails only on what validation cannot see ahead.
    pub fn build(config: Config, generation: u64, metrics: &Metrics) -> Result<Self, String> {
        let servers: Vec<SocketAddr> = config
            .upstream
            .servers
            .iter()
            .map(|s| s.parse().map_err(|_| format!("bad upstream server `{s}`")))
            .collect::<Result<_, _>>()?;
        let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(servers.iter().copied())
            .map_err(|e| format!("upstream.servers: {e}"))?;
        let health_interval;
        if let Some(hc) = &config.upstream.health_check {
            let mut check = HttpHealthCheck::new(&hc.host, false);
            check.req = pingora::http::RequestHeader::build("GET", hc.path.as_bytes(), None)
                .map_err(|e| format!("upstream.health_check.path: {e}"))?;
            check
                .req
                .insert_header("Host", hc.host.as_str())
                .map_err(|e| format!("upstream.health_check.host: {e}"))?;
            check.peer_template.options.connection_timeout = Some(hc.timeout.0);
            check.peer_template.options.read_timeout = Some(hc.timeout.0);
            check.consecutive_failure = 2;
            check.consecutive_success = 1;
            lb.set_health_check(Box::new(check));
            lb.parallel_health_check = true;
            health_interval = hc.interval.0;
        } else {
            // No HTTP check configured: a TCP connect check, so that /readyz and the pool
            // still know whether Django is listening at all.
            let mut check = TcpHealthCheck::new();
            check.peer_template.options.connection_timeout =
                Some(config.upstream.connect_timeout.0);
            check.consecutive_failure = 2;
            check.consecutive_success = 1;
            lb.set_health_check(check);
            lb.parallel_health_check = true;
            health_interval = TCP_CHECK_INTERVAL;
        }
        let upstream = Upstream {
            lb: Arc::new(lb),
            retries: config
                .upstream
                .retries
                .unwrap_or(servers.len().saturating_sub(1))
                .min(servers.len().saturating_sub(1)),
            health_interval,
            fail_timeout: config.upstream.fail_timeout.0,
            down_until: (0..config.upstream.servers.len())
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
            epoch: std::time::Instant::now(),
            ready: servers.iter().map(|_| AtomicBool::new(true)).collect(),
            next: AtomicUsize::new(0),
            peers: servers
                .iter()
                .map(|addr| {
                    let mut peer = HttpPeer::new(*addr, false, String::new());
                    peer.options.connection_timeout = Some(config.upstream.connect_timeout.0);
                    peer.options.read_timeout = Some(config.upstream.read_timeout.0);
                    peer.options.write_timeout = Some(config.upstream.write_timeout.0);
                    peer.options.idle_timeout = Some(config.upstream.idle_timeout.0);
                    peer
                })
                .collect(),
            pool: crate::pool::Pool::new(
                servers.len(),
                config.upstream.keepalive_pool,
                config.upstream.idle_timeout.0,
            ),
            // Last: the fields above read it.
            servers,
        };
        upstream.refresh_health();

        let context = ContextHeaders::from_config(&config.context)?;

        let patterns = config
            .routes
            .iter()
            .map(|r| Pattern::parse(&r.pattern))
            .collect::<Result<Vec<_>, _>>()?;
        metrics.routes.set_max(config.metrics.max_routes);
        metrics.permissions.set_max(config.metrics.max_permissions);
        let stats = patterns
            .iter()
            .map(|p| metrics.routes.get(&p.text))
            .collect();
        let routes = CompiledRoutes {
            matcher: RouteMatcher::new(patterns),
            stats,
        };

        let statics = config
            .statics
            .iter()
            .map(|s| StaticMount {
                prefix: s.prefix.clone(),
                root: PathBuf::from(&s.root),
                gzip: s.gzip,
                cache_control: s.cache_control.clone(),
            })
            .collect();

        let https_redirect_port = config
            .tls
            .as_ref()
            .filter(|t| t.redirect_http)
            .and_then(|t| t.listen.first())
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map(|a| a.port());

        Ok(Runtime {
            generation,
            limits: config.limits.clone(),
            trusted: config
                .forwarding
                .trusted_proxies
                .iter()
                .filter_map(|s| config::parse_cidr(s))
                .collect(),
            upstream,
            statics,
            context,
            routes,
            telemetry: config.telemetry.enabled,
            https_redirect_port,
            access_log: config.access_log.enabled,
            admin_token: admin_token(&config)?,
            config,
        })
    }

    /// Whether `ip` is a trusted proxy whose X-Forwarded-* headers are kept.
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

/// Keys fixed for the life of the process, with their values: the listeners, the threads and
/// the rest of Pingora's server settings, the TLS certificate, and the sink's queue size. A
/// reload that changes one applies everything else and names these (`reload`).
pub fn restart_keys(c: &Config) -> Vec<(&'static str, String)> {
    let tls = c.tls.as_ref();
    vec![
        ("server.listen", format!("{:?}", c.server.listen)),
        ("server.admin", c.server.admin.clone()),
        ("server.threads", c.server.threads.to_string()),
        (
            "server.grace_period",
            format!("{:?}", c.server.grace_period.0),
        ),
        ("server.upgrade_sock", c.server.upgrade_sock.clone()),
        ("server.pid_file", c.server.pid_file.clone()),
        ("server.work_stealing", c.server.work_stealing.to_string()),
        ("server.error_log", format!("{:?}", c.server.error_log)),
        ("tls.listen", format!("{:?}", tls.map(|t| &t.listen))),
        ("tls.cert", format!("{:?}", tls.map(|t| &t.cert))),
        ("tls.key", format!("{:?}", tls.map(|t| &t.key))),
        ("sink.queue", c.sink.queue.to_string()),
    ]
}

/// The sampler's limits from `[sampling]` and `[metrics]`.
pub fn sampling_limits(c: &Config) -> crate::sampler::Limits {
    crate::sampler::Limits {
        per_route_per_minute: c.sampling.per_route_per_minute,
        spike_boost: c.sampling.spike_boost.max(1),
        global_per_second: c.sampling.global_per_second,
        max_routes: c.metrics.max_routes + 1,
        ..crate::sampler::Limits::default()
    }
}

/// The detector's tuning from `[spike]`.
pub fn tuning(c: &Config) -> Tuning {
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
    pub findings: crate::findings::Findings,
    /// The last config reloads (time, generation, keys changed), for findings.
    pub reloads: std::sync::Mutex<std::collections::VecDeque<crate::findings::ReloadEvent>>,
    /// The values of `restart_keys` this process started with.
    pub started_with: Vec<(&'static str, String)>,
    /// Set once shutdown or upgrade has begun (`drain`): responses then close their connection.
    pub draining: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Compiles `config`, loaded from `path` (read again on SIGHUP), as generation 1.
    pub fn start(path: &Path, config: Config, hash_key: HashKey) -> Result<Arc<Shared>, String> {
        let metrics = Metrics::new(config.metrics.max_routes, config.metrics.max_permissions);
        let (sink, sink_writer) =
            crate::sink::build(&config.sink, &metrics, config.server.grace_period.0);
        let detector = Detector::new(tuning(&config));
        let findings = crate::findings::Findings::new(metrics.finding_active.clone());
        let sampler = Sampler::new(sampling_limits(&config), crate::telemetry::unix_now().1);
        let started_with = restart_keys(&config);
        for (key, _) in &started_with {
            metrics.set_restart_required(key, false);
        }
        let runtime = Runtime::build(config, 1, &metrics)?;
        metrics.generation.set(1);
        Ok(Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
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
        }))
    }
}
