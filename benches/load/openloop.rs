//! Open-loop load for the comparison's p99: requests leave on a fixed schedule whatever the
//! responses do, and a request that had to wait for its connection counts its latency from its
//! intended send time, so a stall shows up in the tail instead of slowing the load (wrk2's
//! correction for coordinated omission).
//!
//!   cargo build --release --example openloop
//!   target/release/examples/openloop ADDR RATE SECONDS CONNECTIONS
//!
//! The request mix is `mix.lua`'s: every tenth request gets a 403 with the context headers.
//! Prints one JSON line: scheduled, completed, errors, and latency percentiles in ms.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};

/// The headers a browser sends to a Django site, as in `mix.lua`.
const BROWSER: &str = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n\
    Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
    Accept-Language: en-GB,en;q=0.9\r\n\
    Accept-Encoding: gzip, deflate, br\r\n\
    Referer: https://shop.example.com/reports/\r\n\
    Upgrade-Insecure-Requests: 1\r\n\
    Sec-Fetch-Dest: document\r\n\
    Sec-Fetch-Mode: navigate\r\n\
    Sec-Fetch-Site: same-origin\r\n";

/// One request's path and headers, as `mix.lua` makes them.
fn request(n: u64) -> String {
    let path = if n.is_multiple_of(10) {
        format!("/reports/{}/approve/", n % 997)
    } else {
        format!("/items/{}/", n % 997)
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{BROWSER}Cookie: sessionid=s{}; csrftoken=ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\r\n\r\n",
        n % 5000
    )
}

/// Reads one response with a Content-Length body; false if the connection failed.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let Some(length) = length else {
                return false;
            };
            while buf.len() < end + 4 + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return true;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

struct Outcome {
    latencies_us: Vec<u64>,
    scheduled: u64,
    errors: u64,
}

/// One connection's share of the schedule: request k of connection c is due at
/// `start + (k * conns + c) / rate`.
async fn connection(
    addr: String,
    c: u64,
    conns: u64,
    rate: f64,
    start: Instant,
    end: Instant,
) -> Outcome {
    let mut out = Outcome {
        latencies_us: Vec::new(),
        scheduled: 0,
        errors: 0,
    };
    let mut stream = None;
    let mut buf = Vec::with_capacity(4096);
    let mut busy_until = start;
    for k in 0.. {
        let n = k * conns + c;
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        if due >= end {
            break;
        }
        out.scheduled += 1;
        sleep_until(due).await;
        // Latency counts from the due time when this connection was still busy then (the wait
        // is the server's doing); otherwise from the actual send, so that the timer's own
        // millisecond granularity is not charged to the server.
        let since = if busy_until > due {
            due
        } else {
            Instant::now()
        };
        if stream.is_none() {
            stream = TcpStream::connect(&addr).await.ok();
            if let Some(s) = &stream {
                let _ = s.set_nodelay(true);
            }
        }
        let Some(s) = stream.as_mut() else {
            out.errors += 1;
            continue;
        };
        let ok = timeout(Duration::from_secs(5), async {
            s.write_all(request(n).as_bytes()).await.is_ok() && read_response(s, &mut buf).await
        })
        .await
        .unwrap_or(false);
        busy_until = Instant::now();
        if ok {
            out.latencies_us.push(since.elapsed().as_micros() as u64);
        } else {
            out.errors += 1;
            stream = None;
        }
    }
    out
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(rate), Some(seconds), Some(conns)) = (
        args.get(1).cloned(),
        args.get(2).and_then(|a| a.parse::<f64>().ok()),
        args.get(3).and_then(|a| a.parse::<u64>().ok()),
        args.get(4).and_then(|a| a.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: openloop ADDR RATE SECONDS CONNECTIONS");
        std::process::exit(2);
    };
    if rate.is_nan() || rate <= 0.0 || seconds == 0 || seconds > 60 || conns == 0 {
        eprintln!("openloop: need RATE > 0, 0 < SECONDS <= 60, CONNECTIONS > 0");
        std::process::exit(2);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..conns)
        .map(|c| tokio::spawn(connection(addr.clone(), c, conns, rate, start, end)))
        .collect();
    let mut latencies = Vec::new();
    let (mut scheduled, mut errors) = (0, 0);
    for t in tasks {
        if let Ok(o) = t.await {
            latencies.extend(o.latencies_us);
            scheduled += o.scheduled;
            errors += o.errors;
        }
    }
    latencies.sort_unstable();
    println!(
        "{{\"rate\": {rate}, \"seconds\": {seconds}, \"scheduled\": {scheduled}, \"completed\": {}, \"errors\": {errors}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"p999_ms\": {:.3}, \"max_ms\": {:.3}}}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        percentile(&latencies, 1.0),
    );
}
