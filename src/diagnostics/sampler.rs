//! Which denials become sample records: the first of each (route, kind, permission), then a
//! per-route token bucket (raised while the route spikes), all under a global cap.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Why a denial was sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleReason {
    FirstSeen,
    Rate,
    Spike,
}

impl SampleReason {
    pub fn label(self) -> &'static str {
        match self {
            SampleReason::FirstSeen => "first_seen",
            SampleReason::Rate => "rate",
            SampleReason::Spike => "spike",
        }
    }
}

/// A token bucket refilled continuously.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: f64,
}

impl Bucket {
    fn full(capacity: f64, now: f64) -> Self {
        Bucket {
            tokens: capacity,
            last: now,
        }
    }
    fn take(&mut self, per_sec: f64, capacity: f64, now: f64) -> bool {
        self.tokens = (self.tokens + (now - self.last).max(0.0) * per_sec).min(capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Sampling limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_route_per_minute: u32,
    /// Multiplier of the per-route rate while the route spikes.
    pub spike_boost: u32,
    /// Records per second across all routes.
    pub global_per_second: u32,
    /// Distinct (route, kind, permission) keys remembered for first-seen sampling.
    pub max_first_seen: usize,
    /// Per-route buckets kept.
    pub max_routes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_route_per_minute: 30,
            spike_boost: 4,
            global_per_second: 100,
            max_first_seen: 10_000,
            max_routes: 1_000,
        }
    }
}

struct State {
    limits: Limits,
    first_seen: HashSet<u64>,
    routes: HashMap<String, Bucket>,
    global: Bucket,
}

/// The sampling decision, behind one lock taken only on the denial path.
pub struct Sampler {
    state: Mutex<State>,
}

fn key_of(route: &str, kind: &str, permission: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (route, kind, permission).hash(&mut h);
    h.finish()
}

impl Sampler {
    pub fn new(limits: Limits, now: f64) -> Self {
        Sampler {
            state: Mutex::new(State {
                limits,
                first_seen: HashSet::new(),
                routes: HashMap::new(),
                global: Bucket::full(f64::from(limits.global_per_second), now),
            }),
        }
    }

    /// New limits from a reload; the buckets keep their tokens.
    pub fn set_limits(&self, limits: Limits) {
        let mut st = crate::sync::lock(&self.state);
        st.limits = limits;
    }

    /// Decides for one denial; `None` means rate limited.
    pub fn decide(
        &self,
        route: &str,
        kind: &str,
        permissions: &[String],
        spiking: bool,
        now: f64,
    ) -> Option<SampleReason> {
        let mut st = crate::sync::lock(&self.state);
        let l = st.limits;
        let global_rate = f64::from(l.global_per_second);
        let first = {
            let perm = permissions.first().map_or("", String::as_str);
            let key = key_of(route, kind, perm);
            st.first_seen.len() < l.max_first_seen && st.first_seen.insert(key)
        };
        let reason = if first {
            SampleReason::FirstSeen
        } else {
            let boost = if spiking {
                f64::from(l.spike_boost)
            } else {
                1.0
            };
            let per_sec = f64::from(l.per_route_per_minute) * boost / 60.0;
            let capacity = f64::from(l.per_route_per_minute) * boost;
            if !st.routes.contains_key(route) && st.routes.len() >= l.max_routes {
                return None;
            }
            let bucket = st
                .routes
                .entry(route.to_string())
                .or_insert_with(|| Bucket::full(capacity, now));
            if !bucket.take(per_sec, capacity, now) {
                return None;
            }
            if spiking {
                SampleReason::Spike
            } else {
                SampleReason::Rate
            }
        };
        // The global cap applies to everything, first-seen included.
        if !st.global.take(global_rate, global_rate, now) {
            return None;
        }
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32) -> Limits {
        Limits {
            per_route_per_minute: per_minute,
            ..Limits::default()
        }
    }

    #[test]
    fn first_of_each_key_then_the_bucket() {
        let s = Sampler::new(limits(3), 0.0);
        let p = vec!["app.x".to_string()];
        assert_eq!(
            s.decide("/r/", "permission", &p, false, 0.0),
            Some(SampleReason::FirstSeen)
        );
        let mut rate = 0;
        for _ in 0..20 {
            if s.decide("/r/", "permission", &p, false, 0.0).is_some() {
                rate += 1;
            }
        }
        assert_eq!(rate, 3, "the bucket holds per_route_per_minute");
        let other = vec!["app.y".to_string()];
        assert_eq!(
            s.decide("/r/", "permission", &other, false, 0.0),
            Some(SampleReason::FirstSeen)
        );
        // A minute later the bucket is full again.
        let later: usize = (0..20)
            .filter(|_| s.decide("/r/", "permission", &p, false, 60.0).is_some())
            .count();
        assert_eq!(later, 3);
    }

    #[test]
    fn a_spiking_route_gets_more_samples() {
        let s = Sampler::new(limits(3), 0.0);
        let p: Vec<String> = vec![];
        s.decide("/r/", "other", &p, true, 0.0);
        let n = (0..50)
            .filter(|_| s.decide("/r/", "other", &p, true, 0.0) == Some(SampleReason::Spike))
            .count();
        assert_eq!(n, 12, "4x the per-route bucket");
    }

    #[test]
    fn the_global_cap_holds_across_routes() {
        let s = Sampler::new(
            Limits {
                global_per_second: 5,
                ..limits(100)
            },
            0.0,
        );
        let n = (0..100)
            .filter(|i| {
                s.decide(&format!("/r{i}/"), "other", &[], false, 0.0)
                    .is_some()
            })
            .count();
        assert_eq!(n, 5);
    }
}
