//! Path -> route label: Django path patterns compiled into a segment trie, and a normaliser.
//!
//! Labels are bounded elsewhere (`metrics::RouteRegistry`); this module only decides which
//! template a path belongs to, without allocating on the request path.
//!
//! Longer than 400 lines only with its unit tests, which sit beside the code.

use std::cell::RefCell;

/// A Django path converter (`<int:pk>` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Converter {
    Str,
    Int,
    Slug,
    Uuid,
    /// Matches the rest of the path, slashes included; only as the last piece of a pattern.
    Path,
}

impl Converter {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "str" => Converter::Str,
            "int" => Converter::Int,
            "slug" => Converter::Slug,
            "uuid" => Converter::Uuid,
            "path" => Converter::Path,
            _ => return None,
        })
    }

    /// The longest prefix of `s` this converter accepts, or None when it accepts nothing.
    fn longest_match(self, s: &str) -> Option<usize> {
        let b = s.as_bytes();
        let n = match self {
            Converter::Int => b.iter().take_while(|c| c.is_ascii_digit()).count(),
            Converter::Slug => b
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-' || **c == b'_')
                .count(),
            Converter::Str => b.iter().take_while(|c| **c != b'/').count(),
            Converter::Path => b.len(),
            Converter::Uuid => {
                if b.len() >= 36 && is_uuid(&s[..36]) {
                    36
                } else {
                    0
                }
            }
        };
        (n > 0).then_some(n)
    }

    /// Whether this converter matches exactly all of `s`.
    fn matches_all(self, s: &str) -> bool {
        self.longest_match(s) == Some(s.len())
    }
}

/// One piece of a segment: literal text or a converter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Conv(Converter),
}

/// A parsed Django path pattern such as `/reports/<int:pk>/export/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern as written: it becomes the route label.
    pub text: String,
    /// Segments between slashes; a trailing slash gives a final empty segment.
    segments: Vec<Vec<Piece>>,
    /// The pattern ends with a `<path:...>` converter that swallows the rest.
    tail_path: bool,
}

impl Pattern {
    /// Parses a pattern in Django's path syntax; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("`{text}` must start with `/`"));
        }
        if text.len() > 200 {
            return Err("is longer than 200 characters".into());
        }
        let mut segments = Vec::new();
        let mut tail_path = false;
        let parts: Vec<&str> = text[1..].split('/').collect();
        for (i, seg) in parts.iter().enumerate() {
            let mut pieces = Vec::new();
            let mut rest = *seg;
            while !rest.is_empty() {
                if let Some(start) = rest.find('<') {
                    if start > 0 {
                        pieces.push(Piece::Lit(rest[..start].to_string()));
                    }
                    let end = rest[start..]
                        .find('>')
                        .ok_or_else(|| format!("`{text}` has an unclosed `<`"))?
                        + start;
                    let inner = &rest[start + 1..end];
                    let (conv, name) = match inner.split_once(':') {
                        Some((c, n)) => (c, n),
                        None => ("str", inner),
                    };
                    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                        return Err(format!("`{text}` has a bad parameter name in `<{inner}>`"));
                    }
                    let conv = Converter::parse(conv).ok_or_else(|| {
                        format!(
                            "`{text}` uses unknown converter `{conv}`; use str, int, slug, uuid or path"
                        )
                    })?;
                    if conv == Converter::Path {
                        if i != parts.len() - 1 || end != rest.len() - 1 || !pieces.is_empty() {
                            return Err(format!(
                                "`{text}`: a <path:...> converter must be a whole final segment"
                            ));
                        }
                        tail_path = true;
                    }
                    pieces.push(Piece::Conv(conv));
                    rest = &rest[end + 1..];
                } else {
                    if rest.contains('>') {
                        return Err(format!("`{text}` has a `>` without `<`"));
                    }
                    pieces.push(Piece::Lit(rest.to_string()));
                    rest = "";
                }
            }
            if tail_path {
                break;
            }
            segments.push(pieces);
        }
        Ok(Pattern {
            text: text.to_string(),
            segments,
            tail_path,
        })
    }
}

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

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
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
