//! A real Django app (tests/django) under gunicorn on 127.0.0.1:0, for end-to-end tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The venv Python with Django and gunicorn; `.ci/run` creates it.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("AUTHZ_EDGE_PYTHON") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/django/.venv/bin/python"
    ));
    assert!(
        p.exists(),
        "no Python venv at {}: run `bash .ci/run` (or see README, Tests) to create it",
        p.display()
    );
    p
}

pub fn app_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/django"))
}

/// Fixtures made by `manage.py e2e_setup`.
#[derive(Debug, Clone)]
pub struct Fixtures {
    pub alice: u64,
    pub bob: u64,
    pub token: String,
}

pub struct Django {
    pub addr: SocketAddr,
    pub child: Child,
    pub fixtures: Fixtures,
    pub static_root: PathBuf,
    pub dir: tempfile::TempDir,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The environment it runs in, for `manage`.
    env: Vec<(String, String)>,
}

fn manage(env: &[(String, String)], args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("manage.py")
        .args(args)
        .current_dir(app_dir())
        .envs(env.iter().cloned())
        .output()
        .expect("run manage.py");
    assert!(
        out.status.success(),
        "manage.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Django {
    /// Migrates a fresh database, makes fixtures, collects static files, starts gunicorn.
    pub fn start(companion: bool, release: Option<&str>) -> Django {
        let dir = tempfile::tempdir().expect("tmp");
        Django::start_with_db(dir, companion, release, true, &[])
    }

    /// A fresh app, with or without the companion, with `extra` in its environment
    /// (`PERMISSION_CACHE`, `ALLOW_INACTIVE`, `OBJECT_BACKEND`: see testproj/settings.py).
    pub fn start_env(companion: bool, release: Option<&str>, extra: &[(&str, &str)]) -> Django {
        let dir = tempfile::tempdir().expect("tmp");
        Django::start_with_db(dir, companion, release, true, extra)
    }

    /// Runs `manage.py ARGS` on this deployment's database and settings (`e2e_change`: a grant,
    /// a role change, made while it serves).
    pub fn manage(&self, args: &[&str]) -> String {
        manage(&self.env, args)
    }

    /// A fresh app started with `extra` in its environment (`AUTHZ_E2E_ONE_SYNC_WORKER`).
    pub fn start_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> Django {
        Django::start_with_db(dir, false, None, true, extra)
    }

    /// Starts another gunicorn on an existing database (a "deploy" of the same app).
    pub fn redeploy(other: &Django, companion: bool, release: Option<&str>) -> Django {
        Django::redeploy_with(other, companion, release, &[])
    }

    /// A deploy whose environment differs by `env` (`REPORTS_V2`, `APPROVE_PERMISSION`,
    /// `DJANGO_SECRET_KEY`): the migrations are not run, as a deploy that forgets them.
    pub fn redeploy_with(
        other: &Django,
        companion: bool,
        release: Option<&str>,
        env: &[(&str, &str)],
    ) -> Django {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::copy(
            other.dir.path().join("db.sqlite3"),
            dir.path().join("db.sqlite3"),
        )
        .expect("copy db");
        let mut d = Django::start_with_db(dir, companion, release, false, env);
        d.fixtures = other.fixtures.clone();
        d
    }

    fn start_with_db(
        dir: tempfile::TempDir,
        companion: bool,
        release: Option<&str>,
        setup: bool,
        extra: &[(&str, &str)],
    ) -> Django {
        let static_root = dir.path().join("static");
        let mut env = vec![
            (
                "DJANGO_DB_PATH".to_string(),
                dir.path().join("db.sqlite3").display().to_string(),
            ),
            ("STATIC_ROOT".to_string(), static_root.display().to_string()),
            (
                "AUTHZ_COMPANION".to_string(),
                if companion { "1" } else { "0" }.to_string(),
            ),
        ];
        if let Some(r) = release {
            env.push(("APP_RELEASE".to_string(), r.to_string()));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut fixtures = Fixtures {
            alice: 0,
            bob: 0,
            token: String::new(),
        };
        if setup {
            manage(&env, &["migrate", "--noinput", "-v", "0"]);
            let out = manage(&env, &["e2e_setup"]);
            let v: serde_json::Value = serde_json::from_str(out.trim()).expect("fixtures json");
            fixtures = Fixtures {
                alice: v["alice"].as_u64().expect("alice"),
                bob: v["bob"].as_u64().expect("bob"),
                token: v["token"].as_str().expect("token").to_string(),
            };
        }
        manage(&env, &["collectstatic", "--noinput", "-v", "0"]);
        // `AUTHZ_E2E_CONFINED=1`: gunicorn runs without CAP_DAC_OVERRIDE and
        // CAP_DAC_READ_SEARCH, so that root (the tests' user) obeys file modes like an app user
        // would, and a directory owned by another user raises PermissionError.
        let confined = extra.contains(&("AUTHZ_E2E_CONFINED", "1"));
        let mut command = if confined {
            let mut c = Command::new("setpriv");
            c.args(["--bounding-set", "-dac_override,-dac_read_search", "--"])
                .arg(python());
            c
        } else {
            Command::new(python())
        };
        // `AUTHZ_E2E_ONE_SYNC_WORKER=1`: gunicorn's default deployment, one sync worker (one
        // request at a time), the case its docs say needs a buffering proxy in front.
        let workers: &[&str] = if extra.contains(&("AUTHZ_E2E_ONE_SYNC_WORKER", "1")) {
            &["--workers", "1", "--worker-class", "sync"]
        } else {
            &["--workers", "2", "--threads", "4"]
        };
        let mut child = command
            .args(["-m", "gunicorn", "--bind", "127.0.0.1:0"])
            .args(workers)
            .arg("testproj.wsgi:application")
            .current_dir(app_dir())
            .envs(env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gunicorn");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Listening at: http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                l2.lock().expect("lock").push(line);
            }
        });
        let addr: SocketAddr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("gunicorn address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "gunicorn did not start: {}",
                    log.lock().expect("lock").join("\n")
                );
            }
        };
        super::poll::until_true("a gunicorn worker to answer /healthz", || {
            let healthz = b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
            std::net::TcpStream::connect(addr).is_ok()
                && super::raw_request(addr, healthz, false).is_some_and(|r| r.status == 200)
        });
        Django {
            addr,
            child,
            fixtures,
            static_root,
            dir,
            log,
            env,
        }
    }
}

