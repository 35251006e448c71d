//! Simulated-clock tests of the monitor: each states one of keepalived's
//! rules and drives it with outcomes at chosen instants.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::probe::misc_outcome;
use super::*;

const S: Duration = Duration::from_secs(1);

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 1, last], 80))
}

/// delay_loop 10 s, retry 2, delay_before_retry 3 s, warmup 0.
fn timing() -> Timing {
    Timing {
        delay_loop: 10 * S,
        retry: 2,
        delay_before_retry: 3 * S,
        warmup: Duration::ZERO,
        connect_timeout: S,
        alpha: false,
    }
}

fn tcp(last: u8, timing: Timing) -> CheckerSpec {
    CheckerSpec {
        kind: CheckKind::Tcp,
        connect: Connect {
            to: addr(last),
            bind: None,
        },
        timing,
    }
}

fn server(last: u8, weight: u32) -> RealServerSpec {
    let mut rs = RealServerSpec::new(addr(last));
    rs.weight = weight;
    rs.checkers.push(tcp(last, timing()));
    rs.notify_up = Some(Script::from_line(&format!("/bin/up {last}")));
    rs.notify_down = Some(Script::from_line(&format!("/bin/down {last}")));
    rs
}

fn service(servers: Vec<RealServerSpec>) -> VirtualServerSpec {
    let mut vs = VirtualServerSpec::new("[10.0.0.1]:tcp:80", servers);
    vs.quorum_up = Some(Script::from_line("/bin/qup"));
    vs.quorum_down = Some(Script::from_line("/bin/qdown"));
    vs
}

fn id(rs: usize) -> CheckerId {
    CheckerId {
        vs: 0,
        rs,
        check: 0,
    }
}

fn fail() -> Outcome {
    Outcome::Failed("refused".into())
}

fn pool_addrs(actions: &[Action]) -> Option<Vec<(SocketAddr, u32)>> {
    actions.iter().rev().find_map(|a| match a {
        Action::SetPool { destinations, .. } => {
            Some(destinations.iter().map(|d| (d.addr, d.weight)).collect())
        }
        _ => None,
    })
}

fn notifies(actions: &[Action]) -> Vec<(NotifyKind, Vec<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify(n) => Some((
                n.kind,
                n.script
                    .as_ref()
                    .map(|s| s.argv.clone())
                    .unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

/// Runs the probe of `rs` that is due at `at` and reports `outcome`.
fn step(m: &mut Monitor, at: Instant, rs: usize, outcome: Outcome) -> Vec<Action> {
    assert_eq!(m.next_due(id(rs)), Some(at), "probe of rs {rs} due then");
    m.on_outcome(at, id(rs), outcome)
}

#[test]
fn starts_with_every_server_in_the_pool_and_first_check_after_bootstrap() {
    let t0 = Instant::now();
    let (m, actions) = Monitor::new(vec![service(vec![server(2, 1), server(3, 2)])], t0, 1);
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 1), (addr(3), 2)]));
    assert!(notifies(&actions).is_empty(), "no notify at start");
    assert!(m.quorum_up(0));
    assert_eq!(
        m.next_due(id(0)),
        Some(t0 + S),
        "BOOTSTRAP_DELAY with warmup 0"
    );
    let mut m = m;
    assert!(m.due(t0).is_empty());
    assert_eq!(m.due(t0 + S), vec![id(0), id(1)]);
    assert_eq!(m.next_due(id(0)), None, "running until its outcome");
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn server_leaves_after_retry_consecutive_failures_delay_before_retry_apart() {
    let t0 = Instant::now();
    let (mut m, _) = Monitor::new(vec![service(vec![server(2, 1), server(3, 1)])], t0, 1);
    let t1 = t0 + S;
    let actions = step(&mut m, t1, 0, Outcome::Healthy);
    assert!(pool_addrs(&actions).is_none() && notifies(&actions).is_empty());
    // Server breaks: the check at t1+10 fails, then 2 retries 3 s apart.
    let t = t1 + 10 * S;
    assert!(pool_addrs(&step(&mut m, t, 0, fail())).is_none());
    assert!(m.is_alive(0, 0));
    assert!(pool_addrs(&step(&mut m, t + 3 * S, 0, fail())).is_none());
    assert!(m.is_alive(0, 0), "still in after retry 1 of 2");
    let actions = step(&mut m, t + 6 * S, 0, fail());
    assert!(!m.is_alive(0, 0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(3), 1)]));
    assert_eq!(
        notifies(&actions),
        vec![(
            NotifyKind::RealServerDown,
            vec!["/bin/down".into(), "2".into()]
        )]
    );
    assert!(actions.iter().any(|a| matches!(a,
        Action::Log(l) if l == "Removing service [10.0.1.2]:tcp:80 from VS [10.0.0.1]:tcp:80")));
    assert!(actions.iter().any(|a| matches!(a, Action::Notify(n)
        if n.fifo_line == "RS [10.0.1.2]:tcp:80 [10.0.0.1]:tcp:80 DOWN")));
    // Removal took retry × delay_before_retry after the first failure; the
    // next probe comes a delay_loop later.
    assert_eq!(m.next_due(id(0)), Some(t + 16 * S));
}

