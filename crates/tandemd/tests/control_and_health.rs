//! The control socket as a local user meets it (mode 0660 whatever the umask, changing verbs
//! for root only, bounded request lines, idle connections that cannot lock it) and the sync
//! health an operator sees (a key mismatch is logged once per period and fails `tandemctl
//! status`; a datagram from a stranger's address is dropped before the sync core and counted).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;
use tandem_lab::{require_root, wait_until, Netns, Pair};

/// nobody / nogroup on Debian.
const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

fn vrrp(priority: u8) -> String {
    vi_1_v3(61, priority)
}

/// Starts tandemd the way a careless shell would: under `umask 000`, with `args` added.
fn start_under_umask_000(pair: &Pair, ns: &Netns, args: &str) -> Result<Daemon> {
    let config = write_config(pair, "tandemd-umask.conf", &vrrp(150))?;
    let control = pair.lab.log_dir().join("tandemd-umask.sock");
    let cmd = format!(
        "umask 000 && exec {TANDEMD} -f {} --control {} --log debug {args}",
        config.display(),
        control.display()
    );
    let child = ns.spawn(&["sh", "-c", &cmd])?;
    let d = Daemon {
        child,
        control: control.clone(),
        config,
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

/// A line of /proc/PID/status (`VmRSS`, `Umask`, ...), value only.
fn proc_status(pid: u32, key: &str) -> Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// This process's soft limit on open files.
fn open_files_limit() -> Result<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-files limit")?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()
        .context("open-files limit")?;
    Ok(soft.parse().unwrap_or(1024))
}

fn rss_kib(pid: u32) -> Result<u64> {
    let v = proc_status(pid, "VmRSS")?;
    Ok(v.trim_end_matches(" kB").trim().parse()?)
}

#[test]
fn control_socket_is_0660_under_umask_000_and_changing_verbs_need_root() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("ctlperm")?;
    // The log directory holds the socket: others must be able to reach it to be refused by
    // the socket's own mode, not by the directory's.
    std::fs::set_permissions(pair.lab.log_dir(), std::fs::Permissions::from_mode(0o755))?;
    let d = start_under_umask_000(&pair, &pair.a, "--control-group nogroup")?;
    assert_eq!(
        proc_status(d.child.pid(), "Umask")?,
        "0000",
        "really under umask 000"
    );

    let meta = std::fs::metadata(&d.control)?;
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o660,
        "socket mode {:o}",
        meta.permissions().mode()
    );
    assert_eq!((meta.uid(), meta.gid()), (0, NOGROUP), "root:nogroup");

    // A member of the control group (nobody's primary group is nogroup) may read ...
    let (code, out) = run_tandemctl(&d.control, Some((NOBODY, NOGROUP)), &["stats", "vrrp"])?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("instance=VI_1 state="), "{out}");
    let (code, out) = run_tandemctl(&d.control, Some((NOBODY, NOGROUP)), &["stats"])?;
    assert_eq!(code, 0, "{out}");
    // ... but not change anything, in tandem's words or conntrackd's letters.
    for args in [
        &["flush"][..],
        &["-f"],
        &["-c"],
        &["commit"],
        &["bulk"],
        &["-R"],
    ] {
        let (code, out) = run_tandemctl(&d.control, Some((NOBODY, NOGROUP)), args)?;
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(
            out.contains("needs root (peer uid 65534)"),
            "{args:?}: {out}"
        );
    }
    let (_, out) = run_tandemctl(&d.control, Some((NOBODY, NOGROUP)), &["flush"])?;
    assert_eq!(out.trim(), "error: flush needs root (peer uid 65534)");
    // Someone outside the group cannot even connect.
    let (code, out) = run_tandemctl(&d.control, Some((NOBODY, 4242)), &["stats", "vrrp"])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    // Root gets through to the daemon (which has no replication to flush here).
    let (_, out) = run_tandemctl(&d.control, None, &["flush"])?;
    assert!(!out.contains("needs root"), "{out}");
    assert!(out.contains("replication is not configured"), "{out}");

    // An instance in FAULT makes status fail, for the group's monitoring user too.
    let (code, out) = run_tandemctl(&d.control, Some((NOBODY, NOGROUP)), &["stats", "vrrp"])?;
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("health=ok\n"), "{out}");
    pair.a.link_set("eth0", false)?;
    let out = wait_until(
        "status fails with VI_1 in FAULT",
        Duration::from_secs(10),
        ms(50),
        || {
            let (code, out) = run_tandemctl(&d.control, Some((NOBODY, NOGROUP)), &[]).ok()?;
            (code == 2).then_some(out)
        },
    )?;
    // `tandemctl` alone is `status`: the table, its verdict, exit 2.
    let row = out
        .lines()
        .find(|l| l.starts_with("VI_1 "))
        .unwrap_or_default();
    assert_eq!(row.split_whitespace().nth(1), Some("FAULT"), "{out}");
    assert!(
        row.contains("-> FAULT: a tracked interface went down"),
        "{out}"
    );
    assert!(out.ends_with("\nhealth: FAILING fault=VI_1\n"), "{out}");
    let (code, out) = run_tandemctl(&d.control, Some((NOBODY, NOGROUP)), &["stats", "vrrp"])?;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("instance=VI_1 state=FAULT"), "{out}");
    assert!(out.ends_with("health=failing fault=VI_1\n"), "{out}");
    Ok(())
}

