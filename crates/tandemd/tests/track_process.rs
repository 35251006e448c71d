//! keepalived's `vrrp_track_process`, followed through the kernel's process events: an
//! instance whose tracked process stops goes to FAULT (weight 0) or hands mastership to
//! Debian's keepalived (negative weight), and comes back when the process starts again.
//!
//! The kernel's process events are system-wide, so each test tracks a process name of its own:
//! a copy of `sleep` named after the test's process id.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use tandem_lab::{require_root, wait_until, Pair};

const VIP: &str = "10.0.0.254";

/// A program whose kernel name is unique to this test, started and stopped at will.
struct Tracked {
    path: PathBuf,
    child: Option<std::process::Child>,
}

impl Tracked {
    /// A copy of `sleep` named `tp<pid><tag>` (at most 15 bytes: the kernel's name length).
    fn new(pair: &Pair, tag: &str) -> Result<Tracked> {
        let name = format!("tp{}{tag}", std::process::id());
        anyhow::ensure!(name.len() <= 15, "{name} is longer than a process name");
        let path = pair.lab.log_dir().join(&name);
        std::fs::copy("/bin/sleep", &path).context("copying /bin/sleep")?;
        Ok(Tracked { path, child: None })
    }

    fn name(&self) -> &str {
        self.path.file_name().and_then(|n| n.to_str()).unwrap_or("")
    }

    fn start(&mut self) -> Result<()> {
        // Another test thread that forks while our copy of the file was open for writing
        // holds that descriptor until its exec: the kernel then refuses to run the copy
        // (ETXTBSY) for that moment. Try again until it passes.
        let path = self.path.clone();
        let child = wait_until(
            "the tracked process starting",
            Duration::from_secs(5),
            ms(10),
            || match Command::new(&path).arg("1000").stdin(Stdio::null()).spawn() {
                Ok(child) => Some(Ok(child)),
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => None,
                Err(e) => Some(Err(e)),
            },
        )?
        .context("starting the tracked process")?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills it (SIGKILL) and reaps it; returns when the kill was sent.
    fn stop(&mut self) -> Result<Instant> {
        let mut child = self.child.take().context("not running")?;
        child.kill()?;
        let at = Instant::now();
        child.wait()?;
        Ok(at)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn tracker(name: &str, process: &str, weight: &str) -> String {
    format!("vrrp_track_process {name} {{\n    process {process}\n{weight}}}\n")
}

fn state(d: &Daemon) -> Option<String> {
    let status = d.query("status").ok()?;
    let line = status.lines().find(|l| l.starts_with("instance=VI_1 "))?;
    let state = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("state="))?;
    Some(state.to_string())
}

/// Polls (every millisecond) until VI_1 is in `want`; returns the time since `since`.
fn wait_state(d: &Daemon, want: &str, since: Instant, deadline: Duration) -> Result<Duration> {
    wait_until(&format!("VI_1 in {want}"), deadline, ms(1), || {
        (state(d).as_deref() == Some(want)).then_some(())
    })
    .with_context(|| format!("log:\n{}", d.child.log()))?;
    Ok(since.elapsed())
}

#[test]
fn weight_0_faults_while_the_process_is_gone() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("tproc0")?;
    let mut proc_ = Tracked::new(&pair, "z")?;
    let config = tracker("app", proc_.name(), "")
        + &vi_1(2, 81, 150, "    track_process {\n        app\n    }");
    // Not running at start: the first count holds the instance in FAULT.
    let a = start_tandemd(&pair, &pair.a, &config)?;
    wait_state(&a, "FAULT", Instant::now(), Duration::from_secs(5))?;
    assert!(!pair.a.has_address(VIP)?);

    // Seen through its exec: out of FAULT, then master (alone on the link).
    proc_.start()?;
    let started = Instant::now();
    let left = wait_until("VI_1 out of FAULT", Duration::from_secs(5), ms(1), || {
        state(&a).filter(|s| s != "FAULT")
    })?;
    println!(
        "process started: {left} after {:.2} ms",
        millis(started.elapsed())
    );
    wait_has(&pair.a, VIP, Duration::from_secs(10))?;

    // Seen through its exit: FAULT, and the address goes.
    let killed = proc_.stop()?;
    let took = wait_state(&a, "FAULT", killed, Duration::from_secs(5))?;
    println!("process killed: FAULT after {:.2} ms", millis(took));
    assert!(took < Duration::from_millis(500), "{took:?}");
    wait_until("VIP removed", Duration::from_secs(5), ms(5), || {
        (!pair.a.has_address(VIP).ok()?).then_some(())
    })?;
    let status = a.query("status")?;
    assert!(
        status.contains("kind=process name=app state=down weight=0"),
        "{status}"
    );
    // Stays there while the process is gone.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(&a).as_deref(), Some("FAULT"));

    proc_.start()?;
    let back = Instant::now();
    wait_has(&pair.a, VIP, Duration::from_secs(10))?;
    println!(
        "process restarted: master again after {} ms",
        back.elapsed().as_millis()
    );
    Ok(())
}

#[test]
fn a_negative_weight_hands_mastership_to_keepalived_and_back() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("tprocw")?;
    let mut proc_ = Tracked::new(&pair, "w")?;
    proc_.start()?;
    let config = tracker("app", proc_.name(), "    weight -60\n")
        + &vi_1(2, 82, 150, "    track_process {\n        app\n    }");
    let a = start_tandemd(&pair, &pair.a, &config)?;
    let _b = start_keepalived(&pair, &pair.b, &vi_1(2, 82, 100, ""))?;
    wait_holder(&pair, VIP, "a", Duration::from_secs(15))?;
    let priority = |d: &Daemon| d.counter("VI_1", "priority");
    assert_eq!(priority(&a)?, 150);

