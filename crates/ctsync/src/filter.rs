//! Which local entries get replicated. The node takes any predicate (`Fn(&R) -> bool`);
//! [`FlowFilter`] is the conntrackd-like one (protocol, address or prefix, TCP state) over the
//! few fields [`FlowView`] exposes, so it works for any record type that has them.

use std::net::IpAddr;

/// The fields a conntrackd-like filter looks at.
pub trait FlowView {
    /// Layer-4 protocol number (6 TCP, 17 UDP, 1 ICMP, ...).
    fn l4proto(&self) -> u8;
    /// Source and destination of the original direction.
    fn orig_addresses(&self) -> (IpAddr, IpAddr);
    /// The TCP state (kernel numbering, e.g. 3 ESTABLISHED), `None` for other protocols.
    fn tcp_state(&self) -> Option<u8>;
}

/// An address prefix, e.g. 10.0.0.0/8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub len: u8,
}

impl Prefix {
    /// A single address (/32 or /128).
    pub fn host(addr: IpAddr) -> Prefix {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix { addr, len }
    }

    /// Whether `addr` lies inside the prefix (never across address families).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let len = u32::from(self.len.min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let len = u32::from(self.len.min(128));
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// conntrackd's `Filter` section as data: an entry is replicated when its protocol is accepted,
/// neither original address is ignored, and (for TCP) its state is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFilter {
    /// Protocols to replicate; empty means all.
    pub protocols: Vec<u8>,
    /// Flows to or from these prefixes are not replicated (the gateway's own addresses).
    pub ignore: Vec<Prefix>,
    /// TCP states to replicate; empty means all.
    pub tcp_states: Vec<u8>,
}

impl Default for FlowFilter {
    /// Ignores loopback, like conntrackd's default `Address Ignore { IPv4_address 127.0.0.1 }`.
    fn default() -> Self {
        FlowFilter {
            protocols: Vec::new(),
            ignore: vec![
                Prefix {
                    addr: IpAddr::from([127, 0, 0, 0]),
                    len: 8,
                },
                Prefix::host(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
            ],
            tcp_states: Vec::new(),
        }
    }
}

impl FlowFilter {
    /// The default filter plus the gateway's own addresses, which the daemon reads from the
    /// interfaces: traffic to or from the gateway itself is not replicated.
    pub fn ignoring_own(own: impl IntoIterator<Item = IpAddr>) -> FlowFilter {
        let mut filter = FlowFilter::default();
        filter.ignore.extend(own.into_iter().map(Prefix::host));
        filter
    }

    /// Whether `flow` is replicated.
    pub fn accepts<F: FlowView + ?Sized>(&self, flow: &F) -> bool {
        let proto = flow.l4proto();
        if !self.protocols.is_empty() && !self.protocols.contains(&proto) {
            return false;
        }
        let (src, dst) = flow.orig_addresses();
        if self
            .ignore
            .iter()
            .any(|p| p.contains(src) || p.contains(dst))
        {
            return false;
        }
        match flow.tcp_state() {
            Some(state) if proto == 6 && !self.tcp_states.is_empty() => {
                self.tcp_states.contains(&state)
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct F(u8, &'static str, &'static str, Option<u8>);
    impl FlowView for F {
        fn l4proto(&self) -> u8 {
            self.0
        }
        fn orig_addresses(&self) -> (IpAddr, IpAddr) {
            (self.1.parse().unwrap(), self.2.parse().unwrap())
        }
        fn tcp_state(&self) -> Option<u8> {
            self.3
        }
    }

    #[test]
    fn conntrackd_like_rules() {
        let mut filter = FlowFilter::ignoring_own(["10.0.0.1".parse().unwrap()]);
        assert!(filter.accepts(&F(17, "10.0.0.9", "8.8.8.8", None)));
        assert!(
            !filter.accepts(&F(17, "10.0.0.9", "10.0.0.1", None)),
            "to the gateway itself"
        );
        assert!(
            !filter.accepts(&F(6, "127.0.0.1", "127.0.0.1", Some(3))),
            "loopback"
        );
        filter.ignore.push(Prefix {
            addr: "fd00::".parse().unwrap(),
            len: 8,
        });
        assert!(!filter.accepts(&F(6, "fd12::1", "2001:db8::1", Some(3))));
        filter.protocols = vec![6];
        assert!(!filter.accepts(&F(17, "10.0.0.9", "8.8.8.8", None)));
        filter.tcp_states = vec![3];
        assert!(filter.accepts(&F(6, "10.0.0.9", "8.8.8.8", Some(3))));
        assert!(
            !filter.accepts(&F(6, "10.0.0.9", "8.8.8.8", Some(1))),
            "SYN_SENT not listed"
        );
    }
}
