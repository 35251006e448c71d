//! DNS_CHECK: one query (`type`, `name`, recursion desired) over UDP;
//! keepalived's rule decides: the first response carrying the query's id
//! passes when its rcode is NOERROR and fails otherwise; other datagrams are
//! ignored; silence until `connect_timeout` fails. Messages are encoded and
//! decoded with hickory-proto.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinDecodable;

use super::ProbeError;
use crate::check::action::Outcome;
use crate::check::spec::{CheckerSpec, DnsSpec};

/// A prepared DNS_CHECK.
#[derive(Debug)]
pub struct DnsProbe {
    to: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
    query: Query,
}

impl DnsProbe {
    pub(super) fn new(spec: &CheckerSpec, dns: &DnsSpec) -> Result<DnsProbe, ProbeError> {
        let bad = |why: String| ProbeError::BadDnsQuery {
            query_type: dns.query_type.clone(),
            name: dns.name.clone(),
            why,
        };
        let query_type = RecordType::from_str(&dns.query_type.to_ascii_uppercase())
            .map_err(|e| bad(e.to_string()))?;
        let name = if dns.name.is_empty() || dns.name == "." {
            Name::root()
        } else if dns.name.ends_with('.') {
            Name::from_ascii(&dns.name).map_err(|e| bad(e.to_string()))?
        } else {
            Name::from_ascii(format!("{}.", dns.name)).map_err(|e| bad(e.to_string()))?
        };
        Ok(DnsProbe {
            to: spec.connect.to,
            bind: spec.connect.bind,
            timeout: spec.timing.connect_timeout,
            query: Query::query(name, query_type),
        })
    }

    pub(super) async fn run(&self) -> Outcome {
        match tokio::time::timeout(self.timeout, self.exchange()).await {
            Ok(Ok(())) => Outcome::Healthy,
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed(format!(
                "no DNS response from {} within {:?}",
                self.to, self.timeout
            )),
        }
    }

    async fn exchange(&self) -> Result<(), String> {
        let to = self.to;
        let socket = super::udp::connected_socket(to, self.bind).await?;
        let id: u16 = rand::random();
        let mut request = Message::new(id, MessageType::Query, OpCode::Query);
        request.metadata.recursion_desired = true;
        request.add_query(self.query.clone());
        let bytes = request
            .to_vec()
            .map_err(|e| format!("encoding the query: {e}"))?;
        socket
            .send(&bytes)
            .await
            .map_err(|e| format!("sending to {to}: {e}"))?;
        let mut buf = [0u8; 4096];
        loop {
            let len = (socket.recv(&mut buf).await).map_err(|e| format!("{to}: {e}"))?;
            match response_verdict(id, &buf[..len]) {
                Some(ResponseCode::NoError) => return Ok(()),
                Some(rcode) => return Err(format!("{to} answered with rcode {rcode}")),
                None => continue,
            }
        }
    }
}

/// The rcode of `datagram` when it is a response to query `id`; None for
/// anything keepalived would keep waiting past (too short, another id, a query).
pub fn response_verdict(id: u16, datagram: &[u8]) -> Option<ResponseCode> {
    let header = Header::from_bytes(datagram).ok()?;
    (header.metadata.id == id && header.metadata.message_type == MessageType::Response)
        .then_some(header.metadata.response_code)
}
