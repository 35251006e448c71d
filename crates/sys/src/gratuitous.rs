//! Announcing that addresses moved: gratuitous ARP for IPv4 and unsolicited
//! neighbour advertisements for IPv6, so hosts and switches on the link
//! update their caches to the new master at once instead of timing out.
//!
//! Frames are built by hand; they are a few dozen fixed bytes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn6};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use crate::error::SysError;

const ETH_P_ARP: u16 = 0x0806;
/// All-nodes multicast, where unsolicited advertisements go (RFC 4861 7.2.6).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Shortest Ethernet frame without FCS; shorter ARP frames are padded to it.
const MIN_FRAME: usize = 60;

/// A classic BPF program of one instruction, `ret #0`: the senders never
/// read, so nothing should pile up in their receive queues.
const DROP_ALL: [SockFilter; 1] = [SockFilter::new(0x06, 0, 0, 0)];

/// Sends gratuitous ARP requests on one interface through a bound AF_PACKET socket.
#[derive(Debug)]
pub struct ArpSender {
    sock: Socket,
    ifindex: u32,
    mac: [u8; 6],
}

impl ArpSender {
    /// Opens the packet socket on interface `ifindex`, sending from `mac`.
    pub fn new(ifindex: u32, mac: [u8; 6]) -> Result<Self, SysError> {
        let op = |what: &str| format!("{what} gratuitous ARP socket for interface index {ifindex}");
        let proto = i32::from(ETH_P_ARP.to_be());
        let sock = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(proto)))
            .map_err(|e| SysError::socket(op("opening"), e))?;
        sock.attach_filter(&DROP_ALL)
            .map_err(|e| SysError::socket(op("attaching drop filter to"), e))?;
        sock.set_nonblocking(true)
            .map_err(|e| SysError::socket(op("setting O_NONBLOCK on"), e))?;
        crate::packet_socket::bind_to_link(&sock, ifindex, &op)?;
        Ok(ArpSender { sock, ifindex, mac })
    }

    /// Broadcasts one gratuitous ARP request announcing `ip` at this sender's MAC.
    pub fn send(&self, ip: Ipv4Addr) -> Result<(), SysError> {
        let frame = arp_frame(self.mac, ip);
        nix::sys::socket::send(self.sock.as_raw_fd(), &frame, MsgFlags::empty()).map_err(|e| {
            SysError::socket(
                format!(
                    "sending gratuitous ARP for {ip} on interface index {}",
                    self.ifindex
                ),
                e,
            )
        })?;
        Ok(())
    }
}

/// Sends unsolicited neighbour advertisements on one interface through a raw ICMPv6 socket.
#[derive(Debug)]
pub struct NaSender {
    sock: Socket,
    ifname: String,
    ifindex: u32,
    mac: [u8; 6],
}

impl NaSender {
    /// Opens the ICMPv6 socket bound to `ifname` with hop limit 255, as
    /// receivers drop neighbour discovery with any other hop limit.
    pub fn new(ifname: &str, ifindex: u32, mac: [u8; 6]) -> Result<Self, SysError> {
        let op = |what: &str| format!("{what} neighbour advertisement socket for {ifname}");
        let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
            .map_err(|e| SysError::socket(op("opening"), e))?;
        sock.bind_device(Some(ifname.as_bytes()))
            .map_err(|e| SysError::socket(op("binding (SO_BINDTODEVICE)"), e))?;
        sock.set_multicast_hops_v6(255)
            .map_err(|e| SysError::socket(op("setting IPV6_MULTICAST_HOPS on"), e))?;
        sock.set_unicast_hops_v6(255)
            .map_err(|e| SysError::socket(op("setting IPV6_UNICAST_HOPS on"), e))?;
        sock.set_multicast_if_v6(ifindex)
            .map_err(|e| SysError::socket(op("setting IPV6_MULTICAST_IF on"), e))?;
        sock.attach_filter(&DROP_ALL)
            .map_err(|e| SysError::socket(op("attaching drop filter to"), e))?;
        sock.set_nonblocking(true)
            .map_err(|e| SysError::socket(op("setting O_NONBLOCK on"), e))?;
        Ok(NaSender {
            sock,
            ifname: ifname.to_string(),
            ifindex,
            mac,
        })
    }

