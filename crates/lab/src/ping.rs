//! One ICMP echo, sent in-process so the lab does not depend on `ping`.

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Sequence numbers, so a late reply to an earlier probe is not mistaken.
static SEQ: AtomicU16 = AtomicU16::new(1);

/// Sends one echo request to `dst` and waits up to `timeout` for the reply.
///
/// Must run on a thread inside the target namespace. Uses an ICMP datagram
/// ("ping") socket, which needs the namespace's `ping_group_range` to cover
/// our group; it is widened to all groups. Network errors (no route, host
/// unreachable) count as "no reply", not as failures.
pub(crate) fn ping_once(dst: IpAddr, timeout: Duration) -> anyhow::Result<bool> {
    std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")
        .context("allowing ICMP datagram sockets")?;
    let (domain, protocol, request, reply) = match dst {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, 8u8, 0u8),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, 128u8, 129u8),
    };
    let sock = Socket::new(domain, Type::DGRAM, Some(protocol)).context("opening ICMP socket")?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    // type, code, checksum and identifier are filled in by the kernel.
    let mut packet = *b"\0\0\0\0\0\0\0\0tandem-lab-ping!";
    packet[0] = request;
    packet[6..8].copy_from_slice(&seq);
    if sock
        .send_to(&packet, &SockAddr::from(SocketAddr::new(dst, 0)))
        .is_err()
    {
        return Ok(false);
    }
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(false);
        }
        sock.set_read_timeout(Some(left))?;
        match (&sock).read(&mut buf) {
            Ok(n) if n >= 8 && buf[0] == reply && buf[6..8] == seq => return Ok(true),
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Ok(false),
        }
    }
}
