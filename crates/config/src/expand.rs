//! keepalived's line-level configuration language, applied before tokens are made: `@ID` and
//! `@^ID` conditional lines, `$NAME=value` parameters (single- and multi-line) substituted as
//! `$NAME` / `${NAME}`, the builtin `${_PWD}`, `${_INSTANCE}`, `${_RANDOM}`, `${_HASH}` and
//! `${_BANG}`, and `~SEQ(var, start, step, end)` / `~SEQx(...)` / `~LST(...)` sequences.
//!
//! The rules are keepalived 2.2's (`lib/parser.c`, `read_line` and `replace_param`): a
//! construct is recognised at the start of a line; a definition is stored as written and
//! substituted when used, again and again until nothing changes; an undefined parameter is
//! left as written. Every character keeps the place it came from: text a parameter put in
//! points at the `$NAME` it replaced, the further lines of a multi-line parameter at the
//! lines of its definition, so errors found later still name the right file:line:column.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::diagnostic::Diagnostic;
use crate::model::Location;

mod sequence;

/// How many lines multi-line parameters and sequences may produce in total: thousands of
/// instances, far beyond a gateway pair's needs.
pub(crate) const MAX_EXPANDED_LINES: usize = 50_000;

/// How deeply multi-line parameters and sequences may nest (a parameter that uses itself).
const MAX_NESTING: usize = 32;

/// How many substitutions one line may take, and how long it may grow.
const MAX_SUBSTITUTIONS: usize = 1000;

/// How much text substitution may move for a whole configuration (characters), so no file,
/// however written, keeps the parser busy for long.
const MAX_SUBSTITUTION_WORK: usize = 64 << 20;
/// (keepalived's own line buffer is 1024 bytes.)
const MAX_LINE_CHARS: usize = 8 * 1024;

/// Where one character of a line was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    pub line: u32,
    pub col: u32,
    /// Characters of the source the character stands for (a `$NAME` it replaced).
    pub width: u32,
}

/// A line of text with the origin of each character.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub file: Arc<Path>,
    pub text: Vec<char>,
    pub origin: Vec<Origin>,
}

impl Line {
    /// Physical line `n` (from 0) of a file, `text` without its newline.
    pub fn physical(n: usize, text: &str, file: &Arc<Path>) -> Line {
        let text: Vec<char> = text.chars().collect();
        let origin = (0..text.len())
            .map(|c| Origin {
                line: n as u32 + 1,
                col: c as u32 + 1,
                width: 1,
            })
            .collect();
        Line {
            file: file.clone(),
            text,
            origin,
        }
    }

    /// A line with no text.
    pub fn empty(file: &Arc<Path>) -> Line {
        Line {
            file: file.clone(),
            text: Vec::new(),
            origin: Vec::new(),
        }
    }

    /// Where the character at `i` (or the end of the line) was written.
    pub fn location(&self, i: usize) -> (Location, u32) {
        let o = self
            .origin
            .get(i)
            .or(self.origin.last())
            .copied()
            .unwrap_or(Origin {
                line: 1,
                col: 1,
                width: 1,
            });
        let loc = Location {
            file: self.file.clone(),
            line: o.line,
            column: o.col,
        };
        (loc, o.width)
    }

    /// Location and width of the characters `start..end`.
    pub fn span(&self, start: usize, end: usize) -> (Location, u32) {
        let (loc, width) = self.location(start);
        let last = end.saturating_sub(1).max(start);
        match (self.origin.get(start), self.origin.get(last)) {
            (Some(a), Some(b)) if a.line == b.line && b.col >= a.col => {
                (loc, (b.col + b.width - a.col).max(1))
            }
            _ => (loc, width),
        }
    }

    fn drain_front(&mut self, n: usize) {
        let n = n.min(self.text.len());
        self.text.drain(..n);
        self.origin.drain(..n);
    }

    fn trim_start(&mut self) {
        let n = self.text.iter().take_while(|c| is_blank(**c)).count();
        self.drain_front(n);
    }

    fn trim_end(&mut self) {
        while self.text.last().is_some_and(|c| is_blank(*c)) {
            self.text.pop();
            self.origin.pop();
        }
    }