#[test]
fn overlong_lines_and_idle_connections_leave_status_answering() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("ctllimit")?;
    let d = start_tandemd(&pair, &pair.a, &vrrp(150))?;
    let pid = d.child.pid();
    d.query("status")?;
    let rss_before = rss_kib(pid)?;

    // A 300 MiB request line, written until the daemon hangs up.
    let mut s = UnixStream::connect(&d.control)?;
    let mut writer = s.try_clone()?;
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let mut sent = 0usize;
        while sent < 300 << 20 {
            match writer.write(&chunk) {
                Ok(n) if n > 0 => sent += n,
                _ => break,
            }
        }
        sent
    });
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reply = Vec::new();
    // The daemon closes with the line unread: the read may end in ECONNRESET after the reply.
    let _ = s.read_to_end(&mut reply);
    let sent = sender.join().expect("sender thread");
    let reply = String::from_utf8_lossy(&reply);
    assert_eq!(reply, "error: request longer than 4096 bytes\n");
    assert!(
        sent < 300 << 20,
        "the daemon stopped reading early ({sent} bytes went)"
    );
    assert!(d.query("status")?.contains("instance=VI_1"));

    // 10,000 idle connections (as many as this process may open), far more than the 64
    // served at once: status still answers at once, the oldest idle ones were closed to make
    // room.
    let count = 10_000.min(open_files_limit()?.saturating_sub(200));
    let mut idle = Vec::new();
    let t = Instant::now();
    for _ in 0..count {
        idle.push(UnixStream::connect(&d.control)?);
    }
    let opened = t.elapsed();
    let t = Instant::now();
    let status = d.query("status")?;
    let took = t.elapsed();
    assert!(status.contains("instance=VI_1"), "{status}");
    assert!(took < Duration::from_secs(2), "status took {took:?}");
    let mut first = idle.remove(0);
    first.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut text = String::new();
    let _ = first.read_to_string(&mut text);
    assert_eq!(text, "error: too many connections, try again\n");
    // The newest idle one is closed by the 5 s read timeout.
    let mut last = idle.pop().context("idle connections")?;
    last.set_read_timeout(Some(Duration::from_secs(15)))?;
    let t = Instant::now();
    let mut text = String::new();
    let _ = last.read_to_string(&mut text);
    let waited = t.elapsed();
    assert_eq!(text, "error: no request received in time\n");
    assert!(
        waited > Duration::from_secs(3) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );
    let rss_after = rss_kib(pid)?;
    println!(
        "300 MiB line: refused after {} KiB went; {count} idle connections opened in {} ms, \
         then status in {} ms; RSS {rss_before} KiB before, {rss_after} KiB after",
        sent >> 10,
        opened.as_millis(),
        took.as_millis()
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "memory bounded: {rss_before} -> {rss_after} KiB"
    );
    drop(idle);
    assert!(d.query("status")?.contains("instance=VI_1"));
    Ok(())
}

