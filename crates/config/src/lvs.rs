//! The load-balancing side of keepalived.conf as tandem's typed model: `virtual_server`,
//! `virtual_server_group`, their `real_server`s and each real server's health checkers.
//!
//! Values are the ones keepalived 2.2 would run with: every default a real server or a checker
//! inherits from its virtual server (weight, forwarding method, retry, delay_loop, ...) is
//! already resolved here, so a backend or a checker reads one field and needs no fallbacks.

use std::net::IpAddr;
use std::time::Duration;

use crate::model::Location;

/// What a `virtual_server` line names: the service clients reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAddress {
    /// `virtual_server IP PORT`; port 0 (or none written) means every port, which keepalived
    /// allows only for persistent services.
    Socket {
        /// The virtual address.
        address: IpAddr,
        /// The virtual port, 0 for all ports.
        port: u16,
    },
    /// `virtual_server fwmark N`: packets the firewall marked with N.
    Fwmark(u32),
    /// `virtual_server group NAME`: every entry of `virtual_server_group NAME`.
    Group(String),
}

/// Address family, for `ip_family` and family-less fwmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `inet`.
    Inet,
    /// `inet6`.
    Inet6,
}

impl Family {
    /// The family of an address.
    pub fn of(address: &IpAddr) -> Family {
        match address {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }
}

/// `lb_algo` / `lvs_sched`: IPVS's scheduler names, all that keepalived accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbAlgo {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections (keepalived's default).
    Wlc,
    /// Locality-based least connections.
    Lblc,
    /// Locality-based least connections with replication.
    Lblcr,
    /// Source hashing.
    Sh,
    /// Maglev (consistent) hashing.
    Mh,
    /// Destination hashing.
    Dh,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted random twos choice.
    Twos,
}

impl LbAlgo {
    /// Every scheduler with the name keepalived reads.
    pub const ALL: &'static [(&'static str, LbAlgo)] = &[
        ("rr", LbAlgo::Rr),
        ("wrr", LbAlgo::Wrr),
        ("lc", LbAlgo::Lc),
        ("wlc", LbAlgo::Wlc),
        ("lblc", LbAlgo::Lblc),
        ("sh", LbAlgo::Sh),
        ("mh", LbAlgo::Mh),
        ("dh", LbAlgo::Dh),
        ("fo", LbAlgo::Fo),
        ("ovf", LbAlgo::Ovf),
        ("lblcr", LbAlgo::Lblcr),
        ("sed", LbAlgo::Sed),
        ("nq", LbAlgo::Nq),
        ("twos", LbAlgo::Twos),
    ];

    /// The scheduler's name as IPVS and keepalived spell it.
    pub fn name(self) -> &'static str {
        LbAlgo::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("wlc", |(n, _)| n)
    }

    /// The scheduler named `name` (case-sensitive, as keepalived).
    pub fn from_name(name: &str) -> Option<LbAlgo> {
        LbAlgo::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }
}

/// `lb_kind` / `lvs_method`: how packets reach a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbKind {
    /// `NAT`: the director rewrites the destination (keepalived's default).
    Nat,
    /// `DR`: direct routing, the destination MAC is rewritten.
    Dr,
    /// `TUN`: the packet is tunnelled to the real server.
    Tun(Tunnel),
}

/// Tunnel options after `TUN` (`lvs_method TUN type gue port 6080 csum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    /// Encapsulation.
    pub kind: TunnelKind,
    /// UDP port, for `gue` only.
    pub port: Option<u16>,
    /// Checksum option.
    pub checksum: TunnelChecksum,
}

impl Default for Tunnel {
    fn default() -> Tunnel {
        Tunnel {
            kind: TunnelKind::Ipip,
            port: None,
            checksum: TunnelChecksum::NoCsum,
        }
    }
}

/// Tunnel encapsulation (`type ipip|gue|gre`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    /// IP in IP (default).
    Ipip,
    /// Generic UDP encapsulation.
    Gue,
    /// GRE.
    Gre,
}

/// Tunnel checksum (`nocsum`, `csum`, `remcsum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelChecksum {
    /// No checksum (default).
    NoCsum,
    /// Checksum.
    Csum,
    /// Remote checksum offload.
    RemCsum,
}

