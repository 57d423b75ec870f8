//! A real Django app under gunicorn behind the real proxy: pages, forwarded headers, static
//! files, and a login with CSRF over HTTP and over HTTPS.

mod common;

use common::django::{form_token, set_cookie, Django};
use common::*;

fn proxy_for(dj: &Django, extra: &str) -> Proxy {
    let statics = format!(
        "[[static]]\nprefix = \"/static/\"\nroot = \"{}\"\n",
        dj.static_root.display()
    );
    Proxy::start(&config_for(&[dj.addr], &format!("{statics}{extra}")))
}

#[test]
fn pages_forwarded_headers_and_static_files() {
    let dj = Django::start(true, Some("rel-1"));
    let p = proxy_for(&dj, "");

    let r = get(p.http, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "home");
    assert_eq!(r.header("server"), Some("gunicorn"));

    let r = request(
        p.http,
        "GET",
        "/whoami/",
        &[
            ("X-Forwarded-For", "10.9.8.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Authz-User", "1"),
            ("X_Authz_Kind", "csrf"),
            ("X-App-Release", "forged"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["remote_addr"], "127.0.0.1");
    assert_eq!(v["x_forwarded_for"], "127.0.0.1");
    assert_eq!(v["x_real_ip"], "127.0.0.1");
    assert_eq!(v["secure"], false, "a client cannot claim https");
    assert_eq!(v["host"], "test.local");
    assert_eq!(v["authz_headers"], serde_json::json!([]));
    assert_eq!(v["request_id"].as_str().map(str::len), Some(32));
    // Django's own context headers never reach the client.
    for n in r.names() {
        assert!(
            !n.starts_with("x-authz") && n != "x-app-release",
            "{n} leaked"
        );
    }

    let r = get(p.http, "/static/css/app.css");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("authz-edge e2e static file"));
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(
        r.header("server"),
        None,
        "served by the proxy, not gunicorn"
    );
}

#[test]
fn login_with_csrf_over_plain_http() {
    let dj = Django::start(true, None);
    let p = proxy_for(&dj, "");

    let page = get(p.http, "/accounts/login/");
    assert_eq!(page.status, 200);
    let csrf_cookie = set_cookie(&page, "csrftoken").expect("csrftoken cookie");
    let token = form_token(&page.text()).expect("form token");
    let body = format!("username=alice&password=alice-pw&csrfmiddlewaretoken={token}");
    let cookie = format!("csrftoken={csrf_cookie}");
    let r = request(
        p.http,
        "POST",
        "/accounts/login/",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://test.local"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("location"), Some("/accounts/profile/"));
    let session = set_cookie(&r, "sessionid").expect("session cookie");
    let r = request(
        p.http,
        "GET",
        "/accounts/profile/",
        &[("Cookie", &format!("sessionid={session}"))],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "profile of alice");

    // The same POST without the token is Django's CSRF failure.
    let r = request(
        p.http,
        "POST",
        "/accounts/login/",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"username=alice&password=alice-pw",
    );
    assert_eq!(r.status, 403);
}

#[test]
fn login_with_csrf_over_https() {
    let dj = Django::start(true, None);
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let p = proxy_for(&dj, &tls);
    let https = p.https.expect("https");
    let base = format!("https://localhost:{}", https.port());
    let client = https_client(&cert_pem, https, true);

    let who: serde_json::Value = client
        .get(format!("{base}/whoami/"))
        .send()
        .expect("whoami")
        .json()
        .expect("json");
    assert_eq!(who["secure"], true, "SECURE_PROXY_SSL_HEADER sees https");
    assert_eq!(who["host"], format!("localhost:{}", https.port()));

    let page = client
        .get(format!("{base}/accounts/login/"))
        .send()
        .expect("login page");
    assert_eq!(page.version(), reqwest::Version::HTTP_2);
    let token = form_token(&page.text().expect("html")).expect("token");
    let r = client
        .post(format!("{base}/accounts/login/"))
        .header("Origin", base.as_str())
        .header("Referer", format!("{base}/accounts/login/"))
        .form(&[
            ("username", "alice"),
            ("password", "alice-pw"),
            ("csrfmiddlewaretoken", token.as_str()),
        ])
        .send()
        .expect("login post");
    assert_eq!(r.status(), 302);
    let r = client
        .get(format!("{base}/accounts/profile/"))
        .send()
        .expect("profile");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().expect("body"), "profile of alice");
}
