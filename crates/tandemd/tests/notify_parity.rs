//! Notify parity with keepalived: one configuration with every notify hook, at instance level
//! and in a `vrrp_sync_group`, is run once under Debian's keepalived and once under tandemd on
//! the same node, against the same keepalived peer, through the same transitions (start as
//! backup, peer gone, peer preempting, tracked interface down and up, a weight-0 `vrrp_script`
//! failing and recovering, stop). Each hook appends one line per call; the two records must be
//! the same calls (script, arguments) in the same order, phase by phase.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use common::*;
use nix::sys::signal::Signal;
use tandem_lab::{require_root, wait_until, Pair};

const VIP: &str = "10.0.0.254";
const VRID: u8 = 61;

/// The node under test: which daemon runs the shared configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Under {
    Keepalived,
    Tandemd,
}

/// The hooks: `inst-*` for the instance, `grp-*` for the sync group, each appending its own
/// name, its arguments and its pid (the pid orders calls started together, see [`phase_calls`]).
struct Hooks {
    dir: ScriptDir,
    record: PathBuf,
    check_ok: PathBuf,
}

const HOOKS: [(&str, &str); 5] = [
    ("notify", "notify"),
    ("notify_master", "master"),
    ("notify_backup", "backup"),
    ("notify_fault", "fault"),
    ("notify_stop", "stop"),
];

impl Hooks {
    fn new(tag: &str) -> Result<Hooks> {
        let dir = ScriptDir::new(tag)?;
        let record = dir.path("calls");
        for who in ["vi1", "vi2", "grp"] {
            for (_, suffix) in HOOKS {
                let body = format!("echo \"$$ $(basename \"$0\") $*\" >> {}", record.display());
                dir.script(&format!("{who}-{suffix}"), &body, 0o755)?;
            }
        }
        let check_ok = dir.path("check-ok");
        std::fs::write(&check_ok, "")?;
        dir.script("check", &format!("test -e {}", check_ok.display()), 0o755)?;
        Ok(Hooks {
            dir,
            record,
            check_ok,
        })
    }

    fn lines(&self, who: &str) -> String {
        HOOKS
            .iter()
            .map(|(keyword, suffix)| {
                format!(
                    "    {keyword} {}\n",
                    self.dir.path(&format!("{who}-{suffix}")).display()
                )
            })
            .collect()
    }

    /// The node's configuration, the same text for both daemons.
    fn config(&self) -> String {
        format!(
            "global_defs {{\n    script_user root\n}}\n\
             vrrp_script chk {{\n    script \"{check}\"\n    interval 1\n    weight 0\n    fall 1\n    rise 1\n}}\n\
             vrrp_sync_group G {{\n    group {{\n        VI_1\n        VI_2\n    }}\n{group}}}\n{instance}",
            check = self.dir.path("check").display(),
            group = self.lines("grp"),
            instance = instances(
                100,
                &format!(
                    "    track_interface {{\n        eth1\n    }}\n    track_script {{\n        chk\n    }}\n{}",
                    self.lines("vi1")
                ),
                &self.lines("vi2"),
            ),
        )
    }

    /// Every call so far: (pid, "script args...").
    fn calls(&self) -> Vec<(i64, String)> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (pid, call) = l.split_once(' ')?;
                Some((pid.parse().ok()?, call.trim_end().to_string()))
            })
            .collect()
    }
}

/// The calls of one phase in the order they were started: by pid, which the kernel hands out
/// in increasing order (a wrap past `pid_max` within the phase is undone first).
fn phase_calls(mut calls: Vec<(i64, String)>) -> Vec<String> {
    let pid_max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let (lo, hi) = (
        calls.iter().map(|c| c.0).min().unwrap_or(0),
        calls.iter().map(|c| c.0).max().unwrap_or(0),
    );
    if hi - lo > pid_max / 2 {
        for c in &mut calls {
            if c.0 < pid_max / 2 {
                c.0 += pid_max;
            }
        }
    }
    calls.sort_by_key(|c| c.0);
    calls.into_iter().map(|c| c.1).collect()
}

