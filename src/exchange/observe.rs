//! What the proxy learns from each response: route, release and denial context, then recording.
//!
//! `observe_response` runs in `response_filter` (decide), `record` in `logging` (count). For a
//! plain 2xx, recording is two atomic adds and a histogram observation.

use crate::clock::{rfc3339_millis, unix_now};
use crate::diagnostics::redact;
use crate::diagnostics::sink::{Record, SampleRecord};
use crate::response::static_files;
use crate::rules::routes;
use crate::runtime::{Runtime, Shared};
use crate::telemetry::classify::{self, CsrfSniffer};
use crate::telemetry::findings;
use crate::telemetry::metrics::{Metrics, RouteStats};
pub use crate::telemetry::observed::Observed;
use crate::telemetry::vocabulary::Kind;
use pingora::http::{RequestHeader, ResponseHeader};
use std::sync::Arc;
use std::time::SystemTime;

/// A 5xx whose `X-Authz-Kind` is `filesystem`: Django failed with a `PermissionError` on the
/// directory in `X-Authz-Path`, running as the `uid:gid` in `X-Authz-Run-As`.
pub fn observe_filesystem(
    obs: &mut Observed,
    kind: Option<&[u8]>,
    path: Option<&[u8]>,
    run_as: Option<&[u8]>,
) {
    if kind.is_some_and(|k| k.trim_ascii().eq_ignore_ascii_case(b"filesystem")) {
        let path = path
            .map(|p| classify::sanitize_text(p, 200))
            .filter(|p| p.starts_with('/'))
            .unwrap_or_else(|| "?".to_string());
        let run_as = run_as
            .filter(|v| {
                v.len() <= 24
                    && v.iter().all(|c| c.is_ascii_digit() || *c == b':')
                    && v.contains(&b':')
            })
            .map(|v| String::from_utf8_lossy(v).into_owned());
        obs.filesystem = Some((path, run_as));
    }
}

/// Takes the route label and the release from the values of Django's two per-response headers.
pub fn observe_context(
    shared: &Shared,
    obs: &mut Observed,
    route: Option<&[u8]>,
    release: Option<&[u8]>,
) {
    if let Some(label) = route.and_then(classify::route_label) {
        // Skip the registry lookup when the configured pattern already has this label.
        if obs.route.as_ref().is_none_or(|r| &*r.label != label) {
            obs.route = Some(shared.metrics.routes.get(label));
        }
    }
    if let Some(v) = release.filter(|v| !shared.metrics.release.is_current(v)) {
        if !v.is_empty() && v.len() <= 100 && v.iter().all(u8::is_ascii_graphic) {
            if let Ok(s) = std::str::from_utf8(v) {
                shared.metrics.release.observe(s, || unix_now().1);
            }
        }
    }
}

/// The companion's `X-Authz-Release-Since` on a denial: when the current release began in
/// Django, for a proxy that has not seen the change itself.
fn release_since(shared: &Shared, resp: &ResponseHeader) {
    let since = resp
        .headers
        .get("x-authz-release-since")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let (Some(since), Some(release)) = (since, shared.metrics.release.current()) {
        shared
            .metrics
            .release
            .observe_since(&release, since as f64, unix_now().1);
    }
}

/// Classifies a denial (a 401, a 403, a 302 to the login page: the caller asked
/// `classify::is_denial`) and prepares its sample's body excerpt.
pub fn observe_denial(
    shared: &Shared,
    rt: &Runtime,
    req: &RequestHeader,
    resp: &ResponseHeader,
    obs: &mut Observed,
) {
    let names = &rt.context;
    let status = resp.status.as_u16();
    release_since(shared, resp);
    let d = classify::classify(status, &req.headers, &resp.headers, names, &shared.hash_key);
    if let Some(d) = d {
        if status == 403 && !d.kind_from_django {
            obs.sniffer = Some(CsrfSniffer::default());
        }
        obs.denial = Some(Box::new(d));
        let cap = rt.sample_body_bytes;
        let textual = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| static_files::is_textual(&ct.to_ascii_lowercase()));
        if cap > 0 && textual && shared.sink.enabled() {
            obs.body = Some(Vec::with_capacity(cap.min(4096)));
            obs.body_cap = cap;
        }
    }
}

