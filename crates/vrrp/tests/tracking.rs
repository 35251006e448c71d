//! Health tracking on a simulated LAN: scripts and files move priorities or force FAULT with
//! keepalived's rules, sync groups carry it to their members, and every transition names the
//! tracker that caused it.

mod sim;

use std::time::Duration;

use sim::{config, Sim};
use tandem_vrrp::{
    Cause, Input, Router, State, TrackerKind, TrackerState, Tracking, PRIORITY_OWNER,
};

const SECOND: Duration = Duration::from_secs(1);

/// The single tracker every test router has: script `chk` (id 0).
const CHK: usize = 0;

fn script(router: &mut Router, state: TrackerState) -> usize {
    router.add_tracker("chk", TrackerKind::Script, state)
}

fn weighted(weight: i32, reverse: bool) -> Tracking {
    Tracking {
        tracker: CHK,
        weight,
        reverse,
    }
}

/// Script `chk` reports `state`.
fn chk(state: TrackerState) -> Input<'static> {
    Input::Tracker {
        tracker: CHK,
        state,
    }
}

/// Follows `chk` with weight 0 before its first result: held in INIT until it answers.
fn weight_zero_pending(r: &mut Router) {
    script(r, TrackerState::Pending);
    r.track(0, weighted(0, false));
}

/// The transitions of `node` so far: (node, instance, state entered, cause).
fn transitions_of(sim: &Sim, node: usize) -> Vec<(usize, usize, State, Cause)> {
    sim.causes.iter().filter(|c| c.0 == node).copied().collect()
}

/// Node 0 (priority 150, following `chk` as `setup` says) and node 1 (priority 100), started.
fn pair(setup: fn(&mut Router)) -> Sim {
    let mut sim = Sim::new(7);
    let a = sim.add(config(0, 150));
    let b = sim.add(config(1, 100));
    sim.nodes[a].setup = Some(setup);
    sim.start_node(a);
    sim.start_node(b);
    sim
}

#[test]
fn a_failing_script_with_a_negative_weight_hands_over_and_back() {
    let mut sim = pair(|r| {
        script(r, TrackerState::Up);
        r.track(0, weighted(-60, false));
    });
    sim.run(5 * SECOND);
    assert_eq!(sim.masters(0), vec![0]);

    sim.input(0, chk(TrackerState::Down));
    assert_eq!(sim.nodes[0].router.instance(0).priority(), 90);
    assert_eq!(
        sim.priority_changes.last(),
        Some(&(0, 0, 150, 90, Cause::Tracker(CHK)))
    );
    assert_eq!(
        sim.nodes[0].router.explain(Cause::Tracker(CHK)),
        "script `chk` is down"
    );
    sim.run(5 * SECOND);
    assert_eq!(
        sim.masters(0),
        vec![1],
        "the peer preempts the lowered master"
    );
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Backup);

    sim.input(0, chk(TrackerState::Up));
    assert_eq!(sim.nodes[0].router.instance(0).priority(), 150);
    sim.run(5 * SECOND);
    assert_eq!(sim.masters(0), vec![0], "back on recovery");
}

#[test]
fn weight_zero_holds_init_from_start_until_the_first_result_like_keepalived() {
    let mut sim = pair(weight_zero_pending);
    // No FAULT (and so no notify) while the script has not answered: INIT, as keepalived.
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Init);
    assert!(sim.nodes[0].router.instance(0).held_in_init());
    assert!(sim.causes.iter().all(|c| c.0 != 0), "{:?}", sim.causes);
    sim.run(5 * SECOND);
    assert_eq!(sim.masters(0), vec![1]);
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Init);

    sim.input(0, chk(TrackerState::Up));
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Backup);
    assert_eq!(
        sim.causes.iter().find(|c| c.0 == 0),
        Some(&(0, 0, State::Backup, Cause::Tracker(CHK)))
    );
    sim.run(5 * SECOND);
    assert_eq!(sim.masters(0), vec![0]);

    sim.input(0, chk(TrackerState::Down));
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Fault);
    assert_eq!(
        sim.causes.last(),
        Some(&(0, 0, State::Fault, Cause::Tracker(CHK)))
    );
    // Priority 0 on the way out: the peer takes over after its skew time, not 3 intervals.
    let before = sim.elapsed();
    sim.run(SECOND);
    assert_eq!(sim.masters(0), vec![1]);
    let took = sim.entered(1, 0, State::Master).unwrap() - before;
    assert!(took < SECOND, "{took:?}");
}

#[test]
fn a_weight_zero_script_failing_its_first_run_means_fault_from_init() {
    let mut sim = pair(weight_zero_pending);
    sim.input(0, chk(TrackerState::Down));
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Fault);
    assert_eq!(
        sim.causes.iter().find(|c| c.0 == 0),
        Some(&(0, 0, State::Fault, Cause::Tracker(CHK)))
    );
    assert!(!sim.nodes[0].router.instance(0).held_in_init());
}

