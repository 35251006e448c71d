//! How a [`Flow`] travels on the sync channel: compact attributes, so a NATed TCP flow costs
//! about 60 bytes on the wire and an un-NATed one about 45.
//!
//! | type | attribute | value |
//! |---|---|---|
//! | 1 | original tuple | packed tuple (below), required |
//! | 2 | reply tuple | packed tuple; absent when it is the inverted original (no NAT) |
//! | 3 | zone | u16, absent when 0 |
//! | 4 | status | u32 `IPS_*` bits |
//! | 5 | timeout | u32 seconds |
//! | 6 | mark | u32, absent when 0 |
//! | 7 | labels | 16 bytes |
//! | 8 | TCP | state, wscale orig, wscale reply, flags orig, flags reply (5 bytes) |
//!
//! A packed tuple is `kind` (0 address only, 1 ports, 2 ICMP), `protocol`, source and
//! destination address (4 + 4 or 16 + 16 bytes: the length says which), then for ports
//! source and destination port (u16 each), for ICMP id (u16), type and code. Unknown
//! attribute types are skipped, so a newer peer can add some.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tandem_ctsync::wire::{self, Attrs};
use tandem_ctsync::{Record, WireError};

use crate::flow::{Flow, FlowKey, Status, TcpInfo, Tuple, L4};

const ORIG: u16 = 1;
const REPLY: u16 = 2;
const ZONE: u16 = 3;
const STATUS: u16 = 4;
const TIMEOUT: u16 = 5;
const MARK: u16 = 6;
const LABELS: u16 = 7;
const TCP: u16 = 8;

/// Seconds an aged flow keeps at least (see [`Record::aged`] for `Flow`).
const AGED_FLOOR: u32 = 60;

impl Record for Flow {
    type Key = FlowKey;

    fn key(&self) -> FlowKey {
        Flow::key(self)
    }

    /// The remaining timeout runs down by `elapsed`, but not below a minute (or the flow's own
    /// timeout, if shorter): the master's kernel refreshes a busy flow's timeout on every
    /// packet without an event, so a flow past its reported lifetime may still be alive there;
    /// it gets the minute a demoted master's flows get, and dies then unless traffic comes.
    fn aged(mut self, elapsed: std::time::Duration) -> Flow {
        let elapsed = u32::try_from(elapsed.as_secs()).unwrap_or(u32::MAX);
        let floor = self.timeout.min(AGED_FLOOR);
        self.timeout = self.timeout.saturating_sub(elapsed).max(floor);
        self
    }

    fn differs_from(&self, earlier: &Flow) -> bool {
        Flow {
            timeout: earlier.timeout,
            ..self.clone()
        } != *earlier
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_tuple(out, ORIG, &self.orig);
        if self.reply != self.orig.inverted() {
            put_tuple(out, REPLY, &self.reply);
        }
        if self.zone != 0 {
            wire::put_attr(out, ZONE, &self.zone.to_be_bytes());
        }
        wire::put_u32(out, STATUS, self.status.0);
        wire::put_u32(out, TIMEOUT, self.timeout);
        if self.mark != 0 {
            wire::put_u32(out, MARK, self.mark);
        }
        if let Some(labels) = &self.labels {
            wire::put_attr(out, LABELS, labels);
        }
        if let Some(t) = &self.tcp {
            let v = [
                t.state,
                t.wscale_orig,
                t.wscale_reply,
                t.flags_orig,
                t.flags_reply,
            ];
            wire::put_attr(out, TCP, &v);
        }
    }