/// `protocol TCP|UDP|SCTP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// Scheduler flags (`ops`, `sh-port`, `flag-1`, ...), as keepalived passes them to IPVS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedulerFlags {
    /// `ops`: one-packet scheduling (UDP only).
    pub one_packet: bool,
    /// `flag-1` (`sh-fallback` / `mh-fallback` for those schedulers).
    pub flag1: bool,
    /// `flag-2` (`sh-port` / `mh-port` for those schedulers).
    pub flag2: bool,
    /// `flag-3`.
    pub flag3: bool,
}

/// `persistence_granularity`: how much of the client address persistence keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// IPv4 netmask, e.g. 255.255.255.0.
    Netmask(std::net::Ipv4Addr),
    /// IPv6 prefix length, 1..=128.
    PrefixLen(u8),
}

/// A `virtual_server` block: one balanced service.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServer {
    /// What clients connect to.
    pub service: ServiceAddress,
    /// Address family: from the address, `ip_family`, or the real servers.
    pub family: Option<Family>,
    /// `delay_loop`: time between checks (default 60 s).
    pub delay_loop: Duration,
    /// `lb_algo` / `lvs_sched` (default `wlc`).
    pub lb_algo: LbAlgo,
    /// `lb_kind` / `lvs_method` (default NAT).
    pub lb_kind: LbKind,
    /// `hashed`, `ops`, `flag-N`, `sh-port`, ...
    pub scheduler_flags: SchedulerFlags,
    /// `persistence_timeout` (a bare keyword, a granularity or a zero port imply 360 s).
    pub persistence_timeout: Option<Duration>,
    /// `persistence_granularity`.
    pub persistence_granularity: Option<Granularity>,
    /// `persistence_engine` (e.g. `sip`).
    pub persistence_engine: Option<String>,
    /// `protocol`: `None` only for fwmark services, which have none.
    pub protocol: Option<Protocol>,
    /// `ha_suspend`: checks run only while the service's VRRP address is here.
    pub ha_suspend: bool,
    /// `virtualhost`: the default Host header of HTTP checks.
    pub virtualhost: Option<String>,
    /// `alpha`: real servers start down until their checks pass.
    pub alpha: bool,
    /// `omega`: run quorum_down and notify_down scripts on shutdown too.
    pub omega: bool,
    /// `quorum`: the sum of live weights needed for the service to be up (default 1).
    pub quorum: u32,
    /// `hysteresis`: the margin around the quorum before the state changes (default 0).
    pub hysteresis: u32,
    /// `quorum_up`: the script run when the quorum is gained.
    pub quorum_up: Option<String>,
    /// `quorum_down`: the script run when the quorum is lost.
    pub quorum_down: Option<String>,
    /// `sorry_server`: what answers when the quorum is lost.
    pub sorry_server: Option<SorryServer>,
    /// `smtp_alert`, or the global default.
    pub smtp_alert: bool,
    /// `real_server` blocks, in file order (duplicates removed).
    pub real_servers: Vec<RealServer>,
    /// Where the block starts.
    pub location: Location,
}

/// `sorry_server IP PORT` with `sorry_server_inhibit` and `sorry_server_lvs_method`.
#[derive(Debug, Clone, PartialEq)]
pub struct SorryServer {
    /// Address.
    pub address: IpAddr,
    /// Port (0: the virtual server's, or none for fwmark services).
    pub port: u16,
    /// `sorry_server_inhibit`: kept with weight 0 instead of removed.
    pub inhibit: bool,
    /// Forwarding method (the virtual server's unless `sorry_server_lvs_method`).
    pub lb_kind: LbKind,
    /// Where it was written.
    pub location: Location,
}

