//! What one request's response told telemetry: its route, its denial and the evidence that
//! the end of the request records (`exchange::observe`).

use crate::telemetry::classify::{CsrfSniffer, Denial};
use crate::telemetry::metrics::RouteStats;
use std::sync::Arc;

/// The telemetry part of a request's context.
#[derive(Default)]
pub struct Observed {
    /// The route label's stats, once known (Django's header, a configured pattern, a mount).
    pub route: Option<Arc<RouteStats>>,
    pub denial: Option<Box<Denial>>,
    /// Present while a 403 without a companion kind may still prove to be a CSRF failure.
    pub sniffer: Option<CsrfSniffer>,
    /// The start of a denial's body, for its sample (text types only).
    pub body: Option<Vec<u8>>,
    /// How many body bytes `body` keeps.
    pub body_cap: usize,
    /// A 5xx the companion marked as a `PermissionError`: the directory it concerns, and the
    /// `uid:gid` Django runs as.
    pub filesystem: Option<(String, Option<String>)>,
}
