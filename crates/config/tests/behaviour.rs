//! Parsing rules checked on small inline configurations.

mod common;

use common::*;

use std::path::Path;
use std::time::Duration;

use tandem_config::{check_interfaces, parse_str, Config, Severity};

/// The warnings, less the one every address-less test instance gets (checked on its own).
fn warnings(c: &Config) -> Vec<String> {
    c.warnings
        .iter()
        .map(|d| d.to_string())
        .filter(|w| !w.contains("has no `virtual_ipaddress`"))
        .collect()
}

/// An instance with the required lines, followed by `body` and the closing brace.
fn instance(body: &str) -> String {
    format!("vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n{body}}}\n")
}

#[test]
fn all_errors_are_reported_in_file_order() {
    let text = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 0\n priority 0\n state SLAVE\n bogus 1\n}\n";
    assert_eq!(
        errors(text),
        [
            "k.conf:1:15: vrrp_instance `VI_1` has no `virtual_router_id` line",
            "k.conf:3:20: `virtual_router_id` expects 1..=255, found `0`",
            "k.conf:4:11: `priority` expects 1..=255, found `0`",
            "k.conf:5:8: `state` expects MASTER or BACKUP, found `SLAVE`",
            "k.conf:6:2: unknown keyword `bogus` in vrrp_instance",
        ]
    );
}

#[test]
fn defaults() {
    let c = ok(&instance(""));
    let i = &c.instances[0];
    assert_eq!((i.priority, i.version), (100, 2));
    assert_eq!(i.advert_int, Duration::from_secs(1));
    assert_eq!(i.preempt_delay, Duration::ZERO);
    assert!(!i.nopreempt && i.authentication.is_none() && i.initial_state.is_none());
    assert_eq!(c.global.vrrp_version, 2);
    assert_eq!(c.global.mcast_group4.to_string(), "224.0.0.18");
    assert!(warnings(&c).is_empty());
}

#[test]
fn global_version_applies_to_instances_and_allows_subsecond_adverts() {
    let text = format!(
        "{}global_defs {{\n vrrp_version 3\n}}\n",
        instance(" advert_int 0.25\n virtual_ipaddress {\n  fd00::1\n }\n")
    );
    let c = ok(&text);
    assert_eq!(c.instances[0].version, 3);
    assert_eq!(c.instances[0].advert_int, Duration::from_millis(250));
    assert_eq!(c.instances[0].virtual_addresses[0].prefix_len, 128);
}

#[test]
fn advert_int_limits() {
    assert_eq!(
        errors(&instance(" version 3\n advert_int 41\n")),
        ["k.conf:5:13: `advert_int` for VRRP version 3 expects seconds 0.01..=40.95 in steps of 0.01, found `41`"]
    );
    assert_eq!(
        errors(&instance(" advert_int 0\n")),
        ["k.conf:4:13: `advert_int` expects whole seconds 1..=255, found `0`"]
    );
    assert_eq!(
        errors(&instance(" version 3\n advert_int 0.005\n")).len(),
        1
    );
}

#[test]
fn brace_on_the_next_line_and_glued_braces() {
    let c = ok("vrrp_instance VI_1\n{\n interface eth0\n virtual_router_id 3\n virtual_ipaddress{10.0.0.1}}\n");
    assert_eq!(c.instances[0].virtual_addresses.len(), 1);
}

#[test]
fn extra_values_point_at_the_extra_word() {
    assert_eq!(
        errors(&instance(" authentication { auth_type PASS auth_pass x }\n")),
        [
            "k.conf:4:34: `auth_type` takes one value, found extra `auth_pass` (put each setting on its own line)",
        ]
    );
    assert_eq!(
        errors(&instance(" virtual_ipaddress { 10.0.0.1 10.0.0.2 }\n")),
        ["k.conf:4:31: unknown option `10.0.0.2` in `virtual_ipaddress`: expected dev, brd, label or scope (put each address on its own line)"]
    );
}

