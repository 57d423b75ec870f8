//! The diagnostics sink: a bounded queue filled with `try_send` (a full queue drops the newest
//! record and counts it, never waits) and a background writer (file, HTTP, stdout).
//!
//! A reload may change everything but the queue's size live (`Sink::reconfigure`): the writer
//! sees the new config before its next batch, flushes and closes the old output and opens the
//! new one; `type = "none"` stops offering records.

mod file;
mod http;
pub mod record;

use crate::config::{Sink as SinkConfig, SinkType};
use crate::telemetry::metrics::Metrics;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::{IntCounter, IntGauge};
pub use record::{Record, SampleRecord, SpikeRecord};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Counters of what happened to records.
#[derive(Clone)]
pub struct Outcomes {
    pub written: IntCounter,
    pub rate_limited: IntCounter,
    pub queue_full: IntCounter,
    pub sink_error: IntCounter,
    /// Records found torn at the end of the file (a crash, a full disk) and ended.
    pub torn: IntCounter,
    pub depth: IntGauge,
}

impl Outcomes {
    pub fn new(m: &Metrics) -> Self {
        Outcomes {
            written: m.samples.with_label_values(&["written"]),
            rate_limited: m.samples.with_label_values(&["rate_limited"]),
            queue_full: m.samples.with_label_values(&["queue_full"]),
            sink_error: m.samples.with_label_values(&["sink_error"]),
            torn: m.samples.with_label_values(&["torn"]),
            depth: m.sink_queue_depth.clone(),
        }
    }
}

/// The request-side end of the sink.
pub struct Sink {
    tx: mpsc::Sender<Record>,
    /// `sink.type` is not `none`.
    enabled: AtomicBool,
    /// The config the writer follows; replaced by a reload.
    config: Arc<ArcSwap<SinkConfig>>,
    pub outcomes: Outcomes,
    /// Requests that may still offer a record (see [`Sink::request`]).
    in_flight: Arc<AtomicUsize>,
}

/// Held by a request from its start until its logging phase is over; while any is held at
/// shutdown, the writer keeps receiving instead of closing the queue.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl Sink {
    /// Whether records are wanted at all (`sink.type = "none"` wants none).
    /// Marks a request in flight until the returned guard is dropped.
    pub fn request(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.in_flight.clone())
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Takes a reloaded `[sink]`: the writer switches outputs before its next batch.
    pub fn reconfigure(&self, config: &SinkConfig) {
        self.config.store(Arc::new(config.clone()));
        self.enabled
            .store(config.kind != SinkType::None, Ordering::Relaxed);
    }

    /// Whether the queue has room now; a full queue makes building a record pointless.
    pub fn has_room(&self) -> bool {
        self.enabled() && self.tx.capacity() > 0
    }

    /// Queues a record without waiting; a full queue drops it (drop newest) and counts.
    pub fn offer(&self, record: Record) {
        if !self.enabled() {
            return;
        }
        let tx = &self.tx;
        match tx.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.outcomes.queue_full.inc(),
            Err(mpsc::error::TrySendError::Closed(_)) => self.outcomes.sink_error.inc(),
        }
        self.outcomes
            .depth
            .set((tx.max_capacity() - tx.capacity()) as i64);
    }
}

/// Where records are written.
enum Output {
    File(file::FileOutput),
    Http(http::HttpOutput),
    Stdout,
}

/// The background end: drains the queue into the output.
pub struct SinkWriter {
    rx: Mutex<Option<mpsc::Receiver<Record>>>,
    in_flight: Arc<AtomicUsize>,
    config: Arc<ArcSwap<SinkConfig>>,
    outcomes: Outcomes,
    grace: Duration,
}

/// Builds both ends from the config. The writer runs whatever the type, so that a reload can
/// turn the sink on.
pub fn build(config: &SinkConfig, metrics: &Metrics, grace: Duration) -> (Sink, SinkWriter) {
    let outcomes = Outcomes::new(metrics);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let shared_config = Arc::new(ArcSwap::from_pointee(config.clone()));
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let writer = SinkWriter {
        rx: Mutex::new(Some(rx)),
        in_flight: in_flight.clone(),
        config: shared_config.clone(),
        outcomes: outcomes.clone(),
        grace,
    };
    let sink = Sink {
        tx,
        enabled: AtomicBool::new(config.kind != SinkType::None),
        config: shared_config,
        outcomes,
        in_flight,
    };
    (sink, writer)
}

/// The output a config asks for; `None` for `type = "none"`.
fn open(config: &SinkConfig) -> Option<Output> {
    match config.kind {
        SinkType::None => None,
        SinkType::Http => Some(Output::Http(http::HttpOutput::new(config))),
        SinkType::Stdout => Some(Output::Stdout),
        SinkType::File => Some(Output::File(file::FileOutput::new(config))),
    }
}

