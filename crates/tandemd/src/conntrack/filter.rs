//! Which flows are replicated: conntrackd's `Filter` semantics (protocol, address or prefix,
//! TCP state; Accept lists what to keep, Ignore what to drop) plus the node's own addresses,
//! ignored by default because a flow to the gateway itself cannot move to the peer.
//!
//! Addresses are matched against the sources of both directions, as conntrackd does: a flow
//! from the gateway has its address as original source, a flow to the gateway as reply source,
//! while a forwarded flow that is source-NATed to a VIP has the VIP only as reply destination
//! and so is still replicated.

use std::net::IpAddr;

use tandem_config::{FilterConfig, ListFilter, Policy};
use tandem_ctnetlink::Flow;

/// A compiled filter.
#[derive(Debug, Clone, Default)]
pub struct FlowFilter {
    config: FilterConfig,
    protocols: Option<(Policy, Vec<u8>)>,
    tcp_states: Option<(Policy, Vec<u8>)>,
    own: Vec<IpAddr>,
}

impl FlowFilter {
    /// Compiles `config`; `own` are this node's addresses (ignored when configured so).
    pub fn new(config: &FilterConfig, own: Vec<IpAddr>) -> FlowFilter {
        let protocols = config.protocols.as_ref().map(|l| {
            (
                l.policy,
                l.items.iter().filter_map(|p| protocol_number(p)).collect(),
            )
        });
        let tcp_states = config.tcp_states.as_ref().map(|l| {
            (
                l.policy,
                l.items.iter().filter_map(|s| tcp_state_number(s)).collect(),
            )
        });
        FlowFilter {
            config: config.clone(),
            protocols,
            tcp_states,
            own: if config.ignore_own_addresses {
                own
            } else {
                Vec::new()
            },
        }
    }

    /// Whether `flow` is replicated.
    pub fn accepts(&self, flow: &Flow) -> bool {
        if let Some((policy, list)) = &self.protocols {
            if !passes(*policy, list.contains(&flow.orig.proto)) {
                return false;
            }
        }
        if let (Some((policy, list)), Some(tcp)) = (&self.tcp_states, &flow.tcp) {
            if !passes(*policy, list.contains(&tcp.state)) {
                return false;
            }
        }
        let addresses = [flow.orig.src, flow.reply.src];
        if addresses.iter().any(|a| self.own.contains(a)) {
            return false;
        }
        if let Some(ListFilter { policy, items }) = &self.config.addresses {
            let listed = addresses
                .iter()
                .any(|a| items.iter().any(|(net, len)| in_prefix(*a, *net, *len)));
            if !passes(*policy, listed) {
                return false;
            }
        }
        true
    }
}

fn passes(policy: Policy, listed: bool) -> bool {
    match policy {
        Policy::Accept => listed,
        Policy::Ignore => !listed,
    }
}

fn in_prefix(addr: IpAddr, net: IpAddr, len: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// IP protocol number of a conntrackd protocol name.
fn protocol_number(name: &str) -> Option<u8> {
    Some(match name {
        "TCP" => 6,
        "UDP" => 17,
        "ICMP" => 1,
        "ICMPV6" | "IPV6-ICMP" => 58,
        "SCTP" => 132,
        "DCCP" => 33,
        "UDPLITE" => 136,
        "GRE" => 47,
        other => return other.parse().ok(),
    })
}

/// Kernel `TCP_CONNTRACK_*` number of a state name as conntrackd spells it.
fn tcp_state_number(name: &str) -> Option<u8> {
    Some(match name {
        "NONE" => 0,
        "SYN_SENT" => 1,
        "SYN_RECV" => 2,
        "ESTABLISHED" => 3,
        "FIN_WAIT" => 4,
        "CLOSE_WAIT" => 5,
        "LAST_ACK" => 6,
        "TIME_WAIT" => 7,
        "CLOSE" | "CLOSED" => 8,
        "LISTEN" | "SYN_SENT2" => 9,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_ctnetlink::{Status, TcpInfo, Tuple, L4};

    fn tcp(src: &str, dst: &str, state: u8) -> Flow {
        let orig = Tuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: 6,
            l4: L4::Ports {
                src: 40000,
                dst: 80,
            },
        };
        Flow {
            orig,
            reply: orig.inverted(),
            zone: 0,
            status: Status(Status::CONFIRMED),
            timeout: 100,
            mark: 0,
            labels: None,
            tcp: Some(TcpInfo {
                state,
                ..TcpInfo::default()
            }),
        }
    }

    #[test]
    fn conntrackd_style_filters() {
        let config = FilterConfig {
            protocols: Some(ListFilter {
                policy: Policy::Accept,
                items: vec!["TCP".into()],
            }),
            addresses: Some(ListFilter {
                policy: Policy::Ignore,
                items: vec![("192.168.2.0".parse().unwrap(), 24)],
            }),
            tcp_states: Some(ListFilter {
                policy: Policy::Accept,
                items: vec!["ESTABLISHED".into(), "TIME_WAIT".into()],
            }),
            ignore_own_addresses: true,
        };
        let f = FlowFilter::new(&config, vec!["10.0.0.1".parse().unwrap()]);
        assert!(f.accepts(&tcp("10.1.0.5", "10.2.0.9", 3)));
        assert!(
            !f.accepts(&tcp("10.1.0.5", "10.2.0.9", 1)),
            "SYN_SENT not accepted"
        );
        assert!(
            !f.accepts(&tcp("192.168.2.7", "10.2.0.9", 3)),
            "ignored prefix"
        );
        assert!(!f.accepts(&tcp("10.0.0.1", "10.2.0.9", 3)), "own address");
        let mut udp = tcp("10.1.0.5", "10.2.0.9", 3);
        udp.orig.proto = 17;
        udp.tcp = None;
        assert!(!f.accepts(&udp), "only TCP accepted");
    }

    #[test]
    fn empty_filter_accepts_all_but_own() {
        let f = FlowFilter::new(
            &FilterConfig {
                ignore_own_addresses: true,
                ..FilterConfig::default()
            },
            vec!["10.0.0.1".parse().unwrap()],
        );
        assert!(f.accepts(&tcp("10.1.0.5", "10.2.0.9", 1)));
        assert!(
            !f.accepts(&tcp("10.1.0.5", "10.0.0.1", 3)),
            "to the gateway itself"
        );
        let mut snat = tcp("10.1.0.5", "10.2.0.9", 3);
        snat.reply.dst = "10.0.0.1".parse().unwrap();
        assert!(
            f.accepts(&snat),
            "source NAT to our address is a forwarded flow"
        );
        let f = FlowFilter::new(&FilterConfig::default(), vec!["10.0.0.1".parse().unwrap()]);
        assert!(
            f.accepts(&tcp("10.1.0.5", "10.0.0.1", 3)),
            "own addresses kept when asked"
        );
    }

    #[test]
    fn prefixes() {
        assert!(in_prefix(
            "10.1.2.3".parse().unwrap(),
            "10.0.0.0".parse().unwrap(),
            8
        ));
        assert!(!in_prefix(
            "11.1.2.3".parse().unwrap(),
            "10.0.0.0".parse().unwrap(),
            8
        ));
        assert!(in_prefix(
            "1.2.3.4".parse().unwrap(),
            "0.0.0.0".parse().unwrap(),
            0
        ));
        assert!(in_prefix(
            "fd00::5".parse().unwrap(),
            "fd00::".parse().unwrap(),
            64
        ));
        assert!(!in_prefix(
            "fd01::5".parse().unwrap(),
            "fd00::".parse().unwrap(),
            64
        ));
    }
}
