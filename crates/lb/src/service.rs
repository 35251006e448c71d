//! The input: virtual services as the backend needs them, independent of
//! how keepalived.conf spells them (the configuration layer converts).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
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
    /// Least connection (approximated, see [`crate::schedule::effective_weights`]).
    LeastConnection,
    /// Weighted least connection (approximated likewise).
    WeightedLeastConnection,
    /// Shortest expected delay (approximated with IPVS's `(C + 1) / W`).
    ShortestExpectedDelay,
    /// Never queue (approximated: idle servers first, else as sed).
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

    /// Whether new connections are spread by the connections each server holds (the
    /// least-connection family): the daemon counts them and fills [`Service::loads`].
    pub fn uses_connection_counts(self) -> bool {
        matches!(
            self,
            Scheduler::LeastConnection
                | Scheduler::WeightedLeastConnection
                | Scheduler::ShortestExpectedDelay
                | Scheduler::NeverQueue
                | Scheduler::LocalityLeastConnection
                | Scheduler::LocalityLeastConnectionReplicated
        )
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
            s if s.uses_connection_counts() => Some(
                "new connections are not placed one by one on the least loaded server: \
                 every 2 s tandem counts each real server's conntrack entries and spreads \
                 the next connections by weights derived from those counts (IPVS's \
                 formulas; lblc/lblcr without locality, as wlc; persistent services keep \
                 their configured weights)",
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

/// Connections a real server holds now, counted as IPVS counts them: TCP entries in
/// ESTABLISHED are active, every other entry (other TCP states, UDP, SCTP) inactive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Load {
    /// Established TCP connections.
    pub active: u64,
    /// Every other entry.
    pub inactive: u64,
}

impl Load {
    /// IPVS's overhead of a server for lc/wlc: an active connection weighs 256 inactive ones.
    pub fn overhead(self) -> u64 {
        self.active
            .saturating_mul(256)
            .saturating_add(self.inactive)
    }
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
    /// Direct routing only: the devices packets arrive on and leave by, which the daemon
    /// finds (VRRP instance, route lookups) so that planning stays free of I/O.
    pub dr: DrPaths,
    /// Connections each real server (by address and port) holds now, for the
    /// least-connection family; a server not listed holds none.
    pub loads: BTreeMap<SocketAddr, Load>,
}

/// A network device, by name (hooks) and index (`fwd` takes an index).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Link {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
}

/// Where a direct-routing service's packets come in and go out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrPaths {
    /// Devices on which packets for the virtual address arrive (each gets an ingress chain).
    pub ingress: Vec<String>,
    /// Per real (or sorry) server address: the device it is reached on, on-link.
    pub egress: Vec<(IpAddr, Link)>,
}

impl DrPaths {
    /// The device that reaches `server`, if known.
    pub fn egress_for(&self, server: IpAddr) -> Option<&Link> {
        self.egress
            .iter()
            .find(|(a, _)| *a == server)
            .map(|(_, l)| l)
    }
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
            dr: DrPaths::default(),
            loads: BTreeMap::new(),
        }
    }

    /// A direct-routing service on `vip:port` arriving on `ingress` (builder style); the
    /// servers' egress devices are added with [`Service::egress`].
    pub fn dr(
        vip: IpAddr,
        port: u16,
        protocol: Protocol,
        scheduler: Scheduler,
        ingress: &[&str],
    ) -> Service {
        Service {
            forwarding: Forwarding::DirectRouting,
            dr: DrPaths {
                ingress: ingress.iter().map(|d| d.to_string()).collect(),
                egress: Vec::new(),
            },
            ..Service::nat(vip, port, protocol, scheduler)
        }
    }

    /// Records the device that reaches `server` (builder style).
    pub fn egress(mut self, server: IpAddr, link: Link) -> Service {
        self.dr.egress.push((server, link));
        self
    }

    /// Adds a real server (builder style, for tests and examples).
    pub fn server(mut self, addr: IpAddr, port: u16, weight: u32) -> Service {
        self.servers.push(Server { addr, port, weight });
        self
    }
}