/// One step of the scenario and the calls keepalived makes for it: for each move, who moves
/// (`vi1`, `vi2` or `grp`) and to which state, each move being the specific hook and then
/// `notify`.
struct Phase {
    name: &'static str,
    moves: &'static [(&'static str, &'static str)],
    /// The two members react to the peer's adverts, in the order these arrive: which member
    /// moves first is the network's choice (keepalived's too); the group moves last.
    either_member_first: bool,
}

impl Phase {
    fn expected(&self) -> Vec<String> {
        let mut calls = Vec::new();
        for (who, state) in self.moves {
            calls.push(format!("{who}-{}", state.to_lowercase()));
            calls.push(match *who {
                "grp" => format!("grp-notify GROUP G {state} 0"),
                vi => format!(
                    "{vi}-notify INSTANCE VI_{} {state} 100",
                    vi.trim_start_matches("vi")
                ),
            });
        }
        calls
    }
}

const fn phase(name: &'static str, moves: &'static [(&'static str, &'static str)]) -> Phase {
    Phase {
        name,
        moves,
        either_member_first: false,
    }
}

/// keepalived 2.2.7's calls for each phase (read from its vrrp_notify.c and vrrp_sync.c, and
/// observed): the specific hook before `notify`, each member before the group; the member
/// whose change moves the group first, then the others in the group's order, except for
/// MASTER, where the member whose master-down timer completes the group's readiness (VI_2,
/// whose timer was set last) goes first.
const PHASES: [Phase; 9] = [
    phase(
        "start as backup",
        &[("vi1", "BACKUP"), ("vi2", "BACKUP"), ("grp", "BACKUP")],
    ),
    phase(
        "peer stops: master",
        &[("vi2", "MASTER"), ("vi1", "MASTER"), ("grp", "MASTER")],
    ),
    Phase {
        name: "higher-priority peer preempts: backup",
        moves: &[("vi1", "BACKUP"), ("vi2", "BACKUP"), ("grp", "BACKUP")],
        either_member_first: true,
    },
    phase(
        "tracked interface down: fault",
        &[("vi1", "FAULT"), ("vi2", "FAULT"), ("grp", "FAULT")],
    ),
    phase(
        "tracked interface up: backup",
        &[("vi1", "BACKUP"), ("vi2", "BACKUP"), ("grp", "BACKUP")],
    ),
    phase(
        "peer stops again: master",
        &[("vi2", "MASTER"), ("vi1", "MASTER"), ("grp", "MASTER")],
    ),
    phase(
        "script fails: fault",
        &[("vi1", "FAULT"), ("vi2", "FAULT"), ("grp", "FAULT")],
    ),
    phase(
        "script recovers: backup, then master",
        &[
            ("vi1", "BACKUP"),
            ("vi2", "BACKUP"),
            ("grp", "BACKUP"),
            ("vi2", "MASTER"),
            ("vi1", "MASTER"),
            ("grp", "MASTER"),
        ],
    ),
    phase("stop", &[("vi1", "STOP"), ("vi2", "STOP"), ("grp", "STOP")]),
];

/// A phase's calls with the members' blocks in VI_1, VI_2 order where the network chooses
/// which moves first (each member's own calls stay in their order).
fn canonical(phase: &Phase, calls: Vec<String>) -> Vec<String> {
    if !phase.either_member_first {
        return calls;
    }
    let who = |c: &String| c.split('-').next().unwrap_or("").to_string();
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for c in calls {
        match blocks.last_mut() {
            Some(b) if who(&b[0]) == who(&c) => b.push(c),
            _ => blocks.push(vec![c]),
        }
    }
    let members = blocks.iter().take_while(|b| who(&b[0]) != "grp").count();
    blocks[..members].sort_by_key(|b| who(&b[0]));
    blocks.concat()
}

fn start(under: Under, pair: &Pair, config: &str) -> Result<Daemon> {
    match under {
        Under::Keepalived => start_keepalived(pair, &pair.a, config),
        Under::Tandemd => start_tandemd(pair, &pair.a, config),
    }
}

/// The peer: keepalived at priority 150 on the other router.
fn start_peer(pair: &Pair) -> Result<Daemon> {
    start_keepalived(pair, &pair.b, &instances(150, "", ""))
}

