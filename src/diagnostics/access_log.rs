//! The access log: one JSON line per request through `tracing` (target `access`), identities hashed.
//!
//! Its layer is always installed; `access_log.enabled` (read per request from the running
//! config) says whether lines are emitted, and `set_target` points them at a file or standard
//! output, so that a reload can turn the log on, off or elsewhere.

use crate::telemetry::observed::Observed;
use arc_swap::ArcSwapOption;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The open access-log file; `None`: standard output.
static TARGET: ArcSwapOption<Mutex<std::fs::File>> = ArcSwapOption::const_empty();
/// The path `TARGET` was opened from, to reopen only on a change.
static TARGET_PATH: Mutex<Option<String>> = Mutex::new(None);

/// Points the access log at `path` (appending), or at standard output.
pub fn set_target(path: Option<&str>) -> Result<(), String> {
    let mut current = crate::sync::lock(&TARGET_PATH);
    if current.as_deref() == path && (path.is_none() || TARGET.load().is_some()) {
        return Ok(());
    }
    match path {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("access_log.path {p}: {e}"))?;
            TARGET.store(Some(Arc::new(Mutex::new(f))));
        }
        None => TARGET.store(None),
    }
    *current = path.map(str::to_string);
    Ok(())
}

/// The writer of the access-log layer: each line goes to the current target.
#[derive(Clone, Copy, Default)]
pub struct MakeTarget;

/// One line's writer.
pub struct Line(Option<Arc<Mutex<std::fs::File>>>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0 {
            Some(f) => crate::sync::lock(f).write(buf),
            None => std::io::stdout().lock().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &self.0 {
            Some(_) => Ok(()),
            None => std::io::stdout().flush(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MakeTarget {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(TARGET.load_full())
    }
}

/// What the access log says about one finished request.
pub struct Entry<'a> {
    pub method: &'a str,
    /// The path without the query.
    pub path: &'a str,
    pub client: Option<IpAddr>,
    pub request_id: &'a str,
    pub obs: &'a Observed,
    pub route: &'a str,
    pub status: u16,
    pub seconds: f64,
}

/// Emits the access-log line for a finished request.
pub fn write(e: Entry<'_>) {
    let Entry {
        method,
        path,
        client,
        request_id,
        obs,
        route,
        status,
        seconds,
    } = e;
    let client = client.map(|ip| ip.to_string()).unwrap_or_default();
    let denial = obs.denial.as_deref();
    let user = denial.and_then(|d| d.user).map(|h| h.to_string());
    let session_hash = denial.and_then(|d| d.session).map(|h| h.to_string());
    let kind = denial.map(|d| d.kind.label());
    tracing::info!(
        target: "access",
        request_id = %request_id,
        method,
        // Normalised, without the query: paths and queries can carry reset tokens and keys.
        path = %crate::rules::routes::with_normalised(path, str::to_string),
        route,
        status,
        duration_ms = (seconds * 1000.0),
        client = %client,
        user = user.as_deref(),
        session = session_hash.as_deref(),
        kind,
    );
}
