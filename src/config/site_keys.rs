//! `[[sites]]`, `[[locations]]` and `[upstreams.NAME]`: nginx's server blocks, locations and
//! upstream blocks, as the schema reads them. `rules::sites` compiles them; `validate::sites`
//! checks what types cannot.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A site: the requests whose `Host` is one of `names` (nginx's `server_name`: exact names,
/// `*.example.com`, `example.*`, `.example.com`, `~regex`), served by its locations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    #[serde(default)]
    pub names: Vec<String>,
    /// The site for hosts no site names (nginx's `default_server`); else the first site.
    #[serde(default)]
    pub default: bool,
    /// The listeners (of `server.listen` and `tls.listen`) the site answers on, as nginx's
    /// server blocks are bound to their `listen` sockets; all of them when empty.
    #[serde(default, deserialize_with = "super::values::socket_addrs")]
    pub listen: Vec<std::net::SocketAddr>,
    /// Answer every request with this before any location is looked at (nginx's `return`
    /// in a server block).
    #[serde(rename = "return")]
    pub ret: Option<Return>,
    #[serde(default)]
    pub locations: Vec<Location>,
    // Inherited by locations that set none of their own, each key on its own, as in nginx
    // (a location with any `add_headers` drops all of its site's).
    /// Request headers set (or cleared, with `""`) on the way to the upstream, with nginx's
    /// variables: `$host`, `$scheme`, `$remote_addr`, `$request_uri`, `$uri`, `$args`,
    /// `$server_port`, `$http_NAME`.
    pub set_headers: Option<BTreeMap<String, String>>,
    /// Response headers added (nginx's `add_header`).
    pub add_headers: Option<Vec<AddHeader>>,
    /// Upstream response headers not passed to the client (nginx's `proxy_hide_header`).
    pub hide_headers: Option<Vec<String>>,
    /// The request body limit here (nginx's `client_max_body_size`; 0 is no limit).
    pub max_body_bytes: Option<u64>,
    /// Client addresses allowed or denied, the first matching rule wins (nginx's `allow` and
    /// `deny`): `"allow 10.0.0.0/8"`, `"deny all"`.
    pub access: Option<Vec<String>>,
    /// Pages for statuses (nginx's `error_page`).
    pub error_pages: Option<Vec<ErrorPage>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddHeader {
    pub name: String,
    pub value: String,
    /// Added to every response, not only 200, 201, 204, 206, 301, 302, 303, 304, 307, 308.
    #[serde(default)]
    pub always: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorPage {
    pub codes: Vec<u16>,
    /// A URI served instead (a location's path, or `@name`).
    pub target: String,
    /// The status the page is sent with (nginx's `=CODE`); the original status when unset.
    pub status: Option<u16>,
}

/// One location. Exactly one of `proxy`, `root`/`alias`, `return` says what it does; an
/// `internal` one is reached only through `X-Accel-Redirect`, `error_page` or `try_files`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// nginx's location syntax: `= /exact`, `^~ /prefix`, `~ regex`, `~* regex`, `/prefix`,
    /// `@name`.
    pub path: String,
    /// The upstream pool requests go to: `default` (`[upstream]`) or a `[upstreams]` key.
    pub proxy: Option<String>,
    /// nginx's `proxy_pass` with a URI: the matched prefix is replaced with this.
    pub proxy_path: Option<String>,
    /// Files under this directory, by the request's whole path (nginx's `root`).
    pub root: Option<String>,
    /// Files under this directory, by the path after the location's prefix (nginx's `alias`).
    pub alias: Option<String>,
    /// Tried in order for a file location; the last may be `@name` or `=CODE`.
    pub try_files: Option<Vec<String>>,
    /// `Cache-Control` on files served here.
    pub cache_control: Option<String>,
    #[serde(rename = "return")]
    pub ret: Option<Return>,
    /// `Expires` and `Cache-Control: max-age` on success statuses (nginx's `expires`): a
    /// duration such as "7d", or "max", "epoch", "off".
    pub expires: Option<String>,
    #[serde(default)]
    pub internal: bool,
    /// Django's own error statuses answered with `error_pages` too (nginx's
    /// `proxy_intercept_errors on`).
    #[serde(default)]
    pub intercept_errors: bool,
    /// The path rewritten before anything else (nginx's `rewrite REGEX REPLACEMENT break`).
    pub rewrite: Option<Rewrite>,
    /// Requests per client address (nginx's `limit_req`).
    pub limit_req: Option<LimitReq>,
    /// Request headers set (or cleared, with `""`) on the way to the upstream, with nginx's
    /// variables: `$host`, `$scheme`, `$remote_addr`, `$request_uri`, `$uri`, `$args`,
    /// `$server_port`, `$http_NAME`.
    pub set_headers: Option<BTreeMap<String, String>>,
    /// Response headers added (nginx's `add_header`).
    pub add_headers: Option<Vec<AddHeader>>,
    /// Upstream response headers not passed to the client (nginx's `proxy_hide_header`).
    pub hide_headers: Option<Vec<String>>,
    /// The request body limit here (nginx's `client_max_body_size`; 0 is no limit).
    pub max_body_bytes: Option<u64>,
    /// Client addresses allowed or denied, the first matching rule wins (nginx's `allow` and
    /// `deny`): `"allow 10.0.0.0/8"`, `"deny all"`.
    pub access: Option<Vec<String>>,
    /// Pages for statuses (nginx's `error_page`).
    pub error_pages: Option<Vec<ErrorPage>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Return {
    pub status: u16,
    /// A redirect's target (301, 302, 303, 307, 308), with variables.
    pub location: Option<String>,
    /// The body of any other status, with variables.
    pub body: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    pub pattern: String,
    pub replacement: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitReq {
    /// Requests per second per client address (nginx's `rate=10r/s`; `r/m` as a fraction).
    pub per_second: f64,
    /// Requests over the rate held (or, with `nodelay`, let through) before 503 (nginx's
    /// `burst`).
    #[serde(default)]
    pub burst: u32,
    #[serde(default)]
    pub nodelay: bool,
    /// The status refused requests get (nginx's `limit_req_status`, 503 by default).
    #[serde(default = "default_limit_status")]
    pub status: u16,
    /// Client addresses tracked at once; past it the oldest is forgotten.
    #[serde(default = "default_limit_clients")]
    pub max_clients: usize,
}

fn default_limit_status() -> u16 {
    503
}
fn default_limit_clients() -> usize {
    100_000
}

/// An `access` rule parsed: allow or deny, and the network (`None` is `all`).
pub fn access_rule(rule: &str) -> Result<(bool, Option<ipnet::IpNet>), String> {
    let (verb, what) = rule
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("`{rule}` is not \"allow NETWORK\" or \"deny NETWORK\""))?;
    let allow = match verb {
        "allow" => true,
        "deny" => false,
        _ => return Err(format!("`{rule}` starts with neither allow nor deny")),
    };
    let what = what.trim();
    if what == "all" {
        return Ok((allow, None));
    }
    super::values::parse_cidr(what)
        .map(|n| (allow, Some(n)))
        .ok_or_else(|| format!("`{what}` is not an address, a CIDR or `all`"))
}
