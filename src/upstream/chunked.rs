//! A strict decoder for chunked bodies from Django, fed bytes as they arrive.
//!
//! Modelled on hyper's `proto/h1/decode.rs`: a state machine over the size line, the data, the
//! CRLF after it and the trailer section, with a test per refusal. Lines end in CRLF only; a
//! size line must start with a hex digit (httparse's `parse_chunk_size` reads the number, once
//! the line is known to hold no bare CR or LF); size lines and trailers are bounded. Trailers
//! are consumed and dropped, never passed on: they could carry context headers to the client,
//! and nginx drops them too. The relay writes the data it hands out re-framed (`encode`), so
//! the client gets only well-formed chunks.

use bytes::{BufMut, BytesMut};

/// The longest size line (digits, extensions and CRLF) taken.
const MAX_SIZE_LINE: usize = 4096;
/// The most trailer bytes taken (they are dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// Finds where a chunked body ends, byte by byte as it arrives, and hands out its data.
#[derive(Default)]
pub struct ChunkScanner {
    state: ChunkState,
    /// Data bytes left in the current chunk.
    left: u64,
    trailer_bytes: usize,
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum ChunkState {
    #[default]
    Size,
    Data,
    DataCr,
    DataLf,
    Trailer,
    Done,
}

/// The position of the first CRLF in `buf`, if the bytes before it hold no bare CR or LF.
/// `Err` when the line is malformed.
fn crlf_line(buf: &[u8]) -> Result<Option<usize>, ()> {
    match memchr::memchr2(b'\r', b'\n', buf) {
        None => Ok(None),
        Some(i) if buf[i] == b'\n' => Err(()),
        Some(i) => match buf.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(i)),
            Some(_) => Err(()),
        },
    }
}

impl ChunkScanner {
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes of `buf` up to the end of the body, handing data to `data`; returns how
    /// many were consumed (a partial line is left for the next call), or `None` when the
    /// framing is invalid.
    pub fn feed(&mut self, buf: &[u8], mut data: impl FnMut(&[u8])) -> Option<usize> {
        let mut i = 0;
        while i < buf.len() && self.state != ChunkState::Done {
            let rest = &buf[i..];
            match self.state {
                ChunkState::Size => {
                    if !rest[0].is_ascii_hexdigit() {
                        return None;
                    }
                    let Some(end) = crlf_line(rest).ok()? else {
                        if rest.len() >= MAX_SIZE_LINE {
                            return None;
                        }
                        return Some(i);
                    };
                    if end + 2 > MAX_SIZE_LINE {
                        return None;
                    }
                    let Ok(httparse::Status::Complete((used, size))) =
                        httparse::parse_chunk_size(&rest[..end + 2])
                    else {
                        return None;
                    };
                    i += used;
                    self.left = size;
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data
                    };
                }
                ChunkState::Data => {
                    let n = rest
                        .len()
                        .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                    data(&rest[..n]);
                    self.left -= n as u64;
                    i += n;
                    if self.left == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr => {
                    if rest[0] != b'\r' {
                        return None;
                    }
                    i += 1;
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if rest[0] != b'\n' {
                        return None;
                    }
                    i += 1;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let Some(end) = crlf_line(rest).ok()? else {
                        if self.trailer_bytes + rest.len() > MAX_TRAILERS {
                            return None;
                        }
                        return Some(i);
                    };
                    self.trailer_bytes += end + 2;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return None;
                    }
                    i += end + 2;
                    if end == 0 {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => {}
            }
        }
        Some(i)
    }
}

/// Writes `data` as one chunk (nothing for empty data: an empty chunk would end the body).
pub fn encode(data: &[u8], out: &mut BytesMut) {
    if data.is_empty() {
        return;
    }
    let mut hex = [0u8; 16];
    let mut n = data.len();
    let mut at = hex.len();
    while n > 0 || at == hex.len() {
        at -= 1;
        hex[at] = b"0123456789abcdef"[n % 16];
        n /= 16;
    }
    out.reserve(hex.len() - at + data.len() + 4);
    out.put_slice(&hex[at..]);
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// The end of a chunked body, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(parts: &[&[u8]]) -> (Option<usize>, bool, Vec<u8>) {
        let mut s = ChunkScanner::default();
        let mut data = Vec::new();
        let mut used = 0;
        let mut pending: Vec<u8> = Vec::new();
        for p in parts {
            pending.extend_from_slice(p);
            match s.feed(&pending, |d| data.extend_from_slice(d)) {
                Some(n) => {
                    used += n;
                    pending.drain(..n);
                }
                None => return (None, false, data),
            }
        }
        (Some(used), s.done(), data)
    }

    #[test]
    fn chunked_bodies_end_where_they_end() {
        let body: &[u8] = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT";
        let (used, done, data) = scan_all(&[body]);
        assert_eq!(used, Some(body.len() - 4));
        assert!(done);
        assert_eq!(data, b"hello world");
        // The same bytes one at a time.
        let bytes: Vec<&[u8]> = body[..body.len() - 4].chunks(1).collect();
        let (used, done, data) = scan_all(&bytes);
        assert_eq!(used, Some(body.len() - 4));
        assert!(done);
        assert_eq!(data, b"hello world");
        // Trailers are consumed with the body (and dropped by the relay).
        let t: &[u8] = b"3\r\nabc\r\n0\r\nX-Authz-User: 7\r\nX-Other: 1\r\n\r\n";
        assert_eq!(scan_all(&[t]), (Some(t.len()), true, b"abc".to_vec()));
    }

    #[test]
    fn each_malformed_framing_is_refused() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\rX",
            b"\r\n",
            b";ext\r\n",
            b" 5\r\n",
            b"10000000000000000\r\n",
            // Bare LF: after the size, after data, in an extension, in a trailer.
            b"5\nhello\r\n",
            b"5\r\nhello\n",
            b"5;a\nb\r\nhello\r\n",
            b"5;a\rb\r\nhello\r\n",
            b"0\r\nX: 1\n\r\n",
            b"0\n\n",
            b"-5\r\n",
            b"0x5\r\n",
        ] {
            assert_eq!(
                scan_all(&[bad]).0,
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_ext = [&b"5;"[..], &vec![b'a'; MAX_SIZE_LINE][..], b"\r\n"].concat();
        assert_eq!(scan_all(&[&long_ext]).0, None);
        let long_trailer = [&b"0\r\nX: "[..], &vec![b'a'; MAX_TRAILERS][..], b"\r\n\r\n"].concat();
        assert_eq!(scan_all(&[&long_trailer]).0, None);
        let partial: &[u8] = b"5\r\nhel";
        assert!(!scan_all(&[partial]).1);
    }

    #[test]
    fn chunks_are_reencoded() {
        let mut out = BytesMut::new();
        encode(b"hello", &mut out);
        encode(&[b'x'; 26], &mut out);
        encode(b"", &mut out);
        out.put_slice(LAST_CHUNK);
        let mut want = b"5\r\nhello\r\n1a\r\n".to_vec();
        want.extend_from_slice(&[b'x'; 26]);
        want.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(&out[..], &want[..]);
    }
}
