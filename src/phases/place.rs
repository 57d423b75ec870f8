//! Where a request goes, and what its location does: the site for its `Host`, the location
//! for its path (`rules::sites`), then the location's rules in nginx's order (access, rate
//! limit), and its action: proxy to a pool (`forward`), files (with `try_files`), a `return`.
//! Internal redirects (Django's `X-Accel-Redirect`, `error_pages`, a `try_files` fallback)
//! find the next location in the same site, at most `MAX_HOPS` times.
//!
//! Longer than 400 lines because each action (return, files with `try_files`, proxy with its
//! head rules and outcomes) is nginx's behaviour for it, kept beside the loop that chains them.

use super::forward::{self, Buffered, Outcome, Rules};
use super::steps::{client_of, reject};
use crate::exchange::RequestCtx;
use crate::guard::body;
use crate::response::error_page;
use crate::response::header_edits::Edits;
use crate::response::static_files::{self, Resolved, StaticMount};
use crate::rules::forwarding::{self, Client};
use crate::rules::limit_req::Verdict;
use crate::rules::locations::{uri_of, Found};
use crate::rules::sites::{host_of, Action, Location, Site, TryFile};
use crate::rules::template::{Template, Vars};
use crate::runtime::Shared;
use crate::telemetry::vocabulary::RejectReason;
use bytes::Bytes;
use http::{header, HeaderValue, Method};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::{Error, ErrorType, Result};

/// Internal redirects one request may take, as nginx's limit of 10.
const MAX_HOPS: usize = 10;

/// The error a `return 444` gives: the connection is closed without a response.
pub const CLOSE: &str = "closed by return 444";

/// Where a request goes next.
enum Step {
    Done(Result<bool>),
    /// An internal redirect to `target` (`@name` or a URI); `status` replaces the status of
    /// what is served there (an error page).
    Goto {
        target: String,
        status: Option<u16>,
        /// Headers of Django's that the next location's response carries (`X-Accel-Redirect`).
        keep: Vec<(http::HeaderName, HeaderValue)>,
    },
}

/// The request's values for templates, as one owned set (the session is written to later).
struct Request {
    host: String,
    http_host: String,
    scheme: &'static str,
    client: Client,
    /// The listener's address (sites may be bound to listeners).
    local: Option<std::net::SocketAddr>,
    request_uri: String,
    args: String,
    port: u16,
    method: String,
}

impl Request {
    fn of(session: &ServerSession) -> Request {
        let req = session.req_header();
        let http_host = req
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()))
            .unwrap_or("")
            .to_string();
        let client = client_of(session);
        Request {
            host: host_of(&http_host),
            scheme: if client.tls { "https" } else { "http" },
            client,
            local: session.server_addr().and_then(|a| a.as_inet()).copied(),
            request_uri: String::from_utf8_lossy(req.raw_path()).into_owned(),
            args: req.uri.query().unwrap_or("").to_string(),
            port: session
                .server_addr()
                .and_then(|a| a.as_inet())
                .map_or(0, |a| a.port()),
            method: req.method.to_string(),
            http_host,
        }
    }

    /// Only who the client is: for a location whose rules read no other value.
    fn bare(session: &ServerSession) -> Request {
        Request {
            host: String::new(),
            http_host: String::new(),
            scheme: "http",
            client: client_of(session),
            local: None,
            request_uri: String::new(),
            args: String::new(),
            port: 0,
            method: String::new(),
        }
    }

    fn vars<'a>(
        &'a self,
        headers: &'a http::HeaderMap,
        uri: &'a str,
        found: &'a Found,
    ) -> Vars<'a> {
        Vars {
            host: &self.host,
            http_host: &self.http_host,
            scheme: self.scheme,
            remote: self.client.ip,
            request_uri: &self.request_uri,
            uri,
            args: &self.args,
            server_port: self.port,
            method: &self.method,
            headers,
            captures: &found.captures,
            captured: uri,
        }
    }
}

