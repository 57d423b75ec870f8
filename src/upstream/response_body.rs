//! Django's response body, read by its framing until it ends, and the connection handed back:
//! `Body` decodes what arrives (a length, strict chunked, or until Django closes) and, when
//! dropped, gives the connection to `Pool::give_back` with how the body ended. It is the only
//! way a connection returns to the pool, whichever loop wrote the body to the client.

use super::chunked::ChunkScanner;
use super::conn::Conn;
use super::pool::{Pool, ResponseEnd};
use super::response_head::Framing;
use crate::telemetry::vocabulary::UpstreamErrorKind;
use bytes::{Buf, BufMut, BytesMut};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

/// An upstream connection whose final response head has arrived (`send::send`).
pub struct Reply {
    pub(super) conn: Conn,
    /// The server's index in `Upstream::servers`.
    pub(super) idx: usize,
    /// The response head (`head_len` bytes) and whatever of the body came with it.
    pub(super) buf: BytesMut,
    pub(super) head_len: usize,
}

impl Reply {
    /// The response head's bytes.
    pub fn head(&self) -> &[u8] {
        &self.buf[..self.head_len]
    }

    /// The body that follows the head, framed by `framing`. `server_keeps`: Django said it
    /// keeps the connection (`ResponseHead::server_keeps`).
    pub fn into_body(mut self, framing: Framing, server_keeps: bool, pool: &Pool) -> Body<'_> {
        self.buf.advance(self.head_len);
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Body {
            conn: Some(self.conn),
            idx: self.idx,
            buf: self.buf,
            framing,
            left,
            scan: ChunkScanner::default(),
            done: framing == Framing::Empty,
            server_keeps,
            pool,
        }
    }
}

/// Which side broke off a response in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    Upstream(UpstreamErrorKind),
    Client,
}

/// A response body being read from Django.
pub struct Body<'p> {
    /// Taken only when the body is dropped.
    conn: Option<Conn>,
    idx: usize,
    /// Bytes read and not yet handed out.
    buf: BytesMut,
    framing: Framing,
    /// Bytes of a `Length` body not yet handed out.
    left: u64,
    scan: ChunkScanner,
    done: bool,
    server_keeps: bool,
    pool: &'p Pool,
}

impl Body<'_> {
    /// Whether the body has ended (all of it handed out, or Django closed an `UntilClose` one).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Hands out the data already read, decoded, into `out` (and to `seen`). Returns whether
    /// the body has ended.
    pub fn take_buffered(
        &mut self,
        out: &mut BytesMut,
        mut seen: impl FnMut(&[u8]),
    ) -> Result<bool, Broken> {
        match self.framing {
            Framing::Empty => {}
            Framing::Length(_) => {
                let take = self
                    .buf
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= take as u64;
                let data = self.buf.split_to(take);
                seen(&data);
                if out.is_empty() {
                    // Handed on without a copy.
                    *out = data;
                } else {
                    out.put_slice(&data);
                }
                self.done = self.left == 0;
            }
            Framing::Chunked => {
                let used = self
                    .scan
                    .feed(&self.buf, |data| {
                        seen(data);
                        out.put_slice(data);
                    })
                    .ok_or(Broken::Upstream(UpstreamErrorKind::Other))?;
                self.buf.advance(used);
                self.done = self.scan.done();
            }
            Framing::UntilClose => {
                seen(&self.buf);
                out.put_slice(&self.buf);
                self.buf.clear();
            }
        }
        Ok(self.done)
    }

    /// Reads more of the body within `read_timeout`. Django closing ends an `UntilClose` body
    /// and cuts any other short.
    pub async fn fill(&mut self, read_timeout: Duration) -> Result<(), Broken> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Broken::Upstream(UpstreamErrorKind::Reset));
        };
        match timeout(read_timeout, conn.read_buf(&mut self.buf)).await {
            Err(_) => Err(Broken::Upstream(UpstreamErrorKind::Timeout)),
            Ok(Err(_)) => Err(Broken::Upstream(UpstreamErrorKind::Reset)),
            Ok(Ok(0)) if self.framing == Framing::UntilClose => {
                self.done = true;
                Ok(())
            }
            Ok(Ok(0)) => Err(Broken::Upstream(UpstreamErrorKind::Reset)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// How the body ended, for the connection's reuse.
    fn ending(&self) -> ResponseEnd {
        ResponseEnd {
            server_keeps: self.server_keeps,
            whole: self.done,
            bytes_past_end: !self.buf.is_empty(),
            until_close: self.framing == Framing::UntilClose,
        }
    }

    /// The connection goes back to the pool, or is closed (`ResponseEnd::reusable`); once.
    /// Dropping the body does the same.
    pub fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.pool.give_back(self.idx, conn, self.ending());
            // The read buffer too: a body held for a slow client keeps none of it.
            self.buf = BytesMut::new();
        }
    }
}

