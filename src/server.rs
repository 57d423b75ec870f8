//! Builds the Pingora server: listeners, the proxy app, the admin app and background services.

use crate::accept::connection::EdgeApp;
use crate::admin::Admin;
use crate::background::exit_on_panic::supervised;
use crate::background::health::HealthChecker;
use crate::background::sighup::Reloader;
use crate::background::spike_tick::DetectorService;
use crate::config::{Config, Process};
use crate::phases::EdgeProxy;
use crate::runtime::Shared;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// The addresses actually listened on (port 0 resolved to a free port).
#[derive(Debug, Clone)]
pub struct Bound {
    pub http: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
    pub admin: SocketAddr,
    /// The sockets bound to resolve `:0`, kept open until Pingora takes them (`build`), so
    /// that no other socket can take their ports in between.
    held: Arc<std::sync::Mutex<Vec<(SocketAddr, TcpListener)>>>,
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |addrs: &[SocketAddr]| {
            addrs
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "http={} https={} admin={}",
            list(&self.http),
            list(&self.https),
            self.admin
        )
    }
}

/// The backlog of a listener bound here, as Pingora's own (`LISTENER_BACKLOG`).
const BACKLOG: i32 = 65535;

/// Binds `addr` now, so that a port another process holds is an error at start, named with
/// its key, before anything is announced (Pingora would retry for 30 s, then fail in its
/// thread); `IP:0` becomes the free port the kernel gave. The socket is kept in `held` and
/// becomes the listener itself (`hand_over`). In an upgrade the old process's sockets are
/// taken over instead: only `:0` addresses are bound then.
fn bind_now(
    key: &str,
    addr: SocketAddr,
    upgrade: bool,
    held: &mut Vec<(SocketAddr, TcpListener)>,
) -> Result<SocketAddr, String> {
    if upgrade && addr.port() != 0 {
        return Ok(addr);
    }
    let l = TcpListener::bind(addr).map_err(|e| format!("{key}: cannot listen on {addr}: {e}"))?;
    // std listens with a backlog of 128; a listening socket takes a new backlog from listen().
    // SAFETY: a valid socket descriptor, owned by `l` for the call.
    unsafe {
        libc::listen(std::os::fd::AsRawFd::as_raw_fd(&l), BACKLOG);
    }
    let resolved = l
        .local_addr()
        .map_err(|e| format!("{key}: cannot listen on {addr}: {e}"))?;
    held.push((resolved, l));
    Ok(resolved)
}

/// Binds the listeners of the config (see `bind_now`), each error naming its key.
pub fn bind_plan(config: &Config, upgrade: bool) -> Result<Bound, String> {
    let mut held = Vec::new();
    let mut bind = |key: String, a: &SocketAddr| bind_now(&key, *a, upgrade, &mut held);
    let http = (config.server.listen.iter().enumerate())
        .map(|(i, a)| bind(format!("server.listen[{i}]"), a))
        .collect::<Result<_, _>>()?;
    let https = (config.tls.iter().flat_map(|t| t.listen.iter()).enumerate())
        .map(|(i, a)| bind(format!("tls.listen[{i}]"), a))
        .collect::<Result<_, _>>()?;
    let admin = bind("server.admin".to_string(), &config.server.admin)?;
    Ok(Bound {
        http,
        https,
        admin,
        held: Arc::new(std::sync::Mutex::new(held)),
    })
}

/// Gives the sockets bound at start to Pingora as they are, through its table of
/// listening sockets (which an upgrade fills with the old process's): it uses a socket found
/// there for its address instead of binding again.
fn hand_over(server: &Server, bound: &Bound) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    let held = std::mem::take(&mut *bound.held.lock().unwrap_or_else(|e| e.into_inner()));
    let fds = server.listen_fds();
    let mut fds = fds.lock();
    for (addr, listener) in held {
        listener.set_nonblocking(true)?;
        fds.add(addr.to_string(), listener.into_raw_fd());
    }
    Ok(())
}

