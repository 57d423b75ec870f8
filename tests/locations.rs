//! Sites, locations and upstream pools (nginx's server blocks, locations and upstream blocks)
//! through the real proxy, against in-test upstreams on TCP and on a unix socket: nginx's
//! precedence, pools, files, `return`, header rules, access, rate limits, error pages and
//! `X-Accel-Redirect`, each with exact statuses, headers and upstream counts.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::Command;

/// One request with `host` on a fresh connection; `None` when the proxy closed without a
/// response.
fn at(addr: SocketAddr, method: &str, host: &str, path: &str, body: &[u8]) -> Option<Resp> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nCookie: sessionid=abc\r\n");
    if !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("Connection: close\r\n\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    raw_request(addr, &bytes, method == "HEAD")
}

fn get_at(addr: SocketAddr, host: &str, path: &str) -> Resp {
    at(addr, "GET", host, path, b"").unwrap_or_else(|| panic!("no response to {path}"))
}

/// A config with `[upstream]` on `django`, a second pool `events`, and `locations` after.
fn config(django: SocketAddr, events: &str, rest: &str) -> String {
    config_for(
        &[django],
        &format!("[upstreams.events]\nservers = [\"{events}\"]\n\n{rest}"),
    )
}

#[test]
fn locations_follow_nginx_precedence_and_send_each_to_its_pool() {
    let django = Upstream::start(|s| {
        Reply::new(200, &format!("django {}", s.path)).header("X-Powered-By", "Django")
    });
    let events = Upstream::start(|s| match s.path.as_str() {
        "/denied/9" => Reply::new(403, "no")
            .header("X-Authz-Route", "/events/denied/<int:id>")
            .header("X-Authz-Kind", "permission")
            .header("X-Authz-Permission", "events.view_stream"),
        _ => Reply::new(200, &format!("events {}", s.path)),
    });
    let files = tempfile::tempdir().expect("dir");
    write_file(files.path(), "app.css", b"body{}");
    write_file(files.path(), "x.php", b"not php");
    let d = files.path().display();
    let proxy = Proxy::start(&config(
        django.addr,
        &events.addr.to_string(),
        &format!(
            r#"
[[locations]]
path = "/"
proxy = "default"
set_headers = {{ "X-Scheme" = "$scheme", "Cookie" = "", "X-Original-Uri" = "$request_uri" }}
add_headers = [{{ name = "X-Frame-Options", value = "DENY" }}, {{ name = "Strict-Transport-Security", value = "max-age=63072000", always = true }}]
hide_headers = ["X-Powered-By"]

[[locations]]
path = "/events/"
proxy = "events"
proxy_path = "/"

[[locations]]
path = "= /favicon.ico"
return = {{ status = 204 }}

[[locations]]
path = "^~ /static/"
alias = "{d}/"
cache_control = "public, max-age=60"

[[locations]]
path = '~ \.php$'
return = {{ status = 403 }}

[[locations]]
path = "= /old"
return = {{ status = 301, location = "https://$host$request_uri" }}
"#
        ),
    ));
    let a = proxy.http;

    let r = get_at(a, "app.local", "/accounts/?next=/x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "django /accounts/?next=/x")
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000")
    );
    assert_eq!(r.header("x-powered-by"), None, "hidden");
    let seen = django.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-scheme"), Some("http"));
    assert_eq!(seen[0].header("x-original-uri"), Some("/accounts/?next=/x"));
    assert_eq!(seen[0].header("cookie"), None, "set to \"\": not sent");

    let r = get_at(a, "app.local", "/events/stream/7?since=3");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "events /stream/7?since=3")
    );
    assert_eq!(events.count(), 1);

    // A denial from the second pool: its context headers read and stripped, and counted.
    let r = get_at(a, "app.local", "/events/denied/9");
    assert_eq!(r.status, 403);
    assert!(
        !r.names().iter().any(|n| n.starts_with("x-authz")),
        "{:?}",
        r.names()
    );
    // Counted as the request ends, a little after its response went out: waited for.
    let series = "authz_edge_denials_total{authn=\"anonymous\",kind=\"permission\",route=\"/events/denied/<int:id>\",status=\"403\"}";
    proxy.wait_metric(series, 1.0);

    let r = get_at(a, "app.local", "/favicon.ico");
    assert_eq!((r.status, r.body.len()), (204, 0));
    assert_eq!(
        r.header("x-frame-options"),
        None,
        "another location's add_headers"
    );

    let r = get_at(a, "app.local", "/static/app.css");
    assert_eq!((r.status, r.text().as_str()), (200, "body{}"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    // `^~` stops the regex search: the .php file under /static/ is a file, elsewhere 403.
    assert_eq!(get_at(a, "app.local", "/static/x.php").text(), "not php");
    assert_eq!(get_at(a, "app.local", "/app/index.php").status, 403);
    assert_eq!(get_at(a, "app.local", "/static/missing.css").status, 404);
    // Matched on the decoded, normalised path, as nginx's $uri.
    assert_eq!(get_at(a, "app.local", "/static/%61pp.css").text(), "body{}");

    let r = get_at(a, "App.Local:8080", "/old?a=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://app.local/old?a=1"));

    // Nothing else reached Django.
    assert_eq!(django.count(), 1);
    assert_eq!(events.count(), 2);
}

