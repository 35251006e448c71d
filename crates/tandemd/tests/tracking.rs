//! keepalived's `track_interface` with a weight, against Debian's keepalived as the peer: a
//! tracked uplink going down lowers the master's priority below the peer's, the peer takes
//! over, and the master takes its addresses back when the uplink returns.

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use tandem_lab::{require_root, wait_until, Pair};

const VIP: &str = "10.0.0.254";

fn config(priority: u8, extra: &str) -> String {
    vi_1(2, 71, priority, extra)
}

#[test]
fn a_weighted_uplink_going_down_hands_over_to_keepalived_and_back() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::with_lans("weight", 2)?;
    let a = start_tandemd(
        &pair,
        &pair.a,
        &config(150, "    track_interface {\n        eth1 weight -60\n    }"),
    )?;
    let _b = start_keepalived(&pair, &pair.b, &config(100, ""))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(15))?;
    let priority = |d: &Daemon| d.counter("VI_1", "priority");
    assert_eq!(priority(&a)?, 150);

    pair.a.link_set("eth1", false)?;
    wait_until("priority 90", Duration::from_secs(5), ms(10), || {
        (priority(&a).ok()? == 90).then_some(())
    })?;
    let took = wait_holder(&pair, VIP, "b", Duration::from_secs(10))?;
    println!(
        "uplink down: keepalived took over after {} ms",
        took.as_millis()
    );
    // Lower priority, not FAULT: a is a working backup.
    assert!(a.query("status")?.contains("instance=VI_1 state=BACKUP"));

    pair.a.link_set("eth1", true)?;
    let back = wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    println!(
        "uplink up: tandemd preempted back after {} ms",
        back.as_millis()
    );
    assert_eq!(priority(&a)?, 150);
    Ok(())
}

/// The `tracker` status line of `instance` for tracker `name`.
fn tracker_line(d: &Daemon, instance: &str, name: &str) -> Result<String> {
    let status = d.query("status")?;
    let prefix = format!("tracker instance={instance} ");
    status
        .lines()
        .find(|l| l.starts_with(&prefix) && l.contains(&format!(" name={name} ")))
        .map(str::to_string)
        .with_context(|| format!("no tracker {name} in status:\n{status}"))
}

fn field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
}

#[test]
fn a_failing_track_script_with_a_negative_weight_hands_over_to_keepalived_and_back() -> Result<()> {
    require_root!(Ok(()));
    let dir = ScriptDir::new("neg")?;
    let ok = dir.path("ok");
    std::fs::write(&ok, "")?;
    let check = dir.script("chk.sh", &format!("test -e {}", ok.display()), 0o755)?;
    let pair = Pair::new("trkneg")?;
    let scripts = format!(
        "vrrp_script chk {{\n    script \"{}\"\n    interval 0.2\n    weight -60\n    fall 2\n    rise 2\n}}\n",
        check.display()
    );
    let a = start_tandemd(
        &pair,
        &pair.a,
        &(scripts + &config(150, "    track_script {\n        chk\n    }")),
    )?;
    let _b = start_keepalived(&pair, &pair.b, &config(100, ""))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(15))?;
    let priority = |d: &Daemon| d.counter("VI_1", "priority");
    assert_eq!(priority(&a)?, 150);
    assert_eq!(
        field(&tracker_line(&a, "VI_1", "chk")?, "state").as_deref(),
        Some("up")
    );

    std::fs::remove_file(&ok)?;
    wait_until("priority 90", Duration::from_secs(5), ms(20), || {
        (priority(&a).ok()? == 90).then_some(())
    })?;
    let took = wait_holder(&pair, VIP, "b", Duration::from_secs(10))?;
    println!(
        "script failing: keepalived took over after {} ms",
        took.as_millis()
    );
    let line = tracker_line(&a, "VI_1", "chk")?;
    assert_eq!(field(&line, "effect").as_deref(), Some("-60"), "{line}");
    assert!(a.query("status")?.contains("instance=VI_1 state=BACKUP"));
    assert!(
        a.child
            .log()
            .contains("(VI_1) Changing effective priority from 150 to 90 (script `chk` is down)"),
        "{}",
        a.child.log()
    );

    std::fs::write(&ok, "")?;
    let back = wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    println!(
        "script recovered: tandemd preempted back after {} ms",
        back.as_millis()
    );
    assert_eq!(priority(&a)?, 150);
    Ok(())
}

