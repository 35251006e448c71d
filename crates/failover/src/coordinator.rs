//! The coordinator value: one queue of steps and effects, where a promotion's commit is a
//! barrier that effects wait behind (up to `commit_wait`), and a start-up preemption hold that
//! lasts until the peer's state arrived (or `preempt_wait`).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use tandem_vrrp::State;

/// How long the coordinator waits for the replication side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Longest wait for a promotion's commit before the held effects go out anyway.
    pub commit_wait: Duration,
    /// Longest wait at start for the peer's full state before this node may preempt.
    pub preempt_wait: Duration,
}

/// A step of the sequence that the replication service carries out; every step sent is
/// answered with [`Input::Answered`], in the order sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Put the peer's flows (the external cache) into the kernel table.
    Commit,
    /// Forget the peer's flows: after a promotion they would only go stale.
    FlushExternal,
    /// Send this node's whole table to the peer.
    Bulk,
    /// Shorten the kernel timers of the flows this node was forwarding.
    Shorten,
    /// Ask the new master for its whole table.
    RequestResync,
}

impl Step {
    /// The operator's word for the step (the control socket's verb).
    pub fn word(self) -> &'static str {
        match self {
            Step::Commit => "commit",
            Step::FlushExternal => "flush external",
            Step::Bulk => "bulk",
            Step::Shorten => "shorten",
            Step::RequestResync => "request-resync",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A change of the state that drives replication (the sync group's, or the instance's when
/// there are no groups), into or out of MASTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
}

/// What the coordinator needs to know about an effect of the VRRP core: whether it must wait
/// for a promotion's commit.
pub trait Effect {
    /// Addresses, announcements and scripts wait (they bring traffic here); adverts and log
    /// lines do not (an advert that waited would let the peer take over again).
    fn waits_for_commit(&self) -> bool;
}

impl Effect for tandem_vrrp::Action {
    fn waits_for_commit(&self) -> bool {
        !matches!(
            self,
            tandem_vrrp::Action::Instance {
                action: tandem_vrrp::InstanceAction::Send { .. },
                ..
            } | tandem_vrrp::Action::Dropped { .. }
                | tandem_vrrp::Action::PriorityChanged { .. }
        )
    }
}

/// What happened, for the coordinator to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<E> {
    /// The daemon is about to start its VRRP instances.
    Start,
    /// One batch of the VRRP core's actions, in the core's order, with the replicated
    /// transition among them (see [`replicated_transition`]).
    Actions {
        /// The transition that drives replication, if the batch holds one.
        transition: Option<Transition>,
        /// Everything the core asked for, adverts included.
        actions: Vec<E>,
    },
    /// The replication service answered a step (answers come in the order the steps went).
    Answered {
        /// Which step.
        step: Step,
        /// `Err` carries the refusal or failure, as the log line should say it.
        result: Result<(), String>,
    },
    /// The peer's full state arrived (a bulk or resync completed).
    PeerStateReceived {
        /// How many flows it held.
        entries: usize,
    },
    /// Nothing heard from the peer on the sync link for too long.
    PeerSilent,
    /// The time given is at or after [`Coordinator::next_deadline`].
    Timer,
    /// The daemon is stopping: whatever waits goes out now, so the shutdown's effects undo it.
    Shutdown,
}

/// What the daemon should do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<E> {
    /// Ask the replication service to run a step; answer with [`Input::Answered`].
    Run(Step),
    /// Pass to the VRRP core as `Input::HoldPreemption`.
    HoldPreemption(Option<Instant>),
    /// Carry out an effect of the VRRP core.
    Effect(E),
    /// Something an operator should read in the log (and in status).
    Warn(Warning),
}