#[test]
fn sites_are_chosen_by_host_and_unknown_hosts_are_closed() {
    let app =
        Upstream::start(|s| Reply::new(200, &format!("app {}", s.header("host").unwrap_or(""))));
    let docs = Upstream::start(|_| Reply::new(200, "docs"));
    let proxy = Proxy::start(&config(
        app.addr,
        &docs.addr.to_string(),
        r#"
[[sites]]
names = ["app.example.com", "www.app.example.com"]
[[sites.locations]]
path = "/"
proxy = "default"

[[sites]]
names = ["*.docs.example.com", ".example.org"]
add_headers = [{ name = "X-Site", value = "docs" }]
[[sites.locations]]
path = "/"
proxy = "events"

[[sites]]
names = ["_"]
default = true
[[sites.locations]]
path = "/"
return = { status = 444 }
"#,
    ));
    let a = proxy.http;
    assert_eq!(
        get_at(a, "APP.example.com.", "/").text(),
        "app APP.example.com."
    );
    assert_eq!(get_at(a, "www.app.example.com:80", "/").status, 200);
    let r = get_at(a, "v2.docs.example.com", "/");
    assert_eq!(
        (r.text().as_str(), r.header("x-site")),
        ("docs", Some("docs"))
    );
    assert_eq!(get_at(a, "example.org", "/").text(), "docs");
    assert_eq!(get_at(a, "a.b.example.org", "/").text(), "docs");
    for host in ["evil.example.net", "docs.example.com", "10.0.0.1"] {
        assert!(
            at(a, "GET", host, "/", b"").is_none(),
            "{host:?}: closed, no response"
        );
    }
    assert_eq!(app.count(), 2);
    assert_eq!(docs.count(), 3);
    assert!(
        !proxy.stderr_text().contains("Fail to proxy"),
        "444 is not an error: {}",
        proxy.stderr_text()
    );
}

