//! Two tandemd in network namespaces: election, failover on SIGKILL and SIGTERM, preemption,
//! gratuitous ARP, and garbage on protocol 112.

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::*;
use nix::sys::signal::Signal;
use tandem_lab::{require_root, wait_until, Pair};

const VIP: &str = "10.0.0.254";

fn config(priority: u8, extra: &str) -> String {
    vi_1(2, 51, priority, extra)
}

fn started(tag: &str, a_extra: &str, b_extra: &str) -> Result<(Pair, Daemon, Daemon)> {
    let pair = Pair::new(tag)?;
    let a = start_tandemd(&pair, &pair.a, &config(150, a_extra))?;
    let b = start_tandemd(&pair, &pair.b, &config(100, b_extra))?;
    Ok((pair, a, b))
}

#[test]
fn higher_priority_holds_the_vip_and_only_it() -> Result<()> {
    require_root!(Ok(()));
    let (pair, _a, _b) = started("elect", "", "")?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    let polls = hold_steady(&pair, VIP, "a", Duration::from_secs(5), ms(10))?;
    println!("exactly one holder (a) at each of {polls} polls over 5 s");
    assert!(polls > 100);
    Ok(())
}

#[test]
fn sigkill_of_the_master_then_restart_preempts_back() -> Result<()> {
    require_root!(Ok(()));
    let (pair, mut a, _b) = started("kill", "", "")?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    // Let a few adverts flow so the backup's timer runs from a real advert.
    hold_steady(&pair, VIP, "a", Duration::from_secs(2), ms(50))?;
    let killed = Instant::now();
    a.child.kill()?;
    let took = wait_has(&pair.b, VIP, Duration::from_secs(10))?;
    let bound = master_down(100, 1.0) + ms(100);
    println!(
        "SIGKILL: backup holds {VIP} after {} ms (bound {} ms)",
        took.as_millis(),
        bound.as_millis()
    );
    assert!(took <= bound, "takeover took {took:?}, bound {bound:?}");
    assert!(killed.elapsed() >= took);

    // Restart: the leftover VIP is cleaned, then a preempts back (higher priority).
    let _a2 = start_tandemd(&pair, &pair.a, &config(150, ""))?;
    let back = wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    println!("restart: a preempted back after {} ms", back.as_millis());
    hold_steady(&pair, VIP, "a", Duration::from_secs(2), ms(20))?;
    Ok(())
}

#[test]
fn nopreempt_keeps_the_current_master() -> Result<()> {
    require_root!(Ok(()));
    let (pair, mut a, _b) = started("nopre", "    nopreempt", "")?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    a.child.kill()?;
    wait_has(&pair.b, VIP, Duration::from_secs(10))?;
    let _a2 = start_tandemd(&pair, &pair.a, &config(150, "    nopreempt"))?;
    // Longer than a's Master_Down_Interval (3.41 s): it would have preempted by now.
    wait_holder(&pair, VIP, "b", Duration::from_secs(5))?;
    hold_steady(&pair, VIP, "b", Duration::from_secs(6), ms(20))?;
    Ok(())
}

#[test]
fn preempt_delay_is_honoured() -> Result<()> {
    require_root!(Ok(()));
    let (pair, mut a, _b) = started("pdelay", "    preempt_delay 6", "")?;
    // At start a waits 6 s before preempting anyone; nobody is master, so it still wins
    // once the delay runs out or its timer fires.
    wait_holder(&pair, VIP, "a", Duration::from_secs(15))?;
    a.child.kill()?;
    wait_has(&pair.b, VIP, Duration::from_secs(10))?;
    let restarted = Instant::now();
    let _a2 = start_tandemd(&pair, &pair.a, &config(150, "    preempt_delay 6"))?;
    wait_holder(&pair, VIP, "b", Duration::from_secs(5))?;
    hold_steady(
        &pair,
        VIP,
        "b",
        Duration::from_secs(5).saturating_sub(restarted.elapsed()),
        ms(20),
    )?;
    let took = restarted.elapsed() + wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    println!(
        "preempt_delay 6: a took over {} ms after restart",
        took.as_millis()
    );
    assert!(took >= Duration::from_secs(6), "preempted after {took:?}");
    Ok(())
}

