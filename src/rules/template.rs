//! Values with nginx's variables (`$host`, `$scheme`, `$request_uri`, `$1`…), parsed once when
//! the config is compiled and filled per request: set request headers, added response headers,
//! `return` targets and bodies, rewrites.

use http::HeaderName;
use std::net::IpAddr;

/// A parsed value: text and variables.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    /// `$host`: the request's host, lower-cased, without its port.
    Host,
    /// `$http_host`: the `Host` header as sent.
    HttpHost,
    Scheme,
    RemoteAddr,
    /// `$request_uri`: the path and query as sent.
    RequestUri,
    /// `$uri`: the path as matched (decoded, normalised, after a rewrite).
    Uri,
    /// `$args` / `$query_string`.
    Args,
    ServerPort,
    Method,
    /// `$http_NAME`: a request header.
    Header(HeaderName),
    /// `$1`…`$9`: a regex location's or rewrite's capture.
    Capture(usize),
}

/// A request's values for the variables.
pub struct Vars<'a> {
    pub host: &'a str,
    pub http_host: &'a str,
    pub scheme: &'a str,
    pub remote: Option<IpAddr>,
    pub request_uri: &'a str,
    pub uri: &'a str,
    pub args: &'a str,
    pub server_port: u16,
    pub method: &'a str,
    pub headers: &'a http::HeaderMap,
    pub captures: &'a [Option<(usize, usize)>],
    /// The text `captures` index into.
    pub captured: &'a str,
}

impl Template {
    /// Parses `text`; an unknown variable is an error naming it.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            let braced = rest.starts_with('{');
            let body = if braced { &rest[1..] } else { rest };
            let len = body
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(body.len());
            let name = &body[..len];
            if name.is_empty() {
                literal.push('$');
                continue;
            }
            let piece = variable(name)?;
            rest = &body[len..];
            if braced {
                rest = rest
                    .strip_prefix('}')
                    .ok_or_else(|| format!("`${{{name}` is not closed with `}}`"))?;
            }
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// The value when it holds no variable.
    pub fn as_text(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Writes the value for `v` into `out`.
    pub fn render(&self, v: &Vars<'_>, out: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Host => out.push_str(v.host),
                Piece::HttpHost => out.push_str(v.http_host),
                Piece::Scheme => out.push_str(v.scheme),
                Piece::RemoteAddr => {
                    if let Some(ip) = v.remote {
                        out.push_str(&ip.to_string());
                    }
                }
                Piece::RequestUri => out.push_str(v.request_uri),
                Piece::Uri => out.push_str(v.uri),
                Piece::Args => out.push_str(v.args),
                Piece::ServerPort => out.push_str(&v.server_port.to_string()),
                Piece::Method => out.push_str(v.method),
                Piece::Header(h) => {
                    let all = v.headers.get_all(h);
                    for (i, value) in all.iter().enumerate() {
                        if i > 0 {
                            out.push_str(if h == http::header::COOKIE {
                                "; "
                            } else {
                                ", "
                            });
                        }
                        out.push_str(&String::from_utf8_lossy(value.as_bytes()));
                    }
                }
                Piece::Capture(n) => {
                    if let Some(Some((a, b))) = v.captures.get(*n) {
                        out.push_str(v.captured.get(*a..*b).unwrap_or(""));
                    }
                }
            }
        }
    }

    /// The value for `v`.
    pub fn to_string_for(&self, v: &Vars<'_>) -> String {
        let mut out = String::new();
        self.render(v, &mut out);
        out
    }
}

fn variable(name: &str) -> Result<Piece, String> {
    Ok(match name {
        "host" | "server_name" => Piece::Host,
        "http_host" => Piece::HttpHost,
        "scheme" => Piece::Scheme,
        "remote_addr" | "realip_remote_addr" => Piece::RemoteAddr,
        "request_uri" => Piece::RequestUri,
        "uri" | "document_uri" => Piece::Uri,
        "args" | "query_string" => Piece::Args,
        "server_port" => Piece::ServerPort,
        "request_method" => Piece::Method,
        n if n.len() == 1 && n.as_bytes()[0].is_ascii_digit() => {
            Piece::Capture(usize::from(n.as_bytes()[0] - b'0'))
        }
        n if n.starts_with("http_") => {
            let header = n["http_".len()..].replace('_', "-");
            Piece::Header(
                HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("`${n}` does not name a header"))?,
            )
        }
        n => return Err(format!("`${n}` is not a variable authz-edge knows")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(headers: &'a http::HeaderMap, captures: &'a [Option<(usize, usize)>]) -> Vars<'a> {
        Vars {
            host: "example.com",
            http_host: "Example.com:8080",
            scheme: "https",
            remote: Some(IpAddr::from([10, 0, 0, 7])),
            request_uri: "/a%20b/?x=1",
            uri: "/a b/",
            args: "x=1",
            server_port: 8080,
            method: "GET",
            headers,
            captures,
            captured: "/media/photo.jpg",
        }
    }

    #[test]
    fn variables_are_filled_and_unknown_ones_refused() {
        let mut h = http::HeaderMap::new();
        h.insert("x-real-ip", "1.2.3.4".parse().expect("value"));
        let caps = [Some((0, 16)), Some((7, 16))];
        let t = Template::parse("$scheme://${host}$request_uri|$uri|$args|$remote_addr|$http_x_real_ip|$1|$$|$server_port")
            .expect("parses");
        assert_eq!(
            t.to_string_for(&vars(&h, &caps)),
            "https://example.com/a%20b/?x=1|/a b/|x=1|10.0.0.7|1.2.3.4|photo.jpg|$$|8080"
        );
        assert_eq!(
            Template::parse("max-age=31536000").expect("text").as_text(),
            Some("max-age=31536000")
        );
        assert!(Template::parse("$geoip_country")
            .unwrap_err()
            .contains("$geoip_country"));
        assert!(Template::parse("${host").is_err());
    }
}
