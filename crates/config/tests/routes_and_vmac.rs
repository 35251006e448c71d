//! `virtual_routes`, `virtual_rules`, `use_vmac` and the gratuitous ARP timing keywords, read
//! with keepalived 2.2's grammar.

mod common;

use common::*;

use std::net::IpAddr;
use std::time::Duration;

use tandem_config::{RouteKind, RuleAction, Scope, VirtualRoute, VirtualRule};

fn instance(body: &str) -> String {
    format!("vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {{\n  10.0.0.254/24\n }}\n{body}}}\n")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn routes(body: &str) -> Vec<VirtualRoute> {
    let c = ok(&instance(&format!(" virtual_routes {{\n{body} }}\n")));
    c.instances[0].virtual_routes.clone()
}

fn rules(body: &str) -> (Vec<VirtualRule>, Vec<String>) {
    let c = ok(&instance(&format!(" virtual_rules {{\n{body} }}\n")));
    (c.instances[0].virtual_rules.clone(), warnings(&c))
}

#[test]
fn routes_read_keepalived_s_words_in_any_order() {
    let r = routes(
        "  src 10.0.0.254 to 192.168.109.0/24 via 10.0.0.1 dev eth1\n\
           192.168.110.0/24 gw 10.0.0.1 table 100 metric 5 scope link\n\
           blackhole 192.168.114.0/24\n\
           default via 10.0.0.1 table main no_track\n\
           unreachable 192.168.115.0/24 table 101 preference 7\n",
    );
    assert_eq!(r.len(), 5);
    assert_eq!(
        (r[0].destination, r[0].prefix_len),
        (ip("192.168.109.0"), 24)
    );
    assert_eq!(r[0].source, Some(ip("10.0.0.254")));
    assert_eq!(r[0].via, Some(ip("10.0.0.1")));
    assert_eq!(r[0].dev.as_deref(), Some("eth1"));
    assert_eq!(
        (r[0].table, r[0].track, r[0].kind),
        (254, true, RouteKind::Unicast)
    );
    assert_eq!(
        (r[1].table, r[1].metric, r[1].scope),
        (100, Some(5), Some(Scope::Link))
    );
    assert_eq!(r[2].kind, RouteKind::Blackhole);
    assert_eq!((r[3].destination, r[3].prefix_len), (ip("0.0.0.0"), 0));
    assert!(!r[3].track);
    assert_eq!(
        (r[4].kind, r[4].table, r[4].metric),
        (RouteKind::Unreachable, 101, Some(7))
    );
}

#[test]
fn a_route_without_destination_or_with_mixed_families_is_an_error() {
    let e = errors(&instance(" virtual_routes {\n  via 10.0.0.1\n }\n"));
    assert_eq!(
        e,
        ["k.conf:8:3: `virtual_routes`: a route needs a destination"]
    );
    let e = errors(&instance(
        " virtual_routes {\n  fd00::/64 via 10.0.0.1\n }\n",
    ));
    assert_eq!(
        e,
        ["k.conf:8:17: `virtual_routes`: `10.0.0.1` mixes IPv4 and IPv6 on one line"]
    );
    let e = errors(&instance(
        " virtual_routes {\n  10.1.0.0/24 table nosuchtable\n }\n",
    ));
    assert!(e[0].contains("routing table `nosuchtable`"), "{e:?}");
}

#[test]
fn route_options_tandem_leaves_out_are_located_warnings() {
    let c = ok(&instance(
        " virtual_routes {\n  10.1.0.0/24 via 10.0.0.1 mtu 1400 onlink\n  10.2.0.0/24 nexthop via 10.0.0.1\n }\n",
    ));
    assert_eq!(c.instances[0].virtual_routes.len(), 1);
    let w = warnings(&c);
    assert!(
        w.iter().any(|w| w.starts_with("k.conf:8:28: `mtu`")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w.starts_with("k.conf:8:37: `onlink`")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w.starts_with("k.conf:9:15: `nexthop`") && w.contains("will not be installed")),
        "{w:?}"
    );
}

#[test]
fn rules_read_keepalived_s_words() {
    let (r, w) = rules(
        "  from 192.168.2.0/24 table 100 priority 100\n\
           to 192.168.3.0/24 lookup 101 no_track preference 101\n\
           iif eth0 fwmark 0x10/0xff prohibit priority 102\n\
           not from 10.9.0.0/16 oif eth1 table main order 103\n\
           inet6 from fd00::/64 table 100 priority 104\n",
    );
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(r.len(), 5);
    assert_eq!(r[0].from, Some((ip("192.168.2.0"), 24)));
    assert_eq!(
        (r[0].action, r[0].priority, r[0].track),
        (RuleAction::Table(100), 100, true)
    );
    assert_eq!(
        (r[1].to, r[1].track),
        (Some((ip("192.168.3.0"), 24)), false)
    );
    assert_eq!(r[2].iif.as_deref(), Some("eth0"));
    assert_eq!(
        (r[2].fwmark, r[2].action),
        (Some((16, Some(255))), RuleAction::Prohibit)
    );
    assert!(r[3].invert);
    assert_eq!(
        (r[3].oif.as_deref(), r[3].action),
        (Some("eth1"), RuleAction::Table(254))
    );
    assert!(r[4].ipv6 && !r[0].ipv6);
}

#[test]
fn a_rule_without_preference_is_numbered_down_from_16384_with_a_warning() {
    let (r, w) = rules("  from 10.1.0.0/16 table 100\n  from 10.2.0.0/16 table 100\n");
    assert_eq!((r[0].priority, r[1].priority), (16384, 16383));
    assert_eq!(w.len(), 2);
    assert!(
        w[0].starts_with("k.conf:8:3: `virtual_rules`: the rule has no preference: it gets 16384"),
        "{w:?}"
    );
}

#[test]
fn a_rule_needs_one_action() {
    let e = errors(&instance(
        " virtual_rules {\n  from 10.1.0.0/16 priority 5\n }\n",
    ));
    assert!(
        e[0].starts_with("k.conf:8:3: `virtual_rules`: the rule has no action"),
        "{e:?}"
    );
    let e = errors(&instance(
        " virtual_rules {\n  from 10.1.0.0/16 table 5 blackhole priority 5\n }\n",
    ));
    assert!(e[0].contains("found a second one `blackhole`"), "{e:?}");
    let e = errors(&instance(
        " virtual_rules {\n  from 10.1.0.0/16 goto 5 priority 6\n }\n",
    ));
    assert!(
        e[0].contains("preference 6 must be below the goto target 5"),
        "{e:?}"
    );
}

#[test]
fn use_vmac_defaults_to_vrrp_dot_vrid() {
    let c = ok(&instance(" use_vmac\n"));
    assert_eq!(c.instances[0].use_vmac.as_deref(), Some("vrrp.7"));
    assert!(warnings(&c).is_empty(), "{:?}", warnings(&c));
    let c = ok(&instance(" use_vmac vmac7\n vmac_xmit_base\n"));
    assert_eq!(c.instances[0].use_vmac.as_deref(), Some("vmac7"));
    assert!(c.instances[0].vmac_xmit_base);
    let e = errors(&instance(" use_vmac a_name_too_long_for_linux\n"));
    assert!(e[0].contains("must be 1 to 15 bytes"), "{e:?}");
    let c = ok(&instance(
        " use_vmac name vm7 00:11:22:33:44:55 netlink_notify_msg group 5\n",
    ));
    assert_eq!(c.instances[0].use_vmac.as_deref(), Some("vm7"));
    let w = warnings(&c);
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].starts_with("k.conf:7:20: a MAC address on `use_vmac`"),
        "{w:?}"
    );
}