/// Pingora's server settings from the process's.
fn server_conf(p: &Process) -> ServerConf {
    // Pingora waits out the grace period after it stops accepting, then gives in-flight
    // requests a last short while before the runtimes are torn down.
    ServerConf {
        threads: p.threads,
        grace_period_seconds: Some(p.grace_period.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: p.upgrade_sock.clone(),
        pid_file: p.pid_file.clone(),
        upstream_keepalive_pool_size: p.keepalive_pool,
        work_stealing: p.work_stealing,
        error_log: p.error_log.clone(),
        ..ServerConf::default()
    }
}

/// The socket buffers Pingora puts under each client connection. Its default read buffer is
/// 64 KiB per connection, held for as long as the connection lives: 3,000 idle keepalive
/// clients cost 86 KiB each (nginx: about 1 KiB). Every reader above it has a buffer of its
/// own (the head guard's, Pingora's HTTP/1 session's, rustls's), so none is needed here.
///
/// Writes: under TLS, Pingora's one-segment write buffer gathers rustls's records; on plain
/// HTTP/1 the relay writes each response whole, so there it would only cost 1.4 KiB per
/// connection, idle or not (`tls` false: none).
fn client_buffers(tls: bool) -> L4BufferSettings {
    let write = if tls {
        pingora::protocols::l4::stream::DEFAULT_L4_WRITE_BUFFER_SIZE
    } else {
        0
    };
    L4BufferSettings::new(0, write)
}

/// Prints `authz-edge listening http=… https=… admin=…` once every listener accepts
/// connections (Pingora binds them when the services start, after `build`), so that whoever
/// waits for the line can connect at once. Each is waited for: Pingora binds a service's
/// listeners one after another, and retries a port in use for up to 30 s, while the ones bound
/// before it already accept. (A port resolved from `:0` is no longer bound twice: its socket
/// is handed over, `hand_over`.)
struct Announce {
    bound: Bound,
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Announce {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        let addrs: Vec<&SocketAddr> = self
            .bound
            .http
            .iter()
            .chain(&self.bound.https)
            .chain(std::iter::once(&self.bound.admin))
            .collect();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        for addr in addrs {
            while tokio::net::TcpStream::connect(addr).await.is_err()
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        // And a SIGHUP sent from now on is a reload.
        while !self
            .shared
            .reload_ready
            .load(std::sync::atomic::Ordering::Acquire)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        println!("authz-edge listening {}", self.bound);
        ANNOUNCED.store(true, std::sync::atomic::Ordering::Release);
        // SAFETY: registers a plain function to run at exit; it only writes to a descriptor.
        unsafe {
            libc::atexit(say_stopped);
        }
    }
}

/// Whether `authz-edge listening` was printed: only then does the process say it stopped.
static ANNOUNCED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// At exit, after a `listening` line: `authz-edge stopped`, the last line of a run (SIGINT,
/// SIGTERM after its drain, or an upgrade handing over).
extern "C" fn say_stopped() {
    if ANNOUNCED.load(std::sync::atomic::Ordering::Acquire) {
        let line = b"authz-edge stopped\n";
        // SAFETY: writing a static buffer to standard output; nothing else runs at exit.
        unsafe {
            libc::write(1, line.as_ptr().cast(), line.len());
        }
    }
}

/// Assembles every service; the caller runs the returned server.
pub fn build(
    shared: Arc<Shared>,
    config: &Config,
    bound: &Bound,
    upgrade: bool,
    daemon: bool,
) -> Result<Server, String> {
    let opt = Opt {
        upgrade,
        daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&Process::of(config)));
    server.bootstrap();
    if !upgrade {
        hand_over(&server, bound).map_err(|e| format!("cannot listen: {e}"))?;
    }

    let proxy = pingora::proxy::http_proxy(
        &server.configuration,
        EdgeProxy {
            shared: shared.clone(),
        },
    );
    // One service for every client listener, plain and HTTPS: one runtime, so that the relay's
    // pooled upstream connections stay on the reactor that registered them (`accept::tls`).
    let tls = match &config.tls {
        Some(tls) if !bound.https.is_empty() => Some(crate::accept::tls::Listeners {
            acceptor: crate::accept::tls::acceptor(tls)?,
            addrs: bound.https.clone(),
        }),
        _ => None,
    };
    let app = EdgeApp {
        proxy: Arc::new(proxy),
        shared: shared.clone(),
        tls,
    };
    let mut edge = Service::new("authz-edge proxy".to_string(), app);
    for addr in &bound.http {
        let addr = addr.to_string();
        edge.add_listener(ListenerConfig::tcp(&addr).l4_buffer(client_buffers(false)));
    }
    for addr in &bound.https {
        let addr = addr.to_string();
        edge.add_listener(ListenerConfig::tcp(&addr).l4_buffer(client_buffers(true)));
    }
    let mut admin = Service::new(
        "authz-edge admin".to_string(),
        Admin {
            shared: shared.clone(),
        },
    );
    admin.add_tcp(&bound.admin.to_string());

    server.add_service(edge);
    server.add_service(admin);
    server.add_service(supervised(
        "config reload",
        Reloader {
            shared: shared.clone(),
        },
    ));
    server.add_service(supervised(
        "findings",
        crate::background::findings_tick::FindingsService {
            shared: shared.clone(),
        },
    ));
    server.add_service(supervised(
        "drain watch",
        crate::background::shutdown_watch::DrainWatch {
            shared: shared.clone(),
        },
    ));
    server.add_service(supervised(
        "upstream health",
        HealthChecker {
            shared: shared.clone(),
        },
    ));
    server.add_service(supervised(
        "spike detector",
        DetectorService {
            shared: shared.clone(),
        },
    ));
    server.add_service(supervised(
        "announce",
        Announce {
            bound: bound.clone(),
            shared: shared.clone(),
        },
    ));
    let writer = shared.sink_writer.lock().ok().and_then(|mut w| w.take());
    if let Some(writer) = writer {
        server.add_service(supervised("diagnostics sink", writer));
    }
    Ok(server)
}
