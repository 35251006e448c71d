//! Two simulated gateways over a lossy, duplicating, reordering network: once the loss stops,
//! each node's external cache equals the other's kernel table, with nothing lost, nothing
//! stale and no duplicate.

mod common;

use std::time::Duration;

use common::{flow, Conditions, Flow, Pair};
use tandem_ctsync::{CacheKind, Event, Input, Record};

const SEEDS: u64 = 64;

/// Random events on both nodes under `net` for `seconds`, then a clean network.
fn churn(pair: &mut Pair, seconds: u32, events_per_tick: u32, space: u32) {
    for _ in 0..seconds * 100 {
        for _ in 0..events_per_tick {
            let i = pair.rng.random_range(0..2usize);
            pair.random_event(i, space);
        }
        pair.run_for(Duration::from_millis(10));
    }
}

use rand::Rng;

#[test]
fn converges_after_30_percent_loss_with_duplication_and_reordering() {
    let mut worst = Duration::ZERO;
    for seed in 0..SEEDS {
        let mut pair = Pair::new(seed, Conditions::hostile(), |_| {});
        churn(&mut pair, 2, 5, 2000);
        pair.net = Conditions::perfect();
        let took = pair
            .run_to_convergence(Duration::from_secs(30))
            .unwrap_or_else(|| {
                panic!(
                    "seed {seed}: no convergence; stats A {:?} B {:?}",
                    pair.nodes[0].stats(),
                    pair.nodes[1].stats()
                )
            });
        worst = worst.max(took);
        let a = pair.nodes[0].stats();
        assert!(
            a.retransmissions > 0 && a.nacks_received > 0,
            "seed {seed}: loss was repaired"
        );
        assert_eq!(
            a.gaps_abandoned, 0,
            "seed {seed}: every gap repaired without resync"
        );
    }
    eprintln!("{SEEDS} seeds, 30% loss, 10% duplication, 0.1-20 ms reordering: worst convergence after loss stops {worst:?}");
}

#[test]
fn reported_external_changes_add_up_to_the_external_cache() {
    for seed in 0..16 {
        let mut pair = Pair::new(seed, Conditions::hostile(), |c| c.report_external = true);
        churn(&mut pair, 2, 5, 2000);
        // A restart of A in the middle: B's full resync from it must also be reported.
        pair.restart(0, false);
        churn(&mut pair, 1, 5, 2000);
        pair.net = Conditions::perfect();
        assert!(
            pair.run_to_convergence(Duration::from_secs(30)).is_some(),
            "seed {seed}"
        );
        let external: std::collections::HashMap<_, _> = pair.nodes[1]
            .external()
            .records()
            .map(|f| (f.key(), f.clone()))
            .collect();
        assert!(!external.is_empty());
        // Compared without printing: the maps hold thousands of flows.
        assert!(
            pair.warm[1] == external,
            "seed {seed}: reported changes diverge from the cache"
        );
    }
}

#[test]
fn converges_while_loss_continues() {
    for seed in 0..16 {
        let mut pair = Pair::new(seed, Conditions::hostile(), |_| {});
        churn(&mut pair, 1, 5, 500);
        assert!(
            pair.run_to_convergence(Duration::from_secs(30)).is_some(),
            "seed {seed}"
        );
    }
}

#[test]
fn small_window_and_queue_overflow_still_converge() {
    for seed in 0..16 {
        let mut pair = Pair::new(seed, Conditions::hostile(), |c| {
            c.window = 4;
            c.max_queue_bytes = 2000;
        });
        churn(&mut pair, 1, 20, 3000);
        pair.net = Conditions::perfect();
        assert!(
            pair.run_to_convergence(Duration::from_secs(60)).is_some(),
            "seed {seed}"
        );
        assert!(pair.nodes[0].stats().queue_overflows > 0);
    }
}

#[test]
fn peer_restart_is_detected_and_resynced() {
    for seed in 0..SEEDS {
        let mut pair = Pair::new(seed, Conditions::hostile(), |_| {});
        churn(&mut pair, 1, 5, 1000);
        // B restarts; its kernel keeps its flows (a daemon restart).
        pair.restart(1, false);
        churn(&mut pair, 1, 5, 1000);
        pair.net = Conditions::perfect();
        assert!(
            pair.run_to_convergence(Duration::from_secs(30)).is_some(),
            "seed {seed}"
        );
        assert!(
            pair.nodes[0].stats().peer_restarts >= 1,
            "seed {seed}: A saw B restart"
        );
        assert!(
            !pair.resyncs_received[1].is_empty(),
            "seed {seed}: the restarted B was told its resync completed"
        );
    }
}

#[test]
fn restart_with_an_empty_kernel_empties_the_peers_external_cache() {
    for seed in 0..16 {
        let mut pair = Pair::new(seed, Conditions::hostile(), |_| {});
        for i in 0..300 {
            pair.kernel_event(0, Event::New(flow(i)));
        }
        pair.run_for(Duration::from_secs(2));
        pair.net = Conditions::perfect();
        pair.run_to_convergence(Duration::from_secs(10)).unwrap();
        assert_eq!(pair.nodes[1].external().len(), 300);
        pair.net = Conditions::hostile();
        pair.restart(0, true);
        pair.net = Conditions::perfect();
        pair.run_for(Duration::from_secs(5));
        assert!(
            pair.run_to_convergence(Duration::from_secs(30)).is_some(),
            "seed {seed}"
        );
        assert_eq!(
            pair.nodes[1].external().len(),
            0,
            "seed {seed}: stale entries swept"
        );
    }
}

