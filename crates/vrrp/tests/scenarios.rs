//! Scenarios as data: each `tests/scenarios/*.scenario` file is a timeline of events and
//! expectations that someone who knows VRRP can read and write without reading Rust.
//!
//! ```text
//! # comment
//! router a priority=200 [preempt=false] [preempt_delay=5s] [advert_int=100ms] [hint=master] [version=2]
//! at 0s start a b               # also: crash X, stop X, partition X Y, heal X Y, loss 0.3
//! at 10s expect master=a        # the only MASTER is a (`master=` alone: none)
//! at 10s expect holders=a       # the only node holding the VIP is a
//! at 10s expect state b=BACKUP
//! during 10s..40s expect holders=a   # checked after every simulated event in the window
//! ```
//! Adding a regression is adding a file.

mod sim;

use std::time::Duration;

use sim::{config, Sim};
use tandem_vrrp::Version;

fn parse_duration(text: &str) -> Duration {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let value: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("bad duration `{text}`"));
    match unit {
        "ms" => Duration::from_secs_f64(value / 1000.0),
        "s" => Duration::from_secs_f64(value),
        other => panic!("unknown unit `{other}` in `{text}`"),
    }
}

struct Scenario {
    names: Vec<String>,
    sim: Sim,
}

impl Scenario {
    fn node(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("unknown router `{name}`"))
    }

    fn names_of(&self, nodes: &[usize]) -> Vec<String> {
        nodes.iter().map(|&n| self.names[n].clone()).collect()
    }

    fn check(&self, expectation: &str, whence: &str) {
        let (key, value) = expectation
            .split_once('=')
            .unwrap_or_else(|| panic!("{whence}: expectation `{expectation}` needs `=`"));
        let listed = |v: &str| -> Vec<String> {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        match key {
            "master" | "masters" => {
                let got = self.names_of(&self.sim.masters(0));
                assert_eq!(
                    got,
                    listed(value),
                    "{whence}: masters at {:?}",
                    self.sim.elapsed()
                );
            }
            "holders" => {
                let got = self.names_of(&self.sim.holders(0));
                assert_eq!(
                    got,
                    listed(value),
                    "{whence}: holders at {:?}",
                    self.sim.elapsed()
                );
            }
            _ if key.starts_with("state ") => {
                let node = self.node(key.trim_start_matches("state ").trim());
                let state = self.sim.nodes[node].router.instance(0).state();
                assert_eq!(
                    state.keyword(),
                    value,
                    "{whence}: state at {:?}",
                    self.sim.elapsed()
                );
            }
            other => panic!("{whence}: unknown expectation `{other}`"),
        }
    }

    fn act(&mut self, words: &[&str], whence: &str) {
        match words {
            ["start", nodes @ ..] => nodes.iter().for_each(|n| {
                let n = self.node(n);
                self.sim.start_node(n)
            }),
            ["crash", n] => self.sim.crash(self.node(n)),
            ["stop", n] => self.sim.stop(self.node(n)),
            ["partition", x, y] => self.sim.partition(self.node(x), self.node(y), true),
            ["heal", x, y] => self.sim.partition(self.node(x), self.node(y), false),
            ["loss", p] => self.sim.loss = p.parse().expect("loss probability"),
            ["link-down", n] => self.sim.set_link(self.node(n), 0, false),
            ["link-up", n] => self.sim.set_link(self.node(n), 0, true),
            other => panic!("{whence}: unknown action {other:?}"),
        }
    }
}

fn run(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().to_string();
    let mut s = Scenario {
        names: Vec::new(),
        sim: Sim::new(1),
    };
    for (i, raw) in text.lines().enumerate() {
        let whence = format!("{file}:{}", i + 1);
        let line = raw.split('#').next().unwrap().trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["router", name, options @ ..] => {
                let index = s.names.len();
                let mut c = config(index, 100);
                for option in options {
                    let (k, v) = option.split_once('=').expect("option=value");
                    match k {
                        "priority" => c.priority = v.parse().expect("priority"),
                        "preempt" => c.preempt = v.parse().expect("preempt"),
                        "preempt_delay" => c.preempt_delay = parse_duration(v),
                        "advert_int" => c.advert_interval = parse_duration(v),
                        "hint" => c.start_as_master = v == "master",
                        "version" => c.version = if v == "2" { Version::V2 } else { Version::V3 },
                        other => panic!("{whence}: unknown router option `{other}`"),
                    }
                }
                s.sim.add(c);
                s.names.push(name.to_string());
            }
            ["at", when, rest @ ..] => {
                let target = parse_duration(when);
                let now = s.sim.elapsed();
                assert!(target >= now, "{whence}: time goes backwards");
                s.sim.run(target - now);
                match rest {
                    ["expect", expectation @ ..] => s.check(&expectation.join(" "), &whence),
                    action => s.act(action, &whence),
                }
            }
            ["during", window, "expect", expectation @ ..] => {
                let (from, to) = window.split_once("..").expect("during FROM..TO");
                let (from, to) = (parse_duration(from), parse_duration(to));
                let now = s.sim.elapsed();
                assert!(from >= now, "{whence}: time goes backwards");
                s.sim.run(from - now);
                let expectation = expectation.join(" ");
                s.check(&expectation, &whence);
                let names = s.names.clone();
                let (key, value) = expectation.split_once('=').expect("key=value");
                let want: Vec<String> = value
                    .split(',')
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .collect();
                let key = key.to_string();
                s.sim.run_checking(to - from, |sim| {
                    let got = match key.as_str() {
                        "holders" => sim.holders(0),
                        _ => sim.masters(0),
                    };
                    let got: Vec<String> = got.iter().map(|&n| names[n].clone()).collect();
                    assert_eq!(got, want, "{whence}: {key} at {:?}", sim.elapsed());
                });
            }
            _ => panic!("{whence}: cannot read `{line}`"),
        }
    }
}

#[test]
fn every_scenario_file_holds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "scenario"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "scenarios missing in {}", dir.display());
    for file in files {
        run(&file);
    }
}
