//! Turns [`Op`]s into one nf_tables netlink batch.
//!
//! Tables, chains, sets, elements, rules and the expressions `meta`,
//! `payload`, `cmp`, `bitwise`, `lookup` and `immediate` use
//! netlink-packet-netfilter's typed messages. That crate has no type for
//! `numgen`, `hash`, `dynset`, `nat`, `reject` and `fwd`: those are encoded here
//! on its `Expressions::Other` escape hatch, attribute numbers from the
//! kernel's uapi `nf_tables.h`.

use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND,
    NLM_F_CREATE, NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, DevHookNumber, ExpressionAttribute,
    Expressions, Hook as NlHook, HookNumber, Immediate, InetHookNumber, ListAttribute, Lookup,
    Meta, MetaKey as NlMetaKey, NfTablesMessage, Operator, Payload, Register, RuleAttribute,
    RuleMessage, SetAttribute, SetDescription, SetElementAttribute, SetElementList,
    SetElementMessage, SetFlags, SetMessage, TableAttribute, TableMessage, Verdict,
    VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use crate::objects::{DynsetOp, ElementData, Expr, MetaKey, PayloadBase, Set, SetData};
use crate::plan::{Op, DR_TABLE, TABLE};

/// `NFNL_SUBSYS_NFTABLES`: the batch's resource id.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// Elements per NEWSETELEM message: the element list is one attribute,
/// whose length field has 16 bits.
const ELEMENTS_PER_MESSAGE: usize = 512;

// nf_tables.h attribute numbers for the expressions the crate lacks.
const NFTA_NG_DREG: u16 = 1;
const NFTA_NG_MODULUS: u16 = 2;
const NFTA_NG_TYPE: u16 = 3;
const NFT_NG_INCREMENTAL: u32 = 0;
const NFTA_HASH_SREG: u16 = 1;
const NFTA_HASH_DREG: u16 = 2;
const NFTA_HASH_LEN: u16 = 3;
const NFTA_HASH_MODULUS: u16 = 4;
const NFTA_HASH_SEED: u16 = 5;
const NFTA_HASH_TYPE: u16 = 7;
const NFT_HASH_JENKINS: u32 = 0;
const NFTA_DYNSET_SET_NAME: u16 = 1;
const NFTA_DYNSET_OP: u16 = 3;
const NFTA_DYNSET_SREG_KEY: u16 = 4;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFT_NAT_DNAT: u32 = 1;
const NFPROTO_IPV4: u32 = 2;
const NFPROTO_IPV6: u32 = 10;
const NFTA_REJECT_TYPE: u16 = 1;
const NFTA_REJECT_ICMP_CODE: u16 = 2;
const NFT_REJECT_ICMPX_UNREACH: u32 = 2;
const NFT_REJECT_ICMPX_PORT_UNREACH: u8 = 1;
const NFTA_FWD_SREG_DEV: u16 = 1;
const NFTA_FWD_SREG_ADDR: u16 = 2;
const NFTA_FWD_NFPROTO: u16 = 3;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;

fn be32(kind: u16, v: u32) -> DefaultNla {
    DefaultNla::new(kind, v.to_be_bytes().to_vec())
}

fn other(name: &str, attributes: Vec<DefaultNla>) -> Expressions {
    Expressions::Other {
        expression_type: name.to_string(),
        attributes,
    }
}

fn register(r: u32) -> Register {
    Register::from(r)
}

