//! The equivalence suite: Django projects' nginx configurations (`tests/nginx_configs`) run
//! under real nginx as the reference and, through `authz-edge import-nginx`, under authz-edge,
//! with the same requests replayed against both. Requests are derived from each config (every
//! server's host, every location and a path just outside it, a file hit and miss under each
//! root and alias, an upload over the body limit, an unknown host) plus each case's own (regex
//! locations, `X-Accel-Redirect`). Compared: status, `Location`, the headers the config adds
//! or hides, the body (when a file or an upstream gave it), which upstream got the request and
//! the head it saw (method, target, headers but those authz-edge sets itself on every request:
//! `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Real-IP`, `X-Request-Id`, and hop-by-hop ones).
//! An `Expires` header is compared for being there (it is a time), and the `Cache-Control:
//! no-store` of authz-edge's own error pages is left out.
//!
//! What the harness changes in a config before either runs is the same for both: listen
//! ports (IPv6 listeners dropped), upstream addresses, file paths and certificates, process
//! directives (`user`, `pid`, `error_log`, log paths), nginx Plus's `resolve`. A server block
//! on its own is wrapped in `events {} http { … }`.
//!
//! Each case lists the requests known to differ, with why; the test fails when any other
//! request differs, or when a known one no longer does.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// A request as an upstream saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    upstream: String,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Headers authz-edge sets on every request it forwards (README), and hop-by-hop ones.
const NOT_COMPARED: [&str; 9] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    "connection",
    "keep-alive",
    "te",
    "content-length",
    "transfer-encoding",
];

/// Serves one upstream connection: records each request and answers it. A target with
/// `accel` is answered with `X-Accel-Redirect: /_protected/probe.txt`, one with `boom` with
/// 500, the rest with 200 and `NAME METHOD TARGET`.
fn serve(conn: impl Read + Write, name: &str, log: &Log) {
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k, v.trim().to_string()));
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        headers.retain(|(k, _)| !NOT_COMPARED.contains(&k.as_str()));
        headers.sort();
        log.lock().expect("log").push(Seen {
            upstream: name.to_string(),
            method: method.clone(),
            target: target.clone(),
            headers,
        });
        let reply = if target.contains("accel") {
            "HTTP/1.1 200 OK\r\nX-Accel-Redirect: /_protected/probe.txt\r\nContent-Type: application/pdf\r\n\
             Content-Disposition: inline; filename=\"report.pdf\"\r\nX-Secret: 1\r\nContent-Length: 7\r\n\r\nignored"
                .to_string()
        } else if target.contains("boom") {
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nboom".to_string()
        } else {
            let text = format!("{name} {method} {target}");
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Upstream: {name}\r\nX-Powered-By: Django\r\n\
                 Content-Disposition: inline\r\nCache-Control: private\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
        };
        let stream = r.get_mut();
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A recording upstream on TCP; its address.
fn tcp_upstream(name: &str, log: &Log) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let (name, log) = (name.to_string(), log.clone());
    std::thread::spawn(move || {
        for c in l.incoming().map_while(Result::ok) {
            let (name, log) = (name.clone(), log.clone());
            std::thread::spawn(move || serve(c, &name, &log));
        }
    });
    addr
}

/// A recording upstream on a unix socket at `path`.
fn unix_upstream(name: &str, path: &Path, log: &Log) {
    let l = std::os::unix::net::UnixListener::bind(path).expect("bind unix");
    let (name, log) = (name.to_string(), log.clone());
    std::thread::spawn(move || {
        for c in l.incoming().map_while(Result::ok) {
            let (name, log) = (name.clone(), log.clone());
            std::thread::spawn(move || serve(c, &name, &log));
        }
    });
}

/// One case: a config and what the harness does with it.
struct Case {
    file: &'static str,
    /// Upstreams by the address the config names: (address as written, name, on a unix
    /// socket).
    upstreams: &'static [(&'static str, &'static str, bool)],
    /// File paths as written, replaced by directories under the case's own.
    paths: &'static [&'static str],
    /// Requests of the case's own: (port as written, host, method, path).
    extra: &'static [(u16, &'static str, &'static str, &'static str)],
    /// Requests known to differ (their labels), and why.
    known: &'static [(&'static str, &'static str)],
}

