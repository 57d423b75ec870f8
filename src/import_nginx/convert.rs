//! An nginx configuration turned into authz-edge's: each directive's fate (`Fate`) reported
//! with its file and line, and the config built as TOML. nginx's inheritance (a level's
//! `proxy_set_header`, `add_header`, `allow`/`deny`, `error_page` lists replace the outer
//! level's) is resolved here, so that each location carries its whole rules.
//!
//! Longer than 400 lines because it is the directive map: one arm per nginx directive a
//! Django project's configuration uses, each with its fate.

use super::parse::Directive;
use std::collections::BTreeMap;
use toml::{Table, Value};

/// What became of a directive.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Converted,
    /// Kept in part; why.
    Partial(String),
    Unsupported,
    /// Not needed by authz-edge; why.
    Ignored(String),
}

/// The report: one line per directive, and whether anything was not carried over.
#[derive(Default)]
pub struct Report {
    /// File, line and the line's text.
    lines: Vec<(std::sync::Arc<str>, usize, String)>,
    pub counts: [usize; 4],
}

impl Report {
    fn note(&mut self, d: &Directive, fate: Fate) {
        let (i, text) = match &fate {
            Fate::Converted => (0, "converted".to_string()),
            Fate::Partial(why) => (1, format!("partial ({why})")),
            Fate::Unsupported => (2, "unsupported".to_string()),
            Fate::Ignored(why) => (3, format!("ignored ({why})")),
        };
        self.counts[i] += 1;
        self.lines.push((
            d.file.clone(),
            d.line,
            format!("{}: {}: {text}", d.at(), d.name),
        ));
    }

    /// The lines in the order of the files' text (a block's own line before its directives').
    pub fn lines(&self) -> Vec<String> {
        let mut sorted: Vec<_> = self.lines.iter().collect();
        sorted.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        sorted.into_iter().map(|l| l.2.clone()).collect()
    }

    /// Something was partial or unsupported.
    pub fn incomplete(&self) -> bool {
        self.counts[1] + self.counts[2] > 0
    }
}

fn ignored(why: &str) -> Fate {
    Fate::Ignored(why.to_string())
}
fn partial(why: impl Into<String>) -> Fate {
    Fate::Partial(why.into())
}

/// What a level (http, server, location) passes down; each list is replaced whole by a level
/// that gives its own.
#[derive(Clone, Default)]
struct Inherited {
    /// `None`: set by authz-edge itself (nothing to write).
    set_headers: Vec<(String, Option<String>)>,
    add_headers: Vec<(String, String, bool)>,
    hide_headers: Vec<String>,
    access: Vec<String>,
    error_pages: Vec<(Vec<u16>, String, Option<u16>)>,
    /// Which lists this level has started its own of (the rest are the outer level's).
    own: Own,
    max_body: Option<u64>,
    root: Option<String>,
    intercept: bool,
    limit_req: Option<Table>,
    /// Pool keys a server or location sets (timeouts, buffering): they go to its pool.
    pool_keys: Table,
}

#[derive(Clone, Copy, Default)]
struct Own {
    set_headers: bool,
    add_headers: bool,
    hide_headers: bool,
    access: bool,
    error_pages: bool,
}

impl Inherited {
    /// The http level: every list is its own from the start.
    fn top() -> Inherited {
        Inherited {
            own: Own {
                set_headers: true,
                add_headers: true,
                hide_headers: true,
                access: true,
                error_pages: true,
            },
            ..Inherited::default()
        }
    }

    /// What the next level down starts from.
    fn below(&self) -> Inherited {
        Inherited {
            own: Own::default(),
            ..self.clone()
        }
    }
}

/// Clears `list` the first time a level gives an entry of its own.
fn start_own<T>(own: &mut bool, list: &mut Vec<T>) {
    if !std::mem::replace(own, true) {
        list.clear();
    }
}

/// A server block in the making: its site's keys and locations, its names, whether it
/// listens with TLS, and the block itself (for the report).
struct SiteOut {
    table: Table,
    locs: Vec<Loc>,
    names: Vec<String>,
    /// Its own listeners: authz-edge binds the site to them, as nginx binds a server block.
    listen: Vec<String>,
    server: Directive,
}

/// A location in the making.
struct Loc {
    path: String,
    table: Table,
    pool: Option<String>,
}

/// The converter's state across the file.
#[derive(Default)]
pub struct Converter {
    pub report: Report,
    server: Table,
    tls: Table,
    limits: Table,
    compression: Table,
    upstream_keys: Table,
    /// `upstream` blocks: name → (servers, keys).
    blocks: BTreeMap<String, (Vec<String>, Table)>,
    /// `limit_req_zone`s: name → requests per second.
    zones: BTreeMap<String, f64>,
    /// Pools in the order locations first name them.
    pools_used: Vec<String>,
    sites: Vec<SiteOut>,
    /// Host names in `upstream` blocks are not looked up (the fuzz target).
    pub offline: bool,
    /// Server and location pool keys (timeouts, buffering), per pool key.
    pool_keys: BTreeMap<String, Table>,
}

/// What a directive's one value becomes in the config: `key` in `table`, if it parses.
enum Parsed {
    Int(Option<i64>),
    Text(Option<String>),
}

/// Sets `key` in `table` from `value` and says the directive's fate: converted, or
/// unsupported when the value does not parse.
fn set(table: &mut Table, key: &str, value: Parsed) -> Fate {
    let v = match value {
        Parsed::Int(n) => n.map(Value::Integer),
        Parsed::Text(t) => t.map(Value::String),
    };
    match v {
        Some(v) => {
            table.insert(key.into(), v);
            Fate::Converted
        }
        None => Fate::Unsupported,
    }
}

fn int(s: &str) -> Parsed {
    Parsed::Int(s.parse().ok())
}

/// An nginx time (`75s`, `1h`) as the config's duration text.
fn dur(s: &str) -> Parsed {
    Parsed::Text(duration(s))
}

/// A size (`10m`, `4G`, `512k`, `1024`) in bytes.
fn size(s: &str) -> Option<u64> {
    let (n, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024),
        'm' | 'M' => (&s[..s.len() - 1], 1024 * 1024),
        'g' | 'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    n.parse::<u64>().ok().map(|v| v * mult)
}