/// The netlink form of one expression.
pub fn expression(e: &Expr) -> Expressions {
    match e {
        Expr::Meta { key, dreg } => Expressions::Meta(vec![
            Meta::DestinationRegister(register(*dreg)),
            Meta::Key(match key {
                MetaKey::Nfproto => NlMetaKey::Nfproto,
                MetaKey::L4proto => NlMetaKey::L4Proto,
                MetaKey::Mark => NlMetaKey::Mark,
                MetaKey::Protocol => NlMetaKey::EtherTypeProtocol,
                MetaKey::PktType => NlMetaKey::PacketType,
            }),
        ]),
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => Expressions::Payload(vec![
            Payload::DestinationRegister(register(*dreg)),
            Payload::Base(match base {
                PayloadBase::Network => NFT_PAYLOAD_NETWORK_HEADER,
                PayloadBase::Transport => NFT_PAYLOAD_TRANSPORT_HEADER,
            }),
            Payload::Offset(*offset),
            Payload::Len(*len),
        ]),
        Expr::CmpEq { sreg, data } => Expressions::Cmp(vec![
            Cmp::SourceRegister(register(*sreg)),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(data.clone())),
        ]),
        Expr::And { reg, mask } => Expressions::Bitwise(vec![
            Bitwise::SourceRegister(register(*reg)),
            Bitwise::DestinationRegister(register(*reg)),
            Bitwise::Length(mask.len() as u32),
            Bitwise::Mask(DataAttribute::Value(mask.clone())),
            Bitwise::Xor(DataAttribute::Value(vec![0; mask.len()])),
        ]),
        Expr::Numgen { dreg, modulus } => other(
            "numgen",
            vec![
                be32(NFTA_NG_DREG, *dreg),
                be32(NFTA_NG_MODULUS, *modulus),
                be32(NFTA_NG_TYPE, NFT_NG_INCREMENTAL),
            ],
        ),
        Expr::Jhash {
            sreg,
            len,
            dreg,
            modulus,
            seed,
        } => other(
            "hash",
            vec![
                be32(NFTA_HASH_SREG, *sreg),
                be32(NFTA_HASH_DREG, *dreg),
                be32(NFTA_HASH_LEN, *len),
                be32(NFTA_HASH_MODULUS, *modulus),
                be32(NFTA_HASH_SEED, *seed),
                be32(NFTA_HASH_TYPE, NFT_HASH_JENKINS),
            ],
        ),
        Expr::Lookup {
            set,
            sreg,
            dreg,
            invert,
        } => {
            let mut attrs = vec![
                Lookup::Set(set.clone()),
                Lookup::SourceRegister(register(*sreg)),
            ];
            if let Some(d) = dreg {
                attrs.push(Lookup::DestinationRegister(register(*d)));
            }
            if *invert {
                attrs.push(Lookup::Flags(1)); // NFT_LOOKUP_F_INV
            }
            Expressions::Lookup(attrs)
        }
        Expr::Dynset { op, set, sreg_key } => {
            let mut name = set.as_bytes().to_vec();
            name.push(0);
            other(
                "dynset",
                vec![
                    DefaultNla::new(NFTA_DYNSET_SET_NAME, name),
                    be32(
                        NFTA_DYNSET_OP,
                        match op {
                            DynsetOp::Add => 0,
                            DynsetOp::Update => 1,
                            DynsetOp::Delete => 2,
                        },
                    ),
                    be32(NFTA_DYNSET_SREG_KEY, *sreg_key),
                ],
            )
        }
        Expr::Immediate { dreg, data } => Expressions::Immediate(vec![
            Immediate::DestinationRegister(register(*dreg)),
            Immediate::Data(DataAttribute::Value(data.clone())),
        ]),
        Expr::Dnat {
            ipv6,
            addr_reg,
            port_reg,
        } => {
            let mut attrs = vec![
                be32(NFTA_NAT_TYPE, NFT_NAT_DNAT),
                be32(
                    NFTA_NAT_FAMILY,
                    if *ipv6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 },
                ),
                be32(NFTA_NAT_REG_ADDR_MIN, *addr_reg),
            ];
            if let Some(p) = port_reg {
                attrs.push(be32(NFTA_NAT_REG_PROTO_MIN, *p));
            }
            other("nat", attrs)
        }
        Expr::Reject => other(
            "reject",
            vec![
                be32(NFTA_REJECT_TYPE, NFT_REJECT_ICMPX_UNREACH),
                DefaultNla::new(NFTA_REJECT_ICMP_CODE, vec![NFT_REJECT_ICMPX_PORT_UNREACH]),
            ],
        ),
        Expr::Fwd {
            ipv6,
            addr_reg,
            dev_reg,
        } => other(
            "fwd",
            vec![
                be32(NFTA_FWD_SREG_DEV, *dev_reg),
                be32(NFTA_FWD_SREG_ADDR, *addr_reg),
                be32(
                    NFTA_FWD_NFPROTO,
                    if *ipv6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 },
                ),
            ],
        ),
        Expr::Jump(chain) => verdict(Verdict::Jump, chain),
        Expr::Goto(chain) => verdict(Verdict::Goto, chain),
    }
}

