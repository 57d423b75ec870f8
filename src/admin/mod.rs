//! The admin listener: the console (`/`), `/metrics`, `/healthz`, `/readyz`, `/debug/authz`
//! and the console's data, `/debug/console`.
//!
//! It belongs on loopback or a private network. With an admin token (`server.admin_token_file`
//! or `$AUTHZ_EDGE_ADMIN_TOKEN`) the console and `/debug/*` require it, and `/metrics` too
//! unless `server.admin_token_metrics = false`; `/healthz` and `/readyz` stay open for probes.
//! The token goes as `Authorization: Bearer TOKEN`, or as the password of HTTP Basic (any user
//! name), which is how a browser sends it after its login prompt. Everything is read-only.

mod console;

use crate::runtime::Shared;
use async_trait::async_trait;
use base64::Engine;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

/// The console page, embedded in the binary (no asset from another host).
const CONSOLE_HTML: &str = include_str!("console.html");

/// Serves the admin endpoints from the shared state.
pub struct Admin {
    pub shared: Arc<Shared>,
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn json(v: &serde_json::Value) -> Response<Vec<u8>> {
    let body = serde_json::to_vec_pretty(v).unwrap_or_default();
    reply(200, "application/json", body)
}

/// Asks for the token: Basic first, so that a browser shows its login prompt.
fn unauthorized() -> Response<Vec<u8>> {
    let body = b"the admin token is required (Authorization: Bearer TOKEN)\n".to_vec();
    Response::builder()
        .status(401)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(
            http::header::WWW_AUTHENTICATE,
            "Basic realm=\"authz-edge admin\", charset=\"UTF-8\"",
        )
        .header(
            http::header::WWW_AUTHENTICATE,
            "Bearer realm=\"authz-edge admin\"",
        )
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Whether an `Authorization` value carries `token`, as Bearer or as a Basic password.
pub fn authorized(header: Option<&[u8]>, token: &str) -> bool {
    let Some(v) = header.and_then(|v| std::str::from_utf8(v).ok()) else {
        return false;
    };
    let v = v.trim();
    let Some((scheme, rest)) = v.split_once(' ') else {
        return false;
    };
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return same(rest.as_bytes(), token.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
            return false;
        };
        let password = match decoded.iter().position(|b| *b == b':') {
            Some(i) => &decoded[i + 1..],
            None => return false,
        };
        return same(password, token.as_bytes());
    }
    false
}

impl Admin {
    /// The JSON of /debug/authz: what an on-call engineer reads with curl.
    pub fn debug_json(&self) -> serde_json::Value {
        let m = &self.shared.metrics;
        let rt = self.shared.runtime.load();
        let changed = m.release.changed_at();
        let tuning = self.shared.detector.tuning();
        serde_json::json!({
            "release": m.release.current().as_deref(),
            "release_changed_ts": (changed > 0.0).then_some(changed),
            "config_generation": rt.generation,
            "detector": {
                "tick_s": tuning.tick_secs,
                "window_ticks": tuning.window,
                "min_count": tuning.min_count,
                "cooldown_ticks": tuning.cooldown,
                "baseline_s": tuning.baseline_secs,
            },
            "findings": self.shared.findings.snapshot(),
            "reloads": crate::runtime::reload::recent(&self.shared),
            "routes": self.shared.detector.snapshot(m),
        })
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path().to_string();
        let (token, token_metrics) = {
            let rt = self.shared.runtime.load();
            (rt.admin_token.clone(), rt.admin_token_metrics)
        };
        let open = matches!(path.as_str(), "/healthz" | "/readyz")
            || (path == "/metrics" && !token_metrics);
        if let Some(token) = token.filter(|_| !open) {
            let header = req
                .headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            if !authorized(header, &token) {
                return unauthorized();
            }
        }
        match path.as_str() {
            "/" => reply(
                200,
                "text/html; charset=utf-8",
                CONSOLE_HTML.as_bytes().to_vec(),
            ),
            "/metrics" => {
                let now = crate::clock::unix_now().0;
                reply(
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.shared.metrics.render(now),
                )
            }
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                if self.shared.runtime.load().upstream.any_healthy() {
                    reply(200, "text/plain", b"ready\n".to_vec())
                } else {
                    reply(503, "text/plain", b"no healthy upstream\n".to_vec())
                }
            }
            "/debug/authz" => json(&self.debug_json()),
            "/debug/console" => json(&console::data(&self.shared)),
            _ => reply(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_accepted_as_bearer_or_as_a_basic_password_and_nothing_else() {
        let t = "s3cret-token-0123456789";
        let basic = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(authorized(Some(format!("Bearer {t}").as_bytes()), t));
        assert!(authorized(Some(format!("bearer   {t} ").as_bytes()), t));
        assert!(authorized(Some(basic(&format!("admin:{t}")).as_bytes()), t));
        assert!(authorized(Some(basic(&format!(":{t}")).as_bytes()), t));
        assert!(!authorized(None, t));
        assert!(!authorized(Some(b"Bearer"), t));
        assert!(!authorized(Some(format!("Bearer {t}x").as_bytes()), t));
        assert!(!authorized(Some(format!("Token {t}").as_bytes()), t));
        assert!(
            !authorized(Some(basic(t).as_bytes()), t),
            "no colon: no password"
        );
        assert!(!authorized(Some(basic(&format!("{t}:x")).as_bytes()), t));
        assert!(!authorized(Some(b"Basic !!!"), t));
    }
}
