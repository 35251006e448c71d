//! One reading of the node's state, taken once and rendered by every place that shows it:
//! `tandemctl status` as text and JSON ([`crate::status`]), the metrics ([`crate::metrics`])
//! and keepalived's dumps ([`crate::dump`]). Only [`Snapshot::take`] walks the VRRP core;
//! the renderers choose and format fields, so the four cannot drift apart.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tandem_vrrp::{Auth, Effect, InstanceId, State, Stats, TrackerKind, TrackerState, Version};

use crate::conntrack::PeerHealth;
use crate::metrics::{LastTransition, Recorder};
use crate::plan::Plan;
use crate::tracking::{ScriptStats, Trackers};

/// The node at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken: ages and timers count from here.
    pub taken: Instant,
    /// `router_id` (or the host name).
    pub router_id: String,
    /// The global gratuitous ARP repeat.
    pub garp_repeat: u32,
    /// Every instance, in configuration order.
    pub instances: Vec<InstanceSnapshot>,
    /// Every sync group, in configuration order.
    pub groups: Vec<GroupSnapshot>,
    /// Counters of packets no instance claimed.
    pub unclaimed: Stats,
    /// The sync peer as the replication service last published it (with replication).
    pub sync: Option<PeerHealth>,
    /// The built-in failover sequence (when it runs).
    pub failover: Option<FailoverSnapshot>,
}

/// One VRRP instance.
#[derive(Debug, Clone)]
pub struct InstanceSnapshot {
    /// The `vrrp_instance` name.
    pub name: String,
    /// Virtual router id.
    pub vrid: u8,
    /// VRRP version, 2 or 3.
    pub version: u8,
    /// The state now.
    pub state: State,
    /// Effective priority (trackers applied).
    pub priority: u8,
    /// Configured priority.
    pub base_priority: u8,
    /// The master heard, if any.
    pub master: Option<IpAddr>,
    /// When a backup's master-down timer runs out.
    pub master_down_at: Option<Instant>,
    /// The interface it speaks on.
    pub interface: Option<String>,
    /// Source address of its adverts.
    pub source: IpAddr,
    /// Where its adverts go: the multicast group or the unicast peers.
    pub destinations: Vec<IpAddr>,
    /// Configured advert interval.
    pub advert_interval: Duration,
    /// The master's advert interval as heard (VRRPv3), else the configured one.
    pub master_advert_interval: Duration,
    /// Whether a higher priority takes over.
    pub preempt: bool,
    /// `preempt_delay`.
    pub preempt_delay: Duration,
    /// Whether adverts carry a password (VRRPv2 `auth_type PASS`).
    pub authentication: bool,
    /// Its sync group's name.
    pub group: Option<String>,
    /// The virtual addresses, held while master.
    pub vips: Vec<Vip>,
    /// Counters.
    pub stats: Stats,
    /// Its tracker references (its own and its sync group's).
    pub trackers: Vec<TrackerSnapshot>,
    /// Its latest transition, if it made one.
    pub last_transition: Option<LastTransition>,
}

/// A virtual address of an instance.
#[derive(Debug, Clone)]
pub struct Vip {
    /// `10.0.0.254/24` as configured.
    pub address: String,
    /// The interface it goes on (`?` when gone).
    pub dev: String,
    /// `global`, `link` or `host`.
    pub scope: &'static str,
}

/// One tracker reference of an instance.
#[derive(Debug, Clone)]
pub struct TrackerSnapshot {
    /// Script, file, process, interface...
    pub kind: TrackerKind,
    /// The tracker's name.
    pub name: String,
    /// The tracker's state.
    pub state: TrackerState,
    /// The reference's weight (0: FAULT instead of a priority change).
    pub weight: i32,
    /// keepalived's `reverse`.
    pub reverse: bool,
    /// The sync group the reference comes from (`None`: the instance's own).
    pub group: Option<String>,
    /// What it does to the instance now.
    pub effect: Effect,
    /// A script's run counters.
    pub script_stats: Option<ScriptStats>,
    /// Who a script runs as.
    pub run_as: Option<RunAs>,
}

