//! The config file schema (TOML, unknown keys refused) and its validation, with key paths in errors.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One problem found in a config file: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path such as `upstream.servers[1]`; empty for whole-file errors.
    pub key: String,
    pub message: String,
}

/// Every problem found in one config file; each renders as `FILE: KEY: MESSAGE`.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.key.is_empty() {
                write!(f, "{}: {}", self.file.display(), p.message)?;
            } else {
                write!(f, "{}: {}: {}", self.file.display(), p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A duration written as `"250ms"`, `"10s"`, `"5m"` or `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"1h"` (or `"1m 30s"`, humantime's forms) into a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{s}` has no unit; write e.g. \"250ms\", \"10s\", \"5m\""
        ));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write e.g. \"250ms\", \"10s\", \"5m\"")
    })
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

/// A list of `IP:PORT` strings, each parsed once here (an error names its index).
fn socket_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<Parsed<SocketAddr>>::deserialize(d).map(|v| v.into_iter().map(|p| p.0).collect())
}

/// A list of CIDRs or single addresses, each parsed once here.
fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    Vec::<Parsed<ipnet::IpNet>>::deserialize(d).map(|v| v.into_iter().map(|p| p.0).collect())
}

/// A header name, parsed once here.
fn header_name<'de, D: Deserializer<'de>>(d: D) -> Result<http::HeaderName, D::Error> {
    Parsed::<http::HeaderName>::deserialize(d).map(|p| p.0)
}

/// A value written as a string and parsed by `FromText`, so that serde's error carries the key.
struct Parsed<T>(T);

trait FromText: Sized {
    fn from_text(s: &str) -> Result<Self, String>;
}

impl FromText for SocketAddr {
    fn from_text(s: &str) -> Result<Self, String> {
        validate_addr(s)
    }
}

impl FromText for ipnet::IpNet {
    fn from_text(s: &str) -> Result<Self, String> {
        parse_cidr(s)
            .ok_or_else(|| format!("`{s}` is not an IP address or CIDR such as \"10.0.0.0/8\""))
    }
}

impl FromText for http::HeaderName {
    fn from_text(s: &str) -> Result<Self, String> {
        http::HeaderName::from_bytes(s.as_bytes())
            .map_err(|_| format!("`{s}` is not a valid header name"))
    }
}

impl<'de, T: FromText> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        T::from_text(&s).map(Parsed).map_err(de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: Server,
    pub tls: Option<Tls>,
    pub upstream: Upstream,
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
    /// The file as TOML, to tell which keys a reload changed (`changed_keys`).
    #[serde(skip)]
    pub source: toml::Table,
}

/// The keys (`section.key`, or a whole array section such as `routes`) whose values differ
/// between two config files, in file order of the sections.
pub fn changed_keys(old: &toml::Table, new: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    let mut sections: Vec<&String> = old.keys().chain(new.keys()).collect();
    sections.sort();
    sections.dedup();
    let empty = toml::Value::Table(toml::Table::new());
    for section in sections {
        let (a, b) = (old.get(section), new.get(section));
        // A section present on one side only: its keys changed, one by one.
        let either_table =
            matches!(a, Some(toml::Value::Table(_))) || matches!(b, Some(toml::Value::Table(_)));
        let (a, b) = if either_table {
            (a.or(Some(&empty)), b.or(Some(&empty)))
        } else {
            (a, b)
        };
        match (a, b) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    if a.get(k) != b.get(k) {
                        out.push(format!("{section}.{k}"));
                    }
                }
            }
            (a, b) if a != b => out.push(section.clone()),
            _ => {}
        }
    }
    out
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Plain-HTTP listeners.
    pub listen: Vec<String>,
    /// Admin listener: /metrics /healthz /readyz /debug/authz.
    pub admin: String,
    pub threads: usize,
    pub grace_period: Dur,
    /// Unix socket through which `--upgrade` takes the listeners over.
    pub upgrade_sock: String,
    pub pid_file: String,
    /// Idle time allowed between requests on a client keepalive connection.
    pub keepalive_timeout: Dur,
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
            listen: vec!["127.0.0.1:8080".into()],
            admin: "127.0.0.1:9090".into(),
            threads: 2,
            grace_period: Dur::secs(10),
            upgrade_sock: "/tmp/authz-edge-upgrade.sock".into(),
            pid_file: "/tmp/authz-edge.pid".into(),
            keepalive_timeout: Dur::secs(75),
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
    pub listen: Vec<String>,
    pub cert: String,
    pub key: String,
    /// Answer plain-HTTP requests with a 308 redirect to HTTPS.
    #[serde(default)]
    pub redirect_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    #[serde(deserialize_with = "socket_addrs")]
    pub servers: Vec<SocketAddr>,
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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub pattern: String,
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

