//! Sessions with a pre-shared key, from the point of view of an attacker on the sync link who
//! records everything, replays it and forges what it can: nothing it sends changes the peer,
//! the session or a cache. And the handshake itself survives loss and simultaneous restarts.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{flow, Conditions, Flow, FlowKey, Pair};
use rand::Rng;
use tandem_ctsync::wire::{self, attr, MessageType, FLAG_HANDSHAKE, FLAG_RESET};
use tandem_ctsync::{AuthKey, Config, Event, Input, Record, Stats};

const PSK: &[u8] = b"an example pre-shared key of 32+ bytes";

fn keyed(c: &mut Config) {
    c.hmac_key = Some(PSK.to_vec());
}

/// Node `i`'s kernel holds exactly `flows` (events for the difference go to the node).
fn set_table(pair: &mut Pair, i: usize, flows: impl IntoIterator<Item = Flow>) {
    let want: HashMap<FlowKey, Flow> = flows.into_iter().map(|f| (f.key(), f)).collect();
    let gone: Vec<Flow> = pair.kernels[i]
        .values()
        .filter(|f| !want.contains_key(&f.key()))
        .cloned()
        .collect();
    for f in gone {
        pair.kernel_event(i, Event::Destroy(f));
    }
    for f in want.into_values() {
        pair.kernel_event(i, Event::New(f));
    }
}

fn external(pair: &Pair, i: usize) -> HashMap<FlowKey, Flow> {
    pair.nodes[i]
        .external()
        .records()
        .map(|f| (f.key(), f))
        .collect()
}

/// Every drop, whatever the reason, plus the authentic hellos that were answered: each
/// datagram fed to a node ends up in exactly one of these.
fn accounted(s: &Stats) -> u64 {
    let d = &s.drops;
    d.bad_hmac
        + d.truncated
        + d.bad_magic
        + d.bad_version
        + d.unknown_type
        + d.malformed
        + d.own
        + d.stale_epoch
        + d.stale_session
        + d.unsynced
        + d.out_of_window
        + d.duplicate
        + s.hellos_received
}

fn converge(pair: &mut Pair, what: &str) {
    assert!(
        pair.run_to_convergence(Duration::from_secs(30)).is_some(),
        "{what}: no convergence\nA {:?}\nB {:?}",
        pair.nodes[0].stats(),
        pair.nodes[1].stats()
    );
}

/// The attack of issue 13: record the master's first two incarnations, restart it twice,
/// replay everything at the backup. Before per-session keys, the second restart made the
/// first incarnation's datagrams acceptable again and rolled the backup's cache back.
#[test]
fn replayed_datagrams_of_earlier_incarnations_change_nothing() {
    for seed in 0..8 {
        let mut pair = Pair::new(seed, Conditions::perfect(), keyed);
        pair.capture = true;
        set_table(&mut pair, 0, (0..100).map(flow));
        converge(&mut pair, "first incarnation");

        pair.restart(0, true);
        set_table(&mut pair, 0, (50..150).map(flow));
        pair.run_for(Duration::from_millis(300));
        set_table(&mut pair, 0, (60..170).map(flow));
        converge(&mut pair, "second incarnation");
        let recorded = std::mem::take(&mut pair.captured[0]);
        pair.capture = false;

        pair.restart(0, true);
        set_table(&mut pair, 0, (200..260).map(flow));
        converge(&mut pair, "third incarnation");
        let table = external(&pair, 1);
        assert_eq!(table.len(), 60);
        let peer = pair.nodes[1].peer();
        let before = pair.nodes[1].stats();
        let sessions = pair.sessions;

        // In order, then again shuffled (reordering helps an attacker with sequence numbers).
        let mut replay = recorded.clone();
        let mut shuffled = recorded;
        for i in (1..shuffled.len()).rev() {
            let j = pair.rng.random_range(0..=i);
            shuffled.swap(i, j);
        }
        replay.extend(shuffled);
        for bytes in &replay {
            pair.input(1, Input::Datagram(bytes));
            assert!(external(&pair, 1) == table, "seed {seed}: cache changed");
            assert_eq!(pair.nodes[1].peer(), peer, "seed {seed}: peer slot changed");
        }
        let after = pair.nodes[1].stats();
        assert_eq!(
            accounted(&after) - accounted(&before),
            replay.len() as u64,
            "seed {seed}: every replayed datagram is counted"
        );
        assert!(after.drops.bad_hmac > before.drops.bad_hmac);
        assert!(after.drops.stale_session > before.drops.stale_session);
        assert_eq!(after.records_received, before.records_received);
        assert_eq!(after.peer_restarts, before.peer_restarts);

        // The live session carries on: B's answers to replayed hellos reach A, which ignores
        // them; no new session anywhere, and new flows still arrive.
        pair.run_for(Duration::from_secs(2));
        set_table(&mut pair, 0, (200..280).map(flow));
        converge(&mut pair, "after the replay");
        assert_eq!(pair.sessions, sessions, "seed {seed}: no session changed");
        assert_eq!(pair.nodes[1].peer(), peer);
        assert!(pair.wipes[1].iter().all(|n| *n > 0));
    }
}

