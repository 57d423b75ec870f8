//! Django's responses compressed on the way out, as nginx's `gzip` module and Django's
//! `GZipMiddleware` do: which coding a response gets (`choose`), and the streaming compressor
//! (`Compressor`: gzip on zlib-ng, brotli, zstd).
//!
//! A response is compressed only when the client accepts a coding, its type is listed, its
//! declared length (if any) reaches `min_length`, and nothing forbids it: a HEAD, 204 or 304
//! answer, a range (206 or `Content-Range`), a body Django already encoded, or
//! `Cache-Control: no-transform`. `text/html` gets Django's BREACH mitigation (random-length
//! padding since Django 4.2): a random file name in the gzip header, a skippable frame of
//! random length before zstd's; brotli has no such room, so HTML never gets brotli.
//!
//! Longer than 400 lines only with its unit tests, which sit beside the code.

use crate::config;
use crate::upstream::response_head::{Framing, ResponseHead};
use bytes::{BufMut, BytesMut};
use rand::Rng;
use std::io::Write;

/// The padding's most random bytes (Django's `GZipMiddleware.max_random_bytes`).
const MAX_RANDOM_BYTES: usize = 100;

/// A content coding authz-edge can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
    Zstd,
}

impl Coding {
    fn parse(name: &str) -> Option<Coding> {
        match name {
            "gzip" => Some(Coding::Gzip),
            "br" => Some(Coding::Brotli),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }

    /// The `Content-Encoding` value.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// `[compression]`, compiled.
#[derive(Debug, Clone)]
pub struct Settings {
    pub enabled: bool,
    types: Vec<String>,
    min_length: u64,
    level: u32,
    /// The server's preference, first first.
    codings: Vec<Coding>,
}

impl Settings {
    pub fn from_config(c: &config::Compression) -> Settings {
        Settings {
            enabled: c.enabled,
            types: c.types.iter().map(|t| t.to_ascii_lowercase()).collect(),
            min_length: c.min_length,
            level: c.level.clamp(1, 9),
            codings: c
                .algorithms
                .iter()
                .filter_map(|a| Coding::parse(a))
                .collect(),
        }
    }
}

/// The weight (q, in thousandths) `accept` gives `coding`; `None` when it names neither it
/// nor `*`. A q of 0 refuses.
fn weight(accept: &[u8], coding: &str) -> Option<u32> {
    let mut star = None;
    for item in accept.split(|b| *b == b',') {
        let mut parts = item.split(|b| *b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        let mut q = 1000;
        for p in parts {
            let p = p.trim_ascii();
            if let Some(v) = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q=")) {
                q = parse_q(v).unwrap_or(0);
            }
        }
        if name.eq_ignore_ascii_case(coding.as_bytes()) {
            return Some(q);
        }
        if name == b"*" {
            star = Some(q);
        }
    }
    star
}

/// A q-value (`0`, `0.5`, `1.000`) in thousandths.
fn parse_q(v: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = int.parse().ok()?;
    let mut thousandths = 0;
    for (i, d) in frac.bytes().enumerate() {
        thousandths += u32::from(d - b'0') * [100, 10, 1][i];
    }
    let q = whole * 1000 + thousandths;
    (q <= 1000).then_some(q)
}

/// The media type of a `Content-Type` value, lowercase, without parameters.
fn media_type(value: &[u8]) -> String {
    let end = memchr::memchr(b';', value).unwrap_or(value.len());
    String::from_utf8_lossy(value[..end].trim_ascii()).to_ascii_lowercase()
}

/// The coding `head` goes out in for a client that sent `accept` (its `Accept-Encoding`), if
/// any, and whether it is HTML (padded against BREACH). `head_only`: the answer to a HEAD
/// request.
pub fn choose<'a>(
    s: &Settings,
    accept: impl FnOnce() -> Option<&'a [u8]>,
    head: &ResponseHead<'_, '_>,
    head_only: bool,
) -> Option<(Coding, bool)> {
    // The cheap refusals first: most responses (small pages, denials) stop here, before the
    // client's headers are searched.
    if !s.enabled || head_only || head.framing == Framing::Empty || head.status == 206 {
        return None;
    }
    if let Framing::Length(n) = head.framing {
        if n < s.min_length {
            return None;
        }
    }
    let accept = accept()?;
    let mut html = false;
    let mut typed = false;
    for h in head.forwarded() {
        let is = |n: &str| h.name.eq_ignore_ascii_case(n);
        if is("content-encoding") && !h.value.trim_ascii().eq_ignore_ascii_case(b"identity") {
            return None;
        }
        if is("content-range") {
            return None;
        }
        if is("cache-control")
            && h.value
                .split(|b| *b == b',')
                .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
        {
            return None;
        }
        if is("content-type") {
            let t = media_type(h.value);
            html = t == "text/html";
            typed = s.types.contains(&t);
        }
    }
    if !typed {
        return None;
    }
    // The client's weights decide; among equal weights, the server's order.
    let mut best: Option<(u32, Coding)> = None;
    for &c in &s.codings {
        if html && c == Coding::Brotli {
            continue;
        }
        match weight(accept, c.token()) {
            Some(q) if q > 0 && best.is_none_or(|(b, _)| q > b) => best = Some((q, c)),
            _ => {}
        }
    }
    best.map(|(_, c)| (c, html))
}

/// A compressor for `head`'s body, when one is chosen (`choose`); the head then states its
/// coding. A compressor that cannot start leaves the body as it is.
pub fn compressor_for<'a>(
    s: &Settings,
    accept: impl FnOnce() -> Option<&'a [u8]>,
    head: &mut ResponseHead<'_, '_>,
    head_only: bool,
) -> Option<Box<Compressor>> {
    let (coding, html) = choose(s, accept, head, head_only)?;
    // Boxed: a request's future carries only a pointer to it.
    let c = Box::new(Compressor::new(coding, s, html).ok()?);
    head.coding = Some(coding.token());
    Some(c)
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// A streaming compressor: data in, compressed bytes out as they are produced.
pub struct Compressor {
    encoder: Option<Encoder>,
}

impl Compressor {
    /// A compressor for `coding` at `s`'s level; `pad` for `text/html` (BREACH).
    pub fn new(coding: Coding, s: &Settings, pad: bool) -> std::io::Result<Compressor> {
        let level = s.level;
        let mut rng = rand::thread_rng();
        let encoder = match coding {
            Coding::Gzip => {
                let mut b = flate2::GzBuilder::new();
                if pad {
                    let n = rng.gen_range(1..=MAX_RANDOM_BYTES);
                    let name: Vec<u8> = (0..n).map(|_| rng.gen_range(b'a'..=b'z')).collect();
                    b = b.filename(name);
                }
                Encoder::Gzip(b.write(Vec::new(), flate2::Compression::new(level)))
            }
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                level,
                22,
            ))),
            Coding::Zstd => {
                let mut out = Vec::new();
                if pad {
                    // A skippable frame (RFC 8878 §3.1.2): decoders pass over it.
                    let n = rng.gen_range(1..=MAX_RANDOM_BYTES);
                    out.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
                    out.extend_from_slice(&(n as u32).to_le_bytes());
                    out.extend((0..n).map(|_| rng.gen::<u8>()));
                }
                Encoder::Zstd(zstd::stream::write::Encoder::new(out, level as i32)?)
            }
        };
        Ok(Compressor {
            encoder: Some(encoder),
        })
    }

    /// Compresses `data`; what is ready goes to `out`.
    pub fn write(&mut self, data: &[u8], out: &mut BytesMut) -> std::io::Result<()> {
        let produced = match self.encoder.as_mut() {
            Some(Encoder::Gzip(e)) => {
                e.write_all(data)?;
                e.get_mut()
            }
            Some(Encoder::Brotli(e)) => {
                e.write_all(data)?;
                e.get_mut()
            }
            Some(Encoder::Zstd(e)) => {
                e.write_all(data)?;
                e.get_mut()
            }
            None => return Ok(()),
        };
        out.put_slice(produced);
        produced.clear();
        Ok(())
    }

    /// Ends the stream; the rest goes to `out`.
    pub fn finish(&mut self, out: &mut BytesMut) -> std::io::Result<()> {
        let rest = match self.encoder.take() {
            Some(Encoder::Gzip(e)) => e.finish()?,
            Some(Encoder::Brotli(e)) => e.into_inner(),
            Some(Encoder::Zstd(e)) => e.finish()?,
            None => return Ok(()),
        };
        out.put_slice(&rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use crate::rules::context::ContextHeaders;
    use std::io::Read;

    fn settings() -> Settings {
        Settings::from_config(&config::Compression::default())
    }

    fn chosen(raw: &str, accept: &str, head_only: bool) -> Option<Coding> {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let names = ContextHeaders::default();
        let head = ResponseHead::read(
            raw.as_bytes(),
            &mut h,
            &Limits::default(),
            &names,
            head_only,
        )
        .expect("valid");
        choose(&settings(), || Some(accept.as_bytes()), &head, head_only).map(|c| c.0)
    }

    const JSON: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n";
    const HTML: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 5000\r\n\r\n";

    #[test]
    fn the_client_s_weights_then_the_server_s_order() {
        assert_eq!(
            chosen(JSON, "gzip, deflate, br, zstd", false),
            Some(Coding::Zstd)
        );
        assert_eq!(
            chosen(JSON, "gzip;q=1, br;q=0.5", false),
            Some(Coding::Gzip)
        );
        assert_eq!(
            chosen(JSON, "br;q=0.9, gzip;q=0.8", false),
            Some(Coding::Brotli)
        );
        assert_eq!(chosen(JSON, "*", false), Some(Coding::Zstd));
        assert_eq!(chosen(JSON, "gzip;q=0, identity", false), None);
        assert_eq!(chosen(JSON, "identity", false), None);
        assert_eq!(chosen(JSON, "*;q=0", false), None);
        // HTML never gets brotli: no room for the padding.
        assert_eq!(chosen(HTML, "br, gzip", false), Some(Coding::Gzip));
        assert_eq!(chosen(HTML, "br", false), None);
    }

    #[test]
    fn what_must_pass_untouched() {
        let cases = [
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: 5000\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nCache-Control: public, no-transform\r\nContent-Length: 5000\r\n\r\n",
            "HTTP/1.1 206 Partial Content\r\nContent-Type: text/html\r\nContent-Range: bytes 0-4999/9000\r\nContent-Length: 5000\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nContent-Type: text/html\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Type: text/html\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
        ];
        for raw in cases {
            assert_eq!(chosen(raw, "gzip", false), None, "{raw}");
        }
        assert_eq!(chosen(JSON, "gzip", true), None, "HEAD");
        let chunked_body =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(chosen(chunked_body, "gzip", false), Some(Coding::Gzip));
    }

    fn round_trip(coding: Coding, pad: bool) -> (Vec<u8>, Vec<u8>) {
        let text: Vec<u8> = (0..2_000u32)
            .flat_map(|i| {
                format!("<tr><td>report {i}</td><td class=\"state\">approved</td></tr>\n")
                    .into_bytes()
            })
            .collect();
        let mut c = Compressor::new(coding, &settings(), pad).expect("compressor");
        let mut out = BytesMut::new();
        for piece in text.chunks(3000) {
            c.write(piece, &mut out).expect("write");
        }
        c.finish(&mut out).expect("finish");
        let mut back = Vec::new();
        match coding {
            Coding::Gzip => {
                flate2::read::GzDecoder::new(&out[..])
                    .read_to_end(&mut back)
                    .expect("gunzip");
            }
            Coding::Brotli => {
                brotli::Decompressor::new(&out[..], 4096)
                    .read_to_end(&mut back)
                    .expect("unbrotli");
            }
            Coding::Zstd => back = zstd::stream::decode_all(&out[..]).expect("unzstd"),
        }
        assert!(
            out.len() < text.len() / 4,
            "{coding:?} compresses: {} of {}",
            out.len(),
            text.len()
        );
        (text, back)
    }

    #[test]
    fn every_coding_decompresses_to_the_same_bytes() {
        for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            let (text, back) = round_trip(coding, false);
            assert_eq!(text, back, "{coding:?}");
        }
        for coding in [Coding::Gzip, Coding::Zstd] {
            let (text, back) = round_trip(coding, true);
            assert_eq!(text, back, "{coding:?} padded");
        }
    }
}
