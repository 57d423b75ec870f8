//! Idle upstream connections kept for the HTTP/1 relay: per server, newest first, bounded in
//! all, and never handed out unless idle and clean.
//!
//! A connection goes back to the pool only after a response that ended exactly where its
//! framing said. While it idles, the server may still write to it (a late body after a HEAD,
//! 204 or 304 answer, bytes past `Content-Length`, an unsolicited `408`) or close it. Either
//! makes it readable, and a readable idle connection is closed, never reused: its bytes would
//! become the next request's response. This is what nginx's
//! `ngx_http_upstream_keepalive_close_handler` and Pingora's pool do.
//!
//! The check reads the socket's readiness from tokio first, which costs no syscall; only a
//! connection that tokio saw readable (or has not yet seen drained) is asked with one
//! non-blocking read. `sweep`, run by the health-check ticker, closes connections that idled
//! past `upstream.idle_timeout` or became readable, so they do not hold the server's slots or
//! the pool's capacity.

use super::conn::Conn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a response from Django ended, as far as its connection's reuse goes. Every loop fills
/// one from its reader of Django's head and its end of the body, and hands the connection to
/// `Pool::give_back`, the one place that decides.
#[derive(Debug, Clone, Copy)]
pub struct ResponseEnd {
    /// HTTP/1.1 without `Connection: close` (or 1.0 with `keep-alive`).
    pub server_keeps: bool,
    /// The body ended where its framing said (not cut off by either side).
    pub whole: bool,
    /// Bytes were read past the end of the response.
    pub bytes_past_end: bool,
    /// The body was delimited by the server closing the connection.
    pub until_close: bool,
}

/// Why a connection is not reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReuse {
    /// The server said it closes (`Connection: close`, HTTP/1.0 without keep-alive).
    ServerCloses,
    /// The body was cut off: where the next response would start is unknown.
    CutOff,
    /// The server sent more than the response: those bytes would answer the next request.
    BytesPastEnd,
    /// The body ran until the server closed.
    UntilClose,
}

impl ResponseEnd {
    /// Whether the connection may be reused, and if not, why.
    pub fn reusable(self) -> Result<(), NoReuse> {
        if !self.whole {
            Err(NoReuse::CutOff)
        } else if self.until_close {
            Err(NoReuse::UntilClose)
        } else if !self.server_keeps {
            Err(NoReuse::ServerCloses)
        } else if self.bytes_past_end {
            Err(NoReuse::BytesPastEnd)
        } else {
            Ok(())
        }
    }
}

/// Keepalive connections to the servers of one upstream pool (one config generation).
pub struct Pool {
    idle: Vec<Mutex<Vec<(Conn, Instant)>>>,
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

    /// The pool's `upstream.idle_timeout`.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The most recently returned clean connection to server `idx` that has idled less than
    /// `max_idle` (at most the pool's `idle_timeout`). Connections found stale, readable or
    /// closed on the way are dropped.
    pub fn take(&self, idx: usize, max_idle: Duration) -> Option<Conn> {
        let slot = self.idle.get(idx)?;
        let max_idle = max_idle.min(self.idle_timeout);
        let mut idle = slot.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((conn, since)) = idle.pop() {
            self.held.fetch_sub(1, Ordering::Relaxed);
            if since.elapsed() >= max_idle {
                if since.elapsed() >= self.idle_timeout {
                    // The ones below it have idled longer still.
                    self.held.fetch_sub(idle.len(), Ordering::Relaxed);
                    idle.clear();
                } else {
                    // Too old for this request but not for others: keep it for them.
                    idle.push((conn, since));
                    self.held.fetch_add(1, Ordering::Relaxed);
                }
                return None;
            }
            if conn.is_clean() {
                return Some(conn);
            }
        }
        None
    }

    /// The one place a connection comes back after a response: kept when `ending` allows
    /// (and there is room), else closed. Returns why it was not kept.
    pub fn give_back(&self, idx: usize, conn: Conn, ending: ResponseEnd) -> Result<(), NoReuse> {
        ending.reusable()?;
        self.put(idx, conn);
        Ok(())
    }

    /// Keeps a connection whose last response ended cleanly, if there is room.
    fn put(&self, idx: usize, conn: Conn) {
        let Some(slot) = self.idle.get(idx) else {
            return;
        };
        let mut idle = slot.lock().unwrap_or_else(|e| e.into_inner());
        if self.held.load(Ordering::Relaxed) < self.capacity {
            self.held.fetch_add(1, Ordering::Relaxed);
            idle.push((conn, Instant::now()));
        }
    }

    /// Closes the connections that idled past `idle_timeout`, became readable or were closed
    /// by the server. Returns how many were closed.
    pub fn sweep(&self) -> usize {
        let mut closed = 0;
        for slot in &self.idle {
            let mut idle = slot.lock().unwrap_or_else(|e| e.into_inner());
            let before = idle.len();
            idle.retain(|(conn, since)| since.elapsed() < self.idle_timeout && conn.is_clean());
            closed += before - idle.len();
        }
        self.held.fetch_sub(closed, Ordering::Relaxed);
        closed
    }