#[test]
fn deletions_propagate_and_commit_hands_over_the_external_cache() {
    let mut pair = Pair::new(1, Conditions::perfect(), |_| {});
    for i in 0..100 {
        pair.kernel_event(0, Event::New(flow(i)));
    }
    for i in 0..40 {
        pair.kernel_event(0, Event::Destroy(flow(i)));
    }
    pair.run_to_convergence(Duration::from_secs(5)).unwrap();
    assert_eq!(pair.nodes[1].external().len(), 60);
    assert!(pair.nodes[1].external().get(&flow(10).key()).is_none());
    pair.input(1, Input::Commit);
    assert_eq!(pair.committed.len(), 60);
    pair.input(1, Input::Flush(CacheKind::External));
    assert_eq!(pair.nodes[1].external().len(), 0);
    // A asks B for nothing; B asks A to resync: everything comes back.
    pair.input(1, Input::RequestResync);
    pair.run_to_convergence(Duration::from_secs(5)).unwrap();
    assert_eq!(pair.nodes[1].external().len(), 60);
}

#[test]
fn a_long_partition_is_repaired() {
    for seed in 0..16 {
        let mut pair = Pair::new(seed, Conditions::perfect(), |_| {});
        churn(&mut pair, 1, 5, 500);
        pair.net.loss = 1.0;
        churn(&mut pair, 10, 2, 500);
        pair.net = Conditions::hostile();
        pair.run_for(Duration::from_secs(1));
        pair.net = Conditions::perfect();
        assert!(
            pair.run_to_convergence(Duration::from_secs(30)).is_some(),
            "seed {seed}"
        );
    }
}

#[test]
fn a_resync_from_the_kernel_sends_only_what_changed() {
    let mut pair = Pair::new(7, Conditions::perfect(), |_| {});
    churn(&mut pair, 1, 5, 500);
    pair.run_to_convergence(Duration::from_secs(5)).unwrap();
    let dump = |pair: &Pair| pair.kernels[0].values().cloned().collect::<Vec<Flow>>();

    // The same table again: nothing to tell the peer, and no bulk.
    let before = pair.nodes[0].stats();
    pair.input(0, Input::ResyncFromKernel(dump(&pair)));
    let after = pair.nodes[0].stats();
    assert_eq!(after.records_sent, before.records_sent);
    assert_eq!(after.bulk_sends, before.bulk_sends);

    // Events lost while the table changed (as after ENOBUFS): the dump carries the
    // difference, exactly that is sent, and the peer converges.
    let gone = pair.kernels[0].keys().next().copied().unwrap();
    pair.kernels[0].remove(&gone);
    let new = flow(100_000);
    pair.kernels[0].insert(new.key(), new.clone());
    pair.input(0, Input::ResyncFromKernel(dump(&pair)));
    assert_eq!(pair.nodes[0].stats().records_sent, after.records_sent + 2);
    pair.run_to_convergence(Duration::from_secs(5)).unwrap();
    assert!(pair.nodes[1].external().get(&gone).is_none());
    assert!(pair.nodes[1].external().get(&new.key()).is_some());
}

#[test]
fn adopting_the_external_cache_makes_it_ours_without_sending() {
    let mut pair = Pair::new(3, Conditions::perfect(), |_| {});
    churn(&mut pair, 1, 5, 500);
    pair.run_to_convergence(Duration::from_secs(5)).unwrap();
    let before = pair.nodes[1].stats();
    pair.input(1, Input::AdoptExternal);
    let after = pair.nodes[1].stats();
    assert_eq!(after.records_sent, before.records_sent);
    for (key, flow) in &pair.kernels[0] {
        assert_eq!(pair.nodes[1].internal().get(key).as_ref(), Some(flow));
    }
}

/// The start of a gateway pair whose kernels answer slowly: both promote themselves once, run
/// the promotion sequence (adopt, flush external, bulk), the lower one steps back and asks
/// for a resync; flows the master opens afterwards must still reach the backup.
#[test]
fn updates_keep_flowing_after_both_ends_ran_the_promotion_sequence() {
    let mut pair = Pair::new(11, Conditions::perfect(), |_| {});
    pair.run_for(Duration::from_millis(300));
    for node in [0, 1] {
        pair.input(node, Input::ResyncFromKernel(Vec::new()));
        pair.input(node, Input::AdoptExternal);
        pair.input(node, Input::Flush(CacheKind::External));
        pair.input(node, Input::BulkSend);
    }
    pair.input(1, Input::RequestResync);
    pair.run_for(Duration::from_millis(50));
    let flows: Vec<Flow> = (0..50).map(flow).collect();
    for f in &flows {
        pair.kernels[0].insert(f.key(), f.clone());
    }
    pair.input(
        0,
        Input::Local(flows.iter().cloned().map(Event::New).collect()),
    );
    pair.run_for(Duration::from_millis(500));
    assert_eq!(
        pair.nodes[1].external().len(),
        50,
        "A {:?}\nB {:?}",
        pair.nodes[0].stats(),
        pair.nodes[1].stats()
    );
}
