//! The config file: its schema (TOML, unknown keys refused), with addresses, networks, header
//! names and durations parsed into typed values as the file is read (`values`), every problem
//! reported with its key path (`load`, `problem`), the checks types cannot make (`validate`,
//! section by section), the settings fixed for the life of the process (`process`), and the
//! keys two files differ in (`diff`). `runtime` compiles the rest, which a reload swaps.
//!
//! Longer than 400 lines because it is the whole schema: one struct per section, with its
//! defaults.

mod diff;
mod load;
mod problem;
mod process;
pub mod site_keys;
mod validate;
mod values;

pub use diff::changed_keys;
pub use load::{load, parse, read};
pub use problem::{ConfigError, Problem};
pub use process::Process;
pub use validate::validate;
pub use values::{parse_cidr, parse_duration, parse_url, Dur, ServerAddr};

/// The name of `[upstream]`'s pool among `[upstreams]`.
pub const DEFAULT_POOL: &str = "default";

use crate::path_pattern::Pattern;
use serde::Deserialize;
use std::net::SocketAddr;
use values::{header_name, networks, path_pattern, server_addrs, socket_addr, socket_addrs};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: Server,
    pub tls: Option<Tls>,
    pub upstream: Upstream,
    /// Pools beside `[upstream]` (which is `default`), for locations' `proxy`.
    #[serde(default)]
    pub upstreams: std::collections::BTreeMap<String, Upstream>,
    /// Server blocks chosen by `Host`.
    #[serde(default)]
    pub sites: Vec<site_keys::Site>,
    /// The locations of the site for any host (with `[[static]]`); without any, every
    /// request goes to `[upstream]`.
    #[serde(default)]
    pub locations: Vec<site_keys::Location>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub forwarding: Forwarding,
    #[serde(default, rename = "static")]
    pub statics: Vec<Static>,
    #[serde(default)]
    pub context: Context,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub telemetry: Telemetry,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default)]
    pub spike: Spike,
    #[serde(default)]
    pub sampling: Sampling,
    #[serde(default)]
    pub sink: Sink,
    #[serde(default)]
    pub access_log: AccessLog,
    #[serde(default)]
    pub compression: Compression,
    /// The file as TOML, to tell which keys a reload changed (`changed_keys`).
    #[serde(skip)]
    pub source: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Plain-HTTP listeners.
    #[serde(deserialize_with = "socket_addrs")]
    pub listen: Vec<SocketAddr>,
    /// Admin listener: /metrics /healthz /readyz /debug/authz.
    #[serde(deserialize_with = "socket_addr")]
    pub admin: SocketAddr,
    pub threads: usize,
    pub grace_period: Dur,
    /// Unix socket through which `--upgrade` takes the listeners over.
    pub upgrade_sock: String,
    pub pid_file: String,
    /// Idle time allowed between requests on a client keepalive connection (HTTP/2 too).
    pub keepalive_timeout: Dur,
    /// How long a client connection may serve requests (nginx's `keepalive_time`): past it,
    /// an HTTP/1 connection closes after its current response and an HTTP/2 one gets GOAWAY
    /// and finishes its streams.
    pub max_connection_age: Dur,
    /// Client connections open at once, process-wide (nginx's `worker_connections`): at the
    /// cap, the longest-idle connection is closed to make room; with none idle, the new one is
    /// closed.
    pub max_connections: usize,
    /// Tokio work stealing between worker threads (Pingora's `work_stealing`).
    pub work_stealing: bool,
    /// With `--daemon`: where standard error (the log) goes.
    pub error_log: Option<String>,
    /// Plain HTTP/1 requests go through authz-edge's own relay (`relay`); false sends every
    /// request through Pingora's proxy.
    pub fast_path: bool,
    /// A file holding the admin listener's bearer token (`$AUTHZ_EDGE_ADMIN_TOKEN` wins).
    /// With a token, the console, `/debug/*` (and `/metrics`, see below) require it.
    pub admin_token_file: Option<String>,
    /// Whether `/metrics` requires the admin token too (when there is one).
    pub admin_token_metrics: bool,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            admin: SocketAddr::from(([127, 0, 0, 1], 9090)),
            threads: 2,
            grace_period: Dur::secs(10),
            upgrade_sock: "/tmp/authz-edge-upgrade.sock".into(),
            pid_file: "/tmp/authz-edge.pid".into(),
            keepalive_timeout: Dur::secs(75),
            max_connection_age: Dur::secs(3600),
            max_connections: 10_000,
            work_stealing: true,
            error_log: None,
            fast_path: true,
            admin_token_file: None,
            admin_token_metrics: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    #[serde(deserialize_with = "socket_addrs")]
    pub listen: Vec<SocketAddr>,
    pub cert: String,
    pub key: String,
    /// Answer plain-HTTP requests with a 308 redirect to HTTPS.
    #[serde(default)]
    pub redirect_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// `IP:PORT` or `unix:/path/to.sock`.
    #[serde(deserialize_with = "server_addrs")]
    pub servers: Vec<ServerAddr>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    #[serde(default = "default_io_timeout")]
    pub read_timeout: Dur,
    #[serde(default = "default_io_timeout")]
    pub write_timeout: Dur,
    /// How long an idle pooled upstream connection is kept.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Dur,
    /// Idle keepalive connections kept per process.
    #[serde(default = "default_pool_size")]
    pub keepalive_pool: usize,
    /// Tries on other servers when connecting fails (before anything was sent).
    pub retries: Option<usize>,
    /// After a failed connect, the server is skipped for this long (nginx: fail_timeout);
    /// "0s" turns this off. When every server is marked, all are tried anyway.
    #[serde(default = "default_fail_timeout")]
    pub fail_timeout: Dur,
    pub health_check: Option<HealthCheck>,
    /// Django's response is read as fast as Django sends it, whatever the client takes, so
    /// that a slow client does not hold a worker (nginx's `proxy_buffering on`).
    #[serde(default = "default_true")]
    pub buffering: bool,
    /// Per response, the most bytes held ahead of the client; past it Django's response is
    /// read only as the client takes it (nginx's `proxy_max_temp_file_size`).
    #[serde(default = "default_max_buffered")]
    pub max_buffered_bytes: u64,
    /// Process-wide, the most response bytes held in memory; the rest goes to unnamed temp
    /// files in `limits.body_temp_dir`.
    #[serde(default = "default_buffer_memory")]
    pub buffer_memory: u64,
}

