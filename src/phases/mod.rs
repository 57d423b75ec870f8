//! `impl ProxyHttp`: each phase is a short list of calls into the modules that do the work.

pub mod forward;
mod place;
mod steps;
pub use steps::{fail, handle, log, summary};

use crate::exchange::observe;
use crate::exchange::{self, RequestCtx};
use crate::guard::body;
use crate::rules::forwarding;
use crate::runtime::Shared;
use crate::telemetry::vocabulary::{ProxyLoop, UpstreamErrorKind};
use crate::upstream::response_head;
use crate::upstream::{self, retry};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result, RetryType};
use std::sync::Arc;

/// The proxy service: Django behind, telemetry alongside.
pub struct EdgeProxy {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    /// No downstream modules: Pingora's default adds a disabled compression module that every
    /// request would still pass through.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(&self.shared)
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        self.shared.metrics.count_proxied(ProxyLoop::Pingora);
        steps::handle(&self.shared, &mut session.downstream_session, ctx).await
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
        let up = ctx.rt.pool(ctx.pool);
        match ctx.tries.next_server(up).and_then(|i| up.peers.get(i)) {
            Some(peer) => Ok(Box::new(peer.clone())),
            None => {
                ctx.tries.error = Some(UpstreamErrorKind::Connect);
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
        let client = steps::client_of(&session.downstream_session);
        forwarding::prepare_upstream_request(
            req,
            &ctx.rt.context,
            &ctx.rt.trusted,
            &client,
            &ctx.request_id,
        );
        // The location's `set_headers` last: they replace what is there.
        for (name, value) in &ctx.set_headers {
            match value.is_empty() {
                true => drop(req.remove_header(name)),
                false => req.insert_header(name.clone(), value.clone())?,
            }
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        upstream::mark_failed(ctx.rt.pool(ctx.pool), peer);
        // Nothing was sent yet, so another server may take the request.
        self.shared
            .metrics
            .count_upstream_error(&ctx.rt.pool(ctx.pool).name, upstream::error_kind(&e));
        ctx.tries.counted = true;
        if ctx.tries.may_try_another(ctx.rt.pool(ctx.pool).retries) {
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
        // The rule for Django's response heads (`response_head`), on the headers Pingora parsed.
        let head = resp
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
        let status = resp.status.as_u16();
        let req = session.req_header();
        let refused = if status < 200 {
            let (asked_continue, asked_upgrade) =
                (body::expects_continue(req), forwarding::is_upgrade(req));
            !response_head::interim_allowed(status, asked_continue, asked_upgrade)
        } else {
            response_head::check(status, head, &ctx.rt.limits).is_err()
        };
        if refused {
            ctx.tries.error = Some(UpstreamErrorKind::Other);
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
        FailToProxy {
            error_code: steps::fail(&self.shared, &mut session.downstream_session, e, ctx).await,
            can_reuse_downstream: false,
        }
    }

    /// What Pingora's own error lines say of a request: method and path, never the query
    /// (tokens) nor headers.
    /// A `return 444` closes the connection on purpose: not an error to log.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, e: &Error) -> bool {
        matches!(e.etype(), ErrorType::Custom(place::CLOSE))
    }

    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        steps::summary(session.req_header())
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        steps::log(&self.shared, &session.downstream_session, ctx);
    }
}
