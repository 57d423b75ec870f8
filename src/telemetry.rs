//! What the proxy learns from each response: route, release and denial context, then recording.
//!
//! `observe_response` runs in `response_filter` (decide), `record` in `logging` (count). For a
//! plain 2xx, recording is two atomic adds and a histogram observation.

use crate::classify::{self, CsrfSniffer, Denial};
use crate::metrics::{Kind, Metrics, RouteStats};
use crate::routes;
use crate::runtime::{Runtime, Shared};
use pingora::http::{RequestHeader, ResponseHeader};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The telemetry part of a request's context.
#[derive(Default)]
pub struct Observed {
    /// The route label's stats, once known (Django's header, a configured pattern, a mount).
    pub route: Option<Arc<RouteStats>>,
    pub denial: Option<Box<Denial>>,
    /// Present while a 403 without a companion kind may still prove to be a CSRF failure.
    pub sniffer: Option<CsrfSniffer>,
}

fn unix_now() -> (u64, f64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.as_secs_f64())
}

/// Reads Django's context headers from a response (before they are stripped).
pub fn observe_response(
    shared: &Shared,
    rt: &Runtime,
    req: &RequestHeader,
    resp: &ResponseHeader,
    obs: &mut Observed,
) {
    let names = &rt.context;
    if let Some(label) = resp
        .headers
        .get(&names.route)
        .and_then(|v| classify::route_label(v.as_bytes()))
    {
        // Skip the registry lookup when the configured pattern already has this label.
        if obs.route.as_ref().is_none_or(|r| &*r.label != label) {
            obs.route = Some(shared.metrics.routes.get(label));
        }
    }
    if let Some(release) = resp.headers.get(&names.release) {
        let v = release.as_bytes();
        if !v.is_empty() && v.len() <= 100 && v.iter().all(u8::is_ascii_graphic) {
            if let Ok(s) = std::str::from_utf8(v) {
                shared.metrics.observe_release(s, unix_now().1);
            }
        }
    }
    let status = resp.status.as_u16();
    if classify::is_denial(status) {
        let d = classify::classify(status, &req.headers, &resp.headers, names, &shared.hash_key);
        if let Some(d) = d {
            if status == 403 && !d.kind_from_django {
                obs.sniffer = Some(CsrfSniffer::default());
            }
            obs.denial = Some(Box::new(d));
        }
    }
}

/// Feeds a response body chunk to the CSRF sniffer, if one is waiting.
#[inline]
pub fn observe_body(obs: &mut Observed, chunk: &[u8]) {
    if let Some(s) = obs.sniffer.as_mut() {
        if s.feed(chunk) {
            if let Some(d) = obs.denial.as_mut() {
                d.kind = Kind::Csrf;
            }
            obs.sniffer = None;
        }
    }
}

/// The route stats for a request: the one already known, else the normalised path's.
pub fn route_for(shared: &Shared, obs: &Observed, path: &str) -> Arc<RouteStats> {
    match &obs.route {
        Some(r) => r.clone(),
        None => routes::with_normalised(path, |p| shared.metrics.routes.get(p)),
    }
}

/// Counts a finished request: status, duration, and the denial if there was one.
pub fn record(metrics: &Metrics, route: &RouteStats, status: u16, seconds: f64, obs: &Observed) {
    route.count_request(status);
    metrics.observe_duration(status, seconds);
    let Some(d) = obs.denial.as_deref() else {
        return;
    };
    route.count_denial(d.status, d.kind, d.authn);
    for p in &d.permissions {
        let label = metrics.permissions.intern(p);
        route.count_permission(&label);
    }
    if let Some(u) = d.user.or(d.token_subject) {
        route.add_user(u.bits, unix_now().0);
    }
}
