//! UDP_CHECK: send one datagram on a connected socket. An ICMP port
//! unreachable (ECONNREFUSED) fails it; without `require_reply` silence until
//! `connect_timeout` passes, with it an answer must arrive in time and, when
//! `require_reply` gave bytes, start with them within the length limits
//! (keepalived's `udp_socket_state` and `check_udp_reply`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::check::action::Outcome;
use crate::check::spec::{CheckerSpec, UdpSpec};

/// keepalived's payload when none is configured: 32 bytes of a repeated phrase.
fn default_payload() -> Vec<u8> {
    b"keepalived check - "
        .iter()
        .copied()
        .cycle()
        .take(32)
        .collect()
}

/// A prepared UDP_CHECK.
#[derive(Debug)]
pub struct UdpProbe {
    to: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
    payload: Vec<u8>,
    spec: UdpSpec,
}

impl UdpProbe {
    pub(super) fn new(spec: &CheckerSpec, udp: &UdpSpec) -> UdpProbe {
        UdpProbe {
            to: spec.connect.to,
            bind: spec.connect.bind,
            timeout: spec.timing.connect_timeout,
            payload: if udp.payload.is_empty() {
                default_payload()
            } else {
                udp.payload.clone()
            },
            spec: udp.clone(),
        }
    }

    pub(super) async fn run(&self) -> Outcome {
        match self.exchange().await {
            Ok(()) => Outcome::Healthy,
            Err(e) => Outcome::Failed(e),
        }
    }

    async fn exchange(&self) -> Result<(), String> {
        let to = self.to;
        let socket = connected_socket(to, self.bind).await?;
        socket
            .send(&self.payload)
            .await
            .map_err(|e| format!("sending to {to}: {e}"))?;
        let mut buf = vec![0u8; usize::from(self.spec.max_reply_length) + 1];
        match tokio::time::timeout(self.timeout, socket.recv(&mut buf)).await {
            Err(_) if self.spec.require_reply => {
                Err(format!("no reply from {to} within {:?}", self.timeout))
            }
            Err(_) => Ok(()),
            Ok(Err(e)) => Err(format!("{to}: {e}")),
            Ok(Ok(len)) => reply_matches(&self.spec, &buf[..len])
                .then_some(())
                .ok_or_else(|| format!("reply from {to} does not match require_reply")),
        }
    }
}

/// A UDP socket bound to `bind` (any address of `to`'s family when `None`) and connected
/// to `to`, so ICMP errors come back as errors; failures say which step.
pub(super) async fn connected_socket(
    to: SocketAddr,
    bind: Option<SocketAddr>,
) -> Result<UdpSocket, String> {
    let local = bind.unwrap_or_else(|| {
        if to.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        }
    });
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("binding to {local}: {e}"))?;
    socket
        .connect(to)
        .await
        .map_err(|e| format!("connecting to {to}: {e}"))?;
    Ok(socket)
}

/// keepalived's rule: with expected bytes, the length must be within
/// `[min, max]` and the bytes that arrived must equal the expected prefix;
/// without expected bytes any answer passes.
pub fn reply_matches(spec: &UdpSpec, reply: &[u8]) -> bool {
    if spec.reply.is_empty() {
        return true;
    }
    let len = reply.len();
    if len < usize::from(spec.min_reply_length) || len > usize::from(spec.max_reply_length) {
        return false;
    }
    spec.reply.iter().zip(reply).all(|(want, got)| want == got)
}
