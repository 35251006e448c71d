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

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    sendmmsg, setsockopt, sockopt, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6,
    SockaddrLike,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::error::SysError;
use crate::interfaces::is_link_local_v6;
use crate::link_frames::{LinkSender, VRRP_TOS};
use crate::vrrp_receive::read_burst;
pub use crate::vrrp_receive::{Burst, BurstBuffer, Received};

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

/// A raw VRRP socket for one interface and address family.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    ifname: String,
    ifindex: u32,
    source: IpAddr,
    /// Where multicast adverts go when they are sent as frames.
    link: Option<AsyncFd<LinkSender>>,
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
        sock.set_tos_v4(u32::from(VRRP_TOS))
            .map_err(|e| SysError::socket(op("setting IP_TOS"), e))?;
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
        sock.set_tclass_v6(u32::from(VRRP_TOS))
            .map_err(|e| SysError::socket(op("setting IPV6_TCLASS"), e))?;
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
            link: None,
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
        let mut buffer = BurstBuffer::new(1);
        loop {
            let mut burst = self.recv_burst(&mut buffer, 1).await?;
            if let Some(packet) = burst.packets.pop() {
                return Ok(packet);
            }
            if let Some(error) = burst.malformed.pop() {
                return Err(error);
            }
        }
    }

    /// Waits until packets are queued, then reads up to `max` of them, as many per system
    /// call as `buffer` has slots (`recvmmsg`). Many instances advertise at once, so a
    /// backup's wake-up typically finds a burst: one call per slot-full, not one per packet.
    /// Errors in the result concern the socket; unreadable packets are listed in the burst.
    pub async fn recv_burst(
        &self,
        buffer: &mut BurstBuffer,
        max: usize,
    ) -> Result<Burst, SysError> {
        let op = || format!("receiving on VRRP socket for {}", self.ifname);
        let mut burst = Burst {
            packets: Vec::with_capacity(max.min(buffer.slots() * 4)),
            malformed: Vec::new(),
        };
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| SysError::socket(op(), e))?;
            while burst.len() < max {
                let room = buffer.slots().min(max - burst.len());
                let read = guard
                    .try_io(|fd| read_burst(fd.get_ref(), self.source, self.ifindex, buffer, room));
                match read {
                    Ok(Ok(read)) => {
                        let queue_drained = read.len() < room;
                        for packet in read {
                            match packet {
                                Ok(p) => burst.packets.push(p),
                                Err(detail) => burst
                                    .malformed
                                    .push(SysError::Malformed { op: op(), detail }),
                            }
                        }
                        if queue_drained {
                            // Saves the EAGAIN call; tokio keeps readiness that arrives later.
                            guard.clear_ready();
                            break;
                        }
                    }
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(e)) => return Err(SysError::socket(op(), e)),
                    Err(_would_block) => break,
                }
            }
            if !burst.is_empty() {
                return Ok(burst);
            }
        }
    }

    /// Sends one VRRP payload to `dst` (the group or a unicast peer) from
    /// exactly the configured source address.
    pub async fn send(&self, dst: IpAddr, payload: &[u8]) -> Result<(), SysError> {
        match self.send_burst(&[(dst, payload)]).await.pop() {
            Some((_, error)) => Err(error),
            None => Ok(()),
        }
    }

    /// Sends multicast adverts as finished Ethernet frames from `mac` (the interface's
    /// address) through a packet socket, skipping the IP output path per packet (see
    /// `link_frames`); unicast adverts keep this socket. For Ethernet-like links only.
    pub fn send_multicast_as_frames(&mut self, mac: [u8; 6]) -> Result<(), SysError> {
        let sender = LinkSender::open(self.ifindex, mac)?;
        // See `finish` on the deprecated constructor.
        #[allow(deprecated)]
        let fd = AsyncFd::new(sender).map_err(|e| {
            SysError::socket(
                format!(
                    "registering VRRP frame socket for {} with tokio",
                    self.ifname
                ),
                e,
            )
        })?;
        self.link = Some(fd);
        Ok(())
    }

    /// Sends every `(destination, payload)` from exactly the configured source address,
    /// as many per system call as the kernel takes (`sendmmsg`): the adverts of all the
    /// instances on an interface that are due together. Returns the packets that could not
    /// be sent (their index and why); the others went out.
    pub async fn send_burst(&self, packets: &[(IpAddr, &[u8])]) -> Vec<(usize, SysError)> {
        let mut frames = Vec::new();
        let mut frame_index = Vec::new();
        let mut routed = Vec::new();
        let mut routed_index = Vec::new();
        for (i, (dst, payload)) in packets.iter().enumerate() {
            match self
                .link
                .as_ref()
                .and_then(|l| l.get_ref().frame(self.source, *dst, payload))
            {
                Some(frame) => {
                    frames.push(frame);
                    frame_index.push(i);
                }
                None => {
                    routed.push((*dst, *payload));
                    routed_index.push(i);
                }
            }
        }
        let mut failed = Vec::new();
        let why = |i: usize, e: io::Error| {
            let op = format!(
                "sending to {} on VRRP socket for {}",
                packets[i].0, self.ifname
            );
            (i, SysError::socket(op, e))
        };
        if !routed.is_empty() {
            let refused = send_all(&self.fd, routed.len(), |sock, from| {
                send_some(sock, self.ifindex, self.source, &routed[from..])
            })
            .await;
            failed.extend(refused.into_iter().map(|(k, e)| why(routed_index[k], e)));
        }
        if let (Some(link), false) = (&self.link, frames.is_empty()) {
            let refused = send_all(link, frames.len(), |sender, from| {
                sender.send_some(&frames[from..])
            })
            .await;
            failed.extend(refused.into_iter().map(|(k, e)| why(frame_index[k], e)));
        }
        failed.sort_by_key(|(i, _)| *i);
        failed
    }
}

