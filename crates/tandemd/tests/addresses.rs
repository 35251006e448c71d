//! What a master puts on the host besides its virtual addresses, in network namespaces:
//! `use_vmac` (the VRRP MAC on a macvlan), `virtual_routes` and `virtual_rules` (present on
//! MASTER only), and the gratuitous ARP schedule (`garp_master_repeat`, `garp_master_delay`,
//! `garp_master_refresh`, `vrrp_garp_interval`) as captured on the wire.

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use nix::sys::signal::Signal;
use tandem_lab::{require_root, wait_until, Netns, Pair};

const VIP: &str = "10.0.0.254";
/// VRID 51's virtual MAC.
const VMAC: &str = "00:00:5e:00:01:33";

fn sysctl(ns: &Netns, key: &str) -> Result<String> {
    Ok(ns
        .run(&format!("cat /proc/sys/net/{key}"))?
        .trim()
        .to_string())
}

#[test]
fn use_vmac_puts_the_vip_on_a_macvlan_with_the_vrrp_mac_and_adverts_leave_from_it() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("vmac")?;
    let arp_ignore_before = sysctl(&pair.a, "ipv4/conf/eth0/arp_ignore")?;
    let mut a = start_tandemd(&pair, &pair.a, &vi_1(2, 51, 150, "    use_vmac"))?;
    let _b = start_tandemd(&pair, &pair.b, &vi_1(2, 51, 100, "    use_vmac"))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;

    // The macvlan: private mode, the VRRP MAC, the VIP on it; keepalived's settings.
    let link = pair.a.ip("-d link show vrrp.51")?;
    assert!(link.contains(VMAC), "{link}");
    assert!(link.contains("macvlan mode private"), "{link}");
    let addr = pair.a.ip("-o addr show dev vrrp.51")?;
    assert!(addr.contains(VIP), "{addr}");
    assert_eq!(sysctl(&pair.a, "ipv4/conf/vrrp.51/arp_ignore")?, "1");
    assert_eq!(sysctl(&pair.a, "ipv4/conf/vrrp.51/accept_local")?, "1");
    assert_eq!(sysctl(&pair.a, "ipv4/conf/vrrp.51/rp_filter")?, "0");
    assert_eq!(sysctl(&pair.a, "ipv4/conf/eth0/arp_ignore")?, "1");
    assert_eq!(sysctl(&pair.a, "ipv4/conf/eth0/arp_filter")?, "1");

    // Adverts leave from the virtual MAC.
    let capture = pair
        .client
        .spawn(&["tcpdump", "-l", "-n", "-e", "-i", "eth0", "vrrp"])?;
    wait_until("tcpdump listening", Duration::from_secs(5), ms(10), || {
        capture.log().contains("listening on").then_some(())
    })?;
    let advert = wait_until("an advert from a", Duration::from_secs(5), ms(20), || {
        (capture.log().lines())
            .find(|l| l.contains("10.0.0.1 > 224.0.0.18"))
            .map(str::to_string)
    })?;
    println!("advert: {advert}");
    assert!(advert.contains(&format!(" {VMAC} > ")), "{advert}");

    // The client reaches the VIP, and its neighbour table has the virtual MAC for it.
    pair.client.wait_ping(VIP, Duration::from_secs(5))?;
    let neigh = pair.client.ip(&format!("neigh show {VIP}"))?;
    println!("client neighbour: {}", neigh.trim());
    assert!(neigh.contains(&format!("lladdr {VMAC}")), "{neigh}");

    // Failover: b's macvlan takes the VIP, the client's entry does not need to change.
    a.child.signal(Signal::SIGTERM)?;
    wait_holder(&pair, VIP, "b", Duration::from_secs(10))?;
    assert!(pair.b.ip("-o addr show dev vrrp.51")?.contains(VIP));
    pair.client.wait_ping(VIP, Duration::from_secs(5))?;
    let neigh = pair.client.ip(&format!("neigh show {VIP}"))?;
    assert!(neigh.contains(&format!("lladdr {VMAC}")), "{neigh}");

    // a stopped: its macvlan is gone and eth0's settings are back.
    wait_until(
        "a's macvlan removed",
        Duration::from_secs(5),
        ms(20),
        || pair.a.ip("link show vrrp.51").is_err().then_some(()),
    )?;
    assert_eq!(
        sysctl(&pair.a, "ipv4/conf/eth0/arp_ignore")?,
        arp_ignore_before
    );
    Ok(())
}

