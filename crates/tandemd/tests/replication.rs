//! Conntrack replication between two tandemd in network namespaces: entries created in A's
//! kernel reach B's external cache with their attributes, deletions follow, a commit puts them
//! into B's kernel, loss on the sync link is repaired, a restarted B gets everything back, and
//! forged or garbage datagrams are dropped and counted.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use common::*;
use tandem_ctnetlink::{Conntrack, Flow};
use tandem_lab::{require_root, wait_until, Netns, Pair};

const FLOWS: usize = 10_000;

fn vrrp(priority: u8) -> String {
    vi_1_v3(51, priority)
}

fn sync_toml(local: &str, peer: &str, key: &str) -> String {
    sync_toml_warm(local, peer, key, true)
}

fn sync_toml_warm(local: &str, peer: &str, key: &str, warm: bool) -> String {
    format!(
        "[sync]\ninterface = \"eth0\"\nlocal = \"{local}\"\npeer = \"{peer}\"\nport = 3780\nkey = \"{key}-0123456789abcdef0123456789abcdef\"\nwarm_standby = {warm}\n"
    )
}

/// Starts tandemd with a keepalived.conf and a TOML sync section.
fn start(
    pair: &Pair,
    ns: &Netns,
    priority: u8,
    local: &str,
    peer: &str,
    key: &str,
) -> Result<Daemon> {
    start_warm(pair, ns, priority, (local, peer, key), true)
}

/// [`start`] choosing whether the backup keeps its kernel table warm.
fn start_warm(
    pair: &Pair,
    ns: &Netns,
    priority: u8,
    (local, peer, key): (&str, &str, &str),
    warm: bool,
) -> Result<Daemon> {
    let tag = ns.name().rsplit('-').next().unwrap_or("x").to_string();
    let text = sync_toml_warm(local, peer, key, warm);
    let toml = write_config(pair, &format!("sync-{tag}.toml"), &text)?;
    start_tandemd_with(pair, ns, &vrrp(priority), &[toml])
}

/// TCP flows between prefixes that are none of the gateways' own addresses; every tenth is
/// source-NATed, every seventh carries a mark.
fn flows(n: usize) -> Vec<Flow> {
    (0..n)
        .map(|i| {
            let mut f = test_flow(i);
            if i % 10 == 0 {
                f.reply.dst = "10.70.0.1".parse().unwrap();
            }
            if i % 7 == 0 {
                f.mark = 7;
            }
            f
        })
        .collect()
}

