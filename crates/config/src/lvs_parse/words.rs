//! Word helpers shared by the blocks: `IP [PORT]` heads, the forwarding method (`lb_kind`,
//! `lvs_method`), script command lines, and a virtual server's name in messages.

use std::net::IpAddr;

use crate::lvs::{LbKind, ServiceAddress, Tunnel, TunnelChecksum, TunnelKind};
use crate::tree::{Stmt, Word};
use crate::values::Ctx;

/// `IP [PORT]` of a virtual, real or sorry server: a port of 0 (or none) is no port.
pub(super) fn address_and_port(
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
pub(super) fn server_address(s: &Stmt, key: &str, ctx: &mut Ctx) -> Option<(IpAddr, u16)> {
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
pub(super) fn forwarding(s: &Stmt, ctx: &mut Ctx) -> Option<LbKind> {
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

/// A script line of the LVS side: the whole rest of the line is the command and its
/// arguments (keepalived reads these with quotes and escapes).
pub(super) fn command_line(s: &Stmt, ctx: &mut Ctx) -> Option<String> {
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

/// How keepalived names a virtual server in its messages.
pub(super) fn describe(s: &ServiceAddress) -> String {
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