/// A `real_server IP PORT { ... }` block, with every default already taken from its
/// virtual server.
#[derive(Debug, Clone, PartialEq)]
pub struct RealServer {
    /// Address.
    pub address: IpAddr,
    /// Port (the virtual server's when not written, 0 for fwmark services).
    pub port: u16,
    /// `weight` (the virtual server's `weight`, 1, by default).
    pub weight: u32,
    /// `lvs_method`, or the virtual server's.
    pub lb_kind: LbKind,
    /// `inhibit_on_failure`: a failed server gets weight 0 instead of being removed.
    pub inhibit_on_failure: bool,
    /// `alpha`.
    pub alpha: bool,
    /// `uthreshold`: connection limit above which the server takes no new ones (0: none).
    pub uthreshold: u32,
    /// `lthreshold`: connection count below which the server takes new ones again.
    pub lthreshold: u32,
    /// `notify_up`: the script run when the server comes up.
    pub notify_up: Option<String>,
    /// `notify_down`: the script run when the server goes down.
    pub notify_down: Option<String>,
    /// `smtp_alert` (keepalived's default for real servers is on).
    pub smtp_alert: bool,
    /// `virtualhost`: the default Host header of this server's HTTP checks.
    pub virtualhost: Option<String>,
    /// Health checkers; none means the server is always up.
    pub checkers: Vec<Checker>,
    /// Where the block starts.
    pub location: Location,
}

/// One health checker of a real server.
#[derive(Debug, Clone, PartialEq)]
pub enum Checker {
    /// `TCP_CHECK`: a TCP connection opens.
    Tcp(TcpCheck),
    /// `HTTP_GET`: GET each url, compare the status, the body's MD5, a regex.
    Http(HttpCheck),
    /// `SSL_GET`: the same over TLS.
    Ssl(HttpCheck),
    /// `MISC_CHECK`: a script's exit code.
    Misc(MiscCheck),
    /// `SMTP_CHECK`: an SMTP greeting and HELO.
    Smtp(SmtpCheck),
    /// `DNS_CHECK`: a DNS query is answered.
    Dns(DnsCheck),
    /// `UDP_CHECK`: a UDP datagram is (optionally) answered.
    Udp(UdpCheck),
    /// `PING_CHECK`: an ICMP echo is answered.
    Ping(PingCheck),
    /// `BFD_CHECK`: a `bfd_instance` session is up.
    Bfd(BfdCheck),
    /// `FILE_CHECK`: a `track_file`'s value sets the weight.
    File(FileCheck),
}

impl Checker {
    /// The keyword that opened the checker (`HTTP_GET`, ...).
    pub fn keyword(&self) -> &'static str {
        match self {
            Checker::Tcp(_) => "TCP_CHECK",
            Checker::Http(_) => "HTTP_GET",
            Checker::Ssl(_) => "SSL_GET",
            Checker::Misc(_) => "MISC_CHECK",
            Checker::Smtp(_) => "SMTP_CHECK",
            Checker::Dns(_) => "DNS_CHECK",
            Checker::Udp(_) => "UDP_CHECK",
            Checker::Ping(_) => "PING_CHECK",
            Checker::Bfd(_) => "BFD_CHECK",
            Checker::File(_) => "FILE_CHECK",
        }
    }

    /// When and how often the checker runs (BFD and FILE checks have no timing of their own).
    pub fn timing(&self) -> Option<&CheckTiming> {
        match self {
            Checker::Tcp(c) => Some(&c.timing),
            Checker::Http(c) | Checker::Ssl(c) => Some(&c.timing),
            Checker::Misc(c) => Some(&c.timing),
            Checker::Smtp(c) => Some(&c.timing),
            Checker::Dns(c) => Some(&c.timing),
            Checker::Udp(c) => Some(&c.timing),
            Checker::Ping(c) => Some(&c.timing),
            Checker::Bfd(_) | Checker::File(_) => None,
        }
    }

    /// Where to connect, for the checkers that connect.
    pub fn connection(&self) -> Option<&Connection> {
        match self {
            Checker::Tcp(c) => Some(&c.connection),
            Checker::Http(c) | Checker::Ssl(c) => Some(&c.connection),
            Checker::Smtp(c) => Some(&c.connection),
            Checker::Dns(c) => Some(&c.connection),
            Checker::Udp(c) => Some(&c.connection),
            Checker::Ping(c) => Some(&c.connection),
            Checker::Misc(_) | Checker::Bfd(_) | Checker::File(_) => None,
        }
    }

    /// Where the checker's block starts.
    pub fn location(&self) -> &Location {
        match self {
            Checker::Tcp(c) => &c.location,
            Checker::Http(c) | Checker::Ssl(c) => &c.location,
            Checker::Misc(c) => &c.location,
            Checker::Smtp(c) => &c.location,
            Checker::Dns(c) => &c.location,
            Checker::Udp(c) => &c.location,
            Checker::Ping(c) => &c.location,
            Checker::Bfd(c) => &c.location,
            Checker::File(c) => &c.location,
        }
    }
}