#[test]
fn a_success_between_failures_resets_the_retry_count() {
    let t0 = Instant::now();
    let (mut m, _) = Monitor::new(vec![service(vec![server(2, 1)])], t0, 1);
    let t1 = t0 + S;
    step(&mut m, t1, 0, Outcome::Healthy);
    let t = t1 + 10 * S;
    step(&mut m, t, 0, fail());
    step(&mut m, t + 3 * S, 0, fail());
    step(&mut m, t + 6 * S, 0, Outcome::Healthy);
    let t = t + 16 * S;
    step(&mut m, t, 0, fail());
    step(&mut m, t + 3 * S, 0, fail());
    assert!(
        m.is_alive(0, 0),
        "two failures after a success are not three"
    );
}

#[test]
fn one_failure_is_enough_before_the_first_decision() {
    let t0 = Instant::now();
    let (mut m, _) = Monitor::new(vec![service(vec![server(2, 1), server(3, 1)])], t0, 1);
    let actions = step(&mut m, t0 + S, 0, fail());
    assert!(!m.is_alive(0, 0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(3), 1)]));
}

#[test]
fn a_down_server_returns_after_one_success() {
    let t0 = Instant::now();
    let (mut m, _) = Monitor::new(vec![service(vec![server(2, 1), server(3, 1)])], t0, 1);
    step(&mut m, t0 + S, 0, fail());
    // Known down: no retries, next look after delay_loop.
    let t = t0 + 11 * S;
    assert!(pool_addrs(&step(&mut m, t, 0, fail())).is_none());
    let actions = step(&mut m, t + 10 * S, 0, Outcome::Healthy);
    assert!(m.is_alive(0, 0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 1), (addr(3), 1)]));
    assert_eq!(
        notifies(&actions),
        vec![(NotifyKind::RealServerUp, vec!["/bin/up".into(), "2".into()])]
    );
}

#[test]
fn alpha_starts_down_until_the_first_success() {
    let t0 = Instant::now();
    let mut rs = server(2, 1);
    rs.checkers[0].timing.alpha = true;
    let (mut m, actions) = Monitor::new(vec![service(vec![rs, server(3, 1)])], t0, 1);
    assert!(!m.is_alive(0, 0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(3), 1)]));
    let actions = step(&mut m, t0 + S, 0, Outcome::Healthy);
    assert!(m.is_alive(0, 0));
    assert_eq!(notifies(&actions)[0].0, NotifyKind::RealServerUp);
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 1), (addr(3), 1)]));
}