/// The lines of `conntrack -L` in `ns` for our test prefix, without the timeout and counters.
fn kernel_flows(ns: &Netns) -> Result<BTreeSet<String>> {
    let out = ns.run("conntrack -L -p tcp 2>/dev/null | grep 'src=10.50.' || true")?;
    Ok(out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter(|w| {
                    w.starts_with("src=")
                        || w.starts_with("dst=")
                        || w.starts_with("sport=")
                        || w.starts_with("dport=")
                        || w.starts_with("mark=")
                        || *w == "ESTABLISHED"
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect())
}

fn prepare(pair: &Pair) -> Result<()> {
    for ns in pair.routers() {
        // Mid-stream packets must not re-create entries behind our back.
        ns.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0").ok();
    }
    Ok(())
}

#[test]
fn ten_thousand_flows_replicate_delete_and_commit() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("repl")?;
    prepare(&pair)?;
    // conntrackd's way: the backup only caches, an explicit commit fills its kernel.
    let a = start_warm(&pair, &pair.a, 150, ("10.0.0.1", "10.0.0.2", "k1"), false)?;
    let b = start_warm(&pair, &pair.b, 100, ("10.0.0.2", "10.0.0.1", "k1"), false)?;
    let created = Instant::now();
    create_flows(&pair.a, flows(FLOWS))?;
    let took = wait_external(&b, FLOWS as u64, Duration::from_secs(30))?;
    println!(
        "{FLOWS} flows in B's external cache {} ms after A's kernel had them",
        took.as_millis()
    );
    let _ = created;

    // Attributes: B's external cache, committed into B's kernel, matches A's kernel.
    let reply = b.query("commit")?;
    println!("B: {}", reply.trim());
    assert!(
        reply.contains(&format!("commit: {FLOWS} entries")),
        "{reply}"
    );
    assert!(reply.contains(&format!("{FLOWS} created")), "{reply}");
    let on_a = kernel_flows(&pair.a)?;
    let on_b = kernel_flows(&pair.b)?;
    assert_eq!(on_a.len(), FLOWS);
    assert_eq!(
        on_a, on_b,
        "same tuples, NAT, mark and TCP state on both kernels"
    );
    assert!(
        on_b.iter().any(|l| l.contains("dst=10.70.0.1")),
        "NATed reply tuples kept"
    );
    assert!(on_b.iter().any(|l| l.contains("mark=7")), "marks kept");

    // Deleting on A removes them from B's external cache.
    pair.a.run("conntrack -F 2>/dev/null")?;
    let took = wait_external(&b, 0, Duration::from_secs(30))?;
    println!("deletions reached B within {} ms", took.as_millis());
    assert!(a.query("stats")?.contains("records_sent="));
    // The failover sequence shows in status (its warnings are counted there).
    let status = a.query("status")?;
    assert!(
        status.contains("\nfailover waiting_for_commit=no "),
        "{status}"
    );
    // A cache name the daemon does not know is refused, not read as "both".
    for verb in ["flush", "dump"] {
        assert_eq!(
            a.query(&format!("{verb} bogus"))?,
            "error: unknown cache `bogus`: internal or external\n"
        );
    }
    Ok(())
}

#[test]
fn warm_standby_keeps_the_backups_kernel_table_in_step() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("warm")?;
    prepare(&pair)?;
    let _a = start(&pair, &pair.a, 150, "10.0.0.1", "10.0.0.2", "k5")?;
    let b = start(&pair, &pair.b, 100, "10.0.0.2", "10.0.0.1", "k5")?;
    create_flows(&pair.a, flows(FLOWS))?;
    let t = Instant::now();
    wait_until(
        "the backup's kernel table matches the master's",
        Duration::from_secs(30),
        ms(50),
        || (kernel_flows(&pair.b).ok()?.len() == FLOWS).then_some(()),
    )?;
    println!(
        "warm standby: {FLOWS} flows in B's kernel {} ms after A's",
        t.elapsed().as_millis()
    );
    assert_eq!(kernel_flows(&pair.a)?, kernel_flows(&pair.b)?);
    assert_eq!(
        stat(&b, "internal_entries"),
        0,
        "the peer's flows are not echoed back as B's own"
    );
    // Deletions on the master reach the backup's kernel too.
    pair.a.run("conntrack -F 2>/dev/null")?;
    wait_until(
        "deletions reach B's kernel",
        Duration::from_secs(30),
        ms(50),
        || kernel_flows(&pair.b).ok()?.is_empty().then_some(()),
    )?;
    // A promotion then has nothing left to commit.
    create_flows(&pair.a, flows(1_000))?;
    wait_until(
        "1000 new flows in B's kernel",
        Duration::from_secs(30),
        ms(50),
        || (kernel_flows(&pair.b).ok()?.len() == 1_000).then_some(()),
    )?;
    let reply = b.query("commit")?;
    println!("B: {}", reply.trim());
    assert!(
        reply.contains("commit: 0 entries") && reply.contains("(1000 already warm)"),
        "{reply}"
    );
    Ok(())
}

#[test]
fn twenty_percent_loss_each_way_is_repaired() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("loss")?;
    prepare(&pair)?;
    for ns in pair.routers() {
        ns.run(
            "nft add table inet lossy && \
             nft add chain inet lossy in '{ type filter hook input priority 0; }' && \
             nft add chain inet lossy out '{ type filter hook output priority 0; }' && \
             nft add rule inet lossy in udp dport 3780 numgen random mod 10 '<' 2 drop && \
             nft add rule inet lossy out udp dport 3780 numgen random mod 10 '<' 2 drop",
        )?;
    }
    let _a = start(&pair, &pair.a, 150, "10.0.0.1", "10.0.0.2", "k2")?;
    let b = start(&pair, &pair.b, 100, "10.0.0.2", "10.0.0.1", "k2")?;
    create_flows(&pair.a, flows(FLOWS))?;
    let took = wait_external(&b, FLOWS as u64, Duration::from_secs(60))?;
    let a_stats = _a.query("stats")?;
    let retransmissions = stat(&_a, "retransmissions");
    let dropped = pair
        .a
        .run("nft list chain inet lossy out | grep -o 'drop' | wc -l")?;
    println!(
        "with 20 % loss each way: all {FLOWS} arrived in {} ms, {retransmissions} retransmissions",
        took.as_millis()
    );
    assert!(retransmissions > 0, "{a_stats}");
    assert!(!dropped.trim().is_empty());
    Ok(())
}

