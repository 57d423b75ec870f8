//! The rules every request passes under, in either loop: forwarded headers and route labels.

pub mod context;
pub mod forwarding;
pub mod routes;
