//! `virtual_routes { ... }` and `virtual_rules { ... }` lines, read with keepalived 2.2's
//! grammar (the words of `ip route add` / `ip rule add`, in any order).

use std::net::IpAddr;

use crate::model::{RouteKind, RuleAction, Scope, VirtualRoute, VirtualRule};
use crate::tree::{Block, Stmt, Word};
use crate::values::Ctx;

/// First preference keepalived gives a rule written without one; each next one is one less.
const RULE_START_PRIORITY: u32 = 16384;

/// Route options tandem reads past and ignores, each with one value.
const ROUTE_IGNORED_WITH_VALUE: &[&str] = &[
    "tos",
    "dsfield",
    "protocol",
    "expires",
    "mtu",
    "hoplimit",
    "advmss",
    "rtt",
    "rttvar",
    "reordering",
    "window",
    "cwnd",
    "ssthresh",
    "realms",
    "rto_min",
    "initcwnd",
    "initrwnd",
    "features",
    "quickack",
    "congctl",
    "pref",
    "ttl-propagate",
    "fastopen_no_cookie",
    "from",
    "vrf",
    "track_group",
];

/// Route options tandem ignores that take no value.
const ROUTE_IGNORED_FLAGS: &[&str] = &["onlink", "add", "prepend", "append"];

/// Route options that change what the route is; tandem leaves such a route out.
const ROUTE_UNSUPPORTED: &[&str] = &["nexthop", "or", "encap", "as"];

/// Rule options tandem ignores, each with one value.
const RULE_IGNORED_WITH_VALUE: &[&str] = &[
    "tos",
    "dsfield",
    "realms",
    "suppress_prefixlength",
    "sup_pl",
    "suppress_ifgroup",
    "sup_group",
    "tunnel-id",
    "uidrange",
    "protocol",
    "ipproto",
    "sport",
    "dport",
    "track_group",
];

/// Reads every line of a `virtual_routes` block.
pub(crate) fn routes(b: &Block, ctx: &mut Ctx) -> Vec<VirtualRoute> {
    let mut out = Vec::new();
    for line in &b.stmts {
        if ctx.no_block(line) {
            if let Some(r) = route(line, ctx) {
                out.push(r);
            }
        }
    }
    out
}

/// Reads every line of a `virtual_rules` block; rules written without a preference are
/// numbered (per family) as keepalived does, across the whole file.
pub(crate) fn rules(b: &Block, ctx: &mut Ctx) -> Vec<VirtualRule> {
    let mut out = Vec::new();
    for line in &b.stmts {
        if ctx.no_block(line) {
            if let Some(r) = rule(line, ctx) {
                out.push(r);
            }
        }
    }
    out
}

/// The next word of the line, or an error saying what `opt` expects.
fn value<'w>(
    words: &mut impl Iterator<Item = &'w Word>,
    opt: &Word,
    block: &str,
    expects: &str,
    ctx: &mut Ctx,
) -> Option<&'w Word> {
    let v = words.next();
    if v.is_none() {
        let o = &opt.text;
        ctx.error(
            opt,
            format!("`{o}` in `{block}` expects {expects}, found end of line"),
        );
    }
    v
}

/// One family per line: the first address decides, the others must agree.
fn same_family(family: &mut Option<bool>, a: IpAddr, w: &Word, block: &str, ctx: &mut Ctx) -> bool {
    let v6 = a.is_ipv6();
    match *family {
        Some(f) if f != v6 => {
            ctx.error(
                w,
                format!("`{block}`: `{}` mixes IPv4 and IPv6 on one line", w.text),
            );
            false
        }
        _ => {
            *family = Some(v6);
            true
        }
    }
}

/// `ADDRESS[/PREFIX]` or `default` (for `to`, `from`, a route's destination).
fn prefix(w: &Word, block: &str, family: Option<bool>, ctx: &mut Ctx) -> Option<(IpAddr, u8)> {
    if w.text == "default" || w.text == "all" {
        let any: IpAddr = if family == Some(true) {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        };
        return Some((any, 0));
    }
    let (addr, len) = match w.text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (w.text.as_str(), None),
    };
    let Ok(a) = addr.parse::<IpAddr>() else {
        ctx.error(
            w,
            format!(
                "`{block}`: `{}` is not an address or prefix (nor an option tandem knows)",
                w.text
            ),
        );
        return None;
    };
    let max = if a.is_ipv4() { 32 } else { 128 };
    let len = match len.map(str::parse::<u8>) {
        None => max,
        Some(Ok(l)) if l <= max => l,
        Some(_) => {
            ctx.error(
                w,
                format!("`{block}`: prefix length of `{}` must be 0..={max}", w.text),
            );
            return None;
        }
    };
    Some((a, len))
}

