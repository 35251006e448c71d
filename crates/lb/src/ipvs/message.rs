//! The kernel's generic netlink family `IPVS` (uapi `linux/ip_vs.h`):
//! commands and their nested attributes, encoded and decoded through
//! netlink-packet-generic's [`GenlFamily`] so the controller resolves the
//! family id and netlink-packet-core frames the message.
//!
//! Numbers below are the uapi enums' values. Attribute payloads follow what
//! the kernel's `ip_vs_ctl.c` reads and writes: addresses are a 16-byte
//! `union nf_inet_addr` (an IPv4 address in its first 4 bytes), ports are
//! big-endian 16-bit, the service netmask is a big-endian mask for IPv4 and
//! a prefix length for IPv6, names are NUL-terminated strings.

use netlink_packet_core::{
    emit_u16, emit_u32, parse_u16, parse_u16_be, parse_u32, parse_u8, DecodeError, DefaultNla,
    Emitable, Nla, NlaBuffer, NlasIterator, Parseable, ParseableParametrized, NLA_F_NESTED,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

/// The family name the controller resolves (`IPVS_GENL_NAME`).
pub const FAMILY_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub const FAMILY_VERSION: u8 = 1;

/// `IP_VS_SVC_F_PERSISTENT`: a client sticks to its server for `timeout`.
pub const SVC_F_PERSISTENT: u32 = 0x0001;
/// `IP_VS_CONN_F_MASQ`: NAT forwarding.
pub const FWD_MASQ: u32 = 0;
/// `IP_VS_CONN_F_TUNNEL`: IP-in-IP forwarding.
pub const FWD_TUNNEL: u32 = 2;
/// `IP_VS_CONN_F_DROUTE`: direct routing.
pub const FWD_DROUTE: u32 = 3;
/// `IP_VS_CONN_F_FWD_MASK`: the forwarding bits of a destination's flags.
pub const FWD_MASK: u32 = 0x0007;
/// `IP_VS_STATE_MASTER`: the sync daemon sends connection updates.
pub const STATE_MASTER: u32 = 1;
/// `IP_VS_STATE_BACKUP`: the sync daemon receives them.
pub const STATE_BACKUP: u32 = 2;

/// `IPVS_CMD_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Add a virtual service.
    NewService,
    /// Change a virtual service's scheduler, flags, timeout, netmask.
    SetService,
    /// Delete a virtual service and its destinations.
    DelService,
    /// Get one service, or dump all (also the reply's command).
    GetService,
    /// Add a real server to a service.
    NewDest,
    /// Change a real server's weight, forwarding, thresholds.
    SetDest,
    /// Remove a real server from a service.
    DelDest,
    /// Dump a service's real servers (also the reply's command).
    GetDest,
    /// Start a sync daemon.
    NewDaemon,
    /// Stop a sync daemon.
    DelDaemon,
    /// Dump the running sync daemons (also the reply's command).
    GetDaemon,
    /// The reply to [`Command::GetInfo`].
    SetInfo,
    /// Ask for the IPVS version and connection table size.
    GetInfo,
    /// Delete every service (never sent by tandem's backend: it would take
    /// the operator's services too).
    Flush,
    /// Any other command number.
    Other(u8),
}

impl Command {
    /// The `IPVS_CMD_*` number.
    pub fn number(self) -> u8 {
        match self {
            Command::NewService => 1,
            Command::SetService => 2,
            Command::DelService => 3,
            Command::GetService => 4,
            Command::NewDest => 5,
            Command::SetDest => 6,
            Command::DelDest => 7,
            Command::GetDest => 8,
            Command::NewDaemon => 9,
            Command::DelDaemon => 10,
            Command::GetDaemon => 11,
            Command::SetInfo => 14,
            Command::GetInfo => 15,
            Command::Flush => 17,
            Command::Other(n) => n,
        }
    }

    fn from_number(n: u8) -> Command {
        match n {
            1 => Command::NewService,
            2 => Command::SetService,
            3 => Command::DelService,
            4 => Command::GetService,
            5 => Command::NewDest,
            6 => Command::SetDest,
            7 => Command::DelDest,
            8 => Command::GetDest,
            9 => Command::NewDaemon,
            10 => Command::DelDaemon,
            11 => Command::GetDaemon,
            14 => Command::SetInfo,
            15 => Command::GetInfo,
            17 => Command::Flush,
            n => Command::Other(n),
        }
    }
}

