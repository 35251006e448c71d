//! Decoding kernel captures, encode/decode round trips, and garbage never panicking.

use std::net::IpAddr;

use proptest::prelude::*;
use tandem_ctnetlink::codec::{self, Message, Op, Request, NLM_F_CREATE};
use tandem_ctnetlink::{Flow, Status, TcpInfo, Tuple, L4};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decodes a file of concatenated datagrams (each a whole number of messages).
fn decode_all(bytes: &[u8]) -> Vec<Message> {
    codec::messages(bytes)
        .collect::<Result<Vec<_>, _>>()
        .expect("captures decode")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn find<'a>(flows: &'a [Flow], src: &str, dst: &str) -> &'a Flow {
    flows
        .iter()
        .find(|f| f.orig.src == ip(src) && f.orig.dst == ip(dst))
        .unwrap_or_else(|| panic!("no flow {src} -> {dst}"))
}

#[test]
fn kernel_dump_capture_decodes() {
    let msgs = decode_all(&fixture("dump.bin"));
    assert!(matches!(msgs.last(), Some(Message::Done { .. })));
    let flows: Vec<Flow> = msgs
        .into_iter()
        .filter_map(|m| match m {
            Message::Conntrack { flow, op, .. } => {
                assert_eq!(op, Op::New);
                Some(flow)
            }
            _ => None,
        })
        .collect();
    assert_eq!(flows.len(), 8);

    let tcp = find(&flows, "10.1.0.1", "10.2.0.1");
    assert_eq!(tcp.orig.proto, 6);
    assert_eq!(
        tcp.orig.l4,
        L4::Ports {
            src: 40000,
            dst: 80
        }
    );
    assert_eq!(tcp.reply, tcp.orig.inverted());
    assert!(tcp
        .status
        .has(Status::ASSURED | Status::SEEN_REPLY | Status::CONFIRMED));
    assert!((100..=120).contains(&tcp.timeout), "{}", tcp.timeout);
    let info = tcp.tcp.expect("TCP protoinfo");
    assert_eq!(info.state, TcpInfo::ESTABLISHED);
    assert_eq!(
        info.flags_orig,
        TcpInfo::FLAG_SACK_PERM | TcpInfo::FLAG_BE_LIBERAL
    );

    let udp = find(&flows, "10.1.0.1", "10.2.0.2");
    assert_eq!((udp.orig.proto, udp.tcp), (17, None));
    assert_eq!(udp.orig.l4, L4::Ports { src: 5000, dst: 53 });
    assert!(!udp.status.has(Status::SEEN_REPLY));

    let icmp = find(&flows, "10.1.0.1", "10.2.0.3");
    assert_eq!(
        icmp.orig.l4,
        L4::Icmp {
            id: 77,
            kind: 8,
            code: 0
        }
    );
    assert_eq!(
        icmp.reply.l4,
        L4::Icmp {
            id: 77,
            kind: 0,
            code: 0
        }
    );

    let marked = find(&flows, "10.1.0.1", "10.2.0.4");
    assert_eq!((marked.mark, marked.zone), (42, 7));

    let snat = find(&flows, "192.168.1.10", "8.8.8.8");
    assert!(snat.status.has(Status::SRC_NAT) && snat.is_snat() && !snat.is_dnat());
    assert_eq!(snat.reply.dst, ip("203.0.113.1"));
    assert_eq!(snat.reply.src, ip("8.8.8.8"));

    let dnat = find(&flows, "10.9.0.1", "10.9.0.2");
    assert!(dnat.status.has(Status::DST_NAT) && dnat.is_dnat() && !dnat.is_snat());
    assert_eq!(dnat.reply.src, ip("10.9.9.9"));
    assert_eq!(dnat.reply.l4, L4::Ports { src: 80, dst: 1111 });

    let v6 = find(&flows, "fd00::1", "fd00::2");
    assert_eq!(v6.orig.l4, L4::Ports { src: 1234, dst: 22 });
    assert_eq!(v6.tcp.unwrap().state, TcpInfo::ESTABLISHED);

    let icmp6 = find(&flows, "fd00::1", "fd00::3");
    assert_eq!(icmp6.orig.proto, 58);
    assert_eq!(
        icmp6.orig.l4,
        L4::Icmp {
            id: 9,
            kind: 128,
            code: 0
        }
    );
    assert_eq!(
        icmp6.reply.l4,
        L4::Icmp {
            id: 9,
            kind: 129,
            code: 0
        }
    );
    assert_eq!(icmp6.reply, icmp6.orig.inverted());
}

#[test]
fn kernel_event_capture_decodes() {
    let events: Vec<(Op, u16, Flow)> = decode_all(&fixture("events.bin"))
        .into_iter()
        .filter_map(|m| match m {
            Message::Conntrack { header, op, flow } => Some((op, header.flags, flow)),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 3);
    let (op, flags, new) = &events[0];
    assert!(*op == Op::New && flags & NLM_F_CREATE != 0, "NEW event");
    assert_eq!(new.orig.l4, L4::Ports { src: 1, dst: 2 });
    let (op, flags, update) = &events[1];
    assert!(*op == Op::New && flags & NLM_F_CREATE == 0, "UPDATE event");
    assert_eq!(update.mark, 5);
    let (op, _, destroy) = &events[2];
    assert_eq!(*op, Op::Delete);
    assert_eq!(destroy.key(), new.key());
}

#[test]
fn every_truncation_of_a_capture_is_an_error_not_a_panic() {
    let bytes = fixture("dump.bin");
    for cut in 0..bytes.len() {
        let _ = codec::messages(&bytes[..cut]).count();
    }
    // Flipped bytes too.
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0xff;
        let _ = codec::messages(&b).count();
    }
}