/// The user a tracking script runs as, or why it may not run.
#[derive(Debug, Clone)]
pub struct RunAs {
    /// User name.
    pub user: String,
    /// Why the script is refused (its security checks failed).
    pub refused: Option<String>,
}

/// One sync group.
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    /// The `vrrp_sync_group` name.
    pub name: String,
    /// The group's state.
    pub state: State,
    /// Its instances, in configuration order.
    pub members: Vec<String>,
}

/// The built-in failover sequence.
#[derive(Debug, Clone)]
pub struct FailoverSnapshot {
    /// A promotion's effects wait for the commit.
    pub waiting_for_commit: bool,
    /// Preemption waits for the peer's state.
    pub holding_preemption: bool,
    /// Steps sent to the replication service and not answered yet.
    pub steps_pending: usize,
    /// Warnings of the sequence so far.
    pub warnings: u64,
    /// The latest of them.
    pub last_warning: Option<String>,
}

impl Snapshot {
    /// Reads the VRRP core of `plan`, each instance's last transition from `recorder` and the
    /// scripts' counters from `trackers`; the replication side (`sync`, `failover`) is the
    /// daemon's to fill in.
    pub fn take(plan: &Plan, recorder: &Recorder, trackers: &Trackers, now: Instant) -> Snapshot {
        let router = &plan.router;
        let instances = (router.instances())
            .map(|(id, instance)| {
                let ip = &plan.instances[id];
                let config = instance.config();
                let state = instance.state();
                InstanceSnapshot {
                    name: ip.name.clone(),
                    vrid: config.vrid,
                    version: match config.version {
                        Version::V2 => 2,
                        Version::V3 => 3,
                    },
                    state,
                    priority: instance.priority(),
                    base_priority: config.priority,
                    master: instance.master(),
                    master_down_at: (instance.next_deadline()).filter(|_| state == State::Backup),
                    interface: (plan.sockets.get(&ip.socket)).map(|sp| sp.ifname.clone()),
                    source: config.source,
                    destinations: config.destinations.clone(),
                    advert_interval: config.advert_interval,
                    master_advert_interval: instance.master_adver_interval(),
                    preempt: config.preempt,
                    preempt_delay: config.preempt_delay,
                    authentication: !matches!(config.auth, Auth::None),
                    group: (router.group_of(id)).map(|g| router.group_name(g).to_string()),
                    vips: vips(plan, id),
                    stats: instance.stats().clone(),
                    trackers: tracker_references(plan, trackers, id),
                    last_transition: recorder.last_transition(&ip.name).cloned(),
                }
            })
            .collect();
        let groups = (0..plan.groups.len())
            .map(|g| GroupSnapshot {
                name: router.group_name(g).to_string(),
                state: router.group_state(g),
                members: (router.instances())
                    .filter(|(id, _)| router.group_of(*id) == Some(g))
                    .map(|(id, _)| plan.instances[id].name.clone())
                    .collect(),
            })
            .collect();
        Snapshot {
            taken: now,
            router_id: plan.router_id.clone(),
            garp_repeat: plan.garp_repeat,
            instances,
            groups,
            unclaimed: router.unclaimed_stats().clone(),
            sync: None,
            failover: None,
        }
    }

    /// What needs attention: `fault=NAME` per instance in FAULT, `sync=silent`.
    pub fn failing(&self) -> Vec<String> {
        let mut failing: Vec<String> = (self.instances.iter())
            .filter(|i| i.state == State::Fault)
            .map(|i| format!("fault={}", i.name))
            .collect();
        if (self.sync.as_ref()).is_some_and(|h| h.is_silent(self.taken)) {
            failing.push("sync=silent".into());
        }
        failing
    }

    /// Seconds from `at` to when the snapshot was taken.
    pub fn seconds_since(&self, at: Instant) -> f64 {
        self.taken.saturating_duration_since(at).as_secs_f64()
    }
}

/// Instance `id`'s virtual addresses with their interface and scope.
fn vips(plan: &Plan, id: InstanceId) -> Vec<Vip> {
    (plan.instances[id].addresses.iter())
        .map(|spec| Vip {
            address: spec.to_string(),
            dev: plan.interface_name(spec.ifindex).unwrap_or("?").to_string(),
            scope: match spec.scope {
                Some(253) => "link",
                Some(254) => "host",
                _ => "global",
            },
        })
        .collect()
}