    fn starts_with(&self, s: &str) -> bool {
        let mut it = self.text.iter();
        s.chars().all(|c| it.next() == Some(&c))
    }

    fn slice(&self, start: usize, end: usize) -> Line {
        Line {
            file: self.file.clone(),
            text: self.text[start..end].to_vec(),
            origin: self.origin[start..end].to_vec(),
        }
    }

    /// Appends `other`, separated by a space that points at the end of this line.
    fn join(&mut self, other: Line) {
        if let Some(&o) = self.origin.last() {
            self.text.push(' ');
            self.origin.push(o);
        }
        self.text.extend(other.text);
        self.origin.extend(other.origin);
    }

    /// The text as a string.
    pub fn string(&self) -> String {
        self.text.iter().collect()
    }
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c')
}

/// Removes a comment (`#` or `!` outside double quotes, not escaped by `\`) and the blanks
/// around the text, as keepalived does to each line it reads. Returns whether the line then
/// ends with a `\` outside quotes (a continued line).
pub(crate) fn decomment(line: &mut Line) -> bool {
    let (mut quote, mut i, mut cut) = (false, 0, None);
    while i < line.text.len() {
        match line.text[i] {
            '"' => quote = !quote,
            '\\' if quote => i += 1,
            '\\' if matches!(line.text.get(i + 1), Some('#' | '!')) => i += 1,
            '#' | '!' if !quote => {
                cut = Some(i);
                break;
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(cut) = cut {
        line.text.truncate(cut);
        line.origin.truncate(cut);
    }
    line.trim_start();
    line.trim_end();
    !quote && line.text.last() == Some(&'\\')
}

/// A defined parameter: its value, one entry per line.
#[derive(Debug, Clone)]
struct Definition {
    lines: Vec<Line>,
}

/// A reference `$NAME` or `${NAME [ARGS]}` found in a line.
struct Reference {
    name: String,
    /// Index just past the reference.
    end: usize,
    /// Digits and spaces after the name inside braces, for `${_RANDOM MIN MAX}`.
    args: Option<String>,
}

/// What a caller does with each line that comes out.
pub(crate) trait Sink {
    /// Takes one finished line (not empty, no comment).
    fn line(&mut self, expander: &mut Expander, line: Line);
}

/// The state keepalived keeps while reading: the config id, the parameters defined so far
/// (they carry over into and out of included files), and what has been reported.
pub(crate) struct Expander {
    config_id: Option<String>,
    definitions: HashMap<String, Definition>,
    /// Directories of the files being read, innermost last, for `${_PWD}`.
    dirs: Vec<String>,
    pub diagnostics: Vec<Diagnostic>,
    produced: usize,
    /// Characters moved by substitutions so far.
    substitutions: usize,
    over_budget: bool,
    warned: HashSet<(Arc<Path>, u32, u32)>,
    failed: HashSet<(Arc<Path>, u32, u32)>,
}

impl Expander {
    /// An expander selecting `@ID` lines by `config_id` (none: every `@ID` line is left out
    /// and every `@^ID` line kept, as keepalived does without one).
    pub fn new(config_id: Option<String>) -> Expander {
        Expander {
            config_id,
            definitions: HashMap::new(),
            dirs: Vec::new(),
            diagnostics: Vec::new(),
            produced: 0,
            substitutions: 0,
            over_budget: false,
            warned: HashSet::new(),
            failed: HashSet::new(),
        }
    }

    /// Reads the lines of one file into `sink`, following keepalived's rules.
    pub fn file(&mut self, text: &str, file: &Path, sink: &mut dyn Sink) {
        let shared: Arc<Path> = file.into();
        self.dirs.push(directory_of(file));
        let lines: Vec<&str> = text.split('\n').collect();
        let line_at = |n: usize| Line::physical(n, lines[n], &shared);
        let mut i = 0;
        while i < lines.len() {
            let mut line = line_at(i);
            i += 1;
            let continued = decomment(&mut line);
            if line.text.is_empty() {
                continue;
            }
            if let Some((name, first)) = self.multiline_definition(&line) {
                let value = multiline_value(first, &lines, &mut i, &shared);
                self.definitions.insert(name, Definition { lines: value });
                continue;
            }
            if continued && !is_definition_line(&line) {
                // tandem joins a line ending in `\` with the next one.
                let mut more = continued;
                while more && i < lines.len() {
                    line.text.pop();
                    line.origin.pop();
                    let mut next = line_at(i);
                    i += 1;
                    more = decomment(&mut next);
                    line.join(next);
                }
            }
            self.process(line, 0, sink);
            if self.over_budget {
                break;
            }
        }
        self.dirs.pop();
    }

    /// The name of a `$NAME=value \` line (a definition whose value goes on), when this is
    /// one and its `@ID` prefix, if any, selects it.
    fn multiline_definition(&self, line: &Line) -> Option<(String, Line)> {
        let mut l = line.clone();
        if l.text.first() == Some(&'@') && !self.select(&mut l) {
            return None;
        }
        let name = definition_name(&l)?;
        (l.text.last() == Some(&'\\')).then_some((name, l))
    }

    /// Applies an `@ID` / `@^ID` prefix: false when the line is left out, else the prefix is
    /// removed.
    fn select(&self, line: &mut Line) -> bool {
        let negated = line.text.get(1) == Some(&'^');
        let start = if negated { 2 } else { 1 };
        let Some(end) = line
            .text
            .iter()
            .skip(start)
            .position(|&c| c == ' ' || c == '\t')
        else {
            return false; // nothing after the id
        };
        let id: String = line.text[start..start + end].iter().collect();
        let matches = self.config_id.as_deref() == Some(id.as_str());
        if matches == negated {
            return false;
        }
        line.drain_front(start + end);
        line.trim_start();
        true
    }

    /// Reports an error once per place (a sequence repeats the same line).
    fn error(&mut self, line: &Line, start: usize, end: usize, message: String) {
        let (loc, width) = line.span(start, end);
        if self.failed.insert((loc.file.clone(), loc.line, loc.column)) {
            self.diagnostics
                .push(Diagnostic::error(loc, width, message));
        }
    }

    fn warn_once(&mut self, line: &Line, start: usize, end: usize, message: String) {
        let (loc, width) = line.span(start, end);
        if self.warned.insert((loc.file.clone(), loc.line, loc.column)) {
            self.diagnostics
                .push(Diagnostic::warning(loc, width, message));
        }
    }

    /// One logical line: conditional, definition, sequence, substitution, then out.
    fn process(&mut self, mut line: Line, depth: usize, sink: &mut dyn Sink) {
        if self.over_budget {
            return;
        }
        // Lines of the file itself are not counted, only those parameters and sequences make.
        self.produced += usize::from(depth > 0);
        if self.produced > MAX_EXPANDED_LINES {
            self.over_budget = true;
            self.error(
                &line,
                0,
                line.text.len(),
                format!(
                    "parameters and sequences produce more than {MAX_EXPANDED_LINES} lines; \
                     stopping here"
                ),
            );
            return;
        }
        if depth > MAX_NESTING {
            self.error(
                &line,
                0,
                line.text.len(),
                format!(
                    "multi-line parameters and sequences nest deeper than {MAX_NESTING} \
                     levels here (does a parameter use itself?)"
                ),
            );
            return;
        }
        let mut rest: Vec<Line> = Vec::new();
        let mut rounds = 0;
        let mut conditional = false;
        loop {
            line.trim_start();
            if line.text.is_empty() {
                break;
            }
            if line.text[0] == '@' {
                if !self.select(&mut line) {
                    line.text.clear();
                    break;
                }
                conditional = true;
            }
            if let Some(name) = definition_name(&line) {
                let eq = line.text.iter().position(|&c| c == '=').unwrap_or(0);
                let mut value = line.slice(eq + 1, line.text.len());
                value.trim_start();
                self.definitions
                    .insert(name, Definition { lines: vec![value] });
                line.text.clear();
                break;
            }
            if line.starts_with("~SEQ") {
                self.sequence(&line, depth, sink);
                line.text.clear();
                break;
            }
            if line.starts_with("~LST") {
                self.list(&line, depth, sink);
                line.text.clear();
                break;
            }
            if line.text[0] == '~' {
                break;
            }
            match self.substitute(&mut line, &mut rest) {
                Ok(true) => {}
                Ok(false) => break,
                Err(()) => {
                    line.text.clear();
                    rest.clear();
                    break;
                }
            }
            decomment(&mut line);
            rounds += 1;
            let again = line.text.first() == Some(&'@') || line.text.contains(&'$');
            if !again || rounds > MAX_SUBSTITUTIONS {
                break;
            }
        }
        if !line.text.is_empty() {
            let include =
                line.starts_with("include") && line.text.get(7).is_some_and(|c| is_blank(*c));
            if conditional && include {
                self.warn_once(
                    &line,
                    0,
                    7,
                    "keepalived 2.2 reads a file included from an `@` line twice (again from its \
                     copy of the configuration); tandem reads it once"
                        .into(),
                );
            }
            let after_brace = if include {
                None
            } else {
                construct_after_brace(&line)
            };
            match after_brace {
                // keepalived reads the text after a `{` or `}` as a line of its own.
                Some(at) => {
                    let residue = line.slice(at, line.text.len());
                    line.text.truncate(at);
                    line.origin.truncate(at);
                    self.warn_undefined(&line);
                    sink.line(self, line);
                    self.process(residue, depth + 1, sink);
                }
                None => {
                    self.warn_undefined(&line);
                    sink.line(self, line);
                }
            }
        }
        for next in rest {
            self.process(next, depth + 1, sink);
        }
    }

    /// Substitutes the defined parameters of `line` in one pass, left to right, rescanning
    /// what each put in. A multi-line parameter (allowed only at the end of the line) puts in
    /// its first line and queues the others in front of `rest`. Returns whether anything
    /// changed.
    fn substitute(&mut self, line: &mut Line, rest: &mut Vec<Line>) -> Result<bool, ()> {
        let mut pos = 0;
        let mut changed = false;
        let mut count = 0;
        while let Some(i) = line.text[pos..]
            .iter()
            .position(|&c| c == '$')
            .map(|p| p + pos)
        {
            let Some(r) = reference(&line.text, i) else {
                pos = i + 1;
                continue;
            };
            let at_end = r.end == line.text.len();
            let Some(value) = self.value_of(&r, line, i, at_end) else {
                pos = i + 1;
                continue;
            };
            count += 1;
            self.substitutions += line.text.len() + value_len(&value);
            if self.substitutions > MAX_SUBSTITUTION_WORK {
                self.over_budget = true;
                self.error(
                    line,
                    i,
                    r.end,
                    format!(
                        "parameter substitution has moved more than {} MiB of text; stopping here",
                        MAX_SUBSTITUTION_WORK >> 20
                    ),
                );
                return Err(());
            }
            if count > MAX_SUBSTITUTIONS || line.text.len() + value_len(&value) > MAX_LINE_CHARS {
                self.error(
                    line,
                    i,
                    r.end,
                    format!(
                        "substituting `{}` does not end (a parameter that uses itself?)",
                        line.slice(i, r.end).string()
                    ),
                );
                return Err(());
            }
            let (loc, width) = line.span(i, r.end);
            let here = Origin {
                line: loc.line,
                col: loc.column,
                width,
            };
            let mut lines = value.into_iter();
            let first = lines.next().unwrap_or_else(|| Line::empty(&line.file));
            let tilde = first.text.iter().find(|c| !is_blank(**c)) == Some(&'~');
            let n = first.text.len();
            line.text.splice(i..r.end, first.text);
            line.origin.splice(i..r.end, std::iter::repeat_n(here, n));
            rest.splice(0..0, lines);
            changed = true;
            pos = i;
            if tilde {
                break;
            }
        }
        Ok(changed)
    }

    /// The value a reference stands for, if it is defined (and usable where it is).
    fn value_of(
        &mut self,
        r: &Reference,
        line: &Line,
        at: usize,
        at_end: bool,
    ) -> Option<Vec<Line>> {
        if let Some(def) = self.definitions.get(&r.name) {
            if r.args.is_some() || (def.lines.len() > 1 && !at_end) {
                return None;
            }
            return Some(def.lines.clone());
        }
        let text = match r.name.as_str() {
            "_PWD" => self.dirs.last().cloned().unwrap_or_default(),
            "_INSTANCE" => self.config_id.clone().unwrap_or_default(),
            "_HASH" => "#".into(),
            "_BANG" => "!".into(),
            "_RANDOM" => self.random(r, line, at),
            _ => return None,
        };
        if r.args.is_some() && r.name != "_RANDOM" {
            return None;
        }
        let n = text.chars().count();
        Some(vec![Line {
            file: line.file.clone(),
            text: text.chars().collect(),
            origin: vec![
                Origin {
                    line: 1,
                    col: 1,
                    width: 1
                };
                n
            ],
        }])
    }

    /// `${_RANDOM [MIN [MAX]]}`: a number in MIN..=MAX (0 and 32767 by default).
    fn random(&mut self, r: &Reference, line: &Line, at: usize) -> String {
        let args: Vec<u64> = r
            .args
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(|a| a.parse().unwrap_or(u64::MAX))
            .collect();
        let min = args.first().copied().unwrap_or(0);
        let max = args.get(1).copied().unwrap_or(32767);
        if args.len() > 2 {
            self.warn_once(
                line,
                at,
                r.end,
                "`${_RANDOM}` takes at most MIN and MAX; the rest is ignored".into(),
            );
        }
        if min > max {
            self.warn_once(
                line,
                at,
                r.end,
                format!("`${{_RANDOM {min} {max}}}`: MIN is above MAX; using MIN"),
            );
            return min.to_string();
        }
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(self.produced);
        let span = (max - min).saturating_add(1);
        (min + h.finish() % span).to_string()
    }

    /// Warns about `$NAME` / `${NAME}` references outside double quotes left as written.
    fn warn_undefined(&mut self, line: &Line) {
        if line.text.first() == Some(&'~') {
            return;
        }
        let mut quote = false;
        let mut i = 0;
        while i < line.text.len() {
            match line.text[i] {
                '"' => quote = !quote,
                '\\' => i += 1,
                '$' if !quote => {
                    if let Some(r) = reference(&line.text, i) {
                        let why = match self.definitions.get(&r.name) {
                            Some(d) if d.lines.len() > 1 => {
                                "is a multi-line parameter, which keepalived substitutes only \
                                 at the end of a line"
                            }
                            Some(_) => "takes no arguments",
                            None if r.name.starts_with('_') => {
                                "is not a parameter keepalived defines"
                            }
                            None => "is not defined above this line",
                        };
                        let text = line.slice(i, r.end).string();
                        self.warn_once(
                            line,
                            i,
                            r.end,
                            format!("`{text}` {why}: it is left as written, as keepalived does"),
                        );
                        i = r.end;
                        continue;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// The value of a multi-line definition whose first line is `first` (`$NAME=... \`): it goes
/// on over the following lines, each but the last ending in `\`; an empty line ends it too,
/// and comment-only lines are skipped (keepalived's `read_line`). `i` moves past it.
fn multiline_value(mut first: Line, lines: &[&str], i: &mut usize, file: &Arc<Path>) -> Vec<Line> {
    let mut value = Vec::new();
    let eq = first.text.iter().position(|&c| c == '=').unwrap_or(0);
    first.drain_front(eq + 1);
    first.trim_start();
    first.text.pop();
    first.origin.pop();
    first.trim_end();
    if !first.text.is_empty() {
        value.push(first);
    }
    while *i < lines.len() {
        let mut next = Line::physical(*i, lines[*i], file);
        *i += 1;
        if next.text.iter().all(|&c| c == '\r') {
            if !value.is_empty() {
                value.push(Line::empty(file));
            }
            break;
        }
        decomment(&mut next);
        if next.text.is_empty() {
            continue;
        }
        if next.text.last() != Some(&'\\') {
            value.push(next);
            break;
        }
        next.text.pop();
        next.origin.pop();
        next.trim_end();
        if !next.text.is_empty() {
            value.push(next);
        }
    }
    if value.is_empty() {
        value.push(Line::empty(file));
    }
    value
}

fn value_len(lines: &[Line]) -> usize {
    lines.first().map_or(0, |l| l.text.len())
}

/// The directory of `file` as keepalived's `${_PWD}` gives it: absolute, links resolved
/// where the directory exists.
fn directory_of(file: &Path) -> String {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let abs = dir
        .canonicalize()
        .or_else(|_| std::env::current_dir().map(|c| c.join(dir)))
        .unwrap_or_else(|_| dir.to_path_buf());
    abs.to_string_lossy().into_owned()
}

/// The name of a `$NAME=value` line: `$`, a letter or `_`, letters, digits or `_`, then `=`
/// with no space before it.
fn definition_name(line: &Line) -> Option<String> {
    let t = &line.text;
    if t.first() != Some(&'$')
        || !t
            .get(1)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
    {
        return None;
    }
    let len = t[1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .count();
    (t.get(1 + len) == Some(&'=')).then(|| t[1..1 + len].iter().collect())
}

/// Where the text after a `{` or `}` (outside double quotes) starts with a conditional, a
/// definition or a sequence, if it does anywhere on the line.
fn construct_after_brace(line: &Line) -> Option<usize> {
    let t = &line.text;
    let mut quote = false;
    let mut i = 0;
    while i < t.len() {
        match t[i] {
            '"' => quote = !quote,
            '\\' => i += 1,
            '{' | '}' if !quote => {
                let at = i + 1 + t[i + 1..].iter().take_while(|c| is_blank(**c)).count();
                let rest = line.slice(at, t.len());
                let construct = rest.text.first() == Some(&'@')
                    || rest.starts_with("~SEQ")
                    || rest.starts_with("~LST")
                    || definition_name(&rest).is_some();
                if construct {
                    return Some(at);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether `line` (after any `@ID` prefix) is a `$NAME=value` line.
fn is_definition_line(line: &Line) -> bool {
    let mut l = line.clone();
    if l.text.first() == Some(&'@') {
        let Some(end) = l.text.iter().position(|&c| c == ' ' || c == '\t') else {
            return false;
        };
        l.drain_front(end);
        l.trim_start();
    }
    definition_name(&l).is_some()
}

/// Parses the reference starting at the `$` at `i`: `${NAME}` or `${NAME ARGS}` (ARGS
/// digits and spaces), or `$NAME` followed by a blank, `,`, `)` or the end of the line.
fn reference(t: &[char], i: usize) -> Option<Reference> {
    let braced = t.get(i + 1) == Some(&'{');
    let start = i + 1 + usize::from(braced);
    if !t
        .get(start)
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
    {
        return None;
    }
    let len = t[start..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .count();
    let name: String = t[start..start + len].iter().collect();
    let mut p = start + len;
    if !braced {
        return match t.get(p) {
            None | Some(' ' | '\t' | ',' | ')') => Some(Reference {
                name,
                end: p,
                args: None,
            }),
            _ => None,
        };
    }
    let args_start = p;
    while t.get(p).is_some_and(|c| *c == ' ' || c.is_ascii_digit()) {
        p += 1;
    }
    if t.get(p) != Some(&'}') {
        return None;
    }
    let args: String = t[args_start..p].iter().collect();
    let has_digits = args.chars().any(|c| c.is_ascii_digit());
    if has_digits && args.ends_with(' ') {
        return None;
    }
    Some(Reference {
        name,
        end: p + 1,
        args: has_digits.then(|| args.trim().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let t: Vec<char> = "a $X ${Y}z ${_RANDOM 1 5} $Z}".chars().collect();
        let r = reference(&t, 2).unwrap();
        assert_eq!((r.name.as_str(), r.end), ("X", 4));
        let r = reference(&t, 5).unwrap();
        assert_eq!((r.name.as_str(), r.end), ("Y", 9));
        let r = reference(&t, 11).unwrap();
        assert_eq!(r.args.as_deref(), Some("1 5"));
        assert!(reference(&t, 27).is_none(), "`$Z}}` is not a reference");
    }
}
