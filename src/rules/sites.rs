//! The compiled `[[sites]]` and `[[locations]]`: the site for a request's `Host` (nginx's
//! `server_name` rules and `default_server`), and in it the location for its path
//! (`locations`), with what that location does and the rules it adds.
//!
//! A config with neither is one site whose one location sends everything to `[upstream]`
//! (after `[[static]]` mounts), exactly as before sites existed.
//!
//! Longer than 400 lines because it compiles every key of a location and a site, with the
//! inheritance nginx gives them, in one place.

use super::limit_req::Limiter;
use super::locations::{Found, Kind, Matcher};
use super::template::Template;
use crate::config::site_keys as conf;
use crate::config::{Config, Problem};
use http::HeaderName;
use ipnet::IpNet;
use regex::Regex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// Files served from a directory: a `[[static]]` mount, or a location's `root` or `alias`.
pub struct StaticMount {
    /// What is cut from the path before it is looked up under `root`.
    pub prefix: String,
    pub root: PathBuf,
    pub gzip: bool,
    pub cache_control: Option<String>,
}

/// What a location does with a request.
pub enum Action {
    /// Sent to the pool with this index (`Runtime::pool`).
    Proxy { pool: usize },
    /// Files from a directory (`mount.prefix` is what is cut from the path: the location's
    /// prefix for `alias`, nothing for `root`).
    Files {
        mount: StaticMount,
        try_files: Vec<TryFile>,
    },
    /// A status of the proxy's own, with a redirect target or a body.
    Return {
        status: u16,
        location: Option<Template>,
        body: Option<Template>,
    },
    /// Nothing of its own: an internal location reached only for its error pages.
    Nothing,
}

/// One `try_files` entry.
pub enum TryFile {
    /// A file (`$uri`, `/index.html`); `true` when written with a final `/` (`$uri/`): the
    /// directory's `index.html`.
    File(Template, bool),
    Named(String),
    Status(u16),
    Uri(Template),
}

/// A location's rules, its site's filled in where it sets none.
pub struct Location {
    /// As written, for logs and the importer's report.
    pub path: String,
    pub action: Action,
    pub internal: bool,
    pub set_headers: Vec<(HeaderName, Template)>,
    pub add_headers: Vec<(HeaderName, Template, bool)>,
    pub hide_headers: Vec<HeaderName>,
    pub max_body_bytes: Option<u64>,
    pub access: Vec<(bool, Option<IpNet>)>,
    pub limit: Option<Limiter>,
    pub error_pages: Vec<ErrorPage>,
    pub intercept_errors: bool,
    pub rewrite: Option<(Regex, Template)>,
    /// nginx's `proxy_pass http://pool/URI;`: the matched prefix replaced with this.
    pub proxy_path: Option<String>,
    /// nginx's `expires`: `Some(None)` is `epoch`.
    pub expires: Option<Option<std::time::Duration>>,
    /// Nothing but proxying: the relay may take its requests.
    pub plain: bool,
}

pub struct ErrorPage {
    pub codes: Vec<u16>,
    pub target: String,
    pub status: Option<u16>,
}

impl Location {
    /// Whether `ip` may use this location (`access`: the first matching rule; none: yes).
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        for (allow, net) in &self.access {
            let hit = match (net, ip) {
                (None, _) => true,
                (Some(n), Some(ip)) => n.contains(&ip),
                (Some(_), None) => false,
            };
            if hit {
                return *allow;
            }
        }
        true
    }

    /// The error page for `status`, if any.
    pub fn error_page(&self, status: u16) -> Option<&ErrorPage> {
        self.error_pages.iter().find(|p| p.codes.contains(&status))
    }
}

/// A site and its locations.
pub struct Site {
    pub names: Vec<String>,
    /// The listeners it answers on; all when empty.
    pub listen: Vec<std::net::SocketAddr>,
    pub locations: Vec<Location>,
    matcher: Matcher,
    /// The first locations are `[[static]]` mounts, matched on the raw path before anything
    /// else, as before sites existed (so `/static/../x` stays theirs and is refused there).
    statics: usize,
    /// Answers everything before locations (nginx's server-level `return`).
    pub ret: Option<Action>,
    /// It has internal locations: Django's `X-Accel-Redirect` is followed, so its responses
    /// go through the session loop.
    pub has_internal: bool,
}

