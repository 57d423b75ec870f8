//! Findings: the proxy names the likely cause of Django's denials (CONTRACT.md, "Findings").
//!
//! Each denial (and each PermissionError the companion marks, and each static file the proxy
//! may not read) becomes at most one `Signal` (`signal.rs`): a cause, a route and a subject (the
//! permission or the directory). Per (cause, route, subject) a `Candidate` keeps the last
//! minute of counts and who was affected. Once a second `tick` opens a finding when a candidate
//! has the evidence its cause needs (`Cause::needs`) and closes it when the signals stop.
//! `spike_after_release` comes from the spike detector instead, and only when no candidate on
//! the route explains the spike. Everything is bounded: candidates, findings, actors.
//!
//! A candidate starts with a known-zero past whenever it appears, also right after the proxy
//! starts: a restarted proxy names an incident that is still going on (no blind start).
//!
//! Longer than 400 lines because candidates, findings and their bounds are one state machine
//! under one lock; the rules are in `cause`, the signals in `signal`, the words in `text`.

mod cause;
pub mod signal;
mod text;

pub use cause::{Cause, Needs};
pub use signal::Signal;

use crate::clock::rfc3339_millis;
use crate::telemetry::metrics::RouteStats;
use crate::telemetry::spike::{Series, Tuning};
use prometheus::IntGaugeVec;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Candidates kept at most; the quietest one without a finding makes room.
pub const MAX_CANDIDATES: usize = 512;
/// Findings kept at most, open and closed; closed ones go first.
pub const MAX_FINDINGS: usize = 64;
/// Distinct actors remembered per candidate.
const MAX_ACTORS: usize = 256;
/// The evidence window.
pub const WINDOW_SECS: u64 = 60;
/// A finding closes after this long without a signal (or, for baseline causes, once the rate
/// is back at its baseline).
pub const QUIET_SECS: u64 = 30;
/// A release change or reload this long before the first signal is correlated with it.
const CORRELATE_SECS: f64 = 15.0 * 60.0;
/// A spike waits this long for a more specific cause before `spike_after_release` opens.
const SPIKE_GRACE_SECS: u64 = 10;
/// Detail strings remembered per candidate.
const MAX_DETAILS: usize = 4;

/// A finding, as `/debug/authz` shows it and the sink records it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    pub cause: &'static str,
    pub route: String,
    pub status: u16,
    pub permission: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    pub release: Option<String>,
    pub opened: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
    pub active: bool,
    pub denials: u64,
    pub distinct_users: u64,
    pub evidence: String,
    pub fix: String,
    #[serde(skip)]
    key: Key,
    #[serde(skip)]
    opened_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    cause: Cause,
    route: Arc<str>,
    status: u16,
    subject: Option<String>,
}

struct Candidate {
    /// Per-second counts of the last `WINDOW_SECS` seconds.
    buckets: VecDeque<(u64, u32)>,
    /// Signals since the last tick (fed to `series`).
    pending: u64,
    /// Signals since the episode began (the first after a quiet spell).
    episode: u64,
    episode_start: f64,
    last: u64,
    actors: HashMap<u64, u64>,
    details: Vec<(String, u64)>,
    companion: bool,
    source: Option<&'static str>,
    series: Series,
    open: bool,
    /// When its finding last closed (0: never): only evidence newer than that opens it again,
    /// so the window that still holds an incident's denials cannot reopen it.
    closed_at: u64,
}

impl Candidate {
    /// Signals in the window, and of those, the ones after the last close.
    fn window_count(&self, now: u64) -> (u64, u64) {
        let recent = self.buckets.iter().filter(|(s, _)| s + WINDOW_SECS > now);
        recent.fold((0, 0), |(all, new), (s, c)| {
            let c = u64::from(*c);
            (all + c, new + if *s > self.closed_at { c } else { 0 })
        })
    }

