//! A real browser through the proxy: headless Chromium over HTTPS, which negotiates HTTP/2 and
//! sends each cookie as a header field of its own, through the e2e Django app's login form with
//! its CSRF token, a page that needs the session, and a denied page. What Django saw is asserted,
//! and so are the keyed session hash in the sink and the denial's metrics.

mod common;

use common::browser::Browser;
use common::django::Django;
use common::sink::{lines_of, sink_config};
use common::*;

#[test]
fn chromium_over_http2_keeps_its_django_session() {
    let dj = Django::start(true, None);
    let dir = tempfile::tempdir().expect("tmp");
    let (_cert_pem, tls) = self_signed_tls(dir.path(), "");
    let sink_path = dir.path().join("sink.jsonl");
    let sink = sink_config(&sink_path.display().to_string(), "");
    let config = config_for(&[dj.addr], &tls).replace("[sink]\ntype = \"none\"\n", &sink);
    let p = Proxy::start(&config);
    let https = p.https.expect("https");
    let base = format!("https://localhost:{}", https.port());
    let mut b = Browser::start();

    // The login form, as a person fills it in: Django set csrftoken on the page.
    b.navigate(&format!("{base}/accounts/login/"), "/accounts/login/");
    let protocol = b.eval("performance.getEntriesByType('navigation')[0].nextHopProtocol");
    assert_eq!(protocol, "h2", "Chromium negotiated HTTP/2 with the proxy");
    b.eval(
        "document.getElementById('id_username').value = 'alice';\
         document.getElementById('id_password').value = 'alice-pw';\
         document.forms[0].submit(); 'sent'",
    );
    // Django's 302 after a login that passed CSRF, then the page that needs the session.
    b.wait_for_page("/accounts/profile/");
    assert_eq!(b.eval("document.body.innerText"), "profile of alice");

    // What Django made of the browser's cookies: two cookies, one header, joined with "; ".
    b.navigate(&format!("{base}/cookies/"), "/cookies/");
    let seen: serde_json::Value =
        serde_json::from_str(b.eval("document.body.innerText").as_str().expect("text"))
            .expect("json");
    assert_eq!(seen["names"], serde_json::json!(["csrftoken", "sessionid"]));
    assert_eq!(seen["user"], "alice");
    assert_eq!(seen["secure"], true);
    let header = seen["http_cookie"].as_str().expect("HTTP_COOKIE");
    let pairs: Vec<&str> = header.split("; ").collect();
    assert_eq!(
        pairs.len(),
        2,
        "one Cookie header, joined with '; ': {header}"
    );
    let session = pairs
        .iter()
        .find_map(|p| p.strip_prefix("sessionid="))
        .expect("sessionid in the header");
    let in_page = b.eval("document.cookie");
    assert!(
        in_page.as_str().is_some_and(|c| c.contains("csrftoken=")),
        "the page's own cookie: {in_page}"
    );

    // A denied page: alice is not a superuser. The browser fetches it over the same connection.
    let status = b.eval("fetch('/staff/').then(r => r.status)");
    assert_eq!(status, 403);
    let m = p.wait_metric(
        "authz_edge_denials_total{authn=\"authenticated\",kind=\"other\",route=\"/staff/\",status=\"403\"}",
        1.0,
    );
    // Login page, login, profile, cookies, staff (and the favicon Chromium may ask for):
    // every request over HTTP/2.
    let over_h2 = metric_value(&m, "authz_edge_proxied_requests_total{proxy_loop=\"h2\"}");
    assert!(over_h2 >= 5.0, "{over_h2} requests over HTTP/2");
    for other in ["relay", "pingora"] {
        let series = format!("authz_edge_proxied_requests_total{{proxy_loop=\"{other}\"}}");
        assert_eq!(metric_value(&m, &series), 0.0, "{other}");
    }
    // The sink's record carries the keyed hash of the session the browser holds.
    let record = poll::until("the denial's sample in the sink", || {
        let lines = lines_of(&sink_path);
        match lines.iter().find(|r| r["route"] == "/staff/") {
            Some(r) => Ok(r.clone()),
            None => Err(lines),
        }
    });
    let hashed = std::process::Command::new(bin())
        .args(["hash", "session", session])
        .env("AUTHZ_EDGE_HASH_KEY", "test-key")
        .output()
        .expect("authz-edge hash");
    let hashed = String::from_utf8_lossy(&hashed.stdout).trim().to_string();
    assert_eq!(hashed.len(), 16);
    assert_eq!(record["session"], hashed.as_str());
    println!(
        "Django saw HTTP_COOKIE = {header:?} over {protocol}; denial sampled with session {hashed}"
    );
}
