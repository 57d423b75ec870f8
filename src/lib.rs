//! authz-edge: an edge reverse proxy for Django on Pingora that watches authorization failures.
//!
//! A request flows through the phases of `proxy::EdgeProxy` (see `STYLE.md`): the connection
//! guard in `app`, limits and static files in `request_filter`, forwarding to Django, then
//! classification of 401/403 in `response_filter` and recording in `logging`.

pub mod access_log;
pub mod admin;
pub mod app;
pub mod body;
pub mod classify;
pub mod config;
pub mod detector;
pub mod error_page;
pub mod forwarding;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod relay;
pub mod reload;
pub mod routes;
pub mod runtime;
pub mod sampler;
pub mod server;
pub mod sink;
pub mod sketch;
pub mod spike;
pub mod static_files;
pub mod telemetry;
pub mod upstream;
