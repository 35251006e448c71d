//! `virtual_server_group NAME { ... }`: address ranges, prefixes and fwmarks that one
//! `virtual_server group NAME` serves together.

use std::net::IpAddr;

use crate::lvs::{Family, GroupEntry, VirtualServerGroup};
use crate::tree::Stmt;
use crate::values::Ctx;

/// `virtual_server_group NAME { IP[-LAST|/LEN] [PORT] ... fwmark N [inet|inet6] ... }`.
pub(crate) fn parse(stmt: &Stmt, ctx: &mut Ctx) -> Option<VirtualServerGroup> {
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

/// The address family of a group entry (`None`: a fwmark without one).
pub(super) fn entry_family(e: &GroupEntry) -> Option<Family> {
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