#[test]
fn garp_timing_keywords_are_read_globally_and_per_instance() {
    let c = ok(&format!(
        "global_defs {{\n vrrp_garp_master_refresh 30\n vrrp_garp_master_refresh_repeat 2\n \
         vrrp_garp_interval 0.01\n vrrp_gna_interval 0.02\n}}\n{}",
        instance(" garp_master_repeat 3\n garp_master_refresh 2\n garp_master_refresh_repeat 4\n")
    ));
    let g = &c.global;
    assert_eq!(g.garp_master_refresh, Duration::from_secs(30));
    assert_eq!(g.garp_master_refresh_repeat, 2);
    assert_eq!(g.garp_interval, Duration::from_millis(10));
    assert_eq!(g.gna_interval, Duration::from_millis(20));
    let i = &c.instances[0];
    assert_eq!(i.garp_master_repeat, Some(3));
    assert_eq!(i.garp_master_refresh, Some(Duration::from_secs(2)));
    assert_eq!(i.garp_master_refresh_repeat, Some(4));
    assert!(warnings(&c).is_empty(), "{:?}", warnings(&c));
}

#[test]
fn vrrp_min_garp_keeps_values_written_before_it() {
    let c = ok("global_defs {\n vrrp_garp_master_repeat 3\n vrrp_min_garp\n}\n");
    assert_eq!(c.global.garp_master_repeat, 3);
    assert_eq!(c.global.garp_master_delay, Duration::ZERO);
    let c = ok("global_defs {\n vrrp_min_garp\n vrrp_garp_master_repeat 4\n}\n");
    assert_eq!(c.global.garp_master_repeat, 4);
    let c = ok("global_defs {\n vrrp_min_garp\n}\n");
    assert_eq!(c.global.garp_master_repeat, 1);
}
