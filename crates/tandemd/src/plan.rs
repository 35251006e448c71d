//! Turns the parsed configuration and the host's interfaces into what the daemon runs: the VRRP
//! router, the sockets to open and, per instance, the addresses to move.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{bail, Context, Result};
use tandem_config::{
    Authentication, Broadcast, Config, InitialState, NotifyScripts, RouteKind, RuleAction,
    VirtualAddress, VirtualRoute, VirtualRule, ROUTE_PROTOCOL_KEEPALIVED,
};
use tandem_sys::{route_type, AddressSpec, InterfaceInfo, RouteSpec, RuleSpec};
use tandem_vrrp::{
    Auth, InstanceConfig, LowerPriorityAnswer, Router, ScriptCounter, TrackerKind, TrackerState,
    Tracking, Version, PRIORITY_OWNER,
};

use crate::tracking::{located, Policy, ScriptUser, TrackingPlan};

/// Which socket an instance sends and receives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketKey {
    /// Interface index.
    pub ifindex: u32,
    /// IPv4 (true) or IPv6.
    pub ipv4: bool,
}

/// A socket to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPlan {
    /// Interface name.
    pub ifname: String,
    /// Source address for every packet (primary IPv4 or IPv6 link-local, or `unicast_src_ip`).
    pub source: IpAddr,
    /// Multicast group to join, if any instance on it uses multicast.
    pub group: Option<IpAddr>,
}

/// An address to announce after taking it over.
#[derive(Debug, Clone)]
pub struct Announce {
    /// Interface the address lives on.
    pub ifname: String,
    /// Its index.
    pub ifindex: u32,
    /// Its MAC.
    pub mac: [u8; 6],
    /// IPv6 link-local source for neighbour advertisements.
    pub link_local: Option<std::net::Ipv6Addr>,
    /// The address.
    pub address: IpAddr,
    /// Where the address is configured (`file:line`), for warnings about it.
    pub location: String,
}

/// Everything the daemon needs for one instance besides the core.
#[derive(Debug, Clone)]
pub struct InstancePlan {
    /// Name (`VI_1`).
    pub name: String,
    /// Socket it hears on.
    pub socket: SocketKey,
    /// Socket its adverts leave from: `socket`, or the `use_vmac` macvlan's.
    pub send_socket: SocketKey,
    /// Addresses added on MASTER and removed otherwise (`virtual_ipaddress` and `_excluded`).
    pub addresses: Vec<AddressSpec>,
    /// `virtual_routes`, added and removed with the addresses.
    pub routes: Vec<RouteSpec>,
    /// `virtual_rules`, added and removed with the addresses.
    pub rules: Vec<RuleSpec>,
    /// Gratuitous ARPs / NAs per address on taking over (`garp_master_repeat`).
    pub garp_repeat: u32,
    /// Gratuitous ARPs / NAs per address at each refresh (`garp_master_refresh_repeat`).
    pub garp_refresh_repeat: u32,
    /// Gratuitous ARP / NA targets.
    pub announce: Vec<Announce>,
    /// Hooks.
    pub notify: NotifyScripts,
    /// Gratuitous ARPs per address after a lower-priority master was heard.
    pub garp_lower_prio_repeat: u32,
}

/// A sync group's hooks.
#[derive(Debug, Clone)]
pub struct GroupPlan {
    /// Name.
    pub name: String,
    /// Hooks.
    pub notify: NotifyScripts,
}

/// The runnable node.
pub struct Plan {
    /// The sans-IO core.
    pub router: Router,
    /// Per instance, by the router's instance id.
    pub instances: Vec<InstancePlan>,
    /// Per sync group, by the router's group id.
    pub groups: Vec<GroupPlan>,
    /// Sockets to open.
    pub sockets: BTreeMap<SocketKey, SocketPlan>,
    /// Gratuitous ARPs per burst (`vrrp_garp_master_repeat`).
    pub garp_repeat: u32,
    /// Gap between gratuitous ARPs on one interface (`vrrp_garp_interval`).
    pub garp_interval: std::time::Duration,
    /// Gap between unsolicited NAs on one interface (`vrrp_gna_interval`).
    pub gna_interval: std::time::Duration,
    /// Interface indexes by name, for link events.
    pub interfaces: BTreeMap<String, InterfaceInfo>,
    /// `router_id`, or the host name: shown in dumps.
    pub router_id: String,
    /// `vrrp_track_process` trackers, counted by [`crate::track_process`].
    pub processes: Vec<crate::track_process::ProcessTracker>,
    /// The scripts and files the instances follow.
    pub tracking: TrackingPlan,
    /// Who notify scripts run as (`None`: script security refuses them all).
    pub notify_user: Option<ScriptUser>,
    /// Notify FIFOs and mail alerts.
    pub alerts: crate::alerts::AlertsPlan,
}