/// One request and what came back.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    status: u16,
    location: Option<String>,
    watched: BTreeMap<String, String>,
    body: Option<String>,
    upstream: Vec<Seen>,
}

struct Req {
    label: String,
    port: u16,
    host: String,
    method: &'static str,
    path: String,
    body_len: usize,
}

/// The config text as both run it (see the module's note).
fn prepare(
    case: &Case,
    dir: &Path,
    ports: &BTreeMap<u16, u16>,
    ups: &BTreeMap<&str, String>,
) -> String {
    let mut text =
        std::fs::read_to_string(format!("tests/nginx_configs/{}", case.file)).expect("config");
    for (written, name, unix) in case.upstreams {
        let to = match unix {
            true => format!("unix:{}", ups[name]),
            false => ups[name].clone(),
        };
        text = text
            .replace(&format!("{written} resolve"), &to)
            .replace(written, &to);
    }
    for (i, p) in case.paths.iter().enumerate() {
        let to = dir.join(format!("files{i}"));
        let slash = if p.ends_with('/') { "/" } else { "" };
        text = text.replace(p, &format!("{}{slash}", to.display()));
    }
    let cert = dir.join("cert.pem").display().to_string();
    let key = dir.join("key.pem").display().to_string();
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let word = t.split_whitespace().next().unwrap_or("");
        match word {
            "user" | "pid" | "error_log" | "resolver" => continue,
            "listen" if t.contains("[::]") => continue,
            "listen" => {
                let raw_arg = t.split_whitespace().nth(1).unwrap_or("");
                let arg = raw_arg.trim_end_matches(';');
                let port: u16 = arg
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("listen port");
                // What follows the address, with the `;`.
                let after = &t[t.find(raw_arg).map_or(t.len(), |i| i + arg.len())..];
                out.push(format!("listen 127.0.0.1:{}{after}", ports[&port]));
            }
            "ssl_certificate" => out.push(format!("ssl_certificate {cert};")),
            "ssl_certificate_key" => out.push(format!("ssl_certificate_key {key};")),
            "access_log" => out.push("access_log off;".into()),
            _ => out.push(line.to_string()),
        }
    }
    let text = out.join("\n");
    if text.contains("http {") {
        text
    } else {
        format!("events {{}}\nhttp {{\n{text}\n}}\n")
    }
}

