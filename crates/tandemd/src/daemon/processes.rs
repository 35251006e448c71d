//! The daemon's side of `vrrp_track_process`: starting the process watch before the instances
//! start (and again at a reload), and handing its updates to the router.

use std::time::Instant;

use anyhow::Result;
use tokio::sync::mpsc;
use tracing::debug;

use tandem_vrrp::Input;

use super::Daemon;
use crate::plan::Plan;
use crate::track_process::{self, Update, Watch};

/// The running watch and the channel its updates come on.
pub(super) struct Processes {
    watch: Option<Watch>,
    /// Which watch's updates are current (each reload starts a new one).
    generation: u64,
    tx: mpsc::UnboundedSender<Update>,
    rx: Option<mpsc::UnboundedReceiver<Update>>,
}

impl Processes {
    pub(super) fn new() -> Processes {
        let (tx, rx) = mpsc::unbounded_channel();
        Processes {
            watch: None,
            generation: 0,
            tx,
            rx: Some(rx),
        }
    }

    /// The updates, for the daemon's loop (taken once).
    pub(super) fn updates(&mut self) -> Option<mpsc::UnboundedReceiver<Update>> {
        self.rx.take()
    }
}

impl Processes {
    /// Starts counting processes for `plan` and gives its router the first states. The watch
    /// returned replaces the running one (see [`Daemon::use_process_watch`]) once `plan` is in
    /// force.
    pub(super) async fn watch(&self, plan: &mut Plan) -> Result<(Option<Watch>, u64)> {
        let generation = self.generation + 1;
        let (watch, initial) =
            track_process::start(plan.processes.clone(), generation, self.tx.clone()).await?;
        let now = Instant::now();
        for u in initial {
            let input = Input::Tracker {
                tracker: u.tracker,
                state: u.state,
            };
            // The instances have not started: nothing to carry out yet.
            let actions = plan.router.handle(now, input);
            debug!("first process count: {actions:?}");
        }
        Ok((watch, generation))
    }
}

impl Daemon {
    /// Puts a watch from [`Processes::watch`] in force (the previous one stops).
    pub(super) fn use_process_watch(&mut self, watch: Option<Watch>, generation: u64) {
        self.processes.watch = watch;
        self.processes.generation = generation;
    }

    /// A tracker's state changed: the router reweighs or faults the instances following it.
    pub(super) async fn on_process_update(&mut self, update: Update) {
        if update.generation != self.processes.generation {
            return;
        }
        let input = Input::Tracker {
            tracker: update.tracker,
            state: update.state,
        };
        let actions = self.plan.router.handle(Instant::now(), input);
        self.execute(actions).await;
    }
}
