//! Bytes per entry on the wire and in memory (conntrackd: 77 B on the wire, 464-528 B in memory),
//! and encode+decode throughput (`cargo test --release -p tandem-ctsync --test size -- --ignored
//! --nocapture`).

mod common;

use std::time::{Duration, Instant};

use common::{flow, Flow};
use tandem_ctsync::{Action, Config, Event, Input, Node};

/// Sends `n` new flows from A to B over a perfect wire; returns (DATA bytes, seconds).
fn transfer(n: u32, batch: u32) -> (Node<Flow>, Node<Flow>, u64, f64) {
    let now = Instant::now();
    let config = |id| Config {
        window: 1 << 16,
        ..Config::new(id, id)
    };
    let mut a: Node<Flow> = Node::new(config(1));
    let mut b: Node<Flow> = Node::new(config(2));
    b.handle(now, Input::Start);
    let mut start_dgrams = Vec::new();
    for action in a.handle(now, Input::Start) {
        if let Action::Transmit(bytes) = action {
            start_dgrams.push(bytes);
        }
    }
    for d in &start_dgrams {
        b.handle(now, Input::Datagram(d));
    }
    let mut bytes = 0u64;
    let clock = Instant::now();
    for chunk in 0..n / batch {
        let events = (chunk * batch..(chunk + 1) * batch)
            .map(|i| Event::New(flow(i)))
            .collect();
        for action in a.handle(now, Input::Local(events)) {
            if let Action::Transmit(d) = action {
                bytes += d.len() as u64;
                b.handle(now, Input::Datagram(&d));
            }
        }
    }
    let secs = clock.elapsed().as_secs_f64();
    (a, b, bytes, secs)
}

#[test]
fn a_flow_costs_under_70_bytes_on_the_wire_and_under_170_in_memory() {
    let n = 20_000;
    let (a, b, bytes, _) = transfer(n, 1000);
    assert_eq!(b.external().len(), n as usize);
    let wire = bytes as f64 / f64::from(n);
    let internal = a.internal().memory() as f64 / f64::from(n);
    let external = b.external().memory() as f64 / f64::from(n);
    eprintln!("wire {wire:.1} B/entry, internal cache {internal:.0} B/entry, external cache {external:.0} B/entry");
    assert!(wire < 70.0, "{wire}");
    assert!(
        internal < 170.0 && external < 170.0,
        "{internal} {external}"
    );
}

#[test]
#[ignore]
fn throughput() {
    let n = 1_000_000;
    let (_, b, bytes, secs) = transfer(n, 1000);
    assert_eq!(b.external().len(), n as usize);
    eprintln!(
        "{n} flows encoded, sent and decoded into the external cache in {:?}: {:.0} entries/s, {:.1} B/entry on the wire",
        Duration::from_secs_f64(secs),
        f64::from(n) / secs,
        bytes as f64 / f64::from(n)
    );
}
