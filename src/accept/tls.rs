//! TLS for the HTTPS listeners, as nginx does it: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`,
//! and session resumption by stateless tickets (nginx's `ssl_session_tickets on`), with keys
//! that rustls rotates every 6 hours; a session cache for clients without tickets too.
//!
//! Pingora's own TLS listener builds its rustls config with no ticketer and no way to set one,
//! so the HTTPS listeners accept plain TCP and the handshake happens here, in the connection's
//! task, within `limits.header_timeout` (Pingora allows 60 s). They stay in the same Pingora
//! service as the plain ones (`Listeners::tls_for` tells them apart by local address): one
//! runtime, so the relay's pooled upstream connections are always used on the reactor that
//! registered them (with two, a connection made for an HTTPS request and reused for a plain one
//! woke the other runtime's thread on every read: 30% more CPU per request).

use crate::config;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::Stream;
use pingora::tls::{load_certs_and_key_files, version, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

/// Sessions a TLS 1.2 client without tickets may resume, per process (nginx's
/// `ssl_session_cache shared:SSL:1m` holds about 4,000).
const SESSION_CACHE: usize = 4096;

/// The HTTPS listeners' addresses and their acceptor.
pub struct Listeners {
    pub acceptor: Arc<Acceptor>,
    pub addrs: Vec<std::net::SocketAddr>,
}

impl Listeners {
    /// The acceptor, if `stream` came in on an HTTPS listener.
    pub fn tls_for(&self, stream: &Stream) -> Option<&Acceptor> {
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied())?;
        self.addrs
            .iter()
            .any(|a| a.port() == local.port() && (a.ip() == local.ip() || a.ip().is_unspecified()))
            .then_some(&*self.acceptor)
    }
}

/// The acceptor for `[tls]`: its certificate chain and key, ALPN and tickets.
pub fn acceptor(tls: &config::Tls) -> Result<Arc<Acceptor>, String> {
    pingora::tls::install_default_crypto_provider();
    let (certs, key) = match load_certs_and_key_files(&tls.cert, &tls.key) {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            return Err(format!(
                "tls: no certificate or key in {} / {}",
                tls.cert, tls.key
            ))
        }
        Err(e) => return Err(format!("tls: cannot load cert/key: {e}")),
    };
    let mut config =
        ServerConfig::builder_with_protocol_versions(&[&version::TLS12, &version::TLS13])
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("tls: cert/key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| format!("tls: tickets: {e}"))?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(Arc::new(Acceptor::from_server_config(Arc::new(config))))
}

/// The TLS handshake on a connection a plain listener accepted; `None` when it fails or takes
/// longer than `within` (the connection is then dropped, as Pingora does).
pub async fn handshake(acceptor: &Acceptor, stream: Stream, within: Duration) -> Option<Stream> {
    let l4 = stream.into_any().downcast::<L4Stream>().ok()?;
    match tokio::time::timeout(within, acceptor.tls_handshake(*l4)).await {
        Ok(Ok(tls)) => Some(Box::new(tls)),
        _ => None,
    }
}
