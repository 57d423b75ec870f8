//! Wall-clock time as the rest of the proxy reads it: Unix seconds and RFC 3339 stamps.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time now, as whole seconds and as a float.
pub fn unix_now() -> (u64, f64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.as_secs_f64())
}

/// `2026-11-21T20:00:00.123Z`, as the sink's `ts` fields are written.
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
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
