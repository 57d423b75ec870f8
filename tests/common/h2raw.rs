//! A raw HTTP/2 client over TLS: it writes frames and HPACK literals exactly as given, malformed
//! ones too (names with upper case, CR or NUL, pseudo-headers out of place, `content-length`
//! that the DATA contradicts), and reports what came back on the stream: a response, a reset,
//! a GOAWAY or the connection closed. Only the responses are decoded (with Huffman, by
//! `fluke-hpack`); what it sends is never indexed nor Huffman-coded, so the bytes are the probe's.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// One frame to send.
#[derive(Clone, Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A HEADERS frame with the fields given, HPACK-encoded as literals.
    pub fn headers(stream: u32, fields: &[(&[u8], &[u8])], end_stream: bool) -> Frame {
        Frame {
            kind: HEADERS,
            flags: END_HEADERS | if end_stream { END_STREAM } else { 0 },
            stream,
            payload: fields.iter().flat_map(|(n, v)| literal(n, v)).collect(),
        }
    }

    /// A plain `GET` of `path` for `localhost`, ending the stream.
    pub fn get(stream: u32, path: &str) -> Frame {
        let fields: [(&[u8], &[u8]); 4] = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.as_bytes()),
        ];
        Frame::headers(stream, &fields, true)
    }

    pub fn data(stream: u32, bytes: &[u8], end_stream: bool) -> Frame {
        Frame {
            kind: DATA,
            flags: if end_stream { END_STREAM } else { 0 },
            stream,
            payload: bytes.to_vec(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let len = self.payload.len() as u32;
        let mut out = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            self.kind,
            self.flags,
        ];
        out.extend_from_slice(&(self.stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// An HPACK integer with an `n`-bit prefix, the prefix's other bits `flags`.
fn int(n: u8, flags: u8, mut v: usize) -> Vec<u8> {
    let max = (1usize << n) - 1;
    if v < max {
        return vec![flags | v as u8];
    }
    let mut out = vec![flags | max as u8];
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
    out
}

/// A literal header field without indexing, new name, neither string Huffman-coded
/// (RFC 7541 §6.2.2): the name and value go on the wire exactly as given.
pub fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend(int(7, 0, name.len()));
    out.extend_from_slice(name);
    out.extend(int(7, 0, value.len()));
    out.extend_from_slice(value);
    out
}

/// A GOAWAY frame's last stream id and error code (its payload has at least 8 bytes).
fn goaway(payload: &[u8]) -> (u32, u32) {
    let word =
        |i: usize| u32::from_be_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]]);
    (word(0) & 0x7fff_ffff, word(4))
}

/// A stream that ended early: the response cut off after its head, or `otherwise` when no head
/// came.
fn cut_off(
    head: Option<(u16, Vec<(String, String)>)>,
    body: Vec<u8>,
    otherwise: Outcome,
) -> Outcome {
    match head {
        Some((status, headers)) => Outcome::Response {
            status,
            headers,
            body,
            complete: false,
        },
        None => otherwise,
    }
}

/// What came back for a stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A response head and its body; `complete` when the stream ended (END_STREAM), not
    /// when it was reset or the connection closed after the head.
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        complete: bool,
    },
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY with this error code.
    GoAway(u32),
    /// The connection closed with nothing for the stream.
    Closed,
    /// Nothing within the read timeout.
    Silent,
}

impl Outcome {
    /// A short name for reports: the status, `rst:N`, `goaway:N`, `closed` or `silent`.
    pub fn label(&self) -> String {
        match self {
            Outcome::Response {
                status,
                complete: true,
                ..
            } => status.to_string(),
            Outcome::Response { status, .. } => format!("{status}-cut"),
            Outcome::Reset(c) => format!("rst:{c}"),
            Outcome::GoAway(c) => format!("goaway:{c}"),
            Outcome::Closed => "closed".into(),
            Outcome::Silent => "silent".into(),
        }
    }
}

/// The certificate in `pem` as DER.
fn der_of(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("pem")
}

