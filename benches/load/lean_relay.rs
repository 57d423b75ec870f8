//! The floor: a minimal HTTP/1 relay on tokio, variant L of the load comparison.
//!
//! Not a proxy anyone should deploy. It handles exactly the benchmark's traffic: GET requests
//! without bodies, responses framed by Content-Length, one upstream connection per client
//! connection. It sets the same forwarded headers as nginx and authz-edge and drops the context
//! headers from responses, with none of the rest: no limits, pool, health checks, timeouts,
//! error pages or telemetry. It measures what a Rust proxy on tokio costs per request before any
//! framework, so the comparison can tell the framework's cost (Pingora's) from the language's,
//! the runtime's and the kernel's.
//!
//!   cargo build --release --example lean_relay
//!   target/release/examples/lean_relay LISTEN UPSTREAM

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads until `buf` holds a whole head; returns the head's length.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = memchr::memmem::find(buf, b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 8192];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn content_length(head: &[u8]) -> usize {
    head.split(|b| *b == b'\n')
        .find(|l| l.len() > 15 && l[..15].eq_ignore_ascii_case(b"content-length:"))
        .and_then(|l| std::str::from_utf8(&l[15..]).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn is_context(line: &[u8]) -> bool {
    let starts = |p: &[u8]| line.len() >= p.len() && line[..p.len()].eq_ignore_ascii_case(p);
    starts(b"x-authz-") || starts(b"x-app-release:")
}

async fn relay(mut client: TcpStream, upstream: String) {
    let _ = client.set_nodelay(true);
    let Ok(mut up) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = up.set_nodelay(true);
    let ip = client
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let (mut cbuf, mut ubuf, mut out) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let Some(head) = read_head(&mut client, &mut cbuf).await else {
            return;
        };
        out.clear();
        out.extend_from_slice(&cbuf[..head - 2]);
        for (name, value) in [
            ("X-Forwarded-For", ip.as_str()),
            ("X-Forwarded-Proto", "http"),
            ("X-Real-IP", ip.as_str()),
            ("X-Request-Id", "0123456789abcdef0123456789abcdef"),
        ] {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        cbuf.drain(..head);
        if up.write_all(&out).await.is_err() {
            return;
        }
        let Some(rhead) = read_head(&mut up, &mut ubuf).await else {
            return;
        };
        let end = rhead + content_length(&ubuf[..rhead]);
        while ubuf.len() < end {
            let mut chunk = [0u8; 8192];
            match up.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => ubuf.extend_from_slice(&chunk[..n]),
            }
        }
        out.clear();
        for line in ubuf[..rhead].split_inclusive(|b| *b == b'\n') {
            if !is_context(line) {
                out.extend_from_slice(line);
            }
        }
        out.extend_from_slice(&ubuf[rhead..end]);
        ubuf.drain(..end);
        if client.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1).cloned(), args.get(2).cloned()) else {
        eprintln!("usage: lean_relay LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(&listen).await.expect("bind LISTEN");
        loop {
            if let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone()));
            }
        }
    });
}
