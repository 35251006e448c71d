//! Turns keepalived.conf text into tokens, following `include` lines into other files.
//! Each line first goes through [`crate::expand`] (conditional lines, parameters, sequences);
//! the tokens of what comes out keep the locations of the text they were made from.
//!
//! The rules are keepalived's: `#` and `!` start a comment anywhere outside double quotes
//! (`\#` and `\!` escape them), a backslash at the end of a line continues it, `{` and `}`
//! are tokens even when glued to a word, and double quotes keep spaces inside one word.
//! Backslashes inside quotes are kept as written (so `\"` does not end the string) because
//! scripts split their own arguments later, the way keepalived does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::expand::{Expander, Line, Sink};
use crate::model::Location;

/// How deep `include` may nest before we assume a loop the cycle check could not see.
const MAX_INCLUDE_DEPTH: usize = 16;

/// How many files one configuration may read in total, so repeated includes cannot
/// multiply without bound.
const MAX_FILES: usize = 1000;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A word, with quotes removed.
    Word {
        /// The text.
        text: String,
        /// Whether any part of it was in double quotes.
        quoted: bool,
    },
    /// `{`.
    Open,
    /// `}`.
    Close,
    /// End of a (logical) line that had at least one token.
    Eol,
}

/// A token and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub loc: Location,
    /// Characters the token covers in the source line (for carets).
    pub width: u32,
}

/// The text of every file read, by line, so diagnostics can quote the line they point at.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    files: HashMap<PathBuf, Vec<String>>,
}

impl Sources {
    fn add(&mut self, file: &Path, text: &str) {
        let lines = text
            .split('\n')
            .map(|l| l.trim_end_matches('\r').to_owned());
        self.files.insert(file.to_path_buf(), lines.collect());
    }

    /// Fills in `source_line` of each diagnostic from the file it points into.
    pub fn attach(&self, diagnostics: &mut [Diagnostic]) {
        for d in diagnostics {
            if d.source_line.is_some() {
                continue;
            }
            let line = (d.location.line as usize).checked_sub(1);
            d.source_line = line.and_then(|n| {
                self.files
                    .get(&*d.location.file)
                    .and_then(|lines| lines.get(n))
                    .cloned()
            });
        }
    }
}

/// The tokens of a file with its includes spliced in, plus what went wrong on the way.
#[derive(Debug, Default)]
pub(crate) struct Lexed {
    pub tokens: Vec<Token>,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
    /// Files read so far, including the top-level one.
    files_read: usize,
}

/// Tokenizes `text` (the contents of `file`) and every file it includes, applying
/// keepalived's conditional lines, parameters and sequences with `config_id`.
pub(crate) fn lex_with_includes(text: &str, file: &Path, config_id: Option<&str>) -> Lexed {
    read_text(text, file, config_id, true).0
}

/// Tokenizes `text` alone, leaving its `include` lines unfollowed (they then read as an
/// unknown keyword): for text whose includes must not touch the filesystem.
pub(crate) fn lex_alone(text: &str, file: &Path, config_id: Option<&str>) -> Lexed {
    read_text(text, file, config_id, false).0
}

/// The paths the `include` lines of `text` name once its conditionals and parameters are
/// applied, braces expanded, without reading anything (a pattern with too many alternatives
/// is left out: [`lex_with_includes`] refuses it unread).
pub(crate) fn include_paths(text: &str, file: &Path, config_id: Option<&str>) -> Vec<String> {
    read_text(text, file, config_id, false).1
}

/// Reads `text` through the expander, following `include` lines when `follow`; returns the
/// tokens and diagnostics, and the include patterns met without following them.
fn read_text(
    text: &str,
    file: &Path,
    config_id: Option<&str>,
    follow: bool,
) -> (Lexed, Vec<String>) {
    let mut out = Lexed::default();
    let mut reader = Reader {
        out: &mut out,
        stack: Vec::new(),
        follow,
        includes: Vec::new(),
    };
    if follow {
        if let Ok(canonical) = file.canonicalize() {
            reader.stack.push(canonical);
        }
    }
    let mut expander = Expander::new(config_id.map(str::to_owned));
    reader.read(&mut expander, text, file);
    let includes = std::mem::take(&mut reader.includes);
    out.diagnostics.append(&mut expander.diagnostics);
    (out, includes)
}

