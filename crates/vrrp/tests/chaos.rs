//! Randomised scenarios: 2–5 routers, loss, partitions, crashes and restarts, then a stable
//! network. Once the network has been stable for one Master_Down_Interval there is exactly one
//! master, it is the highest priority, and it stays.

mod sim;

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use sim::{config, Sim};

const S: Duration = Duration::from_secs(1);

fn scenario(seed: u64) {
    let mut sim = Sim::new(seed);
    let n = sim.rng.random_range(2..=5);
    let mut priorities: Vec<u8> = (1..=254).collect();
    priorities.shuffle(&mut sim.rng);
    let v3_fast = sim.rng.random_bool(0.5);
    for (i, &priority) in priorities.iter().take(n).enumerate() {
        let mut c = config(i, priority);
        if v3_fast {
            c.advert_interval = Duration::from_millis(100);
        }
        sim.add(c);
    }
    let interval = if v3_fast {
        Duration::from_millis(100)
    } else {
        S
    };
    for node in 0..n {
        sim.start_node(node);
    }
    // Chaos: loss up to 30 %, random partitions, crashes and restarts.
    sim.loss = sim.rng.random_range(0.0..0.3);
    for _ in 0..20 {
        let a = sim.rng.random_range(0..n);
        let b = sim.rng.random_range(0..n);
        match sim.rng.random_range(0..4) {
            0 if a != b => sim.partition(a, b, true),
            1 if a != b => sim.partition(a, b, false),
            2 if sim.nodes[a].alive => sim.crash(a),
            3 if !sim.nodes[a].alive => sim.start_node(a),
            _ => {}
        }
        let pause = interval.mul_f64(sim.rng.random_range(0.1..5.0));
        sim.run(pause);
    }
    // Heal everything.
    sim.loss = 0.0;
    sim.cut.clear();
    for node in 0..n {
        if !sim.nodes[node].alive {
            sim.start_node(node);
        }
    }
    // Stable for the slowest Master_Down_Interval (priority 1) plus one interval for the
    // preempting master's first advert to land.
    sim.run(interval * 4 + interval);
    let best = (0..n)
        .max_by_key(|&i| sim.nodes[i].router.instance(0).priority())
        .unwrap();
    sim.run_checking(interval * 30, |s| {
        assert_eq!(
            s.holders(0),
            vec![best],
            "seed {seed}: holders at {:?}",
            s.elapsed()
        );
        assert_eq!(
            s.masters(0),
            vec![best],
            "seed {seed}: masters at {:?}",
            s.elapsed()
        );
    });
}

#[test]
fn one_master_after_chaos() {
    for seed in 0..2000 {
        scenario(seed);
    }
}
