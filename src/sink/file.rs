//! The file writer: JSON lines, size-based rotation, periodic flush and fsync. A write error
//! (a full disk) drops the batch, is counted by the caller, and the file is reopened next time.

use crate::config::Sink as SinkConfig;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

pub struct FileOutput {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Option<BufWriter<File>>,
    size: u64,
}

impl FileOutput {
    pub fn new(c: &SinkConfig) -> Self {
        FileOutput {
            path: PathBuf::from(&c.path),
            max_bytes: c.max_bytes,
            keep: c.keep,
            file: None,
            size: 0,
        }
    }

    fn open(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(BufWriter::with_capacity(64 * 1024, f));
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

    /// Appends whole lines; false when the batch could not be written.
    pub fn write_lines(&mut self, lines: &[String]) -> bool {
        let mut ok = true;
        for line in lines {
            if self.size > 0 && self.size + line.len() as u64 + 1 > self.max_bytes {
                self.rotate();
            }
            let written = self.open().and_then(|f| {
                f.write_all(line.as_bytes())?;
                f.write_all(b"\n")
            });
            match written {
                Ok(()) => self.size += line.len() as u64 + 1,
                Err(e) => {
                    tracing::warn!(
                        "diagnostics file {}: {e}; dropping records",
                        self.path.display()
                    );
                    // Start over with a fresh handle next time (the disk may have room again).
                    self.file = None;
                    ok = false;
                }
            }
        }
        if ok {
            if let Some(f) = self.file.as_mut() {
                if f.flush().is_err() {
                    self.file = None;
                    ok = false;
                }
            }
        }
        ok
    }

    pub fn flush_and_sync(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
            let _ = f.get_ref().sync_data();
        }
    }
}
