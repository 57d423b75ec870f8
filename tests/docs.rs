//! The README and the book (`docs/src`): every relative link leads to a file that exists, and
//! an anchor to a heading in it; every full config example (a TOML block with `[upstream]`)
//! passes `authz-edge check`, the files it names (certificates, static roots) made up for it.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The README and the book's chapters.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![PathBuf::from("README.md")];
    let mut book: Vec<PathBuf> = std::fs::read_dir("docs/src")
        .expect("docs/src")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    book.sort();
    pages.extend(book);
    pages
}

/// Text outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fence = false;
    text.lines()
        .filter(|l| {
            if l.starts_with("```") {
                fence = !fence;
                return false;
            }
            !fence
        })
        .collect()
}

/// GitHub's and mdBook's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(page: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(page).unwrap_or_default();
    prose(&text)
        .into_iter()
        .filter(|l| l.starts_with('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// The targets of `[text](target)` links in a line.
fn links(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let end = after.find(')').unwrap_or(after.len());
        out.push(after[..end].to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("read");
        let dir = page.parent().unwrap_or(Path::new("."));
        for line in prose(&text) {
            for target in links(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let file = if path.is_empty() {
                    page.clone()
                } else {
                    dir.join(path)
                };
                if !file.exists() {
                    broken.push(format!("{}: {target}: no such file", page.display()));
                    continue;
                }
                let is_md = file.extension().is_some_and(|e| e == "md");
                if !anchor.is_empty() && is_md && !anchors(&file).contains(anchor) {
                    broken.push(format!("{}: {target}: no such heading", page.display()));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} links found");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_book_lists_every_chapter_and_the_readme_stays_a_front_page() {
    let summary = std::fs::read_to_string("docs/src/SUMMARY.md").expect("SUMMARY.md");
    for page in pages().iter().skip(1) {
        let name = page.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("({name})")),
                "{name} is not in SUMMARY.md"
            );
        }
    }
    let readme = std::fs::read_to_string("README.md").expect("README");
    assert!(
        readme.lines().count() <= 300,
        "README.md: {} lines",
        readme.lines().count()
    );
}

#[test]
fn every_full_config_example_passes_check() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_pem, _) = self_signed_tls(dir.path(), "");
    let mut examples = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("read");
        for (i, block) in text.split("```toml\n").skip(1).enumerate() {
            let block = block.split("```").next().unwrap_or("");
            if !block.contains("[upstream]") {
                continue;
            }
            examples += 1;
            // The files an example names are made up here: a certificate and a key, and
            // directories for static roots.
            let mut config = String::new();
            for line in block.lines() {
                let key = line.split('=').next().unwrap_or("").trim();
                let value = line.split('"').nth(1).unwrap_or("");
                let made = match key {
                    "cert" => dir.path().join("cert.pem").display().to_string(),
                    "key" => dir.path().join("key.pem").display().to_string(),
                    "root" | "alias" if value.starts_with('/') => {
                        let d = dir.path().join(format!("root{examples}{i}"));
                        std::fs::create_dir_all(&d).expect("dir");
                        d.display().to_string()
                    }
                    _ => String::new(),
                };
                match made.is_empty() {
                    true => config.push_str(line),
                    false => config.push_str(&line.replacen(value, &made, 1)),
                }
                config.push('\n');
            }
            let file = dir.path().join(format!("example-{examples}.toml"));
            std::fs::write(&file, &config).expect("write");
            let out = Command::new(bin())
                .args(["check", "--config"])
                .arg(&file)
                .output()
                .expect("check");
            assert!(
                out.status.success(),
                "{} example {}:\n{config}\n{}",
                page.display(),
                i + 1,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(examples >= 2, "{examples} full config examples");
}

#[test]
fn every_alert_s_runbook_is_a_heading_of_the_book() {
    let rules = std::fs::read_to_string("deploy/prometheus/authz-edge.rules.yml").expect("rules");
    let headings = anchors(Path::new("docs/src/findings.md"));
    let mut urls = 0;
    for line in rules.lines().filter(|l| l.contains("runbook_url:")) {
        urls += 1;
        let anchor = line.rsplit('#').next().unwrap_or("").trim_end_matches('"');
        assert!(
            line.contains("/docs/src/findings.md#") && headings.contains(anchor),
            "{line}: no such heading in docs/src/findings.md"
        );
    }
    assert!(urls >= 10, "{urls} runbook URLs");
}