impl Plan {
    /// Every virtual address any instance may put on an interface.
    pub fn all_addresses(&self) -> Vec<AddressSpec> {
        (self.instances.iter())
            .flat_map(|i| i.addresses.iter().cloned())
            .collect()
    }

    /// The name of the interface with index `ifindex`, among those the configuration names.
    pub fn interface_name(&self, ifindex: u32) -> Option<&str> {
        (self.interfaces.values())
            .find(|i| i.index == ifindex)
            .map(|i| i.name.as_str())
    }
}

/// Looks up every interface the configuration names.
pub async fn lookup_interfaces(
    handle: &rtnetlink::Handle,
    config: &Config,
) -> Result<BTreeMap<String, InterfaceInfo>> {
    let mut interfaces = BTreeMap::new();
    for name in interface_names(config) {
        let info = tandem_sys::interface(handle, &name)
            .await
            .with_context(|| format!("looking up interface {name}"))?;
        interfaces.insert(name, info);
    }
    Ok(interfaces)
}

/// Builds the plan; `interfaces` holds every interface the configuration names.
pub fn build(config: &Config, interfaces: &BTreeMap<String, InterfaceInfo>) -> Result<Plan> {
    let lookup = |name: &str| -> Result<&InterfaceInfo> {
        interfaces
            .get(name)
            .with_context(|| format!("interface {name} does not exist"))
    };
    let mut router = Router::new();
    let policy = Policy::from_global(&config.global);
    let tracking = TrackingPlan::from_config(config, &policy);
    // keepalived warns about the default user only when some script would run.
    let has_notify = |n: &NotifyScripts| {
        [&n.notify, &n.master, &n.backup, &n.fault, &n.stop]
            .iter()
            .any(|s| s.is_some())
    };
    let runs_scripts = !tracking.scripts.is_empty()
        || config.instances.iter().any(|i| has_notify(&i.notify))
        || config.sync_groups.iter().any(|g| has_notify(&g.notify))
        || crate::alerts::AlertsPlan::runs_scripts(config);
    if runs_scripts {
        for w in &policy.warnings {
            tracing::warn!("{w}");
        }
    }
    for spec in &tracking.scripts {
        let state = match spec.refused {
            Some(_) => TrackerState::Down,
            None => ScriptCounter::new(spec.rise, spec.fall, spec.init_fail).state(),
        };
        router.add_tracker(&spec.name, TrackerKind::Script, state);
    }
    for spec in &tracking.files {
        router.add_tracker(&spec.name, TrackerKind::File, TrackerState::Value(0));
    }
    let mut instances = Vec::new();
    let mut sockets: BTreeMap<SocketKey, SocketPlan> = BTreeMap::new();
    for vi in &config.instances {
        let context = || format!("{}: vrrp_instance {}", located(&vi.location), vi.name);
        let iface = lookup(&vi.interface).with_context(context)?;
        let ipv4 = vi
            .virtual_addresses
            .first()
            .is_none_or(|a| a.address.is_ipv4());
        let source: IpAddr = match vi.unicast_src_ip {
            Some(ip) => ip,
            None if ipv4 => match iface.ipv4.first() {
                Some((a, _)) => IpAddr::V4(*a),
                None => bail!(
                    "{}: {} has no IPv4 address to send from",
                    context(),
                    iface.name
                ),
            },
            None => match iface.ipv6_link_local {
                Some(a) => IpAddr::V6(a),
                None => bail!(
                    "{}: {} has no IPv6 link-local address",
                    context(),
                    iface.name
                ),
            },
        };
        let multicast = vi.unicast_peers.is_empty();
        let vmac = match &vi.use_vmac {
            Some(name) => Some(lookup(name).with_context(context)?),
            None => None,
        };
        let group: IpAddr = if ipv4 {
            config.global.mcast_group4.into()
        } else {
            config.global.mcast_group6.into()
        };
        let destinations = if multicast {
            vec![group]
        } else {
            vi.unicast_peers.clone()
        };
        // With use_vmac (multicast), adverts are heard on the macvlan, as keepalived hears
        // them: a peer whose macvlan carries the same virtual MAC sends frames that the kernel
        // hands to our macvlan (a frame from one of its own MACs), never to the base interface.
        let heard_on = match vmac {
            Some(v) if multicast => (v.index, v.name.clone()),
            _ => (iface.index, iface.name.clone()),
        };
        let key = SocketKey {
            ifindex: heard_on.0,
            ipv4,
        };
        let socket = sockets.entry(key).or_insert_with(|| SocketPlan {
            ifname: heard_on.1.clone(),
            source,
            group: None,
        });
        if socket.source != source {
            bail!(
                "{}: sends from {source} but another instance on {} sends from {}; \
                 one source address per interface and family is supported",
                context(),
                heard_on.1,
                socket.source
            );
        }
        if multicast {
            socket.group = Some(group);
        }
        // Adverts leave from the macvlan too (its MAC is the virtual one), unless
        // `vmac_xmit_base`. Unicast adverts keep the base interface, whose routes reach the
        // peers.
        let send_key = match vmac {
            Some(_) if vi.vmac_xmit_base && multicast => {
                let base = SocketKey {
                    ifindex: iface.index,
                    ipv4,
                };
                sockets.entry(base).or_insert_with(|| SocketPlan {
                    ifname: iface.name.clone(),
                    source,
                    group: None,
                });
                base
            }
            Some(v) if !vi.vmac_xmit_base && !multicast => {
                tracing::warn!(
                    "{}: unicast adverts leave from {}, not from the macvlan {}",
                    context(),
                    iface.name,
                    v.name
                );
                key
            }
            _ => key,
        };

        let mut addresses = Vec::new();
        let mut announce = Vec::new();
        for va in vi.virtual_addresses.iter().chain(&vi.excluded_addresses) {
            let home = vi.use_vmac.as_deref().unwrap_or(&vi.interface);
            let dev = va.dev.as_deref().unwrap_or(home);
            let on = lookup(dev).with_context(|| {
                format!("{}: virtual address {}", located(&va.location), va.address)
            })?;
            addresses.push(address_spec(va, on.index));
            announce.push(Announce {
                ifname: on.name.clone(),
                ifindex: on.index,
                mac: on.mac,
                link_local: on.ipv6_link_local,
                address: va.address,
                location: located(&va.location),
            });
        }

        let mut tracked = Vec::new();
        if !vi.dont_track_primary {
            tracked.push(iface.index);
        }
        // keepalived's rules: weight 0 means FAULT while the link is down; another weight moves
        // the priority, except for sync-group members without `sync_group_tracking_weight`,
        // whose interface weights count as 0, and address owners, whose weights are ignored.
        let group = (config.sync_groups.iter()).find(|g| g.members.contains(&vi.name));
        let unweighted = match group {
            Some(g) if !g.tracking_weight => {
                Some("its sync group (set sync_group_tracking_weight to keep weights)")
            }
            _ if vi.priority == PRIORITY_OWNER => Some("being the address owner (priority 255)"),
            _ => None,
        };
        let mut weighted = Vec::new();
        for t in &vi.track_interfaces {
            let ti = lookup(&t.name).with_context(context)?;
            match unweighted {
                None if t.weight != 0 => {
                    weighted.push((ti.index, t.weight, t.reverse));
                    continue;
                }
                Some(why) if t.weight != 0 && group.is_none_or(|g| g.tracking_weight) => {
                    tracing::warn!(
                        "{}: ignoring track_interface {} weight {} due to {why}",
                        context(),
                        t.name,
                        t.weight
                    );
                    continue;
                }
                Some(why) if t.weight != 0 => tracing::warn!(
                    "{}: track_interface {} weight {}: the link going down means FAULT \
                     instead, due to {why}",
                    context(),
                    t.name,
                    t.weight
                ),
                _ => {}
            }
            if !tracked.contains(&ti.index) {
                tracked.push(ti.index);
            }
        }
        let mut trackings = Vec::new();
        for t in &vi.track_scripts {
            let Some(script) = config.scripts.iter().find(|s| s.name == t.name) else {
                continue;
            };
            let (weight, reverse) = match t.weight {
                Some(w) => (w, t.reverse),
                None => (script.weight, script.reverse),
            };
            if let (Some(why), true) = (unweighted, weight != 0) {
                tracing::warn!(
                    "{}: ignoring tracked script {} with weight {weight} due to {why}",
                    context(),
                    t.name
                );
                continue;
            }
            if let Some(tracker) = router.tracker_by_name(TrackerKind::Script, &t.name) {
                trackings.push(Tracking {
                    tracker,
                    weight,
                    reverse,
                });
            }
        }
        for t in &vi.track_files {
            let Some(file) = config.track_files.iter().find(|f| f.name == t.name) else {
                continue;
            };
            let (mut weight, reverse) = match t.weight {
                Some(w) => (w, t.reverse),
                None => (file.weight, file.reverse),
            };
            if let Some(why) = unweighted {
                if weight == 1 {
                    tracing::warn!(
                        "{}: track_file {}: weight 1 taken as weight 0 (a non-zero value means \
                         FAULT) due to {why}; write `weight 0`",
                        context(),
                        t.name
                    );
                    weight = 0;
                } else if weight != 0 {
                    tracing::warn!(
                        "{}: ignoring tracked file {} with weight {weight} due to {why}",
                        context(),
                        t.name
                    );
                    continue;
                }
            }
            if let Some(tracker) = router.tracker_by_name(TrackerKind::File, &t.name) {
                trackings.push(Tracking {
                    tracker,
                    weight,
                    reverse,
                });
            }
        }

        let routes = (vi.virtual_routes.iter())
            .map(|r| route_spec(r, &lookup))
            .collect::<Result<Vec<_>>>()?;
        let rules: Vec<RuleSpec> = vi.virtual_rules.iter().map(rule_spec).collect();
        let garp_refresh = vi
            .garp_master_refresh
            .unwrap_or(config.global.garp_master_refresh);
        let lower_prio_repeat = (vi.garp_lower_prio_repeat)
            .or(config.global.garp_lower_prio_repeat)
            .unwrap_or(config.global.garp_master_repeat);
        let core = InstanceConfig {
            name: vi.name.clone(),
            vrid: vi.virtual_router_id,
            version: if vi.version == 3 {
                Version::V3
            } else {
                Version::V2
            },
            priority: vi.priority,
            advert_interval: vi.advert_int,
            preempt: !vi.nopreempt,
            preempt_delay: vi.preempt_delay,
            start_as_master: vi.initial_state == Some(InitialState::Master),
            addresses: vi.virtual_addresses.iter().map(|a| a.address).collect(),
            auth: match &vi.authentication {
                Some(Authentication::Pass(p)) if vi.version == 2 => Auth::password(p),
                _ => Auth::None,
            },
            source,
            destinations,
            check_source: config.global.check_unicast_src && !multicast,
            garp_repeat_after: Some(
                vi.garp_master_delay
                    .unwrap_or(config.global.garp_master_delay),
            )
            .filter(|d| !d.is_zero()),
            garp_refresh: Some(garp_refresh).filter(|d| !d.is_zero()),
            lower_priority: LowerPriorityAnswer {
                advert: !vi
                    .lower_prio_no_advert
                    .unwrap_or(config.global.lower_prio_no_advert),
                announce: lower_prio_repeat > 0,
                announce_again_after: Some(
                    (vi.garp_lower_prio_delay)
                        .or(config.global.garp_lower_prio_delay)
                        .unwrap_or(config.global.garp_master_delay),
                )
                .filter(|d| !d.is_zero()),
            },
            higher_prio_send_advert: (vi.higher_prio_send_advert)
                .unwrap_or(config.global.higher_prio_send_advert),
        };
        let id = router.add_instance(core, key.ifindex, &tracked);
        for (link, weight, reverse) in weighted {
            router.track_link(id, link, weight, reverse);
        }
        for t in trackings {
            router.track(id, t);
        }
        instances.push(InstancePlan {
            name: vi.name.clone(),
            socket: key,
            send_socket: send_key,
            addresses,
            routes,
            rules,
            garp_repeat: (vi.garp_master_repeat)
                .unwrap_or(config.global.garp_master_repeat)
                .max(1),
            garp_refresh_repeat: (vi.garp_master_refresh_repeat)
                .unwrap_or(config.global.garp_master_refresh_repeat)
                .max(1),
            announce,
            notify: secure_notify(&vi.notify, &policy, &context()),
            garp_lower_prio_repeat: lower_prio_repeat,
        });
    }
    let mut groups = Vec::new();
    for sg in &config.sync_groups {
        let members: Vec<usize> = sg
            .members
            .iter()
            .filter_map(|m| instances.iter().position(|i| &i.name == m))
            .collect();
        let gid = router.add_group(&sg.name, &members);
        let context = format!("{}: vrrp_sync_group {}", located(&sg.location), sg.name);
        // keepalived: a group with an address owner among its members cannot move priorities.
        let has_owner = (sg.members.iter()).any(|m| {
            (config.instances.iter()).any(|i| &i.name == m && i.priority == PRIORITY_OWNER)
        });
        let owner_rule = |kind: &str, name: &str, weight: i32| -> i32 {
            if has_owner && weight != 0 {
                tracing::warn!(
                    "{context}: {kind} {name} weight {weight} taken as weight 0 (FAULT instead): \
                     a member has priority 255"
                );
                0
            } else {
                weight
            }
        };
        // A reference's own weight wins over its tracker's (keepalived's rule).
        let mut track = |kind: TrackerKind,
                         word: &str,
                         name: &str,
                         own: Option<i32>,
                         reverse: bool,
                         default: (i32, bool)| {
            let (weight, reverse) = own.map_or(default, |w| (w, reverse));
            let weight = owner_rule(word, name, weight);
            if let Some(tracker) = router.tracker_by_name(kind, name) {
                router.track_group(
                    gid,
                    Tracking {
                        tracker,
                        weight,
                        reverse,
                    },
                );
            }
        };
        for t in &sg.track_scripts {
            if let Some(script) = config.scripts.iter().find(|s| s.name == t.name) {
                let default = (script.weight, script.reverse);
                track(
                    TrackerKind::Script,
                    "track_script",
                    &t.name,
                    t.weight,
                    t.reverse,
                    default,
                );
            }
        }
        for t in &sg.track_files {
            if let Some(file) = config.track_files.iter().find(|f| f.name == t.name) {
                let default = (file.weight, file.reverse);
                track(
                    TrackerKind::File,
                    "track_file",
                    &t.name,
                    t.weight,
                    t.reverse,
                    default,
                );
            }
        }
        groups.push(GroupPlan {
            name: sg.name.clone(),
            notify: secure_notify(&sg.notify, &policy, &context),
        });
    }
    let processes = crate::track_process::add_to_router(config, &mut router);
    let router_id = config.global.router_id.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    Ok(Plan {
        router,
        instances,
        groups,
        sockets,
        garp_repeat: config.global.garp_master_repeat.max(1),
        garp_interval: config.global.garp_interval,
        gna_interval: config.global.gna_interval,
        interfaces: interfaces.clone(),
        processes,
        alerts: crate::alerts::AlertsPlan::from_config(config, &policy, &router_id),
        router_id,
        tracking,
        notify_user: policy.default_user.clone().ok(),
    })
}

