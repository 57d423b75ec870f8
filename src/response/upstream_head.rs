//! The rules an upstream response head must meet, in both proxy loops: one framing, stated
//! once; a real status; within the same caps as a request head. A head that breaks one is a
//! 502 (counted as `kind="other"`), never passed on: an ambiguous framing is how responses
//! are smuggled, and nginx refuses the same heads.

use crate::config::Limits;

/// Why a response head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A status code below 100.
    Status,
    /// A `Content-Length` that is not one decimal number.
    BadLength,
    /// More than one `Content-Length` line, even with equal values (nginx: "upstream sent
    /// duplicate header line").
    DuplicateLength,
    /// A `Transfer-Encoding` other than a single `chunked`, or on more than one line.
    BadTransferEncoding,
    /// Both `Content-Length` and `Transfer-Encoding`.
    BothFramings,
    /// More header lines than `limits.max_headers`.
    TooManyHeaders,
    /// More header bytes than `limits.max_header_bytes`.
    TooLarge,
}

/// How the head frames its body, when it is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Framing {
    pub length: Option<u64>,
    pub chunked: bool,
}

/// A decimal `Content-Length` value: digits only (optional surrounding blanks), no sign, no
/// overflow.
pub fn digits(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Parses a complete response head with httparse's strict defaults (no obs-fold, no space
/// before a colon) into `headers`, and checks it by `check`. The relay and its path for
/// Pingora's loop both read Django's heads through this.
pub fn parse<'h, 'b>(
    head: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
    limits: &Limits,
) -> Option<(httparse::Response<'h, 'b>, Framing)> {
    let mut p = httparse::Response::new(headers);
    let Ok(httparse::Status::Complete(_)) = p.parse(head) else {
        return None;
    };
    let (status, _) = (p.code?, p.version?);
    let framing = check(
        status,
        p.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
        limits,
    )
    .ok()?;
    Some((p, framing))
}

/// Checks a final response head's status and headers (names and values as received).
pub fn check<'a>(
    status: u16,
    headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    limits: &Limits,
) -> Result<Framing, Fault> {
    if status < 100 {
        return Err(Fault::Status);
    }
    let mut framing = Framing::default();
    let (mut count, mut bytes, mut te_lines) = (0usize, 0usize, 0u8);
    for (name, value) in headers {
        count += 1;
        bytes += name.len() + value.len() + 4;
        if name.eq_ignore_ascii_case(b"content-length") {
            if framing.length.is_some() {
                return Err(Fault::DuplicateLength);
            }
            framing.length = Some(digits(value).ok_or(Fault::BadLength)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_lines += 1;
            if te_lines > 1 || !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(Fault::BadTransferEncoding);
            }
            framing.chunked = true;
        }
    }
    if count > limits.max_headers {
        return Err(Fault::TooManyHeaders);
    }
    if bytes > limits.max_header_bytes {
        return Err(Fault::TooLarge);
    }
    if framing.chunked && framing.length.is_some() {
        return Err(Fault::BothFramings);
    }
    Ok(framing)
}

/// Whether an interim (1xx) response may go on to the client: `100 Continue` only when the
/// request asked for it with `Expect: 100-continue`, `101` only after an upgrade request.
/// Anything else (a stray `100`, `102`, `103`, an unknown 1xx) is a 502: nginx 1.22 passes no
/// 1xx from an upstream either, and `103 Early Hints` could carry headers past the rules for
/// final responses. The relay sends neither `Expect` nor `Upgrade`, so it refuses every 1xx.
pub fn interim_allowed(status: u16, asked_continue: bool, asked_upgrade: bool) -> bool {
    match status {
        100 => asked_continue,
        101 => asked_upgrade,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits {
            max_headers: 4,
            max_header_bytes: 64,
            ..Limits::default()
        }
    }

    fn check_h(status: u16, h: &[(&str, &str)]) -> Result<Framing, Fault> {
        check(
            status,
            h.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &lim(),
        )
    }

    #[test]
    fn one_framing_is_taken() {
        assert_eq!(
            check_h(200, &[("Content-Length", " 12 ")]),
            Ok(Framing {
                length: Some(12),
                chunked: false
            })
        );
        assert_eq!(
            check_h(200, &[("transfer-encoding", "Chunked")]),
            Ok(Framing {
                length: None,
                chunked: true
            })
        );
        assert_eq!(check_h(204, &[]), Ok(Framing::default()));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        type Case<'a> = (u16, &'a [(&'a str, &'a str)], Fault);
        let cases: [Case; 11] = [
            (0, &[], Fault::Status),
            (99, &[], Fault::Status),
            (
                200,
                &[("Content-Length", "5"), ("Content-Length", "5")],
                Fault::DuplicateLength,
            ),
            (200, &[("Content-Length", "5, 5")], Fault::BadLength),
            (200, &[("Content-Length", "-1")], Fault::BadLength),
            (200, &[("Content-Length", "")], Fault::BadLength),
            (
                200,
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "chunked"),
                ],
                Fault::BadTransferEncoding,
            ),
            (
                200,
                &[("Transfer-Encoding", "gzip, chunked")],
                Fault::BadTransferEncoding,
            ),
            (
                200,
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
                Fault::BothFramings,
            ),
            (
                200,
                &[("A", "1"), ("B", "1"), ("C", "1"), ("D", "1"), ("E", "1")],
                Fault::TooManyHeaders,
            ),
            (200, &[("A", &"x".repeat(80))], Fault::TooLarge),
        ];
        for (status, h, fault) in cases {
            assert_eq!(check_h(status, h), Err(fault), "{status} {h:?}");
        }
    }

    #[test]
    fn interim_statuses() {
        assert!(interim_allowed(100, true, false));
        assert!(interim_allowed(101, false, true));
        for s in [100, 101, 102, 103, 150, 199] {
            assert!(!interim_allowed(s, false, false), "{s}");
        }
        assert!(!interim_allowed(103, true, true));
    }

    #[test]
    fn content_length_digits() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b" 1234 "), Some(1234));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1 2",
            b"0x10",
            b"99999999999999999999",
        ] {
            assert_eq!(digits(bad), None);
        }
    }
}