impl Drop for Django {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of cookie `name` in a response's Set-Cookie headers.
pub fn set_cookie(r: &super::Resp, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            let first = v.split(';').next()?;
            let (k, val) = first.split_once('=')?;
            (k.trim() == name).then(|| val.trim().to_string())
        })
}

/// The csrfmiddlewaretoken hidden field of an HTML form.
pub fn form_token(html: &str) -> Option<String> {
    let i = html.find("name=\"csrfmiddlewaretoken\"")?;
    let rest = &html[i..];
    let v = rest.find("value=\"")? + 7;
    let end = rest[v..].find('"')?;
    Some(rest[v..v + end].to_string())
}

/// Logs `user` in through the proxy with Django's CSRF-protected form; returns the session id.
pub fn login(proxy: SocketAddr, user: &str, password: &str) -> String {
    let page = super::get(proxy, "/accounts/login/");
    let csrf = set_cookie(&page, "csrftoken").expect("csrftoken");
    let token = form_token(&page.text()).expect("token");
    let body = format!("username={user}&password={password}&csrfmiddlewaretoken={token}");
    let r = super::request(
        proxy,
        "POST",
        "/accounts/login/",
        &[
            ("Cookie", &format!("csrftoken={csrf}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://test.local"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 302, "login of {user} failed: {}", r.text());
    set_cookie(&r, "sessionid").expect("sessionid")
}

/// A request with a session cookie.
pub fn as_user(proxy: SocketAddr, method: &str, path: &str, session: &str) -> super::Resp {
    super::request(
        proxy,
        method,
        path,
        &[("Cookie", &format!("sessionid={session}"))],
        b"",
    )
}

/// The deploy that breaks a permission: steady traffic on release v1, a blue/green switch to
/// v2 (a new gunicorn on the same database, the proxy reloaded onto it), then everyone denied
/// on v2's new route `/reports/<int:pk>/approve/`, whose permission migration was not run.
pub struct DeployScenario {
    pub v1: Django,
    pub v2: Option<Django>,
    pub proxy: super::Proxy,
    pub alice: String,
    pub bob: String,
    config: Box<dyn Fn(SocketAddr) -> String>,
}

impl DeployScenario {
    /// Starts v1 and the proxy; `config` makes the proxy's config for an upstream address.
    pub fn start(config: impl Fn(SocketAddr) -> String + 'static) -> Self {
        Self::start_with(true, config)
    }

    /// Starts v1 with or without the companion.
    pub fn start_with(companion: bool, config: impl Fn(SocketAddr) -> String + 'static) -> Self {
        Self::start_env(companion, &[], config)
    }

    /// Starts v1 with `env` in its environment (`Django::start_env`).
    pub fn start_env(
        companion: bool,
        env: &[(&str, &str)],
        config: impl Fn(SocketAddr) -> String + 'static,
    ) -> Self {
        let v1 = Django::start_env(companion, Some("v1"), env);
        let proxy = super::Proxy::start(&config(v1.addr));
        let alice = login(proxy.http, "alice", "alice-pw");
        let bob = login(proxy.http, "bob", "bob-pw");
        DeployScenario {
            v1,
            v2: None,
            proxy,
            alice,
            bob,
            config: Box::new(config),
        }
    }

    /// Ordinary traffic for `d`: pages and exports, and now and then a 403 on export.
    pub fn steady(&self, d: Duration) {
        let p = self.proxy.http;
        let until = std::time::Instant::now() + d;
        let mut i = 0;
        while std::time::Instant::now() < until {
            assert_eq!(
                as_user(p, "GET", "/reports/1/export/", &self.alice).status,
                200
            );
            assert_eq!(as_user(p, "GET", "/", &self.bob).status, 200);
            if i % 10 == 0 {
                assert_eq!(
                    as_user(p, "GET", "/reports/1/export/", &self.bob).status,
                    403
                );
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts v2 (whose new permission's migration is not run) and reloads the proxy onto it;
    /// waits until v2 answers through the proxy.
    pub fn deploy(&mut self) {
        self.deploy_with(true, &[("REPORTS_V2", "1")]);
    }

    /// Starts v2 with `env` (see `Django::redeploy_with`) and reloads the proxy onto it.
    pub fn deploy_with(&mut self, companion: bool, env: &[(&str, &str)]) {
        let v2 = Django::redeploy_with(&self.v1, companion, Some("v2"), env);
        let generation = self.proxy.metric("authz_edge_config_generation");
        self.proxy.reload(&(self.config)(v2.addr));
        self.proxy
            .wait_metric("authz_edge_config_generation", generation + 1.0);
        assert_eq!(
            as_user(self.proxy.http, "GET", "/", &self.alice).status,
            200
        );
        self.v2 = Some(v2);
    }

    /// Everyone denied on the new route for `d`; returns how many 403s were sent.
    pub fn burst(&self, d: Duration) -> usize {
        self.burst_to(self.proxy.http, d)
    }

    /// `burst` through the proxy at `proxy` (another one, e.g. restarted, in front of v2).
    pub fn burst_to(&self, proxy: SocketAddr, d: Duration) -> usize {
        let until = std::time::Instant::now() + d;
        let mut n = 0;
        while std::time::Instant::now() < until {
            for s in [&self.alice, &self.bob] {
                let path = format!("/reports/{}/approve/", n % 3 + 1);
                assert_eq!(as_user(proxy, "GET", &path, s).status, 403);
                n += 1;
            }
        }
        n
    }
}
