//! Path -> route label: Django path patterns compiled into a segment trie, and a normaliser.
//!
//! Labels are bounded elsewhere (`metrics::RouteRegistry`); this module only decides which
//! template a path belongs to, without allocating on the request path.
//!
//! Longer than 400 lines only with its unit tests, which sit beside the code.

pub use crate::path_pattern::Pattern;
use crate::path_pattern::{is_uuid, Piece};
use std::cell::RefCell;

/// Whether every piece of a segment pattern matches the whole of `seg`.
fn segment_matches(pieces: &[Piece], seg: &str) -> bool {
    match pieces.split_first() {
        None => seg.is_empty(),
        Some((Piece::Lit(l), rest)) => seg
            .strip_prefix(l.as_str())
            .is_some_and(|s| segment_matches(rest, s)),
        Some((Piece::Conv(c), rest)) => {
            if rest.is_empty() {
                return c.matches_all(seg);
            }
            // A converter followed by more pieces: try every split, longest first.
            let Some(max) = c.longest_match(seg) else {
                return false;
            };
            (1..=max)
                .rev()
                .any(|n| seg.is_char_boundary(n) && segment_matches(rest, &seg[n..]))
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    /// Children keyed by a literal segment. A node has few of them, so a short vector with a
    /// length check before the bytes beats hashing the segment (measured: README, Performance).
    literal: Vec<(Box<str>, Node)>,
    /// Children whose segment has converters, tried in order after literals.
    dynamic: Vec<(Vec<Piece>, Node)>,
    /// Index of the pattern ending here.
    end: Option<usize>,
    /// Index of a pattern whose `<path:>` tail starts here.
    tail: Option<usize>,
}

/// Compiled `[[routes]]`: a trie over path segments, literal children first.
#[derive(Debug, Default)]
pub struct RouteMatcher {
    root: Node,
    patterns: Vec<Pattern>,
}

impl RouteMatcher {
    /// Builds the trie; the first of two identical patterns wins.
    pub fn new(patterns: Vec<Pattern>) -> Self {
        let mut root = Node::default();
        for (idx, p) in patterns.iter().enumerate() {
            let mut node = &mut root;
            for seg in &p.segments {
                node = match seg.as_slice() {
                    [Piece::Lit(l)] => literal_child(node, l),
                    [] => literal_child(node, ""),
                    pieces => {
                        let pos = node.dynamic.iter().position(|(p, _)| p == pieces);
                        let pos = pos.unwrap_or_else(|| {
                            node.dynamic.push((pieces.to_vec(), Node::default()));
                            node.dynamic.len() - 1
                        });
                        &mut node.dynamic[pos].1
                    }
                };
            }
            let slot = if p.tail_path {
                &mut node.tail
            } else {
                &mut node.end
            };
            slot.get_or_insert(idx);
        }
        RouteMatcher { root, patterns }
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// The index of the pattern that matches `path` (no query string), if any.
    pub fn find(&self, path: &str) -> Option<usize> {
        let rest = path.strip_prefix('/')?;
        find_in(&self.root, rest)
    }
}

/// The literal child `seg` of `node`, made when missing.
fn literal_child<'a>(node: &'a mut Node, seg: &str) -> &'a mut Node {
    let pos = match node.literal.iter().position(|(k, _)| &**k == seg) {
        Some(p) => p,
        None => {
            node.literal.push((seg.into(), Node::default()));
            node.literal.len() - 1
        }
    };
    &mut node.literal[pos].1
}

fn find_in(node: &Node, rest: &str) -> Option<usize> {
    let (seg, next) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let descend = |child: &Node| match next {
        Some(n) => find_in(child, n),
        None => child.end,
    };
    let child = node
        .literal
        .iter()
        .find(|(k, _)| k.len() == seg.len() && k.as_bytes() == seg.as_bytes());
    if let Some((_, child)) = child {
        if let Some(found) = descend(child) {
            return Some(found);
        }
    }
    for (pieces, child) in &node.dynamic {
        if segment_matches(pieces, seg) {
            if let Some(found) = descend(child) {
                return Some(found);
            }
        }
    }
    if node.tail.is_some() && !rest.is_empty() {
        return node.tail;
    }
    None
}

/// The most segments a normalised label keeps; deeper paths end in `/...`.
const MAX_SEGMENTS: usize = 8;
/// A segment longer than this is a token, whatever it holds.
const MAX_SEGMENT_LEN: usize = 48;

thread_local! {
    static NORMALISED: RefCell<String> = RefCell::new(String::with_capacity(256));
}

/// Turns a raw path into a template: ids, uuids, hashes and long tokens become placeholders.
///
/// Calls `f` with the result, written into a per-thread buffer so nothing is allocated.
pub fn with_normalised<R>(path: &str, f: impl FnOnce(&str) -> R) -> R {
    NORMALISED.with(|buf| {
        let mut out = buf.borrow_mut();
        out.clear();
        normalise_into(path, &mut out);
        f(&out)
    })
}

/// The normaliser itself, writing into `out`.
pub fn normalise_into(path: &str, out: &mut String) {
    let rest = path.strip_prefix('/').unwrap_or(path);
    out.push('/');
    for (i, seg) in rest.split('/').enumerate() {
        if i == MAX_SEGMENTS {
            out.push_str("/...");
            return;
        }
        if i > 0 {
            out.push('/');
        }
        out.push_str(placeholder(seg).unwrap_or(seg));
    }
}

fn placeholder(seg: &str) -> Option<&'static str> {
    if seg.is_empty() {
        return None;
    }
    let b = seg.as_bytes();
    if b.iter().all(u8::is_ascii_digit) {
        return Some("<int>");
    }
    if seg.len() == 36 && is_uuid(seg) {
        return Some("<uuid>");
    }
    if seg.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit) {
        return Some("<hash>");
    }
    if seg.len() > MAX_SEGMENT_LEN
        || !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Some("<token>");
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if seg.len() >= 20 && digits > 0 && digits * 4 >= seg.len() / 2 {
        // Long mixed letters and digits: an API key, a signed id, a base64 blob.
        return Some("<token>");
    }
    if digits > 0 && digits * 2 > seg.len() {
        // Mostly digits with a few letters: "123abc", "v2-9981".
        return Some("<id>");
    }
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    if seg.len() >= 5 && digits > 0 && letters > 0 && !seg.contains(['-', '_', '.']) {
        // Letters and digits mixed in one word: a short id or code ("Cnry42x"), not a name.
        return Some("<id>");
    }
    let upper = b.iter().any(u8::is_ascii_uppercase);
    let lower = b.iter().any(u8::is_ascii_lowercase);
    if seg.len() >= 12 && upper && lower && letters == seg.len() {
        // Random-looking mixed case with no separators: a token.
        return Some("<token>");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(pats: &[&str]) -> RouteMatcher {
        RouteMatcher::new(
            pats.iter()
                .map(|p| Pattern::parse(p).expect("valid pattern"))
                .collect(),
        )
    }

    fn label(m: &RouteMatcher, path: &str) -> Option<String> {
        m.find(path).map(|i| m.patterns()[i].text.clone())
    }

    #[test]
    fn converters_match_like_django() {
        let m = matcher(&[
            "/reports/<int:pk>/export/",
            "/reports/<slug:name>/",
            "/files/<path:rest>",
            "/u/<uuid:id>/",
            "/a/<str:x>/b/",
            "/",
        ]);
        assert_eq!(
            label(&m, "/reports/42/export/").as_deref(),
            Some("/reports/<int:pk>/export/")
        );
        assert_eq!(
            label(&m, "/reports/abc-1/").as_deref(),
            Some("/reports/<slug:name>/")
        );
        assert_eq!(label(&m, "/reports/4x/export/"), None);
        assert_eq!(
            label(&m, "/files/a/b/c.txt").as_deref(),
            Some("/files/<path:rest>")
        );
        assert_eq!(
            label(&m, "/u/123e4567-e89b-12d3-a456-426614174000/").as_deref(),
            Some("/u/<uuid:id>/")
        );
        assert_eq!(label(&m, "/u/123/"), None);
        assert_eq!(label(&m, "/a/x y/b/").as_deref(), Some("/a/<str:x>/b/"));
        assert_eq!(label(&m, "/").as_deref(), Some("/"));
        assert_eq!(
            label(&m, "/reports/42/export"),
            None,
            "trailing slash matters"
        );
    }

    #[test]
    fn literal_beats_converter_and_mixed_segments_work() {
        let m = matcher(&["/items/<str:x>/", "/items/new/", "/dl/<int:id>.csv"]);
        assert_eq!(label(&m, "/items/new/").as_deref(), Some("/items/new/"));
        assert_eq!(label(&m, "/items/old/").as_deref(), Some("/items/<str:x>/"));
        assert_eq!(label(&m, "/dl/12.csv").as_deref(), Some("/dl/<int:id>.csv"));
        assert_eq!(label(&m, "/dl/x.csv"), None);
    }

    #[test]
    fn bad_patterns_are_refused_with_reason() {
        assert!(Pattern::parse("reports/")
            .unwrap_err()
            .contains("start with"));
        assert!(Pattern::parse("/r/<float:x>/")
            .unwrap_err()
            .contains("float"));
        assert!(Pattern::parse("/r/<int:x/")
            .unwrap_err()
            .contains("unclosed"));
        assert!(Pattern::parse("/r/<path:x>/more/").is_err());
    }

    fn norm(p: &str) -> String {
        with_normalised(p, str::to_string)
    }

    #[test]
    fn normaliser_replaces_ids_and_tokens() {
        assert_eq!(norm("/reports/42/export/"), "/reports/<int>/export/");
        assert_eq!(
            norm("/u/123e4567-e89b-12d3-a456-426614174000/"),
            "/u/<uuid>/"
        );
        assert_eq!(norm("/c/0123456789abcdef0123/"), "/c/<hash>/");
        assert_eq!(norm("/k/AbC9dEf8GhI7jKl6MnO5pQ/"), "/k/<token>/");
        assert_eq!(norm("/x/%2e%2e/"), "/x/<token>/");
        assert_eq!(norm("/accounts/login/"), "/accounts/login/");
        assert_eq!(norm("/a/b/c/d/e/f/g/h/i/j"), "/a/b/c/d/e/f/g/h/...");
    }
}
