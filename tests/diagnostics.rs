//! The sampler and the diagnostics sink against in-test upstreams: rate limits, privacy,
//! stalled, refused and full sinks, rotation, torn lines, and draining at shutdown.

mod common;

use common::sink::*;
use common::*;
use std::net::TcpListener;
use std::time::{Duration, Instant};

#[test]
fn samples_are_rate_limited_hashed_and_redacted() {
    let up = denier();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("diag.jsonl");
    let sink = sink_config(&path.display().to_string(), "");
    let p = Proxy::start(&with_sink(
        &up,
        &sink,
        "[sampling]\nper_route_per_minute = 3\nbody_bytes = 2048\n",
    ));
    for i in 0..20 {
        assert_eq!(denied_request(p.http, i).status, 403);
    }
    assert_eq!(get(p.http, "/fine/").status, 200);
    poll::until_true("4 samples", || lines_of(&path).len() >= 4);
    // One first-seen, then the bucket of 3; the other 16 are rate limited.
    let m = p.wait_metric("authz_edge_samples_total{outcome=\"rate_limited\"}", 16.0);
    assert_eq!(
        metric_value(&m, "authz_edge_samples_total{outcome=\"rate_limited\"}"),
        16.0
    );
    poll::until_true("written counter", || {
        p.metric("authz_edge_samples_total{outcome=\"written\"}") == 4.0
    });
    let recs = lines_of(&path);
    assert_eq!(recs.len(), 4);
    let reasons: Vec<&str> = recs
        .iter()
        .map(|r| r["sample_reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(reasons, vec!["first_seen", "rate", "rate", "rate"]);
    let r = &recs[0];
    assert_eq!(r["type"], "sample");
    assert_eq!(r["route"], "/deny/<int:pk>/");
    assert_eq!(r["path"], "/deny/<int>/");
    assert_eq!(r["query_keys"], serde_json::json!(["next", "token"]));
    assert_eq!(r["status"], 403);
    assert_eq!(r["kind"], "permission");
    assert_eq!(r["authn"], "authenticated");
    assert_eq!(
        r["permission"],
        serde_json::json!(["reports.export_report"])
    );
    assert_eq!(r["release"], "v7");
    assert_eq!(r["user"].as_str().map(str::len), Some(16));
    assert_eq!(r["session"].as_str().map(str::len), Some(16));
    assert_eq!(r["token"].as_str().map(str::len), Some(16));
    assert_eq!(r["headers"]["user-agent"], "pytest-agent");
    assert_eq!(r["headers"]["referer"], "https://shop.example/cart/");
    assert!(r["headers"].get("cookie").is_none() && r["headers"].get("authorization").is_none());
    assert_eq!(r["request_id"].as_str().map(str::len), Some(32));
    assert!(r["ts"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.len() == 24));
    let excerpt = r["body_excerpt"].as_str().expect("excerpt");
    assert!(
        excerpt.starts_with("<h1>Denied</h1> session [redacted]"),
        "{excerpt}"
    );
    let raw = std::fs::read_to_string(&path).expect("file");
    for canary in [
        "CANARYSESSION99",
        "CANARYCSRF01",
        "CANARYBEARER55",
        "CANARYFORMTOKEN",
        "QUERYTOKEN",
        "REFERERSECRET",
        "user-4242",
    ] {
        assert!(!raw.contains(canary), "{canary} in the sink");
    }
}

/// A server that accepts connections and never answers.
fn stalled_server() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    l.set_nonblocking(true).expect("nb");
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until {
            match l.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
            if held.len() > 1000 {
                break;
            }
        }
    });
    (addr, h)
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

