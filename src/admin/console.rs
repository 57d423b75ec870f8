//! The console's data (`/debug/console`): findings, per-route series with their history, the
//! time-axis events (spikes, release changes, config reloads) and the proxy's state.

use crate::runtime::Shared;
use serde_json::{json, Value};

/// Everything the console draws, in one poll.
pub fn data(shared: &Shared) -> Value {
    let m = &shared.metrics;
    let rt = shared.runtime.load();
    let upstreams: Vec<Value> = rt
        .upstream
        .servers
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            json!({
                "server": addr.to_string(),
                "healthy": rt.upstream.is_ready(i),
                "recently_failed": rt.upstream.recently_failed(i),
            })
        })
        .collect();
    let o = &shared.sink.outcomes;
    json!({
        "now": crate::clock::unix_now().1,
        "release": m.release.current().as_deref(),
        "release_changes": m.release.changes().into_iter()
            .map(|(at, release)| json!({"at": at, "release": release}))
            .collect::<Vec<_>>(),
        "config_generation": rt.generation,
        "reloads": crate::runtime::reload::recent(shared),
        "upstreams": upstreams,
        "sink": {
            "enabled": shared.sink.enabled(),
            "queue_depth": o.depth.get(),
            "written": o.written.get(),
            "dropped": o.queue_full.get() + o.sink_error.get(),
            "rate_limited": o.rate_limited.get(),
        },
        "draining": crate::runtime::drain::draining(shared),
        "findings": shared.findings.snapshot(),
        "routes": shared.detector.history(m),
    })
}
