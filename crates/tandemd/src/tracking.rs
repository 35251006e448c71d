//! Health trackers as the daemon runs them: `vrrp_script` runners and `track_file` watchers,
//! each its own task, reporting to the daemon loop over one channel. The rules (weights,
//! FAULT, rise/fall) live in the sans-IO core (`tandem_vrrp::tracker`); this module only
//! produces the states and carries them over a reload: a script or file whose definition did
//! not change keeps its task and its state.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tandem_config::Config;
use tandem_vrrp::{Router, ScriptCounter, TrackerKind, TrackerState};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

pub mod file;
pub mod script;
pub mod security;

pub use script::Outcome;
pub use security::{Policy, ScriptUser};

/// One `vrrp_script`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    /// Block name.
    pub name: String,
    /// Command line (run through `/bin/sh -c`).
    pub command: String,
    /// Between runs.
    pub interval: Duration,
    /// Longest run (keepalived: `timeout`, default the interval).
    pub timeout: Duration,
    /// `rise`.
    pub rise: u32,
    /// `fall`.
    pub fall: u32,
    /// `init_fail`.
    pub init_fail: bool,
    /// Who runs it.
    pub user: ScriptUser,
    /// Why it must not run (script security, unknown user): it then counts as failed.
    pub refused: Option<String>,
    /// `file:line` of the block.
    pub location: String,
}

/// One `track_file`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Block name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// `init_file`: (value, overwrite).
    pub init: Option<(i64, bool)>,
    /// `file:line` of the block.
    pub location: String,
}

impl FileSpec {
    /// The `track_file` block `f` as its watchers need it (the VRRP side's and FILE_CHECK's).
    pub fn from_config(f: &tandem_config::TrackFile) -> FileSpec {
        FileSpec {
            name: f.name.clone(),
            path: f.file.clone(),
            init: f.init,
            location: located(&f.location),
        }
    }
}

/// The trackers a configuration asks for (only those some instance or group follows).
#[derive(Debug, Clone, Default)]
pub struct TrackingPlan {
    /// Scripts.
    pub scripts: Vec<ScriptSpec>,
    /// Files.
    pub files: Vec<FileSpec>,
}

/// `file:line` of a location.
pub fn located(l: &tandem_config::Location) -> String {
    format!("{}:{}", l.file.display(), l.line)
}

impl TrackingPlan {
    /// Resolves the scripts and files of `config` that something follows.
    pub fn from_config(config: &Config, policy: &Policy) -> TrackingPlan {
        let followed_script = |name: &str| {
            (config.instances.iter()).any(|i| i.track_scripts.iter().any(|t| t.name == name))
                || (config.sync_groups.iter())
                    .any(|g| g.track_scripts.iter().any(|t| t.name == name))
        };
        let followed_file = |name: &str| {
            (config.instances.iter()).any(|i| i.track_files.iter().any(|t| t.name == name))
                || (config.sync_groups.iter()).any(|g| g.track_files.iter().any(|t| t.name == name))
        };
        let scripts = (config.scripts.iter())
            .filter(|s| followed_script(&s.name))
            .map(|s| {
                let location = located(&s.location);
                let (user, refused) = match policy.user_for(s.user.as_deref(), s.group.as_deref()) {
                    Ok(user) => match policy.check(&s.script, &user) {
                        Ok(warning) => {
                            if let Some(w) = warning {
                                warn!("{location}: vrrp_script {}: {w}", s.name);
                            }
                            (user, None)
                        }
                        Err(e) => (user, Some(e)),
                    },
                    Err(e) => (ScriptUser::root(), Some(e)),
                };
                ScriptSpec {
                    name: s.name.clone(),
                    command: s.script.clone(),
                    interval: s.interval,
                    timeout: s.timeout.unwrap_or(s.interval),
                    rise: s.rise,
                    fall: s.fall,
                    init_fail: s.init_fail,
                    user,
                    refused,
                    location,
                }
            })
            .collect();
        let files = (config.track_files.iter())
            .filter(|f| followed_file(&f.name))
            .map(FileSpec::from_config)
            .collect();
        TrackingPlan { scripts, files }
    }
}

/// What a tracker task reports.
#[derive(Debug)]
pub enum Event {
    /// A script ran.
    Script {
        /// Script name.
        name: String,
        /// Which runner (a reload may have replaced it since).
        generation: u64,
        /// How the run ended.
        outcome: Outcome,
        /// The rise/fall state after it.
        state: TrackerState,
    },
    /// A tracked file holds a new value.
    File {
        /// track_file name.
        name: String,
        /// Which watcher.
        generation: u64,
        /// The value.
        value: i64,
    },
}

/// Counters of one script, for status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptStats {
    /// Runs so far.
    pub runs: u64,
    /// Runs that failed (timeouts included).
    pub failures: u64,
    /// Runs killed at their timeout.
    pub timeouts: u64,
    /// How the last run ended.
    pub last: Option<Outcome>,
}

struct Runner {
    spec: ScriptSpec,
    generation: u64,
    task: Option<JoinHandle<()>>,
    state: TrackerState,
    stats: ScriptStats,
}

struct Watcher {
    spec: FileSpec,
    generation: u64,
    task: JoinHandle<()>,
    value: i64,
}

/// The running tracker tasks.
pub struct Trackers {
    scripts: HashMap<String, Runner>,
    files: HashMap<String, Watcher>,
    next_generation: u64,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: Option<mpsc::UnboundedReceiver<Event>>,
}

