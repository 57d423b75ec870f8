//! What is kept of denials for a person to read later: samples, the sink and the access log.

pub mod access_log;
pub mod log_sanitize;
pub mod redact;
pub mod sampler;
pub mod sink;
