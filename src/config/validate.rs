//! The checks of a parsed config that types alone cannot make, one problem per bad key, one
//! function per section.

use super::problem::Problem;
use super::values::parse_url;
use super::{Config, SinkType};
use std::time::Duration;

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn bad(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// `key` must not be zero.
    fn longer_than_zero(&mut self, key: &str, d: Duration) {
        if d.is_zero() {
            self.bad(key, "must be longer than zero");
        }
    }

    /// `path` must be a directory the proxy can read.
    fn directory(&mut self, key: impl Into<String>, path: &str) {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => self.bad(key, format!("`{path}` is not a directory")),
            Err(e) => self.bad(key, format!("cannot use `{path}`: {e}")),
        }
    }
}

/// Checks what types alone cannot; returns one problem per bad key.
pub fn validate(c: &Config) -> Vec<Problem> {
    let mut p = Problems::default();
    server(c, &mut p);
    tls(c, &mut p);
    upstream(c, &mut p);
    limits(c, &mut p);
    statics(c, &mut p);
    context(c, &mut p);
    telemetry(c, &mut p);
    sink(c, &mut p);
    compression(c, &mut p);
    p.0
}

fn server(c: &Config, p: &mut Problems) {
    let s = &c.server;
    if s.listen.is_empty() && c.tls.is_none() {
        p.bad(
            "server.listen",
            "no listener: give at least one address or a [tls] section",
        );
    }
    let tls_listen = c.tls.iter().flat_map(|t| &t.listen);
    // Port 0 is a free port each, never a clash.
    let same = |a: &&std::net::SocketAddr| **a == s.admin && a.port() != 0;
    if let Some(clash) = s.listen.iter().chain(tls_listen).find(same) {
        p.bad(
            "server.admin",
            format!("{clash} is also a proxy listener: give the admin listener its own port"),
        );
    }
    // An address given twice among the proxy's listeners: named by both keys.
    let mut seen: Vec<(String, std::net::SocketAddr)> = Vec::new();
    let plain = s
        .listen
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("server.listen[{i}]"), *a));
    let tls = c.tls.iter().flat_map(|t| t.listen.iter().enumerate());
    let tls = tls.map(|(i, a)| (format!("tls.listen[{i}]"), *a));
    for (key, addr) in plain.chain(tls) {
        match seen.iter().find(|(_, a)| *a == addr && addr.port() != 0) {
            Some((first, _)) => p.bad(
                key,
                format!("{addr} is {first} too: give each listener its own address"),
            ),
            None => seen.push((key, addr)),
        }
    }
    if s.threads == 0 || s.threads > 1024 {
        let threads = s.threads;
        p.bad(
            "server.threads",
            format!("{threads} is out of range: use 1 to 1024"),
        );
    }
    if s.max_connections == 0 {
        p.bad("server.max_connections", "must be at least 1");
    }
    if s.max_connection_age.0.is_zero() {
        p.bad("server.max_connection_age", "must be longer than 0s");
    }
}

fn tls(c: &Config, p: &mut Problems) {
    let Some(tls) = &c.tls else { return };
    if tls.listen.is_empty() {
        p.bad("tls.listen", "empty: give at least one address");
    }
    for (key, file) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
        if let Err(e) = std::fs::metadata(file) {
            p.bad(key, format!("cannot read `{file}`: {e}"));
        }
    }
    if tls.redirect_http && c.server.listen.is_empty() {
        p.bad(
            "tls.redirect_http",
            "is on but server.listen has no plain-HTTP listener to redirect from",
        );
    }
}

/// Upstream pools at most: each is a value of the `upstream` metric label.
const MAX_POOLS: usize = 64;

fn upstream(c: &Config, p: &mut Problems) {
    pool("upstream", &c.upstream, p);
    if c.upstreams.len() > MAX_POOLS {
        p.bad(
            "upstreams",
            format!("{} pools: at most {MAX_POOLS}", c.upstreams.len()),
        );
    }
    for (name, u) in &c.upstreams {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok || name == super::DEFAULT_POOL {
            p.bad(
                format!("upstreams.{name}"),
                "a pool's name is letters, digits, `_` and `-`, and not `default` (that is [upstream])",
            );
        }
        pool(&format!("upstreams.{name}"), u, p);
    }
}

/// One upstream pool's keys, under `section`.
fn pool(section: &str, u: &super::Upstream, p: &mut Problems) {
    if u.servers.is_empty() {
        p.bad(
            format!("{section}.servers"),
            "empty: give at least one Django server, e.g. \"127.0.0.1:8000\"",
        );
    }
    p.longer_than_zero(&format!("{section}.connect_timeout"), u.connect_timeout.0);
    p.longer_than_zero(&format!("{section}.read_timeout"), u.read_timeout.0);
    p.longer_than_zero(&format!("{section}.write_timeout"), u.write_timeout.0);
    if u.max_buffered_bytes < 64 * 1024 {
        p.bad(
            format!("{section}.max_buffered_bytes"),
            "must be at least 64KiB (65536)",
        );
    }
    if let Some(hc) = &u.health_check {
        if !hc.path.starts_with('/') {
            p.bad(
                format!("{section}.health_check.path"),
                format!("`{}` must start with `/`", hc.path),
            );
        }
        if hc.interval.0 < Duration::from_millis(100) {
            p.bad(
                format!("{section}.health_check.interval"),
                "must be at least 100ms",
            );
        }
    }
}

