//! `sorry_server IP [PORT]` and its companions `sorry_server_inhibit` and
//! `sorry_server_lvs_method`: the server that takes the traffic when no real server is up.

use crate::lvs::{LbKind, RealServer, SorryServer};
use crate::tree::{Stmt, Word};
use crate::values::Ctx;

use super::words::{forwarding, server_address};

/// A sorry server as read: its own forwarding method, if it names one.
pub(super) struct ParsedSorry {
    pub(super) server: SorryServer,
    pub(super) lb_kind: Option<LbKind>,
}

/// `sorry_server IP [PORT]`.
pub(super) fn parse(s: &Stmt, ctx: &mut Ctx) -> Option<ParsedSorry> {
    let (address, port) = server_address(s, "sorry_server", ctx)?;
    Some(ParsedSorry {
        server: SorryServer {
            address,
            port,
            inhibit: false,
            lb_kind: LbKind::Nat,
            location: s.key.loc.clone(),
        },
        lb_kind: None,
    })
}

/// `sorry_server_inhibit`, which needs a `sorry_server` before it.
pub(super) fn inhibit(s: &Stmt, sorry: Option<&mut ParsedSorry>, ctx: &mut Ctx) {
    match sorry {
        Some(sorry) if ctx.switch(s).is_some() => sorry.server.inhibit = true,
        Some(_) => {}
        None => ctx.error(
            &s.key,
            "`sorry_server_inhibit` before (or without) `sorry_server`",
        ),
    }
}

/// `sorry_server_lvs_method NAT|DR|TUN ...`, which needs a `sorry_server` before it.
pub(super) fn lvs_method(s: &Stmt, sorry: Option<&mut ParsedSorry>, ctx: &mut Ctx) {
    let Some(kind) = forwarding(s, ctx) else {
        return;
    };
    match sorry {
        Some(sorry) => sorry.lb_kind = Some(kind),
        None => ctx.error(
            &s.key,
            "`sorry_server_lvs_method` before (or without) `sorry_server`",
        ),
    }
}

/// The sorry server of virtual server `name` once its forwarding method `lb_kind` is known:
/// without NAT it answers on the virtual server's port, and a real server at the same place
/// must agree on `inhibit_on_failure`.
pub(super) fn finish(
    mut sorry: ParsedSorry,
    lb_kind: LbKind,
    vs_port: Option<u16>,
    reals: &[RealServer],
    key: &Word,
    name: &str,
    ctx: &mut Ctx,
) -> SorryServer {
    sorry.server.lb_kind = lb_kind;
    if lb_kind != LbKind::Nat {
        match vs_port {
            Some(vp) if sorry.server.port == 0 => sorry.server.port = vp,
            Some(vp) if sorry.server.port != vp => {
                ctx.error(key, format!("virtual_server {name}: without NAT the sorry_server's port must be the virtual server's ({vp})"));
                sorry.server.port = vp;
            }
            None if sorry.server.port != 0 => {
                ctx.error(key, format!("virtual_server {name}: a fwmark service's sorry_server takes no port without NAT"));
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
            ctx.error(key, format!("virtual_server {name}: the sorry_server is also a real_server, with another inhibit_on_failure setting"));
        }
    }
    sorry.server
}
