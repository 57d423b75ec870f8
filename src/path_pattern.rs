//! Django's path syntax (`/reports/<int:pk>/export/`), parsed once as the config file is read
//! (`routes[].pattern`); `rules::routes` compiles the patterns into its matcher.

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
    pub fn longest_match(self, s: &str) -> Option<usize> {
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
    pub fn matches_all(self, s: &str) -> bool {
        self.longest_match(s) == Some(s.len())
    }
}

/// One piece of a segment: literal text or a converter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    Conv(Converter),
}

/// A parsed Django path pattern such as `/reports/<int:pk>/export/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern as written: it becomes the route label.
    pub text: String,
    /// Segments between slashes; a trailing slash gives a final empty segment.
    pub segments: Vec<Vec<Piece>>,
    /// The pattern ends with a `<path:...>` converter that swallows the rest.
    pub tail_path: bool,
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

/// Whether `s` is a UUID in its hyphenated form.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}