/// Reads, parses and validates a config file; every problem is reported, not just the first.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let fail = |problems: Vec<Problem>| ConfigError {
        file: path.to_path_buf(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(vec![Problem {
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    let config = parse(&text).map_err(fail)?;
    let problems = validate(&config);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(fail(problems))
    }
}

/// The most problems one file reports.
const MAX_PROBLEMS: usize = 64;

/// Parses TOML text into the schema. Every unknown key, wrong type and bad value is reported
/// with its key path, not only the first: each bad key is reported, taken out, and the rest
/// parsed again. The first problem also gives its line.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let first = match serde_path_to_error::deserialize::<_, Config>(toml::Deserializer::new(text)) {
        Ok(mut c) => {
            c.source = text.parse().unwrap_or_default();
            return Ok(c);
        }
        Err(e) => e,
    };
    let mut problems = vec![problem(&first, text)];
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return Err(problems); // a syntax error: nothing further can be read
    };
    let mut taken: Vec<Vec<Step>> = Vec::new();
    let mut path = steps(first.path());
    while problems.len() < MAX_PROBLEMS {
        if !take_out(&mut table, &mut path, &taken) {
            break;
        }
        taken.push(path);
        match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(table.clone())) {
            Ok(_) => break,
            Err(e) => {
                path = steps(e.path());
                let missing = e.inner().to_string().starts_with("missing field");
                // A required key that was taken out for its own problem is not a new one.
                if !missing {
                    problems.push(Problem {
                        key: key_of(&original_path(&path, &taken)),
                        message: e.inner().to_string(),
                    });
                } else if path.is_empty() {
                    break;
                }
            }
        }
    }
    Err(problems)
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Seq { index } => Some(Step::Index(*index)),
            _ => None,
        })
        .collect()
}

