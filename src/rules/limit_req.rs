//! nginx's `limit_req`: per client address, a leaky bucket drained at `rate` requests per
//! second holding up to `burst` requests over it. A request past the burst is refused; one
//! within it waits its turn (or, with `nodelay`, goes at once). The addresses tracked are
//! bounded: when full, drained buckets are forgotten, and with none drained a new address is
//! refused, as nginx does when its zone is full.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Limiter {
    per_second: f64,
    burst: f64,
    nodelay: bool,
    pub status: u16,
    max_clients: usize,
    /// Per address: the excess over the rate (in requests) at the time given.
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// What a request is told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Pass,
    /// Within the burst: go after this long.
    Delay(Duration),
    Refuse,
}

impl Limiter {
    pub fn new(
        per_second: f64,
        burst: u32,
        nodelay: bool,
        status: u16,
        max_clients: usize,
    ) -> Self {
        Limiter {
            per_second,
            burst: f64::from(burst),
            nodelay,
            status,
            max_clients: max_clients.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request from `ip` at `now`.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Verdict {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let drained = |excess: f64, at: Instant, rate: f64| {
            (excess - now.saturating_duration_since(at).as_secs_f64() * rate).max(0.0)
        };
        if !buckets.contains_key(&ip) && buckets.len() >= self.max_clients {
            let rate = self.per_second;
            buckets.retain(|_, (e, at)| drained(*e, *at, rate) > 0.0);
            if buckets.len() >= self.max_clients {
                return Verdict::Refuse;
            }
        }
        let (excess, at) = buckets.get(&ip).copied().unwrap_or((0.0, now));
        // nginx counts the first request of an empty bucket as no excess at all.
        let fresh = !buckets.contains_key(&ip);
        let next = if fresh {
            0.0
        } else {
            drained(excess, at, self.per_second) + 1.0
        };
        if next > self.burst {
            return Verdict::Refuse;
        }
        buckets.insert(ip, (next, now));
        if next <= 0.0 || self.nodelay {
            Verdict::Pass
        } else {
            Verdict::Delay(Duration::from_secs_f64(next / self.per_second))
        }
    }

    /// Addresses tracked now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn burst_then_refused_then_drained() {
        let l = Limiter::new(1.0, 2, true, 503, 10);
        let t = Instant::now();
        assert_eq!(l.check(A, t), Verdict::Pass);
        assert_eq!(l.check(A, t), Verdict::Pass);
        assert_eq!(l.check(A, t), Verdict::Pass);
        assert_eq!(l.check(A, t), Verdict::Refuse, "past rate + burst 2");
        assert_eq!(l.check(B, t), Verdict::Pass, "per address");
        assert_eq!(
            l.check(A, t + Duration::from_secs(1)),
            Verdict::Pass,
            "one drained"
        );
        assert_eq!(l.check(A, t + Duration::from_secs(1)), Verdict::Refuse);
    }

    #[test]
    fn without_nodelay_the_burst_waits_its_turn() {
        let l = Limiter::new(2.0, 3, false, 503, 10);
        let t = Instant::now();
        assert_eq!(l.check(A, t), Verdict::Pass);
        assert_eq!(l.check(A, t), Verdict::Delay(Duration::from_millis(500)));
        assert_eq!(l.check(A, t), Verdict::Delay(Duration::from_secs(1)));
        // Zero burst: nginx's `limit_req zone=z;` refuses the second request in the interval.
        let strict = Limiter::new(1.0, 0, false, 429, 10);
        assert_eq!(strict.check(A, t), Verdict::Pass);
        assert_eq!(strict.check(A, t), Verdict::Refuse);
    }

    #[test]
    fn addresses_tracked_are_bounded() {
        let l = Limiter::new(1.0, 5, true, 503, 2);
        let t = Instant::now();
        assert_eq!(l.check(A, t), Verdict::Pass);
        assert_eq!(l.check(A, t), Verdict::Pass);
        assert_eq!(l.check(B, t), Verdict::Pass);
        let c = IpAddr::from([10, 0, 0, 3]);
        // B's bucket holds no excess: forgotten to make room; A's still does.
        assert_eq!(l.check(c, t), Verdict::Pass);
        assert_eq!(l.tracked(), 2);
        let d = IpAddr::from([10, 0, 0, 4]);
        l.check(c, t);
        assert_eq!(
            l.check(d, t),
            Verdict::Refuse,
            "full of buckets still draining"
        );
    }
}