/// The source MACs of the gratuitous ARPs for the VIP in a `tcpdump -e` log.
fn garp_sources(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(&format!("who-has {VIP} tell {VIP}")))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

#[test]
fn use_vmac_against_keepalived_announces_the_vip_from_the_same_virtual_mac() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("vmacka")?;
    let capture = pair
        .client
        .spawn(&["tcpdump", "-l", "-n", "-e", "-i", "eth0", "arp"])?;
    wait_until("tcpdump listening", Duration::from_secs(5), ms(10), || {
        capture.log().contains("listening on").then_some(())
    })?;
    // tandem (a) is master first; keepalived (b, higher priority) must hear it and preempt,
    // and tandem must hear keepalived's adverts, which leave from the same virtual MAC as its
    // own (the kernel hands such frames to the local macvlan, not to eth0); then tandem takes
    // over again when keepalived stops.
    let a = start_tandemd(&pair, &pair.a, &vi_1(2, 51, 100, "    use_vmac"))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(15))?;
    let mut b = start_keepalived(&pair, &pair.b, &vi_1(2, 51, 150, "    use_vmac"))?;
    wait_holder(&pair, VIP, "b", Duration::from_secs(15)).with_context(|| {
        format!(
            "keepalived:\n{}\ntandemd:\n{}",
            b.child.log(),
            a.child.log()
        )
    })?;
    // Not a passing moment: tandem stays backup.
    hold_steady(&pair, VIP, "b", Duration::from_secs(4), ms(100))?;
    assert!(pair.b.ip("-o addr show dev vrrp.51")?.contains(VIP));
    pair.client.wait_ping(VIP, Duration::from_secs(5))?;
    let from_keepalived = wait_until("keepalived's GARP", Duration::from_secs(5), ms(20), || {
        Some(garp_sources(&capture.log())).filter(|s| !s.is_empty())
    })?;
    b.child.signal(Signal::SIGTERM)?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    assert!(pair.a.ip("-o addr show dev vrrp.51")?.contains(VIP));
    pair.client.wait_ping(VIP, Duration::from_secs(5))?;
    let all = wait_until("tandem's GARPs too", Duration::from_secs(5), ms(20), || {
        Some(garp_sources(&capture.log())).filter(|s| s.len() > from_keepalived.len())
    })?;
    println!("GARP sources, keepalived then tandem: {all:?}");
    assert!(all.iter().all(|mac| mac == VMAC), "{all:?}");
    Ok(())
}

const ROUTES: &str = "    virtual_routes {
        10.99.0.0/24 via 10.0.0.100 table 100
        blackhole 10.98.0.0/24 table 100
        src 10.0.0.254 10.96.0.0/24 dev eth0 metric 7
    }
    virtual_rules {
        from 10.97.0.0/24 table 100 priority 100
        to 10.95.0.0/24 prohibit priority 101 no_track
    }";

/// Whether `ns` has every route and rule of [`ROUTES`], or none; panics on a mixture.
fn routes_present(ns: &Netns) -> Result<bool> {
    // Before its first route the table does not exist, and `ip` says so.
    let table = ns.ip("route show table 100").unwrap_or_default();
    let main = ns.ip("route show")?;
    let rules = ns.ip("rule show")?;
    let found = [
        table.contains("10.99.0.0/24 via 10.0.0.100 dev eth0 proto keepalived"),
        table.contains("blackhole 10.98.0.0/24 proto keepalived"),
        main.contains("10.96.0.0/24 dev eth0 proto keepalived scope link src 10.0.0.254 metric 7"),
        rules.contains("100:\tfrom 10.97.0.0/24 lookup 100 proto keepalived"),
        rules.contains("101:\tfrom all to 10.95.0.0/24 prohibit proto boot"),
    ];
    if found.iter().all(|f| *f) {
        return Ok(true);
    }
    if found.iter().any(|f| *f) {
        anyhow::bail!(
            "{}: some routes and rules only {found:?}:\n{table}\n{main}\n{rules}",
            ns.name()
        );
    }
    Ok(false)
}