/// One IPVS generic netlink message: a command and its top-level attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsMessage {
    /// The command (the generic netlink header's `cmd`).
    pub cmd: Command,
    /// Top-level attributes (`IPVS_CMD_ATTR_*`, or `IPVS_INFO_ATTR_*` in a
    /// [`Command::SetInfo`] reply).
    pub attrs: Vec<CmdAttr>,
}

impl IpvsMessage {
    /// A message of `cmd` with `attrs`.
    pub fn new(cmd: Command, attrs: Vec<CmdAttr>) -> IpvsMessage {
        IpvsMessage { cmd, attrs }
    }

    /// The nested service attributes, if the message carries a service.
    pub fn service(&self) -> Option<&[SvcAttr]> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Service(s) => Some(s.as_slice()),
            _ => None,
        })
    }

    /// The nested destination attributes, if the message carries one.
    pub fn dest(&self) -> Option<&[DestAttr]> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Dest(d) => Some(d.as_slice()),
            _ => None,
        })
    }

    /// The nested sync daemon attributes, if the message carries them.
    pub fn daemon(&self) -> Option<&[DaemonAttr]> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Daemon(d) => Some(d.as_slice()),
            _ => None,
        })
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd.number()
    }

    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = Command::from_number(header.cmd);
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf) {
            let nla = nla?;
            attrs.push(if cmd == Command::SetInfo {
                CmdAttr::parse_info(&nla)?
            } else {
                CmdAttr::parse(&nla)?
            });
        }
        Ok(IpvsMessage { cmd, attrs })
    }
}

