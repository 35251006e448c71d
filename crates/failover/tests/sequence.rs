//! The failover sequence on a simulated pair (VRRP routers, coordinators and a model of the
//! replication service; virtual clock, no root). Each test compares the whole ordered trace of
//! what a node did, so a step in the wrong place or an extra one fails it.

mod sim;

use std::time::Duration;

use sim::{NodeParams, Sim};

const A: usize = 0;
const B: usize = 1;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Asserts node `i`'s trace (without adverts) from `since` on, printing it all when it differs.
#[track_caller]
fn assert_trace(sim: &Sim, i: usize, since: Duration, expected: &[impl AsRef<str>]) {
    let got = sim.trace(i, since);
    let expected: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
    if got != expected {
        let all: Vec<String> = (sim.nodes[i].trace.iter())
            .map(|(t, w)| format!("{:>9.3} {w}", t.as_secs_f64()))
            .collect();
        panic!(
            "node {} from {since:?}:\n got      {got:?}\n expected {expected:?}\nfull trace:\n{}",
            sim.nodes[i].name,
            all.join("\n")
        );
    }
}

/// What a node does when it takes over, after the commit answered. Both members' timers
/// expire together; as in keepalived, the member whose expiry completes the group's readiness
/// (the last one examined, VI_2) goes first, then the others.
const TAKE_OVER: [&str; 9] = [
    "VI_2 MASTER",
    "add VI_2",
    "garp VI_2",
    "VI_1 MASTER",
    "add VI_1",
    "garp VI_1",
    "G MASTER",
    "flush external",
    "bulk",
];

/// What a node does when it hands over: the member whose advert from the preempting peer
/// arrives first (VI_2, which that peer made master first) leads.
const HAND_OVER: [&str; 7] = [
    "remove VI_2",
    "VI_2 BACKUP",
    "remove VI_1",
    "VI_1 BACKUP",
    "G BACKUP",
    "shorten",
    "request-resync",
];

const START: [&str; 4] = ["hold preemption", "VI_1 BACKUP", "VI_2 BACKUP", "G BACKUP"];

fn with(first: &[&str], rest: &[&str]) -> Vec<String> {
    first.iter().chain(rest).map(|s| s.to_string()).collect()
}

/// A (priority 150, `flows` flows) is master from 0 s; B (100) joins at 5 s and has A's state.
fn pair(a: NodeParams, b: NodeParams) -> Sim {
    let mut sim = Sim::new(a, b);
    sim.boot(A);
    sim.run_until(secs(5.0));
    sim.boot(B);
    sim.run_until(secs(10.0));
    assert!(sim.is_master(A) && !sim.is_master(B));
    sim
}

fn a_with(flows: usize) -> NodeParams {
    let mut a = NodeParams::new(150);
    a.flows = flows;
    a
}

#[test]
fn a_lone_node_holds_preemption_until_preempt_wait_and_commits_before_announcing() {
    let mut sim = Sim::new(a_with(1000), NodeParams::new(100));
    sim.boot(A);
    sim.run_until(secs(12.0));
    let mut expected = with(&START, &["commit", "committed 0"]);
    expected.extend(TAKE_OVER.map(String::from));
    expected.extend([
        "warn: preempt_wait (10 s) expired without the peer's state: preemption allowed".into(),
        "allow preemption".into(),
    ]);
    assert_trace(&sim, A, Duration::ZERO, &expected);
}

#[test]
fn commit_comes_before_any_address_announcement_or_script() {
    let mut sim = pair(a_with(1000), NodeParams::new(100));
    sim.crash(A);
    sim.run_until(secs(20.0));
    // Everything, adverts included: the adverts of the new master go out with the commit,
    // addresses, gratuitous ARPs and notify scripts only once it answered.
    let full = sim.full_trace(B, secs(10.0));
    let expected = with(
        &["commit", "advert VI_2", "advert VI_1", "committed 1000"],
        &TAKE_OVER,
    );
    assert_eq!(&full[..expected.len()], &expected[..], "{full:?}");
    assert!(
        full[expected.len()..]
            .iter()
            .all(|w| w.starts_with("advert")),
        "{full:?}"
    );
    assert_trace(
        &sim,
        B,
        secs(10.0),
        &with(&["commit", "committed 1000"], &TAKE_OVER),
    );
}