/// What someone without the key can put on the wire: unsigned datagrams, tags under guessed
/// keys or under the pre-shared key itself (the former construction), copies of real headers
/// with new epochs, handshake messages echoing the nonces it saw go by.
#[test]
fn forged_datagrams_never_change_the_peer_the_epoch_or_a_cache() {
    let mut pair = Pair::new(5, Conditions::perfect(), keyed);
    pair.capture = true;
    set_table(&mut pair, 0, (0..100).map(flow));
    converge(&mut pair, "start");
    let seen: Vec<Vec<u8>> = pair.captured.iter().flatten().cloned().collect();
    let nonces: Vec<[u8; 16]> = seen
        .iter()
        .filter_map(|d| wire::frame(d).ok()?.session())
        .flat_map(|(a, b)| [a, b])
        .collect();
    assert!(nonces.len() >= 2, "nonces are visible on the wire");

    let mut set = Vec::new();
    wire::put_nested(&mut set, attr::SET, |out| flow(9999).encode(out));
    let mut wipe = Vec::new();
    wire::put_attr(&mut wipe, attr::RESYNC_BEGIN, &[]);
    wire::put_attr(&mut wipe, attr::RESYNC_END, &[]);
    let keys = [
        None,
        Some(AuthKey::new(b"guess")),
        Some(AuthKey::new(PSK)),
        Some(AuthKey::handshake(b"guess")),
    ];
    let mut forged = Vec::new();
    for key in &keys {
        for (node, epoch) in [(1, 0x1000), (1, 0xdead), (7, 1)] {
            for body in [&set, &wipe] {
                let mut d = Vec::new();
                wire::start(&mut d, MessageType::Data, FLAG_RESET, node, epoch, 0);
                d.extend_from_slice(body);
                wire::finish(&mut d, key.as_ref());
                forged.push(d);
            }
            for (own, echo) in nonces.iter().zip(nonces.iter().rev()) {
                for flags in [0, FLAG_HANDSHAKE] {
                    let mut d = Vec::new();
                    wire::start(&mut d, MessageType::Status, flags, node, epoch, 0);
                    wire::put_session(&mut d, own, echo);
                    wire::put_pair(&mut d, attr::ACK, 0x2000, 0);
                    wire::finish(&mut d, key.as_ref());
                    forged.push(d);
                }
            }
        }
    }
    // Real datagrams with one bit changed, or their tag moved onto another header.
    for d in &seen {
        let mut flipped = d.clone();
        flipped[13] ^= 0x40;
        forged.push(flipped);
    }

    let peer = pair.nodes[1].peer();
    let table = external(&pair, 1);
    let before = pair.nodes[1].stats();
    for d in &forged {
        pair.input(1, Input::Datagram(d));
    }
    let after = pair.nodes[1].stats();
    assert_eq!(pair.nodes[1].peer(), peer);
    assert!(external(&pair, 1) == table);
    assert!(pair.nodes[1].external().get(&flow(9999).key()).is_none());
    assert_eq!(after.peer_restarts, before.peer_restarts);
    assert_eq!(after.sessions_established, before.sessions_established);
    assert_eq!(after.records_received, before.records_received);
    assert_eq!(
        accounted(&after) - accounted(&before),
        forged.len() as u64,
        "every forgery counted"
    );
    assert!(pair.wipes[1].is_empty());

    set_table(&mut pair, 0, (0..120).map(flow));
    converge(&mut pair, "after the forgeries");
    assert_eq!(pair.nodes[1].peer(), peer);
}

#[test]
fn both_nodes_restarting_at_once_converge() {
    for seed in 0..16 {
        let mut pair = Pair::new(seed, Conditions::hostile(), keyed);
        set_table(&mut pair, 0, (0..300).map(flow));
        set_table(&mut pair, 1, (1000..1100).map(flow));
        pair.run_for(Duration::from_secs(1));
        pair.restart(0, false);
        pair.restart(1, false);
        pair.kernel_event(0, Event::New(flow(400)));
        pair.run_for(Duration::from_secs(1));
        pair.net = Conditions::perfect();
        converge(&mut pair, &format!("seed {seed}"));
        for i in 0..2 {
            let s = pair.nodes[i].stats();
            assert!(s.sessions_established >= 1, "seed {seed}: node {i} {s:?}");
            assert!(pair.nodes[i].peer().is_some());
        }
    }
}

