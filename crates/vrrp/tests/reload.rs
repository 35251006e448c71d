//! Re-reading the configuration (SIGHUP): what did not change keeps running untouched, what
//! was removed stops gracefully, what was added starts.

mod sim;

use std::time::Duration;

use sim::*;
use tandem_vrrp::State;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Two nodes, node 0 (priority 200) master of VI_0 on LAN 0.
fn pair() -> Sim {
    let mut sim = Sim::new(7);
    // A fixed delay: the LAN keeps the order in which a node sends.
    sim.delay = (Duration::from_micros(200), Duration::from_micros(200));
    sim.add(config(0, 200));
    sim.add(config(1, 100));
    sim.start_node(0);
    sim.start_node(1);
    sim.run(Duration::from_secs(5));
    assert_eq!(sim.masters(0), vec![0]);
    sim
}

/// Largest gap between consecutive adverts of `node`'s instance `name` after `from`.
fn largest_gap(sim: &Sim, node: usize, name: &str, from: Duration) -> Duration {
    let times: Vec<Duration> = (sim.adverts.iter())
        .filter(|(t, n, i)| *n == node && i == name && *t >= from)
        .map(|(t, _, _)| *t)
        .collect();
    assert!(times.len() > 3, "too few adverts: {times:?}");
    times.windows(2).map(|w| w[1] - w[0]).max().unwrap()
}

#[test]
fn unchanged_configuration_keeps_the_master_without_a_gap_or_transition() {
    let mut sim = pair();
    let transitions = sim.log.len();
    let before = sim.elapsed();
    let carried = sim.reload(0, vec![(config(0, 200), 0)], vec![]);
    assert_eq!(carried.kept, vec![(0, 0)]);
    assert!(carried.stopped.is_empty() && carried.started.is_empty());
    sim.run(Duration::from_secs(5));
    assert_eq!(sim.log.len(), transitions, "no transition anywhere");
    assert_eq!(sim.masters(0), vec![0]);
    assert!(sim.nodes[0].holds[0]);
    let gap = largest_gap(&sim, 0, "VI_0", before - Duration::from_secs(2));
    assert!(
        gap <= ms(1001),
        "adverts kept their rhythm: largest gap {gap:?}"
    );
}

#[test]
fn removed_instance_stops_with_priority_zero_and_the_peer_takes_over_in_skew_time() {
    let mut sim = pair();
    let removed_at = sim.elapsed();
    let carried = sim.reload(0, vec![], vec![]);
    assert_eq!(carried.stopped, vec![0]);
    assert!(!sim.nodes[0].holds.iter().any(|h| *h));
    sim.run(Duration::from_secs(3));
    let took = sim.entered(1, 0, State::Master).expect("peer took over") - removed_at;
    // Skew_Time of priority 100 at 1 s is 609 ms.
    assert!(took < ms(700), "took {took:?}");
}

#[test]
fn added_instance_starts_on_the_running_advert_grid() {
    let mut sim = pair();
    let mut second = config_on(1, 0, 200);
    second.name = "VI_1".into();
    sim.reload(0, vec![(config(0, 200), 0), (second, 1)], vec![]);
    sim.run(Duration::from_secs(6));
    assert_eq!(sim.nodes[0].router.instance(1).state(), State::Master);
    assert_eq!(sim.nodes[0].router.instance(0).state(), State::Master);
    // Both instances now advertise at the same instants.
    let last = |name: &str| {
        (sim.adverts.iter().rev())
            .find(|(_, n, i)| *n == 0 && i == name)
            .unwrap()
            .0
    };
    assert_eq!(last("VI_0"), last("VI_1"));
}

#[test]
fn a_changed_priority_runs_on_without_a_transition() {
    let mut sim = pair();
    let transitions = sim.log.len();
    let carried = sim.reload(0, vec![(config(0, 150), 0)], vec![]);
    assert_eq!(
        (carried.kept.clone(), carried.changed),
        (vec![(0, 0)], vec![(0, 0)])
    );
    assert!(carried.stopped.is_empty() && carried.started.is_empty());
    assert_eq!(sim.nodes[0].router.instance(0).priority(), 150);
    sim.run(Duration::from_secs(5));
    assert_eq!(sim.log.len(), transitions, "no transition anywhere");
    assert_eq!(sim.masters(0), vec![0]);
}

#[test]
fn a_lower_priority_than_the_peer_hands_over_by_preemption() {
    let mut sim = pair();
    // Node 0 drops below node 1 (100): node 1 preempts when it hears the lower priority.
    sim.reload(0, vec![(config(0, 50), 0)], vec![]);
    sim.run(Duration::from_secs(6));
    assert_eq!(sim.masters(0), vec![1]);
}

#[test]
fn another_vrid_is_another_router_stopped_and_started() {
    let mut sim = pair();
    let mut other = config(0, 200);
    other.vrid = 52;
    let carried = sim.reload(0, vec![(other, 0)], vec![]);
    assert_eq!((carried.stopped, carried.started), (vec![0], vec![0]));
    let tail: Vec<(State, State)> = (sim.log.iter().rev().take(2).rev())
        .map(|&(_, _, _, from, to)| (from, to))
        .collect();
    assert_eq!(
        tail,
        vec![(State::Master, State::Stop), (State::Init, State::Backup)]
    );
}

#[test]
fn an_instance_added_during_a_preemption_hold_is_held_too() {
    use tandem_vrrp::Input;
    let mut sim = Sim::new(9);
    sim.delay = (Duration::from_micros(200), Duration::from_micros(200));
    let mut second = config_on(1, 0, 200);
    second.name = "VI_1".into();
    sim.add_node(vec![(config(0, 200), 0), (second, 1)], vec![]);
    sim.add(config(1, 100));
    sim.start_node(0);
    sim.start_node(1);
    sim.run(Duration::from_secs(5));
    // Node 1 waits for its peer's replicated state for 20 s.
    let until = sim.now + Duration::from_secs(20);
    sim.nodes[1]
        .router
        .handle(sim.now, Input::HoldPreemption(Some(until)));
    // It gains VI_1 with a higher priority than node 0's running master.
    let mut higher = config_on(1, 1, 250);
    higher.name = "VI_1".into();
    sim.reload(1, vec![(config(1, 100), 0), (higher, 1)], vec![]);
    sim.run(Duration::from_secs(10));
    assert_eq!(
        sim.nodes[1].router.instance(1).state(),
        State::Backup,
        "preempted during the hold"
    );
    sim.run(Duration::from_secs(15));
    assert_eq!(sim.nodes[1].router.instance(1).state(), State::Master);
}