/// The TLS settings of the raw client: the test's self-signed certificate, ALPN `h2` only.
pub fn tls_config(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der_of(cert_pem)))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` (as `localhost`), its handshake done.
pub fn tls_connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config.clone(), name).expect("tls");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}

/// An HTTP/2 connection: the preface and an empty SETTINGS sent.
pub struct H2 {
    tls: Tls,
    decoder: fluke_hpack::Decoder<'static>,
    buf: Vec<u8>,
    /// Every GOAWAY read so far: (last stream id, error code).
    pub goaways: Vec<(u32, u32)>,
}

impl H2 {
    pub fn connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> H2 {
        let mut tls = tls_connect(addr, config);
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]), "ALPN h2");
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .expect("preface");
        let settings = Frame {
            kind: SETTINGS,
            flags: 0,
            stream: 0,
            payload: Vec::new(),
        };
        tls.write_all(&settings.bytes()).expect("settings");
        H2 {
            tls,
            decoder: fluke_hpack::Decoder::new(),
            buf: Vec::new(),
            goaways: Vec::new(),
        }
    }

    /// Reads (answering SETTINGS and PING) until the server closes the connection: `true`, or
    /// until it is silent for the read timeout (5 s): `false`.
    pub fn until_closed(&mut self) -> bool {
        loop {
            match self.next_frame() {
                Ok((GOAWAY, _, _, payload)) if payload.len() >= 8 => {
                    self.goaways.push(goaway(&payload));
                }
                Ok((PING, 0, _, payload)) => self.send(&[Frame {
                    kind: PING,
                    flags: 1,
                    stream: 0,
                    payload,
                }]),
                Ok(_) => {}
                Err(Outcome::Silent) => return false,
                Err(_) => return true,
            }
        }
    }

    /// How long a read waits before the connection counts as silent (5 s by default).
    pub fn set_read_timeout(&mut self, d: Duration) {
        self.tls.sock.set_read_timeout(Some(d)).expect("timeout");
    }

    pub fn send(&mut self, frames: &[Frame]) {
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::bytes).collect();
        // A server may close before reading all of it; what it answered is still read.
        let _ = self.tls.write_all(&bytes);
        let _ = self.tls.flush();
    }

    /// The next frame: (kind, flags, stream, payload); `None` when closed or silent.
    fn next_frame(&mut self) -> Result<(u8, u8, u32, Vec<u8>), Outcome> {
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let kind = self.buf[3];
                    let flags = self.buf[4];
                    let stream =
                        u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]])
                            & 0x7fff_ffff;
                    let payload = self.buf[9..9 + len].to_vec();
                    self.buf.drain(..9 + len);
                    return Ok((kind, flags, stream, payload));
                }
            }
            let mut chunk = [0u8; 16384];
            match self.tls.read(&mut chunk) {
                Ok(0) => return Err(Outcome::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(Outcome::Silent)
                }
                Err(_) => return Err(Outcome::Closed),
            }
        }
    }

    /// Reads until `stream` has its outcome: a whole response, a reset, GOAWAY or the end.
    pub fn outcome(&mut self, stream: u32) -> Outcome {
        let mut head: Option<(u16, Vec<(String, String)>)> = None;
        let mut block = Vec::new();
        let mut body = Vec::new();
        loop {
            let (kind, flags, id, payload) = match self.next_frame() {
                Ok(f) => f,
                Err(end) => return cut_off(head, body, end),
            };
            match kind {
                SETTINGS if flags & 1 == 0 => self.send(&[Frame {
                    kind: SETTINGS,
                    flags: 1,
                    stream: 0,
                    payload: Vec::new(),
                }]),
                PING if flags & 1 == 0 => self.send(&[Frame {
                    kind: PING,
                    flags: 1,
                    stream: 0,
                    payload,
                }]),
                GOAWAY if payload.len() >= 8 => {
                    let (last, code) = goaway(&payload);
                    self.goaways.push((last, code));
                    // A graceful GOAWAY (NO_ERROR) that covers the stream lets it finish.
                    if code != 0 || last < stream {
                        return cut_off(head, body, Outcome::GoAway(code));
                    }
                }
                RST_STREAM if id == stream => {
                    let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    return cut_off(head, body, Outcome::Reset(code));
                }
                HEADERS | CONTINUATION => {
                    let mut fragment = &payload[..];
                    if kind == HEADERS {
                        let pad = if flags & 0x8 != 0 {
                            fragment[0] as usize
                        } else {
                            0
                        };
                        if flags & 0x8 != 0 {
                            fragment = &fragment[1..];
                        }
                        if flags & 0x20 != 0 {
                            fragment = &fragment[5..];
                        }
                        fragment = &fragment[..fragment.len() - pad];
                    }
                    block.extend_from_slice(fragment);
                    if flags & END_HEADERS == 0 {
                        continue;
                    }
                    // Every block is decoded, whatever its stream: HPACK's table is the
                    // connection's.
                    let fields = self.decoder.decode(&block).expect("hpack");
                    block.clear();
                    if id != stream {
                        continue;
                    }
                    let fields: Vec<(String, String)> = fields
                        .into_iter()
                        .map(|(n, v)| {
                            (
                                String::from_utf8_lossy(&n).into_owned(),
                                String::from_utf8_lossy(&v).into_owned(),
                            )
                        })
                        .collect();
                    if head.is_none() {
                        let status = fields
                            .iter()
                            .find(|(n, _)| n == ":status")
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        if (100..200).contains(&status) {
                            continue;
                        }
                        head = Some((status, fields));
                    }
                    if flags & END_STREAM != 0 {
                        let (status, headers) = head.take().expect("head");
                        return Outcome::Response {
                            status,
                            headers,
                            body,
                            complete: true,
                        };
                    }
                }
                DATA if id == stream => {
                    let data = match flags & 0x8 {
                        0 => &payload[..],
                        _ => &payload[1..payload.len() - usize::from(payload[0])],
                    };
                    body.extend_from_slice(data);
                    if flags & END_STREAM != 0 {
                        if let Some((status, headers)) = head.take() {
                            return Outcome::Response {
                                status,
                                headers,
                                body,
                                complete: true,
                            };
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
