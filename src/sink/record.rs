//! The records of the diagnostics sink, one JSON object per line (see CONTRACT.md).

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

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
    pub finding: crate::findings::Finding,
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

/// A permission seen in a spike.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PermissionCount {
    pub permission: String,
    pub count: u64,
    /// First denied after the last release change: the signature of a migration not run.
    pub new_since_release: bool,
}

/// A kind seen in a spike.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KindCount {
    pub kind: &'static str,
    pub count: u64,
}

/// A spike that began.
#[derive(Debug, Clone, Serialize)]
pub struct SpikeRecord {
    pub ts: String,
    pub route: String,
    pub status: u16,
    pub rate: f64,
    pub baseline: f64,
    pub score: f64,
    pub release: Option<String>,
    pub release_changed_s_ago: Option<f64>,
    pub top_permissions: Vec<PermissionCount>,
    pub top_kinds: Vec<KindCount>,
}

/// `2026-11-21T20:00:00.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_291_200_123);
        assert_eq!(rfc3339_millis(t), "2026-11-21T20:00:00.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }
}
