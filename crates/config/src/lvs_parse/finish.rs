//! What is settled once the whole file is read: virtual servers meet their groups, real and
//! sorry servers inherit the virtual server's settings, and keepalived's whole-service checks
//! (family, protocol, ports, quorum) run.

use crate::lvs::{
    Family, GroupEntry, LbKind, Protocol, RealServer, ServiceAddress, VirtualServer,
    VirtualServerGroup,
};
use crate::lvs_checkers::{self, Inherited, TimingWords};
use crate::model::Config;
use crate::tree::Word;
use crate::values::Ctx;

use super::groups::entry_family;
use super::sorry_server;
use super::virtual_server::ParsedVs;
use super::words::describe;
use super::DEFAULT_PERSISTENCE;

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

/// One virtual server once the file is read: its group, family, defaults and the checks
/// keepalived makes; `None` when keepalived would drop it.
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
    if let Some(sorry) = p.sorry.take() {
        let lb_kind = match sorry.lb_kind.or(vs_kind) {
            Some(k) => k,
            None => no_method(ctx),
        };
        let server = sorry_server::finish(sorry, lb_kind, vs_port, &reals, &key, &name, ctx);
        p.vs.sorry_server = Some(server);
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
