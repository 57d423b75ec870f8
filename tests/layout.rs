//! The shape of `src/`: a module imports only the layers before its own in `lib.rs`'s list (so
//! there is no import cycle between folders), every file says its job in `//!` lines, and a
//! file past 400 lines says why it is that long.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, lowest first, from `lib.rs`'s doc: the backticked names after "Layers".
fn order() -> Vec<String> {
    let lib = std::fs::read_to_string("src/lib.rs").expect("src/lib.rs");
    let doc: String = lib
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .skip_while(|l| !l.contains("Layers, lowest first"))
        .skip(1)
        .take_while(|l| l.trim() != "//!")
        .collect::<Vec<_>>()
        .join(" ");
    let list = doc.split(':').next_back().unwrap_or("");
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/relay/chunked.rs` -> `relay`).
fn top_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix("src").ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// The top-level modules a file names as `crate::NAME`, outside its `#[cfg(test)]` tail.
fn imports(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[test]
fn a_module_imports_only_the_layers_below_its_own() {
    let order = order();
    assert!(order.len() >= 10, "lib.rs lists the modules: {order:?}");
    let rank = |m: &str| order.iter().position(|o| o == m);
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let mut upward: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &files {
        let Some(top) = top_of(f) else { continue };
        let Some(mine) = rank(&top) else { continue }; // lib.rs, main.rs
        let text = std::fs::read_to_string(f).expect("read");
        for m in imports(&text) {
            match rank(&m) {
                Some(theirs) if theirs > mine => {
                    upward.entry(f.display().to_string()).or_default().push(m)
                }
                Some(_) => {}
                None => panic!(
                    "{} names crate::{m}, which lib.rs does not list",
                    f.display()
                ),
            }
        }
    }
    assert!(upward.is_empty(), "imports of a later layer: {upward:#?}");
}

#[test]
fn a_long_file_says_why() {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let mut silent = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let doc: Vec<&str> = text.lines().take_while(|l| l.starts_with("//!")).collect();
        assert!(
            !doc.is_empty(),
            "{} has no //! line saying its job",
            f.display()
        );
        let long = text.lines().count() > 400;
        if long && !doc.iter().any(|l| l.contains("Longer than 400 lines")) {
            silent.push(f.display().to_string());
        }
    }
    assert!(
        silent.is_empty(),
        "past 400 lines without a `Longer than 400 lines because …` note: {silent:?}"
    );
}
