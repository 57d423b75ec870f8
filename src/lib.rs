//! authz-edge: an edge reverse proxy for Django on Pingora that watches authorization failures.
//!
//! The folders follow a request. A connection is accepted (`accept`) and its head checked
//! (`guard`); then one of two loops carries it: plain HTTP/1 goes through `relay`, authz-edge's
//! own loop, and everything else through Pingora's phases (`phases`). Both fill one per-request
//! `exchange` and apply the same `rules` (forwarding, routes), reach Django through `upstream`
//! and shape the `response`. What a response tells about authorization is counted by
//! `telemetry` (classify, metrics, spike detector, findings) and kept by `diagnostics`
//! (sampler, sink, access log). `admin` serves it. `config` is the file schema; `runtime` is
//! its compiled form and the state the process shares; `background` holds the work that is
//! about no request (ticks, health checks, reloads). `server` wires the services together.
//!
//! Layers, lowest first. A module imports only modules before it here, never one after, so
//! there is no import cycle (`tests/layout.rs` holds it):
//! `sync`, `clock`, `path_pattern`, `config`, `rules`, `import_nginx`, `telemetry`, `diagnostics`, `guard`,
//! `upstream`, `response`,
//! `runtime`, `exchange`, `relay`, `phases`, `accept`, `background`, `admin`, `server`.

pub mod accept;
pub mod admin;
pub mod background;
pub mod clock;
pub mod config;
pub mod diagnostics;
pub mod exchange;
pub mod guard;
pub mod import_nginx;
pub mod path_pattern;
pub mod phases;
pub mod relay;
pub mod response;
pub mod rules;
pub mod runtime;
pub mod server;
pub mod sync;
pub mod telemetry;
pub mod upstream;