/// Answers the request by its site and location.
pub async fn serve(
    shared: &Shared,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    let rt = ctx.rt.clone();
    if rt.sites.is_plain() {
        return plain(shared, session, ctx, &rt).await;
    }
    let request = Request::of(session);
    let host = Some(request.http_host.as_str()).filter(|h| !h.is_empty());
    let site = rt.sites.for_host(host, request.local);
    let raw_path = session.req_header().uri.path();
    let mut uri = uri_of(raw_path).into_owned();
    // nginx's server-level `return`: before any location.
    if let Some(action) = &site.ret {
        let step = returned(session, ctx, action, &request, &uri, &Found::default()).await;
        return match step {
            Step::Done(r) => r,
            Step::Goto { .. } => Ok(true),
        };
    }
    let first = site
        .locate(raw_path, &uri)
        .filter(|f| !site.locations[f.index].internal);
    let Some(mut found) = first else {
        ctx.status = error_page::respond(session, 404, None).await;
        return Ok(true);
    };
    let mut forced = None;
    let mut kept = Vec::new();
    let mut body_read = false;
    for _ in 0..MAX_HOPS {
        let loc = &site.locations[found.index];
        ctx.edits = edits(
            loc,
            &request,
            session.req_header(),
            &uri,
            &found,
            forced,
            &kept,
        );
        // A `return` runs in nginx's rewrite phase, before access rules and rate limits.
        let checked = match loc.action {
            Action::Return { .. } => Ok(None),
            _ => checks(loc, &request),
        };
        // The body limit is the location's, checked on the declared length as soon as the
        // location is known (nginx's find-config phase, before `return`).
        let too_large = !body_read && declared_too_large(session, loc, &rt);
        let checked = if too_large { Err(413) } else { checked };
        // Refused: never read for Django, on this hop or the next.
        body_read |= too_large;
        if too_large {
            shared.metrics.count_rejected(RejectReason::BodyTooLarge);
        }
        let step = match checked {
            Err(status) => answer_status(session, ctx, loc, status).await,
            Ok(delay) => {
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                let at = At {
                    site,
                    loc,
                    request: &request,
                    uri: &uri,
                    found: &found,
                };
                act(shared, session, ctx, &at, &mut body_read).await
            }
        };
        if too_large {
            // As nginx's lingering close: the body still coming is read and dropped for a
            // while, so that the client reads the 413 instead of a reset.
            let drain = session.drain_request_body();
            let _ = tokio::time::timeout(body::LINGER_AFTER_REFUSAL, drain).await;
        }
        match step {
            Step::Done(r) => return r,
            Step::Goto {
                target,
                status,
                keep,
            } => {
                if !keep.is_empty() {
                    kept = keep;
                }
                let Some(next) = site.internal_target(&target) else {
                    ctx.status = error_page::respond(session, 404, None).await;
                    return Ok(true);
                };
                if let Some(s) = status {
                    forced = Some(s);
                }
                if !target.starts_with('@') {
                    let path = target.split('?').next().unwrap_or(&target);
                    uri = uri_of(path).into_owned();
                    let _ = session.req_header_mut().set_raw_path(target.as_bytes());
                }
                found = next;
            }
        }
    }
    tracing::warn!("more than {MAX_HOPS} internal redirects: {}", uri);
    ctx.status = error_page::respond(session, 500, None).await;
    Ok(true)
}

/// The config has no sites or locations: its one location proxies everything to `[upstream]`,
/// with no rule that reads the request's values, so none are gathered.
async fn plain(
    shared: &Shared,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    rt: &crate::runtime::Runtime,
) -> Result<bool> {
    let (Some(site), found) = (rt.sites.list.first(), Found::default()) else {
        return Ok(true);
    };
    let Some(loc) = site.locations.first() else {
        return Ok(true);
    };
    let request = Request::bare(session);
    let at = At {
        site,
        loc,
        request: &request,
        uri: "",
        found: &found,
    };
    match proxy(shared, session, ctx, &at, &mut false).await {
        Step::Done(r) => r,
        // A plain site has no internal locations to go on to.
        Step::Goto { .. } => Ok(true),
    }
}

