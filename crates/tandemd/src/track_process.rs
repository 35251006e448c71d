//! `vrrp_track_process`: the router's process trackers, and the task that keeps their counts
//! from the kernel's process events.
//!
//! At start (and at each reload) the task subscribes to the events, then reads `/proc` once, so
//! no process can start or end unseen between the two; the first count sets every tracker's
//! state before the instances start, as keepalived does. From then on only events move the
//! counts ([`tandem_vrrp::process_watch`] holds the rules); each change of a tracker's state
//! reaches the daemon's loop as an [`Update`]. Lost events (a full socket buffer) are made good
//! by reading `/proc` again a second later.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use tandem_config::{Config, VrrpTrackProcess};
use tandem_sys::proc_events::{ProcEvent, ProcEvents, Received};
use tandem_vrrp::process_watch::{
    Input, ParamMatch, ProcessPattern, ProcessWatch, Seen, TrackerConfig,
};
use tandem_vrrp::{Router, TrackerId, TrackerKind, TrackerState, Tracking, PRIORITY_OWNER};

use crate::tracking::located;

/// How long to let a burst settle after lost events before reading `/proc` again.
const RESCAN_AFTER: Duration = Duration::from_secs(1);
/// The most of a command line read (arguments beyond it are not compared).
const CMDLINE_MAX: u64 = 4096;
/// Receive buffer for the events: room for a burst of process creation.
const RECEIVE_BUFFER: usize = 1 << 20;

/// One process tracker as the router knows it.
#[derive(Debug, Clone)]
pub struct ProcessTracker {
    /// The router's id for it.
    pub tracker: TrackerId,
    /// `vrrp_track_process` name.
    pub name: String,
    /// What it counts.
    pub config: TrackerConfig,
}

/// A tracker's new state, from the watch started as `generation` (updates of a watch replaced
/// by a reload are stale).
#[derive(Debug, Clone, Copy)]
pub struct Update {
    /// Which watch sent it.
    pub generation: u64,
    /// The router's tracker.
    pub tracker: TrackerId,
    /// Up (within quorum) or down.
    pub state: TrackerState,
}

/// Adds every `vrrp_track_process` to the router and the instances' and sync groups'
/// references to them. Instance and group ids are their positions in the configuration.
pub fn add_to_router(config: &Config, router: &mut Router) -> Vec<ProcessTracker> {
    let trackers: Vec<ProcessTracker> = (config.track_processes.iter())
        .map(|t| ProcessTracker {
            tracker: router.add_tracker(&t.name, TrackerKind::Process, TrackerState::Pending),
            name: t.name.clone(),
            config: tracker_config(t),
        })
        .collect();
    let reference = |line: &tandem_config::TrackProcess| {
        let index = (config.track_processes.iter()).position(|t| t.name == line.name)?;
        let defined = &config.track_processes[index];
        Some(Tracking {
            tracker: trackers[index].tracker,
            weight: line.weight.unwrap_or(defined.weight),
            reverse: line.reverse.unwrap_or(defined.reverse),
        })
    };
    for (id, vi) in config.instances.iter().enumerate() {
        for tracking in vi.track_processes.iter().filter_map(reference) {
            router.track(id, tracking);
        }
    }
    for (group, sg) in config.sync_groups.iter().enumerate() {
        // keepalived: a group with an address owner among its members cannot move priorities.
        let has_owner = (config.instances.iter())
            .any(|i| sg.members.contains(&i.name) && i.priority == PRIORITY_OWNER);
        for mut tracking in sg.track_processes.iter().filter_map(reference) {
            if has_owner && tracking.weight != 0 {
                warn!(
                    "{}: vrrp_sync_group {}: track_process weight {} taken as weight 0 \
                     (FAULT instead): a member has priority 255",
                    located(&sg.location),
                    sg.name,
                    tracking.weight
                );
                tracking.weight = 0;
            }
            router.track_group(group, tracking);
        }
    }
    trackers
}

fn tracker_config(t: &VrrpTrackProcess) -> TrackerConfig {
    TrackerConfig {
        pattern: ProcessPattern {
            name: t.process.clone(),
            args: t.args.clone(),
            param_match: match t.param_match {
                tandem_config::ParamMatch::Any => ParamMatch::Any,
                tandem_config::ParamMatch::Exact => ParamMatch::Exact,
                tandem_config::ParamMatch::Partial => ParamMatch::Partial,
                tandem_config::ParamMatch::Initial => ParamMatch::Initial,
            },
            full_command: t.full_command,
        },
        quorum: t.quorum,
        quorum_max: t.quorum_max,
        fork_delay: t.fork_delay,
        terminate_delay: t.terminate_delay,
    }
}

