//! The rules every request passes under, in every loop: sites and locations (nginx's server
//! blocks and their matching), forwarded headers, route labels, rate limits and variables.

pub mod context;
pub mod forwarding;
pub mod limit_req;
pub mod locations;
pub mod routes;
pub mod sites;
pub mod template;
