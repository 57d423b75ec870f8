//! The one way a test waits: poll a condition every 20 ms, for at most `WITHIN`, then fail
//! naming what was awaited and the last thing seen. A deadline, not a timed assertion: it only
//! bounds a test that would otherwise hang.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// How long any wait may take before the test fails.
pub const WITHIN: Duration = Duration::from_secs(30);

/// Calls `f` until it returns `Ok`, and returns that; after `WITHIN` fails with `what` and the
/// last `Err` (what was seen instead).
pub fn until<T, E: std::fmt::Debug>(what: &str, mut f: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + WITHIN;
    loop {
        match f() {
            Ok(v) => return v,
            Err(seen) if Instant::now() > deadline => {
                panic!("timed out after {WITHIN:?} waiting for {what}; last seen: {seen:?}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// `until` for a plain condition.
pub fn until_true(what: &str, mut f: impl FnMut() -> bool) {
    until(what, || if f() { Ok(()) } else { Err("false") })
}