fn sync_toml(local: &str, peer: &str, key: &str) -> String {
    format!(
        "[sync]\ninterface = \"eth0\"\nlocal = \"{local}\"\npeer = \"{peer}\"\nport = 3780\n\
         key = \"{key}-0123456789abcdef0123456789abcdef\"\npeer_silent = 2.5\n"
    )
}

fn start_synced(pair: &Pair, ns: &Netns, priority: u8, toml: &str) -> Result<Daemon> {
    let tag = ns.name().rsplit('-').next().unwrap_or("x").to_string();
    let path = write_config(pair, &format!("sync-{tag}.toml"), toml)?;
    start_tandemd_with(pair, ns, &vrrp(priority), &[path])
}

/// Seconds since midnight of a log line's timestamp (`...T23:02:30.797947Z ...`).
fn seconds_of_day(line: &str) -> Result<f64> {
    let t = line
        .split_once('T')
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split_once('Z'))
        .map(|(t, _)| t)
        .with_context(|| format!("no timestamp in {line}"))?;
    let mut parts = t.split(':');
    let mut secs = 0.0;
    for scale in [3600.0, 60.0, 1.0] {
        let v: f64 = parts.next().context("timestamp")?.parse()?;
        secs += v * scale;
    }
    Ok(secs)
}

/// N of a rate-limited line's `(N since the last line)`.
fn since_last_line(line: &str) -> Option<u64> {
    let (before, _) = line.rsplit_once(" since the last line")?;
    before.rsplit_once('(')?.1.parse().ok()
}

fn log_lines(d: &Daemon, needle: &str) -> Vec<String> {
    d.child
        .log()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn sync_key_mismatch_warns_once_per_period_and_fails_status() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("keymis")?;
    let started = Instant::now();
    let _a = start_synced(
        &pair,
        &pair.a,
        150,
        &sync_toml("10.0.0.1", "10.0.0.2", "key-of-a"),
    )?;
    let b = start_synced(
        &pair,
        &pair.b,
        100,
        &sync_toml("10.0.0.2", "10.0.0.1", "key-of-b"),
    )?;
    // Two lines of the cause: the first at once, the next one period later with the count.
    let lines = wait_until(
        "a second bad-HMAC line",
        Duration::from_secs(30),
        ms(200),
        || {
            let lines = log_lines(&b, "fail authentication");
            (lines.len() >= 2).then_some(lines)
        },
    )?;
    let elapsed = started.elapsed();
    println!(
        "{} datagrams with a bad HMAC in {:.1} s gave {} WARN lines:\n{}",
        stat(&b, "drop_bad_hmac"),
        elapsed.as_secs_f64(),
        lines.len(),
        lines.join("\n")
    );
    assert!(
        lines.len() <= 1 + elapsed.as_secs() as usize / 10,
        "{lines:#?}"
    );
    for l in &lines {
        assert!(
            l.contains("WARN") && l.contains("sync peer 10.0.0.1:3780"),
            "{l}"
        );
    }
    let gap = seconds_of_day(&lines[1])? - seconds_of_day(&lines[0])?;
    assert!(gap >= 9.99, "lines {gap:.3} s apart");
    assert!(lines[0].contains("(1 since the last line)"), "{}", lines[0]);
    let count = since_last_line(&lines[1]).context("count in the second line")?;
    assert!(
        count >= 5,
        "the second line counts what was held back: {}",
        lines[1]
    );

    // Never authenticated: the peer is silent, and status says so with its exit code.
    let (code, out) = wait_until(
        "tandemctl status failing",
        Duration::from_secs(10),
        ms(100),
        || {
            let (code, out) = run_tandemctl(&b.control, None, &["stats", "vrrp"]).ok()?;
            (code == 2).then_some((code, out))
        },
    )?;
    assert_eq!(code, 2);
    assert!(
        out.contains("sync peer=10.0.0.1:3780 health=silent last_heard=never"),
        "{out}"
    );
    assert!(out.contains("drop_bad_hmac="), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("health=failing") && l.contains("sync=silent")),
        "{out}"
    );
    assert!(
        out.contains("instance=VI_1 state="),
        "the existing lines stay: {out}"
    );
    let silent = log_lines(&b, "silent for");
    assert_eq!(silent.len(), 1, "{silent:#?}");
    assert!(
        silent[0].contains("WARN") && silent[0].contains("never heard"),
        "{}",
        silent[0]
    );
    Ok(())
}

