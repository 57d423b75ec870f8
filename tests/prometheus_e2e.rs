//! A real Prometheus (unpacked from Debian's package, not installed as a service) scrapes the
//! proxy every second with the shipped rules, in front of a real Django app. After a release
//! change and a 403 burst on one route, the deploy-spike alert must be pending or firing for
//! that route within 60 s, and no alert may name a quiet route. With two proxies in front of
//! the same broken release, the fleet rule counts both and `AuthzEdgeFinding` fires once.

mod common;

use common::django::DeployScenario;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Prometheus {
    child: Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(target: std::net::SocketAddr) -> Prometheus {
    start_prometheus_for(&[target])
}

/// Prometheus scraping each of `targets` (admin listeners) with the shipped rules.
fn start_prometheus_for(targets: &[std::net::SocketAddr]) -> Prometheus {
    let target = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let dir = tempfile::tempdir().expect("tmp");
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/authz-edge.rules.yml"
    );
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: authz-edge\n    static_configs:\n      - targets: [{target}]\n"
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("config");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let child = Command::new(ci_tool("prometheus", "PROMETHEUS"))
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn prometheus");
    let prom = Prometheus {
        child,
        addr,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = || {
        raw_request(
            addr,
            b"GET /-/ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            false,
        )
        .is_some_and(|r| r.status == 200)
    };
    while !ready() {
        assert!(Instant::now() < deadline, "prometheus never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    prom
}

/// The instant vector of `expr`, as Prometheus answers it.
fn query(prom: &Prometheus, expr: &str) -> Vec<serde_json::Value> {
    let encoded: String = expr
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let r = get(prom.addr, &format!("/api/v1/query?query={encoded}"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("query json");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn alerts(prom: &Prometheus) -> Vec<serde_json::Value> {
    let r = get(prom.addr, "/api/v1/alerts");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("alerts json");
    v["data"]["alerts"].as_array().cloned().unwrap_or_default()
}

#[test]
fn prometheus_alerts_on_the_spike_route_after_a_deploy() {
    let mut sc = DeployScenario::start(|upstream| {
        config_for(
            &[upstream],
            "[spike]\ntick = \"200ms\"\nwindow = \"2s\"\ncooldown = \"5s\"\n",
        )
    });
    let prom = start_prometheus(sc.proxy.admin);
    sc.steady(Duration::from_secs(5));
    sc.deploy();
    let approve = "/reports/<int:pk>/approve/";
    let started = Instant::now();
    let mut found = None;
    while started.elapsed() < Duration::from_secs(60) {
        sc.burst(Duration::from_secs(1));
        let all = alerts(&prom);
        if let Some(a) = all.iter().find(|a| {
            a["labels"]["alertname"] == "AuthzEdge403SpikeAfterDeploy"
                && a["labels"]["route"] == approve
                && (a["state"] == "pending" || a["state"] == "firing")
        }) {
            found = Some((a.clone(), all));
            break;
        }
    }
    let Some((alert, all)) = found else {
        let q = |expr: &str| {
            let path = format!("/api/v1/query?query={}", expr.replace(' ', "%20"));
            get(prom.addr, &path).text()
        };
        let rules = get(prom.addr, "/api/v1/rules?type=alert").text();
        let health: Vec<String> = serde_json::from_str::<serde_json::Value>(&rules)
            .ok()
            .and_then(|v| v["data"]["groups"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .map(|r| format!("{} {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        panic!(
            "no AuthzEdge403SpikeAfterDeploy alert for the route within 60 s\nspike: {}\nrelease: {}\nchanged: {}\nrules: {:#?}",
            q("authz_edge_spike_active"),
            q("authz_edge_release_info"),
            q("authz_edge_release_changed_timestamp_seconds"),
            health
        );
    };
    assert_eq!(alert["labels"]["release"], "v2");
    assert_eq!(alert["labels"]["status"], "403");
    // The annotation names the permission once Prometheus holds two samples of its counter
    // (it is re-rendered on every evaluation; notifications go out when the alert fires).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        sc.burst(Duration::from_millis(500));
        let named = alerts(&prom).iter().any(|a| {
            a["labels"]["alertname"] == "AuthzEdge403SpikeAfterDeploy"
                && a["annotations"]["description"].as_str().is_some_and(|d| {
                    d.contains("Most denied permission now: reports.approve_report.")
                })
        });
        if named {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the description never named the permission: {alert}"
        );
    }
    for a in &all {
        if let Some(route) = a["labels"]["route"].as_str() {
            assert_eq!(route, approve, "an alert names a quiet route: {a}");
        }
    }
}

#[test]
fn a_finding_on_two_proxies_is_one_fleet_alert() {
    let mut sc = DeployScenario::start(|upstream| config_for(&[upstream], ""));
    sc.deploy_with(true, &[("REPORTS_V2", "1")]);
    // A second proxy in front of the same broken release.
    let v2 = sc.v2.as_ref().expect("v2").addr;
    let second = Proxy::start(&config_for(&[v2], ""));
    let prom = start_prometheus_for(&[sc.proxy.admin, second.admin]);
    let approve = "/reports/<int:pk>/approve/";
    let started = Instant::now();
    let counted = loop {
        sc.burst(Duration::from_millis(500));
        sc.burst_to(second.http, Duration::from_millis(500));
        let fleet = query(
            &prom,
            "authz_edge:finding_active:fleet_instances{cause=\"permission_not_migrated\"}",
        );
        if let Some(v) = fleet.first().filter(|v| v["value"][1] == "2") {
            break v.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the fleet rule never counted both proxies: {fleet:?}"
        );
    };
    assert_eq!(counted["metric"]["route"], approve);
    // One alert for the cause and route, not one per instance; its value is the count.
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let all: Vec<serde_json::Value> = alerts(&prom)
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == "AuthzEdgeFinding")
            .collect();
        if all.iter().any(|a| {
            a["annotations"]["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("2 "))
        }) {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "no fleet AuthzEdgeFinding: {all:?}"
        );
        sc.burst(Duration::from_millis(300));
        sc.burst_to(second.http, Duration::from_millis(300));
    };
    assert_eq!(found.len(), 1, "{found:?}");
    let a = &found[0];
    assert_eq!(a["labels"]["cause"], "permission_not_migrated");
    assert_eq!(a["labels"]["route"], approve);
    assert!(a["labels"]["instance"].is_null(), "{a}");
    // The permission states of both proxies' denials, summed for the fleet.
    let states = query(
        &prom,
        "sum by (state) (authz_edge_permission_state_denials_total)",
    );
    let not_migrated = states
        .iter()
        .find(|s| s["metric"]["state"] == "not_migrated")
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(not_migrated > 0.0, "{states:?}");
}