/// `upstream.servers[1]`.
fn key_of(path: &[Step]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A path in the table as it now is, in the file's numbering: array elements taken out before
/// shift the indices after them.
fn original_path(path: &[Step], taken: &[Vec<Step>]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for s in path {
        match s {
            Step::Index(i) => {
                let mut i = *i;
                let mut removed: Vec<usize> = taken
                    .iter()
                    .filter(|t| t.len() == out.len() + 1 && t[..out.len()] == out[..])
                    .filter_map(|t| match t.last() {
                        Some(Step::Index(r)) => Some(*r),
                        _ => None,
                    })
                    .collect();
                removed.sort_unstable();
                for r in removed {
                    if r <= i {
                        i += 1;
                    }
                }
                out.push(Step::Index(i));
            }
            other => out.push(other.clone()),
        }
    }
    out
}

/// Takes the value at `path` out of the table (a required key's absence is then reported as
/// its own problem, not a new one). A path into a missing key takes out its table instead.
/// `path` ends as the original path of what was taken. Returns false when nothing could be.
fn take_out(table: &mut toml::Table, path: &mut Vec<Step>, taken: &[Vec<Step>]) -> bool {
    let original = original_path(path, taken);
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut here = toml::Value::Table(std::mem::take(table));
    let mut cursor = &mut here;
    for p in parents {
        let next = match (p, cursor) {
            (Step::Key(k), toml::Value::Table(t)) => t.get_mut(k),
            (Step::Index(i), toml::Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cursor = n,
            None => {
                if let toml::Value::Table(t) = here {
                    *table = t;
                }
                return false;
            }
        }
    }
    let done = match (last, cursor) {
        (Step::Key(k), toml::Value::Table(t)) => t.remove(k).is_some(),
        (Step::Index(i), toml::Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    };
    if let toml::Value::Table(t) = here {
        *table = t;
    }
    *path = original;
    done
}

/// A serde error as a problem: its key path, its message, and its line where known.
fn problem(e: &serde_path_to_error::Error<toml::de::Error>, text: &str) -> Problem {
    let key = e.path().to_string();
    let inner = e.inner();
    let mut message = inner.message().to_string();
    if let Some(span) = inner.span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        message = format!("{message} (line {line})");
    }
    Problem {
        key: if key == "." { String::new() } else { key },
        message,
    }
}

/// Checks what types alone cannot; returns one problem per bad key.
pub fn validate(c: &Config) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut bad = |key: String, message: String| p.push(Problem { key, message });

    if c.server.listen.is_empty() && c.tls.is_none() {
        bad(
            "server.listen".into(),
            "no listener: give at least one address or a [tls] section".into(),
        );
    }
    for (i, a) in c.server.listen.iter().enumerate() {
        if let Err(m) = validate_addr(a) {
            bad(format!("server.listen[{i}]"), m);
        }
    }
    if let Err(m) = validate_addr(&c.server.admin) {
        bad("server.admin".into(), m);
    }
    if c.server.threads == 0 || c.server.threads > 1024 {
        bad(
            "server.threads".into(),
            format!("{} is out of range: use 1 to 1024", c.server.threads),
        );
    }
    if let Some(tls) = &c.tls {
        if tls.listen.is_empty() {
            bad(
                "tls.listen".into(),
                "empty: give at least one address".into(),
            );
        }
        for (i, a) in tls.listen.iter().enumerate() {
            if let Err(m) = validate_addr(a) {
                bad(format!("tls.listen[{i}]"), m);
            }
        }
        for (key, file) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
            if let Err(e) = std::fs::metadata(file) {
                bad(key.into(), format!("cannot read `{file}`: {e}"));
            }
        }
        if tls.redirect_http && c.server.listen.is_empty() {
            bad(
                "tls.redirect_http".into(),
                "is on but server.listen has no plain-HTTP listener to redirect from".into(),
            );
        }
    }

    if c.upstream.servers.is_empty() {
        bad(
            "upstream.servers".into(),
            "empty: give at least one Django server, e.g. \"127.0.0.1:8000\"".into(),
        );
    }
    for (key, d) in [
        ("upstream.connect_timeout", c.upstream.connect_timeout),
        ("upstream.read_timeout", c.upstream.read_timeout),
        ("upstream.write_timeout", c.upstream.write_timeout),
        ("limits.header_timeout", c.limits.header_timeout),
        ("spike.tick", c.spike.tick),
        ("spike.window", c.spike.window),
        ("spike.baseline", c.spike.baseline),
        ("sink.flush_interval", c.sink.flush_interval),
        ("sink.batch_age", c.sink.batch_age),
        ("sink.timeout", c.sink.timeout),
    ] {
        if d.0.is_zero() {
            bad(key.into(), "must be longer than zero".into());
        }
    }
    if let Some(hc) = &c.upstream.health_check {
        if !hc.path.starts_with('/') {
            bad(
                "upstream.health_check.path".into(),
                format!("`{}` must start with `/`", hc.path),
            );
        }
        if hc.interval.0 < Duration::from_millis(100) {
            bad(
                "upstream.health_check.interval".into(),
                "must be at least 100ms".into(),
            );
        }
    }

    let l = &c.limits;
    for (key, v, min) in [
        ("limits.max_header_bytes", l.max_header_bytes, 1024),
        ("limits.max_headers", l.max_headers, 8),
        ("limits.max_uri_bytes", l.max_uri_bytes, 64),
    ] {
        if v < min {
            bad(key.into(), format!("{v} is too small: use at least {min}"));
        }
    }
    if l.max_header_bytes > 1_048_000 {
        bad(
            "limits.max_header_bytes".into(),
            "must be at most 1048000 (Pingora's own ceiling)".into(),
        );
    }
    if l.max_headers > 256 {
        bad(
            "limits.max_headers".into(),
            "must be at most 256 (Pingora's own ceiling)".into(),
        );
    }
    if l.max_requests_per_connection == 0 {
        bad(
            "limits.max_requests_per_connection".into(),
            "must be at least 1".into(),
        );
    }

    for (i, s) in c.statics.iter().enumerate() {
        if !s.prefix.starts_with('/') || !s.prefix.ends_with('/') {
            bad(
                format!("static[{i}].prefix"),
                format!("`{}` must start and end with `/`", s.prefix),
            );
        }
        match std::fs::metadata(&s.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bad(
                format!("static[{i}].root"),
                format!("`{}` is not a directory", s.root),
            ),
            Err(e) => bad(
                format!("static[{i}].root"),
                format!("cannot read `{}`: {e}", s.root),
            ),
        }
    }

    let ctx = &c.context;
    if ctx.session_cookie.is_empty()
        || ctx
            .session_cookie
            .contains(|c: char| c.is_whitespace() || c == ';' || c == '=')
    {
        bad(
            "context.session_cookie".into(),
            format!("`{}` is not a valid cookie name", ctx.session_cookie),
        );
    }

    if c.metrics.max_routes == 0 || c.metrics.max_routes > 10_000 {
        bad(
            "metrics.max_routes".into(),
            format!("{} is out of range: use 1 to 10000", c.metrics.max_routes),
        );
    }
    if c.metrics.max_permissions == 0 || c.metrics.max_permissions > 10_000 {
        bad(
            "metrics.max_permissions".into(),
            format!(
                "{} is out of range: use 1 to 10000",
                c.metrics.max_permissions
            ),
        );
    }
    if c.spike.window.0 < c.spike.tick.0 {
        bad(
            "spike.window".into(),
            "must be at least as long as spike.tick".into(),
        );
    }
    if c.sink.queue == 0 {
        bad("sink.queue".into(), "must be at least 1".into());
    }
    if c.sink.max_bytes < 4096 {
        bad("sink.max_bytes".into(), "must be at least 4096".into());
    }
    if c.spike.window.0.as_secs_f64() / c.spike.tick.0.as_secs_f64().max(1e-3) > 3600.0 {
        bad("spike.window".into(), "must be at most 3600 ticks".into());
    }
    match c.sink.kind {
        SinkType::Http if c.sink.url.is_none() => bad(
            "sink.url".into(),
            "is required when sink.type = \"http\"".into(),
        ),
        SinkType::Http if c.sink.url.as_deref().and_then(parse_url).is_none() => bad(
            "sink.url".into(),
            format!(
                "`{}` is not an http:// URL such as \"http://127.0.0.1:8686/authz\"",
                c.sink.url.as_deref().unwrap_or("")
            ),
        ),
        SinkType::File if c.sink.path.is_empty() => bad(
            "sink.path".into(),
            "is required when sink.type = \"file\"".into(),
        ),
        _ => {}
    }
    p
}

