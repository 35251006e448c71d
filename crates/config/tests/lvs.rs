//! The load-balancing model read from keepalived's own samples (tests/corpus/keepalived-samples__*)
//! and from small director files: what each keyword puts in the model, keepalived's defaults,
//! and the errors and warnings with their lines.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tandem_config::{
    load_files, parse_str, Checker, Config, ConfigError, GroupEntry, HttpProtocol, LbAlgo, LbKind,
    Protocol, ServiceAddress,
};

fn sample(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(format!("keepalived-samples__{name}.conf"));
    load_files(&[path]).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn errors(text: &str) -> Vec<String> {
    match parse_str(text, &PathBuf::from("lb.conf")) {
        Err(ConfigError::Invalid { errors, .. }) => errors.iter().map(|e| e.to_string()).collect(),
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => panic!("{e}"),
    }
}

fn accepted(text: &str) -> Config {
    parse_str(text, &PathBuf::from("lb.conf")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn virtualhost_sample_ssl_get_with_two_urls_and_inherited_timing() {
    let c = sample("virtualhost");
    let vs = &c.virtual_servers[0];
    assert_eq!(
        vs.service,
        ServiceAddress::Socket {
            address: ip("192.168.200.100"),
            port: 80
        }
    );
    assert_eq!(vs.delay_loop, secs(6));
    assert_eq!(vs.lb_algo, LbAlgo::Rr);
    assert_eq!(vs.lb_kind, LbKind::Nat);
    assert_eq!(vs.persistence_timeout, Some(secs(50)));
    assert_eq!(vs.protocol, Some(Protocol::Tcp));
    assert_eq!(vs.virtualhost.as_deref(), Some("www.firewall.loc"));
    let rs = &vs.real_servers[0];
    assert_eq!(
        (rs.address, rs.port, rs.weight),
        (ip("192.168.201.100"), 80, 1)
    );
    let Checker::Ssl(ssl) = &rs.checkers[0] else {
        panic!("{:?}", rs.checkers)
    };
    assert_eq!(ssl.urls.len(), 2);
    assert_eq!(ssl.urls[1].path, "/mrtg/");
    assert_eq!(ssl.urls[0].digest.unwrap()[..2], [0xff, 0x20]);
    assert_eq!(
        ssl.urls[0].status_codes,
        [200..=299],
        "keepalived's default"
    );
    assert_eq!(ssl.http_protocol, HttpProtocol::Http10);
    assert_eq!(ssl.connection.address, ip("192.168.201.100"));
    assert_eq!(ssl.connection.port, 80);
    assert_eq!(ssl.connection.timeout, secs(3));
    assert_eq!(ssl.timing.retry, 3);
    assert_eq!(ssl.timing.delay_before_retry, secs(3));
    assert_eq!(ssl.timing.delay_loop, secs(6), "from the virtual server");
    assert_eq!(
        ssl.timing.warmup,
        secs(6),
        "warmup defaults to the delay_loop"
    );
    assert!(
        rs.smtp_alert,
        "keepalived alerts for real servers by default"
    );
}

#[test]
fn http_get_port_sample_checks_another_port() {
    let c = sample("HTTP_GET.port");
    let rs = &c.virtual_servers[0].real_servers[0];
    let (Checker::Http(h) | Checker::Ssl(h)) = &rs.checkers[0] else {
        panic!("{:?}", rs.checkers)
    };
    assert_eq!((rs.port, h.connection.port), (443, 444), "connect_port 444");
    assert_eq!(h.connection.address, rs.address);
}

#[test]
fn misc_check_sample_runs_the_script_with_keepalived_s_misc_defaults() {
    let c = sample("misc_check");
    let rs = &c.virtual_servers.last().unwrap().real_servers[0];
    let Checker::Misc(m) = &rs.checkers[0] else {
        panic!("{:?}", rs.checkers)
    };
    assert_eq!(m.path, "/usr/local/bin/script.sh");
    assert!(!m.dynamic, "misc_dynamic is commented out in the sample");
    assert_eq!(m.timing.retry, 0, "MISC_CHECK's own default");
    assert_eq!(m.timing.delay_before_retry, secs(1));
}

#[test]
fn fwmark_sample_is_refused_for_its_protocol_line_as_keepalived_does() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/keepalived-samples__fwmark.conf");
    let Err(ConfigError::Invalid { errors, .. }) = load_files(&[path]) else {
        panic!()
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].location.line, 7);
    assert!(errors[0]
        .message
        .contains("`protocol` is meaningless for a fwmark service"));
    // Without the line it is a fwmark service whose NAT real servers take the mark's ports.
    let text =
        "virtual_server fwmark 1 {\n lb_algo rr\n lb_kind NAT\n real_server 10.0.0.2 {\n }\n}\n";
    let c = accepted(text);
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.service, ServiceAddress::Fwmark(1));
    assert_eq!(vs.protocol, None);
    assert_eq!(vs.real_servers[0].port, 0);
}

