//! keepalived's counting rules on a simulated clock.

use super::*;

fn seen(comm: &str, cmdline: &[&str]) -> Seen {
    let mut raw = Vec::new();
    for a in cmdline {
        raw.extend_from_slice(a.as_bytes());
        raw.push(0);
    }
    Seen {
        comm: comm.into(),
        cmdline: raw,
    }
}

fn full(name: &str, args: &[&str], param_match: ParamMatch) -> ProcessPattern {
    ProcessPattern {
        name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        param_match,
        full_command: true,
    }
}

fn up(tracker: usize) -> Change {
    Change { tracker, up: true }
}

fn down(tracker: usize) -> Change {
    Change { tracker, up: false }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn the_kernel_name_is_compared_unless_full_command() {
    let p = ProcessPattern::name("sleep");
    assert!(p.matches("sleep", b"/bin/sleep\x0010\0"));
    assert!(!p.matches("sleepy", b"sleep\0"));
    let p = full("/bin/sleep", &[], ParamMatch::Any);
    assert!(p.matches("sleep", b"/bin/sleep\x0010\0"));
    assert!(!p.matches("sleep", b"sleep\x0010\0"));
    // A kernel thread has an empty command line; one rewritten without NULs is one word.
    assert!(!p.matches("kworker", b""));
    assert!(p.matches("x", b"/bin/sleep"));
}

#[test]
fn param_match_follows_keepalived() {
    let cmd = b"sleep\x00100\x00-x\0";
    let exact = full("sleep", &["100", "-x"], ParamMatch::Exact);
    assert!(exact.matches("", cmd));
    assert!(!full("sleep", &["100"], ParamMatch::Exact).matches("", cmd));
    // `param_match` without arguments: exactly none.
    assert!(full("sleep", &[], ParamMatch::Exact).matches("", b"sleep\0"));
    assert!(!full("sleep", &[], ParamMatch::Exact).matches("", cmd));
    // Partial: whole leading arguments.
    assert!(full("sleep", &["100"], ParamMatch::Partial).matches("", cmd));
    assert!(!full("sleep", &["10"], ParamMatch::Partial).matches("", cmd));
    assert!(!full("sleep", &["-x"], ParamMatch::Partial).matches("", cmd));
    // Initial: the last one may go on.
    assert!(full("sleep", &["10"], ParamMatch::Initial).matches("", cmd));
    assert!(full("sleep", &["100", "-"], ParamMatch::Initial).matches("", cmd));
    assert!(!full("sleep", &["100", "-y"], ParamMatch::Initial).matches("", cmd));
    assert!(!full("sleep", &["1000"], ParamMatch::Initial).matches("", cmd));
}

#[test]
fn the_scan_reports_every_tracker_and_events_move_the_counts() {
    let mut w = ProcessWatch::new(vec![
        TrackerConfig::new(ProcessPattern::name("nginx")),
        TrackerConfig::new(ProcessPattern::name("haproxy")),
    ]);
    let t = Instant::now();
    let scan = [
        (10, seen("nginx", &["nginx"])),
        (11, seen("bash", &["bash"])),
    ];
    assert_eq!(w.handle(t, Input::Scan(&scan)), [up(0), down(1)]);
    let h = seen("haproxy", &["/usr/sbin/haproxy"]);
    assert_eq!(
        w.handle(
            t,
            Input::Exec {
                pid: 12,
                seen: Some(&h)
            }
        ),
        [up(1)]
    );
    // A second one changes the count, not the state.
    assert!(w
        .handle(
            t,
            Input::Exec {
                pid: 13,
                seen: Some(&h)
            }
        )
        .is_empty());
    assert_eq!(w.count(1), 2);
    assert!(w.handle(t, Input::Exit { pid: 12 }).is_empty());
    assert_eq!(w.handle(t, Input::Exit { pid: 13 }), [down(1)]);
    // Exits of processes nobody counts change nothing.
    assert!(w.handle(t, Input::Exit { pid: 11 }).is_empty());
    // A counted process that runs another program stops counting at once.
    let other = seen("bash", &["bash"]);
    assert_eq!(
        w.handle(
            t,
            Input::Exec {
                pid: 10,
                seen: Some(&other)
            }
        ),
        [down(0)]
    );
    // One gone before /proc was read is not counted.
    assert!(w
        .handle(
            t,
            Input::Exec {
                pid: 14,
                seen: None
            }
        )
        .is_empty());
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn an_exit_waits_terminate_delay_and_a_return_in_time_cancels_it() {
    let mut cfg = TrackerConfig::new(ProcessPattern::name("sleep"));
    cfg.terminate_delay = secs(2);
    let mut w = ProcessWatch::new(vec![cfg]);
    let t = Instant::now();
    let s = seen("sleep", &["sleep"]);
    assert_eq!(w.handle(t, Input::Scan(&[(5, s.clone())])), [up(0)]);
    assert!(w.handle(t, Input::Exit { pid: 5 }).is_empty());
    assert_eq!(w.next_deadline(), Some(t + secs(2)));
    assert!(w.is_up(0));
    // Back within the delay (an exec counts at once): nothing to report, nothing pending.
    let t1 = t + secs(1);
    assert!(w
        .handle(
            t1,
            Input::Exec {
                pid: 6,
                seen: Some(&s)
            }
        )
        .is_empty());
    assert_eq!(w.next_deadline(), None);
    // Gone again: the delay starts anew and then reports down.
    assert!(w.handle(t1, Input::Exit { pid: 6 }).is_empty());
    assert_eq!(w.next_deadline(), Some(t1 + secs(2)));
    assert!(w.handle(t1 + secs(1), Input::Timer).is_empty());
    assert_eq!(w.handle(t1 + secs(2), Input::Timer), [down(0)]);
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn a_fork_of_a_counted_process_counts_the_child_after_fork_delay() {
    let mut cfg = TrackerConfig::new(ProcessPattern::name("nginx"));
    cfg.quorum = 2;
    cfg.fork_delay = secs(1);
    let mut w = ProcessWatch::new(vec![cfg]);
    let t = Instant::now();
    let scan = [
        (10, seen("nginx", &["nginx"])),
        (20, seen("bash", &["bash"])),
    ];
    assert_eq!(w.handle(t, Input::Scan(&scan)), [down(0)]);
    // A fork of an uncounted process is not ours.
    assert!(w
        .handle(
            t,
            Input::Fork {
                parent: 20,
                child: 21
            }
        )
        .is_empty());
    assert!(w
        .handle(
            t,
            Input::Fork {
                parent: 10,
                child: 11
            }
        )
        .is_empty());
    assert_eq!(w.count(0), 2);
    assert_eq!(w.next_deadline(), Some(t + secs(1)));
    assert_eq!(w.handle(t + secs(1), Input::Timer), [up(0)]);
    // The child exits before its own fork is reported: the pending change is void.
    assert!(w
        .handle(
            t + secs(2),
            Input::Fork {
                parent: 11,
                child: 12
            }
        )
        .is_empty());
    assert!(w.handle(t + secs(2), Input::Exit { pid: 12 }).is_empty());
    assert_eq!(w.next_deadline(), None);
    assert!(w.is_up(0));
}

#[test]
fn more_than_quorum_max_is_down() {
    let mut cfg = TrackerConfig::new(ProcessPattern::name("worker"));
    cfg.quorum = 1;
    cfg.quorum_max = 2;
    let mut w = ProcessWatch::new(vec![cfg]);
    let t = Instant::now();
    let s = seen("worker", &["worker"]);
    assert_eq!(w.handle(t, Input::Scan(&[])), [down(0)]);
    assert_eq!(
        w.handle(
            t,
            Input::Exec {
                pid: 1,
                seen: Some(&s)
            }
        ),
        [up(0)]
    );
    assert!(w
        .handle(
            t,
            Input::Exec {
                pid: 2,
                seen: Some(&s)
            }
        )
        .is_empty());
    assert_eq!(
        w.handle(
            t,
            Input::Exec {
                pid: 3,
                seen: Some(&s)
            }
        ),
        [down(0)]
    );
    assert_eq!(w.handle(t, Input::Exit { pid: 2 }), [up(0)]);
}

#[test]
fn quorum_max_zero_is_up_while_none_runs() {
    let mut cfg = TrackerConfig::new(ProcessPattern::name("backup-job"));
    cfg.quorum = 0;
    cfg.quorum_max = 0;
    let mut w = ProcessWatch::new(vec![cfg]);
    let t = Instant::now();
    assert_eq!(w.handle(t, Input::Scan(&[])), [up(0)]);
    let s = seen("backup-job", &["backup-job"]);
    assert_eq!(
        w.handle(
            t,
            Input::Exec {
                pid: 7,
                seen: Some(&s)
            }
        ),
        [down(0)]
    );
    assert_eq!(w.handle(t, Input::Exit { pid: 7 }), [up(0)]);
}

#[test]
fn a_rename_moves_a_process_in_or_out_of_name_trackers_only() {
    let mut w = ProcessWatch::new(vec![
        TrackerConfig::new(ProcessPattern::name("server")),
        TrackerConfig::new(full("python3", &[], ParamMatch::Any)),
    ]);
    let t = Instant::now();
    let scan = [(30, seen("python3", &["python3", "srv.py"]))];
    assert_eq!(w.handle(t, Input::Scan(&scan)), [down(0), up(1)]);
    assert_eq!(
        w.handle(
            t,
            Input::Comm {
                pid: 30,
                comm: "server"
            }
        ),
        [up(0)]
    );
    assert_eq!(
        w.handle(
            t,
            Input::Comm {
                pid: 30,
                comm: "other"
            }
        ),
        [down(0)]
    );
    // The command line tracker kept it all along; an exit removes it from both.
    assert!(w.is_up(1));
    assert_eq!(
        w.handle(
            t,
            Input::Comm {
                pid: 30,
                comm: "server"
            }
        ),
        [up(0)]
    );
    assert_eq!(w.handle(t, Input::Exit { pid: 30 }), [down(0), down(1)]);
}

#[test]
fn a_rescan_after_lost_events_reports_only_what_changed() {
    let mut cfg = TrackerConfig::new(ProcessPattern::name("a"));
    cfg.terminate_delay = secs(3);
    let mut w = ProcessWatch::new(vec![cfg, TrackerConfig::new(ProcessPattern::name("b"))]);
    let t = Instant::now();
    let both = [(1, seen("a", &["a"])), (2, seen("b", &["b"]))];
    assert_eq!(w.handle(t, Input::Scan(&both[..1])), [up(0), down(1)]);
    // Events were lost: `a` ended, `b` started. Up is reported at once, down after the delay.
    assert_eq!(w.handle(t, Input::Rescan(&both[1..])), [up(1)]);
    assert_eq!(w.handle(t + secs(3), Input::Timer), [down(0)]);
}

#[test]
fn only_command_line_trackers_need_it_read() {
    let w = ProcessWatch::new(vec![TrackerConfig::new(ProcessPattern::name("a"))]);
    assert!(!w.needs_cmdline());
    let w = ProcessWatch::new(vec![TrackerConfig::new(full("a", &[], ParamMatch::Any))]);
    assert!(w.needs_cmdline());
}

/// One step of a random process history on a few pids.
#[derive(Debug, Clone)]
enum Step {
    /// An untracked process (pid 0) forks `pid`, which runs `name`.
    Spawn(u32, usize),
    Fork(u32, u32),
    Exec(u32, usize),
    Rename(u32, usize),
    Exit(u32),
}

const NAMES: [&str; 3] = ["a", "b", "c"];

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let pid = 1u32..12;
    let name = 0usize..NAMES.len();
    prop_oneof![
        (pid.clone(), name.clone()).prop_map(|(p, n)| Step::Spawn(p, n)),
        (pid.clone(), pid.clone()).prop_map(|(p, c)| Step::Fork(p, c)),
        (pid.clone(), name.clone()).prop_map(|(p, n)| Step::Exec(p, n)),
        (pid.clone(), name).prop_map(|(p, n)| Step::Rename(p, n)),
        pid.prop_map(Step::Exit),
    ]
}

proptest::proptest! {
    /// Whatever happens, each tracker counts exactly the live processes of its name, and
    /// (without delays) is up exactly when that count is within its quorum.
    #[test]
    fn counts_follow_any_history(steps in proptest::collection::vec(step(), 0..60)) {
        let mut configs = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            let mut c = TrackerConfig::new(ProcessPattern::name(name));
            c.quorum = i as u32;
            c.quorum_max = i as u32 + 1;
            configs.push(c);
        }
        let mut w = ProcessWatch::new(configs.clone());
        let t = Instant::now();
        let mut live: HashMap<u32, usize> = HashMap::new();
        w.handle(t, Input::Scan(&[]));
        for s in steps {
            match s {
                Step::Spawn(pid, n) if !live.contains_key(&pid) => {
                    live.insert(pid, n);
                    w.handle(t, Input::Fork { parent: 0, child: pid });
                    let seen = seen(NAMES[n], &[NAMES[n]]);
                    w.handle(t, Input::Exec { pid, seen: Some(&seen) });
                }
                Step::Fork(parent, child) if live.contains_key(&parent) && !live.contains_key(&child) => {
                    live.insert(child, live[&parent]);
                    w.handle(t, Input::Fork { parent, child });
                }
                Step::Exec(pid, n) if live.contains_key(&pid) => {
                    live.insert(pid, n);
                    let seen = seen(NAMES[n], &[NAMES[n]]);
                    w.handle(t, Input::Exec { pid, seen: Some(&seen) });
                }
                Step::Rename(pid, n) if live.contains_key(&pid) => {
                    live.insert(pid, n);
                    w.handle(t, Input::Comm { pid, comm: NAMES[n] });
                }
                Step::Exit(pid) if live.contains_key(&pid) => {
                    live.remove(&pid);
                    w.handle(t, Input::Exit { pid });
                }
                _ => continue,
            }
            for (i, c) in configs.iter().enumerate() {
                let n = live.values().filter(|&&v| v == i).count();
                proptest::prop_assert_eq!(w.count(i), n);
                let up = (c.quorum..=c.quorum_max).contains(&(n as u32));
                proptest::prop_assert_eq!(w.is_up(i), up);
            }
            proptest::prop_assert_eq!(w.next_deadline(), None);
        }
    }
}