/// Receives the lines the expander lets through: tokenizes them, or follows them when they
/// are `include` lines.
struct Reader<'a> {
    out: &'a mut Lexed,
    /// Files being read (canonical), to refuse include loops.
    stack: Vec<PathBuf>,
    /// Whether `include` lines are followed (else they stay tokens, their patterns noted).
    follow: bool,
    includes: Vec<String>,
}

impl Reader<'_> {
    fn read(&mut self, expander: &mut Expander, text: &str, file: &Path) {
        self.out.files_read += 1;
        self.out.sources.add(file, text);
        expander.file(text, file, self);
        if self
            .out
            .tokens
            .last()
            .is_some_and(|t| t.kind != TokenKind::Eol)
        {
            let loc = self
                .out
                .tokens
                .last()
                .map(|t| t.loc.clone())
                .unwrap_or_default();
            self.out.tokens.push(Token {
                kind: TokenKind::Eol,
                loc,
                width: 1,
            });
        }
    }
}

impl Sink for Reader<'_> {
    fn line(&mut self, expander: &mut Expander, line: Line) {
        let mut diagnostics = Vec::new();
        let mut tokens = lex_one(&line.string(), Path::new(""), &mut diagnostics);
        for t in &mut tokens {
            let start = t.loc.column.saturating_sub(1) as usize;
            (t.loc, t.width) = line.span(start, start + t.width as usize);
        }
        for d in &mut diagnostics {
            let start = d.location.column.saturating_sub(1) as usize;
            (d.location, d.width) = line.span(start, start + d.width as usize);
        }
        self.out.diagnostics.extend(diagnostics);
        let is_include = matches!(tokens.first().map(|t| &t.kind),
            Some(TokenKind::Word { text, quoted: false }) if text == "include");
        if !is_include {
            self.out.tokens.extend(tokens);
            return;
        }
        let include = tokens[0].clone();
        let patterns: Vec<(String, Token)> = tokens[1..]
            .iter()
            .filter_map(|t| match &t.kind {
                TokenKind::Word { text, .. } => Some((text.clone(), t.clone())),
                _ => None,
            })
            .collect();
        if !self.follow {
            for (pattern, _) in &patterns {
                self.includes
                    .extend(expand_braces(pattern).unwrap_or_default());
            }
            self.out.tokens.extend(tokens);
            return;
        }
        if patterns.is_empty() {
            self.out.diagnostics.push(Diagnostic::error(
                include.loc.clone(),
                include.width,
                "`include` expects a file name or pattern, found end of line",
            ));
        }
        let including = line.file.clone();
        for (pattern, token) in patterns {
            self.include_pattern(expander, &pattern, &token, &including);
        }
    }
}

impl Reader<'_> {
    fn include_pattern(
        &mut self,
        expander: &mut Expander,
        pattern: &str,
        token: &Token,
        including: &Path,
    ) {
        let err = |out: &mut Lexed, msg: String| {
            out.diagnostics
                .push(Diagnostic::error(token.loc.clone(), token.width, msg));
        };
        let out = &mut *self.out;
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            err(
                out,
                format!("`include` nested deeper than {MAX_INCLUDE_DEPTH} files; is there a loop?"),
            );
            return;
        }
        let dir = including.parent().unwrap_or(Path::new(""));
        let mut files = Vec::new();
        let Some(alternatives) = expand_braces(pattern) else {
            err(
                out,
                format!("`include` pattern `{pattern}` expands to more than {MAX_BRACE_EXPANSIONS} alternatives"),
            );
            return;
        };
        for alternative in alternatives {
            let full = if Path::new(&alternative).is_absolute() {
                PathBuf::from(&alternative)
            } else {
                dir.join(&alternative)
            };
            let Some(full_str) = full.to_str() else {
                err(
                    out,
                    format!("`include` pattern `{pattern}` is not valid UTF-8"),
                );
                return;
            };
            match glob::glob(full_str) {
                Ok(paths) => {
                    let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                    found.sort();
                    files.extend(found.into_iter().filter(|p| !p.is_dir()));
                }
                Err(e) => {
                    err(
                        out,
                        format!("`include` pattern `{pattern}` is not a valid glob: {e}"),
                    );
                    return;
                }
            }
        }
        if files.is_empty() {
            out.diagnostics.push(Diagnostic::warning(
                token.loc.clone(),
                token.width,
                format!(
                    "`include {pattern}` matches no file (looked in {}); nothing included",
                    if dir.as_os_str().is_empty() {
                        Path::new(".").display()
                    } else {
                        dir.display()
                    }
                ),
            ));
            return;
        }
        for path in files {
            if self.out.files_read >= MAX_FILES {
                err(
                    self.out,
                    format!(
                        "`include` would read more than {MAX_FILES} files in total; not reading {}",
                        path.display()
                    ),
                );
                return;
            }
            let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
            if self.stack.contains(&canonical) {
                err(
                    self.out,
                    format!(
                        "`include` of {} loops back to a file already being read",
                        path.display()
                    ),
                );
                continue;
            }
            let text = match read_config_file(&path) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => {
                    err(
                        self.out,
                        format!("cannot read included file {}: {e}", path.display()),
                    );
                    continue;
                }
            };
            self.stack.push(canonical);
            self.read(expander, &text, &path);
            self.stack.pop();
        }
    }
}

