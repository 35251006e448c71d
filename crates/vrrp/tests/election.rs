//! RFC 5798 behaviour in a simulated network, with keepalived's extensions.

mod sim;

use std::time::Duration;

use sim::{config, config_on, Sim};
use tandem_vrrp::{Instance, InstanceAction, State};

const S: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn higher_priority_holds_the_addresses() {
    let mut sim = Sim::new(1);
    let a = sim.add(config(0, 100));
    let b = sim.add(config(1, 200));
    sim.start_node(a);
    sim.start_node(b);
    sim.run(5 * S);
    assert_eq!(sim.holders(0), vec![b]);
    sim.run_checking(60 * S, |s| assert_eq!(s.holders(0), vec![b]));
}

#[test]
fn backup_takes_over_after_master_down_interval_on_crash() {
    let mut sim = Sim::new(2);
    let a = sim.add(config(0, 200));
    let b = sim.add(config(1, 100));
    sim.start_node(a);
    sim.start_node(b);
    // Adverts fall on whole intervals from the start: crash between two, not as one leaves.
    sim.run(10 * S + ms(300));
    assert_eq!(sim.masters(0), vec![a]);
    let crash_at = sim.elapsed();
    sim.crash(a);
    sim.run(5 * S);
    assert_eq!(sim.masters(0), vec![b]);
    let took = sim.entered(b, 0, State::Master).unwrap() - crash_at;
    // Master_Down_Interval = 3 s + (256-100)/256 s ≈ 3.609 s, minus up to one interval already elapsed.
    let down = sim.nodes[b].router.instance(0).master_down_interval();
    assert_eq!(down, ms(3000) + Duration::from_secs(156) / 256);
    assert!(took <= down, "took {took:?}");
    assert!(took > down - S, "took {took:?}");
}

#[test]
fn priority_zero_hands_over_after_skew_time() {
    let mut sim = Sim::new(3);
    let a = sim.add(config(0, 200));
    let b = sim.add(config(1, 100));
    sim.start_node(a);
    sim.start_node(b);
    sim.run(10 * S);
    let stop_at = sim.elapsed();
    sim.stop(a);
    sim.run(2 * S);
    assert_eq!(sim.masters(0), vec![b]);
    let took = sim.entered(b, 0, State::Master).unwrap() - stop_at;
    let skew = Duration::from_secs(156) / 256;
    assert!(took <= skew + ms(1), "took {took:?}, skew {skew:?}");
}

#[test]
fn restarted_higher_priority_preempts_back() {
    let mut sim = Sim::new(4);
    let a = sim.add(config(0, 200));
    let b = sim.add(config(1, 100));
    sim.start_node(a);
    sim.start_node(b);
    sim.run(10 * S);
    sim.crash(a);
    sim.run(5 * S);
    assert_eq!(sim.masters(0), vec![b]);
    sim.start_node(a);
    sim.run(5 * S);
    assert_eq!(sim.masters(0), vec![a]);
    assert_eq!(sim.holders(0), vec![a]);
}

#[test]
fn nopreempt_holds() {
    let mut sim = Sim::new(5);
    let mut high = config(0, 200);
    high.preempt = false;
    let a = sim.add(high);
    let b = sim.add(config(1, 100));
    sim.start_node(b);
    sim.run(10 * S);
    assert_eq!(sim.masters(0), vec![b]);
    sim.start_node(a);
    sim.run_checking(60 * S, |s| assert_eq!(s.holders(0), vec![b]));
}

#[test]
fn preempt_delay_is_honoured() {
    let mut sim = Sim::new(6);
    let mut high = config(0, 200);
    high.preempt_delay = 15 * S;
    let a = sim.add(high);
    let b = sim.add(config(1, 100));
    sim.start_node(b);
    sim.run(10 * S);
    let started = sim.elapsed();
    sim.start_node(a);
    sim.run_checking(14 * S, |s| assert_eq!(s.holders(0), vec![b]));
    sim.run(6 * S);
    assert_eq!(sim.masters(0), vec![a]);
    let took = sim.entered(a, 0, State::Master).unwrap() - started;
    assert!(took >= 15 * S && took < 15 * S + 4 * S, "took {took:?}");
}

