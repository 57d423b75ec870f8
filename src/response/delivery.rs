//! Django's response body on its way to the client, the same for every loop: what Django sends
//! is decoded (`upstream::response_body`), compressed when chosen (`compression`), framed for
//! the client (chunks for an HTTP/1.1 client when the length is not known), and written by the
//! loop's `ClientSide`.
//!
//! With buffering (the default, nginx's `proxy_buffering on`), Django is read as fast as it
//! sends while the client is written to, the difference held in memory and then a temp file
//! (`buffers`), so that a slow client never holds a gunicorn worker: the upstream connection
//! goes back to the pool the moment Django's last byte is read. Without it (`X-Accel-Buffering:
//! no`, `text/event-stream`, `upstream.buffering = false`), each piece is written before the
//! next is read, and flushed.

use super::buffers::{Budget, Queue};
use super::compression::{self, Compressor, Settings};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::vocabulary::UpstreamErrorKind;
use crate::upstream::chunked;
use crate::upstream::response_body::{Body, Broken};
use crate::upstream::response_head::ResponseHead;
use bytes::{Bytes, BytesMut};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Where a body's bytes go: the client, through one loop's writer.
#[allow(async_fn_in_trait)]
pub trait ClientSide {
    /// Writes `data`; `done` when the body ends with it.
    async fn send(&mut self, data: Bytes, done: bool) -> Result<(), Broken>;
}

/// How one body goes out.
pub struct Plan {
    /// Read Django ahead of the client.
    pub buffering: bool,
    pub compressor: Option<Box<Compressor>>,
    /// Framed in chunks for an HTTP/1.1 client, ended by the last chunk.
    pub chunked: bool,
}

impl Plan {
    /// How `head`'s body goes out, the same for every loop: compressed when a coding is chosen
    /// (the head then states it), read ahead of the client unless it streams. Framing it in
    /// chunks is the loop's to decide (`chunked` starts false).
    pub fn for_head<'a>(
        settings: &Settings,
        buffering: bool,
        accept: impl FnOnce() -> Option<&'a [u8]>,
        head: &mut ResponseHead<'_, '_>,
        head_only: bool,
    ) -> Plan {
        Plan {
            buffering: buffering && !head.streams,
            compressor: compression::compressor_for(settings, accept, head, head_only),
            chunked: false,
        }
    }
}

/// What the process gives every delivery: the buffers' budget and where they spill.
pub struct Buffers<'a> {
    pub budget: &'a Arc<Budget>,
    pub temp_dir: &'a Path,
    /// `upstream.max_buffered_bytes`.
    pub cap: u64,
    pub read_timeout: Duration,
    pub metrics: &'a Metrics,
}

/// Turns decoded data into the bytes the client gets.
struct Stage {
    compressor: Option<Box<Compressor>>,
    chunked: bool,
    /// Compressed bytes waiting to be framed.
    packed: BytesMut,
}

impl Stage {
    /// Moves `raw` (decoded data) into `out`, as the client gets it; `done` at the body's end.
    fn pack(&mut self, raw: &mut BytesMut, done: bool, out: &mut BytesMut) -> Result<(), Broken> {
        let data = match self.compressor.as_mut() {
            Some(c) => {
                let fail = |_| Broken::Upstream(UpstreamErrorKind::Other);
                c.write(raw, &mut self.packed).map_err(fail)?;
                raw.clear();
                if done {
                    c.finish(&mut self.packed).map_err(fail)?;
                }
                &mut self.packed
            }
            None => raw,
        };
        if self.chunked {
            if !data.is_empty() {
                chunked::encode(data, out);
            }
            if done {
                out.extend_from_slice(chunked::LAST_CHUNK);
            }
            data.clear();
        } else if out.is_empty() {
            // Handed on without a copy.
            std::mem::swap(out, data);
        } else {
            out.extend_from_slice(data);
            data.clear();
        }
        Ok(())
    }
}

/// Queues `bytes` and counts where they went.
fn hold(q: &mut Queue, bytes: Bytes, metrics: &Metrics) {
    let before = q.held;
    q.push(bytes);
    metrics.count_buffered(q.held.memory - before.memory, q.held.file - before.file);
}