#[test]
fn restarted_peer_gets_everything_back() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("restart")?;
    prepare(&pair)?;
    let _a = start(&pair, &pair.a, 150, "10.0.0.1", "10.0.0.2", "k3")?;
    let mut b = start(&pair, &pair.b, 100, "10.0.0.2", "10.0.0.1", "k3")?;
    create_flows(&pair.a, flows(2_000))?;
    wait_external(&b, 2_000, Duration::from_secs(30))?;
    b.child.kill()?;
    let b2 = start(&pair, &pair.b, 100, "10.0.0.2", "10.0.0.1", "k3")?;
    let took = wait_external(&b2, 2_000, Duration::from_secs(30))?;
    println!(
        "restarted B had all 2000 entries back after {} ms",
        took.as_millis()
    );
    assert!(stat(&b2, "resync_requests_sent") >= 1);
    Ok(())
}

#[test]
fn forged_truncated_and_random_datagrams_are_dropped_and_counted() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("forge")?;
    prepare(&pair)?;
    let mut a = start(&pair, &pair.a, 150, "10.0.0.1", "10.0.0.2", "right-key")?;
    let mut b = start(&pair, &pair.b, 100, "10.0.0.2", "10.0.0.1", "right-key")?;
    // An intruder on the sync network running tandemd with the wrong key.
    let intruder_toml = write_config(
        &pair,
        "intruder.toml",
        &sync_toml("10.0.0.100", "10.0.0.2", "wrong-key"),
    )?;
    let mut intruder = start_tandemd_with(&pair, &pair.client, &vrrp(50), &[intruder_toml])?;
    create_flows(&pair.client, flows(100))?;
    // And plain garbage of every length.
    pair.client.enter(|| -> Result<()> {
        use rand::Rng;
        let s = std::net::UdpSocket::bind("10.0.0.100:0")?;
        let mut rng = rand::rng();
        for len in 0..600 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            s.send_to(&bytes, "10.0.0.2:3780")?;
        }
        Ok(())
    })??;
    // Not from the configured peer: dropped before the sync core looks at them.
    wait_until("forgeries counted", Duration::from_secs(10), ms(20), || {
        (stat(&b, "drop_wrong_source") >= 600).then_some(())
    })?;
    assert_eq!(
        stat(&b, "external_entries"),
        0,
        "nothing from the intruder got in"
    );
    // Still syncing with the real peer.
    create_flows(&pair.a, flows(500))?;
    wait_external(&b, 500, Duration::from_secs(30))?;
    println!(
        "B dropped {} datagrams from a source that is not the peer; still in sync",
        stat(&b, "drop_wrong_source"),
    );
    assert!(a.alive() && b.alive() && intruder.alive());
    Ok(())
}

