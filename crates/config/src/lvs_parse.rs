//! `virtual_server`, `real_server`, `sorry_server` and `virtual_server_group` as keepalived
//! 2.2 reads them: what its parser reports is an error here (so `tandemd --check` refuses what
//! `keepalived -t` refuses), what it silently ignores is a warning.

use std::net::IpAddr;
use std::time::Duration;

use crate::lvs::{
    Family, Granularity, GroupEntry, LbAlgo, LbKind, Protocol, RealServer, SchedulerFlags,
    ServiceAddress, SorryServer, Tunnel, TunnelChecksum, TunnelKind, VirtualServer,
    VirtualServerGroup,
};
use crate::lvs_checkers::{
    self, positive_seconds, timing_keyword, Inherited, ParsedChecker, TimingWords,
    CHECKER_KEYWORDS, MAX_CONNECT_TIMEOUT_SECS, MAX_DELAY_SECS,
};
use crate::model::Config;
use crate::tree::{Stmt, Word};
use crate::values::Ctx;

/// keepalived's persistence timeout when persistence is implied (`persistence_timeout` with
/// no value, a granularity, a zero port).
const DEFAULT_PERSISTENCE: Duration = Duration::from_secs(360);
/// The longest persistence_timeout keepalived accepts: 31 days.
const MAX_PERSISTENCE_SECS: u32 = 31 * 86400;
/// IPVS weights are signed 32-bit.
const MAX_WEIGHT: u32 = i32::MAX as u32;

/// A virtual server as read, with what is resolved once the whole block is known.
pub(crate) struct ParsedVs {
    vs: VirtualServer,
    key: Word,
    lb_algo_set: bool,
    lb_kind: Option<LbKind>,
    timing: TimingWords,
    connect_timeout: Duration,
    weight: u32,
    inhibit: bool,
    granularity_word: bool,
    sorry: Option<ParsedSorry>,
    reals: Vec<ParsedRs>,
}

struct ParsedSorry {
    server: SorryServer,
    lb_kind: Option<LbKind>,
}

struct ParsedRs {
    key: Word,
    address: IpAddr,
    port: u16,
    weight: Option<u32>,
    lb_kind: Option<LbKind>,
    inhibit: Option<bool>,
    timing: TimingWords,
    uthreshold: u32,
    lthreshold: u32,
    notify_up: Option<String>,
    notify_down: Option<String>,
    smtp_alert: Option<bool>,
    virtualhost: Option<String>,
    checkers: Vec<(ParsedChecker, Word)>,
}