    let killed = proc_.stop()?;
    wait_until("priority 90", Duration::from_secs(5), ms(1), || {
        (priority(&a).ok()? == 90).then_some(())
    })?;
    let reweighed = killed.elapsed();
    let took = wait_holder(&pair, VIP, "b", Duration::from_secs(10))?;
    println!(
        "process killed: priority 90 after {:.2} ms, keepalived holds the address {} ms later",
        millis(reweighed),
        took.as_millis()
    );
    assert!(reweighed < Duration::from_millis(500), "{reweighed:?}");
    // A lower priority, not FAULT: a is a working backup.
    assert_eq!(state(&a).as_deref(), Some("BACKUP"));

    proc_.start()?;
    let started = Instant::now();
    wait_until("priority 150", Duration::from_secs(5), ms(1), || {
        (priority(&a).ok()? == 150).then_some(())
    })?;
    let reweighed = started.elapsed();
    let back = wait_holder(&pair, VIP, "a", Duration::from_secs(10))?;
    println!(
        "process restarted: priority 150 after {:.2} ms, tandemd preempted back {} ms later",
        millis(reweighed),
        back.as_millis()
    );
    Ok(())
}

#[test]
fn a_reload_keeps_the_count_without_a_fault() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("tprocr")?;
    let mut proc_ = Tracked::new(&pair, "r")?;
    proc_.start()?;
    let config = tracker("app", proc_.name(), "")
        + &vi_1(2, 83, 150, "    track_process {\n        app\n    }");
    let a = start_tandemd(&pair, &pair.a, &config)?;
    wait_has(&pair.a, VIP, Duration::from_secs(10))?;

    // The new plan's trackers start from a new count: up, so no FAULT on the way.
    let reply = a.query("reload")?;
    assert!(reply.starts_with("reload:"), "{reply}");
    let end = Instant::now() + Duration::from_millis(500);
    while Instant::now() < end {
        assert_eq!(state(&a).as_deref(), Some("MASTER"));
        std::thread::sleep(ms(10));
    }
    assert!(
        !a.child.log().contains("Entering FAULT"),
        "{}",
        a.child.log()
    );

    // The watch started by the reload is the one the router listens to.
    let killed = proc_.stop()?;
    let took = wait_state(&a, "FAULT", killed, Duration::from_secs(5))?;
    println!(
        "after a reload: FAULT {:.2} ms after the kill",
        millis(took)
    );
    Ok(())
}
