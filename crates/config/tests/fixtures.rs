//! Realistic keepalived.conf files, good and bad, checked value by value.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tandem_config::{load, Authentication, Broadcast, Config, ConfigError, InitialState, Scope};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn good(rel: &str) -> Config {
    match load(&fixture(rel)) {
        Ok(c) => c,
        Err(e) => panic!("{rel} should load:\n{e}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn warned(config: &Config, needle: &str) -> bool {
    config.warnings.iter().any(|w| w.message.contains(needle))
}

#[test]
fn unicast_pair_with_pass_auth() {
    let c = good("good/unicast_pass.conf");
    let g = &c.global;
    assert_eq!(g.router_id.as_deref(), Some("GW_A"));
    assert_eq!(
        g.notification_email,
        ["noc@example.net", "oncall@example.net"]
    );
    assert_eq!(
        g.notification_email_from.as_deref(),
        Some("gw-a@example.net")
    );
    assert_eq!(g.smtp_server.as_deref(), Some("192.0.2.25"));
    assert_eq!(g.smtp_port, 587);
    assert_eq!(g.smtp_connect_timeout, Some(Duration::from_secs(30)));
    assert!(g.enable_script_security);
    assert_eq!(g.script_user.as_deref(), Some("keepalived_script"));
    assert!(warned(
        &c,
        "`vrrp_skip_check_adv_addr` is not supported by tandem"
    ));
    assert_eq!(g.garp_interval, Duration::from_millis(1));

    let s = &c.scripts[0];
    assert_eq!(s.name, "chk_nft");
    assert_eq!(s.script, "/usr/local/bin/check_nft.sh --table inet filter");
    assert_eq!(s.interval, Duration::from_secs(2));
    assert_eq!(s.timeout, Some(Duration::from_secs(3)));
    assert_eq!((s.weight, s.fall, s.rise), (-20, 3, 2));

    let i = &c.instances[0];
    assert_eq!(i.name, "VI_OUTSIDE");
    assert_eq!(i.initial_state, Some(InitialState::Master));
    assert_eq!(i.interface, "ens3");
    assert_eq!((i.virtual_router_id, i.priority, i.version), (51, 150, 2));
    assert_eq!(i.advert_int, Duration::from_secs(1));
    assert_eq!(
        i.authentication,
        Some(Authentication::Pass(b"s3cr3t".to_vec()))
    );
    assert_eq!(i.unicast_src_ip, Some(ip("10.0.0.2")));
    assert_eq!(i.unicast_peers, [ip("10.0.0.3")]);
    assert_eq!(i.virtual_addresses.len(), 2);
    let v = &i.virtual_addresses[0];
    assert_eq!((v.address, v.prefix_len), (ip("192.0.2.10"), 24));
    assert_eq!(v.dev.as_deref(), Some("ens3"));
    assert_eq!(v.label.as_deref(), Some("ens3:vip"));
    assert_eq!(v.location.line, 42);
    let v = &i.virtual_addresses[1];
    assert_eq!(
        v.broadcast,
        Some(Broadcast::Address("192.0.2.255".parse().expect("v4")))
    );
    assert_eq!(v.scope, Some(Scope::Global));
    assert_eq!(i.excluded_addresses[0].address, ip("2001:db8::10"));
    assert_eq!(i.excluded_addresses[0].prefix_len, 64);
    assert_eq!(i.track_interfaces.len(), 2);
    assert_eq!(
        (
            i.track_interfaces[0].name.as_str(),
            i.track_interfaces[0].weight
        ),
        ("ens4", -30)
    );
    assert_eq!(
        (
            i.track_interfaces[1].name.as_str(),
            i.track_interfaces[1].weight
        ),
        ("ens5", 0)
    );
    assert_eq!(i.track_scripts[0].name, "chk_nft");
    assert_eq!(i.track_scripts[0].weight, None);
    assert_eq!(i.garp_master_delay, Some(Duration::from_secs(2)));
    assert_eq!(
        i.notify.notify.as_deref(),
        Some("/etc/keepalived/notify.sh")
    );
    assert_eq!(i.location.line, 27);
}

#[test]
fn nopreempt_and_preempt_delay() {
    let c = good("good/nopreempt.conf");
    let i = &c.instances[0];
    assert!(i.nopreempt);
    assert_eq!(i.preempt_delay, Duration::from_secs(300));
    assert_eq!(i.initial_state, Some(InitialState::Backup));
    assert_eq!(i.advert_int, Duration::from_secs(3));
    assert!(i.dont_track_primary);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn sync_group_with_notify_lines() {
    let c = good("good/sync_group.conf");
    assert_eq!(c.global.garp_master_delay, Duration::from_secs(10));
    assert_eq!(c.global.garp_master_repeat, 3);
    let g = &c.sync_groups[0];
    assert_eq!(g.name, "VG_FW");
    assert_eq!(g.members, ["VI_WAN", "VI_LAN"]);
    assert_eq!(
        g.notify.master.as_deref(),
        Some("/etc/conntrackd/primary-backup.sh primary")
    );
    assert_eq!(
        g.notify.backup.as_deref(),
        Some("/etc/conntrackd/primary-backup.sh backup")
    );
    assert_eq!(
        g.notify.fault.as_deref(),
        Some("/etc/conntrackd/primary-backup.sh fault")
    );
    assert_eq!(
        g.notify.notify.as_deref(),
        Some("/usr/local/sbin/log-transition.sh")
    );
    assert_eq!(
        c.instances[0].notify.stop.as_deref(),
        Some("/usr/local/sbin/vrrp-stopped.sh")
    );
    assert_eq!(c.instances.len(), 2);
}

#[test]
fn virtual_server_blocks_are_read_without_a_not_applied_warning() {
    let c = good("good/virtual_server.conf");
    assert_eq!(c.instances[0].virtual_addresses.len(), 2);
    assert_eq!(c.instances[0].virtual_addresses[0].prefix_len, 32);
    assert_eq!(c.virtual_servers.len(), 1);
    assert_eq!(c.virtual_servers[0].real_servers.len(), 1);
    assert_eq!(c.virtual_server_groups[0].name, "VSG_1");
    assert!(
        !warned(&c, "load balancing is parsed but not applied"),
        "the daemon applies load balancing now"
    );
    assert!(!warned(&c, "`virtual_server`"));
    assert!(warned(&c, "`lvs_id`"));
}

#[test]
fn ipv6_version3_instance() {
    let c = good("good/ipv6_v3.conf");
    let i = &c.instances[0];
    assert_eq!(i.version, 3);
    assert_eq!(i.advert_int, Duration::from_millis(100));
    assert_eq!(i.virtual_addresses[0].address, ip("fd00:10::1"));
    assert_eq!(i.virtual_addresses[1].scope, Some(Scope::Link));
    assert_eq!(i.unicast_peers, [ip("fd00:10::3")]);
    assert!(warned(&c, "`native_ipv6`"));
    assert!(warned(&c, "`min_ttl`"));
}

#[test]
fn one_line_blocks() {
    let c = good("good/one_line_blocks.conf");
    assert_eq!(c.global.router_id.as_deref(), Some("compact"));
    assert_eq!(c.scripts[0].script, "pidof haproxy");
    let i = &c.instances[0];
    assert_eq!(
        i.authentication,
        Some(Authentication::Pass(b"abcdefgh".to_vec()))
    );
    assert_eq!(i.virtual_addresses[0].address, ip("10.7.0.1"));
    assert_eq!(i.track_scripts[0].weight, Some(10));
    assert_eq!(i.track_interfaces[0].name, "eth1");
}

#[test]
fn includes_with_globs() {
    let c = good("good/include_glob/keepalived.conf");
    assert_eq!(c.global.router_id.as_deref(), Some("glob-test"));
    let names: Vec<&str> = c.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["VI_WAN", "VI_LAN"]);
    let wan = &c.instances[0];
    assert_eq!(wan.virtual_addresses.len(), 2);
    let loc = &wan.virtual_addresses[1].location;
    assert!(loc.file.ends_with("vips/wan.list"), "{loc:?}");
    assert_eq!(loc.line, 2);
    assert!(c.instances[1].location.file.ends_with("conf.d/20-lan.conf"));
    let missing: Vec<_> = c
        .warnings
        .iter()
        .filter(|w| w.message.contains("matches no file"))
        .collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(
        (missing[0].location.line, missing[0].location.column),
        (6, 9)
    );
}

/// Every bad fixture names its first error as `# expect: FILE:LINE:COLUMN` on line 1.
#[test]
fn bad_fixtures_point_at_the_expected_place() {
    let dir = fixture("bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/bad")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks an expect line", path.display()))
            .trim();
        let errors = match load(&path) {
            Ok(_) => panic!("{} should fail", path.display()),
            Err(ConfigError::Invalid { errors, .. }) => errors,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let first = &errors[0];
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let got = format!("{name}:{}:{}", first.location.line, first.location.column);
        assert_eq!(got, expect, "{}", first.render());
        assert!(first.source_line.is_some());
    }
}

#[test]
fn messages_and_rendering() {
    let err = load(&fixture("bad/bad_priority.conf")).expect_err("bad");
    let d = &err.diagnostics()[0];
    assert_eq!(d.message, "`priority` expects 1..=255, found `300`");
    let rendered = d.render();
    let lines: Vec<&str> = rendered.lines().collect();
    assert!(lines[0].starts_with("error: "));
    assert!(lines[0].ends_with("bad_priority.conf:5:14: `priority` expects 1..=255, found `300`"));
    assert_eq!(lines[1], "    5 |     priority 300");
    assert_eq!(lines[2], "      |              ^^^");

    let err = load(&fixture("bad/unknown_keyword.conf")).expect_err("bad");
    assert_eq!(
        err.diagnostics()[0].message,
        "unknown keyword `priorty` in vrrp_instance"
    );
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = load(Path::new("/nonexistent/keepalived.conf")).expect_err("missing");
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/keepalived.conf"));
}