#[test]
fn virtual_routes_and_rules_follow_the_master() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("vroute")?;
    let mut a = start_tandemd(&pair, &pair.a, &vi_1(2, 51, 150, ROUTES))?;
    let _b = start_tandemd(&pair, &pair.b, &vi_1(2, 51, 100, ROUTES))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    wait_until(
        "a's routes and rules",
        Duration::from_secs(2),
        ms(10),
        || routes_present(&pair.a).ok().filter(|p| *p),
    )
    .with_context(|| {
        format!(
            "{:?}\n{}\n{}",
            routes_present(&pair.a),
            pair.a.ip("route show table all").unwrap_or_default(),
            a.child.log()
        )
    })?;
    assert!(!routes_present(&pair.b)?, "the backup has the routes");
    println!(
        "MASTER a:\n{}{}",
        pair.a.ip("route show table 100")?,
        pair.a.ip("rule show")?
    );

    a.child.signal(Signal::SIGTERM)?;
    wait_holder(&pair, VIP, "b", Duration::from_secs(10))?;
    wait_until(
        "b's routes and rules",
        Duration::from_secs(2),
        ms(10),
        || routes_present(&pair.b).ok().filter(|p| *p),
    )?;
    assert!(
        !routes_present(&pair.a)?,
        "a kept its routes after stopping"
    );
    Ok(())
}

#[test]
fn a_reload_moves_just_the_routes_and_rules_that_changed() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("vrhup")?;
    let mut a = start_tandemd(&pair, &pair.a, &vi_1(2, 51, 150, ROUTES))?;
    wait_has(&pair.a, VIP, Duration::from_secs(10))?;
    wait_until(
        "a's routes and rules",
        Duration::from_secs(2),
        ms(10),
        || routes_present(&pair.a).ok().filter(|p| *p),
    )?;
    let changed = ROUTES
        .replace(
            "10.99.0.0/24 via 10.0.0.100 table 100",
            "10.94.0.0/24 via 10.0.0.100 table 100",
        )
        .replace(
            "from 10.97.0.0/24 table 100 priority 100",
            "from 10.93.0.0/24 table 100 priority 100",
        );
    std::fs::write(&a.config, vi_1(2, 51, 150, &changed))?;
    a.child.signal(Signal::SIGHUP)?;
    wait_until(
        "the reload's routes",
        Duration::from_secs(10),
        ms(20),
        || {
            let table = pair.a.ip("route show table 100").ok()?;
            let rules = pair.a.ip("rule show").ok()?;
            (table.contains("10.94.0.0/24 via 10.0.0.100")
                && rules.contains("from 10.93.0.0/24 lookup 100"))
            .then_some(())
        },
    )?;
    let table = pair.a.ip("route show table 100")?;
    let rules = pair.a.ip("rule show")?;
    let main = pair.a.ip("route show")?;
    assert!(!table.contains("10.99.0.0/24"), "{table}");
    assert!(!rules.contains("10.97.0.0/24"), "{rules}");
    // Unchanged ones stay.
    assert!(table.contains("blackhole 10.98.0.0/24"), "{table}");
    assert!(main.contains("10.96.0.0/24"), "{main}");
    assert!(rules.contains("to 10.95.0.0/24 prohibit"), "{rules}");
    assert!(pair.a.has_address(VIP)?);
    Ok(())
}

/// Times (seconds, first = 0) of the gratuitous ARPs for the VIP in a `tcpdump -tt` log.
fn garp_times(log: &str) -> Vec<f64> {
    let times: Vec<f64> = log
        .lines()
        .filter(|l| l.contains(&format!("who-has {VIP} tell {VIP}")))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let first = times.first().copied().unwrap_or(0.0);
    times.iter().map(|t| t - first).collect()
}

/// Splits times into bursts: a gap over 0.5 s starts a new one.
fn bursts(times: &[f64]) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::new();
    for &t in times {
        match out.last_mut() {
            Some(b) if t - b.last().copied().unwrap_or(t) <= 0.5 => b.push(t),
            _ => out.push(vec![t]),
        }
    }
    out
}

/// Starts tandemd on a alone with `global` and `extra`, and returns the ARP capture once
/// `span` has passed since a took the VIP.
fn captured_garps(tag: &str, global: &str, extra: &str, span: Duration) -> Result<String> {
    let pair = Pair::new(tag)?;
    let capture = pair
        .client
        .spawn(&["tcpdump", "-l", "-n", "-tt", "-i", "eth0", "arp"])?;
    wait_until("tcpdump listening", Duration::from_secs(5), ms(10), || {
        capture.log().contains("listening on").then_some(())
    })?;
    let config = format!("global_defs {{\n{global}\n}}\n{}", vi_1(2, 51, 150, extra));
    let _a = start_tandemd(&pair, &pair.a, &config)?;
    wait_has(&pair.a, VIP, Duration::from_secs(10))?;
    let end = std::time::Instant::now() + span;
    // The capture is the thing measured: wait for the span to be over on the wire.
    wait_until(
        "the capture span",
        span + Duration::from_secs(1),
        ms(50),
        || (std::time::Instant::now() >= end).then_some(()),
    )?;
    Ok(capture.log())
}

