//! The operations side against the real proxy: every metric that the shipped Prometheus rules
//! and Grafana dashboard use is exported.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Metric names (`authz_edge_...`) in a text, histogram suffixes folded into the family.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("authz_edge_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end] == b'_'
                || bytes[end].is_ascii_digit())
        {
            end += 1;
        }
        let preceded_by_word =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b':');
        let name = &text[start..end];
        if !preceded_by_word && !name.ends_with('_') {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
                .unwrap_or(name);
            out.insert(base.to_string());
        }
        i = end.max(start + 1);
    }
    out
}

#[test]
fn every_metric_in_the_rules_and_dashboard_is_exported() {
    let root = env!("CARGO_MANIFEST_DIR");
    let rules = std::fs::read_to_string(format!("{root}/deploy/prometheus/authz-edge.rules.yml"))
        .expect("rules");
    let dashboard = std::fs::read_to_string(format!("{root}/deploy/grafana/authz-edge.json"))
        .expect("dashboard");
    let mut wanted = metric_names(&rules);
    wanted.extend(metric_names(&dashboard));
    assert!(wanted.len() >= 15, "{wanted:?}");

    // Traffic that makes every family appear: denials with the companion's headers (a
    // permission not migrated, so that a finding opens), a spike, a release, an upstream
    // error, a rejected request, a reload.
    let up = Upstream::start(|s| {
        if s.path.starts_with("/deny/") {
            Reply::new(403, "no")
                .header("X-Authz-Kind", "permission")
                .header("X-Authz-User", &s.path)
                .header("X-Authz-Permission", "app.perm")
                .header("X-Authz-Permission-State", "app.perm=not_migrated")
                .header("X-App-Release", "v1")
        } else {
            Reply::new(200, "ok")
        }
    });
    let p = Proxy::start(&config_for(
        &[up.addr],
        "[spike]\ntick = \"100ms\"\nwindow = \"1s\"\n",
    ));
    std::thread::sleep(Duration::from_millis(1200)); // the detector's warm-up
    for i in 0..40 {
        request(p.http, "GET", &format!("/deny/{i}/"), &[], b"");
    }
    get(p.http, "/ok/");
    raw_request(p.http, b"GET / HTTP/1.1\r\nBad\r\n\r\n", false);
    p.reload(&std::fs::read_to_string(&p.config_path).expect("config"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let exported = loop {
        let m = p.metrics();
        let have: BTreeSet<String> = m
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        let missing: Vec<&String> = wanted.iter().filter(|w| !have.contains(*w)).collect();
        if missing.is_empty() {
            break have;
        }
        assert!(Instant::now() < deadline, "not exported: {missing:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(wanted.is_subset(&exported));
}
