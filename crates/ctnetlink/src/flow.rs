//! The owned value a conntrack entry becomes: what tandem replicates.

use std::net::IpAddr;

/// Address family of a flow or of a dump/flush request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `AF_INET`.
    Ipv4,
    /// `AF_INET6`.
    Ipv6,
}

impl Family {
    /// The `AF_*` number that goes in the nfgenmsg header.
    pub fn af(self) -> u8 {
        match self {
            Family::Ipv4 => libc::AF_INET as u8,
            Family::Ipv6 => libc::AF_INET6 as u8,
        }
    }

    /// The family of an address, so tuples need not store it twice.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

/// Layer-4 part of a tuple: ports, ICMP identity, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    /// TCP, UDP, SCTP, DCCP, UDP-Lite (and GRE keys, which ctnetlink also carries as ports).
    Ports {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// ICMP or ICMPv6: echo identifier, type and code.
    Icmp {
        /// Echo identifier.
        id: u16,
        /// ICMP type.
        kind: u8,
        /// ICMP code.
        code: u8,
    },
    /// Protocols conntrack tracks by address only.
    None,
}

/// One direction of a connection, as conntrack keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address; its family is the tuple's family.
    pub src: IpAddr,
    /// Destination address (same family as `src`).
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub proto: u8,
    /// Ports or ICMP identity.
    pub l4: L4,
}

impl Tuple {
    /// The family of the tuple (that of its source address).
    pub fn family(&self) -> Family {
        Family::of(&self.src)
    }

    /// The tuple of the other direction when no NAT is involved, which is
    /// what conntrack expects as reply tuple of an un-NATed flow.
    pub fn inverted(&self) -> Tuple {
        let l4 = match self.l4 {
            L4::Ports { src, dst } => L4::Ports { src: dst, dst: src },
            L4::Icmp { id, kind, code } => L4::Icmp {
                id,
                kind: icmp_reply_type(self.proto, kind),
                code,
            },
            L4::None => L4::None,
        };
        Tuple {
            src: self.dst,
            dst: self.src,
            proto: self.proto,
            l4,
        }
    }
}

/// Echo request/reply and friends invert to their answer type, as in the kernel's tables.
fn icmp_reply_type(proto: u8, kind: u8) -> u8 {
    match (proto, kind) {
        (1, 8) => 0,
        (1, 0) => 8,
        (1, 13) => 14,
        (1, 14) => 13,
        (1, 15) => 16,
        (1, 16) => 15,
        (1, 17) => 18,
        (1, 18) => 17,
        (58, 128) => 129,
        (58, 129) => 128,
        (58, 139) => 140,
        (58, 140) => 139,
        _ => kind,
    }
}

/// `ip_conntrack_status` bits (`IPS_*`), kept raw so unknown bits survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status(pub u32);

impl Status {
    /// Expected connection (a helper's child).
    pub const EXPECTED: u32 = 1 << 0;
    /// Packets seen in both directions.
    pub const SEEN_REPLY: u32 = 1 << 1;
    /// Will not be early-dropped.
    pub const ASSURED: u32 = 1 << 2;
    /// In the table; required when creating over ctnetlink.
    pub const CONFIRMED: u32 = 1 << 3;
    /// Source NAT (SNAT or masquerade) applies.
    pub const SRC_NAT: u32 = 1 << 4;
    /// Destination NAT applies.
    pub const DST_NAT: u32 = 1 << 5;
    /// TCP sequence adjustment (helpers) applies.
    pub const SEQ_ADJUST: u32 = 1 << 6;
    /// Source NAT set up.
    pub const SRC_NAT_DONE: u32 = 1 << 7;
    /// Destination NAT set up.
    pub const DST_NAT_DONE: u32 = 1 << 8;
    /// Being removed.
    pub const DYING: u32 = 1 << 9;
    /// Timeout does not get refreshed by packets.
    pub const FIXED_TIMEOUT: u32 = 1 << 10;

