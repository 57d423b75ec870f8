//! The file writer: JSON lines, size-based rotation, periodic fsync, and whole lines only.
//!
//! Each record goes out in one `write` of the line and its newline, so a record counts as
//! written only once it is whole on disk. A write that fails (a full disk, a file-size limit)
//! may leave part of a record behind; so may a crash. Either way the next open finds the file's
//! last line torn, ends it with a newline and counts it (`outcome="torn"`), so that the next
//! record starts a line of its own instead of being glued to the torn one. A full disk is
//! logged once when it starts dropping records and once when it writes again.

use crate::config::Sink as SinkConfig;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// What became of a batch of lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Lines now whole on disk.
    pub whole: u64,
    /// Lines dropped: not written, or cut short.
    pub dropped: u64,
    /// Torn lines found at the end of the file and ended.
    pub torn: u64,
}

pub struct FileOutput {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Option<File>,
    size: u64,
    /// Records dropped since the file last took one (a full disk's episode), logged once.
    dropping: Option<u64>,
    line: Vec<u8>,
}

impl FileOutput {
    pub fn new(c: &SinkConfig) -> Self {
        FileOutput {
            path: PathBuf::from(&c.path),
            max_bytes: c.max_bytes,
            keep: c.keep,
            file: None,
            size: 0,
            dropping: None,
            line: Vec::new(),
        }
    }

    /// Opens the file for appending; a torn last line is ended first (and counted in `torn`).
    fn open(&mut self, torn: &mut u64) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&self.path)?;
            let mut size = f.metadata().map(|m| m.len()).unwrap_or(0);
            if size > 0 {
                let mut last = [0u8; 1];
                f.read_exact_at(&mut last, size - 1)?;
                if last[0] != b'\n' {
                    (&f).write_all(b"\n")?;
                    size += 1;
                    *torn += 1;
                }
            }
            self.size = size;
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("sink file not open"))
    }

    /// Moves `path` to `path.1`, `path.1` to `path.2`, ..., keeping `keep` old files.
    fn rotate(&mut self) {
        self.flush_and_sync();
        self.file = None;
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
            return;
        }
        let name = |i: usize| PathBuf::from(format!("{}.{i}", self.path.display()));
        let _ = std::fs::remove_file(name(self.keep));
        for i in (1..self.keep).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        let _ = std::fs::rename(&self.path, name(1));
    }

    /// Appends each line whole, in one write; after a failure the rest of the batch is dropped
    /// and the file is opened afresh next time.
    pub fn write_lines(&mut self, lines: &[String]) -> Written {
        let mut w = Written::default();
        for (i, line) in lines.iter().enumerate() {
            if self.size > 0 && self.size + line.len() as u64 + 1 > self.max_bytes {
                self.rotate();
            }
            let mut buf = std::mem::take(&mut self.line);
            buf.clear();
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            let written = self.open(&mut w.torn).and_then(|f| f.write_all(&buf));
            self.line = buf;
            match written {
                Ok(()) => {
                    self.size += line.len() as u64 + 1;
                    w.whole += 1;
                    if let Some(n) = self.dropping.take() {
                        tracing::warn!(
                            "diagnostics file {}: writing again after {n} dropped records",
                            self.path.display()
                        );
                    }
                }
                Err(e) => {
                    let left = (lines.len() - i) as u64;
                    w.dropped += left;
                    match self.dropping.as_mut() {
                        Some(n) => *n += left,
                        None => {
                            tracing::warn!(
                                "diagnostics file {}: {e}; dropping records until it can be written again",
                                self.path.display()
                            );
                            self.dropping = Some(left);
                        }
                    }
                    // A fresh handle next time (the disk may have room again); the open will
                    // end whatever part of this record reached the file.
                    self.file = None;
                    break;
                }
            }
        }
        w
    }

    pub fn flush_and_sync(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(path: &std::path::Path) -> FileOutput {
        FileOutput {
            path: path.to_path_buf(),
            max_bytes: 1 << 20,
            keep: 1,
            file: None,
            size: 0,
            dropping: None,
            line: Vec::new(),
        }
    }

    #[test]
    fn a_torn_last_line_is_ended_before_the_next_record() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":").expect("write");
        let mut out = output(&path);
        let w = out.write_lines(&["{\"c\":3}".to_string(), "{\"d\":4}".to_string()]);
        assert_eq!(
            w,
            Written {
                whole: 2,
                dropped: 0,
                torn: 1
            }
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "{\"a\":1}\n{\"b\":\n{\"c\":3}\n{\"d\":4}\n");
        // A whole file is left as it is.
        let mut again = output(&path);
        assert_eq!(
            again.write_lines(&["{\"e\":5}".to_string()]),
            Written {
                whole: 1,
                dropped: 0,
                torn: 0
            }
        );
    }

    #[test]
    fn a_failed_write_drops_the_rest_of_the_batch() {
        let mut out = output(std::path::Path::new("/dev/full"));
        let w = out.write_lines(&["{}".to_string(), "{}".to_string()]);
        assert_eq!(
            w,
            Written {
                whole: 0,
                dropped: 2,
                torn: 0
            }
        );
        assert_eq!(out.dropping, Some(2));
    }
}
