//! The diagnostics sink: a bounded queue filled with `try_send` (a full queue drops the newest
//! record and counts it, never waits) and a background writer (file, HTTP, stdout).

mod file;
mod http;
pub mod record;

use crate::config::{Sink as SinkConfig, SinkType};
use crate::metrics::Metrics;
use async_trait::async_trait;
pub use http::parse_url;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::{IntCounter, IntGauge};
pub use record::{Record, SampleRecord, SpikeRecord};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    tx: Option<mpsc::Sender<Record>>,
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
        self.tx.is_some()
    }

    /// Whether the queue has room now; a full queue makes building a record pointless.
    pub fn has_room(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.capacity() > 0)
    }

    /// Queues a record without waiting; a full queue drops it (drop newest) and counts.
    pub fn offer(&self, record: Record) {
        let Some(tx) = &self.tx else {
            return;
        };
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
    config: SinkConfig,
    outcomes: Outcomes,
    grace: Duration,
}

/// Builds both ends from the config; `None` for the writer when the type is `none`.
pub fn build(
    config: &SinkConfig,
    metrics: &Metrics,
    grace: Duration,
) -> (Sink, Option<SinkWriter>) {
    let outcomes = Outcomes::new(metrics);
    let in_flight = Arc::new(AtomicUsize::new(0));
    if config.kind == SinkType::None {
        let sink = Sink {
            tx: None,
            outcomes,
            in_flight,
        };
        return (sink, None);
    }
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let writer = SinkWriter {
        rx: Mutex::new(Some(rx)),
        in_flight: in_flight.clone(),
        config: config.clone(),
        outcomes: outcomes.clone(),
        grace,
    };
    (
        Sink {
            tx: Some(tx),
            outcomes,
            in_flight,
        },
        Some(writer),
    )
}

impl SinkWriter {
    fn open(&self) -> Output {
        match self.config.kind {
            SinkType::Http => Output::Http(http::HttpOutput::new(&self.config)),
            SinkType::Stdout => Output::Stdout,
            _ => Output::File(file::FileOutput::new(&self.config)),
        }
    }

    async fn write(&self, out: &mut Output, batch: Vec<Record>, shutdown: Option<&ShutdownWatch>) {
        let n = batch.len() as u64;
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
        let mut out = self.open();
        let batch_max = self.config.batch_max.max(1);
        let mut flush_tick = tokio::time::interval(self.config.flush_interval.0);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                got = rx.recv() => {
                    let Some(first) = got else { break };
                    if let Output::Http(_) = out {
                        // Let a batch fill for up to batch_age before posting.
                        let deadline = tokio::time::Instant::now() + self.config.batch_age.0;
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
                _ = flush_tick.tick() => Self::flush(&mut out),
            }
        }
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
        Self::flush(&mut out);
        self.outcomes.depth.set(0);
    }
}