/// The running watch; dropping it stops the task.
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes and counts; returns the watch (None without trackers) and every tracker's first
/// state, to give the router before its instances start or carry on.
pub async fn start(
    trackers: Vec<ProcessTracker>,
    generation: u64,
    updates: mpsc::UnboundedSender<Update>,
) -> Result<(Option<Watch>, Vec<Update>)> {
    if trackers.is_empty() {
        return Ok((None, Vec::new()));
    }
    let events = ProcEvents::open()
        .await
        .context("watching processes for vrrp_track_process")?;
    if let Err(e) = events.set_receive_buffer(RECEIVE_BUFFER) {
        warn!("{e}: a burst of new processes may need a second look at /proc");
    }
    let mut watch = ProcessWatch::new(trackers.iter().map(|t| t.config.clone()).collect());
    let cmdline = watch.needs_cmdline();
    let all = tokio::task::spawn_blocking(move || scan(cmdline))
        .await
        .context("reading /proc")?;
    let first = watch.handle(Instant::now(), Input::Scan(&all));
    let mut initial = Vec::new();
    for change in first {
        let t = &trackers[change.tracker];
        info!(
            "Tracked process {}: {} running, {}",
            t.name,
            watch.count(change.tracker),
            if change.up {
                "quorum held"
            } else {
                "no quorum"
            }
        );
        initial.push(update(generation, t, change.up));
    }
    let mut running = Running {
        trackers,
        watch,
        events,
        generation,
        updates,
        cmdline,
        rescan_at: None,
    };
    let task = tokio::spawn(async move { running.run().await });
    Ok((Some(Watch { task }), initial))
}

fn update(generation: u64, t: &ProcessTracker, up: bool) -> Update {
    Update {
        generation,
        tracker: t.tracker,
        state: if up {
            TrackerState::Up
        } else {
            TrackerState::Down
        },
    }
}

struct Running {
    trackers: Vec<ProcessTracker>,
    watch: ProcessWatch,
    events: ProcEvents,
    generation: u64,
    updates: mpsc::UnboundedSender<Update>,
    cmdline: bool,
    /// When to read `/proc` again after lost events.
    rescan_at: Option<Instant>,
}

impl Running {
    async fn run(&mut self) {
        loop {
            let deadline = [self.watch.next_deadline(), self.rescan_at]
                .into_iter()
                .flatten()
                .min();
            let changes = tokio::select! {
                received = self.events.recv() => match received {
                    Ok(Received::Event(event)) => self.on_event(event),
                    Ok(Received::Lost) => {
                        warn!("Process events were lost: reading /proc again in {RESCAN_AFTER:?}");
                        self.rescan_at = Some(Instant::now() + RESCAN_AFTER);
                        continue;
                    }
                    Err(e) => {
                        error!("{e}: tracked processes are no longer followed");
                        return;
                    }
                },
                _ = crate::deadline::sleep_until(deadline) => {
                    let now = Instant::now();
                    if self.rescan_at.is_some_and(|at| at <= now) {
                        self.rescan_at = None;
                        let cmdline = self.cmdline;
                        let all = tokio::task::spawn_blocking(move || scan(cmdline))
                            .await
                            .unwrap_or_default();
                        self.watch.handle(now, Input::Rescan(&all))
                    } else {
                        self.watch.handle(now, Input::Timer)
                    }
                }
            };
            for change in changes {
                let t = &self.trackers[change.tracker];
                info!(
                    "Tracked process {}: {} running, {}",
                    t.name,
                    self.watch.count(change.tracker),
                    if change.up {
                        "quorum gained"
                    } else {
                        "quorum lost"
                    }
                );
                if self
                    .updates
                    .send(update(self.generation, t, change.up))
                    .is_err()
                {
                    return;
                }
            }
        }
    }

    /// Feeds one event, reading `/proc` for a new program; events of threads other than a
    /// process's main one are not about processes and are skipped, as keepalived does.
    fn on_event(&mut self, event: ProcEvent) -> Vec<tandem_vrrp::process_watch::Change> {
        let now = Instant::now();
        let input = match &event {
            ProcEvent::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
            } if child_pid == child_tgid => Input::Fork {
                parent: *parent_tgid,
                child: *child_pid,
            },
            ProcEvent::Exit { pid, tgid } if pid == tgid => Input::Exit { pid: *pid },
            ProcEvent::Comm { pid, tgid, comm } if pid == tgid => Input::Comm { pid: *pid, comm },
            ProcEvent::Exec { pid, tgid } if pid == tgid => {
                let seen = read_seen(*pid, self.cmdline);
                return self.watch.handle(
                    now,
                    Input::Exec {
                        pid: *pid,
                        seen: seen.as_ref(),
                    },
                );
            }
            _ => return Vec::new(),
        };
        self.watch.handle(now, input)
    }
}

