//! Client connections, process-wide: the cap (`server.max_connections`, nginx's
//! `worker_connections`), the idle connections that make room when it is reached, and the
//! gauge of open connections by protocol.
//!
//! As in nginx, a connection that waits for a request (a new one for its first, a keepalive one
//! for its next, an HTTP/2 one with no stream open) is *idle* and may be closed to make room:
//! at the cap, a new connection closes the one idle longest, so that clients with requests
//! are still served while silent ones go. With none idle, the new connection is closed. Both
//! are counted (`authz_edge_connections_shed_total{reason}`) and logged once per episode (until
//! the open connections fall back below nine tenths of the cap).
//!
//! The request path pays two relaxed atomic stores per request (idle, then busy); the slab of
//! connections is locked once when a connection opens and once when it closes, and searched
//! only at the cap. The slots live in the slab itself, in chunks that never move (64 bytes a
//! connection, no allocation of its own), and are reused: a wake-up a slot's previous
//! connection left behind is spurious for the next, which checks why it woke.

use crate::telemetry::metrics::Metrics;
use crate::telemetry::vocabulary::{ConnProtocol, ShedReason};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Slots per chunk of the slab.
const CHUNK: usize = 64;
use tokio::sync::Notify;

/// One open connection, as the cap and a drain see it. Kept in the slab, so that the
/// connection's own future (which every idle connection holds) stays small.
#[derive(Default)]
pub struct Slot {
    /// Past this (microseconds since the registry began) it serves no more requests
    /// (`server.max_connection_age`).
    retire_at: AtomicU64,
    /// When the connection began to wait for a request, in microseconds since the registry
    /// began, plus one; 0 while it is busy.
    idle_since: AtomicU64,
    /// The order of admission (wrapping), which breaks ties between connections idle since
    /// the same instant (slots are reused, so their places in the slab do not say it).
    seq: AtomicU32,
    /// Set when the connection is to close as soon as it is idle (shed at the cap).
    shed: AtomicBool,
    /// Wakes the connection's wait for a request: it was shed, or the process drains.
    pub wake: Notify,
}

impl Slot {
    /// Whether the connection was chosen to close at the cap.
    pub fn is_shed(&self) -> bool {
        self.shed.load(Ordering::Relaxed)
    }

    /// Returns once the connection is shed at the cap; other wake-ups (a drain, one left for
    /// the slot's previous connection) are passed over.
    pub async fn shed(&self) {
        while !self.is_shed() {
            self.wake.notified().await;
        }
    }
}

/// The open client connections.
pub struct Connections {
    slots: Mutex<Slab>,
    open: AtomicUsize,
    admitted: AtomicU32,
    /// A shed episode is under way (logged at its start).
    episode: AtomicBool,
    epoch: Instant,
    gauges: [prometheus::IntGauge; 4],
    shed: [prometheus::IntCounter; 2],
}

/// The slots, in boxed chunks that are only ever added to: a slot's address is stable for as
/// long as the registry lives.
#[derive(Default)]
struct Slab {
    // Boxed: a chunk's slots keep their address when the Vec grows (`Admission` holds them).
    #[allow(clippy::vec_box)]
    chunks: Vec<Box<[Slot; CHUNK]>>,
    /// Slots given back, to be reused.
    free: Vec<u32>,
    /// Slots ever handed out (the rest of the last chunk is unused).
    used: u32,
}

impl Slab {
    fn get(&self, key: u32) -> Option<&Slot> {
        let k = key as usize;
        self.chunks.get(k / CHUNK).map(|c| &c[k % CHUNK])
    }

    /// The slots handed out so far (in use or free).
    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .take(self.used as usize)
    }

    /// A slot for a new connection: a free one, or the next one (a new chunk when needed).
    fn take(&mut self) -> u32 {
        if let Some(k) = self.free.pop() {
            return k;
        }
        if self.used as usize == self.chunks.len() * CHUNK {
            self.chunks
                .push(Box::new(std::array::from_fn(|_| Slot::default())));
        }
        self.used += 1;
        self.used - 1
    }
}

