//! Accepting client connections: each one is served by the relay or handed to Pingora's loop.

pub mod connection;
pub mod tls;