/// The location's own refusals before its action, as a status: `access` (403), then
/// `limit_req`; else how long the rate limit holds the request.
fn checks(loc: &Location, request: &Request) -> Result<Option<std::time::Duration>, u16> {
    if !loc.allows(request.client.ip) {
        return Err(403);
    }
    let (Some(limit), Some(ip)) = (loc.limit.as_ref(), request.client.ip) else {
        return Ok(None);
    };
    match limit.check(ip, std::time::Instant::now()) {
        Verdict::Refuse => Err(limit.status),
        Verdict::Delay(d) => Ok(Some(d)),
        Verdict::Pass => Ok(None),
    }
}

/// The response header rules of `loc` for this request.
fn edits(
    loc: &Location,
    request: &Request,
    req: &RequestHeader,
    uri: &str,
    found: &Found,
    status: Option<u16>,
    kept: &[(http::HeaderName, HeaderValue)],
) -> Option<Box<Edits>> {
    let none = loc.add_headers.is_empty()
        && loc.hide_headers.is_empty()
        && kept.is_empty()
        && loc.expires.is_none();
    if none && status.is_none() {
        return None;
    }
    let vars = request.vars(&req.headers, uri, found);
    let add = loc
        .add_headers
        .iter()
        .filter_map(|(n, t, always)| {
            let v = HeaderValue::from_str(&t.to_string_for(&vars)).ok()?;
            Some((n.clone(), v, *always))
        })
        .collect();
    Some(Box::new(Edits {
        add,
        hide: loc.hide_headers.clone(),
        set: kept.to_vec(),
        status,
        expires: loc.expires,
    }))
}

/// A status of the proxy's own: the location's error page for it, or the plain one.
async fn answer_status(
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    loc: &Location,
    status: u16,
) -> Step {
    if let Some(page) = loc.error_page(status) {
        return Step::Goto {
            target: page.target.clone(),
            status: Some(page.status.unwrap_or(status)),
            keep: Vec::new(),
        };
    }
    ctx.status = error_page::respond_edited(session, status, None, ctx.edits.as_deref()).await;
    Step::Done(Ok(true))
}

/// Where a request stands: its site, its location and how it matched, and its values.
#[derive(Clone, Copy)]
struct At<'a> {
    site: &'a Site,
    loc: &'a Location,
    request: &'a Request,
    uri: &'a str,
    found: &'a Found,
}

/// The location's action.
async fn act(
    shared: &Shared,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    at: &At<'_>,
    body_read: &mut bool,
) -> Step {
    let At {
        loc,
        request,
        uri,
        found,
        ..
    } = *at;
    match &loc.action {
        Action::Return { .. } => returned(session, ctx, &loc.action, request, uri, found).await,
        Action::Files {
            mount, try_files, ..
        } => {
            let route = if mount.prefix.is_empty() {
                &loc.path
            } else {
                &mount.prefix
            };
            ctx.obs.route = Some(shared.metrics.routes.get(route));
            files(shared, session, ctx, mount, try_files, at).await
        }
        Action::Nothing => answer_status(session, ctx, loc, 404).await,
        Action::Proxy { pool } => {
            ctx.pool = *pool;
            proxy(shared, session, ctx, at, body_read).await
        }
    }
}

/// Whether the request's declared body is over the location's limit (`max_body_bytes`, else
/// `limits.max_body_bytes`; 0 is none).
fn declared_too_large(
    session: &ServerSession,
    loc: &Location,
    rt: &crate::runtime::Runtime,
) -> bool {
    let limit = match loc.max_body_bytes {
        Some(0) => return false,
        Some(n) => n,
        None => rt.limits.max_body_bytes,
    };
    session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit)
}