/// An nginx time (`60`, `60s`, `5m`, `1h`, `500ms`, `30d`) as authz-edge's duration string.
fn duration(s: &str) -> Option<String> {
    if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() {
        return Some(format!("{s}s"));
    }
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    n.parse::<u64>().ok()?;
    match unit {
        "ms" | "s" | "m" | "h" | "d" => Some(format!("{n}{unit}")),
        "y" => Some(format!("{}d", n.parse::<u64>().ok()? * 365)),
        "w" => Some(format!("{}d", n.parse::<u64>().ok()? * 7)),
        "M" => Some(format!("{}d", n.parse::<u64>().ok()? * 30)),
        _ => None,
    }
}

/// A host name's address, looked up now as nginx looks it up at start (authz-edge takes
/// addresses), or a stand-in to replace; with the report's reason.
/// `lookup` false: no lookup at all (the fuzz target, which must not touch the network).
fn resolved(name: &str, lookup: bool) -> (String, String) {
    use std::net::ToSocketAddrs;
    let with_port = if name.contains(':') {
        name.to_string()
    } else {
        format!("{name}:80")
    };
    let found = match lookup {
        true => with_port.to_socket_addrs().ok().and_then(|mut a| a.next()),
        false => None,
    };
    match found {
        Some(a) => (a.to_string(), format!("`{name}` looked up once, here: {a}")),
        None => {
            let port = with_port.rsplit(':').next().unwrap_or("80");
            (
                format!("127.0.0.1:{port}"),
                format!("`{name}` could not be looked up here: 127.0.0.1:{port} stands in for it"),
            )
        }
    }
}

/// A `listen` argument as `IP:PORT`.
fn listen_addr(a: &str) -> Option<String> {
    if let Ok(p) = a.parse::<u16>() {
        return Some(format!("0.0.0.0:{p}"));
    }
    if a.parse::<std::net::SocketAddr>().is_ok() {
        return Some(a.to_string());
    }
    let (host, port) = a.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    match host {
        "*" => Some(format!("0.0.0.0:{port}")),
        "localhost" => Some(format!("127.0.0.1:{port}")),
        _ => None,
    }
}

