//! The access log: one JSON line per request through `tracing` (target `access`), identities hashed.

use crate::telemetry::Observed;
use std::net::IpAddr;

/// What the access log says about one finished request.
pub struct Entry<'a> {
    pub method: &'a str,
    /// The path without the query.
    pub path: &'a str,
    pub client: Option<IpAddr>,
    pub request_id: &'a str,
    pub obs: &'a Observed,
    pub route: &'a str,
    pub status: u16,
    pub seconds: f64,
}

/// Emits the access-log line for a finished request.
pub fn write(e: Entry<'_>) {
    let Entry {
        method,
        path,
        client,
        request_id,
        obs,
        route,
        status,
        seconds,
    } = e;
    let client = client.map(|ip| ip.to_string()).unwrap_or_default();
    let denial = obs.denial.as_deref();
    let user = denial.and_then(|d| d.user).map(|h| h.to_string());
    let session_hash = denial.and_then(|d| d.session).map(|h| h.to_string());
    let kind = denial.map(|d| d.kind.label());
    tracing::info!(
        target: "access",
        request_id = %request_id,
        method,
        // Normalised, without the query: paths and queries can carry reset tokens and keys.
        path = %crate::routes::with_normalised(path, str::to_string),
        route,
        status,
        duration_ms = (seconds * 1000.0),
        client = %client,
        user = user.as_deref(),
        session = session_hash.as_deref(),
        kind,
    );
}
