//! Every keyword keepalived 2.2.7 installs on the VRRP side (tests/keywords/keepalived-2.2.7.txt,
//! written by tests/keywords/extract-keywords.py from keepalived's parsers) is either acted on
//! by tandem or warned about at its line: none is an "unknown keyword" error, none is read in
//! silence and dropped.

mod common;

use std::path::PathBuf;

use common::keyword_list;
use tandem_config::{parse_str, ConfigError};

/// keepalived 2.2.7's VRRP keywords, under tests/keywords.
const LIST: &str = "keepalived-2.2.7.txt";

/// Keywords tandem acts on: read into the model and used. Everything else must warn.
const ACTED_ON: &[(&str, &str)] = &[
    ("top", "global_defs"),
    ("top", "vrrp_instance"),
    ("top", "vrrp_sync_group"),
    ("top", "vrrp_script"),
    ("top", "track_file"),
    ("top", "vrrp_track_file"),
    ("global_defs", "router_id"),
    ("global_defs", "lvs_sync_daemon"),
    ("global_defs", "vrrp_mcast_group4"),
    ("global_defs", "vrrp_mcast_group6"),
    ("global_defs", "vrrp_check_unicast_src"),
    ("global_defs", "vrrp_version"),
    ("global_defs", "vrrp_garp_master_delay"),
    ("global_defs", "vrrp_garp_master_repeat"),
    ("global_defs", "vrrp_garp_master_refresh"),
    ("global_defs", "vrrp_garp_master_refresh_repeat"),
    ("global_defs", "vrrp_garp_interval"),
    ("global_defs", "vrrp_gna_interval"),
    ("global_defs", "vrrp_min_garp"),
    ("global_defs", "vrrp_garp_lower_prio_delay"),
    ("global_defs", "vrrp_garp_lower_prio_repeat"),
    ("global_defs", "vrrp_owner_ignore_adverts"),
    ("global_defs", "vrrp_lower_prio_no_advert"),
    ("global_defs", "vrrp_higher_prio_send_advert"),
    ("global_defs", "notification_email"),
    ("global_defs", "notification_email_from"),
    ("global_defs", "smtp_server"),
    ("global_defs", "smtp_connect_timeout"),
    ("global_defs", "smtp_helo_name"),
    ("global_defs", "smtp_alert"),
    ("global_defs", "smtp_alert_vrrp"),
    ("global_defs", "no_email_faults"),
    ("global_defs", "notify_fifo"),
    ("global_defs", "notify_fifo_script"),
    ("global_defs", "vrrp_notify_fifo"),
    ("global_defs", "vrrp_notify_fifo_script"),
    ("vrrp_instance", "state"),
    ("vrrp_instance", "interface"),
    ("vrrp_instance", "virtual_router_id"),
    ("vrrp_instance", "priority"),
    ("vrrp_instance", "advert_int"),
    ("vrrp_instance", "version"),
    ("vrrp_instance", "authentication"),
    ("vrrp_instance", "virtual_ipaddress"),
    ("vrrp_instance", "virtual_ipaddress_excluded"),
    ("vrrp_instance", "unicast_src_ip"),
    ("vrrp_instance", "mcast_src_ip"),
    ("vrrp_instance", "unicast_peer"),
    ("vrrp_instance", "nopreempt"),
    ("vrrp_instance", "preempt"),
    ("vrrp_instance", "preempt_delay"),
    ("vrrp_instance", "track_interface"),
    ("vrrp_instance", "garp_master_delay"),
    ("vrrp_instance", "garp_master_repeat"),
    ("vrrp_instance", "garp_master_refresh"),
    ("vrrp_instance", "garp_master_refresh_repeat"),
    ("vrrp_instance", "virtual_routes"),
    ("vrrp_instance", "virtual_rules"),
    ("vrrp_instance", "use_vmac"),
    ("vrrp_instance", "vmac_xmit_base"),
    ("vrrp_instance", "garp_lower_prio_delay"),
    ("vrrp_instance", "garp_lower_prio_repeat"),
    ("vrrp_instance", "lower_prio_no_advert"),
    ("vrrp_instance", "higher_prio_send_advert"),
    ("vrrp_instance", "dont_track_primary"),
    ("vrrp_instance", "accept"),
    ("vrrp_instance", "notify"),
    ("vrrp_instance", "notify_master"),
    ("vrrp_instance", "notify_backup"),
    ("vrrp_instance", "notify_fault"),
    ("vrrp_instance", "notify_stop"),
    ("vrrp_instance", "smtp_alert"),
    ("vrrp_sync_group", "group"),
    ("vrrp_sync_group", "notify"),
    ("vrrp_sync_group", "notify_master"),
    ("vrrp_sync_group", "notify_backup"),
    ("vrrp_sync_group", "notify_fault"),
    ("vrrp_sync_group", "notify_stop"),
    ("vrrp_sync_group", "smtp_alert"),
    ("authentication", "auth_type"),
    ("authentication", "auth_pass"),
    ("global_defs", "script_user"),
    ("global_defs", "enable_script_security"),
    ("vrrp_instance", "track_script"),
    ("vrrp_instance", "track_file"),
    ("vrrp_sync_group", "track_script"),
    ("vrrp_sync_group", "track_file"),
    ("vrrp_sync_group", "sync_group_tracking_weight"),
    ("track_file", "file"),
    ("track_file", "weight"),
    ("track_file", "init_file"),
    ("vrrp_track_file", "file"),
    ("vrrp_track_file", "weight"),
    ("vrrp_track_file", "init_file"),
    ("top", "vrrp_track_process"),
    ("vrrp_track_process", "process"),
    ("vrrp_track_process", "param_match"),
    ("vrrp_track_process", "weight"),
    ("vrrp_track_process", "quorum"),
    ("vrrp_track_process", "quorum_max"),
    ("vrrp_track_process", "delay"),
    ("vrrp_track_process", "terminate_delay"),
    ("vrrp_track_process", "fork_delay"),
    ("vrrp_track_process", "full_command"),
    ("vrrp_instance", "track_process"),
    ("vrrp_sync_group", "track_process"),
    ("vrrp_script", "script"),
    ("vrrp_script", "interval"),
    ("vrrp_script", "timeout"),
    ("vrrp_script", "weight"),
    ("vrrp_script", "rise"),
    ("vrrp_script", "fall"),
    ("vrrp_script", "user"),
    ("vrrp_script", "init_fail"),
];