/// Every process's name (and command line when `cmdline`); zombies are left out.
fn scan(cmdline: bool) -> Vec<(u32, Seen)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let name = entry.ok()?.file_name();
        let pid: u32 = name.to_str()?.parse().ok()?;
        Some((pid, read_seen(pid, cmdline)?))
    })
    .collect()
}

/// What `/proc/PID` says of a process: `None` when it is gone or a zombie.
fn read_seen(pid: u32, cmdline: bool) -> Option<Seen> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (comm, state) = parse_stat(&stat)?;
    if state == 'Z' {
        return None;
    }
    let mut raw = Vec::new();
    if cmdline {
        let file = std::fs::File::open(format!("/proc/{pid}/cmdline")).ok()?;
        file.take(CMDLINE_MAX).read_to_end(&mut raw).ok()?;
    }
    Some(Seen {
        comm: comm.to_string(),
        cmdline: raw,
    })
}

/// The name and state letter of a `/proc/PID/stat` line: `PID (NAME) S ...`, where the name
/// may itself hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(&str, char)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let state = stat.get(close + 1..)?.trim_start().chars().next()?;
    Some((comm, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tandem_vrrp::Effect;

    fn eth0() -> BTreeMap<String, tandem_sys::InterfaceInfo> {
        let info = tandem_sys::InterfaceInfo {
            name: "eth0".into(),
            index: 2,
            mac: [2, 0, 0, 0, 0, 1],
            up: true,
            ipv4: vec![("10.0.0.1".parse().unwrap(), 24)],
            ipv6_link_local: None,
            ipv6: Vec::new(),
        };
        BTreeMap::from([("eth0".to_string(), info)])
    }

    fn instance(name: &str, vrid: u8, priority: u8, body: &str) -> String {
        format!(
            "vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n \
             priority {priority}\n virtual_ipaddress {{\n  10.0.0.{vrid}/24\n }}\n{body}}}\n"
        )
    }

    #[test]
    fn instances_and_groups_follow_process_trackers_with_the_weights_written() {
        let text = "vrrp_track_process a {\n process a\n weight 10\n}\n\
                    vrrp_track_process b {\n process b\n weight -5 reverse\n}\n"
            .to_string()
            + &instance(
                "VI_1",
                1,
                100,
                " track_process {\n  a\n  b weight -20 noreverse\n }\n",
            )
            + &instance("VI_2", 2, 255, "")
            + "vrrp_sync_group G {\n group {\n  VI_2\n }\n track_process {\n  b\n }\n}\n";
        let config = tandem_config::parse_str(&text, std::path::Path::new("k.conf")).unwrap();
        let plan = crate::plan::build(&config, &eth0()).unwrap();
        let names: Vec<&str> = plan.processes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let (a, b) = (plan.processes[0].tracker, plan.processes[1].tracker);
        let of = |id| -> Vec<(TrackerId, i32, bool, Option<usize>)> {
            (plan.router.tracking_of(id).iter())
                .map(|s| {
                    (
                        s.tracking.tracker,
                        s.tracking.weight,
                        s.tracking.reverse,
                        s.group,
                    )
                })
                .collect()
        };
        // The tracker's own weight, or the line's, and the line's `noreverse`.
        assert_eq!(of(0), [(a, 10, false, None), (b, -20, false, None)]);
        // A group with an address owner cannot move priorities: weight 0.
        assert_eq!(of(1), [(b, 0, true, Some(0))]);
        // Before the first count a weight-0 reference holds FAULT, a weighted one adds nothing.
        let effects: Vec<Effect> = (plan.router.tracking_of(1).iter())
            .map(|s| s.effect)
            .collect();
        assert_eq!(effects, [Effect::Fault]);
        let pattern = &plan.processes[1].config.pattern;
        assert_eq!((pattern.name.as_str(), pattern.full_command), ("b", false));
    }

    #[test]
    fn stat_lines_give_name_and_state() {
        assert_eq!(
            parse_stat("42 (sleep) S 1 42 42 0 -1"),
            Some(("sleep", 'S'))
        );
        assert_eq!(parse_stat("7 (a) b (c)) Z 1 7"), Some(("a) b (c)", 'Z')));
        assert_eq!(parse_stat("7 (x"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn this_process_is_found_by_name_and_command_line() {
        let me = std::process::id();
        let seen = read_seen(me, true).expect("our own /proc entry");
        let exe = std::env::args().next().unwrap();
        assert!(seen.cmdline.starts_with(exe.as_bytes()));
        assert!(scan(false)
            .iter()
            .any(|(pid, s)| *pid == me && s.comm == seen.comm));
    }
}