/// The notify hooks that may run under the script policy: a hook that fails keepalived's
/// checks (unsafe as root under `enable_script_security`, not found) is dropped with an error.
fn secure_notify(scripts: &NotifyScripts, policy: &Policy, context: &str) -> NotifyScripts {
    let check = |hook: &str, command: &Option<String>| -> Option<String> {
        let command = command.as_ref()?;
        let verdict = match &policy.default_user {
            Ok(user) => policy.check(command, user),
            Err(e) => Err(e.clone()),
        };
        match verdict {
            Ok(None) => Some(command.clone()),
            Ok(Some(warning)) => {
                tracing::warn!("{context}: {hook}: {warning}");
                Some(command.clone())
            }
            Err(e) => {
                tracing::error!("{context}: {hook} `{command}` will not run: {e}");
                None
            }
        }
    };
    NotifyScripts {
        notify: check("notify", &scripts.notify),
        master: check("notify_master", &scripts.master),
        backup: check("notify_backup", &scripts.backup),
        fault: check("notify_fault", &scripts.fault),
        stop: check("notify_stop", &scripts.stop),
    }
}

fn address_spec(va: &VirtualAddress, ifindex: u32) -> AddressSpec {
    let broadcast = match (va.broadcast, va.address) {
        (Some(Broadcast::Address(b)), _) => Some(b),
        (Some(Broadcast::Derived), IpAddr::V4(a)) if va.prefix_len < 31 => {
            let mask = u32::MAX.checked_shr(u32::from(va.prefix_len)).unwrap_or(0);
            Some((u32::from(a) | mask).into())
        }
        _ => None,
    };
    AddressSpec {
        address: va.address,
        prefix_len: va.prefix_len,
        ifindex,
        label: va.label.clone(),
        broadcast,
        scope: va.scope.map(|s| s.to_kernel()),
    }
}

