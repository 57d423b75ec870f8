//! A location's response header rules, filled for one request: headers added (nginx's
//! `add_header`, on success statuses unless `always`) and upstream headers hidden (nginx's
//! `proxy_hide_header`), applied to every response the location sends: Django's, a file, an
//! error page, a `return`.

use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;

#[derive(Debug, Default)]
pub struct Edits {
    pub add: Vec<(HeaderName, HeaderValue, bool)>,
    pub hide: Vec<HeaderName>,
    /// Set, replacing the proxy's own (the headers nginx keeps from a response that carried
    /// `X-Accel-Redirect`: `Content-Type`, `Content-Disposition`, `Cache-Control`, `Expires`,
    /// `Set-Cookie`, `Accept-Ranges`).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// The status sent instead (an error page keeps the status that led to it).
    pub status: Option<u16>,
    /// nginx's `expires` on success statuses: `Expires` and `Cache-Control: max-age`;
    /// `Some(None)` is `epoch` (`no-cache`).
    pub expires: Option<Option<std::time::Duration>>,
}

/// The statuses nginx's `add_header` applies to without `always`.
pub fn adds_without_always(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

impl Edits {
    /// Hides, then appends the added headers (nginx adds; it does not replace Django's own).
    pub fn apply(&self, resp: &mut ResponseHeader) {
        if let Some(s) = self.status {
            let _ = resp.set_status(s);
        }
        for h in &self.hide {
            let _ = resp.remove_header(h);
        }
        for (i, (name, value)) in self.set.iter().enumerate() {
            // A name given several times (`Set-Cookie`), in a row, keeps them all.
            if i == 0 || self.set[i - 1].0 != *name {
                let _ = resp.insert_header(name.clone(), value.clone());
            } else {
                let _ = resp.append_header(name.clone(), value.clone());
            }
        }
        let ok = adds_without_always(resp.status.as_u16());
        if let (true, Some(e)) = (ok, self.expires) {
            let (expires, cache) = match e {
                Some(d) => (
                    httpdate::fmt_http_date(std::time::SystemTime::now() + d),
                    format!("max-age={}", d.as_secs()),
                ),
                None => (
                    "Thu, 01 Jan 1970 00:00:01 GMT".to_string(),
                    "no-cache".to_string(),
                ),
            };
            let _ = resp.insert_header(http::header::EXPIRES, expires);
            let _ = resp.insert_header(http::header::CACHE_CONTROL, cache);
        }
        for (name, value, always) in &self.add {
            if *always || ok {
                let _ = resp.append_header(name.clone(), value.clone());
            }
        }
    }

    /// `apply` when there are edits.
    pub fn apply_opt(edits: Option<&Edits>, resp: &mut ResponseHeader) {
        if let Some(e) = edits {
            e.apply(resp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_on_success_unless_always_and_hidden_always() {
        let e = Edits {
            add: vec![
                (
                    HeaderName::from_static("x-frame-options"),
                    HeaderValue::from_static("DENY"),
                    false,
                ),
                (
                    HeaderName::from_static("strict-transport-security"),
                    HeaderValue::from_static("max-age=31536000"),
                    true,
                ),
            ],
            hide: vec![HeaderName::from_static("x-powered-by")],
            set: Vec::new(),
            status: None,
            expires: None,
        };
        let mut ok = ResponseHeader::build(200, None).expect("head");
        ok.insert_header("x-powered-by", "Django").expect("insert");
        ok.insert_header("x-frame-options", "SAMEORIGIN")
            .expect("insert");
        e.apply(&mut ok);
        assert!(ok.headers.get("x-powered-by").is_none());
        let xfo: Vec<_> = ok.headers.get_all("x-frame-options").iter().collect();
        assert_eq!(xfo, ["SAMEORIGIN", "DENY"], "appended, as nginx does");
        let mut denied = ResponseHeader::build(403, None).expect("head");
        e.apply(&mut denied);
        assert!(denied.headers.get("x-frame-options").is_none());
        assert_eq!(
            denied.headers["strict-transport-security"],
            "max-age=31536000"
        );
    }
}
