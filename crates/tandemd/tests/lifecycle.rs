//! Operating tandemd the way keepalived is operated: reload with SIGHUP (unchanged, broken,
//! instances added and removed), keepalived's dump signals, a second daemon started by
//! mistake, stop and terminal signals, and a panic in the replication thread.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::*;
use nix::sys::signal::Signal;
use tandem_lab::{require_root, wait_until, Pair};

const VIP: &str = "10.0.0.254";
const VIP2: &str = "10.0.0.253";

fn vi(name: &str, vrid: u8, priority: u8, vip: &str, extra: &str) -> String {
    let vips = [format!("{vip}/24")];
    let vips: Vec<&str> = vips.iter().map(String::as_str).collect();
    Vi {
        name,
        interface: "eth0",
        vrid,
        priority,
        advert_int: "1",
        version: 2,
        vips: &vips,
        extra,
    }
    .render()
}

/// A notify hook that appends its arguments to `log`, one call per line.
fn notify_hook(pair: &Pair, log: &Path) -> Result<String> {
    let script = pair.lab.log_dir().join("notify.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(format!("    notify {}", script.display()))
}

/// `a` (150) master of VI_1, `b` (100) backup.
fn started(tag: &str, a_config: &str) -> Result<(Pair, Daemon, Daemon)> {
    let pair = Pair::new(tag)?;
    let a = start_tandemd(&pair, &pair.a, a_config)?;
    let b = start_tandemd(&pair, &pair.b, &vi("VI_1", 51, 100, VIP, ""))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    Ok((pair, a, b))
}

/// Sends SIGHUP and waits for the reload's closing log line (`Reload done` or `refused`).
fn sighup(d: &mut Daemon) -> Result<String> {
    let ends = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("Reload done") || l.contains("Reload refused"))
            .map(str::to_string)
            .collect()
    };
    let before = ends(&d.child.log()).len();
    d.child.signal(Signal::SIGHUP)?;
    wait_until("reload logged", Duration::from_secs(10), ms(10), || {
        ends(&d.child.log()).get(before).cloned()
    })
}

/// Starts tcpdump on `ns`'s eth0 for VRRP, with epoch timestamps.
fn capture_vrrp(ns: &tandem_lab::Netns) -> Result<tandem_lab::Child> {
    let capture = ns.spawn(&["tcpdump", "-l", "-n", "-tt", "-i", "eth0", "vrrp"])?;
    wait_until("tcpdump listening", Duration::from_secs(5), ms(10), || {
        capture.log().contains("listening on").then_some(())
    })?;
    Ok(capture)
}