/// The requests a config gives: per server, its host at `/`, each location, a path just
/// outside it, a file under each root or alias, an upload over the limit; an unknown host.
fn derive(case: &Case, conf: &Path, port_of: &BTreeMap<u16, u16>) -> Vec<Req> {
    let top = authz_edge::import_nginx::parse::read(conf).expect("parses");
    let back: BTreeMap<u16, u16> = port_of.iter().map(|(a, b)| (*b, *a)).collect();
    let mut out = Vec::new();
    let mut push = |port: u16, host: &str, method: &'static str, path: String, body_len: usize| {
        let label = format!(
            "{method} {host}:{port} {path}{}",
            if body_len > 0 {
                format!(" ({body_len} bytes)")
            } else {
                String::new()
            }
        );
        if !out.iter().any(|r: &Req| r.label == label) {
            out.push(Req {
                label,
                port,
                host: host.to_string(),
                method,
                path,
                body_len,
            });
        }
    };
    let mut servers = Vec::new();
    fn collect<'a>(
        list: &'a [authz_edge::import_nginx::parse::Directive],
        out: &mut Vec<&'a authz_edge::import_nginx::parse::Directive>,
    ) {
        for d in list {
            if d.name == "server" && d.block.is_some() {
                out.push(d);
            } else {
                collect(d.children(), out);
            }
        }
    }
    collect(&top, &mut servers);
    let mut limit_http = 1024 * 1024;
    fn size(s: &str) -> usize {
        let (n, m) = match s.chars().last() {
            Some('k' | 'K') => (&s[..s.len() - 1], 1024),
            Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
            Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
            _ => (s, 1),
        };
        n.parse::<usize>().unwrap_or(0) * m
    }
    fn find<'a>(
        list: &'a [authz_edge::import_nginx::parse::Directive],
        name: &str,
    ) -> Option<&'a authz_edge::import_nginx::parse::Directive> {
        list.iter().find(|d| d.name == name)
    }
    if let Some(http) = find(&top, "http") {
        if let Some(d) = find(http.children(), "client_max_body_size") {
            limit_http = size(d.arg(0));
        }
    }
    for s in servers {
        let listen = s
            .children()
            .iter()
            .filter(|d| d.name == "listen")
            .filter_map(|d| {
                d.arg(0)
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
            });
        let names: Vec<&str> = s
            .children()
            .iter()
            .filter(|d| d.name == "server_name")
            .flat_map(|d| d.args.iter().map(String::as_str))
            .collect();
        let host = names
            .iter()
            .find(|n| !n.starts_with(['~', '*', '.']) && **n != "_")
            .copied()
            .unwrap_or("localhost");
        let limit =
            find(s.children(), "client_max_body_size").map_or(limit_http, |d| size(d.arg(0)));
        for port in listen {
            let Some(&written) = back.get(&port) else {
                continue;
            };
            let _ = written;
            push(port, host, "GET", "/".into(), 0);
            push(port, "unknown.example", "GET", "/".into(), 0);
            if limit > 0 && limit <= 64 << 20 {
                push(port, host, "POST", "/".into(), limit + 1);
            }
            for l in s.children().iter().filter(|d| d.name == "location") {
                let (kind, p) = match l.args.as_slice() {
                    [k, p] => (k.as_str(), p.as_str()),
                    [p] => ("", p.as_str()),
                    _ => continue,
                };
                match kind {
                    "" | "^~" => {
                        push(port, host, "GET", p.to_string(), 0);
                        let base = if p.ends_with('/') {
                            p.to_string()
                        } else {
                            format!("{p}/")
                        };
                        push(port, host, "GET", format!("{base}probe.txt"), 0);
                        push(port, host, "GET", format!("{base}missing.txt"), 0);
                        if p.len() > 1 {
                            push(port, host, "GET", format!("{}~", &p[..p.len() - 1]), 0);
                        }
                    }
                    "=" => {
                        push(port, host, "GET", p.to_string(), 0);
                        push(port, host, "GET", format!("{p}x"), 0);
                    }
                    _ => {}
                }
            }
        }
    }
    for (port, host, method, path) in case.extra {
        push(port_of[port], host, method, path.to_string(), 0);
    }
    out
}

/// Sends `r` to the listener that stands for its port and reads what comes back.
fn replay(r: &Req, port: u16, tls: bool, cert: &str, log: &Log, watched: &[String]) -> Outcome {
    let before = log.lock().expect("log").len();
    let scheme = if tls { "https" } else { "http" };
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).expect("pem"))
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .build()
        .expect("client");
    let url = format!("{scheme}://127.0.0.1:{port}{}", r.path);
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).expect("method");
    let mut req = client.request(method, &url).header("host", &r.host);
    if r.body_len > 0 {
        req = req.body(vec![b'a'; r.body_len]);
    }
    let resp = req.send();
    let (status, headers, body) = match resp {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
            (status, headers, body)
        }
        // Closed without a response (444).
        Err(_) => (0, reqwest::header::HeaderMap::new(), Vec::new()),
    };
    // The upstream's log is written before it answers.
    let upstream: Vec<Seen> = log.lock().expect("log")[before..].to_vec();
    let join = |name: &str| {
        let v: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!v.is_empty()).then(|| v.join(", "))
    };
    let from_file_or_upstream = status < 300 || !upstream.is_empty();
    let mut watched: BTreeMap<String, String> = watched
        .iter()
        .filter_map(|n| join(n).map(|v| (n.clone(), v)))
        .collect();
    // `Expires` is a time: whether it is there is compared.
    if let Some(v) = watched.get_mut("expires") {
        *v = "(a date)".into();
    }
    // authz-edge's own error pages say `Cache-Control: no-store`; nginx's say nothing.
    if status >= 400
        && upstream.is_empty()
        && watched.get("cache-control").map(String::as_str) == Some("no-store")
    {
        watched.remove("cache-control");
    }
    Outcome {
        status,
        location: join("location").map(|l| l.replace(&format!(":{port}"), ":PORT")),
        watched,
        body: from_file_or_upstream.then(|| String::from_utf8_lossy(&body).into_owned()),
        upstream: upstream
            .into_iter()
            .map(|mut s| {
                for (_, v) in s.headers.iter_mut() {
                    *v = v.replace(&format!(":{port}"), ":PORT");
                }
                s
            })
            .collect(),
    }
}