/// A routing table: a number, `main`, `local`, `default`, or a name from iproute2's
/// `rt_tables`, as keepalived looks it up.
fn table(w: &Word, block: &str, ctx: &mut Ctx) -> Option<u32> {
    let t = w.text.as_str();
    let known = match t {
        "main" => Some(254),
        "local" => Some(255),
        "default" => Some(253),
        _ => t.parse::<u32>().ok().or_else(|| rt_tables_lookup(t)),
    };
    match known {
        Some(0) => {
            ctx.error(w, format!("`{block}`: table 0 is not valid"));
            None
        }
        Some(n) => Some(n),
        None => {
            ctx.error(
                w,
                format!("`{block}`: routing table `{t}` is not a number, main, local, default or a name in /etc/iproute2/rt_tables"),
            );
            None
        }
    }
}

/// A table name from `/etc/iproute2/rt_tables` (lines `NUMBER NAME`).
fn rt_tables_lookup(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/iproute2/rt_tables").ok()?;
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse::<u32>().ok()?, it.next()?))
        })
        .find(|(_, n)| *n == name)
        .map(|(id, _)| id)
}

fn route_scope(w: &Word, ctx: &mut Ctx) -> Option<Scope> {
    Some(match w.text.as_str() {
        "global" | "universe" => Scope::Global,
        "site" => Scope::Site,
        "link" => Scope::Link,
        "host" => Scope::Host,
        "nowhere" => Scope::Nowhere,
        t => match t.parse::<u8>() {
            Ok(n) => Scope::Other(n),
            Err(_) => {
                ctx.error(w, format!("`scope` in `virtual_routes` expects global, site, link, host, nowhere or 0..=255, found `{t}`"));
                return None;
            }
        },
    })
}

fn route_kind(t: &str) -> Option<RouteKind> {
    Some(match t {
        "unicast" => RouteKind::Unicast,
        "blackhole" => RouteKind::Blackhole,
        "unreachable" => RouteKind::Unreachable,
        "prohibit" => RouteKind::Prohibit,
        "throw" => RouteKind::Throw,
        "local" => RouteKind::Local,
        "broadcast" => RouteKind::Broadcast,
        "anycast" => RouteKind::Anycast,
        "multicast" => RouteKind::Multicast,
        _ => return None,
    })
}

