//! The HTTP writer: NDJSON batches by POST (Vector's `http_server` source, or any collector),
//! with a timeout, bounded retries and exponential backoff. Plain HTTP only.

use crate::config::parse_url;
use crate::config::Sink as SinkConfig;
use pingora::server::ShutdownWatch;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct HttpOutput {
    host_port: String,
    path: String,
    timeout: Duration,
    retries: u32,
}

impl HttpOutput {
    pub fn new(c: &SinkConfig) -> Self {
        let (host_port, path) = c
            .url
            .as_deref()
            .and_then(parse_url)
            .unwrap_or_else(|| ("127.0.0.1:9".into(), "/".into()));
        HttpOutput {
            host_port,
            path,
            timeout: c.timeout.0,
            retries: c.retries,
        }
    }

    async fn post_once(&self, body: &[u8]) -> Result<u16, String> {
        let attempt = async {
            let mut s = TcpStream::connect(&self.host_port)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let head = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                self.path,
                self.host_port,
                body.len()
            );
            s.write_all(head.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            s.write_all(body).await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            let line = std::str::from_utf8(&buf[..n]).unwrap_or("");
            line.split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| "no HTTP status".to_string())
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }

    /// Posts one batch; retries with backoff; false when it was given up.
    pub async fn post(&mut self, lines: &[String], shutdown: Option<&ShutdownWatch>) -> bool {
        let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            body.extend_from_slice(l.as_bytes());
            body.push(b'\n');
        }
        let mut backoff = Duration::from_millis(100);
        for attempt in 0..=self.retries {
            match self.post_once(&body).await {
                Ok(code) if (200..300).contains(&code) => return true,
                Ok(code) if (400..500).contains(&code) && code != 429 => {
                    tracing::warn!("diagnostics sink refused a batch with {code}; dropping it");
                    return false;
                }
                Ok(code) => tracing::debug!("diagnostics sink answered {code}"),
                Err(e) => tracing::debug!("diagnostics sink: {e}"),
            }
            if attempt == self.retries || shutdown.is_some_and(|s| *s.borrow()) {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        tracing::warn!(
            "diagnostics sink {} unreachable; dropped {} records",
            self.host_port,
            lines.len()
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8686/authz"),
            Some(("127.0.0.1:8686".into(), "/authz".into()))
        );
        assert_eq!(
            parse_url("http://collector"),
            Some(("collector:80".into(), "/".into()))
        );
        assert_eq!(parse_url("https://x/"), None);
    }
}