/// Instance `id`'s tracker references, with a script's counters and user.
fn tracker_references(plan: &Plan, trackers: &Trackers, id: InstanceId) -> Vec<TrackerSnapshot> {
    let router = &plan.router;
    let all: Vec<_> = router.trackers().collect();
    (router.tracking_of(id).into_iter())
        .filter_map(|t| {
            let &(_, name, kind, state) = all.get(t.tracking.tracker)?;
            let script = kind == TrackerKind::Script;
            Some(TrackerSnapshot {
                kind,
                name: name.to_string(),
                state,
                weight: t.tracking.weight,
                reverse: t.tracking.reverse,
                group: t.group.map(|g| router.group_name(g).to_string()),
                effect: t.effect,
                script_stats: trackers.script_stats(name).filter(|_| script),
                run_as: (trackers.script_spec(name).filter(|_| script)).map(|spec| RunAs {
                    user: spec.user.name.clone(),
                    refused: spec.refused.clone(),
                }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use tandem_sys::InterfaceInfo;
    use tandem_vrrp::{Input, State};

    use super::{FailoverSnapshot, Snapshot};
    use crate::metrics::Recorder;

    const CONFIG: &str = "\
vrrp_script chk {\n script \"/bin/true\"\n interval 1\n weight -20\n}\n\
vrrp_sync_group G1 {\n group {\n  VI_2\n }\n}\n\
vrrp_instance VI_1 {\n state BACKUP\n interface eth1\n virtual_router_id 51\n priority 150\n \
advert_int 1\n track_script {\n  chk\n }\n virtual_ipaddress {\n  10.0.1.254/24\n }\n}\n\
vrrp_instance VI_2 {\n state BACKUP\n interface eth1\n virtual_router_id 52\n priority 100\n \
version 3\n unicast_peer {\n  10.0.1.2\n }\n virtual_ipaddress {\n  10.0.1.253/24 dev eth1 scope link\n }\n}\n";

    /// VI_1 master after its master-down timer, VI_2 (in G1) still a backup, one unclaimed
    /// drop, a transition two seconds old and a failover warning: read once.
    fn snapshot() -> (Snapshot, Recorder) {
        let config = tandem_config::parse_str(CONFIG, Path::new("test.conf")).unwrap();
        let eth1 = InterfaceInfo {
            name: "eth1".into(),
            index: 7,
            mac: [2, 0, 0, 0, 0, 7],
            up: true,
            ipv4: vec![("10.0.1.1".parse().unwrap(), 24)],
            ipv6_link_local: None,
            ipv6: Vec::new(),
        };
        let mut plan =
            crate::plan::build(&config, &BTreeMap::from([("eth1".to_string(), eth1)])).unwrap();
        let start = Instant::now();
        plan.router.handle(start, Input::Start);
        let junk = [0u8; 8];
        let packet = Input::Packet {
            interface: 7,
            src: "10.0.1.9".parse().unwrap(),
            dst: "224.0.0.18".parse().unwrap(),
            ttl: 255,
            bytes: &junk,
        };
        plan.router.handle(start, packet);
        let mut now = start;
        while plan.router.instance(0).state() != State::Master {
            now = plan.router.next_deadline().unwrap().max(now);
            assert!(
                now < start + Duration::from_secs(10),
                "VI_1 never took over"
            );
            plan.router.handle(now, Input::Timer);
        }
        let mut recorder = Recorder::default();
        recorder.transition("VI_1", "BACKUP", "MASTER", "no master heard");
        let mut snapshot = Snapshot::take(&plan, &recorder, &Default::default(), now);
        if let Some(last) = snapshot.instances[0].last_transition.as_mut() {
            last.at = now - Duration::from_secs(2);
        }
        snapshot.failover = Some(FailoverSnapshot {
            waiting_for_commit: false,
            holding_preemption: true,
            steps_pending: 1,
            warnings: 3,
            last_warning: Some("commit refused".into()),
        });
        (snapshot, recorder)
    }

    #[test]
    fn the_four_renderings_of_one_snapshot_tell_the_same_story() {
        let (snapshot, recorder) = snapshot();

        let text = crate::status::text(&snapshot);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "instance=VI_1 state=MASTER priority=150 vrid=51 master=- adverts_rx=0 \
                 adverts_tx=1 priority_zero_rx=0 priority_zero_tx=0 became_master=1 drops=0",
                "tracker instance=VI_1 kind=script name=chk state=pending weight=-20 reverse=no \
                 from=instance effect=0",
                "instance=VI_2 state=BACKUP priority=100 vrid=52 master=- adverts_rx=0 \
                 adverts_tx=0 priority_zero_rx=0 priority_zero_tx=0 became_master=0 drops=0",
                "unclaimed drops=1 unknown_vrid=1 drop_unknown_vrid=1",
                "failover waiting_for_commit=no holding_preemption=yes steps_pending=1 \
                 warnings=3 last_warning=commit refused",
                "health=ok",
            ],
            "{text}"
        );

        let json: serde_json::Value =
            serde_json::from_str(&crate::status::json(&snapshot)).unwrap();
        let vi1 = &json["instances"][0];
        assert_eq!(vi1["state"], "MASTER");
        assert_eq!(vi1["priority"], 150);
        assert_eq!(vi1["addresses"], serde_json::json!(["10.0.1.254/24"]));
        assert_eq!(vi1["in_state_seconds"], 2.0);
        assert_eq!(vi1["last_transition"]["cause"], "no master heard");
        assert_eq!(vi1["trackers"][0]["weight"], -20);
        assert_eq!(
            json["instances"][1]["unicast_peers"],
            serde_json::json!(["10.0.1.2"])
        );
        assert_eq!(json["instances"][1]["group"], "G1");
        assert_eq!(
            json["groups"],
            serde_json::json!([{"name": "G1", "state": "BACKUP", "members": ["VI_2"]}])
        );
        assert_eq!(json["failover"]["warnings"], 3);
        assert_eq!(json["health"]["ok"], true);

        let metrics = crate::metrics::render(&snapshot, &recorder);
        for line in [
            "tandem_vrrp_state{instance=\"VI_1\"} 2",
            "tandem_vrrp_state{instance=\"VI_2\"} 1",
            "tandem_vrrp_priority{instance=\"VI_1\"} 150",
            "tandem_vrrp_adverts_sent_total{instance=\"VI_1\"} 1",
            "tandem_vrrp_drops_total{instance=\"-\",reason=\"unknown_vrid\"} 1",
            "tandem_failover_warnings_total 3",
        ] {
            assert!(
                metrics.lines().any(|l| l == line),
                "no `{line}` in\n{metrics}"
            );
        }

        let data = crate::dump::data(&snapshot);
        for line in [
            " VRRP Instance = VI_1",
            "   State = MASTER",
            "     10.0.1.254/24 dev eth1 scope global set",
            "     chk weight -20 (state pending)",
            "   Unicast peer = 10.0.1.2",
            "     10.0.1.253/24 dev eth1 scope link",
            " VRRP Sync Group = G1, BACKUP",
        ] {
            assert!(data.lines().any(|l| l == line), "no `{line}` in\n{data}");
        }
        assert_eq!(data.matches("Master down timer").count(), 1, "{data}");
        let dump: serde_json::Value = serde_json::from_str(&crate::dump::json(&snapshot)).unwrap();
        assert_eq!(dump[0]["data"]["state"], 2);
        assert_eq!(dump[0]["data"]["vipset"], true);
        assert_eq!(
            dump[1]["data"]["vips"],
            serde_json::json!(["10.0.1.253/24 dev eth1 scope link"])
        );
        assert_eq!(dump[0]["stats"]["become_master"], 1);
        let stats = crate::dump::stats(&snapshot);
        assert!(stats.starts_with("VRRP Instance: VI_1\n  Advertisements:\n    Received: 0\n    Sent: 1\n  Became master: 1\n"), "{stats}");
    }
}
