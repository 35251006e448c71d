//! Prometheus metrics scraped from a running pair across a failover: the state gauge flips,
//! the transition counter moves with its cause, the failover steps are timed, and the
//! replication counters are there; the control verb `metrics` gives the same exposition.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use nix::sys::signal::Signal;
use tandem_lab::{require_root, wait_until, Netns, Pair};

const KEY: &str = "metrics-test-key-0123456789abcdef0123456789";
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const LISTEN: &str = "127.0.0.1:9650";

fn start(pair: &Pair, ns: &Netns, priority: u8, local: Ipv4Addr, peer: Ipv4Addr) -> Result<Daemon> {
    let tag = ns.name().rsplit('-').next().unwrap_or("x").to_string();
    let text = format!(
        "[sync]\ninterface = \"eth0\"\nlocal = \"{local}\"\npeer = \"{peer}\"\nkey = \"{KEY}\"\n\n\
         [metrics]\nlisten = \"{LISTEN}\"\n"
    );
    let toml = write_config(pair, &format!("metrics-{tag}.toml"), &text)?;
    start_tandemd_with(pair, ns, &vi_1_v3(51, priority), &[toml])
}

fn scrape(ns: &Netns) -> Result<String> {
    ns.run(&format!("curl -sf http://{LISTEN}/metrics"))
}

/// The value of the sample `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name && labels.iter().all(|l| rest.contains(l))
        })
        .and_then(|(_, value)| value.parse().ok())
}

#[test]
fn a_failover_moves_the_state_gauge_and_the_transition_counter() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("metrics")?;
    let mut a = start(&pair, &pair.a, 150, A, B)?;
    let b = start(&pair, &pair.b, 100, B, A)?;
    wait_holder(&pair, "10.0.0.254", "a", Duration::from_secs(10))?;
    let vi_1 = r#"instance="VI_1""#;
    let before = wait_until(
        "b scraped as BACKUP",
        Duration::from_secs(10),
        ms(50),
        || {
            let text = scrape(&pair.b).ok()?;
            (sample(&text, "tandem_vrrp_state", &[vi_1]) == Some(1.0)).then_some(text)
        },
    )?;
    assert_eq!(
        sample(&before, "tandem_vrrp_priority", &[vi_1]),
        Some(100.0)
    );
    let to_master = [vi_1, r#"to="MASTER""#];
    assert_eq!(
        sample(&before, "tandem_vrrp_transitions_total", &to_master),
        None,
        "b was never master:\n{before}"
    );
    assert!(
        sample(&before, "tandem_sync_datagrams_received_total", &[]).unwrap_or(0.0) > 0.0,
        "no sync counters:\n{before}"
    );
    assert_eq!(sample(&before, "tandem_sync_peer_silent", &[]), Some(0.0));

    // The master goes away: b takes over, and its metrics say so.
    a.child.signal(Signal::SIGTERM)?;
    a.child.wait_timeout(Duration::from_secs(10))?;
    wait_holder(&pair, "10.0.0.254", "b", Duration::from_secs(10))?;
    let after = wait_until(
        "b scraped as MASTER",
        Duration::from_secs(10),
        ms(50),
        || {
            let text = scrape(&pair.b).ok()?;
            (sample(&text, "tandem_vrrp_state", &[vi_1]) == Some(2.0)).then_some(text)
        },
    )?;
    let became = sample(&after, "tandem_vrrp_transitions_total", &to_master)
        .with_context(|| format!("no transition to MASTER:\n{after}"))?;
    assert_eq!(became, 1.0);
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("tandem_vrrp_transitions_total{")
                && l.contains(r#"to="MASTER""#)
                && l.contains("cause=\"")),
        "the transition has no cause:\n{after}"
    );
    assert!(
        sample(
            &after,
            "tandem_failover_step_seconds_count",
            &[r#"step="commit""#]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "the commit was not timed:\n{after}"
    );
    // The same exposition through the control socket.
    let via_control = b.query("metrics")?;
    assert_eq!(
        sample(&via_control, "tandem_vrrp_state", &[vi_1]),
        Some(2.0)
    );
    // Only /metrics is served.
    let code = pair.b.run(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' http://{LISTEN}/"
    ))?;
    assert_eq!(code.trim(), "404");
    Ok(())
}
