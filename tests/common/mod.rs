//! Test harness: the real `authz-edge` binary against in-test upstreams, on 127.0.0.1:0.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The first value of header `name`, in any case.
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A tool that `.ci/run` unpacks under `target/ci-tools` (Prometheus's `prometheus` and
/// `promtool`), or the path in the environment variable `env`.
pub fn ci_tool(file: &str, env: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| {
        format!(
            "{}/target/ci-tools/prometheus/usr/bin/{file}",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    assert!(
        std::path::Path::new(&path).exists(),
        "{file} not found at {path}: run `bash .ci/run` once, or set {env}"
    );
    path
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// What an upstream answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body with chunked encoding, in pieces of this size.
    pub chunked: Option<usize>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Close the connection after answering, without saying so (an idle keepalive timeout).
    pub close: bool,
}

impl Reply {
    pub fn new(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
            chunked: None,
            delay: Duration::ZERO,
            close: false,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn chunked(mut self, piece: usize) -> Self {
        self.chunked = Some(piece);
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    pub fn close_after(mut self) -> Self {
        self.close = true;
        self
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// An HTTP/1.1 upstream in a thread, with keepalive; it records every request.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections that carried at least one request (health-check probes do not count).
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, st, c) = (seen.clone(), stop.clone(), connections.clone());
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (h, s, c) = (handler.clone(), s.clone(), c.clone());
                        thread::spawn(move || serve_conn(stream, h, s, c));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Upstream {
            addr,
            seen,
            connections,
            stop,
        }
    }

    /// A fixed reply for every request.
    pub fn fixed(reply: Reply) -> Self {
        Upstream::start(move |_| reply.clone())
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_conn(
    stream: TcpStream,
    handler: Arc<Handler>,
    seen: Arc<Mutex<Vec<Seen>>>,
    used: Arc<AtomicUsize>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut counted = false;
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if !counted {
            used.fetch_add(1, Ordering::Relaxed);
            counted = true;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if let Some(cl) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(cl, 0);
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                if reader.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                if reader.read_exact(&mut chunk).is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        let req = Seen {
            method: method.clone(),
            path,
            headers,
            body,
        };
        seen.lock().expect("lock").push(req.clone());
        let reply = handler(&req);
        if !reply.delay.is_zero() {
            thread::sleep(reply.delay);
        }
        let mut out = format!("HTTP/1.1 {} X\r\n", reply.status);
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        let no_body = method == "HEAD" || reply.status == 304 || reply.status == 204;
        match reply.chunked {
            Some(piece) if !no_body => {
                out.push_str("Transfer-Encoding: chunked\r\n\r\n");
                let mut bytes = out.into_bytes();
                for c in reply.body.chunks(piece.max(1)) {
                    bytes.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    bytes.extend_from_slice(c);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
                if writer.write_all(&bytes).is_err() {
                    return;
                }
            }
            _ => {
                if reply.status != 304 && reply.status != 204 {
                    out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                if !no_body {
                    bytes.extend_from_slice(&reply.body);
                }
                if writer.write_all(&bytes).is_err() {
                    return;
                }
            }
        }
        if reply.close {
            return;
        }
    }
}

/// A running `authz-edge` process.
pub struct Proxy {
    pub child: Child,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_authz-edge")
}

/// The binary where another user (the tests drop to `nobody`) may run it: a copy in a directory
/// of mode 755, since the checkout itself may sit below a private directory (`mktemp -d`).
pub fn bin_for_others() -> &'static std::path::Path {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("authz-edge-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let copy = dir.join("authz-edge");
        std::fs::copy(bin(), &copy).expect("copy the binary");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        copy
    })
}

/// A minimal config: listeners on port 0, one upstream, a short grace period.
pub fn config_for(upstreams: &[SocketAddr], extra: &str) -> String {
    let servers: Vec<String> = upstreams.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\ngrace_period = \"1s\"\n\
         upgrade_sock = \"@SOCK@\"\npid_file = \"@PID@\"\n\n[upstream]\nservers = [{}]\n\n[sink]\ntype = \"none\"\n{extra}",
        servers.join(", ")
    )
}

fn pump(
    r: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
    tx: Option<std::sync::mpsc::Sender<String>>,
) {
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if let Some(tx) = &tx {
                if line.starts_with("authz-edge listening") {
                    let _ = tx.send(line.clone());
                }
            }
            into.lock().expect("lock").push(line);
        }
    });
}

impl Proxy {
    /// Starts the binary with `config` (its @SOCK@ and @PID@ placed in a temp dir).
    pub fn start(config: &str) -> Proxy {
        Proxy::start_with(config, &[], &[("AUTHZ_EDGE_HASH_KEY", "test-key")])
    }

    pub fn start_with(config: &str, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        Proxy::start_in(dir, config, args, env)
    }

    pub fn start_in(
        dir: tempfile::TempDir,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Proxy {
        Proxy::start_inner(dir, config, args, env, None, false)
    }

    /// Starts the proxy with `SIGXFSZ` ignored, so that a file-size limit set on it later
    /// (`prlimit`) makes its writes fail with `EFBIG`, as a full disk makes them fail.
    pub fn start_for_file_limits(config: &str) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        Proxy::start_inner(
            dir,
            config,
            &[],
            &[("AUTHZ_EDGE_HASH_KEY", "test-key")],
            None,
            true,
        )
    }

    /// Starts the proxy as another user (`nobody`, say): the tests run as root, which may read
    /// any file. Its temp dir is opened to that user.
    pub fn start_as(config: &str, uid: u32, gid: u32) -> Proxy {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        Proxy::start_inner(
            dir,
            config,
            &[],
            &[("AUTHZ_EDGE_HASH_KEY", "test-key")],
            Some((uid, gid)),
            false,
        )
    }

    fn start_inner(
        dir: tempfile::TempDir,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
        user: Option<(u32, u32)>,
        ignore_sigxfsz: bool,
    ) -> Proxy {
        let config = config
            .replace(
                "@SOCK@",
                &dir.path().join("upgrade.sock").display().to_string(),
            )
            .replace("@PID@", &dir.path().join("pid").display().to_string())
            .replace("@DIR@", &dir.path().display().to_string());
        let config_path = dir.path().join("authz-edge.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut cmd = match user {
            Some(_) => Command::new(bin_for_others()),
            None => Command::new(bin()),
        };
        if let Some((uid, gid)) = user {
            use std::os::unix::fs::PermissionsExt;
            use std::os::unix::process::CommandExt;
            std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o644))
                .expect("chmod config");
            cmd.uid(uid).gid(gid);
        }
        if ignore_sigxfsz {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        cmd.arg("--config")
            .arg(&config_path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("AUTHZ_EDGE_HASH_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn authz-edge");
        let (stdout_lines, stderr_lines) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(Mutex::new(Vec::new())),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        pump(
            child.stdout.take().expect("stdout"),
            stdout_lines.clone(),
            Some(tx),
        );
        pump(
            child.stderr.take().expect("stderr"),
            stderr_lines.clone(),
            None,
        );
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                thread::sleep(Duration::from_millis(200));
                panic!(
                    "authz-edge did not start; stderr:\n{}",
                    stderr_lines.lock().expect("lock").join("\n")
                );
            }
        };
        let field = |name: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.parse().ok())
        };
        let proxy = Proxy {
            http: field("http").unwrap_or_else(|| "127.0.0.1:1".parse().expect("addr")),
            https: field("https"),
            admin: field("admin").expect("admin address"),
            child,
            dir,
            config_path,
            stdout: stdout_lines,
            stderr: stderr_lines,
        };
        proxy.wait_ready();
        proxy
    }

    /// Waits until the admin listener and the proxy listener accept connections.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(self.admin).is_ok() && TcpStream::connect(self.http).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("authz-edge listeners never came up");
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// The /metrics text.
    pub fn metrics(&self) -> String {
        let r = request(self.admin, "GET", "/metrics", &[], b"");
        assert_eq!(r.status, 200);
        String::from_utf8(r.body).expect("utf8 metrics")
    }

    /// The value of one series, exactly as written (`name{labels}`), or 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics(), series)
    }

    /// Waits (at most 10 s) until `series` reads `value`; returns the metrics text then.
    /// Requests are counted in Pingora's logging phase, just after the response is sent.
    pub fn wait_metric(&self, series: &str, value: f64) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.metrics();
            if metric_value(&m, series) == value || Instant::now() > deadline {
                return m;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Rewrites the config file (same placeholders) and sends SIGHUP.
    pub fn reload(&self, config: &str) {
        let config = config
            .replace(
                "@SOCK@",
                &self.dir.path().join("upgrade.sock").display().to_string(),
            )
            .replace("@PID@", &self.dir.path().join("pid").display().to_string())
            .replace("@DIR@", &self.dir.path().display().to_string());
        std::fs::write(&self.config_path, config).expect("write config");
        self.signal(libc::SIGHUP);
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    pub fn stdout_text(&self) -> String {
        self.stdout.lock().expect("lock").join("\n")
    }

    /// Stops with SIGINT (fast) and waits.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGINT);
        wait_exit(&mut self.child, Duration::from_secs(10))
    }
}

pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit in {within:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Parses one series value out of Prometheus text.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Header names, lower-cased.
    pub fn names(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect()
    }
}

/// Reads one response from a buffered reader; `head_only` for HEAD requests.
pub fn read_response(reader: &mut BufReader<TcpStream>, head_only: bool) -> Option<Resp> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if !head_only && status != 304 && status != 204 {
        if let Some(cl) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(cl, 0);
            reader.read_exact(&mut body).ok()?;
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).ok()?;
                let n = usize::from_str_radix(size.trim(), 16).ok()?;
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk).ok()?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            reader.read_to_end(&mut body).ok()?;
        }
    }
    Some(Resp {
        status,
        headers,
        body,
    })
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test.local\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("Connection: close\r\n\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    raw_request(addr, &bytes, method == "HEAD")
        .unwrap_or_else(|| panic!("no response to {method} {path}"))
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"")
}

/// Sends raw bytes, reads one response (None if refused, or closed without a response).
pub fn raw_request(addr: SocketAddr, bytes: &[u8], head_only: bool) -> Option<Resp> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(bytes).ok()?;
    let mut r = BufReader::new(s);
    read_response(&mut r, head_only)
}

/// Reserves a free loopback port (for tests that need a fixed address, like --upgrade).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Headers parsed out of a Seen, as a map of lower-case names.
pub fn header_map(seen: &Seen) -> HashMap<String, String> {
    seen.headers.iter().cloned().collect()
}

pub fn write_file(dir: &Path, rel: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, content).expect("write");
    p
}
pub mod django;
pub mod sink;

/// Writes a self-signed certificate for `localhost` as `cert.pem` and `key.pem` in `dir`;
/// returns the certificate PEM (for the client's trust store) and the `[tls]` config section.
pub fn self_signed_tls(dir: &Path, extra: &str) -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let cert_pem = cert.cert.pem();
    write_file(dir, "cert.pem", cert_pem.as_bytes());
    write_file(dir, "key.pem", cert.key_pair.serialize_pem().as_bytes());
    let section = format!(
        "[tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"{0}/cert.pem\"\nkey = \"{0}/key.pem\"\n{extra}",
        dir.display()
    );
    (cert_pem, section)
}

/// A blocking HTTPS client that trusts `cert_pem` and resolves `localhost` to `addr`.
pub fn https_client(cert_pem: &str, addr: SocketAddr, cookies: bool) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .resolve("localhost", addr)
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}
