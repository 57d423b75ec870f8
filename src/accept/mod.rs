//! Accepting client connections: HTTP/1 is served by the relay or handed to Pingora's loop,
//! HTTP/2 by the stream loop (`h2`).

pub mod connection;
pub mod h2;
pub mod tls;
