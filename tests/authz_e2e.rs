//! Authorization telemetry end to end: a real Django app (with and without the companion)
//! behind the real proxy, exact counts scraped from /metrics, privacy canaries, promtool.

mod common;

use common::django::{as_user, login, Django};
use common::*;

fn denials(m: &str, route: &str, status: u16, kind: &str, authn: &str) -> f64 {
    metric_value(
        m,
        &format!(
            "authz_edge_denials_total{{authn=\"{authn}\",kind=\"{kind}\",route=\"{route}\",status=\"{status}\"}}"
        ),
    )
}

fn requests(m: &str, route: &str, class: &str) -> f64 {
    metric_value(
        m,
        &format!("authz_edge_requests_total{{route=\"{route}\",status_class=\"{class}\"}}"),
    )
}

/// The sum of every series of a metric family.
fn family_sum(m: &str, name: &str) -> f64 {
    m.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Waits until the logging phase has counted `n` requests in all.
fn wait_for_requests(p: &Proxy, n: f64) -> String {
    poll::until(&format!("{n} requests counted"), || {
        let m = p.metrics();
        match family_sum(&m, "authz_edge_requests_total") {
            c if c >= n => Ok(m),
            c => Err(c),
        }
    })
}

#[test]
fn every_denial_is_counted_with_its_context_by_the_companion() {
    let dj = Django::start(true, Some("v1"));
    let p = Proxy::start(&config_for(&[dj.addr], "[access_log]\nenabled = true\n"));

    let bob = login(p.http, "bob", "bob-pw");
    let alice = login(p.http, "alice", "alice-pw");
    // 4 requests so far: two login pages (200) and two login posts (302).

    let export = "/reports/1/export/";
    assert_eq!(get(p.http, export).status, 403, "anonymous");
    assert_eq!(
        as_user(p.http, "GET", export, &bob).status,
        403,
        "bob lacks the permission"
    );
    assert_eq!(
        as_user(p.http, "GET", export, &alice).status,
        200,
        "alice has it"
    );
    assert_eq!(
        get(p.http, "/api/items/").status,
        401,
        "token API without a token"
    );
    let ok = request(
        p.http,
        "GET",
        "/api/items/",
        &[("Authorization", &format!("Token {}", dj.fixtures.token))],
        b"",
    );
    assert_eq!(ok.status, 200);
    let csrf = request(
        p.http,
        "POST",
        "/form/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"value=1",
    );
    assert_eq!(csrf.status, 403, "CSRF failure");
    assert_eq!(
        as_user(p.http, "GET", "/reports/1/", &bob).status,
        403,
        "object level"
    );
    assert_eq!(as_user(p.http, "GET", "/reports/1/", &alice).status, 200);
    assert_eq!(
        as_user(p.http, "GET", "/staff/", &bob).status,
        403,
        "superuser only"
    );

    let m = wait_for_requests(&p, 13.0);
    let r_export = "/reports/<int:pk>/export/";
    assert_eq!(denials(&m, r_export, 403, "permission", "anonymous"), 1.0);
    assert_eq!(
        denials(&m, r_export, 403, "permission", "authenticated"),
        1.0
    );
    assert_eq!(denials(&m, "/api/items/", 401, "login", "anonymous"), 1.0);
    assert_eq!(denials(&m, "/form/", 403, "csrf", "anonymous"), 1.0);
    assert_eq!(
        denials(&m, "/reports/<int:pk>/", 403, "object", "authenticated"),
        1.0
    );
    assert_eq!(denials(&m, "/staff/", 403, "other", "authenticated"), 1.0);
    assert_eq!(family_sum(&m, "authz_edge_denials_total"), 6.0);
    assert_eq!(
        metric_value(
            &m,
            "authz_edge_permission_denials_total{permission=\"reports.export_report\",route=\"/reports/<int:pk>/export/\"}"
        ),
        2.0
    );
    assert_eq!(family_sum(&m, "authz_edge_permission_denials_total"), 2.0);
    assert_eq!(requests(&m, r_export, "4xx"), 2.0);
    assert_eq!(requests(&m, r_export, "2xx"), 1.0);
    assert_eq!(requests(&m, "/api/items/", "4xx"), 1.0);
    assert_eq!(requests(&m, "/api/items/", "2xx"), 1.0);
    assert_eq!(requests(&m, "/accounts/login/", "2xx"), 2.0);
    assert_eq!(requests(&m, "/accounts/login/", "3xx"), 2.0);
    assert_eq!(requests(&m, "/reports/<int:pk>/", "4xx"), 1.0);
    assert_eq!(requests(&m, "/reports/<int:pk>/", "2xx"), 1.0);
    assert_eq!(family_sum(&m, "authz_edge_requests_total"), 13.0);
    // Bob is the one signed-in user denied on the export route (anonymous has no id).
    assert_eq!(
        metric_value(
            &m,
            "authz_edge_affected_users{route=\"/reports/<int:pk>/export/\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(&m, "authz_edge_release_info{release=\"v1\"}"),
        1.0
    );

    // Privacy: no session id, token, password or user id anywhere the proxy writes.
    let everything = format!("{m}\n{}\n{}", p.stdout_text(), p.stderr_text());
    for canary in [
        bob.as_str(),
        alice.as_str(),
        dj.fixtures.token.as_str(),
        "bob-pw",
        "alice-pw",
    ] {
        assert!(!everything.contains(canary), "{canary} leaked");
    }
    assert!(!m.contains("user=\""), "a user label");
}

#[test]
fn without_the_companion_routes_come_from_config_and_kinds_from_fallbacks() {
    let dj = Django::start(false, None);
    let routes = "[[routes]]\npattern = \"/reports/<int:pk>/export/\"\n[[routes]]\npattern = \"/api/items/\"\n[[routes]]\npattern = \"/form/\"\n";
    let p = Proxy::start(&config_for(&[dj.addr], routes));
    let bob = login(p.http, "bob", "bob-pw");

    assert_eq!(get(p.http, "/reports/1/export/").status, 403);
    assert_eq!(
        as_user(p.http, "GET", "/reports/1/export/", &bob).status,
        403
    );
    assert_eq!(get(p.http, "/api/items/").status, 401);
    let r = request(
        p.http,
        "GET",
        "/api/items/",
        &[("Authorization", "Token not-a-real-token")],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = request(
        p.http,
        "POST",
        "/form/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"value=1",
    );
    assert_eq!(r.status, 403);
    assert_eq!(as_user(p.http, "GET", "/staff/", &bob).status, 403);

    let m = wait_for_requests(&p, 8.0);
    let r_export = "/reports/<int:pk>/export/";
    assert_eq!(denials(&m, r_export, 403, "other", "anonymous"), 1.0);
    assert_eq!(
        denials(&m, r_export, 403, "other", "unknown"),
        1.0,
        "a session but no user id"
    );
    assert_eq!(denials(&m, "/api/items/", 401, "login", "anonymous"), 1.0);
    assert_eq!(denials(&m, "/api/items/", 401, "login", "unknown"), 1.0);
    assert_eq!(
        denials(&m, "/form/", 403, "csrf", "anonymous"),
        1.0,
        "CSRF page sniffed"
    );
    // Not in [[routes]]: the normaliser names it.
    assert_eq!(denials(&m, "/staff/", 403, "other", "unknown"), 1.0);
    assert_eq!(family_sum(&m, "authz_edge_denials_total"), 6.0);
    assert_eq!(requests(&m, r_export, "4xx"), 2.0);
    assert_eq!(family_sum(&m, "authz_edge_requests_total"), 8.0);
    assert_eq!(family_sum(&m, "authz_edge_permission_denials_total"), 0.0);
}

#[test]
fn promtool_accepts_a_real_scrape() {
    let promtool = ci_tool("promtool", "PROMTOOL");
    let up = Upstream::start(|s| {
        if s.path.starts_with("/deny") {
            Reply::new(403, "no")
                .header("X-Authz-Kind", "permission")
                .header("X-Authz-User", "9")
                .header("X-Authz-Permission", "app.weird\"perm, app.ok")
                .header("X-Authz-Route", "/deny/<int:pk>/")
                .header("X-App-Release", "2026.11.21-abc")
        } else {
            Reply::new(200, "ok")
        }
    });
    let p = Proxy::start(&config_for(&[up.addr], ""));
    get(p.http, "/deny/1/");
    get(p.http, "/ok/\"quoted\"/");
    get(p.http, "/ok/");
    let text = wait_for_requests(&p, 3.0);
    let out = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        metric_value(&text, "authz_edge_release_info{release=\"2026.11.21-abc\"}"),
        1.0
    );
}
