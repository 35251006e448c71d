//! The `virtual_server` block: its head (`IP PORT`, `fwmark N`, `group NAME`) and every
//! setting in it; its real and sorry servers are read by their own modules.

use std::time::Duration;

use crate::lvs::{
    Family, Granularity, LbAlgo, LbKind, Protocol, SchedulerFlags, ServiceAddress, VirtualServer,
};
use crate::lvs_checkers::{
    positive_seconds, timing_keyword, TimingWords, MAX_CONNECT_TIMEOUT_SECS, MAX_DELAY_SECS,
};
use crate::tree::{Stmt, Word};
use crate::values::Ctx;

use super::real_server::{self, ParsedRs};
use super::sorry_server::{self, ParsedSorry};
use super::words::{address_and_port, command_line, forwarding};
use super::{DEFAULT_PERSISTENCE, MAX_PERSISTENCE_SECS, MAX_WEIGHT};

/// A virtual server as read, with what is resolved once the whole block is known.
pub(crate) struct ParsedVs {
    pub(super) vs: VirtualServer,
    pub(super) key: Word,
    pub(super) lb_algo_set: bool,
    pub(super) lb_kind: Option<LbKind>,
    pub(super) timing: TimingWords,
    pub(super) connect_timeout: Duration,
    pub(super) weight: u32,
    pub(super) inhibit: bool,
    pub(super) granularity_word: bool,
    pub(super) sorry: Option<ParsedSorry>,
    pub(super) reals: Vec<ParsedRs>,
}

