//! Reading VRRP packets off a raw socket in bursts: `recvmmsg` into slots the caller keeps,
//! and the IP-layer facts (addresses, TTL / hop limit, arrival interface) the core checks.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmmsg, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn6};
use socket2::Socket;

use crate::error::SysError;

/// Larger than any VRRP packet: 255 IPv6 addresses (4,080 bytes) after the 8-byte header, or
/// 255 IPv4 addresses after an IPv4 header with options (60) and the v2 header and
/// authentication (16).
const PACKET_BUFFER: usize = 4160;

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

/// Packet-sized slots that [`VrrpSocket::recv_burst`] reads into, kept by the caller so a
/// burst costs no allocation or zeroing of its own.
#[derive(Debug)]
pub struct BurstBuffer {
    pub(crate) data: Vec<u8>,
}

impl BurstBuffer {
    /// Room for `slots` packets per system call (at least one).
    pub fn new(slots: usize) -> BurstBuffer {
        BurstBuffer {
            data: vec![0; slots.max(1) * PACKET_BUFFER],
        }
    }

    /// How many packets one system call can read.
    pub fn slots(&self) -> usize {
        self.data.len() / PACKET_BUFFER
    }
}

/// What one wake-up read off a socket.
#[derive(Debug, Default)]
pub struct Burst {
    /// Well-formed packets, in arrival order.
    pub packets: Vec<Received>,
    /// Packets that could not be read as IP packets (each a [`SysError::Malformed`]).
    pub malformed: Vec<SysError>,
}

impl Burst {
    /// Packets read, readable or not.
    pub fn len(&self) -> usize {
        self.packets.len() + self.malformed.len()
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads up to `room` queued datagrams in one `recvmmsg` call. Outer error: the socket
/// failed (or nothing was queued); inner errors: one packet was unreadable.
pub(crate) fn read_burst(
    sock: &Socket,
    source: IpAddr,
    ifindex: u32,
    buffer: &mut BurstBuffer,
    room: usize,
) -> io::Result<Vec<Result<Received, String>>> {
    let room = room.clamp(1, buffer.slots());
    let mut slots: Vec<[IoSliceMut; 1]> = buffer
        .data
        .chunks_mut(PACKET_BUFFER)
        .take(room)
        .map(|slot| [IoSliceMut::new(slot)])
        .collect();
    let fd = sock.as_raw_fd();
    let flags = MsgFlags::MSG_DONTWAIT;
    // What each message said, copied out before the slots are read again.
    let heads: Vec<Head> = match source {
        IpAddr::V4(_) => {
            // The IP header names the source: no address to copy out per packet.
            let mut headers = MultiHeaders::<()>::preallocate(room, None);
            recvmmsg(fd, &mut headers, slots.iter_mut(), flags, None)?
                .map(|m| Head::of(false, m.bytes, m.flags, None, None, None, ifindex))
                .collect()
        }
        IpAddr::V6(_) => {
            let cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
            let mut headers = MultiHeaders::<SockaddrIn6>::preallocate(room, Some(cmsg));
            let results = recvmmsg(fd, &mut headers, slots.iter_mut(), flags, None)?;
            let mut heads = Vec::new();
            for m in results {
                let (mut dst, mut hops, mut arrived_on) = (None, None, ifindex);
                for c in m.cmsgs()? {
                    match c {
                        ControlMessageOwned::Ipv6PacketInfo(info) => {
                            dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                            arrived_on = info.ipi6_ifindex;
                        }
                        ControlMessageOwned::Ipv6HopLimit(h) => hops = Some(h),
                        _ => {}
                    }
                }
                let src = m.address.map(|a| IpAddr::V6(a.ip()));
                heads.push(Head::of(true, m.bytes, m.flags, src, dst, hops, arrived_on));
            }
            heads
        }
    };
    Ok(heads
        .into_iter()
        .zip(buffer.data.chunks(PACKET_BUFFER))
        .map(|(head, slot)| head.packet(slot))
        .collect())
}

/// One received message's facts, before its bytes are read.
struct Head {
    v6: bool,
    len: usize,
    truncated: bool,
    /// IPv6 only: IPv4 packets carry these in their header.
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    hops: Option<i32>,
    ifindex: u32,
}

impl Head {
    fn of(
        v6: bool,
        len: usize,
        flags: MsgFlags,
        src: Option<IpAddr>,
        dst: Option<IpAddr>,
        hops: Option<i32>,
        ifindex: u32,
    ) -> Head {
        Head {
            v6,
            len,
            truncated: flags.contains(MsgFlags::MSG_TRUNC),
            src,
            dst,
            hops,
            ifindex,
        }
    }

    /// The packet in `slot`: a raw IPv4 socket delivers the IP header (TTL and addresses
    /// come from it); a raw IPv6 socket does not (they come from the control messages).
    fn packet(self, slot: &[u8]) -> Result<Received, String> {
        if self.truncated {
            return Err(format!("packet larger than {PACKET_BUFFER} bytes"));
        }
        let bytes = &slot[..self.len.min(slot.len())];
        if !self.v6 {
            return parse_ipv4(bytes, self.ifindex);
        }
        let src = self.src.ok_or("no source address")?;
        let dst = self.dst.ok_or("no IPV6_PKTINFO control message")?;
        let hops = self.hops.ok_or("no IPV6_HOPLIMIT control message")?;
        let ttl = u8::try_from(hops).map_err(|_| format!("hop limit {hops} out of range"))?;
        Ok(Received {
            src,
            dst,
            ttl,
            ifindex: self.ifindex,
            payload: bytes.to_vec(),
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VRRP_GROUP_V4;

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
