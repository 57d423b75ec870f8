//! `[[static]]`: files served from a directory, as nginx's `alias` did for Django's STATIC_ROOT.
//!
//! MIME types, ETag and Last-Modified with 304, single byte ranges, gzip (a precompressed
//! `.gz` sibling first, else on the fly for small text files). Traversal is refused in every
//! encoding before the file system is touched. The file is opened before any response head
//! goes out: one the proxy's user may not read gets 403, as in nginx, counted in
//! `authz_edge_static_errors_total{reason="permission"}` and logged once per path and minute
//! with the owner, the mode and the fix.
//!
//! Longer than 400 lines because it is nginx's static module in one place (paths, conditional
//! requests, ranges, gzip, errors), with its unit tests beside it.

use crate::response::error_page;
use crate::response::file_access;
use crate::response::header_edits::Edits;
use crate::telemetry::findings;
use crate::telemetry::findings::Findings;
use crate::telemetry::metrics::Metrics;
use bytes::Bytes;
use http::{header, HeaderMap, Method};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// On-the-fly gzip only for files up to this size.
const GZIP_MAX: u64 = 1024 * 1024;
/// Chunk size when streaming a file.
const CHUNK: usize = 64 * 1024;

/// What a request for a static path resolves to, before any I/O is done on the body.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    File(PathBuf),
    /// The path tries to leave the root or is malformed: 400.
    Refused,
}

/// Maps the part of the raw (still percent-encoded) path after the prefix to a file under root.
pub fn resolve(root: &Path, raw_rest: &str) -> Resolved {
    let lower = raw_rest.to_ascii_lowercase();
    // Encoded separators and dots, backslashes and empty segments are never legitimate here.
    if lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%2e")
        || lower.contains("%00")
        || raw_rest.contains('\\')
        || raw_rest.contains("//")
        || raw_rest.starts_with('/')
    {
        return Resolved::Refused;
    }
    let Some(decoded) = percent_decode(raw_rest) else {
        return Resolved::Refused;
    };
    let mut path = root.to_path_buf();
    for seg in decoded.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\\') || seg.contains('\0') {
            return Resolved::Refused;
        }
        path.push(seg);
    }
    Resolved::File(path)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn etag_of(len: u64, mtime: SystemTime) -> String {
    let secs = mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("\"{secs:x}-{len:x}\"")
}

/// Whether the request's validators say the client copy is current.
fn not_modified(req: &HeaderMap, etag: &str, mtime: SystemTime) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*");
    }
    if let Some(ims) = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let mtime_secs = mtime
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let ims_secs = ims
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return mtime_secs <= ims_secs;
    }
    false
}

/// A single byte range `bytes=a-b`, `bytes=a-` or `bytes=-n`, resolved against `len`.
/// `Some(None)` means unsatisfiable; `None` means no usable Range header (serve it all).
pub fn parse_range(v: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multipart ranges: serve the whole file, as RFC 9110 allows
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(None);
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(len.saturating_sub(1))
        };
        if start >= len || start > end {
            return Some(None);
        }
        (start, end)
    };
    Some(Some(range))
}