/// Header names the config adds or hides (and `expires`' two), lower-cased.
fn watched_headers(conf: &str) -> Vec<String> {
    let mut names = vec!["x-upstream".to_string(), "content-disposition".to_string()];
    for line in conf.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("add_header") | Some("proxy_hide_header") => {
                if let Some(n) = w.next() {
                    names.push(n.trim_matches('"').to_ascii_lowercase());
                }
            }
            Some("expires") => {
                names.push("expires".into());
                names.push("cache-control".into());
            }
            _ => {}
        }
    }
    names.sort();
    names.dedup();
    names
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// The ports a config listens on, and those with TLS (`ssl` on the `listen`, or `ssl on;` in
/// its server), read with the importer's own parser.
fn listeners(conf: &Path) -> (Vec<u16>, Vec<u16>) {
    use authz_edge::import_nginx::parse::{read, Directive};
    fn walk(list: &[Directive], ssl_on: bool, all: &mut Vec<u16>, tls: &mut Vec<u16>) {
        let here = ssl_on || list.iter().any(|d| d.name == "ssl" && d.arg(0) == "on");
        for d in list {
            if d.name == "listen" && !d.arg(0).starts_with('[') {
                let port = d.arg(0).rsplit(':').next().and_then(|p| p.parse().ok());
                if let Some(p) = port {
                    all.push(p);
                    if here || d.args.iter().any(|a| a == "ssl") {
                        tls.push(p);
                    }
                }
            }
            walk(d.children(), here && d.name != "server", all, tls);
        }
    }
    let (mut all, mut tls) = (Vec::new(), Vec::new());
    walk(&read(conf).expect("parses"), false, &mut all, &mut tls);
    all.sort();
    all.dedup();
    (all, tls)
}

