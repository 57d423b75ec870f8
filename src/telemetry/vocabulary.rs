//! The words of the metrics' labels: why a request was refused, why Django could not be
//! reached, the denial kinds and authentication states, the status classes.

/// The loop that took a request (`authz_edge_proxied_requests_total{proxy_loop}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyLoop {
    /// authz-edge's HTTP/1 relay (`relay`).
    Relay,
    /// Pingora's proxy loop (`phases`): HTTP/1 requests the relay does not take.
    Pingora,
    /// authz-edge's HTTP/2 stream loop (`accept::h2`) over Pingora's h2 server.
    H2,
}

impl ProxyLoop {
    pub const ALL: [ProxyLoop; 3] = [ProxyLoop::Relay, ProxyLoop::Pingora, ProxyLoop::H2];

    pub fn label(self) -> &'static str {
        match self {
            ProxyLoop::Relay => "relay",
            ProxyLoop::Pingora => "pingora",
            ProxyLoop::H2 => "h2",
        }
    }
}

/// A client connection's protocol, for `authz_edge_client_connections{protocol}`; its
/// discriminant indexes `ALL` and `Metrics::client_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnProtocol {
    /// Accepted on an HTTPS listener, its TLS handshake not yet done.
    TlsHandshake,
    /// Plain HTTP/1.
    Http1,
    /// HTTP/1 over TLS.
    Http1Tls,
    /// HTTP/2 (over TLS, by ALPN).
    H2,
}

impl ConnProtocol {
    pub const ALL: [ConnProtocol; 4] = [
        ConnProtocol::TlsHandshake,
        ConnProtocol::Http1,
        ConnProtocol::Http1Tls,
        ConnProtocol::H2,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ConnProtocol::TlsHandshake => "tls_handshake",
            ConnProtocol::Http1 => "http1",
            ConnProtocol::Http1Tls => "http1_tls",
            ConnProtocol::H2 => "h2",
        }
    }
}

/// What the connection cap and the HTTP/2 stream budget took away, for
/// `authz_edge_connections_shed_total{reason}`; its discriminant indexes `ALL` and
/// `Metrics::connections_shed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    /// An idle connection closed to make room for a new one at `server.max_connections`.
    Idle,
    /// A new connection closed at `server.max_connections`: none was idle.
    Refused,
    /// An HTTP/2 stream refused (`REFUSED_STREAM`) at the process's stream budget.
    H2Stream,
}

impl ShedReason {
    pub const ALL: [ShedReason; 3] = [ShedReason::Idle, ShedReason::Refused, ShedReason::H2Stream];

    pub fn label(self) -> &'static str {
        match self {
            ShedReason::Idle => "idle",
            ShedReason::Refused => "refused",
            ShedReason::H2Stream => "h2_stream",
        }
    }
}

/// Why a request was refused before reaching Django.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    HeaderTooLarge,
    TooManyHeaders,
    UriTooLong,
    BodyTooLarge,
    BadRequest,
    ConflictingLength,
    HeaderTimeout,
    BadPath,
    LengthRequired,
    BadHost,
    MethodNotAllowed,
    BodyBufferFull,
    /// The client stopped sending its body (nginx's `client_body_timeout`).
    BodyTimeout,
}

impl RejectReason {
    pub const ALL: [RejectReason; 13] = [
        RejectReason::HeaderTooLarge,
        RejectReason::TooManyHeaders,
        RejectReason::UriTooLong,
        RejectReason::BodyTooLarge,
        RejectReason::BadRequest,
        RejectReason::ConflictingLength,
        RejectReason::HeaderTimeout,
        RejectReason::BadPath,
        RejectReason::LengthRequired,
        RejectReason::BadHost,
        RejectReason::MethodNotAllowed,
        RejectReason::BodyBufferFull,
        RejectReason::BodyTimeout,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RejectReason::HeaderTooLarge => "header_too_large",
            RejectReason::TooManyHeaders => "too_many_headers",
            RejectReason::UriTooLong => "uri_too_long",
            RejectReason::BodyTooLarge => "body_too_large",
            RejectReason::BadRequest => "bad_request",
            RejectReason::ConflictingLength => "conflicting_length",
            RejectReason::HeaderTimeout => "header_timeout",
            RejectReason::BodyTimeout => "body_timeout",
            RejectReason::BadPath => "bad_path",
            RejectReason::LengthRequired => "length_required",
            RejectReason::BadHost => "bad_host",
            RejectReason::MethodNotAllowed => "method_not_allowed",
            RejectReason::BodyBufferFull => "body_buffer_full",
        }
    }

    /// The status the client is answered with.
    pub fn status(self) -> u16 {
        match self {
            RejectReason::HeaderTooLarge | RejectReason::TooManyHeaders => 431,
            RejectReason::UriTooLong => 414,
            RejectReason::BodyTooLarge => 413,
            RejectReason::HeaderTimeout | RejectReason::BodyTimeout => 408,
            RejectReason::LengthRequired => 411,
            RejectReason::MethodNotAllowed => 405,
            RejectReason::BodyBufferFull => 503,
            RejectReason::BadRequest
            | RejectReason::ConflictingLength
            | RejectReason::BadPath
            | RejectReason::BadHost => 400,
        }
    }
}

