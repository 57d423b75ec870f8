//! Work that is about no request: the spike detector's and the findings' ticks, upstream health
//! checks, config reloads on SIGHUP, and draining on shutdown. Each is a Pingora service, in a
//! file named for the job it runs; each runs under `exit_on_panic`, so that one that panics
//! ends the process rather than leave it half alive.
pub mod exit_on_panic;
pub mod findings_tick;
pub mod health;
pub mod shutdown_watch;
pub mod sighup;
pub mod spike_tick;
