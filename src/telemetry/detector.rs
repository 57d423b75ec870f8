//! The spike detector's background tick: counter deltas per (route, status) into `spike::Series`,
//! the spike gauges, spike records for the sink, and the state behind `/debug/authz`. The tick
//! itself runs in `background::spike_tick`.
//!
//! Longer than 400 lines because the spike records and the console's history are built from the
//! detector's state under the same lock that the tick holds.

use crate::clock::rfc3339_millis;
use crate::telemetry::metrics::{Metrics, RouteStats};
use crate::telemetry::spike::{Series, Tick, Tuning};
use crate::telemetry::vocabulary::{Kind, DENIAL_STATUSES, DENIAL_STATUS_LABELS};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A permission seen in a spike.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PermissionCount {
    pub permission: String,
    pub count: u64,
    /// First denied after the last release change: the signature of a migration not run.
    pub new_since_release: bool,
}

/// A kind seen in a spike.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KindCount {
    pub kind: &'static str,
    pub count: u64,
}

/// A spike that began.
#[derive(Debug, Clone, Serialize)]
pub struct SpikeRecord {
    pub ts: String,
    pub route: String,
    pub status: u16,
    pub rate: f64,
    pub baseline: f64,
    pub score: f64,
    pub release: Option<String>,
    pub release_changed_s_ago: Option<f64>,
    pub top_permissions: Vec<PermissionCount>,
    pub top_kinds: Vec<KindCount>,
}

const STATUSES: [u16; N] = DENIAL_STATUSES;
/// Per-status arrays: 401, 403, 302.
const N: usize = DENIAL_STATUSES.len();
/// Entries in the top lists of records and /debug/authz.
const TOP: usize = 5;
/// Ticks of rate and baseline kept per route and status for the console's chart (10 minutes
/// at the default 1 s tick); only for routes that have had a denial of that status.
const HISTORY: usize = 600;

/// One tick of a series, for the console.
#[derive(Debug, Clone, Copy)]
struct Point {
    at: u32,
    rate: f32,
    baseline: f32,
    spike: bool,
}

/// One tick's deltas for a route.
#[derive(Default)]
struct Deltas {
    kinds: [[u64; 5]; N],
    permissions: Vec<(Arc<str>, u64)>,
}

struct RouteState {
    stats: Arc<RouteStats>,
    series: [Series; N],
    last_kinds: [[u64; 5]; N],
    last_permissions: HashMap<Arc<str>, u64>,
    /// The last `window` ticks of deltas, for the top lists.
    window: VecDeque<Deltas>,
    last: [Option<Tick>; N],
    spike_since: [Option<SystemTime>; N],
    /// Gauges exist once the route has had a denial of that status.
    seen: [bool; N],
    /// Seconds after the detector started that this route was first seen, and whether its
    /// past counted as known-zero (for /debug/authz).
    created_after: f64,
    zero_history: bool,
    history: [VecDeque<Point>; N],
}

