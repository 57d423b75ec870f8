//! Values written as strings in the file and parsed once as it is read: durations, `IP:PORT`
//! addresses, networks, header names and the sink's URL.

use crate::path_pattern::Pattern;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// A duration written as `"250ms"`, `"10s"`, `"5m"` or `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"1h"` (or `"1m 30s"`, humantime's forms) into a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{s}` has no unit; write e.g. \"250ms\", \"10s\", \"5m\""
        ));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write e.g. \"250ms\", \"10s\", \"5m\"")
    })
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl de::Visitor<'_> for Text {
            type Value = Dur;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"60s\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
            // A bare number (`read_timeout = 60`): say what to write, not serde's type names.
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "{n} has no unit: write a duration such as \"{n}s\" (a string)"
                )))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Dur, E> {
                self.visit_i64(n as i64)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "{n} has no unit: write a duration such as \"{n}s\" (a string)"
                )))
            }
        }
        d.deserialize_any(Text)
    }
}

/// A list of `IP:PORT` strings, each parsed once here (an error names its index).
pub(crate) fn socket_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<Parsed<SocketAddr>>::deserialize(d).map(|v| v.into_iter().map(|p| p.0).collect())
}

/// Upstream servers: `IP:PORT` or `unix:/path/to.sock`, each parsed once here.
pub(super) fn server_addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ServerAddr>, D::Error> {
    Vec::<Parsed<ServerAddr>>::deserialize(d).map(|v| v.into_iter().map(|p| p.0).collect())
}

/// One `IP:PORT` string, parsed here.
pub(super) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    Parsed::<SocketAddr>::deserialize(d).map(|p| p.0)
}

/// A Django path pattern, parsed here.
pub(super) fn path_pattern<'de, D: Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
    Parsed::<Pattern>::deserialize(d).map(|p| p.0)
}

/// A list of CIDRs or single addresses, each parsed once here.
pub(super) fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    Vec::<Parsed<ipnet::IpNet>>::deserialize(d).map(|v| v.into_iter().map(|p| p.0).collect())
}

/// A header name, parsed once here.
pub(super) fn header_name<'de, D: Deserializer<'de>>(d: D) -> Result<http::HeaderName, D::Error> {
    Parsed::<http::HeaderName>::deserialize(d).map(|p| p.0)
}

/// A value written as a string and parsed by `FromText`, so that serde's error carries the key.
struct Parsed<T>(T);

trait FromText: Sized {
    fn from_text(s: &str) -> Result<Self, String>;
}

impl FromText for SocketAddr {
    fn from_text(s: &str) -> Result<Self, String> {
        s.parse::<SocketAddr>().map_err(|_| {
            format!("`{s}` is not an address of the form IP:PORT, e.g. \"127.0.0.1:8000\"")
        })
    }
}

/// An upstream server: a TCP address, or a unix socket (nginx's `http://unix:/run/app.sock`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerAddr {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddr::Tcp(a) => write!(f, "{a}"),
            ServerAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl FromText for ServerAddr {
    fn from_text(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            // Linux's sockaddr_un holds 107 bytes of path and its NUL.
            if !path.starts_with('/') || path.len() > 107 {
                return Err(format!(
                    "`{s}` is not a unix socket: write an absolute path under 108 bytes, e.g. \"unix:/run/gunicorn.sock\""
                ));
            }
            return Ok(ServerAddr::Unix(path.into()));
        }
        s.parse::<SocketAddr>().map(ServerAddr::Tcp).map_err(|_| {
            format!("`{s}` is not an address of the form IP:PORT or unix:/path, e.g. \"127.0.0.1:8000\"")
        })
    }
}

impl FromText for Pattern {
    fn from_text(s: &str) -> Result<Self, String> {
        Pattern::parse(s)
    }
}

impl FromText for ipnet::IpNet {
    fn from_text(s: &str) -> Result<Self, String> {
        parse_cidr(s)
            .ok_or_else(|| format!("`{s}` is not an IP address or CIDR such as \"10.0.0.0/8\""))
    }
}

impl FromText for http::HeaderName {
    fn from_text(s: &str) -> Result<Self, String> {
        http::HeaderName::from_bytes(s.as_bytes())
            .map_err(|_| format!("`{s}` is not a valid header name"))
    }
}

impl<'de, T: FromText> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        T::from_text(&s).map(Parsed).map_err(de::Error::custom)
    }
}

/// Splits `http://host:port/path` into its parts.
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host_port.is_empty() {
        return None;
    }
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:80")
    };
    Some((host_port, path.to_string()))
}

/// Parses `10.0.0.0/8` or a single address into a network.
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}