/// Values for keywords whose value cannot be guessed from the generic candidates below.
const SAMPLES: &[(&str, &str, &str)] = &[
    ("vrrp_instance", "track_script", " {\n  chk\n }"),
    ("vrrp_instance", "unicast_src_ip", " 10.0.0.2"),
    ("vrrp_instance", "mcast_src_ip", " 10.0.0.2"),
    ("vrrp_instance", "mcast_dst_ip", " 224.0.0.19"),
    ("vrrp_instance", "unicast_peer", " {\n  10.0.0.3\n }"),
    ("vrrp_instance", "virtual_ipaddress", " {\n  10.0.0.9\n }"),
    (
        "vrrp_instance",
        "virtual_ipaddress_excluded",
        " {\n  10.0.0.10\n }",
    ),
    ("vrrp_instance", "version", " 2"),
    ("vrrp_instance", "state", " BACKUP"),
    ("vrrp_sync_group", "track_script", " {\n  chk\n }"),
    ("global_defs", "lvs_sync_daemon", " eth1 VI_1"),
    ("global_defs", "vrrp_mcast_group4", " 224.0.0.18"),
    ("global_defs", "vrrp_mcast_group6", " ff02::12"),
    ("global_defs", "vrrp_version", " 2"),
    ("global_defs", "smtp_server", " 192.0.2.25"),
    (
        "global_defs",
        "notification_email",
        " {\n  a@example.net\n }",
    ),
    ("global_defs", "vrrp_garp_interval", " 0.001"),
    ("global_defs", "vrrp_gna_interval", " 0.001"),
    ("global_defs", "vrrp_owner_ignore_adverts", " off"),
    ("authentication", "auth_type", " PASS"),
];

/// Tried in order when no sample is given: the first that parses without an error is used.
const CANDIDATES: &[&str] = &["", " 1", " eth0", " /bin/true", " {\n }", " 10.0.0.1"];

