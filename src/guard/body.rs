//! Request bodies on Pingora's loop: read in full and counted before Django sees anything, as
//! nginx does with `proxy_request_buffering on`.
//!
//! Django cannot read a chunked body under WSGI; here any body up to `limits.max_body_bytes`,
//! sized or not, is read whole and sent on with a `Content-Length` by the upstream codec
//! (`phases::forward`); a larger one gets 413 and never reaches Django. As in nginx, a body
//! is held in memory up to `limits.body_buffer_bytes` and past that written to a file without a
//! name in `limits.body_temp_dir` (`Spool`), so that large uploads cost disk, not memory. The
//! bytes held in memory for all requests together are bounded (`BUFFER_BUDGET`): past it, or
//! when the file cannot be written, a request gets 503 rather than the process growing without
//! end. Upgrades stream (`count_streamed`).

use crate::config::Limits;
use crate::telemetry::vocabulary::RejectReason;
use bytes::{Bytes, BytesMut};
use pingora::protocols::http::ServerSession;
use pingora::{Error, ErrorType, Result};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How long a client may pause while it sends a body read whole (nginx's
/// `client_body_timeout`): past it the request gets 408. An HTTP/2 stream waiting for its body
/// holds a place under the process's stream budget, so it must not wait for ever.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long the rest of a body refused part-way is read and dropped before the connection
/// closes (nginx's `lingering_timeout`), so that the client reads its 413 or 503.
pub const LINGER_AFTER_REFUSAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The most bytes of unsized request bodies held at once, all requests together.
pub const BUFFER_BUDGET: usize = 256 * 1024 * 1024;

/// Bytes of unsized request bodies held now, all requests together.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// A request's share of `BUFFER_BUDGET`, given back when dropped (once its body is sent).
#[must_use]
pub struct BodyLease(usize);

impl BodyLease {
    fn grow(&mut self, n: usize) -> bool {
        if HELD.fetch_add(n, Ordering::Relaxed) + n > BUFFER_BUDGET {
            HELD.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        self.0 += n;
        true
    }
}

impl Drop for BodyLease {
    fn drop(&mut self) {
        HELD.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// What is known of the request body so far.
#[derive(Debug, Default)]
pub struct BodyState {
    /// Bytes seen streaming through to Django.
    pub streamed: u64,
}

/// A request body read in full.
pub enum Body {
    Memory(Bytes),
    File(Spool),
}

impl Body {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(b) => b.len() as u64,
            Body::File(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A body written to a temporary file with no name: it is gone when the last handle is.
pub struct Spool {
    file: Arc<std::fs::File>,
    pub len: u64,
}

/// How much of a spooled body one read takes.
const SPOOL_CHUNK: usize = 64 * 1024;

impl Spool {
    /// A file with no name in `dir` (`O_TMPFILE`), or one unlinked at once where the file
    /// system cannot make those.
    pub fn create(dir: &Path) -> std::io::Result<Spool> {
        let anonymous = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        let file = match anonymous {
            Ok(f) => f,
            Err(_) => {
                let name = dir.join(format!(".authz-edge-body-{:032x}", rand::random::<u128>()));
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&name)?;
                std::fs::remove_file(&name)?;
                f
            }
        };
        Ok(Spool {
            file: Arc::new(file),
            len: 0,
        })
    }

    /// Appends `bytes`. A local file's write returns once the page cache has it, as nginx's
    /// writes of its temp files do.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        (&*self.file).write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Up to `SPOOL_CHUNK` bytes from `offset`, read off the async threads.
    pub async fn read_at(&self, offset: u64) -> std::io::Result<Vec<u8>> {
        let file = self.file.clone();
        let want = SPOOL_CHUNK.min((self.len.saturating_sub(offset)) as usize);
        let read = tokio::task::spawn_blocking(move || {
            let mut chunk = vec![0u8; want];
            file.read_exact_at(&mut chunk, offset).map(|()| chunk)
        });
        read.await.map_err(std::io::Error::other)?
    }

    /// Up to `most` bytes from `offset`, read at once on the calling thread: for a few KiB
    /// that the page cache holds, as nginx reads its temp files, rather than a blocking-pool
    /// thread (and its allocator's heap) per reader.
    pub fn read_now(&self, offset: u64, most: usize) -> std::io::Result<Vec<u8>> {
        let want = most.min((self.len.saturating_sub(offset)) as usize);
        let mut chunk = vec![0u8; want];
        self.file.read_exact_at(&mut chunk, offset)?;
        Ok(chunk)
    }
}

/// Where spooled bodies go: `limits.body_temp_dir`, else the system's temporary directory.
pub fn temp_dir(limits: &Limits) -> PathBuf {
    limits
        .body_temp_dir
        .as_ref()
        .map_or_else(std::env::temp_dir, PathBuf::from)
}

/// A request body read in full, with its share of the memory budget.
pub struct Whole {
    pub body: Body,
    /// Given back once the body is sent.
    pub lease: BodyLease,
    /// Whether Django must be told its length (the request had a body, or said
    /// `Content-Length`).
    pub with_length: bool,
}

impl Whole {
    /// No body: a request sent on to another location after its body went to Django.
    pub fn empty() -> Whole {
        Whole {
            body: Body::Memory(Default::default()),
            lease: BodyLease(0),
            with_length: false,
        }
    }
}

/// Reads the request body in full, sized or not, refusing it when it is too large; answers
/// `Expect: 100-continue` first, as nginx does when it reads a body itself.
pub async fn read_whole(
    session: &mut ServerSession,
    limits: &Limits,
) -> std::result::Result<Whole, RejectReason> {
    let req = session.req_header();
    let sized = req.headers.contains_key(http::header::CONTENT_LENGTH);
    // A declared length over the limit is refused before anything is read (and before
    // `100 Continue`), as nginx does.
    let declared = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(RejectReason::BodyTooLarge);
    }
    let expects = expects_continue(req);
    let http11 = req.version == http::Version::HTTP_11;
    let mut lease = BodyLease(0);
    // An HTTP/2 stream is read to its end whatever `content-length` says: h2 then refuses DATA
    // beyond a `content-length: 0` (or any body longer or shorter than it) before Django is
    // sent anything, where Pingora's `is_body_empty` trusts the header.
    let h2 = session.is_http2();
    if !h2 && session.is_body_empty() {
        let body = Body::Memory(Bytes::new());
        return Ok(Whole {
            body,
            lease,
            with_length: sized,
        });
    }
    if expects && http11 {
        if let Ok(cont) = pingora::http::ResponseHeader::build(100, Some(0)) {
            let _ = session.write_response_header(Box::new(cont)).await;
        }
    }
    let mut memory = BytesMut::new();
    let mut spool: Option<Spool> = None;
    loop {
        let read = tokio::time::timeout(BODY_READ_TIMEOUT, session.read_request_body());
        let chunk = match read.await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => break,
            Ok(Err(_)) => return Err(RejectReason::BadRequest),
            Err(_) => return Err(RejectReason::BodyTimeout),
        };
        let so_far = spool.as_ref().map_or(memory.len() as u64, |s| s.len);
        if so_far + chunk.len() as u64 > limits.max_body_bytes {
            return Err(RejectReason::BodyTooLarge);
        }
        if spool.is_none() && memory.len() + chunk.len() > limits.body_buffer_bytes {
            // Past the memory threshold: what was held moves to a file, and so does the rest.
            let mut file = Spool::create(&temp_dir(limits)).map_err(|e| unwritable(limits, &e))?;
            file.append(&memory).map_err(|e| unwritable(limits, &e))?;
            memory = BytesMut::new();
            lease = BodyLease(0);
            spool = Some(file);
        }
        match spool.as_mut() {
            Some(file) => file.append(&chunk).map_err(|e| unwritable(limits, &e))?,
            None if lease.grow(chunk.len()) => memory.extend_from_slice(&chunk),
            None => return Err(RejectReason::BodyBufferFull),
        }
    }
    if let ServerSession::H2(stream) = session {
        // Request trailers are refused, as nginx 1.22 refuses them (over HTTP/1 a chunked
        // body's trailers are dropped by Pingora's decoder, as nginx drops them).
        match stream.read_trailers().await {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => return Err(RejectReason::BadRequest),
        }
    }
    let body = match spool {
        Some(file) => Body::File(file),
        None => Body::Memory(memory.freeze()),
    };
    let with_length = sized || !body.is_empty();
    Ok(Whole {
        body,
        lease,
        with_length,
    })
}

/// A body that cannot be written to its file: logged (at most once a minute), and the request
/// refused with 503 as when memory runs out.
fn unwritable(limits: &Limits, e: &std::io::Error) -> RejectReason {
    static LAST: AtomicUsize = AtomicUsize::new(0);
    let now = crate::clock::unix_now().0 as usize;
    if now >= LAST.load(Ordering::Relaxed) + 60 {
        LAST.store(now, Ordering::Relaxed);
        tracing::error!(
            dir = %temp_dir(limits).display(),
            "cannot write a request body to limits.body_temp_dir: {e}; such requests get 503"
        );
    }
    RejectReason::BodyBufferFull
}

/// Whether the request asks for `100 Continue` before sending its body.
pub fn expects_continue(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Counts a streamed chunk; past the limit the request fails with 413.
pub fn count_streamed(chunk: Option<&Bytes>, limits: &Limits, state: &mut BodyState) -> Result<()> {
    if let Some(c) = chunk {
        state.streamed += c.len() as u64;
        if state.streamed > limits.max_body_bytes {
            return Error::e_explain(
                ErrorType::HTTPStatus(413),
                "request body over limits.max_body_bytes",
            );
        }
    }
    Ok(())
}
