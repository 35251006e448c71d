//! Prometheus metrics: what the daemon counts over time (transitions by cause, how long each
//! failover step took) and the text exposition built from it and from the counters the VRRP
//! core and the replication service already keep. Served by [`server`] and by the control
//! verb `metrics`.

pub mod server;
mod sync;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tandem_vrrp::State;

use crate::snapshot::Snapshot;

/// Labels of a per-instance series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabel {
    /// The instance's name.
    pub instance: String,
}

/// Labels of a transition counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// The instance's name.
    pub instance: String,
    /// The state entered.
    pub to: String,
    /// Why, in words.
    pub cause: String,
}

/// Labels of a drop counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// The instance (`-` for packets no instance claimed).
    pub instance: String,
    /// Why it was dropped.
    pub reason: String,
}

/// Labels of a replication drop counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why it was dropped.
    pub reason: String,
}

/// Labels of a failover step.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    /// The step (`commit`, `bulk`, ...).
    pub step: String,
}

type StepHistograms = Family<StepLabel, Histogram, fn() -> Histogram>;

/// What only the daemon sees happen, kept for the life of the process: for the metrics,
/// and for the status (each instance's last transition).
#[derive(Debug)]
pub struct Recorder {
    transitions: HashMap<TransitionLabels, u64>,
    last: HashMap<String, LastTransition>,
    steps: StepHistograms,
    restored: HashMap<String, u64>,
}

/// An instance's latest transition.
#[derive(Debug, Clone)]
pub struct LastTransition {
    /// When.
    pub at: Instant,
    /// The state left.
    pub from: String,
    /// The state entered.
    pub to: String,
    /// Why, in words.
    pub cause: String,
}

impl Default for Recorder {
    fn default() -> Recorder {
        fn step_histogram() -> Histogram {
            // 1 ms .. 32 s: a warm promotion commits in milliseconds, a cold million-entry
            // table in seconds.
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        }
        Recorder {
            transitions: HashMap::new(),
            last: HashMap::new(),
            steps: Family::new_with_constructor(step_histogram),
            restored: HashMap::new(),
        }
    }
}

impl Recorder {
    /// One transition of `instance` from `from` into `to`, for `cause`.
    pub fn transition(&mut self, instance: &str, from: &str, to: &str, cause: &str) {
        self.last.insert(
            instance.into(),
            LastTransition {
                at: Instant::now(),
                from: from.into(),
                to: to.into(),
                cause: cause.into(),
            },
        );
        *self
            .transitions
            .entry(TransitionLabels {
                instance: instance.into(),
                to: to.into(),
                cause: cause.into(),
            })
            .or_default() += 1;
    }

    /// `instance`, master, put back addresses another program had removed.
    pub fn restored(&mut self, instance: &str) {
        *self.restored.entry(instance.into()).or_default() += 1;
    }

    /// `instance`'s latest transition, if it made one.
    pub fn last_transition(&self, instance: &str) -> Option<&LastTransition> {
        self.last.get(instance)
    }

    /// How long a failover step took from the request to its answer.
    pub fn step(&self, step: &str, took: Duration) {
        self.steps
            .get_or_create(&StepLabel { step: step.into() })
            .observe(took.as_secs_f64());
    }
}

/// The text exposition (OpenMetrics) of `snapshot` and what `recorder` kept.
pub fn render(snapshot: &Snapshot, recorder: &Recorder) -> String {
    let mut registry = Registry::with_prefix("tandem");
    let gauge = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<InstanceLabel, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    };
    let counter = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<InstanceLabel, Counter>::default();
        registry.register(name, help, family.clone());
        family
    };
    let state = gauge(
        &mut registry,
        "vrrp_state",
        "VRRP state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT",
    );
    let priority = gauge(&mut registry, "vrrp_priority", "Effective priority");
    let base = gauge(&mut registry, "vrrp_base_priority", "Configured priority");
    let adverts_rx = counter(&mut registry, "vrrp_adverts_received", "Adverts accepted");
    let adverts_tx = counter(&mut registry, "vrrp_adverts_sent", "Adverts sent");
    let zero_rx = counter(
        &mut registry,
        "vrrp_priority_zero_received",
        "Priority-0 adverts received (the master stepped down)",
    );
    let zero_tx = counter(
        &mut registry,
        "vrrp_priority_zero_sent",
        "Priority-0 adverts sent",
    );
    let drops = Family::<DropLabels, Counter>::default();
    registry.register(
        "vrrp_drops",
        "Adverts dropped, by instance (- for none) and reason",
        drops.clone(),
    );
    for i in &snapshot.instances {
        let label = InstanceLabel {
            instance: i.name.clone(),
        };
        let s = &i.stats;
        state.get_or_create(&label).set(state_number(i.state));
        priority.get_or_create(&label).set(i64::from(i.priority));
        base.get_or_create(&label).set(i64::from(i.base_priority));
        adverts_rx.get_or_create(&label).inc_by(s.adverts_received);
        adverts_tx.get_or_create(&label).inc_by(s.adverts_sent);
        zero_rx
            .get_or_create(&label)
            .inc_by(s.priority_zero_received);
        zero_tx.get_or_create(&label).inc_by(s.priority_zero_sent);
        for (reason, n) in s.drop_counts() {
            drops
                .get_or_create(&DropLabels {
                    instance: i.name.clone(),
                    reason: reason.into(),
                })
                .inc_by(n);
        }
    }
    for (reason, n) in snapshot.unclaimed.drop_counts() {
        drops
            .get_or_create(&DropLabels {
                instance: "-".into(),
                reason: reason.into(),
            })
            .inc_by(n);
    }
    let transitions = Family::<TransitionLabels, Counter>::default();
    registry.register(
        "vrrp_transitions",
        "State transitions, by instance, state entered and cause",
        transitions.clone(),
    );
    for (labels, &n) in &recorder.transitions {
        transitions.get_or_create(labels).inc_by(n);
    }
    let restored = counter(
        &mut registry,
        "vrrp_addresses_restored",
        "Times a master put back virtual addresses another program had removed",
    );
    for (instance, &n) in &recorder.restored {
        let label = InstanceLabel {
            instance: instance.clone(),
        };
        restored.get_or_create(&label).inc_by(n);
    }
    if let Some(sync) = (snapshot.sync.as_ref()).map(|h| sync::sample(h, snapshot.taken)) {
        for &(name, help, n) in &sync.counters {
            let c = Counter::<u64>::default();
            c.inc_by(n);
            registry.register(name, help, c);
        }
        for &(name, help, v) in &sync.gauges {
            let g = Gauge::<f64, AtomicU64>::default();
            g.set(v);
            registry.register(name, help, g);
        }
        let drops = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "sync_drops",
            "Sync datagrams dropped, by reason",
            drops.clone(),
        );
        for &(reason, n) in &sync.drops {
            drops
                .get_or_create(&ReasonLabel {
                    reason: reason.into(),
                })
                .inc_by(n);
        }
    }
    if let Some(n) = snapshot.failover.as_ref().map(|f| f.warnings) {
        let c = Counter::<u64>::default();
        c.inc_by(n);
        registry.register("failover_warnings", "Failover steps refused or failed", c);
    }
    registry.register(
        "failover_step_seconds",
        "Time from a failover step's request to its answer",
        recorder.steps.clone(),
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// keepalived's numbering of states, which its exporters publish.
fn state_number(state: State) -> i64 {
    match state {
        State::Init | State::Stop => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
    }
}