impl Connections {
    pub fn new(metrics: &Metrics) -> Connections {
        let shed = [ShedReason::Idle, ShedReason::Refused];
        Connections {
            slots: Mutex::new(Slab::default()),
            open: AtomicUsize::new(0),
            admitted: AtomicU32::new(0),
            episode: AtomicBool::new(false),
            epoch: Instant::now(),
            gauges: metrics.client_connections.clone(),
            shed: shed.map(|r| metrics.connections_shed[r as usize].clone()),
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Takes a new connection in under the cap `max`: `None` when it is to be closed at once
    /// (at the cap with no idle connection to close instead).
    pub fn admit(
        &self,
        max: usize,
        max_age: std::time::Duration,
        protocol: ConnProtocol,
    ) -> Option<Admission<'_>> {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if open > max {
            let reason = match self.shed_longest_idle() {
                true => ShedReason::Idle,
                false => ShedReason::Refused,
            };
            self.shed[usize::from(reason == ShedReason::Refused)].inc();
            if !self.episode.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_connections = max,
                    "server.max_connections reached: idle connections are closed to make room, \
                     and new ones closed when none is idle (authz_edge_connections_shed_total)"
                );
            }
            if reason == ShedReason::Refused {
                self.open.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
        } else if open < max - max / 10 && self.episode.load(Ordering::Relaxed) {
            self.episode.store(false, Ordering::Relaxed);
        }
        let age = u64::try_from(max_age.as_micros()).unwrap_or(u64::MAX / 2);
        let seq = self.admitted.fetch_add(1, Ordering::Relaxed);
        let (key, slot) = {
            let mut slab = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let key = slab.take();
            let slot: Option<*const Slot> = slab.get(key).map(|s| s as *const Slot);
            (key, slot)
        };
        let Some(slot) = slot else {
            // `take` always gives a slot that `get` finds.
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        };
        // SAFETY: the chunks are boxed, only ever added to and never dropped before `self`:
        // the slot stays where it is for as long as `self` is borrowed.
        let slot: &Slot = unsafe { &*slot };
        slot.retire_at
            .store(self.now().saturating_add(age), Ordering::Relaxed);
        slot.seq.store(seq, Ordering::Relaxed);
        slot.shed.store(false, Ordering::Relaxed);
        slot.idle_since.store(0, Ordering::Relaxed);
        let admitted = Admission {
            conns: self,
            key,
            slot,
            protocol: protocol_index(protocol),
        };
        admitted.gauge().inc();
        Some(admitted)
    }

    /// Marks the idle connection that has waited longest to be closed and wakes it; `false`
    /// when none is idle.
    fn shed_longest_idle(&self) -> bool {
        let slab = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // A slot not in use is never idle (its `idle_since` is 0).
        let oldest = slab
            .slots()
            .filter(|s| !s.is_shed())
            .filter_map(|s| {
                let since = s.idle_since.load(Ordering::Relaxed);
                (since > 0).then_some(((since, s.seq.load(Ordering::Relaxed)), s))
            })
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((_, slot)) => {
                slot.shed.store(true, Ordering::Relaxed);
                slot.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// Wakes every connection's wait for a request: the process drains.
    pub fn wake_all(&self) {
        let slab = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for slot in slab.slots() {
            slot.wake.notify_one();
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1
    }
}

fn protocol_index(p: ConnProtocol) -> u8 {
    p as u8
}

/// A connection counted under the cap, until it is dropped.
pub struct Admission<'a> {
    conns: &'a Connections,
    pub slot: &'a Slot,
    key: u32,
    protocol: u8,
}

impl Admission<'_> {
    fn gauge(&self) -> &prometheus::IntGauge {
        &self.conns.gauges[usize::from(self.protocol) % 4]
    }

    /// The connection's protocol is known (after the TLS handshake and ALPN).
    pub fn set_protocol(&mut self, protocol: ConnProtocol) {
        self.gauge().dec();
        self.protocol = protocol_index(protocol);
        self.gauge().inc();
    }

    /// The connection waits for a request: it may be shed from now on.
    #[inline]
    pub fn idle(&self) {
        self.slot
            .idle_since
            .store(self.conns.now(), Ordering::Relaxed);
    }

    /// How long until the connection retires (`server.max_connection_age`); zero once it has.
    pub fn retires_in(&self) -> std::time::Duration {
        let retire_at = self.slot.retire_at.load(Ordering::Relaxed);
        let left = retire_at.saturating_sub(self.conns.now());
        std::time::Duration::from_micros(left)
    }

    /// Whether the connection is past `server.max_connection_age`.
    #[inline]
    pub fn retired(&self) -> bool {
        self.conns.now() >= self.slot.retire_at.load(Ordering::Relaxed)
    }

    /// The connection is serving a request.
    #[inline]
    pub fn busy(&self) {
        self.slot.idle_since.store(0, Ordering::Relaxed);
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.gauge().dec();
        // Not idle any more: the cap's search passes it over until its next connection.
        self.slot.idle_since.store(0, Ordering::Relaxed);
        self.conns
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free
            .push(self.key);
        self.conns.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    fn conns() -> (Metrics, Connections) {
        let m = Metrics::new(10, 10);
        let c = Connections::new(&m);
        (m, c)
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_is_shed() {
        let (m, c) = conns();
        let a = c.admit(2, HOUR, ConnProtocol::Http1).expect("a");
        let b = c.admit(2, HOUR, ConnProtocol::Http1).expect("b");
        // Both idle since the same instant as far as the clock can tell: the earlier admitted
        // (a) goes first. Then b, idle since earlier, goes before a.
        let tie = c.now();
        a.slot.idle_since.store(tie, Ordering::Relaxed);
        b.slot.idle_since.store(tie, Ordering::Relaxed);
        assert!(c.shed_longest_idle());
        assert!(a.slot.is_shed() && !b.slot.is_shed());
        a.slot.shed.store(false, Ordering::Relaxed);
        b.slot.idle_since.store(tie - 1, Ordering::Relaxed);
        let third = c.admit(2, HOUR, ConnProtocol::Http1).expect("room made");
        assert!(b.slot.is_shed(), "b waited longest");
        assert!(!a.slot.is_shed());
        assert_eq!(c.open(), 3, "b closes once it wakes");
        drop(b);
        assert_eq!(c.open(), 2);
        assert_eq!(m.client_connections[ConnProtocol::Http1 as usize].get(), 2);
        // Busy connections are never shed: the next one is refused.
        a.busy();
        third.busy();
        assert!(c.admit(2, HOUR, ConnProtocol::Http1).is_none());
        assert_eq!(c.open(), 2);
        assert_eq!(
            m.connections_shed[ShedReason::Idle as usize].get(),
            1,
            "admit's shed"
        );
        assert_eq!(m.connections_shed[ShedReason::Refused as usize].get(), 1);
    }

    #[test]
    fn the_gauge_follows_the_protocol() {
        let (m, c) = conns();
        let mut a = c.admit(10, HOUR, ConnProtocol::TlsHandshake).expect("a");
        assert_eq!(
            m.client_connections[ConnProtocol::TlsHandshake as usize].get(),
            1
        );
        a.set_protocol(ConnProtocol::H2);
        assert_eq!(
            m.client_connections[ConnProtocol::TlsHandshake as usize].get(),
            0
        );
        assert_eq!(m.client_connections[ConnProtocol::H2 as usize].get(), 1);
        drop(a);
        assert_eq!(m.client_connections[ConnProtocol::H2 as usize].get(), 0);
        assert_eq!(c.open(), 0);
    }
}