#[test]
fn a_flow_that_stops_matching_the_filter_leaves_the_peer() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("filt")?;
    prepare(&pair)?;
    let start = |ns: &Netns, priority: u8, local: &str, peer: &str| -> Result<Daemon> {
        let tag = ns.name().rsplit('-').next().unwrap_or("x").to_string();
        let text = format!(
            "{}[sync.filter]\naccept_tcp_states = [\"ESTABLISHED\"]\n",
            sync_toml_warm(local, peer, "kf", false)
        );
        let toml = write_config(&pair, &format!("sync-{tag}.toml"), &text)?;
        start_tandemd_with(&pair, ns, &vrrp(priority), &[toml])
    };
    let a = start(&pair.a, 150, "10.0.0.1", "10.0.0.2")?;
    let b = start(&pair.b, 100, "10.0.0.2", "10.0.0.1")?;
    let all = flows(100);
    create_flows(&pair.a, all.clone())?;
    wait_external(&b, 100, Duration::from_secs(20))?;
    // 40 connections close: their entries move to TIME_WAIT (state 7) in A's kernel.
    let closing: Vec<Flow> = (all.into_iter().take(40))
        .map(|mut f| {
            if let Some(tcp) = f.tcp.as_mut() {
                tcp.state = 7;
            }
            f
        })
        .collect();
    let report = pair
        .a
        .enter(move || Conntrack::open()?.update_batch(&closing))??;
    anyhow::ensure!(
        report.failed.is_empty(),
        "updates refused: {:?}",
        report.failed
    );
    let took = wait_external(&b, 60, Duration::from_secs(20))?;
    println!(
        "40 flows left the filter (TIME_WAIT): gone from B's external cache within {} ms",
        took.as_millis()
    );
    assert!(stat(&a, "filtered") >= 40, "{}", a.query("stats")?);
    Ok(())
}

/// Waits until `d` reports `state` for VI_1.
fn wait_state(d: &Daemon, state: &str, deadline: Duration) -> Result<()> {
    wait_until(&format!("VI_1 {state}"), deadline, ms(20), || {
        d.query("status")
            .ok()
            .filter(|s| s.contains(&format!("instance=VI_1 state={state} ")))
            .map(|_| ())
    })
}

#[test]
fn flows_deleted_after_a_flap_never_come_back() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("flap")?;
    prepare(&pair)?;
    const DEAD: usize = 250;
    let mut a = start(&pair, &pair.a, 150, "10.0.0.1", "10.0.0.2", "kd")?;
    let b = start(&pair, &pair.b, 100, "10.0.0.2", "10.0.0.1", "kd")?;
    wait_state(&a, "MASTER", Duration::from_secs(15))?;
    create_flows(&pair.a, flows(DEAD))?;
    wait_until(
        "warm backup kernel",
        Duration::from_secs(20),
        ms(50),
        || (kernel_flows(&pair.b).ok()?.len() == DEAD).then_some(()),
    )?;

    // b is master for a few seconds: it commits and adopts the flows as its own.
    a.child.signal(nix::sys::signal::Signal::SIGTERM)?;
    a.child.wait_timeout(Duration::from_secs(10))?;
    wait_state(&b, "MASTER", Duration::from_secs(10))?;
    let mut a = start(&pair, &pair.a, 150, "10.0.0.1", "10.0.0.2", "kd")?;
    wait_state(&a, "MASTER", Duration::from_secs(20))?;
    wait_state(&b, "BACKUP", Duration::from_secs(5))?;

    // The connections end on the master: gone from both kernels.
    pair.a.run("conntrack -D -p tcp 2>/dev/null || true")?;
    wait_until(
        "deletions reach B's kernel",
        Duration::from_secs(20),
        ms(50),
        || kernel_flows(&pair.b).ok()?.is_empty().then_some(()),
    )?;
    assert_eq!(kernel_flows(&pair.a)?.len(), 0);

    // The master steps down and comes back: whatever b sends it must hold no dead flow.
    a.child.signal(nix::sys::signal::Signal::SIGTERM)?;
    a.child.wait_timeout(Duration::from_secs(10))?;
    wait_state(&b, "MASTER", Duration::from_secs(10))?;
    let a = start(&pair, &pair.a, 150, "10.0.0.1", "10.0.0.2", "kd")?;
    wait_state(&a, "MASTER", Duration::from_secs(20))?;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let (on_a, on_b) = (kernel_flows(&pair.a)?, kernel_flows(&pair.b)?);
        assert!(
            on_a.is_empty() && on_b.is_empty(),
            "dead flows came back: {} in a's kernel, {} in b's\nb: {}",
            on_a.len(),
            on_b.len(),
            b.query("stats")?
        );
        std::thread::sleep(ms(100));
    }
    assert_eq!(stat(&a, "external_entries"), 0, "{}", a.query("stats")?);
    Ok(())
}
