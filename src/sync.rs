//! Locks that survive a panic elsewhere: every mutex here guards state that stays usable when a
//! holder panicked (counters, queues, caches), so a poisoned lock is taken over, not propagated.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking it over if a panicking holder poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
