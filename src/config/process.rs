//! The settings fixed for the life of the process: the listeners, Pingora's server settings
//! (threads, grace period, upgrade socket, pid file, work stealing, error log, its own pool),
//! the TLS certificate and the sink's queue. Typed once from the file; a reload that changes
//! one applies everything else and names these (`Process::changed`).

use super::Config;
use std::net::SocketAddr;
use std::time::Duration;

/// What the process is started with and keeps until it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    /// The certificate and key files, with `[tls]`.
    pub tls_files: Option<(String, String)>,
    pub admin: SocketAddr,
    pub threads: usize,
    pub grace_period: Duration,
    pub upgrade_sock: String,
    pub pid_file: String,
    pub work_stealing: bool,
    pub error_log: Option<String>,
    /// The size of Pingora's own upstream pool (upgrades only); the relay's pool follows a
    /// reload, so it is not among the keys of `changed`.
    pub keepalive_pool: usize,
    pub sink_queue: usize,
}

impl Process {
    pub fn of(c: &Config) -> Process {
        let s = &c.server;
        Process {
            listen: s.listen.clone(),
            tls_listen: c
                .tls
                .iter()
                .flat_map(|t| t.listen.iter().copied())
                .collect(),
            tls_files: c.tls.as_ref().map(|t| (t.cert.clone(), t.key.clone())),
            admin: s.admin,
            threads: s.threads,
            grace_period: s.grace_period.0,
            upgrade_sock: s.upgrade_sock.clone(),
            pid_file: s.pid_file.clone(),
            work_stealing: s.work_stealing,
            error_log: s.error_log.clone(),
            keepalive_pool: c.upstream.keepalive_pool,
            sink_queue: c.sink.queue,
        }
    }

    /// Each setting a reload cannot change, by its key as the file names it, and whether `next`
    /// changes it. `p.changed(p)` lists every key, none changed.
    pub fn changed(&self, next: &Process) -> [(&'static str, bool); 12] {
        let (a, b) = (self, next);
        let tls = |p: &Process| p.tls_files.clone().unzip();
        let ((cert_a, key_a), (cert_b, key_b)) = (tls(a), tls(b));
        [
            ("server.listen", a.listen != b.listen),
            ("server.admin", a.admin != b.admin),
            ("server.threads", a.threads != b.threads),
            ("server.grace_period", a.grace_period != b.grace_period),
            ("server.upgrade_sock", a.upgrade_sock != b.upgrade_sock),
            ("server.pid_file", a.pid_file != b.pid_file),
            ("server.work_stealing", a.work_stealing != b.work_stealing),
            ("server.error_log", a.error_log != b.error_log),
            ("tls.listen", a.tls_listen != b.tls_listen),
            ("tls.cert", cert_a != cert_b),
            ("tls.key", key_a != key_b),
            ("sink.queue", a.sink_queue != b.sink_queue),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fixed_key_is_told_apart() {
        let base = "[upstream]\nservers = [\"127.0.0.1:8000\"]\n";
        let a = Process::of(&crate::config::parse(base).expect("parses"));
        let b = Process::of(
            &crate::config::parse(&format!(
                "[server]\nthreads = 3\nlisten = [\"127.0.0.1:8081\"]\n{base}[sink]\nqueue = 7\n"
            ))
            .expect("parses"),
        );
        let changed: Vec<&str> = a
            .changed(&b)
            .iter()
            .filter(|(_, c)| *c)
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(changed, ["server.listen", "server.threads", "sink.queue"]);
        assert!(a.changed(&a).iter().all(|(_, c)| !c));
    }
}
