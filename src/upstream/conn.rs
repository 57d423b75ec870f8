//! A connection to an upstream server: TCP, or a unix socket (`unix:/run/gunicorn.sock`, as
//! nginx's `proxy_pass http://unix:...`). One type for the pool, the sender and the body reader.

use crate::config::ServerAddr;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    /// A new connection to `addr` (TCP with Nagle off).
    pub async fn connect(addr: &ServerAddr) -> io::Result<Conn> {
        match addr {
            ServerAddr::Tcp(a) => {
                let c = TcpStream::connect(a).await?;
                let _ = c.set_nodelay(true);
                Ok(Conn::Tcp(c))
            }
            ServerAddr::Unix(p) => UnixStream::connect(p).await.map(Conn::Unix),
        }
    }

    /// Writes what the socket takes now, without waiting.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(c) => c.try_write(buf),
            Conn::Unix(c) => c.try_write(buf),
        }
    }

    /// Whether an idle connection can carry another request: nothing to read, not closed.
    ///
    /// Never waits: tokio's readiness is looked at with a no-op waker, and a connection it
    /// reports readable is asked once with a non-blocking read (which also clears a stale
    /// readiness).
    pub fn is_clean(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let ready = match self {
            Conn::Tcp(c) => std::pin::pin!(c.readable()).as_mut().poll(&mut cx),
            Conn::Unix(c) => std::pin::pin!(c.readable()).as_mut().poll(&mut cx),
        };
        match ready {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                let read = match self {
                    Conn::Tcp(c) => c.try_read(&mut probe),
                    Conn::Unix(c) => c.try_read(&mut probe),
                };
                matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(c) => Pin::new(c).poll_read(cx, buf),
            Conn::Unix(c) => Pin::new(c).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(c) => Pin::new(c).poll_write(cx, buf),
            Conn::Unix(c) => Pin::new(c).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(c) => Pin::new(c).poll_flush(cx),
            Conn::Unix(c) => Pin::new(c).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(c) => Pin::new(c).poll_shutdown(cx),
            Conn::Unix(c) => Pin::new(c).poll_shutdown(cx),
        }
    }
}