/// An HTTP/1.1 server on a unix socket answering `unix <path>` to each request; counts the
/// connections that carried a request.
fn unix_upstream(path: &std::path::Path) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::os::unix::net::UnixListener::bind(path).expect("bind unix");
    let used = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = used.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().map_while(Result::ok) {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut first = true;
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut w = conn;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if std::mem::take(&mut first) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    let path = line.split(' ').nth(1).unwrap_or("").to_string();
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    let _ = r.read_exact(&mut body);
                    let text = format!("unix {path}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    used
}

#[test]
fn a_pool_on_a_unix_socket_serves_and_keeps_its_connections() {
    let sock_dir = tempfile::tempdir().expect("dir");
    let sock = sock_dir.path().join("gunicorn.sock");
    let connections = unix_upstream(&sock);
    let tcp = Upstream::start(|_| Reply::new(200, "tcp"));
    let proxy = Proxy::start(&config(
        tcp.addr,
        &format!("unix:{}", sock.display()),
        "[[locations]]\npath = \"/\"\nproxy = \"events\"\n",
    ));
    for i in 0..5 {
        let r = get_at(proxy.http, "app.local", &format!("/u/{i}"));
        assert_eq!((r.status, r.text()), (200, format!("unix /u/{i}")));
    }
    let used = connections.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(used, 1, "five requests, one kept connection");
    // Through Pingora's loop too (a chunked request body goes there).
    let mut s = std::net::TcpStream::connect(proxy.http).expect("connect");
    s.write_all(b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .expect("write");
    let r = read_response(&mut BufReader::new(s), false).expect("response");
    assert_eq!((r.status, r.text().as_str()), (200, "unix /chunked"));
    assert_eq!(tcp.count(), 0);
}

#[test]
fn x_accel_redirect_is_served_by_the_edge_with_the_headers_nginx_keeps() {
    let files = tempfile::tempdir().expect("dir");
    write_file(files.path(), "reports/q3.pdf", b"%PDF-1.7 quarterly");
    let django = Upstream::start(|s| match s.path.as_str() {
        "/download/q3" => Reply::new(200, "ignored")
            .header("X-Accel-Redirect", "/protected/reports/q3.pdf")
            .header("Content-Disposition", "attachment; filename=\"q3.pdf\"")
            .header("Set-Cookie", "seen=1; Path=/")
            .header("X-Internal", "dropped"),
        "/download/by-name" if s.method == "POST" => {
            Reply::new(200, "").header("X-Accel-Redirect", "@files")
        }
        _ => Reply::new(200, &format!("django {} {}", s.method, s.path)),
    });
    let other = Upstream::start(|_| Reply::new(200, "events"));
    let d = files.path().display();
    let proxy = Proxy::start(&config(
        django.addr,
        &other.addr.to_string(),
        &format!(
            r#"
[[locations]]
path = "/"
proxy = "default"

[[locations]]
path = "/protected/"
internal = true
alias = "{d}/"

[[locations]]
path = "@files"
proxy = "default"
"#
        ),
    ));
    let a = proxy.http;
    let r = get_at(a, "app.local", "/download/q3");
    assert_eq!((r.status, r.text().as_str()), (200, "%PDF-1.7 quarterly"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"q3.pdf\"")
    );
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "Django's, as nginx keeps it"
    );
    assert_eq!(r.header("set-cookie"), Some("seen=1; Path=/"));
    assert_eq!(r.header("x-accel-redirect"), None);
    assert_eq!(r.header("x-internal"), None);
    // Internal: not reachable from outside.
    assert_eq!(
        get_at(a, "app.local", "/protected/reports/q3.pdf").status,
        404
    );
    // A POST sent on to a named location goes as GET, without its body.
    let r = at(a, "POST", "app.local", "/download/by-name", b"form=1").expect("response");
    assert_eq!(r.text(), "django GET /download/by-name");
    let methods: Vec<String> = django.requests().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, ["GET", "POST", "GET"]);
}

#[test]
fn error_pages_access_rules_rate_limits_and_body_limits() {
    let down = free_port();
    let django = Upstream::start(|s| match s.path.as_str() {
        "/missing" => Reply::new(404, "django's own 404"),
        _ => Reply::new(200, &format!("django {}", s.path)),
    });
    let pages = tempfile::tempdir().expect("dir");
    write_file(pages.path(), "maintenance.html", b"<h1>Back soon</h1>");
    let d = pages.path().display();
    let proxy = Proxy::start(&config(
        django.addr,
        &format!("127.0.0.1:{down}"),
        &format!(
            r#"
[[locations]]
path = "/"
proxy = "default"
max_body_bytes = 10

[[locations]]
path = "/down/"
proxy = "events"
error_pages = [{{ codes = [502, 503, 504], target = "/maintenance.html" }}]

[[locations]]
path = "= /maintenance.html"
internal = true
root = "{d}"

[[locations]]
path = "/missing"
proxy = "default"
intercept_errors = true
error_pages = [{{ codes = [404], target = "@notfound", status = 200 }}]

[[locations]]
path = "@notfound"
return = {{ status = 200, body = "our own page" }}

[[locations]]
path = "/admin/"
proxy = "default"
access = ["allow 10.0.0.0/8", "deny all"]

[[locations]]
path = "/ops/"
proxy = "default"
access = ["deny 10.0.0.0/8", "allow 127.0.0.1", "deny all"]

[[locations]]
path = "/login/"
proxy = "default"
limit_req = {{ per_second = 1.0, burst = 2, nodelay = true }}
"#
        ),
    ));
    let a = proxy.http;
    let r = get_at(a, "app.local", "/down/x");
    assert_eq!((r.status, r.text().as_str()), (502, "<h1>Back soon</h1>"));
    // Counted for the pool that failed, each pool a bounded label value.
    let m = proxy.metrics();
    let errors = |pool: &str| {
        metric_value(
            &m,
            &format!("authz_edge_upstream_errors_total{{kind=\"connect\",upstream=\"{pool}\"}}"),
        )
    };
    assert_eq!((errors("events"), errors("default")), (1.0, 0.0));
    let r = get_at(a, "app.local", "/missing");
    assert_eq!((r.status, r.text().as_str()), (200, "our own page"));
    assert_eq!(get_at(a, "app.local", "/admin/").status, 403);
    assert_eq!(get_at(a, "app.local", "/ops/").text(), "django /ops/");
    let statuses: Vec<u16> = (0..4)
        .map(|_| get_at(a, "app.local", "/login/").status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 503], "rate 1/s with a burst of 2");
    let r = at(a, "POST", "app.local", "/upload", b"01234567890123456789").expect("response");
    assert_eq!(r.status, 413);
    let r = at(a, "POST", "app.local", "/upload", b"0123456789").expect("response");
    assert_eq!(r.status, 200);
    let paths: Vec<String> = django.requests().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        paths,
        ["/missing", "/ops/", "/login/", "/login/", "/login/", "/upload"]
    );
}