#[test]
fn a_failing_weight_zero_script_means_fault_and_a_hung_one_is_killed_at_its_timeout() -> Result<()>
{
    require_root!(Ok(()));
    let dir = ScriptDir::new("hung")?;
    let ok = dir.path("ok");
    std::fs::write(&ok, "")?;
    let check = dir.script("chk.sh", &format!("test -e {}", ok.display()), 0o755)?;
    let pid_file = dir.path("sleeper.pid");
    let hang = dir.path("hang");
    let hung = dir.script(
        "hung.sh",
        &format!(
            "test -e {} || exit 0\nsleep 1000 &\necho $! > {}\nwait",
            hang.display(),
            pid_file.display()
        ),
        0o755,
    )?;
    let pair = Pair::new("trkhung")?;
    let scripts = format!(
        "vrrp_script chk {{\n    script \"{}\"\n    interval 0.2\n}}\nvrrp_script hung {{\n    script \"{}\"\n    interval 1\n    timeout 0.5\n    weight -60\n}}\n",
        check.display(),
        hung.display()
    );
    let a = start_tandemd(
        &pair,
        &pair.a,
        &(scripts + &config(150, "    track_script {\n        chk\n        hung\n    }")),
    )?;
    let _b = start_keepalived(&pair, &pair.b, &config(100, ""))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(15))?;

    // Weight 0: failing means FAULT, and keepalived takes over.
    std::fs::remove_file(&ok)?;
    wait_until("FAULT", Duration::from_secs(5), ms(20), || {
        a.query("status")
            .ok()?
            .contains("instance=VI_1 state=FAULT")
            .then_some(())
    })?;
    wait_holder(&pair, VIP, "b", Duration::from_secs(5))?;
    assert!(
        a.child
            .log()
            .contains("(VI_1) Entering FAULT STATE (script `chk` is down, was MASTER)"),
        "{}",
        a.child.log()
    );
    std::fs::write(&ok, "")?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;

    // A hung script: killed at its timeout with what it started, counted as a failure.
    std::fs::write(&hang, "")?;
    let sleeper: i32 = wait_until(
        "the hung script's child",
        Duration::from_secs(5),
        ms(20),
        || std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok(),
    )?;
    let started = std::time::Instant::now();
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
    };
    wait_until("the sleeper killed", Duration::from_secs(3), ms(10), || {
        (!alive(sleeper)).then_some(())
    })?;
    println!(
        "hung script's child gone {} ms after it was seen",
        started.elapsed().as_millis()
    );
    let line = wait_until("a timeout counted", Duration::from_secs(3), ms(20), || {
        let line = tracker_line(&a, "VI_1", "hung").ok()?;
        (field(&line, "timeouts")?.parse::<u64>().ok()? >= 1 && field(&line, "state")? == "down")
            .then_some(line)
    })?;
    assert_eq!(field(&line, "last").as_deref(), Some("timed_out"), "{line}");
    assert_eq!(a.counter("VI_1", "priority")?, 90);
    Ok(())
}

#[test]
fn a_track_file_moves_priority_by_weight_times_its_number() -> Result<()> {
    require_root!(Ok(()));
    let dir = ScriptDir::new("file")?;
    let value = dir.path("prio");
    let pair = Pair::new("trkfile")?;
    let files = format!(
        "track_file prio {{\n    file \"{}\"\n    weight 10\n    init_file 3\n}}\n",
        value.display()
    );
    let a = start_tandemd(
        &pair,
        &pair.a,
        &(files + &config(100, "    track_file {\n        prio\n    }")),
    )?;
    let _b = start_keepalived(&pair, &pair.b, &config(120, ""))?;
    // init_file wrote 3: 100 + 10 × 3 = 130 beats keepalived's 120.
    wait_holder(&pair, VIP, "a", Duration::from_secs(15))?;
    assert_eq!(std::fs::read_to_string(&value)?.trim(), "3");
    assert_eq!(a.counter("VI_1", "priority")?, 130);

    // Replaced by rename, as an operator's tool would: 100 + 10 × 1 = 110 < 120.
    let tmp = dir.path("prio.tmp");
    std::fs::write(&tmp, "1\n")?;
    std::fs::rename(&tmp, &value)?;
    let changed = wait_until("priority 110", Duration::from_secs(5), ms(10), || {
        (a.counter("VI_1", "priority").ok()? == 110).then_some(())
    });
    changed?;
    let took = wait_holder(&pair, VIP, "b", Duration::from_secs(10))?;
    println!(
        "file value 1: keepalived took over after {} ms",
        took.as_millis()
    );
    let line = tracker_line(&a, "VI_1", "prio")?;
    assert_eq!(field(&line, "effect").as_deref(), Some("10"), "{line}");

    // Written in place: -26 × 10 is past -254, FAULT.
    std::fs::write(&value, "-26\n")?;
    wait_until("FAULT", Duration::from_secs(5), ms(10), || {
        a.query("status")
            .ok()?
            .contains("instance=VI_1 state=FAULT")
            .then_some(())
    })?;
    std::fs::write(&value, "5\n")?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    assert_eq!(a.counter("VI_1", "priority")?, 150);
    Ok(())
}