fn route(line: &Stmt, ctx: &mut Ctx) -> Option<VirtualRoute> {
    const B: &str = "virtual_routes";
    let mut r = VirtualRoute {
        destination: std::net::Ipv4Addr::UNSPECIFIED.into(),
        prefix_len: 0,
        kind: RouteKind::Unicast,
        source: None,
        via: None,
        dev: None,
        scope: None,
        table: 254,
        metric: None,
        track: true,
        location: line.key.loc.clone(),
    };
    let mut family: Option<bool> = None;
    let mut destination: Option<(IpAddr, u8, &Word)> = None;
    let mut ok = true;
    let mut words = line.words();
    while let Some(w) = words.next() {
        let o = w.text.as_str();
        match o {
            "inet" | "inet6" => {
                if !same_family(&mut family, family_probe(o == "inet6"), w, B, ctx) {
                    ok = false;
                }
            }
            "src" => {
                let v = value(&mut words, w, B, "an address", ctx)?;
                let a = ctx.ip("src", v)?;
                ok &= same_family(&mut family, a, v, B, ctx);
                r.source = Some(a);
            }
            "via" | "gw" => {
                let mut v = value(&mut words, w, B, "an address", ctx)?;
                if v.text == "inet" || v.text == "inet6" {
                    v = value(&mut words, v, B, "an address", ctx)?;
                }
                let a = ctx.ip(o, v)?;
                ok &= same_family(&mut family, a, v, B, ctx);
                r.via = Some(a);
            }
            "table" => {
                let v = value(&mut words, w, B, "a table", ctx)?;
                r.table = table(v, B, ctx)?;
            }
            "scope" => {
                let v = value(&mut words, w, B, "a scope", ctx)?;
                r.scope = Some(route_scope(v, ctx)?);
            }
            "metric" | "priority" | "preference" => {
                let v = value(&mut words, w, B, "0..=4294967295", ctx)?;
                r.metric = Some(ctx.int_word(o, v, 0u32, u32::MAX)?);
            }
            "dev" | "oif" => {
                let v = value(&mut words, w, B, "an interface name", ctx)?;
                r.dev = Some(v.text.clone());
            }
            "no_track" => r.track = false,
            _ if ROUTE_IGNORED_WITH_VALUE.contains(&o) => {
                value(&mut words, w, B, "a value", ctx)?;
                ctx.warn(
                    w,
                    format!("`{o}` on a `{B}` line is not supported by tandem (ignored)"),
                );
            }
            _ if ROUTE_IGNORED_FLAGS.contains(&o) => {
                ctx.warn(
                    w,
                    format!("`{o}` on a `{B}` line is not supported by tandem (ignored)"),
                );
            }
            _ if ROUTE_UNSUPPORTED.contains(&o) => {
                ctx.warn(
                    w,
                    format!("`{o}` on a `{B}` line is not supported by tandem: this route will not be installed"),
                );
                return None;
            }
            _ => {
                // [to] [TYPE] PREFIX
                let mut w = w;
                if o == "to" {
                    w = value(&mut words, w, B, "a destination", ctx)?;
                }
                if let Some(kind) = route_kind(&w.text) {
                    r.kind = kind;
                    w = value(&mut words, w, B, "a destination", ctx)?;
                }
                let (a, len) = prefix(w, B, family, ctx)?;
                ok &= same_family(&mut family, a, w, B, ctx);
                destination = Some((a, len, w));
            }
        }
    }
    let Some((a, len, _)) = destination else {
        ctx.error(&line.key, format!("`{B}`: a route needs a destination"));
        return None;
    };
    r.destination = a;
    r.prefix_len = len;
    // `default` before any address: the family the rest of the line settled on.
    if family == Some(true) && a.is_ipv4() && a.is_unspecified() {
        r.destination = std::net::Ipv6Addr::UNSPECIFIED.into();
    }
    ok.then_some(r)
}

/// An address of the family, for [`same_family`] when `inet`/`inet6` is written.
fn family_probe(v6: bool) -> IpAddr {
    if v6 {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    }
}

