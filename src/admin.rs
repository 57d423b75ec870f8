//! The admin listener: /metrics, /healthz, /readyz and /debug/authz.

use crate::runtime::Shared;
use crate::telemetry;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

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

impl Admin {
    /// The JSON of /debug/authz: what an on-call engineer reads with curl.
    pub fn debug_json(&self) -> serde_json::Value {
        let m = &self.shared.metrics;
        let rt = self.shared.runtime.load();
        let changed = m.release_changed_at();
        serde_json::json!({
            "release": m.current_release().as_deref(),
            "release_changed_ts": (changed > 0.0).then_some(changed),
            "config_generation": rt.generation,
            "findings": self.shared.findings.snapshot(),
            "reloads": match self.shared.reloads.lock() {
                Ok(r) => r.iter().cloned().collect::<Vec<_>>(),
                Err(p) => p.into_inner().iter().cloned().collect(),
            },
            "routes": self.shared.detector.snapshot(m),
        })
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/metrics" => {
                let now = telemetry::unix_now().0;
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
            "/debug/authz" => {
                let body = serde_json::to_vec_pretty(&self.debug_json()).unwrap_or_default();
                reply(200, "application/json", body)
            }
            _ => reply(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}