    /// Actors seen in the window after the last close.
    fn new_actors_in_window(&self, now: u64) -> usize {
        self.actors
            .values()
            .filter(|s| **s + WINDOW_SECS > now && **s > self.closed_at)
            .count()
    }

    fn top_detail(&self) -> Option<&str> {
        self.details
            .iter()
            .max_by_key(|(_, c)| *c)
            .map(|(d, _)| d.as_str())
    }
}

/// A spike the detector saw, waiting to be explained.
struct PendingSpike {
    stats: Arc<RouteStats>,
    status: u16,
    /// Unix time the spike began.
    since: f64,
    rate: f64,
    baseline: f64,
    kind: Option<String>,
    permission: Option<String>,
    /// Whether denials on the route came with the companion's headers.
    companion: bool,
    opened: bool,
}

/// A reload of the proxy's own config, for correlation.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadEvent {
    pub at: f64,
    pub generation: u64,
    pub changed: Vec<String>,
}

/// What `tick` needs from the rest of the proxy.
pub struct World<'a> {
    pub now: SystemTime,
    pub release: Option<&'a str>,
    /// Unix time of the last release change (0: none seen).
    pub release_changed_at: f64,
    pub reloads: &'a [ReloadEvent],
    pub proxy_user: (u32, u32),
    /// The spike detector's tuning now (a reload may change it): the thresholds of the baseline
    /// test of candidates.
    pub tuning: Tuning,
}

struct State {
    candidates: HashMap<Key, Candidate>,
    findings: Vec<Finding>,
    spikes: Vec<PendingSpike>,
}