fn addr(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<[u8; 16]>().prop_map(IpAddr::from).boxed()
    } else {
        any::<[u8; 4]>().prop_map(IpAddr::from).boxed()
    }
}

fn tuple(v6: bool) -> impl Strategy<Value = Tuple> {
    let l4 = prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(src, dst)| (6u8, L4::Ports { src, dst })),
        (any::<u16>(), any::<u16>()).prop_map(|(src, dst)| (17u8, L4::Ports { src, dst })),
        (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(move |(id, kind, code)| (
            if v6 { 58u8 } else { 1 },
            L4::Icmp { id, kind, code }
        )),
        Just((47u8, L4::None)),
    ];
    (addr(v6), addr(v6), l4).prop_map(|(src, dst, (proto, l4))| Tuple {
        src,
        dst,
        proto,
        l4,
    })
}

fn flow() -> impl Strategy<Value = Flow> {
    any::<bool>()
        .prop_flat_map(|v6| {
            (
                tuple(v6),
                tuple(v6),
                any::<u16>(),
                0u32..0x7ff,
                any::<u32>(),
                any::<u32>(),
                proptest::option::of(any::<[u8; 16]>()),
                proptest::option::of(any::<[u8; 5]>()),
            )
        })
        .prop_map(
            |(orig, reply, zone, status, timeout, mark, labels, tcp)| Flow {
                orig,
                reply: Tuple {
                    proto: orig.proto,
                    ..reply
                },
                zone,
                status: Status(status),
                timeout,
                mark,
                labels,
                tcp: tcp.map(|b| TcpInfo {
                    state: b[0],
                    wscale_orig: b[1],
                    wscale_reply: b[2],
                    flags_orig: b[3],
                    flags_reply: b[4],
                }),
            },
        )
}

proptest! {
    /// An update carries everything but the reply tuple; with the reply tuple
    /// re-attached, what decodes is what was encoded (status as the kernel may accept it).
    #[test]
    fn update_round_trips(f in flow()) {
        let mut buf = Vec::new();
        codec::encode_request(&mut buf, &f, Request::Update { strict_tcp: true }, 0, 9);
        let msgs: Vec<_> = codec::messages(&buf).collect();
        prop_assert_eq!(msgs.len(), 1);
        // No reply tuple in an update: decoding says so by name.
        prop_assert_eq!(
            msgs[0].clone().unwrap_err(),
            tandem_ctnetlink::DecodeError::Missing { attr: "CTA_TUPLE_REPLY" }
        );
    }

    #[test]
    fn create_round_trips(f in flow()) {
        let mut buf = Vec::new();
        codec::encode_request(&mut buf, &f, Request::Create { strict_tcp: true }, 0, 9);
        let msg = codec::messages(&buf).next().unwrap().unwrap();
        let Message::Conntrack { flow: got, header, op } = msg else { panic!("{msg:?}") };
        prop_assert_eq!(op, Op::New);
        prop_assert_eq!(header.seq, 9);
        prop_assert_eq!(header.len as usize, buf.len());
        let nat = f.is_snat() || f.is_dnat();
        let mut want = f.clone();
        if nat {
            want.reply = f.orig.inverted();
        }
        want.status = Status((f.status.0 | Status::CONFIRMED) & !(Status::EXPECTED | Status::DYING
            | Status::SRC_NAT_DONE | Status::DST_NAT_DONE | Status::SEQ_ADJUST));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn be_liberal_unless_strict(f in flow()) {
        let mut buf = Vec::new();
        codec::encode_request(&mut buf, &f, Request::Create { strict_tcp: false }, 0, 1);
        let Ok(Message::Conntrack { flow: got, .. }) = codec::messages(&buf).next().unwrap() else {
            panic!()
        };
        if let Some(tcp) = got.tcp {
            prop_assert!(tcp.flags_orig & TcpInfo::FLAG_BE_LIBERAL != 0);
            prop_assert!(tcp.flags_reply & TcpInfo::FLAG_BE_LIBERAL != 0);
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::messages(&bytes).count();
        let _ = codec::decode_flow(&bytes);
    }
}

#[test]
fn fuzz_corpus_replays() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ctnetlink_decode");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("corpus directory {} missing", dir.display());
    };
    let mut n = 0;
    for entry in entries.flatten() {
        codec::fuzz_messages(&std::fs::read(entry.path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "corpus directory {} is empty", dir.display());
}

#[test]
fn flow_record_fuzz_corpus_replays() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/flow_record");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
    let (mut n, mut failed) = (0, Vec::new());
    for entry in entries.flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        if std::panic::catch_unwind(|| tandem_ctnetlink::fuzz_record(&bytes)).is_err() {
            failed.push(entry.path());
        }
        n += 1;
    }
    assert!(n > 0, "corpus directory {} is empty", dir.display());
    assert!(failed.is_empty(), "inputs that still fail: {failed:?}");
}

/// Writes the flow-record seed corpus: the sync encoding of every flow in the kernel captures
/// (run with --ignored once).
#[test]
#[ignore]
fn write_flow_record_seed_corpus() {
    use tandem_ctsync::Record;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/flow_record");
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    for name in ["dump.bin", "events.bin"] {
        for msg in decode_all(&fixture(name)) {
            if let Message::Conntrack { flow, .. } = msg {
                let mut out = Vec::new();
                flow.encode(&mut out);
                std::fs::write(dir.join(format!("seed-{n:02}")), out).unwrap();
                n += 1;
            }
        }
    }
}