fn verdict_data(code: Verdict, chain: &str) -> DataAttribute {
    DataAttribute::Verdict(vec![
        VerdictAttribute::Code(code),
        VerdictAttribute::Chain(chain.to_string()),
    ])
}

fn verdict(code: Verdict, chain: &str) -> Expressions {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(Register::Verdict),
        Immediate::Data(verdict_data(code, chain)),
    ])
}

/// `NFT_DATA_VERDICT`: the data type of a verdict map.
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;

fn set_message(set: &Set, id: u32, table: &str) -> SetMessage {
    let mut flags = SetFlags::empty();
    if set.data == SetData::Verdict {
        flags |= SetFlags::Map;
    }
    if set.timeout.is_some() {
        flags |= SetFlags::Timeout | SetFlags::Eval;
    }
    let mut attributes = vec![
        SetAttribute::Table(table.to_string()),
        SetAttribute::Name(set.name.clone()),
        SetAttribute::Flags(flags),
        SetAttribute::KeyType(set.key_type),
        SetAttribute::KeyLen(set.key_len),
    ];
    if set.data == SetData::Verdict {
        attributes.push(SetAttribute::DataType(NFT_DATA_VERDICT));
        attributes.push(SetAttribute::DataLen(0));
    }
    if let Some(size) = set.size {
        attributes.push(SetAttribute::Description(vec![SetDescription::Size(size)]));
    }
    attributes.push(SetAttribute::Id(id));
    if let Some(t) = set.timeout {
        attributes.push(SetAttribute::Timeout(t.as_millis() as u64));
    }
    SetMessage { attributes }
}

fn elements_message(
    table: &str,
    set: &str,
    elements: &[(Vec<u8>, ElementData)],
) -> SetElementMessage {
    let mut attributes = vec![
        SetElementList::Table(table.to_string()),
        SetElementList::Set(set.to_string()),
    ];
    if !elements.is_empty() {
        attributes.push(SetElementList::Elements(
            elements
                .iter()
                .map(|(k, d)| {
                    let mut e = vec![SetElementAttribute::Key(DataAttribute::Value(k.clone()))];
                    if let ElementData::Goto(chain) = d {
                        e.push(SetElementAttribute::Data(verdict_data(
                            Verdict::Goto,
                            chain,
                        )));
                    }
                    ListAttribute::Element(e)
                })
                .collect(),
        ));
    }
    SetElementMessage { attributes }
}

/// What one message of the batch does, for error reports.
pub type Described = (NfTablesMessage, NetfilterProtoFamily, u16, String);

/// Which of tandem's two tables a message is about.
#[derive(Clone, Copy)]
struct Table {
    family: NetfilterProtoFamily,
    family_name: &'static str,
    name: &'static str,
}

const INET: Table = Table {
    family: NetfilterProtoFamily::Inet,
    family_name: "inet",
    name: TABLE,
};

const NETDEV: Table = Table {
    family: NetfilterProtoFamily::NetDev,
    family_name: "netdev",
    name: DR_TABLE,
};

/// The nf_tables messages (with their extra netlink flags) for `ops`.
pub fn messages(ops: &[Op]) -> Vec<Described> {
    let mut out: Vec<Described> = Vec::new();
    let mut set_id = 0u32;
    for op in ops {
        table_messages(op, INET, &mut set_id, &mut out);
    }
    out
}

/// The message that creates `netdev` base chain `name` on `device`'s ingress hook.
fn ingress_chain(name: &str, device: &str) -> Described {
    (
        NfTablesMessage::NewChain(ChainMessage {
            attributes: vec![
                ChainAttribute::Table(DR_TABLE.to_string()),
                ChainAttribute::Name(name.to_string()),
                ChainAttribute::Hook(vec![
                    NlHook::Number(HookNumber::Dev(DevHookNumber::Ingress)),
                    NlHook::Priority(0),
                    NlHook::NetDeviceName(device.to_string()),
                ]),
                ChainAttribute::Policy(1), // NF_ACCEPT
                ChainAttribute::Type("filter".to_string()),
            ],
        }),
        NetfilterProtoFamily::NetDev,
        NLM_F_CREATE,
        format!(
            "add chain netdev {DR_TABLE} {name} {{ type filter hook ingress device {device} priority 0; }}"
        ),
    )
}

