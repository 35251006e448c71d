//! tandemd against Debian's keepalived as the peer, in both roles: VRRPv2 with PASS
//! authentication, VRRPv3 multicast and unicast over IPv4, and VRRPv3 over IPv6. Election,
//! failover and failback must work both ways, and keepalived must log no complaint about
//! tandem's packets.

mod common;

use std::time::Duration;

use anyhow::{bail, Result};
use common::*;
use tandem_lab::{require_root, Pair};

#[derive(Clone, Copy)]
enum Case {
    V2Pass,
    V3Multicast,
    V3Unicast,
    V3Ipv6,
}

impl Case {
    fn vip(self) -> &'static str {
        match self {
            Case::V3Ipv6 => "fd00::254",
            _ => "10.0.0.254",
        }
    }

    fn config(self, me: &str, peer: &str, priority: u8) -> String {
        let (version, extra, vip) = match self {
            Case::V2Pass => (
                2,
                "    authentication {\n        auth_type PASS\n        auth_pass tandem01\n    }"
                    .to_string(),
                "10.0.0.254/24",
            ),
            Case::V3Multicast => (3, String::new(), "10.0.0.254/24"),
            Case::V3Unicast => (
                3,
                format!("    unicast_src_ip {me}\n    unicast_peer {{\n        {peer}\n    }}"),
                "10.0.0.254/24",
            ),
            Case::V3Ipv6 => (3, String::new(), "fd00::254/64"),
        };
        let vi = Vi {
            name: "VI_1",
            interface: "eth0",
            vrid: 42,
            priority,
            advert_int: "1",
            version,
            vips: &[vip],
            extra: &extra,
        };
        format!(
            "global_defs {{\n    vrrp_check_unicast_src\n}}\n{}",
            vi.render()
        )
    }
}

/// keepalived log lines that would mean it disliked a packet it received. ("received lower
/// priority advert - discarding" is the normal preemption path, not a complaint.)
fn complaints(log: &str) -> Vec<&str> {
    let words = [
        "bogus",
        "invalid",
        "mismatch",
        "wrong",
        "error",
        "ignoring",
        "not present",
        "bad ",
        "checksum",
        "ttl",
        "hop limit",
        "authentication",
        "unknown",
    ];
    log.lines()
        .filter(|l| {
            let l = l.to_lowercase();
            words.iter().any(|w| l.contains(w))
        })
        .collect()
}

fn run(case: Case, tandem_is_master: bool, tag: &str) -> Result<()> {
    let pair = Pair::new(tag)?;
    let vip = case.vip();
    let (ip_a, ip_b) = ("10.0.0.1", "10.0.0.2");
    let start_a = |p: &Pair| -> Result<Daemon> {
        let conf = case.config(ip_a, ip_b, 150);
        if tandem_is_master {
            start_tandemd(p, &p.a, &conf)
        } else {
            start_keepalived(p, &p.a, &conf)
        }
    };
    let conf_b = case.config(ip_b, ip_a, 100);
    let b = if tandem_is_master {
        start_keepalived(&pair, &pair.b, &conf_b)?
    } else {
        start_tandemd(&pair, &pair.b, &conf_b)?
    };
    let mut a = start_a(&pair)?;
    let (keepalived, tandem) = if tandem_is_master { (&b, &a) } else { (&a, &b) };
    let check = |when: &str, keepalived: &Daemon, tandem: &Daemon| -> Result<()> {
        let log = keepalived.child.log();
        let bad = complaints(&log);
        if !bad.is_empty() {
            bail!(
                "keepalived complained {when}:\n{}\n--- full log ---\n{log}",
                bad.join("\n")
            );
        }
        let drops = tandem.counter("VI_1", "drops")?;
        if drops != 0 {
            bail!(
                "tandemd dropped {drops} of keepalived's packets {when}:\n{}",
                tandem.query("status")?
            );
        }
        Ok(())
    };

    wait_holder(&pair, vip, "a", Duration::from_secs(15)).map_err(|e| {
        e.context(format!(
            "a log:\n{}\nb log:\n{}",
            a.child.log(),
            b.child.log()
        ))
    })?;
    hold_steady(&pair, vip, "a", Duration::from_secs(3), ms(20))?;
    check("while a is master", keepalived, tandem)?;

    a.child.kill()?;
    let took = wait_has(&pair.b, vip, Duration::from_secs(10))?;
    println!("b took over after {} ms", took.as_millis());
    assert!(took <= master_down(100, 1.0) + ms(300), "took {took:?}");

    let a2 = start_a(&pair)?;
    wait_holder(&pair, vip, "a", Duration::from_secs(15)).map_err(|e| {
        e.context(format!(
            "a log:\n{}\nb log:\n{}",
            a2.child.log(),
            b.child.log()
        ))
    })?;
    hold_steady(&pair, vip, "a", Duration::from_secs(2), ms(20))?;
    let (keepalived, tandem) = if tandem_is_master {
        (&b, &a2)
    } else {
        (&a2, &b)
    };
    check("after failback", keepalived, tandem)?;
    Ok(())
}

#[test]
fn v2_pass_tandem_master_keepalived_backup() -> Result<()> {
    require_root!(Ok(()));
    run(Case::V2Pass, true, "ka2tm")
}

#[test]
fn v2_pass_keepalived_master_tandem_backup() -> Result<()> {
    require_root!(Ok(()));
    run(Case::V2Pass, false, "ka2km")
}

#[test]
fn v3_multicast_tandem_master_keepalived_backup() -> Result<()> {
    require_root!(Ok(()));
    run(Case::V3Multicast, true, "ka3tm")
}

#[test]
fn v3_multicast_keepalived_master_tandem_backup() -> Result<()> {
    require_root!(Ok(()));
    run(Case::V3Multicast, false, "ka3km")
}

#[test]
fn v3_unicast_tandem_master_keepalived_backup() -> Result<()> {
    require_root!(Ok(()));
    run(Case::V3Unicast, true, "kautm")
}

#[test]
fn v3_unicast_keepalived_master_tandem_backup() -> Result<()> {
    require_root!(Ok(()));
    run(Case::V3Unicast, false, "kaukm")
}

#[test]
fn v3_ipv6_tandem_master_keepalived_backup() -> Result<()> {
    require_root!(Ok(()));
    run(Case::V3Ipv6, true, "ka6tm")
}

#[test]
fn v3_ipv6_keepalived_master_tandem_backup() -> Result<()> {
    require_root!(Ok(()));
    run(Case::V3Ipv6, false, "ka6km")
}