    fn decode(attrs: &[u8]) -> Result<Flow, WireError> {
        let mut orig = None;
        let mut reply = None;
        let mut flow_zone = 0;
        let mut status = 0;
        let mut timeout = 0;
        let mut mark = 0;
        let mut labels = None;
        let mut tcp = None;
        for attr in Attrs::new(attrs) {
            let (ty, value) = attr?;
            match ty {
                ORIG => orig = Some(get_tuple("original tuple", ty, value)?),
                REPLY => reply = Some(get_tuple("reply tuple", ty, value)?),
                ZONE => flow_zone = wire::get_u16("zone", ty, value)?,
                STATUS => status = wire::get_u32("status", ty, value)?,
                TIMEOUT => timeout = wire::get_u32("timeout", ty, value)?,
                MARK => mark = wire::get_u32("mark", ty, value)?,
                LABELS => labels = Some(wire::fixed::<16>("labels", ty, value)?),
                TCP => {
                    let [state, wscale_orig, wscale_reply, flags_orig, flags_reply] =
                        wire::fixed::<5>("tcp", ty, value)?;
                    tcp = Some(TcpInfo {
                        state,
                        wscale_orig,
                        wscale_reply,
                        flags_orig,
                        flags_reply,
                    });
                }
                _ => {} // a newer peer's attribute
            }
        }
        let orig: Tuple = orig.ok_or(WireError::Missing {
            field: "original tuple",
        })?;
        Ok(Flow {
            reply: reply.unwrap_or_else(|| orig.inverted()),
            orig,
            zone: flow_zone,
            status: Status(status),
            timeout,
            mark,
            labels,
            tcp,
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Flow>()
    }
}

fn put_tuple(out: &mut Vec<u8>, ty: u16, t: &Tuple) {
    let mut v = [0u8; 2 + 32 + 4];
    let mut n = 2;
    v[1] = t.proto;
    for addr in [t.src, t.dst] {
        match addr {
            IpAddr::V4(a) => {
                v[n..n + 4].copy_from_slice(&a.octets());
                n += 4;
            }
            IpAddr::V6(a) => {
                v[n..n + 16].copy_from_slice(&a.octets());
                n += 16;
            }
        }
    }
    match t.l4 {
        L4::None => v[0] = 0,
        L4::Ports { src, dst } => {
            v[0] = 1;
            v[n..n + 2].copy_from_slice(&src.to_be_bytes());
            v[n + 2..n + 4].copy_from_slice(&dst.to_be_bytes());
            n += 4;
        }
        L4::Icmp { id, kind, code } => {
            v[0] = 2;
            v[n..n + 2].copy_from_slice(&id.to_be_bytes());
            v[n + 2] = kind;
            v[n + 3] = code;
            n += 4;
        }
    }
    wire::put_attr(out, ty, &v[..n]);
}

fn get_tuple(field: &'static str, ty: u16, v: &[u8]) -> Result<Tuple, WireError> {
    let bad = || WireError::AttrLength {
        field,
        ty,
        len: v.len(),
        expected: 14,
    };
    let (&kind, rest) = v.split_first().ok_or_else(bad)?;
    let (&proto, rest) = rest.split_first().ok_or_else(bad)?;
    let l4_len = if kind == 0 { 0 } else { 4 };
    let addr_len = rest.len().checked_sub(l4_len).ok_or_else(bad)?;
    let (src, dst, l4) = match addr_len {
        8 => (
            IpAddr::V4(Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3])),
            IpAddr::V4(Ipv4Addr::new(rest[4], rest[5], rest[6], rest[7])),
            &rest[8..],
        ),
        32 => {
            let s: [u8; 16] = rest[..16].try_into().map_err(|_| bad())?;
            let d: [u8; 16] = rest[16..32].try_into().map_err(|_| bad())?;
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                &rest[32..],
            )
        }
        _ => return Err(bad()),
    };
    let l4 = match (kind, l4) {
        (0, []) => L4::None,
        (1, [a, b, c, d]) => L4::Ports {
            src: u16::from_be_bytes([*a, *b]),
            dst: u16::from_be_bytes([*c, *d]),
        },
        (2, [a, b, kind, code]) => L4::Icmp {
            id: u16::from_be_bytes([*a, *b]),
            kind: *kind,
            code: *code,
        },
        _ => return Err(bad()),
    };
    Ok(Tuple {
        src,
        dst,
        proto,
        l4,
    })
}

