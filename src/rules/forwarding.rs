//! Request and response header hygiene: X-Forwarded-*, hop-by-hop, underscores, context headers.
//!
//! Longer than 400 lines only with its unit tests, which sit beside the code.

use crate::rules::context::ContextHeaders;
use http::header::{self, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;

/// Whether a header name belongs to the Django -> proxy context channel.
///
/// Matches the configured names and, whatever the config, anything named `X-Authz-*` or
/// `X-App-Release`, in any case and with `_` for `-`.
pub fn is_context_header(name: impl AsRef<[u8]>, ctx: &ContextHeaders) -> bool {
    let b = name.as_ref();
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
/// One scan over the names. The configured names (the companion sends two on every response,
/// six on a denial) are removed by reference; only stray spellings are cloned.
pub fn strip_context_from_response(resp: &mut ResponseHeader, ctx: &ContextHeaders) {
    let mut configured = [false; 6];
    let mut strays: Vec<HeaderName> = Vec::new();
    for k in resp.headers.keys() {
        if let Some(i) = ctx.all.iter().position(|h| h == k) {
            configured[i] = true;
        } else if is_context_header(k.as_str(), ctx) {
            strays.push(k.clone());
        }
    }
    for (name, _) in ctx
        .all
        .iter()
        .zip(configured)
        .filter(|(_, present)| *present)
    {
        resp.remove_header(name);
    }
    for name in &strays {
        resp.remove_header(name);
    }
}

/// Headers that describe one connection and never cross a proxy (RFC 9110 7.6.1), and
/// `Upgrade` (kept only for an upgrade handshake, which the relay never takes).
static HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "proxy-authorization",
    "upgrade",
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// Client-supplied forwarding headers, rewritten or checked below.
static FORWARDED: [&str; 5] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
];
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the rewrite does with a client's request header, by its name alone (any case). Both
/// proxy loops follow it: Pingora's on the header map, the relay on the raw head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Keep,
    /// Removed; so are the names `Connection` lists (`listed_in_connection`).
    HopByHop,
    /// Kept from a trusted peer only (`keeps_forwarded`); the proxy sets its own.
    Forwarded,
    Host,
    /// Replaced by the request id (`request_id`).
    RequestId,
    /// Removed: underscored names (nginx drops them: Django folds `_` and `-` into one META
    /// key, so a client could shadow a header a trusted proxy set) and context headers.
    Drop,
}

/// The fate of a request header named `name`.
pub fn fate(name: &[u8], ctx: &ContextHeaders) -> Fate {
    let is = |n: &&str| name.eq_ignore_ascii_case(n.as_bytes());
    if HOP_BY_HOP.iter().any(is) {
        Fate::HopByHop
    } else if FORWARDED.iter().any(is) {
        Fate::Forwarded
    } else if is(&"host") {
        Fate::Host
    } else if is(&"x-request-id") {
        Fate::RequestId
    } else if name.contains(&b'_') || is_context_header(name, ctx) {
        Fate::Drop
    } else {
        Fate::Keep
    }
}

/// Whether a client's forwarding header `name` reaches Django: from a trusted peer, all but
/// `X-Forwarded-For` (which is extended instead); from anyone else, none.
pub fn keeps_forwarded(name: &[u8], trusted: bool) -> bool {
    trusted && !name.eq_ignore_ascii_case(b"x-forwarded-for")
}

/// The names a `Connection` value lists for removal: valid names other than `Upgrade` and the
/// framing headers, which stay whatever it says.
pub fn listed_in_connection(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| HeaderName::from_bytes(t).is_ok())
        .filter(|t| {
            !["upgrade", "transfer-encoding", "content-length", "host"]
                .iter()
                .any(|n| t.eq_ignore_ascii_case(n.as_bytes()))
        })
}

/// The client's own forwarding headers, as far as the proxy's values depend on them.
#[derive(Default)]
pub struct SeenForwarded<'a> {
    pub xff: Option<&'a [u8]>,
    pub proto: bool,
    pub real_ip: bool,
}

/// The forwarding headers and request id the proxy sets on the request to Django.
pub fn forwarded_values(
    trusted: bool,
    seen: &SeenForwarded<'_>,
    client: &Client,
    request_id: &str,
) -> SetHeaders {
    let mut set = SetHeaders::default();
    let ip = client
        .ip
        .map(ip_value)
        .unwrap_or(HeaderValue::from_static(""));
    let xff = match seen.xff.filter(|_| trusted) {
        Some(v) => {
            let mut joined = Vec::with_capacity(v.len() + 2 + ip.len());
            joined.extend_from_slice(v);
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(ip.as_bytes());
            HeaderValue::from_bytes(&joined).unwrap_or_else(|_| ip.clone())
        }
        None => ip.clone(),
    };
    set.push("X-Forwarded-For", xff);
    if !(trusted && seen.proto) {
        set.push(
            "X-Forwarded-Proto",
            HeaderValue::from_static(scheme(client.tls)),
        );
    }
    if !(trusted && seen.real_ip) {
        set.push("X-Real-IP", ip);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        set.push("X-Request-Id", v);
    }
    set
}