/// Largest configuration file read: far above any real one, far below what would hurt.
pub const MAX_CONFIG_FILE: u64 = 64 << 20;

/// Reads a configuration file, refusing what is not a regular file (a device or a named pipe
/// matched by an `include` glob would never end) or is larger than [`MAX_CONFIG_FILE`].
pub fn read_config_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    if metadata.len() > MAX_CONFIG_FILE {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("larger than {} MiB", MAX_CONFIG_FILE >> 20),
        ));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_CONFIG_FILE + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Expands csh-style `{a,b}` alternatives in an include pattern (keepalived passes
/// `GLOB_BRACE` to glob(3); the glob crate does not know braces). At most
/// [`MAX_BRACE_EXPANSIONS`] patterns come out: beyond that, `None`.
fn expand_braces(pattern: &str) -> Option<Vec<String>> {
    let mut done = Vec::new();
    let mut todo = vec![pattern.to_owned()];
    while let Some(p) = todo.pop() {
        match first_brace_group(&p) {
            None => done.push(p),
            Some((prefix, alternatives, suffix)) => {
                for alternative in alternatives.iter().rev() {
                    todo.push(format!("{prefix}{alternative}{suffix}"));
                }
            }
        }
        if done.len() + todo.len() > MAX_BRACE_EXPANSIONS {
            return None;
        }
    }
    Some(done)
}

/// Bounds the work a brace pattern like `{a,b}{a,b}{a,b}...` can cause.
const MAX_BRACE_EXPANSIONS: usize = 256;

/// Splits `pre{a,b{c,d}}post` into `pre`, `["a", "b{c,d}"]` and `post`.
fn first_brace_group(pattern: &str) -> Option<(String, Vec<String>, String)> {
    let chars: Vec<char> = pattern.chars().collect();
    let open = chars.iter().position(|&c| c == '{')?;
    let mut depth = 0usize;
    let mut pieces = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate().skip(open) {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    pieces.push(current);
                    let prefix = chars[..open].iter().collect();
                    let suffix = chars[i + 1..].iter().collect();
                    return Some((prefix, pieces, suffix));
                }
            }
            ',' if depth == 1 => {
                pieces.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    None
}

/// Tokenizes one file without following includes. `include` lines keep braces inside
/// their words so that brace patterns survive.
fn lex_one(text: &str, file: &Path, diags: &mut Vec<Diagnostic>) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    let mut include_line = false;
    let shared: std::sync::Arc<Path> = file.into();
    let loc = |line: u32, column: u32| Location {
        file: shared.clone(),
        line,
        column,
    };
    let push_eol = |tokens: &mut Vec<Token>, line: u32, col: u32| {
        if tokens.last().is_some_and(|t| t.kind != TokenKind::Eol) {
            tokens.push(Token {
                kind: TokenKind::Eol,
                loc: loc(line, col),
                width: 1,
            });
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                push_eol(&mut tokens, line, col);
                include_line = false;
                i += 1;
                line += 1;
                col = 1;
            }
            ' ' | '\t' | '\r' | '\x0b' | '\x0c' => {
                i += 1;
                col += 1;
            }
            '#' | '!' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\\' if is_continuation(&chars, i) => {
                // Join the next line to this one.
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                i += 1;
                line += 1;
                col = 1;
            }
            '{' | '}' if !include_line => {
                let kind = if c == '{' {
                    TokenKind::Open
                } else {
                    TokenKind::Close
                };
                tokens.push(Token {
                    kind,
                    loc: loc(line, col),
                    width: 1,
                });
                i += 1;
                col += 1;
            }
            _ => {
                let start_col = col;
                let at_line_start = tokens.last().is_none_or(|t| t.kind == TokenKind::Eol);
                let mut text = String::new();
                let mut quoted = false;
                let mut quote_open: Option<u32> = None;
                while i < chars.len() {
                    let c = chars[i];
                    if quote_open.is_some() {
                        match c {
                            '"' => quote_open = None,
                            '\n' => break,
                            '\\' if i + 1 < chars.len() && chars[i + 1] != '\n' => {
                                text.push(c);
                                text.push(chars[i + 1]);
                                i += 1;
                                col += 1;
                            }
                            _ => text.push(c),
                        }
                    } else {
                        match c {
                            ' ' | '\t' | '\r' | '\n' | '\x0b' | '\x0c' | '#' | '!' => break,
                            '{' | '}' if !include_line => break,
                            '\\' if is_continuation(&chars, i) => break,
                            '"' => {
                                quoted = true;
                                quote_open = Some(col);
                            }
                            '\\' if matches!(chars.get(i + 1), Some('#' | '!')) => {
                                text.push(chars[i + 1]);
                                i += 1;
                                col += 1;
                            }
                            _ => text.push(c),
                        }
                    }
                    i += 1;
                    col += 1;
                }
                if let Some(qcol) = quote_open {
                    diags.push(Diagnostic::error(
                        loc(line, qcol),
                        1,
                        "unterminated quoted string: add the closing `\"` on this line",
                    ));
                }
                if at_line_start && !quoted && text == "include" {
                    include_line = true;
                }
                tokens.push(Token {
                    kind: TokenKind::Word { text, quoted },
                    loc: loc(line, start_col),
                    width: col.saturating_sub(start_col).max(1),
                });
            }
        }
    }
    push_eol(&mut tokens, line, col);
    tokens
}