/// A top-level attribute (`IPVS_CMD_ATTR_*`, `IPVS_INFO_ATTR_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdAttr {
    /// `IPVS_CMD_ATTR_SERVICE` (1), nested [`SvcAttr`]s.
    Service(Vec<SvcAttr>),
    /// `IPVS_CMD_ATTR_DEST` (2), nested [`DestAttr`]s.
    Dest(Vec<DestAttr>),
    /// `IPVS_CMD_ATTR_DAEMON` (3), nested [`DaemonAttr`]s.
    Daemon(Vec<DaemonAttr>),
    /// `IPVS_INFO_ATTR_VERSION` (1, in a GET_INFO reply).
    InfoVersion(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE` (2, in a GET_INFO reply).
    InfoConnTableSize(u32),
    /// Anything else, kept as received.
    Other(DefaultNla),
}

fn nested<T: Nla>(inner: &[T]) -> usize {
    inner.buffer_len()
}

fn parse_nested<T>(
    buf: &[u8],
    parse: impl Fn(&NlaBuffer<&[u8]>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    NlasIterator::new(buf).map(|n| parse(&n?)).collect()
}

impl Nla for CmdAttr {
    fn value_len(&self) -> usize {
        match self {
            CmdAttr::Service(a) => nested(a),
            CmdAttr::Dest(a) => nested(a),
            CmdAttr::Daemon(a) => nested(a),
            CmdAttr::InfoVersion(_) | CmdAttr::InfoConnTableSize(_) => 4,
            CmdAttr::Other(n) => n.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            CmdAttr::Service(_) => 1 | NLA_F_NESTED,
            CmdAttr::Dest(_) => 2 | NLA_F_NESTED,
            CmdAttr::Daemon(_) => 3 | NLA_F_NESTED,
            CmdAttr::InfoVersion(_) => 1,
            CmdAttr::InfoConnTableSize(_) => 2,
            CmdAttr::Other(n) => n.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            CmdAttr::Service(a) => a.as_slice().emit(buffer),
            CmdAttr::Dest(a) => a.as_slice().emit(buffer),
            CmdAttr::Daemon(a) => a.as_slice().emit(buffer),
            CmdAttr::InfoVersion(v) | CmdAttr::InfoConnTableSize(v) => {
                emit_u32(buffer, *v).expect("4-byte buffer")
            }
            CmdAttr::Other(n) => n.emit_value(buffer),
        }
    }
}

impl CmdAttr {
    fn parse(nla: &NlaBuffer<&[u8]>) -> Result<CmdAttr, DecodeError> {
        let v = nla.value();
        Ok(match nla.kind() {
            1 => CmdAttr::Service(parse_nested(v, SvcAttr::parse)?),
            2 => CmdAttr::Dest(parse_nested(v, DestAttr::parse)?),
            3 => CmdAttr::Daemon(parse_nested(v, DaemonAttr::parse)?),
            _ => CmdAttr::Other(DefaultNla::parse(nla)?),
        })
    }

    fn parse_info(nla: &NlaBuffer<&[u8]>) -> Result<CmdAttr, DecodeError> {
        let v = nla.value();
        Ok(match nla.kind() {
            1 => CmdAttr::InfoVersion(parse_u32(v)?),
            2 => CmdAttr::InfoConnTableSize(parse_u32(v)?),
            _ => CmdAttr::Other(DefaultNla::parse(nla)?),
        })
    }
}

/// A 16-byte `union nf_inet_addr` (IPv4 in the first 4 bytes).
pub type InetAddr = [u8; 16];

fn parse_inet_addr(v: &[u8]) -> Result<InetAddr, DecodeError> {
    if v.len() != 4 && v.len() != 16 {
        return Err(DecodeError::invalid_ip_address(v.len()));
    }
    let mut a = [0u8; 16];
    a[..v.len()].copy_from_slice(v);
    Ok(a)
}

fn parse_nul_string(v: &[u8]) -> Result<String, DecodeError> {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8(v[..end].to_vec()).map_err(|e| DecodeError::from(e.to_string()))
}

fn emit_nul_string(buffer: &mut [u8], s: &str) {
    buffer[..s.len()].copy_from_slice(s.as_bytes());
    buffer[s.len()] = 0;
}

/// `IPVS_SVC_ATTR_*`: a virtual service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SvcAttr {
    /// 1: address family (`AF_INET` 2, `AF_INET6` 10), u16.
    Af(u16),
    /// 2: IP protocol number, u16.
    Protocol(u16),
    /// 3: virtual address, 16 bytes.
    Addr(InetAddr),
    /// 4: virtual port, big-endian u16.
    Port(u16),
    /// 5: firewall mark, u32.
    Fwmark(u32),
    /// 6: scheduler name, NUL-terminated.
    SchedName(String),
    /// 7: `struct ip_vs_flags { u32 flags; u32 mask; }`.
    Flags {
        /// Flag values.
        flags: u32,
        /// Which flags to change.
        mask: u32,
    },
    /// 8: persistence timeout in seconds, u32.
    Timeout(u32),
    /// 9: persistence netmask: the bytes of a big-endian IPv4 mask, or an
    /// IPv6 prefix length as a native u32.
    Netmask([u8; 4]),
    /// 11: persistence engine name, NUL-terminated.
    PeName(String),
    /// Anything else (statistics), kept as received.
    Other(DefaultNla),
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        match self {
            SvcAttr::Af(_) | SvcAttr::Protocol(_) | SvcAttr::Port(_) => 2,
            SvcAttr::Addr(_) => 16,
            SvcAttr::Fwmark(_) | SvcAttr::Timeout(_) | SvcAttr::Netmask(_) => 4,
            SvcAttr::SchedName(s) | SvcAttr::PeName(s) => s.len() + 1,
            SvcAttr::Flags { .. } => 8,
            SvcAttr::Other(n) => n.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            SvcAttr::Af(_) => 1,
            SvcAttr::Protocol(_) => 2,
            SvcAttr::Addr(_) => 3,
            SvcAttr::Port(_) => 4,
            SvcAttr::Fwmark(_) => 5,
            SvcAttr::SchedName(_) => 6,
            SvcAttr::Flags { .. } => 7,
            SvcAttr::Timeout(_) => 8,
            SvcAttr::Netmask(_) => 9,
            SvcAttr::PeName(_) => 11,
            SvcAttr::Other(n) => n.kind(),
        }
    }

    fn emit_value(&self, b: &mut [u8]) {
        match self {
            SvcAttr::Af(v) | SvcAttr::Protocol(v) => emit_u16(b, *v).expect("2 bytes"),
            SvcAttr::Port(p) => b[..2].copy_from_slice(&p.to_be_bytes()),
            SvcAttr::Addr(a) => b[..16].copy_from_slice(a),
            SvcAttr::Fwmark(v) | SvcAttr::Timeout(v) => emit_u32(b, *v).expect("4 bytes"),
            SvcAttr::Netmask(m) => b[..4].copy_from_slice(m),
            SvcAttr::SchedName(s) | SvcAttr::PeName(s) => emit_nul_string(b, s),
            SvcAttr::Flags { flags, mask } => {
                emit_u32(&mut b[..4], *flags).expect("4 bytes");
                emit_u32(&mut b[4..8], *mask).expect("4 bytes");
            }
            SvcAttr::Other(n) => n.emit_value(b),
        }
    }
}

impl SvcAttr {
    fn parse(nla: &NlaBuffer<&[u8]>) -> Result<SvcAttr, DecodeError> {
        let v = nla.value();
        Ok(match nla.kind() {
            1 => SvcAttr::Af(parse_u16(v)?),
            2 => SvcAttr::Protocol(parse_u16(v)?),
            3 => SvcAttr::Addr(parse_inet_addr(v)?),
            4 => SvcAttr::Port(parse_u16_be(v)?),
            5 => SvcAttr::Fwmark(parse_u32(v)?),
            6 => SvcAttr::SchedName(parse_nul_string(v)?),
            7 if v.len() == 8 => SvcAttr::Flags {
                flags: parse_u32(&v[..4])?,
                mask: parse_u32(&v[4..])?,
            },
            8 => SvcAttr::Timeout(parse_u32(v)?),
            9 if v.len() == 4 => SvcAttr::Netmask([v[0], v[1], v[2], v[3]]),
            11 => SvcAttr::PeName(parse_nul_string(v)?),
            _ => SvcAttr::Other(DefaultNla::parse(nla)?),
        })
    }
}

/// `IPVS_DEST_ATTR_*`: a real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestAttr {
    /// 1: address, 16 bytes.
    Addr(InetAddr),
    /// 2: port, big-endian u16.
    Port(u16),
    /// 3: forwarding method (`IP_VS_CONN_F_*` & `IP_VS_CONN_F_FWD_MASK`), u32.
    FwdMethod(u32),
    /// 4: weight, u32.
    Weight(u32),
    /// 5: upper connection threshold, u32.
    UThresh(u32),
    /// 6: lower connection threshold, u32.
    LThresh(u32),
    /// 7: active connections (dumps), u32.
    ActiveConns(u32),
    /// 8: inactive connections (dumps), u32.
    InactConns(u32),
    /// 9: persistence templates (dumps), u32.
    PersistConns(u32),
    /// 11: the server's address family, u16.
    AddrFamily(u16),
    /// 13: tunnel type (`IP_VS_CONN_F_TUNNEL_TYPE_*`), u8.
    TunType(u8),
    /// Anything else (statistics, tunnel port/flags), kept as received.
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            DestAttr::Addr(_) => 16,
            DestAttr::Port(_) | DestAttr::AddrFamily(_) => 2,
            DestAttr::TunType(_) => 1,
            DestAttr::Other(n) => n.value_len(),
            _ => 4,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            DestAttr::Addr(_) => 1,
            DestAttr::Port(_) => 2,
            DestAttr::FwdMethod(_) => 3,
            DestAttr::Weight(_) => 4,
            DestAttr::UThresh(_) => 5,
            DestAttr::LThresh(_) => 6,
            DestAttr::ActiveConns(_) => 7,
            DestAttr::InactConns(_) => 8,
            DestAttr::PersistConns(_) => 9,
            DestAttr::AddrFamily(_) => 11,
            DestAttr::TunType(_) => 13,
            DestAttr::Other(n) => n.kind(),
        }
    }

    fn emit_value(&self, b: &mut [u8]) {
        match self {
            DestAttr::Addr(a) => b[..16].copy_from_slice(a),
            DestAttr::Port(p) => b[..2].copy_from_slice(&p.to_be_bytes()),
            DestAttr::AddrFamily(v) => emit_u16(b, *v).expect("2 bytes"),
            DestAttr::TunType(v) => b[0] = *v,
            DestAttr::FwdMethod(v)
            | DestAttr::Weight(v)
            | DestAttr::UThresh(v)
            | DestAttr::LThresh(v)
            | DestAttr::ActiveConns(v)
            | DestAttr::InactConns(v)
            | DestAttr::PersistConns(v) => emit_u32(b, *v).expect("4 bytes"),
            DestAttr::Other(n) => n.emit_value(b),
        }
    }
}

impl DestAttr {
    fn parse(nla: &NlaBuffer<&[u8]>) -> Result<DestAttr, DecodeError> {
        let v = nla.value();
        Ok(match nla.kind() {
            1 => DestAttr::Addr(parse_inet_addr(v)?),
            2 => DestAttr::Port(parse_u16_be(v)?),
            3 => DestAttr::FwdMethod(parse_u32(v)?),
            4 => DestAttr::Weight(parse_u32(v)?),
            5 => DestAttr::UThresh(parse_u32(v)?),
            6 => DestAttr::LThresh(parse_u32(v)?),
            7 => DestAttr::ActiveConns(parse_u32(v)?),
            8 => DestAttr::InactConns(parse_u32(v)?),
            9 => DestAttr::PersistConns(parse_u32(v)?),
            11 => DestAttr::AddrFamily(parse_u16(v)?),
            13 => DestAttr::TunType(parse_u8(v)?),
            _ => DestAttr::Other(DefaultNla::parse(nla)?),
        })
    }
}

/// `IPVS_DAEMON_ATTR_*`: a connection sync daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonAttr {
    /// 1: [`STATE_MASTER`] or [`STATE_BACKUP`], u32.
    State(u32),
    /// 2: the interface it sends or listens on, NUL-terminated.
    McastIfn(String),
    /// 3: the sync id that tells directors' groups apart, u32.
    SyncId(u32),
    /// 4: the largest sync message payload, u16.
    SyncMaxlen(u16),
    /// 5: IPv4 multicast group, 4 bytes in network order.
    McastGroup([u8; 4]),
    /// 6: IPv6 multicast group, 16 bytes.
    McastGroup6([u8; 16]),
    /// 7: UDP port, u16.
    McastPort(u16),
    /// 8: multicast TTL, u8.
    McastTtl(u8),
    /// Anything else, kept as received.
    Other(DefaultNla),
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        match self {
            DaemonAttr::State(_) | DaemonAttr::SyncId(_) | DaemonAttr::McastGroup(_) => 4,
            DaemonAttr::McastIfn(s) => s.len() + 1,
            DaemonAttr::SyncMaxlen(_) | DaemonAttr::McastPort(_) => 2,
            DaemonAttr::McastGroup6(_) => 16,
            DaemonAttr::McastTtl(_) => 1,
            DaemonAttr::Other(n) => n.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            DaemonAttr::State(_) => 1,
            DaemonAttr::McastIfn(_) => 2,
            DaemonAttr::SyncId(_) => 3,
            DaemonAttr::SyncMaxlen(_) => 4,
            DaemonAttr::McastGroup(_) => 5,
            DaemonAttr::McastGroup6(_) => 6,
            DaemonAttr::McastPort(_) => 7,
            DaemonAttr::McastTtl(_) => 8,
            DaemonAttr::Other(n) => n.kind(),
        }
    }

    fn emit_value(&self, b: &mut [u8]) {
        match self {
            DaemonAttr::State(v) | DaemonAttr::SyncId(v) => emit_u32(b, *v).expect("4 bytes"),
            DaemonAttr::McastIfn(s) => emit_nul_string(b, s),
            DaemonAttr::SyncMaxlen(v) | DaemonAttr::McastPort(v) => {
                emit_u16(b, *v).expect("2 bytes")
            }
            DaemonAttr::McastGroup(a) => b[..4].copy_from_slice(a),
            DaemonAttr::McastGroup6(a) => b[..16].copy_from_slice(a),
            DaemonAttr::McastTtl(v) => b[0] = *v,
            DaemonAttr::Other(n) => n.emit_value(b),
        }
    }
}

impl DaemonAttr {
    fn parse(nla: &NlaBuffer<&[u8]>) -> Result<DaemonAttr, DecodeError> {
        let v = nla.value();
        Ok(match nla.kind() {
            1 => DaemonAttr::State(parse_u32(v)?),
            2 => DaemonAttr::McastIfn(parse_nul_string(v)?),
            3 => DaemonAttr::SyncId(parse_u32(v)?),
            4 => DaemonAttr::SyncMaxlen(parse_u16(v)?),
            5 if v.len() == 4 => DaemonAttr::McastGroup([v[0], v[1], v[2], v[3]]),
            6 if v.len() == 16 => DaemonAttr::McastGroup6(parse_inet_addr(v)?),
            7 => DaemonAttr::McastPort(parse_u16(v)?),
            8 => DaemonAttr::McastTtl(parse_u8(v)?),
            _ => DaemonAttr::Other(DefaultNla::parse(nla)?),
        })
    }
}