#[test]
fn garp_repeat_and_delay_with_an_interval_are_what_the_wire_shows() -> Result<()> {
    require_root!(Ok(()));
    let log = captured_garps(
        "garpdly",
        "    vrrp_garp_interval 0.1",
        "    garp_master_repeat 3\n    garp_master_delay 2",
        Duration::from_millis(3500),
    )?;
    let b = bursts(&garp_times(&log));
    println!("bursts (s from the first): {b:?}");
    assert_eq!(b.len(), 2, "{log}");
    for burst in &b {
        assert_eq!(burst.len(), 3, "{b:?}");
        for gap in burst.windows(2).map(|w| w[1] - w[0]) {
            assert!((0.08..0.2).contains(&gap), "gap {gap} in {b:?}");
        }
    }
    let second = b[1][0];
    assert!((1.9..2.2).contains(&second), "second burst at {second} s");
    Ok(())
}

#[test]
fn garp_refresh_repeats_every_period_while_master() -> Result<()> {
    require_root!(Ok(()));
    let log = captured_garps(
        "garpref",
        "    vrrp_garp_master_delay 0\n    vrrp_garp_master_repeat 1",
        "    garp_master_refresh 2\n    garp_master_refresh_repeat 2",
        Duration::from_millis(7500),
    )?;
    let b = bursts(&garp_times(&log));
    println!("bursts (s from the first): {b:?}");
    assert_eq!(b[0].len(), 1, "{b:?}");
    let refreshes = &b[1..];
    assert!(refreshes.len() >= 3, "{b:?}");
    for r in refreshes {
        assert_eq!(r.len(), 2, "{b:?}");
    }
    // The first refresh goes with the first advert at least 2 s after the takeover; the
    // next ones 2 s apart (adverts are 1 s apart).
    assert!((1.95..3.1).contains(&refreshes[0][0]), "{b:?}");
    for pair in refreshes.windows(2) {
        let period = pair[1][0] - pair[0][0];
        assert!((1.9..2.15).contains(&period), "period {period} in {b:?}");
    }
    Ok(())
}

/// A master whose VIP another program deletes (`ip addr del`, a network manager re-applying
/// its configuration) puts it back at once, announces it again and counts it; the backup
/// never takes over.
#[test]
fn a_vip_deleted_by_another_program_comes_back_on_the_master_at_once() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("vipdel")?;
    let a = start_tandemd(&pair, &pair.a, &vi_1(2, 61, 150, ""))?;
    let b = start_tandemd(&pair, &pair.b, &vi_1(2, 61, 100, ""))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    for round in 1..=3 {
        pair.a.ip(&format!("addr del {VIP}/24 dev eth0"))?;
        let back = wait_has(&pair.a, VIP, Duration::from_secs(2)).with_context(|| a.child.log())?;
        println!("round {round}: the VIP was back on a after {back:?}");
        wait_until(
            "the restore counted",
            Duration::from_secs(2),
            ms(10),
            || {
                let m = a.query("metrics").ok()?;
                let line = m
                    .lines()
                    .find(|l| l.starts_with("tandem_vrrp_addresses_restored_total{"))?;
                (line.ends_with(&format!(" {round}"))).then_some(())
            },
        )
        .with_context(|| a.query("metrics").unwrap_or_default())?;
    }
    let log = a.child.log();
    assert!(
        log.contains("(VI_1) 10.0.0.254/24 was removed from eth0 by another program while MASTER: restoring it"),
        "{log}"
    );
    assert!(
        log.matches("Sending/queueing gratuitous ARPs on eth0 for 10.0.0.254")
            .count()
            >= 4,
        "each restore announces the VIP again:\n{log}"
    );
    // No failover came of it.
    hold_steady(&pair, VIP, "a", Duration::from_secs(2), ms(50))?;
    assert!(
        !b.child.log().contains("Entering MASTER"),
        "{}",
        b.child.log()
    );
    Ok(())
}
