//! The least-connection family fed from conntrack: what to count for a service, how a dump
//! becomes the connections each real server holds, and whether new counts are worth a new
//! nftables batch. Pure; the balancer does the dumping and the applying.
//!
//! Counts come from one dump per service and period, filtered by the kernel on the
//! service's original destination (VIP, port, protocol); an entry counts for a real server
//! when it is DNATed to it (its reply comes from the server's address and port).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tandem_ctnetlink::{DumpFilter, Family, Flow, TcpInfo, L4};
use tandem_lb::{plan::new_connection_weights, Load, Server, Service, ServiceKey};

/// How often the connections of least-connection services are counted.
pub const REFRESH: Duration = Duration::from_secs(2);

/// A new-connection weight must move by more than this part of the largest one (1/8) before
/// the schedule is rewritten: counts that wobble do not rewrite the table every period.
const CHANGE_FRACTION: u32 = 8;

/// Which entries to dump for `key`: those to its VIP and port (the kernel filters them);
/// for a firewall-mark service, whose addresses the mark hides, every entry of its family.
pub fn query(key: &ServiceKey) -> Query {
    match *key {
        ServiceKey::Addr {
            vip,
            port,
            protocol,
        } => Query::Filtered(DumpFilter {
            dst: vip,
            proto: protocol.number(),
            port: Some(port),
        }),
        ServiceKey::Fwmark { ipv6, .. } => {
            Query::Family(if ipv6 { Family::Ipv6 } else { Family::Ipv4 })
        }
    }
}

/// One conntrack dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// The entries to one virtual address and port.
    Filtered(DumpFilter),
    /// Every entry of a family (firewall-mark services).
    Family(Family),
}

/// The connections each of `servers` holds among `flows`: entries DNATed to the server's
/// address and port (any port for a server of port 0), established TCP counted active,
/// everything else inactive (as IPVS counts). Servers without an entry are absent.
pub fn count(flows: &[Flow], servers: &[Server]) -> BTreeMap<SocketAddr, Load> {
    let mut loads: BTreeMap<SocketAddr, Load> = BTreeMap::new();
    for flow in flows.iter().filter(|f| f.is_dnat()) {
        let reply_port = match flow.reply.l4 {
            L4::Ports { src, .. } => Some(src),
            _ => None,
        };
        let Some(server) = servers
            .iter()
            .find(|s| s.addr == flow.reply.src && (s.port == 0 || Some(s.port) == reply_port))
        else {
            continue;
        };
        let load = loads
            .entry(SocketAddr::new(server.addr, server.port))
            .or_default();
        let established =
            flow.orig.proto == 6 && flow.tcp.is_some_and(|t| t.state == TcpInfo::ESTABLISHED);
        if established {
            load.active += 1;
        } else {
            load.inactive += 1;
        }
    }
    loads
}

/// Whether planning `next` (new counts) rather than keeping `applied` (the counts in force)
/// moves a new-connection weight enough to rewrite the schedule: a server leaving or
/// joining the weighted set, or a weight moving by more than an eighth of the largest.
pub fn worth_applying(applied: &Service, next: &Service) -> bool {
    let (Some(old), Some(new)) = (
        new_connection_weights(applied),
        new_connection_weights(next),
    ) else {
        return false;
    };
    if old.len() != new.len() {
        return true;
    }
    // Compared as shares of the largest (both scaled to 64), so equal shares written as
    // other numbers (configured weights before any count) are no change.
    let scale = |w: &[u32]| -> Vec<u32> {
        let max = w.iter().copied().max().unwrap_or(0).max(1);
        w.iter().map(|&x| (x * 64).div_ceil(max)).collect()
    };
    let (old, new) = (scale(&old), scale(&new));
    old.iter()
        .zip(&new)
        .any(|(&a, &b)| (a == 0) != (b == 0) || a.abs_diff(b) * CHANGE_FRACTION > 64)
}

/// How logs show counts and weights: `10.2.0.1:80 20/3 → 1`, active/inactive then the
/// new-connection weight.
pub fn describe(service: &Service) -> String {
    let weights = new_connection_weights(service).unwrap_or_default();
    let pool = service.servers.iter().filter(|s| s.weight > 0);
    (pool.zip(weights))
        .map(|(s, w)| {
            let at = SocketAddr::new(s.addr, s.port);
            let l = service.loads.get(&at).copied().unwrap_or_default();
            format!("{at} {}/{} → {w}", l.active, l.inactive)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
