//! The input: virtual services as the backend needs them, independent of
//! how keepalived.conf spells them (the configuration layer converts).

use std::net::IpAddr;
use std::time::Duration;

/// Transport protocol of a virtual service (`protocol TCP|UDP|SCTP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
    /// SCTP (IP protocol 132).
    Sctp,
}

impl Protocol {
    /// The IP protocol number, as `meta l4proto` sees it.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// Lower-case name used in object names.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// How a virtual service is recognised (`virtual_server IP PORT` or
/// `virtual_server fwmark N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// Packets to `vip:port` over `protocol`.
    Addr {
        /// The virtual address (held by VRRP).
        vip: IpAddr,
        /// Destination port.
        port: u16,
        /// Transport protocol.
        protocol: Protocol,
    },
    /// Packets carrying firewall mark `mark`, of address family `ipv6` or
    /// not (a mark alone does not say which family the real servers are).
    Fwmark {
        /// The packet mark set by the operator's rules.
        mark: u32,
        /// True for an IPv6 service.
        ipv6: bool,
    },
}

impl ServiceKey {
    /// Whether the service (and so its real servers) is IPv6.
    pub fn is_ipv6(&self) -> bool {
        match self {
            ServiceKey::Addr { vip, .. } => vip.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => *ipv6,
        }
    }
}

/// Scheduler (`lb_algo` / `lvs_sched`), named as IPVS names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheduler {
    /// Round robin: each new connection to the next server.
    RoundRobin,
    /// Weighted round robin, in IPVS's interleaved order.
    WeightedRoundRobin,
    /// Least connection (approximated, see [`crate::schedule::least_connection_weights`]).
    LeastConnection,
    /// Weighted least connection (approximated likewise).
    WeightedLeastConnection,
    /// Shortest expected delay (approximated as weighted least connection).
    ShortestExpectedDelay,
    /// Never queue (approximated as weighted least connection).
    NeverQueue,
    /// Locality-based least connection (approximated as weighted least connection).
    LocalityLeastConnection,
    /// Locality-based least connection with replication (likewise).
    LocalityLeastConnectionReplicated,
    /// Source hashing: the client address picks the server.
    SourceHash,
    /// Destination hashing: the destination address picks the server.
    DestinationHash,
    /// Maglev hashing of the client address: a changed server set moves few clients.
    MaglevHash,
    /// Weighted failover: every new connection to the highest weight.
    WeightedFailover,
    /// Weighted overflow (approximated as weighted failover).
    WeightedOverflow,
}

impl Scheduler {
    /// Parses IPVS's scheduler name (`rr`, `wrr`, `lc`, ...).
    pub fn from_name(name: &str) -> Option<Scheduler> {
        Some(match name {
            "rr" => Scheduler::RoundRobin,
            "wrr" => Scheduler::WeightedRoundRobin,
            "lc" => Scheduler::LeastConnection,
            "wlc" => Scheduler::WeightedLeastConnection,
            "sed" => Scheduler::ShortestExpectedDelay,
            "nq" => Scheduler::NeverQueue,
            "lblc" => Scheduler::LocalityLeastConnection,
            "lblcr" => Scheduler::LocalityLeastConnectionReplicated,
            "sh" => Scheduler::SourceHash,
            "dh" => Scheduler::DestinationHash,
            "mh" => Scheduler::MaglevHash,
            "fo" => Scheduler::WeightedFailover,
            "ovf" => Scheduler::WeightedOverflow,
            _ => return None,
        })
    }

    /// IPVS's name of the scheduler (the inverse of [`Scheduler::from_name`]).
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::RoundRobin => "rr",
            Scheduler::WeightedRoundRobin => "wrr",
            Scheduler::LeastConnection => "lc",
            Scheduler::WeightedLeastConnection => "wlc",
            Scheduler::ShortestExpectedDelay => "sed",
            Scheduler::NeverQueue => "nq",
            Scheduler::LocalityLeastConnection => "lblc",
            Scheduler::LocalityLeastConnectionReplicated => "lblcr",
            Scheduler::SourceHash => "sh",
            Scheduler::DestinationHash => "dh",
            Scheduler::MaglevHash => "mh",
            Scheduler::WeightedFailover => "fo",
            Scheduler::WeightedOverflow => "ovf",
        }
    }

    /// Whether nftables can only approximate this scheduler (the
    /// configuration layer turns this into a located warning).
    pub fn approximation(self) -> Option<&'static str> {
        match self {
            Scheduler::LeastConnection
            | Scheduler::WeightedLeastConnection
            | Scheduler::ShortestExpectedDelay
            | Scheduler::NeverQueue
            | Scheduler::LocalityLeastConnection
            | Scheduler::LocalityLeastConnectionReplicated => Some(
                "least-connection schedulers run as weighted round robin over weights \
                 derived from the conntrack count per server, refreshed by the daemon",
            ),
            Scheduler::WeightedOverflow => {
                Some("ovf runs as fo: the highest weight takes every new connection")
            }
            _ => None,
        }
    }
}

/// Forwarding method (`lb_kind` / `lvs_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Forwarding {
    /// NAT: the director rewrites the destination (DNAT) and the replies
    /// come back through it.
    Nat,
    /// Direct routing: the frame goes to the server's MAC, unchanged IP.
    DirectRouting,
    /// IP-in-IP tunnelling.
    Tunnel,
}

/// `persistence_timeout` and `persistence_granularity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Persistence {
    /// How long a client stays on its server after its last new connection.
    pub timeout: Duration,
    /// Prefix length of the client address that identifies a client
    /// (32 / 128 for one address; keepalived's granularity netmask).
    pub prefix_len: u8,
}

/// One real server (`real_server IP PORT { weight W }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Server {
    /// The server's address.
    pub addr: IpAddr,
    /// Its port; 0 keeps the client's destination port.
    pub port: u16,
    /// Weight; 0 takes no new connections (existing ones stay), as in IPVS.
    pub weight: u32,
}

/// One virtual service with its current real servers.
///
/// The daemon passes the servers that are up (checkers decide); a server
/// with weight 0 is quiesced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// What traffic the service takes.
    pub key: ServiceKey,
    /// How new connections are spread.
    pub scheduler: Scheduler,
    /// How packets reach the servers.
    pub forwarding: Forwarding,
    /// Client stickiness, if any.
    pub persistence: Option<Persistence>,
    /// The real servers that are up.
    pub servers: Vec<Server>,
    /// Answers when no server has a positive weight (`sorry_server`).
    pub sorry: Option<Server>,
}

impl Service {
    /// A NAT service on `vip:port` with `scheduler` and no servers yet.
    pub fn nat(vip: IpAddr, port: u16, protocol: Protocol, scheduler: Scheduler) -> Service {
        Service {
            key: ServiceKey::Addr {
                vip,
                port,
                protocol,
            },
            scheduler,
            forwarding: Forwarding::Nat,
            persistence: None,
            servers: Vec::new(),
            sorry: None,
        }
    }

    /// Adds a real server (builder style, for tests and examples).
    pub fn server(mut self, addr: IpAddr, port: u16, weight: u32) -> Service {
        self.servers.push(Server { addr, port, weight });
        self
    }
}
