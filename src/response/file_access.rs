//! File permissions checked before the proxy serves: the other "permission" failure.
//!
//! After a deploy, files often belong to the wrong user (a container build that ran as root, a
//! volume mounted read-only, a Kubernetes security context). Checked by `authz-edge check` and
//! at start-up, as the user the proxy runs as:
//!
//! - each `[[static]]` root must be a directory it can list and enter: otherwise an **error**
//!   (the proxy refuses to start: every file under it would be a 403);
//! - a sample of the files and folders below it must be readable: otherwise a **warning** per
//!   path (those files get 403 at run time, counted in `authz_edge_static_errors_total`);
//! - the file sink's directory must be writable, and its file if it exists: otherwise an
//!   **error**, as nginx refuses to start without its log files.
//!
//! Each problem is one line: the key, the path, the uid/gid the proxy runs as, the owner and
//! mode found, and the command that fixes it.

use crate::config::{Config, SinkType};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How many entries below a static root are looked at, at most.
const SAMPLE: usize = 200;
/// How many unreadable paths are reported per root before the rest are summed up.
const REPORTED: usize = 10;

/// Whether a problem stops the proxy from starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One path the proxy cannot use as it needs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub line: String,
}

/// The user the proxy runs as (effective uid and gid).
pub fn running_as() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Whether the running user may access `path` in `mode` (`libc::R_OK`, `W_OK`, `X_OK`).
fn may(path: &Path, mode: i32) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that lives across the call.
    unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, libc::AT_EACCESS) == 0 }
}

/// The owner and mode of `path`, as `owned by uid:gid mode 750`, or why they could not be read.
pub fn found(path: &Path) -> String {
    match std::fs::symlink_metadata(path) {
        Ok(m) => format!(
            "owned by {}:{} mode {:o}",
            m.uid(),
            m.gid(),
            m.mode() & 0o7777
        ),
        Err(e) => format!("not readable ({e})"),
    }
}

fn problem(severity: Severity, key: &str, path: &Path, what: &str, fix: String) -> Problem {
    let (uid, gid) = running_as();
    let word = match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    // A path that is not there says so; one that is there says what the user may not do.
    let line = match std::fs::symlink_metadata(path) {
        Err(_) => format!(
            "{word}: {key}: {} {what} (the proxy runs as uid {uid} gid {gid}); fix: {fix}",
            path.display()
        ),
        Ok(_) => format!(
            "{word}: {key}: {} {what} by uid {uid} gid {gid} (the proxy's user); it is {}; fix: {fix}",
            path.display(),
            found(path)
        ),
    };
    Problem { severity, line }
}

/// Every permission problem the config's paths have for the running user.
pub fn check(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, s) in config.statics.iter().enumerate() {
        check_static(&format!("static[{i}].root"), Path::new(&s.root), &mut out);
    }
    if config.sink.kind == SinkType::File {
        check_sink(Path::new(&config.sink.path), &mut out);
    }
    let temp = config
        .limits
        .body_temp_dir
        .as_ref()
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    if temp.is_dir() && !may(&temp, libc::W_OK | libc::X_OK) {
        let (uid, gid) = running_as();
        out.push(problem(
            Severity::Error,
            "limits.body_temp_dir",
            &temp,
            "cannot be written, so request bodies past limits.body_buffer_bytes would get 503",
            format!("chown {uid}:{gid} {}", temp.display()),
        ));
    }
    out
}

fn check_static(key: &str, root: &Path, out: &mut Vec<Problem>) {
    let (uid, gid) = running_as();
    let chown = |p: &Path| format!("chown -R {uid}:{gid} {}", p.display());
    if !root.is_dir() {
        // Missing altogether is the config's own error; a root we may not even stat is ours.
        if std::fs::metadata(root).is_err() && root.parent().is_some_and(|p| !may(p, libc::X_OK)) {
            out.push(problem(
                Severity::Error,
                key,
                root,
                "cannot be reached",
                chown(root),
            ));
        }
        return;
    }
    if !may(root, libc::R_OK | libc::X_OK) {
        out.push(problem(
            Severity::Error,
            key,
            root,
            "cannot be listed and entered",
            chown(root),
        ));
        return;
    }
    // A breadth-first sample of what lies below.
    let mut queue = vec![root.to_path_buf()];
    let (mut seen, mut bad) = (0usize, Vec::<PathBuf>::new());
    while let Some(dir) = queue.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if seen >= SAMPLE {
                break;
            }
            seen += 1;
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if may(&path, libc::R_OK | libc::X_OK) {
                    queue.insert(0, path);
                } else {
                    bad.push(path);
                }
            } else if kind.is_file() && !may(&path, libc::R_OK) {
                bad.push(path);
            }
        }
    }
    for p in bad.iter().take(REPORTED) {
        let fix = format!("{} (or chmod a+rX {})", chown(root), p.display());
        out.push(problem(Severity::Warning, key, p, "cannot be read", fix));
    }
    if bad.len() > REPORTED {
        out.push(Problem {
            severity: Severity::Warning,
            line: format!(
                "warning: {key}: {} more unreadable paths under {} (of {seen} looked at)",
                bad.len() - REPORTED,
                root.display()
            ),
        });
    }
}

fn check_sink(file: &Path, out: &mut Vec<Problem>) {
    let (uid, gid) = running_as();
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if file.exists() {
        if !may(file, libc::W_OK) {
            let fix = format!("chown {uid}:{gid} {}", file.display());
            out.push(problem(
                Severity::Error,
                "sink.path",
                file,
                "cannot be written",
                fix,
            ));
        }
        return;
    }
    if !dir.is_dir() {
        let fix = format!(
            "mkdir -p {} && chown {uid}:{gid} {}",
            dir.display(),
            dir.display()
        );
        out.push(problem(
            Severity::Error,
            "sink.path",
            &dir,
            "does not exist",
            fix,
        ));
    } else if !may(&dir, libc::W_OK | libc::X_OK) {
        let fix = format!("chown {uid}:{gid} {}", dir.display());
        out.push(problem(
            Severity::Error,
            "sink.path",
            &dir,
            "cannot be written",
            fix,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_roots_and_writable_sinks_are_fine() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("a.css"), b"x").expect("write");
        let mut out = Vec::new();
        check_static("static[0].root", dir.path(), &mut out);
        check_sink(&dir.path().join("d.jsonl"), &mut out);
        assert_eq!(out, Vec::new());
        check_sink(&dir.path().join("missing/d.jsonl"), &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].line.starts_with("error: sink.path: "),
            "{}",
            out[0].line
        );
        let (uid, gid) = running_as();
        let missing = dir.path().join("missing");
        assert_eq!(
            out[0].line,
            format!(
                "error: sink.path: {0} does not exist (the proxy runs as uid {uid} gid {gid}); fix: mkdir -p {0} && chown {uid}:{gid} {0}",
                missing.display()
            )
        );
    }
}