#[test]
fn datagram_from_a_wrong_source_is_dropped_and_counted() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("wrongsrc")?;
    let _a = start_synced(&pair, &pair.a, 150, &sync_toml("10.0.0.1", "10.0.0.2", "k"))?;
    let b = start_synced(&pair, &pair.b, 100, &sync_toml("10.0.0.2", "10.0.0.1", "k"))?;
    // The pair is healthy first: status passes.
    let out = wait_until(
        "B hears A and status passes",
        Duration::from_secs(15),
        ms(100),
        || {
            let (code, out) = run_tandemctl(&b.control, None, &["stats", "vrrp"]).ok()?;
            (code == 0 && out.contains("health=ok last_heard=")).then_some(out)
        },
    )?;
    assert!(out.contains("sync peer=10.0.0.1:3780 health=ok"), "{out}");
    let started = Instant::now();
    let received = stat(&b, "datagrams_received");

    // A third host on the sync network sends to B's sync port.
    const SENT: u64 = 100;
    pair.client.enter(|| -> Result<()> {
        let s = std::net::UdpSocket::bind("10.0.0.100:0")?;
        for i in 0..SENT {
            s.send_to(&[i as u8; 64], "10.0.0.2:3780")?;
        }
        Ok(())
    })??;
    wait_until(
        "B counts the stranger's datagrams",
        Duration::from_secs(10),
        ms(20),
        || (stat(&b, "drop_wrong_source") == SENT).then_some(()),
    )?;
    let stats = b.query("stats")?;
    // The sync core never saw them: no decode-level drop moved.
    for key in [
        "drop_bad_magic",
        "drop_truncated",
        "drop_bad_hmac",
        "drop_malformed",
    ] {
        assert_eq!(
            tandem_lab::control::counter(&stats, key),
            0,
            "{key}: {stats}"
        );
    }
    assert!(
        tandem_lab::control::counter(&stats, "datagrams_received") < received + SENT,
        "only A's datagrams reached the core"
    );
    let lines = log_lines(&b, "not the peer");
    let allowed = 1 + started.elapsed().as_secs() as usize / 10;
    assert!(!lines.is_empty() && lines.len() <= allowed, "{lines:#?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("10.0.0.100"),
        "{}",
        lines[0]
    );
    println!(
        "{SENT} datagrams from 10.0.0.100 dropped and counted; log: {}",
        lines[0]
    );
    // Still healthy: the real peer is heard, and status shows the drops.
    // (The status line is refreshed twice a second.)
    let counted = format!("drop_wrong_source={SENT}");
    let (code, out) = wait_until(
        "status shows the drops",
        Duration::from_secs(5),
        ms(100),
        || {
            let (code, out) = run_tandemctl(&b.control, None, &["stats", "vrrp"]).ok()?;
            out.contains(&counted).then_some((code, out))
        },
    )?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