#[test]
fn smtp_check_sample_host_blocks_and_helo() {
    let c = sample("SMTP_CHECK");
    let vs = &c.virtual_servers[0];
    let Checker::Smtp(first) = &vs.real_servers[0].checkers[0] else {
        panic!()
    };
    assert_eq!(first.helo_name, "foo.bar.com");
    assert_eq!(first.connection.port, 25);
    assert_eq!(first.connection.timeout, secs(30));
    assert_eq!(
        (first.timing.retry, first.timing.delay_before_retry),
        (2, secs(5))
    );
    let Checker::Smtp(second) = &vs.real_servers[1].checkers[0] else {
        panic!()
    };
    let hosts: Vec<IpAddr> = second.hosts.iter().map(|h| h.address).collect();
    assert_eq!(
        hosts,
        [ip("172.16.1.11"), ip("192.168.155.10"), ip("64.233.167.99")]
    );
    assert!(second.hosts.iter().all(|h| h.port == 25));
}

#[test]
fn virtual_server_group_sample_ranges_and_fwmarks() {
    let c = sample("virtual_server_group");
    let g = &c.virtual_server_groups[0];
    assert_eq!(g.name, "VSG_1");
    assert_eq!(
        g.entries,
        [
            GroupEntry::Range {
                first: ip("10.0.0.1"),
                last: ip("10.0.0.1"),
                port: 8080
            },
            GroupEntry::Range {
                first: ip("10.0.0.2"),
                last: ip("10.0.0.2"),
                port: 80
            },
            GroupEntry::Range {
                first: ip("192.168.200.1"),
                last: ip("192.168.200.1"),
                port: 1358
            },
            GroupEntry::Range {
                first: ip("192.168.200.3"),
                last: ip("192.168.200.10"),
                port: 80
            },
            GroupEntry::Fwmark {
                mark: 1,
                family: None
            },
            GroupEntry::Fwmark {
                mark: 2,
                family: None
            },
        ]
    );
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.service, ServiceAddress::Group("VSG_1".into()));
    assert_eq!(vs.real_servers.len(), 2);
}

#[test]
fn group_ranges_ipv6_and_prefix_forms() {
    let text = "virtual_server_group G {\n 2001:db8::1-1f 443\n 10.1.0.0/30 443\n fwmark 7\n}\n";
    let errs = errors(text);
    assert!(
        errs[0].starts_with("lb.conf:1:22: virtual_server_group `G` has IPv4 and IPv6 entries"),
        "{errs:?}"
    );
    let text = "virtual_server_group G {\n 2001:db8::1-1f 443\n fwmark 7 inet6\n}\n\
                virtual_server group G {\n lb_algo sh\n lb_kind NAT\n protocol TCP\n real_server 2001:db8::100 443\n}\n";
    let c = accepted(text);
    assert_eq!(
        c.virtual_server_groups[0].entries[0],
        GroupEntry::Range {
            first: ip("2001:db8::1"),
            last: ip("2001:db8::1f"),
            port: 443
        }
    );
    let text = "virtual_server_group G {\n 10.1.0.0/30 443\n}\n\
                virtual_server group G {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n real_server 10.2.0.1 443\n}\n";
    let c = accepted(text);
    assert_eq!(
        c.virtual_server_groups[0].entries[0],
        GroupEntry::Range {
            first: ip("10.1.0.0"),
            last: ip("10.1.0.3"),
            port: 443
        }
    );
}

#[test]
fn real_servers_inherit_weight_method_and_inhibit_from_their_virtual_server() {
    let text = "virtual_server 192.0.2.1 80 {\n lb_algo wrr\n lb_kind DR\n protocol TCP\n weight 7\n \
                inhibit_on_failure\n alpha\n quorum 9\n hysteresis 2\n quorum_up \"/bin/up arg\"\n \
                sorry_server 192.0.2.99 80\n sorry_server_inhibit\n \
                real_server 192.0.2.10 {\n  notify_up /bin/rs-up\n  uthreshold 100\n  lthreshold 10\n  TCP_CHECK {\n  }\n }\n \
                real_server 192.0.2.11 80 {\n  weight 3\n  lvs_method NAT\n  inhibit_on_failure off\n }\n}\n";
    let c = accepted(text);
    let vs = &c.virtual_servers[0];
    let (a, b) = (&vs.real_servers[0], &vs.real_servers[1]);
    assert_eq!(
        (a.weight, a.lb_kind, a.inhibit_on_failure, a.alpha),
        (7, LbKind::Dr, true, true)
    );
    assert_eq!(a.port, 80, "DR: the virtual server's port");
    assert_eq!((a.uthreshold, a.lthreshold), (100, 10));
    assert_eq!(a.notify_up.as_deref(), Some("/bin/rs-up"));
    assert_eq!(
        (b.weight, b.lb_kind, b.inhibit_on_failure),
        (3, LbKind::Nat, false)
    );
    assert_eq!((vs.quorum, vs.hysteresis), (9, 2));
    assert_eq!(vs.quorum_up.as_deref(), Some("/bin/up arg"));
    let sorry = vs.sorry_server.as_ref().unwrap();
    assert!(sorry.inhibit);
    assert_eq!(sorry.lb_kind, LbKind::Dr);
    let Checker::Tcp(t) = &a.checkers[0] else {
        panic!()
    };
    assert!(t.timing.alpha, "alpha comes down from the virtual server");
    assert_eq!(t.timing.retry, 1, "keepalived's default");
    assert_eq!(
        t.connection.timeout,
        secs(5),
        "keepalived's default connect_timeout"
    );
}

