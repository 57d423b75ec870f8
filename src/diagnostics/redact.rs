//! What a sample's body excerpt must not show: the request's cookies and credentials, CSRF
//! form tokens and long token-like runs, each replaced by `[redacted]`.

use pingora::http::RequestHeader;

/// Values from the request that must never appear in a sample's body excerpt: each cookie
/// (name and value), and the credentials after the `Authorization` scheme, however spaced.
pub fn secrets(req: &RequestHeader) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in req.headers.get_all(http::header::COOKIE) {
        for pair in v.as_bytes().split(|b| *b == b';') {
            if let Some(eq) = pair.iter().position(|b| *b == b'=') {
                let name = pair[..eq].trim_ascii();
                let value = pair[eq + 1..].trim_ascii();
                if !value.is_empty() {
                    out.push((
                        String::from_utf8_lossy(name).into_owned(),
                        String::from_utf8_lossy(value).into_owned(),
                    ));
                }
            }
        }
    }
    if let Some(v) = req.headers.get(http::header::AUTHORIZATION) {
        let v = v.as_bytes().trim_ascii();
        if let Some(sp) = v.iter().position(u8::is_ascii_whitespace) {
            let cred = v[sp..].trim_ascii();
            if !cred.is_empty() {
                out.push((String::new(), String::from_utf8_lossy(cred).into_owned()));
            }
        }
    }
    out
}

/// A value this long is redacted wherever it appears; a shorter one only as `name=value`.
const BARE_SECRET_MIN: usize = 6;
/// A run of token characters this long, with letters and digits, is taken for a secret
/// (session keys, CSRF tokens, signed values) and redacted wherever it appears.
const TOKEN_RUN_MIN: usize = 32;
/// The shortest CSRF form token redacted after `csrfmiddlewaretoken`.
const CSRF_TOKEN_MIN: usize = 8;

/// Removes the request's secrets, CSRF tokens and long token-like runs from a body excerpt.
pub fn redact(text: &str, secrets: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (name, value) in secrets {
        if !name.is_empty() {
            out = out.replace(&format!("{name}={value}"), &format!("{name}=[redacted]"));
        }
        if value.len() >= BARE_SECRET_MIN {
            out = out.replace(value.as_str(), "[redacted]");
        }
    }
    // csrfmiddlewaretoken in any form: value="…", value='…', "…": "…", …=…&. The token is the
    // first run of token characters of CSRF_TOKEN_MIN or more within a short window after the
    // name (Django's are 32 or 64 characters).
    let mut from = 0;
    while let Some(i) = out[from..].find("csrfmiddlewaretoken") {
        let at = from + i + "csrfmiddlewaretoken".len();
        from = at;
        let found = token_runs(&out.as_bytes()[at..])
            .take_while(|r| r.start < 64)
            .map(|r| at + r.start..at + r.end)
            .find(|r| r.len() >= CSRF_TOKEN_MIN && &out[r.clone()] != "csrfmiddlewaretoken");
        if let Some(r) = found {
            let start = r.start;
            out.replace_range(r, "[redacted]");
            from = start + "[redacted]".len();
        }
    }
    redact_token_runs(&out)
}

/// The runs of token characters (letters, digits, `-`, `_`) in `b`, as ranges.
fn token_runs(b: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let is_tok = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = i + b.get(i..)?.iter().position(is_tok)?;
        let end = b[start..]
            .iter()
            .position(|c| !is_tok(c))
            .map_or(b.len(), |e| start + e);
        i = end;
        Some(start..end)
    })
}

/// Replaces runs of at least `TOKEN_RUN_MIN` token characters holding both letters and digits.
fn redact_token_runs(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in token_runs(b) {
        let run = &b[r.clone()];
        let mixed = run.iter().any(u8::is_ascii_digit) && run.iter().any(u8::is_ascii_alphabetic);
        if run.len() >= TOKEN_RUN_MIN && mixed {
            out.push_str(&text[last..r.start]);
            out.push_str("[redacted]");
            last = r.end;
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn redaction_of_secrets_and_form_tokens() {
        let body = r#"<p>sess abc123xyz</p><input name="csrfmiddlewaretoken" value="TOKEN123456">"#;
        let out = redact(body, &[secret("sessionid", "abc123xyz")]);
        assert_eq!(
            out,
            r#"<p>sess [redacted]</p><input name="csrfmiddlewaretoken" value="[redacted]">"#
        );
    }

    #[test]
    fn short_values_token_forms_and_long_runs_are_redacted() {
        let out = redact(
            "cookie sessionid=abc; other abc",
            &[secret("sessionid", "abc")],
        );
        assert_eq!(out, "cookie sessionid=[redacted]; other abc");
        for body in [
            r#"{"csrfmiddlewaretoken": "Zq81kPz0aa"}"#,
            "csrfmiddlewaretoken=Zq81kPz0aa&x=1",
            "<input value='Zq81kPz0aa' name='csrfmiddlewaretoken'> csrfmiddlewaretoken='Zq81kPz0aa'",
        ] {
            let out = redact(body, &[]);
            assert!(out.contains("[redacted]"), "{out}");
        }
        let run = "a1".repeat(20);
        assert_eq!(redact(&format!("x {run} y"), &[]), "x [redacted] y");
        assert_eq!(redact("plain words stay", &[]), "plain words stay");
    }

    #[test]
    fn authorization_credentials_are_found_however_spaced() {
        for value in ["Bearer  tok123456", "Bearer\ttok123456", "Token tok123456 "] {
            let mut req = RequestHeader::build("GET", b"/", None).expect("req");
            req.insert_header("authorization", value).expect("header");
            let s = secrets(&req);
            assert_eq!(
                s,
                vec![(String::new(), "tok123456".to_string())],
                "{value:?}"
            );
        }
    }
}