/// The messages of one operation on table `t` (the direct-routing operations name theirs).
fn table_messages(op: &Op, t: Table, set_id: &mut u32, out: &mut Vec<Described>) {
    let table = || vec![TableAttribute::Name(t.name.to_string())];
    let (family, fam, tn) = (t.family, t.family_name, t.name);
    match op {
        Op::ResetTable | Op::DeleteTable => {
            out.push((
                NfTablesMessage::NewTable(TableMessage {
                    attributes: table(),
                }),
                family,
                NLM_F_CREATE,
                format!("add table {fam} {tn}"),
            ));
            out.push((
                NfTablesMessage::DeleteTable(TableMessage {
                    attributes: table(),
                }),
                family,
                0,
                format!("delete table {fam} {tn}"),
            ));
            if *op == Op::ResetTable {
                out.push((
                    NfTablesMessage::NewTable(TableMessage {
                        attributes: table(),
                    }),
                    family,
                    NLM_F_CREATE,
                    format!("add table {fam} {tn}"),
                ));
            }
        }
        Op::AddChain { name, hook } => {
            let mut attributes = vec![
                ChainAttribute::Table(tn.to_string()),
                ChainAttribute::Name(name.clone()),
            ];
            if let Some(h) = hook {
                let number = match h.number {
                    0 => InetHookNumber::PreRouting,
                    1 => InetHookNumber::LocalIn,
                    2 => InetHookNumber::Forward,
                    3 => InetHookNumber::LocalOut,
                    _ => InetHookNumber::PostRouting,
                };
                attributes.push(ChainAttribute::Hook(vec![
                    NlHook::Number(HookNumber::Inet(number)),
                    NlHook::Priority(h.priority as u32),
                ]));
                attributes.push(ChainAttribute::Policy(1)); // NF_ACCEPT
                attributes.push(ChainAttribute::Type("nat".to_string()));
            }
            out.push((
                NfTablesMessage::NewChain(ChainMessage { attributes }),
                family,
                NLM_F_CREATE,
                format!("add chain {fam} {tn} {name}"),
            ));
        }
        Op::FlushChain(name) => out.push((
            NfTablesMessage::DeleteRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(tn.to_string()),
                    RuleAttribute::Chain(name.clone()),
                ],
            }),
            family,
            0,
            format!("flush chain {fam} {tn} {name}"),
        )),
        Op::DeleteChain(name) => out.push((
            NfTablesMessage::DeleteChain(ChainMessage {
                attributes: vec![
                    ChainAttribute::Table(tn.to_string()),
                    ChainAttribute::Name(name.clone()),
                ],
            }),
            family,
            0,
            format!("delete chain {fam} {tn} {name}"),
        )),
        Op::AddSet(set) => {
            *set_id += 1;
            out.push((
                NfTablesMessage::NewSet(set_message(set, *set_id, tn)),
                family,
                NLM_F_CREATE,
                format!("add set {fam} {tn} {}", set.name),
            ));
        }
        Op::FlushSet(name) => out.push((
            NfTablesMessage::DeleteSetElement(elements_message(tn, name, &[])),
            family,
            0,
            format!("flush set {fam} {tn} {name}"),
        )),
        Op::DeleteSet(name) => out.push((
            NfTablesMessage::DeleteSet(SetMessage {
                attributes: vec![
                    SetAttribute::Table(tn.to_string()),
                    SetAttribute::Name(name.clone()),
                ],
            }),
            family,
            0,
            format!("delete set {fam} {tn} {name}"),
        )),
        Op::AddElements { set, elements } => {
            for chunk in elements.chunks(ELEMENTS_PER_MESSAGE) {
                out.push((
                    NfTablesMessage::NewSetElement(elements_message(tn, set, chunk)),
                    family,
                    NLM_F_CREATE,
                    format!("add element {fam} {tn} {set} ({} elements)", chunk.len()),
                ));
            }
        }
        Op::AddRule { chain, exprs } => out.push((
            NfTablesMessage::NewRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(tn.to_string()),
                    RuleAttribute::Chain(chain.clone()),
                    RuleAttribute::Expressions(
                        exprs
                            .iter()
                            .map(|e| ListAttribute::<ExpressionAttribute>::from(expression(e)))
                            .collect(),
                    ),
                ],
            }),
            family,
            NLM_F_CREATE | NLM_F_APPEND,
            format!("add rule {fam} {tn} {chain} {exprs:?}"),
        )),
        Op::AddIngressChain { name, device } => out.push(ingress_chain(name, device)),
        Op::Dr(ops) => {
            for op in ops {
                table_messages(op, NETDEV, set_id, out);
            }
        }
        Op::DeleteDrTable => table_messages(&Op::DeleteTable, NETDEV, set_id, out),
    }
}

