//! `vrrp_track_process` blocks and `track_process` lines: keepalived's defaults, what
//! `param_match` implies, and located errors.

mod common;

use common::*;

use std::time::Duration;

use tandem_config::{ParamMatch, TrackProcess};

fn instance(body: &str) -> String {
    format!("vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n{body}}}\n")
}

#[test]
fn defaults_are_keepalived_s() {
    let c = ok("vrrp_track_process nginx {\n process nginx\n}\n");
    let t = &c.track_processes[0];
    assert_eq!((t.name.as_str(), t.process.as_str()), ("nginx", "nginx"));
    assert!(t.args.is_empty());
    assert_eq!(t.param_match, ParamMatch::Any);
    assert!(!t.full_command);
    assert_eq!((t.quorum, t.quorum_max), (1, u32::MAX));
    assert_eq!(
        (t.fork_delay, t.terminate_delay),
        (Duration::ZERO, Duration::ZERO)
    );
    assert_eq!((t.weight, t.reverse), (0, false));
    assert_eq!(t.location.line, 1);
    assert!(c.warnings.is_empty(), "{:?}", warnings(&c));
}

#[test]
fn every_field() {
    let c = ok(
        "vrrp_track_process p {\n process /usr/sbin/haproxy -f /etc/h.cfg\n \
                param_match partial\n quorum 2\n quorum_max 4\n fork_delay 0.5\n \
                terminate_delay 2\n weight -20 reverse\n}\n",
    );
    let t = &c.track_processes[0];
    assert_eq!(t.process, "/usr/sbin/haproxy");
    assert_eq!(t.args, ["-f", "/etc/h.cfg"]);
    assert_eq!(t.param_match, ParamMatch::Partial);
    assert!(t.full_command);
    assert_eq!((t.quorum, t.quorum_max), (2, 4));
    assert_eq!(t.fork_delay, Duration::from_millis(500));
    assert_eq!(t.terminate_delay, Duration::from_secs(2));
    assert_eq!((t.weight, t.reverse), (-20, true));
}

#[test]
fn arguments_imply_exact_matching_of_the_command_line() {
    let c = ok("vrrp_track_process p {\n process sleep 100\n}\n");
    let t = &c.track_processes[0];
    assert_eq!((t.param_match, t.full_command), (ParamMatch::Exact, true));
    // `param_match` alone is exact, and compares the command line.
    let c = ok("vrrp_track_process p {\n process sleep\n param_match\n}\n");
    let t = &c.track_processes[0];
    assert_eq!((t.param_match, t.full_command), (ParamMatch::Exact, true));
    let c = ok("vrrp_track_process p {\n param_match initial\n process sleep 1\n}\n");
    assert_eq!(c.track_processes[0].param_match, ParamMatch::Initial);
    let c = ok("vrrp_track_process p {\n process sleep\n full_command\n}\n");
    let t = &c.track_processes[0];
    assert_eq!((t.param_match, t.full_command), (ParamMatch::Any, true));
}

#[test]
fn delay_sets_both_and_quorum_max_zero_means_none_running() {
    let c = ok("vrrp_track_process p {\n process x\n delay 1.5\n quorum_max 0\n}\n");
    let t = &c.track_processes[0];
    assert_eq!(t.fork_delay, Duration::from_millis(1500));
    assert_eq!(t.terminate_delay, Duration::from_millis(1500));
    assert_eq!((t.quorum, t.quorum_max), (0, 0));
}

#[test]
fn instances_and_groups_name_trackers_with_their_own_weights() {
    let c = ok(&format!(
        "vrrp_track_process a {{\n process a\n weight 10\n}}\nvrrp_track_process b {{\n process b\n}}\n{}\
         vrrp_sync_group G {{\n group {{\n  VI_1\n }}\n track_process {{\n  b\n }}\n}}\n",
        instance(" track_process {\n  a\n  b weight -30 reverse\n }\n")
    ));
    assert_eq!(
        c.instances[0].track_processes,
        [
            TrackProcess {
                name: "a".into(),
                weight: None,
                reverse: None
            },
            TrackProcess {
                name: "b".into(),
                weight: Some(-30),
                reverse: Some(true)
            },
        ]
    );
    assert_eq!(c.sync_groups[0].track_processes[0].name, "b");
}

#[test]
fn located_errors() {
    assert_eq!(
        errors("vrrp_track_process p {\n quorum 2\n}\n"),
        ["k.conf:1:20: vrrp_track_process `p` has no `process` line"]
    );
    assert_eq!(
        errors("vrrp_track_process p {\n process x\n weight 255\n}\n"),
        ["k.conf:3:9: `weight` expects -254..=254, found `255`"]
    );
    assert_eq!(
        errors("vrrp_track_process p {\n process x\n quorum 3\n quorum_max 2\n}\n"),
        ["k.conf:4:13: `quorum_max 2` is less than `quorum 3` in vrrp_track_process `p`"]
    );
    assert_eq!(
        errors("vrrp_track_process p {\n process x\n param_match fuzzy\n}\n"),
        ["k.conf:3:14: `param_match` expects nothing (exact), `exact`, `partial` or `initial`, found `fuzzy`"]
    );
    assert_eq!(
        errors("vrrp_track_process p {\n process x\n delay 0\n}\n"),
        ["k.conf:3:8: `delay` expects seconds 0.000001..=3600, found `0`"]
    );
    assert_eq!(
        errors("vrrp_track_process p {\n process x\n process y\n}\n"),
        ["k.conf:3:10: `process` is already set for vrrp_track_process `p`"]
    );
    assert_eq!(
        errors("vrrp_track_process p {\n process x\n}\nvrrp_track_process p {\n process y\n}\n"),
        ["k.conf:4:20: vrrp_track_process `p` is defined twice"]
    );
    assert_eq!(
        errors(&instance(" track_process {\n  nope\n }\n")),
        ["k.conf:5:3: `track_process` in vrrp_instance `VI_1` names `nope`, but no vrrp_track_process by that name is defined"]
    );
    assert_eq!(
        errors(&format!(
            "vrrp_track_process p {{\n process x\n}}\n{}",
            instance(" track_process {\n  p\n  p weight 2\n }\n")
        )),
        ["k.conf:9:3: vrrp_instance `VI_1` tracks process `p` twice"]
    );
    assert_eq!(
        errors(&format!(
            "vrrp_track_process p {{\n process x\n}}\n{}",
            instance(" track_process {\n  p weight 2 sideways\n }\n")
        )),
        ["k.conf:8:14: `weight` expects `weight N [reverse|noreverse]`, found `sideways`"]
    );
}

#[test]
fn a_name_the_kernel_truncates_is_warned() {
    let c = ok("vrrp_track_process p {\n process a-very-long-daemon\n}\n");
    let w = warnings(&c);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("k.conf:2:10: `a-very-long-daemon` is longer than the 15 bytes"));
    // Compared with the command line, the length does not matter.
    let c = ok("vrrp_track_process p {\n process a-very-long-daemon\n full_command\n}\n");
    assert!(c.warnings.is_empty());
}
