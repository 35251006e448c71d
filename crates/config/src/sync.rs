//! Conntrack replication settings: one model whether they come from conntrackd.conf's `Sync`
//! and `General` sections or from tandem's own TOML `[sync]` section.

use std::net::IpAddr;
use std::time::Duration;

use crate::model::Location;

/// UDP port conntrackd uses by default, so a pair can mix old and new configuration files.
pub const DEFAULT_PORT: u16 = 3780;

/// How sync datagrams travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Unicast UDP between two fixed addresses (conntrackd's `UDP` channel).
    Udp {
        /// This node's address on the sync link.
        local: IpAddr,
        /// The peer's address.
        peer: IpAddr,
        /// UDP port on both ends.
        port: u16,
    },
    /// UDP to a multicast group (conntrackd's `Multicast` channel).
    Multicast {
        /// The group.
        group: IpAddr,
        /// This node's address on the sync link (IPv4 multicast names the interface by it).
        local: Option<IpAddr>,
        /// UDP port.
        port: u16,
    },
}

/// Accept or ignore what a filter lists (conntrackd's `Accept` / `Ignore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Replicate only what is listed.
    Accept,
    /// Replicate everything but what is listed.
    Ignore,
}

/// A list filter with its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter<T> {
    /// Accept or ignore.
    pub policy: Policy,
    /// The items.
    pub items: Vec<T>,
}

/// Which flows are replicated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterConfig {
    /// By layer-4 protocol name (`TCP`, `UDP`, `ICMP`, ...), upper case.
    pub protocols: Option<ListFilter<String>>,
    /// By address or prefix (address, prefix length), matched against both tuples.
    pub addresses: Option<ListFilter<(IpAddr, u8)>>,
    /// By TCP state (`ESTABLISHED`, `TIME_WAIT`, ...), upper case.
    pub tcp_states: Option<ListFilter<String>>,
    /// Ignore flows to or from this node's own addresses (conntrackd's default).
    pub ignore_own_addresses: bool,
}

/// Everything conntrack replication needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// The transport.
    pub transport: Transport,
    /// The dedicated sync interface (sockets are bound to it).
    pub interface: Option<String>,
    /// Largest datagram payload, to fit the path MTU.
    pub mtu: usize,
    /// Pre-shared key for an HMAC-SHA256 over every datagram.
    pub key: Option<Vec<u8>>,
    /// Keep strict TCP window tracking for committed entries (default: be-liberal flags).
    pub tcp_window_tracking: bool,
    /// Bound on each cache (conntrackd's `HashLimit`).
    pub max_entries: usize,
    /// Datagrams kept for retransmission (conntrackd's `ResendQueueSize`, in datagrams here).
    pub resend_queue: usize,
    /// Which flows are replicated.
    pub filter: FilterConfig,
    /// Run the commit/resync sequence inside the daemon on VRRP transitions (off: leave it to
    /// notify scripts, as with keepalived + conntrackd).
    pub builtin_failover: bool,
    /// How long a returning node waits for the peer's bulk update before it may preempt.
    pub preempt_wait: Duration,
    /// Keep the backup's kernel table warm: apply the peer's flows to it as they arrive, so a
    /// promotion commits only what is still pending (needs `builtin_failover`).
    pub warm_standby: bool,
    /// How long a new master waits for the commit of the external cache before it announces
    /// the addresses (the commit goes on in the background if it takes longer).
    pub commit_wait: Duration,
    /// After how long without an authenticated datagram the peer counts as silent (a WARN
    /// line, and `tandemctl status` fails), so a dead sync link or a key mismatch is seen.
    pub peer_silent: Duration,
    /// Where the section starts.
    pub location: Location,
}

impl SyncConfig {
    /// Defaults for everything but the transport.
    pub fn with_transport(transport: Transport, location: Location) -> SyncConfig {
        SyncConfig {
            transport,
            interface: None,
            mtu: 1400,
            key: None,
            tcp_window_tracking: false,
            max_entries: 1 << 21,
            resend_queue: 4096,
            filter: FilterConfig {
                ignore_own_addresses: true,
                ..FilterConfig::default()
            },
            builtin_failover: true,
            preempt_wait: Duration::from_secs(5),
            commit_wait: Duration::from_secs(1),
            peer_silent: Duration::from_secs(3),
            warm_standby: true,
            location,
        }
    }
}
