//! Prometheus metrics in a private registry; per-route handles are resolved once and cached.
//!
//! The request path only touches atomics: `RouteStats` (`labels`) holds the counters for one
//! route label, created once when the label is first seen (bounded by `metrics.max_routes`).
//! The label values are in `vocabulary`, the release state in `release`.
//!
//! Longer than 400 lines because it defines every metric of the registry in one place, each
//! with its help text, and the unit tests of their bounds.

use crate::telemetry::labels::Families;
pub use crate::telemetry::labels::{PermissionRegistry, RouteRegistry, RouteStats};
pub use crate::telemetry::release::Release;
use crate::telemetry::vocabulary::*;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All of the proxy's metrics.
pub struct Metrics {
    registry: Registry,
    pub routes: RouteRegistry,
    pub permissions: PermissionRegistry,
    duration: [Histogram; 5],
    /// `[upstream]`'s (pool `default`), by kind; other pools through `upstream_errors_vec`.
    upstream_errors: [IntCounter; 4],
    upstream_errors_vec: prometheus::IntCounterVec,
    rejected: [IntCounter; 13],
    /// Static files that could not be served: `permission` (EACCES, answered 403), `io`.
    static_errors: [IntCounter; 2],
    /// Requests by the loop that took them, indexed by `ProxyLoop`.
    proxied_by: [IntCounter; 3],
    /// `authz_edge_request_bodies_spooled_total`.
    spooled_bodies: IntCounter,
    /// `authz_edge_response_bytes_buffered_total{where}`: memory, file.
    response_buffered: [IntCounter; 2],
    /// `authz_edge_client_connections{protocol}`, indexed by `ConnProtocol`.
    pub client_connections: [IntGauge; 4],
    /// `authz_edge_connections_shed_total{reason}`, indexed by `ShedReason`.
    pub connections_shed: [IntCounter; 3],
    reload_ok: IntCounter,
    reload_error: IntCounter,
    pub generation: IntGauge,
    affected_users: IntGaugeVec,
    /// The release Django reports, and when it last changed.
    pub release: Release,
    pub samples: IntCounterVec,
    pub sink_queue_depth: IntGauge,
    pub spike_active: IntGaugeVec,
    pub spike_score: GaugeVec,
    pub spikes_total: IntCounterVec,
    pub denial_rate: GaugeVec,
    pub denial_baseline: GaugeVec,
    /// `authz_edge_finding_active{cause, route}`, set by `findings`.
    pub finding_active: IntGaugeVec,
    /// Denials of requests that carried a session cookie or credentials yet had no user, by
    /// why (the companion's reason, or `unexplained` from the edge alone).
    anonymous_with_session: [IntCounter; ANONYMOUS_REASONS.len()],
    /// Denied permissions by their state in Django (the companion's facts).
    permission_states: [IntCounter; crate::telemetry::classify::PermissionState::ALL.len()],
    /// `authz_edge_config_restart_required{key}`: 1 while the loaded config changes a key the
    /// running process cannot apply (`config::Process`).
    restart_required: IntGaugeVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    // Names are fixed and distinct, so registration cannot fail; a failure is a programming error
    // that the unit tests catch.
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::error!("metric registration failed: {e}");
    }
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    register(r, c)
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    register(r, g)
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    register(r, g)
}