impl Site {
    /// Whether the site answers on the listener at `local` (nginx's `listen` per server).
    fn answers_on(&self, local: Option<std::net::SocketAddr>) -> bool {
        match local {
            _ if self.listen.is_empty() => true,
            None => true,
            Some(l) => self
                .listen
                .iter()
                .any(|a| a.port() == l.port() && (a.ip().is_unspecified() || a.ip() == l.ip())),
        }
    }

    /// The location for a request: a `[[static]]` mount by the raw path's prefix, else by
    /// `uri` (`locations::uri_of` of it) as nginx matches.
    pub fn locate(&self, raw_path: &str, uri: &str) -> Option<Found> {
        let mount = self.locations[..self.statics]
            .iter()
            .position(|l| raw_path.starts_with(l.path.as_str()));
        match mount {
            Some(index) => Some(Found {
                index,
                prefix_len: self.locations[index].path.len(),
                ..Found::default()
            }),
            None => self.find(uri),
        }
    }

    /// The location for `uri` (from `locations::uri_of`).
    pub fn find(&self, uri: &str) -> Option<Found> {
        self.matcher.find(uri)
    }

    /// The `@name` location.
    pub fn named(&self, name: &str) -> Option<usize> {
        self.matcher.named(name)
    }

    /// The location for a URI the proxy redirects to itself (`X-Accel-Redirect`, an error
    /// page, `try_files`): `@name` or a path, internal ones included.
    pub fn internal_target(&self, target: &str) -> Option<Found> {
        match target.strip_prefix('@') {
            Some(name) => self.named(name).map(|index| Found {
                index,
                ..Found::default()
            }),
            None => {
                let path = target.split('?').next().unwrap_or(target);
                self.find(&super::locations::uri_of(path))
            }
        }
    }

    pub fn regex_count(&self) -> usize {
        self.matcher.regex_count()
    }
}

/// Every site, and how a host finds its own.
pub struct Sites {
    pub list: Vec<Site>,
    /// Sites marked `default`, in order (one per listener at most).
    defaults: Vec<usize>,
    exact: HashMap<String, Vec<usize>>,
    /// `*.example.com` as `.example.com`, longest first.
    leading: Vec<(String, usize)>,
    /// `mail.*` as `mail.`, longest first.
    trailing: Vec<(String, usize)>,
    regexes: Vec<(Regex, usize)>,
}

impl Sites {
    /// The site for a `Host` value (any case, with or without port) on the listener at
    /// `local`, among the sites that answer there: nginx's order, exact name, longest leading
    /// wildcard, longest trailing wildcard, first regex, else that listener's default site
    /// (the one marked, else the first).
    pub fn for_host(&self, host: Option<&str>, local: Option<std::net::SocketAddr>) -> &Site {
        if self.list.len() == 1 {
            return &self.list[0];
        }
        let here = |i: &usize| self.list.get(*i).is_some_and(|s| s.answers_on(local));
        let by_name = host.and_then(|host| {
            let h = host_of(host);
            let ends = |(s, i): &(String, usize)| h.ends_with(s.as_str()).then_some(*i);
            let starts = |(p, i): &(String, usize)| h.starts_with(p.as_str()).then_some(*i);
            let exact = self.exact.get(h.as_str());
            exact
                .and_then(|v| v.iter().copied().find(here))
                .or_else(|| self.leading.iter().filter_map(ends).find(here))
                .or_else(|| self.trailing.iter().filter_map(starts).find(here))
                .or_else(|| {
                    let re = |(r, i): &(Regex, usize)| r.is_match(&h).then_some(*i);
                    self.regexes.iter().filter_map(re).find(here)
                })
        });
        let i = by_name
            .or_else(|| self.defaults.iter().copied().find(here))
            .or_else(|| (0..self.list.len()).find(here))
            .unwrap_or(0);
        &self.list[i]
    }

    /// Whether every site is one plain location sending all to `[upstream]` (the config has
    /// no sites or locations).
    pub fn is_plain(&self) -> bool {
        let [site] = self.list.as_slice() else {
            return false;
        };
        match site.locations.as_slice() {
            [only] => {
                only.plain && matches!(only.action, Action::Proxy { pool: 0 }) && !site.has_internal
            }
            _ => false,
        }
    }
}

