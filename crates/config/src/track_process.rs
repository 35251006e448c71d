//! `vrrp_track_process NAME { ... }` blocks and the `track_process { ... }` lines of instances
//! and sync groups, read with keepalived 2.2's rules (ranges, defaults, what `param_match`
//! implies) but refusing what keepalived only logs and skips.

use std::time::Duration;

use crate::instance::tracked_weight;
use crate::model::{ParamMatch, TrackProcess, VrrpTrackProcess};
use crate::parser::block_name;
use crate::tree::{Block, Stmt, Word};
use crate::values::{parse_seconds, Ctx};

/// The kernel keeps 15 bytes of a process's name (`TASK_COMM_LEN` less the NUL).
const COMM_MAX: usize = 15;
/// keepalived's bound on `weight` for tracked processes.
const WEIGHT_MAX: i32 = 254;
/// keepalived's bound on `quorum` and `quorum_max`.
const QUORUM_MAX: u32 = 65535;
/// keepalived's bound on the delays, in seconds.
const DELAY_MAX_SECS: u64 = 3600;

/// A `track_process` line as written, with the word naming the tracker.
pub(crate) struct TrackProcessLine {
    pub track: TrackProcess,
    pub name: Word,
}

/// Parses one `vrrp_track_process` block; `None` when it cannot be used.
pub(crate) fn vrrp_track_process(stmt: &Stmt, ctx: &mut Ctx) -> Option<(VrrpTrackProcess, Word)> {
    let name = block_name(stmt, ctx)?;
    let block = stmt.block.as_ref()?;
    let errors_before = ctx.errors.len();
    let mut t = VrrpTrackProcess {
        name: name.text.clone(),
        process: String::new(),
        args: Vec::new(),
        param_match: ParamMatch::Any,
        full_command: false,
        quorum: 1,
        quorum_max: u32::MAX,
        fork_delay: Duration::ZERO,
        terminate_delay: Duration::ZERO,
        weight: 0,
        reverse: false,
        location: stmt.key.loc.clone(),
    };
    let mut process_word: Option<Word> = None;
    let mut param_match_set = false;
    let mut quorum: Option<(u32, Word)> = None;
    let mut quorum_max: Option<(u32, Word)> = None;
    for s in &block.stmts {
        let k = s.key.text.as_str();
        match k {
            "process" => {
                if !ctx.no_block(s) {
                    continue;
                }
                match s.args.split_first() {
                    None => ctx.error(
                        &s.key,
                        "`process` expects NAME_OR_PATH [ARGS...], found end of line",
                    ),
                    Some((first, _)) if process_word.is_some() => ctx.error(
                        first,
                        format!(
                            "`process` is already set for vrrp_track_process `{}`",
                            t.name
                        ),
                    ),
                    Some((first, args)) => {
                        t.process = first.text.clone();
                        t.args = args.iter().map(|w| w.text.clone()).collect();
                        if !args.is_empty() {
                            t.full_command = true;
                        }
                        process_word = Some(first.clone());
                    }
                }
            }
            "param_match" => {
                if !ctx.no_block(s) {
                    continue;
                }
                let kind = match s.args.as_slice() {
                    [] => Some(ParamMatch::Exact),
                    [w] => match w.text.as_str() {
                        "exact" => Some(ParamMatch::Exact),
                        "partial" => Some(ParamMatch::Partial),
                        "initial" => Some(ParamMatch::Initial),
                        other => {
                            ctx.error(
                                w,
                                format!("`param_match` expects nothing (exact), `exact`, `partial` or `initial`, found `{other}`"),
                            );
                            None
                        }
                    },
                    [_, extra, ..] => {
                        ctx.error(
                            extra,
                            format!(
                                "`param_match` takes one value, found extra `{}`",
                                extra.text
                            ),
                        );
                        None
                    }
                };
                if let Some(kind) = kind {
                    t.param_match = kind;
                    t.full_command = true;
                    param_match_set = true;
                }
            }
            "full_command" => {
                if ctx.no_block(s) {
                    if let Some(extra) = s.args.first() {
                        ctx.error(
                            extra,
                            format!("`full_command` takes no value, found `{}`", extra.text),
                        );
                    } else {
                        t.full_command = true;
                    }
                }
            }
            "weight" => {
                if !ctx.no_block(s) {
                    continue;
                }
                if s.args.is_empty() {
                    ctx.error(
                        &s.key,
                        format!("`weight` expects -{WEIGHT_MAX}..={WEIGHT_MAX} [reverse], found end of line"),
                    );
                } else if let Some((w, reverse)) = ctx.weight_within("weight", &s.args, WEIGHT_MAX)
                {
                    t.weight = w;
                    t.reverse = reverse;
                }
            }
            "quorum" => {
                if let Some(v) = ctx.int(s, 1u32, QUORUM_MAX) {
                    quorum = Some((v, s.args[0].clone()));
                }
            }
            "quorum_max" => {
                if let Some(v) = ctx.int(s, 0u32, QUORUM_MAX) {
                    quorum_max = Some((v, s.args[0].clone()));
                }
            }
            "delay" | "fork_delay" | "terminate_delay" => {
                let Some(w) = ctx.one(s, "seconds 0.000001..=3600") else {
                    continue;
                };
                let Some(d) = delay(ctx, k, w) else {
                    continue;
                };
                if k != "terminate_delay" {
                    t.fork_delay = d;
                }
                if k != "fork_delay" {
                    t.terminate_delay = d;
                }
            }
            _ => ctx.unknown(s, "vrrp_track_process"),
        }
    }
    // An argument list without `param_match` compares exactly, as keepalived does.
    if !t.args.is_empty() && !param_match_set {
        t.param_match = ParamMatch::Exact;
    }
    match (&quorum, &quorum_max) {
        // `quorum_max 0`: up while no such process runs.
        (Some((q, qw)), Some((0, _))) if *q > 1 => ctx.error(
            qw,
            format!(
                "`quorum {q}` is more than `quorum_max 0` in vrrp_track_process `{}`",
                t.name
            ),
        ),
        (_, Some((0, _))) => {
            t.quorum = 0;
            t.quorum_max = 0;
        }
        (Some((q, _)), Some((m, mw))) if q > m => ctx.error(
            mw,
            format!(
                "`quorum_max {m}` is less than `quorum {q}` in vrrp_track_process `{}`",
                t.name
            ),
        ),
        _ => {
            if let Some((q, _)) = quorum {
                t.quorum = q;
            }
            if let Some((m, _)) = quorum_max {
                t.quorum_max = m;
            }
        }
    }
    let Some(pw) = process_word else {
        ctx.error(
            &name,
            format!("vrrp_track_process `{}` has no `process` line", t.name),
        );
        return None;
    };
    if !t.full_command && t.process.len() > COMM_MAX {
        ctx.warn(
            &pw,
            format!(
                "`{}` is longer than the {COMM_MAX} bytes the kernel keeps of a process name: \
                 vrrp_track_process `{}` never counts it; add `full_command` to compare the \
                 command line instead",
                t.process, t.name
            ),
        );
    }
    (ctx.errors.len() == errors_before).then_some((t, name))
}