#[test]
fn handshake_under_30_percent_loss_converges() {
    let mut worst = Duration::ZERO;
    for seed in 0..32 {
        let mut pair = Pair::new(seed, Conditions::hostile(), keyed);
        let start = pair.now;
        set_table(&mut pair, 0, (0..200).map(flow));
        set_table(&mut pair, 1, (500..600).map(flow));
        // The loss never stops.
        assert!(
            pair.run_to_convergence(Duration::from_secs(60)).is_some(),
            "seed {seed}: {:?} {:?}",
            pair.nodes[0].stats(),
            pair.nodes[1].stats()
        );
        worst = worst.max(pair.now - start);
        assert_eq!(pair.sessions, [1, 1], "seed {seed}: one session each");
    }
    eprintln!("30% loss from the first hello: worst convergence {worst:?}");
}

/// Either end restarts while a 20,000-entry bulk is on its way: the session is re-established
/// and the backup ends with the full table.
#[test]
fn a_peer_restarting_mid_bulk_converges_to_the_full_table() {
    for (seed, restarting) in [(1, 0), (2, 1), (3, 0), (4, 1)] {
        let mut pair = Pair::new(seed, Conditions::hostile(), |c| {
            keyed(c);
            c.window = 32;
        });
        pair.net.loss = 0.05;
        pair.run_for(Duration::from_millis(500));
        let table: Vec<Flow> = (0..20_000).map(flow).collect();
        for f in &table {
            pair.kernels[0].insert(f.key(), f.clone());
        }
        pair.input(0, Input::ResyncFromKernel(table));
        let mut waited = Duration::ZERO;
        while pair.nodes[1].external().len() < 5_000 {
            pair.run_for(Duration::from_millis(1));
            waited += Duration::from_millis(1);
            assert!(waited < Duration::from_secs(30), "bulk never started");
        }
        assert!(pair.nodes[1].external().len() < 20_000, "restart mid-bulk");
        pair.restart(restarting, false);
        converge(
            &mut pair,
            &format!("seed {seed}, node {restarting} restarted"),
        );
        assert_eq!(pair.nodes[1].external().len(), 20_000);
        assert!(pair.nodes[1 - restarting].stats().peer_restarts >= 1);
    }
}

/// An authenticated peer may empty our external cache (its table may really be empty), but
/// the node reports it with the number of entries removed.
#[test]
fn an_authenticated_resync_that_empties_the_cache_is_reported_with_its_size() {
    let mut pair = Pair::new(9, Conditions::perfect(), keyed);
    set_table(&mut pair, 0, (0..250).map(flow));
    converge(&mut pair, "start");
    assert!(pair.wipes[1].is_empty());
    pair.restart(0, true);
    converge(&mut pair, "after the restart");
    assert_eq!(pair.nodes[1].external().len(), 0);
    assert_eq!(pair.wipes[1], vec![250]);
    assert_eq!(pair.nodes[1].stats().external_wipes, 1);
}

/// Without a key, nothing changes on the wire: no handshake, no session attribute.
#[test]
fn without_a_key_the_wire_is_unchanged() {
    let mut pair = Pair::new(4, Conditions::perfect(), |_| {});
    pair.capture = true;
    set_table(&mut pair, 0, (0..10).map(flow));
    converge(&mut pair, "start");
    for d in pair.captured.iter().flatten() {
        let framed = wire::frame(d).unwrap();
        assert!(framed.tag.is_empty() && framed.flags & FLAG_HANDSHAKE == 0);
        assert!(framed.session().is_none());
    }
    assert_eq!(pair.nodes[0].stats().hellos_sent, 0);
    assert_eq!(pair.sessions, [0, 0]);
}