fn accepts_gzip(req: &HeaderMap) -> bool {
    req.get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let mut parts = t.trim().split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

/// Text, JSON, XML or JavaScript: worth compressing, and worth quoting in a sample.
/// Expects a lower-case MIME type.
pub fn is_textual(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.contains("javascript")
        || mime.contains("json")
        || mime.contains("xml")
        || mime == "image/svg+xml"
}

/// Serves `raw_path` from `mount`; returns the status sent.
/// The directory a finding names for a file under `root`: the root plus the first directory
/// below it (`/srv/static/img`), never the file itself.
pub fn dir_below(root: &Path, file: &Path) -> String {
    let first = file.strip_prefix(root).ok().and_then(|rel| {
        let mut parts = rel.components();
        let first = parts.next()?;
        parts.next().map(|_| first)
    });
    match first {
        Some(f) => root.join(f).display().to_string(),
        None => root.display().to_string(),
    }
}

pub use crate::rules::sites::StaticMount;

/// Serves the file at `rest` (the raw path after the mount's prefix) under the mount, with a
/// location's header rules (`edits`) on every response.
pub async fn serve(
    session: &mut ServerSession,
    mount: &StaticMount,
    rest: &str,
    metrics: &Metrics,
    findings: &Findings,
    edits: Option<&Edits>,
) -> u16 {
    let req = session.req_header();
    let method = req.method.clone();
    if method != Method::GET && method != Method::HEAD {
        return error_page::respond_edited(session, 405, Some("GET, HEAD"), edits).await;
    }
    let path = match resolve(&mount.root, rest) {
        Resolved::File(p) => p,
        Resolved::Refused => return error_page::respond_edited(session, 400, None, edits).await,
    };
    // A symlink or odd path leaving the root is refused after canonicalisation too.
    let inside = match (
        tokio::fs::canonicalize(&path).await,
        tokio::fs::canonicalize(&mount.root).await,
    ) {
        (Ok(p), Ok(root)) => p.starts_with(&root),
        _ => false,
    };
    let meta = match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() && inside => m,
        _ => return error_page::respond_edited(session, 404, None, edits).await,
    };
    // Opened before any head goes out, so that a file the proxy may not read is a 403, not a
    // 200 with no body.
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let permission = e.kind() == std::io::ErrorKind::PermissionDenied;
            metrics.count_static_error(permission);
            log_unreadable(&path, &e);
            if permission {
                let signal = findings::signal::of_unreadable_static(&dir_below(&mount.root, &path));
                let route = metrics.routes.get(&mount.prefix).label.clone();
                findings.observe(&route, signal, crate::clock::unix_now().1);
            }
            let status = if permission { 403 } else { 500 };
            return error_page::respond_edited(session, status, None, edits).await;
        }
    };
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let len = meta.len();
    let etag = etag_of(len, mtime);
    let mime = mime_guess::from_path(&path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let mime = if mime.starts_with("text/") || mime.contains("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let headers = session.req_header().headers.clone();

    let mut resp = match ResponseHeader::build(200, Some(8)) {
        Ok(r) => r,
        Err(_) => return 500,
    };
    let _ = resp.insert_header(header::ETAG, etag.as_str());
    let _ = resp.insert_header(header::LAST_MODIFIED, httpdate::fmt_http_date(mtime));
    let _ = resp.insert_header(header::ACCEPT_RANGES, "bytes");
    let _ = resp.insert_header(header::VARY, "Accept-Encoding");
    if let Some(cc) = &mount.cache_control {
        let _ = resp.insert_header(header::CACHE_CONTROL, cc.as_str());
    }

    if not_modified(&headers, &etag, mtime) {
        resp.set_status(304).ok();
        Edits::apply_opt(edits, &mut resp);
        let _ = session.write_response_header(Box::new(resp)).await;
        return 304;
    }
    let _ = resp.insert_header(header::CONTENT_TYPE, mime.as_str());
    let head_only = method == Method::HEAD;

    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, len));
    match range {
        Some(None) => {
            let mut r = match ResponseHeader::build(416, Some(2)) {
                Ok(r) => r,
                Err(_) => return 500,
            };
            let _ = r.insert_header(header::CONTENT_RANGE, format!("bytes */{len}"));
            send(session, r, Body::Bytes(Bytes::new()), head_only, edits).await;
            return 416;
        }
        Some(Some((start, end))) => {
            resp.set_status(206).ok();
            let _ = resp.insert_header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            let part = Body::File {
                file,
                start,
                len: end - start + 1,
            };
            send(session, resp, part, head_only, edits).await;
            return 206;
        }
        None => {}
    }

    if mount.gzip && is_textual(&mime) && accepts_gzip(&headers) {
        let mut gz_path = path.clone().into_os_string();
        gz_path.push(".gz");
        let gz_path = PathBuf::from(gz_path);
        if let Ok(gz_meta) = tokio::fs::metadata(&gz_path).await {
            // A precompressed sibling the proxy may not read is passed over.
            let gz_file = match gz_meta.is_file() {
                true => tokio::fs::File::open(&gz_path).await.ok(),
                false => None,
            };
            if let Some(gz_file) = gz_file {
                let _ = resp.insert_header(header::CONTENT_ENCODING, "gzip");
                let gz = Body::File {
                    file: gz_file,
                    start: 0,
                    len: gz_meta.len(),
                };
                send(session, resp, gz, head_only, edits).await;
                return 200;
            }
        }
        if len <= GZIP_MAX {
            if let Ok(raw) = tokio::fs::read(&path).await {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                if enc.write_all(&raw).is_ok() {
                    if let Ok(gz) = enc.finish() {
                        let _ = resp.insert_header(header::CONTENT_ENCODING, "gzip");
                        send(
                            session,
                            resp,
                            Body::Bytes(Bytes::from(gz)),
                            head_only,
                            edits,
                        )
                        .await;
                        return 200;
                    }
                }
            }
        }
    }

    let whole = Body::File {
        file,
        start: 0,
        len,
    };
    send(session, resp, whole, head_only, edits).await;
    200
}