/// A `server` of an upstream block or `proxy_pass` authority as authz-edge's server address.
fn server_addr(a: &str) -> Option<String> {
    if let Some(path) = a.strip_prefix("unix:") {
        return Some(format!("unix:{}", path.trim_end_matches(':')));
    }
    if a.parse::<std::net::SocketAddr>().is_ok() {
        return Some(a.to_string());
    }
    if let Some(host) = a
        .strip_suffix(":80")
        .or(Some(a))
        .filter(|h| !h.contains(':'))
    {
        return match host {
            "localhost" => Some(if a.contains(':') {
                a.replace("localhost", "127.0.0.1")
            } else {
                "127.0.0.1:80".into()
            }),
            h if h.parse::<std::net::IpAddr>().is_ok() => Some(format!("{h}:80")),
            _ => None,
        };
    }
    let (host, port) = a.rsplit_once(':')?;
    match host {
        "localhost" => Some(format!("127.0.0.1:{port}")),
        _ => None,
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

impl Converter {
    /// Converts the directives of a whole file.
    pub fn run(&mut self, top: &[Directive]) {
        self.run_blocks(top);
        self.one_site_per_name();
    }

    /// Sites are bound to their server's listeners; on one listener a name belongs to the
    /// first server that gives it, and one server is the default (the first marked), as
    /// nginx warns of and does.
    fn one_site_per_name(&mut self) {
        let listeners: Vec<String> = self.sites.iter().flat_map(|x| x.listen.clone()).collect();
        let several = {
            let mut l = listeners.clone();
            l.sort();
            l.dedup();
            l.len() > 1
        };
        let mut owner: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut default_on: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..self.sites.len() {
            let listen = self.sites[i].listen.clone();
            let names = std::mem::take(&mut self.sites[i].names);
            let mut kept = Vec::new();
            for n in names {
                let taken = listen
                    .iter()
                    .find_map(|l| owner.get(&(n.clone(), l.clone())).copied());
                match taken {
                    Some(j) if n != "_" => {
                        let at = self.sites[j].server.at();
                        let server = self.sites[i].server.clone();
                        self.report.note(
                            &server,
                            partial(format!("`{n}` is the server's at {at} on the same listener: nginx ignores it here too")),
                        );
                    }
                    _ => {
                        for l in &listen {
                            owner.entry((n.clone(), l.clone())).or_insert(i);
                        }
                        kept.push(n);
                    }
                }
            }
            let site = &mut self.sites[i];
            if site.table.get("default").and_then(Value::as_bool) == Some(true) {
                let first = listen.iter().all(|l| !default_on.contains_key(l));
                if first {
                    for l in &listen {
                        default_on.insert(l.clone(), i);
                    }
                } else {
                    site.table.remove("default");
                }
            }
            let names: Vec<Value> = kept
                .iter()
                .filter(|n| n.as_str() != "_")
                .map(|n| s(n))
                .collect();
            if !names.is_empty() {
                site.table.insert("names".into(), Value::Array(names));
            }
            if several && !listen.is_empty() {
                site.table.insert(
                    "listen".into(),
                    Value::Array(listen.iter().map(|l| s(l)).collect()),
                );
            }
        }
    }

    fn run_blocks(&mut self, top: &[Directive]) {
        // A server block on its own (a file from sites-available) is read as http's content.
        let has_main = top
            .iter()
            .any(|d| matches!(d.name.as_str(), "http" | "events"));
        if !has_main {
            let mut inh = Inherited::top();
            for d in top {
                self.http_pre(d);
            }
            for d in top {
                self.http(d, &mut inh);
            }
            return;
        }
        for d in top {
            self.main(d);
        }
    }

    fn main(&mut self, d: &Directive) {
        match d.name.as_str() {
            "http" => {
                let mut inh = Inherited::top();
                // `upstream` and `limit_req_zone` first: servers refer to them.
                for c in d.children() {
                    self.http_pre(c);
                }
                for c in d.children() {
                    self.http(c, &mut inh);
                }
            }
            "events" => {
                for c in d.children() {
                    match c.name.as_str() {
                        "worker_connections" => {
                            let fate = set(&mut self.server, "max_connections", int(c.arg(0)));
                            self.report.note(c, fate)
                        }
                        _ => self
                            .report
                            .note(c, ignored("authz-edge's event loop is tokio's")),
                    }
                }
                self.report.note(d, Fate::Converted);
            }
            "include" if d.block.is_some() => {
                self.report.note(d, Fate::Converted);
                for c in d.children() {
                    self.main(c);
                }
            }
            "user"
            | "pid"
            | "error_log"
            | "worker_processes"
            | "worker_rlimit_nofile"
            | "daemon"
            | "load_module"
            | "pcre_jit"
            | "worker_cpu_affinity"
            | "env" => self.report.note(
                d,
                ignored("process settings: authz-edge's [server] and its service manager"),
            ),
            _ => self.report.note(d, Fate::Unsupported),
        }
    }

    fn http_pre(&mut self, d: &Directive) {
        match d.name.as_str() {
            "upstream" => self.upstream_block(d),
            "limit_req_zone" => {
                let rate = d.args.iter().find_map(|a| a.strip_prefix("rate="));
                let zone = d.args.iter().find_map(|a| a.strip_prefix("zone="));
                let per_second = rate.and_then(|r| {
                    if let Some(n) = r.strip_suffix("r/s") {
                        n.parse::<f64>().ok()
                    } else {
                        r.strip_suffix("r/m")
                            .and_then(|n| n.parse::<f64>().ok())
                            .map(|n| n / 60.0)
                    }
                });
                let key_ok = matches!(d.arg(0), "$binary_remote_addr" | "$remote_addr");
                match (zone.and_then(|z| z.split(':').next()), per_second) {
                    (Some(z), Some(r)) if key_ok => {
                        self.zones.insert(z.to_string(), r);
                        self.report.note(d, Fate::Converted);
                    }
                    (Some(z), Some(r)) => {
                        self.zones.insert(z.to_string(), r);
                        self.report
                            .note(d, partial("limited per client address, not by this key"));
                    }
                    _ => self.report.note(d, Fate::Unsupported),
                }
            }
            "include" if d.block.is_some() => {
                for c in d.children() {
                    self.http_pre(c);
                }
            }
            _ => {}
        }
    }

    fn upstream_block(&mut self, d: &Directive) {
        let mut servers = Vec::new();
        let mut keys = Table::new();
        for c in d.children() {
            match c.name.as_str() {
                "server" => {
                    let mut why = Vec::new();
                    let addr = match server_addr(c.arg(0)) {
                        Some(a) => a,
                        None => {
                            let (a, w) = resolved(c.arg(0), !self.offline);
                            why.push(w);
                            a
                        }
                    };
                    servers.push(addr);
                    for p in c.args.get(1..).unwrap_or_default() {
                        if let Some(t) = p.strip_prefix("fail_timeout=") {
                            match duration(t) {
                                Some(d) => {
                                    keys.insert("fail_timeout".into(), s(&d));
                                }
                                None => why.push(p.clone()),
                            }
                        } else if p == "resolve" {
                            why.push("resolve: the address is looked up once".to_string());
                        } else if p.starts_with("max_fails=") || p.starts_with("weight=") {
                            why.push(format!("{p}: round robin, a server skipped for fail_timeout after one failed connect"));
                        } else {
                            why.push(format!("{p} is not supported"));
                        }
                    }
                    match why.is_empty() {
                        true => self.report.note(c, Fate::Converted),
                        false => self.report.note(c, partial(why.join("; "))),
                    }
                }
                "keepalive" => {
                    let fate = set(&mut keys, "keepalive_pool", int(c.arg(0)));
                    self.report.note(c, fate)
                }
                "keepalive_timeout" => {
                    let fate = set(&mut keys, "idle_timeout", dur(c.arg(0)));
                    self.report.note(c, fate)
                }
                "keepalive_requests" | "keepalive_time" => self.report.note(
                    c,
                    ignored("upstream connections are reused until they idle out"),
                ),
                "least_conn" | "ip_hash" | "hash" | "random" => {
                    self.report.note(c, partial("balanced round robin"))
                }
                _ => self.report.note(c, Fate::Unsupported),
            }
        }
        self.blocks.insert(d.arg(0).to_string(), (servers, keys));
        self.report.note(d, Fate::Converted);
    }

    fn http(&mut self, d: &Directive, inh: &mut Inherited) {
        if self.common(d, inh, true) {
            return;
        }
        match d.name.as_str() {
            "upstream" | "limit_req_zone" => {}
            "server" => self.server_block(d, inh),
            "include" if d.block.is_some() => {
                self.report.note(d, Fate::Converted);
                for c in d.children() {
                    self.http(c, inh);
                }
            }
            "include" if d.arg(0).ends_with("mime.types") => self
                .report
                .note(d, ignored("authz-edge has its own table of types")),
            "charset" => self.report.note(
                d,
                partial("authz-edge adds no charset to Content-Type (files get utf-8 for text)"),
            ),
            "default_type" | "types" | "source_charset" => self
                .report
                .note(d, ignored("files get their types from authz-edge's table")),
            "sendfile"
            | "tcp_nopush"
            | "tcp_nodelay"
            | "aio"
            | "directio"
            | "output_buffers"
            | "types_hash_max_size"
            | "types_hash_bucket_size"
            | "server_names_hash_bucket_size"
            | "server_names_hash_max_size"
            | "variables_hash_max_size"
            | "variables_hash_bucket_size"
            | "map_hash_bucket_size"
            | "open_file_cache"
            | "open_file_cache_valid"
            | "open_file_cache_min_uses"
            | "open_file_cache_errors"
            | "reset_timedout_connection"
            | "server_tokens"
            | "resolver"
            | "resolver_timeout"
            | "log_format"
            | "proxy_temp_path"
            | "fastcgi_temp_path"
            | "uwsgi_temp_path"
            | "scgi_temp_path"
            | "ssl_protocols"
            | "ssl_ciphers"
            | "ssl_prefer_server_ciphers"
            | "ssl_session_cache"
            | "ssl_session_timeout"
            | "ssl_session_tickets"
            | "ssl_dhparam"
            | "ssl_ecdh_curve"
            | "ssl_stapling"
            | "ssl_stapling_verify"
            | "error_log"
            | "underscores_in_headers" => self.report.note(
                d,
                ignored("authz-edge's own I/O, TLS (rustls: TLS 1.2 and 1.3) and logs"),
            ),
            "gzip" => {
                self.compression
                    .insert("enabled".into(), Value::Boolean(d.arg(0) == "on"));
                self.report.note(d, Fate::Converted);
            }
            "gzip_types" => {
                let mut types: Vec<Value> = vec![s("text/html")];
                types.extend(
                    d.args
                        .iter()
                        .filter(|t| *t != "text/html" && *t != "*")
                        .map(|t| s(t)),
                );
                self.compression.insert("types".into(), Value::Array(types));
                self.report.note(d, Fate::Converted);
            }
            "gzip_min_length" => {
                let fate = set(&mut self.compression, "min_length", int(d.arg(0)));
                self.report.note(d, fate)
            }
            "gzip_comp_level" => {
                let fate = set(&mut self.compression, "level", int(d.arg(0)));
                self.report.note(d, fate)
            }
            "gzip_vary" | "gzip_proxied" | "gzip_http_version" | "gzip_buffers"
            | "gzip_disable" => self.report.note(
                d,
                ignored("authz-edge compresses proxied responses and always sends Vary"),
            ),
            "gzip_static" => self.report.note(
                d,
                ignored("a precompressed .gz sibling is always served first"),
            ),
            _ => self.report.note(d, Fate::Unsupported),
        }
    }

    /// Directives allowed at http, server and location level that only set what locations
    /// inherit or process-wide values. Returns whether `d` was one.
    fn common(&mut self, d: &Directive, inh: &mut Inherited, top: bool) -> bool {
        match d.name.as_str() {
            "proxy_set_header" => {
                start_own(&mut inh.own.set_headers, &mut inh.set_headers);
                let (name, value) = (d.arg(0).to_string(), d.arg(1).to_string());
                let (fate, v) = self.set_header_fate(&name, &value);
                inh.set_headers.push((name, v));
                self.report.note(d, fate);
            }
            "add_header" => {
                start_own(&mut inh.own.add_headers, &mut inh.add_headers);
                let always = d.arg(2) == "always";
                match crate::rules::template::Template::parse(d.arg(1)) {
                    Ok(_) => {
                        inh.add_headers
                            .push((d.arg(0).to_string(), d.arg(1).to_string(), always));
                        self.report.note(d, Fate::Converted);
                    }
                    Err(e) => self.report.note(d, partial(e)),
                }
            }
            "proxy_hide_header" => {
                start_own(&mut inh.own.hide_headers, &mut inh.hide_headers);
                inh.hide_headers.push(d.arg(0).to_string());
                self.report.note(d, Fate::Converted);
            }
            "allow" | "deny" => {
                start_own(&mut inh.own.access, &mut inh.access);
                let rule = format!("{} {}", d.name, d.arg(0));
                match crate::config::site_keys::access_rule(&rule) {
                    Ok(_) => {
                        inh.access.push(rule);
                        self.report.note(d, Fate::Converted);
                    }
                    Err(_) => self.report.note(d, Fate::Unsupported),
                }
            }
            "error_page" => {
                start_own(&mut inh.own.error_pages, &mut inh.error_pages);
                let mut codes = Vec::new();
                let mut status = None;
                let mut target = None;
                let mut why = None;
                for a in &d.args {
                    if let Ok(c) = a.parse::<u16>() {
                        codes.push(c);
                    } else if let Some(r) = a.strip_prefix('=') {
                        match r.parse::<u16>() {
                            Ok(c) => status = Some(c),
                            Err(_) => {
                                why = Some("`=` without a code: sent with the original status")
                            }
                        }
                    } else {
                        target = Some(a.clone());
                    }
                }
                match target {
                    Some(t) if t.starts_with('/') || t.starts_with('@') => {
                        inh.error_pages.push((codes, t, status));
                        match why {
                            Some(w) => self.report.note(d, partial(w)),
                            None => self.report.note(d, Fate::Converted),
                        }
                    }
                    _ => self.report.note(d, Fate::Unsupported),
                }
            }
            "proxy_intercept_errors" => {
                inh.intercept = d.arg(0) == "on";
                self.report.note(d, Fate::Converted);
            }
            "client_max_body_size" => match size(d.arg(0)) {
                Some(n) if top => {
                    self.limits.insert(
                        "max_body_bytes".into(),
                        Value::Integer(if n == 0 { i64::MAX } else { n as i64 }),
                    );
                    self.report.note(d, Fate::Converted);
                }
                Some(n) => {
                    inh.max_body = Some(n);
                    self.report.note(d, Fate::Converted);
                }
                None => self.report.note(d, Fate::Unsupported),
            },
            "root" => {
                inh.root = Some(d.arg(0).to_string());
                self.report.note(d, Fate::Converted);
            }
            "limit_req" => {
                let zone = d.args.iter().find_map(|a| a.strip_prefix("zone="));
                let burst = d
                    .args
                    .iter()
                    .find_map(|a| a.strip_prefix("burst="))
                    .and_then(|b| b.parse::<i64>().ok());
                match zone.and_then(|z| self.zones.get(z)) {
                    Some(rate) => {
                        let mut t = Table::new();
                        t.insert("per_second".into(), Value::Float(*rate));
                        t.insert("burst".into(), Value::Integer(burst.unwrap_or(0)));
                        t.insert(
                            "nodelay".into(),
                            Value::Boolean(d.args.iter().any(|a| a == "nodelay")),
                        );
                        inh.limit_req = Some(t);
                        self.report.note(d, Fate::Converted);
                    }
                    None => self.report.note(d, Fate::Unsupported),
                }
            }
            "limit_req_status" => match (d.arg(0).parse::<i64>(), inh.limit_req.as_mut()) {
                (Ok(c), Some(t)) => {
                    t.insert("status".into(), Value::Integer(c));
                    self.report.note(d, Fate::Converted);
                }
                _ => self.report.note(d, partial("set after limit_req only")),
            },
            "proxy_read_timeout" | "proxy_connect_timeout" | "proxy_send_timeout" => {
                let key = match d.name.as_str() {
                    "proxy_read_timeout" => "read_timeout",
                    "proxy_connect_timeout" => "connect_timeout",
                    _ => "write_timeout",
                };
                match duration(d.arg(0)) {
                    Some(t) if top => {
                        self.upstream_keys.insert(key.into(), s(&t));
                        self.report.note(d, Fate::Converted);
                    }
                    Some(t) => {
                        inh.pool_keys.insert(key.into(), s(&t));
                        self.report.note(
                            d,
                            partial("set on the location's pool, for all its locations"),
                        );
                    }
                    None => self.report.note(d, Fate::Unsupported),
                }
            }
            "proxy_buffering" => {
                let on = Value::Boolean(d.arg(0) == "on");
                if top {
                    self.upstream_keys.insert("buffering".into(), on);
                    self.report.note(d, Fate::Converted);
                } else {
                    inh.pool_keys.insert("buffering".into(), on);
                    self.report.note(
                        d,
                        partial("set on the location's pool, for all its locations"),
                    );
                }
            }
            "proxy_max_temp_file_size" => {
                let n = size(d.arg(0)).map(|n| n.max(65536) as i64);
                let fate = set(
                    &mut self.upstream_keys,
                    "max_buffered_bytes",
                    Parsed::Int(n),
                );
                self.report.note(d, fate)
            }
            "proxy_buffers"
            | "proxy_buffer_size"
            | "proxy_busy_buffers_size"
            | "proxy_temp_file_write_size" => self.report.note(
                d,
                ignored("authz-edge sizes its buffers itself (upstream.buffer_memory)"),
            ),
            "proxy_http_version" => self
                .report
                .note(d, ignored("Django is always spoken to in HTTP/1.1")),
            "proxy_redirect" if d.arg(0) == "off" => self
                .report
                .note(d, ignored("authz-edge never rewrites Location")),
            "proxy_request_buffering" => self.report.note(
                d,
                partial("request bodies are always read whole before Django gets them"),
            ),
            "client_body_buffer_size" => {
                let n = size(d.arg(0)).map(|n| n as i64);
                let fate = set(&mut self.limits, "body_buffer_bytes", Parsed::Int(n));
                self.report.note(d, fate)
            }
            "client_body_temp_path" => {
                self.limits.insert("body_temp_dir".into(), s(d.arg(0)));
                self.report.note(d, Fate::Converted);
            }
            "client_header_timeout" => {
                let fate = set(&mut self.limits, "header_timeout", dur(d.arg(0)));
                self.report.note(d, fate)
            }
            "large_client_header_buffers" => match size(d.arg(1)) {
                Some(n) => {
                    self.limits
                        .insert("max_header_bytes".into(), Value::Integer(n as i64));
                    self.report
                        .note(d, partial("one limit for the whole head, not per buffer"));
                }
                None => self.report.note(d, Fate::Unsupported),
            },
            "keepalive_timeout" => match duration(d.arg(0)) {
                Some(t) => {
                    self.server.insert("keepalive_timeout".into(), s(&t));
                    match top {
                        true => self.report.note(d, Fate::Converted),
                        false => self.report.note(d, partial("one value for every site")),
                    }
                }
                None => self.report.note(d, Fate::Unsupported),
            },
            "keepalive_requests" => {
                let fate = set(
                    &mut self.limits,
                    "max_requests_per_connection",
                    int(d.arg(0)),
                );
                self.report.note(d, fate)
            }
            "keepalive_time" => {
                let fate = set(&mut self.server, "max_connection_age", dur(d.arg(0)));
                self.report.note(d, fate)
            }
            "client_body_timeout" | "send_timeout" => self.report.note(
                d,
                partial("authz-edge allows 60 s per read or write of a client"),
            ),
            "access_log" => {
                let off = d.arg(0) == "off";
                if top || !off {
                    self.report.note(
                        d,
                        partial("authz-edge's access log is JSON lines ([access_log])"),
                    );
                } else {
                    self.report
                        .note(d, ignored("[access_log] is for the whole proxy"));
                }
            }
            "log_not_found" | "error_log" | "etag" | "if_modified_since" | "server_tokens" => self
                .report
                .note(d, ignored("authz-edge's own logs and file responses")),
            "index" => self
                .report
                .note(d, partial("index.html only, through try_files `$uri/`")),
            "set_real_ip_from" | "real_ip_header" | "real_ip_recursive" => self.report.note(
                d,
                partial("use forwarding.trusted_proxies: X-Forwarded-For from them is kept"),
            ),
            _ => return false,
        }
        true
    }

    /// A `proxy_set_header`'s fate, and the value to set (`None` when authz-edge sets the
    /// header itself).
    fn set_header_fate(&self, name: &str, value: &str) -> (Fate, Option<String>) {
        let lname = name.to_ascii_lowercase();
        let native = match (lname.as_str(), value) {
            ("host", "$http_host") => Some("authz-edge passes Host as sent"),
            ("x-forwarded-for", "$proxy_add_x_forwarded_for") => Some("authz-edge sets it"),
            ("x-forwarded-proto", "$scheme") => Some("authz-edge sets it"),
            ("x-real-ip", "$remote_addr") => Some("authz-edge sets it"),
            ("x-request-id", "$request_id") => Some("authz-edge sets it"),
            ("upgrade", "$http_upgrade") | ("connection", _) => {
                Some("upgrades are passed on by authz-edge")
            }
            _ => None,
        };
        if native.is_some() {
            return (Fate::Converted, None);
        }
        match crate::rules::template::Template::parse(value) {
            Ok(_) => (Fate::Converted, Some(value.to_string())),
            Err(e) => (partial(e), None),
        }
    }

    fn server_block(&mut self, d: &Directive, outer: &Inherited) {
        let mut inh = outer.below();
        let mut site = Table::new();
        let mut names = Vec::new();
        let mut own_listen: Vec<String> = Vec::new();
        let mut default = false;
        let mut locations: Vec<&Directive> = Vec::new();
        let mut returns: Option<&Directive> = None;
        // `ssl on;` (before nginx 1.25) makes every listener of the server TLS.
        let ssl_on = d
            .children()
            .iter()
            .any(|c| c.name == "ssl" && c.arg(0) == "on");
        for c in d.children() {
            if self.common(c, &mut inh, false) {
                continue;
            }
            match c.name.as_str() {
                "listen" => {
                    let ssl = c.args.iter().any(|a| a == "ssl") || ssl_on;
                    default |= c
                        .args
                        .iter()
                        .any(|a| a == "default_server" || a == "default");
                    match listen_addr(c.arg(0)) {
                        Some(addr) if c.arg(0).starts_with('[') => {
                            let _ = addr;
                            self.report.note(
                                c,
                                ignored(
                                    "IPv6: add \"[::]:PORT\" to the listeners if the host has it",
                                ),
                            );
                        }
                        Some(addr) => {
                            let (table, key) = if ssl {
                                (&mut self.tls, "listen")
                            } else {
                                (&mut self.server, "listen")
                            };
                            push_unique(table, key, &addr);
                            if !own_listen.contains(&addr) {
                                own_listen.push(addr.clone());
                            }
                            let extra: Vec<&String> = c
                                .args
                                .get(1..)
                                .unwrap_or_default()
                                .iter()
                                .filter(|a| {
                                    !matches!(
                                        a.as_str(),
                                        "ssl"
                                            | "http2"
                                            | "default_server"
                                            | "default"
                                            | "deferred"
                                            | "reuseport"
                                    )
                                })
                                .collect();
                            match extra.is_empty() {
                                true => self.report.note(c, Fate::Converted),
                                false => self
                                    .report
                                    .note(c, partial(format!("{extra:?} not carried over"))),
                            }
                        }
                        None => self.report.note(c, Fate::Unsupported),
                    }
                }
                "server_name" => {
                    names.extend(c.args.iter().cloned());
                    self.report.note(c, Fate::Converted);
                }
                "ssl_certificate" => {
                    self.tls.insert("cert".into(), s(c.arg(0)));
                    self.report.note(c, Fate::Converted);
                }
                "ssl_certificate_key" => {
                    self.tls.insert("key".into(), s(c.arg(0)));
                    self.report.note(c, Fate::Converted);
                }
                "charset" => self.report.note(
                    c,
                    partial(
                        "authz-edge adds no charset to Content-Type (files get utf-8 for text)",
                    ),
                ),
                "ssl" if c.arg(0) == "on" => self.report.note(c, Fate::Converted),
                "http2" | "ssl" => self
                    .report
                    .note(c, ignored("HTTPS listeners speak HTTP/2 and HTTP/1.1")),
                "location" => locations.push(c),
                "return" => returns = Some(c),
                "include" if c.block.is_some() => {
                    self.report
                        .note(c, partial("included server directives are not read"));
                }
                "ssl_protocols"
                | "ssl_ciphers"
                | "ssl_prefer_server_ciphers"
                | "ssl_session_cache"
                | "ssl_session_timeout"
                | "ssl_session_tickets"
                | "ssl_dhparam"
                | "ssl_stapling"
                | "ssl_stapling_verify"
                | "ssl_trusted_certificate"
                | "ssl_ecdh_curve"
                | "server_tokens"
                | "resolver" => self
                    .report
                    .note(c, ignored("authz-edge's TLS is rustls's (TLS 1.2 and 1.3)")),
                _ => self.report.note(c, Fate::Unsupported),
            }
        }
        let mut locs = Vec::new();
        if let Some(r) = returns {
            // nginx's server-level `return` answers before any location is searched.
            if let Some(ret) = self.ret(r, names.first().map_or("", String::as_str)) {
                site.insert("return".into(), Value::Table(ret));
            }
            for l in &locations {
                self.report
                    .note(l, ignored("the server's `return` answers first"));
            }
        } else {
            let first_name = names.first().cloned().unwrap_or_default();
            for l in locations {
                self.location(l, &inh, &first_name, &mut locs);
            }
            if locs.is_empty() {
                // nginx would serve files from its own `html` directory.
                let mut t = Table::new();
                let mut r = Table::new();
                r.insert("status".into(), Value::Integer(404));
                t.insert("return".into(), Value::Table(r));
                locs.push(Loc {
                    path: "/".into(),
                    table: t,
                    pool: None,
                });
                self.report.note(
                    d,
                    partial("no location: answered 404 where nginx serves its html directory"),
                );
            }
        }
        if default {
            site.insert("default".into(), Value::Boolean(true));
        }
        self.sites.push(SiteOut {
            table: site,
            locs,
            names: names.into_iter().filter(|n| !n.is_empty()).collect(),
            listen: own_listen,
            server: d.clone(),
        });
        self.report.note(d, Fate::Converted);
    }

    /// A `return` as authz-edge's table (`$server_name` is the server's first name, as nginx
    /// fills it), or `None` (reported unsupported).
    fn ret(&mut self, d: &Directive, server_name: &str) -> Option<Table> {
        let mut t = Table::new();
        let (code, rest) = match d.arg(0).parse::<u16>() {
            Ok(c) => (c, d.args.get(1)),
            // `return URL`: a 302.
            Err(_) => (302, d.args.first()),
        };
        if crate::rules::template::Template::parse(rest.map_or("", String::as_str)).is_err() {
            self.report.note(d, Fate::Unsupported);
            return None;
        }
        t.insert("status".into(), Value::Integer(i64::from(code)));
        if let Some(r) = rest {
            let r = &r
                .replace("${server_name}", server_name)
                .replace("$server_name", server_name);
            let key = if matches!(code, 301 | 302 | 303 | 307 | 308) {
                "location"
            } else {
                "body"
            };
            t.insert(key.into(), s(r));
        }
        self.report.note(d, Fate::Converted);
        Some(t)
    }

    /// One location (and those nested in it, after it); `server_name` is its server's first
    /// name, for `$server_name`.
    fn location(
        &mut self,
        d: &Directive,
        outer: &Inherited,
        server_name: &str,
        out: &mut Vec<Loc>,
    ) {
        self.location_in(d, outer, server_name, "", out);
    }

    fn location_in(
        &mut self,
        d: &Directive,
        outer: &Inherited,
        parent_name: &str,
        parent: &str,
        out: &mut Vec<Loc>,
    ) {
        let mut inh = outer.below();
        let path = d.args.join(" ");
        let mut t = Table::new();
        let mut pool = None;
        let mut nested = Vec::new();
        let mut handler = false;
        let mut proxy_host = None;
        for c in d.children() {
            if self.common(c, &mut inh, false) {
                continue;
            }
            match c.name.as_str() {
                "proxy_pass" => {
                    handler = true;
                    match self.proxy_pass(c.arg(0), &path) {
                        Ok((p, uri, note, host)) => {
                            pool = Some(p);
                            proxy_host = Some(host);
                            if let Some(u) = uri {
                                t.insert("proxy_path".into(), s(&u));
                            }
                            match note {
                                None => self.report.note(c, Fate::Converted),
                                Some(w) => self.report.note(c, partial(w)),
                            }
                        }
                        Err(()) => {
                            // Answered as nginx answers an upstream it cannot reach.
                            let mut r = Table::new();
                            r.insert("status".into(), Value::Integer(502));
                            t.insert("return".into(), Value::Table(r));
                            self.report.note(c, Fate::Unsupported)
                        }
                    }
                }
                "alias" => {
                    handler = true;
                    t.insert("alias".into(), s(c.arg(0)));
                    let regex = path.starts_with('~');
                    match regex {
                        true => self.report.note(c, Fate::Unsupported),
                        false => self.report.note(c, Fate::Converted),
                    }
                }
                "return" => {
                    handler = true;
                    if let Some(r) = self.ret(c, parent_name) {
                        t.insert("return".into(), Value::Table(r));
                    }
                }
                "try_files" => {
                    t.insert(
                        "try_files".into(),
                        Value::Array(c.args.iter().map(|a| s(a)).collect()),
                    );
                    self.report.note(c, Fate::Converted);
                }
                "internal" => {
                    t.insert("internal".into(), Value::Boolean(true));
                    self.report.note(c, Fate::Converted);
                }
                "expires" => {
                    let v = match c.arg(0) {
                        w @ ("max" | "epoch" | "off") => Some(w.to_string()),
                        d => duration(d),
                    };
                    match v {
                        Some(v) => {
                            t.insert("expires".into(), s(&v));
                            self.report.note(c, Fate::Converted);
                        }
                        None => self.report.note(c, Fate::Unsupported),
                    }
                }
                "rewrite" => {
                    let flag = c.arg(2);
                    if matches!(flag, "break" | "last" | "") && !c.arg(1).contains("://") {
                        let mut rw = Table::new();
                        rw.insert("pattern".into(), s(c.arg(0)));
                        rw.insert("replacement".into(), s(c.arg(1)));
                        t.insert("rewrite".into(), Value::Table(rw));
                        match flag {
                            "break" => self.report.note(c, Fate::Converted),
                            _ => self.report.note(
                                c,
                                partial("applied as `break`: locations are not searched again"),
                            ),
                        }
                    } else {
                        self.report.note(c, Fate::Unsupported);
                    }
                }
                "location" => nested.push(c),
                _ => self.report.note(c, Fate::Unsupported),
            }
        }
        if !handler && !t.contains_key("return") {
            if let Some(root) = &inh.root {
                t.insert("root".into(), s(root));
            } else if t.contains_key("try_files") || !path.starts_with('@') {
                // nginx would serve files from its compiled-in `html` directory.
                t.insert("return".into(), {
                    let mut r = Table::new();
                    r.insert("status".into(), Value::Integer(404));
                    Value::Table(r)
                });
            }
        }
        if let Some(p) = &pool {
            t.insert("proxy".into(), s(p));
            let keys = self.pool_keys.entry(p.clone()).or_default();
            for (k, v) in &inh.pool_keys {
                keys.insert(k.clone(), v.clone());
            }
        }
        // nginx sends proxy_pass's own host as Host unless told otherwise ($proxy_host).
        if let Some(h) = proxy_host {
            if !inh
                .set_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("host"))
            {
                inh.set_headers.push(("Host".into(), Some(h)));
            }
        }
        self.inherited_into(&inh, &mut t, pool.is_some());
        out.push(Loc {
            path: path.clone(),
            table: t,
            pool,
        });
        if !parent.is_empty() || !nested.is_empty() {
            for n in nested {
                self.report.note(
                    n,
                    partial(format!(
                        "nested in `{path}`: matched among the site's locations"
                    )),
                );
                self.location_in(n, &inh, parent_name, &path, out);
            }
        }
        self.report.note(d, Fate::Converted);
    }

    /// Writes a location's resolved inherited rules into its table.
    fn inherited_into(&mut self, inh: &Inherited, t: &mut Table, proxied: bool) {
        let sets: Vec<(&String, &String)> = inh
            .set_headers
            .iter()
            .filter_map(|(n, v)| v.as_ref().map(|v| (n, v)))
            .collect();
        if proxied && !sets.is_empty() {
            let mut m = Table::new();
            for (n, v) in sets {
                m.insert(n.clone(), s(v));
            }
            t.insert("set_headers".into(), Value::Table(m));
        }
        let adds: Vec<Value> = inh
            .add_headers
            .iter()
            .map(|(n, v, always)| {
                let mut h = Table::new();
                h.insert("name".into(), s(n));
                h.insert("value".into(), s(v));
                if *always {
                    h.insert("always".into(), Value::Boolean(true));
                }
                Value::Table(h)
            })
            .collect();
        if !adds.is_empty() {
            t.insert("add_headers".into(), Value::Array(adds));
        }
        if proxied && !inh.hide_headers.is_empty() {
            t.insert(
                "hide_headers".into(),
                Value::Array(inh.hide_headers.iter().map(|h| s(h)).collect()),
            );
        }
        let access: Vec<Value> = inh.access.iter().map(|a| s(a)).collect();
        if !access.is_empty() {
            t.insert("access".into(), Value::Array(access));
        }
        let pages: Vec<Value> = inh
            .error_pages
            .iter()
            .map(|(codes, target, status)| {
                let mut p = Table::new();
                p.insert(
                    "codes".into(),
                    Value::Array(
                        codes
                            .iter()
                            .map(|c| Value::Integer(i64::from(*c)))
                            .collect(),
                    ),
                );
                p.insert("target".into(), s(target));
                if let Some(st) = status {
                    p.insert("status".into(), Value::Integer(i64::from(*st)));
                }
                Value::Table(p)
            })
            .collect();
        if !pages.is_empty() {
            t.insert("error_pages".into(), Value::Array(pages));
        }
        if let Some(n) = inh.max_body {
            t.insert("max_body_bytes".into(), Value::Integer(n as i64));
        }
        if inh.intercept && proxied {
            t.insert("intercept_errors".into(), Value::Boolean(true));
        }
        if let Some(l) = &inh.limit_req {
            t.insert("limit_req".into(), Value::Table(l.clone()));
        }
    }

    /// A `proxy_pass` target: the pool's key, the URI part (for `proxy_path`), and why it is
    /// partial if it is.
    #[allow(clippy::type_complexity)]
    fn proxy_pass(
        &mut self,
        target: &str,
        location: &str,
    ) -> Result<(String, Option<String>, Option<String>, String), ()> {
        let rest = target.strip_prefix("http://").ok_or(())?;
        // `http://host$request_uri` sends the request's own URI: as no URI at all.
        let rest = rest
            .strip_suffix("$request_uri")
            .filter(|r| !r.contains('/'))
            .unwrap_or(rest);
        if rest.contains('$') {
            return Err(());
        }
        // `unix:/path:/uri` or `host[:port][/uri]`.
        let (authority, uri) = if let Some(u) = rest.strip_prefix("unix:") {
            match u.split_once(":/") {
                Some((p, uri)) => (format!("unix:{p}"), Some(format!("/{uri}"))),
                None => (format!("unix:{}", u.trim_end_matches(':')), None),
            }
        } else {
            match rest.find('/') {
                Some(i) => (rest[..i].to_string(), Some(rest[i..].to_string())),
                None => (rest.to_string(), None),
            }
        };
        let key = if self.blocks.contains_key(&authority) {
            authority.clone()
        } else {
            let addr = server_addr(&authority).ok_or(())?;
            let key = format!("addr {addr}");
            self.blocks
                .entry(key.clone())
                .or_insert_with(|| (vec![addr], Table::new()));
            key
        };
        if !self.pools_used.contains(&key) {
            self.pools_used.push(key.clone());
        }
        let mut note = None;
        if uri.is_some() && (location.starts_with('~') || location.starts_with('@')) {
            note = Some("a URI in proxy_pass of a regex or named location".to_string());
        }
        // nginx's $proxy_host: the block's name, the address without port 80, or `localhost`
        // for a unix socket.
        let host = if authority.starts_with("unix:") {
            "localhost".to_string()
        } else {
            authority
                .strip_suffix(":80")
                .unwrap_or(&authority)
                .to_string()
        };
        Ok((key, uri, note, host))
    }

    /// The config as TOML text.
    pub fn toml(&self) -> String {
        let mut root = Table::new();
        let mut server = self.server.clone();
        if !server.contains_key("listen") {
            server.insert("listen".into(), Value::Array(Vec::new()));
        }
        server.insert("admin".into(), s("127.0.0.1:9090"));
        root.insert("server".into(), Value::Table(server));
        if self.tls.contains_key("listen") {
            root.insert("tls".into(), Value::Table(self.tls.clone()));
        }
        let names = self.pool_names();
        let mut upstreams = Table::new();
        for (key, name) in &names {
            let Some((servers, keys)) = self.blocks.get(key) else {
                continue;
            };
            let mut t = self.upstream_keys.clone();
            for (k, v) in keys
                .iter()
                .chain(self.pool_keys.get(key).into_iter().flatten())
            {
                t.insert(k.clone(), v.clone());
            }
            t.insert(
                "servers".into(),
                Value::Array(servers.iter().map(|a| s(a)).collect()),
            );
            if name == crate::config::DEFAULT_POOL {
                root.insert("upstream".into(), Value::Table(t));
            } else {
                upstreams.insert(name.clone(), Value::Table(t));
            }
        }
        if !root.contains_key("upstream") {
            // Nothing is proxied: a pool is still required.
            let mut t = Table::new();
            t.insert("servers".into(), Value::Array(vec![s("127.0.0.1:8000")]));
            root.insert("upstream".into(), Value::Table(t));
        }
        if !upstreams.is_empty() {
            root.insert("upstreams".into(), Value::Table(upstreams));
        }
        let mut limits = self.limits.clone();
        // nginx's default client_max_body_size is 1m.
        limits
            .entry("max_body_bytes")
            .or_insert(Value::Integer(1024 * 1024));
        root.insert("limits".into(), Value::Table(limits));
        let mut compression = self.compression.clone();
        compression
            .entry("enabled")
            .or_insert(Value::Boolean(false));
        root.insert("compression".into(), Value::Table(compression));
        let mut sites = Vec::new();
        for SiteOut { table, locs, .. } in &self.sites {
            let mut site = table.clone();
            let list: Vec<Value> = locs
                .iter()
                .map(|l| {
                    let mut t = Table::new();
                    t.insert("path".into(), s(&l.path));
                    for (k, v) in &l.table {
                        let v = match (k.as_str(), &l.pool) {
                            ("proxy", Some(p)) => {
                                s(names.get(p).map_or(p.as_str(), String::as_str))
                            }
                            _ => v.clone(),
                        };
                        t.insert(k.clone(), v);
                    }
                    Value::Table(t)
                })
                .collect();
            site.insert("locations".into(), Value::Array(list));
            sites.push(Value::Table(site));
        }
        root.insert("sites".into(), Value::Array(sites));
        let header = "# Written by `authz-edge import-nginx`: check it with `authz-edge check --config FILE`.\n\n";
        format!("{header}{}", toml::to_string(&root).unwrap_or_default())
    }

    /// Pool keys to their names: the first used is `default` (`[upstream]`).
    fn pool_names(&self) -> BTreeMap<String, String> {
        let mut names = BTreeMap::new();
        for (i, key) in self.pools_used.iter().enumerate() {
            let name = if i == 0 {
                crate::config::DEFAULT_POOL.to_string()
            } else {
                let base: String = key
                    .trim_start_matches("addr ")
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let base = base.trim_matches('_').to_string();
                if base.is_empty() || base == crate::config::DEFAULT_POOL {
                    format!("pool{i}")
                } else {
                    base
                }
            };
            names.insert(key.clone(), name);
        }
        names
    }
}

fn push_unique(t: &mut Table, key: &str, v: &str) {
    let list = t.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = list {
        if !a.iter().any(|x| x.as_str() == Some(v)) {
            a.push(s(v));
        }
    }
}