#[test]
fn alpha_first_failure_notifies_down_once() {
    let t0 = Instant::now();
    let mut rs = server(2, 1);
    rs.checkers[0].timing.alpha = true;
    let (mut m, _) = Monitor::new(vec![service(vec![rs, server(3, 1)])], t0, 1);
    let actions = step(&mut m, t0 + S, 0, fail());
    assert_eq!(notifies(&actions)[0].0, NotifyKind::RealServerDown);
    assert!(notifies(&step(&mut m, t0 + 11 * S, 0, fail())).is_empty());
}

#[test]
fn quorum_with_hysteresis_is_lost_below_quorum_minus_and_gained_at_quorum_plus() {
    let t0 = Instant::now();
    let mut vs = service((2..6).map(|i| server(i, 1)).collect());
    vs.quorum = 3;
    vs.hysteresis = 1;
    let (mut m, _) = Monitor::new(vec![vs], t0, 1);
    assert!(m.quorum_up(0), "4 >= 3+1");
    let t = t0 + S;
    for rs in 0..2 {
        let actions = step(&mut m, t, rs, fail());
        assert!(m.quorum_up(0), "weight {} >= 3-1", 3 - rs);
        assert!(!notifies(&actions)
            .iter()
            .any(|n| n.0 == NotifyKind::QuorumDown));
    }
    let actions = step(&mut m, t, 2, fail());
    assert!(!m.quorum_up(0), "1 < 3-1");
    assert!(notifies(&actions).contains(&(NotifyKind::QuorumDown, vec!["/bin/qdown".into()])));
    let t = t + 10 * S;
    for rs in 0..2 {
        let actions = step(&mut m, t, rs, Outcome::Healthy);
        assert!(!m.quorum_up(0), "weight {} < 3+1", 2 + rs);
        assert!(!notifies(&actions)
            .iter()
            .any(|n| n.0 == NotifyKind::QuorumUp));
    }
    let actions = step(&mut m, t, 2, Outcome::Healthy);
    assert!(m.quorum_up(0), "4 >= 3+1");
    assert!(notifies(&actions).contains(&(NotifyKind::QuorumUp, vec!["/bin/qup".into()])));
}

#[test]
fn quorum_counts_weights_not_servers() {
    let t0 = Instant::now();
    let mut vs = service(vec![server(2, 5), server(3, 1)]);
    vs.quorum = 5;
    let (mut m, _) = Monitor::new(vec![vs], t0, 1);
    step(&mut m, t0 + S, 1, fail());
    assert!(m.quorum_up(0), "weight 5 alone holds quorum 5");
    step(&mut m, t0 + S, 0, fail());
    assert!(!m.quorum_up(0));
}

#[test]
fn sorry_server_replaces_the_pool_while_the_quorum_is_lost() {
    let t0 = Instant::now();
    let mut vs = service(vec![server(2, 1), server(3, 1)]);
    vs.sorry_server = Some(SorryServer {
        addr: addr(99),
        inhibit: false,
    });
    let (mut m, _) = Monitor::new(vec![vs], t0, 1);
    step(&mut m, t0 + S, 0, fail());
    let actions = step(&mut m, t0 + S, 1, fail());
    assert!(m.sorry_active(0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(99), 1)]));
    assert!(notifies(&actions).contains(&(NotifyKind::QuorumDown, vec!["/bin/qdown".into()])));
    let actions = step(&mut m, t0 + 11 * S, 1, Outcome::Healthy);
    assert!(!m.sorry_active(0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(3), 1)]));
    assert!(notifies(&actions).contains(&(NotifyKind::QuorumUp, vec!["/bin/qup".into()])));
}

#[test]
fn sorry_server_is_in_from_the_start_when_alpha_servers_start_down() {
    let t0 = Instant::now();
    let mut rs = server(2, 1);
    rs.checkers[0].timing.alpha = true;
    let mut vs = service(vec![rs]);
    vs.sorry_server = Some(SorryServer {
        addr: addr(99),
        inhibit: false,
    });
    let (m, actions) = Monitor::new(vec![vs], t0, 1);
    assert!(m.sorry_active(0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(99), 1)]));
    assert_eq!(
        notifies(&actions),
        vec![(NotifyKind::QuorumDown, vec!["/bin/qdown".into()])],
        "keepalived starts with quorum down and says so"
    );
}