/// Times (epoch seconds) of the adverts from `src` in a capture.
fn advert_times(capture: &str, src: &str) -> Vec<f64> {
    capture
        .lines()
        .filter(|l| l.contains(&format!("IP {src} >")) && l.contains("Advertisement"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn sighup_with_an_unchanged_file_keeps_the_master_without_transition_notify_or_gap() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("hupsame")?;
    let notified = pair.lab.log_dir().join("notified");
    let hook = notify_hook(&pair, &notified)?;
    let mut a = start_tandemd(&pair, &pair.a, &vi("VI_1", 51, 150, VIP, &hook))?;
    let b = start_tandemd(&pair, &pair.b, &vi("VI_1", 51, 100, VIP, ""))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    wait_until("MASTER notify", Duration::from_secs(5), ms(10), || {
        std::fs::read_to_string(&notified)
            .ok()
            .filter(|t| t.contains("MASTER"))
    })?;
    let capture = capture_vrrp(&pair.b)?;
    hold_steady(&pair, VIP, "a", Duration::from_secs(2), ms(20))?;
    let line = sighup(&mut a)?;
    assert!(
        line.contains("1 instance(s) kept, 0 stopped, 0 started"),
        "{line}"
    );
    hold_steady(&pair, VIP, "a", Duration::from_secs(3), ms(20))?;

    let times = advert_times(&capture.log(), "10.0.0.1");
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    println!(
        "{} adverts captured at b across the reload, largest gap {gap:.3} s",
        times.len()
    );
    assert!(times.len() >= 4, "adverts captured: {times:?}");
    assert!(gap < 1.1, "gap in adverts: {gap:.3} s");
    let calls = std::fs::read_to_string(&notified)?;
    assert_eq!(
        calls, "INSTANCE VI_1 BACKUP 150\nINSTANCE VI_1 MASTER 150\n",
        "only the start's notify calls"
    );
    assert_eq!(b.counter("VI_1", "became_master")?, 0);
    let entering = a.child.log().matches("Entering").count();
    assert_eq!(entering, 2, "BACKUP then MASTER once:\n{}", a.child.log());
    // Logs that go to a file (journald, a pipe) carry no colour escapes, and causes in words.
    let log = a.child.log();
    assert!(!log.contains('\u{1b}'), "escape sequences in a piped log");
    assert!(
        log.contains("(VI_1) Entering MASTER STATE (no advert from the master for Master_Down_Interval, was BACKUP)"),
        "{log}"
    );
    Ok(())
}

#[test]
fn sighup_with_a_broken_file_is_refused_with_its_location_and_the_master_stays() -> Result<()> {
    require_root!(Ok(()));
    let (pair, mut a, _b) = started("hupbad", &vi("VI_1", 51, 150, VIP, ""))?;
    let good = std::fs::read_to_string(&a.config)?;
    std::fs::write(&a.config, good.replace("priority 150", "priority 300"))?;
    let line = sighup(&mut a)?;
    assert!(line.contains("Reload refused"), "{line}");
    let log = a.child.log();
    assert!(
        log.contains(&format!("{}:", a.config.display())) && log.contains("priority"),
        "the error names the file and the keyword:\n{log}"
    );
    assert!(a.alive());
    hold_steady(&pair, VIP, "a", Duration::from_secs(4), ms(20))?;
    // tandemctl reload says the same.
    let reply = a.query("reload")?;
    assert!(reply.contains("reload refused"), "{reply}");
    Ok(())
}

#[test]
fn sighup_adds_and_removes_instances() -> Result<()> {
    require_root!(Ok(()));
    let one = vi("VI_1", 51, 150, VIP, "");
    let (pair, mut a, _b) = started("hupaddrm", &one)?;
    // Added: VI_2 starts and (alone on its VRID) takes its address.
    std::fs::write(&a.config, format!("{one}{}", vi("VI_2", 52, 150, VIP2, "")))?;
    let line = sighup(&mut a)?;
    assert!(
        line.contains("1 instance(s) kept, 0 stopped, 1 started"),
        "{line}"
    );
    wait_has(&pair.a, VIP2, Duration::from_secs(10))?;
    assert_eq!(holders(&pair, VIP)?, ["a"]);
    // Removed: VI_1 stops with priority 0, its address leaves a, b takes it over.
    std::fs::write(&a.config, vi("VI_2", 52, 150, VIP2, ""))?;
    let removed = Instant::now();
    let line = sighup(&mut a)?;
    assert!(
        line.contains("1 instance(s) kept, 1 stopped, 0 started"),
        "{line}"
    );
    let took = wait_holder(&pair, VIP, "b", Duration::from_secs(5))?;
    println!(
        "b holds {VIP} {} ms after the reload removed VI_1",
        removed.elapsed().as_millis()
    );
    assert!(
        took < Duration::from_secs(2),
        "took {took:?}: priority 0 was not sent"
    );
    assert!(pair.a.has_address(VIP2)?);
    Ok(())
}

#[test]
fn dump_signals_write_keepalived_files() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("dumps")?;
    let dir = pair.lab.log_dir();
    let (data, stats, json): (PathBuf, PathBuf, PathBuf) = (
        dir.join("keepalived.data"),
        dir.join("keepalived.stats"),
        dir.join("keepalived.json"),
    );
    let args = [
        "--data-file",
        data.to_str().context("path")?,
        "--stats-file",
        stats.to_str().context("path")?,
        "--json-file",
        json.to_str().context("path")?,
    ];
    let config = vi("VI_1", 51, 150, VIP, "");
    let mut a = start_tandemd_full(&pair.lab, &pair.a, &config, &[], &[], &args)?;
    wait_has(&pair.a, VIP, Duration::from_secs(10))?;
    let read = |path: &Path| {
        wait_until("dump written", Duration::from_secs(5), ms(10), || {
            std::fs::read_to_string(path).ok().filter(|t| !t.is_empty())
        })
    };
    a.child.signal(Signal::SIGUSR1)?;
    let text = read(&data)?;
    for expected in [
        "------< VRRP Topology >------",
        " VRRP Instance = VI_1",
        "   State = MASTER",
        "   Virtual Router ID = 51",
        "     10.0.0.254/24 dev eth0 scope global set",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    a.child.signal(Signal::SIGUSR2)?;
    let text = read(&stats)?;
    assert!(
        text.starts_with("VRRP Instance: VI_1\n  Advertisements:\n"),
        "{text}"
    );
    assert!(text.contains("  Became master: 1\n"), "{text}");
    // nix's Signal has no real-time signals: keepalived's JSON signal goes through kill(1).
    let status = std::process::Command::new("kill")
        .args([
            &format!("-{}", libc::SIGRTMIN() + 2),
            &a.child.pid().to_string(),
        ])
        .status()?;
    assert!(status.success());
    let text = read(&json)?;
    let parsed: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(parsed[0]["data"]["iname"], "VI_1");
    assert_eq!(parsed[0]["data"]["state"], 2);
    assert!(a.alive(), "dump signals must not stop the daemon");
    // The same dumps through the control socket, for scripts that cannot signal.
    assert!(a.query("dump data")?.contains("   State = MASTER"));
    assert!(a.query("dump stats")?.starts_with("VRRP Instance: VI_1\n"));
    let json: serde_json::Value = serde_json::from_str(&a.query("dump json")?)?;
    assert_eq!(json[0]["data"]["vrid"], 51);
    assert!(pair.a.has_address(VIP)?);
    Ok(())
}

#[test]
fn a_second_tandemd_is_refused_and_touches_nothing() -> Result<()> {
    require_root!(Ok(()));
    let config = vi("VI_1", 51, 150, VIP, "");
    let (pair, mut a, _b) = started("second", &config)?;
    // Same node, another control socket: refused because a tandemd runs here.
    let other = pair.lab.log_dir().join("other.sock");
    let mut second = pair.a.spawn(&[
        TANDEMD,
        "-f",
        a.config.to_str().context("path")?,
        "--control",
        other.to_str().context("path")?,
    ])?;
    let status = second
        .wait_timeout(Duration::from_secs(10))?
        .context("still running")?;
    assert!(!status.success());
    assert!(second.log().contains("another tandemd"), "{}", second.log());
    // Elsewhere, but the same control socket: refused by its lock.
    let mut third = pair.client.spawn(&[
        TANDEMD,
        "-f",
        a.config.to_str().context("path")?,
        "--control",
        a.control.to_str().context("path")?,
    ])?;
    let status = third
        .wait_timeout(Duration::from_secs(10))?
        .context("still running")?;
    assert!(!status.success());
    assert!(third.log().contains("control socket"), "{}", third.log());
    hold_steady(&pair, VIP, "a", Duration::from_secs(2), ms(20))?;
    assert!(a.alive());
    assert!(a.query("status")?.contains("state=MASTER"));
    Ok(())
}

#[test]
fn terminal_stop_signals_are_ignored_and_sigquit_stops_gracefully() -> Result<()> {
    require_root!(Ok(()));
    let (pair, mut a, _b) = started("sigs", &vi("VI_1", 51, 150, VIP, ""))?;
    a.child.signal(Signal::SIGTSTP)?;
    hold_steady(&pair, VIP, "a", Duration::from_secs(4), ms(20))?;
    assert!(
        a.query("status")?.contains("state=MASTER"),
        "still answering"
    );
    let stopped = Instant::now();
    a.child.signal(Signal::SIGQUIT)?;
    let status = a
        .child
        .wait_timeout(Duration::from_secs(5))?
        .context("still running")?;
    assert!(status.success(), "{status:?}");
    assert!(!pair.a.has_address(VIP)?, "addresses left behind");
    let took = wait_holder(&pair, VIP, "b", Duration::from_secs(5))?;
    println!(
        "SIGQUIT: b holds {VIP} {} ms after the signal",
        stopped.elapsed().as_millis()
    );
    assert!(took < Duration::from_secs(2));
    Ok(())
}

#[test]
fn a_panic_in_the_replication_thread_releases_the_addresses_and_the_peer_takes_over() -> Result<()>
{
    require_root!(Ok(()));
    let pair = Pair::new("panic")?;
    let sync = |local: &str, peer: &str, tag: &str| -> Result<PathBuf> {
        write_config(
            &pair,
            &format!("sync-{tag}.toml"),
            &format!(
                "[sync]\ninterface = \"eth0\"\nlocal = \"{local}\"\npeer = \"{peer}\"\nport = 3780\nkey = \"panic-test-key-0123456789abcdef-0123456789abcdef\"\n"
            ),
        )
    };
    let a_sync = sync("10.0.0.1", "10.0.0.2", "a")?;
    let b_sync = sync("10.0.0.2", "10.0.0.1", "b")?;
    let panic_after = Duration::from_secs(9);
    let started = Instant::now();
    let mut a = start_tandemd_full(
        &pair.lab,
        &pair.a,
        &vi("VI_1", 51, 150, VIP, ""),
        &[a_sync],
        &[(
            "TANDEM_TEST_PANIC_SYNC_AFTER_MS",
            &panic_after.as_millis().to_string(),
        )],
        &[],
    )?;
    let _b = start_tandemd_with(&pair, &pair.b, &vi("VI_1", 51, 100, VIP, ""), &[b_sync])?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(8))?;
    if started.elapsed() >= panic_after {
        bail!("a was not master before the injected panic: cannot test");
    }
    let status = a
        .child
        .wait_timeout(panic_after + Duration::from_secs(10))?
        .context("the daemon survived a panic in its replication thread")?;
    assert_eq!(status.code(), Some(70), "{status:?}\n{}", a.child.log());
    assert!(
        !pair.a.has_address(VIP)?,
        "the dead daemon left {VIP} behind"
    );
    wait_holder(&pair, VIP, "b", Duration::from_secs(8))?;
    assert!(
        a.child.log().contains("injected panic"),
        "{}",
        a.child.log()
    );
    Ok(())
}

#[test]
fn sighup_with_a_new_address_on_the_master_adds_it_in_place() -> Result<()> {
    require_root!(Ok(()));
    let (pair, mut a, b) = started("hupvip", &vi("VI_1", 51, 150, VIP, ""))?;
    let entering = a.child.log().matches("Entering").count();
    let two = Vi {
        name: "VI_1",
        interface: "eth0",
        vrid: 51,
        priority: 150,
        advert_int: "1",
        version: 2,
        vips: &["10.0.0.254/24", "10.0.0.253/24"],
        extra: "",
    }
    .render();
    std::fs::write(&a.config, two)?;
    let line = sighup(&mut a)?;
    assert!(
        line.contains("1 instance(s) kept (1 with new settings), 0 stopped"),
        "{line}"
    );
    wait_has(&pair.a, VIP2, Duration::from_secs(2))?;
    hold_steady(&pair, VIP, "a", Duration::from_secs(3), ms(20))?;
    assert_eq!(holders(&pair, VIP2)?, ["a"]);
    // Back to one address: the second goes, the first stays, still no transition.
    std::fs::write(&a.config, vi("VI_1", 51, 150, VIP, ""))?;
    sighup(&mut a)?;
    wait_until("10.0.0.253 removed", Duration::from_secs(2), ms(10), || {
        (!pair.a.has_address(VIP2).ok()?).then_some(())
    })?;
    assert_eq!(holders(&pair, VIP)?, ["a"]);
    assert_eq!(a.child.log().matches("Entering").count(), entering);
    assert_eq!(b.counter("VI_1", "became_master")?, 0);
    Ok(())
}