#[test]
fn reverse_flips_what_a_script_does() {
    let mut sim = pair(|r| {
        script(r, TrackerState::Down);
        r.track(0, weighted(0, true));
    });
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Backup);
    sim.input(0, chk(TrackerState::Up));
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Fault);

    let mut r = Router::new();
    let id = r.add_instance(config(0, 100), 0, &[0]);
    script(&mut r, TrackerState::Up);
    r.track(id, weighted(20, true));
    assert_eq!(r.instance(id).priority(), 80);
}

#[test]
fn a_file_adds_weight_times_value_clamped_and_faults_at_minus_254() {
    let mut r = Router::new();
    let id = r.add_instance(config(0, 200), 0, &[0]);
    let f = r.add_tracker("f", TrackerKind::File, TrackerState::Value(3));
    r.track(
        id,
        Tracking {
            tracker: f,
            weight: 10,
            reverse: false,
        },
    );
    let now = std::time::Instant::now();
    r.handle(now, Input::Start);
    assert_eq!(r.instance(id).priority(), 230);
    let set = |r: &mut Router, v| {
        r.handle(
            now,
            Input::Tracker {
                tracker: f,
                state: TrackerState::Value(v),
            },
        )
    };
    set(&mut r, 100);
    assert_eq!(r.instance(id).priority(), 254, "kept within 1..=254");
    set(&mut r, -25);
    assert_eq!(r.instance(id).priority(), 1);
    assert_eq!(r.instance(id).state(), State::Backup);
    set(&mut r, -26);
    assert_eq!(r.instance(id).state(), State::Fault, "-260 is past -254");
    assert_eq!(r.explain(Cause::Tracker(f)), "tracked file `f` holds -26");
    set(&mut r, 0);
    assert_eq!(r.instance(id).state(), State::Backup);
    assert_eq!(r.instance(id).priority(), 200);

    // Weight 0: any value but 0 is FAULT.
    let mut r = Router::new();
    let id = r.add_instance(config(0, 100), 0, &[0]);
    let f = r.add_tracker("f", TrackerKind::File, TrackerState::Value(0));
    r.track(
        id,
        Tracking {
            tracker: f,
            weight: 0,
            reverse: false,
        },
    );
    r.handle(now, Input::Start);
    assert_eq!(r.instance(id).state(), State::Backup);
    set(&mut r, 1);
    assert_eq!(r.instance(id).state(), State::Fault);
}

#[test]
fn an_address_owner_keeps_255() {
    let mut r = Router::new();
    let id = r.add_instance(config(0, PRIORITY_OWNER), 0, &[0]);
    script(&mut r, TrackerState::Down);
    r.track(id, weighted(-50, false));
    r.handle(std::time::Instant::now(), Input::Start);
    assert_eq!(r.instance(id).priority(), PRIORITY_OWNER);
    assert_eq!(r.instance(id).state(), State::Master);
}

#[test]
fn a_sync_group_tracker_reaches_every_member_and_one_members_fault_takes_the_group() {
    let mut sim = Sim::new(3);
    let a = sim.add_node(
        vec![(config(0, 150), 0), (sim::config_on(1, 0, 150), 1)],
        vec![vec![0, 1]],
    );
    let b = sim.add_node(
        vec![(config(1, 100), 0), (sim::config_on(1, 1, 100), 1)],
        vec![vec![0, 1]],
    );
    sim.nodes[a].setup = Some(|r| {
        script(r, TrackerState::Up);
        r.track_group(0, weighted(0, false));
        let own = r.add_tracker("own", TrackerKind::Script, TrackerState::Up);
        r.track(
            1,
            Tracking {
                tracker: own,
                weight: 0,
                reverse: false,
            },
        );
    });
    sim.start_node(a);
    sim.start_node(b);
    sim.run(5 * SECOND);
    assert_eq!((sim.masters(0), sim.masters(1)), (vec![0], vec![0]));
    let status = sim.nodes[a].router.tracking_of(0);
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].group, Some(0));

    // The group's tracker: both members FAULT, each naming the script.
    sim.input(a, chk(TrackerState::Down));
    let router = &sim.nodes[a].router;
    assert_eq!(router.instance(0).state(), State::Fault);
    assert_eq!(router.instance(1).state(), State::Fault);
    assert_eq!(router.group_state(0), State::Fault);
    sim.run(5 * SECOND);
    assert_eq!((sim.masters(0), sim.masters(1)), (vec![1], vec![1]));
    sim.input(a, chk(TrackerState::Up));
    sim.run(5 * SECOND);
    assert_eq!((sim.masters(0), sim.masters(1)), (vec![0], vec![0]));

    // One member's own tracker: the other member follows it to FAULT.
    let causes = sim.causes.len();
    sim.input(
        a,
        Input::Tracker {
            tracker: 1,
            state: TrackerState::Down,
        },
    );
    let router = &sim.nodes[a].router;
    assert_eq!(router.instance(0).state(), State::Fault);
    assert_eq!(router.instance(1).state(), State::Fault);
    let new = &sim.causes[causes..];
    assert!(
        new.contains(&(a, 1, State::Fault, Cause::Tracker(1))),
        "{new:?}"
    );
    assert!(
        new.contains(&(a, 0, State::Fault, Cause::SyncGroup)),
        "{new:?}"
    );
}

