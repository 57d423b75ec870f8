//! The access log: one JSON line per request through `tracing` (target `access`), identities hashed.

use crate::proxy::RequestCtx;
use pingora::proxy::Session;

/// Emits the access-log line for a finished request.
pub fn write(session: &Session, ctx: &RequestCtx, route: &str, status: u16, seconds: f64) {
    let req = session.req_header();
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let denial = ctx.obs.denial.as_deref();
    let user = denial.and_then(|d| d.user).map(|h| h.to_string());
    let session_hash = denial.and_then(|d| d.session).map(|h| h.to_string());
    let kind = denial.map(|d| d.kind.label());
    tracing::info!(
        target: "access",
        request_id = %ctx.request_id,
        method = %req.method,
        // Normalised, without the query: paths and queries can carry reset tokens and keys.
        path = %crate::routes::with_normalised(req.uri.path(), str::to_string),
        route,
        status,
        duration_ms = (seconds * 1000.0),
        client = %client,
        user = user.as_deref(),
        session = session_hash.as_deref(),
        kind,
    );
}
