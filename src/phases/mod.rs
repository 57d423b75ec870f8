//! `impl ProxyHttp`: each phase is a short list of calls into the modules that do the work.

use crate::diagnostics::sink::InFlight;
use crate::exchange::observe::{self, Observed};
use crate::guard::body;
use crate::guard::head;
use crate::response::error_page;
use crate::response::static_files;
use crate::response::upstream_head;
use crate::rules::forwarding::{self, Client};
use crate::runtime::{Runtime, Shared};
use crate::telemetry::metrics::{RejectReason, UpstreamErrorKind};
use crate::upstream::{self, retry};
use crate::{exchange, relay};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result, RetryType};
use std::sync::Arc;
use std::time::Instant;

/// The proxy service: Django behind, telemetry alongside.
pub struct EdgeProxy {
    pub shared: Arc<Shared>,
}

/// Per-request state, grouped by concern.
pub struct RequestCtx {
    /// The config generation this request runs under, for all of its phases.
    pub rt: Arc<Runtime>,
    pub start: Instant,
    pub request_id: String,
    /// The final status when the proxy answered itself (limits, static, errors).
    pub status: u16,
    pub upstream: UpstreamTries,
    pub body: body::BodyState,
    pub obs: Observed,
    /// Keeps the sink's writer receiving at shutdown until this request has been logged.
    _in_flight: InFlight,
}

/// Which servers were tried, and whether an error was already counted.
#[derive(Default)]
pub struct UpstreamTries {
    pub tried: u64,
    pub tries: usize,
    pub error: Option<UpstreamErrorKind>,
    pub error_counted: bool,
}

fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// An HTTP/1 upgrade request (`Connection: upgrade` with `Upgrade`).
fn is_upgrade(req: &RequestHeader) -> bool {
    let listed = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        });
    listed && req.headers.contains_key(http::header::UPGRADE)
}

fn client_of(session: &Session) -> Client {
    Client {
        ip: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip()),
        tls: is_tls(session),
    }
}

/// Refuses a request before it reaches Django.
async fn reject(shared: &Shared, session: &mut Session, ctx: &mut RequestCtx, r: RejectReason) {
    shared.metrics.count_rejected(r);
    ctx.status = error_page::respond(session, r.status(), None).await;
}

