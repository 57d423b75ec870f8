//! A real Prometheus (unpacked from Debian's package, not installed as a service) scrapes the
//! proxy every second with the shipped rules, in front of a real Django app. After a release
//! change and a 403 burst on one route, the deploy-spike alert must be pending or firing for
//! that route within 60 s, and no alert may name a quiet route.

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
    let dir = tempfile::tempdir().expect("tmp");
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/authz-edge.rules.yml"
    );
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: authz-edge\n    static_configs:\n      - targets: [\"{target}\"]\n"
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
