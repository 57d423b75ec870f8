//! Prometheus metrics in a private registry; per-route handles are resolved once and cached.
//!
//! The request path only touches atomics: `RouteStats` holds the counters for one route label,
//! created once when the label is first seen (bounded by `metrics.max_routes`).

use crate::telemetry::sketch::UserSketch;
use arc_swap::ArcSwapOption;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Why a request was refused before reaching Django.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    HeaderTooLarge,
    TooManyHeaders,
    UriTooLong,
    BodyTooLarge,
    BadRequest,
    ConflictingLength,
    HeaderTimeout,
    BadPath,
    LengthRequired,
    BadHost,
    MethodNotAllowed,
    BodyBufferFull,
}

impl RejectReason {
    pub const ALL: [RejectReason; 12] = [
        RejectReason::HeaderTooLarge,
        RejectReason::TooManyHeaders,
        RejectReason::UriTooLong,
        RejectReason::BodyTooLarge,
        RejectReason::BadRequest,
        RejectReason::ConflictingLength,
        RejectReason::HeaderTimeout,
        RejectReason::BadPath,
        RejectReason::LengthRequired,
        RejectReason::BadHost,
        RejectReason::MethodNotAllowed,
        RejectReason::BodyBufferFull,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RejectReason::HeaderTooLarge => "header_too_large",
            RejectReason::TooManyHeaders => "too_many_headers",
            RejectReason::UriTooLong => "uri_too_long",
            RejectReason::BodyTooLarge => "body_too_large",
            RejectReason::BadRequest => "bad_request",
            RejectReason::ConflictingLength => "conflicting_length",
            RejectReason::HeaderTimeout => "header_timeout",
            RejectReason::BadPath => "bad_path",
            RejectReason::LengthRequired => "length_required",
            RejectReason::BadHost => "bad_host",
            RejectReason::MethodNotAllowed => "method_not_allowed",
            RejectReason::BodyBufferFull => "body_buffer_full",
        }
    }

    /// The status the client is answered with.
    pub fn status(self) -> u16 {
        match self {
            RejectReason::HeaderTooLarge | RejectReason::TooManyHeaders => 431,
            RejectReason::UriTooLong => 414,
            RejectReason::BodyTooLarge => 413,
            RejectReason::HeaderTimeout => 408,
            RejectReason::LengthRequired => 411,
            RejectReason::MethodNotAllowed => 405,
            RejectReason::BodyBufferFull => 503,
            RejectReason::BadRequest
            | RejectReason::ConflictingLength
            | RejectReason::BadPath
            | RejectReason::BadHost => 400,
        }
    }
}

/// Why talking to Django failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Reset,
    Other,
}

impl UpstreamErrorKind {
    const ALL: [UpstreamErrorKind; 4] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Reset,
        UpstreamErrorKind::Other,
    ];
    pub fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::Other => "other",
        }
    }
}

/// The denial kind, as Django's companion or the fallback classifier reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Permission,
    Csrf,
    Login,
    Object,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Permission,
        Kind::Csrf,
        Kind::Login,
        Kind::Object,
        Kind::Other,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Kind::Permission => "permission",
            Kind::Csrf => "csrf",
            Kind::Login => "login",
            Kind::Object => "object",
            Kind::Other => "other",
        }
    }
    /// Parses the `X-Authz-Kind` value; anything unknown is `other`.
    pub fn parse(v: &[u8]) -> Kind {
        let v = v.trim_ascii();
        Kind::ALL
            .into_iter()
            .find(|k| v.eq_ignore_ascii_case(k.label().as_bytes()))
            .unwrap_or(Kind::Other)
    }
}

/// Whether the denied request carried a known user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authn {
    Authenticated,
    Anonymous,
    Unknown,
}

impl Authn {
    pub const ALL: [Authn; 3] = [Authn::Authenticated, Authn::Anonymous, Authn::Unknown];
    pub fn label(self) -> &'static str {
        match self {
            Authn::Authenticated => "authenticated",
            Authn::Anonymous => "anonymous",
            Authn::Unknown => "unknown",
        }
    }
}

