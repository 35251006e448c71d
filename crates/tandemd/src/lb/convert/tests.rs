use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Config {
    tandem_config::parse_str(text, Path::new("keepalived.conf")).expect("valid configuration")
}

fn warned_at(c: &Conversion, line: u32, words: &str) -> bool {
    c.warnings
        .iter()
        .any(|w| w.location.line == line && w.message.contains(words))
}

const WEB: &str = "\
virtual_server 10.0.0.100 80 {
    delay_loop 2
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    persistence_timeout 30
    quorum 2
    quorum_down \"/bin/echo down\"
    sorry_server 10.0.1.9 8080
    real_server 10.0.1.1 8080 {
        weight 3
        notify_down \"/bin/echo rs down\"
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 1
            retry 2
            delay_before_retry 1
        }
    }
    real_server 10.0.1.2 8080 {
        weight 1
        TCP_CHECK {
            connect_port 9000
        }
    }
}
";

#[test]
fn a_nat_service_becomes_one_service_and_one_checker_spec() {
    let c = convert(&parse(WEB));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.services.len(), 1);
    let s = &c.services[0];
    assert_eq!(s.templates.len(), 1);
    let t = &s.templates[0];
    assert_eq!(
        t.key,
        ServiceKey::Addr {
            vip: "10.0.0.100".parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp
        }
    );
    assert_eq!(t.scheduler, Scheduler::WeightedRoundRobin);
    assert_eq!(t.forwarding, Forwarding::Nat);
    assert_eq!(
        t.persistence,
        Some(Persistence {
            timeout: Duration::from_secs(30),
            prefix_len: 32
        })
    );
    assert_eq!(s.spec.name, "10.0.0.100:80");
    assert_eq!(s.spec.quorum, 2);
    assert_eq!(
        s.spec.quorum_down.as_ref().unwrap().argv,
        ["/bin/echo", "down"]
    );
    assert_eq!(
        s.spec.sorry_server.as_ref().unwrap().addr,
        "10.0.1.9:8080".parse().unwrap()
    );
    let rs = &s.spec.real_servers;
    assert_eq!(rs[0].addr, "10.0.1.1:8080".parse().unwrap());
    assert_eq!(rs[0].weight, 3);
    assert!(rs[0].notify_down.is_some());
    let http = &rs[0].checkers[0];
    assert_eq!(http.timing.retry, 2);
    assert_eq!(http.timing.delay_before_retry, Duration::from_secs(1));
    assert_eq!(http.timing.delay_loop, Duration::from_secs(2));
    assert_eq!(http.timing.connect_timeout, Duration::from_secs(1));
    let CheckKind::Http(h) = &http.kind else {
        panic!("HTTP_GET expected, got {:?}", http.kind)
    };
    assert_eq!(h.urls[0].path, "/health");
    assert_eq!(h.urls[0].status_codes, [(200, 200)]);
    assert_eq!(
        rs[1].checkers[0].connect.to,
        "10.0.1.2:9000".parse().unwrap()
    );
}

#[test]
fn a_pool_fills_every_template() {
    let c = convert(&parse(WEB));
    let pool = [tandem_lb::check::Destination {
        addr: "10.0.1.2:8080".parse().unwrap(),
        weight: 5,
    }];
    let services = c.services[0].services(&pool);
    assert_eq!(services.len(), 1);
    assert_eq!(
        services[0].servers,
        [Server {
            addr: "10.0.1.2".parse().unwrap(),
            port: 8080,
            weight: 5
        }]
    );
}

#[test]
fn dr_hooks_the_interface_its_vrrp_instance_puts_the_vip_on() {
    let text = "\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.100/24
        10.0.0.101/24 dev eth1
    }
}
virtual_server 10.0.0.100 80 {
    lb_kind DR
    lb_algo wrr
    protocol TCP
    sorry_server 10.0.0.9 80
    real_server 10.0.0.11 80 {
    }
}
virtual_server 10.0.0.101 80 {
    lb_kind DR
    lb_algo mh
    protocol TCP
    real_server 10.0.0.11 80 {
    }
}
";
    let c = convert(&parse(text));
    assert_eq!(c.services.len(), 2, "{:?}", c.warnings);
    let t = &c.services[0].templates[0];
    assert_eq!(t.forwarding, Forwarding::DirectRouting);
    assert_eq!(t.dr.ingress, vec!["eth0".to_string()]);
    assert_eq!(
        c.services[1].templates[0].dr.ingress,
        vec!["eth1".to_string()]
    );
    // wrr becomes a per-flow hash (warned); mh keeps its contract (not warned).
    assert!(warned_at(
        &c,
        9,
        "with lb_kind DR each connection is placed by a hash"
    ));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    // With use_vmac the address lives on the macvlan.
    let vmac = text.replace("    interface eth0\n", "    interface eth0\n    use_vmac\n");
    let c = convert(&parse(&vmac));
    assert_eq!(
        c.services[0].templates[0].dr.ingress,
        vec!["vrrp.51".to_string()]
    );
}