impl SinkWriter {
    /// Switches to the config a reload stored, if it changed: the old output is flushed and
    /// closed first.
    fn follow(&self, current: &mut Arc<SinkConfig>, out: &mut Option<Output>) {
        let latest = self.config.load_full();
        if Arc::ptr_eq(current, &latest) {
            return;
        }
        if let Some(o) = out.as_mut() {
            Self::flush(o);
        }
        *out = open(&latest);
        tracing::info!(kind = ?latest.kind, "diagnostics sink reconfigured");
        *current = latest;
    }

    async fn write(
        &self,
        out: &mut Option<Output>,
        batch: Vec<Record>,
        shutdown: Option<&ShutdownWatch>,
    ) {
        let n = batch.len() as u64;
        let Some(out) = out.as_mut() else {
            // Queued before a reload turned the sink off.
            self.outcomes.sink_error.inc_by(n);
            return;
        };
        let lines: Vec<String> = batch
            .iter()
            .filter_map(|r| serde_json::to_string(r).ok())
            .collect();
        let ok = match out {
            Output::File(f) => {
                // Counted line by line: only whole lines are written.
                let w = f.write_lines(&lines);
                self.outcomes.written.inc_by(w.whole);
                self.outcomes.sink_error.inc_by(n - w.whole);
                self.outcomes.torn.inc_by(w.torn);
                return;
            }
            Output::Http(h) => h.post(&lines, shutdown).await,
            Output::Stdout => {
                use std::io::Write;
                let mut so = std::io::stdout().lock();
                lines.iter().all(|l| writeln!(so, "{l}").is_ok())
            }
        };
        if ok {
            self.outcomes.written.inc_by(n);
        } else {
            self.outcomes.sink_error.inc_by(n);
        }
    }

    fn flush(out: &mut Output) {
        if let Output::File(f) = out {
            f.flush_and_sync();
        }
    }
}

/// Takes what is queued now, up to `max`, after `first`.
fn gather(rx: &mut mpsc::Receiver<Record>, first: Record, max: usize) -> Vec<Record> {
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
    batch
}

#[async_trait]
impl BackgroundService for SinkWriter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut g| g.take()) else {
            return;
        };
        let mut current = self.config.load_full();
        let mut out = open(&current);
        let mut flush_tick = tokio::time::interval(current.flush_interval.0);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                got = rx.recv() => {
                    let Some(first) = got else { break };
                    let before = current.flush_interval;
                    self.follow(&mut current, &mut out);
                    if current.flush_interval != before {
                        flush_tick = tokio::time::interval(current.flush_interval.0);
                    }
                    let batch_max = current.batch_max.max(1);
                    if let Some(Output::Http(_)) = out {
                        // Let a batch fill for up to batch_age before posting.
                        let deadline = tokio::time::Instant::now() + current.batch_age.0;
                        let mut batch = vec![first];
                        while batch.len() < batch_max {
                            match tokio::time::timeout_at(deadline, rx.recv()).await {
                                Ok(Some(r)) => batch.push(r),
                                _ => break,
                            }
                        }
                        self.write(&mut out, batch, Some(&shutdown)).await;
                    } else {
                        let batch = gather(&mut rx, first, batch_max);
                        self.write(&mut out, batch, Some(&shutdown)).await;
                    }
                    self.outcomes.depth.set(rx.len() as i64);
                }
                _ = flush_tick.tick() => {
                    self.follow(&mut current, &mut out);
                    if let Some(o) = out.as_mut() {
                        Self::flush(o);
                    }
                }
            }
        }
        let batch_max = current.batch_max.max(1);
        // Shutdown: requests still in flight (the grace period lets them finish) may offer
        // records until their logging phase is over; keep writing until none is left, then
        // close the queue and drain it, all within the grace period, then flush.
        let deadline = tokio::time::Instant::now() + self.grace;
        while self.in_flight.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            if let Ok(Some(first)) =
                tokio::time::timeout(Duration::from_millis(10), rx.recv()).await
            {
                let batch = gather(&mut rx, first, batch_max);
                self.write(&mut out, batch, None).await;
            }
        }
        rx.close();
        while tokio::time::Instant::now() < deadline {
            let Some(first) = rx.recv().await else { break };
            let batch = gather(&mut rx, first, batch_max);
            self.write(&mut out, batch, None).await;
        }
        let left = rx.len() as u64;
        if left > 0 {
            self.outcomes.sink_error.inc_by(left);
        }
        if let Some(o) = out.as_mut() {
            Self::flush(o);
        }
        self.outcomes.depth.set(0);
    }
}
