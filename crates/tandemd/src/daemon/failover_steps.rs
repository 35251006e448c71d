//! The built-in failover sequence between the VRRP core and the replication service: the
//! coordinator's commands carried out in order, its steps sent to the service, and the
//! answers and notices fed back to it.

use std::collections::VecDeque;
use std::time::Instant;

use tandem_failover::{Command, Coordinator, Step};
use tandem_vrrp::{Action, Input};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::Daemon;
use crate::conntrack::{self, Answer, Notice, Refusal};
use crate::snapshot::FailoverSnapshot;

/// The failover sequence as the daemon runs it: the coordinator, and the steps it sent to
/// the replication service whose answers are still to come.
pub(super) struct Failover {
    pub(super) coordinator: Coordinator<Action>,
    /// Oldest first; the service answers in this order.
    pub(super) steps: VecDeque<(Step, Instant, oneshot::Receiver<Answer>)>,
    /// Warnings of the sequence so far, and the last one (for status).
    pub(super) warnings: u64,
    pub(super) last_warning: Option<String>,
}

impl Failover {
    /// A coordinator for `replication`'s waits, with no step sent yet.
    pub(super) fn new(replication: &super::Replication) -> Failover {
        Failover {
            coordinator: Coordinator::new(tandem_failover::Config {
                commit_wait: replication.commit_wait,
                preempt_wait: replication.preempt_wait,
            }),
            steps: VecDeque::new(),
            warnings: 0,
            last_warning: None,
        }
    }

    /// What the status shows of the sequence.
    pub(super) fn snapshot(&self) -> FailoverSnapshot {
        FailoverSnapshot {
            waiting_for_commit: self.coordinator.waiting_for_commit(),
            holding_preemption: self.coordinator.holding_preemption(),
            steps_pending: self.steps.len(),
            warnings: self.warnings,
            last_warning: self.last_warning.clone(),
        }
    }
}

impl Daemon {
    /// Carries out the coordinator's commands in order. Runs of effects go through
    /// [`Daemon::execute_effects`], which batches adverts and address changes without
    /// changing what a neighbour sees first.
    pub(super) async fn run_commands(&mut self, commands: Vec<Command<Action>>) {
        let mut effects: Vec<Action> = Vec::new();
        for command in commands {
            match command {
                Command::Effect(effect) => effects.push(effect),
                other => {
                    self.execute_effects(std::mem::take(&mut effects)).await;
                    match other {
                        Command::Effect(_) => unreachable!("matched above"),
                        // The slow parts run in the service's own thread, in the order sent.
                        Command::Run(step) => self.run_step(step),
                        Command::HoldPreemption(until) => {
                            self.plan
                                .router
                                .handle(Instant::now(), Input::HoldPreemption(until));
                        }
                        Command::Warn(warning) => {
                            warn!("{warning}");
                            if let Some(f) = self.failover.as_mut() {
                                f.warnings += 1;
                                f.last_warning = Some(warning.to_string());
                            }
                        }
                    }
                }
            }
        }
        self.execute_effects(effects).await;
    }

    /// Sends a step of the failover sequence to the replication service; its answer (or
    /// refusal) comes back to the coordinator through `on_step_answered`.
    fn run_step(&mut self, step: Step) {
        let (Some(f), Some(r)) = (self.failover.as_mut(), self.replication.as_ref()) else {
            return;
        };
        let answer = r.handle.forward(conntrack::Request::for_step(step));
        f.steps.push_back((step, Instant::now(), answer));
    }

    /// The oldest step sent has been answered: tell the coordinator.
    pub(super) async fn on_step_answered(
        &mut self,
        answer: Result<Answer, oneshot::error::RecvError>,
    ) {
        let Some(f) = self.failover.as_mut() else {
            return;
        };
        let Some((step, sent, _)) = f.steps.pop_front() else {
            return;
        };
        let took = sent.elapsed();
        self.recorder.step(&step.to_string(), took);
        let ms = took.as_secs_f64() * 1000.0;
        let answer = answer.unwrap_or(Err(Refusal::Stopped));
        match &answer {
            Ok(reply) if step == Step::Commit && f.coordinator.waiting_for_commit() => {
                info!(
                    "failover step commit ({ms:.1} ms), before announcing: {}",
                    reply.to_string().trim_end()
                );
            }
            Ok(reply) if step == Step::Commit => {
                info!(
                    "failover step commit ({ms:.1} ms), after announcing: {}",
                    reply.to_string().trim_end()
                );
            }
            Ok(reply) => info!(
                "failover step {step} ({ms:.1} ms): {}",
                reply.to_string().trim_end()
            ),
            // The coordinator turns it into a warning.
            Err(_) => {}
        }
        let result = answer.map(drop).map_err(|refusal| refusal.to_string());
        let input = tandem_failover::Input::Answered { step, result };
        let commands = f.coordinator.handle(Instant::now(), input);
        self.run_commands(commands).await;
    }

    /// The replication service's unasked news.
    pub(super) async fn on_notice(&mut self, notice: Notice) {
        let Some(f) = self.failover.as_mut() else {
            return;
        };
        match notice {
            Notice::PeerState { entries } => {
                if f.coordinator.holding_preemption() {
                    info!("peer state received ({entries} flows): preemption allowed");
                }
                let input = tandem_failover::Input::PeerStateReceived { entries };
                let commands = f.coordinator.handle(Instant::now(), input);
                self.run_commands(commands).await;
            }
        }
    }
}