#[test]
fn inhibit_on_failure_keeps_the_server_with_weight_zero() {
    let t0 = Instant::now();
    let mut rs = server(2, 3);
    rs.inhibit_on_failure = true;
    let (mut m, _) = Monitor::new(vec![service(vec![rs, server(3, 1)])], t0, 1);
    let actions = step(&mut m, t0 + S, 0, fail());
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 0), (addr(3), 1)]));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Log(l) if l.starts_with("Disabling service [10.0.1.2]:tcp:80 of VS"))));
    let actions = step(&mut m, t0 + 11 * S, 0, Outcome::Healthy);
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 3), (addr(3), 1)]));
}

fn misc(last: u8) -> RealServerSpec {
    let mut rs = server(last, 4);
    rs.checkers[0].kind = CheckKind::Misc(MiscSpec {
        path: "/bin/true".into(),
        timeout: None,
        dynamic: true,
        user: None,
    });
    rs
}

#[test]
fn misc_dynamic_exit_status_minus_two_is_the_new_weight() {
    let t0 = Instant::now();
    let (mut m, _) = Monitor::new(vec![service(vec![misc(2)])], t0, 1);
    let actions = step(&mut m, t0 + S, 0, Outcome::HealthyWithStatus(9));
    assert_eq!(m.weight(0, 0), 7);
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 7)]));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Log(l) if l.starts_with("Changing weight from 4 to 7 for active service"))));
    let actions = step(&mut m, t0 + 11 * S, 0, Outcome::HealthyWithStatus(0));
    assert_eq!(m.weight(0, 0), 4, "status 0 restores the configured weight");
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 4)]));
    step(&mut m, t0 + 21 * S, 0, Outcome::HealthyWithStatus(2));
    assert_eq!(m.weight(0, 0), 0, "status 2 is weight 0, still alive");
    assert!(m.is_alive(0, 0));
}

#[test]
fn misc_failure_restores_the_configured_weight_for_the_return() {
    let t0 = Instant::now();
    let (mut m, _) = Monitor::new(vec![service(vec![misc(2), server(3, 1)])], t0, 1);
    step(&mut m, t0 + S, 0, Outcome::HealthyWithStatus(12));
    assert_eq!(m.weight(0, 0), 10);
    let t = t0 + 11 * S;
    step(&mut m, t, 0, fail());
    step(&mut m, t + 3 * S, 0, fail());
    step(&mut m, t + 6 * S, 0, fail());
    assert!(!m.is_alive(0, 0));
    assert_eq!(m.weight(0, 0), 4);
}

#[test]
fn misc_exit_statuses_read_as_keepalived_does() {
    let exit = |code: i32| ExitStatus::from_raw(code << 8);
    assert_eq!(misc_outcome(exit(0), false), Outcome::Healthy);
    assert!(!misc_outcome(exit(1), true).is_healthy());
    assert!(!misc_outcome(exit(5), false).is_healthy());
    assert_eq!(misc_outcome(exit(5), true), Outcome::HealthyWithStatus(5));
    assert_eq!(misc_outcome(exit(0), true), Outcome::HealthyWithStatus(0));
    assert!(!misc_outcome(ExitStatus::from_raw(9), true).is_healthy());
}

#[test]
fn a_server_with_two_checkers_leaves_on_the_first_failure_and_returns_on_the_last_success() {
    let t0 = Instant::now();
    let mut rs = server(2, 1);
    let mut second = tcp(2, timing());
    second.connect.to = SocketAddr::from(([10, 0, 1, 2], 443));
    rs.checkers.push(second);
    let (mut m, _) = Monitor::new(vec![service(vec![rs, server(3, 1)])], t0, 1);
    let c2 = CheckerId { check: 1, ..id(0) };
    let t = t0 + S;
    assert!(m.due(t).contains(&c2));
    m.on_outcome(t, id(0), fail());
    m.on_outcome(t, c2, fail());
    assert!(!m.is_alive(0, 0));
    let t = t + 10 * S;
    m.due(t);
    let actions = m.on_outcome(t, id(0), Outcome::Healthy);
    assert!(!m.is_alive(0, 0), "the second checker still fails");
    assert!(notifies(&actions).is_empty());
    m.on_outcome(t, c2, Outcome::Healthy);
    assert!(m.is_alive(0, 0));
}