#[test]
fn a_reload_keeps_tracker_states_and_retrack_releases_a_removed_trackers_fault() {
    let mut sim = pair(|r| {
        script(r, TrackerState::Down);
        r.track(0, weighted(0, false));
    });
    sim.run(5 * SECOND);
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Fault);

    // Same configuration, tracker carried with its state: still FAULT, no transition.
    let transitions = sim.causes.len();
    let mut next = Router::new();
    next.add_instance(config(0, 150), 0, &[0]);
    script(&mut next, TrackerState::Down);
    next.track(0, weighted(0, false));
    let carried = next.carry_over(&sim.nodes[0].router);
    assert_eq!(carried.kept, vec![(0, 0)]);
    sim.nodes[0].router = next;
    sim.input(0, Input::Retrack);
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Fault);
    assert_eq!(sim.causes.len(), transitions);

    // The tracker is gone from the configuration: FAULT is released.
    let mut next = Router::new();
    next.add_instance(config(0, 150), 0, &[0]);
    next.carry_over(&sim.nodes[0].router);
    sim.nodes[0].router = next;
    sim.input(0, Input::Retrack);
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Backup);
    sim.run(5 * SECOND);
    assert_eq!(sim.masters(0), vec![0]);
}

/// Node `a` (priority 100, group of instances 0 and 1, instance 0 following `chk` with weight
/// 0 from `setup`) and node `b` (priority 150, the same group), both started.
fn group_pair(setup: fn(&mut Router)) -> (Sim, usize, usize) {
    let mut sim = Sim::new(11);
    let b = sim.add_node(
        vec![(config(1, 150), 0), (sim::config_on(0, 1, 150), 0)],
        vec![vec![0, 1]],
    );
    let a = sim.add_node(
        vec![(config(0, 100), 0), (sim::config_on(0, 0, 100), 0)],
        vec![vec![0, 1]],
    );
    sim.nodes[a].setup = Some(setup);
    sim.start_node(b);
    sim.start_node(a);
    (sim, a, b)
}

#[test]
fn a_sync_group_waits_in_init_for_a_members_first_script_result_like_keepalived() {
    let (mut sim, a, _) = group_pair(weight_zero_pending);
    // The other member waits too, and nothing is reported (keepalived's group in INIT).
    let router = &sim.nodes[a].router;
    assert_eq!(router.instance(0).state(), State::Init);
    assert_eq!(router.instance(1).state(), State::Init);
    assert_eq!(router.group_state(0), State::Init);
    assert!(sim.causes.iter().all(|c| c.0 != a), "{:?}", sim.causes);

    sim.input(a, chk(TrackerState::Up));
    // The script's member first, then the group's other member.
    assert_eq!(
        transitions_of(&sim, a),
        vec![
            (a, 0, State::Backup, Cause::Tracker(CHK)),
            (a, 1, State::Backup, Cause::SyncGroup)
        ]
    );
    assert_eq!(sim.nodes[a].router.group_state(0), State::Backup);
}

#[test]
fn a_first_script_failure_takes_the_waiting_group_to_fault() {
    let (mut sim, a, _) = group_pair(weight_zero_pending);
    sim.input(a, chk(TrackerState::Down));
    assert_eq!(
        transitions_of(&sim, a),
        vec![
            (a, 0, State::Fault, Cause::Tracker(CHK)),
            (a, 1, State::Fault, Cause::SyncGroup)
        ]
    );
    assert_eq!(sim.nodes[a].router.group_state(0), State::Fault);
}

#[test]
fn the_member_that_completes_a_groups_readiness_becomes_master_first_like_keepalived() {
    let (mut sim, a, b) = group_pair(|_| {});
    sim.run(5 * SECOND);
    assert_eq!(sim.nodes[a].router.group_state(0), State::Backup);
    let before = sim.causes.len();
    // Node b goes away: the member whose master-down timer runs out last completes the
    // group's readiness and becomes MASTER by itself; the other follows.
    sim.stop(b);
    sim.run(5 * SECOND);
    let masters: Vec<_> = sim.causes[before..]
        .iter()
        .filter(|c| c.0 == a && c.2 == State::Master)
        .map(|c| (c.1, c.3))
        .collect();
    assert_eq!(masters.len(), 2, "{masters:?}");
    assert_eq!(masters[0].1, Cause::MasterDown, "{masters:?}");
    assert_eq!(masters[1].1, Cause::SyncGroup, "{masters:?}");
}
