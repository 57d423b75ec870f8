//! Django's context headers in a raw response head: taken out of what the client gets, their
//! values kept for telemetry (both relay loops: `response` and `buffered`).

use crate::exchange::observe::{self, Observed};
use crate::rules::context::ContextHeaders;
use crate::rules::forwarding;
use crate::runtime::Shared;
use crate::telemetry::classify;
use http::header::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;

/// The values of Django's context headers in a response head, which the client never gets.
#[derive(Default)]
pub(super) struct ContextValues<'a> {
    route: Option<&'a [u8]>,
    release: Option<&'a [u8]>,
    kind: Option<&'a [u8]>,
    fs_path: Option<&'a [u8]>,
    run_as: Option<&'a [u8]>,
}

impl<'a> ContextValues<'a> {
    /// Whether `name` is a context header; if so its value is kept when telemetry reads it
    /// (the kind, path and user of a `PermissionError` only on a 5xx).
    pub(super) fn take(
        &mut self,
        names: &ContextHeaders,
        status: u16,
        name: &str,
        value: &'a [u8],
    ) -> bool {
        if !forwarding::is_context_header(name, names) {
            return false;
        }
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        let slot = if is(names.route.as_str()) {
            &mut self.route
        } else if is(names.release.as_str()) {
            &mut self.release
        } else if status < 500 {
            return true;
        } else if is(names.kind.as_str()) {
            &mut self.kind
        } else if is(classify::PATH_HEADER) {
            &mut self.fs_path
        } else if is(classify::RUN_AS_HEADER) {
            &mut self.run_as
        } else {
            return true;
        };
        *slot = Some(value);
        true
    }

    /// The route, the release, and on a 5xx a `PermissionError` the companion marked.
    pub(super) fn observe(&self, shared: &Shared, obs: &mut Observed, status: u16) {
        observe::observe_context(shared, obs, self.route, self.release);
        if status >= 500 {
            observe::observe_filesystem(obs, self.kind, self.fs_path, self.run_as);
        }
    }
}

/// A denial's whole head, context headers included, as a header map for its classification
/// and sample (`observe::observe_denial`).
pub(super) fn denial_head(status: u16, headers: &[httparse::Header<'_>]) -> Option<ResponseHeader> {
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = http::StatusCode::from_u16(status).ok()?;
    parts.headers.reserve(headers.len());
    for h in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) {
            parts.headers.append(n, v);
        }
    }
    Some(ResponseHeader::from(parts))
}
