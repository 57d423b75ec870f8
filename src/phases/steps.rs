//! A request's own steps after its head is parsed, over Pingora's server session: what both
//! Pingora's loop (`request_filter`, `fail_to_proxy`, `logging`) and the HTTP/2 stream loop
//! (`accept::h2`) do, so that both keep one set of rules.

use crate::exchange;
use crate::exchange::RequestCtx;
use crate::guard::head;
use crate::response::error_page;
use crate::rules::forwarding::Client;
use crate::runtime::Shared;
use crate::telemetry::vocabulary::RejectReason;
use crate::upstream;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::{Error, ErrorSource, ErrorType, Result};

pub fn is_tls(session: &ServerSession) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

pub fn client_of(session: &ServerSession) -> Client {
    Client {
        ip: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip()),
        tls: is_tls(session),
    }
}

/// Refuses a request before it reaches Django.
pub(super) async fn reject(
    shared: &Shared,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
    r: RejectReason,
) {
    shared.metrics.count_rejected(r);
    ctx.status = error_page::respond(session, r.status(), None).await;
}

/// Answers a plain-HTTP request with a redirect to HTTPS on `port`.
async fn redirect_to_https(session: &mut ServerSession, port: u16) -> u16 {
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
    let _ = session.write_response_header(Box::new(resp)).await;
    308
}

/// The request, answered: refused, redirected to HTTPS, or by its location (`place`).
/// `Ok(false)` only for an HTTP/1 upgrade, which Pingora's own phases stream both ways;
/// `Err` when Django's response was cut off after its head went out (the client's connection
/// or stream is then closed, not ended as if whole).
pub async fn handle(
    shared: &Shared,
    session: &mut ServerSession,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    let rt = ctx.rt.clone();
    // CONNECT is not proxied (HTTP/1's is refused by `guard::target` before it is parsed).
    let refused = match session.req_header().method {
        http::Method::CONNECT => Err(RejectReason::MethodNotAllowed),
        // HTTP/1 heads passed `check_raw_head` before they were parsed.
        _ if session.is_http2() => head::check_h2(session.req_header())
            .and_then(|()| head::check_parsed(session.req_header(), &rt.limits)),
        _ => head::check_parsed(session.req_header(), &rt.limits),
    };
    if let Err(r) = refused {
        reject(shared, session, ctx, r).await;
        return Ok(true);
    }
    if let Some(port) = rt.https_redirect_port.filter(|_| !is_tls(session)) {
        let port = match port {
            0 => shared
                .bound_https_port
                .load(std::sync::atomic::Ordering::Relaxed),
            p => p,
        };
        ctx.status = redirect_to_https(session, port).await;
        return Ok(true);
    }
    super::place::serve(shared, session, ctx).await
}

/// A request that failed: the status it is recorded with (0 when the client went away), and
/// the error page when no response head went out yet.
pub async fn fail(
    shared: &Shared,
    session: &mut ServerSession,
    e: &Error,
    ctx: &mut RequestCtx,
) -> u16 {
    let code = match (e.etype(), e.esource()) {
        // `return 444`: closed without a word, as nginx.
        (ErrorType::Custom(super::place::CLOSE), _) => {
            ctx.status = 444;
            return 444;
        }
        (ErrorType::HTTPStatus(c), _) => *c,
        (_, ErrorSource::Upstream) => {
            let kind = ctx.tries.error.unwrap_or_else(|| upstream::error_kind(e));
            exchange::upstream_failed(shared, &ctx.rt.pool(ctx.pool).name, kind, &ctx.tries)
        }
        (ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed, _) => 0,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    };
    if code > 0 && session.response_written().is_none() {
        error_page::respond(session, code, None).await;
    }
    ctx.status = code;
    code
}

/// What an error line says of a request: method and path, never the query (tokens) nor
/// headers. Pingora's own lines (`request_summary`) and the HTTP/2 stream loop's use it.
pub fn summary(req: &RequestHeader) -> String {
    format!("{} {}", req.method, req.uri.path())
}

/// The end of a request: metrics, findings, the sampled record and the access log.
pub fn log(shared: &Shared, session: &ServerSession, ctx: &RequestCtx) {
    let status = session
        .response_written()
        .map_or(ctx.status, |r| r.status.as_u16());
    let client = client_of(session).ip;
    let req = session.req_header();
    let ending = exchange::Ending {
        method: req.method.as_str(),
        path: req.uri.path(),
        client,
        status,
        request: Some(req),
    };
    exchange::finish(shared, ctx, ending);
}
