//! IPVS's view of services, real servers and sync daemons, converted to and
//! from the attributes of [`super::message`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::message::{
    DaemonAttr, DestAttr, InetAddr, SvcAttr, FWD_DROUTE, FWD_MASK, FWD_MASQ, FWD_TUNNEL,
    STATE_BACKUP, STATE_MASTER, SVC_F_PERSISTENT,
};
use crate::service::{Forwarding, Persistence, Protocol, ServiceKey};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

fn af(ipv6: bool) -> u16 {
    if ipv6 {
        AF_INET6
    } else {
        AF_INET
    }
}

fn inet(addr: IpAddr) -> InetAddr {
    let mut a = [0u8; 16];
    match addr {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a = v6.octets(),
    }
    a
}

fn from_inet(family: u16, a: &InetAddr) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*a))),
        _ => None,
    }
}

fn protocol(n: u16) -> Option<Protocol> {
    [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
        .into_iter()
        .find(|p| u16::from(p.number()) == n)
}

/// The attributes that name a service: family and protocol/address/port,
/// or family and firewall mark.
pub fn key_attrs(key: &ServiceKey) -> Vec<SvcAttr> {
    match *key {
        ServiceKey::Addr {
            vip,
            port,
            protocol,
        } => vec![
            SvcAttr::Af(af(vip.is_ipv6())),
            SvcAttr::Protocol(protocol.number().into()),
            SvcAttr::Addr(inet(vip)),
            SvcAttr::Port(port),
        ],
        ServiceKey::Fwmark { mark, ipv6 } => vec![SvcAttr::Af(af(ipv6)), SvcAttr::Fwmark(mark)],
    }
}

/// A virtual service as IPVS holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualService {
    /// What traffic it takes.
    pub key: ServiceKey,
    /// The IPVS scheduler's name (`rr`, `wlc`, ...).
    pub scheduler: String,
    /// Client stickiness (`IP_VS_SVC_F_PERSISTENT` + timeout + netmask).
    pub persistence: Option<Persistence>,
}

impl VirtualService {
    /// Every attribute NEW_SERVICE and SET_SERVICE need.
    pub fn attrs(&self) -> Vec<SvcAttr> {
        let ipv6 = self.key.is_ipv6();
        let (flags, timeout, prefix) = match self.persistence {
            Some(p) => (SVC_F_PERSISTENT, p.timeout.as_secs() as u32, p.prefix_len),
            None => (0, 0, if ipv6 { 128 } else { 32 }),
        };
        let mut attrs = key_attrs(&self.key);
        attrs.extend([
            SvcAttr::SchedName(self.scheduler.clone()),
            // The mask covers every flag, so SET_SERVICE also clears persistence.
            SvcAttr::Flags { flags, mask: !0 },
            SvcAttr::Timeout(timeout),
            SvcAttr::Netmask(netmask(ipv6, prefix)),
        ]);
        attrs
    }

    /// Reads a service from a dump; `None` for one tandem cannot model
    /// (an unknown family or protocol).
    pub fn from_attrs(attrs: &[SvcAttr]) -> Option<VirtualService> {
        let (mut family, mut proto, mut addr, mut port, mut mark) = (0, None, None, 0, None);
        let (mut sched, mut flags, mut timeout, mut mask) = (String::new(), 0, 0, [0u8; 4]);
        for a in attrs {
            match a {
                SvcAttr::Af(f) => family = *f,
                SvcAttr::Protocol(p) => proto = Some(*p),
                SvcAttr::Addr(x) => addr = Some(*x),
                SvcAttr::Port(p) => port = *p,
                SvcAttr::Fwmark(m) => mark = Some(*m),
                SvcAttr::SchedName(s) => sched = s.clone(),
                SvcAttr::Flags { flags: f, .. } => flags = *f,
                SvcAttr::Timeout(t) => timeout = *t,
                SvcAttr::Netmask(m) => mask = *m,
                _ => {}
            }
        }
        let ipv6 = family == AF_INET6;
        let key = match mark {
            Some(mark) if mark != 0 => ServiceKey::Fwmark { mark, ipv6 },
            _ => ServiceKey::Addr {
                vip: from_inet(family, &addr?)?,
                port,
                protocol: protocol(proto?)?,
            },
        };
        let persistence = (flags & SVC_F_PERSISTENT != 0).then(|| Persistence {
            timeout: Duration::from_secs(timeout.into()),
            prefix_len: prefix_len(ipv6, mask),
        });
        Some(VirtualService {
            key,
            scheduler: sched,
            persistence,
        })
    }
}

/// IPVS's netmask attribute: a big-endian mask for IPv4, the prefix length
/// as a native u32 for IPv6 (what the kernel checks against 1..=128).
pub fn netmask(ipv6: bool, prefix_len: u8) -> [u8; 4] {
    if ipv6 {
        u32::from(prefix_len.min(128)).to_ne_bytes()
    } else {
        let p = u32::from(prefix_len.min(32));
        let mask = if p == 0 { 0 } else { !0u32 << (32 - p) };
        mask.to_be_bytes()
    }
}

fn prefix_len(ipv6: bool, mask: [u8; 4]) -> u8 {
    if ipv6 {
        u32::from_ne_bytes(mask).min(128) as u8
    } else {
        u32::from_be_bytes(mask).leading_ones() as u8
    }
}

/// A real server of a service as IPVS holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealServer {
    /// Its address.
    pub addr: IpAddr,
    /// Its port (0 for a firewall-mark service that keeps the client's).
    pub port: u16,
    /// How packets reach it.
    pub forwarding: Forwarding,
    /// Its weight; 0 takes no new connections.
    pub weight: u32,
}

