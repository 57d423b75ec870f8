//! nginx's configuration syntax, read as nginx reads it: directives of words and quoted
//! strings ending in `;` or opening a `{ … }` block, `#` comments, `\` escapes, `${var}`
//! kept inside a word, and `include` followed (globs in the last part of the path; relative
//! paths from the directory of the file that includes them).

use std::path::{Path, PathBuf};

/// One directive with where it was written.
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Option<Vec<Directive>>,
    pub file: std::sync::Arc<str>,
    pub line: usize,
}

impl Directive {
    /// `FILE:LINE`, as the report prints it.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    pub fn arg(&self, i: usize) -> &str {
        self.args.get(i).map_or("", String::as_str)
    }

    /// The directives of its block (none for a simple directive).
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Why a file could not be read.
#[derive(Debug)]
pub struct ParseError(pub String);

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Semi,
    Open,
    Close,
}

/// Includes followed at most this deep (nginx has no limit; a loop would never end).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads `path` and every file it includes.
pub fn read(path: &Path) -> Result<Vec<Directive>, ParseError> {
    read_depth(path, 0)
}

/// Reads nginx configuration text named `file`, without following its includes.
pub fn parse_text(text: &str, file: &str) -> Result<Vec<Directive>, ParseError> {
    let file: std::sync::Arc<str> = file.into();
    let tokens = tokens(text).map_err(|(line, m)| ParseError(format!("{file}:{line}: {m}")))?;
    let mut at = 0;
    // Past the depth limit: an include is kept as written, not followed.
    directives(
        &tokens,
        &mut at,
        &file,
        Path::new("."),
        MAX_INCLUDE_DEPTH + 1,
        false,
    )
}

fn read_depth(path: &Path, depth: usize) -> Result<Vec<Directive>, ParseError> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(ParseError(format!(
            "{}: includes nested too deep",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ParseError(format!("{}: {e}", path.display())))?;
    let file: std::sync::Arc<str> = path.display().to_string().into();
    let tokens = tokens(&text).map_err(|(line, m)| ParseError(format!("{file}:{line}: {m}")))?;
    let mut at = 0;
    let dir = path.parent().unwrap_or(Path::new("."));
    let list = directives(&tokens, &mut at, &file, dir, depth, false)?;
    Ok(list)
}

/// The text as tokens with their lines.
fn tokens(text: &str) -> Result<Vec<(Token, usize)>, (usize, String)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            ';' | '{' | '}' => {
                chars.next();
                let t = match c {
                    ';' => Token::Semi,
                    '{' => Token::Open,
                    _ => Token::Close,
                };
                out.push((t, line));
            }
            '"' | '\'' => {
                let start = line;
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => return Err((start, format!("a {c}-quoted string is not closed"))),
                        Some('\\') => match chars.next() {
                            Some(e) if e == c || e == '\\' => word.push(e),
                            Some('n') => word.push('\n'),
                            Some('t') => word.push('\t'),
                            Some('r') => word.push('\r'),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => return Err((start, "a string ends in `\\`".into())),
                        },
                        Some(q) if q == c => break,
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            word.push(ch);
                        }
                    }
                }
                out.push((Token::Word(word), start));
            }
            _ => {
                let mut word = String::new();
                let mut prev = '\0';
                while let Some(&ch) = chars.peek() {
                    let brace_of_variable = ch == '{' && prev == '$';
                    let in_variable = ch == '}' && word.contains("${") && !word.ends_with('}');
                    if ch.is_whitespace()
                        || ch == ';'
                        || ((ch == '{' || ch == '}') && !brace_of_variable && !in_variable)
                    {
                        break;
                    }
                    chars.next();
                    if ch == '\\' {
                        if let Some(e) = chars.next() {
                            word.push('\\');
                            word.push(e);
                            prev = e;
                            continue;
                        }
                    }
                    word.push(ch);
                    prev = ch;
                }
                out.push((Token::Word(word), line));
            }
        }
    }
    Ok(out)
}