/// A backslash followed only by blanks up to the end of the line continues the line.
fn is_continuation(chars: &[char], i: usize) -> bool {
    chars[i + 1..]
        .iter()
        .take_while(|&&c| c != '\n')
        .all(|&c| c == ' ' || c == '\t' || c == '\r')
        && chars[i + 1..].contains(&'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut d = Vec::new();
        lex_one(text, Path::new("t.conf"), &mut d)
            .into_iter()
            .map(|t| match t.kind {
                TokenKind::Word { text, quoted } => {
                    if quoted {
                        format!("q:{text}")
                    } else {
                        text
                    }
                }
                TokenKind::Open => "{".into(),
                TokenKind::Close => "}".into(),
                TokenKind::Eol => "\\n".into(),
            })
            .collect()
    }

    #[test]
    fn braces_split_words_and_comments_end_lines() {
        assert_eq!(
            words("authentication {auth_type PASS} # c\n! x\nprio 1!x"),
            [
                "authentication",
                "{",
                "auth_type",
                "PASS",
                "}",
                "\\n",
                "prio",
                "1",
                "\\n"
            ]
        );
    }

    #[test]
    fn quotes_keep_spaces_and_comment_chars() {
        assert_eq!(
            words("script \"killall -0 # x\" a\"b c\"d"),
            ["script", "q:killall -0 # x", "q:ab cd", "\\n"]
        );
        assert_eq!(words(r#"x "a\"b""#), ["x", "q:a\\\"b", "\\n"]);
    }

    #[test]
    fn continuation_and_escaped_comment() {
        assert_eq!(words("a \\\n b\nc\\#d"), ["a", "b", "\\n", "c#d", "\\n"]);
    }

    #[test]
    fn include_line_keeps_braces() {
        assert_eq!(
            words("include a/{b,c}.conf\n"),
            ["include", "a/{b,c}.conf", "\\n"]
        );
    }

    #[test]
    fn brace_expansion() {
        let e = |p: &str| expand_braces(p).unwrap_or_default();
        assert_eq!(e("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
        assert_eq!(e("a{b"), ["a{b"]);
        assert_eq!(e("{x,y}{1,2}"), ["x1", "x2", "y1", "y2"]);
        assert_eq!(expand_braces(&"{a,b}".repeat(40)), None);
    }
}