fn limits(c: &Config, p: &mut Problems) {
    let l = &c.limits;
    p.longer_than_zero("limits.header_timeout", l.header_timeout.0);
    for (key, v, min) in [
        ("limits.max_header_bytes", l.max_header_bytes, 1024),
        ("limits.max_headers", l.max_headers, 8),
        ("limits.max_uri_bytes", l.max_uri_bytes, 64),
    ] {
        if v < min {
            p.bad(key, format!("{v} is too small: use at least {min}"));
        }
    }
    if l.max_header_bytes > 1_048_000 {
        p.bad(
            "limits.max_header_bytes",
            "must be at most 1048000 (Pingora's own ceiling)",
        );
    }
    if l.max_headers > 256 {
        p.bad(
            "limits.max_headers",
            "must be at most 256 (Pingora's own ceiling)",
        );
    }
    if let Some(dir) = &l.body_temp_dir {
        p.directory("limits.body_temp_dir", dir);
    }
    if l.max_requests_per_connection == 0 {
        p.bad("limits.max_requests_per_connection", "must be at least 1");
    }
}

fn statics(c: &Config, p: &mut Problems) {
    for (i, s) in c.statics.iter().enumerate() {
        if !s.prefix.starts_with('/') || !s.prefix.ends_with('/') {
            p.bad(
                format!("static[{i}].prefix"),
                format!("`{}` must start and end with `/`", s.prefix),
            );
        }
        match std::fs::metadata(&s.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => p.bad(
                format!("static[{i}].root"),
                format!("`{}` is not a directory", s.root),
            ),
            Err(e) => p.bad(
                format!("static[{i}].root"),
                format!("cannot read `{}`: {e}", s.root),
            ),
        }
    }
}

fn context(c: &Config, p: &mut Problems) {
    let cookie = &c.context.session_cookie;
    if cookie.is_empty() || cookie.contains(|c: char| c.is_whitespace() || c == ';' || c == '=') {
        p.bad(
            "context.session_cookie",
            format!("`{cookie}` is not a valid cookie name"),
        );
    }
    let paths = &c.context.login_paths;
    if paths.len() > 16 {
        p.bad("context.login_paths", "at most 16 paths".to_string());
    }
    for (i, path) in paths.iter().enumerate() {
        let ok = path.starts_with('/')
            && path.len() <= 200
            && path
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#'));
        if !ok {
            p.bad(
                format!("context.login_paths[{i}]"),
                format!("`{path}` is not a path (it starts with `/`, without a query or spaces)"),
            );
        }
    }
}

/// `[metrics]` and `[spike]`.
fn telemetry(c: &Config, p: &mut Problems) {
    for (key, n) in [
        ("metrics.max_routes", c.metrics.max_routes),
        ("metrics.max_permissions", c.metrics.max_permissions),
    ] {
        if n == 0 || n > 10_000 {
            p.bad(key, format!("{n} is out of range: use 1 to 10000"));
        }
    }
    let s = &c.spike;
    p.longer_than_zero("spike.tick", s.tick.0);
    p.longer_than_zero("spike.window", s.window.0);
    p.longer_than_zero("spike.baseline", s.baseline.0);
    if s.window.0 < s.tick.0 {
        p.bad("spike.window", "must be at least as long as spike.tick");
    }
    if s.window.0.as_secs_f64() / s.tick.0.as_secs_f64().max(1e-3) > 3600.0 {
        p.bad("spike.window", "must be at most 3600 ticks");
    }
}

fn sink(c: &Config, p: &mut Problems) {
    let s = &c.sink;
    p.longer_than_zero("sink.flush_interval", s.flush_interval.0);
    p.longer_than_zero("sink.batch_age", s.batch_age.0);
    p.longer_than_zero("sink.timeout", s.timeout.0);
    if s.queue == 0 {
        p.bad("sink.queue", "must be at least 1");
    }
    if s.max_bytes < 4096 {
        p.bad("sink.max_bytes", "must be at least 4096");
    }
    match s.kind {
        SinkType::Http if s.url.is_none() => {
            p.bad("sink.url", "is required when sink.type = \"http\"")
        }
        SinkType::Http if s.url.as_deref().and_then(parse_url).is_none() => p.bad(
            "sink.url",
            format!(
                "`{}` is not an http:// URL such as \"http://127.0.0.1:8686/authz\"",
                s.url.as_deref().unwrap_or("")
            ),
        ),
        SinkType::File if s.path.is_empty() => {
            p.bad("sink.path", "is required when sink.type = \"file\"")
        }
        _ => {}
    }
}

fn compression(c: &Config, p: &mut Problems) {
    let z = &c.compression;
    if !(1..=9).contains(&z.level) {
        p.bad(
            "compression.level",
            format!("{} is out of range: use 1 to 9", z.level),
        );
    }
    for (i, a) in z.algorithms.iter().enumerate() {
        if !matches!(a.as_str(), "gzip" | "br" | "zstd") {
            p.bad(
                format!("compression.algorithms[{i}]"),
                format!("`{a}` is not one of gzip, br, zstd"),
            );
        }
    }
    for (i, t) in z.types.iter().enumerate() {
        if !t.contains('/') || t.contains([';', ' ']) {
            p.bad(
                format!("compression.types[{i}]"),
                format!("`{t}` is not a media type such as \"text/html\""),
            );
        }
    }
}