#[test]
fn first_checks_are_spread_over_the_warmup_and_repeat_per_seed() {
    let t0 = Instant::now();
    let servers: Vec<_> = (0..200u8)
        .map(|i| {
            let mut rs = server(i, 1);
            rs.checkers[0].timing.warmup = 10 * S;
            rs
        })
        .collect();
    let offsets = |seed| {
        let (m, _) = Monitor::new(vec![service(servers.clone())], t0, seed);
        (0..200)
            .map(|rs| m.next_due(id(rs)).unwrap() - t0)
            .collect::<Vec<_>>()
    };
    let first = offsets(7);
    assert_eq!(first, offsets(7), "deterministic for a seed");
    assert_ne!(first, offsets(8));
    assert!(first.iter().all(|d| *d >= S && *d <= 11 * S));
    // Every second of the 10 s warmup gets some of the 200 first checks.
    for second in 1..11 {
        let n = first.iter().filter(|d| d.as_secs() == second).count();
        assert!(n > 5, "only {n} first checks in second {second}");
    }
}

#[test]
fn omega_runs_down_notifies_on_stop_and_plain_stop_does_not() {
    let t0 = Instant::now();
    let mut vs = service(vec![server(2, 1), server(3, 1)]);
    vs.omega = true;
    let (mut m, _) = Monitor::new(vec![vs, service(vec![server(4, 1)])], t0, 1);
    let actions = m.stop();
    let n: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify(n) => Some((n.vs, n.kind, n.stopping)),
            _ => None,
        })
        .collect();
    assert_eq!(
        n,
        vec![
            (0, NotifyKind::RealServerDown, true),
            (0, NotifyKind::RealServerDown, true),
            (0, NotifyKind::QuorumDown, true),
        ]
    );
    assert!(actions.iter().any(|a| matches!(a,
        Action::SetPool { vs: 1, destinations } if destinations.is_empty())));
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn timing_inherits_checker_then_real_then_virtual_server() {
    let vs = TimingOverrides {
        delay_loop: Some(6 * S),
        retry: Some(4),
        ..Default::default()
    };
    let rs = TimingOverrides {
        retry: Some(2),
        connect_timeout: Some(2 * S),
        ..Default::default()
    };
    let checker = TimingOverrides {
        connect_timeout: Some(3 * S),
        ..Default::default()
    };
    let t = Timing::resolve(&vs, &rs, &checker);
    assert_eq!(t.delay_loop, 6 * S);
    assert_eq!(t.retry, 2);
    assert_eq!(t.connect_timeout, 3 * S);
    assert_eq!(t.warmup, 6 * S, "warmup defaults to delay_loop");
    assert_eq!(t.delay_before_retry, S);
    assert!(!t.alpha);
}

#[test]
fn status_code_ranges_and_default_2xx() {
    let mut url = UrlSpec::path("/");
    assert!(url.accepts(204) && !url.accepts(301));
    url.status_codes = vec![(200, 200), (300, 399)];
    assert!(url.accepts(200) && url.accepts(302) && !url.accepts(204));
}

/// A real server (weight 4) whose only checker is FILE_CHECK on track_file `f`.
fn file_checked(last: u8, weight: i32, reverse: bool) -> RealServerSpec {
    let mut rs = RealServerSpec::new(addr(last));
    rs.weight = 4;
    rs.checkers.push(CheckerSpec {
        kind: CheckKind::File(FileCheckSpec {
            track_file: "f".into(),
            weight,
            reverse,
        }),
        connect: Connect {
            to: addr(last),
            bind: None,
        },
        timing: timing(),
    });
    rs.notify_down = Some(Script::from_line(&format!("/bin/down {last}")));
    rs.notify_up = Some(Script::from_line(&format!("/bin/up {last}")));
    rs
}