    /// Idle connections held, all servers together.
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_reused_only_after_a_clean_whole_response() {
        let clean = ResponseEnd {
            server_keeps: true,
            whole: true,
            bytes_past_end: false,
            until_close: false,
        };
        assert_eq!(clean.reusable(), Ok(()));
        for (ending, why) in [
            (
                ResponseEnd {
                    server_keeps: false,
                    ..clean
                },
                NoReuse::ServerCloses,
            ),
            (
                ResponseEnd {
                    whole: false,
                    ..clean
                },
                NoReuse::CutOff,
            ),
            (
                ResponseEnd {
                    bytes_past_end: true,
                    ..clean
                },
                NoReuse::BytesPastEnd,
            ),
            (
                ResponseEnd {
                    until_close: true,
                    ..clean
                },
                NoReuse::UntilClose,
            ),
        ] {
            assert_eq!(ending.reusable(), Err(why), "{ending:?}");
        }
    }
    use tokio::io::AsyncWriteExt;

    const MINUTE: Duration = Duration::from_secs(60);

    use tokio::net::TcpStream;

    async fn pair(listener: &tokio::net::TcpListener) -> (Conn, TcpStream) {
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (Conn::Tcp(client), server)
    }

    fn port(c: &Conn) -> u16 {
        match c {
            Conn::Tcp(t) => t.local_addr().expect("addr").port(),
            Conn::Unix(_) => 0,
        }
    }

    #[tokio::test]
    async fn a_unix_socket_connection_is_checked_as_a_tcp_one() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("app.sock");
        let l = tokio::net::UnixListener::bind(&path).expect("bind");
        let addr = crate::config::ServerAddr::Unix(path);
        let pool = Pool::new(1, 8, MINUTE);
        let clean = Conn::connect(&addr).await.expect("connect");
        let (_keep, _) = l.accept().await.expect("accept");
        let late = Conn::connect(&addr).await.expect("connect");
        let (mut late_server, _) = l.accept().await.expect("accept");
        pool.put(0, clean);
        pool.put(0, late);
        late_server
            .write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            matches!(pool.take(0, MINUTE), Some(Conn::Unix(_))),
            "the clean one"
        );
        assert_eq!(pool.idle_count(), 0);
    }

    async fn listener() -> tokio::net::TcpListener {
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
    }

    #[tokio::test]
    async fn newest_first_bounded_in_all_and_stale_ones_dropped() {
        let l = listener().await;
        let pool = Pool::new(2, 3, MINUTE);
        let ((a, _sa), (b, _sb)) = (pair(&l).await, pair(&l).await);
        let b_port = port(&b);
        pool.put(0, a);
        pool.put(0, b);
        let (c, _sc) = pair(&l).await;
        pool.put(1, c);
        // Full: a fourth is closed instead of kept.
        let (d, _sd) = pair(&l).await;
        pool.put(1, d);
        assert_eq!(pool.idle_count(), 3);
        let taken = pool.take(0, MINUTE).expect("kept");
        assert_eq!(port(&taken), b_port);
        assert_eq!(pool.idle_count(), 2);
        assert!(pool.take(1, MINUTE).is_some());
        assert!(pool.take(1, MINUTE).is_none());
        assert!(pool.take(7, MINUTE).is_none());

        let stale = Pool::new(1, 4, Duration::from_millis(1));
        let ((e, _se), (f, _sf)) = (pair(&l).await, pair(&l).await);
        stale.put(0, e);
        stale.put(0, f);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(stale.take(0, MINUTE).is_none());
        assert_eq!(stale.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_connection_with_unread_bytes_or_closed_is_never_handed_out() {
        let l = listener().await;
        let pool = Pool::new(1, 8, MINUTE);
        let (clean, _keep) = pair(&l).await;
        let clean_port = port(&clean);
        let (late, mut late_server) = pair(&l).await;
        let (closed, closed_server) = pair(&l).await;
        pool.put(0, clean);
        pool.put(0, late);
        pool.put(0, closed);
        // A late body, and a server that closed while the connection idled.
        late_server
            .write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .await
            .expect("write");
        drop(closed_server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = pool.take(0, MINUTE).expect("the clean one");
        assert_eq!(port(&got), clean_port);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn sweep_closes_readable_and_expired_connections() {
        let l = listener().await;
        let pool = Pool::new(2, 8, Duration::from_millis(200));
        let (a, _sa) = pair(&l).await;
        let (b, sb) = pair(&l).await;
        pool.put(0, a);
        pool.put(1, b);
        drop(sb);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.sweep(), 1);
        assert_eq!(pool.idle_count(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(pool.sweep(), 1);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn requests_that_cannot_be_resent_take_only_recent_connections() {
        let l = listener().await;
        let pool = Pool::new(1, 8, MINUTE);
        let (a, _sa) = pair(&l).await;
        pool.put(0, a);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(pool.take(0, Duration::from_millis(10)).is_none());
        assert_eq!(pool.idle_count(), 1, "kept for a request that may use it");
        assert!(pool.take(0, MINUTE).is_some());
    }
}
