//! One request's exchange, whichever of the three loops carries it (the relay, Pingora's
//! phases, HTTP/2 streams): its context (`RequestCtx`), what Django's response head tells
//! (`response_seen`), how a failure to get an answer is counted, and how the request ends
//! (metrics, detector counts, sample, access log). Written once so that the loops cannot
//! drift. The retry policy is `upstream::retry`; the rule for response heads is
//! `upstream::response_head`; the rules for headers are `forwarding`.

pub mod observe;

use crate::diagnostics::access_log;
use crate::diagnostics::sink::InFlight;
use crate::guard::body::BodyState;
use crate::response::delivery::Buffers;
use crate::response::header_edits::Edits;
use crate::rules::forwarding;
use crate::runtime::{Runtime, Shared};
use crate::telemetry::classify;
use crate::telemetry::vocabulary::UpstreamErrorKind;
use crate::upstream;
use crate::upstream::response_body::Broken;
use crate::upstream::response_head::ResponseHead;
use crate::upstream::retry::Tries;
use observe::Observed;
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// What a request learns on its way, in every loop.
pub struct RequestCtx {
    /// The config generation this request runs under, for all of its steps.
    pub rt: Arc<Runtime>,
    pub start: Instant,
    pub request_id: String,
    /// The final status when the proxy answered itself (limits, static, errors).
    pub status: u16,
    /// The servers tried, the one chosen, and the error if none answered.
    pub tries: Tries,
    /// A streamed request body's count (Pingora's loop).
    pub body: BodyState,
    /// What the response told: route, release, denial, sample.
    pub obs: Observed,
    /// The upstream pool the request's location sends it to (`Runtime::pool`).
    pub pool: usize,
    /// The location's response header rules, filled for this request.
    pub edits: Option<Box<Edits>>,
    /// The location's `set_headers`, filled for this request (`request_head::Forward::set`).
    pub set_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Keeps the sink's writer receiving at shutdown until this request has been logged.
    _in_flight: InFlight,
}

impl RequestCtx {
    /// A request under the current config generation.
    pub fn new(shared: &Shared) -> RequestCtx {
        RequestCtx::under(shared, shared.runtime.load_full())
    }

    /// A request under the config generation `rt`.
    pub fn under(shared: &Shared, rt: Arc<Runtime>) -> RequestCtx {
        RequestCtx {
            rt,
            start: Instant::now(),
            request_id: String::new(),
            status: 0,
            tries: Tries::default(),
            body: BodyState::default(),
            obs: Observed::default(),
            pool: 0,
            edits: None,
            set_headers: Vec::new(),
            _in_flight: shared.sink.request(),
        }
    }
}

/// What a loop knows of a request when it ends, beyond its context.
pub struct Ending<'a> {
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    pub client: Option<IpAddr>,
    pub status: u16,
    /// The client's request as a header map, for the sample: always on Pingora's loop, and on
    /// the relay's only for a denial (the only case a sample is taken).
    pub request: Option<&'a RequestHeader>,
}

/// Records a finished request: route and status counts, the denial's counts, a sample when the
/// sampler takes it, and the access-log line.
pub fn finish(shared: &Shared, ctx: &RequestCtx, e: Ending<'_>) {
    let obs = &ctx.obs;
    let seconds = ctx.start.elapsed().as_secs_f64();
    let route = observe::route_for(shared, obs, e.path);
    observe::record(&shared.metrics, &route, e.status, seconds, obs);
    observe::diagnose(shared, &route, e.status, obs);
    if let Some(req) = e.request {
        observe::sample(shared, req, &route, seconds, obs, &ctx.request_id);
    }
    if ctx.rt.access_log {
        access_log::write(access_log::Entry {
            method: e.method,
            path: e.path,
            client: e.client,
            request_id: &ctx.request_id,
            obs,
            route: &route.label,
            status: e.status,
            seconds,
        });
    }
}

/// What Django's response head tells telemetry, in the loops that read it raw: the route, the
/// release, on a 5xx a `PermissionError` the companion marked, and on a denial its
/// classification (`req`: the client's request, which the relay builds only for a denial).
pub fn response_seen(
    shared: &Shared,
    rt: &Runtime,
    head: &ResponseHead<'_, '_>,
    req: Option<&RequestHeader>,
    obs: &mut Observed,
) {
    if !rt.telemetry {
        return;
    }
    let c = &head.context;
    observe::observe_context(shared, obs, c.route, c.release);
    if head.status >= 500 {
        observe::observe_filesystem(obs, c.kind, c.fs_path, c.run_as);
    }
    if head.is_denial(&rt.context.login_paths) {
        if let (Some(req), Some(resp)) = (req, head.denial_head()) {
            observe::observe_denial(shared, rt, req, &resp, obs);
        }
    }
}

/// What happens to a final response head held as a header map (Pingora's loop, which takes
/// only upgrades): it is observed for telemetry, then its context headers are stripped. The
/// other loops read Django's raw head (`ResponseHead::read`, then `response_seen`).
pub fn response_head_seen(
    shared: &Shared,
    rt: &Runtime,
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    obs: &mut Observed,
) {
    if rt.telemetry {
        let names = &rt.context;
        let header = |n: &str| resp.headers.get(n).map(|v| v.as_bytes());
        let (route, release) = (header(names.route.as_str()), header(names.release.as_str()));
        observe::observe_context(shared, obs, route, release);
        let status = resp.status.as_u16();
        let marked = resp.headers.contains_key(&names.kind);
        let location = header(http::header::LOCATION.as_str());
        if classify::is_denial(status, marked, location, &names.login_paths) {
            observe::observe_denial(shared, rt, req, resp, obs);
        }
        if status >= 500 {
            let kind = header(names.kind.as_str());
            let (path, run_as) = (
                header(classify::PATH_HEADER),
                header(classify::RUN_AS_HEADER),
            );
            observe::observe_filesystem(obs, kind, path, run_as);
        }
    }
    forwarding::strip_context_from_response(resp, &rt.context);
}

/// What a body's delivery takes from the process (the buffers' memory budget, the metrics)
/// and from the request's config generation (temp directory, cap, the pool's read timeout).
pub fn buffers<'a>(shared: &'a Shared, rt: &'a Runtime, pool: usize) -> Buffers<'a> {
    Buffers {
        budget: &shared.buffers,
        temp_dir: &rt.temp_dir,
        cap: rt.max_buffered_bytes,
        read_timeout: rt.pool(pool).timeouts.read,
        metrics: &shared.metrics,
    }
}

/// Counts a response body broken off by Django (a client that went away is not an upstream
/// error).
pub fn body_broken(shared: &Shared, pool: &str, broken: Broken) {
    if let Broken::Upstream(kind) = broken {
        shared.metrics.count_upstream_error(pool, kind);
    }
}

/// Counts a failure to get an answer from Django (once: `tries.counted` says whether a connect
/// failure on the way already was) and returns the status the client gets.
pub fn upstream_failed(shared: &Shared, pool: &str, kind: UpstreamErrorKind, tries: &Tries) -> u16 {
    if !tries.counted {
        shared.metrics.count_upstream_error(pool, kind);
    }
    upstream::error_status(kind)
}