#[test]
fn equal_priority_tie_breaks_on_the_higher_address() {
    // Both start together, both time out together, both claim: the lower address yields.
    for seed in 0..20 {
        let mut sim = Sim::new(seed);
        let a = sim.add(config(0, 100));
        let b = sim.add(config(1, 100));
        sim.start_node(a);
        sim.start_node(b);
        sim.run(10 * S);
        assert_eq!(sim.masters(0), vec![b], "seed {seed}");
        assert_eq!(sim.holders(0), vec![b], "seed {seed}");
    }
}

#[test]
fn owner_becomes_master_at_once() {
    let mut sim = Sim::new(7);
    let b = sim.add(config(1, 100));
    let a = sim.add(config(0, 255));
    sim.start_node(b);
    sim.run(10 * S);
    let t = sim.elapsed();
    sim.start_node(a);
    assert_eq!(sim.entered(a, 0, State::Master), Some(t));
    sim.run(S);
    assert_eq!(sim.holders(0), vec![a]);
}

#[test]
fn state_master_hint_claims_after_skew_time_only() {
    let mut sim = Sim::new(8);
    let mut hinted = config(0, 100);
    hinted.start_as_master = true;
    let a = sim.add(hinted);
    sim.start_node(a);
    sim.run(5 * S);
    let t = sim.entered(a, 0, State::Master).unwrap();
    assert!(t <= S, "took {t:?}");
}

#[test]
fn hint_yields_to_a_higher_priority_master() {
    let mut sim = Sim::new(9);
    let mut hinted = config(0, 100);
    hinted.start_as_master = true;
    let a = sim.add(hinted);
    let b = sim.add(config(1, 200));
    sim.start_node(b);
    sim.run(10 * S);
    sim.start_node(a);
    sim.run(3 * S);
    assert_eq!(sim.masters(0), vec![b]);
    sim.run_checking(20 * S, |s| assert_eq!(s.holders(0), vec![b]));
}

#[test]
fn v3_backup_learns_the_masters_interval() {
    let mut sim = Sim::new(10);
    let mut fast = config(0, 200);
    fast.advert_interval = ms(100);
    let a = sim.add(fast);
    let b = sim.add(config(1, 100));
    sim.start_node(a);
    sim.start_node(b);
    sim.run(5 * S + ms(37));
    let backup = sim.nodes[b].router.instance(0);
    assert_eq!(backup.master_adver_interval(), ms(100));
    let crash_at = sim.elapsed();
    sim.crash(a);
    sim.run(2 * S);
    let took = sim.entered(b, 0, State::Master).unwrap() - crash_at;
    assert!(took <= ms(361), "took {took:?}");
}

#[test]
fn lost_adverts_below_three_in_a_row_do_not_cause_takeover() {
    let mut sim = Sim::new(11);
    let a = sim.add(config(0, 200));
    let b = sim.add(config(1, 100));
    sim.start_node(a);
    sim.start_node(b);
    sim.run(10 * S);
    sim.partition(a, b, true);
    sim.run(ms(1500)); // at most two adverts lost
    sim.partition(a, b, false);
    sim.run_checking(30 * S, |s| assert_eq!(s.holders(0), vec![a]));
}

#[test]
fn partition_heals_to_one_master() {
    let mut sim = Sim::new(12);
    let a = sim.add(config(0, 200));
    let b = sim.add(config(1, 100));
    sim.start_node(a);
    sim.start_node(b);
    sim.run(10 * S);
    sim.partition(a, b, true);
    sim.run(10 * S);
    assert_eq!(sim.masters(0), vec![a, b]);
    sim.partition(a, b, false);
    sim.run(2 * S);
    sim.run_checking(30 * S, |s| assert_eq!(s.holders(0), vec![a]));
}