#[test]
fn dr_without_a_vrrp_address_or_on_a_fwmark_and_tun_are_located_warnings() {
    let text = "\
virtual_server 10.0.0.100 80 {
    lb_kind DR
    lb_algo rr
    protocol TCP
    real_server 10.0.1.1 80 {
    }
}
virtual_server 10.0.0.101 80 {
    lb_kind TUN
    lb_algo rr
    protocol TCP
    real_server 10.0.1.1 80 {
    }
}
virtual_server fwmark 5 {
    lb_kind DR
    lb_algo rr
    real_server 10.0.1.1 {
    }
}
";
    let c = convert(&parse(text));
    assert!(c.services.is_empty());
    assert!(
        warned_at(&c, 1, "no vrrp_instance holds 10.0.0.100"),
        "{:?}",
        c.warnings
    );
    assert!(
        warned_at(&c, 8, "TUN forwarding is not available"),
        "{:?}",
        c.warnings
    );
    assert!(
        warned_at(
            &c,
            15,
            "DR forwarding is not available with the nftables backend: a firewall mark"
        ),
        "{:?}",
        c.warnings
    );
}

#[test]
fn with_the_ipvs_backend_dr_tun_and_lc_are_balanced_as_written() {
    let text = "\
virtual_server 10.0.0.100 80 {
    lb_kind DR
    lb_algo wlc
    protocol TCP
    real_server 10.0.1.1 80 {
    }
}
virtual_server 10.0.0.101 80 {
    lb_kind TUN
    lb_algo rr
    protocol TCP
    real_server 10.0.1.1 80 {
    }
}
";
    let mut config = parse(text);
    config.lb_backend = tandem_config::LbBackend::Ipvs;
    let c = convert(&config);
    assert_eq!(c.services.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let forwarding: Vec<Forwarding> = (c.services.iter())
        .map(|p| p.services(&[])[0].forwarding)
        .collect();
    assert_eq!(forwarding, [Forwarding::DirectRouting, Forwarding::Tunnel]);
}

#[test]
fn checkers_tandem_does_not_run_are_warned_where_written() {
    let text = "\
virtual_server 10.0.0.100 53 {
    protocol UDP
    lb_algo rr
    lb_kind NAT
    real_server 10.0.1.1 53 {
        BFD_CHECK { name b }
        PING_CHECK {
        }
        TCP_CHECK {
        }
    }
}
";
    let c = convert(&parse(text));
    assert!(
        warned_at(&c, 6, "BFD_CHECK is not run by tandem"),
        "{:?}",
        c.warnings
    );
    assert!(!warned_at(&c, 7, "PING_CHECK"), "PING_CHECK runs");
    let rs = &c.services[0].spec.real_servers[0];
    assert_eq!(rs.checkers.len(), 2, "PING_CHECK and TCP_CHECK run");
    assert_eq!(rs.checkers[0].kind, CheckKind::Ping);
    assert_eq!(rs.checkers[1].kind, CheckKind::Tcp);
    assert!(matches!(
        c.services[0].templates[0].key,
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            ..
        }
    ));
}

#[test]
fn file_check_runs_with_its_weight_or_the_track_files() {
    let text = "\
track_file f {
    file /run/tandem-test-weight
    weight 3 reverse
}
virtual_server 10.0.0.100 80 {
    protocol TCP
    lb_algo rr
    lb_kind NAT
    real_server 10.0.1.1 80 {
        FILE_CHECK { track_file f }
    }
    real_server 10.0.1.2 80 {
        FILE_CHECK {
            track_file f
            weight 0
        }
    }
    real_server 10.0.1.3 80 {
        FILE_CHECK {
            track_file f
            weight -2
        }
    }
}
";
    let c = convert(&parse(text));
    assert!(
        !c.warnings.iter().any(|w| w.message.contains("FILE_CHECK")),
        "{:?}",
        c.warnings
    );
    let kind = |i: usize| c.services[0].spec.real_servers[i].checkers[0].kind.clone();
    let file = |weight, reverse| {
        CheckKind::File(tandem_lb::check::FileCheckSpec {
            track_file: "f".into(),
            weight,
            reverse,
        })
    };
    assert_eq!(kind(0), file(3, true), "the track_file's weight");
    assert_eq!(
        kind(1),
        file(3, true),
        "weight 0 is no weight, as keepalived"
    );
    assert_eq!(kind(2), file(-2, false));
}

#[test]
fn approximated_schedulers_say_so_at_the_virtual_server() {
    let text = "\
virtual_server 10.0.0.100 80 {
    lb_algo wlc
    lb_kind NAT
    protocol TCP
    real_server 10.0.1.1 80 {
    }
}
virtual_server 10.0.0.101 80 {
    lb_algo twos
    lb_kind NAT
    protocol TCP
    real_server 10.0.1.1 80 {
    }
}
";
    let c = convert(&parse(text));
    assert!(
        warned_at(&c, 1, "lb_algo wlc is approximated"),
        "{:?}",
        c.warnings
    );
    assert!(warned_at(&c, 8, "lb_algo twos has no nftables equivalent"));
    assert_eq!(c.services.len(), 2);
    assert_eq!(
        c.services[1].templates[0].scheduler,
        Scheduler::WeightedRoundRobin
    );
}

