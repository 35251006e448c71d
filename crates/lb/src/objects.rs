//! The nftables objects tandem creates, as plain data: what the planner
//! produces, what tests compare, and what the encoder turns into netlink.

use std::time::Duration;

/// Registers, in the kernel's 32-bit numbering (`NFT_REG32_00` = 8).
pub mod reg {
    /// Server address (and port after it): `NFT_REG32_00`..
    pub const ADDR: u32 = 8;
    /// Client key (source address, masked): `NFT_REG32_08`..`11`.
    pub const CLIENT: u32 = 16;
    /// Slot number from `numgen`/`jhash`: `NFT_REG32_13`.
    pub const SLOT: u32 = 21;
    /// Scratch for the dispatch rule's matches: `NFT_REG32_00`..`03`, wide
    /// enough for an IPv6 address (from `NFT_REG32_14` one would run past the
    /// last register and the kernel refuses the rule with ERANGE); the rule
    /// only jumps, so nothing after it reads them.
    pub const MATCH: u32 = 8;
}

/// `meta` keys tandem reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// `meta nfproto` (2 = IPv4, 10 = IPv6).
    Nfproto,
    /// `meta l4proto`.
    L4proto,
    /// `meta mark`.
    Mark,
    /// `meta protocol`: the EtherType (netdev family, before the IP stack).
    Protocol,
    /// `meta pkttype`: 0 (host) when the frame is addressed to this machine's MAC.
    PktType,
}

/// Header a `payload` load is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadBase {
    /// The IP header.
    Network,
    /// The TCP/UDP/SCTP header.
    Transport,
}

/// What a `dynset` does with the element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynsetOp {
    /// Adds the element unless present.
    Add,
    /// Adds it, or refreshes its timeout when present.
    Update,
    /// Removes it.
    Delete,
}

/// One nftables expression (the subset tandem uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// Loads a meta key into `dreg`.
    Meta {
        /// Which key.
        key: MetaKey,
        /// Destination register.
        dreg: u32,
    },
    /// Loads `len` header bytes at `offset` from `base` into `dreg`.
    Payload {
        /// Header.
        base: PayloadBase,
        /// Byte offset in it.
        offset: u32,
        /// Bytes.
        len: u32,
        /// Destination register.
        dreg: u32,
    },
    /// Continues only if register `sreg` equals `data`.
    CmpEq {
        /// Register compared.
        sreg: u32,
        /// Expected bytes.
        data: Vec<u8>,
    },
    /// `reg = reg & mask` (for `persistence_granularity`).
    And {
        /// Register masked in place.
        reg: u32,
        /// Mask bytes (its length is the operand length).
        mask: Vec<u8>,
    },
    /// `numgen inc mod modulus` into `dreg`.
    Numgen {
        /// Destination register.
        dreg: u32,
        /// Modulus (> 0).
        modulus: u32,
    },
    /// `jhash` of `len` bytes at `sreg`, `mod modulus`, into `dreg`.
    Jhash {
        /// Source register.
        sreg: u32,
        /// Bytes hashed.
        len: u32,
        /// Destination register.
        dreg: u32,
        /// Modulus (> 0).
        modulus: u32,
        /// Seed (the same on both directors, so both hash alike).
        seed: u32,
    },
    /// Looks `sreg` up in `set`; loads the mapped data into `dreg` for a
    /// map (register 0, the verdict, for a verdict map); `invert`
    /// continues only when absent.
    Lookup {
        /// Set or map name.
        set: String,
        /// Key register.
        sreg: u32,
        /// Data register (maps).
        dreg: Option<u32>,
        /// Match when not found.
        invert: bool,
    },
    /// Adds, refreshes or deletes an element of a dynamic set from the packet path.
    Dynset {
        /// Operation.
        op: DynsetOp,
        /// Set name.
        set: String,
        /// Key register.
        sreg_key: u32,
    },
    /// Loads constant bytes into `dreg`.
    Immediate {
        /// Destination register.
        dreg: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Destination NAT to the address at `addr_reg` (and the port at
    /// `port_reg`).
    Dnat {
        /// IPv6 addresses.
        ipv6: bool,
        /// Register holding the address.
        addr_reg: u32,
        /// Register holding the port (network order), if the port changes.
        port_reg: Option<u32>,
    },
    /// Rejects with ICMP(v6) port unreachable, as IPVS does without servers.
    Reject,
    /// Sends the unchanged IP packet out of the device whose index is at `dev_reg`, to the
    /// MAC of the address at `addr_reg` (a neighbour lookup): direct routing.
    Fwd {
        /// IPv6 (neighbour discovery) rather than IPv4 (ARP).
        ipv6: bool,
        /// Register holding the next hop, the real server's address.
        addr_reg: u32,
        /// Register holding the egress interface index.
        dev_reg: u32,
    },
    /// Jumps to a chain of the same table.
    Jump(String),
    /// Goes to a chain of the same table (no return).
    Goto(String),
}

/// A base chain's hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hook {
    /// `NF_INET_PRE_ROUTING` (0), `NF_INET_LOCAL_OUT` (3), ...
    pub number: u32,
    /// Priority (`dstnat` = -100).
    pub priority: i32,
}