impl Drop for Body<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::pool::NoReuse;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    const SECOND: Duration = Duration::from_secs(1);

    /// A body from a real connection: `first` came with the head, `later` is sent after.
    async fn body_of<'p>(
        pool: &'p Pool,
        framing: Framing,
        server_keeps: bool,
        first: &[u8],
        later: &[u8],
        close: bool,
    ) -> (Body<'p>, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let conn = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (mut server, _) = l.accept().await.expect("accept");
        server.write_all(later).await.expect("write");
        if close {
            server.shutdown().await.expect("shutdown");
        }
        let mut buf = BytesMut::from(&b"HEAD"[..]);
        buf.extend_from_slice(first);
        let reply = Reply {
            conn: Conn::Tcp(conn),
            idx: 0,
            buf,
            head_len: 4,
        };
        (reply.into_body(framing, server_keeps, pool), server)
    }

    /// Reads the whole body; its data, or why it broke off.
    async fn read_all(body: &mut Body<'_>) -> Result<Vec<u8>, Broken> {
        let mut out = BytesMut::new();
        let mut all = Vec::new();
        loop {
            let done = body.take_buffered(&mut out, |_| {})?;
            all.extend_from_slice(&out);
            out.clear();
            if done {
                return Ok(all);
            }
            body.fill(SECOND).await?;
        }
    }

    #[tokio::test]
    async fn a_whole_body_gives_its_connection_back() {
        let pool = Pool::new(1, 4, SECOND * 60);
        let (mut body, _server) =
            body_of(&pool, Framing::Length(6), true, b"abc", b"def", false).await;
        assert_eq!(read_all(&mut body).await, Ok(b"abcdef".to_vec()));
        drop(body);
        assert_eq!(pool.idle_count(), 1);

        let (mut body, _server) = body_of(
            &pool,
            Framing::Chunked,
            true,
            b"3\r\nabc\r\n",
            b"0\r\n\r\n",
            false,
        )
        .await;
        let data = read_all(&mut body).await;
        assert_eq!(data, Ok(b"abc".to_vec()));
        drop(body);
        assert_eq!(pool.idle_count(), 2);
    }

    /// One case per reason a connection is not reused (`NoReuse`), each read to its end.
    #[tokio::test]
    async fn each_reason_not_to_reuse_closes_the_connection() {
        let pool = Pool::new(1, 4, SECOND * 60);
        // The server said it closes.
        let (mut body, _s) = body_of(&pool, Framing::Length(2), false, b"ab", b"", false).await;
        assert!(read_all(&mut body).await.is_ok());
        assert_eq!(body.ending().reusable(), Err(NoReuse::ServerCloses));
        drop(body);
        // Cut off: the server closed before the length was reached.
        let (mut body, _s) = body_of(&pool, Framing::Length(9), true, b"ab", b"c", true).await;
        let broken = read_all(&mut body).await;
        assert_eq!(broken, Err(Broken::Upstream(UpstreamErrorKind::Reset)));
        assert_eq!(body.ending().reusable(), Err(NoReuse::CutOff));
        drop(body);
        // Bytes past the end: they would answer the next request.
        let (mut body, _s) = body_of(&pool, Framing::Length(2), true, b"abHTTP", b"", false).await;
        assert_eq!(read_all(&mut body).await, Ok(b"ab".to_vec()));
        assert_eq!(body.ending().reusable(), Err(NoReuse::BytesPastEnd));
        drop(body);
        // Until close: whole, but the connection is gone.
        let (mut body, _s) = body_of(&pool, Framing::UntilClose, true, b"ab", b"cd", true).await;
        assert_eq!(read_all(&mut body).await, Ok(b"abcd".to_vec()));
        assert_eq!(body.ending().reusable(), Err(NoReuse::UntilClose));
        drop(body);
        // A malformed chunk: refused, and the connection with it.
        let (mut body, _s) = body_of(&pool, Framing::Chunked, true, b"zz\r\n", b"", false).await;
        let broken = read_all(&mut body).await;
        assert_eq!(broken, Err(Broken::Upstream(UpstreamErrorKind::Other)));
        drop(body);
        assert_eq!(pool.idle_count(), 0);
    }
}