/// The detector state of every route.
pub struct Detector {
    /// Replaced by a reload (`set_tuning`); each tick reads it once.
    tuning: Mutex<Tuning>,
    started: Instant,
    routes: Mutex<HashMap<Arc<str>, RouteState>>,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Detector {
    pub fn new(tuning: Tuning) -> Self {
        Detector {
            tuning: Mutex::new(tuning),
            started: Instant::now(),
            routes: Mutex::new(HashMap::new()),
        }
    }

    pub fn tuning(&self) -> Tuning {
        *crate::sync::lock(&self.tuning)
    }

    /// New tuning from a reload: the series keep what they learned; the window and the
    /// thresholds apply from the next tick.
    pub fn set_tuning(&self, tuning: Tuning) {
        *crate::sync::lock(&self.tuning) = tuning;
    }

    /// One tick over every route; returns the records of spikes that began.
    pub fn tick(&self, metrics: &Metrics, now: SystemTime) -> Vec<SpikeRecord> {
        let t = self.tuning();
        let may_alarm = self.started.elapsed().as_secs_f64() >= t.window as f64 * t.tick_secs;
        let mut records = Vec::new();
        let mut routes = crate::sync::lock(&self.routes);
        for stats in metrics.routes.all() {
            // A route first seen after the detector's warm-up has a known-zero past.
            let fresh = || {
                if may_alarm {
                    Series::with_zero_history(&t)
                } else {
                    Series::new(&t)
                }
            };
            let state = routes
                .entry(stats.label.clone())
                .or_insert_with(|| RouteState {
                    stats: stats.clone(),
                    series: std::array::from_fn(|_| fresh()),
                    last_kinds: [[0; 5]; N],
                    last_permissions: HashMap::new(),
                    window: VecDeque::with_capacity(t.window),
                    last: [None; N],
                    spike_since: [None; N],
                    seen: [false; N],
                    created_after: self.started.elapsed().as_secs_f64(),
                    zero_history: may_alarm,
                    history: std::array::from_fn(|_| VecDeque::new()),
                });
            let deltas = state.read_deltas();
            let counts = deltas.kinds.map(|k| k.iter().sum::<u64>());
            // The window (for the top lists) includes this tick from here on.
            state.window.push_back(deltas);
            if state.window.len() > t.window {
                state.window.pop_front();
            }
            for (s, status) in STATUSES.iter().enumerate() {
                let count = counts[s];
                if count > 0 {
                    state.seen[s] = true;
                }
                if !state.seen[s] {
                    continue;
                }
                let tick = state.series[s].tick(count, &t, may_alarm);
                state.last[s] = Some(tick);
                let h = &mut state.history[s];
                if h.len() >= HISTORY {
                    h.pop_front();
                }
                h.push_back(Point {
                    at: unix(now) as u32,
                    rate: tick.rate as f32,
                    baseline: tick.baseline as f32,
                    spike: tick.active,
                });
                let labels = [&*state.stats.label, DENIAL_STATUS_LABELS[s]];
                metrics
                    .denial_rate
                    .with_label_values(&labels)
                    .set(tick.rate);
                metrics
                    .denial_baseline
                    .with_label_values(&labels)
                    .set(tick.baseline);
                metrics
                    .spike_score
                    .with_label_values(&labels)
                    .set(tick.score);
                metrics
                    .spike_active
                    .with_label_values(&labels)
                    .set(i64::from(tick.active));
                state.stats.spiking[s].store(tick.active, Ordering::Relaxed);
                if tick.started {
                    metrics.spikes_total.with_label_values(&labels).inc();
                    state.spike_since[s] = Some(now);
                    records.push(state.spike_record(metrics, *status, s, &tick, now));
                }
                if tick.cleared {
                    state.spike_since[s] = None;
                }
            }
        }
        records
    }

    /// One JSON object per route and status seen so far: the common fields (route, status,
    /// rate, baseline, score, spike, top lists), plus what `extra` adds.
    fn per_series(
        &self,
        metrics: &Metrics,
        mut extra: impl FnMut(&RouteState, usize, &mut serde_json::Map<String, serde_json::Value>),
    ) -> Vec<serde_json::Value> {
        let routes = crate::sync::lock(&self.routes);
        let mut out = Vec::new();
        for state in routes.values() {
            for (s, status) in STATUSES.iter().enumerate() {
                let Some(tick) = state.last[s] else { continue };
                let serde_json::Value::Object(mut v) = serde_json::json!({
                    "route": &*state.stats.label,
                    "status": status,
                    "rate": tick.rate,
                    "baseline": tick.baseline,
                    "score": tick.score,
                    "spike": tick.active,
                    "spike_since": state.spike_since[s].map(rfc3339_millis),
                    "top_permissions": state.view().top_permissions(metrics),
                    "top_kinds": state.view().top_kinds(s),
                }) else {
                    continue;
                };
                extra(state, s, &mut v);
                out.push(serde_json::Value::Object(v));
            }
        }
        out
    }

    /// The console's series: per route and status, `[unix, rate, baseline, spike]` per tick
    /// for the last `HISTORY` ticks, spiking routes first, then by rate.
    pub fn history(&self, metrics: &Metrics) -> Vec<serde_json::Value> {
        let mut out = self.per_series(metrics, |state, s, v| {
            let points: Vec<(u32, f32, f32, u8)> = state.history[s]
                .iter()
                .map(|p| (p.at, p.rate, p.baseline, u8::from(p.spike)))
                .collect();
            v.insert("points".into(), serde_json::json!(points));
        });
        out.sort_by(|a, b| {
            let key = |v: &serde_json::Value| {
                (
                    v["spike"].as_bool().unwrap_or(false),
                    v["rate"].as_f64().unwrap_or(0.0),
                )
            };
            key(b)
                .partial_cmp(&key(a))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        out
    }

    /// What `/debug/authz` shows per route and status, with how the baseline was learned.
    pub fn snapshot(&self, metrics: &Metrics) -> Vec<serde_json::Value> {
        let mut out = self.per_series(metrics, |state, s, v| {
            let (learned, mean) = state.series[s].learning();
            v.insert(
                "first_seen_after_start_s".into(),
                state.created_after.into(),
            );
            v.insert("zero_history".into(), state.zero_history.into());
            v.insert("ticks_learned".into(), learned.into());
            v.insert("baseline_per_tick".into(), mean.into());
        });
        out.sort_by(|a, b| {
            let key = |v: &serde_json::Value| {
                (
                    v["route"].as_str().unwrap_or("").to_string(),
                    v["status"].as_u64(),
                )
            };
            key(a).cmp(&key(b))
        });
        out
    }
}

impl RouteState {
    fn read_deltas(&mut self) -> Deltas {
        let mut d = Deltas::default();
        for s in 0..2 {
            for k in 0..5 {
                let now = self.stats.denied[s][k].load(Ordering::Relaxed);
                d.kinds[s][k] = now.saturating_sub(self.last_kinds[s][k]);
                self.last_kinds[s][k] = now;
            }
        }
        if d.kinds.iter().flatten().any(|c| *c > 0) {
            for (perm, total) in self.stats.permission_totals() {
                let last = self
                    .last_permissions
                    .insert(perm.clone(), total)
                    .unwrap_or(0);
                if total > last {
                    d.permissions.push((perm, total - last));
                }
            }
        }
        d
    }

    fn view(&self) -> WindowView<'_> {
        WindowView {
            window: &self.window,
        }
    }

    fn spike_record(
        &self,
        metrics: &Metrics,
        status: u16,
        s: usize,
        tick: &Tick,
        now: SystemTime,
    ) -> SpikeRecord {
        let view = self.view();
        let changed = metrics.release.changed_at();
        SpikeRecord {
            ts: rfc3339_millis(now),
            route: self.stats.label.to_string(),
            status,
            rate: tick.rate,
            baseline: tick.baseline,
            score: tick.score,
            release: metrics.release.current().map(|r| r.to_string()),
            release_changed_s_ago: (changed > 0.0).then(|| (unix(now) - changed).max(0.0)),
            top_permissions: view.top_permissions(metrics),
            top_kinds: view.top_kinds(s),
        }
    }
}

/// Top lists over a window of deltas.
struct WindowView<'a> {
    window: &'a VecDeque<Deltas>,
}

impl WindowView<'_> {
    fn top_permissions(&self, metrics: &Metrics) -> Vec<PermissionCount> {
        let mut sum: HashMap<&Arc<str>, u64> = HashMap::new();
        for d in self.window {
            for (p, c) in &d.permissions {
                *sum.entry(p).or_default() += c;
            }
        }
        let changed = metrics.release.changed_at();
        let mut v: Vec<PermissionCount> = sum
            .into_iter()
            .map(|(p, c)| PermissionCount {
                permission: p.to_string(),
                count: c,
                new_since_release: changed > 0.0
                    && metrics
                        .permissions
                        .first_seen(p)
                        .is_some_and(|first| first as f64 >= changed.floor()),
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then(a.permission.cmp(&b.permission)));
        v.truncate(TOP);
        v
    }

    fn top_kinds(&self, s: usize) -> Vec<KindCount> {
        let mut v: Vec<KindCount> = Kind::ALL
            .iter()
            .enumerate()
            .map(|(k, kind)| KindCount {
                kind: kind.label(),
                count: self.window.iter().map(|d| d.kinds[s][k]).sum(),
            })
            .filter(|k| k.count > 0)
            .collect();
        v.sort_by_key(|k| std::cmp::Reverse(k.count));
        v
    }
}
