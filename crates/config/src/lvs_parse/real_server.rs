//! The `real_server` block inside a `virtual_server`: weight, forwarding method, thresholds,
//! notify scripts and checkers, kept as read until the virtual server's defaults apply.

use std::net::IpAddr;

use crate::lvs::LbKind;
use crate::lvs_checkers::{
    self, positive_seconds, timing_keyword, ParsedChecker, TimingWords, CHECKER_KEYWORDS,
    MAX_CONNECT_TIMEOUT_SECS,
};
use crate::tree::{Stmt, Word};
use crate::values::Ctx;

use super::words::{command_line, forwarding, server_address};
use super::MAX_WEIGHT;

/// A real server as read; [`super::finish`] resolves it against its virtual server.
pub(super) struct ParsedRs {
    pub(super) key: Word,
    pub(super) address: IpAddr,
    pub(super) port: u16,
    pub(super) weight: Option<u32>,
    pub(super) lb_kind: Option<LbKind>,
    pub(super) inhibit: Option<bool>,
    pub(super) timing: TimingWords,
    pub(super) uthreshold: u32,
    pub(super) lthreshold: u32,
    pub(super) notify_up: Option<String>,
    pub(super) notify_down: Option<String>,
    pub(super) smtp_alert: Option<bool>,
    pub(super) virtualhost: Option<String>,
    pub(super) checkers: Vec<(ParsedChecker, Word)>,
}

/// `real_server IP [PORT] { ... }`: its settings and checkers (no block: a server with no
/// checks).
pub(super) fn parse(stmt: &Stmt, ctx: &mut Ctx) -> Option<ParsedRs> {
    let (address, port) = server_address(stmt, "real_server", ctx)?;
    let mut rs = ParsedRs {
        key: stmt.key.clone(),
        address,
        port,
        weight: None,
        lb_kind: None,
        inhibit: None,
        timing: TimingWords::default(),
        uthreshold: 0,
        lthreshold: 0,
        notify_up: None,
        notify_down: None,
        smtp_alert: None,
        virtualhost: None,
        checkers: Vec::new(),
    };
    let Some(block) = stmt.block.as_ref() else {
        // keepalived accepts `real_server IP PORT` with no block: a server with no checks.
        return Some(rs);
    };
    for s in &block.stmts {
        let k = s.key.text.as_str();
        match k {
            "weight" => {
                if let Some(v) = ctx.int(s, 0u32, MAX_WEIGHT) {
                    rs.weight = Some(v);
                }
            }
            "lvs_method" => {
                if let Some(kind) = forwarding(s, ctx) {
                    rs.lb_kind = Some(kind);
                }
            }
            "uthreshold" => {
                if let Some(v) = ctx.int(s, 0u32, u32::MAX) {
                    rs.uthreshold = v;
                }
            }
            "lthreshold" => {
                if let Some(v) = ctx.int(s, 0u32, u32::MAX) {
                    rs.lthreshold = v;
                }
            }
            "inhibit_on_failure" => {
                if let Some(v) = ctx.flag(s) {
                    rs.inhibit = Some(v);
                }
            }
            "notify_up" | "notify_down" => {
                let slot = if k == "notify_up" { &mut rs.notify_up } else { &mut rs.notify_down };
                let taken = slot.is_some();
                if let Some(cmd) = command_line(s, ctx) {
                    if taken {
                        ctx.error(&s.key, format!("`{k}` is given twice in this real_server"));
                    } else {
                        *slot = Some(cmd);
                    }
                }
            }
            "retry" => {
                if let Some(v) = ctx.int(s, 1u32, u32::MAX) {
                    rs.timing.retry = Some(v);
                }
            }
            "alpha" | "delay_before_retry" | "warmup" | "delay_loop" => {
                timing_keyword(s, &mut rs.timing, ctx);
            }
            "connect_timeout" => {
                if let Some(v) = positive_seconds(s, MAX_CONNECT_TIMEOUT_SECS, ctx) {
                    rs.timing.connect_timeout = Some(v);
                }
            }
            "smtp_alert" => {
                if let Some(v) = ctx.flag(s) {
                    rs.smtp_alert = Some(v);
                }
            }
            "virtualhost" => {
                if let Some(w) = ctx.one(s, "a host name") {
                    rs.virtualhost = Some(w.text.clone());
                }
            }
            "snmp_name" => ctx.warn(
                &s.key,
                "`snmp_name` names the server in keepalived's SNMP tables; tandem has no SNMP agent (ignored)",
            ),
            _ if CHECKER_KEYWORDS.contains(&k) => {
                if let Some(c) = lvs_checkers::parse(s, ctx) {
                    rs.checkers.push((c, s.key.clone()));
                }
            }
            _ => ctx.unknown(s, "real_server"),
        }
    }
    Some(rs)
}