/// VI_1 and VI_2 on eth0 at `priority`, each with its extra lines.
fn instances(priority: u8, vi1: &str, vi2: &str) -> String {
    let vi = |name, vrid, vip, extra| {
        Vi {
            name,
            interface: "eth0",
            vrid,
            priority,
            advert_int: "1",
            version: 2,
            vips: &[vip],
            extra,
        }
        .render()
    };
    vi("VI_1", VRID, "10.0.0.254/24", vi1) + &vi("VI_2", VRID + 1, "10.0.0.253/24", vi2)
}

fn stop(d: &mut Daemon) -> Result<()> {
    d.child.signal(Signal::SIGTERM)?;
    if d.child.wait_timeout(Duration::from_secs(10))?.is_none() {
        bail!("did not stop within 10 s:\n{}", d.child.log());
    }
    Ok(())
}

/// Runs the scenario under `under`; returns each phase's calls in the order they started.
fn scenario(under: Under) -> Result<Vec<Vec<String>>> {
    let tag = match under {
        Under::Keepalived => "npka",
        Under::Tandemd => "npta",
    };
    let hooks = Hooks::new(tag)?;
    let pair = Pair::with_lans(tag, 2)?;
    let mut peer = start_peer(&pair)?;
    wait_holder(&pair, VIP, "b", Duration::from_secs(15))?;
    let mut node = start(under, &pair, &hooks.config())?;

    let mut seen = 0;
    let mut phases = Vec::new();
    for (i, phase) in PHASES.iter().enumerate() {
        match i {
            0 => {}
            1 | 5 => stop(&mut peer)?,
            2 => peer = start_peer(&pair)?,
            3 => pair.a.link_set("eth1", false)?,
            4 => pair.a.link_set("eth1", true)?,
            6 => std::fs::remove_file(&hooks.check_ok)?,
            7 => std::fs::write(&hooks.check_ok, "")?,
            8 => stop(&mut node)?,
            _ => unreachable!(),
        }
        let want = seen + phase.expected().len();
        let waited = wait_until(
            &format!("{under:?}: calls of `{}`", phase.name),
            Duration::from_secs(20),
            ms(20),
            || (hooks.calls().len() >= want).then_some(()),
        );
        if let Err(e) = waited {
            let calls = phase_calls(hooks.calls().split_off(seen));
            bail!(
                "{e:#}\nphase `{}` calls so far: {calls:#?}\nearlier: {phases:#?}\nnode log:\n{}",
                phase.name,
                node.child.log()
            );
        }
        let calls = hooks.calls();
        let seen_before = seen;
        seen = calls.len();
        phases.push(canonical(phase, phase_calls(calls[seen_before..].to_vec())));
    }
    // Nothing more comes after the stop: the hooks of the last phase are the last ones.
    std::thread::sleep(ms(500));
    let late = hooks.calls().split_off(seen);
    if !late.is_empty() {
        phases.push(phase_calls(late));
    }
    Ok(phases)
}

fn show(phases: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (i, calls) in phases.iter().enumerate() {
        let name = PHASES.get(i).map_or("after the stop", |p| p.name);
        out += &format!("  {name}:\n");
        for c in calls {
            out += &format!("    {c}\n");
        }
    }
    out
}

#[test]
fn notify_calls_match_keepalived_through_every_transition() -> Result<()> {
    require_root!(Ok(()));
    let keepalived = scenario(Under::Keepalived).context("keepalived's run")?;
    let tandemd = scenario(Under::Tandemd).context("tandemd run")?;
    println!("keepalived:\n{}", show(&keepalived));
    println!("tandemd:\n{}", show(&tandemd));
    let expected: Vec<Vec<String>> = PHASES.iter().map(Phase::expected).collect();
    assert_eq!(
        keepalived,
        expected,
        "keepalived's calls are not the documented ones:\n{}",
        show(&keepalived)
    );
    assert_eq!(
        tandemd,
        keepalived,
        "tandemd:\n{}\nkeepalived:\n{}",
        show(&tandemd),
        show(&keepalived)
    );
    Ok(())
}