/// Feeds a response body chunk to the CSRF sniffer, if one is waiting.
#[inline]
pub fn observe_body(obs: &mut Observed, chunk: &[u8]) {
    if let Some(b) = obs.body.as_mut() {
        let room = obs.body_cap.saturating_sub(b.len());
        b.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
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

/// Hands a denial (or a PermissionError the companion marked) to the findings engine, and
/// counts a request that carried a session but had no user.
pub fn diagnose(shared: &Shared, route: &RouteStats, status: u16, obs: &Observed) {
    if let Some((path, run_as)) = obs.filesystem.as_ref() {
        let s = findings::signal::of_permission_error(status, path, run_as.as_deref());
        shared.findings.observe(&route.label, s, unix_now().1);
        return;
    }
    let Some(d) = obs.denial.as_deref() else {
        return;
    };
    if let Some(reason) = findings::signal::anonymous_label(d) {
        shared.metrics.count_anonymous_with_session(reason);
    }
    for fact in &d.diagnosis.permissions {
        shared.metrics.count_permission_state(fact.state);
    }
    if d.kind_from_django {
        shared.findings.companion_seen(&route.label);
    }
    if let Some(s) = findings::signal::of_denial(d) {
        shared.findings.observe(&route.label, s, unix_now().1);
    }
}

/// Request headers a sample may carry; everything else (Cookie, Authorization, CSRF tokens) is
/// left out.
const SAMPLE_HEADERS: [&str; 8] = [
    "host",
    "user-agent",
    "accept",
    "accept-language",
    "content-type",
    "origin",
    "referer",
    "x-requested-with",
];

/// Decides whether a denial becomes a sample record, and queues it.
pub fn sample(
    shared: &Shared,
    req: &RequestHeader,
    route: &RouteStats,
    seconds: f64,
    obs: &Observed,
    request_id: &str,
) {
    let Some(d) = obs.denial.as_deref() else {
        return;
    };
    if !shared.sink.enabled() {
        return;
    }
    let spiking = route.spiking[crate::telemetry::vocabulary::denial_index(d.status)]
        .load(std::sync::atomic::Ordering::Relaxed);
    let (_, now) = unix_now();
    let Some(reason) =
        shared
            .sampler
            .decide(&route.label, d.kind.label(), &d.permissions, spiking, now)
    else {
        shared.sink.outcomes.rate_limited.inc();
        return;
    };
    if !shared.sink.has_room() {
        // A stalled sink: count the drop without building a record that would be dropped.
        shared.sink.outcomes.queue_full.inc();
        return;
    }
    let mut headers = std::collections::BTreeMap::new();
    for name in SAMPLE_HEADERS {
        if let Some(v) = req.headers.get(name) {
            let mut text = classify::sanitize_text(v.as_bytes(), 200);
            if name == "referer" {
                // A referer's query string can carry tokens.
                if let Some(q) = text.find(['?', '#']) {
                    text.truncate(q);
                }
            }
            headers.insert(name, text);
        }
    }
    let query_keys = req
        .uri
        .query()
        .map(|q| {
            // Only `key=value` pairs: a bare `?<token>` is a value, not a key.
            q.split('&')
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
                .filter(|k| !k.is_empty())
                .take(20)
                .map(|k| {
                    routes::with_normalised(k, |n| {
                        let n = n.trim_start_matches('/');
                        classify::sanitize_text(n.as_bytes(), 64)
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let body_excerpt = obs
        .body
        .as_ref()
        .map(|b| redact::redact(&String::from_utf8_lossy(b), &redact::secrets(req)));
    let record = SampleRecord {
        ts: rfc3339_millis(SystemTime::now()),
        request_id: request_id.to_string(),
        route: route.label.to_string(),
        method: req.method.as_str().to_string(),
        path: routes::with_normalised(req.uri.path(), str::to_string),
        query_keys,
        status: d.status,
        kind: d.kind.label(),
        authn: d.authn.label(),
        user: d.user.map(|h| h.to_string()),
        session: d.session.map(|h| h.to_string()),
        token: d.token.map(|h| h.to_string()),
        permission: d.permissions.clone(),
        reason: d.reason.clone(),
        release: shared.metrics.release.current().map(|r| r.to_string()),
        duration_ms: seconds * 1000.0,
        sample_reason: reason.label(),
        headers,
        body_excerpt,
    };
    shared.sink.offer(Record::Sample(Box::new(record)));
}
