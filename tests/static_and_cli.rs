//! Static files, the `check` command, and the access log.

mod common;

use common::*;
use std::io::Read;
use std::process::Command;

fn static_proxy() -> (Upstream, Proxy, tempfile::TempDir) {
    let up = Upstream::fixed(Reply::new(200, "django"));
    let root = tempfile::tempdir().expect("tmp");
    let css = "body { color: red; }\n".repeat(50);
    write_file(root.path(), "css/site.css", css.as_bytes());
    write_file(
        root.path(),
        "img/logo.png",
        &[0x89, b'P', b'N', b'G', 1, 2, 3, 4, 5, 6],
    );
    write_file(root.path(), "js/app.js", b"console.log('plain');\n");
    write_file(
        root.path(),
        "js/app.js.gz",
        &gzip(b"console.log('precompressed');\n"),
    );
    write_file(
        root.path().parent().expect("parent"),
        "secret.txt",
        b"do not serve",
    );
    let extra = format!(
        "[[static]]\nprefix = \"/static/\"\nroot = \"{}\"\ncache_control = \"public, max-age=60\"\n",
        root.path().display()
    );
    let p = Proxy::start(&config_for(&[up.addr], &extra));
    (up, p, root)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

#[test]
fn static_files_with_types_validators_ranges_and_gzip() {
    let (up, p, _root) = static_proxy();
    let css = "body { color: red; }\n".repeat(50);

    let r = get(p.http, "/static/css/site.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(r.text(), css);
    let etag = r.header("etag").expect("etag").to_string();
    let last_modified = r
        .header("last-modified")
        .expect("last-modified")
        .to_string();

    let r = request(
        p.http,
        "GET",
        "/static/css/site.css",
        &[("If-None-Match", &etag)],
        b"",
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = request(
        p.http,
        "GET",
        "/static/css/site.css",
        &[("If-Modified-Since", &last_modified)],
        b"",
    );
    assert_eq!(r.status, 304);

    let r = request(
        p.http,
        "GET",
        "/static/css/site.css",
        &[("Range", "bytes=5-9")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), &css[5..10]);
    assert_eq!(
        r.header("content-range"),
        Some(&*format!("bytes 5-9/{}", css.len()))
    );
    let r = request(
        p.http,
        "GET",
        "/static/css/site.css",
        &[("Range", "bytes=99999-")],
        b"",
    );
    assert_eq!(r.status, 416);

    let r = request(
        p.http,
        "GET",
        "/static/css/site.css",
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(String::from_utf8(gunzip(&r.body)).expect("utf8"), css);

    let r = request(
        p.http,
        "GET",
        "/static/js/app.js",
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), b"console.log('precompressed');\n");

    let r = get(p.http, "/static/img/logo.png");
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.body.len(), 10);

    let r = request(p.http, "HEAD", "/static/css/site.css", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(&*css.len().to_string()));

    assert_eq!(get(p.http, "/static/missing.css").status, 404);
    assert_eq!(
        request(p.http, "POST", "/static/css/site.css", &[], b"").status,
        405
    );
    assert_eq!(up.count(), 0, "static requests never reach Django");
}

#[test]
fn static_traversal_is_refused_in_every_encoding() {
    let (up, p, _root) = static_proxy();
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/css/..%2f..%2fsecret.txt",
        "/static//etc/passwd",
        "/static/css%5c..%5c..%5csecret.txt",
        "/static/..\\secret.txt",
        "/static/%252e%252e/secret.txt",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let r = raw_request(p.http, raw.as_bytes(), false).expect("a response");
        assert!(
            r.status == 400 || r.status == 404,
            "{path} gave {}",
            r.status
        );
        assert!(
            !r.text().contains("do not serve"),
            "{path} escaped the root"
        );
    }
    assert_eq!(up.count(), 0);
}

#[test]
fn check_reports_every_problem_with_file_and_key_path() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[upstream]\nservers = [\"127.0.0.1:8000\"]\n[[routes]]\npattern = \"/r/<int:pk>/\"\n",
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["check", "--config", &good.display().to_string()])
        .output()
        .expect("run");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("listeners: http 127.0.0.1:8080"),
        "{stdout}"
    );
    assert!(stdout.contains("upstreams: 127.0.0.1:8000"), "{stdout}");
    assert!(stdout.contains("routes: 1 configured"), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = [\"127.0.0.1:80\", \"localhost\"]\n[upstream]\nservers = [\"127.0.0.1:8000\", \"django:8000\"]\n\
         [limits]\nmax_uri_bytes = 10\n[[routes]]\npattern = \"/r/<float:x>/\"\n",
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["check", "--config", &bad.display().to_string()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    let file = bad.display().to_string();
    for key in [
        "server.listen[1]",
        "upstream.servers[1]",
        "limits.max_uri_bytes",
        "routes[0].pattern",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{file}: {key}: "))),
            "no line for {key}: {stderr}"
        );
    }

    let unknown = dir.path().join("unknown.toml");
    std::fs::write(
        &unknown,
        "[upstream]\nservers = [\"127.0.0.1:8000\"]\n[limits]\nmax_body = 1\n",
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["check", "--config", &unknown.display().to_string()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("limits.max_body: unknown field `max_body`"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_config_passes_check() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/authz-edge.toml");
    let out = Command::new(bin())
        .args(["check", "--config", shipped])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn access_log_is_json_with_hashed_identities() {
    let up = Upstream::start(|s| {
        if s.path.starts_with("/deny/") {
            Reply::new(403, "no")
                .header("X-Authz-User", "user-31337")
                .header("X-Authz-Kind", "permission")
        } else {
            Reply::new(200, "ok")
        }
    });
    let p = Proxy::start(&config_for(&[up.addr], "[access_log]\nenabled = true\n"));
    assert_eq!(get(p.http, "/ok/").status, 200);
    let r = request(
        p.http,
        "GET",
        "/deny/reset/Zx9Qk2Lm8Np4Rt7Vw3Yb6Cd1/?token=SECRETTOKEN123",
        &[
            ("Cookie", "sessionid=CANARYSESSION42; csrftoken=CANARYCSRF"),
            ("Authorization", "Bearer CANARYBEARER77"),
        ],
        b"",
    );
    assert_eq!(r.status, 403);
    // The log line is written in the logging phase, after the response.
    poll::until_true("two access log lines", || {
        p.stdout_text()
            .lines()
            .filter(|l| l.starts_with('{'))
            .count()
            >= 2
    });
    let out = p.stdout_text();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["path"], "/ok/");
    assert_eq!(lines[1]["status"], 403);
    assert_eq!(lines[1]["kind"], "permission");
    assert_eq!(lines[1]["path"], "/deny/reset/<token>/");
    assert_eq!(lines[1]["user"].as_str().map(str::len), Some(16));
    assert_eq!(lines[1]["session"].as_str().map(str::len), Some(16));
    let everything = format!("{out}\n{}\n{}", p.stderr_text(), p.metrics());
    for canary in [
        "user-31337",
        "CANARYSESSION42",
        "CANARYCSRF",
        "CANARYBEARER77",
        "SECRETTOKEN123",
        "Zx9Qk2Lm8Np4Rt7Vw3Yb6Cd1",
    ] {
        assert!(!everything.contains(canary), "{canary} leaked");
    }
}

#[test]
fn a_static_file_the_proxy_may_not_read_gets_403_and_is_counted_and_logged_once() {
    use std::os::unix::fs::PermissionsExt;
    let up = Upstream::fixed(Reply::new(200, "django"));
    let root = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    write_file(root.path(), "ok.css", b"body{}\n");
    write_file(root.path(), "locked.css", b"secret{}\n");
    let mode = |name: &str, m: u32| {
        std::fs::set_permissions(root.path().join(name), std::fs::Permissions::from_mode(m))
            .expect("chmod")
    };
    mode("ok.css", 0o644);
    // Owned by root, mode 600: the proxy runs as nobody (65534).
    mode("locked.css", 0o600);
    let extra = format!(
        "[[static]]\nprefix = \"/static/\"\nroot = \"{}\"\n",
        root.path().display()
    );
    let p = Proxy::start_as(&config_for(&[up.addr], &extra), 65534, 65534);
    let ok = get(p.http, "/static/ok.css");
    assert_eq!((ok.status, ok.body.as_slice()), (200, &b"body{}\n"[..]));
    for _ in 0..3 {
        let r = get(p.http, "/static/locked.css");
        assert_eq!(r.status, 403);
        assert!(!r.text().contains("secret"));
    }
    assert_eq!(
        p.metric("authz_edge_static_errors_total{reason=\"permission\"}"),
        3.0
    );
    assert_eq!(
        p.metric("authz_edge_static_errors_total{reason=\"io\"}"),
        0.0
    );
    assert_eq!(up.count(), 0, "never sent on to Django");
    // The proxy's stderr reaches the test through a reader thread: wait for the line.
    let lines_about_it = || {
        p.stderr
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.contains("locked.css") && l.contains("Permission denied"))
            .cloned()
            .collect::<Vec<_>>()
    };
    poll::until_true("the log line about locked.css", || {
        !lines_about_it().is_empty()
    });
    let logged = lines_about_it();
    assert_eq!(logged.len(), 1, "one line per path and minute: {logged:?}");
    assert!(
        logged[0].contains("uid 65534 gid 65534") && logged[0].contains("mode 600"),
        "{}",
        logged[0]
    );
    // Three such failures open a finding that names the directory and the fix.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let finding = loop {
        let v: serde_json::Value =
            serde_json::from_slice(&get(p.admin, "/debug/authz").body).expect("json");
        if let Some(f) = v["findings"].as_array().and_then(|a| a.first()).cloned() {
            assert_eq!(v["findings"].as_array().map(Vec::len), Some(1), "{v}");
            break f;
        }
        assert!(std::time::Instant::now() < deadline, "no finding: {v}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let root = root.path().display().to_string();
    assert_eq!(finding["cause"], "filesystem_permission");
    assert_eq!(finding["route"], "/static/");
    assert_eq!(finding["path"], root.as_str());
    assert_eq!(finding["source"], "proxy");
    assert_eq!(
        finding["fix"],
        format!("chown -R 65534:65534 {root} (the proxy's user), or chmod -R o+rX {root}.")
    );
    assert_eq!(
        p.metric("authz_edge_finding_active{cause=\"filesystem_permission\",route=\"/static/\"}"),
        1.0
    );
}

#[test]
fn check_and_start_refuse_paths_the_proxy_user_cannot_use() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("tmp");
    let open = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    open(dir.path(), 0o755);
    // As after a container build that ran as root: the static root is root's own, mode 700,
    // and so is the sink's directory (755: nobody may not write there).
    let root = dir.path().join("static");
    write_file(&root, "app.css", b"body{}\n");
    open(&root, 0o700);
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    open(&logs, 0o755);
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[upstream]\nservers = [\"127.0.0.1:8000\"]\n\
         [[static]]\nprefix = \"/static/\"\nroot = \"{}\"\n[sink]\ntype = \"file\"\npath = \"{}/d.jsonl\"\n",
        root.display(),
        logs.display()
    );
    let path = dir.path().join("authz-edge.toml");
    std::fs::write(&path, config).expect("write");
    open(&path, 0o644);
    let run = |args: &[&str]| {
        Command::new(bin_for_others())
            .args(args)
            .arg("--config")
            .arg(&path)
            .uid(65534)
            .gid(65534)
            .env("AUTHZ_EDGE_HASH_KEY", "k")
            .output()
            .expect("run")
    };
    for args in [&["check"][..], &[][..]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert_eq!(
            lines[0],
            format!(
                "error: static[0].root: {} cannot be listed and entered by uid 65534 gid 65534 (the proxy's user); it is owned by 0:0 mode 700; fix: chown -R 65534:65534 {}",
                root.display(),
                root.display()
            )
        );
        assert_eq!(
            lines[1],
            format!(
                "error: sink.path: {} cannot be written by uid 65534 gid 65534 (the proxy's user); it is owned by 0:0 mode 755; fix: chown 65534:65534 {}",
                logs.display(),
                logs.display()
            )
        );
    }
    // Fixed as the lines say (here by mode): check passes, and an unreadable file below the
    // root is a warning only.
    open(&root, 0o755);
    open(&logs, 0o777);
    open(&root.join("app.css"), 0o600);
    let out = run(&["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let warning = format!(
        "warning: static[0].root: {} cannot be read by uid 65534 gid 65534",
        root.join("app.css").display()
    );
    assert!(stdout.contains(&warning), "{stdout}");
}

/// Runs the proxy on `config` (its @SOCK@ and @PID@ placed in `dir`) with `env` until it exits
/// by itself, within 20 s: its exit code, stdout and stderr.
fn run_to_exit(
    dir: &std::path::Path,
    config: &str,
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let path = dir.join("run.toml");
    let config = config
        .replace("@SOCK@", &dir.join("s.sock").display().to_string())
        .replace("@PID@", &dir.join("p.pid").display().to_string());
    std::fs::write(&path, config).expect("write");
    let mut child = Command::new(bin())
        .args(["--config", &path.display().to_string()])
        .env("AUTHZ_EDGE_HASH_KEY", "test-key")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let status = wait_exit(&mut child, std::time::Duration::from_secs(20));
    let out = child.wait_with_output().expect("output");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (status.code(), text(&out.stdout), text(&out.stderr))
}

/// A listener whose port another process holds: the proxy says which key and exits 1 at once,
/// never printing `authz-edge listening` (it used to print it, connecting to the other
/// process, then retry for 30 s and go on running without its proxy listener).
#[test]
fn a_port_another_process_holds_is_refused_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::fixed(Reply::new(200, "ok"));
    for (key, config) in [
        (
            "server.listen[0]",
            config_for(&[up.addr], "").replace(
                "listen = [\"127.0.0.1:0\"]",
                &format!("listen = [\"127.0.0.1:{port}\"]"),
            ),
        ),
        (
            "server.admin",
            config_for(&[up.addr], "").replace(
                "admin = \"127.0.0.1:0\"",
                &format!("admin = \"127.0.0.1:{port}\""),
            ),
        ),
    ] {
        // Before: it ran on without its listener. Now it must end by itself.
        let (code, stdout, stderr) = run_to_exit(dir.path(), &config, &[]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "{key}: cannot listen on 127.0.0.1:{port}: Address already in use"
            )),
            "{stderr}"
        );
        assert!(!stdout.contains("listening"), "{stdout}");
    }
    drop(taken);
}

#[test]
fn a_background_service_that_panics_ends_the_process() {
    let up = Upstream::fixed(Reply::new(200, "ok"));
    let dir = tempfile::tempdir().expect("tmp");
    for service in ["findings", "upstream health", "config reload"] {
        // Before: the thread died and the process answered on, without the service.
        let fault = format!("panic:{service}");
        let config = config_for(&[up.addr], "");
        let (code, _, stderr) = run_to_exit(dir.path(), &config, &[("AUTHZ_EDGE_FAULT", &fault)]);
        assert_eq!(code, Some(70), "{service}: {stderr}");
        let said: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(&format!("the {service} service panicked")))
            .collect();
        assert_eq!(said.len(), 1, "{service}: {stderr}");
    }
}