fn validate_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!("`{s}` is not an address of the form IP:PORT, e.g. \"127.0.0.1:8000\"")
    })
}

/// Splits `http://host:port/path` into its parts.
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host_port.is_empty() {
        return None;
    }
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:80")
    };
    Some((host_port, path.to_string()))
}

/// Parses `10.0.0.0/8` or a single address into a network.
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[upstream]\nservers = [\"127.0.0.1:8000\"]\n";

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("10").is_err());
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn minimal_config_is_valid() {
        let c = parse(MIN).expect("parses");
        assert!(validate(&c).is_empty());
        assert_eq!(c.limits.max_headers, 100);
    }

    #[test]
    fn unknown_key_names_its_path() {
        let e = parse(&format!("{MIN}bogus = 1\n")).expect_err("refused");
        assert!(e[0].message.contains("unknown field `bogus`"), "{e:?}");
        let e = parse("[upstream]\nservers=[\"127.0.0.1:1\"]\ncolour = 2\n").expect_err("refused");
        assert_eq!(e[0].key, "upstream.colour");
        assert!(e[0].message.contains("colour"), "{e:?}");
    }

    #[test]
    fn bad_server_names_its_index() {
        let p =
            parse("[upstream]\nservers = [\"127.0.0.1:8000\", \"nohost\"]\n").expect_err("refused");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "upstream.servers[1]");
        assert!(
            p[0].message
                .starts_with("`nohost` is not an address of the form IP:PORT"),
            "{p:?}"
        );
    }

    #[test]
    fn every_parse_problem_is_reported_with_its_key() {
        let text = "[server]\nthreads = \"two\"\ncolour = 1\n\n[upstream]\nservers = [\"x\", \"127.0.0.1:1\", \"y\"]\nconnect_timeout = \"soon\"\n\n[forwarding]\ntrusted_proxies = [\"10.0.0.0/8\", \"lan\"]\n\n[context]\nuser_header = \"bad header\"\n\n[spike]\nwindow = \"60\"\n";
        let p = parse(text).expect_err("refused");
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "server.threads",
                "context.user_header",
                "forwarding.trusted_proxies[1]",
                "server.colour",
                "spike.window",
                "upstream.connect_timeout",
                "upstream.servers[0]",
                "upstream.servers[2]",
            ],
            "{p:#?}"
        );
        assert!(
            p[0].message.ends_with("(line 2)"),
            "the first gives its line: {p:?}"
        );
        assert!(p[6].message.contains("`x` is not an address"), "{p:?}");
        assert!(p[7].message.contains("`y` is not an address"), "{p:?}");
    }

    #[test]
    fn bad_duration_names_its_key() {
        let e = parse(
            "[upstream]\nservers = [\"127.0.0.1:8000\"]\nconnect_timeout = \"ten seconds\"\n",
        )
        .expect_err("refused");
        assert_eq!(e[0].key, "upstream.connect_timeout");
    }
}
