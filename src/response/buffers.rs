//! What is held of a response between Django and a slower client: memory first, within a
//! process-wide budget and a per-response share, then an unnamed temp file (`O_TMPFILE`, in
//! `limits.body_temp_dir`), as nginx's proxy buffers and `proxy_temp_path`. A file that
//! cannot be made or written (a full disk) never fails the response: the queue then holds what
//! it has and says so (`Queue::full`), and Django is read only as the client takes it.

use crate::guard::body::Spool;
use bytes::Bytes;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The most of one response held in memory before it goes to a file.
pub const MEMORY_PER_RESPONSE: u64 = 256 * 1024;
/// What one read from the file hands the client at a time (nginx's proxy buffer size), so that
/// a client that stopped reading holds no more than that of it in memory.
const FILE_PIECE: usize = 8 * 1024;

/// The process-wide memory budget for responses held ahead of their clients.
#[derive(Debug)]
pub struct Budget {
    used: AtomicU64,
    /// `upstream.buffer_memory`, which a reload changes in place.
    limit: AtomicU64,
}

impl Budget {
    pub fn new(limit: u64) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
        })
    }

    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes of the budget if they fit.
    fn take(&self, n: u64) -> bool {
        let limit = self.limit();
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u + n <= limit).then_some(u + n)
            })
            .is_ok()
    }

    fn give(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Bytes held in memory now, all responses together.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// One piece waiting for the client.
enum Piece {
    Memory(Bytes),
    /// `len` bytes of the spool file from `offset`.
    File {
        offset: u64,
        len: u64,
    },
}

/// Where a queued byte went, for `authz_edge_response_bytes_buffered_total{where}`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub memory: u64,
    pub file: u64,
}

/// One response's bytes waiting for its client, in order.
pub struct Queue {
    pieces: VecDeque<Piece>,
    budget: Arc<Budget>,
    temp_dir: PathBuf,
    spool: Option<Spool>,
    /// Bytes queued (memory and file) and not yet handed out.
    queued: u64,
    in_memory: u64,
    /// The most bytes held at once (`upstream.max_buffered_bytes`).
    cap: u64,
    /// The file could not be made or written: nothing more is held past memory.
    no_file: bool,
    pub held: Held,
}