/// Log-worthy turns of the sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The commit did not answer within `commit_wait`: the held effects went out anyway.
    CommitWaitExpired {
        /// How long the effects waited.
        waited: Duration,
    },
    /// The daemon stopped while a commit still ran: the held effects went out first.
    StoppedDuringCommit {
        /// How long the effects waited.
        waited: Duration,
    },
    /// `preempt_wait` ran out before the peer's state arrived: preemption is allowed.
    PreemptWaitExpired {
        /// The configured wait.
        waited: Duration,
    },
    /// The replication service refused or failed a step.
    StepFailed {
        /// Which step.
        step: Step,
        /// What it said.
        reason: String,
    },
    /// The peer went silent on the sync link.
    PeerSilent {
        /// Whether this node still holds preemption waiting for the peer's state.
        holding_preemption: bool,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::CommitWaitExpired { waited } => write!(
                f,
                "commit still running after {} ms (commit_wait): announcing the addresses anyway",
                waited.as_millis()
            ),
            Warning::StoppedDuringCommit { waited } => write!(
                f,
                "stopping while the commit still runs ({} ms): carrying out the held effects first",
                waited.as_millis()
            ),
            Warning::PreemptWaitExpired { waited } => write!(
                f,
                "preempt_wait ({} s) expired without the peer's state: preemption allowed",
                waited.as_secs_f64()
            ),
            Warning::StepFailed { step, reason } => write!(f, "failover step `{step}`: {reason}"),
            Warning::PeerSilent { holding_preemption } => {
                f.write_str("sync peer silent")?;
                if *holding_preemption {
                    f.write_str(": still holding preemption until preempt_wait")?;
                }
                Ok(())
            }
        }
    }
}

/// The transition that drives replication in a batch of VRRP actions: the sync group's when
/// there are groups (`grouped`), otherwise any instance's; only into or out of MASTER.
pub fn replicated_transition(actions: &[tandem_vrrp::Action], grouped: bool) -> Option<Transition> {
    use tandem_vrrp::{Action, InstanceAction};
    actions.iter().find_map(|a| {
        let (from, to) = match a {
            Action::GroupTransition { from, to, .. } if grouped => (*from, *to),
            Action::Instance {
                action: InstanceAction::Transition { from, to, .. },
                ..
            } if !grouped => (*from, *to),
            _ => return None,
        };
        (to == State::Master || from == State::Master).then_some(Transition { from, to })
    })
}

/// An item of the queue: a step for the service or an effect for the daemon.
#[derive(Debug)]
enum Item<E> {
    Step(Step),
    Effect(E),
}

/// The commit that effects wait behind.
#[derive(Debug)]
struct Waiting {
    since: Instant,
    deadline: Instant,
}

/// The failover sequence of one node. Generic over the effect type `E` (the VRRP core's
/// actions in the daemon, anything in tests).
#[derive(Debug)]
pub struct Coordinator<E> {
    config: Config,
    queue: VecDeque<Item<E>>,
    waiting: Option<Waiting>,
    /// Commits sent and not answered yet (a late one can still be running).
    commits_in_flight: usize,
    /// Preemption is held until then, unless the peer's state arrives first.
    preempt_until: Option<Instant>,
}

impl<E: Effect> Coordinator<E> {
    /// A coordinator with nothing pending.
    pub fn new(config: Config) -> Coordinator<E> {
        Coordinator {
            config,
            queue: VecDeque::new(),
            waiting: None,
            commits_in_flight: 0,
            preempt_until: None,
        }
    }

