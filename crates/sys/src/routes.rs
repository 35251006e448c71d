//! Virtual routes and rules as rtnetlink messages: what keepalived's `virtual_routes` and
//! `virtual_rules` install on MASTER. They travel in the same batch as the addresses
//! (see [`crate::Addresses::apply`]), so a route whose source is a virtual address is added
//! right after that address, in one system call.

use std::net::IpAddr;

use netlink_packet_core::NetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::addresses::request;

/// `RTN_*` route types, as `ip route` names them.
pub mod route_type {
    /// A gateway or direct route.
    pub const UNICAST: u8 = 1;
    /// `local`.
    pub const LOCAL: u8 = 2;
    /// `broadcast`.
    pub const BROADCAST: u8 = 3;
    /// `anycast`.
    pub const ANYCAST: u8 = 4;
    /// `multicast`.
    pub const MULTICAST: u8 = 5;
    /// `blackhole`.
    pub const BLACKHOLE: u8 = 6;
    /// `unreachable`.
    pub const UNREACHABLE: u8 = 7;
    /// `prohibit`.
    pub const PROHIBIT: u8 = 8;
    /// `throw`.
    pub const THROW: u8 = 9;
}

/// One route, its interfaces resolved to indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination.
    pub destination: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// `RTN_*` type (see [`route_type`]).
    pub kind: u8,
    /// Preferred source.
    pub source: Option<IpAddr>,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// `rtm_scope`; `None` picks what `ip route` would.
    pub scope: Option<u8>,
    /// Table id.
    pub table: u32,
    /// Metric (priority).
    pub metric: Option<u32>,
    /// `rtm_protocol`: 18 (keepalived) for tracked routes, 3 (boot) otherwise.
    pub protocol: u8,
}

impl std::fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "route {}/{}", self.destination, self.prefix_len)?;
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        write!(f, " table {}", self.table)
    }
}

/// One policy-routing rule, as `ip rule` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// An IPv6 rule.
    pub ipv6: bool,
    /// `from PREFIX`.
    pub from: Option<(IpAddr, u8)>,
    /// `to PREFIX`.
    pub to: Option<(IpAddr, u8)>,
    /// `not`.
    pub invert: bool,
    /// `FR_ACT_*`: 1 table, 2 goto, 3 nop, 6 blackhole, 7 unreachable, 8 prohibit.
    pub action: u8,
    /// Table of a `table` rule.
    pub table: u32,
    /// Target of a `goto` rule.
    pub goto: Option<u32>,
    /// `iif NAME`.
    pub iif: Option<String>,
    /// `oif NAME`.
    pub oif: Option<String>,
    /// `fwmark`.
    pub fwmark: Option<u32>,
    /// `/MASK` of the fwmark.
    pub fwmask: Option<u32>,
    /// `preference`.
    pub priority: u32,
    /// `FRA_PROTOCOL`: 18 (keepalived) for tracked rules, 3 (boot) otherwise.
    pub protocol: u8,
}

impl std::fmt::Display for RuleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rule {}:", self.priority)?;
        if let Some((a, l)) = self.from {
            write!(f, " from {a}/{l}")?;
        }
        if let Some((a, l)) = self.to {
            write!(f, " to {a}/{l}")?;
        }
        match self.action {
            1 => write!(f, " table {}", self.table),
            a => write!(f, " action {a}"),
        }
    }
}