/// The findings engine.
pub struct Findings {
    state: Mutex<State>,
    /// `authz_edge_finding_active{cause, route}`.
    gauge: IntGaugeVec,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Findings {
    pub fn new(gauge: IntGaugeVec) -> Self {
        Findings {
            state: Mutex::new(State {
                candidates: HashMap::new(),
                findings: Vec::new(),
                spikes: Vec::new(),
            }),
            gauge,
        }
    }

    /// The detector's tuning, ticked once a second over a 10 s window whatever the detector's.
    fn own(tuning: Tuning) -> Tuning {
        Tuning {
            tick_secs: 1.0,
            window: 10,
            ..tuning
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Counts one signal on `route` at `now` (unix seconds). Called once per denial that points
    /// to a cause: a hash lookup and a few adds under a short lock.
    pub fn observe(&self, route: &Arc<str>, s: Signal, now: f64) {
        let sec = now as u64;
        let key = Key {
            cause: s.cause,
            route: route.clone(),
            status: s.status,
            subject: s.subject,
        };
        let mut st = self.lock();
        if !st.candidates.contains_key(&key) && st.candidates.len() >= MAX_CANDIDATES {
            // Make room: the quietest candidate without an open finding.
            let victim = st
                .candidates
                .iter()
                .filter(|(_, c)| !c.open)
                .min_by_key(|(_, c)| c.last)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    st.candidates.remove(&k);
                }
                None => return,
            }
        }
        // Only the warm-up (fixed) and the window's size matter to a new series: the thresholds
        // come with each tick's tuning.
        let tuning = Self::own(Tuning::default());
        let c = st.candidates.entry(key).or_insert_with(|| Candidate {
            buckets: VecDeque::new(),
            pending: 0,
            episode: 0,
            episode_start: now,
            last: sec,
            actors: HashMap::new(),
            details: Vec::new(),
            companion: s.companion,
            source: s.source,
            series: Series::with_zero_history(&tuning),
            open: false,
            closed_at: 0,
        });
        if c.episode == 0 || sec > c.last + QUIET_SECS {
            c.episode = 0;
            c.episode_start = now;
            c.actors.clear();
            c.details.clear();
        }
        c.episode += 1;
        c.pending += 1;
        c.last = sec;
        c.companion |= s.companion;
        match c.buckets.back_mut() {
            Some((b, n)) if *b == sec => *n += 1,
            _ => {
                c.buckets.push_back((sec, 1));
                while c
                    .buckets
                    .front()
                    .is_some_and(|(b, _)| b + WINDOW_SECS <= sec)
                {
                    c.buckets.pop_front();
                }
            }
        }
        if let Some(a) = s.actor {
            if c.actors.len() < MAX_ACTORS || c.actors.contains_key(&a) {
                c.actors.insert(a, sec);
            }
        }
        if let Some(d) = s.detail {
            if let Some(i) = c.details.iter().position(|(x, _)| *x == d) {
                c.details[i].1 += 1;
            } else if c.details.len() < MAX_DETAILS {
                c.details.push((d, 1));
            }
        }
    }

    /// A spike began on `stats`' route (from the detector).
    pub fn spike_started(
        &self,
        stats: Arc<RouteStats>,
        status: u16,
        now: SystemTime,
        rate_baseline: (f64, f64),
        top: (Option<String>, Option<String>),
    ) {
        let mut st = self.lock();
        st.spikes
            .retain(|p| !(p.stats.label == stats.label && p.status == status));
        if st.spikes.len() >= MAX_FINDINGS {
            st.spikes.remove(0);
        }
        st.spikes.push(PendingSpike {
            stats,
            status,
            since: unix(now),
            rate: rate_baseline.0,
            baseline: rate_baseline.1,
            kind: top.0,
            permission: top.1,
            companion: false,
            opened: false,
        });
    }

    /// Notes that a route's denials carry the companion's headers (for spike evidence).
    pub fn companion_seen(&self, route: &str) {
        let mut st = self.lock();
        for p in st.spikes.iter_mut().filter(|p| &*p.stats.label == route) {
            p.companion = true;
        }
    }

    /// One second: opens and closes findings; returns those that opened or closed, for the sink.
    pub fn tick(&self, w: &World<'_>) -> Vec<Finding> {
        let now_f = unix(w.now);
        let now = now_f as u64;
        let mut changed = Vec::new();
        let mut st = self.lock();
        let State {
            candidates,
            findings,
            spikes,
        } = &mut *st;
        let tuning = Self::own(w.tuning);
        // Routes and permissions that Django's facts explain more precisely than "not
        // granted" right now (a stale cache, an inactive user, ...): the grant is there, so
        // no `permission_not_granted` opens for them, even from answers a moment old.
        let explained: Vec<(Arc<str>, Option<String>)> = candidates
            .iter()
            .filter(|(k, c)| k.cause.explains_not_granted() && now < c.last + WINDOW_SECS)
            .map(|(k, _)| (k.route.clone(), k.subject.clone()))
            .collect();
        for (key, c) in candidates.iter_mut() {
            let pending = std::mem::take(&mut c.pending);
            let t = c.series.tick(pending, &tuning, true);
            let (count, new_count) = c.window_count(now);
            let needs = key.cause.needs(c.companion);
            if c.open {
                let quiet = now > c.last + QUIET_SECS;
                let calm = needs.above_baseline && !t.active && now > c.last + 1;
                if quiet || (calm && count < needs.denials) {
                    c.open = false;
                    c.closed_at = now;
                    if let Some(f) = close(findings, key, w.now, &self.gauge) {
                        changed.push(f);
                    }
                } else if let Some(f) = findings.iter_mut().find(|f| f.key == *key && f.active) {
                    // The figures grow while it is open; the wording stays as it opened.
                    f.denials = c.episode;
                    f.distinct_users = f.distinct_users.max(c.actors.len() as u64);
                }
                continue;
            }
            // Only evidence newer than the last close counts: no reopening from the window
            // that still holds the incident that closed.
            let actors = c.new_actors_in_window(now);
            let enough = new_count >= needs.denials
                && actors >= needs.actors
                && (!needs.above_baseline || t.active);
            let superseded = key.cause == Cause::PermissionNotGranted
                && explained
                    .iter()
                    .any(|(r, s)| *r == key.route && *s == key.subject);
            if !enough || superseded {
                continue;
            }
            let f = open(key, c, w, now_f, new_count, actors);
            if let Some(f) = admit(findings, f, &self.gauge) {
                c.open = true;
                changed.push(f);
            }
        }
        // Spikes after a release that no candidate explains.
        for p in spikes.iter_mut() {
            let s = crate::telemetry::vocabulary::denial_index(p.status);
            let spiking = p.stats.spiking[s].load(Ordering::Relaxed);
            let key = Key {
                cause: Cause::SpikeAfterRelease,
                route: p.stats.label.clone(),
                status: p.status,
                subject: None,
            };
            if p.opened {
                if !spiking {
                    p.opened = false;
                    if let Some(f) = close(findings, &key, w.now, &self.gauge) {
                        changed.push(f);
                    }
                }
                continue;
            }
            let explained = candidates.iter().any(|(k, c)| {
                k.route == p.stats.label && k.status == p.status && now < c.last + WINDOW_SECS
            });
            let since = p.since;
            let after_release = (w.release_changed_at > 0.0
                && since >= w.release_changed_at
                && since - w.release_changed_at <= CORRELATE_SECS)
                .then_some(since - w.release_changed_at);
            // Without the companion no release is known; a reload that switched the upstream
            // servers (a blue/green deploy) is the edge's own sign of one.
            let switch = w
                .reloads
                .iter()
                .rev()
                .find(|r| since >= r.at && since - r.at <= CORRELATE_SECS)
                .filter(|r| r.changed.iter().any(|k| k.starts_with("upstream.")));
            if !spiking
                || explained
                || (after_release.is_none() && switch.is_none())
                || now_f < p.since + SPIKE_GRACE_SECS as f64
            {
                continue;
            }
            let facts = text::Facts {
                cause: Cause::SpikeAfterRelease,
                route: &p.stats.label,
                status: p.status,
                subject: None,
                detail: None,
                denials: 0,
                actors: 0,
                window_secs: WINDOW_SECS,
                companion: p.companion,
                source: None,
                release: w.release,
                after_release,
                after_reload: switch.map(|r| (since - r.at, r.generation, r.changed.as_slice())),
                spike: Some((
                    p.rate,
                    p.baseline,
                    p.kind.as_deref(),
                    p.permission.as_deref(),
                )),
                proxy_user: w.proxy_user,
            };
            let f = Finding {
                cause: Cause::SpikeAfterRelease.label(),
                route: p.stats.label.to_string(),
                status: p.status,
                permission: p.permission.clone(),
                path: None,
                source: None,
                release: w.release.map(str::to_string),
                opened: rfc3339_millis(w.now),
                closed: None,
                active: true,
                denials: p.stats.denials_of(p.status),
                distinct_users: 0,
                evidence: text::evidence(&facts),
                fix: text::fix(&facts),
                key,
                opened_at: now,
            };
            if let Some(f) = admit(findings, f, &self.gauge) {
                p.opened = true;
                changed.push(f);
            }
        }
        spikes.retain(|p| p.opened || now_f < p.since + 5.0 * 60.0);
        // Forget candidates long quiet.
        candidates.retain(|_, c| c.open || now < c.last + 10 * 60);
        changed
    }

    /// Open findings first, newest first, then the closed ones, newest first.
    pub fn snapshot(&self) -> Vec<Finding> {
        let st = self.lock();
        let mut v = st.findings.clone();
        v.sort_by(|a, b| {
            b.active
                .cmp(&a.active)
                .then(b.opened_at.cmp(&a.opened_at))
                .then(a.cause.cmp(b.cause))
        });
        v
    }
}

/// Writes a finding for a candidate with enough evidence.
fn open(key: &Key, c: &Candidate, w: &World<'_>, now: f64, count: u64, actors: usize) -> Finding {
    let start = c.episode_start;
    let after_release = (w.release_changed_at > 0.0
        && start >= w.release_changed_at
        && start - w.release_changed_at <= CORRELATE_SECS)
        .then_some(start - w.release_changed_at);
    let after_reload = w
        .reloads
        .iter()
        .rev()
        .find(|r| start >= r.at && start - r.at <= CORRELATE_SECS)
        .filter(|_| key.cause == Cause::CsrfFailures || key.cause == Cause::SessionNotRecognised)
        .map(|r| (start - r.at, r.generation, r.changed.as_slice()));
    let facts = text::Facts {
        cause: key.cause,
        route: &key.route,
        status: key.status,
        subject: key.subject.as_deref(),
        detail: c.top_detail(),
        denials: count,
        actors,
        window_secs: WINDOW_SECS,
        companion: c.companion,
        source: c.source,
        release: w.release,
        after_release,
        after_reload,
        spike: None,
        proxy_user: w.proxy_user,
    };
    let is_path = key.cause == Cause::FilesystemPermission;
    Finding {
        cause: key.cause.label(),
        route: key.route.to_string(),
        status: key.status,
        permission: key.subject.clone().filter(|_| !is_path),
        path: key.subject.clone().filter(|_| is_path),
        source: c.source,
        release: w.release.map(str::to_string),
        opened: rfc3339_millis(w.now),
        closed: None,
        active: true,
        denials: c.episode,
        distinct_users: c.actors.len() as u64,
        evidence: text::evidence(&facts),
        fix: text::fix(&facts),
        key: key.clone(),
        opened_at: now as u64,
    }
}

/// Keeps a new finding within `MAX_FINDINGS` (the oldest closed one makes room; with every
/// one open, the new one is dropped) and sets its gauge.
fn admit(findings: &mut Vec<Finding>, f: Finding, gauge: &IntGaugeVec) -> Option<Finding> {
    if findings.len() >= MAX_FINDINGS {
        let oldest_closed = findings
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.active)
            .min_by_key(|(_, f)| f.opened_at)
            .map(|(i, _)| i);
        match oldest_closed {
            Some(i) => {
                let gone = findings.remove(i);
                set_gauge(findings, gone.cause, &gone.route, gauge, true);
            }
            None => {
                tracing::warn!(cause = f.cause, route = %f.route, "findings full: not opened");
                return None;
            }
        }
    }
    findings.push(f.clone());
    set_gauge(findings, f.cause, &f.route, gauge, false);
    tracing::warn!(cause = f.cause, route = %f.route, evidence = %f.evidence, fix = %f.fix, "finding opened");
    Some(f)
}