#[test]
fn preemption_waits_for_the_peers_state() {
    // B has the higher priority and preempts, but only once A's 100,000 flows (a bulk of
    // about 0.9 s) are here.
    let mut a = a_with(100_000);
    a.priority = 100;
    let mut sim = Sim::new(a, NodeParams::new(150));
    sim.boot(A);
    sim.run_until(secs(5.0));
    sim.boot(B);
    sim.run_until(secs(12.0));
    let mut expected = with(&START, &["peer state 100000", "allow preemption", "commit"]);
    expected.extend(with(&["committed 100000"], &TAKE_OVER));
    // A's resync request waited for the commit (it holds the service's loop).
    expected.push("send state 100000 (resync requested)".into());
    assert_trace(&sim, B, secs(5.0), &expected);
    let received = sim.when(B, "peer state 100000", secs(5.0)).unwrap();
    assert!(received >= secs(5.9), "{received:?}");
    assert!(sim.when(B, "commit", secs(5.0)).unwrap() >= received);
    // A hands over, then gets B's table (which also ends A's own start-up hold: it started
    // alone and had no peer state yet).
    let mut expected = vec!["send state 100000 (peer restarted)"];
    expected.extend(HAND_OVER);
    expected.extend(["peer state 100000", "allow preemption"]);
    assert_trace(&sim, A, secs(5.0), &expected);
    assert!(sim.is_master(B) && !sim.is_master(A));
}

#[test]
fn preempt_wait_ends_the_hold_when_the_peers_state_never_comes() {
    let mut a = a_with(1000);
    a.priority = 100;
    let mut sim = Sim::new(a, NodeParams::new(150));
    sim.sync_link = false;
    sim.boot(A);
    sim.run_until(secs(5.0));
    sim.boot(B);
    sim.run_until(secs(14.9));
    assert!(
        sim.is_master(A) && !sim.is_master(B),
        "no preemption before preempt_wait"
    );
    sim.run_until(secs(20.0));
    let mut expected = with(
        &START,
        &[
            "warn: preempt_wait (10 s) expired without the peer's state: preemption allowed",
            "allow preemption",
            "commit",
            "committed 0",
        ],
    );
    expected.extend(TAKE_OVER.map(String::from));
    assert_trace(&sim, B, secs(5.0), &expected);
    assert!(sim.when(B, "commit", secs(5.0)).unwrap() >= secs(15.0));
    // A's own hold (it started alone) ran out at 10 s the same way.
    let mut expected = vec![
        "warn: preempt_wait (10 s) expired without the peer's state: preemption allowed",
        "allow preemption",
    ];
    expected.extend(HAND_OVER);
    assert_trace(&sim, A, secs(5.0), &expected);
}

#[test]
fn a_commit_slower_than_master_down_interval_never_holds_adverts() {
    // B's commit of A's 1,000 flows takes 10 s, far beyond Master_Down_Interval (3.6 s), and
    // commit_wait lets the effects wait for all of it.
    let mut b = NodeParams::new(100);
    b.commit_per_entry = Duration::from_millis(10);
    b.config.commit_wait = secs(30.0);
    let mut sim = pair(a_with(1000), b);
    sim.crash(A);
    sim.run_until(secs(13.0));
    // A comes back while B commits, with no sync link: nothing releases its preemption hold,
    // so only B's adverts keep it BACKUP. Held adverts would make it MASTER at ~18.6 s.
    sim.sync_link = false;
    sim.run_until(secs(15.0));
    sim.boot(A);
    sim.run_until(secs(24.0));
    let full = sim.full_trace(B, secs(10.0));
    let committed = full.iter().position(|w| w == "committed 1000").unwrap();
    assert_eq!(full[0], "commit");
    // Only adverts between the commit and its answer, both instances every second.
    assert!(
        full[1..committed].iter().all(|w| w.starts_with("advert")),
        "{full:?}"
    );
    let started = sim.when(B, "commit", secs(10.0)).unwrap();
    let answered = sim.when(B, "committed 1000", secs(10.0)).unwrap();
    assert!(answered - started >= secs(10.0));
    for vi in ["VI_1", "VI_2"] {
        let adverts = sim.adverts(B, vi, started);
        assert!(adverts[0] == started, "{adverts:?}");
        for w in adverts.windows(2) {
            assert!(w[1] - w[0] <= secs(1.0), "gap in {vi} adverts: {adverts:?}");
        }
        assert!(*adverts.last().unwrap() >= answered, "{adverts:?}");
    }
    assert_trace(
        &sim,
        B,
        secs(10.0),
        &with(&["commit", "committed 1000"], &TAKE_OVER),
    );
    assert_trace(&sim, A, secs(15.0), &START);
}

