//! Fixtures: free ports, files, certificates, and the CI tools the tests run (promtool).
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

/// Reserves a free loopback port (for tests that need a fixed address, like --upgrade).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn write_file(dir: &Path, rel: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, content).expect("write");
    p
}
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
