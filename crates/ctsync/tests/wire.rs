//! The wire format from the outside: authentication, forward compatibility with a newer peer,
//! and a decoder that never panics.

mod common;

use std::time::{Duration, Instant};

use common::{flow, Conditions, Flow, Pair};
use proptest::prelude::*;
use tandem_ctsync::wire::{self, attr, Attrs, MessageType, FLAG_RESET};
use tandem_ctsync::{Action, AuthKey, Config, Event, Input, Node, Record, WireError};

fn datagram(
    kind: u8,
    flags: u16,
    node: u32,
    epoch: u32,
    seq: u32,
    attrs: &[u8],
    key: Option<&AuthKey>,
) -> Vec<u8> {
    let mut out = Vec::new();
    wire::start(&mut out, MessageType::Data, flags, node, epoch, seq);
    out[3] = kind;
    out.extend_from_slice(attrs);
    wire::finish(&mut out, key);
    out
}

#[test]
fn authenticated_pair_converges_and_forgeries_are_dropped_and_counted() {
    let mut pair = Pair::new(3, Conditions::hostile(), |c| {
        c.hmac_key = Some(b"sync secret".to_vec())
    });
    for i in 0..200 {
        pair.kernel_event(0, Event::New(flow(i)));
    }
    pair.net = Conditions::perfect();
    pair.run_to_convergence(Duration::from_secs(10)).unwrap();
    assert_eq!(pair.nodes[1].external().len(), 200);

    // Someone on the sync network injects a flow, with the wrong key and with none.
    let mut body = Vec::new();
    wire::put_nested(&mut body, attr::SET, |out| flow(9999).encode(out));
    let wrong = AuthKey::new(b"guess");
    let forged = datagram(1, FLAG_RESET, 1, 0x1000, 0, &body, Some(&wrong));
    pair.input(1, Input::Datagram(&forged));
    let unsigned = datagram(1, FLAG_RESET, 1, 0x1000, 0, &body, None);
    pair.input(1, Input::Datagram(&unsigned));
    let mut tampered = pair_last_datagram(&mut pair);
    let at = tampered.len() - 40;
    tampered[at] ^= 1;
    pair.input(1, Input::Datagram(&tampered));
    assert_eq!(pair.nodes[1].stats().drops.bad_hmac, 3);
    assert!(pair.nodes[1].external().get(&flow(9999).key()).is_none());
    assert_eq!(pair.nodes[1].external().len(), 200);
}