#[test]
fn check_refuses_a_pool_named_default_and_a_relative_unix_socket() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.toml");
    let text = "[upstream]\nservers = [\"127.0.0.1:8000\"]\n\
                [upstreams.default]\nservers = [\"unix:relative.sock\"]\n";
    std::fs::write(&bad, text).expect("write");
    let out = Command::new(bin())
        .args(["check", "--config", &bad.display().to_string()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("upstreams.default.servers[0]: `unix:relative.sock` is not a unix socket"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn check_names_each_bad_location_key_once_the_file_parses() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"[upstream]
servers = ["127.0.0.1:8000"]
[[locations]]
path = "/"
proxy = "nope"
[[locations]]
path = "~ ("
return = { status = 404 }
[[locations]]
path = "/both/"
proxy = "default"
root = "/srv"
[[locations]]
path = "/hdr/"
proxy = "default"
set_headers = { "X-A" = "$geoip_country" }
access = ["permit all"]
[[locations]]
path = '~ ^/media/(.+)$'
alias = "/srv/media/$1"
[[sites]]
names = ["a.example"]
add_headers = [{ name = "bad name", value = "x" }]
[[sites.locations]]
path = "/"
proxy = "default"
[[sites.locations]]
path = "/b/"
proxy = "default"
"#,
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["check", "--config", &bad.display().to_string()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    for key in [
        "locations[0].proxy",
        "locations[1].path",
        "locations[2]",
        "locations[3].set_headers.X-A",
        "locations[3].access[0]",
        "sites[0].add_headers[0].name",
        "locations[4].alias",
    ] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains(&format!("`{key}`")) || l.contains(&format!(" {key}:")))
                .count(),
            1,
            "{key} once in:\n{stderr}"
        );
    }
    // The site's bad header once, not once per location.
    assert_eq!(lines.len(), 7, "{stderr}");
}

#[test]
fn locations_and_pools_reload_live_and_serve_http2_alike() {
    let django = Upstream::start(|s| Reply::new(200, &format!("django {}", s.path)));
    let events = Upstream::start(|s| Reply::new(200, &format!("events {}", s.path)));
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_pem, tls) = self_signed_tls(dir.path(), "");
    let first = config(
        django.addr,
        &events.addr.to_string(),
        &format!("{tls}\n[[locations]]\npath = \"/\"\nproxy = \"default\"\n"),
    );
    let p = Proxy::start(&first);
    assert_eq!(get_at(p.http, "a", "/events/x").text(), "django /events/x");
    // A SIGHUP adds a location on the second pool, a header and a refusal: all live.
    let second = first.clone()
        + "[[locations]]\npath = \"/events/\"\nproxy = \"events\"\nproxy_path = \"/\"\n\
           add_headers = [{ name = \"X-Pool\", value = \"events\" }]\n\
           [[locations]]\npath = \"= /blocked\"\nreturn = { status = 403 }\n";
    p.reload(&second);
    poll::until_true("the second generation", || {
        p.metric("authz_edge_config_generation") >= 2.0
    });
    let r = get_at(p.http, "a", "/events/x");
    assert_eq!(
        (r.text().as_str(), r.header("x-pool")),
        ("events /x", Some("events"))
    );
    assert_eq!(get_at(p.http, "a", "/blocked").status, 403);
    // The same over HTTP/2.
    let client = https_client(&cert_pem, p.https.expect("https"), false);
    let url = format!("https://localhost:{}", p.https.expect("https").port());
    let r = client
        .get(format!("{url}/events/y?z=1"))
        .send()
        .expect("h2");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.headers()["x-pool"], "events");
    assert_eq!(r.text().expect("body"), "events /y?z=1");
    let r = client.get(format!("{url}/blocked")).send().expect("h2");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!((django.count(), events.count()), (1, 2));
}