#[test]
fn start_stop_and_an_upstream_leaving_and_rejoining_are_a_line_each() {
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let p = Proxy::start(&config_for(&[addr], ""));
    let down = format!("upstream {addr} (pool default) failed its health check twice: out of the pool until it passes");
    p.wait_stderr(&down);
    // Django comes up: one line when the next check passes.
    let listener = std::net::TcpListener::bind(addr).expect("bind the upstream's port");
    let back = format!("upstream {addr} (pool default) passed its health check: back in the pool");
    p.wait_stderr(&back);
    drop(listener);
    let stderr_at_stop = p.stderr_text();
    let stdout = p.stdout.clone();
    let stderr = p.stderr.clone();
    let status = p.stop();
    assert!(status.success(), "{status:?}");
    // The reader threads see the last lines a little after the process ends.
    poll::until_true("the stop line", || {
        stdout
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l == "authz-edge stopped")
    });
    let out = stdout.lock().expect("lock").clone();
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out[0].starts_with("authz-edge listening http=127.0.0.1:"),
        "{out:?}"
    );
    assert_eq!(out[1], "authz-edge stopped");
    let err = stderr.lock().expect("lock").clone();
    assert_eq!(
        err.len(),
        2,
        "start, an upstream down and back, and a stop: {err:?} ({stderr_at_stop})"
    );
    assert!(
        err[0].ends_with(&down) && err[0].contains(" WARN "),
        "{err:?}"
    );
    assert!(
        err[1].ends_with(&back) && err[1].contains(" INFO "),
        "{err:?}"
    );
}
