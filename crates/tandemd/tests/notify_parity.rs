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
        for who in ["inst", "grp"] {
            for (_, suffix) in HOOKS {
                let body = format!(
                    "echo \"$$ $(basename \"$0\") $*\" >> {}",
                    record.display()
                );
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
             vrrp_sync_group G {{\n    group {{\n        VI_1\n    }}\n{group}}}\n{instance}",
            check = self.dir.path("check").display(),
            group = self.lines("grp"),
            instance = vi_1(
                2,
                VRID,
                100,
                &format!(
                    "    track_interface {{\n        eth1\n    }}\n    track_script {{\n        chk\n    }}\n{}",
                    self.lines("inst")
                )
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

/// One step of the scenario and the calls keepalived makes for it.
struct Phase {
    name: &'static str,
    expected: &'static [&'static str],
}

/// keepalived 2.2.7's calls for each phase (read from its vrrp_notify.c and vrrp_sync.c, and
/// observed): the specific hook before `notify`, the instance before its group.
const PHASES: [Phase; 9] = [
    Phase {
        name: "start as backup",
        expected: &[
            "inst-backup",
            "inst-notify INSTANCE VI_1 BACKUP 100",
            "grp-backup",
            "grp-notify GROUP G BACKUP 0",
        ],
    },
    Phase {
        name: "peer stops: master",
        expected: &[
            "inst-master",
            "inst-notify INSTANCE VI_1 MASTER 100",
            "grp-master",
            "grp-notify GROUP G MASTER 0",
        ],
    },
    Phase {
        name: "higher-priority peer preempts: backup",
        expected: &[
            "inst-backup",
            "inst-notify INSTANCE VI_1 BACKUP 100",
            "grp-backup",
            "grp-notify GROUP G BACKUP 0",
        ],
    },
    Phase {
        name: "tracked interface down: fault",
        expected: &[
            "inst-fault",
            "inst-notify INSTANCE VI_1 FAULT 100",
            "grp-fault",
            "grp-notify GROUP G FAULT 0",
        ],
    },
    Phase {
        name: "tracked interface up: backup",
        expected: &[
            "inst-backup",
            "inst-notify INSTANCE VI_1 BACKUP 100",
            "grp-backup",
            "grp-notify GROUP G BACKUP 0",
        ],
    },
    Phase {
        name: "peer stops again: master",
        expected: &[
            "inst-master",
            "inst-notify INSTANCE VI_1 MASTER 100",
            "grp-master",
            "grp-notify GROUP G MASTER 0",
        ],
    },
    Phase {
        name: "script fails: fault",
        expected: &[
            "inst-fault",
            "inst-notify INSTANCE VI_1 FAULT 100",
            "grp-fault",
            "grp-notify GROUP G FAULT 0",
        ],
    },
    Phase {
        name: "script recovers: backup, then master",
        expected: &[
            "inst-backup",
            "inst-notify INSTANCE VI_1 BACKUP 100",
            "grp-backup",
            "grp-notify GROUP G BACKUP 0",
            "inst-master",
            "inst-notify INSTANCE VI_1 MASTER 100",
            "grp-master",
            "grp-notify GROUP G MASTER 0",
        ],
    },
    Phase {
        name: "stop",
        expected: &[
            "inst-stop",
            "inst-notify INSTANCE VI_1 STOP 100",
            "grp-stop",
            "grp-notify GROUP G STOP 0",
        ],
    },
];

fn start(under: Under, pair: &Pair, config: &str) -> Result<Daemon> {
    match under {
        Under::Keepalived => start_keepalived(pair, &pair.a, config),
        Under::Tandemd => start_tandemd(pair, &pair.a, config),
    }
}

/// The peer: keepalived at priority 150 on the other router.
fn start_peer(pair: &Pair) -> Result<Daemon> {
    start_keepalived(pair, &pair.b, &vi_1(2, VRID, 150, ""))
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
        let want = seen + phase.expected.len();
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
        seen = calls.len();
        phases.push(phase_calls(calls[want - phase.expected.len()..].to_vec()));
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
    let tandemd = scenario(Under::Tandemd).context("tandemd's run")?;
    println!("keepalived:\n{}", show(&keepalived));
    println!("tandemd:\n{}", show(&tandemd));
    let expected: Vec<Vec<String>> = PHASES
        .iter()
        .map(|p| p.expected.iter().map(|s| s.to_string()).collect())
        .collect();
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
