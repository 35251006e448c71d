//! `track_file NAME { file PATH; weight N [reverse]; init_file [VALUE] [overwrite] }` and the
//! references to it (`vrrp_track_file` is keepalived's older spelling of the block).

use crate::diagnostic::Diagnostic;
use crate::model::{TrackFile, TrackFileRef};
use crate::parser::block_name;
use crate::tree::{Stmt, Word};
use crate::values::Ctx;

/// Parses one block; `None` (with an error) when it has no `file`.
pub(crate) fn parse(stmt: &Stmt, ctx: &mut Ctx) -> Option<(TrackFile, Word)> {
    let name = block_name(stmt, ctx)?;
    let block = stmt.block.as_ref()?;
    let mut file = TrackFile {
        name: name.text.clone(),
        file: Default::default(),
        weight: 1,
        reverse: false,
        init: None,
        location: stmt.key.loc.clone(),
    };
    let mut has_file = false;
    for s in &block.stmts {
        match s.key.text.as_str() {
            "file" => {
                if let Some(w) = ctx.one(s, "a file path") {
                    file.file = w.text.clone().into();
                    has_file = true;
                }
            }
            "weight" => {
                if !ctx.no_block(s) {
                    continue;
                }
                if s.args.is_empty() {
                    ctx.error(
                        &s.key,
                        "`weight` expects -254..=254 [reverse], found end of line",
                    );
                } else if let Some((w, reverse)) = ctx.weight_within("weight", &s.args, 254) {
                    file.weight = w;
                    file.reverse = reverse;
                }
            }
            "init_file" => {
                if !ctx.no_block(s) {
                    continue;
                }
                let mut init = (0i64, false);
                for w in &s.args {
                    if w.text == "overwrite" {
                        init.1 = true;
                    } else if let Some(v) = ctx.int_word("init_file", w, -254i64, 254) {
                        init.0 = v;
                    }
                }
                file.init = Some(init);
            }
            _ => ctx.unknown(s, "track_file"),
        }
    }
    if !has_file {
        ctx.error(
            &name,
            format!("track_file `{}` has no `file` line", name.text),
        );
        return None;
    }
    Some((file, name))
}

/// Errors for references to track files nobody defined.
pub(crate) fn check_refs<'a>(
    refs: impl Iterator<Item = &'a TrackFileRef>,
    files: &[TrackFile],
    ctx: &mut Ctx,
) {
    for r in refs {
        if !files.iter().any(|f| f.name == r.name) {
            ctx.errors.push(Diagnostic::error(
                r.location.clone(),
                r.name.chars().count() as u32,
                format!(
                    "`track_file` names `{}`, but no track_file block by that name is defined",
                    r.name
                ),
            ));
        }
    }
}
