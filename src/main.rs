//! The `authz-edge` command: parse the CLI, load the config, add the services, run.

use authz_edge::response::file_access;
use authz_edge::runtime::Shared;
use authz_edge::telemetry::identity::HashKey;
use authz_edge::{config, server};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: measured faster than glibc's malloc for Pingora's many small allocations
/// (README, Performance). Without the feature, the system's malloc, for heap profilers.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "authz-edge",
    version,
    about = "Edge proxy for Django that watches 401/403s",
    after_help = "Signals:\n  \
        SIGHUP   reload the config (a bad one is refused; the running one stays)\n  \
        SIGTERM  graceful stop: stop accepting, finish in-flight requests within server.grace_period\n  \
        SIGINT   fast stop\n\n\
        Environment:\n  \
        AUTHZ_EDGE_HASH_KEY     the key of the user, session and token hashes (share it across a fleet)\n  \
        AUTHZ_EDGE_ADMIN_TOKEN  the admin listener's bearer token (wins over server.admin_token_file)\n  \
        RUST_LOG                the log filter, instead of the default (warnings from Pingora)\n\n\
        The book: docs/src/SUMMARY.md (mdbook build docs)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The config file (TOML).
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// Take the listening sockets over from the running instance (zero-downtime upgrade).
    #[arg(long, short = 'u')]
    upgrade: bool,
    /// Run in the background.
    #[arg(long, short = 'd')]
    daemon: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config, print a summary, and exit.
    Check,
    /// Print the keyed hash of VALUE (with $AUTHZ_EDGE_HASH_KEY), to find one user's, session's
    /// or token's records in the metrics, the access log and the sink.
    Hash {
        /// What VALUE is: the hash of a user id and of a session id differ for the same text.
        #[arg(value_parser = ["user", "session", "token"])]
        kind: String,
        value: String,
    },
    /// Convert an nginx configuration (following `include`) into an authz-edge config, with a
    /// report on stderr of each directive's fate. Exit 0: all converted or ignored; 3: some
    /// partial or unsupported (the rest is written); 2: the file cannot be parsed.
    ImportNginx {
        file: PathBuf,
        /// Write the config here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `import-nginx`: the config to stdout or `out`, the report to stderr.
fn import_nginx(file: &std::path::Path, out: Option<&std::path::Path>) -> ExitCode {
    let import = match authz_edge::import_nginx::import(file) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("authz-edge: import-nginx: {e}");
            return ExitCode::from(2);
        }
    };
    for line in &import.report {
        eprintln!("{line}");
    }
    let [converted, partial, unsupported, ignored] = import.counts;
    eprintln!(
        "authz-edge: {converted} converted, {partial} partial, {unsupported} unsupported, {ignored} ignored"
    );
    match out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &import.config) {
                eprintln!(
                    "authz-edge: import-nginx: cannot write {}: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        }
        None => print!("{}", import.config),
    }
    ExitCode::from(import.code)
}

fn init_logging(access: &config::AccessLog, daemon: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let errors = tracing_subscriber::fmt::layer()
        .with_writer(authz_edge::diagnostics::log_sanitize::Sanitized(
            std::io::stderr,
        ))
        // Colours only on a terminal: a daemon's stderr becomes server.error_log.
        .with_ansi(!daemon && std::io::stderr().is_terminal())
        .with_target(false)
        // Filters that state their most verbose level, so that tracing disables every
        // callsite below it once (h2's and Pingora's trace spans cost about 15% of CPU under
        // HTTP/2 load when each is decided at run time, as a closure filter makes them).
        .with_filter({
            // Pingora's own INFO lines (a dozen at start, "Waiting for runtimes to exit!" per
            // thread at stop) and its health-check warnings (a debug dump of the backend) are
            // left out by default; authz-edge says the same in a line of its own.
            let quiet = "info,pingora_core=warn,pingora_proxy=warn,pingora_load_balancing=error";
            let f = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(quiet));
            match "access=off".parse() {
                Ok(d) => f.add_directive(d),
                Err(_) => f,
            }
        });
    // Always installed: `access_log.enabled` gates each line, and a reload may turn it on.
    if let Err(e) = authz_edge::diagnostics::access_log::set_target(access.path.as_deref()) {
        eprintln!("{e}; writing the access log to stdout");
    }
    let access_layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(authz_edge::diagnostics::access_log::MakeTarget)
        .with_filter(Targets::new().with_target("access", LevelFilter::INFO));
    let _ = tracing_subscriber::registry()
        .with(errors)
        .with(access_layer)
        .try_init();
    // Pingora logs through the `log` crate; without a cap every debug!/trace! call is handed to
    // the tracing bridge only to be filtered there (about 1% of CPU under load).
    let level = match std::env::var("RUST_LOG").ok().as_deref() {
        Some(v) if v.contains("trace") => log::LevelFilter::Trace,
        Some(v) if v.contains("debug") => log::LevelFilter::Debug,
        _ => log::LevelFilter::Info,
    };
    log::set_max_level(level);
}

