//! nginx as the differential suites' reference: Debian's nginx 1.22, configured like
//! authz-edge's defaults, in front of a recording upstream.

use super::poll;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

pub struct Nginx {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

pub fn nginx_bin() -> String {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    found
        .expect("nginx not found: the differential suite needs it (`bash .ci/run` installs nginx-light)")
        .to_string()
}

/// nginx configured like authz-edge's defaults: the same head, URI and body caps, keepalive
/// to the upstream, the same forwarded headers, context headers hidden from clients.
pub fn start_nginx(upstream: SocketAddr) -> Nginx {
    start_nginx_with(upstream, "", "")
}

/// As `start_nginx`, with `listen_extra` after the listen address (`ssl http2`) and `server_extra`
/// in the server block (certificates).
pub fn start_nginx_with(upstream: SocketAddr, listen_extra: &str, server_extra: &str) -> Nginx {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let d = dir.path().display();
    let hide: String = [
        "X-Authz-User",
        "X-Authz-Session",
        "X-Authz-Route",
        "X-Authz-Permission",
        "X-Authz-Reason",
        "X-App-Release",
    ]
    .iter()
    .map(|h| format!("proxy_hide_header {h};\n"))
    .collect();
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/b; proxy_temp_path {d}/p;\n\
         fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
         client_max_body_size 10m; large_client_header_buffers 4 40k;\n\
         proxy_buffer_size 40k; proxy_buffers 8 40k;\n\
         upstream django {{ server {upstream}; keepalive 16; }}\n\
         server {{ listen 127.0.0.1:{port} {listen_extra};\n {server_extra}\n location / {{ proxy_pass http://django;\n\
         proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Request-Id $request_id;\n\
         {hide} }} }}\n}}\n"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).expect("conf");
    let child = Command::new(nginx_bin())
        .args([
            "-p",
            &d.to_string(),
            "-c",
            &path.display().to_string(),
            "-e",
        ])
        .arg(dir.path().join("error.log"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_listening(addr, "nginx");
    Nginx { child, addr, dir }
}

/// Waits until `what` accepts connections on `addr`.
pub fn wait_listening(addr: SocketAddr, what: &str) {
    poll::until_true(&format!("{what} to listen"), || {
        TcpStream::connect(addr).is_ok()
    });
}