/// A valid DATA datagram from node A (what A sends for one more flow).
fn pair_last_datagram(pair: &mut Pair) -> Vec<u8> {
    pair.kernels[0].insert(flow(5000).key(), flow(5000));
    let actions = pair.nodes[0].handle(pair.now, Input::Local(vec![Event::New(flow(5000))]));
    actions
        .into_iter()
        .find_map(|a| match a {
            Action::Transmit(b) if b[3] == 1 => Some(b),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_newer_peers_unknown_attributes_and_message_types_are_skipped() {
    let now = Instant::now();
    let mut node: Node<Flow> = Node::new(Config::new(2, 1));
    node.handle(now, Input::Start);

    let mut record = Vec::new();
    flow(1).encode(&mut record);
    wire::put_attr(&mut record, 999, b"a future flow field");
    let mut body = Vec::new();
    wire::put_attr(&mut body, attr::SET, &record);
    wire::put_attr(&mut body, 4242, b"a future message attribute");
    wire::put_nested(&mut body, attr::SET, |out| flow(2).encode(out));
    node.handle(
        now,
        Input::Datagram(&datagram(1, FLAG_RESET | 0x0100, 7, 1, 0, &body, None)),
    );
    node.handle(
        now,
        Input::Datagram(&datagram(9, 0, 7, 1, 1, b"whatever comes in v1.5", None)),
    );
    let mut body = Vec::new();
    wire::put_nested(&mut body, attr::SET, |out| flow(3).encode(out));
    node.handle(now, Input::Datagram(&datagram(1, 0, 7, 1, 1, &body, None)));

    assert_eq!(node.external().get(&flow(1).key()), Some(flow(1)));
    assert_eq!(node.external().len(), 3);
    let stats = node.stats();
    assert_eq!(stats.unknown_attributes, 1);
    assert_eq!(stats.drops.unknown_type, 1);
    assert_eq!(stats.records_received, 3);
}

#[test]
fn drops_are_counted_by_reason() {
    let now = Instant::now();
    let mut node: Node<Flow> = Node::new(Config::new(2, 1));
    node.handle(now, Input::Start);
    let good = datagram(1, FLAG_RESET, 7, 1, 0, &[], None);
    node.handle(now, Input::Datagram(&good[..10]));
    let mut bad_magic = good.clone();
    bad_magic[0] = 0;
    node.handle(now, Input::Datagram(&bad_magic));
    let mut bad_version = good.clone();
    bad_version[2] = 2;
    node.handle(now, Input::Datagram(&bad_version));
    let own = datagram(1, FLAG_RESET, 2, 1, 0, &[], None);
    node.handle(now, Input::Datagram(&own));
    node.handle(now, Input::Datagram(&good));
    node.handle(now, Input::Datagram(&good));
    let d = node.stats().drops;
    assert_eq!(
        (d.truncated, d.bad_magic, d.bad_version, d.own, d.duplicate),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(
        wire::decode(&bad_version, None).unwrap_err().to_string(),
        "unsupported version 2, this build speaks 1"
    );
}

#[test]
fn gap_that_is_never_repaired_is_skipped_and_a_resync_requested() {
    let now = Instant::now();
    let mut node: Node<Flow> = Node::new(Config::new(2, 1));
    node.handle(now, Input::Start);
    node.handle(
        now,
        Input::Datagram(&datagram(1, FLAG_RESET, 7, 1, 0, &[], None)),
    );
    let mut body = Vec::new();
    wire::put_nested(&mut body, attr::SET, |out| flow(3).encode(out));
    node.handle(now, Input::Datagram(&datagram(1, 0, 7, 1, 2, &body, None)));
    assert!(node.external().is_empty(), "seq 1 is missing");
    let mut t = now;
    let mut nacks = 0;
    while t < now + Duration::from_secs(6) {
        t = node.next_deadline().unwrap();
        for a in node.handle(t, Input::Timer) {
            if let Action::Transmit(b) = a {
                let m = wire::decode(&b, None).unwrap();
                nacks += Attrs::new(m.body)
                    .filter(|a| matches!(a, Ok((attr::NACK, _))))
                    .count();
            }
        }
    }
    assert!(
        nacks >= 10,
        "NACKed every 50 ms until the repair timeout ({nacks})"
    );
    let stats = node.stats();
    assert_eq!(stats.gaps_abandoned, 1);
    assert_eq!(
        stats.resync_requests_sent, 2,
        "one at start, one for the gap"
    );
    assert_eq!(
        node.external().len(),
        1,
        "the buffered datagram was applied"
    );
}

#[test]
fn record_errors_name_the_field() {
    let mut attrs = Vec::new();
    wire::put_attr(&mut attrs, 1, &[1, 2, 3]);
    assert_eq!(
        Flow::decode(&attrs),
        Err(WireError::AttrLength {
            field: "orig tuple",
            ty: 1,
            len: 3,
            expected: 13
        })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoder_never_panics_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        tandem_ctsync::fuzzing::fuzz_datagram(&data);
    }

    #[test]
    fn decoder_never_panics_on_mutated_datagrams(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut body = Vec::new();
        wire::put_nested(&mut body, attr::SET, |out| flow(1).encode(out));
        wire::put_pair(&mut body, attr::NACK, 0, 3);
        let mut d = datagram(1, FLAG_RESET, 7, 1, 0, &body, None);
        for (at, x) in flips {
            let n = d.len();
            d[at % n] ^= x;
        }
        d.truncate(cut % (d.len() + 1));
        tandem_ctsync::fuzzing::fuzz_datagram(&d);
    }

    #[test]
    fn records_round_trip(i in any::<u32>(), mark in any::<u32>(), timeout in any::<u32>()) {
        let mut f = flow(i);
        f.mark = mark;
        f.timeout = timeout;
        let mut out = Vec::new();
        f.encode(&mut out);
        prop_assert_eq!(Flow::decode(&out), Ok(f));
    }
}

#[test]
fn saved_fuzz_corpus_replays() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ctsync_decode");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries.flatten() {
        tandem_ctsync::fuzzing::fuzz_datagram(&std::fs::read(entry.path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "corpus directory {} is empty", dir.display());
}

/// Writes the seed corpus: real datagrams of a short session (run with --ignored once).
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ctsync_decode");
    std::fs::create_dir_all(&dir).unwrap();
    let now = Instant::now();
    let mut a: Node<Flow> = Node::new(Config::new(1, 1));
    let mut b: Node<Flow> = Node::new(Config::new(2, 2));
    let mut all = Vec::new();
    all.extend(a.handle(now, Input::Start));
    let events = (0..30)
        .map(|i| Event::New(flow(i)))
        .chain((0..3).map(|i| Event::Destroy(flow(i))));
    all.extend(a.handle(now, Input::Local(events.collect())));
    let mut replies = b.handle(now, Input::Start);
    for action in &all {
        if let Action::Transmit(bytes) = action {
            replies.extend(b.handle(now, Input::Datagram(bytes)));
        }
    }
    replies.extend(b.handle(now + Duration::from_secs(1), Input::Timer));
    let mut signed: Node<Flow> = Node::new(Config {
        hmac_key: Some(b"fuzz".to_vec()),
        ..Config::new(3, 3)
    });
    all.extend(signed.handle(now, Input::Start));
    // A keyed handshake with a node configured as the fuzzer's keyed node: its answer to that
    // node's offer, then session DATA.
    let keyed = |id| Config {
        hmac_key: Some(b"fuzz".to_vec()),
        ..Config::new(id, 1)
    };
    let mut k1: Node<Flow> = Node::new(keyed(1));
    let mut k2: Node<Flow> = Node::new(keyed(2));
    let mut to_k1 = k2.handle(now, Input::Start);
    k1.handle(now, Input::Start);
    for _ in 0..3 {
        let mut to_k2 = Vec::new();
        for action in std::mem::take(&mut to_k1) {
            if let Action::Transmit(bytes) = action {
                to_k2.extend(k1.handle(now, Input::Datagram(&bytes)));
            }
        }
        to_k2.extend(k1.handle(now, Input::Local(vec![Event::New(flow(7))])));
        for action in &to_k2 {
            if let Action::Transmit(bytes) = action {
                to_k1.extend(k2.handle(now, Input::Datagram(bytes)));
            }
        }
        all.extend(to_k2);
    }
    for (n, action) in all.iter().chain(&replies).enumerate() {
        if let Action::Transmit(bytes) = action {
            std::fs::write(dir.join(format!("seed-{n:02}")), bytes).unwrap();
        }
    }
}

#[test]
fn last_heard_moves_only_for_authenticated_datagrams_of_the_peer() {
    let mut pair = Pair::new(4, Conditions::perfect(), |c| {
        c.hmac_key = Some(b"sync secret".to_vec())
    });
    pair.run_for(Duration::from_secs(3));
    let heard = pair.nodes[1].last_heard().expect("the peer was heard");
    // A forgery later on does not count as hearing from the peer.
    pair.now += Duration::from_secs(5);
    let forged = datagram(
        1,
        FLAG_RESET,
        1,
        0x1000,
        0,
        &[],
        Some(&AuthKey::new(b"guess")),
    );
    pair.input(1, Input::Datagram(&forged));
    assert_eq!(pair.nodes[1].last_heard(), Some(heard));
    assert_eq!(pair.nodes[1].drops().bad_hmac, 1);
    // A node with another key never hears anyone.
    let mut mismatch = Pair::new(5, Conditions::perfect(), |c| {
        c.hmac_key = Some(c.node_id.to_be_bytes().to_vec())
    });
    mismatch.run_for(Duration::from_secs(3));
    assert_eq!(mismatch.nodes[0].last_heard(), None);
    assert_eq!(mismatch.nodes[1].last_heard(), None);
    assert!(mismatch.nodes[1].drops().bad_hmac > 0);
}
