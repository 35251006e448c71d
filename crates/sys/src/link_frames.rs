//! Multicast adverts as whole Ethernet frames through an AF_PACKET socket.
//!
//! An advert to 224.0.0.18 or ff02::12 needs nothing from the IP stack: no
//! route (the group is on-link), no neighbour (the MAC follows from the
//! group), no fragmentation. Handing the kernel the finished frame skips
//! the route lookup, IP output path and netfilter OUTPUT hooks the raw IP
//! socket pays per packet, which with 1,000 instances is most of a master's
//! own cost. The frames carry the same fields the raw socket's packets do
//! (TTL / hop limit 255, DSCP CS6, the interface's MAC as source), so peers
//! cannot tell the two apart. Unicast adverts keep the raw IP socket, which
//! resolves the peer's MAC.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders};
use socket2::{Domain, Socket, Type};

use crate::error::SysError;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// IPv4 type of service / IPv6 traffic class of every advert: precedence 6, internetwork
/// control (DSCP CS6), where routing protocols sit in QoS policies.
pub(crate) const VRRP_TOS: u8 = 0xc0;
const IPPROTO_VRRP: u8 = 112;
const TTL: u8 = 255;

/// A send-only packet socket bound to one interface.
#[derive(Debug)]
pub(crate) struct LinkSender {
    sock: Socket,
    mac: [u8; 6],
}

impl LinkSender {
    /// Opens the socket on interface `ifindex` whose hardware address is `mac`. Protocol 0:
    /// the kernel hands this socket no received frames at all.
    pub(crate) fn open(ifindex: u32, mac: [u8; 6]) -> Result<LinkSender, SysError> {
        let op = |what: &str| format!("{what} VRRP frame socket for interface index {ifindex}");
        let sock = Socket::new(Domain::PACKET, Type::RAW, None)
            .map_err(|e| SysError::socket(op("opening"), e))?;
        sock.set_nonblocking(true)
            .map_err(|e| SysError::socket(op("setting O_NONBLOCK on"), e))?;
        crate::packet_socket::bind_to_link(&sock, ifindex, &op)?;
        Ok(LinkSender { sock, mac })
    }

    /// The frame carrying `payload` from `source` to multicast group `group`, if this path
    /// can send it (both addresses of one family, the group multicast).
    pub(crate) fn frame(&self, source: IpAddr, group: IpAddr, payload: &[u8]) -> Option<Vec<u8>> {
        match (source, group) {
            (IpAddr::V4(s), IpAddr::V4(g)) if g.is_multicast() => {
                Some(frame_v4(self.mac, s, g, payload))
            }
            (IpAddr::V6(s), IpAddr::V6(g)) if g.is_multicast() => {
                Some(frame_v6(self.mac, s, g, payload))
            }
            _ => None,
        }
    }

    /// Sends the leading frames in one `sendmmsg` call; how many the kernel took.
    pub(crate) fn send_some(&self, frames: &[Vec<u8>]) -> io::Result<usize> {
        let slices: Vec<[IoSlice; 1]> = frames.iter().map(|f| [IoSlice::new(f)]).collect();
        // The socket is bound: no per-frame address.
        let to: Vec<Option<()>> = vec![None; frames.len()];
        let mut headers = MultiHeaders::<()>::preallocate(frames.len(), None);
        let sent = sendmmsg(
            self.sock.as_raw_fd(),
            &mut headers,
            &slices,
            &to,
            [],
            MsgFlags::empty(),
        )?;
        Ok(sent.count())
    }
}

/// 01:00:5e and the group's low 23 bits (RFC 1112 6.4).
fn multicast_mac_v4(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// 33:33 and the group's low 32 bits (RFC 2464 7).
fn multicast_mac_v6(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, capacity: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + capacity);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Ethernet + IPv4 (no options, DF, ID 0 as the kernel sends DF datagrams) + payload.
fn frame_v4(mac: [u8; 6], source: Ipv4Addr, group: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let mut f = ethernet(multicast_mac_v4(group), mac, ETH_P_IP, 20 + payload.len());
    let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
    f.push(0x45); // version 4, header length 5 words
    f.push(VRRP_TOS);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // identification
    f.extend_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
    f.push(TTL);
    f.push(IPPROTO_VRRP);
    f.extend_from_slice(&[0, 0]); // header checksum, below
    f.extend_from_slice(&source.octets());
    f.extend_from_slice(&group.octets());
    let checksum = ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&checksum.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Ethernet + IPv6 (traffic class CS6, no flow label, no extension headers) + payload.
fn frame_v6(mac: [u8; 6], source: Ipv6Addr, group: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let mut f = ethernet(multicast_mac_v6(group), mac, ETH_P_IPV6, 40 + payload.len());
    let first_word = (6u32 << 28) | (u32::from(VRRP_TOS) << 20);
    f.extend_from_slice(&first_word.to_be_bytes());
    let length = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    f.extend_from_slice(&length.to_be_bytes());
    f.push(IPPROTO_VRRP);
    f.push(TTL);
    f.extend_from_slice(&source.octets());
    f.extend_from_slice(&group.octets());
    f.extend_from_slice(payload);
    f
}

impl AsRawFd for LinkSender {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

/// The one's-complement sum of the header's 16-bit words, complemented (RFC 791).
fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    #[test]
    fn v4_frame_layout_and_checksum() {
        let payload = [0x21, 7, 100, 1, 0, 1, 0, 0];
        let f = frame_v4(
            MAC,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(224, 0, 0, 18),
            &payload,
        );
        assert_eq!(&f[0..6], &[0x01, 0x00, 0x5e, 0, 0, 18]);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(ip[1], 0xc0);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 28);
        assert_eq!(ip[8], 255);
        assert_eq!(ip[9], 112);
        // A header with its checksum in place sums to 0xffff, i.e. checks to zero.
        assert_eq!(ipv4_header_checksum(ip), 0);
        assert_eq!(&f[34..], &payload);
    }

    #[test]
    fn v6_frame_layout() {
        let payload = [0x31, 7, 100, 1, 0, 100, 0, 0];
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let group: Ipv6Addr = "ff02::12".parse().unwrap();
        let f = frame_v6(MAC, src, group, &payload);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 0x12]);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(&f[14..18], &[0x6c, 0x00, 0x00, 0x00]);
        assert_eq!(&f[18..20], &[0, 8]);
        assert_eq!(f[20], 112);
        assert_eq!(f[21], 255);
        assert_eq!(&f[22..38], &src.octets());
        assert_eq!(&f[38..54], &group.octets());
        assert_eq!(&f[54..], &payload);
    }

    #[test]
    fn checksum_of_a_known_header() {
        // 192.168.0.1 -> 192.168.0.199, UDP, 115 bytes: checksum b861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
    }
}
