//! The bounded label sets: route labels with their per-route counters (`RouteStats`), and
//! permission labels. Past the bound, every new value is `other`.

use crate::telemetry::sketch::UserSketch;
use crate::telemetry::vocabulary::{
    denial_index, status_class, Authn, Kind, DENIAL_STATUSES, DENIAL_STATUS_LABELS, STATUS_CLASSES,
};
use prometheus::{IntCounter, IntCounterVec};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// The counters of one route label, resolved once.
pub struct RouteStats {
    pub label: Arc<str>,
    requests: [IntCounter; 5],
    /// `[status 401|403|302][kind][authn]`, resolved on first use.
    denials: [OnceLock<IntCounter>; DENIAL_STATUSES.len() * 15],
    permissions: Mutex<HashMap<Arc<str>, IntCounter>>,
    /// Distinct denied users over the last five minutes.
    pub users: Mutex<Option<Box<UserSketch>>>,
    /// Denials by `[status 401|403|302][kind]`, read by the spike detector's tick.
    pub denied: [[AtomicU64; 5]; DENIAL_STATUSES.len()],
    /// Set by the spike detector while a spike is on, per status; read by the sampler.
    pub spiking: [AtomicBool; DENIAL_STATUSES.len()],
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

    /// Counts one denial (401, 403, a login redirect) with its kind and authn.
    pub fn count_denial(&self, status: u16, kind: Kind, authn: Authn) {
        let s = denial_index(status);
        let k = Kind::ALL.iter().position(|x| *x == kind).unwrap_or(4);
        let a = Authn::ALL.iter().position(|x| *x == authn).unwrap_or(2);
        self.denied[s][k].fetch_add(1, Ordering::Relaxed);
        let idx = s * 15 + k * 3 + a;
        self.denials[idx]
            .get_or_init(|| {
                self.family.denials.with_label_values(&[
                    &self.label,
                    DENIAL_STATUS_LABELS[s],
                    kind.label(),
                    authn.label(),
                ])
            })
            .inc();
    }

    /// Counts one denied permission (already bounded to a known label).
    pub fn count_permission(&self, permission: &Arc<str>) {
        let mut map = crate::sync::lock(&self.permissions);
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

    /// Denials of `status` (401, 403 or 302) on this route so far.
    pub fn denials_of(&self, status: u16) -> u64 {
        self.denied[denial_index(status)]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Totals of denied permissions on this route, for the detector's deltas.
    pub fn permission_totals(&self) -> Vec<(Arc<str>, u64)> {
        let map = crate::sync::lock(&self.permissions);
        map.iter().map(|(k, c)| (k.clone(), c.get())).collect()
    }

    /// Adds one denied user (a keyed hash) to this route's five-minute sketch.
    pub fn add_user(&self, user_hash: u64, now_secs: u64) {
        let mut guard = crate::sync::lock(&self.users);
        guard
            .get_or_insert_with(|| Box::new(UserSketch::new()))
            .add(user_hash, now_secs);
    }
}

/// The metric families whose series are made per label value.
pub struct Families {
    pub requests: IntCounterVec,
    pub denials: IntCounterVec,
    pub permission_denials: IntCounterVec,
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
    /// An empty set of at most `max` labels, whose series are made in `family`.
    pub fn new(max: usize, family: Families, overflow: IntCounter) -> Self {
        let family = Arc::new(family);
        RouteRegistry {
            max: AtomicUsize::new(max),
            map: RwLock::new(HashMap::new()),
            other: Arc::new(RouteStats::new(Arc::from("other"), family.clone())),
            family,
            overflow,
        }
    }

    /// The stats for `label`, registering it while under the bound.
    pub fn get(&self, label: &str) -> Arc<RouteStats> {
        self.get_within(label, self.max.load(Ordering::Relaxed))
    }

    /// `get` under the bound `max` (a config generation's, before it is applied).
    pub fn get_within(&self, label: &str, max: usize) -> Arc<RouteStats> {
        if let Ok(map) = self.map.read() {
            if let Some(s) = map.get(label) {
                return s.clone();
            }
            if map.len() >= max {
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
        if map.len() >= max {
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
    /// An empty set of at most `max` labels.
    pub fn new(max: usize, overflow: IntCounter) -> Self {
        PermissionRegistry {
            max: AtomicUsize::new(max),
            set: RwLock::new(HashMap::new()),
            other: Arc::from("other"),
            overflow,
        }
    }

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