#[test]
fn sigterm_hands_over_within_a_second() -> Result<()> {
    require_root!(Ok(()));
    let (pair, mut a, _b) = started("term", "", "")?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    hold_steady(&pair, VIP, "a", Duration::from_secs(1), ms(50))?;
    let stopped = Instant::now();
    a.child.signal(Signal::SIGTERM)?;
    let took = wait_holder(&pair, VIP, "b", Duration::from_secs(5))?;
    println!(
        "SIGTERM: backup holds {VIP} alone after {} ms",
        took.as_millis()
    );
    assert!(took <= Duration::from_secs(1), "took {took:?}");
    let status = a.child.wait_timeout(Duration::from_secs(5))?;
    assert!(
        status.is_some_and(|s| s.success()),
        "tandemd exit: {status:?}\n{}",
        a.child.log()
    );
    assert!(
        a.child.log().contains("(VI_1) Entering STOP STATE"),
        "{}",
        a.child.log()
    );
    assert!(stopped.elapsed() >= took);
    Ok(())
}

#[test]
fn gratuitous_arp_announces_the_vip_with_the_new_masters_mac() -> Result<()> {
    require_root!(Ok(()));
    let (pair, mut a, _b) = started("garp", "", "")?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    let b_mac = pair
        .b
        .run("cat /sys/class/net/eth0/address")?
        .trim()
        .to_string();
    let capture = pair
        .client
        .spawn(&["tcpdump", "-l", "-n", "-e", "-i", "eth0", "arp"])?;
    wait_until("tcpdump listening", Duration::from_secs(5), ms(10), || {
        capture.log().contains("listening on").then_some(())
    })?;
    a.child.kill()?;
    wait_has(&pair.b, VIP, Duration::from_secs(10))?;
    let line = wait_until(
        "gratuitous ARP from b",
        Duration::from_secs(5),
        ms(10),
        || {
            capture
                .log()
                .lines()
                .find(|l| l.starts_with(&b_mac) || l.contains(&format!(" {b_mac} >")))
                .filter(|l| l.contains(&format!("who-has {VIP} tell {VIP}")))
                .map(str::to_string)
        },
    )?;
    println!("captured: {line}");
    assert!(line.contains("ff:ff:ff:ff:ff:ff"), "{line}");
    Ok(())
}

#[test]
fn random_bytes_on_protocol_112_are_counted_and_dropped() -> Result<()> {
    require_root!(Ok(()));
    let (pair, mut a, mut b) = started("garbage", "", "")?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    let sent = 2000u64;
    pair.client.enter(move || -> Result<()> {
        use rand::Rng;
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))?;
        s.set_multicast_ttl_v4(255)?;
        s.set_ttl_v4(255)?;
        s.set_multicast_if_v4(&"10.0.0.100".parse()?)?;
        let group: std::net::SocketAddr = "224.0.0.18:0".parse()?;
        let mut rng = rand::rng();
        for i in 0..sent {
            let len = rng.random_range(0..120);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // Half of them look like ours (v2, VRID 51) so they reach the instance's checks.
            if i % 2 == 0 && bytes.len() >= 2 {
                bytes[0] = 0x21;
                bytes[1] = 51;
            }
            s.send_to(&bytes, &group.into())?;
            if i % 200 == 0 {
                std::thread::sleep(ms(2)); // stay under the receive buffer, not a sync point
            }
        }
        Ok(())
    })??;
    for (name, d) in [("a", &a), ("b", &b)] {
        let counted = wait_until(
            "all garbage counted",
            Duration::from_secs(5),
            ms(20),
            || {
                let n = d.counter("VI_1", "drops").ok()? + d.counter("unclaimed", "drops").ok()?;
                (n >= sent).then_some(n)
            },
        )?;
        println!("{name}: {counted} of {sent} injected packets dropped and counted");
        assert_eq!(counted, sent);
    }
    assert!(a.alive() && b.alive());
    hold_steady(&pair, VIP, "a", Duration::from_secs(2), ms(20))?;
    Ok(())
}