#[test]
fn vip_options() {
    let c = ok(&instance(
        " virtual_ipaddress {\n  10.0.0.1/24 brd + dev eth1 scope 200 label eth1:a noprefixroute\n  10.0.0.2/24 brd -\n }\n",
    ));
    let v = &c.instances[0].virtual_addresses;
    assert_eq!(v[0].broadcast, Some(tandem_config::Broadcast::Derived));
    assert_eq!(v[0].scope, Some(tandem_config::Scope::Other(200)));
    assert_eq!(v[1].broadcast, Some(tandem_config::Broadcast::None));
    assert_eq!(
        warnings(&c),
        ["k.conf:5:53: `noprefixroute` on a `virtual_ipaddress` line is not supported by tandem (ignored)"]
    );
    assert_eq!(
        errors(&instance(
            " virtual_ipaddress {\n  fd00::1 brd +\n }\n version 3\n"
        )),
        ["k.conf:5:11: `brd` applies to IPv4 addresses only, not `fd00::1`"]
    );
    assert_eq!(
        errors(&instance(" virtual_ipaddress {\n  10.0.0.1/33\n  10.0.0.2 dev\n }\n")),
        [
            "k.conf:5:3: `virtual_ipaddress`: prefix length of `10.0.0.1/33` must be 0..=32, found `33`",
            "k.conf:6:12: `dev` in `virtual_ipaddress` expects a value, found end of line",
        ]
    );
}

#[test]
fn unicast_family_must_match() {
    assert_eq!(
        errors(&instance(" unicast_src_ip fd00::2\n virtual_ipaddress {\n  10.0.0.1\n }\n unicast_peer {\n  10.0.0.3\n  fd00::3\n }\n")),
        [
            "k.conf:4:17: `fd00::2` is not IPv4 like the virtual addresses of vrrp_instance `VI_1`",
            "k.conf:10:3: `fd00::3` is not IPv4 like the virtual addresses of vrrp_instance `VI_1`",
        ]
    );
}

#[test]
fn mcast_src_ip_is_the_advert_source() {
    let c = ok(&instance(" mcast_src_ip 10.0.0.2\n"));
    assert_eq!(
        c.instances[0].unicast_src_ip,
        Some("10.0.0.2".parse().expect("ip"))
    );
}

#[test]
fn auth_is_dropped_for_v3_and_ah_is_warned() {
    let c = ok(&instance(
        " version 3\n authentication {\n  auth_type PASS\n  auth_pass x\n }\n",
    ));
    assert_eq!(c.instances[0].authentication, None);
    assert!(warnings(&c)[0].contains("does not exist in VRRPv3"));
    let c = ok(&instance(
        " authentication {\n  auth_type AH\n  auth_pass x\n }\n",
    ));
    assert_eq!(
        c.instances[0].authentication,
        Some(tandem_config::Authentication::Ah)
    );
    assert!(warnings(&c)[0].contains("`auth_type AH` is not supported"));
    assert_eq!(
        errors(&instance(" authentication {\n  auth_type PASS\n }\n")),
        ["k.conf:5:13: `auth_type PASS` needs an `auth_pass` line in the same block"]
    );
}

#[test]
fn unsupported_keywords_warn_with_location() {
    let c = ok(&format!(
        "global_defs {{\n  vrrp_no_swap\n  max_auto_priority 10\n}}\n{}static_routes {{\n  10.9.0.0/16 via 10.0.0.254\n}}\nnet_namespace blue\n",
        instance(" use_ipvlan\n debug\n no_accept\n native_ipv6\n")
    ));
    assert_eq!(
        warnings(&c),
        [
            "k.conf:2:3: `vrrp_no_swap` is not supported by tandem (ignored)",
            "k.conf:3:3: `max_auto_priority` is not supported by tandem (ignored)",
            "k.conf:8:2: `use_ipvlan` is not supported by tandem (ignored)",
            "k.conf:9:2: `debug` is not supported by tandem (ignored)",
            "k.conf:10:2: `no_accept` is not supported by tandem (ignored)",
            "k.conf:11:2: `native_ipv6` is not supported by tandem (ignored)",
            "k.conf:13:1: `static_routes` is not yet supported by tandem (ignored)",
            "k.conf:16:1: `net_namespace` is not supported by tandem (ignored)",
        ]
    );
    assert!(c.warnings.iter().all(|w| w.severity == Severity::Warning));
}

#[test]
fn unknown_keywords_in_each_block() {
    assert_eq!(
        errors("frobnicate 1\n"),
        ["k.conf:1:1: unknown keyword `frobnicate` in the top level"]
    );
    assert_eq!(
        errors("global_defs {\n router_idd x\n}\n"),
        ["k.conf:2:2: unknown keyword `router_idd` in global_defs"]
    );
    assert_eq!(
        errors("vrrp_script s {\n script x\n intervall 2\n}\n"),
        ["k.conf:3:2: unknown keyword `intervall` in vrrp_script"]
    );
    assert_eq!(
        errors("$UNDEFINED x\n"),
        ["k.conf:1:1: unknown keyword `$UNDEFINED`: no parameter of that name is defined above this line (`$NAME=value`)"]
    );
}