#[test]
fn a_stalled_http_sink_never_delays_a_request() {
    let up = denier();
    let (stalled, _h) = stalled_server();
    let sink = format!(
        "[sink]\ntype = \"http\"\nurl = \"http://{stalled}/authz\"\nqueue = 16\ntimeout = \"30s\"\nbatch_max = 4\nbatch_age = \"10ms\"\n"
    );
    let slow = Proxy::start(&with_sink(
        &up,
        &sink,
        "[sampling]\nper_route_per_minute = 100000\nglobal_per_second = 100000\n",
    ));
    let normal = Proxy::start(&with_sink(&up, "[sink]\ntype = \"none\"\n", ""));
    // Interleaved: the same number of requests through each, in alternating rounds.
    let (mut with_stall, mut without) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        with_stall.extend(timed_denials(slow.http, 200));
        without.extend(timed_denials(normal.http, 200));
    }
    let m = slow.metrics();
    let dropped = metric_value(&m, "authz_edge_samples_total{outcome=\"queue_full\"}");
    // 1000 samples offered; the writer holds one batch of 4 in a POST that never returns and
    // the queue holds 16: everything else was dropped, none waited.
    assert!(dropped >= 1000.0 - 4.0 - 16.0 - 4.0, "dropped {dropped}");
    assert_eq!(metric_value(&m, "authz_edge_sink_queue_depth"), 16.0);
    eprintln!(
        "p99 latency over 1000 denials each, interleaved: with a stalled sink {:?}, without a sink {:?}",
        p99(with_stall),
        p99(without)
    );
}

#[test]
fn a_refused_http_sink_drops_and_counts() {
    let up = denier();
    let sink = "[sink]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/authz\"\nretries = 1\nbatch_age = \"10ms\"\n";
    let p = Proxy::start(&with_sink(&up, sink, ""));
    for i in 0..5 {
        assert_eq!(denied_request(p.http, i).status, 403);
    }
    // One first-seen sample and four from the bucket: five records, all refused.
    poll::until_true("sink errors", || {
        p.metric("authz_edge_samples_total{outcome=\"sink_error\"}") == 5.0
    });
    assert_eq!(
        p.metric("authz_edge_samples_total{outcome=\"written\"}"),
        0.0
    );
}

#[test]
fn a_full_disk_drops_counts_and_recovers() {
    let up = denier();
    let dir = tempfile::tempdir().expect("tmp");
    let link = dir.path().join("diag.jsonl");
    std::os::unix::fs::symlink("/dev/full", &link).expect("symlink");
    let p = Proxy::start(&with_sink(
        &up,
        &sink_config(&link.display().to_string(), ""),
        "",
    ));
    assert_eq!(denied_request(p.http, 1).status, 403);
    poll::until_true("a sink error", || {
        p.metric("authz_edge_samples_total{outcome=\"sink_error\"}") >= 1.0
    });
    // Room again: the writer reopens the file and carries on.
    let real = dir.path().join("real.jsonl");
    std::fs::remove_file(&link).expect("unlink");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    assert_eq!(denied_request(p.http, 2).status, 403);
    poll::until_true("a written sample", || {
        p.metric("authz_edge_samples_total{outcome=\"written\"}") >= 1.0
    });
    assert_eq!(lines_of(&real).len(), 1);
}

#[test]
fn the_file_rotates_and_keeps_a_bounded_number() {
    let up = denier();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("diag.jsonl");
    let sink = sink_config(&path.display().to_string(), "max_bytes = 4096\nkeep = 2\n");
    let p = Proxy::start(&with_sink(
        &up,
        &sink,
        "[sampling]\nper_route_per_minute = 100000\nglobal_per_second = 100000\nbody_bytes = 0\n",
    ));
    timed_denials(p.http, 100);
    poll::until_true("all written", || {
        p.metric("authz_edge_samples_total{outcome=\"written\"}") == 100.0
    });
    let name = |i: usize| std::path::PathBuf::from(format!("{}.{i}", path.display()));
    assert!(path.exists() && name(1).exists() && name(2).exists());
    assert!(!name(3).exists(), "keep = 2");
    for f in [path.clone(), name(1), name(2)] {
        let len = std::fs::metadata(&f).expect("meta").len();
        assert!(len <= 4096, "{} is {len} bytes", f.display());
        assert!(lines_of(&f).iter().all(|r| r["type"] == "sample"));
    }
}