/// The timing every checker shares, resolved through checker, real server and virtual
/// server as keepalived does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTiming {
    /// `delay_loop`: time between checks of a healthy server.
    pub delay_loop: Duration,
    /// `retry`: failures in a row before the server is taken out (after the first).
    pub retry: u32,
    /// `delay_before_retry`: time before a retry.
    pub delay_before_retry: Duration,
    /// `warmup`: the first check starts after a random delay up to this.
    pub warmup: Duration,
    /// `alpha`: the checker starts in the failed state.
    pub alpha: bool,
    /// `log_all_failures`.
    pub log_all_failures: bool,
}

/// Where a checker connects (`connect_ip`, `connect_port`, `bindto`, ...): the real
/// server's address and port unless given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `connect_ip`, else the real server's address.
    pub address: IpAddr,
    /// `connect_port`, else the real server's port (0 when it has none).
    pub port: u16,
    /// `bindto`: the source address.
    pub bind_address: Option<IpAddr>,
    /// `bind_port`: the source port.
    pub bind_port: Option<u16>,
    /// `bind_if`: the interface (needed for a link-local address).
    pub bind_interface: Option<String>,
    /// `connect_timeout` of the checker, real server or virtual server (default 5 s).
    pub timeout: Duration,
    /// `fwmark`: the mark set on the checker's packets.
    pub fwmark: Option<u32>,
}

/// `TCP_CHECK`.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpCheck {
    /// Where to connect.
    pub connection: Connection,
    /// Timing.
    pub timing: CheckTiming,
    /// Where the block starts.
    pub location: Location,
}

/// `PING_CHECK`.
#[derive(Debug, Clone, PartialEq)]
pub struct PingCheck {
    /// Where to send the echo (the port is unused).
    pub connection: Connection,
    /// Timing.
    pub timing: CheckTiming,
    /// Where the block starts.
    pub location: Location,
}

/// HTTP version of an HTTP_GET / SSL_GET request (`http_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpProtocol {
    /// `1.0` (keepalived's default).
    Http10,
    /// `1.0C`: HTTP/1.0 with `Connection: close`.
    Http10Close,
    /// `1.1`.
    Http11,
}

/// `HTTP_GET` / `SSL_GET`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    /// Where to connect.
    pub connection: Connection,
    /// Timing (delay_before_retry defaults to 3 s for these checkers).
    pub timing: CheckTiming,
    /// `url` blocks, each fetched in turn; all must pass.
    pub urls: Vec<Url>,
    /// `virtualhost`: the Host header, else the real server's, else the virtual server's.
    pub virtualhost: Option<String>,
    /// `http_protocol`.
    pub http_protocol: HttpProtocol,
    /// `enable_sni`: send the virtualhost as TLS server name (SSL_GET).
    pub enable_sni: bool,
    /// `fast_recovery`: one success brings a failed server back without waiting.
    pub fast_recovery: bool,
    /// `tls_compliant` (keepalived 2.3): close TLS with a close_notify.
    pub tls_compliant: bool,
    /// Where the block starts.
    pub location: Location,
}

/// A `url { ... }` block of an HTTP check.
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    /// `path`: what is requested.
    pub path: String,
    /// `digest`: the MD5 of the body (genhash's output), as 16 bytes.
    pub digest: Option<[u8; 16]>,
    /// `status_code`: accepted status codes (200-299 when none is given).
    pub status_codes: Vec<std::ops::RangeInclusive<u16>>,
    /// `virtualhost`: this url's Host header.
    pub virtualhost: Option<String>,
    /// `regex`: a PCRE2 pattern the body must match.
    pub regex: Option<String>,
    /// `regex_no_match`: the body must not match.
    pub regex_no_match: bool,
    /// `regex_options`.
    pub regex_options: Vec<String>,
    /// `regex_min_offset`.
    pub regex_min_offset: Option<usize>,
    /// `regex_max_offset`.
    pub regex_max_offset: Option<usize>,
    /// `tls_compliant` for this url (keepalived 2.3).
    pub tls_compliant: bool,
    /// Where the block starts.
    pub location: Location,
}

