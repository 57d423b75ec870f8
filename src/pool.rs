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
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn conn(listener: &tokio::net::TcpListener) -> TcpStream {
        let addr = listener.local_addr().expect("addr");
        TcpStream::connect(addr).await.expect("connect")
    }

    #[tokio::test]
    async fn newest_first_bounded_in_all_and_stale_ones_dropped() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let pool = Pool::new(2, 3, Duration::from_secs(60));
        let (a, b) = (conn(&l).await, conn(&l).await);
        let b_port = b.local_addr().expect("addr").port();
        pool.put(0, a);
        pool.put(0, b);
        pool.put(1, conn(&l).await);
        // Full: a fourth is closed instead of kept.
        pool.put(1, conn(&l).await);
        assert_eq!(pool.idle_count(), 3);
        let taken = pool.take(0).expect("kept");
        assert_eq!(taken.local_addr().expect("addr").port(), b_port);
        assert_eq!(pool.idle_count(), 2);
        assert!(pool.take(1).is_some());
        assert!(pool.take(1).is_none());
        assert!(pool.take(7).is_none());

        let stale = Pool::new(1, 4, Duration::from_millis(1));
        stale.put(0, conn(&l).await);
        stale.put(0, conn(&l).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(stale.take(0).is_none());
        assert_eq!(stale.idle_count(), 0);
    }
}