#[test]
fn notify_scripts_keep_quoted_commands_and_warn_about_users() {
    let c = ok(&instance(
        " notify_master \"/x.sh 'a b' c\"\n notify_backup /y.sh root\n",
    ));
    let n = &c.instances[0].notify;
    assert_eq!(n.master.as_deref(), Some("/x.sh 'a b' c"));
    assert_eq!(n.backup.as_deref(), Some("/y.sh"));
    assert!(warnings(&c)[0].starts_with("k.conf:5:22: `notify_backup`: words after the script"));
}

#[test]
fn vrrp_script_fields() {
    let c = ok("vrrp_script s {\n script \"/bin/true\"\n interval 0.5\n weight 10 reverse\n user nobody nogroup\n init_fail\n}\n");
    let s = &c.scripts[0];
    assert_eq!(s.interval, Duration::from_millis(500));
    assert_eq!(s.weight, 10);
    assert_eq!(
        (s.user.as_deref(), s.group.as_deref()),
        (Some("nobody"), Some("nogroup"))
    );
    assert!(s.reverse);
    assert!(s.init_fail);
    // Acted on: nothing to warn about.
    assert_eq!(warnings(&c), Vec::<String>::new());
    assert_eq!(
        errors("vrrp_script s {\n interval 1\n}\n"),
        ["k.conf:1:13: vrrp_script `s` has no `script` line"]
    );
    assert_eq!(
        errors("vrrp_script s {\n script x\n weight 300\n}\n"),
        ["k.conf:3:9: `weight` expects -253..=253, found `300`"]
    );
}

#[test]
fn switches_ignore_values_where_keepalived_does() {
    let c = ok(&format!(
        "global_defs {{\n vrrp_strict off\n vrrp_check_unicast_src\n}}\n{}",
        instance(" nopreempt yes\n")
    ));
    // keepalived sets these switches whatever follows them (its handlers never read a value):
    // `vrrp_strict off` still sets vrrp_strict, with a warning saying so.
    assert!(c.global.vrrp_strict);
    assert!(c.global.check_unicast_src);
    assert!(c.instances[0].nopreempt);
    assert!(warnings(&c)
        .iter()
        .any(|w| w.contains("`off` is ignored, as keepalived ignores it")));
    let c = ok(&instance(" nopreempt 5\n"));
    assert!(c.instances[0].nopreempt);
    // Switches keepalived reads a value for still take one.
    assert!(!ok(&instance(" lower_prio_no_advert off\n")).instances[0]
        .lower_prio_no_advert
        .unwrap());
}

#[test]
fn global_values() {
    let c = ok("global_defs {\n vrrp_mcast_group4 224.0.0.19\n vrrp_mcast_group6 ff02::13\n script_user ka ka_grp\n smtp_server mail.example.net\n}\n");
    assert_eq!(c.global.mcast_group4.to_string(), "224.0.0.19");
    assert_eq!(c.global.mcast_group6.to_string(), "ff02::13");
    assert_eq!(c.global.script_group.as_deref(), Some("ka_grp"));
    assert_eq!(c.global.smtp_server.as_deref(), Some("mail.example.net"));
    assert_eq!(c.global.smtp_port, 25);
    // Read, checked, and said not to act (script_user is acted on).
    let w = warnings(&c);
    assert!(!w.iter().any(|w| w.contains("script_user")), "{w:?}");
    assert!(
        w.iter()
            .any(|w| w.contains("k.conf:5:2") && w.contains("no e-mail")),
        "{w:?}"
    );
    assert_eq!(
        errors("global_defs {\n vrrp_mcast_group4 10.0.0.1\n}\n"),
        ["k.conf:2:20: `vrrp_mcast_group4` expects an IPv4 multicast address (224.0.0.0/4), found `10.0.0.1`"]
    );
}

#[test]
fn same_vrid_on_another_family_or_interface_is_fine() {
    let text = "vrrp_instance A {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n\
                vrrp_instance B {\n interface eth0\n virtual_router_id 5\n version 3\n virtual_ipaddress {\n fd00::1\n }\n}\n\
                vrrp_instance C {\n interface eth1\n virtual_router_id 5\n}\n";
    assert_eq!(ok(text).instances.len(), 3);
}

