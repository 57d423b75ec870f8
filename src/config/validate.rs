//! The checks of a parsed config that types alone cannot make, one problem per bad key.

use super::load::Problem;
use super::values::{parse_url, validate_addr};
use super::{Config, SinkType};
use std::time::Duration;

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
    if c.server.max_connections == 0 {
        bad("server.max_connections".into(), "must be at least 1".into());
    }
    if c.server.max_connection_age.0.is_zero() {
        bad(
            "server.max_connection_age".into(),
            "must be longer than 0s".into(),
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
    if let Some(dir) = &l.body_temp_dir {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bad(
                "limits.body_temp_dir".into(),
                format!("`{dir}` is not a directory"),
            ),
            Err(e) => bad(
                "limits.body_temp_dir".into(),
                format!("cannot use `{dir}`: {e}"),
            ),
        }
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