#[test]
fn a_group_expands_to_one_service_per_address_and_mark() {
    let text = "\
virtual_server_group WEB {
    10.0.0.10-12 80
    fwmark 7
}
virtual_server group WEB {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.1.1 80 {
    }
}
";
    let c = convert(&parse(text));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let keys: Vec<String> = (c.services[0].templates.iter())
        .map(|t| key_name(&t.key))
        .collect();
    assert_eq!(
        keys,
        ["10.0.0.10:80", "10.0.0.11:80", "10.0.0.12:80", "FWM 7"]
    );
}

#[test]
fn a_second_virtual_server_for_the_same_service_is_not_applied() {
    let text = "\
virtual_server 10.0.0.100 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.1.1 80 {
    }
}
virtual_server 10.0.0.100 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.1.2 80 {
    }
}
";
    let c = convert(&parse(text));
    assert_eq!(c.services.len(), 1);
    // keepalived itself may refuse the duplicate; where it does not, tandem warns.
    assert!(
        c.warnings.is_empty() || warned_at(&c, 8, "already balanced"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn misc_check_keeps_its_user_and_defaults_its_timeout_to_delay_loop() {
    let text = "\
virtual_server 10.0.0.100 80 {
    delay_loop 7
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.1.1 80 {
        MISC_CHECK {
            misc_path \"/bin/true\"
            misc_dynamic
            user nobody
        }
    }
}
";
    let c = convert(&parse(text));
    let CheckKind::Misc(m) = &c.services[0].spec.real_servers[0].checkers[0].kind else {
        panic!("MISC_CHECK expected")
    };
    assert_eq!(m.path, "/bin/true");
    assert!(m.dynamic);
    assert_eq!(m.user.as_deref(), Some("nobody"));
    assert_eq!(m.timeout, Some(Duration::from_secs(7)));
}

#[test]
fn udp_dns_smtp_and_ping_checkers_carry_their_settings() {
    let text = "\
virtual_server 10.0.0.100 53 {
    protocol UDP
    lb_algo rr
    lb_kind NAT
    real_server 10.0.1.1 53 {
        UDP_CHECK {
            payload 0102
            require_reply 0a0b
        }
        DNS_CHECK {
            type A
            name www.example.org
        }
        SMTP_CHECK {
            helo_name checker.example.org
            connect_port 25
            host {
                connect_ip 10.0.1.9
            }
        }
    }
}
";
    let c = convert(&parse(text));
    let checkers = &c.services[0].spec.real_servers[0].checkers;
    assert_eq!(
        checkers[0].kind,
        CheckKind::Udp(UdpSpec {
            payload: vec![1, 2],
            require_reply: true,
            reply: vec![0x0a, 0x0b],
            min_reply_length: 0,
            max_reply_length: 255,
        })
    );
    assert_eq!(
        checkers[1].kind,
        CheckKind::Dns(DnsSpec {
            query_type: "A".into(),
            name: "www.example.org".into(),
        })
    );
    assert_eq!(
        checkers[2].kind,
        CheckKind::Smtp(SmtpSpec {
            helo_name: "checker.example.org".into(),
        })
    );
    assert_eq!(checkers[2].connect.to, "10.0.1.1:25".parse().unwrap());
    // The deprecated host block is one more SMTP checker (the real server's port).
    assert_eq!(checkers.len(), 4);
    assert_eq!(checkers[3].kind, checkers[2].kind);
    assert_eq!(checkers[3].connect.to, "10.0.1.9:53".parse().unwrap());
    assert!(!c.warnings.iter().any(|w| w.message.contains("not run")));
}

#[test]
fn an_smtp_check_made_only_of_host_blocks_checks_each_host_once() {
    let text = "\
virtual_server 10.0.0.100 25 {
    protocol TCP
    lb_algo rr
    lb_kind NAT
    real_server 10.0.1.1 25 {
        SMTP_CHECK {
            host {
                connect_ip 10.0.1.7
            }
            host {
                connect_ip 10.0.1.8
                connect_port 2525
            }
        }
    }
}
";
    let c = convert(&parse(text));
    let targets: Vec<SocketAddr> = (c.services[0].spec.real_servers[0].checkers.iter())
        .map(|k| k.connect.to)
        .collect();
    // keepalived: with no connection word of its own, the checker takes the first host's
    // place instead of also checking the real server itself.
    assert_eq!(
        targets,
        [
            "10.0.1.7:25".parse().unwrap(),
            "10.0.1.8:2525".parse().unwrap()
        ]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}