impl Metrics {
    /// Builds and registers every metric; called once at start-up.
    pub fn new(max_routes: usize, max_permissions: usize) -> Self {
        let r = Registry::new();
        let requests = counter_vec(
            &r,
            "authz_edge_requests_total",
            "Requests answered, by route and status class.",
            &["route", "status_class"],
        );
        let duration_vec = register(
            &r,
            HistogramVec::new(
                HistogramOpts::new(
                    "authz_edge_request_duration_seconds",
                    "Time from the request header to the end of the response.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["status_class"],
            )
            .expect("static metric definition"),
        );
        let denials = counter_vec(
            &r,
            "authz_edge_denials_total",
            "401 and 403 responses from Django, by route, status, kind and authn.",
            &["route", "status", "kind", "authn"],
        );
        let permission_denials = counter_vec(
            &r,
            "authz_edge_permission_denials_total",
            "Denied permissions reported by Django, by route and permission.",
            &["route", "permission"],
        );
        let overflow = counter_vec(
            &r,
            "authz_edge_label_overflow_total",
            "Label values folded into `other` because a bound was reached.",
            &["label"],
        );
        let upstream = counter_vec(
            &r,
            "authz_edge_upstream_errors_total",
            "Failures talking to Django, by upstream pool (`default` is [upstream]; the others are [upstreams] keys, bounded by the config) and kind.",
            &["upstream", "kind"],
        );
        let proxied_by = counter_vec(
            &r,
            "authz_edge_proxied_requests_total",
            "Requests by the proxy loop that took them: relay (authz-edge's HTTP/1 relay), pingora (HTTP/1 upgrades, request bodies without a length or over 64 KiB, static files, redirects, refusals after parsing) or h2 (HTTP/2 streams).",
            &["proxy_loop"],
        );
        let rejected = counter_vec(
            &r,
            "authz_edge_rejected_requests_total",
            "Requests refused before reaching Django, by reason.",
            &["reason"],
        );
        let static_errors = counter_vec(
            &r,
            "authz_edge_static_errors_total",
            "Static files that could not be opened: permission (the proxy's user may not read them; answered 403, as nginx does) or io (answered 500).",
            &["reason"],
        );
        let spooled_bodies = register(
            &r,
            IntCounter::new(
                "authz_edge_request_bodies_spooled_total",
                "Request bodies past limits.body_buffer_bytes, written to a file in limits.body_temp_dir before they went to Django.",
            )
            .expect("static metric definition"),
        );
        let response_buffered = counter_vec(
            &r,
            "authz_edge_response_bytes_buffered_total",
            "Bytes of Django's responses held ahead of a slower client (upstream.buffering), by where: memory, or a temp file in limits.body_temp_dir.",
            &["where"],
        );
        let client_connections = int_gauge_vec(
            &r,
            "authz_edge_client_connections",
            "Client connections open now, by protocol (tls_handshake while the handshake runs).",
            &["protocol"],
        );
        let connections_shed = counter_vec(
            &r,
            "authz_edge_connections_shed_total",
            "Client connections closed or refused at server.max_connections (idle: the longest-idle one closed to make room; refused: a new one closed, none being idle) and HTTP/2 streams refused at the process's stream budget (h2_stream).",
            &["reason"],
        );
        let reloads = counter_vec(
            &r,
            "authz_edge_config_reloads_total",
            "Config reloads, by result.",
            &["result"],
        );
        let generation = register(
            &r,
            IntGauge::new(
                "authz_edge_config_generation",
                "Generation of the config in use; 1 at start, +1 per successful reload.",
            )
            .expect("static metric definition"),
        );
        let build = int_gauge_vec(
            &r,
            "authz_edge_build_info",
            "Always 1; the version label says which build runs.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let affected_users = int_gauge_vec(
            &r,
            "authz_edge_affected_users",
            "Distinct users denied on the route in the last 5 minutes (estimate).",
            &["route"],
        );
        let release = Release::register(&r);
        let samples = counter_vec(
            &r,
            "authz_edge_samples_total",
            "Denial samples by outcome.",
            &["outcome"],
        );
        let sink_queue_depth = register(
            &r,
            IntGauge::new(
                "authz_edge_sink_queue_depth",
                "Records waiting for the diagnostics sink.",
            )
            .expect("static metric definition"),
        );
        let spike_active = int_gauge_vec(
            &r,
            "authz_edge_spike_active",
            "1 while a spike of denials is on for the route and status.",
            &["route", "status"],
        );
        let spike_score = gauge_vec(
            &r,
            "authz_edge_spike_score",
            "How far the current denial rate stands above the baseline, in deviations.",
            &["route", "status"],
        );
        let spikes_total = counter_vec(
            &r,
            "authz_edge_spikes_total",
            "Spikes detected, by route and status.",
            &["route", "status"],
        );
        let denial_rate = gauge_vec(
            &r,
            "authz_edge_denial_rate",
            "Denials per second over the detector window.",
            &["route", "status"],
        );
        let denial_baseline = gauge_vec(
            &r,
            "authz_edge_denial_baseline",
            "The detector's baseline of denials per second.",
            &["route", "status"],
        );
        let finding_active = int_gauge_vec(
            &r,
            "authz_edge_finding_active",
            "1 while a finding (the proxy's diagnosis of a cause) is open for this cause and route, 0 once it closed.",
            &["cause", "route"],
        );
        let anonymous = counter_vec(
            &r,
            "authz_edge_anonymous_session_denials_total",
            "Denials of requests that carried a session cookie or credentials while Django had no user, by the reason Django's companion gives (unexplained: the edge alone saw a 401).",
            &["reason"],
        );
        let anonymous_with_session = ANONYMOUS_REASONS.map(|r| anonymous.with_label_values(&[r]));
        let states = counter_vec(
            &r,
            "authz_edge_permission_state_denials_total",
            "Denied permissions by their state in Django, from the companion: exists (granted to no one who asked), not_migrated (declared, no row: a migration not run), unknown (no such codename), malformed (no app label), stale_cache and replica_lag (the primary database grants it), inactive_user, no_object_backend (an object check no backend can grant), object_denied (an object policy refused).",
            &["state"],
        );
        let permission_states = crate::telemetry::classify::PermissionState::ALL
            .map(|s| states.with_label_values(&[s.label()]));
        let restart_required = int_gauge_vec(
            &r,
            "authz_edge_config_restart_required",
            "1 for each key whose new value a reload could not apply: it takes a restart or --upgrade.",
            &["key"],
        );
        for outcome in ["written", "rate_limited", "queue_full", "sink_error"] {
            samples.with_label_values(&[outcome]);
        }

        let family = Families {
            requests,
            denials,
            permission_denials,
        };
        let routes = RouteRegistry::new(max_routes, family, overflow.with_label_values(&["route"]));
        let permissions =
            PermissionRegistry::new(max_permissions, overflow.with_label_values(&["permission"]));
        Metrics {
            routes,
            permissions,
            duration: STATUS_CLASSES.map(|c| duration_vec.with_label_values(&[c])),
            upstream_errors: UpstreamErrorKind::ALL
                .map(|k| upstream.with_label_values(&[crate::config::DEFAULT_POOL, k.label()])),
            upstream_errors_vec: upstream,
            rejected: RejectReason::ALL.map(|k| rejected.with_label_values(&[k.label()])),
            static_errors: ["permission", "io"].map(|k| static_errors.with_label_values(&[k])),
            proxied_by: ProxyLoop::ALL.map(|p| proxied_by.with_label_values(&[p.label()])),
            spooled_bodies,
            response_buffered: ["memory", "file"]
                .map(|w| response_buffered.with_label_values(&[w])),
            client_connections: ConnProtocol::ALL
                .map(|p| client_connections.with_label_values(&[p.label()])),
            connections_shed: ShedReason::ALL
                .map(|r| connections_shed.with_label_values(&[r.label()])),
            reload_ok: reloads.with_label_values(&["ok"]),
            reload_error: reloads.with_label_values(&["error"]),
            generation,
            affected_users,
            release,
            samples,
            sink_queue_depth,
            spike_active,
            spike_score,
            spikes_total,
            denial_rate,
            denial_baseline,
            finding_active,
            anonymous_with_session,
            permission_states,
            restart_required,
            registry: r,
        }
    }

    #[inline]
    pub fn observe_duration(&self, status: u16, seconds: f64) {
        self.duration[status_class(status)].observe(seconds);
    }

    /// Counts a failure talking to the pool named `pool`.
    pub fn count_upstream_error(&self, pool: &str, kind: UpstreamErrorKind) {
        if pool == crate::config::DEFAULT_POOL {
            self.upstream_errors[kind as usize].inc();
        } else {
            self.upstream_errors_vec
                .with_label_values(&[pool, kind.label()])
                .inc();
        }
    }

    /// Shows a configured pool's error series at zero (the config bounds the pools).
    pub fn register_pool(&self, pool: &str) {
        for k in UpstreamErrorKind::ALL {
            let _ = self
                .upstream_errors_vec
                .with_label_values(&[pool, k.label()]);
        }
    }

    /// Counts a request body written to a file before it went to Django.
    pub fn count_spooled_body(&self) {
        self.spooled_bodies.inc();
    }

    /// Counts the bytes of a response held ahead of its client, in memory and in a file.
    pub fn count_buffered(&self, memory: u64, file: u64) {
        self.response_buffered[0].inc_by(memory);
        self.response_buffered[1].inc_by(file);
    }

    /// Counts a request by the proxy loop that took it.
    pub fn count_proxied(&self, by: ProxyLoop) {
        self.proxied_by[by as usize].inc();
    }

    /// Sets `authz_edge_config_restart_required{key}`: 1 while the loaded config changes `key`
    /// and the process cannot apply it.
    pub fn set_restart_required(&self, key: &str, needed: bool) {
        self.restart_required
            .with_label_values(&[key])
            .set(i64::from(needed));
    }

    /// Counts a denied permission by its state in Django.
    pub fn count_permission_state(&self, state: crate::telemetry::classify::PermissionState) {
        self.permission_states[state as usize].inc();
    }

    /// Counts a denial of a request that carried a session or credentials without a user.
    pub fn count_anonymous_with_session(&self, reason: &str) {
        if let Some(i) = ANONYMOUS_REASONS.iter().position(|r| *r == reason) {
            self.anonymous_with_session[i].inc();
        }
    }

    /// Counts a static file that could not be opened: for its permissions, or another error.
    pub fn count_static_error(&self, permission: bool) {
        self.static_errors[usize::from(!permission)].inc();
    }

    pub fn count_rejected(&self, reason: RejectReason) {
        self.rejected[reason as usize].inc();
    }

    pub fn count_reload(&self, ok: bool) {
        if ok {
            self.reload_ok.inc()
        } else {
            self.reload_error.inc()
        }
    }

    /// Updates the gauges that are computed rather than counted, then renders the text format.
    pub fn render(&self, now_secs: u64) -> Vec<u8> {
        for route in self.routes.all() {
            let est = route
                .users
                .lock()
                .ok()
                .and_then(|g| g.as_ref().map(|s| s.estimate(now_secs)));
            if let Some(est) = est {
                self.affected_users
                    .with_label_values(&[&route.label])
                    .set(est as i64);
            }
        }
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("metrics encoding failed: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_bounded() {
        let m = Metrics::new(3, 2);
        for i in 0..100 {
            m.routes.get(&format!("/r{i}/")).count_request(200);
        }
        assert_eq!(m.routes.len(), 3);
        let text = String::from_utf8(m.render(0)).expect("utf8");
        assert!(text.contains("authz_edge_label_overflow_total{label=\"route\"} 97"));
        assert!(text.contains("authz_edge_requests_total{route=\"other\",status_class=\"2xx\"} 97"));
    }

    #[test]
    fn permissions_are_bounded() {
        let m = Metrics::new(3, 2);
        assert_eq!(&*m.permissions.intern("a.x"), "a.x");
        assert_eq!(&*m.permissions.intern("a.y"), "a.y");
        assert_eq!(&*m.permissions.intern("a.z"), "other");
        assert_eq!(&*m.permissions.intern("a.x"), "a.x");
    }
}