/// `Host` as names are matched: lower case, no port, no trailing dot.
pub fn host_of(host: &str) -> String {
    let h = if host.starts_with('[') {
        host.split(']').next().map_or(host, |s| s).to_string() + "]"
    } else {
        host.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|c| c.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
            .to_string()
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Compiles the sites of `c`; `pools` are the upstream pools' names, index 0 `default`.
pub fn compile(c: &Config, pools: &[&str]) -> Result<Sites, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut list = Vec::new();
    let mut defaults = Vec::new();
    let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
    let (mut leading, mut trailing, mut regexes) = (Vec::new(), Vec::new(), Vec::new());
    for (si, s) in c.sites.iter().enumerate() {
        let key = format!("sites[{si}]");
        let mut site = compile_site(&key, &s.locations, Some(s), &[], pools, &mut problems);
        site.listen = s.listen.clone();
        for (li, a) in s.listen.iter().enumerate() {
            let known = c.server.listen.contains(a) || c.tls.iter().any(|t| t.listen.contains(a));
            if !known {
                problems.push(problem(
                    &key,
                    &format!("listen[{li}]"),
                    &format!("{a} is not in server.listen or tls.listen"),
                ));
            }
        }
        if s.default {
            let clash = defaults
                .iter()
                .any(|&d: &usize| shares_listener(&list[d], &site));
            if clash {
                problems.push(problem(
                    &key,
                    "default",
                    "only one site per listener may be the default",
                ));
            }
            defaults.push(list.len());
        }
        for (ni, name) in s.names.iter().enumerate() {
            let idx = list.len();
            let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
            if let Some(re) = n.strip_prefix('~') {
                match Regex::new(re) {
                    Ok(r) => regexes.push((r, idx)),
                    Err(e) => problems.push(problem(
                        &key,
                        &format!("names[{ni}]"),
                        &format!(
                            "`{name}` is not a regular expression: {}",
                            super::locations::one_line(&e)
                        ),
                    )),
                }
            } else if let Some(rest) = n.strip_prefix("*.") {
                leading.push((format!(".{rest}"), idx));
            } else if let Some(rest) = n.strip_prefix('.') {
                exact.entry(rest.to_string()).or_default().push(idx);
                leading.push((format!(".{rest}"), idx));
            } else if let Some(rest) = n.strip_suffix(".*") {
                trailing.push((format!("{rest}."), idx));
            } else if n.is_empty() || n == "_" {
                // nginx's catch-all spellings: the site is reached as the default only.
            } else {
                let same = exact.entry(n.clone()).or_default();
                let shared = same.iter().any(|&j| shares_listener(&list[j], &site));
                if shared {
                    problems.push(problem(
                        &key,
                        &format!("names[{ni}]"),
                        &format!("`{name}` names an earlier site on the same listener"),
                    ));
                }
                same.push(idx);
            }
        }
        list.push(site);
    }
    let top_level = c.sites.is_empty() || !c.locations.is_empty() || !c.statics.is_empty();
    if top_level {
        let site = compile_site("", &c.locations, None, &c.statics, pools, &mut problems);
        list.push(site);
    }
    leading.sort_by_key(|l| std::cmp::Reverse(l.0.len()));
    trailing.sort_by_key(|t| std::cmp::Reverse(t.0.len()));
    if !problems.is_empty() {
        return Err(problems);
    }
    if top_level && defaults.is_empty() {
        defaults.push(list.len() - 1);
    }
    Ok(Sites {
        list,
        defaults,
        exact,
        leading,
        trailing,
        regexes,
    })
}

/// Whether two sites answer on a listener in common (one bound to none answers on all).
fn shares_listener(a: &Site, b: &Site) -> bool {
    a.listen.is_empty() || b.listen.is_empty() || a.listen.iter().any(|l| b.listen.contains(l))
}

fn problem(section: &str, key: &str, message: &str) -> Problem {
    let key = match (section.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (false, true) => section.to_string(),
        (false, false) => format!("{section}.{key}"),
    };
    Problem {
        key,
        message: message.to_string(),
    }
}

/// One site: its locations (`[[static]]` mounts first as `alias` prefixes, for the top-level
/// site), and with none at all the one location that proxies everything.
fn compile_site(
    section: &str,
    locations: &[conf::Location],
    site: Option<&conf::Site>,
    statics: &[crate::config::Static],
    pools: &[&str],
    problems: &mut Vec<Problem>,
) -> Site {
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for s in statics {
        kinds.push(Kind::Prefix(s.prefix.clone()));
        let mut loc = bare(
            &s.prefix,
            Action::Files {
                mount: StaticMount {
                    prefix: s.prefix.clone(),
                    root: PathBuf::from(&s.root),
                    gzip: s.gzip,
                    cache_control: s.cache_control.clone(),
                },
                try_files: Vec::new(),
            },
        );
        loc.plain = false;
        out.push(loc);
    }
    let base = if section.is_empty() {
        "locations".to_string()
    } else {
        format!("{section}.locations")
    };
    for (i, l) in locations.iter().enumerate() {
        let key = format!("{base}[{i}]");
        match Kind::parse(&l.path) {
            Ok(k) => {
                let loc = compile_location(&key, l, &k, site, pools, problems);
                kinds.push(k);
                out.push(loc);
            }
            Err(e) => problems.push(problem(&key, "path", &e)),
        }
    }
    // The site's own rules, checked once under its own keys (its locations take them
    // without saying their problems again).
    if let Some(s) = site {
        apply(
            &mut bare("/", Action::Nothing),
            section,
            &of_site(s),
            problems,
        );
    }
    if locations.is_empty() {
        // No locations: everything else goes to `[upstream]`, as before sites existed.
        kinds.push(Kind::Prefix("/".into()));
        let mut loc = bare("/", Action::Proxy { pool: 0 });
        if let Some(s) = site {
            apply(&mut loc, section, &of_site(s), &mut Vec::new());
        }
        loc.plain = loc.is_plain();
        out.push(loc);
    }
    let matcher = Matcher::new(&kinds).unwrap_or_else(|(i, e)| {
        let i = i.saturating_sub(statics.len());
        problems.push(problem(&format!("{base}[{i}]"), "path", &e));
        Matcher::default()
    });
    let has_internal = out.iter().any(|l| l.internal);
    Site {
        names: site.map(|s| s.names.clone()).unwrap_or_default(),
        listen: Vec::new(),
        ret: site.and_then(|s| s.ret.as_ref()).map(|r| {
            let mut bad = |k: &str, m: String| problems.push(problem(section, k, &m));
            compile_return(r, &mut bad)
        }),
        locations: out,
        matcher,
        statics: statics.len(),
        has_internal,
    }
}

/// A `return`'s keys; problems under `return.…`.
fn compile_return(r: &conf::Return, bad: &mut dyn FnMut(&str, String)) -> Action {
    let mut parse = |t: &Option<String>, k: &str| {
        t.as_ref()
            .and_then(|t| Template::parse(t).map_err(|e| bad(k, e)).ok())
    };
    let location = parse(&r.location, "return.location");
    let body = parse(&r.body, "return.body");
    if !(200..=599).contains(&r.status) {
        bad(
            "return.status",
            format!("{} is not a status from 200 to 599", r.status),
        );
    }
    if matches!(r.status, 301 | 302 | 303 | 307 | 308) && location.is_none() {
        bad("return.location", "a redirect needs a location".into());
    }
    Action::Return {
        status: r.status,
        location,
        body,
    }
}

/// `expires`: how long, or `Some(None)` for nginx's `epoch` (already expired).
pub fn parse_expires(v: &str) -> Result<Option<Option<std::time::Duration>>, String> {
    match v.trim() {
        "off" => Ok(None),
        "epoch" => Ok(Some(None)),
        "max" => Ok(Some(Some(std::time::Duration::from_secs(315_360_000)))),
        d => crate::config::parse_duration(d).map(|d| Some(Some(d))),
    }
}

fn bare(path: &str, action: Action) -> Location {
    Location {
        path: path.to_string(),
        action,
        internal: false,
        set_headers: Vec::new(),
        add_headers: Vec::new(),
        hide_headers: Vec::new(),
        max_body_bytes: None,
        access: Vec::new(),
        limit: None,
        error_pages: Vec::new(),
        intercept_errors: false,
        rewrite: None,
        proxy_path: None,
        expires: None,
        plain: true,
    }
}

impl Location {
    fn is_plain(&self) -> bool {
        matches!(self.action, Action::Proxy { .. })
            && !self.internal
            && self.set_headers.is_empty()
            && self.add_headers.is_empty()
            && self.hide_headers.is_empty()
            && self.max_body_bytes.is_none()
            && self.access.is_empty()
            && self.limit.is_none()
            && self.error_pages.is_empty()
            && self.rewrite.is_none()
            && self.proxy_path.is_none()
            && self.expires.is_none()
    }
}

/// The inherited keys as one location or site gives them.
struct Inherited<'a> {
    set_headers: Option<&'a std::collections::BTreeMap<String, String>>,
    add_headers: Option<&'a Vec<conf::AddHeader>>,
    hide_headers: Option<&'a Vec<String>>,
    max_body_bytes: Option<u64>,
    access: Option<&'a Vec<String>>,
    error_pages: Option<&'a Vec<conf::ErrorPage>>,
}

