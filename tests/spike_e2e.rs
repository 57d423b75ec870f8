//! A deploy that breaks a permission: steady traffic on release v1, a blue/green switch to v2
//! (SIGHUP to a new gunicorn), then a burst of 403s on the new route. The detector must flag
//! that route only, and its spike record must name the new release and the permission.

mod common;

use common::django::DeployScenario;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn a_403_spike_after_a_deploy_is_flagged_on_its_route_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let sink = dir.path().join("diag.jsonl");
    let sink_path = sink.display().to_string();
    let mut sc = DeployScenario::start(move |upstream| {
        config_for(
            &[upstream],
            "[spike]\ntick = \"200ms\"\nwindow = \"2s\"\ncooldown = \"2s\"\n[sampling]\nper_route_per_minute = 6\n",
        )
        .replace(
            "[sink]\ntype = \"none\"\n",
            &format!("[sink]\ntype = \"file\"\npath = \"{sink_path}\"\nflush_interval = \"100ms\"\n"),
        )
    });
    sc.steady(Duration::from_secs(4));
    let p = &sc.proxy;
    assert_eq!(
        p.metric("authz_edge_spikes_total{route=\"/reports/<int:pk>/export/\",status=\"403\"}"),
        0.0
    );
    assert_eq!(p.metric("authz_edge_release_info{release=\"v1\"}"), 1.0);

    sc.deploy();
    let p = &sc.proxy;
    wait_for(p, "release v2", |m| {
        metric_value(m, "authz_edge_release_info{release=\"v2\"}") == 1.0
    });
    let approve = "/reports/<int:pk>/approve/";
    sc.burst(Duration::from_secs(3));
    let (alice, bob) = (sc.alice.clone(), sc.bob.clone());
    wait_for(p, "the spike", |m| {
        metric_value(
            m,
            &format!("authz_edge_spike_active{{route=\"{approve}\",status=\"403\"}}"),
        ) == 1.0
    });
    let m = p.metrics();
    assert_eq!(
        metric_value(
            &m,
            &format!("authz_edge_spikes_total{{route=\"{approve}\",status=\"403\"}}")
        ),
        1.0
    );
    // No other route is in a spike.
    let others: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("authz_edge_spike_active{") && l.ends_with(" 1"))
        .filter(|l| !l.contains(approve))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert!(metric_value(&m, "authz_edge_release_changed_timestamp_seconds") > 0.0);
    // The new route appeared after the detector's warm-up: its past counts as zero denials.
    let debug: serde_json::Value =
        serde_json::from_slice(&get(p.admin, "/debug/authz").body).expect("json");
    let entry = debug["routes"]
        .as_array()
        .and_then(|r| r.iter().find(|e| e["route"] == approve).cloned())
        .expect("the route in /debug/authz");
    assert_eq!(entry["zero_history"], true, "{entry}");
    assert_eq!(entry["spike"], true, "{entry}");
    assert_eq!(
        metric_value(
            &m,
            &format!("authz_edge_affected_users{{route=\"{approve}\"}}")
        ),
        2.0
    );

    // The spike record names the release, how soon after the deploy, and the new permission.
    let records = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&sink)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !records().iter().any(|r| r["type"] == "spike") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let recs = records();
    let spikes: Vec<&serde_json::Value> = recs.iter().filter(|r| r["type"] == "spike").collect();
    assert_eq!(spikes.len(), 1, "{spikes:?}");
    let s = spikes[0];
    assert_eq!(s["route"], approve);
    assert_eq!(s["status"], 403);
    assert_eq!(s["release"], "v2");
    let ago = s["release_changed_s_ago"]
        .as_f64()
        .expect("seconds since the deploy");
    assert!(ago < 30.0, "{ago}");
    assert_eq!(
        s["top_permissions"][0]["permission"],
        "reports.approve_report"
    );
    assert_eq!(s["top_permissions"][0]["new_since_release"], true);
    assert_eq!(s["top_kinds"][0]["kind"], "permission");
    assert!(s["rate"].as_f64().expect("rate") > s["baseline"].as_f64().expect("baseline"));

    // Samples of the burst: rate limited, hashed identities only.
    let samples: Vec<&serde_json::Value> = recs
        .iter()
        .filter(|r| r["type"] == "sample" && r["route"] == approve)
        .collect();
    let limited = p.metric("authz_edge_samples_total{outcome=\"rate_limited\"}");
    assert!(limited > 0.0, "the burst was not rate limited");
    // First-seen (one key) plus at most the bucket (6, raised 4x while spiking) for the route.
    assert!(samples.len() <= 1 + 6 * 4, "{} samples", samples.len());
    assert!(samples.len() >= 2);
    for r in &samples {
        assert_eq!(r["release"], "v2");
        assert_eq!(r["user"].as_str().map(str::len), Some(16));
        assert_eq!(r["session"].as_str().map(str::len), Some(16));
    }
    let raw = std::fs::read_to_string(&sink).expect("sink");
    assert!(
        !raw.contains(&alice) && !raw.contains(&bob),
        "a session id in the sink"
    );
}

fn wait_for(p: &Proxy, what: &str, f: impl Fn(&str) -> bool) {
    poll::until(what, || {
        let m = p.metrics();
        if f(&m) {
            return Ok(());
        }
        // What the detector shows, for the failure message.
        let detector: Vec<String> = m
            .lines()
            .filter(|l| {
                l.contains("spike")
                    || l.contains("denial_rate")
                    || l.contains("baseline")
                    || l.contains("denials_total")
            })
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        Err(detector)
    });
}