/// The check the fuzzer runs on arbitrary bytes as the attributes of a synced flow, shared with
/// the corpus replay test: decoding never panics, a flow that decodes encodes to attributes
/// that decode to the same flow, and its ctnetlink create (what a commit sends the kernel)
/// decodes back to the same original tuple and zone.
#[doc(hidden)]
pub fn fuzz_record(data: &[u8]) {
    use crate::codec::{encode_request, messages, Message, Request};

    let Ok(flow) = <Flow as Record>::decode(data) else {
        return;
    };
    let mut out = Vec::new();
    flow.encode(&mut out);
    assert_eq!(
        <Flow as Record>::decode(&out).as_ref(),
        Ok(&flow),
        "a decoded flow survives a round trip"
    );
    assert!(!flow.differs_from(&flow), "a flow is no news to itself");
    let mut create = Vec::new();
    encode_request(
        &mut create,
        &flow,
        Request::Create { strict_tcp: false },
        0,
        1,
    );
    match messages(&create).next() {
        Some(Ok(Message::Conntrack { flow: back, .. })) => {
            assert_eq!(back.orig, flow.orig, "the create keeps the original tuple");
            assert_eq!(back.zone, flow.zone, "the create keeps the zone");
        }
        other => panic!("the create of {flow:?} decodes as {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(nat: bool) -> Flow {
        let orig = Tuple {
            src: "10.1.0.5".parse().unwrap(),
            dst: "10.2.0.9".parse().unwrap(),
            proto: 6,
            l4: L4::Ports {
                src: 40000,
                dst: 80,
            },
        };
        let mut reply = orig.inverted();
        if nat {
            reply.dst = "10.2.0.254".parse().unwrap();
        }
        Flow {
            orig,
            reply,
            zone: 0,
            status: Status(Status::CONFIRMED | Status::ASSURED | Status::SEEN_REPLY),
            timeout: 431999,
            mark: 0,
            labels: None,
            tcp: Some(TcpInfo {
                state: 3,
                wscale_orig: 7,
                wscale_reply: 7,
                flags_orig: 0x23,
                flags_reply: 0x23,
            }),
        }
    }

    #[test]
    fn only_a_timeout_that_ran_down_is_no_news() {
        let earlier = flow(true);
        let mut later = earlier.clone();
        later.timeout -= 7;
        assert!(!later.differs_from(&earlier));
        later.mark = 9;
        assert!(later.differs_from(&earlier));
        let mut later = earlier.clone();
        later.tcp = Some(TcpInfo::default());
        assert!(later.differs_from(&earlier));
    }

    #[test]
    fn round_trip_and_size() {
        for nat in [false, true] {
            let f = flow(nat);
            let mut out = Vec::new();
            f.encode(&mut out);
            assert_eq!(<Flow as Record>::decode(&out), Ok(f));
            let expected = if nat { 61 } else { 43 };
            assert_eq!(out.len(), expected, "nat={nat}");
        }
        let mut f = flow(true);
        f.orig.src = "fd00::5".parse().unwrap();
        f.orig.dst = "fd00::9".parse().unwrap();
        f.reply = f.orig.inverted();
        f.orig.l4 = L4::Icmp {
            id: 7,
            kind: 128,
            code: 0,
        };
        f.reply.l4 = L4::Icmp {
            id: 7,
            kind: 129,
            code: 0,
        };
        f.zone = 9;
        f.mark = 42;
        f.labels = Some([1; 16]);
        let mut out = Vec::new();
        f.encode(&mut out);
        assert_eq!(<Flow as Record>::decode(&out), Ok(f));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        flow(true).encode(&mut out);
        for cut in 0..out.len() {
            let _ = <Flow as Record>::decode(&out[..cut]);
        }
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0xff;
            let _ = <Flow as Record>::decode(&bad);
        }
        assert!(<Flow as Record>::decode(&[]).is_err());
    }

    #[test]
    fn an_aged_flow_loses_the_time_since_it_was_reported_but_keeps_a_minute() {
        use std::time::Duration;
        let f = flow(false);
        assert_eq!(f.clone().aged(Duration::ZERO).timeout, 431999);
        assert_eq!(f.clone().aged(Duration::from_secs(3600)).timeout, 428399);
        assert_eq!(f.clone().aged(Duration::from_secs(500_000)).timeout, 60);
        let minutes = Flow {
            timeout: 300,
            ..f.clone()
        };
        assert_eq!(minutes.clone().aged(Duration::from_secs(100)).timeout, 200);
        assert_eq!(minutes.aged(Duration::from_secs(290)).timeout, 60);
        // Shorter than the floor: kept as it is.
        let short = Flow { timeout: 30, ..f };
        assert_eq!(short.aged(Duration::from_secs(100)).timeout, 30);
    }
}
