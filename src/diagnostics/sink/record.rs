//! The records of the diagnostics sink, one JSON object per line (see CONTRACT.md).

pub use crate::telemetry::detector::{KindCount, PermissionCount, SpikeRecord};
use serde::Serialize;
use std::collections::BTreeMap;

/// A sink record: `{"type":"sample",...}` or `{"type":"spike",...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Sample(Box<SampleRecord>),
    Spike(Box<SpikeRecord>),
    /// A finding that opened or closed (`active` says which).
    Finding(Box<FindingRecord>),
}

/// `{"type":"finding", ...the finding's fields..., "ts": ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct FindingRecord {
    #[serde(flatten)]
    pub finding: crate::telemetry::findings::Finding,
    pub ts: String,
}

/// A sampled denial. Identities are keyed hashes; headers are allow-listed; the path is
/// normalised (tokens in paths become `<token>`) and carries no query string.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRecord {
    pub ts: String,
    pub request_id: String,
    pub route: String,
    pub method: String,
    pub path: String,
    /// Names of the query parameters, without their values.
    pub query_keys: Vec<String>,
    pub status: u16,
    pub kind: &'static str,
    pub authn: &'static str,
    pub user: Option<String>,
    pub session: Option<String>,
    pub token: Option<String>,
    pub permission: Vec<String>,
    pub reason: Option<String>,
    pub release: Option<String>,
    pub duration_ms: f64,
    pub sample_reason: &'static str,
    pub headers: BTreeMap<&'static str, String>,
    pub body_excerpt: Option<String>,
}