fn fwd_method(f: Forwarding) -> u32 {
    match f {
        Forwarding::Nat => FWD_MASQ,
        Forwarding::DirectRouting => FWD_DROUTE,
        Forwarding::Tunnel => FWD_TUNNEL,
    }
}

impl RealServer {
    /// The attributes that name it within its service.
    pub fn key_attrs(&self) -> Vec<DestAttr> {
        vec![
            DestAttr::Addr(inet(self.addr)),
            DestAttr::Port(self.port),
            DestAttr::AddrFamily(af(self.addr.is_ipv6())),
        ]
    }

    /// Every attribute NEW_DEST and SET_DEST need (no connection
    /// thresholds: 0 is IPVS's "none").
    pub fn attrs(&self) -> Vec<DestAttr> {
        let mut attrs = self.key_attrs();
        attrs.extend([
            DestAttr::FwdMethod(fwd_method(self.forwarding)),
            DestAttr::Weight(self.weight),
            DestAttr::UThresh(0),
            DestAttr::LThresh(0),
        ]);
        attrs
    }

    /// Reads a real server from a dump of a service of family `service_af`;
    /// `None` for a forwarding method tandem does not model (local node, bypass).
    pub fn from_attrs(service_ipv6: bool, attrs: &[DestAttr]) -> Option<RealServer> {
        let (mut family, mut addr, mut port, mut fwd, mut weight) =
            (af(service_ipv6), None, 0, None, 0);
        for a in attrs {
            match a {
                DestAttr::AddrFamily(f) => family = *f,
                DestAttr::Addr(x) => addr = Some(*x),
                DestAttr::Port(p) => port = *p,
                DestAttr::FwdMethod(f) => fwd = Some(*f & FWD_MASK),
                DestAttr::Weight(w) => weight = *w,
                _ => {}
            }
        }
        let forwarding = match fwd? {
            FWD_MASQ => Forwarding::Nat,
            FWD_DROUTE => Forwarding::DirectRouting,
            FWD_TUNNEL => Forwarding::Tunnel,
            _ => return None,
        };
        Some(RealServer {
            addr: from_inet(family, &addr?)?,
            port,
            forwarding,
            weight,
        })
    }
}

/// Which way a sync daemon runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DaemonState {
    /// Sends this director's connections to the backups.
    Master,
    /// Receives the master's connections.
    Backup,
}

impl DaemonState {
    /// `IP_VS_STATE_MASTER` / `IP_VS_STATE_BACKUP`.
    pub fn number(self) -> u32 {
        match self {
            DaemonState::Master => STATE_MASTER,
            DaemonState::Backup => STATE_BACKUP,
        }
    }

    /// As ipvsadm and keepalived's logs name it.
    pub fn name(self) -> &'static str {
        match self {
            DaemonState::Master => "master",
            DaemonState::Backup => "backup",
        }
    }
}

/// `lvs_sync_daemon INTERFACE INSTANCE [id N] [maxlen N] [port N] [ttl N]
/// [group IP]`: where IPVS's connection sync daemon runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncDaemon {
    /// The interface it sends on (master) or listens on (backup).
    pub interface: String,
    /// The sync id (default: the VRRP instance's virtual router id).
    pub sync_id: u32,
    /// Largest sync message payload, else the kernel's default.
    pub maxlen: Option<u16>,
    /// UDP port, else the kernel's default (8848).
    pub port: Option<u16>,
    /// Multicast TTL, else the kernel's default (1).
    pub ttl: Option<u8>,
    /// Multicast group, else the kernel's default (224.0.0.81 / ff02::8151).
    pub group: Option<IpAddr>,
}

impl SyncDaemon {
    /// The attributes of NEW_DAEMON in `state`.
    pub fn attrs(&self, state: DaemonState) -> Vec<DaemonAttr> {
        let mut attrs = vec![
            DaemonAttr::State(state.number()),
            DaemonAttr::McastIfn(self.interface.clone()),
            DaemonAttr::SyncId(self.sync_id),
        ];
        attrs.extend(self.maxlen.map(DaemonAttr::SyncMaxlen));
        attrs.extend(self.group.map(|g| match g {
            IpAddr::V4(v4) => DaemonAttr::McastGroup(v4.octets()),
            IpAddr::V6(v6) => DaemonAttr::McastGroup6(v6.octets()),
        }));
        attrs.extend(self.port.map(DaemonAttr::McastPort));
        attrs.extend(self.ttl.map(DaemonAttr::McastTtl));
        attrs
    }
}

/// A running sync daemon, from a GET_DAEMON dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningDaemon {
    /// Master or backup.
    pub state: DaemonState,
    /// Its interface.
    pub interface: String,
    /// Its sync id.
    pub sync_id: u32,
}

impl RunningDaemon {
    /// Reads a daemon from a dump; `None` if a field is missing.
    pub fn from_attrs(attrs: &[DaemonAttr]) -> Option<RunningDaemon> {
        let (mut state, mut interface, mut sync_id) = (None, None, None);
        for a in attrs {
            match a {
                DaemonAttr::State(STATE_MASTER) => state = Some(DaemonState::Master),
                DaemonAttr::State(STATE_BACKUP) => state = Some(DaemonState::Backup),
                DaemonAttr::McastIfn(i) => interface = Some(i.clone()),
                DaemonAttr::SyncId(s) => sync_id = Some(*s),
                _ => {}
            }
        }
        Some(RunningDaemon {
            state: state?,
            interface: interface?,
            sync_id: sync_id?,
        })
    }
}