/// The kernel's form of a `virtual_routes` line.
fn route_spec<'a>(
    r: &VirtualRoute,
    lookup: &impl Fn(&str) -> Result<&'a InterfaceInfo>,
) -> Result<RouteSpec> {
    let oif = match &r.dev {
        Some(dev) => Some(
            lookup(dev)
                .with_context(|| format!("{}: virtual route", located(&r.location)))?
                .index,
        ),
        None => None,
    };
    Ok(RouteSpec {
        destination: r.destination,
        prefix_len: r.prefix_len,
        kind: match r.kind {
            RouteKind::Unicast => route_type::UNICAST,
            RouteKind::Local => route_type::LOCAL,
            RouteKind::Broadcast => route_type::BROADCAST,
            RouteKind::Anycast => route_type::ANYCAST,
            RouteKind::Multicast => route_type::MULTICAST,
            RouteKind::Blackhole => route_type::BLACKHOLE,
            RouteKind::Unreachable => route_type::UNREACHABLE,
            RouteKind::Prohibit => route_type::PROHIBIT,
            RouteKind::Throw => route_type::THROW,
        },
        source: r.source,
        via: r.via,
        oif,
        scope: r.scope.map(|s| s.to_kernel()),
        table: r.table,
        metric: r.metric,
        protocol: protocol(r.track),
    })
}