/// Runs one case; its row of the table, and the labels of the requests that differed.
fn run(case: &Case) -> (String, Vec<(String, Outcome, Outcome)>) {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("cert");
    let cert_pem = cert.cert.pem();
    std::fs::write(d.join("cert.pem"), &cert_pem).expect("cert");
    std::fs::write(d.join("key.pem"), cert.key_pair.serialize_pem()).expect("key");
    std::fs::copy("/etc/nginx/mime.types", d.join("mime.types")).expect("mime.types");
    std::fs::create_dir_all(d.join("logs")).expect("logs");
    for i in 0..case.paths.len() {
        let f = d.join(format!("files{i}"));
        std::fs::create_dir_all(&f).expect("files");
        std::fs::write(f.join("probe.txt"), format!("probe {i}\n")).expect("probe");
        std::fs::write(f.join("index.html"), format!("<p>index {i}</p>\n")).expect("index");
        std::fs::create_dir_all(f.join("exports")).expect("exports");
        std::fs::write(f.join("exports/probe.txt"), format!("export {i}\n")).expect("probe");
    }
    let log: Log = Arc::default();
    let mut ups: BTreeMap<&str, String> = BTreeMap::new();
    for (_, name, unix) in case.upstreams {
        let addr = if *unix {
            let p = d.join(format!("{name}.sock"));
            unix_upstream(name, &p, &log);
            p.display().to_string()
        } else {
            tcp_upstream(name, &log).to_string()
        };
        ups.insert(name, addr);
    }
    // Each port the config listens on (IPv6 ones left out), and whether it is TLS: for
    // nginx, then for authz-edge.
    let (written_ports, tls_ports) =
        listeners(Path::new(&format!("tests/nginx_configs/{}", case.file)));
    let nginx_ports: BTreeMap<u16, u16> = written_ports.iter().map(|p| (*p, free_port())).collect();
    let edge_ports: BTreeMap<u16, u16> = written_ports.iter().map(|p| (*p, free_port())).collect();

    let conf = prepare(case, d, &nginx_ports, &ups);
    let conf_path = d.join("nginx.conf");
    std::fs::write(&conf_path, &conf).expect("write");
    let mut nginx = Command::new(nginx::nginx_bin())
        .args([
            "-p",
            &d.display().to_string(),
            "-c",
            &conf_path.display().to_string(),
            "-e",
        ])
        .arg(d.join("logs/error.log"))
        // Workers as root: the case's files are in a private temp directory.
        .args(["-g", "daemon off; pid logs/nginx.pid; user root;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx");
    for p in nginx_ports.values() {
        let addr: SocketAddr = format!("127.0.0.1:{p}").parse().expect("addr");
        poll::until_true("nginx to listen", || {
            if let Ok(Some(status)) = nginx.try_wait() {
                let log = std::fs::read_to_string(d.join("logs/error.log")).unwrap_or_default();
                panic!("{}: nginx exited ({status}):\n{log}\n{conf}", case.file);
            }
            std::net::TcpStream::connect(addr).is_ok()
        });
    }

    // The same text with authz-edge's ports, imported.
    let edge_conf = prepare(case, d, &edge_ports, &ups);
    let edge_path = d.join("edge-nginx.conf");
    std::fs::write(&edge_path, &edge_conf).expect("write");
    let toml_path = d.join("authz-edge.toml");
    let import = Command::new(bin())
        .args([
            "import-nginx",
            &edge_path.display().to_string(),
            "--out",
            &toml_path.display().to_string(),
        ])
        .output()
        .expect("import");
    let report = String::from_utf8_lossy(&import.stderr).into_owned();
    assert!(matches!(import.status.code(), Some(0 | 3)), "{report}");
    let totals = report.lines().last().unwrap_or("").to_string();
    let mut table: toml::Table = std::fs::read_to_string(&toml_path)
        .expect("toml")
        .parse()
        .expect("toml parses");
    let server = table
        .entry("server")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    if let toml::Value::Table(s) = server {
        s.insert("admin".into(), "127.0.0.1:0".into());
        s.insert("grace_period".into(), "1s".into());
        s.insert(
            "upgrade_sock".into(),
            d.join("up.sock").display().to_string().into(),
        );
        s.insert(
            "pid_file".into(),
            d.join("edge.pid").display().to_string().into(),
        );
    }
    let mut sink = toml::Table::new();
    sink.insert("type".into(), "none".into());
    table.insert("sink".into(), toml::Value::Table(sink));
    let edge_toml = toml::to_string(&table).expect("toml");
    let check = Command::new(bin())
        .args(["check", "--config"])
        .arg(&toml_path)
        .output()
        .expect("check");
    std::fs::write(&toml_path, &edge_toml).expect("write");
    let check = if check.status.success() {
        check
    } else {
        Command::new(bin())
            .args(["check", "--config"])
            .arg(&toml_path)
            .output()
            .expect("check")
    };
    assert!(
        check.status.success(),
        "{}: the imported config passes check: {}",
        case.file,
        String::from_utf8_lossy(&check.stderr)
    );
    let mut edge = Command::new(bin())
        .args(["--config", &toml_path.display().to_string()])
        .env("AUTHZ_EDGE_HASH_KEY", "k")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("authz-edge");
    for p in edge_ports.values() {
        nginx::wait_listening(
            format!("127.0.0.1:{p}").parse().expect("addr"),
            "authz-edge",
        );
    }

    let watched = watched_headers(&conf);
    let requests = derive(case, &conf_path, &nginx_ports);
    let back: BTreeMap<u16, u16> = nginx_ports.iter().map(|(w, n)| (*n, *w)).collect();
    let mut differ = Vec::new();
    for r in &requests {
        let written = back[&r.port];
        let tls = tls_ports.contains(&written);
        let a = replay(r, r.port, tls, &cert_pem, &log, &watched);
        let b = replay(r, edge_ports[&written], tls, &cert_pem, &log, &watched);
        if a != b {
            differ.push((
                r.label
                    .replace(&format!(":{}", r.port), &format!(":{written}")),
                a,
                b,
            ));
        }
    }
    unsafe {
        libc::kill(edge.id() as i32, libc::SIGINT);
        libc::kill(nginx.id() as i32, libc::SIGTERM);
    }
    let _ = edge.wait();
    let _ = nginx.wait();
    // "authz-edge: 22 converted, 2 partial, 0 unsupported, 11 ignored": the numbers.
    let counts: Vec<&str> = totals
        .split(": ")
        .nth(1)
        .unwrap_or("")
        .split(", ")
        .map(|c| c.split(' ').next().unwrap_or(""))
        .collect();
    let row = format!(
        "| {} | {} | {}/{} |",
        case.file,
        counts.join(" | "),
        requests.len() - differ.len(),
        requests.len()
    );
    (row, differ)
}

const CASES: &[Case] = &[
    Case {
        file: "gunicorn.conf",
        upstreams: &[("unix:/tmp/gunicorn.sock", "app", true)],
        paths: &["/path/to/app/current/public"],
        extra: &[
            (80, "localhost", "GET", "/accounts/login/?next=/admin/"),
            (80, "localhost", "POST", "/boom"),
            (80, "localhost", "GET", "/500.html"),
        ],
        known: &[],
    },
    Case {
        file: "netbox.conf",
        upstreams: &[("127.0.0.1:8001", "netbox", false)],
        paths: &["/opt/netbox/netbox/static/"],
        extra: &[
            (
                443,
                "netbox.example.com",
                "GET",
                "/api/dcim/devices/?limit=5",
            ),
            (80, "netbox.example.com", "GET", "/login/?next=/"),
        ],
        known: &[],
    },
    Case {
        file: "taiga.conf",
        upstreams: &[
            ("127.0.0.1:8001", "back", false),
            ("127.0.0.1:8003", "protected", false),
            ("127.0.0.1:8888", "events", false),
        ],
        paths: &[
            "/home/taiga/taiga-front-dist/dist/",
            "/home/taiga/taiga-back/static",
            "/home/taiga/taiga-back/media/exports/",
            "/home/taiga/taiga-back/media/",
        ],
        extra: &[
            (
                443,
                "localhost",
                "GET",
                "/media/user/accel/avatar.png?token=abc",
            ),
            (443, "localhost", "GET", "/api/v1/projects?page=2"),
            (443, "localhost", "GET", "/admin/login/"),
            (443, "localhost", "GET", "/project/taiga/kanban"),
        ],
        known: &[],
    },
    Case {
        file: "sentry.conf",
        upstreams: &[("relay:3000", "relay", false), ("web:9000", "web", false)],
        paths: &["/var/www/"],
        extra: &[
            (80, "localhost", "POST", "/api/42/envelope/"),
            (80, "localhost", "GET", "/api/0/projects/"),
            (80, "localhost", "POST", "/api/0/relays/register/challenge/"),
            (80, "localhost", "GET", "/_assets/entrypoints/app.js"),
            (
                80,
                "localhost",
                "GET",
                "/_static/1700000000/sentry/dist/app.js",
            ),
        ],
        known: &[],
    },
    Case {
        file: "pretix.conf",
        upstreams: &[("localhost:8345", "pretix", false)],
        paths: &[
            "/var/pretix/data/media/",
            "/var/pretix/venv/lib/python3.5/site-packages/pretix/static.dist/",
        ],
        extra: &[
            (
                443,
                "pretix.mydomain.com",
                "GET",
                "/control/event/demo/orders/",
            ),
            (
                443,
                "pretix.mydomain.com",
                "GET",
                "/media/cachedfiles/export.xlsx",
            ),
        ],
        known: &[],
    },
];

#[test]
fn django_projects_nginx_configs_behave_the_same_under_authz_edge() {
    let mut rows = vec![
        "| config | converted | partial | unsupported | ignored | requests equivalent |"
            .to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    let mut failures = Vec::new();
    for case in CASES {
        let (row, differ) = run(case);
        rows.push(row);
        let known: BTreeMap<&str, &str> = case.known.iter().copied().collect();
        for (label, a, b) in &differ {
            if !known.contains_key(label.as_str()) {
                failures.push(format!(
                    "{}: {label}\n  nginx:      {a:?}\n  authz-edge: {b:?}",
                    case.file
                ));
            }
        }
        for k in known.keys() {
            if !differ.iter().any(|(l, _, _)| l == k) {
                failures.push(format!(
                    "{}: {k} is listed as differing but no longer does",
                    case.file
                ));
            }
        }
    }
    let table = rows.join("\n");
    println!("{table}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nginx-equivalence.md");
    let _ = std::fs::write(&out, format!("{table}\n"));
    assert!(failures.is_empty(), "{table}\n\n{}", failures.join("\n"));
}