#[test]
fn shutdown_drains_the_queue_and_a_kill_leaves_at_most_one_torn_line() {
    let up = denier();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("diag.jsonl");
    let sink = sink_config(&path.display().to_string(), "");
    let extra = "[sampling]\nper_route_per_minute = 100000\nglobal_per_second = 100000\n";
    let p = Proxy::start(&with_sink(&up, &sink, extra));
    timed_denials(p.http, 300);
    let mut p = p;
    p.signal(libc::SIGTERM);
    wait_exit(&mut p.child, Duration::from_secs(15));
    assert_eq!(
        lines_of(&path).len(),
        300,
        "every queued record written before exit"
    );

    // SIGKILL in the middle of a flood: every line but the last is whole.
    let path2 = dir.path().join("killed.jsonl");
    let sink2 = sink_config(&path2.display().to_string(), "");
    let mut p2 = Proxy::start(&with_sink(&up, &sink2, extra));
    let addr = p2.http;
    let flood = std::thread::spawn(move || {
        let _ = std::panic::catch_unwind(|| timed_denials(addr, 5000));
    });
    poll::until_true("some records", || lines_of(&path2).len() > 50);
    p2.child.kill().expect("kill");
    let _ = flood.join();
    let text = std::fs::read_to_string(&path2).expect("file");
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    let bad = lines
        .iter()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .count();
    assert!(bad <= 1, "{bad} torn lines");
    if bad == 1 {
        assert!(!text.ends_with('\n'), "only the last line may be torn");
    }
}

#[test]
fn debug_authz_shows_routes_and_the_release() {
    let up = denier();
    let p = Proxy::start(&config_for(
        &[up.addr],
        "[spike]\ntick = \"100ms\"\nwindow = \"1s\"\n",
    ));
    for i in 0..5 {
        denied_request(p.http, i);
    }
    poll::until_true("the detector to tick", || {
        let v: serde_json::Value =
            serde_json::from_slice(&get(p.admin, "/debug/authz").body).expect("json");
        v["routes"].as_array().is_some_and(|r| !r.is_empty())
    });
    let v: serde_json::Value =
        serde_json::from_slice(&get(p.admin, "/debug/authz").body).expect("json");
    assert_eq!(v["release"], "v7");
    let r = &v["routes"][0];
    assert_eq!(r["route"], "/deny/<int:pk>/");
    assert_eq!(r["status"], 403);
    assert!(r["rate"].is_number() && r["baseline"].is_number());
    assert_eq!(r["top_kinds"][0]["kind"], "permission");
    assert_eq!(
        r["top_permissions"][0]["permission"],
        "reports.export_report"
    );
}

