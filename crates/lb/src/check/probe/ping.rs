//! PING_CHECK: one ICMP (or ICMPv6) echo request, healthy when the echo
//! reply arrives within `connect_timeout`. Like keepalived it uses the
//! kernel's unprivileged ICMP datagram socket; when
//! `net.ipv4.ping_group_range` refuses it, a raw socket takes its place.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::check::action::Outcome;
use crate::check::spec::CheckerSpec;

/// keepalived's echo payload size (`ICMP_BUFSIZE`).
const PAYLOAD_LEN: usize = 128;
/// Sequence numbers shared by all ping checkers, as keepalived's `seq_no`.
static SEQUENCE: AtomicU16 = AtomicU16::new(0);

/// A prepared PING_CHECK.
#[derive(Debug)]
pub struct PingProbe {
    to: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
}

impl PingProbe {
    pub(super) fn new(spec: &CheckerSpec) -> PingProbe {
        PingProbe {
            to: SocketAddr::new(spec.connect.to.ip(), 0),
            bind: spec.connect.bind,
            timeout: spec.timing.connect_timeout,
        }
    }

    pub(super) async fn run(&self) -> Outcome {
        match tokio::time::timeout(self.timeout, self.echo()).await {
            Ok(Ok(())) => Outcome::Healthy,
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed(format!(
                "no echo reply from {} within {:?}",
                self.to.ip(),
                self.timeout
            )),
        }
    }

    async fn echo(&self) -> Result<(), String> {
        let v4 = self.to.is_ipv4();
        let (domain, protocol) = if v4 {
            (Domain::IPV4, Protocol::ICMPV4)
        } else {
            (Domain::IPV6, Protocol::ICMPV6)
        };
        let (socket, raw) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
            Ok(s) => (s, false),
            Err(_) => (
                Socket::new(domain, Type::RAW, Some(protocol))
                    .map_err(|e| format!("ICMP socket: {e}"))?,
                true,
            ),
        };
        if let Some(bind) = self.bind {
            socket
                .bind(&SocketAddr::new(bind.ip(), 0).into())
                .map_err(|e| format!("binding to {}: {e}", bind.ip()))?;
        }
        socket
            .connect(&self.to.into())
            .map_err(|e| format!("connecting to {}: {e}", self.to.ip()))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("ICMP socket: {e}"))?;
        let socket = UdpSocket::from_std(socket.into()).map_err(|e| format!("ICMP socket: {e}"))?;
        let id = std::process::id() as u16;
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let request = echo_request(v4, id, seq);
        socket
            .send(&request)
            .await
            .map_err(|e| format!("sending echo to {}: {e}", self.to.ip()))?;
        let mut buf = [0u8; 60 + 8 + PAYLOAD_LEN];
        loop {
            let len = (socket.recv(&mut buf).await)
                .map_err(|e| format!("echo to {}: {e}", self.to.ip()))?;
            // A raw IPv4 socket hands over the IP header too.
            let icmp = if raw && v4 {
                let header = usize::from(buf[0] & 0x0f) * 4;
                buf.get(header..len).unwrap_or_default()
            } else {
                &buf[..len]
            };
            // The datagram socket's kernel owns the identifier and filters
            // replies for us; on a raw socket they are matched here.
            if is_echo_reply(v4, icmp, raw.then_some(id), seq) {
                return Ok(());
            }
        }
    }
}

/// An echo request: type, code 0, checksum, identifier, sequence, then
/// keepalived's filler (the kernel fills the ICMPv6 checksum itself).
fn echo_request(v4: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut packet = vec![if v4 { 8 } else { 128 }, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend(b"keepalived check - ".iter().cycle().take(PAYLOAD_LEN));
    if v4 {
        let sum = tandem_vrrp::checksum::plain(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

fn is_echo_reply(v4: bool, icmp: &[u8], id: Option<u16>, seq: u16) -> bool {
    let reply_type = if v4 { 0 } else { 129 };
    icmp.len() >= 8
        && icmp[0] == reply_type
        && id.is_none_or(|id| icmp[4..6] == id.to_be_bytes())
        && icmp[6..8] == seq.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_checksums_to_zero() {
        let packet = echo_request(true, 0x1234, 7);
        assert_eq!(packet.len(), 8 + PAYLOAD_LEN);
        assert_eq!(
            tandem_vrrp::checksum::plain(&packet),
            0,
            "a correct checksum sums to 0xffff"
        );
        let mut reply = packet.clone();
        reply[0] = 0;
        assert!(is_echo_reply(true, &reply, Some(0x1234), 7));
        assert!(!is_echo_reply(true, &reply, Some(0x1235), 7));
        assert!(!is_echo_reply(true, &reply, None, 8));
        assert!(
            !is_echo_reply(true, &packet, None, 7),
            "a request is no reply"
        );
    }
}
