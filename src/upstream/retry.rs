//! The one retry policy, for the relay and for Pingora's loop alike (RFC 9110 §9.2.2).
//!
//! - Another server is tried only when connecting failed: nothing was sent, so nothing can
//!   have run twice.
//! - A request is sent again on a fresh connection only if its method is idempotent and the
//!   pooled connection it went out on died before any byte came back (the server had closed
//!   it while idle). A POST, PATCH or LOCK is never sent twice: it answers 502 instead, as
//!   nginx does.

use super::{pick_index, Upstream};
use crate::telemetry::vocabulary::UpstreamErrorKind;
use http::Method;
use std::time::Duration;

/// What a request learns of its servers on its way, in every loop: which were tried (written
/// only by `next_server`), how many tries, the one chosen last, the error, and whether that
/// error was already counted (a connect failure is counted where it happens).
#[derive(Default, Debug)]
pub struct Tries {
    /// A bit per index in `Upstream::servers` (the first 64).
    tried: u64,
    count: usize,
    /// The server of the last try.
    pub server: Option<usize>,
    pub error: Option<UpstreamErrorKind>,
    pub counted: bool,
}

impl Tries {
    /// Picks the next server to try (`upstream::pick_index`) and records it.
    pub fn next_server(&mut self, up: &Upstream) -> Option<usize> {
        let idx = pick_index(up, self.tried)?;
        if idx < 64 {
            self.tried |= 1 << idx;
        }
        self.count += 1;
        self.server = Some(idx);
        Some(idx)
    }

    /// Whether another server may be tried after a connect failure, given `upstream.retries`.
    pub fn may_try_another(&self, retries: usize) -> bool {
        may_try_another(self.count, retries)
    }
}

/// Whether `method` is idempotent (RFC 9110 §9.2.2): safe methods, `PUT` and `DELETE`.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether a request whose reused upstream connection failed may be sent again on a new one.
///
/// `reused`: the connection came from the pool. `nothing_back`: not one byte of a response
/// arrived before it failed.
pub fn may_resend(method: &Method, reused: bool, nothing_back: bool) -> bool {
    reused && nothing_back && is_idempotent(method)
}

/// Whether another server may be tried after the `tries`-th connect failure, given
/// `upstream.retries`.
pub fn may_try_another(tries: usize, retries: usize) -> bool {
    tries <= retries
}

/// The longest a pooled connection may have idled to carry a request that cannot be resent.
///
/// Django's servers close idle keepalive connections on their own timer (gunicorn: 2 s by
/// default); a request written just as the server closes gets nothing back. An idempotent
/// request is then resent, but a POST would be a 502. Keeping POSTs to connections that
/// returned within the last second keeps them clear of that race.
pub const MAX_IDLE_FOR_UNSAFE: Duration = Duration::from_secs(1);

/// How long a pooled connection may have idled to carry a request with this method, within
/// the pool's own `idle_timeout`.
pub fn max_idle_for(method: &Method, idle_timeout: Duration) -> Duration {
    if is_idempotent(method) {
        idle_timeout
    } else {
        idle_timeout.min(MAX_IDLE_FOR_UNSAFE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_requests_on_reused_silent_connections_are_resent() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(may_resend(&m, true, true), "{m}");
            assert!(!may_resend(&m, false, true), "{m} on a new connection");
            assert!(!may_resend(&m, true, false), "{m} after bytes came back");
        }
        let lock = Method::from_bytes(b"LOCK").expect("method");
        for m in [Method::POST, Method::PATCH, Method::CONNECT, lock] {
            assert!(!may_resend(&m, true, true), "{m}");
        }
    }

    #[test]
    fn unsafe_methods_take_only_fresh_pooled_connections() {
        let idle = Duration::from_secs(60);
        assert_eq!(max_idle_for(&Method::GET, idle), idle);
        assert_eq!(max_idle_for(&Method::POST, idle), MAX_IDLE_FOR_UNSAFE);
        let short = Duration::from_millis(300);
        assert_eq!(max_idle_for(&Method::PATCH, short), short);
        assert!(may_try_another(1, 1) && !may_try_another(2, 1));
    }
}
