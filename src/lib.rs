//! authz-edge: an edge reverse proxy for Django on Pingora that watches authorization failures.
//!
//! A request passes the connection guard in `app`, then one of two proxy loops: plain HTTP/1
//! requests go through `relay` (authz-edge's own loop, several times cheaper than Pingora's),
//! everything else through the phases of `proxy::EdgeProxy` (see `STYLE.md`): limits and static
//! files in `request_filter`, forwarding to Django, classification of 401/403 in
//! `response_filter` and recording in `logging`. Both share `forwarding`, `telemetry`,
//! `classify` and `access_log`, so Django and the metrics see the same either way.

pub mod access_log;
pub mod admin;
pub mod app;
pub mod body;
pub mod classify;
pub mod config;
pub mod detector;
pub mod drain;
pub mod error_page;
pub mod exchange;
pub mod file_access;
pub mod findings;
pub mod forwarding;
pub mod identity;
pub mod limits;
pub mod log_sanitize;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod relay;
pub mod reload;
pub mod response_head;
pub mod retry;
pub mod routes;
pub mod runtime;
pub mod sampler;
pub mod server;
pub mod sink;
pub mod sketch;
pub mod spike;
pub mod static_files;
pub mod target;
pub mod telemetry;
pub mod upstream;