#[test]
fn what_keepalived_refuses_is_an_error_at_its_line() {
    let head = "virtual_server 192.0.2.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n";
    let tail = " real_server 192.0.2.10 80\n}\n";
    for (line, expect) in [
        (
            " lb_algo fastest",
            "lb.conf:5:10: `lb_algo` expects one of rr, wrr",
        ),
        (
            " lb_kind dr",
            "lb.conf:5:10: `lb_kind` expects NAT, DR or TUN, found `dr`",
        ),
        (
            " protocol ICMP",
            "lb.conf:5:11: `protocol` expects TCP, UDP or SCTP",
        ),
        (
            " quorum 0",
            "lb.conf:5:9: `quorum` expects 1..=4294967295, found `0`",
        ),
        (
            " persistence_timeout 0",
            "lb.conf:5:22: `persistence_timeout` expects 1..=2678400",
        ),
        (
            " delay_loop 0",
            "lb.conf:5:13: `delay_loop` must be greater than 0",
        ),
        (
            " nat_mask 255.255.255.0",
            "lb.conf:5:2: unknown keyword `nat_mask` in virtual_server",
        ),
        (
            " sorry_server_inhibit",
            "lb.conf:5:2: `sorry_server_inhibit` before (or without) `sorry_server`",
        ),
        (
            " sh-port",
            "lb.conf:5:2: `sh-port` applies only to the sh and mh schedulers",
        ),
    ] {
        let errs = errors(&format!("{head}{line}\n{tail}"));
        assert!(
            errs.iter().any(|e| e.starts_with(expect)),
            "{line}: {errs:?}"
        );
    }
    let errs = errors("virtual_server 192.0.2.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
                       real_server 192.0.2.10 80 {\n  HTTP_GET {\n   url {\n    path /\n    digest 12ab\n    status_code 700\n   }\n   nb_get_retry 3\n  }\n }\n}\n");
    for expect in [
        "lb.conf:9:12: `digest` expects 32 hex digits",
        "lb.conf:10:17: `status_code` expects codes or ranges in 100..=599",
        "lb.conf:12:4: `nb_get_retry` is deprecated",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(expect)),
            "{expect}: {errs:?}"
        );
    }
    // Checks on the whole block point at its `virtual_server` line.
    let errs = errors("virtual_server 192.0.2.1 80 {\n real_server 192.0.2.10 81\n}\n");
    for expect in ["has no `lb_algo`", "has no `lb_kind`", "has no `protocol`"] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with("lb.conf:1:1: ") && e.contains(expect)),
            "{expect}: {errs:?}"
        );
    }
    let errs =
        errors("virtual_server 192.0.2.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n}\n");
    assert!(
        errs[0].starts_with("lb.conf:1:1: virtual_server 192.0.2.1:80 has no real_server"),
        "{errs:?}"
    );
    let errs = errors("virtual_server 192.0.2.1 80 {\n lb_algo rr\n lb_kind DR\n protocol TCP\n real_server 192.0.2.10 81\n}\n");
    assert!(
        errs[0].starts_with("lb.conf:5:2: real_server 192.0.2.10 81: without NAT"),
        "{errs:?}"
    );
}

#[test]
fn what_keepalived_ignores_is_a_warning_at_its_line() {
    let c = accepted(
        "virtual_server 192.0.2.1 80 {\n lb_algo sh\n lb_kind NAT\n protocol TCP\n hashed\n snmp_name web\n \
         real_server 192.0.2.10 80 {\n  HTTP_GET {\n   url {\n    path /\n    regex_stack 1 2\n   }\n  }\n }\n}\n\
         virtual_server group MISSING {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n real_server 192.0.2.10 80\n}\n",
    );
    let at = |line: u32, text: &str| {
        c.warnings
            .iter()
            .any(|w| w.location.line == line && w.message.contains(text))
    };
    assert!(
        at(5, "`hashed` has no effect with lb_algo sh"),
        "{:?}",
        c.warnings
    );
    assert!(at(6, "`snmp_name`"));
    assert!(at(11, "`regex_stack`"));
    assert!(at(16, "no virtual_server_group named `MISSING`"));
    assert_eq!(
        c.virtual_servers.len(),
        1,
        "the one naming a missing group is left out"
    );
    assert!(
        !c.warnings
            .iter()
            .any(|w| w.message.contains("parsed but not applied")),
        "the daemon applies load balancing now"
    );
}
