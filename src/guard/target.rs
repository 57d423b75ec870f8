//! The request target and `Host` rules: what nginx refuses before any upstream sees it.
//!
//! - Targets: origin form (`/path?query`) for every method, and absolute form
//!   (`http://host/path`) as nginx takes it, forwarded in origin form. `*` is refused even for
//!   `OPTIONS` (nginx 1.22 does too; Django has no use for it); authority form belongs to
//!   `CONNECT`, which the proxy does not tunnel. `TRACE` is refused with 405, as nginx does.
//! - Paths: percent-escapes must be two hex digits and never `%00`; dot segments, raw or
//!   percent-encoded (`%2e`), must not climb above the root.
//! - `Host`: one on HTTP/1.1, at most one on HTTP/1.0; a reg-name or IP literal with an
//!   optional port, no empty label runs (`..`), no `/`, `\` or `@`.

use crate::telemetry::vocabulary::RejectReason;

/// Checks a request line's method and target.
pub fn check_target(method: &[u8], target: &[u8]) -> Result<(), RejectReason> {
    if method == b"TRACE" || method == b"TRACK" {
        return Err(RejectReason::MethodNotAllowed);
    }
    if memchr::memchr(b'#', target).is_some() {
        // A fragment is not part of a request target (RFC 9112 §3.2).
        return Err(RejectReason::BadRequest);
    }
    if method == b"CONNECT" {
        // Authority form is CONNECT's alone, and the proxy does not tunnel.
        return Err(RejectReason::MethodNotAllowed);
    }
    match target {
        [b'/', ..] => check_path(path_of(target)),
        _ => {
            let rest = strip_scheme(target).ok_or(RejectReason::BadRequest)?;
            let slash = rest.iter().position(|c| *c == b'/' || *c == b'?');
            let (authority, path) = rest.split_at(slash.unwrap_or(rest.len()));
            if !valid_host(authority) {
                return Err(RejectReason::BadHost);
            }
            match path.first() {
                None => Ok(()),
                Some(b'/') => check_path(path_of(path)),
                Some(b'?') => Ok(()),
                Some(_) => Err(RejectReason::BadRequest),
            }
        }
    }
}

/// `http://` or `https://` (any case) removed, or `None`.
fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// The path of an origin-form target: up to `?`.
fn path_of(target: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'?', target).unwrap_or(target.len());
    &target[..end]
}

/// Checks a path: well-formed percent-escapes, no `%00`, no dot segment above the root.
/// An encoded slash (`%2F`) counts as a separator, as nginx decodes it.
pub fn check_path(path: &[u8]) -> Result<(), RejectReason> {
    // Most paths hold neither a dot nor an escape: nothing to check.
    if memchr::memchr2(b'.', b'%', path).is_none() {
        return Ok(());
    }
    let encoded_slash = |w: &[u8]| w[0] == b'%' && w[1] == b'2' && (w[2] | 0x20) == b'f';
    if memchr::memchr(b'%', path).is_some() && path.windows(3).any(encoded_slash) {
        let mut decoded = Vec::with_capacity(path.len());
        let mut i = 0;
        while i < path.len() {
            if path.get(i..i + 3).is_some_and(encoded_slash) {
                decoded.push(b'/');
                i += 3;
            } else {
                decoded.push(path[i]);
                i += 1;
            }
        }
        return check_segments(&decoded);
    }
    check_segments(path)
}

fn check_segments(path: &[u8]) -> Result<(), RejectReason> {
    let mut depth: usize = 0;
    for segment in path.split(|c| *c == b'/').skip(1) {
        let mut dots = 0usize;
        let mut other = false;
        let mut i = 0;
        while i < segment.len() {
            let c = segment[i];
            if c == b'%' {
                let (Some(h), Some(l)) = (segment.get(i + 1), segment.get(i + 2)) else {
                    return Err(RejectReason::BadPath);
                };
                let (Some(h), Some(l)) = (hex(*h), hex(*l)) else {
                    return Err(RejectReason::BadPath);
                };
                let decoded = h << 4 | l;
                if decoded == 0 {
                    return Err(RejectReason::BadPath);
                }
                if decoded == b'.' {
                    dots += 1;
                } else {
                    other = true;
                }
                i += 3;
                continue;
            }
            if c == b'.' {
                dots += 1;
            } else {
                other = true;
            }
            i += 1;
        }
        match (other, dots) {
            (false, 1) => {}
            (false, 2) => {
                depth = depth.checked_sub(1).ok_or(RejectReason::BadPath)?;
            }
            (_, _) if segment.is_empty() => {}
            _ => depth += 1,
        }
    }
    Ok(())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Whether a `Host` value (or an absolute target's authority) is a valid host with an
/// optional port.
pub fn valid_host(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(close) = value.iter().position(|c| *c == b']') else {
            return false;
        };
        let literal = &value[1..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'))
        {
            return false;
        }
        (&value[..=close], &value[close + 1..])
    } else {
        match value.iter().rposition(|c| *c == b':') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, &b""[..]),
        }
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !port_ok || host.is_empty() {
        return false;
    }
    if host[0] == b'[' {
        return true;
    }
    host[0] != b'.'
        && !host.windows(2).any(|w| w == b"..")
        && host.iter().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b'%'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_nginx_takes() {
        for (m, t) in [
            ("GET", "/"),
            ("GET", "/a/b/../c/./d?x=../../.."),
            ("GET", "/a/%2e%2E/b"),
            ("GET", "/%41%7e/x"),
            ("GET", "/a//b/"),
            ("GET", "http://shop.test/a"),
            ("GET", "http://shop.test?x=1"),
            ("GET", "HTTPS://shop.test:8443"),
            ("POST", "http://[::1]:80/x?y"),
        ] {
            assert_eq!(check_target(m.as_bytes(), t.as_bytes()), Ok(()), "{m} {t}");
        }
    }

    #[test]
    fn each_refused_target_has_its_reason() {
        use RejectReason::*;
        for (m, t, why) in [
            ("GET", "/..", BadPath),
            ("GET", "/a/../../b", BadPath),
            ("GET", "/%2e%2e/etc/passwd", BadPath),
            ("GET", "/a/.%2E/.%2e/b", BadPath),
            ("GET", "/%zz", BadPath),
            ("GET", "/%4", BadPath),
            ("GET", "/a%", BadPath),
            ("GET", "/a%00b", BadPath),
            ("GET", "/%2e%2e%2fp", BadPath),
            ("GET", "/a%2F..%2F..%2Fb", BadPath),
            ("GET", "/p#frag", BadRequest),
            ("GET", "*", BadRequest),
            ("OPTIONS", "*", BadRequest),
            ("GET", "a/b", BadRequest),
            ("GET", "shop.test:80", BadRequest),
            ("GET", "ftp://shop.test/", BadRequest),
            ("GET", "http://u@h/", BadHost),
            ("GET", "http://a..b/", BadHost),
            ("GET", "http:///x", BadHost),
            ("CONNECT", "shop.test:443", MethodNotAllowed),
            ("TRACE", "/", MethodNotAllowed),
        ] {
            assert_eq!(
                check_target(m.as_bytes(), t.as_bytes()),
                Err(why),
                "{m} {t}"
            );
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "shop.test",
            "shop.test:8080",
            "127.0.0.1",
            "[::1]:443",
            "a_b.example",
            "x",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", ":80", ".shop", "a..b", "a/b", "a\\b", "u@h", "h:8x", "h:123456", "[::1", "[zz]",
            "h h",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }
}
