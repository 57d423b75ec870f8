//! A real headless Chromium, driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands on its fd 3, answers and events on its fd 4, each a
//! JSON message ended by a NUL byte). No driver, no extra package: what the browser does with
//! cookies, forms, TLS and HTTP/2 is its own.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn chromium_bin() -> String {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(|p| p.to_string())
    .expect("chromium not found: the browser test needs it (`bash .ci/run` installs it)")
}

/// A browser with one page, attached.
pub struct Browser {
    child: Child,
    to: File,
    from: BufReader<File>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe");
    (fds[0], fds[1])
}

impl Browser {
    /// Starts headless Chromium that accepts the test's self-signed certificate.
    pub fn start() -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let (cmd_read, cmd_write) = pipe();
        let (resp_read, resp_write) = pipe();
        let mut command = Command::new(chromium_bin());
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--ignore-certificate-errors",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (dup2, close) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(cmd_read, 3) < 0 || libc::dup2(resp_write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for fd in [cmd_write, resp_read] {
                    libc::close(fd);
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn chromium");
        // SAFETY: the descriptors came from pipe(2) above and are owned here from now on.
        let (to, from) = unsafe {
            libc::close(cmd_read);
            libc::close(resp_write);
            (File::from_raw_fd(cmd_write), File::from_raw_fd(resp_read))
        };
        let mut b = Browser {
            child,
            to,
            from: BufReader::new(from),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call(
            None,
            "Target.createTarget",
            serde_json::json!({"url": "about:blank"}),
        );
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = b.call(
            None,
            "Target.attachToTarget",
            serde_json::json!({"targetId": target_id, "flatten": true}),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        b
    }

    /// Sends one command and returns its result (events in between are skipped).
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        match self.try_call(session, method, params) {
            Ok(v) => v,
            Err(e) => panic!("{method}: {e}"),
        }
    }

    fn try_call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = serde_json::json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = serde_json::Value::String(s.to_string());
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        loop {
            let mut raw = Vec::new();
            let n = self
                .from
                .read_until(0, &mut raw)
                .expect("read from chromium");
            assert!(n > 0, "chromium closed its pipe during {method}");
            raw.pop();
            let v: serde_json::Value = serde_json::from_slice(&raw).expect("chromium json");
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    return Err(e.to_string());
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expression: &str) -> serde_json::Value {
        match self.try_eval(expression) {
            Ok(v) => v,
            Err(e) => panic!("{expression}: {e}"),
        }
    }

    /// As `eval`; an error while the page navigates (its context destroyed) is returned.
    fn try_eval(&mut self, expression: &str) -> Result<serde_json::Value, String> {
        let session = self.session.clone();
        let r = self.try_call(
            Some(&session),
            "Runtime.evaluate",
            serde_json::json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        )?;
        match r.get("exceptionDetails") {
            Some(e) => Err(e.to_string()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// Goes to `url` and waits until a page at `path` has loaded.
    pub fn navigate(&mut self, url: &str, path: &str) {
        let session = self.session.clone();
        let r = self.call(
            Some(&session),
            "Page.navigate",
            serde_json::json!({"url": url}),
        );
        assert!(
            r.get("errorText").is_none(),
            "navigate {url}: {}",
            r["errorText"]
        );
        self.wait_for_page(path);
    }

    /// Waits until the page at `path` (a navigation the page started) has loaded.
    pub fn wait_for_page(&mut self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = "document.readyState + ' ' + location.pathname";
        loop {
            let state = self.try_eval(probe).unwrap_or_default();
            if state.as_str() == Some(&format!("complete {path}")) {
                return;
            }
            assert!(Instant::now() < deadline, "page {path} not loaded: {state}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