fn default_max_buffered() -> u64 {
    1 << 30
}
fn default_buffer_memory() -> u64 {
    16 << 20
}

fn default_connect_timeout() -> Dur {
    Dur::secs(2)
}
fn default_io_timeout() -> Dur {
    Dur::secs(60)
}
fn default_idle_timeout() -> Dur {
    Dur::secs(60)
}
fn default_fail_timeout() -> Dur {
    Dur::secs(10)
}
fn default_pool_size() -> usize {
    128
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub path: String,
    #[serde(default = "default_hc_interval")]
    pub interval: Dur,
    #[serde(default = "default_hc_timeout")]
    pub timeout: Dur,
    /// `Host` sent with the check; Django's ALLOWED_HOSTS must accept it.
    #[serde(default = "default_hc_host")]
    pub host: String,
}

fn default_hc_interval() -> Dur {
    Dur::secs(5)
}
fn default_hc_timeout() -> Dur {
    Dur::secs(1)
}
fn default_hc_host() -> String {
    "localhost".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
    pub max_body_bytes: u64,
    pub header_timeout: Dur,
    /// Requests served on one client keepalive connection before it is closed.
    pub max_requests_per_connection: u32,
    /// A request body read before it goes to Django is held in memory up to this size, then
    /// written to a file in `body_temp_dir` (nginx's `client_body_buffer_size`).
    pub body_buffer_bytes: usize,
    /// Where bodies past `body_buffer_bytes` are written (nginx's `client_body_temp_path`);
    /// the system's temporary directory when unset. The files have no name and go with the
    /// request.
    pub body_temp_dir: Option<String>,
}