/// A `return` action, its templates filled.
async fn returned(
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    action: &Action,
    request: &Request,
    uri: &str,
    found: &Found,
) -> Step {
    let Action::Return {
        status,
        location,
        body,
    } = action
    else {
        return Step::Done(Ok(true));
    };
    let vars = request.vars(&session.req_header().headers, uri, found);
    let location = location
        .as_ref()
        .map(|t| absolute(&t.to_string_for(&vars), request));
    let body = body.as_ref().map(|t| t.to_string_for(&vars));
    Step::Done(give(session, ctx, *status, location, body).await)
}

/// `return`: 444 closes; a redirect gets its `Location`; other statuses their body, or the
/// plain error page when none is given.
async fn give(
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    status: u16,
    location: Option<String>,
    body: Option<String>,
) -> Result<bool> {
    if status == 444 {
        ctx.status = 444;
        return Error::e_explain(ErrorType::Custom(CLOSE), "return 444");
    }
    if location.is_none() && body.is_none() && status >= 400 {
        ctx.status = error_page::respond_edited(session, status, None, ctx.edits.as_deref()).await;
        return Ok(true);
    }
    let mut resp = ResponseHeader::build(status, Some(4))?;
    let text = body.unwrap_or_default();
    if let Some(l) = location {
        resp.insert_header(header::LOCATION, l)?;
    }
    if !text.is_empty() {
        resp.insert_header(header::CONTENT_TYPE, "text/plain")?;
    }
    resp.insert_header(header::CONTENT_LENGTH, text.len().to_string())?;
    Edits::apply_opt(ctx.edits.as_deref(), &mut resp);
    ctx.status = resp.status.as_u16();
    let head_only = session.req_header().method == Method::HEAD;
    session.write_response_header(Box::new(resp)).await?;
    if !head_only && !text.is_empty() {
        session.write_response_body(Bytes::from(text), true).await?;
    }
    Ok(true)
}

/// A redirect target made absolute as nginx makes it (`absolute_redirect on`): the scheme,
/// the request's host and the listener's port when it is not the scheme's own.
fn absolute(target: &str, r: &Request) -> String {
    if !target.starts_with('/') {
        return target.to_string();
    }
    let default_port = if r.scheme == "https" { 443 } else { 80 };
    let host = if r.host.is_empty() {
        "localhost"
    } else {
        &r.host
    };
    match r.port {
        0 => format!("{}://{host}{target}", r.scheme),
        p if p == default_port => format!("{}://{host}{target}", r.scheme),
        p => format!("{}://{host}:{p}{target}", r.scheme),
    }
}

/// Files: the request's own path, or the first `try_files` entry that is a file, else the
/// last entry (a named location, a status, or a URI redirected to).
async fn files(
    shared: &Shared,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    mount: &StaticMount,
    try_files: &[TryFile],
    at: &At<'_>,
) -> Step {
    let At {
        request,
        uri,
        found,
        ..
    } = *at;
    let raw_path = session.req_header().uri.path().to_string();
    let mut path = raw_path;
    if !try_files.is_empty() {
        let vars = request.vars(&session.req_header().headers, uri, found);
        let mut chosen = None;
        for t in try_files {
            match t {
                TryFile::File(t, dir) => {
                    let mut candidate = t.to_string_for(&vars);
                    if *dir {
                        if !candidate.ends_with('/') {
                            candidate.push('/');
                        }
                        candidate.push_str("index.html");
                    }
                    if is_file(mount, &candidate).await {
                        chosen = Some(candidate);
                        break;
                    }
                }
                TryFile::Named(n) => {
                    return Step::Goto {
                        target: format!("@{n}"),
                        status: None,
                        keep: Vec::new(),
                    }
                }
                TryFile::Status(s) => {
                    ctx.status =
                        error_page::respond_edited(session, *s, None, ctx.edits.as_deref()).await;
                    return Step::Done(Ok(true));
                }
                TryFile::Uri(t) => {
                    return Step::Goto {
                        target: t.to_string_for(&vars),
                        status: None,
                        keep: Vec::new(),
                    }
                }
            }
        }
        match chosen {
            Some(c) => path = c,
            None => {
                ctx.status =
                    error_page::respond_edited(session, 404, None, ctx.edits.as_deref()).await;
                return Step::Done(Ok(true));
            }
        }
    }
    // A directory asked for without its slash: nginx redirects to it with one.
    if !path.ends_with('/') && is_dir(mount, &path).await {
        let query = session
            .req_header()
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let target = absolute(&format!("{path}/{query}"), request);
        return Step::Done(give(session, ctx, 301, Some(target), None).await);
    }
    // A directory: its index.html (nginx's `index`), 403 without one, 404 if it is not there.
    if path.ends_with('/') {
        path.push_str("index.html");
        if !is_file(mount, &path).await {
            let dir = path.trim_end_matches("index.html");
            let status = if is_dir(mount, dir).await { 403 } else { 404 };
            ctx.status =
                error_page::respond_edited(session, status, None, ctx.edits.as_deref()).await;
            return Step::Done(Ok(true));
        }
    }
    let rest = rest_of(mount, &path);
    ctx.status = static_files::serve(
        session,
        mount,
        rest,
        &shared.metrics,
        &shared.findings,
        ctx.edits.as_deref(),
    )
    .await;
    Step::Done(Ok(true))
}