fn of_site(s: &conf::Site) -> Inherited<'_> {
    Inherited {
        set_headers: s.set_headers.as_ref(),
        add_headers: s.add_headers.as_ref(),
        hide_headers: s.hide_headers.as_ref(),
        max_body_bytes: s.max_body_bytes,
        access: s.access.as_ref(),
        error_pages: s.error_pages.as_ref(),
    }
}

fn of_location(l: &conf::Location) -> Inherited<'_> {
    Inherited {
        set_headers: l.set_headers.as_ref(),
        add_headers: l.add_headers.as_ref(),
        hide_headers: l.hide_headers.as_ref(),
        max_body_bytes: l.max_body_bytes,
        access: l.access.as_ref(),
        error_pages: l.error_pages.as_ref(),
    }
}

/// Fills `loc`'s inherited rules from `inh` (keys under `key`), each only where `loc` has
/// none yet.
fn apply(loc: &mut Location, key: &str, inh: &Inherited<'_>, problems: &mut Vec<Problem>) {
    let mut bad = |k: &str, m: &str| problems.push(problem(key, k, m));
    if let (true, Some(set)) = (loc.set_headers.is_empty(), inh.set_headers) {
        for (name, value) in set {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                Template::parse(value),
            ) {
                (Ok(n), Ok(t)) => loc.set_headers.push((n, t)),
                (Err(_), _) => bad("set_headers", &format!("`{name}` is not a header name")),
                (_, Err(e)) => bad(&format!("set_headers.{name}"), &e),
            }
        }
    }
    if let (true, Some(add)) = (loc.add_headers.is_empty(), inh.add_headers) {
        for (i, h) in add.iter().enumerate() {
            match (
                HeaderName::from_bytes(h.name.as_bytes()),
                Template::parse(&h.value),
            ) {
                (Ok(n), Ok(t)) => loc.add_headers.push((n, t, h.always)),
                (Err(_), _) => bad(
                    &format!("add_headers[{i}].name"),
                    &format!("`{}` is not a header name", h.name),
                ),
                (_, Err(e)) => bad(&format!("add_headers[{i}].value"), &e),
            }
        }
    }
    if let (true, Some(hide)) = (loc.hide_headers.is_empty(), inh.hide_headers) {
        for name in hide {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(n) => loc.hide_headers.push(n),
                Err(_) => bad("hide_headers", &format!("`{name}` is not a header name")),
            }
        }
    }
    if loc.max_body_bytes.is_none() {
        loc.max_body_bytes = inh.max_body_bytes;
    }
    if let (true, Some(rules)) = (loc.access.is_empty(), inh.access) {
        for (i, r) in rules.iter().enumerate() {
            match conf::access_rule(r) {
                Ok(rule) => loc.access.push(rule),
                Err(e) => bad(&format!("access[{i}]"), &e),
            }
        }
    }
    if let (true, Some(pages)) = (loc.error_pages.is_empty(), inh.error_pages) {
        for (i, p) in pages.iter().enumerate() {
            if p.codes.iter().any(|c| !(300..=599).contains(c)) {
                bad(
                    &format!("error_pages[{i}].codes"),
                    "codes must be 300 to 599",
                );
            }
            loc.error_pages.push(ErrorPage {
                codes: p.codes.clone(),
                target: p.target.clone(),
                status: p.status,
            });
        }
    }
}