#[test]
fn sync_group_moves_together_on_link_failure() {
    let mut sim = Sim::new(13);
    let group = vec![vec![0, 1]];
    let a = sim.add_node(
        vec![(config_on(0, 0, 200), 0), (config_on(1, 0, 200), 1)],
        group.clone(),
    );
    let b = sim.add_node(
        vec![(config_on(0, 1, 100), 0), (config_on(1, 1, 100), 1)],
        group,
    );
    sim.start_node(a);
    sim.start_node(b);
    sim.run(10 * S);
    assert_eq!((sim.holders(0), sim.holders(1)), (vec![a], vec![a]));
    sim.set_link(a, 1, false);
    assert_eq!(sim.nodes[a].router.instance(1).state(), State::Fault);
    assert_eq!(sim.nodes[a].router.instance(0).state(), State::Fault);
    sim.run(5 * S);
    assert_eq!((sim.holders(0), sim.holders(1)), (vec![b], vec![b]));
    sim.run_checking(20 * S, |s| {
        assert_eq!((s.holders(0), s.holders(1)), (vec![b], vec![b]))
    });
    sim.set_link(a, 1, true);
    sim.run(10 * S);
    assert_eq!((sim.holders(0), sim.holders(1)), (vec![a], vec![a]));
}

#[test]
fn sync_group_never_splits_when_one_member_still_hears_the_master() {
    // Only LAN 1 between the nodes is cut (not the master's link): the backup's LAN-1 member
    // stops hearing adverts but its LAN-0 member still does, so the group must not go master.
    let mut sim = Sim::new(14);
    let group = vec![vec![0, 1]];
    let a = sim.add_node(
        vec![(config_on(0, 0, 200), 0), (config_on(1, 0, 200), 1)],
        group.clone(),
    );
    let b = sim.add_node(
        vec![(config_on(0, 1, 100), 0), (config_on(1, 1, 100), 1)],
        group,
    );
    sim.start_node(a);
    sim.start_node(b);
    sim.run(10 * S);
    sim.links_down.insert((b, 1)); // silently deaf on LAN 1, no link event
    sim.run_checking(20 * S, |s| {
        assert_eq!((s.holders(0), s.holders(1)), (vec![a], vec![a]))
    });
}

#[test]
fn replication_hold_delays_preemption_until_released() {
    let mut sim = Sim::new(15);
    let a = sim.add(config(0, 200));
    let b = sim.add(config(1, 100));
    sim.start_node(b);
    sim.run(10 * S);
    sim.start_node(a);
    let until = sim.now + 60 * S;
    sim.nodes[a]
        .router
        .handle(sim.now, tandem_vrrp::Input::HoldPreemption(Some(until)));
    sim.run_checking(20 * S, |s| assert_eq!(s.holders(0), vec![b]));
    // The bulk update arrived: the hold is released and a preempts as usual.
    let released = sim.elapsed();
    sim.nodes[a]
        .router
        .handle(sim.now, tandem_vrrp::Input::HoldPreemption(None));
    sim.run(5 * S);
    assert_eq!(sim.holders(0), vec![a]);
    let took = sim.entered(a, 0, State::Master).unwrap() - released;
    assert!(
        took <= sim.nodes[a].router.instance(0).master_down_interval(),
        "took {took:?}"
    );
}

#[test]
fn replication_hold_does_not_stop_a_takeover_from_a_dead_master() {
    let mut sim = Sim::new(16);
    let a = sim.add(config(0, 200));
    let b = sim.add(config(1, 100));
    sim.start_node(b);
    sim.run(10 * S);
    sim.start_node(a);
    let until = sim.now + 60 * S;
    sim.nodes[a]
        .router
        .handle(sim.now, tandem_vrrp::Input::HoldPreemption(Some(until)));
    sim.run(5 * S);
    sim.crash(b);
    sim.run(5 * S);
    assert_eq!(sim.holders(0), vec![a]);
}