/// The part of `path` below the mount: after its prefix, without the slash that follows.
fn rest_of<'a>(mount: &StaticMount, path: &'a str) -> &'a str {
    let rest = path.get(mount.prefix.len()..).unwrap_or("");
    rest.strip_prefix('/').unwrap_or(rest)
}

/// Whether `path` is a directory under the mount (its root itself included).
async fn is_dir(mount: &StaticMount, path: &str) -> bool {
    if !path.starts_with(mount.prefix.as_str())
        && path.trim_end_matches('/') != mount.prefix.trim_end_matches('/')
    {
        return false;
    }
    let rel = path
        .get(mount.prefix.len()..)
        .unwrap_or("")
        .trim_matches('/');
    let at = match rel.is_empty() {
        true => Resolved::File(mount.root.clone()),
        false => static_files::resolve(&mount.root, rel),
    };
    match at {
        Resolved::File(p) => tokio::fs::metadata(p).await.is_ok_and(|m| m.is_dir()),
        Resolved::Refused => false,
    }
}

async fn is_file(mount: &StaticMount, path: &str) -> bool {
    if !path.starts_with(mount.prefix.as_str()) {
        return false;
    }
    match static_files::resolve(&mount.root, rest_of(mount, path)) {
        Resolved::File(p) => tokio::fs::metadata(p).await.is_ok_and(|m| m.is_file()),
        Resolved::Refused => false,
    }
}

