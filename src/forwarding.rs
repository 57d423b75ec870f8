//! Request and response header hygiene: X-Forwarded-*, hop-by-hop, underscores, context headers.

use crate::runtime::{ContextHeaders, Runtime};
use http::header::{self, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;

/// Whether a header name belongs to the Django -> proxy context channel.
///
/// Matches the configured names and, whatever the config, anything named `X-Authz-*` or
/// `X-App-Release`, in any case and with `_` for `-`.
pub fn is_context_header(name: &str, ctx: &ContextHeaders) -> bool {
    let b = name.as_bytes();
    let configured = |h: &HeaderName| {
        let h = h.as_str().as_bytes();
        h.len() == b.len()
            && h.iter()
                .zip(b)
                .all(|(h, c)| *h == c.to_ascii_lowercase() || (*h == b'-' && *c == b'_'))
    };
    let folded_prefix = |p: &[u8]| {
        b.len() >= p.len()
            && b[..p.len()]
                .iter()
                .zip(p)
                .all(|(c, p)| c.to_ascii_lowercase() == *p || (*c == b'_' && *p == b'-'))
    };
    if folded_prefix(b"x-authz-") || (b.len() == 13 && folded_prefix(b"x-app-release")) {
        return true;
    }
    ctx.all.iter().any(configured)
}

/// Removes every context header from a response, whatever its status.
///
/// One scan over the names; removals only when a context header is present, and no allocation
/// for up to eight of them (the companion sends two on every response, six on a denial).
pub fn strip_context_from_response(resp: &mut ResponseHeader, ctx: &ContextHeaders) {
    let mut found: [Option<HeaderName>; 8] = Default::default();
    let mut n = 0;
    let mut more: Vec<HeaderName> = Vec::new();
    for k in resp.headers.keys() {
        if is_context_header(k.as_str(), ctx) {
            if n < found.len() {
                found[n] = Some(k.clone());
                n += 1;
            } else {
                more.push(k.clone());
            }
        }
    }
    for name in found.iter().take(n).flatten().chain(more.iter()) {
        resp.remove_header(name);
    }
}

/// Headers that describe one connection and never cross a proxy (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::PROXY_AUTHORIZATION,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What is known of the client connection.
pub struct Client {
    pub ip: Option<IpAddr>,
    pub tls: bool,
}

/// Rewrites the request Django will see.
pub fn prepare_upstream_request(
    req: &mut RequestHeader,
    rt: &Runtime,
    client: &Client,
    request_id: &str,
) {
    // Connection-listed headers go too; an Upgrade (WebSocket) handshake keeps its two headers.
    let upgrade = req
        .headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && req.headers.contains_key(header::UPGRADE);
    let listed: Vec<HeaderName> = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| *n != header::UPGRADE && !is_framing(n))
        .collect();
    for n in listed.iter().chain(HOP_BY_HOP.iter()) {
        req.remove_header(n);
    }
    if upgrade {
        let _ = req.insert_header(header::CONNECTION, "upgrade");
    } else {
        req.remove_header(&header::UPGRADE);
    }

    // Underscored names (nginx drops them: Django folds `_` and `-` into one META key, so a
    // client could shadow a header a trusted proxy set) and context headers from the client.
    let drop: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|k| k.as_str().contains('_') || is_context_header(k.as_str(), &rt.context))
        .cloned()
        .collect();
    for n in drop {
        req.remove_header(&n);
    }

    // HTTP/2 carries the host in :authority; Django needs a Host header.
    if !req.headers.contains_key(header::HOST) {
        if let Some(auth) = req.uri.authority().map(|a| a.as_str().to_string()) {
            let _ = req.insert_header(header::HOST, auth);
        }
    }

    let trusted = client.ip.is_some_and(|ip| rt.is_trusted(ip));
    let ip = client.ip.map(|ip| ip.to_string()).unwrap_or_default();
    if trusted {
        let xff = req
            .headers
            .get(X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .map(|v| format!("{v}, {ip}"));
        let _ = req.insert_header(X_FORWARDED_FOR, xff.unwrap_or_else(|| ip.clone()));
        if !req.headers.contains_key(X_FORWARDED_PROTO) {
            let _ = req.insert_header(X_FORWARDED_PROTO, scheme(client.tls));
        }
        if !req.headers.contains_key(X_REAL_IP) {
            let _ = req.insert_header(X_REAL_IP, ip.as_str());
        }
    } else {
        let _ = req.insert_header(X_FORWARDED_FOR, ip.as_str());
        let _ = req.insert_header(X_FORWARDED_PROTO, scheme(client.tls));
        let _ = req.insert_header(X_REAL_IP, ip.as_str());
        req.remove_header(&X_FORWARDED_HOST);
        req.remove_header(&X_FORWARDED_PORT);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        let _ = req.insert_header(X_REQUEST_ID, v);
    }
}

fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

/// Framing headers stay even when listed in Connection: Pingora needs them to frame the body.
fn is_framing(n: &HeaderName) -> bool {
    *n == header::TRANSFER_ENCODING || *n == header::CONTENT_LENGTH || *n == header::HOST
}

/// The client's request id when it is sane, else a new random one.
pub fn request_id(req: &RequestHeader) -> String {
    if let Some(v) = req.headers.get(X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        {
            if let Ok(s) = v.to_str() {
                return s.to_string();
            }
        }
    }
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ContextHeaders {
        ContextHeaders::default()
    }

    #[test]
    fn context_headers_in_every_spelling() {
        let c = ctx();
        for n in [
            "x-authz-user",
            "X-AUTHZ-USER",
            "x_authz_user",
            "X-Authz-Anything",
            "x-app-release",
            "X_App_Release",
        ] {
            assert!(is_context_header(n, &c), "{n}");
        }
        for n in [
            "x-authz",
            "x-app-release-2",
            "authorization",
            "x-request-id",
        ] {
            assert!(!is_context_header(n, &c), "{n}");
        }
    }

    #[test]
    fn response_strip_removes_strays() {
        let c = ctx();
        let mut r = ResponseHeader::build(403, None).expect("builds");
        r.insert_header("X-Authz-User", "1").expect("insert");
        r.insert_header("x_authz_kind", "csrf").expect("insert");
        r.insert_header("X-Authz-Extra", "1").expect("insert");
        r.insert_header("X-App-Release", "v1").expect("insert");
        r.insert_header("Content-Type", "text/html")
            .expect("insert");
        strip_context_from_response(&mut r, &c);
        let names: Vec<_> = r.headers.keys().map(|k| k.as_str().to_string()).collect();
        assert_eq!(names, vec!["content-type"]);
    }
}
