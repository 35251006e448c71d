//! How tandemd's log reaches a collector: syslog priority prefixes when systemd connected
//! stderr to the journal, one JSON object per line with `--log-format json`, and plain lines
//! without prefixes or escapes otherwise.

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use tandem_lab::{require_root, wait_until, Pair};

/// A master whose configuration also earns a warning (`vrrp_strict` is not acted on).
fn config() -> String {
    format!("global_defs {{\n    vrrp_strict\n}}\n{}", vi_1_v3(51, 150))
}

/// Starts tandemd in `pair.a` through `sh`, with `prelude` run first (to set variables that
/// depend on the log file the lab connects to stderr), and waits until it is master.
fn start_via_shell(pair: &Pair, prelude: &str, extra: &str) -> Result<tandem_lab::Child> {
    let conf = write_config(pair, "logs.conf", &config())?;
    let control = pair.lab.log_dir().join("logs.sock");
    let script = format!(
        "{prelude} exec {TANDEMD} -f {} --control {} {extra}",
        conf.display(),
        control.display()
    );
    let child = pair.a.spawn(&["sh", "-c", &script])?;
    wait_has(&pair.a, "10.0.0.254", Duration::from_secs(10))
        .with_context(|| format!("tandemd did not become master:\n{}", child.log()))?;
    Ok(child)
}

/// Waits until the log has a line containing `needle`.
fn wait_line(child: &tandem_lab::Child, needle: &str) -> Result<String> {
    wait_until(
        &format!("a log line with {needle:?}"),
        Duration::from_secs(5),
        ms(20),
        || {
            child
                .log()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string)
        },
    )
    .with_context(|| child.log())
}

#[test]
fn under_journal_stream_every_line_carries_its_syslog_priority() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("logjs")?;
    // What systemd does: JOURNAL_STREAM names stderr's device and inode.
    let child = start_via_shell(
        &pair,
        "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); export JOURNAL_STREAM;",
        "",
    )?;
    let master = wait_line(&child, "Entering MASTER STATE")?;
    let warning = wait_line(&child, "vrrp_strict")?;
    // keepalived's words for the steps of a takeover, which operators grep for.
    wait_line(&child, "(VI_1) setting VIPs.")?;
    wait_line(
        &child,
        "(VI_1) Sending/queueing gratuitous ARPs on eth0 for 10.0.0.254",
    )?;
    assert!(master.starts_with("<6>"), "info line without <6>: {master}");
    assert!(warning.starts_with("<4>"), "warning without <4>: {warning}");
    let log = child.log();
    for line in log.lines().filter(|l| !l.is_empty()) {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| line.starts_with(p)),
            "a line without a priority prefix: {line}"
        );
    }
    assert!(!log.contains('\u{1b}'), "escape sequences in the journal");
    Ok(())
}

#[test]
fn a_journal_stream_that_is_not_stderr_adds_no_prefixes() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("lognjs")?;
    // Inherited from a parent whose stderr went to the journal, but ours is redirected.
    let child = start_via_shell(&pair, "export JOURNAL_STREAM=1:1;", "")?;
    let master = wait_line(&child, "Entering MASTER STATE")?;
    assert!(
        !master.starts_with('<'),
        "prefix on a redirected stream: {master}"
    );
    Ok(())
}

#[test]
fn json_format_writes_one_object_per_line_with_its_level() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("logjson")?;
    let child = start_via_shell(&pair, "", "--log-format json")?;
    wait_line(&child, "Entering MASTER STATE")?;
    wait_line(&child, "vrrp_strict")?;
    let log = child.log();
    let mut levels = Vec::new();
    for line in log.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        let message = v["message"].as_str().context("no message")?;
        let level = v["level"].as_str().context("no level")?;
        assert!(v["timestamp"].is_string(), "no timestamp: {line}");
        if message.contains("Entering MASTER STATE") || message.contains("vrrp_strict") {
            levels.push(level.to_string());
        }
    }
    assert_eq!(
        levels,
        ["WARN", "INFO"],
        "warning then state change:\n{log}"
    );
    Ok(())
}

#[test]
fn json_to_syslog_is_refused_with_the_reason() -> Result<()> {
    let out = std::process::Command::new(TANDEMD)
        .args([
            "--log-format",
            "json",
            "--log-target",
            "syslog",
            "-f",
            "/nonexistent",
        ])
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--log-format json") && stderr.contains("syslog"),
        "{stderr}"
    );
    Ok(())
}

/// `lvs_sync_daemon` on a kernel without ip_vs (these machines): a warning naming the
/// configuration line and what will not happen; the instance still becomes master.
/// (The daemon's start/stop against a real ip_vs is in crates/lb/tests/ipvs_kernel.rs.)
#[test]
fn lvs_sync_daemon_without_ip_vs_is_a_located_warning() -> Result<()> {
    require_root!(Ok(()));
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        eprintln!("skipped: this kernel has ip_vs (the test is about one without)");
        return Ok(());
    }
    let pair = Pair::new("logsyncd")?;
    let conf = format!(
        "global_defs {{\n    lvs_sync_daemon eth0 VI_1\n}}\n{}",
        vi_1_v3(51, 150)
    );
    let d = start_tandemd(&pair, &pair.a, &conf)?;
    wait_has(&pair.a, "10.0.0.254", Duration::from_secs(10))
        .with_context(|| format!("tandemd did not become master:\n{}", d.child.log()))?;
    let warning = wait_line(&d.child, "lvs_sync_daemon:")?;
    let at = format!("{}:2:", d.config.display());
    assert!(warning.contains(&at), "not located at {at}: {warning}");
    assert!(
        warning.contains("IPVS is not available")
            && warning.contains("IPVS connections are not synchronised"),
        "{warning}"
    );
    Ok(())
}
