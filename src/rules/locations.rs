//! One site's locations, matched as nginx matches them: an exact `=` location wins; else the
//! longest prefix, unless regex locations (`~`, `~*`, in the order written) match after a
//! prefix that was not marked `^~`; `@name` locations are reached only by name.
//!
//! Paths are matched as nginx's `$uri`: percent-decoded, slashes merged, dot segments resolved
//! (`uri_of`).

use regex::Regex;
use std::borrow::Cow;
use std::collections::HashMap;

/// How a location's path is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Exact(String),
    /// `^~ /prefix`: a prefix that, as the longest, stops the regex search.
    PriorityPrefix(String),
    Prefix(String),
    Regex(String),
    RegexNoCase(String),
    Named(String),
}

impl Kind {
    /// Parses nginx's location syntax, e.g. `= /favicon.ico`, `~* \.(png|jpg)$`, `@django`.
    pub fn parse(text: &str) -> Result<Kind, String> {
        let t = text.trim();
        let rest = |p: &str| t[p.len()..].trim().to_string();
        let kind = if let Some(name) = t.strip_prefix('@') {
            Kind::Named(name.to_string())
        } else if t.starts_with("^~") {
            Kind::PriorityPrefix(rest("^~"))
        } else if t.starts_with("~*") {
            Kind::RegexNoCase(rest("~*"))
        } else if t.starts_with('~') {
            Kind::Regex(rest("~"))
        } else if t.starts_with('=') {
            Kind::Exact(rest("="))
        } else {
            Kind::Prefix(t.to_string())
        };
        match &kind {
            Kind::Named(n) if n.is_empty() => Err("`@` needs a name".into()),
            Kind::Exact(p) | Kind::PriorityPrefix(p) | Kind::Prefix(p) if !p.starts_with('/') => {
                Err(format!("`{t}`: a path must start with `/`"))
            }
            Kind::Regex(r) | Kind::RegexNoCase(r) if r.is_empty() => {
                Err(format!("`{t}`: the regular expression is empty"))
            }
            _ => Ok(kind),
        }
    }
}

/// A match: the location's index and, for a regex one, its capture groups' spans in the path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub index: usize,
    pub captures: Vec<Option<(usize, usize)>>,
    /// The length of the prefix matched (prefix locations), for `alias` and `proxy_path`.
    pub prefix_len: usize,
}

/// The compiled matcher of one site.
#[derive(Debug, Default)]
pub struct Matcher {
    exact: HashMap<String, usize>,
    /// Longest first: (prefix, index, `^~`).
    prefixes: Vec<(String, usize, bool)>,
    regexes: Vec<(Regex, usize)>,
    /// The same regexes as one automaton: a path that matches none is known in one pass.
    set: Option<regex::RegexSet>,
    named: HashMap<String, usize>,
}