/// Paths whose unreadable file was logged, with when: one line per path and minute.
static LOGGED: std::sync::Mutex<Option<std::collections::HashMap<PathBuf, std::time::Instant>>> =
    std::sync::Mutex::new(None);
/// At most this many paths are remembered; past it the memory starts over.
const LOGGED_MAX: usize = 1024;

/// Logs a static file the proxy could not open, once per path and minute, as nginx's
/// `open() "…" failed (13: Permission denied)` does, with who the proxy runs as, the file's
/// owner and mode, and the fix.
fn log_unreadable(path: &Path, e: &std::io::Error) {
    let now = std::time::Instant::now();
    {
        let mut logged = crate::sync::lock(&LOGGED);
        let map = logged.get_or_insert_with(Default::default);
        if map
            .get(path)
            .is_some_and(|t| now.duration_since(*t) < std::time::Duration::from_secs(60))
        {
            return;
        }
        if map.len() >= LOGGED_MAX {
            map.clear();
        }
        map.insert(path.to_path_buf(), now);
    }
    let (uid, gid) = file_access::running_as();
    tracing::error!(
        "static file {}: open() failed ({e}); the proxy runs as uid {uid} gid {gid}, the file is {}; fix: chown {uid}:{gid} {} or chmod o+r {}",
        path.display(),
        file_access::found(path),
        path.display(),
        path.display(),
    );
}

/// What follows a response header.
enum Body {
    Bytes(Bytes),
    /// `len` bytes of an open file from `start`.
    File {
        file: tokio::fs::File,
        start: u64,
        len: u64,
    },
}

/// Sends `resp` with its `Content-Length` taken from `body`; no body for HEAD or when empty.
async fn send(
    session: &mut ServerSession,
    mut resp: ResponseHeader,
    body: Body,
    head_only: bool,
    edits: Option<&Edits>,
) {
    Edits::apply_opt(edits, &mut resp);
    let len = match &body {
        Body::Bytes(b) => b.len() as u64,
        Body::File { len, .. } => *len,
    };
    let _ = resp.insert_header(header::CONTENT_LENGTH, len.to_string());
    let end = head_only || len == 0;
    if session.write_response_header(Box::new(resp)).await.is_err() || end {
        return;
    }
    match body {
        Body::Bytes(b) => {
            let _ = session.write_response_body(b, true).await;
        }
        Body::File { file, start, len } => stream_file(session, file, start, len).await,
    }
}

/// Streams `n` bytes of an open file from `start`, in chunks.
async fn stream_file(session: &mut ServerSession, mut f: tokio::fs::File, start: u64, n: u64) {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    if f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return;
    }
    let mut left = n;
    while left > 0 {
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        match f.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => {
                buf.truncate(k);
                left -= k as u64;
                if session
                    .write_response_body(Bytes::from(buf), left == 0)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused_in_every_encoding() {
        let root = Path::new("/srv/static");
        for bad in [
            "../etc/passwd",
            "%2e%2e/etc/passwd",
            "%2E%2E%2Fetc",
            "a/..%2f..%2fetc",
            "a//b",
            "a\\..\\b",
            "/etc/passwd",
            "a/./b",
            "a/%00b",
            "%c0%ae%c0%ae/x",
        ] {
            assert_eq!(resolve(root, bad), Resolved::Refused, "{bad}");
        }
        assert_eq!(
            resolve(root, "css/site%20a.css"),
            Resolved::File(PathBuf::from("/srv/static/css/site a.css"))
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Some((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Some((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(None));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn gzip_acceptance() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            "br, gzip;q=0.8".parse().expect("v"),
        );
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, "gzip;q=0".parse().expect("v"));
        assert!(!accepts_gzip(&h));
    }
}