fn files(value: i64) -> std::collections::HashMap<String, i64> {
    [("f".to_string(), value)].into()
}

#[test]
fn file_check_of_weight_zero_is_up_at_zero_and_down_otherwise() {
    let t0 = Instant::now();
    let vs = service(vec![file_checked(2, 0, false), server(3, 1)]);
    let (mut m, actions) = Monitor::with_files(vec![vs.clone()], t0, 1, &files(0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 4), (addr(3), 1)]));
    assert_eq!(
        m.due(t0 + 100 * S),
        vec![id(1)],
        "FILE_CHECK is never probed"
    );
    let actions = m.on_file_value("f", 1);
    assert!(!m.is_alive(0, 0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(3), 1)]));
    assert!(notifies(&actions).contains(&(
        NotifyKind::RealServerDown,
        vec!["/bin/down".into(), "2".into()]
    )));
    assert!(m.on_file_value("f", 7).is_empty(), "still not 0: no change");
    let actions = m.on_file_value("f", 0);
    assert!(m.is_alive(0, 0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 4), (addr(3), 1)]));
    assert!(m.on_file_value("other", 5).is_empty(), "another track_file");
    // Read non-zero at start: down from the start.
    let (m, actions) = Monitor::with_files(vec![vs], t0, 1, &files(3));
    assert!(!m.is_alive(0, 0));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(3), 1)]));
}

#[test]
fn file_check_reverse_of_weight_zero_is_down_at_zero() {
    let t0 = Instant::now();
    let vs = service(vec![file_checked(2, 0, true), server(3, 1)]);
    let (mut m, _) = Monitor::with_files(vec![vs], t0, 1, &files(0));
    assert!(!m.is_alive(0, 0));
    m.on_file_value("f", 1);
    assert!(m.is_alive(0, 0));
}

#[test]
fn file_check_weight_times_the_number_moves_the_server_weight() {
    let t0 = Instant::now();
    let vs = service(vec![file_checked(2, 2, false)]);
    let (mut m, actions) = Monitor::with_files(vec![vs.clone()], t0, 1, &files(3));
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 10)]), "4 + 3 × 2");
    let actions = m.on_file_value("f", 1);
    assert_eq!(m.weight(0, 0), 6);
    assert_eq!(pool_addrs(&actions), Some(vec![(addr(2), 6)]));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Log(l) if l.starts_with("Changing weight from 10 to 6 for active service"))));
    // Below zero the server stays in with weight 0 (quiesced), as keepalived's real_weight.
    m.on_file_value("f", -5);
    assert_eq!(m.weight(0, 0), 0);
    assert!(m.is_alive(0, 0));
    // A deleted file reads 0: the configured weight.
    m.on_file_value("f", 0);
    assert_eq!(m.weight(0, 0), 4);
    // reverse: the number counts negated.
    let mut rev = vs;
    rev.real_servers[0] = file_checked(2, 2, true);
    let (m, _) = Monitor::with_files(vec![rev], t0, 1, &files(1));
    assert_eq!(m.weight(0, 0), 2);
}

#[test]
fn file_check_status_follows_keepalived() {
    let f = |weight, reverse| FileCheckSpec {
        track_file: "f".into(),
        weight,
        reverse,
    };
    assert_eq!(f(0, false).status(0), Some(0));
    assert_eq!(f(0, false).status(-2), None);
    assert_eq!(f(0, true).status(0), None);
    assert_eq!(f(0, true).status(9), Some(0));
    assert_eq!(f(5, false).status(3), Some(15));
    assert_eq!(f(5, true).status(3), Some(-15));
    // Far enough below: fault, as keepalived's IPVS_WEIGHT_FAULT.
    assert_eq!(f(-2, false).status(i64::from(i32::MAX)), None);
}
