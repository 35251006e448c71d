//! Raw IP protocol 112 sockets: how VRRP advertisements leave and enter.
//!
//! One socket serves one (interface, address family); every VRRP instance
//! on that interface shares it and the daemon demultiplexes by VRID. The
//! socket is bound to the device, so raw IPv4 does not hand it packets from
//! other interfaces, and it is *not* bound to an address, because a raw
//! socket bound to an address only receives packets sent to that address
//! and would miss the multicast group. The source address is instead
//! pinned per packet with `IP_PKTINFO` / `IPV6_PKTINFO`, since the VRRPv3
//! checksum covers it.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn, SockaddrIn6,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::SysError;
use crate::interfaces::is_link_local_v6;

/// IANA protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;
/// The IPv4 multicast group VRRP advertisements go to.
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group VRRP advertisements go to.
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// VRRP requires TTL / hop limit 255 on the wire (RFC 5798 5.1.1.3 / 5.1.2.3).
const VRRP_TTL: u32 = 255;
/// Room for a burst of adverts from many instances while the daemon is busy.
const RECV_BUFFER: usize = 1 << 20;
/// Larger than any VRRP packet (IPv4 header + 16-byte header + 255 IPv6 addresses).
const PACKET_BUFFER: usize = 8192;

/// One received VRRP packet with the IP-layer facts the core checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Source address of the IP packet.
    pub src: IpAddr,
    /// Destination address (the multicast group or one of our unicast addresses).
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit; VRRP drops anything but 255.
    pub ttl: u8,
    /// Interface the packet arrived on.
    pub ifindex: u32,
    /// The VRRP header and what follows, IP header stripped.
    pub payload: Vec<u8>,
}

/// A raw VRRP socket for one interface and address family.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    ifname: String,
    ifindex: u32,
    source: IpAddr,
}