/// Replays do not stop a restarted node from finding its peer: while B restarts, everything
/// recorded from A's previous incarnation (and B's) keeps arriving at both, and the pair still
/// converges on a session with the live A.
#[test]
fn a_restart_converges_while_old_datagrams_are_replayed() {
    for seed in 0..8 {
        let mut pair = Pair::new(seed, Conditions::hostile(), keyed);
        pair.capture = true;
        set_table(&mut pair, 0, (0..100).map(flow));
        set_table(&mut pair, 1, (500..520).map(flow));
        pair.run_for(Duration::from_secs(2));
        pair.restart(0, false);
        pair.run_for(Duration::from_secs(2));
        let recorded: Vec<Vec<u8>> = pair.captured.iter().flatten().cloned().collect();
        pair.capture = false;

        // Hellos first: they are what a handshake listens to.
        let hellos: Vec<&Vec<u8>> = recorded
            .iter()
            .filter(|d| wire::frame(d).is_ok_and(|f| f.flags & FLAG_HANDSHAKE != 0))
            .collect();
        assert!(hellos.len() >= 2, "seed {seed}: hellos recorded");
        pair.restart(1, false);
        for round in 0..500 {
            for i in 0..2 {
                let hello = hellos[(round + i) % hellos.len()];
                pair.input(i, Input::Datagram(hello));
                let d = &recorded[(round * 7 + i + seed as usize) % recorded.len()];
                pair.input(i, Input::Datagram(d));
            }
            pair.run_for(Duration::from_millis(10));
        }
        // Found while the replay went on, not after it stopped.
        let live_a = pair.config[0].epoch;
        assert_eq!(pair.nodes[1].peer(), Some((1, live_a)), "seed {seed}");
        assert!(pair.nodes[1].stats().hellos_received > 0);
        pair.net = Conditions::perfect();
        converge(&mut pair, &format!("seed {seed}"));
        assert_eq!(pair.nodes[1].peer(), Some((1, live_a)), "seed {seed}");
    }
}

/// The handshake step by step, every datagram checked: hello, answer, session STATUS, and
/// DATA only under the session.
#[test]
fn the_handshake_step_by_step() {
    use std::time::Instant;
    use tandem_ctsync::{Action, Node};

    /// (type, handshake flag, SESSION attribute) of one datagram.
    type Seen = (MessageType, bool, Option<([u8; 16], [u8; 16])>);
    fn sent(actions: &[Action<Flow>]) -> Vec<Seen> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit(bytes) => {
                    let f = wire::frame(bytes).unwrap();
                    let kind = f.message().unwrap().header.kind;
                    Some((kind, f.flags & FLAG_HANDSHAKE != 0, f.session()))
                }
                _ => None,
            })
            .collect()
    }
    fn transmits(actions: &[Action<Flow>]) -> Vec<Vec<u8>> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .collect()
    }

    let now = Instant::now();
    let config = |id, epoch| {
        let mut c = Config::new(id, epoch);
        keyed(&mut c);
        c
    };
    let mut a: Node<Flow> = Node::new(config(1, 10));
    let mut b: Node<Flow> = Node::new(config(2, 20));
    let zero = [0u8; 16];

    // Both announce an offer; nothing else may go out without a session.
    let from_a = a.handle(now, Input::Start);
    let hello_a = sent(&from_a);
    assert_eq!(hello_a.len(), 1);
    let (kind, handshake, Some((offer_a, echo))) = hello_a[0] else {
        panic!("{hello_a:?}")
    };
    assert_eq!((kind, handshake, echo), (MessageType::Status, true, zero));
    let from_a = [
        from_a,
        a.handle(now, Input::Local(vec![Event::New(flow(1))])),
    ]
    .concat();
    assert_eq!(sent(&from_a).len(), 1, "DATA waits for the session");
    b.handle(now, Input::Start);

    // B answers A's hello with its own offer, echoing A's.
    let answer = b.handle(now, Input::Datagram(&transmits(&from_a)[0]));
    let (_, true, Some((offer_b, echo))) = sent(&answer)[0] else {
        panic!("{:?}", sent(&answer))
    };
    assert_eq!(echo, offer_a);
    assert_eq!(b.peer(), None, "an answer is not a session");

    // A sees its own offer echoed: the session starts; A sends its session STATUS, then
    // the queued DATA (resync request and the flow), all under the session key.
    let from_a = a.handle(now, Input::Datagram(&transmits(&answer)[0]));
    assert!(from_a.contains(&Action::SessionEstablished { node_id: 2 }));
    assert_eq!(a.peer(), Some((2, 20)));
    let out = sent(&from_a);
    assert_eq!(
        out[0],
        (MessageType::Status, false, Some((offer_a, offer_b)))
    );
    assert!(out[1..]
        .iter()
        .all(|(kind, hs, s)| *kind == MessageType::Data && !hs && s.is_none()));
    assert!(out.len() >= 2);

    // B verifies the STATUS under the key derived from its offer: its side starts too, and
    // A's DATA applies.
    let mut from_b = Vec::new();
    for d in transmits(&from_a) {
        from_b.extend(b.handle(now, Input::Datagram(&d)));
    }
    assert!(from_b.contains(&Action::SessionEstablished { node_id: 1 }));
    assert_eq!(b.peer(), Some((1, 10)));
    assert_eq!(b.external().get(&flow(1).key()), Some(flow(1)));
    let s = b.stats();
    assert_eq!(
        (s.sessions_established, s.drops.bad_hmac, s.drops.unsynced),
        (1, 0, 0)
    );
}