/// Prints the file-permission problems of `c` (one line each, errors to stderr) and says
/// whether any of them stops the proxy from starting.
fn permission_errors(c: &config::Config) -> bool {
    let problems = file_access::check(c);
    for p in &problems {
        match p.severity {
            file_access::Severity::Error => eprintln!("{}", p.line),
            file_access::Severity::Warning => println!("{}", p.line),
        }
    }
    problems
        .iter()
        .any(|p| p.severity == file_access::Severity::Error)
}

fn check(path: &std::path::Path) -> ExitCode {
    // The same compile as at start and on reload, with metrics of its own.
    let metrics = authz_edge::telemetry::metrics::Metrics::new(1, 1);
    match authz_edge::runtime::compile(path, 1, &metrics) {
        Ok((c, rt)) => {
            if permission_errors(&c) {
                eprintln!(
                    "{}: the proxy's user cannot use the paths above",
                    path.display()
                );
                return ExitCode::from(2);
            }
            println!("{}: ok", path.display());
            println!(
                "listeners: http {}; https {}; admin {}",
                addresses(&c.server.listen),
                c.tls.as_ref().map_or("-".into(), |t| addresses(&t.listen)),
                c.server.admin
            );
            let hc = c.upstream.health_check.as_ref().map_or(
                format!(
                    "default TCP connect check every {:?}",
                    authz_edge::upstream::TCP_CHECK_INTERVAL
                ),
                |h| format!("health check GET {} every {:?}", h.path, h.interval.0),
            );
            let servers: Vec<String> = c.upstream.servers.iter().map(|s| s.to_string()).collect();
            println!("upstreams: {} ({hc})", servers.join(", "));
            for (name, u) in &c.upstreams {
                let servers: Vec<String> = u.servers.iter().map(|s| s.to_string()).collect();
                println!("upstreams.{name}: {}", servers.join(", "));
            }
            if !c.sites.is_empty() || !c.locations.is_empty() {
                let sites = &rt.sites.list;
                let locations: usize = sites.iter().map(|s| s.locations.len()).sum();
                let regexes: usize = sites.iter().map(|s| s.regex_count()).sum();
                println!(
                    "sites: {} ({locations} locations, {regexes} of them regexes)",
                    sites.len()
                );
            }
            println!("routes: {} configured", c.routes.len());
            for r in &c.routes {
                println!("  {}", r.pattern.text);
            }
            for s in &c.statics {
                println!("static: {} -> {}", s.prefix, s.root);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `authz-edge hash user|session|token VALUE`: the same keyed hash the proxy records.
fn hash(kind: &str, value: &str) -> ExitCode {
    if std::env::var_os("AUTHZ_EDGE_HASH_KEY").is_none() {
        eprintln!(
            "authz-edge hash: AUTHZ_EDGE_HASH_KEY is not set: give it the proxy's key. (A proxy \
             started without one hashes with a random key of its own, which no one can match.)"
        );
        return ExitCode::from(2);
    }
    let key = HashKey::from_env();
    println!("{}", key.hash(kind, value.as_bytes()));
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    // A SIGHUP before the reload service listens (a reload sent during start-up) must not end
    // the process, which is SIGHUP's default action; the service takes it over.
    // SAFETY: setting a signal's disposition to ignore, before any thread starts.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    if let Some(Command::Hash { kind, value }) = &cli.command {
        return hash(kind, value);
    }
    if let Some(Command::ImportNginx { file, out }) = &cli.command {
        return import_nginx(file, out.as_deref());
    }
    let Some(path) = cli.config.clone() else {
        eprintln!("authz-edge: --config PATH is required (try --config config/authz-edge.toml)");
        return ExitCode::from(2);
    };
    if let Some(Command::Check) = cli.command {
        return check(&path);
    }
    let config = match authz_edge::runtime::check(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // Paths the proxy's user cannot use are reported before anything starts (warnings go on).
    if permission_errors(&config) {
        eprintln!("authz-edge: not starting: the proxy's user cannot use the paths above");
        return ExitCode::from(2);
    }
    init_logging(&config.access_log, cli.daemon);
    let key = HashKey::from_env();
    if key.ephemeral {
        tracing::warn!("AUTHZ_EDGE_HASH_KEY is not set: using a random key, so user and session hashes change on restart");
    }
    let bound = match server::bind_plan(&config, cli.upgrade) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("authz-edge: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    // The file is read once: this config is the one that runs (compiled as `check` does).
    let shared = match Shared::start(&path, &config, key) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(port) = bound.https.first() {
        shared
            .bound_https_port
            .store(port.port(), std::sync::atomic::Ordering::Relaxed);
    }
    let srv = match server::build(shared, &config, &bound, cli.upgrade, cli.daemon) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("authz-edge: {e}");
            return ExitCode::from(1);
        }
    };
    // `authz-edge listening …` is printed by the `announce` service once the sockets accept.
    srv.run_forever()
}

/// A list of listener addresses, or `-` for none.
fn addresses(list: &[std::net::SocketAddr]) -> String {
    match list.is_empty() {
        true => "-".into(),
        false => list
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}
