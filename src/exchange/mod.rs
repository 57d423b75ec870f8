//! The per-request steps both proxy loops share, written once so that they cannot drift: how
//! a request ends (metrics, detector counts, sample, access log) and how a failure to get an
//! answer from Django is counted and answered. The retry policy is `retry`; the rule for
//! response heads is `response_head`; the rules for headers are `forwarding`.

pub mod observe;

use crate::diagnostics::access_log;
use crate::rules::forwarding;
use crate::runtime::{Runtime, Shared};
use crate::telemetry::metrics::UpstreamErrorKind;
use crate::upstream;
use observe::Observed;
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;

/// What either loop knows of a request when it ends.
pub struct Ending<'a> {
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    pub client: Option<IpAddr>,
    pub request_id: &'a str,
    pub status: u16,
    pub seconds: f64,
    /// The client's request as a header map, for the sample: always on Pingora's loop, and on
    /// the relay's only for a denial (the only case a sample is taken).
    pub request: Option<&'a RequestHeader>,
}

/// Records a finished request: route and status counts, the denial's counts, a sample when the
/// sampler takes it, and the access-log line.
pub fn finish(shared: &Shared, rt: &Runtime, obs: &Observed, e: Ending<'_>) {
    let route = observe::route_for(shared, obs, e.path);
    observe::record(&shared.metrics, &route, e.status, e.seconds, obs);
    observe::diagnose(shared, &route, e.status, obs);
    if let Some(req) = e.request {
        observe::sample(shared, req, &route, e.seconds, obs, e.request_id);
    }
    if rt.access_log {
        access_log::write(access_log::Entry {
            method: e.method,
            path: e.path,
            client: e.client,
            request_id: e.request_id,
            obs,
            route: &route.label,
            status: e.status,
            seconds: e.seconds,
        });
    }
}

/// What happens to a final response head held as a header map (Pingora's loop, which takes
/// only upgrades): it is observed for telemetry, then its context headers are stripped. The
/// relay's loops do the same while they read Django's raw head (`relay::context`).
pub fn response_head_seen(
    shared: &Shared,
    rt: &Runtime,
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    obs: &mut Observed,
) {
    if rt.telemetry {
        observe::observe_response(shared, rt, req, resp, obs);
    }
    forwarding::strip_context_from_response(resp, &rt.context);
}

/// Counts a failure to get an answer from Django (once: `counted` says whether a connect
/// failure on the way already was) and returns the status the client gets.
pub fn upstream_failed(shared: &Shared, kind: UpstreamErrorKind, counted: bool) -> u16 {
    if !counted {
        shared.metrics.count_upstream_error(kind);
    }
    upstream::error_status(kind)
}