    /// When [`Input::Timer`] is due next: the end of `commit_wait` or of `preempt_wait`.
    pub fn next_deadline(&self) -> Option<Instant> {
        let commit = self.waiting.as_ref().map(|w| w.deadline);
        match (commit, self.preempt_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether effects wait for a commit right now.
    pub fn waiting_for_commit(&self) -> bool {
        self.waiting.is_some()
    }

    /// Whether preemption is held waiting for the peer's state.
    pub fn holding_preemption(&self) -> bool {
        self.preempt_until.is_some()
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input<E>) -> Vec<Command<E>> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.on_start(now, &mut out),
            Input::Actions {
                transition,
                actions,
            } => self.on_actions(now, transition, actions, &mut out),
            Input::Answered { step, result } => self.on_answer(now, step, result, &mut out),
            Input::PeerStateReceived { .. } => {
                if self.preempt_until.take().is_some() {
                    out.push(Command::HoldPreemption(None));
                }
            }
            Input::PeerSilent => out.push(Command::Warn(Warning::PeerSilent {
                holding_preemption: self.preempt_until.is_some(),
            })),
            Input::Timer => self.on_timer(now, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
        }
        out
    }

    /// Do not take over from a working master before its flows are here (CARP waits for
    /// pfsync's bulk update the same way); a dead master is still replaced.
    fn on_start(&mut self, now: Instant, out: &mut Vec<Command<E>>) {
        let until = now + self.config.preempt_wait;
        self.preempt_until = Some(until);
        out.push(Command::HoldPreemption(Some(until)));
    }

    /// Promotion: the commit goes first and the batch's effects queue behind it; then flush
    /// external and bulk. Demotion: the effects, then shorten and request-resync.
    fn on_actions(
        &mut self,
        now: Instant,
        transition: Option<Transition>,
        actions: Vec<E>,
        out: &mut Vec<Command<E>>,
    ) {
        let follow_up: &[Step] = match transition {
            Some(t) if t.to == State::Master => {
                self.push(now, Item::Step(Step::Commit), out);
                &[Step::FlushExternal, Step::Bulk]
            }
            Some(t) if t.from == State::Master && matches!(t.to, State::Backup | State::Fault) => {
                &[Step::Shorten, Step::RequestResync]
            }
            _ => &[],
        };
        for action in actions {
            if self.waiting.is_some() && !action.waits_for_commit() {
                // Adverts never wait: masters keep advertising, a new one claims its VRIDs.
                out.push(Command::Effect(action));
            } else {
                self.push(now, Item::Effect(action), out);
            }
        }
        for &step in follow_up {
            self.push(now, Item::Step(step), out);
        }
    }

    fn on_answer(
        &mut self,
        now: Instant,
        step: Step,
        result: Result<(), String>,
        out: &mut Vec<Command<E>>,
    ) {
        if let Err(reason) = result {
            out.push(Command::Warn(Warning::StepFailed { step, reason }));
        }
        if step == Step::Commit {
            self.commits_in_flight = self.commits_in_flight.saturating_sub(1);
            // Answers come in order: the last commit sent has answered when none is left.
            if self.commits_in_flight == 0 && self.waiting.take().is_some() {
                self.pump(now, out);
            }
        }
    }

    fn on_timer(&mut self, now: Instant, out: &mut Vec<Command<E>>) {
        if let Some(w) = self.waiting.as_ref().filter(|w| now >= w.deadline) {
            let waited = now.saturating_duration_since(w.since);
            self.waiting = None;
            out.push(Command::Warn(Warning::CommitWaitExpired { waited }));
            self.pump(now, out);
        }
        if self.preempt_until.is_some_and(|until| now >= until) {
            self.preempt_until = None;
            out.push(Command::Warn(Warning::PreemptWaitExpired {
                waited: self.config.preempt_wait,
            }));
            out.push(Command::HoldPreemption(None));
        }
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Command<E>>) {
        self.preempt_until = None;
        if let Some(w) = self.waiting.take() {
            out.push(Command::Warn(Warning::StoppedDuringCommit {
                waited: now.saturating_duration_since(w.since),
            }));
        }
        // Nothing waits for a commit while stopping: commits still queued are not sent.
        while let Some(item) = self.queue.pop_front() {
            match item {
                Item::Effect(e) => out.push(Command::Effect(e)),
                Item::Step(Step::Commit) => {}
                Item::Step(step) => out.push(Command::Run(step)),
            }
        }
    }

    fn push(&mut self, now: Instant, item: Item<E>, out: &mut Vec<Command<E>>) {
        self.queue.push_back(item);
        self.pump(now, out);
    }

    /// Hands out the queue up to (and including) the next commit, which then holds the rest.
    fn pump(&mut self, now: Instant, out: &mut Vec<Command<E>>) {
        while self.waiting.is_none() {
            let Some(item) = self.queue.pop_front() else {
                return;
            };
            match item {
                Item::Effect(e) => out.push(Command::Effect(e)),
                Item::Step(step) => {
                    if step == Step::Commit {
                        self.commits_in_flight += 1;
                        self.waiting = Some(Waiting {
                            since: now,
                            deadline: now + self.config.commit_wait,
                        });
                    }
                    out.push(Command::Run(step));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Advert` never waits; `Fx(n)` stands for an address, announcement or script.
    #[derive(Debug, PartialEq, Eq)]
    enum Fx {
        Advert,
        Fx(u8),
    }

    impl Effect for Fx {
        fn waits_for_commit(&self) -> bool {
            *self != Fx::Advert
        }
    }

    use Command::{Effect as E, Run, Warn};
    use Step::*;

    fn coordinator() -> Coordinator<Fx> {
        Coordinator::new(Config {
            commit_wait: Duration::from_secs(2),
            preempt_wait: Duration::from_secs(10),
        })
    }

    fn moved(from: State, to: State, actions: Vec<Fx>) -> Input<Fx> {
        Input::Actions {
            transition: Some(Transition { from, to }),
            actions,
        }
    }

    fn ok(step: Step) -> Input<Fx> {
        Input::Answered {
            step,
            result: Ok(()),
        }
    }

    #[test]
    fn a_demotion_during_the_commit_queues_behind_it_in_order() {
        let now = Instant::now();
        let mut c = coordinator();
        let out = c.handle(now, moved(State::Backup, State::Master, vec![Fx::Fx(1)]));
        assert_eq!(out, [Run(Commit)]);
        let out = c.handle(
            now,
            moved(State::Master, State::Backup, vec![Fx::Fx(2), Fx::Advert]),
        );
        assert_eq!(out, [E(Fx::Advert)]);
        let out = c.handle(now, ok(Commit));
        assert_eq!(
            out,
            [
                E(Fx::Fx(1)),
                Run(FlushExternal),
                Run(Bulk),
                E(Fx::Fx(2)),
                Run(Shorten),
                Run(RequestResync)
            ]
        );
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn a_second_promotion_waits_for_its_own_commit() {
        let t0 = Instant::now();
        let mut c = coordinator();
        c.handle(t0, moved(State::Backup, State::Master, vec![Fx::Fx(1)]));
        c.handle(t0, moved(State::Master, State::Backup, vec![Fx::Fx(2)]));
        c.handle(t0, moved(State::Backup, State::Master, vec![Fx::Fx(3)]));
        // commit_wait runs out: the first promotion's effects go, the second commit is sent
        // and holds the third batch.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(c.next_deadline(), Some(t1));
        let out = c.handle(t1, Input::Timer);
        assert_eq!(
            out,
            [
                Warn(Warning::CommitWaitExpired {
                    waited: Duration::from_secs(2)
                }),
                E(Fx::Fx(1)),
                Run(FlushExternal),
                Run(Bulk),
                E(Fx::Fx(2)),
                Run(Shorten),
                Run(RequestResync),
                Run(Commit),
            ]
        );
        // The late answer of the first commit does not release the second's effects.
        assert_eq!(c.handle(t1, ok(Commit)), []);
        assert!(c.waiting_for_commit());
        assert_eq!(
            c.handle(t1, ok(Commit)),
            [E(Fx::Fx(3)), Run(FlushExternal), Run(Bulk)]
        );
    }

    #[test]
    fn a_failed_step_is_a_warning() {
        let now = Instant::now();
        let mut c = coordinator();
        let out = c.handle(
            now,
            Input::Answered {
                step: Bulk,
                result: Err("conntrack replication has stopped".into()),
            },
        );
        assert_eq!(
            out,
            [Warn(Warning::StepFailed {
                step: Bulk,
                reason: "conntrack replication has stopped".into()
            })]
        );
    }

    #[test]
    fn shutdown_lets_the_held_effects_go_first() {
        let t0 = Instant::now();
        let mut c = coordinator();
        c.handle(t0, Input::Start);
        c.handle(t0, moved(State::Backup, State::Master, vec![Fx::Fx(1)]));
        let t1 = t0 + Duration::from_millis(500);
        let out = c.handle(t1, Input::Shutdown);
        assert_eq!(
            out,
            [
                Warn(Warning::StoppedDuringCommit {
                    waited: Duration::from_millis(500)
                }),
                E(Fx::Fx(1)),
                Run(FlushExternal),
                Run(Bulk),
            ]
        );
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn the_peers_state_ends_the_preemption_hold_once() {
        let t0 = Instant::now();
        let mut c = coordinator();
        assert_eq!(
            c.handle(t0, Input::Start),
            [Command::HoldPreemption(Some(t0 + Duration::from_secs(10)))]
        );
        let state = || Input::PeerStateReceived { entries: 3 };
        assert_eq!(c.handle(t0, state()), [Command::HoldPreemption(None)]);
        assert_eq!(c.handle(t0, state()), []);
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn without_a_transition_effects_pass_in_order() {
        let now = Instant::now();
        let mut c = coordinator();
        let out = c.handle(
            now,
            Input::Actions {
                transition: None,
                actions: vec![Fx::Fx(1), Fx::Advert, Fx::Fx(2)],
            },
        );
        assert_eq!(out, [E(Fx::Fx(1)), E(Fx::Advert), E(Fx::Fx(2))]);
    }
}
