//! The release Django reports (`X-App-Release`): `authz_edge_release_info`, the time of the last
//! change, and the last changes for the console's time axis.

use arc_swap::ArcSwapOption;
use prometheus::{Gauge, IntGaugeVec, Opts, Registry};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The release state; reading the current release is one atomic load.
pub struct Release {
    info: IntGaugeVec,
    changed: Gauge,
    current: ArcSwapOption<String>,
    lock: Mutex<()>,
    /// The last release changes (unix time, release), for the console's time axis.
    changes: Mutex<VecDeque<(f64, String)>>,
    /// `changed` came from the companion's `X-Authz-Release-Since` (no change seen since start).
    from_companion: std::sync::atomic::AtomicBool,
}

/// A release that began longer ago than this is not what a finding is about.
const SINCE_HORIZON_S: f64 = 24.0 * 3600.0;

impl Release {
    /// Registers the release's two metrics in `r`.
    pub fn register(r: &Registry) -> Self {
        let info = IntGaugeVec::new(
            Opts::new(
                "authz_edge_release_info",
                "1 for the release Django reports now.",
            ),
            &["release"],
        )
        .expect("static metric definition");
        let changed = Gauge::new(
            "authz_edge_release_changed_timestamp_seconds",
            "Unix time at which Django last reported a new release.",
        )
        .expect("static metric definition");
        r.register(Box::new(info.clone()))
            .expect("metric registered once");
        r.register(Box::new(changed.clone()))
            .expect("metric registered once");
        Release {
            info,
            changed,
            current: ArcSwapOption::empty(),
            lock: Mutex::new(()),
            changes: Mutex::new(VecDeque::new()),
            from_companion: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Notes when the current release began in Django (`X-Authz-Release-Since`, the earliest
    /// worker's start): used only while this process has seen no change itself (it started
    /// after the deploy), so that a restarted proxy still knows the release's age.
    pub fn observe_since(&self, release: &str, since: f64, now: f64) {
        use std::sync::atomic::Ordering;
        if !(since > 0.0 && since <= now + 5.0 && now - since <= SINCE_HORIZON_S) {
            return;
        }
        let _guard = self.lock.lock();
        if self.current.load().as_deref().map(String::as_str) != Some(release) {
            return;
        }
        let seen = self.changed.get();
        let ours = self.from_companion.load(Ordering::Relaxed);
        if seen > 0.0 && !ours {
            return;
        }
        if seen == 0.0 || since < seen {
            self.changed.set(since);
            self.from_companion.store(true, Ordering::Relaxed);
            if let Ok(mut c) = self.changes.lock() {
                c.retain(|(_, r)| r != release);
                c.push_back((since, release.to_string()));
            }
        }
    }

    /// Notes the release Django reports; only a change takes the slow path.
    pub fn observe(&self, release: &str, now_unix: impl FnOnce() -> f64) {
        if self.current.load().as_deref().map(String::as_str) == Some(release) {
            return;
        }
        let _guard = self.lock.lock();
        let old = self.current.load_full();
        if old.as_deref().map(String::as_str) == Some(release) {
            return;
        }
        // The first release seen since start is not a change: what came before is unknown.
        if let Some(old) = old {
            let _ = self.info.remove_label_values(&[old.as_str()]);
            let at = now_unix();
            self.changed.set(at);
            self.from_companion
                .store(false, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut c) = self.changes.lock() {
                if c.len() >= 16 {
                    c.pop_front();
                }
                c.push_back((at, release.to_string()));
            }
        }
        self.info.with_label_values(&[release]).set(1);
        self.current.store(Some(Arc::new(release.to_string())));
    }

    /// Whether `v` is the release already recorded (the common case: checked before validating).
    pub fn is_current(&self, v: &[u8]) -> bool {
        self.current
            .load()
            .as_deref()
            .is_some_and(|r| r.as_bytes() == v)
    }

    /// The last release changes, oldest first: (unix time, new release).
    pub fn changes(&self) -> Vec<(f64, String)> {
        self.changes
            .lock()
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The release Django reports now, if any.
    pub fn current(&self) -> Option<Arc<String>> {
        self.current.load_full()
    }

    /// Unix seconds of the last release change, or 0 when none was seen since start.
    pub fn changed_at(&self) -> f64 {
        self.changed.get()
    }
}

#[cfg(test)]
mod tests {
    use crate::telemetry::metrics::Metrics;

    #[test]
    fn release_change_replaces_the_series() {
        let m = Metrics::new(3, 2);
        m.release.observe("v1", || 100.0);
        m.release.observe("v1", || 200.0);
        assert_eq!(
            m.release.changed_at(),
            0.0,
            "the first release seen is not a change"
        );
        m.release.observe("v2", || 300.0);
        let text = String::from_utf8(m.render(0)).expect("utf8");
        assert!(text.contains("authz_edge_release_info{release=\"v2\"} 1"));
        assert!(!text.contains("release=\"v1\""));
        assert_eq!(m.release.changed_at(), 300.0);
    }

    #[test]
    fn a_restarted_proxy_takes_the_release_start_from_django_until_it_sees_a_change() {
        let m = Metrics::new(3, 2);
        m.release.observe("v2", || 1000.0);
        assert_eq!(m.release.changed_at(), 0.0);
        // Two workers started 40 s and 30 s before: the earliest is the release's start.
        m.release.observe_since("v2", 970.0, 1000.0);
        m.release.observe_since("v2", 960.0, 1001.0);
        assert_eq!(m.release.changed_at(), 960.0);
        // Another release's, a future one, one older than a day: ignored.
        m.release.observe_since("v1", 900.0, 1002.0);
        m.release.observe_since("v2", 2000.0, 1002.0);
        m.release.observe_since("v2", 1002.0 - 90_000.0, 1002.0);
        assert_eq!(m.release.changed_at(), 960.0);
        // A change the proxy sees itself wins, and Django's start no longer moves it.
        m.release.observe("v3", || 1100.0);
        m.release.observe_since("v3", 1050.0, 1101.0);
        assert_eq!(m.release.changed_at(), 1100.0);
    }
}