/// keepalived's protocol number for what it tracks, `boot` (3) for `no_track`.
fn protocol(track: bool) -> u8 {
    if track {
        ROUTE_PROTOCOL_KEEPALIVED
    } else {
        3
    }
}

/// The kernel's form of a `virtual_rules` line.
fn rule_spec(r: &VirtualRule) -> RuleSpec {
    // FR_ACT_* numbers.
    let (action, table, goto) = match r.action {
        RuleAction::Table(t) => (1, t, None),
        RuleAction::Goto(target) => (2, 0, Some(target)),
        RuleAction::Nop => (3, 0, None),
        RuleAction::Blackhole => (6, 0, None),
        RuleAction::Unreachable => (7, 0, None),
        RuleAction::Prohibit => (8, 0, None),
        RuleAction::Unspecified => (0, 0, None),
    };
    RuleSpec {
        ipv6: r.ipv6,
        from: r.from,
        to: r.to,
        invert: r.invert,
        action,
        table,
        goto,
        iif: r.iif.clone(),
        oif: r.oif.clone(),
        fwmark: r.fwmark.map(|(m, _)| m),
        fwmask: r.fwmark.and_then(|(_, k)| k),
        priority: r.priority,
        protocol: protocol(r.track),
    }
}

/// Interface names the configuration refers to.
pub fn interface_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for vi in &config.instances {
        names.push(vi.interface.clone());
        names.extend(
            vi.virtual_addresses
                .iter()
                .chain(&vi.excluded_addresses)
                .filter_map(|a| a.dev.clone()),
        );
        names.extend(vi.track_interfaces.iter().map(|t| t.name.clone()));
        names.extend(vi.virtual_routes.iter().filter_map(|r| r.dev.clone()));
        names.extend(vi.use_vmac.clone());
    }
    names.sort();
    names.dedup();
    names
}
