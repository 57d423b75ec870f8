//! Denials and the file sink, shared by the sampler tests and the fault suite: an upstream that
//! denies with the companion's headers, a file sink config, and waiting for what it writes.

use super::*;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Django denying everything on /deny/, with the companion's headers; 200 elsewhere.
pub fn denier() -> Upstream {
    Upstream::start(|s| {
        if s.path.starts_with("/deny/") {
            Reply::new(403, "<h1>Denied</h1> session CANARYSESSION99 token <input name=\"csrfmiddlewaretoken\" value=\"CANARYFORMTOKEN\">")
                .header("X-Authz-Kind", "permission")
                .header("X-Authz-User", "user-4242")
                .header("X-Authz-Permission", "reports.export_report")
                .header("X-Authz-Route", "/deny/<int:pk>/")
                .header("X-App-Release", "v7")
        } else {
            Reply::new(200, "ok")
        }
    })
}

pub fn sink_config(path: &str, extra: &str) -> String {
    format!("[sink]\ntype = \"file\"\npath = \"{path}\"\nflush_interval = \"100ms\"\n{extra}")
}

pub fn with_sink(up: &Upstream, sink: &str, extra: &str) -> String {
    config_for(&[up.addr], extra).replace("[sink]\ntype = \"none\"\n", sink)
}

pub fn lines_of(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn denied_request(addr: std::net::SocketAddr, i: usize) -> Resp {
    request(
        addr,
        "GET",
        &format!("/deny/{i}/?next=/secret/&token=QUERYTOKEN{i}"),
        &[
            (
                "Cookie",
                "sessionid=CANARYSESSION99; csrftoken=CANARYCSRF01",
            ),
            ("Authorization", "Bearer CANARYBEARER55"),
            ("Referer", "https://shop.example/cart/?coupon=REFERERSECRET"),
            ("User-Agent", "pytest-agent"),
        ],
        b"",
    )
}

/// Keepalive denials on one connection; returns each request's latency.
pub fn timed_denials(addr: std::net::SocketAddr, n: usize) -> Vec<Duration> {
    let s = TcpStream::connect(addr).expect("connect");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    (0..n)
        .map(|i| {
            let t = Instant::now();
            w.write_all(format!("GET /deny/{i}/ HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
                .expect("write");
            let resp = read_response(&mut r, false).expect("response");
            assert_eq!(resp.status, 403);
            t.elapsed()
        })
        .collect()
}

/// Sets the file-size limit of process `pid` (`None`: no limit), as a disk that fills or
/// empties would.
pub fn file_size_limit(pid: i32, bytes: Option<u64>) {
    let lim = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `lim` lives across the call; the old limit is not asked for.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}