/// To a pool: the body read whole (within the location's limit), the location's request
/// rules applied to the head, then one exchange (`forward`), whose outcome may send the
/// request on to another location.
async fn proxy(
    shared: &Shared,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    at: &At<'_>,
    body_read: &mut bool,
) -> Step {
    let At {
        site,
        loc,
        request,
        uri,
        found,
    } = *at;
    let rt = ctx.rt.clone();
    if ctx.obs.route.is_none() {
        ctx.obs.route = rt.routes.find(session.req_header().uri.path()).cloned();
    }
    ctx.request_id = forwarding::request_id(session.req_header());
    if forwarding::is_upgrade(session.req_header()) {
        rewrite_head(session.req_header_mut(), loc, request, uri, found);
        ctx.set_headers = set_headers(session.req_header(), loc, request, uri, found);
        return Step::Done(Ok(false));
    }
    // Read once: a request sent on by `X-Accel-Redirect` goes as GET, without it.
    let whole = if std::mem::replace(body_read, true) {
        body::Whole::empty()
    } else {
        let limits;
        let limits = match loc.max_body_bytes {
            Some(n) => {
                limits = crate::config::Limits {
                    max_body_bytes: if n == 0 { u64::MAX } else { n },
                    ..rt.limits.clone()
                };
                &limits
            }
            None => &rt.limits,
        };
        match body::read_whole(session, limits).await {
            Err(r) => {
                reject(shared, session, ctx, r).await;
                let _ =
                    tokio::time::timeout(body::LINGER_AFTER_REFUSAL, session.drain_request_body())
                        .await;
                return Step::Done(Ok(true));
            }
            Ok(whole) => whole,
        }
    };
    rewrite_head(session.req_header_mut(), loc, request, uri, found);
    ctx.set_headers = set_headers(session.req_header(), loc, request, uri, found);
    let client = request.client;
    if matches!(whole.body, body::Body::File(_)) {
        shared.metrics.count_spooled_body();
    }
    let buffered = Buffered {
        body: whole.body,
        with_length: whole.with_length,
    };
    let intercept: Vec<u16> = match loc.intercept_errors {
        true => loc
            .error_pages
            .iter()
            .flat_map(|p| p.codes.iter().copied())
            .collect(),
        false => Vec::new(),
    };
    let rules = Rules {
        accel: site.has_internal,
        intercept: &intercept,
    };
    // Each exchange picks its own server: one sent on from `X-Accel-Redirect` may use the same.
    ctx.tries = Default::default();
    match forward::forward(shared, session, &client, buffered, ctx, &rules).await {
        Outcome::Sent(Ok(status)) => {
            ctx.status = status;
            Step::Done(Ok(true))
        }
        Outcome::Sent(Err(status)) => {
            ctx.status = status;
            Step::Done(Error::e_explain(
                ErrorType::ReadError,
                "response cut off by Django",
            ))
        }
        Outcome::Failed(status) => answer_status(session, ctx, loc, status).await,
        Outcome::Accel { target, keep } => {
            // nginx: the request goes on as GET (HEAD stays HEAD), with Django's headers that
            // describe the file.
            let req = session.req_header_mut();
            if req.method != Method::HEAD {
                req.set_method(Method::GET);
            }
            Step::Goto {
                target,
                status: None,
                keep,
            }
        }
    }
}

/// The location's path rule on the head Django gets: `rewrite`, or `proxy_path` for the
/// matched prefix.
fn rewrite_head(
    req: &mut RequestHeader,
    loc: &Location,
    request: &Request,
    uri: &str,
    found: &Found,
) {
    let mut target = None;
    if let Some((re, replacement)) = &loc.rewrite {
        if let Some(c) = re.captures(uri) {
            let caps: Vec<_> = (0..c.len())
                .map(|g| c.get(g).map(|m| (m.start(), m.end())))
                .collect();
            let at = Found {
                captures: caps,
                ..found.clone()
            };
            let vars = request.vars(&req.headers, uri, &at);
            let path = replacement.to_string_for(&vars);
            target = Some(path);
        }
    } else if let Some(p) = &loc.proxy_path {
        let rest = uri.get(found.prefix_len..).unwrap_or("");
        target = Some(format!("{p}{rest}"));
    }
    if let Some(mut t) = target {
        if !request.args.is_empty() && !t.contains('?') {
            t.push('?');
            t.push_str(&request.args);
        }
        let _ = req.set_raw_path(encode_path(&t).as_bytes());
    }
}

/// The location's `set_headers` for this request (an empty value removes the header).
fn set_headers(
    req: &RequestHeader,
    loc: &Location,
    request: &Request,
    uri: &str,
    found: &Found,
) -> Vec<(http::HeaderName, HeaderValue)> {
    let vars = request.vars(&req.headers, uri, found);
    loc.set_headers
        .iter()
        .filter_map(|(n, t): &(http::HeaderName, Template)| {
            let v = HeaderValue::from_str(&t.to_string_for(&vars)).ok()?;
            Some((n.clone(), v))
        })
        .collect()
}

/// A decoded path made fit for a request line again (spaces and controls escaped).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b <= b' ' || b >= 0x7f || b == b'#' || b == b'"' {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}