/// `virtual_server IP PORT | fwmark N | group NAME { ... }`.
pub(crate) fn parse(stmt: &Stmt, ctx: &mut Ctx) -> Option<ParsedVs> {
    let service = service_address(stmt, ctx)?;
    let Some(block) = stmt.block.as_ref() else {
        ctx.error(&stmt.key, "`virtual_server` expects a block `{ ... }`");
        return None;
    };
    let family = match &service {
        ServiceAddress::Socket { address, .. } => Some(Family::of(address)),
        _ => None,
    };
    let mut p = ParsedVs {
        vs: VirtualServer {
            service,
            family,
            delay_loop: Duration::from_secs(60),
            lb_algo: LbAlgo::Wlc,
            lb_kind: LbKind::Nat,
            scheduler_flags: SchedulerFlags::default(),
            persistence_timeout: None,
            persistence_granularity: None,
            persistence_engine: None,
            protocol: None,
            ha_suspend: false,
            virtualhost: None,
            alpha: false,
            omega: false,
            quorum: 1,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            sorry_server: None,
            smtp_alert: false,
            real_servers: Vec::new(),
            location: stmt.key.loc.clone(),
        },
        key: stmt.key.clone(),
        lb_algo_set: false,
        lb_kind: None,
        timing: TimingWords::default(),
        connect_timeout: Duration::from_secs(5),
        weight: 1,
        inhibit: false,
        granularity_word: false,
        sorry: None,
        reals: Vec::new(),
    };
    let mut smtp_alert = None;
    for s in &block.stmts {
        let k = s.key.text.as_str();
        match k {
            "retry" => {
                if let Some(v) = ctx.int(s, 1u32, u32::MAX) {
                    p.timing.retry = Some(v);
                }
            }
            "delay_before_retry" | "warmup" => {
                timing_keyword(s, &mut p.timing, ctx);
            }
            "delay_loop" => {
                if let Some(v) = positive_seconds(s, MAX_DELAY_SECS, ctx) {
                    p.vs.delay_loop = v;
                }
            }
            "connect_timeout" => {
                if let Some(v) = positive_seconds(s, MAX_CONNECT_TIMEOUT_SECS, ctx) {
                    p.connect_timeout = v;
                }
            }
            "ip_family" => {
                if let Some(w) = ctx.one(s, "inet or inet6") {
                    let f = match w.text.as_str() {
                        "inet" => Family::Inet,
                        "inet6" => Family::Inet6,
                        other => {
                            ctx.error(w, format!("`ip_family` expects inet or inet6, found `{other}`"));
                            continue;
                        }
                    };
                    if p.vs.family.is_some_and(|have| have != f) {
                        ctx.error(w, format!("`ip_family {}` conflicts with the virtual server's address", w.text));
                    } else {
                        p.vs.family = Some(f);
                    }
                }
            }
            "inhibit_on_failure" => {
                if ctx.switch(s).is_some() {
                    p.inhibit = true;
                }
            }
            "lb_algo" | "lvs_sched" => {
                if let Some(w) = ctx.one(s, "a scheduler (rr, wrr, lc, wlc, sh, mh, ...)") {
                    match LbAlgo::from_name(&w.text) {
                        Some(a) => {
                            p.vs.lb_algo = a;
                            p.lb_algo_set = true;
                        }
                        None => {
                            let names: Vec<&str> = LbAlgo::ALL.iter().map(|(n, _)| *n).collect();
                            ctx.error(
                                w,
                                format!("`{k}` expects one of {}, found `{}`", names.join(", "), w.text),
                            );
                        }
                    }
                }
            }
            "hashed" | "ops" | "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback"
            | "mh-port" | "mh-fallback" => scheduler_flag(s, &mut p, ctx),
            "lb_kind" | "lvs_method" => {
                if let Some(kind) = forwarding(s, ctx) {
                    p.lb_kind = Some(kind);
                }
            }
            "persistence_engine" => {
                if let Some(w) = ctx.one(s, "a persistence engine name (e.g. sip)") {
                    p.vs.persistence_engine = Some(w.text.clone());
                }
            }
            "persistence_timeout" => {
                if !ctx.no_block(s) {
                    continue;
                }
                if s.args.is_empty() {
                    p.vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
                } else if let Some(v) = ctx.int(s, 1u32, MAX_PERSISTENCE_SECS) {
                    p.vs.persistence_timeout = Some(Duration::from_secs(v.into()));
                }
            }
            "persistence_granularity" => {
                if let Some(w) = ctx.one(s, "an IPv4 netmask or an IPv6 prefix length") {
                    let v6 = match p.vs.family {
                        Some(f) => f == Family::Inet6,
                        None => !w.text.contains('.'),
                    };
                    let g = if v6 {
                        w.text.parse::<u8>().ok().filter(|l| (1..=128).contains(l)).map(Granularity::PrefixLen)
                    } else {
                        w.text.parse().ok().map(Granularity::Netmask)
                    };
                    match g {
                        Some(g) => {
                            p.vs.persistence_granularity = Some(g);
                            p.granularity_word = true;
                            if p.vs.family.is_none() {
                                p.vs.family = Some(if v6 { Family::Inet6 } else { Family::Inet });
                            }
                        }
                        None => ctx.error(
                            w,
                            format!(
                                "`persistence_granularity` expects {}, found `{}`",
                                if v6 { "an IPv6 prefix length 1..=128" } else { "an IPv4 netmask such as 255.255.255.0" },
                                w.text
                            ),
                        ),
                    }
                }
            }
            "protocol" => {
                if let Some(w) = ctx.one(s, "TCP, UDP or SCTP") {
                    match w.text.to_ascii_uppercase().as_str() {
                        "TCP" => p.vs.protocol = Some(Protocol::Tcp),
                        "UDP" => p.vs.protocol = Some(Protocol::Udp),
                        "SCTP" => p.vs.protocol = Some(Protocol::Sctp),
                        _ => ctx.error(w, format!("`protocol` expects TCP, UDP or SCTP, found `{}`", w.text)),
                    }
                }
            }
            "ha_suspend" => {
                if ctx.switch(s).is_some() {
                    p.vs.ha_suspend = true;
                }
            }
            "smtp_alert" => {
                if let Some(v) = ctx.flag(s) {
                    smtp_alert = Some(v);
                }
            }
            "virtualhost" => {
                if let Some(w) = ctx.one(s, "a host name") {
                    p.vs.virtualhost = Some(w.text.clone());
                }
            }
            "snmp_name" => ctx.warn(
                &s.key,
                "`snmp_name` names the service in keepalived's SNMP tables; tandem has no SNMP agent (ignored)",
            ),
            "alpha" => {
                if ctx.switch(s).is_some() {
                    p.vs.alpha = true;
                }
            }
            "omega" => {
                if ctx.switch(s).is_some() {
                    p.vs.omega = true;
                }
            }
            "quorum_up" | "quorum_down" => {
                let slot = if k == "quorum_up" { &mut p.vs.quorum_up } else { &mut p.vs.quorum_down };
                let taken = slot.is_some();
                if let Some(cmd) = command_line(s, ctx) {
                    if taken {
                        ctx.error(&s.key, format!("`{k}` is given twice in this virtual_server"));
                    } else {
                        *slot = Some(cmd);
                    }
                }
            }
            "quorum" => {
                if let Some(v) = ctx.int(s, 1u32, u32::MAX) {
                    p.vs.quorum = v;
                }
            }
            "hysteresis" => {
                if let Some(v) = ctx.int(s, 0u32, u32::MAX) {
                    p.vs.hysteresis = v;
                }
            }
            "weight" => {
                if let Some(v) = ctx.int(s, 1u32, MAX_WEIGHT) {
                    p.weight = v;
                }
            }
            "sorry_server" => {
                if let Some(sorry) = sorry_server::parse(s, ctx) {
                    p.sorry = Some(sorry);
                }
            }
            "sorry_server_inhibit" => sorry_server::inhibit(s, p.sorry.as_mut(), ctx),
            "sorry_server_lvs_method" => sorry_server::lvs_method(s, p.sorry.as_mut(), ctx),
            "real_server" => {
                if let Some(rs) = real_server::parse(s, ctx) {
                    p.reals.push(rs);
                }
            }
            _ => ctx.unknown(s, "virtual_server"),
        }
    }
    p.vs.smtp_alert = smtp_alert.unwrap_or(false);
    Some(p)
}

