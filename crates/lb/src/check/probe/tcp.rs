//! TCP_CHECK: healthy when a connection opens within `connect_timeout`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use crate::check::action::Outcome;
use crate::check::spec::CheckerSpec;

/// A prepared TCP_CHECK.
#[derive(Debug)]
pub struct TcpProbe {
    to: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
}

impl TcpProbe {
    pub(super) fn new(spec: &CheckerSpec) -> TcpProbe {
        TcpProbe {
            to: spec.connect.to,
            bind: spec.connect.bind,
            timeout: spec.timing.connect_timeout,
        }
    }

    pub(super) async fn run(&self) -> Outcome {
        match connect(self.to, self.bind, self.timeout).await {
            Ok(_) => Outcome::Healthy,
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// Opens a TCP connection from `bind` (if any) to `to` within `timeout`;
/// the error is a sentence for logs.
pub(super) async fn connect(
    to: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let socket = if to.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(bind) = bind {
        socket
            .bind(bind)
            .map_err(|e| format!("binding to {bind}: {e}"))?;
    }
    match tokio::time::timeout(timeout, socket.connect(to)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("connecting to {to}: {e}")),
        Err(_) => Err(format!("connecting to {to}: timed out after {timeout:?}")),
    }
}