/// `virtual_server IP PORT | fwmark N | group NAME { ... }`.
pub(crate) fn virtual_server(stmt: &Stmt, ctx: &mut Ctx) -> Option<ParsedVs> {
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
                if let Some((address, port)) = server_address(s, "sorry_server", ctx) {
                    p.sorry = Some(ParsedSorry {
                        server: SorryServer {
                            address,
                            port,
                            inhibit: false,
                            lb_kind: LbKind::Nat,
                            location: s.key.loc.clone(),
                        },
                        lb_kind: None,
                    });
                }
            }
            "sorry_server_inhibit" => match p.sorry.as_mut() {
                Some(sorry) if ctx.switch(s).is_some() => sorry.server.inhibit = true,
                Some(_) => {}
                None => ctx.error(&s.key, "`sorry_server_inhibit` before (or without) `sorry_server`"),
            },
            "sorry_server_lvs_method" => {
                let Some(kind) = forwarding(s, ctx) else { continue };
                match p.sorry.as_mut() {
                    Some(sorry) => sorry.lb_kind = Some(kind),
                    None => ctx.error(&s.key, "`sorry_server_lvs_method` before (or without) `sorry_server`"),
                }
            }
            "real_server" => {
                if let Some(rs) = real_server(s, ctx) {
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

/// `IP [PORT]` of a virtual, real or sorry server: a port of 0 (or none) is no port.
fn address_and_port(
    addr: &Word,
    port: Option<&Word>,
    key: &str,
    ctx: &mut Ctx,
) -> Option<(IpAddr, u16)> {
    let text = addr.text.as_str();
    let bare = text.split(['-', '/']).next().unwrap_or(text);
    let Ok(address) = bare.parse::<IpAddr>() else {
        ctx.error(
            addr,
            format!("`{key}` expects an IPv4 or IPv6 address, found `{text}`"),
        );
        return None;
    };
    if bare.len() != text.len() {
        ctx.warn(
            addr,
            format!(
                "`{key}`: `{}` after the address is ignored, as keepalived ignores it",
                &text[bare.len()..]
            ),
        );
    }
    let port = match port {
        None => 0,
        Some(w) if !w.text.is_empty() && w.text.bytes().all(|b| b == b'0') => 0,
        Some(w) => ctx.int_word(&format!("{key} port"), w, 1u16, 65535)?,
    };
    Some((address, port))
}

/// `sorry_server IP [PORT]` / `real_server IP [PORT]` heads.
fn server_address(s: &Stmt, key: &str, ctx: &mut Ctx) -> Option<(IpAddr, u16)> {
    match s.args.as_slice() {
        [] => {
            ctx.error(&s.key, format!("`{key}` expects IP [PORT]"));
            None
        }
        [addr, rest @ ..] => {
            if let Some(extra) = rest.get(1) {
                ctx.warn(
                    extra,
                    format!(
                        "`{key}`: `{}` and what follows are ignored, as keepalived ignores them",
                        extra.text
                    ),
                );
            }
            address_and_port(addr, rest.first(), key, ctx)
        }
    }
}

/// `lb_kind NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]`.
fn forwarding(s: &Stmt, ctx: &mut Ctx) -> Option<LbKind> {
    let k = &s.key.text;
    if !ctx.no_block(s) {
        return None;
    }
    let Some(method) = s.args.first() else {
        ctx.error(&s.key, format!("`{k}` expects NAT, DR or TUN"));
        return None;
    };
    let mut tunnel = Tunnel::default();
    let kind = match method.text.as_str() {
        "NAT" => LbKind::Nat,
        "DR" => LbKind::Dr,
        "TUN" => LbKind::Tun(tunnel),
        other => {
            ctx.error(
                method,
                format!("`{k}` expects NAT, DR or TUN, found `{other}`"),
            );
            return None;
        }
    };
    let mut words = s.args[1..].iter();
    while let Some(w) = words.next() {
        match w.text.as_str() {
            "type" => {
                let Some(t) = words.next() else {
                    ctx.error(w, format!("`{k}`: `type` expects ipip, gue or gre"));
                    return None;
                };
                tunnel.kind = match t.text.as_str() {
                    "ipip" => TunnelKind::Ipip,
                    "gue" => TunnelKind::Gue,
                    "gre" => TunnelKind::Gre,
                    other => {
                        ctx.error(
                            t,
                            format!("`{k}`: unknown tunnel type `{other}` (ipip, gue or gre)"),
                        );
                        return None;
                    }
                };
            }
            "port" => {
                let Some(p) = words.next() else {
                    ctx.error(w, format!("`{k}`: `port` expects 1..=65535"));
                    return None;
                };
                tunnel.port = Some(ctx.int_word("tunnel port", p, 1u16, 65535)?);
            }
            "nocsum" => tunnel.checksum = TunnelChecksum::NoCsum,
            "csum" => tunnel.checksum = TunnelChecksum::Csum,
            "remcsum" => tunnel.checksum = TunnelChecksum::RemCsum,
            other => {
                ctx.error(w, format!("`{k}`: unknown tunnel option `{other}`"));
                return None;
            }
        }
    }
    if s.args.len() > 1 {
        if kind != LbKind::Tun(Tunnel::default()) {
            ctx.error(&s.args[1], format!("`{k}`: tunnel options need TUN"));
            return None;
        }
        if (tunnel.kind == TunnelKind::Gue) != tunnel.port.is_some() {
            ctx.error(
                method,
                format!("`{k}`: a gue tunnel needs a port, and only gue takes one"),
            );
            return None;
        }
        if tunnel.kind == TunnelKind::Ipip && tunnel.checksum != TunnelChecksum::NoCsum {
            ctx.error(
                method,
                format!("`{k}`: ipip tunnels take no checksum option"),
            );
            return None;
        }
        if tunnel.kind == TunnelKind::Gre && tunnel.checksum == TunnelChecksum::RemCsum {
            ctx.error(
                method,
                format!("`{k}`: gre tunnels take no remote checksum"),
            );
            return None;
        }
        return Some(LbKind::Tun(tunnel));
    }
    Some(kind)
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

/// A script line of the LVS side: the whole rest of the line is the command and its
/// arguments (keepalived reads these with quotes and escapes).
fn command_line(s: &Stmt, ctx: &mut Ctx) -> Option<String> {
    if !ctx.no_block(s) {
        return None;
    }
    if s.args.is_empty() {
        ctx.error(
            &s.key,
            format!("`{}` expects a script path or a quoted command", s.key.text),
        );
        return None;
    }
    let words: Vec<String> = s
        .args
        .iter()
        .map(|w| {
            if w.text.contains(char::is_whitespace) && s.args.len() > 1 {
                format!("\"{}\"", w.text.replace('"', "\\\""))
            } else {
                w.text.clone()
            }
        })
        .collect();
    Some(words.join(" "))
}

fn real_server(stmt: &Stmt, ctx: &mut Ctx) -> Option<ParsedRs> {
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

/// `virtual_server_group NAME { IP[-LAST|/LEN] [PORT] ... fwmark N [inet|inet6] ... }`.
pub(crate) fn virtual_server_group(stmt: &Stmt, ctx: &mut Ctx) -> Option<VirtualServerGroup> {
    let name = crate::parser::block_name(stmt, ctx)?;
    let block = stmt.block.as_ref()?;
    let mut g = VirtualServerGroup {
        name: name.text.clone(),
        entries: Vec::new(),
        location: stmt.key.loc.clone(),
    };
    for line in &block.stmts {
        if !ctx.no_block(line) {
            continue;
        }
        if line.key.text == "fwmark" {
            let Some(mark) = line.args.first() else {
                ctx.error(
                    &line.key,
                    "`fwmark` expects a mark 0..=4294967295 [inet|inet6]",
                );
                continue;
            };
            let Some(mark) = ctx.int_word("fwmark", mark, 0u32, u32::MAX) else {
                continue;
            };
            let family = match line.args.get(1).map(|w| (w, w.text.as_str())) {
                None => None,
                Some((_, "inet")) => Some(Family::Inet),
                Some((_, "inet6")) => Some(Family::Inet6),
                Some((w, other)) => {
                    ctx.error(
                        w,
                        format!("`fwmark {mark}`: family `{other}` is not inet or inet6"),
                    );
                    continue;
                }
            };
            g.entries.push(GroupEntry::Fwmark { mark, family });
        } else if let Some(e) = group_range(line, ctx) {
            g.entries.push(e);
        }
    }
    if g.entries.is_empty() {
        ctx.error(
            &name,
            format!("virtual_server_group `{}` has no entries", g.name),
        );
        return None;
    }
    let v4 = g
        .entries
        .iter()
        .any(|e| entry_family(e) == Some(Family::Inet));
    let v6 = g
        .entries
        .iter()
        .any(|e| entry_family(e) == Some(Family::Inet6));
    let bare_mark = g
        .entries
        .iter()
        .any(|e| matches!(e, GroupEntry::Fwmark { family: None, .. }));
    if v4 && v6 && bare_mark {
        ctx.error(
            &name,
            format!("virtual_server_group `{}` has IPv4 and IPv6 entries and a fwmark without a family (write `fwmark N inet|inet6`)", g.name),
        );
        return None;
    }
    Some(g)
}

fn entry_family(e: &GroupEntry) -> Option<Family> {
    match e {
        GroupEntry::Range { first, .. } => Some(Family::of(first)),
        GroupEntry::Fwmark { family, .. } => *family,
    }
}

/// `IP [PORT]`, `IP-LAST [PORT]` (LAST: a last octet, a last IPv6 group in hex, or a whole
/// address) or `IP/LEN [PORT]`.
fn group_range(line: &Stmt, ctx: &mut Ctx) -> Option<GroupEntry> {
    let w = &line.key;
    let text = w.text.as_str();
    let bare = text.split(['-', '/']).next().unwrap_or(text);
    let Ok(first) = bare.parse::<IpAddr>() else {
        ctx.error(
            w,
            format!(
                "virtual_server_group: expects IP[-LAST|/LEN] [PORT] or `fwmark N`, found `{text}`"
            ),
        );
        return None;
    };
    if let Some(extra) = line.args.get(1) {
        ctx.warn(extra, format!("virtual_server_group: `{}` and what follows are ignored, as keepalived ignores them", extra.text));
    }
    let port = match line.args.first() {
        None => 0,
        Some(p) if p.text.bytes().all(|b| b == b'0') => 0,
        Some(p) => ctx.int_word("virtual_server_group port", p, 1u16, 65535)?,
    };
    let rest = &text[bare.len()..];
    let bad = |ctx: &mut Ctx, why: &str| {
        ctx.error(w, format!("virtual_server_group: `{text}`: {why}"));
        None
    };
    let last = if let Some(len) = rest.strip_prefix('/') {
        let max = if first.is_ipv4() { 32 } else { 128 };
        let Some(len) = len.parse::<u32>().ok().filter(|l| (1..=max).contains(l)) else {
            return bad(ctx, &format!("the prefix length must be 1..={max}"));
        };
        let host_bits = max - len;
        let (f, l) = match first {
            IpAddr::V4(a) => {
                let v = u32::from(a);
                let mask = if host_bits == 32 {
                    u32::MAX
                } else {
                    (1u32 << host_bits) - 1
                };
                if v & mask != 0 {
                    return bad(ctx, "address bits beyond the prefix length are set");
                }
                (first, IpAddr::from(std::net::Ipv4Addr::from(v | mask)))
            }
            IpAddr::V6(a) => {
                let v = u128::from(a);
                let mask = if host_bits == 128 {
                    u128::MAX
                } else {
                    (1u128 << host_bits) - 1
                };
                if v & mask != 0 {
                    return bad(ctx, "address bits beyond the prefix length are set");
                }
                (first, IpAddr::from(std::net::Ipv6Addr::from(v | mask)))
            }
        };
        let _ = f;
        l
    } else if let Some(end) = rest.strip_prefix('-') {
        let whole = if first.is_ipv4() {
            end.contains('.')
        } else {
            end.contains(':')
        };
        if whole {
            let Ok(last) = end.parse::<IpAddr>() else {
                return bad(ctx, "the range end is not an address");
            };
            if last.is_ipv4() != first.is_ipv4() {
                return bad(ctx, "the range ends in another address family");
            }
            if last < first {
                return bad(ctx, "the range ends before it starts");
            }
            last
        } else {
            match first {
                IpAddr::V4(a) => {
                    let Some(end) = end.parse::<u8>().ok() else {
                        return bad(ctx, "the range end must be a last octet 0..=255");
                    };
                    let o = a.octets();
                    if end <= o[3] {
                        return bad(ctx, "the range end is not greater than its start");
                    }
                    IpAddr::from([o[0], o[1], o[2], end])
                }
                IpAddr::V6(a) => {
                    let Some(end) = u16::from_str_radix(end, 16).ok() else {
                        return bad(ctx, "the range end must be a last group 0..=ffff (hex)");
                    };
                    let mut s = a.segments();
                    if end <= s[7] {
                        return bad(ctx, "the range end is not greater than its start");
                    }
                    s[7] = end;
                    IpAddr::from(s)
                }
            }
        }
    } else {
        first
    };
    Some(GroupEntry::Range { first, last, port })
}

/// Links groups, applies each virtual server's defaults to its real servers and checkers, and
/// makes the checks keepalived makes once the file is read.
pub(crate) fn finish(
    parsed: Vec<ParsedVs>,
    groups: Vec<(VirtualServerGroup, Word)>,
    config: &Config,
    ctx: &mut Ctx,
) -> (Vec<VirtualServer>, Vec<VirtualServerGroup>) {
    let mut kept: Vec<VirtualServerGroup> = Vec::new();
    for (g, name) in groups {
        if kept.iter().any(|k| k.name == g.name) {
            ctx.warn(&name, format!("virtual_server_group `{}` is defined twice: this one is ignored, as keepalived uses the first", g.name));
            continue;
        }
        kept.push(g);
    }
    let mut out = Vec::new();
    for p in parsed {
        let group = match &p.vs.service {
            ServiceAddress::Group(name) => match kept.iter().find(|g| &g.name == name) {
                Some(g) => Some(g),
                None => {
                    ctx.warn(&p.key, format!("no virtual_server_group named `{name}`: this virtual_server is ignored, as keepalived ignores it"));
                    continue;
                }
            },
            _ => None,
        };
        if let Some(vs) = finish_one(p, group, config, ctx) {
            out.push(vs);
        }
    }
    (out, kept)
}

fn finish_one(
    mut p: ParsedVs,
    group: Option<&VirtualServerGroup>,
    config: &Config,
    ctx: &mut Ctx,
) -> Option<VirtualServer> {
    let key = p.key.clone();
    let name = describe(&p.vs.service);
    let fwmark_only = match (&p.vs.service, group) {
        (ServiceAddress::Fwmark(_), _) => true,
        (_, Some(g)) => g
            .entries
            .iter()
            .all(|e| matches!(e, GroupEntry::Fwmark { .. })),
        _ => false,
    };
    let has_ranges = !fwmark_only;
    let any_fwmark = match (&p.vs.service, group) {
        (ServiceAddress::Fwmark(_), _) => true,
        (_, Some(g)) => g
            .entries
            .iter()
            .any(|e| matches!(e, GroupEntry::Fwmark { .. })),
        _ => false,
    };
    if p.vs.family.is_none() {
        if let Some(g) = group {
            let fams: Vec<Family> = g.entries.iter().filter_map(entry_family).collect();
            if fams.windows(2).all(|w| w[0] == w[1]) {
                p.vs.family = fams.first().copied();
            }
        }
    }
    // A sorry server must be of the virtual server's family (unless tunnelled).
    if let Some(sorry) = &p.sorry {
        let fam = Family::of(&sorry.server.address);
        let tunnelled = matches!(sorry.lb_kind.or(p.lb_kind), Some(LbKind::Tun(_)));
        if !tunnelled {
            match p.vs.family {
                None => p.vs.family = Some(fam),
                Some(f) if f != fam => {
                    ctx.error(&key, format!("virtual_server {name}: the sorry_server {} is of another address family", sorry.server.address));
                }
                _ => {}
            }
        }
    }
    if p.reals.is_empty() {
        ctx.error(&key, format!("virtual_server {name} has no real_server"));
        return None;
    }
    if p.vs.ha_suspend && any_fwmark {
        ctx.error(
            &key,
            format!("virtual_server {name}: `ha_suspend` cannot be used with fwmarks"),
        );
        p.vs.ha_suspend = false;
    }
    if has_ranges {
        if p.vs.protocol.is_none() {
            ctx.error(&key, format!("virtual_server {name} has no `protocol` (keepalived would default to UDP): write `protocol TCP|UDP|SCTP`"));
            p.vs.protocol = Some(Protocol::Udp);
        }
        if p.vs.scheduler_flags.one_packet && p.vs.protocol != Some(Protocol::Udp) {
            ctx.error(
                &key,
                format!("virtual_server {name}: `ops` (one-packet scheduling) needs protocol UDP"),
            );
            p.vs.scheduler_flags.one_packet = false;
        }
        let zero_port = match (&p.vs.service, group) {
            (ServiceAddress::Socket { port, .. }, _) => *port == 0,
            (_, Some(g)) => g
                .entries
                .iter()
                .any(|e| matches!(e, GroupEntry::Range { port: 0, .. })),
            _ => false,
        };
        if zero_port && p.vs.persistence_timeout.is_none() && !p.granularity_word {
            ctx.error(&key, format!("virtual_server {name}: a service on every port (port 0) must be persistent: add `persistence_timeout`"));
            p.vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
        }
    }
    if fwmark_only && p.vs.protocol.is_some() {
        ctx.error(&key, format!("virtual_server {name}: `protocol` is meaningless for a fwmark service (keepalived ignores it and refuses the file): remove it"));
        p.vs.protocol = None;
    }
    if !p.lb_algo_set {
        ctx.error(&key, format!("virtual_server {name} has no `lb_algo` (keepalived would default to wlc): write `lb_algo`"));
    }
    if p.granularity_word && p.vs.persistence_timeout.is_none() {
        p.vs.persistence_timeout = Some(DEFAULT_PERSISTENCE);
    }
    // Real servers: duplicates, forwarding method, inherited settings.
    let vs_kind = p.lb_kind;
    let mut told_no_method = false;
    let mut no_method = |ctx: &mut Ctx| {
        if !told_no_method {
            ctx.error(&key, format!("virtual_server {name} has no `lb_kind` (keepalived would default to NAT): write `lb_kind NAT|DR|TUN`"));
            told_no_method = true;
        }
        LbKind::Nat
    };
    p.vs.lb_kind = vs_kind.unwrap_or(LbKind::Nat);
    let global_smtp = config.global.smtp_alert;
    let mut reals: Vec<RealServer> = Vec::new();
    let vs_port = match p.vs.service {
        ServiceAddress::Socket { port, .. } => Some(port),
        _ => None,
    };
    for r in std::mem::take(&mut p.reals) {
        let tunnelled = matches!(r.lb_kind.or(vs_kind), Some(LbKind::Tun(_)));
        let fam = Family::of(&r.address);
        if !tunnelled {
            match p.vs.family {
                None => p.vs.family = Some(fam),
                Some(f) if f != fam => {
                    ctx.error(
                        &r.key,
                        format!(
                            "real_server {}: not of the virtual server's address family",
                            r.address
                        ),
                    );
                    continue;
                }
                _ => {}
            }
        }
        if reals
            .iter()
            .any(|x| x.address == r.address && x.port == r.port)
        {
            ctx.error(
                &r.key,
                format!(
                    "virtual_server {name}: real_server {} {} is given twice",
                    r.address, r.port
                ),
            );
            continue;
        }
        let lb_kind = match r.lb_kind.or(vs_kind) {
            Some(k) => k,
            None => no_method(ctx),
        };
        let mut port = r.port;
        if lb_kind == LbKind::Nat {
            if port == 0 {
                if let Some(vp) = vs_port {
                    port = vp;
                }
            }
        } else if let Some(g) = group {
            for e in &g.entries {
                match e {
                    GroupEntry::Fwmark { .. } if port != 0 => ctx.error(&r.key, format!("real_server {} {port}: a fwmark service forwards without NAT to the port the client used: remove the port", r.address)),
                    GroupEntry::Range { port: gp, .. } if port != 0 && *gp != port => ctx.error(&r.key, format!("real_server {} {port}: without NAT the real server's port must be the virtual server's ({gp})", r.address)),
                    _ => {}
                }
            }
        } else if let Some(vp) = vs_port {
            if port == 0 {
                port = vp;
            } else if port != vp {
                ctx.error(&r.key, format!("real_server {} {port}: without NAT the real server's port must be the virtual server's ({vp})", r.address));
                port = vp;
            }
        } else if port != 0 {
            ctx.error(&r.key, format!("real_server {} {port}: a fwmark service forwards without NAT to the port the client used: remove the port", r.address));
            port = 0;
        }
        let vs_timing = TimingWords {
            alpha: Some(p.vs.alpha),
            ..p.timing
        };
        let inherited = Inherited {
            address: r.address,
            port,
            rs: &r.timing,
            vs: &vs_timing,
            vs_delay_loop: p.vs.delay_loop,
            vs_connect_timeout: p.connect_timeout,
        };
        let mut checkers = Vec::new();
        for (c, at) in r.checkers {
            let c = lvs_checkers::resolve(c, &inherited);
            lvs_checkers::check_link_local(&c, &at, ctx);
            if let crate::lvs::Checker::File(f) = &c {
                if !config.track_files.iter().any(|t| t.name == f.track_file) {
                    ctx.error(
                        &at,
                        format!("FILE_CHECK: no track_file named `{}`", f.track_file),
                    );
                }
            }
            checkers.push(c);
        }
        reals.push(RealServer {
            address: r.address,
            port,
            weight: r.weight.unwrap_or(p.weight),
            lb_kind,
            inhibit_on_failure: r.inhibit.unwrap_or(p.inhibit),
            alpha: r.timing.alpha.unwrap_or(p.vs.alpha),
            uthreshold: r.uthreshold,
            lthreshold: r.lthreshold,
            notify_up: r.notify_up,
            notify_down: r.notify_down,
            smtp_alert: r.smtp_alert.or(global_smtp).unwrap_or(true),
            virtualhost: r.virtualhost,
            checkers,
            location: r.key.loc.clone(),
        });
    }
    p.vs.smtp_alert = p.vs.smtp_alert || global_smtp.unwrap_or(false);
    if let Some(mut sorry) = p.sorry.take() {
        sorry.server.lb_kind = match sorry.lb_kind.or(vs_kind) {
            Some(k) => k,
            None => no_method(ctx),
        };
        if sorry.server.lb_kind != LbKind::Nat {
            match vs_port {
                Some(vp) if sorry.server.port == 0 => sorry.server.port = vp,
                Some(vp) if sorry.server.port != vp => {
                    ctx.error(&key, format!("virtual_server {name}: without NAT the sorry_server's port must be the virtual server's ({vp})"));
                    sorry.server.port = vp;
                }
                None if sorry.server.port != 0 => {
                    ctx.error(&key, format!("virtual_server {name}: a fwmark service's sorry_server takes no port without NAT"));
                    sorry.server.port = 0;
                }
                _ => {}
            }
        }
        if let Some(r) = reals
            .iter()
            .find(|r| r.address == sorry.server.address && r.port == sorry.server.port)
        {
            if r.inhibit_on_failure != sorry.server.inhibit {
                ctx.error(&key, format!("virtual_server {name}: the sorry_server is also a real_server, with another inhibit_on_failure setting"));
            }
        }
        p.vs.sorry_server = Some(sorry.server);
    }
    let weight_sum: u64 = reals.iter().map(|r| u64::from(r.weight)).sum();
    if u64::from(p.vs.quorum) > weight_sum {
        ctx.error(&key, format!("virtual_server {name}: quorum {} is more than the real servers' total weight {weight_sum}, so the service could never come up", p.vs.quorum));
        p.vs.quorum = weight_sum as u32;
    }
    if p.vs.hysteresis >= p.vs.quorum && p.vs.quorum > 0 {
        ctx.error(
            &key,
            format!(
                "virtual_server {name}: hysteresis {} must be less than the quorum {}",
                p.vs.hysteresis, p.vs.quorum
            ),
        );
        p.vs.hysteresis = p.vs.quorum - 1;
    }
    p.vs.real_servers = reals;
    Some(p.vs)
}

/// How keepalived names a virtual server in its messages.
fn describe(s: &ServiceAddress) -> String {
    match s {
        ServiceAddress::Socket {
            address: IpAddr::V6(a),
            port,
        } => format!("[{a}]:{port}"),
        ServiceAddress::Socket { address, port } => format!("{address}:{port}"),
        ServiceAddress::Fwmark(m) => format!("fwmark {m}"),
        ServiceAddress::Group(g) => format!("group {g}"),
    }
}