/// `MISC_CHECK`.
#[derive(Debug, Clone, PartialEq)]
pub struct MiscCheck {
    /// `misc_path`: the command line.
    pub path: String,
    /// `misc_timeout`: how long the script may run (default: delay_loop).
    pub timeout: Option<Duration>,
    /// `misc_dynamic`: exit code 2..=255 sets the weight to code - 2.
    pub dynamic: bool,
    /// `user`: who runs it (else `script_user`).
    pub user: Option<String>,
    /// `user`'s group.
    pub group: Option<String>,
    /// Timing (retry defaults to 0 for this checker).
    pub timing: CheckTiming,
    /// Where the block starts.
    pub location: Location,
}

/// `SMTP_CHECK`.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpCheck {
    /// Where to connect (port: the real server's, else 25).
    pub connection: Connection,
    /// `host { ... }` blocks (deprecated) beyond the one in `connection`: each is one more
    /// checker of the same real server, as keepalived runs them.
    pub hosts: Vec<Connection>,
    /// `helo_name` (default `smtpchecker.keepalived.org`).
    pub helo_name: String,
    /// Timing.
    pub timing: CheckTiming,
    /// Where the block starts.
    pub location: Location,
}

/// `DNS_CHECK`.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsCheck {
    /// Where to send the query (port: the real server's, else 53).
    pub connection: Connection,
    /// `type` (default SOA).
    pub query_type: String,
    /// `name` (default the root, "").
    pub name: String,
    /// Timing (retry 3, delay_before_retry = delay_loop by default).
    pub timing: CheckTiming,
    /// Where the block starts.
    pub location: Location,
}

/// `UDP_CHECK`.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpCheck {
    /// Where to send the datagram.
    pub connection: Connection,
    /// `payload`: bytes to send.
    pub payload: Vec<u8>,
    /// `require_reply`: an answer is needed (else only an ICMP error fails).
    pub require_reply: bool,
    /// `require_reply HEX`: the answer must start with these bytes.
    pub reply: Vec<u8>,
    /// `min_reply_length` (default 0).
    pub min_reply_length: u16,
    /// `max_reply_length` (default 255).
    pub max_reply_length: u16,
    /// Timing.
    pub timing: CheckTiming,
    /// Where the block starts.
    pub location: Location,
}

/// `BFD_CHECK`.
#[derive(Debug, Clone, PartialEq)]
pub struct BfdCheck {
    /// `name`: the `bfd_instance`.
    pub name: String,
    /// `alpha`.
    pub alpha: bool,
    /// Where the block starts.
    pub location: Location,
}

/// `FILE_CHECK`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileCheck {
    /// `track_file`: the name of a top-level `track_file` block.
    pub track_file: String,
    /// `weight N [reverse]`, else the track_file's.
    pub weight: Option<(i32, bool)>,
    /// Where the block starts.
    pub location: Location,
}

/// `virtual_server_group NAME { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServerGroup {
    /// The name `virtual_server group NAME` uses.
    pub name: String,
    /// Address ranges and fwmarks, in file order.
    pub entries: Vec<GroupEntry>,
    /// Where the block starts.
    pub location: Location,
}

/// One line of a `virtual_server_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEntry {
    /// `IP[-LAST] [PORT]` or `IP/LEN [PORT]`: the addresses `first..=last`.
    Range {
        /// First address.
        first: IpAddr,
        /// Last address (`first` for a single one).
        last: IpAddr,
        /// Port, 0 for all.
        port: u16,
    },
    /// `fwmark N [inet|inet6]`.
    Fwmark {
        /// The mark.
        mark: u32,
        /// The family, if given.
        family: Option<Family>,
    },
}
