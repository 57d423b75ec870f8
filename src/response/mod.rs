//! What goes back to the client besides Django's bytes: the response-head rule, the proxy's own
//! error pages and the static files it serves itself.

pub mod buffers;
pub mod compression;
pub mod delivery;
pub mod error_page;
pub mod file_access;
pub mod header_edits;
pub mod static_files;
