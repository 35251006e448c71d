//! Sync health, said out loud: which source addresses may talk to the sync socket, and a
//! rate-limited WARN line for each way the pair can stop keeping flows in step (a key
//! mismatch, a stranger on the sync network, a silent peer, a broken link, a commit the
//! kernel refused). Counters alone looked healthy while none of that worked.
//!
//! The service feeds it what happened; it keeps the counts, writes the lines (at most one per
//! cause per [`LOG_PERIOD`], each with the count since the previous one) and publishes a
//! [`PeerHealth`] snapshot that `tandemctl status` shows.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem_ctsync::Stats;
use tracing::{info, warn};

use crate::log_limit::{LogLimiter, LOG_PERIOD};

/// Who may send sync datagrams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// Unicast: the configured peer's address only.
    Peer(IpAddr),
    /// Multicast: addresses within the sync interface's subnets (address, prefix length).
    Subnets(Vec<(IpAddr, u8)>),
}

impl Sources {
    /// Whether a datagram from `ip` may reach the sync core.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match self {
            Sources::Peer(peer) => canonical(*peer) == ip,
            Sources::Subnets(nets) => nets.iter().any(|&(net, len)| in_subnet(ip, net, len)),
        }
    }
}

/// IPv4-mapped IPv6 addresses compare as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is within `net`/`len` (same family only).
fn in_subnet(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let len = u32::from(len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let len = u32::from(len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The subnets of `interface` (of every interface but loopback when `None`), from the
/// addresses configured right now.
pub fn interface_subnets(interface: Option<&str>) -> Vec<(IpAddr, u8)> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut nets = Vec::new();
    for a in addrs {
        if interface.is_some_and(|name| name != a.interface_name) {
            continue;
        }
        let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
            continue;
        };
        let pair = match (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            (Some(a), Some(m)) => Some((IpAddr::V4(a.ip()), u32::from(m.ip()).count_ones())),
            _ => match (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                (Some(a), Some(m)) => Some((IpAddr::V6(a.ip()), u128::from(m.ip()).count_ones())),
                _ => None,
            },
        };
        if let Some((ip, len)) = pair {
            if interface.is_none() && ip.is_loopback() {
                continue;
            }
            nets.push((ip, len as u8));
        }
    }
    nets
}

/// What `tandemctl status` shows about the sync peer: a copy, refreshed by the service.
#[derive(Debug, Clone)]
pub struct PeerHealth {
    /// The peer (or multicast group) as configured.
    pub peer: String,
    /// When the service started (the peer gets `silent_after` from here to be heard).
    pub started: Instant,
    /// When the peer last sent an authenticated datagram of its current incarnation.
    pub last_heard: Option<Instant>,
    /// Silence longer than this makes the peer silent.
    pub silent_after: Duration,
    /// Dropped datagrams by reason, those that happened only.
    pub drops: Vec<(&'static str, u64)>,
    /// How far the peer is behind this node.
    pub lag: tandem_ctsync::Lag,
    /// Every replication counter and the caches' sizes, as of the last publication.
    pub counters: Stats,
    /// When the replication loop last published this: a loop that stops publishing is stuck,
    /// and the systemd watchdog is then no longer fed.
    pub published: Instant,
}

impl PeerHealth {
    /// Whether nothing authenticated came from the peer for longer than `silent_after`.
    pub fn is_silent(&self, now: Instant) -> bool {
        let since = self.last_heard.unwrap_or(self.started);
        now.saturating_duration_since(since) > self.silent_after
    }

    /// The status line: `sync peer=... health=ok|silent|waiting last_heard=... ...`.
    pub fn describe(&self, now: Instant) -> String {
        let health = match (self.is_silent(now), self.last_heard) {
            (true, _) => "silent",
            (false, Some(_)) => "ok",
            (false, None) => "waiting",
        };
        let heard = self.last_heard.map_or_else(
            || "never".to_string(),
            |t| format!("{:.1}s", now.saturating_duration_since(t).as_secs_f64()),
        );
        let total: u64 = self.drops.iter().map(|(_, n)| n).sum();
        let oldest = self.lag.oldest_unacked.map_or_else(
            || "0.0s".to_string(),
            |t| format!("{:.1}s", now.saturating_duration_since(t).as_secs_f64()),
        );
        let mut out = format!(
            "sync peer={} health={health} last_heard={heard} unacked={} oldest_unacked={oldest} \
             queued_bytes={} retransmissions={} drops={total}",
            self.peer, self.lag.unacked, self.lag.queued_bytes, self.counters.retransmissions
        );
        for (name, n) in &self.drops {
            let _ = write!(out, " drop_{name}={n}");
        }
        out
    }
}

/// Counts, log limiters and the published snapshot of one replication service.
pub struct Health {
    peer: String,
    sources: Sources,
    /// Refresh the subnets from the interface (multicast), which may gain addresses later.
    interface: Option<Option<String>>,
    silent_after: Duration,
    started: Instant,
    wrong_source: u64,
    send_errors: u64,
    link_failing: bool,
    silent: bool,
    last_heard: Option<Instant>,
    bad_hmac_log: LogLimiter,
    wrong_source_log: LogLimiter,
    silent_log: LogLimiter,
    link_log: LogLimiter,
    refused_log: LogLimiter,
    restart_log: LogLimiter,
    shared: Arc<Mutex<PeerHealth>>,
}

impl Health {
    /// Health of the link to `peer`, accepting datagrams from `sources`. With
    /// `refresh_from = Some(interface)` the subnet list is re-read from that interface on
    /// every tick (multicast).
    pub fn new(
        now: Instant,
        peer: String,
        sources: Sources,
        refresh_from: Option<Option<String>>,
        silent_after: Duration,
    ) -> Health {
        let shared = Arc::new(Mutex::new(PeerHealth {
            peer: peer.clone(),
            started: now,
            last_heard: None,
            silent_after,
            drops: Vec::new(),
            lag: Default::default(),
            counters: Stats::default(),
            published: now,
        }));
        Health {
            peer,
            sources,
            interface: refresh_from,
            silent_after,
            started: now,
            wrong_source: 0,
            send_errors: 0,
            link_failing: false,
            silent: false,
            last_heard: None,
            bad_hmac_log: LogLimiter::new(LOG_PERIOD),
            wrong_source_log: LogLimiter::new(LOG_PERIOD),
            silent_log: LogLimiter::new(LOG_PERIOD),
            link_log: LogLimiter::new(LOG_PERIOD),
            refused_log: LogLimiter::new(LOG_PERIOD),
            restart_log: LogLimiter::new(LOG_PERIOD),
            shared,
        }
    }

    /// The snapshot the daemon reads for `status`.
    pub fn shared(&self) -> Arc<Mutex<PeerHealth>> {
        Arc::clone(&self.shared)
    }

    /// Datagrams dropped because of their source address.
    pub fn wrong_source(&self) -> u64 {
        self.wrong_source
    }

    /// Datagrams the kernel refused to send to the peer.
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    /// Checks a datagram's source; one that is not the peer is counted, logged (limited)
    /// and must not reach the core.
    pub fn accepts(&mut self, now: Instant, from: SocketAddr) -> bool {
        if self.sources.allows(from.ip()) {
            return true;
        }
        self.wrong_source += 1;
        if let Some(n) = self.wrong_source_log.hit(now, 1) {
            warn!(
                "sync: dropped a datagram from {from}, which is not the peer {} \
                 ({n} dropped for their source since the last line)",
                self.peer
            );
        }
        false
    }

    /// `n` datagrams from `from` failed authentication.
    pub fn bad_hmac(&mut self, now: Instant, from: SocketAddr, n: u64) {
        if let Some(n) = self.bad_hmac_log.hit(now, n) {
            warn!(
                "sync peer {}: datagrams from {from} fail authentication (bad HMAC: is the \
                 key the same on both nodes?) ({n} since the last line)",
                self.peer
            );
        }
    }

    /// What the core says after a datagram: when the peer was last heard.
    pub fn heard(&mut self, now: Instant, last_heard: Option<Instant>) {
        if last_heard.is_none() || last_heard == self.last_heard {
            return;
        }
        let before = self.last_heard.unwrap_or(self.started);
        self.last_heard = last_heard;
        if self.silent {
            self.silent = false;
            info!(
                "sync peer {} heard again after {:.1} s",
                self.peer,
                now.saturating_duration_since(before).as_secs_f64()
            );
        }
    }

    /// Sending to the peer failed (ENETUNREACH, EPERM from a firewall, ...).
    pub fn send_failed(&mut self, now: Instant, error: &std::io::Error) {
        self.send_errors += 1;
        self.link_failing = true;
        if let Some(n) = self.link_log.hit(now, 1) {
            warn!(
                "sync link to {}: sending failed: {error} ({n} failures since the last line)",
                self.peer
            );
        }
    }

    /// Sending to the peer worked: says so once after failures.
    pub fn send_ok(&mut self) {
        if self.link_failing {
            self.link_failing = false;
            info!("sync link to {}: sending works again", self.peer);
        }
    }

    /// The kernel refused `n` of the peer's entries in a commit.
    pub fn commit_refused(&mut self, now: Instant, n: u64) {
        if let Some(n) = self.refused_log.hit(now, n) {
            warn!(
                "commit: the kernel refused {n} entries from sync peer {} since the last line",
                self.peer
            );
        }
    }

    /// The peer's node id or epoch changed (a restart, or a forged datagram without a key).
    pub fn peer_restarted(&mut self, now: Instant, node_id: u32) {
        if let Some(n) = self.restart_log.hit(now, 1) {
            info!(
                "sync peer {} (node {node_id:#x}) restarted: sending it our state \
                 ({n} restarts since the last line)",
                self.peer
            );
        }
    }

    /// Periodic: checks for silence, reports counts held back by the limiters, refreshes
    /// the multicast subnets and publishes the snapshot.
    pub fn tick(&mut self, now: Instant, stats: &Stats, lag: tandem_ctsync::Lag) {
        if let Some(interface) = &self.interface {
            self.sources = Sources::Subnets(interface_subnets(interface.as_deref()));
        }
        let since = self.last_heard.unwrap_or(self.started);
        let quiet = now.saturating_duration_since(since);
        // One count per fall into silence; a fall held back is told once the period is over.
        let fell = quiet > self.silent_after && !self.silent;
        if fell {
            self.silent = true;
        }
        if self.silent {
            if let Some(n) = self.silent_log.hit(now, u64::from(fell)) {
                self.log_silent(quiet, n);
            }
        }
        self.flush_held(now);
        let d = &stats.drops;
        let drops = [
            ("bad_hmac", d.bad_hmac),
            ("wrong_source", self.wrong_source),
            ("truncated", d.truncated),
            ("bad_magic", d.bad_magic),
            ("bad_version", d.bad_version),
            ("unknown_type", d.unknown_type),
            ("malformed", d.malformed),
            ("stale_epoch", d.stale_epoch),
            ("stale_session", d.stale_session),
            ("unsynced", d.unsynced),
            ("out_of_window", d.out_of_window),
            ("duplicate", d.duplicate),
        ];
        if let Ok(mut shared) = self.shared.lock() {
            shared.last_heard = self.last_heard;
            shared.drops = drops.into_iter().filter(|&(_, n)| n > 0).collect();
            shared.lag = lag;
            shared.counters = stats.clone();
            shared.published = now;
        }
    }

    fn log_silent(&self, quiet: Duration, n: u64) {
        let what = if self.last_heard.is_some() {
            "no authenticated datagram"
        } else {
            "never heard"
        };
        warn!(
            "sync peer {} silent for {:.1} s ({what}; peer_silent is {:.1} s) \
             (silent {n} times since the last line)",
            self.peer,
            quiet.as_secs_f64(),
            self.silent_after.as_secs_f64()
        );
    }

    /// Reports counts a limiter held back once its period is over, so a burst that stopped
    /// is still told in full.
    fn flush_held(&mut self, now: Instant) {
        if let Some(n) = self.bad_hmac_log.hit(now, 0) {
            warn!(
                "sync peer {}: datagrams fail authentication (bad HMAC: is the key the same \
                 on both nodes?) ({n} since the last line)",
                self.peer
            );
        }
        if let Some(n) = self.wrong_source_log.hit(now, 0) {
            warn!(
                "sync: dropped datagrams not from the peer {} ({n} since the last line)",
                self.peer
            );
        }
        if let Some(n) = self.link_log.hit(now, 0) {
            warn!(
                "sync link to {}: sending failed ({n} failures since the last line)",
                self.peer
            );
        }
        if let Some(n) = self.refused_log.hit(now, 0) {
            warn!(
                "commit: the kernel refused {n} entries from sync peer {} since the last line",
                self.peer
            );
        }
        if let Some(n) = self.restart_log.hit(now, 0) {
            info!(
                "sync peer {} restarted ({n} restarts since the last line)",
                self.peer
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn unicast_accepts_the_peer_only() {
        let s = Sources::Peer(ip("10.0.0.1"));
        assert!(s.allows(ip("10.0.0.1")));
        assert!(s.allows(ip("::ffff:10.0.0.1")));
        assert!(!s.allows(ip("10.0.0.100")));
        assert!(!s.allows(ip("fd00::1")));
    }

    #[test]
    fn multicast_accepts_the_interface_subnets_only() {
        let s = Sources::Subnets(vec![(ip("10.0.0.1"), 24), (ip("fe80::1"), 64)]);
        assert!(s.allows(ip("10.0.0.200")));
        assert!(!s.allows(ip("10.0.1.1")));
        assert!(s.allows(ip("fe80::abcd")));
        assert!(!s.allows(ip("fd00::1")));
        assert!(!Sources::Subnets(Vec::new()).allows(ip("10.0.0.1")));
        let all = Sources::Subnets(vec![(ip("0.0.0.0"), 0)]);
        assert!(all.allows(ip("192.0.2.1")));
    }

    #[test]
    fn silence_counts_from_the_start_until_first_heard() {
        let t0 = Instant::now();
        let mut h = PeerHealth {
            peer: "10.0.0.1:3780".into(),
            started: t0,
            last_heard: None,
            silent_after: Duration::from_secs(3),
            drops: vec![("bad_hmac", 5)],
            lag: Default::default(),
            counters: Stats {
                retransmissions: 2,
                ..Stats::default()
            },
            published: t0,
        };
        assert!(!h.is_silent(t0 + Duration::from_secs(2)));
        assert!(h
            .describe(t0 + Duration::from_secs(2))
            .contains("health=waiting last_heard=never"));
        assert!(h.is_silent(t0 + Duration::from_secs(4)));
        h.last_heard = Some(t0 + Duration::from_secs(4));
        let line = h.describe(t0 + Duration::from_millis(4500));
        assert_eq!(
            line,
            "sync peer=10.0.0.1:3780 health=ok last_heard=0.5s unacked=0 oldest_unacked=0.0s \
             queued_bytes=0 retransmissions=2 drops=5 drop_bad_hmac=5"
        );
        assert!(h.is_silent(t0 + Duration::from_secs(8)));
    }
}