#[test]
fn commit_wait_bounds_the_hold() {
    let mut b = NodeParams::new(100);
    b.commit_per_entry = Duration::from_millis(10);
    b.config.commit_wait = secs(2.0);
    let mut sim = pair(a_with(1000), b);
    sim.crash(A);
    sim.run_until(secs(30.0));
    // The effects go after 2 s; flush external and bulk queue behind the running commit.
    let mut expected = vec![
        "commit".to_string(),
        "warn: commit still running after 2000 ms (commit_wait): announcing the addresses anyway"
            .into(),
    ];
    expected.extend(TAKE_OVER.map(String::from));
    expected.push("committed 1000".into());
    assert_trace(&sim, B, secs(10.0), &expected);
    let started = sim.when(B, "commit", secs(10.0)).unwrap();
    assert_eq!(
        sim.when(B, "add VI_1", secs(10.0)).unwrap(),
        started + secs(2.0)
    );
}

#[test]
fn a_refused_commit_is_a_warning_and_the_takeover_goes_on() {
    let mut b = NodeParams::new(100);
    b.refuse_commit = Some("conntrack replication is busy, try again".into());
    let mut sim = pair(a_with(1000), b);
    sim.crash(A);
    sim.run_until(secs(20.0));
    let expected = with(
        &[
            "commit",
            "commit refused",
            "warn: failover step `commit`: conntrack replication is busy, try again",
        ],
        &TAKE_OVER,
    );
    assert_trace(&sim, B, secs(10.0), &expected);
}

#[test]
fn warm_standby_promotion_commits_only_what_is_pending() {
    // B applies A's 5,000 flows 2,048 at a time every 3 s: at the takeover (13.6 s) two
    // chunks are in its kernel, 904 flows are not.
    let mut b = NodeParams::new(100);
    b.warm = true;
    b.warm_pause = secs(3.0);
    let mut sim = pair(a_with(5000), b);
    sim.crash(A);
    sim.run_until(secs(20.0));
    // The same command as a cold promotion: the service decides what is left to commit.
    assert_trace(
        &sim,
        B,
        secs(10.0),
        &with(&["commit", "committed 904 (4096 already warm)"], &TAKE_OVER),
    );
}

#[test]
fn failback_waits_for_the_state_then_hands_the_flows_back() {
    let mut sim = pair(a_with(1000), NodeParams::new(100));
    sim.crash(A);
    sim.run_until(secs(15.0));
    assert!(sim.is_master(B));
    sim.new_flows(B, 500);
    sim.run_until(secs(20.0));
    sim.boot(A);
    sim.run_until(secs(30.0));
    // A gets B's 1,500 flows before it may preempt, commits them, then takes over.
    let mut expected = with(&START, &["peer state 1500", "allow preemption", "commit"]);
    expected.extend(with(&["committed 1500"], &TAKE_OVER));
    expected.push("send state 1500 (resync requested)".into());
    assert_trace(&sim, A, secs(20.0), &expected);
    // B hands over and asks for A's table; it gets it twice (A's bulk, and the answer).
    let mut expected = vec!["send state 1500 (peer restarted)"];
    expected.extend(HAND_OVER);
    expected.extend(["peer state 1500", "peer state 1500"]);
    assert_trace(&sim, B, secs(20.0), &expected);
    assert!(sim.is_master(A) && !sim.is_master(B));
    assert_eq!(sim.external(B), 1500);
}