#[test]
fn the_http_sink_posts_ndjson_batches_to_a_collector() {
    let up = denier();
    // A collector in the manner of Vector's http_server source: it takes the POSTed NDJSON.
    let collector = Upstream::fixed(Reply::new(200, ""));
    let sink = format!(
        "[sink]\ntype = \"http\"\nurl = \"http://{}/authz\"\nbatch_age = \"50ms\"\nbatch_max = 10\n",
        collector.addr
    );
    let p = Proxy::start(&with_sink(
        &up,
        &sink,
        "[sampling]\nper_route_per_minute = 100000\nglobal_per_second = 100000\n",
    ));
    for i in 0..25 {
        assert_eq!(denied_request(p.http, i).status, 403);
    }
    poll::until_true("25 written", || {
        p.metric("authz_edge_samples_total{outcome=\"written\"}") == 25.0
    });
    let posts = collector.requests();
    assert!(posts
        .iter()
        .all(|r| r.method == "POST" && r.path == "/authz"));
    assert!(posts
        .iter()
        .all(|r| r.header("content-type") == Some("application/x-ndjson")));
    let records: Vec<serde_json::Value> = posts
        .iter()
        .flat_map(|r| {
            String::from_utf8_lossy(&r.body)
                .lines()
                .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(records.len(), 25);
    assert!(records
        .iter()
        .all(|r| r["type"] == "sample" && r["status"] == 403));
    assert!(
        posts.len() >= 3,
        "batches of at most 10: {} posts",
        posts.len()
    );
    assert_eq!(
        p.metric("authz_edge_samples_total{outcome=\"sink_error\"}"),
        0.0
    );
}

#[test]
fn a_disk_that_fills_mid_record_leaves_whole_lines_and_one_torn_line_ended() {
    let up = denier();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("diag.jsonl");
    let p = Proxy::start_for_file_limits(&with_sink(
        &up,
        &sink_config(&path.display().to_string(), ""),
        "[sampling]\nper_route_per_minute = 100000\nglobal_per_second = 100000\n",
    ));
    let metric = |o: &str| p.metric(&format!("authz_edge_samples_total{{outcome=\"{o}\"}}"));
    assert_eq!(denied_request(p.http, 1).status, 403);
    poll::until_true("the first record", || metric("written") == 1.0);
    let one = std::fs::metadata(&path).expect("meta").len();

    // The disk fills in the middle of the next record: half of it lands, the rest fails.
    file_size_limit(p.pid(), Some(one + one / 2));
    assert_eq!(denied_request(p.http, 2).status, 403);
    poll::until_true("a dropped record", || metric("sink_error") == 1.0);
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), one + one / 2);
    // Still full: the torn line cannot be ended yet, and this record is dropped too.
    assert_eq!(denied_request(p.http, 3).status, 403);
    poll::until_true("a second dropped record", || metric("sink_error") == 2.0);

    // Room again: the torn line is ended and counted, then the record goes on a line of its own.
    file_size_limit(p.pid(), None);
    assert_eq!(denied_request(p.http, 4).status, 403);
    poll::until_true("a record after the disk had room", || {
        metric("written") == 2.0
    });
    assert_eq!(metric("torn"), 1.0);
    assert_eq!(metric("sink_error"), 2.0);
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(text.ends_with('\n'));
    let parsed: Vec<bool> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .collect();
    assert_eq!(
        parsed,
        vec![true, false, true],
        "only the torn line fails to parse"
    );
    assert_eq!(lines[1].len() as u64, one / 2, "the torn part, ended");
    // The later of the two lines, so that both have arrived.
    let stderr = p.wait_stderr("writing again after");
    assert_eq!(
        stderr
            .matches("dropping records until it can be written again")
            .count(),
        1
    );
    assert_eq!(
        stderr
            .matches("writing again after 2 dropped records")
            .count(),
        1
    );
}

#[test]
fn the_console_and_its_data_are_served_and_an_admin_token_guards_them() {
    let up = denier();
    let dir = tempfile::tempdir().expect("tmp");
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, "tok-0123456789abcdef\n").expect("token");
    let p = Proxy::start(
        &config_for(&[up.addr], "[spike]\ntick = \"100ms\"\nwindow = \"1s\"\n").replace(
            "[upstream]",
            &format!(
                "admin_token_file = \"{}\"\n\n[upstream]",
                token_file.display()
            ),
        ),
    );
    for i in 0..5 {
        denied_request(p.http, i);
    }
    let admin = |path: &str, auth: Option<&str>| {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        request(p.admin, "GET", path, &headers, b"")
    };
    // Without the token: 401 with a Basic challenge (a browser's login prompt), except probes.
    for path in ["/", "/debug/authz", "/debug/console", "/metrics"] {
        let r = admin(path, None);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"authz-edge admin\", charset=\"UTF-8\""),
            "{path}"
        );
        assert_eq!(admin(path, Some("Bearer wrong-token-000000")).status, 401);
    }
    assert_eq!(admin("/healthz", None).status, 200);
    assert_eq!(admin("/readyz", None).status, 200);
    // With it, as Bearer or as a Basic password.
    let bearer = "Bearer tok-0123456789abcdef";
    let page = admin("/", Some("Basic YWRtaW46dG9rLTAxMjM0NTY3ODlhYmNkZWY="));
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains("<title>authz-edge console</title>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "an asset from another host"
    );
    assert!(html.len() < 16 * 1024, "{} bytes", html.len());
    assert_eq!(admin("/metrics", Some(bearer)).status, 200);
    poll::until_true("the route in the console's data", || {
        let v: serde_json::Value =
            serde_json::from_slice(&admin("/debug/console", Some(bearer)).body).expect("json");
        v["routes"].as_array().is_some_and(|r| !r.is_empty())
    });
    let v: serde_json::Value =
        serde_json::from_slice(&admin("/debug/console", Some(bearer)).body).expect("json");
    assert_eq!(v["release"], "v7");
    assert_eq!(v["config_generation"], 1);
    assert_eq!(v["upstreams"][0]["server"], up.addr.to_string());
    assert_eq!(v["sink"]["enabled"], false);
    let r = &v["routes"][0];
    assert_eq!(r["route"], "/deny/<int:pk>/");
    assert_eq!(r["status"], 403);
    let points = r["points"].as_array().expect("points");
    assert!(!points.is_empty());
    assert_eq!(
        points[0].as_array().map(Vec::len),
        Some(4),
        "[unix, rate, baseline, spike]"
    );
    assert!(v["findings"].is_array() && v["reloads"].is_array());
}

