//! ctnetlink messages: netlink header, nfgenmsg, and the conntrack attributes.
//!
//! ```text
//! +--------------------------------------------------------------+
//! | nlmsghdr: len u32 | type u16 | flags u16 | seq u32 | pid u32 |  (native endian)
//! +--------------------------------------------------------------+
//! | nfgenmsg: family u8 | version u8 (0) | res_id be16           |
//! +--------------------------------------------------------------+
//! | CTA_* attributes (see attr.rs)                               |
//! +--------------------------------------------------------------+
//! ```
//!
//! Message type is `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_*`.
//! Attribute numbers are those of the kernel's
//! `include/uapi/linux/netfilter/nfnetlink_conntrack.h`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::attr::{align, nlas, Nla, Writer};
use crate::flow::{Family, Flow, Status, TcpInfo, Tuple, L4};

/// Why bytes from the kernel (or anywhere) are not a ctnetlink message we understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a header or attribute needs.
    #[error("{what}: truncated, need {need} bytes, have {have}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// An attribute declares a length shorter than its header or longer than what is left.
    #[error("in {within}: attribute {kind} declares length {declared}, {have} bytes left")]
    AttrLength {
        /// Enclosing attribute or message.
        within: &'static str,
        /// Attribute kind (flags masked).
        kind: u16,
        /// Declared `nla_len`.
        declared: usize,
        /// Bytes left.
        have: usize,
    },
    /// A fixed-size attribute has the wrong size.
    #[error("{attr}: expected {expected} bytes, found {found}")]
    ValueLength {
        /// Attribute name.
        attr: &'static str,
        /// Size the kernel ABI defines.
        expected: usize,
        /// Size found.
        found: usize,
    },
    /// A required attribute is absent.
    #[error("{attr} missing")]
    Missing {
        /// Attribute name.
        attr: &'static str,
    },
    /// A tuple mixes IPv4 and IPv6 addresses.
    #[error("{attr}: source and destination of different families")]
    MixedFamily {
        /// Which tuple.
        attr: &'static str,
    },
    /// A netlink message declares a length that does not fit.
    #[error("netlink message declares length {declared}, {have} bytes left")]
    MessageLength {
        /// Declared `nlmsg_len`.
        declared: usize,
        /// Bytes left in the datagram.
        have: usize,
    },
}

/// `NFNL_SUBSYS_CTNETLINK`.
pub const NFNL_SUBSYS_CTNETLINK: u16 = 1;
/// `NFNLGRP_CONNTRACK_NEW` multicast group.
pub const NFNLGRP_CONNTRACK_NEW: u32 = 1;
/// `NFNLGRP_CONNTRACK_UPDATE` multicast group.
pub const NFNLGRP_CONNTRACK_UPDATE: u32 = 2;
/// `NFNLGRP_CONNTRACK_DESTROY` multicast group.
pub const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;

/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x01;
/// `NLM_F_MULTI`.
pub const NLM_F_MULTI: u16 = 0x02;
/// `NLM_F_ACK`.
pub const NLM_F_ACK: u16 = 0x04;
/// `NLM_F_DUMP` (`ROOT | MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_EXCL`: fail with EEXIST instead of updating.
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`: set on NEW events, absent on UPDATE events.
pub const NLM_F_CREATE: u16 = 0x400;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// The ctnetlink operation of a message (`IPCTNL_MSG_CT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `IPCTNL_MSG_CT_NEW`: create or update; NEW and UPDATE events.
    New = 0,
    /// `IPCTNL_MSG_CT_GET`: get or dump.
    Get = 1,
    /// `IPCTNL_MSG_CT_DELETE`: delete or flush; DESTROY events.
    Delete = 2,
}

impl Op {
    fn msg_type(self) -> u16 {
        NFNL_SUBSYS_CTNETLINK << 8 | self as u16
    }
}