/// Answers a plain-HTTP request with a redirect to HTTPS on `port`.
async fn redirect_to_https(session: &mut Session, port: u16) -> u16 {
    let req = session.req_header();
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or("localhost");
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|c| c.is_ascii_digit()) && !h.ends_with(']') {
            h
        } else {
            host
        }
    });
    let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let location = if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    };
    let Ok(mut resp) = ResponseHeader::build(308, Some(3)) else {
        return 500;
    };
    let _ = resp.insert_header(http::header::LOCATION, location);
    let _ = resp.insert_header(http::header::CONTENT_LENGTH, "0");
    let _ = session.write_response_header(Box::new(resp), true).await;
    308
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    /// No downstream modules: Pingora's default adds a disabled compression module that every
    /// request would still pass through.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            rt: self.shared.runtime.load_full(),
            start: Instant::now(),
            request_id: String::new(),
            status: 0,
            upstream: UpstreamTries::default(),
            body: body::BodyState::default(),
            obs: Observed::default(),
            _in_flight: self.shared.sink.request(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let rt = ctx.rt.clone();
        self.shared.metrics.count_proxied(false);
        if let Err(r) = head::check_parsed(session.req_header(), &rt.limits) {
            reject(&self.shared, session, ctx, r).await;
            return Ok(true);
        }
        if let Some(port) = rt.https_redirect_port.filter(|_| !is_tls(session)) {
            let port = match port {
                0 => self
                    .shared
                    .bound_https_port
                    .load(std::sync::atomic::Ordering::Relaxed),
                p => p,
            };
            ctx.status = redirect_to_https(session, port).await;
            return Ok(true);
        }
        let path = session.req_header().uri.path();
        if let Some(mount) = rt.statics.iter().find(|m| path.starts_with(&m.prefix)) {
            ctx.obs.route = Some(self.shared.metrics.routes.get(&mount.prefix));
            let raw = path.to_string();
            ctx.status = static_files::serve(
                session,
                mount,
                &raw,
                &self.shared.metrics,
                &self.shared.findings,
            )
            .await;
            return Ok(true);
        }
        ctx.obs.route = rt.routes.find(path).cloned();
        ctx.request_id = forwarding::request_id(session.req_header());
        if is_upgrade(session.req_header()) {
            // Upgrades (WebSocket) stream both ways through Pingora's phases below.
            return Ok(false);
        }
        // Everything else: the whole body read, then one exchange through the relay's upstream
        // side, so that Django's responses meet one codec and one set of rules in both loops.
        match body::read_whole(session, &rt.limits).await {
            Err(r) => {
                reject(&self.shared, session, ctx, r).await;
                Ok(true)
            }
            Ok(whole) => {
                let client = client_of(session);
                if matches!(whole.body, body::Body::File(_)) {
                    self.shared.metrics.count_spooled_body();
                }
                let request = relay::buffered::Buffered {
                    client: &client,
                    request_id: &ctx.request_id,
                    body: whole.body,
                    with_length: whole.with_length,
                };
                match relay::buffered::forward(&self.shared, &rt, session, request, &mut ctx.obs)
                    .await
                {
                    Ok(status) => {
                        ctx.status = status;
                        Ok(true)
                    }
                    // Cut off after the head went out: the client connection is closed.
                    Err(status) => {
                        ctx.status = status;
                        Error::e_explain(ErrorType::ReadError, "response cut off by Django")
                    }
                }
            }
        }
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        chunk: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if session.was_upgraded() {
            // A WebSocket's frames after the 101 are not a request body: no size limit.
            return Ok(());
        }
        body::count_streamed(chunk.as_ref(), &ctx.rt.limits, &mut ctx.body)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        match upstream::pick_peer(&ctx.rt.upstream, ctx.upstream.tried) {
            Some((peer, idx)) => {
                if idx < 64 {
                    ctx.upstream.tried |= 1 << idx;
                }
                ctx.upstream.tries += 1;
                Ok(peer)
            }
            None => {
                ctx.upstream.error = Some(UpstreamErrorKind::Connect);
                let mut e = Error::explain(ErrorType::ConnectNoRoute, "no healthy upstream server");
                e.esource = ErrorSource::Upstream;
                Err(e)
            }
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let client = client_of(session);
        forwarding::prepare_upstream_request(
            req,
            &ctx.rt.context,
            &ctx.rt.trusted,
            &client,
            &ctx.request_id,
        );
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        upstream::mark_failed(&ctx.rt.upstream, peer);
        // Nothing was sent yet, so another server may take the request.
        self.shared
            .metrics
            .count_upstream_error(upstream::error_kind(&e));
        ctx.upstream.error_counted = true;
        if retry::may_try_another(ctx.upstream.tries, ctx.rt.upstream.retries) {
            e.set_retry(true);
        }
        e
    }

    /// The relay's retry policy (`retry`): sent again only when idempotent and the reused
    /// connection gave nothing back (Pingora marks that `ReusedOnly`).
    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        mut e: Box<Error>,
        _ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let nothing_back = matches!(e.retry, RetryType::ReusedOnly);
        let whole_body = !session.as_ref().retry_buffer_truncated();
        let method = &session.req_header().method;
        e.set_retry(whole_body && retry::may_resend(method, client_reused, nothing_back));
        e
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // The relay's rule for response heads (`response_head`), on the headers Pingora parsed.
        let head = resp
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
        let status = resp.status.as_u16();
        let req = session.req_header();
        let refused = if status < 200 {
            let (asked_continue, asked_upgrade) = (body::expects_continue(req), is_upgrade(req));
            !upstream_head::interim_allowed(status, asked_continue, asked_upgrade)
        } else {
            upstream_head::check(status, head, &ctx.rt.limits).is_err()
        };
        if refused {
            ctx.upstream.error = Some(UpstreamErrorKind::Other);
            let mut e = Error::explain(ErrorType::InvalidHTTPHeader, "invalid response head");
            e.esource = ErrorSource::Upstream;
            return Err(e);
        }
        let req = session.req_header();
        exchange::response_head_seen(&self.shared, &ctx.rt, req, resp, &mut ctx.obs);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        chunk: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(b) = chunk {
            observe::observe_body(&mut ctx.obs, b);
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(c), _) => *c,
            (_, ErrorSource::Upstream) => {
                let kind = ctx
                    .upstream
                    .error
                    .unwrap_or_else(|| upstream::error_kind(e));
                exchange::upstream_failed(&self.shared, kind, ctx.upstream.error_counted)
            }
            (ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed, _) => 0,
            (_, ErrorSource::Downstream) => 400,
            _ => 500,
        };
        if code > 0 && session.response_written().is_none() {
            error_page::respond(session, code, None).await;
        }
        ctx.status = code;
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// What Pingora's own error lines say of a request: method and path, never the query
    /// (tokens) nor headers.
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map_or(ctx.status, |r| r.status.as_u16());
        let client = client_of(session).ip;
        let req = session.req_header();
        let ending = exchange::Ending {
            method: req.method.as_str(),
            path: req.uri.path(),
            client,
            request_id: &ctx.request_id,
            status,
            seconds: ctx.start.elapsed().as_secs_f64(),
            request: Some(req),
        };
        exchange::finish(&self.shared, &ctx.rt, &ctx.obs, ending);
    }
}