fn compile_location(
    key: &str,
    l: &conf::Location,
    kind: &Kind,
    site: Option<&conf::Site>,
    pools: &[&str],
    problems: &mut Vec<Problem>,
) -> Location {
    let mut bad = |k: &str, m: String| problems.push(problem(key, k, &m));
    let actions = [
        l.proxy.is_some(),
        l.root.is_some() || l.alias.is_some(),
        l.ret.is_some(),
    ];
    let given = actions.iter().filter(|a| **a).count();
    if given > 1 {
        bad("", "give one of proxy, root/alias and return".into());
    }
    if l.root.is_some() && l.alias.is_some() {
        bad("alias", "give root or alias, not both".into());
    }
    let regex = matches!(kind, Kind::Regex(_) | Kind::RegexNoCase(_));
    let prefix = match kind {
        Kind::Prefix(p) | Kind::PriorityPrefix(p) | Kind::Exact(p) => p.clone(),
        _ => String::new(),
    };
    let action = if let Some(pool) = &l.proxy {
        match pools.iter().position(|p| p == pool) {
            Some(i) => Action::Proxy { pool: i },
            None => {
                bad(
                    "proxy",
                    format!(
                        "`{pool}` is not an upstream pool: use `default` or a key of [upstreams]"
                    ),
                );
                Action::Nothing
            }
        }
    } else if let Some(dir) = l.root.as_ref().or(l.alias.as_ref()) {
        let alias = l.alias.is_some();
        let mut try_files = Vec::new();
        for (i, t) in l.try_files.iter().flatten().enumerate() {
            let last = i + 1 == l.try_files.as_ref().map_or(0, Vec::len);
            let entry = if let Some(name) = t.strip_prefix('@').filter(|_| last) {
                Ok(TryFile::Named(name.to_string()))
            } else if let Some(code) = t.strip_prefix('=').filter(|_| last) {
                code.parse()
                    .map(TryFile::Status)
                    .map_err(|_| format!("`{t}` is not =CODE"))
            } else if last {
                Template::parse(t).map(TryFile::Uri)
            } else {
                Template::parse(t).map(|f| TryFile::File(f, t.ends_with('/')))
            };
            match entry {
                Ok(e) => try_files.push(e),
                Err(e) => bad(&format!("try_files[{i}]"), e),
            }
        }
        if alias && regex {
            // nginx fills such an alias with the regex's captures; here an alias cuts a
            // prefix, which a regex location has not: refused rather than served wrong.
            bad(
                "alias",
                "alias in a regex location is not supported: use root".into(),
            );
        }
        Action::Files {
            mount: StaticMount {
                prefix: if alias { prefix.clone() } else { String::new() },
                root: PathBuf::from(dir),
                gzip: true,
                cache_control: l.cache_control.clone(),
            },
            try_files,
        }
    } else if let Some(r) = &l.ret {
        compile_return(r, &mut bad)
    } else if l.internal || matches!(kind, Kind::Named(_)) {
        Action::Nothing
    } else {
        // nginx's location with no handler of its own serves files from its default root;
        // here a location says what it does.
        bad("", "give one of proxy, root, alias or return".into());
        Action::Nothing
    };
    let mut loc = bare(&l.path, action);
    if let Some(e) = &l.expires {
        match parse_expires(e) {
            Ok(v) => loc.expires = v,
            Err(m) => bad("expires", m),
        }
    }
    loc.internal = l.internal;
    loc.intercept_errors = l.intercept_errors;
    loc.proxy_path = l.proxy_path.clone();
    if let Some(rw) = &l.rewrite {
        match (Regex::new(&rw.pattern), Template::parse(&rw.replacement)) {
            (Ok(r), Ok(t)) => loc.rewrite = Some((r, t)),
            (Err(e), _) => bad(
                "rewrite.pattern",
                format!("`{}`: {}", rw.pattern, super::locations::one_line(&e)),
            ),
            (_, Err(e)) => bad("rewrite.replacement", e),
        }
    }
    if let Some(lr) = &l.limit_req {
        if !(lr.per_second > 0.0 && lr.per_second.is_finite()) {
            bad("limit_req.per_second", "must be above zero".into());
        }
        loc.limit = Some(Limiter::new(
            lr.per_second,
            lr.burst,
            lr.nodelay,
            lr.status,
            lr.max_clients,
        ));
    }
    apply(&mut loc, key, &of_location(l), problems);
    if let Some(s) = site {
        // Said once under the site's keys (`compile_site`).
        apply(&mut loc, key, &of_site(s), &mut Vec::new());
    }
    loc.plain = loc.is_plain();
    loc
}