// ctattr_type
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_NAT_SRC: u16 = 6;
const CTA_TIMEOUT: u16 = 7;
const CTA_MARK: u16 = 8;
const CTA_NAT_DST: u16 = 13;
const CTA_ZONE: u16 = 18;
const CTA_LABELS: u16 = 22;
const CTA_LABELS_MASK: u16 = 23;
const CTA_FILTER: u16 = 25;
// ctattr_filter
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
// the kernel's CTA_FILTER_F_* bits (which fields of the filter tuple must match)
const FILTER_IP_DST: u32 = 1 << 1;
const FILTER_PROTO_NUM: u32 = 1 << 3;
const FILTER_PROTO_DST_PORT: u32 = 1 << 5;
// ctattr_tuple
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
// ctattr_ip
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
// ctattr_l4proto
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
const CTA_PROTO_ICMPV6_ID: u16 = 7;
const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
const CTA_PROTO_ICMPV6_CODE: u16 = 9;
// ctattr_protoinfo
const CTA_PROTOINFO_TCP: u16 = 1;
// ctattr_protoinfo_tcp
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const CTA_PROTOINFO_TCP_WSCALE_ORIGINAL: u16 = 2;
const CTA_PROTOINFO_TCP_WSCALE_REPLY: u16 = 3;
const CTA_PROTOINFO_TCP_FLAGS_ORIGINAL: u16 = 4;
const CTA_PROTOINFO_TCP_FLAGS_REPLY: u16 = 5;
// ctattr_nat
const CTA_NAT_V4_MINIP: u16 = 1;
const CTA_NAT_V4_MAXIP: u16 = 2;
const CTA_NAT_PROTO: u16 = 3;
const CTA_NAT_V6_MINIP: u16 = 4;
const CTA_NAT_V6_MAXIP: u16 = 5;
// ctattr_protonat
const CTA_PROTONAT_PORT_MIN: u16 = 1;
const CTA_PROTONAT_PORT_MAX: u16 = 2;

