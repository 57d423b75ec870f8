//! The real `authz-edge` process: started on 127.0.0.1:0 with a config, signalled, reloaded,
//! scraped, stopped.
#![allow(dead_code)]

use super::*;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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
///
/// One copy per checkout, replaced by each test process (written aside, then renamed, so a
/// process running the previous copy keeps it): a copy per process would leave 190 MiB in the
/// temp directory for every test binary of every run.
pub fn bin_for_others() -> &'static std::path::Path {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::PermissionsExt;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bin().hash(&mut h);
        let dir = std::env::temp_dir().join(format!("authz-edge-bin-{:016x}", h.finish()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let aside = dir.join(format!("authz-edge.{}", std::process::id()));
        std::fs::copy(bin(), &aside).expect("copy the binary");
        std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let copy = dir.join("authz-edge");
        std::fs::rename(&aside, &copy).expect("rename the copy");
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

    /// Waits until the admin listener and the proxy's listeners accept connections.
    pub fn wait_ready(&self) {
        super::poll::until_true("the proxy's listeners to accept", || {
            TcpStream::connect(self.admin).is_ok()
                && TcpStream::connect(self.http).is_ok()
                && self.https.is_none_or(|a| TcpStream::connect(a).is_ok())
        });
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

    /// Waits until `series` reads `value`; returns the metrics text then. Requests are
    /// counted in Pingora's logging phase, just after the response is sent.
    pub fn wait_metric(&self, series: &str, value: f64) -> String {
        super::poll::until(&format!("{series} = {value}"), || {
            let m = self.metrics();
            match metric_value(&m, series) {
                v if v == value => Ok(m),
                v => Err(v),
            }
        })
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

    /// Waits until the proxy's stderr holds `needle` (its lines reach the test through a
    /// reader thread, a little after the proxy writes them); returns the whole text then.
    pub fn wait_stderr(&self, needle: &str) -> String {
        super::poll::until(&format!("{needle:?} on stderr"), || {
            let text = self.stderr_text();
            if text.contains(needle) {
                Ok(text)
            } else {
                Err(text.lines().rev().take(5).collect::<Vec<_>>().join(" | "))
            }
        })
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
