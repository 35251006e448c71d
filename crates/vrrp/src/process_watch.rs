//! Counting running processes for keepalived's `vrrp_track_process`, from process events.
//!
//! The daemon scans `/proc` once, then feeds the kernel's process events (fork, exec, comm
//! change, exit) as they come; [`ProcessWatch`] keeps, for each tracker, the set of processes
//! that match it, and says when a tracker goes up (its count is within `quorum..=quorum_max`)
//! or down. As in keepalived, a change brought by a fork waits `fork_delay` and one brought by
//! an exit waits `terminate_delay` (a change back in the meantime cancels it); an exec, a
//! rename or the first scan counts at once.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tandem_vrrp::process_watch::*;
//!
//! let mut watch = ProcessWatch::new(vec![TrackerConfig::new(ProcessPattern::name("nginx"))]);
//! let now = Instant::now();
//! let nginx = Seen { comm: "nginx".into(), cmdline: b"nginx\0".to_vec() };
//! let up = watch.handle(now, Input::Scan(&[(42, nginx)]));
//! assert_eq!(up, [Change { tracker: 0, up: true }]);
//! assert_eq!(watch.handle(now, Input::Exit { pid: 42 }), [Change { tracker: 0, up: false }]);
//! ```

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How the configured arguments compare with a process's (keepalived's `param_match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamMatch {
    /// Arguments are not compared.
    Any,
    /// Exactly the configured arguments.
    Exact,
    /// The configured arguments come first.
    Partial,
    /// As `Partial`, but the last configured argument need only begin the process's one.
    Initial,
}

/// Which processes a tracker counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPattern {
    /// The kernel's process name, or with `full_command` the command line's first word.
    pub name: String,
    /// Arguments compared per `param_match`.
    pub args: Vec<String>,
    /// How `args` are compared.
    pub param_match: ParamMatch,
    /// Compare the command line rather than the kernel's process name.
    pub full_command: bool,
}

impl ProcessPattern {
    /// Processes whose kernel name (`/proc/PID/comm`) is `name`.
    pub fn name(name: &str) -> ProcessPattern {
        ProcessPattern {
            name: name.into(),
            args: Vec::new(),
            param_match: ParamMatch::Any,
            full_command: false,
        }
    }

    /// Whether a process with this kernel name and raw command line (NUL-separated, as in
    /// `/proc/PID/cmdline`) is one of ours.
    pub fn matches(&self, comm: &str, cmdline: &[u8]) -> bool {
        if !self.full_command {
            return comm == self.name;
        }
        let (first, params) = match cmdline.iter().position(|&b| b == 0) {
            Some(end) => (&cmdline[..end], &cmdline[end + 1..]),
            None => (cmdline, &[][..]),
        };
        first == self.name.as_bytes() && self.params_match(params)
    }

    /// keepalived's comparison of the bytes after the first word, each argument ending in NUL.
    fn params_match(&self, params: &[u8]) -> bool {
        let wanted: Vec<u8> = self
            .args
            .iter()
            .flat_map(|a| a.bytes().chain([0]))
            .collect();
        match self.param_match {
            ParamMatch::Any => true,
            ParamMatch::Exact => params == wanted.as_slice(),
            ParamMatch::Partial => params.starts_with(&wanted),
            ParamMatch::Initial => {
                // The last argument's NUL is not compared: it may go on.
                let stem = &wanted[..wanted.len().saturating_sub(1)];
                params.len() >= wanted.len() && params.starts_with(stem)
            }
        }
    }
}

/// One tracker: the pattern and the range of counts that keeps it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Which processes count.
    pub pattern: ProcessPattern,
    /// Fewest processes for up.
    pub quorum: u32,
    /// Most processes for up.
    pub quorum_max: u32,
    /// How long a change brought by a fork must hold before it is reported.
    pub fork_delay: Duration,
    /// How long a change brought by an exit must hold before it is reported.
    pub terminate_delay: Duration,
}

impl TrackerConfig {
    /// keepalived's defaults: up while at least one runs, no delays.
    pub fn new(pattern: ProcessPattern) -> TrackerConfig {
        TrackerConfig {
            pattern,
            quorum: 1,
            quorum_max: u32::MAX,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
        }
    }
}

/// What `/proc` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The kernel's name (`/proc/PID/comm`, at most 15 bytes).
    pub comm: String,
    /// The raw command line (`/proc/PID/cmdline`).
    pub cmdline: Vec<u8>,
}

/// An input to [`ProcessWatch::handle`]. Pids are process ids (thread group ids): the daemon
/// drops events about threads other than a process's main one.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// The first look at every process: sets the counts and reports every tracker.
    Scan(&'a [(u32, Seen)]),
    /// A new look at every process after events were lost: counts start again from it.
    Rescan(&'a [(u32, Seen)]),
    /// `parent` forked `child` (a process, not a thread).
    Fork {
        /// The forking process.
        parent: u32,
        /// The new process.
        child: u32,
    },
    /// A process ran a new program; `seen` is `None` when it was gone before `/proc` was read.
    Exec {
        /// The process.
        pid: u32,
        /// What `/proc` says now.
        seen: Option<&'a Seen>,
    },
    /// A process renamed itself (`prctl(PR_SET_NAME)`).
    Comm {
        /// The process.
        pid: u32,
        /// Its new kernel name.
        comm: &'a str,
    },
    /// A process ended.
    Exit {
        /// The process.
        pid: u32,
    },
    /// The time given is at or after [`ProcessWatch::next_deadline`].
    Timer,
}

/// A tracker's reported state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Index of the tracker, in the order given to [`ProcessWatch::new`].
    pub tracker: usize,
    /// Whether its count is now within its quorum.
    pub up: bool,
}

/// What brought a count change: decides the delay before it is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Fork,
    Exit,
    Immediate,
    Rescan,
}

#[derive(Debug)]
struct Tracker {
    config: TrackerConfig,
    pids: HashSet<u32>,
    up: bool,
    /// When the state the count says now is reported, if it differs from `up`.
    pending: Option<Instant>,
}

impl Tracker {
    fn in_quorum(&self) -> bool {
        let n = u32::try_from(self.pids.len()).unwrap_or(u32::MAX);
        (self.config.quorum..=self.config.quorum_max).contains(&n)
    }
}

/// The process counts of every tracker, fed with process events (see the module's doc).
#[derive(Debug)]
pub struct ProcessWatch {
    trackers: Vec<Tracker>,
    /// Which trackers count each process.
    counted: HashMap<u32, Vec<usize>>,
}

impl ProcessWatch {
    /// Trackers in the order their [`Change`]s name them; all down until the first scan.
    pub fn new(configs: Vec<TrackerConfig>) -> ProcessWatch {
        let trackers = configs
            .into_iter()
            .map(|config| Tracker {
                config,
                pids: HashSet::new(),
                up: false,
                pending: None,
            })
            .collect();
        ProcessWatch {
            trackers,
            counted: HashMap::new(),
        }
    }

    /// Whether any tracker compares command lines (else `/proc/PID/cmdline` need not be read).
    pub fn needs_cmdline(&self) -> bool {
        self.trackers.iter().any(|t| t.config.pattern.full_command)
    }

    /// The reported state of a tracker.
    pub fn is_up(&self, tracker: usize) -> bool {
        self.trackers[tracker].up
    }

    /// How many processes a tracker counts now.
    pub fn count(&self, tracker: usize) -> usize {
        self.trackers[tracker].pids.len()
    }

    /// When a delayed change is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.trackers.iter().filter_map(|t| t.pending).min()
    }

    /// Feeds one input; returns the trackers whose reported state changed.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Vec<Change> {
        let mut touched: Vec<(usize, Cause)> = Vec::new();
        match input {
            Input::Scan(all) => {
                self.recount(all);
                for t in &mut self.trackers {
                    t.up = t.in_quorum();
                    t.pending = None;
                }
                return (0..self.trackers.len())
                    .map(|i| Change {
                        tracker: i,
                        up: self.trackers[i].up,
                    })
                    .collect();
            }
            Input::Rescan(all) => {
                self.recount(all);
                for t in &mut self.trackers {
                    t.pending = None;
                }
                touched.extend((0..self.trackers.len()).map(|i| (i, Cause::Rescan)));
            }
            Input::Fork { parent, child } => {
                let Some(of_parent) = self.counted.get(&parent).cloned() else {
                    return Vec::new();
                };
                for &i in &of_parent {
                    if self.trackers[i].pids.insert(child) {
                        touched.push((i, Cause::Fork));
                    }
                }
                self.counted.insert(child, of_parent);
            }
            Input::Exec { pid, seen } => {
                let Some(seen) = seen else {
                    return Vec::new();
                };
                for i in 0..self.trackers.len() {
                    let wanted = self.trackers[i]
                        .config
                        .pattern
                        .matches(&seen.comm, &seen.cmdline);
                    if self.set_counted(i, pid, wanted) {
                        touched.push((i, Cause::Immediate));
                    }
                }
            }
            Input::Comm { pid, comm } => {
                for i in 0..self.trackers.len() {
                    let pattern = &self.trackers[i].config.pattern;
                    // A rename changes the kernel name only, not the command line.
                    if pattern.full_command {
                        continue;
                    }
                    let wanted = comm == pattern.name;
                    if self.set_counted(i, pid, wanted) {
                        touched.push((i, Cause::Immediate));
                    }
                }
            }
            Input::Exit { pid } => {
                for i in self.counted.remove(&pid).unwrap_or_default() {
                    self.trackers[i].pids.remove(&pid);
                    touched.push((i, Cause::Exit));
                }
            }
            Input::Timer => {
                let mut changes = Vec::new();
                for (i, t) in self.trackers.iter_mut().enumerate() {
                    if t.pending.is_some_and(|at| at <= now) {
                        t.pending = None;
                        let up = t.in_quorum();
                        if up != t.up {
                            t.up = up;
                            changes.push(Change { tracker: i, up });
                        }
                    }
                }
                return changes;
            }
        }
        // In tracker order, whatever order the process was counted in.
        touched.sort_by_key(|&(i, _)| i);
        touched
            .into_iter()
            .filter_map(|(i, cause)| self.settle(now, i, cause))
            .collect()
    }

    /// Counts `pid` for tracker `i` or not; returns whether that changed anything.
    fn set_counted(&mut self, i: usize, pid: u32, wanted: bool) -> bool {
        let t = &mut self.trackers[i];
        let changed = if wanted {
            t.pids.insert(pid)
        } else {
            t.pids.remove(&pid)
        };
        if changed {
            let of_pid = self.counted.entry(pid).or_default();
            if wanted {
                of_pid.push(i);
            } else {
                of_pid.retain(|&j| j != i);
                if of_pid.is_empty() {
                    self.counted.remove(&pid);
                }
            }
        }
        changed
    }

    fn recount(&mut self, all: &[(u32, Seen)]) {
        self.counted.clear();
        for t in &mut self.trackers {
            t.pids.clear();
        }
        for (pid, seen) in all {
            for i in 0..self.trackers.len() {
                if self.trackers[i]
                    .config
                    .pattern
                    .matches(&seen.comm, &seen.cmdline)
                {
                    self.set_counted(i, *pid, true);
                }
            }
        }
    }

    /// Reports tracker `i`'s new state now, or after the delay its cause calls for.
    fn settle(&mut self, now: Instant, i: usize, cause: Cause) -> Option<Change> {
        let t = &mut self.trackers[i];
        let up = t.in_quorum();
        if up == t.up {
            // Back where it was reported: a pending change is void.
            t.pending = None;
            return None;
        }
        if t.pending.is_some() {
            return None;
        }
        let delay = match cause {
            Cause::Fork => t.config.fork_delay,
            Cause::Exit => t.config.terminate_delay,
            Cause::Rescan if !up => t.config.terminate_delay,
            Cause::Rescan | Cause::Immediate => Duration::ZERO,
        };
        if delay.is_zero() {
            t.up = up;
            return Some(Change { tracker: i, up });
        }
        t.pending = Some(now + delay);
        None
    }
}

#[cfg(test)]
mod tests;
