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

/// The top-level module a file of `src/` belongs to (`src/upstream/chunked.rs` -> `upstream`).
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

#[test]
fn a_file_name_stands_in_one_folder() {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name != "mod.rs" && name != "tests.rs" {
            seen.entry(name.to_string())
                .or_default()
                .push(f.display().to_string());
        }
    }
    seen.retain(|_, places| places.len() > 1);
    assert!(seen.is_empty(), "one name, two jobs: {seen:#?}");
}

/// Lines of `src/` (outside `#[cfg(test)]` tails) that contain `needle`, as `path:line`.
fn lines_with(needle: &str) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let mut out = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
        for (i, line) in code.lines().enumerate() {
            let code_part = line.split("//").next().unwrap_or("");
            if code_part.contains(needle) {
                out.push(format!("{}:{}", f.display(), i + 1));
            }
        }
    }
    out
}

#[test]
fn one_place_gives_a_connection_back_and_one_reads_django_s_head() {
    let back = lines_with(".give_back(");
    assert_eq!(
        back.len(),
        1,
        "connections go back to the pool from: {back:?}"
    );
    assert!(
        back[0].starts_with("src/upstream/response_body.rs"),
        "{back:?}"
    );
    let put: Vec<String> = lines_with(".put(")
        .into_iter()
        .filter(|l| !l.starts_with("src/upstream/pool.rs"))
        .collect();
    assert!(put.is_empty(), "pool.put outside the pool: {put:?}");
    let parsers: Vec<String> = lines_with("httparse::Response::new(");
    assert_eq!(
        parsers.len(),
        1,
        "Django's response heads are parsed in: {parsers:?}"
    );
    assert!(parsers[0].starts_with("src/upstream/response_head.rs"));
}