/// Why talking to Django failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Reset,
    Other,
}

impl UpstreamErrorKind {
    pub const ALL: [UpstreamErrorKind; 4] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Reset,
        UpstreamErrorKind::Other,
    ];
    pub fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::Other => "other",
        }
    }
}

/// The denial kind, as Django's companion or the fallback classifier reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Permission,
    Csrf,
    Login,
    Object,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Permission,
        Kind::Csrf,
        Kind::Login,
        Kind::Object,
        Kind::Other,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Kind::Permission => "permission",
            Kind::Csrf => "csrf",
            Kind::Login => "login",
            Kind::Object => "object",
            Kind::Other => "other",
        }
    }
    /// Parses the `X-Authz-Kind` value; anything unknown is `other`.
    pub fn parse(v: &[u8]) -> Kind {
        let v = v.trim_ascii();
        Kind::ALL
            .into_iter()
            .find(|k| v.eq_ignore_ascii_case(k.label().as_bytes()))
            .unwrap_or(Kind::Other)
    }
}

/// Whether the denied request carried a known user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authn {
    Authenticated,
    Anonymous,
    Unknown,
}

impl Authn {
    pub const ALL: [Authn; 3] = [Authn::Authenticated, Authn::Anonymous, Authn::Unknown];
    pub fn label(self) -> &'static str {
        match self {
            Authn::Authenticated => "authenticated",
            Authn::Anonymous => "anonymous",
            Authn::Unknown => "unknown",
        }
    }
}

/// The statuses counted as denials, in the order of the per-status arrays: 401, 403, and a
/// 302 to the login page (Django's `login_required`, `permission_required` without
/// `raise_exception`, `user_passes_test`).
pub const DENIAL_STATUSES: [u16; 3] = [401, 403, 302];
/// `DENIAL_STATUSES` as label values.
pub const DENIAL_STATUS_LABELS: [&str; 3] = ["401", "403", "302"];

/// A denial status's index in `DENIAL_STATUSES` (anything else counts as a 403).
#[inline]
pub fn denial_index(status: u16) -> usize {
    match status {
        401 => 0,
        302 => 2,
        _ => 1,
    }
}

/// `1xx`..`5xx` as an index 0..=4.
pub fn status_class(status: u16) -> usize {
    ((status / 100).clamp(1, 5) - 1) as usize
}

pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Labels of `authz_edge_anonymous_session_denials_total{reason}`.
pub const ANONYMOUS_REASONS: [&str; 10] = [
    "session_undecodable",
    "session_unknown",
    "backend_removed",
    "no_auth_middleware",
    "credentials_rejected",
    "session_without_user",
    "session_invalidated",
    "session_expired",
    "user_inactive",
    "unexplained",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `Metrics` indexes its counters by these enums' discriminants: each `ALL` must list them
    /// in declaration order.
    #[test]
    fn all_lists_each_enum_in_declaration_order() {
        let orders = [
            ProxyLoop::ALL
                .iter()
                .map(|v| *v as usize)
                .collect::<Vec<_>>(),
            RejectReason::ALL.iter().map(|v| *v as usize).collect(),
            UpstreamErrorKind::ALL.iter().map(|v| *v as usize).collect(),
            ConnProtocol::ALL.iter().map(|v| *v as usize).collect(),
            ShedReason::ALL.iter().map(|v| *v as usize).collect(),
        ];
        for order in orders {
            assert_eq!(order, (0..order.len()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn kind_parses_case_insensitively() {
        assert_eq!(Kind::parse(b" CSRF "), Kind::Csrf);
        assert_eq!(Kind::parse(b"nonsense"), Kind::Other);
    }
}