#[test]
fn both_nodes_starting_at_once() {
    let mut sim = Sim::new(a_with(0), NodeParams::new(100));
    sim.boot(A);
    sim.boot(B);
    sim.run_until(secs(20.0));
    // Each sends the other its (empty) state, so both may preempt within milliseconds; the
    // higher priority wins once, without a second transition.
    let mut expected = with(
        &START,
        &[
            "send state 0 (peer restarted)",
            "peer state 0",
            "allow preemption",
            "commit",
        ],
    );
    expected.extend(with(&["committed 0"], &TAKE_OVER));
    assert_trace(&sim, A, Duration::ZERO, &expected);
    let expected = with(
        &START,
        &[
            "send state 0 (peer restarted)",
            "peer state 0",
            "allow preemption",
            "peer state 0",
        ],
    );
    assert_trace(&sim, B, Duration::ZERO, &expected);
    assert!(sim.is_master(A) && !sim.is_master(B));
}

#[test]
fn a_peer_that_restarts_mid_bulk_counts_only_the_complete_second_bulk() {
    // A (100) is master with 100,000 flows (a bulk of ten bursts, 0.9 s); B (150) boots,
    // crashes half-way through A's bulk and boots again.
    let mut a = a_with(100_000);
    a.priority = 100;
    let mut sim = Sim::new(a, NodeParams::new(150));
    sim.boot(A);
    sim.run_until(secs(5.0));
    sim.boot(B);
    sim.run_until(secs(5.45));
    sim.crash(B);
    sim.run_until(secs(5.52));
    sim.boot(B);
    sim.run_until(secs(12.0));
    // First life: no peer state, no preemption.
    assert_trace(&sim, B, secs(5.0), &{
        let mut first = with(&START, &["crash"]);
        first.extend(with(
            &START,
            &["peer state 100000", "allow preemption", "commit"],
        ));
        first.extend(with(&["committed 100000"], &TAKE_OVER));
        first.push("send state 100000 (resync requested)".into());
        first
    });
    let received = sim.when(B, "peer state 100000", secs(5.52)).unwrap();
    assert!(received >= secs(5.52 + 0.9), "{received:?}");
    assert!(sim.when(B, "commit", secs(5.52)).unwrap() >= received);
    // A started over for the restarted peer.
    let mut expected = vec![
        "send state 100000 (peer restarted)",
        "send state 100000 (peer restarted)",
    ];
    expected.extend(HAND_OVER);
    expected.extend([
        "warn: preempt_wait (10 s) expired without the peer's state: preemption allowed",
        "allow preemption",
        "peer state 100000",
    ]);
    assert_trace(&sim, A, secs(5.0), &expected);
    assert!(sim.is_master(B));
}

#[test]
fn a_graceful_stop_hands_over_within_skew_time() {
    let mut sim = pair(a_with(1000), NodeParams::new(100));
    sim.run_until(secs(10.5));
    sim.stop(A);
    sim.run_until(secs(12.0));
    // A's shutdown: priority-0 adverts, addresses off, no replication step (it is stopping).
    assert_eq!(
        sim.full_trace(A, secs(10.5)),
        [
            "advert VI_1",
            "remove VI_1",
            "VI_1 STOP",
            "advert VI_2",
            "remove VI_2",
            "VI_2 STOP",
            "G STOP",
        ]
    );
    assert_trace(
        &sim,
        B,
        secs(10.5),
        &with(&["commit", "committed 1000"], &TAKE_OVER),
    );
    // Skew_Time of priority 100 at a 1 s interval is 0.61 s.
    let took = sim.when(B, "commit", secs(10.5)).unwrap() - secs(10.5);
    assert!(took < secs(0.7), "{took:?}");
}

#[test]
fn stopping_during_a_held_commit_lets_the_held_effects_go_first() {
    let mut b = NodeParams::new(100);
    b.commit_per_entry = Duration::from_millis(10);
    b.config.commit_wait = secs(30.0);
    let mut sim = pair(a_with(1000), b);
    sim.crash(A);
    sim.run_until(secs(15.0));
    sim.stop(B);
    // The takeover's effects, then the shutdown's, which undo them.
    let mut expected = vec![
        "commit".to_string(),
        "warn: stopping while the commit still runs (1389 ms): carrying out the held effects first"
            .into(),
    ];
    expected.extend(TAKE_OVER.map(String::from));
    expected.extend(
        [
            "remove VI_1",
            "VI_1 STOP",
            "remove VI_2",
            "VI_2 STOP",
            "G STOP",
        ]
        .map(String::from),
    );
    assert_trace(&sim, B, secs(10.0), &expected);
}
