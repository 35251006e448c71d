//! Shared pieces of the end-to-end tests: a lab pair running real tandemd (or keepalived)
//! processes, and polls with deadlines instead of sleeps.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tandem_lab::{wait_until, Child, Netns, Pair};

/// The daemon under test.
pub const TANDEMD: &str = env!("CARGO_BIN_EXE_tandemd");

/// A running tandemd (or keepalived) in one namespace.
pub struct Daemon {
    pub child: Child,
    pub control: PathBuf,
    pub config: PathBuf,
    pub ns: Netns,
}

impl Daemon {
    /// Control-socket reply to `command`.
    pub fn query(&self, command: &str) -> Result<String> {
        tandem_lab::control::ask(&self.control, command, Duration::from_secs(5))
    }

    /// A counter from the `status` line of `instance` (or `unclaimed`).
    pub fn counter(&self, instance: &str, key: &str) -> Result<u64> {
        let status = self.query("status")?;
        let prefix = if instance == "unclaimed" {
            "unclaimed ".to_string()
        } else {
            format!("instance={instance} ")
        };
        let line = status
            .lines()
            .find(|l| l.starts_with(&prefix))
            .with_context(|| format!("no {instance} in status:\n{status}"))?;
        Ok(line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .map_or(0, |v| v.parse().unwrap_or(0)))
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Writes `text` as a config file named `name` in the lab's log directory.
pub fn write_config(pair: &Pair, name: &str, text: &str) -> Result<PathBuf> {
    write_config_lab(&pair.lab, name, text)
}

/// [`write_config`] for a gateway lab.
pub fn write_config_in(gw: &tandem_lab::Gateway, name: &str, text: &str) -> Result<PathBuf> {
    write_config_lab(&gw.lab, name, text)
}

fn write_config_lab(lab: &tandem_lab::Lab, name: &str, text: &str) -> Result<PathBuf> {
    let path = lab.log_dir().join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Starts tandemd in `ns` with `config` text.
pub fn start_tandemd(pair: &Pair, ns: &Netns, config: &str) -> Result<Daemon> {
    start_tandemd_with(pair, ns, config, &[])
}

/// Starts tandemd in `ns` with `config` text plus more configuration files (`-f` each).
pub fn start_tandemd_with(
    pair: &Pair,
    ns: &Netns,
    config: &str,
    more: &[PathBuf],
) -> Result<Daemon> {
    start_tandemd_in(&pair.lab, ns, config, more)
}

/// [`start_tandemd_with`] for any lab.
pub fn start_tandemd_in(
    lab: &tandem_lab::Lab,
    ns: &Netns,
    config: &str,
    more: &[PathBuf],
) -> Result<Daemon> {
    start_tandemd_full(lab, ns, config, more, &[], &[])
}

/// [`start_tandemd_in`] with environment variables and extra command-line arguments.
pub fn start_tandemd_full(
    lab: &tandem_lab::Lab,
    ns: &Netns,
    config: &str,
    more: &[PathBuf],
    env: &[(&str, &str)],
    extra: &[&str],
) -> Result<Daemon> {
    let tag = ns.name().rsplit('-').next().unwrap_or("x").to_string();
    let config_path = write_config_lab(lab, &format!("tandemd-{tag}.conf"), config)?;
    start_tandemd_file(lab, ns, &config_path, more, env, extra)
}

/// Starts tandemd in `ns` on the configuration file `config_path` as it is (several nodes
/// may share one file), plus `more` files, environment variables and extra arguments.
pub fn start_tandemd_file(
    lab: &tandem_lab::Lab,
    ns: &Netns,
    config_path: &std::path::Path,
    more: &[PathBuf],
    env: &[(&str, &str)],
    extra: &[&str],
) -> Result<Daemon> {
    let tag = ns.name().rsplit('-').next().unwrap_or("x").to_string();
    let config_path = config_path.to_path_buf();
    let control = lab.log_dir().join(format!("tandemd-{tag}.sock"));
    let _ = std::fs::remove_file(&control);
    let mut argv: Vec<String> = Vec::new();
    if !env.is_empty() {
        argv.push("env".into());
        argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    }
    argv.extend([
        TANDEMD.to_string(),
        "-f".into(),
        config_path.display().to_string(),
    ]);
    argv.extend(extra.iter().map(|a| a.to_string()));
    for f in more {
        argv.push("-f".into());
        argv.push(f.display().to_string());
    }
    argv.extend([
        "--control".into(),
        control.display().to_string(),
        "--log".into(),
        "debug".into(),
    ]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let child = ns.spawn(&argv)?;
    let d = Daemon {
        child,
        control: control.clone(),
        config: config_path,
        ns: ns.clone(),
    };
    wait_until(
        "tandemd control socket",
        Duration::from_secs(10),
        ms(10),
        || control.exists().then_some(()),
    )
    .with_context(|| format!("tandemd did not start:\n{}", d.child.log()))?;
    Ok(d)
}

/// Starts Debian's keepalived (VRRP only) in `ns` with `config` text.
pub fn start_keepalived(pair: &Pair, ns: &Netns, config: &str) -> Result<Daemon> {
    let tag = ns.name().rsplit('-').next().unwrap_or("x").to_string();
    let dir = pair.lab.log_dir();
    let config_path = write_config(pair, &format!("keepalived-{tag}.conf"), config)?;
    let (child, _) = tandem_lab::peers::spawn_keepalived(ns, &config_path, dir, &tag)?;
    Ok(Daemon {
        child,
        control: PathBuf::new(),
        config: config_path,
        ns: ns.clone(),
    })
}

/// `VI_1` on eth0: VRRP `version` every second, VIP 10.0.0.254/24, the given VRID, priority
/// and extra lines.
pub fn vi_1(version: u8, vrid: u8, priority: u8, extra: &str) -> String {
    Vi {
        name: "VI_1",
        interface: "eth0",
        vrid,
        priority,
        advert_int: "1",
        version,
        vips: &["10.0.0.254/24"],
        extra,
    }
    .render()
}

/// [`vi_1`] with VRRPv3 and nothing extra.
pub fn vi_1_v3(vrid: u8, priority: u8) -> String {
    vi_1(3, vrid, priority, "")
}

/// A counter from the daemon's replication statistics (`stats`).
pub fn stat(d: &Daemon, key: &str) -> u64 {
    tandem_lab::control::counter(&d.query("stats").unwrap_or_default(), key)
}

/// Test flow `i`: an established TCP connection from 10.50.x.y to 10.60.0.1:80, a prefix
/// that is none of the gateways' own addresses.
pub fn test_flow(i: usize) -> tandem_ctnetlink::Flow {
    let orig = tandem_ctnetlink::Tuple {
        src: format!("10.50.{}.{}", i / 250, i % 250 + 1)
            .parse()
            .expect("a valid address"),
        dst: std::net::Ipv4Addr::new(10, 60, 0, 1).into(),
        proto: 6,
        l4: tandem_ctnetlink::L4::Ports {
            src: 40000 + (i % 20000) as u16,
            dst: 80,
        },
    };
    tandem_ctnetlink::Flow::tcp_established(orig, 3600)
}

/// Creates `flows` in `ns`'s kernel table; all must be accepted.
pub fn create_flows(ns: &Netns, flows: Vec<tandem_ctnetlink::Flow>) -> Result<()> {
    let report = ns.enter(move || tandem_ctnetlink::Conntrack::open()?.create_batch(&flows))??;
    anyhow::ensure!(
        report.failed.is_empty(),
        "creating flows: {:?}",
        &report.failed[..report.failed.len().min(5)]
    );
    Ok(())
}

/// Waits until `d`'s external cache holds `n` entries; returns how long it took.
pub fn wait_external(d: &Daemon, n: u64, deadline: Duration) -> Result<Duration> {
    let t = Instant::now();
    wait_until(
        &format!("{n} entries in the external cache"),
        deadline,
        ms(20),
        || (stat(d, "external_entries") == n).then_some(()),
    )
    .with_context(|| {
        let log = d.child.log();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "stats:\n{}\nlog:\n{}",
            d.query("stats").unwrap_or_default(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    })?;
    Ok(t.elapsed())
}

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Which of the two routers hold `vip` right now.
pub fn holders(pair: &Pair, vip: &str) -> Result<Vec<&'static str>> {
    let mut out = Vec::new();
    if pair.a.has_address(vip)? {
        out.push("a");
    }
    if pair.b.has_address(vip)? {
        out.push("b");
    }
    Ok(out)
}

/// Waits until exactly `who` holds `vip`; returns how long it took.
pub fn wait_holder(pair: &Pair, vip: &str, who: &str, deadline: Duration) -> Result<Duration> {
    let start = Instant::now();
    wait_until(
        &format!("{vip} held by {who} only"),
        deadline,
        ms(5),
        || match holders(pair, vip) {
            Ok(h) if h == [who] => Some(()),
            _ => None,
        },
    )?;
    Ok(start.elapsed())
}

/// Waits until `ns` holds `vip` (whatever the other does); returns how long it took.
pub fn wait_has(ns: &Netns, vip: &str, deadline: Duration) -> Result<Duration> {
    let start = Instant::now();
    wait_until(&format!("{vip} on {}", ns.name()), deadline, ms(5), || {
        ns.has_address(vip).ok().filter(|h| *h)
    })?;
    Ok(start.elapsed())
}

/// Asserts that exactly `who` holds `vip` at every poll for `duration`.
pub fn hold_steady(
    pair: &Pair,
    vip: &str,
    who: &str,
    duration: Duration,
    every: Duration,
) -> Result<usize> {
    let end = Instant::now() + duration;
    let mut polls = 0;
    while Instant::now() < end {
        let h = holders(pair, vip)?;
        if h != [who] {
            bail!("after {polls} polls, {vip} held by {h:?}, expected [{who}]");
        }
        polls += 1;
        std::thread::sleep(every);
    }
    Ok(polls)
}

/// A keepalived.conf-style instance block.
pub struct Vi<'a> {
    pub name: &'a str,
    pub interface: &'a str,
    pub vrid: u8,
    pub priority: u8,
    pub advert_int: &'a str,
    pub version: u8,
    pub vips: &'a [&'a str],
    pub extra: &'a str,
}

impl Vi<'_> {
    /// The block as text.
    pub fn render(&self) -> String {
        let vips: String = self.vips.iter().map(|v| format!("        {v}\n")).collect();
        format!(
            "vrrp_instance {} {{\n    state BACKUP\n    interface {}\n    virtual_router_id {}\n    priority {}\n    advert_int {}\n    version {}\n{}\n    virtual_ipaddress {{\n{}    }}\n}}\n",
            self.name, self.interface, self.vrid, self.priority, self.advert_int, self.version, self.extra, vips
        )
    }
}

/// Master_Down_Interval for a backup of `priority` at `advert_int` seconds.
pub fn master_down(priority: u8, advert_int: f64) -> Duration {
    Duration::from_secs_f64(3.0 * advert_int + (256.0 - f64::from(priority)) / 256.0 * advert_int)
}

/// The tandemctl binary next to tandemd, brought up to date once per test run (a stale
/// binary from an earlier build would test old code).
pub fn tandemctl() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "tandemctl"])
            .status()
            .is_ok_and(|s| s.success())
    });
    anyhow::ensure!(*built, "building tandemctl");
    Ok(std::path::Path::new(TANDEMD).with_file_name("tandemctl"))
}

