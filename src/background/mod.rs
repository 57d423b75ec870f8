//! Work that is about no request: the spike detector's and the findings' ticks, upstream health
//! checks, config reloads on SIGHUP, and draining on shutdown. Each is a Pingora service.
pub mod detector;
pub mod drain;
pub mod findings;
pub mod health;
pub mod reload;
