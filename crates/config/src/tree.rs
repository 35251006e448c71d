//! Groups tokens into statements and `{ ... }` blocks, checking that braces balance.
//!
//! A statement is a keyword and its values up to the end of the line; a `{` ends the
//! values and opens the statement's block, which may close on the same line
//! (`track_script { chk }`) or many lines later. A `{` alone on the next line also opens
//! the block of the statement above it.

use crate::diagnostic::Diagnostic;
use crate::lexer::{Token, TokenKind};
use crate::model::Location;

/// Blocks nested deeper than this are refused rather than recursed into.
const MAX_DEPTH: usize = 32;

/// A word of the configuration and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Word {
    pub text: String,
    pub quoted: bool,
    pub loc: Location,
    pub width: u32,
}

/// A keyword line, with its values and optional block.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub key: Word,
    pub args: Vec<Word>,
    pub block: Option<Block>,
}

/// The inside of `{ ... }`.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub open: Location,
    pub stmts: Vec<Stmt>,
}

impl Stmt {
    /// The keyword followed by its values, e.g. for a `virtual_ipaddress` line.
    pub fn words(&self) -> impl Iterator<Item = &Word> {
        std::iter::once(&self.key).chain(self.args.iter())
    }
}

/// Builds the statement tree of a whole (include-expanded) token stream.
pub(crate) fn build(tokens: &[Token], diags: &mut Vec<Diagnostic>) -> Vec<Stmt> {
    let mut parser = TreeParser {
        tokens,
        pos: 0,
        diags,
    };
    let mut stmts = Vec::new();
    loop {
        stmts.extend(parser.stmts(0));
        match parser.peek() {
            None => break,
            Some(t) => {
                // Only a stray `}` stops a top-level statement list.
                let t = t.clone();
                parser.diags.push(Diagnostic::error(
                    t.loc,
                    1,
                    "stray `}`: no block is open here",
                ));
                parser.pos += 1;
            }
        }
    }
    stmts
}

struct TreeParser<'a> {
    tokens: &'a [Token],
    pos: usize,
    diags: &'a mut Vec<Diagnostic>,
}

impl TreeParser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn skip_eols(&mut self) {
        while self.peek().is_some_and(|t| t.kind == TokenKind::Eol) {
            self.pos += 1;
        }
    }

    /// Statements until a `}` (left unconsumed) or the end of input.
    fn stmts(&mut self, depth: usize) -> Vec<Stmt> {
        let mut out = Vec::new();
        loop {
            self.skip_eols();
            let Some(token) = self.peek().cloned() else {
                return out;
            };
            match token.kind {
                TokenKind::Close => return out,
                TokenKind::Open => {
                    self.diags.push(Diagnostic::error(
                        token.loc.clone(),
                        1,
                        "`{` without a keyword before it",
                    ));
                    self.pos += 1;
                    // Parse and drop the block so the rest of the file still makes sense.
                    self.block_body(token.loc, depth + 1);
                }
                TokenKind::Word { text, quoted } => {
                    self.pos += 1;
                    let key = Word {
                        text,
                        quoted,
                        loc: token.loc,
                        width: token.width,
                    };
                    out.push(self.stmt(key, depth));
                }
                TokenKind::Eol => {}
            }
        }
    }

    fn stmt(&mut self, key: Word, depth: usize) -> Stmt {
        let mut args = Vec::new();
        let mut block = None;
        while let Some(token) = self.peek().cloned() {
            match token.kind {
                TokenKind::Word { text, quoted } => {
                    self.pos += 1;
                    args.push(Word {
                        text,
                        quoted,
                        loc: token.loc,
                        width: token.width,
                    });
                }
                TokenKind::Open => {
                    self.pos += 1;
                    block = Some(self.block_body(token.loc, depth + 1));
                    break;
                }
                TokenKind::Close => break,
                TokenKind::Eol => {
                    self.pos += 1;
                    // `keyword` on one line and `{` alone on the next.
                    let next = self.tokens.get(self.pos);
                    if next.is_some_and(|t| t.kind == TokenKind::Open) {
                        continue;
                    }
                    break;
                }
            }
        }
        Stmt { key, args, block }
    }

    /// Everything after a `{` up to and including its `}`.
    fn block_body(&mut self, open: Location, depth: usize) -> Block {
        if depth > MAX_DEPTH {
            self.diags.push(Diagnostic::error(
                open.clone(),
                1,
                format!("blocks nested deeper than {MAX_DEPTH} levels"),
            ));
            self.skip_to_matching_close();
            return Block {
                open,
                stmts: Vec::new(),
            };
        }
        let stmts = self.stmts(depth);
        match self.peek() {
            Some(t) if t.kind == TokenKind::Close => self.pos += 1,
            _ => self.diags.push(Diagnostic::error(
                open.clone(),
                1,
                "unclosed `{`: no matching `}` before the end of the file",
            )),
        }
        Block { open, stmts }
    }

    fn skip_to_matching_close(&mut self) {
        let mut depth = 1usize;
        while let Some(kind) = self.peek().map(|t| t.kind.clone()) {
            self.pos += 1;
            match kind {
                TokenKind::Open => depth += 1,
                TokenKind::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
}