fn multicast_toml(local: &str) -> String {
    format!(
        "[sync]\ninterface = \"eth0\"\nlocal = \"{local}\"\ngroup = \"225.0.0.50\"\nport = 3780\n\
         key = \"k-0123456789abcdef0123456789abcdef\"\npeer_silent = 2.5\n"
    )
}

#[test]
fn multicast_sync_accepts_only_sources_on_the_sync_subnet() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("mcsrc")?;
    // The stranger has an address outside the sync subnet on the same wire; B checks sources
    // itself, not through reverse-path filtering.
    pair.client.ip("addr add 10.9.9.9/24 dev eth0")?;
    pair.b.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
    pair.b.sysctl("net.ipv4.conf.eth0.rp_filter", "0")?;
    let _a = start_synced(&pair, &pair.a, 150, &multicast_toml("10.0.0.1"))?;
    let b = start_synced(&pair, &pair.b, 100, &multicast_toml("10.0.0.2"))?;
    wait_until(
        "B hears A over multicast",
        Duration::from_secs(15),
        ms(100),
        || {
            let (code, out) = run_tandemctl(&b.control, None, &["stats", "vrrp"]).ok()?;
            (code == 0 && out.contains("health=ok last_heard=")).then_some(())
        },
    )?;
    const SENT: u64 = 50;
    pair.client.enter(|| -> Result<()> {
        use socket2::{Domain, Protocol, Socket, Type};
        for source in ["10.9.9.9", "10.0.0.100"] {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            let ip: std::net::Ipv4Addr = source.parse()?;
            s.bind(&std::net::SocketAddr::from((ip, 0)).into())?;
            s.set_multicast_if_v4(&ip)?;
            let group = std::net::SocketAddr::from(([225, 0, 0, 50], 3780));
            for i in 0..SENT {
                s.send_to(&[i as u8; 64], &group.into())?;
            }
        }
        Ok(())
    })??;
    wait_until(
        "B drops the off-subnet datagrams and hands the on-subnet ones to the core",
        Duration::from_secs(10),
        ms(20),
        || {
            let stats = b.query("stats").ok()?;
            let wrong = tandem_lab::control::counter(&stats, "drop_wrong_source");
            let garbage = tandem_lab::control::counter(&stats, "drop_bad_magic");
            (wrong == SENT && garbage == SENT).then_some(())
        },
    )?;
    let lines = log_lines(&b, "not the peer");
    assert!(lines[0].contains("10.9.9.9"), "{}", lines[0]);
    println!("multicast: {SENT} from 10.9.9.9 dropped for their source, {SENT} from 10.0.0.100 reached the core (bad magic)");
    Ok(())
}

/// CPU time (user + system) the process used so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("ctlfds")?;
    let d = start_tandemd(&pair, &pair.a, &vrrp(150))?;
    let pid = d.child.pid();
    d.query("status")?;
    // Leave the daemon room for two more descriptors.
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    let limit = format!("--nofile={}:{}", open + 2, open + 2);
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &limit])
        .output()?;
    anyhow::ensure!(out.status.success(), "prlimit: {out:?}");
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(UnixStream::connect(&d.control)?);
    }
    wait_until(
        "the daemon runs out of descriptors",
        Duration::from_secs(5),
        ms(20),
        || (!log_lines(&d, "accept failed").is_empty()).then_some(()),
    )?;
    // A measuring window, not a synchronisation: a spinning accept loop would burn it all.
    let before = cpu_ticks(pid)?;
    let window = Duration::from_secs(1);
    std::thread::sleep(window);
    let used = cpu_ticks(pid)? - before;
    let line = log_lines(&d, "accept failed").remove(0);
    println!("out of descriptors: {used} CPU ticks in {window:?}; {line}");
    assert!(
        used < 30,
        "{used} ticks of 100 in a second: the accept loop spins"
    );
    assert!(line.contains("Too many open files"), "{line}");
    // The clients give up; the daemon serves again.
    drop(idle);
    let status = wait_until(
        "status answers again",
        Duration::from_secs(15),
        ms(100),
        || {
            d.query("status")
                .ok()
                .filter(|s| s.contains("instance=VI_1"))
        },
    )?;
    assert!(status.contains("health="), "{status}");
    Ok(())
}