#[test]
fn a_master_hearing_a_lower_priority_master_answers_and_announces_again() {
    use tandem_vrrp::{Advertisement, Auth, Instance, InstanceAction, Version};
    let start = std::time::Instant::now();
    let mut a = Instance::new(config(0, 200));
    a.start(start);
    let mut now = start;
    while a.state() != State::Master {
        now = a.next_deadline().expect("a backup has a timer");
        a.handle_timers(now);
    }
    // b, lower priority, claimed the addresses (its gratuitous ARPs pointed the neighbours'
    // caches at its MAC) before it heard a.
    let from_b = Advertisement {
        version: Version::V3,
        vrid: 51,
        priority: 100,
        interval_cs: 100,
        addresses: vec!["10.0.0.254".parse().unwrap()],
        auth: Auth::None,
    };
    let actions = a.process_advert(now, sim::address(0, 1), &from_b);
    assert_eq!(a.state(), State::Master);
    assert!(actions
        .iter()
        .any(|x| matches!(x, InstanceAction::Send { .. })));
    assert!(actions
        .iter()
        .any(|x| matches!(x, InstanceAction::SendGratuitousLowerPriority)));
}

#[test]
fn one_routers_masters_advertise_at_the_same_instants() {
    // Two instances of one router become master 0.3 s and 0.77 s after the start. After the
    // first cycle (between a quarter and five quarters of an interval) both advertise on
    // whole intervals from the start, exactly one interval apart.
    let t0 = std::time::Instant::now();
    let sends = |became_master: Duration| {
        let mut instance = Instance::new(config(0, 100));
        instance.start(t0);
        let first = instance.force_master(t0 + became_master);
        assert!(first
            .iter()
            .any(|a| matches!(a, InstanceAction::Send { .. })));
        let mut sent = Vec::new();
        while let Some(t) = instance.next_deadline().filter(|t| *t <= t0 + 6 * S) {
            let actions = instance.handle_timers(t);
            if actions
                .iter()
                .any(|a| matches!(a, InstanceAction::Send { .. }))
            {
                sent.push(t - t0);
            }
        }
        sent
    };
    let early = sends(ms(300));
    let late = sends(ms(770));
    assert_eq!(early, vec![S, 2 * S, 3 * S, 4 * S, 5 * S, 6 * S]);
    // 0.23 s to the next whole second is under a quarter interval: that point is skipped.
    assert_eq!(late, vec![2 * S, 3 * S, 4 * S, 5 * S, 6 * S]);
}

#[test]
fn a_weighted_link_going_down_hands_mastership_over_and_back() {
    let mut sim = Sim::new(11);
    sim.add(config(0, 200));
    sim.add(config(1, 100));
    // Node 0's uplink (link 9) weighs -150: down, its priority is 50, below node 1's 100.
    sim.nodes[0].weights.push((0, 9, -150));
    sim.start_node(0);
    sim.start_node(1);
    sim.run(Duration::from_secs(5));
    assert_eq!(sim.masters(0), vec![0]);
    sim.set_link(0, 9, false);
    assert_eq!(sim.nodes[0].router.instance(0).priority(), 50);
    sim.run(Duration::from_secs(5));
    assert_eq!(
        sim.masters(0),
        vec![1],
        "node 1 preempted the weakened master"
    );
    sim.set_link(0, 9, true);
    assert_eq!(sim.nodes[0].router.instance(0).priority(), 200);
    sim.run(Duration::from_secs(5));
    assert_eq!(sim.masters(0), vec![0], "node 0 preempted back");
    // Node 0 never went to FAULT: a weighted link only moves the priority.
    assert!(!sim
        .log
        .iter()
        .any(|&(_, n, _, _, to)| n == 0 && to == State::Fault));
}

#[test]
fn positive_weights_count_while_up_and_the_result_stays_in_range() {
    let mut router = tandem_vrrp::Router::new();
    let id = router.add_instance(config(0, 250), 0, &[0]);
    router.track_weighted(id, 1, 20);
    assert_eq!(router.instance(id).priority(), 254, "250 + 20 clamped");
    let now = std::time::Instant::now();
    router.handle(now, tandem_vrrp::Input::LinkDown(1));
    assert_eq!(router.instance(id).priority(), 250);
    let low = router.add_instance(config(1, 10), 0, &[0]);
    router.track_weighted(low, 1, -50);
    assert_eq!(router.instance(low).priority(), 1, "10 - 50 clamped");
}