/// A chain and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Name.
    pub name: String,
    /// Set for base chains (type `nat`).
    pub hook: Option<Hook>,
    /// Rules, each a list of expressions, in order.
    pub rules: Vec<Vec<Expr>>,
}

/// nft's type numbers for set keys and data, so `nft list` prints them.
pub mod datatype {
    /// `ipv4_addr`.
    pub const IPADDR: u32 = 7;
    /// `ipv6_addr`.
    pub const IP6ADDR: u32 = 8;
    /// `inet_service`.
    pub const INET_SERVICE: u32 = 13;
    /// `mark` (a host-order 32-bit number).
    pub const MARK: u32 = 19;
    /// Concatenation `a . b`, as nft encodes it.
    pub const fn concat(a: u32, b: u32) -> u32 {
        (a << 6) | b
    }
}

/// What a set maps its keys to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetData {
    /// A plain set.
    None,
    /// A verdict map (`vmap`).
    Verdict,
}

/// What one element maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElementData {
    /// Nothing (plain set).
    None,
    /// `goto` a chain (verdict map).
    Goto(String),
}

/// A set or verdict map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    /// Name.
    pub name: String,
    /// nft key type.
    pub key_type: u32,
    /// Key bytes.
    pub key_len: u32,
    /// What keys map to.
    pub data: SetData,
    /// `Some` for a dynamic set whose elements expire (persistence): the
    /// packet path fills it and a change of servers keeps it.
    pub timeout: Option<Duration>,
    /// Most elements the packet path may add (`None`: the kernel's default).
    pub size: Option<u32>,
    /// Static elements (key, data).
    pub elements: Vec<(Vec<u8>, ElementData)>,
}

impl Set {
    /// Filled by the packet path rather than by tandem.
    pub fn is_dynamic(&self) -> bool {
        self.timeout.is_some()
    }

    /// The definition without its elements.
    pub fn definition(&self) -> Set {
        Set {
            elements: Vec::new(),
            ..self.clone()
        }
    }
}

/// One service's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceObjects {
    /// The service chain (first) and one chain per real server.
    pub chains: Vec<Chain>,
    /// The scheduler's verdict map and the persistence sets.
    pub sets: Vec<Set>,
    /// The dispatcher rule that sends the service's packets to its chain.
    pub dispatch: Vec<Expr>,
}

/// A netdev base chain on one device's ingress hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressChain {
    /// Chain name.
    pub name: String,
    /// The device whose ingress it hooks.
    pub device: String,
    /// The dispatch rules of the services arriving on this device.
    pub rules: Vec<Vec<Expr>>,
}

/// The direct-routing table (family `netdev`), planned whole; a change touches only what
/// changed, so the flow maps the packets fill survive it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrRuleset {
    /// One base chain per ingress device.
    pub ingress: Vec<IngressChain>,
    /// Per service: its chain, one chain per server, the scheduler's map
    /// (`dispatch` is the rule found in the ingress chains).
    pub services: Vec<ServiceObjects>,
}

impl DrRuleset {
    /// No direct-routing service.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

/// Both tables tandem owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// NAT services (table `inet tandem_lb`), in the order given.
    pub services: Vec<ServiceObjects>,
    /// Direct-routing services (table `netdev tandem_lb_dr`).
    pub dr: DrRuleset,
}