/// A delay of 1 µs to an hour (keepalived refuses 0).
fn delay(ctx: &mut Ctx, key: &str, w: &Word) -> Option<Duration> {
    match parse_seconds(&w.text) {
        Some(d) if !d.is_zero() && d <= Duration::from_secs(DELAY_MAX_SECS) => Some(d),
        _ => {
            ctx.error(
                w,
                format!(
                    "`{key}` expects seconds 0.000001..={DELAY_MAX_SECS}, found `{}`",
                    w.text
                ),
            );
            None
        }
    }
}

/// The lines of a `track_process { ... }` block: `NAME [weight N [reverse|noreverse]]`.
pub(crate) fn track_process_block(block: &Block, ctx: &mut Ctx) -> Vec<TrackProcessLine> {
    let mut out = Vec::new();
    for line in &block.stmts {
        if !ctx.no_block(line) {
            continue;
        }
        let Some(weight) = tracked_weight("track_process", line, WEIGHT_MAX, ctx) else {
            continue;
        };
        out.push(TrackProcessLine {
            track: TrackProcess {
                name: line.key.text.clone(),
                weight: weight.map(|(w, _)| w),
                reverse: weight.and_then(|(_, r)| r),
            },
            name: line.key.clone(),
        });
    }
    out
}

/// Checks the `track_process` lines of one instance or group (`owner` names it for the
/// message): each names a defined tracker, once.
pub(crate) fn resolve(
    lines: Vec<TrackProcessLine>,
    defined: &[VrrpTrackProcess],
    owner: &str,
    ctx: &mut Ctx,
) -> Vec<TrackProcess> {
    let mut out: Vec<TrackProcess> = Vec::new();
    for l in lines {
        if !defined.iter().any(|d| d.name == l.track.name) {
            ctx.error(
                &l.name,
                format!(
                    "`track_process` in {owner} names `{}`, but no vrrp_track_process by that name is defined",
                    l.track.name
                ),
            );
        } else if out.iter().any(|t| t.name == l.track.name) {
            ctx.error(
                &l.name,
                format!("{owner} tracks process `{}` twice", l.track.name),
            );
        } else {
            out.push(l.track);
        }
    }
    out
}
