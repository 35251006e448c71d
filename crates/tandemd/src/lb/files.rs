//! The `track_file`s FILE_CHECK follows, watched for the balancer with the same inotify
//! watcher (and the same reading rules) as the VRRP side's `track_file`: the values read at
//! start seed the checkers, each change is handed to every checker runner.

use std::collections::HashMap;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::info;

use crate::tracking::{file, Event, FileSpec};

struct Watcher {
    spec: FileSpec,
    generation: u64,
    task: JoinHandle<()>,
}

/// The running watchers and the last value of each file.
pub struct FileWatchers {
    watchers: HashMap<String, Watcher>,
    values: HashMap<String, i64>,
    next_generation: u64,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
}

impl FileWatchers {
    /// No file watched yet.
    pub fn new() -> FileWatchers {
        let (tx, rx) = mpsc::unbounded_channel();
        FileWatchers {
            watchers: HashMap::new(),
            values: HashMap::new(),
            next_generation: 0,
            tx,
            rx,
        }
    }

    /// Watches exactly `specs`: an unchanged file keeps its watcher and value, a new or
    /// changed one is initialised (`init_file`), read now and watched, a dropped one stops.
    /// Returns the values just read (of the new or changed files).
    pub fn follow(&mut self, specs: &[FileSpec]) -> Vec<(String, i64)> {
        let mut read = Vec::new();
        self.watchers.retain(|name, w| {
            let keep = specs.iter().any(|s| s == &w.spec);
            if !keep {
                w.task.abort();
                self.values.remove(name);
            }
            keep
        });
        for spec in specs {
            if self.watchers.contains_key(&spec.name) {
                continue;
            }
            file::initialise(spec);
            let value = match file::read_value(&spec.path) {
                Ok(v) => v,
                Err(e) => {
                    info!("{e}");
                    0
                }
            };
            info!(
                "load balancing: track_file {} ({}) reads {value} for FILE_CHECK",
                spec.name,
                spec.path.display()
            );
            self.values.insert(spec.name.clone(), value);
            read.push((spec.name.clone(), value));
            let generation = self.next_generation;
            self.next_generation += 1;
            let task = tokio::spawn(file::watch(spec.clone(), generation, self.tx.clone()));
            self.watchers.insert(
                spec.name.clone(),
                Watcher {
                    spec: spec.clone(),
                    generation,
                    task,
                },
            );
        }
        read
    }

    /// The value of each watched file now.
    pub fn values(&self) -> &HashMap<String, i64> {
        &self.values
    }

    /// The next change of a watched file's value (cancel-safe: usable in `select!`).
    pub async fn changed(&mut self) -> (String, i64) {
        loop {
            let event = self.rx.recv().await;
            let Some(Event::File {
                name,
                generation,
                value,
            }) = event
            else {
                if event.is_none() {
                    // Cannot happen (this struct holds a sender); never spin on it.
                    std::future::pending::<()>().await;
                }
                continue;
            };
            let current = self.watchers.get(&name).map(|w| w.generation);
            if current != Some(generation) || self.values.get(&name) == Some(&value) {
                continue;
            }
            self.values.insert(name.clone(), value);
            return (name, value);
        }
    }

    /// Stops every watcher.
    pub fn stop(&mut self) {
        for (_, w) in self.watchers.drain() {
            w.task.abort();
        }
    }
}