fn family(v6: bool) -> AddressFamily {
    if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

/// The kernel's route message for `spec` (the same for adding and removing).
fn route_message(spec: &RouteSpec) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let h = &mut msg.header;
    h.address_family = family(spec.destination.is_ipv6());
    h.destination_prefix_length = spec.prefix_len;
    h.table = u8::try_from(spec.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    h.protocol = RouteProtocol::from(spec.protocol);
    h.kind = RouteType::from(spec.kind);
    // `ip route`'s choice: host for local routes, link for broadcast and anycast and for
    // direct unicast routes, universe otherwise.
    h.scope = RouteScope::from(spec.scope.unwrap_or(match spec.kind {
        route_type::LOCAL => 254,
        route_type::BROADCAST | route_type::ANYCAST => 253,
        route_type::UNICAST if spec.via.is_none() && spec.oif.is_some() => 253,
        _ => 0,
    }));
    let a = &mut msg.attributes;
    a.push(RouteAttribute::Table(spec.table));
    if spec.prefix_len > 0 || !spec.destination.is_unspecified() {
        a.push(RouteAttribute::Destination(RouteAddress::from(
            spec.destination,
        )));
    }
    if let Some(src) = spec.source {
        a.push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    if let Some(via) = spec.via {
        a.push(RouteAttribute::Gateway(RouteAddress::from(via)));
    }
    if let Some(oif) = spec.oif {
        a.push(RouteAttribute::Oif(oif));
    }
    if let Some(metric) = spec.metric {
        a.push(RouteAttribute::Priority(metric));
    }
    msg
}

/// The kernel's rule message for `spec` (the same for adding and removing).
fn rule_message(spec: &RuleSpec) -> RuleMessage {
    let mut msg = RuleMessage::default();
    let h = &mut msg.header;
    h.family = family(spec.ipv6);
    h.action = RuleAction::from(spec.action);
    if spec.invert {
        h.flags |= RuleFlags::Invert;
    }
    let a = &mut msg.attributes;
    if let Some((addr, len)) = spec.from {
        msg.header.src_len = len;
        if len > 0 {
            a.push(RuleAttribute::Source(addr));
        }
    }
    if let Some((addr, len)) = spec.to {
        msg.header.dst_len = len;
        if len > 0 {
            a.push(RuleAttribute::Destination(addr));
        }
    }
    if spec.action == 1 {
        msg.header.table = u8::try_from(spec.table).unwrap_or(0);
        a.push(RuleAttribute::Table(spec.table));
    }
    if let Some(target) = spec.goto {
        a.push(RuleAttribute::Goto(target));
    }
    if let Some(iif) = &spec.iif {
        a.push(RuleAttribute::Iifname(iif.clone()));
    }
    if let Some(oif) = &spec.oif {
        a.push(RuleAttribute::Oifname(oif.clone()));
    }
    if let Some(mark) = spec.fwmark {
        a.push(RuleAttribute::FwMark(mark));
    }
    if let Some(mask) = spec.fwmask {
        a.push(RuleAttribute::FwMask(mask));
    }
    a.push(RuleAttribute::Priority(spec.priority));
    a.push(RuleAttribute::Protocol(RouteProtocol::from(spec.protocol)));
    msg
}

/// The request adding (`add`) or removing the route.
pub(crate) fn route_request(spec: &RouteSpec, add: bool) -> NetlinkMessage<RouteNetlinkMessage> {
    let m = route_message(spec);
    let payload = if add {
        RouteNetlinkMessage::NewRoute(m)
    } else {
        RouteNetlinkMessage::DelRoute(m)
    };
    request(payload, add)
}

/// The request adding (`add`) or removing the rule.
pub(crate) fn rule_request(spec: &RuleSpec, add: bool) -> NetlinkMessage<RouteNetlinkMessage> {
    let m = rule_message(spec);
    let payload = if add {
        RouteNetlinkMessage::NewRule(m)
    } else {
        RouteNetlinkMessage::DelRule(m)
    };
    request(payload, add)
}

/// What the kernel's route lookup (`ip route get`) answers for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// `RTN_*` type ([`route_type`]): unicast for a reachable destination.
    pub kind: u8,
    /// The output interface's index and name.
    pub oif: Option<(u32, String)>,
    /// The gateway, when the destination is not on-link.
    pub gateway: Option<IpAddr>,
}

/// Looks up the route the kernel would use for `destination` (in the calling thread's
/// namespace), and the name of its output interface.
pub async fn next_hop(
    handle: &rtnetlink::Handle,
    destination: IpAddr,
) -> Result<NextHop, crate::SysError> {
    use futures::TryStreamExt;
    let op = format!("looking up the route to {destination}");
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(destination.is_ipv6());
    msg.header.destination_prefix_length = if destination.is_ipv6() { 128 } else { 32 };
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(destination)));
    let mut answers = handle.route().get(msg).execute();
    let route = match answers.try_next().await {
        Ok(Some(route)) => route,
        Ok(None) => {
            return Err(crate::SysError::NetlinkProtocol {
                op,
                detail: "no answer".into(),
            })
        }
        Err(e) => return Err(crate::SysError::netlink(op, e)),
    };
    let mut hop = NextHop {
        kind: u8::from(route.header.kind),
        oif: None,
        gateway: None,
    };
    let mut index = None;
    for a in &route.attributes {
        match a {
            RouteAttribute::Oif(i) => index = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => hop.gateway = Some(IpAddr::V4(*g)),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => hop.gateway = Some(IpAddr::V6(*g)),
            _ => {}
        }
    }
    if let Some(index) = index {
        let op = format!("looking up interface index {index}");
        let mut links = handle.link().get().match_index(index).execute();
        let link = links
            .try_next()
            .await
            .map_err(|e| crate::SysError::netlink(op, e))?;
        let name = link.and_then(|l| crate::interfaces::link_name(&l));
        hop.oif = name.map(|n| (index, n));
    }
    Ok(hop)
}
