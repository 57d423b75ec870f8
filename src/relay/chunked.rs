//! Where a chunked body ends: a scanner fed bytes as they arrive, handing out the data.

/// Finds where a chunked body ends, byte by byte as it arrives, and hands out its data.
#[derive(Default)]
pub(super) struct ChunkScanner {
    state: ChunkState,
    size: u64,
    digits: u8,
    /// In the trailer section: the current line is still empty.
    line_empty: bool,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    Data,
    DataEnd,
    Trailer,
    Done,
}

impl ChunkScanner {
    pub(super) fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes of `buf` up to the end of the body; returns how many belong to it, or
    /// `None` when the framing is invalid.
    pub(super) fn feed(&mut self, buf: &[u8], mut data: impl FnMut(&[u8])) -> Option<usize> {
        let mut i = 0;
        while i < buf.len() && self.state != ChunkState::Done {
            let c = buf[i];
            match self.state {
                ChunkState::Size => match c {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        self.digits += 1;
                        if self.digits > 15 {
                            return None;
                        }
                        let d = (c as char).to_digit(16)?;
                        self.size = self.size * 16 + u64::from(d);
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => self.state = ChunkState::Extension,
                    b'\r' if self.digits > 0 => self.state = ChunkState::Extension,
                    b'\n' if self.digits > 0 => self.end_size_line(),
                    _ => return None,
                },
                ChunkState::Extension => {
                    if c == b'\n' {
                        self.end_size_line();
                    }
                }
                ChunkState::Data => {
                    let n = (buf.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    data(&buf[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                    continue;
                }
                ChunkState::DataEnd => match c {
                    b'\r' => {}
                    b'\n' => self.state = ChunkState::Size,
                    _ => return None,
                },
                ChunkState::Trailer => match c {
                    b'\r' => {}
                    b'\n' if self.line_empty => self.state = ChunkState::Done,
                    b'\n' => self.line_empty = true,
                    _ => self.line_empty = false,
                },
                ChunkState::Done => {}
            }
            i += 1;
        }
        Some(i)
    }

    fn end_size_line(&mut self) {
        self.digits = 0;
        if self.size == 0 {
            self.state = ChunkState::Trailer;
            self.line_empty = true;
        } else {
            self.state = ChunkState::Data;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(parts: &[&[u8]]) -> (Option<usize>, bool, Vec<u8>) {
        let mut s = ChunkScanner::default();
        let mut data = Vec::new();
        let mut used = 0;
        for p in parts {
            match s.feed(p, |d| data.extend_from_slice(d)) {
                Some(n) => used += n,
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
        // Trailers are part of the body.
        let t: &[u8] = b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(scan_all(&[t]), (Some(t.len()), true, b"abc".to_vec()));
    }

    #[test]
    fn bad_chunk_framing_is_refused() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloX\r\n",
            b"\r\n",
            b"1000000000000000\r\n",
        ] {
            assert_eq!(
                scan_all(&[bad]).0,
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let partial: &[u8] = b"5\r\nhel";
        assert!(!scan_all(&[partial]).1);
    }
}