#[test]
fn metrics_may_stay_open_with_a_token_and_a_bad_token_file_is_refused_with_its_key() {
    let up = denier();
    let p = Proxy::start_with(
        &config_for(&[up.addr], "")
            .replace("[upstream]", "admin_token_metrics = false\n\n[upstream]"),
        &[],
        &[
            ("AUTHZ_EDGE_HASH_KEY", "test-key"),
            ("AUTHZ_EDGE_ADMIN_TOKEN", "env-token-0123456789"),
        ],
    );
    assert_eq!(get(p.admin, "/metrics").status, 200);
    assert_eq!(get(p.admin, "/debug/authz").status, 401);
    let ok = request(
        p.admin,
        "GET",
        "/debug/authz",
        &[("Authorization", "Bearer env-token-0123456789")],
        b"",
    );
    assert_eq!(ok.status, 200);
    // A reload whose token file cannot be read is refused; the running token stays.
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("token");
    std::fs::write(&file, "file-token-0123456789").expect("token");
    let with_file = |path: &str| {
        config_for(&[up.addr], "").replace(
            "[upstream]",
            &format!("admin_token_metrics = false\nadmin_token_file = \"{path}\"\n\n[upstream]"),
        )
    };
    let p2 = Proxy::start(&with_file(&file.display().to_string()));
    p2.reload(&with_file("/nonexistent/token"));
    p2.wait_metric("authz_edge_config_reloads_total{result=\"error\"}", 1.0);
    p2.wait_stderr("server.admin_token_file: cannot read /nonexistent/token");
    let still = request(
        p2.admin,
        "GET",
        "/debug/authz",
        &[("Authorization", "Bearer file-token-0123456789")],
        b"",
    );
    assert_eq!(still.status, 200);
}

#[test]
fn the_hash_command_finds_a_users_records() {
    let up = denier();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("diag.jsonl");
    let p = Proxy::start(&with_sink(
        &up,
        &sink_config(&path.display().to_string(), ""),
        "",
    ));
    assert_eq!(denied_request(p.http, 1).status, 403);
    poll::until_true("the sample", || !lines_of(&path).is_empty());
    let hash = |kind: &str, value: &str| {
        let out = std::process::Command::new(bin())
            .args(["hash", kind, value])
            .env("AUTHZ_EDGE_HASH_KEY", "test-key")
            .output()
            .expect("run hash");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let sample = &lines_of(&path)[0];
    assert_eq!(sample["user"], hash("user", "user-4242").as_str());
    assert_eq!(
        sample["session"],
        hash("session", "CANARYSESSION99").as_str()
    );
    // Domain-separated: the same text hashes differently as a user and as a session.
    assert_ne!(hash("user", "x"), hash("session", "x"));
    // Without the proxy's key there is nothing to compare with: refused.
    let bare = std::process::Command::new(bin())
        .args(["hash", "user", "42"])
        .env_remove("AUTHZ_EDGE_HASH_KEY")
        .output()
        .expect("run hash");
    assert_eq!(bare.status.code(), Some(2));
}