/// `1xx`..`5xx` as an index 0..=4.
pub fn status_class(status: u16) -> usize {
    ((status / 100).clamp(1, 5) - 1) as usize
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The counters of one route label, resolved once.
pub struct RouteStats {
    pub label: Arc<str>,
    requests: [IntCounter; 5],
    /// `[status 401|403][kind][authn]`, resolved on first use.
    denials: [OnceLock<IntCounter>; 30],
    permissions: Mutex<HashMap<Arc<str>, IntCounter>>,
    /// Distinct denied users over the last five minutes.
    pub users: Mutex<Option<Box<UserSketch>>>,
    /// Denials by `[status 401|403][kind]`, read by the spike detector's tick.
    pub denied: [[AtomicU64; 5]; 2],
    /// Set by the spike detector while a spike is on, per status; read by the sampler.
    pub spiking: [AtomicBool; 2],
    family: Arc<Families>,
}

impl RouteStats {
    fn new(label: Arc<str>, family: Arc<Families>) -> Self {
        let requests = STATUS_CLASSES.map(|c| family.requests.with_label_values(&[&label, c]));
        RouteStats {
            label,
            requests,
            denials: std::array::from_fn(|_| OnceLock::new()),
            permissions: Mutex::new(HashMap::new()),
            users: Mutex::new(None),
            denied: Default::default(),
            spiking: Default::default(),
            family,
        }
    }

    /// Counts one request with its final status: one atomic add.
    #[inline]
    pub fn count_request(&self, status: u16) {
        self.requests[status_class(status)].inc();
    }

    /// Counts one 401/403 with its kind and authn.
    pub fn count_denial(&self, status: u16, kind: Kind, authn: Authn) {
        let s = usize::from(status == 403);
        let k = Kind::ALL.iter().position(|x| *x == kind).unwrap_or(4);
        let a = Authn::ALL.iter().position(|x| *x == authn).unwrap_or(2);
        self.denied[s][k].fetch_add(1, Ordering::Relaxed);
        let idx = s * 15 + k * 3 + a;
        self.denials[idx]
            .get_or_init(|| {
                let status = if status == 403 { "403" } else { "401" };
                self.family.denials.with_label_values(&[
                    &self.label,
                    status,
                    kind.label(),
                    authn.label(),
                ])
            })
            .inc();
    }

    /// Counts one denied permission (already bounded to a known label).
    pub fn count_permission(&self, permission: &Arc<str>) {
        let mut map = match self.permissions.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(c) = map.get(permission) {
            c.inc();
            return;
        }
        let c = self
            .family
            .permission_denials
            .with_label_values(&[&self.label, permission]);
        c.inc();
        map.insert(permission.clone(), c);
    }

    /// Denials of `status` (401 or 403) on this route so far.
    pub fn denials_of(&self, status: u16) -> u64 {
        self.denied[usize::from(status == 403)]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Totals of denied permissions on this route, for the detector's deltas.
    pub fn permission_totals(&self) -> Vec<(Arc<str>, u64)> {
        let map = match self.permissions.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.iter().map(|(k, c)| (k.clone(), c.get())).collect()
    }

    /// Adds one denied user (a keyed hash) to this route's five-minute sketch.
    pub fn add_user(&self, user_hash: u64, now_secs: u64) {
        let mut guard = match self.users.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard
            .get_or_insert_with(|| Box::new(UserSketch::new()))
            .add(user_hash, now_secs);
    }
}

/// The metric families whose series are made per label value.
struct Families {
    requests: IntCounterVec,
    denials: IntCounterVec,
    permission_denials: IntCounterVec,
}

/// A bounded set of route labels; past the bound every new label is `other`.
pub struct RouteRegistry {
    max: AtomicUsize,
    map: RwLock<HashMap<Arc<str>, Arc<RouteStats>>>,
    other: Arc<RouteStats>,
    family: Arc<Families>,
    overflow: IntCounter,
}

impl RouteRegistry {
    /// The stats for `label`, registering it while under the bound.
    pub fn get(&self, label: &str) -> Arc<RouteStats> {
        if let Ok(map) = self.map.read() {
            if let Some(s) = map.get(label) {
                return s.clone();
            }
            if map.len() >= self.max.load(Ordering::Relaxed) {
                self.overflow.inc();
                return self.other.clone();
            }
        }
        let Ok(mut map) = self.map.write() else {
            return self.other.clone();
        };
        if let Some(s) = map.get(label) {
            return s.clone();
        }
        if map.len() >= self.max.load(Ordering::Relaxed) {
            self.overflow.inc();
            return self.other.clone();
        }
        let key: Arc<str> = Arc::from(label);
        let stats = Arc::new(RouteStats::new(key.clone(), self.family.clone()));
        map.insert(key, stats.clone());
        stats
    }

    /// The catch-all `other` route.
    pub fn other(&self) -> Arc<RouteStats> {
        self.other.clone()
    }

    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Every registered route, `other` included.
    pub fn all(&self) -> Vec<Arc<RouteStats>> {
        let mut v: Vec<_> = self
            .map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.push(self.other.clone());
        v
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An interned permission label and the unix second it was first denied.
type Interned = (Arc<str>, u64);

/// A bounded set of permission labels (`app_label.codename`).
pub struct PermissionRegistry {
    max: AtomicUsize,
    set: RwLock<HashMap<Box<str>, Interned>>,
    other: Arc<str>,
    overflow: IntCounter,
}

impl PermissionRegistry {
    /// The interned label for `perm`, or `other` past the bound.
    pub fn intern(&self, perm: &str) -> Arc<str> {
        if let Ok(set) = self.set.read() {
            if let Some((p, _)) = set.get(perm) {
                return p.clone();
            }
        }
        let Ok(mut set) = self.set.write() else {
            return self.other.clone();
        };
        if let Some((p, _)) = set.get(perm) {
            return p.clone();
        }
        if set.len() >= self.max.load(Ordering::Relaxed) {
            self.overflow.inc();
            return self.other.clone();
        }
        let p: Arc<str> = Arc::from(perm);
        set.insert(Box::from(perm), (p.clone(), crate::clock::unix_now().0));
        p
    }

    /// The unix second `perm` was first denied, if it ever was.
    pub fn first_seen(&self, perm: &str) -> Option<u64> {
        self.set.read().ok()?.get(perm).map(|(_, t)| *t)
    }

    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }
}

/// All of the proxy's metrics.
pub struct Metrics {
    registry: Registry,
    pub routes: RouteRegistry,
    pub permissions: PermissionRegistry,
    duration: [Histogram; 5],
    upstream_errors: [IntCounter; 4],
    rejected: [IntCounter; 12],
    /// Static files that could not be served: `permission` (EACCES, answered 403), `io`.
    static_errors: [IntCounter; 2],
    /// Requests handed to Django by `relay` (0) and by Pingora's proxy (1).
    proxied_by: [IntCounter; 2],
    reload_ok: IntCounter,
    reload_error: IntCounter,
    pub generation: IntGauge,
    affected_users: IntGaugeVec,
    release_info: IntGaugeVec,
    release_changed: Gauge,
    release: ArcSwapOption<String>,
    release_lock: Mutex<()>,
    /// The last release changes (unix time, release), for the console's time axis.
    release_changes: Mutex<std::collections::VecDeque<(f64, String)>>,
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
    anonymous_with_session: [IntCounter; 8],
    /// `authz_edge_config_restart_required{key}`: 1 while the loaded config changes a key the
    /// running process cannot apply (`runtime::restart_keys`).
    restart_required: IntGaugeVec,
}

/// Labels of `authz_edge_anonymous_session_denials_total{reason}`.
pub const ANONYMOUS_REASONS: [&str; 8] = [
    "session_undecodable",
    "session_unknown",
    "backend_removed",
    "no_auth_middleware",
    "credentials_rejected",
    "session_without_user",
    "session_invalidated",
    "unexplained",
];

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
            "Failures talking to Django, by kind.",
            &["kind"],
        );
        let proxied_by = counter_vec(
            &r,
            "authz_edge_proxied_requests_total",
            "Requests by the proxy loop that took them: fast (authz-edge's HTTP/1 relay) or pingora (HTTP/2, upgrades, request bodies without a length or over 64 KiB, static files, redirects, refusals after parsing).",
            &["path"],
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
        let release_info = int_gauge_vec(
            &r,
            "authz_edge_release_info",
            "1 for the release Django reports now.",
            &["release"],
        );
        let release_changed = register(
            &r,
            Gauge::new(
                "authz_edge_release_changed_timestamp_seconds",
                "Unix time at which Django last reported a new release.",
            )
            .expect("static metric definition"),
        );
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
        let restart_required = int_gauge_vec(
            &r,
            "authz_edge_config_restart_required",
            "1 for each key whose new value a reload could not apply: it takes a restart or --upgrade.",
            &["key"],
        );
        for outcome in ["written", "rate_limited", "queue_full", "sink_error"] {
            samples.with_label_values(&[outcome]);
        }

        let family = Arc::new(Families {
            requests,
            denials,
            permission_denials,
        });
        let routes = RouteRegistry {
            max: AtomicUsize::new(max_routes),
            map: RwLock::new(HashMap::new()),
            other: Arc::new(RouteStats::new(Arc::from("other"), family.clone())),
            family,
            overflow: overflow.with_label_values(&["route"]),
        };
        let permissions = PermissionRegistry {
            max: AtomicUsize::new(max_permissions),
            set: RwLock::new(HashMap::new()),
            other: Arc::from("other"),
            overflow: overflow.with_label_values(&["permission"]),
        };
        Metrics {
            routes,
            permissions,
            duration: STATUS_CLASSES.map(|c| duration_vec.with_label_values(&[c])),
            upstream_errors: UpstreamErrorKind::ALL
                .map(|k| upstream.with_label_values(&[k.label()])),
            rejected: RejectReason::ALL.map(|k| rejected.with_label_values(&[k.label()])),
            static_errors: ["permission", "io"].map(|k| static_errors.with_label_values(&[k])),
            proxied_by: ["fast", "pingora"].map(|p| proxied_by.with_label_values(&[p])),
            reload_ok: reloads.with_label_values(&["ok"]),
            reload_error: reloads.with_label_values(&["error"]),
            generation,
            affected_users,
            release_info,
            release_changed,
            release: ArcSwapOption::empty(),
            release_lock: Mutex::new(()),
            release_changes: Mutex::new(std::collections::VecDeque::new()),
            samples,
            sink_queue_depth,
            spike_active,
            spike_score,
            spikes_total,
            denial_rate,
            denial_baseline,
            finding_active,
            anonymous_with_session,
            restart_required,
            registry: r,
        }
    }

    #[inline]
    pub fn observe_duration(&self, status: u16, seconds: f64) {
        self.duration[status_class(status)].observe(seconds);
    }

    pub fn count_upstream_error(&self, kind: UpstreamErrorKind) {
        let i = UpstreamErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(3);
        self.upstream_errors[i].inc();
    }

    /// Counts a request by the proxy loop that took it.
    pub fn count_proxied(&self, fast: bool) {
        self.proxied_by[usize::from(!fast)].inc();
    }

    /// Sets `authz_edge_config_restart_required{key}`: 1 while the loaded config changes `key`
    /// and the process cannot apply it.
    pub fn set_restart_required(&self, key: &str, needed: bool) {
        self.restart_required
            .with_label_values(&[key])
            .set(i64::from(needed));
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
        let i = RejectReason::ALL
            .iter()
            .position(|k| *k == reason)
            .unwrap_or(4);
        self.rejected[i].inc();
    }

    pub fn count_reload(&self, ok: bool) {
        if ok {
            self.reload_ok.inc()
        } else {
            self.reload_error.inc()
        }
    }

    /// Notes the release Django reports; only a change takes the slow path.
    pub fn observe_release(&self, release: &str, now_unix: impl FnOnce() -> f64) {
        if self.release.load().as_deref().map(String::as_str) == Some(release) {
            return;
        }
        let _guard = self.release_lock.lock();
        let old = self.release.load_full();
        if old.as_deref().map(String::as_str) == Some(release) {
            return;
        }
        // The first release seen since start is not a change: what came before is unknown.
        if let Some(old) = old {
            let _ = self.release_info.remove_label_values(&[old.as_str()]);
            let at = now_unix();
            self.release_changed.set(at);
            if let Ok(mut c) = self.release_changes.lock() {
                if c.len() >= 16 {
                    c.pop_front();
                }
                c.push_back((at, release.to_string()));
            }
        }
        self.release_info.with_label_values(&[release]).set(1);
        self.release.store(Some(Arc::new(release.to_string())));
    }

    /// Whether `v` is the release already recorded (the common case: checked before validating).
    pub fn is_current_release(&self, v: &[u8]) -> bool {
        self.release
            .load()
            .as_deref()
            .is_some_and(|r| r.as_bytes() == v)
    }

    /// The last release changes, oldest first: (unix time, new release).
    pub fn release_changes(&self) -> Vec<(f64, String)> {
        self.release_changes
            .lock()
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The release Django reports now, if any.
    pub fn current_release(&self) -> Option<Arc<String>> {
        self.release.load_full()
    }

    /// Unix seconds of the last release change, or 0 when none was seen since start.
    pub fn release_changed_at(&self) -> f64 {
        self.release_changed.get()
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

    #[test]
    fn release_change_replaces_the_series() {
        let m = Metrics::new(3, 2);
        m.observe_release("v1", || 100.0);
        m.observe_release("v1", || 200.0);
        assert_eq!(
            m.release_changed_at(),
            0.0,
            "the first release seen is not a change"
        );
        m.observe_release("v2", || 300.0);
        let text = String::from_utf8(m.render(0)).expect("utf8");
        assert!(text.contains("authz_edge_release_info{release=\"v2\"} 1"));
        assert!(!text.contains("release=\"v1\""));
        assert_eq!(m.release_changed_at(), 300.0);
    }

    #[test]
    fn kind_parses_case_insensitively() {
        assert_eq!(Kind::parse(b" CSRF "), Kind::Csrf);
        assert_eq!(Kind::parse(b"nonsense"), Kind::Other);
    }
}