/// The fixed netlink message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlHeader {
    /// `nlmsg_len`, header included.
    pub len: u32,
    /// `nlmsg_type`.
    pub kind: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`.
    pub pid: u32,
}

/// One decoded message of a datagram from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A conntrack entry: a dump reply or an event.
    Conntrack {
        /// Netlink header (flags tell NEW from UPDATE events).
        header: NlHeader,
        /// Operation (`New` for NEW/UPDATE events and dump replies, `Delete` for DESTROY).
        op: Op,
        /// The entry.
        flow: Flow,
    },
    /// `NLMSG_DONE`: end of a dump.
    Done {
        /// Sequence number of the dump request.
        seq: u32,
    },
    /// `NLMSG_ERROR`: an ACK when `errno` is 0, else a failure.
    Ack {
        /// Sequence number of the request this answers.
        seq: u32,
        /// Positive errno, 0 for success.
        errno: i32,
    },
    /// Anything else (other subsystems, expectations, NOOP).
    Other {
        /// Netlink header.
        header: NlHeader,
    },
}

/// Iterates the messages of one netlink datagram; stops after the first error.
pub struct Messages<'a> {
    buf: &'a [u8],
}

/// Decodes a datagram received from a netfilter netlink socket.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { buf }
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let result = next_message(self.buf);
        match &result {
            Ok((_, used)) => self.buf = self.buf.get(*used..).unwrap_or(&[]),
            Err(_) => self.buf = &[],
        }
        Some(result.map(|(m, _)| m))
    }
}

fn header(buf: &[u8]) -> Result<NlHeader, DecodeError> {
    let h: &[u8; NLMSG_HDRLEN] = buf
        .get(..NLMSG_HDRLEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::Truncated {
            what: "nlmsghdr",
            need: NLMSG_HDRLEN,
            have: buf.len(),
        })?;
    let u32_at = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    Ok(NlHeader {
        len: u32_at(0),
        kind: u16::from_ne_bytes([h[4], h[5]]),
        flags: u16::from_ne_bytes([h[6], h[7]]),
        seq: u32_at(8),
        pid: u32_at(12),
    })
}

fn next_message(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    let header = header(buf)?;
    let len = header.len as usize;
    if len < NLMSG_HDRLEN || len > buf.len() {
        return Err(DecodeError::MessageLength {
            declared: len,
            have: buf.len(),
        });
    }
    let body = &buf[NLMSG_HDRLEN..len];
    let used = align(len).min(buf.len());
    let msg = match header.kind {
        NLMSG_DONE => Message::Done { seq: header.seq },
        NLMSG_ERROR => {
            let code: [u8; 4] =
                body.get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(DecodeError::Truncated {
                        what: "nlmsgerr",
                        need: 4,
                        have: body.len(),
                    })?;
            Message::Ack {
                seq: header.seq,
                errno: i32::from_ne_bytes(code).saturating_neg(),
            }
        }
        t if t >> 8 == NFNL_SUBSYS_CTNETLINK && (t & 0xff) <= 2 => {
            let op = match t & 0xff {
                0 => Op::New,
                1 => Op::Get,
                _ => Op::Delete,
            };
            let attrs = body.get(NFGENMSG_LEN..).ok_or(DecodeError::Truncated {
                what: "nfgenmsg",
                need: NFGENMSG_LEN,
                have: body.len(),
            })?;
            Message::Conntrack {
                header,
                op,
                flow: decode_flow(attrs)?,
            }
        }
        _ => Message::Other { header },
    };
    Ok((msg, used))
}

/// Decodes the attributes of a conntrack message (after nfgenmsg) into a [`Flow`].
pub fn decode_flow(attrs: &[u8]) -> Result<Flow, DecodeError> {
    let mut orig = None;
    let mut reply = None;
    let mut flow_status = Status::default();
    let (mut timeout, mut mark, mut zone) = (0, 0, 0);
    let mut labels = None;
    let mut tcp = None;
    for nla in nlas(attrs, "conntrack message") {
        let nla = nla?;
        match nla.kind {
            CTA_TUPLE_ORIG => orig = Some(decode_tuple(nla.value, "CTA_TUPLE_ORIG")?),
            CTA_TUPLE_REPLY => reply = Some(decode_tuple(nla.value, "CTA_TUPLE_REPLY")?),
            CTA_STATUS => flow_status = Status(nla.be32("CTA_STATUS")?),
            CTA_TIMEOUT => timeout = nla.be32("CTA_TIMEOUT")?,
            CTA_MARK => mark = nla.be32("CTA_MARK")?,
            CTA_ZONE => zone = nla.be16("CTA_ZONE")?,
            CTA_LABELS => {
                if nla.value.len() > 16 {
                    return Err(DecodeError::ValueLength {
                        attr: "CTA_LABELS",
                        expected: 16,
                        found: nla.value.len(),
                    });
                }
                let mut l = [0u8; 16];
                l[..nla.value.len()].copy_from_slice(nla.value);
                labels = Some(l);
            }
            CTA_PROTOINFO => tcp = decode_protoinfo(nla.value)?.or(tcp),
            _ => {}
        }
    }
    Ok(Flow {
        orig: orig.ok_or(DecodeError::Missing {
            attr: "CTA_TUPLE_ORIG",
        })?,
        reply: reply.ok_or(DecodeError::Missing {
            attr: "CTA_TUPLE_REPLY",
        })?,
        zone,
        status: flow_status,
        timeout,
        mark,
        labels,
        tcp,
    })
}

fn decode_tuple(buf: &[u8], name: &'static str) -> Result<Tuple, DecodeError> {
    let (mut src, mut dst) = (None, None);
    let mut proto = None;
    let (mut sport, mut dport) = (None, None);
    let (mut id, mut kind, mut code) = (None, None, None);
    for nla in nlas(buf, name) {
        let nla = nla?;
        match nla.kind {
            CTA_TUPLE_IP => {
                for ip in nlas(nla.value, "CTA_TUPLE_IP") {
                    let ip = ip?;
                    match ip.kind {
                        CTA_IP_V4_SRC => src = Some(v4(&ip, "CTA_IP_V4_SRC")?),
                        CTA_IP_V4_DST => dst = Some(v4(&ip, "CTA_IP_V4_DST")?),
                        CTA_IP_V6_SRC => src = Some(v6(&ip, "CTA_IP_V6_SRC")?),
                        CTA_IP_V6_DST => dst = Some(v6(&ip, "CTA_IP_V6_DST")?),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for p in nlas(nla.value, "CTA_TUPLE_PROTO") {
                    let p = p?;
                    match p.kind {
                        CTA_PROTO_NUM => proto = Some(p.u8("CTA_PROTO_NUM")?),
                        CTA_PROTO_SRC_PORT => sport = Some(p.be16("CTA_PROTO_SRC_PORT")?),
                        CTA_PROTO_DST_PORT => dport = Some(p.be16("CTA_PROTO_DST_PORT")?),
                        CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID => {
                            id = Some(p.be16("CTA_PROTO_ICMP_ID")?)
                        }
                        CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE => {
                            kind = Some(p.u8("CTA_PROTO_ICMP_TYPE")?)
                        }
                        CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE => {
                            code = Some(p.u8("CTA_PROTO_ICMP_CODE")?)
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let src = src.ok_or(DecodeError::Missing {
        attr: "CTA_IP_*_SRC",
    })?;
    let dst = dst.ok_or(DecodeError::Missing {
        attr: "CTA_IP_*_DST",
    })?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(DecodeError::MixedFamily { attr: name });
    }
    let proto = proto.ok_or(DecodeError::Missing {
        attr: "CTA_PROTO_NUM",
    })?;
    let l4 = match (sport, dport, id, kind, code) {
        (_, _, Some(id), Some(kind), Some(code)) => L4::Icmp { id, kind, code },
        (Some(src), Some(dst), ..) => L4::Ports { src, dst },
        _ => L4::None,
    };
    Ok(Tuple {
        src,
        dst,
        proto,
        l4,
    })
}

fn v4(nla: &Nla<'_>, name: &'static str) -> Result<IpAddr, DecodeError> {
    Ok(IpAddr::V4(Ipv4Addr::from(nla.array::<4>(name)?)))
}

fn v6(nla: &Nla<'_>, name: &'static str) -> Result<IpAddr, DecodeError> {
    Ok(IpAddr::V6(Ipv6Addr::from(nla.array::<16>(name)?)))
}

fn decode_protoinfo(buf: &[u8]) -> Result<Option<TcpInfo>, DecodeError> {
    let mut out = None;
    for nla in nlas(buf, "CTA_PROTOINFO") {
        let nla = nla?;
        if nla.kind != CTA_PROTOINFO_TCP {
            continue;
        }
        let mut tcp = TcpInfo::default();
        for a in nlas(nla.value, "CTA_PROTOINFO_TCP") {
            let a = a?;
            match a.kind {
                CTA_PROTOINFO_TCP_STATE => tcp.state = a.u8("CTA_PROTOINFO_TCP_STATE")?,
                CTA_PROTOINFO_TCP_WSCALE_ORIGINAL => {
                    tcp.wscale_orig = a.u8("CTA_PROTOINFO_TCP_WSCALE_ORIGINAL")?
                }
                CTA_PROTOINFO_TCP_WSCALE_REPLY => {
                    tcp.wscale_reply = a.u8("CTA_PROTOINFO_TCP_WSCALE_REPLY")?
                }
                // struct nf_ct_tcp_flags { u8 flags; u8 mask; }
                CTA_PROTOINFO_TCP_FLAGS_ORIGINAL => {
                    tcp.flags_orig = a.array::<2>("CTA_PROTOINFO_TCP_FLAGS_ORIGINAL")?[0]
                }
                CTA_PROTOINFO_TCP_FLAGS_REPLY => {
                    tcp.flags_reply = a.array::<2>("CTA_PROTOINFO_TCP_FLAGS_REPLY")?[0]
                }
                _ => {}
            }
        }
        out = Some(tcp);
    }
    Ok(out)
}

/// What a request message is for; decides which attributes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Create an entry: tuples, status (with `IPS_CONFIRMED`), timeout, mark,
    /// zone, labels, TCP info, and NAT derived from the reply tuple.
    Create {
        /// Keep the flow's TCP flags as they are instead of adding BE_LIBERAL.
        strict_tcp: bool,
    },
    /// Update an existing entry: everything `Create` sends except NAT (the
    /// kernel refuses NAT changes on existing entries).
    Update {
        /// As for `Create`.
        strict_tcp: bool,
    },
    /// Set only the timeout of an existing entry.
    Timeout(u32),
    /// Delete an entry by original tuple and zone.
    Delete,
}

/// Status bits the kernel will not let ctnetlink set or clear.
const STATUS_NOT_SENT: u32 = Status::EXPECTED
    | Status::DYING
    | Status::SRC_NAT_DONE
    | Status::DST_NAT_DONE
    | Status::SEQ_ADJUST
    | !0x7ff;

/// Appends one complete ctnetlink request for `flow` to `buf`.
pub fn encode_request(buf: &mut Vec<u8>, flow: &Flow, req: Request, flags: u16, seq: u32) {
    let op = match req {
        Request::Delete => Op::Delete,
        _ => Op::New,
    };
    encode_message(buf, op, flags, seq, flow.family().af(), |w| {
        encode_flow_attrs(w, flow, req)
    });
}

/// Appends a ctnetlink message with no attributes (a dump or flush request) to `buf`.
pub fn encode_empty(buf: &mut Vec<u8>, op: Op, flags: u16, seq: u32, family: Option<Family>) {
    encode_message(buf, op, flags, seq, family.map_or(0, Family::af), |_| {});
}

/// What a filtered dump keeps: entries whose original direction goes to `dst` (and `port`,
/// when given) over `proto`. The kernel applies it (`CTA_FILTER`, Linux 5.8 and later), so
/// only the matching entries cross the socket; older kernels ignore it and send everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpFilter {
    /// Original destination address; its family is the dump's family.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Original destination port (TCP, UDP, SCTP), if it must match too.
    pub port: Option<u16>,
}

impl DumpFilter {
    /// Whether `flow` passes the filter (for callers that check again what the kernel sent,
    /// since a kernel without `CTA_FILTER` sends every entry).
    pub fn matches(&self, flow: &Flow) -> bool {
        let port_ok = match (self.port, flow.orig.l4) {
            (None, _) => true,
            (Some(p), L4::Ports { dst, .. }) => p == dst,
            (Some(_), _) => false,
        };
        flow.orig.dst == self.dst && flow.orig.proto == self.proto && port_ok
    }
}

/// Appends a dump request that the kernel filters by `filter` to `buf`.
pub fn encode_filtered_dump(buf: &mut Vec<u8>, seq: u32, filter: &DumpFilter) {
    let flags = NLM_F_REQUEST | NLM_F_DUMP;
    let family = Family::of(&filter.dst);
    encode_message(buf, Op::Get, flags, seq, family.af(), |w| {
        let mut bits = FILTER_IP_DST | FILTER_PROTO_NUM;
        if filter.port.is_some() {
            bits |= FILTER_PROTO_DST_PORT;
        }
        w.nest(CTA_FILTER, |w| {
            w.bytes(CTA_FILTER_ORIG_FLAGS, &bits.to_ne_bytes())
        });
        w.nest(CTA_TUPLE_ORIG, |w| {
            w.nest(CTA_TUPLE_IP, |w| match filter.dst {
                IpAddr::V4(d) => w.bytes(CTA_IP_V4_DST, &d.octets()),
                IpAddr::V6(d) => w.bytes(CTA_IP_V6_DST, &d.octets()),
            });
            w.nest(CTA_TUPLE_PROTO, |w| {
                w.u8(CTA_PROTO_NUM, filter.proto);
                if let Some(port) = filter.port {
                    w.be16(CTA_PROTO_DST_PORT, port);
                }
            });
        });
    });
}

fn encode_message(
    buf: &mut Vec<u8>,
    op: Op,
    flags: u16,
    seq: u32,
    af: u8,
    f: impl FnOnce(&mut Writer<'_>),
) {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&op.msg_type().to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[af, 0, 0, 0]);
    f(&mut Writer { buf });
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

fn encode_flow_attrs(w: &mut Writer<'_>, flow: &Flow, req: Request) {
    w.nest(CTA_TUPLE_ORIG, |w| encode_tuple(w, &flow.orig));
    if flow.zone != 0 {
        w.be16(CTA_ZONE, flow.zone);
    }
    let strict = match req {
        Request::Delete => return,
        Request::Timeout(secs) => {
            w.be32(CTA_TIMEOUT, secs);
            return;
        }
        Request::Create { strict_tcp } => {
            // Under NAT the kernel wants the un-NATed reply tuple plus the
            // NAT ranges: it then computes the NATed reply tuple itself and
            // sets IPS_SRC_NAT / IPS_DST_NAT. A NATed reply tuple alone
            // creates an entry that looks right but translates nothing.
            let nat = flow.is_snat() || flow.is_dnat();
            let reply = if nat {
                flow.orig.inverted()
            } else {
                flow.reply
            };
            w.nest(CTA_TUPLE_REPLY, |w| encode_tuple(w, &reply));
            if nat {
                encode_nat(w, flow);
            }
            strict_tcp
        }
        Request::Update { strict_tcp } => strict_tcp,
    };
    w.be32(
        CTA_STATUS,
        (flow.status.0 | Status::CONFIRMED) & !STATUS_NOT_SENT,
    );
    w.be32(CTA_TIMEOUT, flow.timeout);
    if flow.mark != 0 || matches!(req, Request::Update { .. }) {
        w.be32(CTA_MARK, flow.mark);
    }
    if let Some(labels) = &flow.labels {
        w.bytes(CTA_LABELS, labels);
        if matches!(req, Request::Update { .. }) {
            w.bytes(CTA_LABELS_MASK, &[0xff; 16]);
        }
    }
    if let Some(tcp) = &flow.tcp {
        let liberal = if strict { 0 } else { TcpInfo::FLAG_BE_LIBERAL };
        w.nest(CTA_PROTOINFO, |w| {
            w.nest(CTA_PROTOINFO_TCP, |w| {
                w.u8(CTA_PROTOINFO_TCP_STATE, tcp.state);
                w.u8(CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, tcp.wscale_orig);
                w.u8(CTA_PROTOINFO_TCP_WSCALE_REPLY, tcp.wscale_reply);
                w.bytes(
                    CTA_PROTOINFO_TCP_FLAGS_ORIGINAL,
                    &[tcp.flags_orig | liberal, 0xff],
                );
                w.bytes(
                    CTA_PROTOINFO_TCP_FLAGS_REPLY,
                    &[tcp.flags_reply | liberal, 0xff],
                );
            })
        });
    }
}

fn encode_tuple(w: &mut Writer<'_>, t: &Tuple) {
    w.nest(CTA_TUPLE_IP, |w| match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            w.bytes(CTA_IP_V4_SRC, &s.octets());
            w.bytes(CTA_IP_V4_DST, &d.octets());
        }
        (s, d) => {
            w.bytes(CTA_IP_V6_SRC, &v6_octets(s));
            w.bytes(CTA_IP_V6_DST, &v6_octets(d));
        }
    });
    let v6 = t.src.is_ipv6();
    w.nest(CTA_TUPLE_PROTO, |w| {
        w.u8(CTA_PROTO_NUM, t.proto);
        match t.l4 {
            L4::Ports { src, dst } => {
                w.be16(CTA_PROTO_SRC_PORT, src);
                w.be16(CTA_PROTO_DST_PORT, dst);
            }
            L4::Icmp { id, kind, code } => {
                let (a_id, a_type, a_code) = if v6 {
                    (
                        CTA_PROTO_ICMPV6_ID,
                        CTA_PROTO_ICMPV6_TYPE,
                        CTA_PROTO_ICMPV6_CODE,
                    )
                } else {
                    (CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE)
                };
                w.be16(a_id, id);
                w.u8(a_type, kind);
                w.u8(a_code, code);
            }
            L4::None => {}
        }
    });
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// NAT is re-created from the reply tuple: SNAT maps the original source
/// to the reply destination, DNAT the original destination to the reply
/// source, each with the port when the protocol has ports.
fn encode_nat(w: &mut Writer<'_>, flow: &Flow) {
    let reply_port = |src: bool| match flow.reply.l4 {
        L4::Ports { src: s, dst: d } => Some(if src { s } else { d }),
        _ => None,
    };
    if flow.is_snat() {
        nat_range(w, CTA_NAT_SRC, flow.reply.dst, reply_port(false));
    }
    if flow.is_dnat() {
        nat_range(w, CTA_NAT_DST, flow.reply.src, reply_port(true));
    }
}

fn nat_range(w: &mut Writer<'_>, kind: u16, addr: IpAddr, port: Option<u16>) {
    w.nest(kind, |w| {
        match addr {
            IpAddr::V4(a) => {
                w.bytes(CTA_NAT_V4_MINIP, &a.octets());
                w.bytes(CTA_NAT_V4_MAXIP, &a.octets());
            }
            IpAddr::V6(a) => {
                w.bytes(CTA_NAT_V6_MINIP, &a.octets());
                w.bytes(CTA_NAT_V6_MAXIP, &a.octets());
            }
        }
        if let Some(port) = port {
            w.nest(CTA_NAT_PROTO, |w| {
                w.be16(CTA_PROTONAT_PORT_MIN, port);
                w.be16(CTA_PROTONAT_PORT_MAX, port);
            });
        }
    });
}

/// The check the fuzzer runs on arbitrary bytes, shared with the corpus replay test: decoding
/// never panics, and a flow that decodes re-encodes to a decodable create request.
#[doc(hidden)]
pub fn fuzz_messages(data: &[u8]) {
    for m in messages(data) {
        if let Ok(Message::Conntrack { flow, .. }) = m {
            let mut create = Vec::new();
            encode_request(
                &mut create,
                &flow,
                Request::Create { strict_tcp: true },
                0,
                2,
            );
            assert!(
                matches!(
                    messages(&create).next(),
                    Some(Ok(Message::Conntrack { .. }))
                ),
                "a decoded flow re-encodes to a decodable create"
            );
        }
    }
    let _ = decode_flow(data);
}
