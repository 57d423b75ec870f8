//! Reading a config file: every unknown key, wrong type and bad value reported with its key
//! path, then `validate`.

use super::problem::{ConfigError, Problem};
use super::{validate, Config};
use std::path::Path;

/// Reads, parses and validates a config file; every problem is reported, not just the first.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match read(path) {
        (Some(config), problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(ConfigError::new(path, problems)),
    }
}

/// Reads a config file: its problems, and the config with every bad key taken out (none when
/// the file cannot be read, is not TOML, or lacks a required key), for further checks.
pub fn read(path: &Path) -> (Option<Config>, Vec<Problem>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let message = format!("cannot read the file: {e}");
            let key = String::new();
            return (None, vec![Problem { key, message }]);
        }
    };
    let (config, mut problems, taken) = parse_all(&text);
    if let Some(c) = &config {
        // What a taken-out key leaves behind (an emptied list) is not a problem of its own.
        let under_taken = |key: &str| {
            taken.iter().any(|t| {
                key.starts_with(t.as_str())
                    || t.starts_with(key) && t[key.len()..].starts_with(['.', '['])
            })
        };
        problems.extend(validate(c).into_iter().filter(|p| !under_taken(&p.key)));
    }
    (config, problems)
}

/// The most problems one file reports.
const MAX_PROBLEMS: usize = 64;

/// Parses TOML text into the schema. Every unknown key, wrong type and bad value is reported
/// with its key path, not only the first: each bad key is reported, taken out, and the rest
/// parsed again. The first problem also gives its line.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    match parse_all(text) {
        (Some(c), problems, _) if problems.is_empty() => Ok(c),
        (_, problems, _) => Err(problems),
    }
}

/// `parse`, with the config left once every bad key is taken out, and those keys.
fn parse_all(text: &str) -> (Option<Config>, Vec<Problem>, Vec<String>) {
    let first = match serde_path_to_error::deserialize::<_, Config>(toml::Deserializer::new(text)) {
        Ok(mut c) => {
            c.source = text.parse().unwrap_or_default();
            return (Some(c), Vec::new(), Vec::new());
        }
        Err(e) => e,
    };
    let mut problems = vec![problem(&first, text)];
    let Ok(mut table) = text.parse::<toml::Table>() else {
        // a syntax error: nothing further can be read
        return (None, problems, Vec::new());
    };
    let mut cleaned = None;
    let mut taken: Vec<Vec<Step>> = Vec::new();
    let mut path = steps(first.path());
    while problems.len() < MAX_PROBLEMS {
        if !take_out(&mut table, &mut path, &taken) {
            break;
        }
        taken.push(path);
        match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(table.clone())) {
            Ok(c) => {
                cleaned = Some(c);
                break;
            }
            Err(e) => {
                path = steps(e.path());
                let missing = e.inner().message().starts_with("missing field");
                // A required key that was taken out for its own problem is not a new one.
                if !missing {
                    problems.push(Problem {
                        key: key_of(&original_path(&path, &taken)),
                        // The message alone: toml's rendering adds an `in KEY` line.
                        message: e.inner().message().to_string(),
                    });
                } else if path.is_empty() {
                    break;
                }
            }
        }
    }
    let taken = taken.iter().map(|t| key_of(t)).collect();
    (cleaned, problems, taken)
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Seq { index } => Some(Step::Index(*index)),
            _ => None,
        })
        .collect()
}

/// `upstream.servers[1]`.
fn key_of(path: &[Step]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A path in the table as it now is, in the file's numbering: array elements taken out before
/// shift the indices after them.
fn original_path(path: &[Step], taken: &[Vec<Step>]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for s in path {
        match s {
            Step::Index(i) => {
                let mut i = *i;
                let mut removed: Vec<usize> = taken
                    .iter()
                    .filter(|t| t.len() == out.len() + 1 && t[..out.len()] == out[..])
                    .filter_map(|t| match t.last() {
                        Some(Step::Index(r)) => Some(*r),
                        _ => None,
                    })
                    .collect();
                removed.sort_unstable();
                for r in removed {
                    if r <= i {
                        i += 1;
                    }
                }
                out.push(Step::Index(i));
            }
            other => out.push(other.clone()),
        }
    }
    out
}

/// Takes the value at `path` out of the table (a required key's absence is then reported as
/// its own problem, not a new one). A path into a missing key takes out its table instead.
/// `path` ends as the original path of what was taken. Returns false when nothing could be.
fn take_out(table: &mut toml::Table, path: &mut Vec<Step>, taken: &[Vec<Step>]) -> bool {
    let original = original_path(path, taken);
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut here = toml::Value::Table(std::mem::take(table));
    let mut cursor = &mut here;
    for p in parents {
        let next = match (p, cursor) {
            (Step::Key(k), toml::Value::Table(t)) => t.get_mut(k),
            (Step::Index(i), toml::Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cursor = n,
            None => {
                if let toml::Value::Table(t) = here {
                    *table = t;
                }
                return false;
            }
        }
    }
    let done = match (last, cursor) {
        (Step::Key(k), toml::Value::Table(t)) => t.remove(k).is_some(),
        (Step::Index(i), toml::Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    };
    if let toml::Value::Table(t) = here {
        *table = t;
    }
    *path = original;
    done
}

/// A serde error as a problem: its key path, its message, and its line where known.
fn problem(e: &serde_path_to_error::Error<toml::de::Error>, text: &str) -> Problem {
    let key = e.path().to_string();
    let inner = e.inner();
    let mut message = inner.message().to_string();
    if let Some(span) = inner.span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        message = format!("{message} (line {line})");
    }
    Problem {
        key: if key == "." { String::new() } else { key },
        message,
    }
}