    /// Sends one unsolicited advertisement for `target` from `source` (the
    /// interface's link-local address) to all nodes. The Router flag follows
    /// the interface's IPv6 forwarding setting, because a host that sees it
    /// cleared drops the sender from its default router list (RFC 4861 7.2.5).
    pub fn send(&self, source: Ipv6Addr, target: Ipv6Addr) -> Result<(), SysError> {
        let router = forwarding_enabled(&self.ifname);
        let msg = na_message(self.mac, target, router);
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: source.octets(),
            },
            ipi6_ifindex: self.ifindex,
        };
        let to = SockaddrIn6::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex));
        let iov = [std::io::IoSlice::new(&msg)];
        sendmsg(
            self.sock.as_raw_fd(),
            &iov,
            &[ControlMessage::Ipv6PacketInfo(&info)],
            MsgFlags::empty(),
            Some(&to),
        )
        .map_err(|e| {
            SysError::socket(
                format!(
                    "sending unsolicited neighbour advertisement for {target} from {source} on {}",
                    self.ifname
                ),
                e,
            )
        })?;
        Ok(())
    }
}

/// Sends one gratuitous ARP request for `ip` from `mac` on interface `ifindex`.
/// For bursts, keep an [`ArpSender`] instead of reopening the socket.
pub fn send_gratuitous_arp(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> Result<(), SysError> {
    ArpSender::new(ifindex, mac)?.send(ip)
}

/// Sends one unsolicited neighbour advertisement for `target` to ff02::1 on
/// `ifname`. For bursts, keep a [`NaSender`] instead of reopening the socket.
pub fn send_unsolicited_na(
    ifname: &str,
    ifindex: u32,
    mac: [u8; 6],
    source: Ipv6Addr,
    target: Ipv6Addr,
) -> Result<(), SysError> {
    NaSender::new(ifname, ifindex, mac)?.send(source, target)
}

/// Ethernet + ARP request with sender = target = `ip` (RFC 5227 "ARP
/// announcement" form, what keepalived and arping -U send), padded to 60 bytes.
fn arp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME);
    f.extend_from_slice(&[0xff; 6]); // Ethernet destination: broadcast
    f.extend_from_slice(&mac); // Ethernet source
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    f.push(6); // hardware address length
    f.push(4); // protocol address length
    f.extend_from_slice(&1u16.to_be_bytes()); // operation: request
    f.extend_from_slice(&mac); // sender hardware address
    f.extend_from_slice(&ip.octets()); // sender protocol address
    f.extend_from_slice(&[0; 6]); // target hardware address: unknown
    f.extend_from_slice(&ip.octets()); // target protocol address
    f.resize(MIN_FRAME, 0);
    f
}

/// ICMPv6 neighbour advertisement (RFC 4861 4.4) with Override set and a
/// target link-layer address option; the kernel fills in the checksum.
fn na_message(mac: [u8; 6], target: Ipv6Addr, router: bool) -> Vec<u8> {
    const ROUTER: u8 = 0x80;
    const OVERRIDE: u8 = 0x20;
    let mut m = Vec::with_capacity(32);
    m.push(136); // type: neighbour advertisement
    m.push(0); // code
    m.extend_from_slice(&[0, 0]); // checksum, computed by the kernel
    m.push(OVERRIDE | if router { ROUTER } else { 0 });
    m.extend_from_slice(&[0, 0, 0]); // rest of flags / reserved
    m.extend_from_slice(&target.octets());
    m.push(2); // option: target link-layer address
    m.push(1); // length in units of 8 bytes
    m.extend_from_slice(&mac);
    m
}

/// Reads `net.ipv6.conf.<ifname>.forwarding` of the calling thread's namespace.
fn forwarding_enabled(ifname: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{ifname}/forwarding"))
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_frame_layout() {
        let mac = [2, 0, 0, 0, 0, 1];
        let f = arp_frame(mac, Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[10, 0, 0, 100]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[10, 0, 0, 100]);
    }

    #[test]
    fn na_layout() {
        let t: Ipv6Addr = "fd00::100".parse().unwrap();
        let m = na_message([2, 0, 0, 0, 0, 1], t, false);
        assert_eq!(m.len(), 32);
        assert_eq!(m[0], 136);
        assert_eq!(m[4], 0x20);
        assert_eq!(&m[8..24], &t.octets());
        assert_eq!(&m[24..26], &[2, 1]);
        assert_eq!(na_message([0; 6], t, true)[4], 0xa0);
    }
}