fn rule(line: &Stmt, ctx: &mut Ctx) -> Option<VirtualRule> {
    const B: &str = "virtual_rules";
    let mut r = VirtualRule {
        ipv6: false,
        from: None,
        to: None,
        invert: false,
        action: RuleAction::Unspecified,
        iif: None,
        oif: None,
        fwmark: None,
        priority: 0,
        track: true,
        location: line.key.loc.clone(),
    };
    let mut family: Option<bool> = None;
    let mut priority: Option<u32> = None;
    let mut ok = true;
    let mut words = line.words();
    fn set_action(r: &mut VirtualRule, a: RuleAction, w: &Word, ctx: &mut Ctx) -> bool {
        if r.action != RuleAction::Unspecified {
            ctx.error(w, format!("`virtual_rules`: a rule takes one of table, goto, nop, blackhole, unreachable or prohibit, found a second one `{}`", w.text));
            return false;
        }
        r.action = a;
        true
    }
    while let Some(w) = words.next() {
        let o = w.text.as_str();
        match o {
            "inet" | "inet6" => {
                ok &= same_family(&mut family, family_probe(o == "inet6"), w, B, ctx);
            }
            "from" | "to" => {
                let v = value(&mut words, w, B, "an address or prefix", ctx)?;
                let (a, len) = prefix(v, B, family, ctx)?;
                if !(a.is_unspecified() && len == 0) {
                    ok &= same_family(&mut family, a, v, B, ctx);
                }
                if o == "from" {
                    r.from = Some((a, len));
                } else {
                    r.to = Some((a, len));
                }
            }
            "table" | "lookup" => {
                let v = value(&mut words, w, B, "a table", ctx)?;
                let t = table(v, B, ctx)?;
                ok &= set_action(&mut r, RuleAction::Table(t), w, ctx);
            }
            "not" => r.invert = true,
            "preference" | "order" | "priority" => {
                let v = value(&mut words, w, B, "0..=4294967295", ctx)?;
                priority = Some(ctx.int_word(o, v, 0u32, u32::MAX)?);
            }
            "fwmark" => {
                let v = value(&mut words, w, B, "MARK[/MASK]", ctx)?;
                r.fwmark = Some(fwmark(v, ctx)?);
            }
            "dev" | "iif" => {
                let v = value(&mut words, w, B, "an interface name", ctx)?;
                r.iif = Some(v.text.clone());
            }
            "oif" => {
                let v = value(&mut words, w, B, "an interface name", ctx)?;
                r.oif = Some(v.text.clone());
            }
            "no_track" => r.track = false,
            "l3mdev" => {
                ctx.warn(
                    w,
                    format!("`l3mdev` on a `{B}` line is not supported by tandem: this rule will not be installed"),
                );
                return None;
            }
            _ if RULE_IGNORED_WITH_VALUE.contains(&o) => {
                value(&mut words, w, B, "a value", ctx)?;
                ctx.warn(
                    w,
                    format!("`{o}` on a `{B}` line is not supported by tandem (ignored)"),
                );
            }
            _ => {
                let mut a = w;
                if o == "type" {
                    a = value(&mut words, w, B, "an action", ctx)?;
                }
                let action = match a.text.as_str() {
                    "goto" => {
                        let v = value(&mut words, a, B, "a preference", ctx)?;
                        RuleAction::Goto(ctx.int_word("goto", v, 0u32, u32::MAX)?)
                    }
                    "nop" => RuleAction::Nop,
                    "blackhole" => RuleAction::Blackhole,
                    "unreachable" => RuleAction::Unreachable,
                    "prohibit" => RuleAction::Prohibit,
                    t => {
                        ctx.error(a, format!("unknown option `{t}` in `{B}`: expected from, to, table, iif, oif, fwmark, preference, not, no_track or an action"));
                        return None;
                    }
                };
                ok &= set_action(&mut r, action, a, ctx);
            }
        }
    }
    if r.action == RuleAction::Unspecified {
        ctx.error(
            &line.key,
            format!("`{B}`: the rule has no action (table, goto, nop, blackhole, unreachable or prohibit)"),
        );
        return None;
    }
    r.ipv6 = family == Some(true);
    for (a, _) in [r.from.as_mut(), r.to.as_mut()].into_iter().flatten() {
        if r.ipv6 && a.is_ipv4() {
            *a = std::net::Ipv6Addr::UNSPECIFIED.into();
        }
    }
    if let RuleAction::Goto(target) = r.action {
        match priority {
            Some(p) if p < target => {}
            Some(p) => {
                ctx.error(
                    &line.key,
                    format!("`{B}`: preference {p} must be below the goto target {target}"),
                );
                return None;
            }
            None => {
                ctx.error(
                    &line.key,
                    format!("`{B}`: a goto rule needs a preference below its target {target}"),
                );
                return None;
            }
        }
    }
    r.priority = match priority {
        Some(p) => p,
        None => {
            let taken = &mut ctx.rules_without_preference[usize::from(r.ipv6)];
            let p = RULE_START_PRIORITY.saturating_sub(*taken);
            *taken += 1;
            ctx.warn(
                &line.key,
                format!("`{B}`: the rule has no preference: it gets {p}, as keepalived numbers them (probably not what you want)"),
            );
            p
        }
    };
    ok.then_some(r)
}

fn fwmark(w: &Word, ctx: &mut Ctx) -> Option<(u32, Option<u32>)> {
    let num = |t: &str| -> Option<u32> {
        if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16).ok()
        } else {
            t.parse().ok()
        }
    };
    let parsed = match w.text.split_once('/') {
        Some((m, k)) => num(m).zip(num(k)).map(|(m, k)| (m, Some(k))),
        None => num(&w.text).map(|m| (m, None)),
    };
    if parsed.is_none() {
        ctx.error(
            w,
            format!(
                "`fwmark` in `virtual_rules` expects MARK[/MASK] (decimal or 0x hex), found `{}`",
                w.text
            ),
        );
    }
    parsed
}