fn netlink(
    inner: NetfilterMessageInner,
    family: NetfilterProtoFamily,
    res_id: u16,
    flags: u16,
    seq: u32,
) -> NetlinkMessage<NetfilterMessage> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::from(NetfilterMessage::new(
            NetfilterHeader::new(family, 0, res_id),
            inner,
        )),
    );
    msg.finalize();
    msg
}

/// One batch, ready for a single `send`: BATCH_BEGIN, `ops`' messages
/// (each asking for an ack, sequence numbers from `first_seq`), BATCH_END.
/// Returns the bytes and, per message, its sequence number and description.
pub fn batch(ops: &[Op], first_seq: u32) -> (Vec<u8>, Vec<(u32, String)>) {
    let mut msgs = Vec::new();
    let mut described = Vec::new();
    let mut seq = first_seq;
    msgs.push(netlink(
        ControlMessage::BatchBegin.into(),
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        0,
        seq,
    ));
    for (m, family, flags, what) in messages(ops) {
        seq = seq.wrapping_add(1);
        msgs.push(netlink(m.into(), family, 0, flags | NLM_F_ACK, seq));
        described.push((seq, what));
    }
    seq = seq.wrapping_add(1);
    msgs.push(netlink(
        ControlMessage::BatchEnd.into(),
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
        0,
        seq,
    ));
    let len = msgs.iter().map(|m| m.buffer_len()).sum();
    let mut bytes = vec![0; len];
    let mut at = 0;
    for m in &msgs {
        m.serialize(&mut bytes[at..at + m.buffer_len()]);
        at += m.buffer_len();
    }
    (bytes, described)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{diff, plan};
    use crate::service::{Protocol, Scheduler, Service};
    use netlink_packet_core::NetlinkBuffer;

    /// Splits a batch into (type, flags, seq) per message.
    fn headers(bytes: &[u8]) -> Vec<(u16, u16, u32)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let b = NetlinkBuffer::new_checked(&bytes[at..]).unwrap();
            out.push((b.message_type(), b.flags(), b.sequence_number()));
            at += (b.length() as usize + 3) & !3;
        }
        out
    }

    #[test]
    fn a_batch_is_framed_by_begin_and_end_for_nf_tables() {
        let s = Service::nat(
            "10.0.0.100".parse().unwrap(),
            80,
            Protocol::Tcp,
            Scheduler::MaglevHash,
        )
        .server("10.0.1.11".parse().unwrap(), 8080, 1);
        let ops = diff(None, &plan(&[s]).unwrap());
        let (bytes, described) = batch(&ops, 100);
        let h = headers(&bytes);
        assert_eq!(h[0], (0x10, NLM_F_REQUEST, 100), "NFNL_MSG_BATCH_BEGIN");
        assert_eq!(
            &bytes[16..20],
            &[0, 0, 0, 10],
            "nfgenmsg: AF_UNSPEC, v0, res_id NFTABLES"
        );
        assert_eq!(h.last().unwrap().0, 0x11, "NFNL_MSG_BATCH_END");
        assert_eq!(h.len(), described.len() + 2);
        // NEWTABLE, DELTABLE, NEWTABLE: replaces a stale table, creates it otherwise.
        assert_eq!(h[1].0, 10 << 8);
        assert_eq!(h[2].0, (10 << 8) | 2);
        assert!(h[1..h.len() - 1].iter().all(|m| m.1 & NLM_F_ACK != 0));
        // A Maglev table of 4093 slots is split across several element messages.
        let elements = h.iter().filter(|m| m.0 == (10 << 8) | 12).count();
        assert_eq!(elements, 4093usize.div_ceil(ELEMENTS_PER_MESSAGE));
    }

    #[test]
    fn hand_encoded_expressions_carry_the_uapi_attributes() {
        let Expressions::Other {
            expression_type,
            attributes,
        } = expression(&Expr::Numgen {
            dreg: 21,
            modulus: 6,
        })
        else {
            panic!("numgen is encoded here");
        };
        assert_eq!(expression_type, "numgen");
        assert_eq!(attributes[1], be32(NFTA_NG_MODULUS, 6));
        let Expressions::Other { attributes, .. } = expression(&Expr::Dnat {
            ipv6: true,
            addr_reg: 8,
            port_reg: Some(12),
        }) else {
            panic!("nat is encoded here");
        };
        assert_eq!(attributes[1], be32(NFTA_NAT_FAMILY, NFPROTO_IPV6));
        assert_eq!(attributes[3], be32(NFTA_NAT_REG_PROTO_MIN, 12));
    }

    #[test]
    fn a_bounded_dynamic_set_carries_its_size_and_timeout() {
        let set = Set {
            name: "flows".into(),
            key_type: crate::objects::datatype::concat(7, 13),
            key_len: 8,
            data: SetData::None,
            timeout: Some(std::time::Duration::from_secs(900)),
            size: Some(262_144),
            elements: Vec::new(),
        };
        let m = set_message(&set, 1, DR_TABLE);
        assert!(m
            .attributes
            .contains(&SetAttribute::Flags(SetFlags::Timeout | SetFlags::Eval)));
        assert!(m
            .attributes
            .contains(&SetAttribute::Description(vec![SetDescription::Size(
                262_144
            )])));
        assert!(m.attributes.contains(&SetAttribute::Timeout(900_000)));
    }

    #[test]
    fn the_dr_table_goes_to_the_netdev_family_with_a_device_hook_and_fwd() {
        let s = Service::dr(
            "10.0.0.100".parse().unwrap(),
            80,
            Protocol::Tcp,
            Scheduler::RoundRobin,
            &["eth0"],
        )
        .server("10.0.0.11".parse().unwrap(), 80, 1)
        .egress(
            "10.0.0.11".parse().unwrap(),
            crate::Link {
                name: "eth0".into(),
                index: 2,
            },
        );
        let ops = diff(None, &plan(&[s]).unwrap());
        let (bytes, described) = batch(&ops, 1);
        // nfgenmsg's family byte, per message (after the 16-byte netlink header).
        let mut families = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let b = NetlinkBuffer::new_checked(&bytes[at..]).unwrap();
            families.push(bytes[at + 16]);
            at += (b.length() as usize + 3) & !3;
        }
        let netdev = families[1..families.len() - 1]
            .iter()
            .zip(&described)
            .filter(|(&f, _)| f == 5) // NFPROTO_NETDEV
            .map(|(_, (_, what))| what.as_str())
            .collect::<Vec<_>>();
        assert!(
            netdev[0].starts_with("add table netdev tandem_lb_dr"),
            "{netdev:?}"
        );
        assert!(netdev
            .iter()
            .any(|w| w.contains("hook ingress device eth0")));
        assert!(families[1..families.len() - 1]
            .iter()
            .all(|&f| f == 1 || f == 5)); // NFPROTO_INET or NETDEV
        let Expressions::Other {
            expression_type,
            attributes,
        } = expression(&Expr::Fwd {
            ipv6: false,
            addr_reg: 8,
            dev_reg: 21,
        })
        else {
            panic!("fwd is encoded here");
        };
        assert_eq!(expression_type, "fwd");
        assert_eq!(
            attributes,
            vec![
                be32(NFTA_FWD_SREG_DEV, 21),
                be32(NFTA_FWD_SREG_ADDR, 8),
                be32(NFTA_FWD_NFPROTO, NFPROTO_IPV4)
            ]
        );
    }
}
