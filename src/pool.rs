//! Idle upstream connections kept for the HTTP/1 relay: per server, newest first, bounded in all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Keepalive connections to the servers of one upstream pool (one config generation).
pub struct Pool {
    idle: Vec<Mutex<Vec<(TcpStream, Instant)>>>,
    /// Idle connections held, all servers together.
    held: AtomicUsize,
    /// At most this many are held (`upstream.keepalive_pool`, per process as for Pingora's pool).
    capacity: usize,
    /// An idle connection older than this is closed instead of reused (`upstream.idle_timeout`).
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(servers: usize, capacity: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: (0..servers).map(|_| Mutex::new(Vec::new())).collect(),
            held: AtomicUsize::new(0),
            capacity,
            idle_timeout,
        }
    }

    /// The most recently returned connection to server `idx` that has not idled too long.
    pub fn take(&self, idx: usize) -> Option<TcpStream> {
        let slot = self.idle.get(idx)?;
        let mut idle = slot.lock().unwrap_or_else(|e| e.into_inner());
        let (conn, since) = idle.pop()?;
        self.held.fetch_sub(1, Ordering::Relaxed);
        if since.elapsed() < self.idle_timeout {
            return Some(conn);
        }
        // The ones below it have idled longer still.
        self.held.fetch_sub(idle.len(), Ordering::Relaxed);
        idle.clear();
        None
    }

    /// Keeps a connection whose last response ended cleanly, if there is room.
    pub fn put(&self, idx: usize, conn: TcpStream) {
        let Some(slot) = self.idle.get(idx) else {
            return;
        };
        let mut idle = slot.lock().unwrap_or_else(|e| e.into_inner());
        if self.held.load(Ordering::Relaxed) < self.capacity {
            self.held.fetch_add(1, Ordering::Relaxed);
            idle.push((conn, Instant::now()));
        }
    }

    /// Idle connections held, all servers together.
    pub fn idle_count(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}