/// The words after `virtual_server`.
fn service_address(stmt: &Stmt, ctx: &mut Ctx) -> Option<ServiceAddress> {
    let (first, second) = match stmt.args.as_slice() {
        [] => {
            ctx.error(
                &stmt.key,
                "`virtual_server` expects IP [PORT], `fwmark N` or `group NAME`",
            );
            return None;
        }
        [first] => (first, None),
        [first, second, rest @ ..] => {
            if let Some(extra) = rest.first() {
                ctx.warn(extra, format!("`virtual_server`: `{}` and what follows are ignored, as keepalived ignores them", extra.text));
            }
            (first, Some(second))
        }
    };
    match (first.text.as_str(), second) {
        ("group", Some(name)) => Some(ServiceAddress::Group(name.text.clone())),
        ("fwmark", Some(mark)) => ctx
            .int_word("virtual_server fwmark", mark, 0u32, u32::MAX)
            .map(ServiceAddress::Fwmark),
        ("group" | "fwmark", None) => {
            ctx.error(
                first,
                format!(
                    "`virtual_server {}` expects a {} after it",
                    first.text,
                    if first.text == "group" {
                        "name"
                    } else {
                        "mark"
                    }
                ),
            );
            None
        }
        _ => {
            let (address, port) = address_and_port(first, second, "virtual_server", ctx)?;
            Some(ServiceAddress::Socket { address, port })
        }
    }
}

/// `ops`, `flag-N`, `sh-port`, ...: keepalived reads them against the scheduler set so far.
fn scheduler_flag(s: &Stmt, p: &mut ParsedVs, ctx: &mut Ctx) {
    if ctx.switch(s).is_none() {
        return;
    }
    let k = s.key.text.as_str();
    let f = &mut p.vs.scheduler_flags;
    let algo = p.vs.lb_algo;
    let set = p.lb_algo_set;
    match k {
        "ops" => f.one_packet = true,
        "flag-1" => f.flag1 = true,
        "flag-2" => f.flag2 = true,
        "flag-3" => f.flag3 = true,
        "sh-port" if set && algo == LbAlgo::Sh => f.flag2 = true,
        "sh-fallback" if set && algo == LbAlgo::Sh => f.flag1 = true,
        "mh-port" if set && algo == LbAlgo::Mh => f.flag2 = true,
        "mh-fallback" if set && algo == LbAlgo::Mh => f.flag1 = true,
        _ if set && matches!(algo, LbAlgo::Sh | LbAlgo::Mh) => ctx.warn(
            &s.key,
            format!(
                "`{k}` has no effect with lb_algo {}, as in keepalived (ignored)",
                algo.name()
            ),
        ),
        _ => ctx.error(
            &s.key,
            format!("`{k}` applies only to the sh and mh schedulers (set `lb_algo` before it)"),
        ),
    }
}