/// One body on its way: what is read from Django, packed for the client, and held.
struct Delivery<'p, F> {
    body: Body<'p>,
    stage: Stage,
    /// Decoded data not yet packed.
    raw: BytesMut,
    /// Packed bytes not yet handed to the client or the queue.
    out: BytesMut,
    seen: F,
}

impl<F: FnMut(&[u8])> Delivery<'_, F> {
    /// Moves what Django has sent into `out`, as the client gets it; the connection goes back
    /// to the pool once the body has ended.
    fn take(&mut self) -> Result<bool, Broken> {
        let done = self.body.take_buffered(&mut self.raw, &mut self.seen)?;
        self.stage.pack(&mut self.raw, done, &mut self.out)?;
        if done {
            self.body.release();
        }
        Ok(done)
    }

    /// `out` as one piece, leaving it empty (and holding no allocation).
    fn piece(&mut self) -> Bytes {
        std::mem::take(&mut self.out).freeze()
    }

    /// The rest of a body that did not come whole with its head: Django read ahead of the
    /// client (buffering) or piece by piece.
    async fn rest(
        &mut self,
        client: &mut impl ClientSide,
        buffering: bool,
        buffers: &Buffers<'_>,
    ) -> Result<(), Broken> {
        let mut queue: Option<Queue> = None;
        loop {
            // The next bytes for the client: what is queued first, then what was just read.
            let next = match queue.as_mut() {
                Some(q) if !q.is_empty() => {
                    if !self.out.is_empty() {
                        hold(q, self.piece(), buffers.metrics);
                    }
                    q.pop()
                }
                _ if !self.out.is_empty() => Some(self.piece()),
                _ => None,
            };
            let done = self.body.is_done();
            let Some(data) = next else {
                if done {
                    return client.send(Bytes::new(), true).await;
                }
                self.body.fill(buffers.read_timeout).await?;
                self.take()?;
                continue;
            };
            let last = done && self.out.is_empty() && queue.as_ref().is_none_or(Queue::is_empty);
            if !buffering || done {
                client.send(data, last).await?;
                if last {
                    return Ok(());
                }
                continue;
            }
            // While the client takes these bytes, Django goes on being read.
            let write = client.send(data, false);
            tokio::pin!(write);
            loop {
                let q = queue.get_or_insert_with(|| {
                    Queue::new(buffers.budget.clone(), buffers.temp_dir.into(), buffers.cap)
                });
                let read_more = !self.body.is_done() && !q.full();
                tokio::select! {
                    biased;
                    r = &mut write => break r?,
                    r = self.body.fill(buffers.read_timeout), if read_more => {
                        r?;
                        self.take()?;
                        if !self.out.is_empty() {
                            hold(q, self.piece(), buffers.metrics);
                        }
                    }
                }
            }
        }
    }
}

/// Delivers `body` to `client` after whatever `first` holds (a head, written with the first
/// bytes of the body); the decoded data also goes to `seen` (telemetry reads the body as
/// Django sent it). The connection goes back to the pool as soon as Django's last byte is
/// read, before the client has it.
///
/// A body that came whole with its head (most pages, every denial) is one write; the rest,
/// with its read-ahead, is a future of its own, boxed, so that a request's future (moved
/// into its box for every request) stays small.
pub async fn deliver(
    body: Body<'_>,
    first: BytesMut,
    client: &mut impl ClientSide,
    plan: Plan,
    buffers: &Buffers<'_>,
    seen: impl FnMut(&[u8]),
) -> Result<(), Broken> {
    let mut d = Delivery {
        body,
        stage: Stage {
            compressor: plan.compressor,
            chunked: plan.chunked,
            packed: BytesMut::new(),
        },
        raw: BytesMut::new(),
        out: first,
        seen,
    };
    if d.take()? {
        let whole = d.piece();
        return client.send(whole, true).await;
    }
    Box::pin(d.rest(client, plan.buffering, buffers)).await
}