/// A system user for one test, removed on drop.
struct TestUser(String);

impl TestUser {
    fn new(name: &str) -> Result<TestUser> {
        let _ = std::process::Command::new("userdel").arg(name).status();
        let status = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status()?;
        anyhow::ensure!(status.success(), "useradd {name}: {status}");
        Ok(TestUser(name.to_string()))
    }

    fn uid(&self) -> Result<u32> {
        let out = std::process::Command::new("id")
            .args(["-u", &self.0])
            .output()?;
        Ok(String::from_utf8(out.stdout)?.trim().parse()?)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.0).status();
    }
}

#[test]
fn script_security_refuses_a_group_writable_root_script_and_runs_others_as_their_user() -> Result<()>
{
    require_root!(Ok(()));
    use std::os::unix::fs::PermissionsExt;
    let user = TestUser::new("tandem_trk")?;
    let dir = ScriptDir::new("sec")?;
    let unsafe_script = dir.script("unsafe.sh", "exit 0", 0o775)?;
    // A non-root group may write it.
    std::process::Command::new("chgrp")
        .args(["100", &unsafe_script.display().to_string()])
        .status()?;
    let out = dir.path("out");
    std::fs::create_dir(&out)?;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777))?;
    let uid_file = out.join("uid");
    let as_user = dir.script("id.sh", &format!("id -u > {}", uid_file.display()), 0o755)?;
    let pair = Pair::new("trksec")?;
    let text = format!(
        "global_defs {{\n    enable_script_security\n}}\nvrrp_script bad {{\n    script \"{}\"\n    interval 0.2\n    user root\n}}\nvrrp_script who {{\n    script \"{}\"\n    interval 0.2\n    user tandem_trk\n}}\n",
        unsafe_script.display(),
        as_user.display()
    );
    let a = start_tandemd(
        &pair,
        &pair.a,
        &(text + &config(150, "    track_script {\n        bad\n        who\n    }")),
    )?;
    let uid: u32 = wait_until("the script's uid", Duration::from_secs(5), ms(20), || {
        std::fs::read_to_string(&uid_file).ok()?.trim().parse().ok()
    })?;
    assert_eq!(uid, user.uid()?);
    let line = tracker_line(&a, "VI_1", "bad")?;
    assert_eq!(field(&line, "state").as_deref(), Some("down"), "{line}");
    assert!(a.query("status")?.contains("instance=VI_1 state=FAULT"));
    let log = a.child.log();
    let config_name = a.config.file_name().unwrap().to_string_lossy().to_string();
    let refusal = log
        .lines()
        .find(|l| l.contains("Unsafe permissions found for script"))
        .with_context(|| format!("no refusal in the log:\n{log}"))?;
    assert!(
        refusal.contains(&format!("{config_name}:4: vrrp_script bad")),
        "{refusal}"
    );
    assert!(refusal.contains("writable by group 100"), "{refusal}");
    Ok(())
}

#[test]
fn a_reload_keeps_an_unchanged_scripts_state() -> Result<()> {
    require_root!(Ok(()));
    let dir = ScriptDir::new("reload")?;
    let ok = dir.path("ok");
    let check = dir.script("chk.sh", &format!("test -e {}", ok.display()), 0o755)?;
    let pair = Pair::new("trkrel")?;
    let scripts = format!(
        "vrrp_script chk {{\n    script \"{}\"\n    interval 0.2\n    weight -60\n}}\n",
        check.display()
    );
    let mut a = start_tandemd(
        &pair,
        &pair.a,
        &(scripts + &config(150, "    track_script {\n        chk\n    }")),
    )?;
    let _b = start_keepalived(&pair, &pair.b, &config(100, ""))?;
    let priority = |d: &Daemon| d.counter("VI_1", "priority");
    wait_until("priority 90", Duration::from_secs(5), ms(20), || {
        (priority(&a).ok()? == 90).then_some(())
    })?;
    wait_holder(&pair, VIP, "b", Duration::from_secs(15))?;
    let runs = |d: &Daemon| -> Option<u64> {
        field(&tracker_line(d, "VI_1", "chk").ok()?, "runs")?
            .parse()
            .ok()
    };
    let before = runs(&a).context("runs")?;
    a.child.signal(nix::sys::signal::Signal::SIGHUP)?;
    wait_until("reload done", Duration::from_secs(5), ms(20), || {
        a.child.log().contains("Reload done").then_some(())
    })?;
    // Same script, same state: no moment back at 150, the runner (and its count) carried on.
    assert_eq!(priority(&a)?, 90);
    assert!(runs(&a).context("runs")? >= before);
    assert!(
        !a.child.log().contains("from 90 to 150"),
        "{}",
        a.child.log()
    );
    hold_steady(&pair, VIP, "b", Duration::from_secs(2), ms(50))?;
    Ok(())
}