impl Queue {
    pub fn new(budget: Arc<Budget>, temp_dir: PathBuf, cap: u64) -> Queue {
        Queue {
            pieces: VecDeque::new(),
            budget,
            temp_dir,
            spool: None,
            queued: 0,
            in_memory: 0,
            cap,
            no_file: false,
            held: Held::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Whether no more may be held: Django is then read only as the client takes it.
    pub fn full(&self) -> bool {
        self.queued >= self.cap
            || (self.no_file
                && (self.in_memory >= MEMORY_PER_RESPONSE
                    || self.budget.used() >= self.budget.limit()))
    }

    /// Queues `bytes` behind what is already held: in memory while this response's share and
    /// the process's budget allow (and nothing is in the file yet), else in the file. A file
    /// that fails keeps them in memory, past the budget: they were already read.
    pub fn push(&mut self, bytes: Bytes) {
        let n = bytes.len() as u64;
        if n == 0 {
            return;
        }
        self.queued += n;
        let in_file = matches!(self.pieces.back(), Some(Piece::File { .. }));
        if !in_file && self.in_memory + n <= MEMORY_PER_RESPONSE && self.budget.take(n) {
            self.in_memory += n;
            self.held.memory += n;
            self.pieces.push_back(Piece::Memory(bytes));
            return;
        }
        if !self.no_file {
            if let Some(offset) = self.append(&bytes) {
                self.held.file += n;
                match self.pieces.back_mut() {
                    Some(Piece::File { len, .. }) => *len += n,
                    _ => self.pieces.push_back(Piece::File { offset, len: n }),
                }
                return;
            }
            self.no_file = true;
        }
        // No file: held in memory all the same, and `full` stops the reading.
        self.budget.used.fetch_add(n, Ordering::Relaxed);
        self.in_memory += n;
        self.held.memory += n;
        self.pieces.push_back(Piece::Memory(bytes));
    }

    /// Appends to the spool file, made on first use; its offset, or `None` when it failed.
    fn append(&mut self, bytes: &[u8]) -> Option<u64> {
        if self.spool.is_none() {
            self.spool = Spool::create(&self.temp_dir).ok();
        }
        let spool = self.spool.as_mut()?;
        let offset = spool.len;
        spool.append(bytes).ok()?;
        Some(offset)
    }

    /// The next bytes for the client, oldest first (a file piece a chunk at a time).
    pub fn pop(&mut self) -> Option<Bytes> {
        match self.pieces.front_mut()? {
            Piece::Memory(_) => {
                let Some(Piece::Memory(b)) = self.pieces.pop_front() else {
                    return None;
                };
                let n = b.len() as u64;
                self.queued -= n;
                self.in_memory -= n;
                self.budget.give(n);
                Some(b)
            }
            Piece::File { offset, len } => {
                let spool = self.spool.as_ref()?;
                let chunk = spool.read_now(*offset, FILE_PIECE).ok()?;
                let n = (chunk.len() as u64).min(*len);
                if n == 0 {
                    return None;
                }
                *offset += n;
                *len -= n;
                if *len == 0 {
                    self.pieces.pop_front();
                }
                self.queued -= n;
                let mut chunk = chunk;
                chunk.truncate(n as usize);
                Some(Bytes::from(chunk))
            }
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.budget.give(self.in_memory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, b: u8) -> Bytes {
        Bytes::from(vec![b; n])
    }

    #[tokio::test]
    async fn memory_first_then_the_file_in_order() {
        let budget = Budget::new(1 << 20);
        let dir = tempfile::tempdir().expect("dir");
        let mut q = Queue::new(budget.clone(), dir.path().into(), 1 << 30);
        let share = MEMORY_PER_RESPONSE as usize;
        q.push(bytes(share - 10, b'a'));
        q.push(bytes(100, b'b')); // past the share: to the file
        q.push(bytes(5, b'c')); // behind the file's bytes: to the file too
        assert_eq!(
            q.held,
            Held {
                memory: share as u64 - 10,
                file: 105
            }
        );
        assert_eq!(budget.used(), share as u64 - 10);
        let mut all = Vec::new();
        while let Some(b) = q.pop() {
            all.extend_from_slice(&b);
        }
        let mut want = vec![b'a'; share - 10];
        want.extend(vec![b'b'; 100]);
        want.extend(vec![b'c'; 5]);
        assert_eq!(all, want);
        assert_eq!(budget.used(), 0);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn the_process_budget_sends_the_rest_to_files_and_is_given_back() {
        let budget = Budget::new(1000);
        let dir = tempfile::tempdir().expect("dir");
        let mut a = Queue::new(budget.clone(), dir.path().into(), 1 << 30);
        a.push(bytes(800, b'a'));
        let mut b = Queue::new(budget.clone(), dir.path().into(), 1 << 30);
        b.push(bytes(300, b'b'));
        assert_eq!((a.held.memory, b.held.file), (800, 300));
        drop(a);
        assert_eq!(budget.used(), 0, "a dropped queue gives its memory back");
        assert_eq!(b.pop().map(|x| x.len()), Some(300));
    }

    #[tokio::test]
    async fn no_file_means_memory_then_full() {
        let budget = Budget::new(1 << 20);
        let mut q = Queue::new(budget, "/nonexistent/authz-edge".into(), 1 << 30);
        q.push(bytes(MEMORY_PER_RESPONSE as usize, b'a'));
        assert!(!q.full());
        q.push(bytes(10, b'b'));
        assert_eq!(q.held.file, 0);
        assert!(q.full(), "a full disk degrades to streaming");
        let mut cap = Queue::new(Budget::new(1 << 20), "/tmp".into(), 100);
        cap.push(bytes(100, b'c'));
        assert!(cap.full(), "the per-response cap");
    }
}