impl Limits {
    /// The largest request head (request line and headers) the limits allow, with room for
    /// line ends and the request line's method and version.
    pub fn max_head_bytes(&self) -> usize {
        self.max_header_bytes + self.max_uri_bytes + 1024
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 32768,
            max_headers: 100,
            max_uri_bytes: 8192,
            max_body_bytes: 10 * 1024 * 1024,
            header_timeout: Dur::secs(10),
            max_requests_per_connection: 1000,
            body_buffer_bytes: 64 * 1024,
            body_temp_dir: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Forwarding {
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Static {
    pub prefix: String,
    pub root: String,
    #[serde(default = "default_true")]
    pub gzip: bool,
    /// `Cache-Control` value for served files, e.g. "public, max-age=3600".
    pub cache_control: Option<String>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Context {
    #[serde(deserialize_with = "header_name")]
    pub user_header: http::HeaderName,
    #[serde(deserialize_with = "header_name")]
    pub kind_header: http::HeaderName,
    #[serde(deserialize_with = "header_name")]
    pub permission_header: http::HeaderName,
    #[serde(deserialize_with = "header_name")]
    pub route_header: http::HeaderName,
    #[serde(deserialize_with = "header_name")]
    pub reason_header: http::HeaderName,
    #[serde(deserialize_with = "header_name")]
    pub release_header: http::HeaderName,
    pub session_cookie: String,
    /// Paths of the login page: a 302 whose `Location` has one of them is a denial (Django's
    /// `login_required`), also without the companion, which marks the ones it knows anyway.
    pub login_paths: Vec<String>,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            user_header: http::HeaderName::from_static("x-authz-user"),
            kind_header: http::HeaderName::from_static("x-authz-kind"),
            permission_header: http::HeaderName::from_static("x-authz-permission"),
            route_header: http::HeaderName::from_static("x-authz-route"),
            reason_header: http::HeaderName::from_static("x-authz-reason"),
            release_header: http::HeaderName::from_static("x-app-release"),
            session_cookie: "sessionid".into(),
            login_paths: vec!["/accounts/login/".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(deserialize_with = "path_pattern")]
    pub pattern: Pattern,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    pub enabled: bool,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry { enabled: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    pub max_routes: usize,
    pub max_permissions: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            max_routes: 200,
            max_permissions: 200,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spike {
    pub tick: Dur,
    pub window: Dur,
    /// Time constant of the adaptive baseline.
    pub baseline: Dur,
    /// Fewest denials in a window that can make a spike.
    pub min_count: u64,
    /// Calm time before a spike clears.
    pub cooldown: Dur,
}

impl Default for Spike {
    fn default() -> Self {
        Spike {
            tick: Dur::secs(1),
            window: Dur::secs(10),
            baseline: Dur::secs(300),
            min_count: 10,
            cooldown: Dur::secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sampling {
    pub per_route_per_minute: u32,
    pub body_bytes: usize,
    /// Multiplier of the per-route rate while the route spikes.
    pub spike_boost: u32,
    /// Sample records per second across all routes.
    pub global_per_second: u32,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            per_route_per_minute: 30,
            body_bytes: 1024,
            spike_boost: 4,
            global_per_second: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkType {
    File,
    Http,
    Stdout,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sink {
    #[serde(rename = "type")]
    pub kind: SinkType,
    pub path: String,
    pub url: Option<String>,
    pub queue: usize,
    /// file: rotate past this size.
    pub max_bytes: u64,
    /// file: rotated files kept.
    pub keep: usize,
    /// file: flush and fsync this often.
    pub flush_interval: Dur,
    /// http: records per POST at most.
    pub batch_max: usize,
    /// http: how long a batch may wait to fill.
    pub batch_age: Dur,
    /// http: time allowed for one POST.
    pub timeout: Dur,
    /// http: further tries of a failed POST (with backoff) before the batch is dropped.
    pub retries: u32,
}

impl Default for Sink {
    fn default() -> Self {
        Sink {
            kind: SinkType::File,
            path: "authz-edge-diagnostics.jsonl".into(),
            url: None,
            queue: 8192,
            max_bytes: 100 * 1024 * 1024,
            keep: 5,
            flush_interval: Dur::secs(1),
            batch_max: 500,
            batch_age: Dur::secs(1),
            timeout: Dur::secs(2),
            retries: 3,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLog {
    /// One JSON line per request through `tracing` (target `access`).
    pub enabled: bool,
    /// Write to this file instead of standard output.
    pub path: Option<String>,
}

/// `[compression]`: Django's responses compressed on the way out (nginx's `gzip on` and the
/// types Django projects list).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compression {
    pub enabled: bool,
    /// Media types compressed (without parameters).
    pub types: Vec<String>,
    /// Bodies shorter than this (by their `Content-Length`) go out as they are.
    pub min_length: u64,
    /// 1 (fastest) to 9: gzip's level; brotli's quality and zstd's level follow it.
    pub level: u32,
    /// The codings offered, the server's preference first among those a client weighs
    /// equally: `zstd`, `br`, `gzip`.
    pub algorithms: Vec<String>,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            enabled: true,
            types: [
                "text/html",
                "text/css",
                "text/plain",
                "application/json",
                "application/javascript",
                "application/xml",
                "image/svg+xml",
            ]
            .map(String::from)
            .to_vec(),
            min_length: 1024,
            level: 1,
            algorithms: ["zstd", "br", "gzip"].map(String::from).to_vec(),
        }
    }
}

#[cfg(test)]
mod tests;
