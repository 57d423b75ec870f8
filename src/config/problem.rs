//! What is wrong with a config file: one `Problem` per bad key, and a file's problems
//! together (`ConfigError`), one line each.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in a config file: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path such as `upstream.servers[1]`; empty for whole-file errors.
    pub key: String,
    pub message: String,
}

/// Every problem found in one config file; each renders as `FILE: KEY: MESSAGE`.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// The problems of the file at `file`.
    pub fn new(file: &Path, problems: Vec<Problem>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            problems,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.key.is_empty() {
                write!(f, "{}: {}", self.file.display(), p.message)?;
            } else {
                write!(f, "{}: {}: {}", self.file.display(), p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