#[test]
fn status_json_describes_the_node_and_fails_when_the_peer_goes_silent() -> Result<()> {
    require_root!(Ok(()));
    let pair = Pair::new("sjson")?;
    // A healthy peer is heard at least every second (its keepalives) and the status is
    // refreshed twice a second: 3 s (the default) never calls a live peer silent.
    let toml = |local: &str, peer: &str| {
        sync_toml(local, peer, "kj").replace("peer_silent = 2.5", "peer_silent = 3.0")
    };
    let a = start_synced(&pair, &pair.a, 150, &toml("10.0.0.1", "10.0.0.2"))?;
    let mut b = start_synced(&pair, &pair.b, 100, &toml("10.0.0.2", "10.0.0.1"))?;
    wait_holder(&pair, "10.0.0.254", "a", Duration::from_secs(15))?;
    let status = |d: &Daemon| -> Result<(i32, serde_json::Value)> {
        let (code, out) = run_tandemctl(&d.control, None, &["--json"])?;
        Ok((code, serde_json::from_str(&out)?))
    };
    let (code, doc) = wait_until("the peer heard", Duration::from_secs(20), ms(50), || {
        status(&a)
            .ok()
            .filter(|(code, doc)| *code == 0 && doc["sync"]["last_heard_seconds"].is_number())
    })?;
    assert_eq!(code, 0, "{doc}");
    let vi = &doc["instances"][0];
    assert_eq!(vi["name"], "VI_1");
    assert_eq!(vi["state"], "MASTER");
    assert_eq!(vi["priority"], 150);
    assert_eq!(vi["addresses"][0], "10.0.0.254/24");
    assert_eq!(vi["interface"], "eth0");
    assert_eq!(doc["sync"]["peer"], "10.0.0.2:3780");
    assert_eq!(doc["health"]["ok"], true);
    assert_eq!(vi["last_transition"]["to"], "MASTER", "{doc}");
    assert!(vi["last_transition"]["cause"].is_string(), "{doc}");
    assert!(
        vi["in_state_seconds"].as_f64().is_some_and(|s| s >= 0.0),
        "{doc}"
    );
    assert!(doc["sync"]["internal_entries"].is_u64(), "{doc}");
    assert!(doc["sync"]["records_sent"].is_u64(), "{doc}");
    // The same, laid out for a person.
    let (code, table) = run_tandemctl(&a.control, None, &["status"])?;
    assert_eq!(code, 0, "{table}");
    let row: Vec<&str> = (table.lines())
        .find(|l| l.starts_with("VI_1 "))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        row.get(1..5),
        Some(&["MASTER", "150", "(self)", "10.0.0.254/24"][..]),
        "{table}"
    );
    assert!(
        table.contains("\nsync peer 10.0.0.2:3780: ok, last heard"),
        "{table}"
    );
    assert!(table.ends_with("\nhealth: ok\n"), "{table}");
    // The peer dies: after peer_silent (3 s) the document says so and the exit status is 2.
    b.child.kill()?;
    let (code, doc) = wait_until("silent", Duration::from_secs(10), ms(100), || {
        status(&a).ok().filter(|(code, _)| *code == 2)
    })?;
    assert_eq!(doc["health"]["ok"], false, "{doc}");
    assert_eq!(doc["health"]["failing"][0], "sync=silent", "{doc}");
    assert_eq!(code, 2);
    Ok(())
}
