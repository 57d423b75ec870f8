//! The error log's last line of defence: nothing secret leaves through it.
//!
//! Pingora writes its own error lines (through the `log` crate) with request summaries and,
//! when an upstream sends a head it cannot parse, the raw bytes of that head, which carry
//! Django's `X-Authz-*` context headers. `EdgeProxy::request_summary` already gives Pingora
//! the method and path without the query; this writer, under every error-log line, also cuts
//! raw heads (`buf: …`), blanks any context header's value and drops query strings from
//! request summaries.

use std::io::{self, Write};
use tracing_subscriber::fmt::MakeWriter;

/// Rewrites one formatted log line so that it carries no secret.
pub fn sanitize(line: &str) -> String {
    let mut out = line.to_string();
    // A raw head, as Pingora prints it after `buf: ` (escaped, to the end of the line).
    if let Some(i) = out.find("buf: ") {
        let end = out[i..].find('\n').map_or(out.len(), |e| i + e);
        out.replace_range(i..end, "buf: [raw head withheld]");
    }
    // Context header values, in any case, with `-` or `_`.
    let lower = out.to_ascii_lowercase().replace('_', "-");
    let mut cuts = Vec::new();
    for prefix in ["x-authz-", "x-app-release"] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(prefix) {
            let at = from + i;
            if let Some(colon) = lower[at..].find(':').map(|c| at + c) {
                let name_ok = lower[at..colon]
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-');
                if name_ok {
                    let end = lower[colon..]
                        .find(['\n', ',', '\\'])
                        .map_or(lower.len(), |e| colon + e);
                    cuts.push((colon + 1, end));
                }
            }
            from = at + prefix.len();
        }
    }
    cuts.sort_unstable();
    for (start, end) in cuts.into_iter().rev() {
        out.replace_range(start..end, " [withheld]");
    }
    // A request summary's query: `GET /path?query, Host: …`.
    for method in [
        "GET ", "HEAD ", "POST ", "PUT ", "PATCH ", "DELETE ", "OPTIONS ",
    ] {
        let mut from = 0;
        while let Some(i) = out[from..].find(method) {
            let at = from + i + method.len();
            let end = out[at..]
                .find([' ', ',', '\n'])
                .map_or(out.len(), |e| at + e);
            if let Some(q) = out[at..end].find('?') {
                out.replace_range(at + q..end, "");
            }
            from = at;
        }
    }
    out
}

/// An error-log writer that passes each line through `sanitize`.
pub struct Sanitized<M>(pub M);

pub struct SanitizedWriter<W>(W);

impl<W: Write> Write for SanitizedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(sanitize(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Sanitized<M> {
    type Writer = SanitizedWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        SanitizedWriter(self.0.make_writer())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_heads_context_values_and_queries_are_withheld() {
        let line = "ERROR Fail to proxy: Upstream InvalidHTTPHeader context: buf: HTTP/1.1 200 OK\\r\\nX-Authz-User: 42\\r\\n\\r\\n, GET /reset?token=s3cret, Host: a\n";
        let out = sanitize(line);
        assert!(!out.contains("42") && !out.contains("s3cret"), "{out}");
        assert!(out.contains("buf: [raw head withheld]"), "{out}");
        let out = sanitize(
            "Fail to proxy: Peer: 127.0.0.1:8000, tries: 1, GET /a/b?session=abcdef, Host: shop",
        );
        assert_eq!(
            out,
            "Fail to proxy: Peer: 127.0.0.1:8000, tries: 1, GET /a/b, Host: shop"
        );
        let out = sanitize("header X_Authz_Session: deadbeef, x-app-release: r1\n");
        assert_eq!(
            out,
            "header X_Authz_Session: [withheld], x-app-release: [withheld]\n"
        );
    }
}