    /// True when every bit of `bits` is set.
    pub fn has(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
}

/// TCP tracking state carried in `CTA_PROTOINFO_TCP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpInfo {
    /// `TCP_CONNTRACK_*` state (3 = ESTABLISHED).
    pub state: u8,
    /// Window scale seen in the original direction.
    pub wscale_orig: u8,
    /// Window scale seen in the reply direction.
    pub wscale_reply: u8,
    /// `IP_CT_TCP_FLAG_*` of the original direction.
    pub flags_orig: u8,
    /// `IP_CT_TCP_FLAG_*` of the reply direction.
    pub flags_reply: u8,
}

impl TcpInfo {
    /// `TCP_CONNTRACK_ESTABLISHED`.
    pub const ESTABLISHED: u8 = 3;
    /// `IP_CT_TCP_FLAG_WINDOW_SCALE`.
    pub const FLAG_WINDOW_SCALE: u8 = 0x01;
    /// `IP_CT_TCP_FLAG_SACK_PERM`.
    pub const FLAG_SACK_PERM: u8 = 0x02;
    /// `IP_CT_TCP_FLAG_BE_LIBERAL`: skip window checks, because ctnetlink
    /// cannot carry the sequence windows of a replicated entry.
    pub const FLAG_BE_LIBERAL: u8 = 0x08;
}

/// A conntrack entry as tandem replicates it: both tuples and the state
/// that must survive a failover. About 100 bytes, no heap allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Original direction (the key, with `zone`).
    pub orig: Tuple,
    /// Reply direction; differs from `orig.inverted()` under NAT.
    pub reply: Tuple,
    /// Conntrack zone (`CTA_ZONE`), 0 by default.
    pub zone: u16,
    /// Status bits.
    pub status: Status,
    /// Seconds until expiry (0 in DESTROY events).
    pub timeout: u32,
    /// Connection mark.
    pub mark: u32,
    /// 128-bit connection labels, when the entry has any.
    pub labels: Option<[u8; 16]>,
    /// TCP state, window scales and flags, for TCP entries.
    pub tcp: Option<TcpInfo>,
}

/// What identifies a conntrack entry: its original tuple in its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Original tuple.
    pub orig: Tuple,
    /// Zone.
    pub zone: u16,
}

impl Flow {
    /// A confirmed flow without NAT, with a timeout and nothing else, as a
    /// starting point for building entries.
    pub fn new(orig: Tuple, timeout: u32) -> Flow {
        Flow {
            orig,
            reply: orig.inverted(),
            zone: 0,
            status: Status(Status::CONFIRMED),
            timeout,
            mark: 0,
            labels: None,
            tcp: None,
        }
    }

    /// A confirmed, assured TCP flow in ESTABLISHED state: what a long-lived connection
    /// looks like in the table (load generators and tests build many of these).
    pub fn tcp_established(orig: Tuple, timeout: u32) -> Flow {
        let mut f = Flow::new(orig, timeout);
        f.status = Status(Status::CONFIRMED | Status::ASSURED | Status::SEEN_REPLY);
        f.tcp = Some(TcpInfo {
            state: TcpInfo::ESTABLISHED,
            ..TcpInfo::default()
        });
        f
    }

    /// The stable key of this entry, for maps in the sync core.
    pub fn key(&self) -> FlowKey {
        FlowKey {
            orig: self.orig,
            zone: self.zone,
        }
    }

    /// The family of the entry.
    pub fn family(&self) -> Family {
        self.orig.family()
    }

    /// True when the reply source is not the original destination, i.e. DNAT.
    pub fn is_dnat(&self) -> bool {
        self.status.has(Status::DST_NAT) || self.reply.src != self.orig.dst
    }

    /// True when the reply destination is not the original source, i.e. SNAT or masquerade.
    pub fn is_snat(&self) -> bool {
        self.status.has(Status::SRC_NAT) || self.reply.dst != self.orig.src
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_is_compact() {
        let size = std::mem::size_of::<Flow>();
        assert!(size <= 128, "Flow grew to {size} bytes");
    }

    #[test]
    fn inverted_echo_request_is_echo_reply() {
        let t = Tuple {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            proto: 1,
            l4: L4::Icmp {
                id: 7,
                kind: 8,
                code: 0,
            },
        };
        let r = t.inverted();
        assert_eq!(r.src, t.dst);
        assert_eq!(
            r.l4,
            L4::Icmp {
                id: 7,
                kind: 0,
                code: 0
            }
        );
        assert_eq!(r.inverted(), t);
    }
}