fn directives(
    tokens: &[(Token, usize)],
    at: &mut usize,
    file: &std::sync::Arc<str>,
    dir: &Path,
    depth: usize,
    in_block: bool,
) -> Result<Vec<Directive>, ParseError> {
    let err = |line: usize, m: &str| ParseError(format!("{file}:{line}: {m}"));
    let mut out = Vec::new();
    while let Some((t, line)) = tokens.get(*at) {
        match t {
            Token::Close if in_block => {
                *at += 1;
                return Ok(out);
            }
            Token::Close => return Err(err(*line, "unexpected `}`")),
            Token::Semi | Token::Open => return Err(err(*line, "a directive has no name")),
            Token::Word(name) => {
                let line = *line;
                *at += 1;
                let mut args = Vec::new();
                let block = loop {
                    match tokens.get(*at) {
                        None => {
                            return Err(err(line, &format!("`{name}` is not ended by `;` or `{{`")))
                        }
                        Some((Token::Word(w), _)) => {
                            args.push(w.clone());
                            *at += 1;
                        }
                        Some((Token::Semi, _)) => {
                            *at += 1;
                            break None;
                        }
                        Some((Token::Open, _)) => {
                            *at += 1;
                            break Some(directives(tokens, at, file, dir, depth, true)?);
                        }
                        Some((Token::Close, l)) => {
                            return Err(err(*l, &format!("`{name}` is not ended by `;`")))
                        }
                    }
                };
                if name == "include" && block.is_none() && depth <= MAX_INCLUDE_DEPTH {
                    let included = include(dir, args.first().map_or("", String::as_str), depth);
                    match included {
                        Some(Ok(list)) => {
                            out.push(Directive {
                                name: name.clone(),
                                args,
                                block: Some(list),
                                file: file.clone(),
                                line,
                            });
                        }
                        Some(Err(e)) => return Err(e),
                        // Not found (`mime.types` beside a distribution's nginx): kept as
                        // written, for the report.
                        None => out.push(Directive {
                            name: name.clone(),
                            args,
                            block: None,
                            file: file.clone(),
                            line,
                        }),
                    }
                    continue;
                }
                out.push(Directive {
                    name: name.clone(),
                    args,
                    block,
                    file: file.clone(),
                    line,
                });
            }
        }
    }
    if in_block {
        return Err(ParseError(format!("{file}: a block is not closed by `}}`")));
    }
    Ok(out)
}

/// The directives of the files `pattern` names (`None` when no file matches).
fn include(dir: &Path, pattern: &str, depth: usize) -> Option<Result<Vec<Directive>, ParseError>> {
    let path = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        dir.join(pattern)
    };
    let name = path.file_name()?.to_string_lossy().into_owned();
    let files: Vec<PathBuf> = if name.contains('*') {
        let parent = path.parent()?;
        let (head, tail) = name.split_once('*')?;
        let mut found: Vec<PathBuf> = std::fs::read_dir(parent)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().map(|n| n.to_string_lossy()).is_some_and(|n| {
                    n.starts_with(head) && n.ends_with(tail) && n.len() >= head.len() + tail.len()
                })
            })
            .collect();
        found.sort();
        found
    } else if path.is_file() {
        vec![path]
    } else {
        return None;
    };
    let mut all = Vec::new();
    for f in files {
        match read_depth(&f, depth + 1) {
            Ok(list) => all.extend(list),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Directive> {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("nginx.conf");
        std::fs::write(&p, text).expect("write");
        read(&p).expect("parses")
    }

    #[test]
    fn words_strings_blocks_and_lines() {
        let d = parse(
            "# comment\nhttp {\n  add_header X-A \"a; b\" always; # trailing\n  location ~* \"\\.(png|jpg){1}$\" { return 301 https://${host}$request_uri; }\n  set $x 'it\\'s';\n}\n",
        );
        assert_eq!(d.len(), 1);
        let http = d[0].children();
        assert_eq!(http[0].name, "add_header");
        assert_eq!(http[0].args, ["X-A", "a; b", "always"]);
        assert_eq!(http[0].line, 3);
        assert_eq!(http[1].args, ["~*", "\\.(png|jpg){1}$"]);
        assert_eq!(
            http[1].children()[0].args,
            ["301", "https://${host}$request_uri"]
        );
        assert_eq!(http[2].args, ["$x", "it's"]);
    }

    #[test]
    fn includes_are_followed_with_globs() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("sites")).expect("mkdir");
        std::fs::write(dir.path().join("sites/b.conf"), "server { listen 81; }\n").expect("w");
        std::fs::write(dir.path().join("sites/a.conf"), "server { listen 80; }\n").expect("w");
        let main = dir.path().join("nginx.conf");
        std::fs::write(
            &main,
            "http {\ninclude mime.types;\ninclude sites/*.conf;\n}\n",
        )
        .expect("w");
        let d = read(&main).expect("parses");
        let http = d[0].children();
        assert!(
            http[0].block.is_none(),
            "mime.types not found: kept for the report"
        );
        let servers = http[1].children();
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].children()[0].args, ["80"]);
        assert!(servers[1].file.ends_with("b.conf"));
    }

    #[test]
    fn directives_without_arguments_convert_without_a_panic() {
        // Found by the nginx_config fuzz target: `server;` in an upstream block.
        for text in [
            "http { upstream u { server; keepalive; } server { listen; location { proxy_pass; } } }",
            "server { listen 80; return; error_page; add_header; allow; try_files; rewrite; }",
            "events { worker_connections; } http { gzip_types; client_max_body_size; }",
        ] {
            let d = parse_text(text, "f.conf").expect("parses");
            let import = crate::import_nginx::convert_all(&d, false);
            assert!(import.config.parse::<toml::Table>().is_ok(), "{text}");
            assert_eq!(import.code, 3, "{text}: {:?}", import.report);
        }
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("bad.conf");
        for (text, want) in [
            ("http {\n listen 80\n}\n", ":3:"),
            ("server {\n", "not closed"),
            ("}\n", ":1: unexpected"),
            ("add_header X \"open;\n", ":1:"),
        ] {
            std::fs::write(&p, text).expect("w");
            let e = read(&p).expect_err(text).0;
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