#[test]
fn missing_block_or_name() {
    assert_eq!(
        errors("vrrp_instance {\n}\n"),
        ["k.conf:1:1: `vrrp_instance` expects a name before its `{`"]
    );
    assert_eq!(
        errors("vrrp_instance VI_1\n"),
        ["k.conf:1:1: `vrrp_instance VI_1` expects a block `{ ... }`"]
    );
    assert_eq!(errors(&instance(" virtual_ipaddress 10.0.0.1\n")).len(), 2);
    assert_eq!(
        errors(&instance(" priority 5 {\n }\n")),
        ["k.conf:4:13: `priority` does not take a `{ ... }` block"]
    );
}

#[test]
fn include_from_parse_str_is_relative_to_the_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/include_glob");
    let c = parse_str(
        "include conf.d/{10-wan,20-lan}.conf\n",
        &dir.join("virtual.conf"),
    )
    .expect("parses");
    assert_eq!(c.instances.len(), 2);
}

#[test]
fn include_cycle_is_an_error() {
    let dir = std::env::temp_dir().join(format!("tandem-config-cycle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    std::fs::write(dir.join("a.conf"), "include b.conf\n").expect("write");
    std::fs::write(dir.join("b.conf"), "global_defs {\n}\ninclude a.conf\n").expect("write");
    let err = tandem_config::load(&dir.join("a.conf")).expect_err("cycle");
    let _ = std::fs::remove_dir_all(&dir);
    let d = &err.diagnostics()[0];
    assert!(d.location.file.ends_with("b.conf"));
    assert_eq!((d.location.line, d.location.column), (3, 9));
    assert!(d.message.contains("loops back"), "{}", d.message);
}

#[test]
fn interfaces_missing_on_this_host_are_warned() {
    let c = ok(&instance(
        " virtual_ipaddress {\n  10.0.0.1 dev eth9\n }\n track_interface {\n  eth0\n  bond7\n }\n",
    ));
    let exists = |name: &str| name == "eth0";
    let w: Vec<String> = check_interfaces(&c, exists)
        .iter()
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(
        w,
        [
            "vrrp_instance `VI_1`: `dev eth9` for 10.0.0.1 does not exist on this host",
            "vrrp_instance `VI_1`: tracked interface `bond7` does not exist on this host",
        ]
    );
    assert_eq!(check_interfaces(&c, |_| false).len(), 4);
}

#[test]
fn render_shows_a_caret_under_tabs_correctly() {
    let err = parse_str(
        "vrrp_instance VI_1 {\n\tinterface eth0\n\tvirtual_router_id 1\n\tpriority x\n}\n",
        Path::new("k.conf"),
    )
    .expect_err("bad");
    let r = err.diagnostics()[0].render();
    assert_eq!(r, "error: k.conf:4:11: `priority` expects 1..=255, found `x`\n    4 | \tpriority x\n      | \t         ^");
}

#[test]
fn lower_and_higher_priority_answer_keywords_are_read_not_warned() {
    let text = format!(
        "global_defs {{\n vrrp_lower_prio_no_advert\n vrrp_garp_lower_prio_repeat 2\n vrrp_garp_lower_prio_delay 3\n}}\n{}",
        instance(" garp_lower_prio_repeat 0\n higher_prio_send_advert on\n lower_prio_no_advert off\n")
    );
    let c = ok(&text);
    assert!(warnings(&c).is_empty(), "{:?}", warnings(&c));
    assert!(c.global.lower_prio_no_advert);
    assert_eq!(c.global.garp_lower_prio_repeat, Some(2));
    assert_eq!(c.global.garp_lower_prio_delay, Some(Duration::from_secs(3)));
    let vi = &c.instances[0];
    assert_eq!(vi.garp_lower_prio_repeat, Some(0));
    assert_eq!(vi.higher_prio_send_advert, Some(true));
    assert_eq!(vi.lower_prio_no_advert, Some(false));
    // The owner's RFC behaviour is tandem's only one: `on` is silent, `off` a warning.
    let c = ok(&instance(" owner_ignore_adverts\n"));
    assert!(warnings(&c).is_empty(), "{:?}", warnings(&c));
    let c = ok(&instance(" owner_ignore_adverts off\n"));
    assert!(warnings(&c)[0].contains("k.conf:4:2"), "{:?}", warnings(&c));
}

#[test]
fn unicast_addresses_with_a_prefix_length_lose_it_with_a_warning() {
    let c = ok(&instance(
        " unicast_src_ip 10.0.0.1/24\n unicast_peer {\n  10.0.0.2/24\n }\n",
    ));
    let vi = &c.instances[0];
    assert_eq!(vi.unicast_src_ip, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(
        vi.unicast_peers,
        ["10.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    let w = warnings(&c);
    assert!(
        w[0].contains("k.conf:4:17") && w[0].contains("prefix length"),
        "{w:?}"
    );
    assert!(w[1].contains("k.conf:6:3"), "{w:?}");
    // Anything else after the address is still an error.
    assert!(!errors(&instance(" unicast_src_ip 10.0.0.1/x\n")).is_empty());
}

#[test]
fn ipv6_addresses_run_vrrp_version_3_as_keepalived_switches_them() {
    for version_line in ["", " version 2\n"] {
        let c = ok(&instance(&format!(
            "{version_line} virtual_ipaddress {{\n  fd00::1/64\n }}\n"
        )));
        assert_eq!(c.instances[0].version, 3);
        let w = warnings(&c);
        assert!(w.iter().any(|w| w.contains("runs VRRP version 3")), "{w:?}");
    }
}

/// What `keepalived -t` counts as configuration errors (and runs with something other than
/// what was written) is refused, at the line it names.
#[test]
fn refused_like_keepalived_does() {
    let long_pass = instance(
        " authentication {\n  auth_type PASS\n  auth_pass 123456789\n }\n virtual_ipaddress {\n  10.0.0.1\n }\n",
    );
    assert_eq!(
        errors(&long_pass),
        ["k.conf:6:13: `auth_pass` is 9 bytes, VRRP carries 8: write the 8 the peers use (keepalived truncates it to `12345678` and reports a configuration error)"]
    );
    let ah_master = instance(
        " state MASTER\n authentication {\n  auth_type AH\n }\n virtual_ipaddress {\n  10.0.0.1\n }\n",
    );
    assert!(errors(&ah_master)[0].starts_with(
        "k.conf:5:2: vrrp_instance `VI_1`: `state MASTER` cannot be used with `auth_type AH`"
    ));
    let empty_mail = "global_defs {\n notification_email {\n }\n}\n";
    assert!(errors(empty_mail)[0].starts_with("k.conf:2:2: `notification_email` block is empty"));
    for zero in [
        "vrrp_garp_interval 0",
        "vrrp_gna_interval 0",
        "vrrp_gna_interval x",
    ] {
        let text = format!("global_defs {{\n {zero}\n}}\n");
        assert!(
            errors(&text)[0].contains("expects seconds greater than 0"),
            "{zero}"
        );
    }
    let c = ok("global_defs {\n vrrp_garp_interval 0.001\n}\n");
    assert_eq!(c.global.garp_interval, Duration::from_millis(1));
    assert!(warnings(&c).is_empty(), "{:?}", warnings(&c));
}

#[test]
fn an_instance_without_addresses_is_accepted_with_a_warning() {
    let c = ok(&instance(""));
    let all: Vec<String> = c.warnings.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        all,
        ["k.conf:1:15: vrrp_instance `VI_1` has no `virtual_ipaddress`: it elects a master and runs its notify scripts, but moves no address"]
    );
}

#[test]
fn track_files_and_tracking_in_instances_and_sync_groups() {
    let text = format!(
        "vrrp_script chk {{\n script /bin/true\n}}\ntrack_file tf {{\n file /run/x\n weight -3 reverse\n init_file 7 overwrite\n}}\nvrrp_track_file old {{\n file /run/y\n}}\n{}vrrp_sync_group G {{\n group {{\n  VI_1\n }}\n track_script {{\n  chk weight 5 reverse\n }}\n track_file {{\n  old weight 0\n }}\n sync_group_tracking_weight\n}}\n",
        instance(" track_file {\n  tf weight 254\n }\n track_script {\n  chk\n }\n")
    );
    let c = ok(&text);
    assert_eq!(warnings(&c), Vec::<String>::new());
    let tf = &c.track_files[0];
    assert_eq!(
        (tf.weight, tf.reverse, tf.init),
        (-3, true, Some((7, true)))
    );
    assert_eq!(tf.file, std::path::PathBuf::from("/run/x"));
    assert_eq!(c.track_files[1].weight, 1, "keepalived's default weight");
    let i = &c.instances[0];
    assert_eq!(i.track_files[0].weight, Some(254));
    assert_eq!(i.track_scripts[0].weight, None);
    let g = &c.sync_groups[0];
    assert!(g.tracking_weight);
    assert_eq!(
        (g.track_scripts[0].weight, g.track_scripts[0].reverse),
        (Some(5), true)
    );
    assert_eq!(g.track_files[0].weight, Some(0));

    let missing = errors(&instance(" track_file {\n  nope\n }\n"));
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0].contains("no track_file block by that name"),
        "{missing:?}"
    );
    assert_eq!(
        errors("track_file t {\n weight 2\n}\n"),
        ["k.conf:1:12: track_file `t` has no `file` line"]
    );
}

#[test]
fn mail_alert_settings_follow_keepalived_s_precedence() {
    let global = "global_defs {\n notification_email {\n  ops@example.net\n  noc@example.net\n }\n notification_email_from tandem@example.net\n smtp_server 192.0.2.25 2525\n smtp_helo_name lb1.example.net\n smtp_connect_timeout 5\n smtp_alert off\n smtp_alert_vrrp on\n no_email_faults\n}\n";
    let text = format!(
        "{global}{}{}vrrp_sync_group G1 {{\n group {{\n  VI_1\n }}\n smtp_alert off\n}}\n",
        instance(" smtp_alert no\n"),
        "vrrp_instance VI_2 {\n interface eth0\n virtual_router_id 2\n}\n",
    );
    let c = ok(&text);
    let g = &c.global;
    assert_eq!(g.notification_email, ["ops@example.net", "noc@example.net"]);
    assert_eq!(g.smtp_port, 2525);
    assert_eq!(g.smtp_helo_name.as_deref(), Some("lb1.example.net"));
    assert_eq!(g.smtp_connect_timeout, Some(Duration::from_secs(5)));
    assert!(g.no_email_faults);
    // The instance's own word wins, then smtp_alert_vrrp, then smtp_alert.
    assert!(!g.smtp_alert_for(c.instances[0].smtp_alert));
    assert!(g.smtp_alert_for(c.instances[1].smtp_alert));
    assert!(!g.smtp_alert_for(c.sync_groups[0].smtp_alert));
    assert_eq!(warnings(&c), Vec::<String>::new());

    // Mail configured but nothing alerting (keepalived's default is off): said at the block.
    let quiet = ok(
        "global_defs {\n notification_email {\n  ops@example.net\n }\n smtp_server 192.0.2.25\n}\n",
    );
    let w = warnings(&quiet);
    assert!(
        w.iter()
            .any(|w| w.starts_with("k.conf:2:2") && w.contains("no e-mail is sent")),
        "{w:?}"
    );
}

#[test]
fn notify_fifos_with_owner_and_reader_script() {
    let c = ok("global_defs {\n notify_fifo /run/k.fifo nobody nogroup\n notify_fifo_script \"/usr/bin/reader -v\" nobody\n vrrp_notify_fifo /run/v.fifo\n vrrp_notify_fifo /run/other.fifo\n}\n");
    let g = &c.global;
    let f = g.notify_fifo.as_ref().unwrap();
    assert_eq!(f.path, Path::new("/run/k.fifo"));
    assert_eq!(f.user.as_deref(), Some("nobody"));
    assert_eq!(f.group.as_deref(), Some("nogroup"));
    let s = g.notify_fifo_script.as_ref().unwrap();
    assert_eq!(s.command, "/usr/bin/reader -v");
    assert_eq!(s.user.as_deref(), Some("nobody"));
    assert_eq!(s.group, None);
    // A second one is ignored, as keepalived does, and said so.
    let v = g.vrrp_notify_fifo.as_ref().unwrap();
    assert_eq!(v.path, Path::new("/run/v.fifo"));
    let w = warnings(&c);
    assert!(
        w.iter()
            .any(|w| w.starts_with("k.conf:5:19") && w.contains("given twice")),
        "{w:?}"
    );
    assert_eq!(
        errors("global_defs {\n notify_fifo\n}\n"),
        ["k.conf:2:2: `notify_fifo` expects PATH [USER [GROUP]], found end of line"]
    );
}