/// Sends items `0..count` through `fd`, `send_from(socket, k)` sending some from item `k` on
/// and saying how many; waits while the socket is full. An item the kernel refuses is
/// reported and skipped, the rest still go.
async fn send_all<T: AsRawFd>(
    fd: &AsyncFd<T>,
    count: usize,
    mut send_from: impl FnMut(&T, usize) -> io::Result<usize>,
) -> Vec<(usize, io::Error)> {
    let mut failed = Vec::new();
    let mut next = 0;
    while next < count {
        let mut guard = match fd.writable().await {
            Ok(guard) => guard,
            Err(e) => {
                let kind = e.kind();
                failed.extend((next..count).map(|i| (i, io::Error::new(kind, e.to_string()))));
                return failed;
            }
        };
        while next < count {
            match guard.try_io(|fd| send_from(fd.get_ref(), next)) {
                Ok(Ok(0)) => {
                    failed.push((
                        next,
                        io::Error::other("the kernel took none of the packets"),
                    ));
                    next += 1;
                }
                Ok(Ok(n)) => next += n,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => {
                    failed.push((next, e));
                    next += 1;
                }
                Err(_would_block) => break,
            }
        }
    }
    failed
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

/// Sends the leading packets of `packets` in one `sendmmsg` call, the source address and
/// interface pinned by PKTINFO, up to the first of the wrong family; returns how many the
/// kernel took (an error: not even the first).
fn send_some(
    sock: &Socket,
    ifindex: u32,
    source: IpAddr,
    packets: &[(IpAddr, &[u8])],
) -> io::Result<usize> {
    let fd = sock.as_raw_fd();
    let slices: Vec<[IoSlice; 1]> = packets.iter().map(|(_, p)| [IoSlice::new(p)]).collect();
    let mismatch = |dst: &IpAddr| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("destination {dst} is not of the socket's family (source {source})"),
        )
    };
    let sent = match source {
        IpAddr::V4(source) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: ifindex as libc::c_int,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(source.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let to: Vec<Option<SockaddrIn>> = packets
                .iter()
                .map_while(|(dst, _)| match dst {
                    IpAddr::V4(dst) => Some(Some(SockaddrIn::from(SocketAddrV4::new(*dst, 0)))),
                    IpAddr::V6(_) => None,
                })
                .collect();
            let space = nix::cmsg_space!(libc::in_pktinfo);
            send_leading(
                fd,
                &slices,
                &to,
                ControlMessage::Ipv4PacketInfo(&info),
                space,
            )
            .unwrap_or_else(|| Err(mismatch(&packets[0].0)))?
        }
        IpAddr::V6(source) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: source.octets(),
                },
                ipi6_ifindex: ifindex,
            };
            let to: Vec<Option<SockaddrIn6>> = packets
                .iter()
                .map_while(|(dst, _)| match dst {
                    IpAddr::V6(dst) => {
                        let scope = if is_link_local_v6(dst) || dst.is_multicast() {
                            ifindex
                        } else {
                            0
                        };
                        Some(Some(SockaddrIn6::from(SocketAddrV6::new(
                            *dst, 0, 0, scope,
                        ))))
                    }
                    IpAddr::V4(_) => None,
                })
                .collect();
            let space = nix::cmsg_space!(libc::in6_pktinfo);
            send_leading(
                fd,
                &slices,
                &to,
                ControlMessage::Ipv6PacketInfo(&info),
                space,
            )
            .unwrap_or_else(|| Err(mismatch(&packets[0].0)))?
        }
    };
    // Datagrams leave whole or not at all.
    Ok(sent)
}

/// One `sendmmsg` of the first `to.len()` slices, each to its address, all with `cmsg`;
/// `None` when there is no address (the first packet was of the other family).
fn send_leading<S: SockaddrLike + Copy>(
    fd: std::os::fd::RawFd,
    slices: &[[IoSlice; 1]],
    to: &[Option<S>],
    cmsg: ControlMessage,
    cmsg_space: Vec<u8>,
) -> Option<io::Result<usize>> {
    if to.is_empty() {
        return None;
    }
    let mut headers = MultiHeaders::preallocate(to.len(), Some(cmsg_space));
    let sent = sendmmsg(
        fd,
        &mut headers,
        &slices[..to.len()],
        to,
        [cmsg],
        MsgFlags::empty(),
    );
    Some(sent.map(|results| results.count()).map_err(io::Error::from))
}