/// Runs tandemctl against `control` with `args`, as root or, with `as_user = Some((uid,
/// gid))`, as that user without supplementary groups; returns the exit code and stdout+stderr.
pub fn run_tandemctl(
    control: &std::path::Path,
    as_user: Option<(u32, u32)>,
    args: &[&str],
) -> Result<(i32, String)> {
    let ctl = tandemctl()?;
    let mut cmd = match as_user {
        Some((uid, gid)) => {
            let mut c = std::process::Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg(&ctl);
            c
        }
        None => std::process::Command::new(&ctl),
    };
    let out = cmd
        .arg("-S")
        .arg(control)
        .args(args)
        .env_remove("TANDEM_CONTROL")
        .output()
        .context("running tandemctl")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

/// A directory of scripts and switch files for one test, root-owned and 0755 all the way
/// down (so script security has nothing to object to unless a test makes it), removed on drop.
pub struct ScriptDir(std::path::PathBuf);

impl ScriptDir {
    pub fn new(tag: &str) -> Result<ScriptDir> {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::path::PathBuf::from(format!("/run/tandem-track-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(ScriptDir(dir))
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// An executable script `name` with this body.
    pub fn script(&self, name: &str, body: &str, mode: u32) -> Result<std::path::PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(path)
    }
}

impl Drop for ScriptDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sync group G1 of VI_0 (eth0, VRID 10, 10.0.0.254) and VI_1 (eth1, VRID 11, 10.0.1.254),
/// VRRPv3 at `priority`, scripts as root, with `global` lines in global_defs and `group`
/// lines in the sync group.
pub fn group_g1(priority: u8, global: &str, group: &str) -> String {
    let vi = |name, interface, vrid, vip| {
        Vi {
            name,
            interface,
            vrid,
            priority,
            advert_int: "1",
            version: 3,
            vips: &[vip],
            extra: "",
        }
        .render()
    };
    // Scripts run as root by choice: no warning about a missing `keepalived_script` user.
    format!(
        "global_defs {{\n    script_user root\n{global}}}\nvrrp_sync_group G1 {{\n    group {{\n        VI_0\n        VI_1\n    }}\n{group}}}\n{}{}",
        vi("VI_0", "eth0", 10, "10.0.0.254/24"),
        vi("VI_1", "eth1", 11, "10.0.1.254/24"),
    )
}
