//! One request to Django, until its final response head has arrived: a server picked by the
//! retry policy (`retry`), a pooled connection or a new one, the request written (its body from
//! memory or from a spool file), and the head read within `limits.max_head_bytes`.

use super::conn::Conn;
use super::response_body::Reply;
use super::retry::{self, Tries};
use super::Upstream;
use crate::guard::body::Spool;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::vocabulary::UpstreamErrorKind;
use bytes::BytesMut;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// What goes to Django: the request head with any body held in memory, and a body spooled to a
/// file, if any, after it.
pub struct Request<'a> {
    pub method: &'a Method,
    pub wire: &'a [u8],
    pub spooled: Option<&'a Spool>,
}

/// Why one attempt on one connection failed.
enum Attempt {
    /// Nothing came back: on a reused keepalive connection, the server had closed it.
    NothingBack,
    Failed(UpstreamErrorKind),
}

/// Sends the request to a server and waits for its response head, by the rules of `retry`:
/// round robin over ready servers, another server tried when connecting fails (counted per
/// failure and marked failed), and a request whose pooled connection died with nothing back
/// sent once more on a new connection only if its method is idempotent. `tries` records the
/// servers tried and whether a failure was already counted.
pub async fn send(
    up: &Upstream,
    max_head: usize,
    metrics: &Metrics,
    tries: &mut Tries,
    req: Request<'_>,
) -> Result<Reply, UpstreamErrorKind> {
    let max_idle = retry::max_idle_for(req.method, up.pool.idle_timeout());
    loop {
        let Some(idx) = tries.next_server(up) else {
            return Err(UpstreamErrorKind::Connect);
        };
        if let Some(conn) = up.pool.take(idx, max_idle) {
            match attempt(up, max_head, conn, idx, &req).await {
                Ok(x) => return Ok(x),
                Err(Attempt::NothingBack) if retry::may_resend(req.method, true, true) => {}
                // Django may have run it: never sent twice (RFC 9110 §9.2.2), as in nginx.
                Err(Attempt::NothingBack) => return Err(UpstreamErrorKind::Reset),
                Err(Attempt::Failed(kind)) => return Err(kind),
            }
        }
        let Some(addr) = up.servers.get(idx) else {
            return Err(UpstreamErrorKind::Connect);
        };
        let conn = match timeout(up.timeouts.connect, Conn::connect(addr)).await {
            Ok(Ok(c)) => c,
            _ => {
                up.mark_failed(idx);
                metrics.count_upstream_error(&up.name, UpstreamErrorKind::Connect);
                tries.counted = true;
                if tries.may_try_another(up.retries) {
                    continue;
                }
                return Err(UpstreamErrorKind::Connect);
            }
        };
        return match attempt(up, max_head, conn, idx, &req).await {
            Ok(x) => Ok(x),
            Err(Attempt::NothingBack) => Err(UpstreamErrorKind::Reset),
            Err(Attempt::Failed(kind)) => Err(kind),
        };
    }
}

/// Writes the request on `conn` (to server `idx`), then the body spooled to a file if any, and
/// reads until a final (non-1xx) response head is complete.
async fn attempt(
    up: &Upstream,
    max_head: usize,
    mut conn: Conn,
    idx: usize,
    req: &Request<'_>,
) -> Result<Reply, Attempt> {
    let wire = req.wire;
    // A request fits the socket buffer at once; only one that does not waits, with a timer.
    let sent = match conn.try_write(wire) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => return Err(Attempt::NothingBack),
    };
    if sent < wire.len() {
        match timeout(up.timeouts.write, conn.write_all(&wire[sent..])).await {
            Err(_) => return Err(Attempt::Failed(UpstreamErrorKind::Timeout)),
            Ok(Err(_)) => return Err(Attempt::NothingBack),
            Ok(Ok(())) => {}
        }
    }
    if let Some(spool) = req.spooled {
        write_spooled(up, &mut conn, spool).await?;
    }
    let mut buf = BytesMut::with_capacity(8192);
    let mut got_any = false;
    loop {
        if let Some(end) = head_end(&buf) {
            // The relay sends neither `Expect` nor `Upgrade`, so no interim response is
            // allowed (`response_head::interim_allowed`), nor a status below 100.
            match status_of(&buf) {
                None => return Err(Attempt::Failed(UpstreamErrorKind::Other)),
                Some(s) if s < 200 => return Err(Attempt::Failed(UpstreamErrorKind::Other)),
                Some(_) if end > max_head => return Err(Attempt::Failed(UpstreamErrorKind::Other)),
                Some(_) => {
                    return Ok(Reply {
                        conn,
                        idx,
                        buf,
                        head_len: end,
                    })
                }
            }
        }
        if buf.len() > max_head {
            return Err(Attempt::Failed(UpstreamErrorKind::Other));
        }
        match timeout(up.timeouts.read, conn.read_buf(&mut buf)).await {
            Err(_) => return Err(Attempt::Failed(UpstreamErrorKind::Timeout)),
            Ok(Ok(0)) | Ok(Err(_)) if !got_any => return Err(Attempt::NothingBack),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(Attempt::Failed(UpstreamErrorKind::Reset)),
            Ok(Ok(_)) => got_any = true,
        }
    }
}

/// Streams a spooled body to Django, a chunk at a time from its start (so a resent request
/// sends it whole again).
async fn write_spooled(up: &Upstream, conn: &mut Conn, spool: &Spool) -> Result<(), Attempt> {
    let mut offset = 0;
    while offset < spool.len {
        let chunk = spool
            .read_at(offset)
            .await
            .map_err(|_| Attempt::Failed(UpstreamErrorKind::Other))?;
        match timeout(up.timeouts.write, conn.write_all(&chunk)).await {
            Err(_) => return Err(Attempt::Failed(UpstreamErrorKind::Timeout)),
            // As for the head: resent only if the method is idempotent (`retry`).
            Ok(Err(_)) => return Err(Attempt::NothingBack),
            Ok(Ok(())) => {}
        }
        offset += chunk.len() as u64;
    }
    Ok(())
}

/// The length of the head at the start of `buf`, once its blank line has arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| crate::guard::head::blank_line_after(buf, i))
}

/// The status code of the response head at the start of `buf` (`HTTP/1.x NNN`).
fn status_of(buf: &[u8]) -> Option<u16> {
    let code = buf.get(9..12)?;
    if !buf.starts_with(b"HTTP/1.") || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_end_and_status() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"), Some(25));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 403 Forbidden\r\n"), Some(403));
        assert_eq!(status_of(b"HTTP/2 200\r\n"), None);
    }
}