impl VrrpSocket {
    /// Opens the IPv4 socket on `ifname`, sending from `source` and joining
    /// `group` (normally 224.0.0.18; `None` for unicast-only peers).
    pub fn open_v4(
        ifname: &str,
        ifindex: u32,
        source: Ipv4Addr,
        group: Option<Ipv4Addr>,
    ) -> Result<Self, SysError> {
        let op = |what: &str| format!("{what} on IPv4 VRRP socket for {ifname}");
        let sock = open_raw(Domain::IPV4, ifname, &op)?;
        sock.set_ttl_v4(VRRP_TTL)
            .map_err(|e| SysError::socket(op("setting IP_TTL"), e))?;
        sock.set_multicast_ttl_v4(VRRP_TTL)
            .map_err(|e| SysError::socket(op("setting IP_MULTICAST_TTL"), e))?;
        sock.set_multicast_loop_v4(false)
            .map_err(|e| SysError::socket(op("clearing IP_MULTICAST_LOOP"), e))?;
        // Only the groups this socket joined, not every group the host joined.
        sock.set_multicast_all_v4(false)
            .map_err(|e| SysError::socket(op("clearing IP_MULTICAST_ALL"), e))?;
        // IPv4 names the multicast interface by address; when `source` is not
        // configured yet the device binding and IP_PKTINFO pick the interface.
        if let Err(e) = sock.set_multicast_if_v4(&source) {
            tracing::debug!(interface = ifname, %source, error = %e,
                "IP_MULTICAST_IF by source address failed; relying on SO_BINDTODEVICE");
        }
        if let Some(group) = group {
            sock.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(ifindex))
                .map_err(|e| SysError::socket(op(&format!("joining {group}")), e))?;
        }
        Self::finish(sock, ifname, ifindex, IpAddr::V4(source))
    }

    /// Opens the IPv6 socket on `ifname`, sending from `source` (normally the
    /// link-local address) and joining `group` (normally ff02::12).
    pub fn open_v6(
        ifname: &str,
        ifindex: u32,
        source: Ipv6Addr,
        group: Option<Ipv6Addr>,
    ) -> Result<Self, SysError> {
        let op = |what: &str| format!("{what} on IPv6 VRRP socket for {ifname}");
        let sock = open_raw(Domain::IPV6, ifname, &op)?;
        sock.set_unicast_hops_v6(VRRP_TTL)
            .map_err(|e| SysError::socket(op("setting IPV6_UNICAST_HOPS"), e))?;
        sock.set_multicast_hops_v6(VRRP_TTL)
            .map_err(|e| SysError::socket(op("setting IPV6_MULTICAST_HOPS"), e))?;
        sock.set_multicast_loop_v6(false)
            .map_err(|e| SysError::socket(op("clearing IPV6_MULTICAST_LOOP"), e))?;
        sock.set_multicast_all_v6(false)
            .map_err(|e| SysError::socket(op("clearing IPV6_MULTICAST_ALL"), e))?;
        sock.set_multicast_if_v6(ifindex)
            .map_err(|e| SysError::socket(op("setting IPV6_MULTICAST_IF"), e))?;
        sock.set_recv_hoplimit_v6(true)
            .map_err(|e| SysError::socket(op("setting IPV6_RECVHOPLIMIT"), e))?;
        setsockopt(&sock, sockopt::Ipv6RecvPacketInfo, &true)
            .map_err(|e| SysError::socket(op("setting IPV6_RECVPKTINFO"), e))?;
        if let Some(group) = group {
            sock.join_multicast_v6(&group, ifindex)
                .map_err(|e| SysError::socket(op(&format!("joining {group}")), e))?;
        }
        Self::finish(sock, ifname, ifindex, IpAddr::V6(source))
    }

    fn finish(sock: Socket, ifname: &str, ifindex: u32, source: IpAddr) -> Result<Self, SysError> {
        // tokio 1.54 deprecates the safe constructor because an arbitrary
        // `AsRawFd` type may not own its descriptor; `socket2::Socket` owns
        // it and the `AsyncFd` owns the socket, so the descriptor outlives
        // the registration, which is all `register` (unsafe) would add.
        #[allow(deprecated)]
        let fd = AsyncFd::new(sock).map_err(|e| {
            SysError::socket(
                format!("registering VRRP socket for {ifname} with tokio"),
                e,
            )
        })?;
        Ok(VrrpSocket {
            fd,
            ifname: ifname.to_string(),
            ifindex,
            source,
        })
    }

    /// The interface this socket is bound to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Index of the interface this socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The address every packet is sent from.
    pub fn source(&self) -> IpAddr {
        self.source
    }

    /// Waits for the next VRRP packet on the interface. A
    /// [`SysError::Malformed`] concerns one packet only (count it, keep
    /// receiving); other errors concern the socket.
    pub async fn recv(&self) -> Result<Received, SysError> {
        let op = || format!("receiving on VRRP socket for {}", self.ifname);
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| SysError::socket(op(), e))?;
            let result = guard.try_io(|fd| match self.source {
                IpAddr::V4(_) => recv_v4(fd.get_ref(), self.ifindex),
                IpAddr::V6(_) => recv_v6(fd.get_ref(), self.ifindex),
            });
            match result {
                Ok(Ok(Ok(received))) => return Ok(received),
                Ok(Ok(Err(detail))) => return Err(SysError::Malformed { op: op(), detail }),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(SysError::socket(op(), e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// The next packet already queued on the socket, without waiting; `None` when there is
    /// none. After [`VrrpSocket::recv`] returns, this drains the rest of a burst (many
    /// instances advertise at once) without a wake-up per packet.
    pub fn try_recv(&self) -> Option<Result<Received, SysError>> {
        let op = || format!("receiving on VRRP socket for {}", self.ifname);
        loop {
            let result = self
                .fd
                .try_io(Interest::READABLE, |sock| match self.source {
                    IpAddr::V4(_) => recv_v4(sock, self.ifindex),
                    IpAddr::V6(_) => recv_v6(sock, self.ifindex),
                });
            return match result {
                Ok(Ok(received)) => Some(Ok(received)),
                Ok(Err(detail)) => Some(Err(SysError::Malformed { op: op(), detail })),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(e) => Some(Err(SysError::socket(op(), e))),
            };
        }
    }

    /// Sends one VRRP payload to `dst` (the group or a unicast peer) from
    /// exactly the configured source address.
    pub async fn send(&self, dst: IpAddr, payload: &[u8]) -> Result<(), SysError> {
        let op = || format!("sending to {dst} on VRRP socket for {}", self.ifname);
        loop {
            let mut guard = self
                .fd
                .writable()
                .await
                .map_err(|e| SysError::socket(op(), e))?;
            let result =
                guard.try_io(|fd| send_one(fd.get_ref(), self.ifindex, self.source, dst, payload));
            match result {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(SysError::socket(op(), e)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Creates a non-blocking raw protocol-112 socket bound to `ifname`.
fn open_raw(domain: Domain, ifname: &str, op: &dyn Fn(&str) -> String) -> Result<Socket, SysError> {
    let sock = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))
        .map_err(|e| SysError::socket(op("opening"), e))?;
    sock.bind_device(Some(ifname.as_bytes()))
        .map_err(|e| SysError::socket(op("binding (SO_BINDTODEVICE)"), e))?;
    sock.set_recv_buffer_size(RECV_BUFFER)
        .map_err(|e| SysError::socket(op("setting SO_RCVBUF"), e))?;
    sock.set_nonblocking(true)
        .map_err(|e| SysError::socket(op("setting O_NONBLOCK"), e))?;
    Ok(sock)
}

/// Reads one datagram from a raw IPv4 socket, which includes the IP header:
/// TTL and addresses come from it. Outer error: the socket failed; inner
/// error: the packet was not a well-formed IPv4 packet.
fn recv_v4(sock: &Socket, ifindex: u32) -> io::Result<Result<Received, String>> {
    let mut buf = vec![0u8; PACKET_BUFFER];
    let (len, truncated) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<SockaddrIn>(sock.as_raw_fd(), &mut iov, None, MsgFlags::empty())?;
        (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC))
    };
    if truncated {
        return Ok(Err(format!("packet larger than {PACKET_BUFFER} bytes")));
    }
    Ok(parse_ipv4(&buf[..len], ifindex))
}

/// Takes apart the IPv4 packet a raw socket delivers.
fn parse_ipv4(packet: &[u8], ifindex: u32) -> Result<Received, String> {
    if packet.len() < 20 {
        return Err(format!(
            "{} bytes is shorter than an IPv4 header",
            packet.len()
        ));
    }
    let version = packet[0] >> 4;
    if version != 4 {
        return Err(format!("IP version {version} on an IPv4 socket"));
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    if ihl < 20 || ihl > packet.len() {
        return Err(format!(
            "IPv4 header length {ihl} does not fit a {}-byte packet",
            packet.len()
        ));
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    Ok(Received {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        ttl: packet[8],
        ifindex,
        payload: packet[ihl..].to_vec(),
    })
}

/// Reads one datagram from a raw IPv6 socket, which has no IP header: hop
/// limit and destination come from IPV6_HOPLIMIT / IPV6_PKTINFO messages.
fn recv_v6(sock: &Socket, bound_ifindex: u32) -> io::Result<Result<Received, String>> {
    let mut buf = vec![0u8; PACKET_BUFFER];
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
    let (len, truncated, src, dst, hops, ifindex) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<SockaddrIn6>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )?;
        let src = msg.address.map(|a| a.ip());
        let mut dst = None;
        let mut hops = None;
        let mut ifindex = bound_ifindex;
        for c in msg.cmsgs()? {
            match c {
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                    ifindex = info.ipi6_ifindex;
                }
                ControlMessageOwned::Ipv6HopLimit(h) => hops = Some(h),
                _ => {}
            }
        }
        let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
        (msg.bytes, truncated, src, dst, hops, ifindex)
    };
    if truncated {
        return Ok(Err(format!("packet larger than {PACKET_BUFFER} bytes")));
    }
    let Some(src) = src else {
        return Ok(Err("no source address".into()));
    };
    let Some(dst) = dst else {
        return Ok(Err("no IPV6_PKTINFO control message".into()));
    };
    let Some(hops) = hops else {
        return Ok(Err("no IPV6_HOPLIMIT control message".into()));
    };
    let Ok(ttl) = u8::try_from(hops) else {
        return Ok(Err(format!("hop limit {hops} out of range")));
    };
    Ok(Ok(Received {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        ttl,
        ifindex,
        payload: buf[..len].to_vec(),
    }))
}

/// Sends one payload with the source address and interface pinned by PKTINFO.
fn send_one(
    sock: &Socket,
    ifindex: u32,
    source: IpAddr,
    dst: IpAddr,
    payload: &[u8],
) -> io::Result<()> {
    let iov = [IoSlice::new(payload)];
    let fd = sock.as_raw_fd();
    let sent = match (source, dst) {
        (IpAddr::V4(source), IpAddr::V4(dst)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: ifindex as libc::c_int,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(source.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv4PacketInfo(&info)],
                MsgFlags::empty(),
                Some(&to),
            )?
        }
        (IpAddr::V6(source), IpAddr::V6(dst)) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: source.octets(),
                },
                ipi6_ifindex: ifindex,
            };
            let scope = if is_link_local_v6(&dst) || dst.is_multicast() {
                ifindex
            } else {
                0
            };
            let to = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, scope));
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv6PacketInfo(&info)],
                MsgFlags::empty(),
                Some(&to),
            )?
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("destination {dst} is not of the socket's family (source {source})"),
            ))
        }
    };
    if sent != payload.len() {
        return Err(io::Error::other(format!(
            "sent {sent} of {} bytes",
            payload.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_with_options_is_stripped() {
        let mut p = vec![0u8; 24 + 3];
        p[0] = 0x46; // version 4, IHL 6 (24 bytes)
        p[8] = 255;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[224, 0, 0, 18]);
        p[24..].copy_from_slice(&[0x31, 7, 100]);
        let r = parse_ipv4(&p, 3).unwrap();
        assert_eq!(r.payload, vec![0x31, 7, 100]);
        assert_eq!(r.ttl, 255);
        assert_eq!(r.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(r.dst, IpAddr::V4(VRRP_GROUP_V4));
    }

    #[test]
    fn bad_ipv4_headers_are_errors_not_panics() {
        assert!(parse_ipv4(&[0x45; 10], 1).is_err());
        let mut p = vec![0u8; 20];
        p[0] = 0x4f; // IHL 60 > 20 bytes
        assert!(parse_ipv4(&p, 1).is_err());
        p[0] = 0x44; // IHL 16 < 20
        assert!(parse_ipv4(&p, 1).is_err());
        p[0] = 0x65;
        assert!(parse_ipv4(&p, 1).is_err());
    }
}