/// Closes the open finding of `key`, if any, and returns it.
fn close(
    findings: &mut [Finding],
    key: &Key,
    now: SystemTime,
    gauge: &IntGaugeVec,
) -> Option<Finding> {
    let f = findings.iter_mut().find(|f| f.key == *key && f.active)?;
    f.active = false;
    f.closed = Some(rfc3339_millis(now));
    let f = f.clone();
    set_gauge(findings, f.cause, &f.route, gauge, false);
    tracing::info!(cause = f.cause, route = %f.route, "finding closed");
    Some(f)
}

/// `authz_edge_finding_active{cause, route}`: 1 while any finding with those labels is open,
/// 0 after; the series goes when no finding with those labels is kept (`forget`).
fn set_gauge(
    findings: &[Finding],
    cause: &'static str,
    route: &str,
    gauge: &IntGaugeVec,
    forget: bool,
) {
    let mut same = findings
        .iter()
        .filter(|f| f.cause == cause && f.route == route);
    let kept = same.clone().next().is_some();
    let active = same.any(|f| f.active);
    if forget && !kept {
        let _ = gauge.remove_label_values(&[cause, route]);
    } else {
        gauge
            .with_label_values(&[cause, route])
            .set(i64::from(active));
    }
}

/// How often `tick` runs.
pub const TICK: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_django;