impl Matcher {
    /// Builds the matcher from the locations' kinds in the order written; a regex that does
    /// not compile or a location written twice is an error naming its index.
    pub fn new(kinds: &[Kind]) -> Result<Matcher, (usize, String)> {
        let mut m = Matcher::default();
        for (i, k) in kinds.iter().enumerate() {
            let dup = |what: &str| Err((i, format!("{what} is given twice")));
            match k {
                Kind::Exact(p) => {
                    if m.exact.insert(p.clone(), i).is_some() {
                        return dup(&format!("`= {p}`"));
                    }
                }
                Kind::PriorityPrefix(p) | Kind::Prefix(p) => {
                    if m.prefixes.iter().any(|(q, _, _)| q == p) {
                        return dup(&format!("the prefix `{p}`"));
                    }
                    m.prefixes
                        .push((p.clone(), i, matches!(k, Kind::PriorityPrefix(_))));
                }
                Kind::Regex(r) | Kind::RegexNoCase(r) => {
                    let re = regex::RegexBuilder::new(r)
                        .case_insensitive(matches!(k, Kind::RegexNoCase(_)))
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| {
                            (
                                i,
                                format!(
                                    "`{r}` is not a regular expression authz-edge can run: {}",
                                    one_line(&e)
                                ),
                            )
                        })?;
                    m.regexes.push((re, i));
                }
                Kind::Named(n) => {
                    if m.named.insert(n.clone(), i).is_some() {
                        return dup(&format!("`@{n}`"));
                    }
                }
            }
        }
        // Stable: equal lengths cannot be equal prefixes (refused above).
        m.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        if m.regexes.len() > 1 {
            let patterns = m.regexes.iter().map(|(r, _)| r.as_str());
            let insensitive = m
                .regexes
                .iter()
                .map(|(_, i)| matches!(kinds[*i], Kind::RegexNoCase(_)));
            let texts: Vec<String> = patterns
                .zip(insensitive)
                .map(|(p, ci)| {
                    if ci {
                        format!("(?i:{p})")
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            m.set = regex::RegexSetBuilder::new(texts)
                .size_limit(1 << 22)
                .build()
                .ok();
        }
        Ok(m)
    }

    /// The location for `uri` (already `uri_of`), by nginx's precedence.
    pub fn find(&self, uri: &str) -> Option<Found> {
        if let Some(&index) = self.exact.get(uri) {
            return Some(Found {
                index,
                prefix_len: uri.len(),
                ..Found::default()
            });
        }
        let longest = self
            .prefixes
            .iter()
            .find(|(p, _, _)| uri.starts_with(p.as_str()));
        if let Some((p, index, true)) = longest {
            return Some(Found {
                index: *index,
                prefix_len: p.len(),
                ..Found::default()
            });
        }
        // The first regex in the order written that matches: the set says which, at once.
        let first = match &self.set {
            Some(set) => set.matches(uri).iter().next(),
            None => (!self.regexes.is_empty()).then_some(0),
        };
        for (re, index) in first.map_or(&[][..], |i| &self.regexes[i..]) {
            if let Some(c) = re.captures(uri) {
                let captures = (0..c.len())
                    .map(|g| c.get(g).map(|m| (m.start(), m.end())))
                    .collect();
                return Some(Found {
                    index: *index,
                    captures,
                    prefix_len: 0,
                });
            }
        }
        longest.map(|(p, index, _)| Found {
            index: *index,
            prefix_len: p.len(),
            ..Found::default()
        })
    }

    /// The `@name` location.
    pub fn named(&self, name: &str) -> Option<usize> {
        self.named.get(name).copied()
    }

    /// Regex locations, for the bench's report.
    pub fn regex_count(&self) -> usize {
        self.regexes.len()
    }
}

/// A regex error in one line (the crate's own spans several, with a caret under the pattern).
pub fn one_line(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
}

/// The path as nginx matches locations: `%XX` decoded, `//` merged, `.` and `..` resolved
/// (never above the root). Borrowed when there is nothing to do.
pub fn uri_of(path: &str) -> Cow<'_, str> {
    let b = path.as_bytes();
    let plain = memchr::memchr(b'%', b).is_none() && !path.contains("//") && !path.contains("/.");
    if plain {
        return Cow::Borrowed(path);
    }
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                decoded.push(h << 4 | l);
                i += 3;
            }
            (c, _, _) => {
                decoded.push(c);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&decoded);
    let mut out: Vec<&str> = Vec::new();
    let trailing = text.ends_with('/') || text.ends_with("/.") || text.ends_with("/..");
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut uri = String::with_capacity(text.len());
    for s in &out {
        uri.push('/');
        uri.push_str(s);
    }
    if trailing || uri.is_empty() {
        uri.push('/');
    }
    Cow::Owned(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(paths: &[&str]) -> Matcher {
        let kinds: Vec<Kind> = paths
            .iter()
            .map(|p| Kind::parse(p).expect("kind"))
            .collect();
        Matcher::new(&kinds).expect("matcher")
    }

    fn find(m: &Matcher, uri: &str) -> Option<usize> {
        m.find(uri).map(|f| f.index)
    }

    #[test]
    fn nginx_precedence() {
        // The example of nginx's documentation for `location`, A to E.
        let m = matcher(&[
            "= /",
            "/",
            "/documents/",
            "^~ /images/",
            r"~* \.(gif|jpg|jpeg)$",
        ]);
        assert_eq!(find(&m, "/"), Some(0));
        assert_eq!(find(&m, "/index.html"), Some(1));
        assert_eq!(find(&m, "/documents/document.html"), Some(2));
        assert_eq!(find(&m, "/images/1.gif"), Some(3));
        assert_eq!(find(&m, "/documents/1.jpg"), Some(4));
        assert_eq!(
            find(&m, "/documents/1.JPG"),
            Some(4),
            "~* is case-insensitive"
        );
        // Regexes in the order written, the first that matches.
        let m = matcher(&["/", r"~ ^/api/", r"~ ^/api/v2/", "@django"]);
        assert_eq!(find(&m, "/api/v2/x"), Some(1));
        assert_eq!(m.named("django"), Some(3));
        assert_eq!(
            find(&m, "@django"),
            None,
            "named ones are not matched by path"
        );
        // Nothing matches: nginx answers 404.
        let m = matcher(&["/static/", "= /favicon.ico"]);
        assert_eq!(find(&m, "/other"), None);
        assert_eq!(find(&m, "/favicon.ico"), Some(1));
        assert_eq!(find(&m, "/favicon.icon"), None);
        assert_eq!(m.find("/static/app.css").map(|f| f.prefix_len), Some(8));
    }

    #[test]
    fn captures_and_refusals() {
        let m = matcher(&[r"~ ^/media/(.+)$"]);
        let f = m.find("/media/a/b.png").expect("found");
        assert_eq!(f.captures, vec![Some((0, 14)), Some((7, 14))]);
        let bad = [Kind::parse("~ (").expect("kind")];
        assert_eq!(Matcher::new(&bad).map(|_| ()).unwrap_err().0, 0);
        let twice = [
            Kind::parse("/a").expect("kind"),
            Kind::parse("/a").expect("kind"),
        ];
        assert!(Matcher::new(&twice).unwrap_err().1.contains("twice"));
        assert!(Kind::parse("static/").is_err());
        assert!(Kind::parse("@").is_err());
        assert!(Kind::parse("~ ").is_err());
    }

    #[test]
    fn paths_are_matched_as_nginx_uri() {
        assert!(matches!(uri_of("/a/b"), Cow::Borrowed("/a/b")));
        assert_eq!(uri_of("/static/%61pp.css"), "/static/app.css");
        assert_eq!(uri_of("//admin//x"), "/admin/x");
        assert_eq!(uri_of("/static/../admin/"), "/admin/");
        assert_eq!(uri_of("/../../etc"), "/etc");
        assert_eq!(uri_of("/a/."), "/a/");
        assert_eq!(uri_of("/%2e%2e/x"), "/x");
    }
}