/// A configuration with `line` (keyword and value) placed in `block`, and the line it is on.
fn placed(block: &str, line: &str) -> (String, u32) {
    let script = "vrrp_script chk {\n script /bin/true\n}\n";
    let instance_head = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n";
    let instance_vip = " virtual_ipaddress {\n  10.0.0.1\n }\n";
    match block {
        "top" => (format!("{line}\n"), 1),
        // It names a VRRP instance, which must exist.
        "global_defs" if line.starts_with("lvs_sync_daemon") => (
            format!("global_defs {{\n {line}\n}}\n{instance_head}{instance_vip}}}\n"),
            2,
        ),
        "global_defs" => (format!("global_defs {{\n {line}\n}}\n"), 2),
        "vrrp_instance" => (
            format!("{script}{instance_head}{instance_vip} {line}\n}}\n"),
            10,
        ),
        "authentication" => (
            format!("{instance_head}{instance_vip} authentication {{\n  auth_type PASS\n  auth_pass 1111\n  {line}\n }}\n}}\n"),
            10,
        ),
        "vrrp_sync_group" => (
            format!("{script}{instance_head}{instance_vip}}}\nvrrp_sync_group G {{\n group {{\n  VI_1\n }}\n {line}\n}}\n"),
            15,
        ),
        "vrrp_script" => (format!("vrrp_script chk {{\n script /bin/true\n {line}\n}}\n"), 3),
        "track_file" | "vrrp_track_file" => {
            (format!("{block} tf {{\n file /run/tf\n {line}\n}}\n"), 3)
        }
        // A tracker needs its `process` line.
        "vrrp_track_process" if line.starts_with("process") => {
            (format!("vrrp_track_process P {{\n {line}\n}}\n"), 2)
        }
        "vrrp_track_process" => (
            format!("vrrp_track_process P {{\n process p\n {line}\n}}\n"),
            3,
        ),
        // Blocks tandem does not implement: the block is warned about at its first line.
        other => (format!("{other} X {{\n {line}\n}}\n"), 1),
    }
}

fn file() -> PathBuf {
    PathBuf::from("k.conf")
}

#[test]
fn the_list_is_keepalived_s_whole_vrrp_side() {
    let list = keyword_list(LIST);
    assert!(list.len() > 250, "{} keywords", list.len());
    for (b, k) in [
        ("global_defs", "vrrp_garp_interval"),
        ("vrrp_instance", "use_vmac"),
        ("vrrp_track_process", "param_match"),
        ("vrrp_track_file", "init_file"),
        ("top", "static_routes"),
    ] {
        assert!(list.iter().any(|(lb, lk)| lb == b && lk == k), "{b} {k}");
    }
}

#[test]
fn every_keepalived_keyword_is_acted_on_or_warned_at_its_line() {
    let mut failures = Vec::new();
    for (block, key) in keyword_list(LIST) {
        let acted = ACTED_ON.iter().any(|(b, k)| *b == block && *k == key);
        if acted && block == "top" {
            // Whole blocks with required contents; every other test of this crate reads them.
            continue;
        }
        let values: Vec<&str> = match SAMPLES.iter().find(|(b, k, _)| *b == block && *k == key) {
            Some((_, _, v)) => vec![v],
            None => CANDIDATES.to_vec(),
        };
        let mut outcome = None;
        for value in values {
            let (text, line) = placed(&block, &format!("{key}{value}"));
            match parse_str(&text, &file()) {
                Ok(c) => {
                    outcome = Some((c.warnings, line, text));
                    break;
                }
                Err(ConfigError::Invalid { errors, .. }) => {
                    if outcome.is_none()
                        && errors.iter().any(|e| e.message.contains("unknown keyword"))
                    {
                        failures.push(format!("{block} {key}: unknown keyword: {}", errors[0]));
                        break;
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
        let Some((warnings, line, text)) = outcome else {
            if !failures
                .iter()
                .any(|f| f.starts_with(&format!("{block} {key}:")))
            {
                failures.push(format!("{block} {key}: no value tried parses"));
            }
            continue;
        };
        // A block's warning may point at the line inside it that it is about.
        let named = |w: &&tandem_config::Diagnostic| {
            (line..=line + 1).contains(&w.location.line)
                && (w.message.contains(&format!("`{key}`"))
                    || w.message.contains(&format!("`{block}`")))
        };
        let warned = warnings.iter().any(|w| named(&w));
        match (acted, warned) {
            (true, _) | (false, true) => {}
            (false, false) => failures.push(format!(
                "{block} {key}: neither acted on nor warned at line {line} of:\n{text}warnings: {:?}",
                warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} keyword(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// keepalived sets these switches whatever follows them; tandem does the same and says so.
#[test]
fn switches_ignore_a_value_as_keepalived_does() {
    for (block, key) in [
        ("vrrp_instance", "nopreempt"),
        ("vrrp_instance", "dont_track_primary"),
        ("global_defs", "vrrp_strict"),
    ] {
        let (text, line) = placed(block, &format!("{key} off"));
        let c = parse_str(&text, &file()).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(
            c.warnings.iter().any(|w| w.location.line == line
                && w.message
                    .contains("`off` is ignored, as keepalived ignores it")),
            "{key}: {:?}",
            c.warnings
        );
        match key {
            "nopreempt" => assert!(c.instances[0].nopreempt),
            "dont_track_primary" => assert!(c.instances[0].dont_track_primary),
            _ => assert!(c.global.vrrp_strict),
        }
    }
    let (text, _) = placed("vrrp_instance", "preempt 0");
    assert!(!parse_str(&text, &file()).unwrap().instances[0].nopreempt);
}