/// What is known of the client connection.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub tls: bool,
}

/// Headers the proxy sets on the request to Django, beyond those it keeps.
#[derive(Default)]
pub struct SetHeaders {
    list: [Option<(&'static str, HeaderValue)>; 4],
}

impl SetHeaders {
    fn push(&mut self, name: &'static str, value: HeaderValue) {
        if let Some(slot) = self.list.iter_mut().find(|s| s.is_none()) {
            *slot = Some((name, value));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(&'static str, HeaderValue)> {
        self.list.iter().flatten()
    }
}

/// `forwarding.trusted_proxies`, parsed: the proxies whose X-Forwarded-* headers are kept.
#[derive(Debug, Default)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// Rewrites the request Django will see, on Pingora's path (upgrades). The relay's loops write
/// the same straight to the wire, from the raw head or from a header map
/// (`upstream::request_head`).
///
/// One scan over the names decides what to remove, so a request without hop-by-hop, context or
/// forwarded headers pays for no removals; names are inserted as `&'static str` (title case on
/// the wire, one allocation fewer than a `HeaderName` in Pingora's case-preserving map).
pub fn prepare_upstream_request(
    req: &mut RequestHeader,
    context: &ContextHeaders,
    trusted: &TrustedProxies,
    client: &Client,
    request_id: &str,
) {
    // An absolute-form target goes on in origin form, as nginx sends it (Pingora keeps the
    // client's bytes for the wire until the URI is set anew).
    if !req.raw_path().starts_with(b"/") {
        let origin = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let origin = if origin.starts_with('/') {
            origin.to_string()
        } else {
            format!("/{origin}")
        };
        if let Ok(uri) = http::Uri::try_from(origin) {
            req.set_uri(uri);
        }
    }
    let mut hop_by_hop = false;
    let mut forwarded = false;
    let mut has_host = false;
    let mut has_request_id = false;
    let mut drop: Vec<HeaderName> = Vec::new();
    for k in req.headers.keys() {
        match fate(k.as_str().as_bytes(), context) {
            Fate::HopByHop => hop_by_hop = true,
            Fate::Forwarded => forwarded = true,
            Fate::Host => has_host = true,
            Fate::RequestId => has_request_id = true,
            Fate::Drop => drop.push(k.clone()),
            Fate::Keep => {}
        }
    }
    if hop_by_hop {
        remove_hop_by_hop(req);
    }
    for n in &drop {
        req.remove_header(n);
    }

    // HTTP/2 carries the host in :authority; Django needs a Host header.
    if !has_host {
        if let Some(auth) = req.uri.authority().map(|a| a.as_str().to_string()) {
            let _ = req.insert_header(header::HOST, auth);
        }
    }

    let trusted = client.ip.is_some_and(|ip| trusted.contains(ip));
    let seen = SeenForwarded {
        xff: req.headers.get(X_FORWARDED_FOR).map(|v| v.as_bytes()),
        proto: req.headers.contains_key(X_FORWARDED_PROTO),
        real_ip: req.headers.contains_key(X_REAL_IP),
    };
    let set = forwarded_values(trusted, &seen, client, request_id);
    if forwarded {
        for name in FORWARDED {
            if !keeps_forwarded(name.as_bytes(), trusted) {
                req.remove_header(name);
            }
        }
    }
    if has_request_id {
        req.remove_header(&X_REQUEST_ID);
    }
    for (name, value) in set.list.into_iter().flatten() {
        let _ = req.append_header(name, value);
    }
}

/// An HTTP/1 upgrade request: `upgrade` among the tokens of any `Connection` header, with an
/// `Upgrade` header. Pingora's loop takes such a request as an upgrade (`phases::handle`), and
/// its headers then keep the two.
pub fn is_upgrade(req: &RequestHeader) -> bool {
    let listed = req.headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    listed && req.headers.contains_key(header::UPGRADE)
}

/// Removes hop-by-hop headers and those listed in Connection; an Upgrade (WebSocket)
/// handshake keeps its two headers.
fn remove_hop_by_hop(req: &mut RequestHeader) {
    let upgrade = is_upgrade(req);
    let listed: Vec<HeaderName> = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| listed_in_connection(v.as_bytes()))
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .collect();
    for n in &listed {
        req.remove_header(n);
    }
    // `Upgrade` last, below: an upgrade handshake keeps it.
    for n in HOP_BY_HOP.iter().filter(|n| **n != "upgrade") {
        req.remove_header(*n);
    }
    if upgrade {
        let _ = req.insert_header(header::CONNECTION, "upgrade");
    } else {
        req.remove_header(&header::UPGRADE);
    }
}

/// The client address as a header value; IPv4 without the formatting machinery.
fn ip_value(ip: IpAddr) -> HeaderValue {
    let IpAddr::V4(v4) = ip else {
        return HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static(""));
    };
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        let (h, t, o) = (octet / 100, octet / 10 % 10, octet % 10);
        if h > 0 {
            buf[n] = b'0' + h;
            n += 1;
        }
        if h > 0 || t > 0 {
            buf[n] = b'0' + t;
            n += 1;
        }
        buf[n] = b'0' + o;
        n += 1;
    }
    HeaderValue::from_bytes(&buf[..n]).unwrap_or(HeaderValue::from_static(""))
}

fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

/// Joins an HTTP/2 request's `cookie` fields into one, with `"; "` (RFC 9113 §8.2.3). Browsers
/// send each cookie as a field of its own, for HPACK; Django reads one `Cookie` header, and
/// `django.http.parse_cookie` takes fields joined with `,` for one cookie. Done once, where an
/// HTTP/2 stream's request enters (`accept::h2`), so that the head Django gets, the keyed
/// session hash and the sample all see the joined value.
pub fn join_cookies(req: &mut RequestHeader) {
    let mut fields = req.headers.get_all(http::header::COOKIE).iter();
    let (Some(_), Some(_)) = (fields.next(), fields.next()) else {
        return;
    };
    let mut joined = Vec::new();
    for (i, v) in req.headers.get_all(http::header::COOKIE).iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    // Each field was a valid value, and so is their join.
    if let Ok(v) = http::HeaderValue::from_bytes(&joined) {
        let _ = req.insert_header(http::header::COOKIE, v);
    }
}

/// The client's request id when it is sane, else a new random one.
pub fn request_id(req: &RequestHeader) -> String {
    request_id_from(req.headers.get(X_REQUEST_ID).map(|v| v.as_bytes()))
}

/// The request id for a request whose `X-Request-Id` value is `client`.
pub fn request_id_from(client: Option<&[u8]>) -> String {
    if let Some(b) = client {
        if !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        {
            if let Ok(s) = std::str::from_utf8(b) {
                return s.to_string();
            }
        }
    }
    hex::encode(rand::random::<u128>().to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ContextHeaders {
        ContextHeaders::default()
    }

    #[test]
    fn http2_cookie_fields_are_joined_once() {
        let mut req = RequestHeader::build("GET", b"/", None).expect("req");
        req.append_header("cookie", "csrftoken=abc").expect("h");
        req.append_header("accept", "*/*").expect("h");
        req.append_header("cookie", "sessionid=s3cr3t").expect("h");
        req.append_header("cookie", "theme=dark").expect("h");
        join_cookies(&mut req);
        let all: Vec<_> = req.headers.get_all("cookie").iter().collect();
        assert_eq!(all, ["csrftoken=abc; sessionid=s3cr3t; theme=dark"]);
        assert_eq!(req.headers.len(), 2);
        // One field stays as it is.
        let mut one = RequestHeader::build("GET", b"/", None).expect("req");
        one.append_header("cookie", "a=1, b=2").expect("h");
        join_cookies(&mut one);
        assert_eq!(one.headers["cookie"], "a=1, b=2");
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
    fn client_address_values() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "127.0.0.1",
            "192.168.100.5",
            "203.0.113.90",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            let v = ip_value(ip.parse().expect("ip"));
            assert_eq!(v.to_str().expect("ascii"), ip);
        }
    }

    #[test]
    fn new_request_ids_are_32_hex() {
        let req = RequestHeader::build("GET", b"/", None).expect("req");
        let a = request_id(&req);
        let b = request_id(&req);
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn an_upgrade_keeps_its_two_headers_whichever_connection_header_says_it() {
        let ctx = ctx();
        let client = Client {
            ip: Some("192.0.2.1".parse().expect("ip")),
            tls: false,
        };
        let mut req = RequestHeader::build("GET", b"/ws/", None).expect("req");
        req.append_header("Connection", "keep-alive").expect("h");
        req.append_header("Connection", "Upgrade").expect("h");
        req.append_header("Upgrade", "websocket").expect("h");
        req.append_header("Keep-Alive", "timeout=5").expect("h");
        assert!(is_upgrade(&req));
        prepare_upstream_request(&mut req, &ctx, &TrustedProxies::default(), &client, "r");
        let values = |n: &str| -> Vec<&str> {
            req.headers
                .get_all(n)
                .iter()
                .map(|v| v.to_str().expect("ascii"))
                .collect()
        };
        assert_eq!(values("connection"), ["upgrade"]);
        assert_eq!(values("upgrade"), ["websocket"]);
        assert!(values("keep-alive").is_empty());

        let mut req = RequestHeader::build("GET", b"/", None).expect("req");
        req.append_header("Connection", "upgrade").expect("h");
        assert!(!is_upgrade(&req), "no Upgrade header");
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