impl Default for Trackers {
    fn default() -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Trackers {
            scripts: HashMap::new(),
            files: HashMap::new(),
            next_generation: 0,
            events_tx,
            events_rx: Some(events_rx),
        }
    }
}

impl Trackers {
    /// The channel the tasks report on (taken once by the daemon loop).
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<Event>> {
        self.events_rx.take()
    }

    /// Starts, keeps or stops tasks to match `plan`, and gives `router`'s trackers their
    /// states: kept ones their running state, new ones their initial one. `first` is the
    /// start (init_file is written then, not on reloads, as keepalived does).
    pub fn apply(&mut self, plan: &TrackingPlan, router: &mut Router, first: bool) {
        let mut scripts = HashMap::new();
        for spec in &plan.scripts {
            let runner = match self.scripts.remove(&spec.name) {
                Some(r) if r.spec == *spec => r,
                old => {
                    if let Some(task) = old.and_then(|r| r.task) {
                        task.abort();
                    }
                    self.start_script(spec)
                }
            };
            if let Some(id) = router.tracker_by_name(TrackerKind::Script, &spec.name) {
                router.set_tracker_state(id, runner.state);
            }
            scripts.insert(spec.name.clone(), runner);
        }
        for (_, old) in self.scripts.drain() {
            if let Some(task) = old.task {
                task.abort();
            }
        }
        self.scripts = scripts;

        let mut files = HashMap::new();
        for spec in &plan.files {
            let watcher = match self.files.remove(&spec.name) {
                Some(w) if w.spec == *spec => w,
                old => {
                    if let Some(w) = old {
                        w.task.abort();
                    }
                    if first {
                        file::initialise(spec);
                    }
                    self.start_file(spec)
                }
            };
            if let Some(id) = router.tracker_by_name(TrackerKind::File, &spec.name) {
                router.set_tracker_state(id, TrackerState::Value(watcher.value));
            }
            files.insert(spec.name.clone(), watcher);
        }
        for (_, old) in self.files.drain() {
            old.task.abort();
        }
        self.files = files;
    }

    fn start_script(&mut self, spec: &ScriptSpec) -> Runner {
        self.next_generation += 1;
        let generation = self.next_generation;
        let counter = ScriptCounter::new(spec.rise, spec.fall, spec.init_fail);
        let (task, state) = match &spec.refused {
            Some(why) => {
                error!(
                    "{}: vrrp_script {}: {why}; it counts as failed",
                    spec.location, spec.name
                );
                (None, TrackerState::Down)
            }
            None => {
                info!(
                    "vrrp_script {}: running `{}` every {:.3} s as {}",
                    spec.name,
                    spec.command,
                    spec.interval.as_secs_f64(),
                    spec.user.name
                );
                let state = counter.state();
                let task = tokio::spawn(script::run(
                    spec.clone(),
                    generation,
                    counter,
                    self.events_tx.clone(),
                ));
                (Some(task), state)
            }
        };
        Runner {
            spec: spec.clone(),
            generation,
            task,
            state,
            stats: ScriptStats::default(),
        }
    }

    fn start_file(&mut self, spec: &FileSpec) -> Watcher {
        self.next_generation += 1;
        let generation = self.next_generation;
        let value = file::read_value(&spec.path).unwrap_or_else(|e| {
            info!("{e}");
            0
        });
        let task = tokio::spawn(file::watch(
            spec.clone(),
            generation,
            self.events_tx.clone(),
        ));
        Watcher {
            spec: spec.clone(),
            generation,
            task,
            value,
        }
    }

    /// Records a task's report; returns the tracker whose state changed, with the new state.
    pub fn on_event(&mut self, event: Event) -> Option<(TrackerKind, String, TrackerState)> {
        match event {
            Event::Script {
                name,
                generation,
                outcome,
                state,
            } => {
                let runner = self.scripts.get_mut(&name)?;
                if runner.generation != generation {
                    return None;
                }
                let s = &mut runner.stats;
                s.runs += 1;
                s.failures += u64::from(!outcome.success());
                s.timeouts += u64::from(outcome == Outcome::TimedOut);
                s.last = Some(outcome);
                let changed = runner.state != state;
                runner.state = state;
                changed.then_some((TrackerKind::Script, name, state))
            }
            Event::File {
                name,
                generation,
                value,
            } => {
                let watcher = self.files.get_mut(&name)?;
                if watcher.generation != generation || watcher.value == value {
                    return None;
                }
                info!(
                    "track_file {name}: {} now holds {value}",
                    watcher.spec.path.display()
                );
                watcher.value = value;
                Some((TrackerKind::File, name, TrackerState::Value(value)))
            }
        }
    }

    /// A script's counters, for status.
    pub fn script_stats(&self, name: &str) -> Option<ScriptStats> {
        self.scripts.get(name).map(|r| r.stats)
    }

    /// A script's resolved settings, for status and dumps.
    pub fn script_spec(&self, name: &str) -> Option<&ScriptSpec> {
        self.scripts.get(name).map(|r| &r.spec)
    }

    /// Stops every task (shutdown).
    pub fn stop(&mut self) {
        for r in self.scripts.values() {
            if let Some(t) = &r.task {
                t.abort();
            }
        }
        for w in self.files.values() {
            w.task.abort();
        }
    }
}
