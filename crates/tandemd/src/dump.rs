//! keepalived's SIGUSR1 / SIGUSR2 dumps (`/tmp/keepalived.data`, `/tmp/keepalived.stats`), in
//! the layout keepalived 2.2 writes, so scripts and habits that read them keep working.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use tandem_vrrp::{Auth, DropReason, State, Version};

use crate::plan::Plan;

/// The data dump: global settings, every instance and every sync group.
pub fn data(plan: &Plan, now: Instant) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "------< Global definitions >------");
    let _ = writeln!(out, " Router ID = {}", plan.router_id);
    let _ = writeln!(out, " Gratuitous ARP repeat = {}", plan.garp_repeat);
    let _ = writeln!(out, "------< VRRP Topology >------");
    for (id, instance) in plan.router.instances() {
        let ip = &plan.instances[id];
        let config = instance.config();
        let _ = writeln!(out, " VRRP Instance = {}", config.name);
        let version = match config.version {
            Version::V2 => 2,
            Version::V3 => 3,
        };
        let _ = writeln!(out, "   VRRP Version = {version}");
        if let Some(group) = plan.router.group_of(id) {
            let _ = writeln!(out, "   Sync group = {}", plan.router.group_name(group));
        }
        let _ = writeln!(out, "   State = {}", instance.state());
        if let Some(master) = instance.master() {
            let _ = writeln!(out, "   Master router = {master}");
        }
        if let Some(deadline) = instance
            .next_deadline()
            .filter(|_| instance.state() == State::Backup)
        {
            let left = deadline.saturating_duration_since(now).as_micros();
            let _ = writeln!(out, "   Master down timer = {left} usecs");
        }
        let ifname = plan
            .sockets
            .get(&ip.socket)
            .map_or("?", |s| s.ifname.as_str());
        let _ = writeln!(out, "   Interface = {ifname}");
        let _ = writeln!(out, "   Using src_ip = {}", config.source);
        for to in &config.destinations {
            if to.is_multicast() {
                let _ = writeln!(out, "   Multicast address {to}");
            } else {
                let _ = writeln!(out, "   Unicast peer = {to}");
            }
        }
        let _ = writeln!(out, "   Virtual Router ID = {}", config.vrid);
        let _ = writeln!(out, "   Priority = {}", config.priority);
        let _ = writeln!(out, "   Effective priority = {}", instance.priority());
        let interval = config.advert_interval;
        if interval.subsec_millis() == 0 {
            let _ = writeln!(out, "   Advert interval = {} sec", interval.as_secs());
        } else {
            let _ = writeln!(
                out,
                "   Advert interval = {} milli-sec",
                interval.as_millis()
            );
        }
        let enabled = |on: bool| if on { "enabled" } else { "disabled" };
        let _ = writeln!(out, "   Preempt = {}", enabled(config.preempt));
        if !config.preempt_delay.is_zero() {
            let _ = writeln!(
                out,
                "   Preempt delay = {} secs",
                config.preempt_delay.as_secs()
            );
        }
        let auth = match config.auth {
            Auth::None => "none",
            _ => "SIMPLE_PASSWORD",
        };
        let _ = writeln!(out, "   Authentication type = {auth}");
        let _ = writeln!(out, "   Virtual IP ({}):", ip.addresses.len());
        for line in vip_lines(plan, id) {
            let _ = writeln!(out, "     {line}");
        }
        tracked_lines(plan, id, &mut out);
    }
    let _ = writeln!(out, "------< VRRP Sync groups >------");
    for (g, group) in plan.groups.iter().enumerate() {
        let members: Vec<&str> = (plan.router.instances())
            .filter(|(id, _)| plan.router.group_of(*id) == Some(g))
            .map(|(_, i)| i.config().name.as_str())
            .collect();
        let state = plan.router.group_state(g);
        let _ = writeln!(out, " VRRP Sync Group = {}, {state}", group.name);
        let _ = writeln!(out, "   VRRP member instances :");
        for m in members {
            let _ = writeln!(out, "     {m}");
        }
    }
    out
}

/// `10.0.0.254/24 dev eth0 scope global set` for each address of instance `id` (`set` while
/// it holds them).
fn vip_lines(plan: &Plan, id: usize) -> Vec<String> {
    let held = plan.router.instance(id).state() == State::Master;
    (plan.instances[id].addresses.iter())
        .map(|spec| {
            let dev = (plan.interfaces.values())
                .find(|i| i.index == spec.ifindex)
                .map_or("?", |i| i.name.as_str());
            let scope = match spec.scope {
                Some(253) => "link",
                Some(254) => "host",
                _ => "global",
            };
            let set = if held { " set" } else { "" };
            format!("{spec} dev {dev} scope {scope}{set}")
        })
        .collect()
}

/// keepalived's numbers for states in its JSON dump.
fn state_number(state: State) -> u8 {
    match state {
        State::Init => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
        State::Stop => 98,
    }
}

/// The JSON dump: one object per instance with keepalived's `data` and `stats` field names.
pub fn json(plan: &Plan) -> String {
    let instances: Vec<serde_json::Value> = (plan.router.instances())
        .map(|(id, instance)| {
            let config = instance.config();
            let s = instance.stats();
            let d = |r: DropReason| s.drops(r);
            let ifname =
                (plan.sockets.get(&plan.instances[id].socket)).map_or("", |sp| sp.ifname.as_str());
            let interval = |t: std::time::Duration| {
                if t.subsec_millis() == 0 {
                    serde_json::json!(t.as_secs())
                } else {
                    serde_json::json!(t.as_secs_f64())
                }
            };
            serde_json::json!({
                "data": {
                    "iname": config.name,
                    "ifp_ifname": ifname,
                    "vrid": config.vrid,
                    "base_priority": config.priority,
                    "effective_priority": instance.priority(),
                    "vipset": instance.state() == State::Master,
                    "adver_int": interval(config.advert_interval),
                    "master_adver_int": interval(instance.master_adver_interval()),
                    "nopreempt": !config.preempt,
                    "preempt_delay": config.preempt_delay.as_secs(),
                    "state": state_number(instance.state()),
                    "version": match config.version { Version::V2 => 2, Version::V3 => 3 },
                    "vips": vip_lines(plan, id),
                    "auth_type": match config.auth { Auth::None => 0, _ => 1 },
                },
                "stats": {
                    "advert_rcvd": s.adverts_received,
                    "advert_sent": s.adverts_sent,
                    "become_master": s.became_master,
                    "release_master": s.released_master,
                    "packet_len_err": d(DropReason::TooShort) + d(DropReason::AddressCount),
                    "advert_interval_err": d(DropReason::Interval),
                    "ip_ttl_err": d(DropReason::Ttl),
                    "invalid_type_rcvd": d(DropReason::Type) + d(DropReason::Version),
                    "addr_list_err": s.address_list_mismatch,
                    "invalid_authtype": 0,
                    "authtype_mismatch": 0,
                    "auth_failure": d(DropReason::Auth),
                    "pri_zero_rcvd": s.priority_zero_received,
                    "pri_zero_sent": s.priority_zero_sent,
                },
            })
        })
        .collect();
    serde_json::Value::Array(instances).to_string()
}

/// The statistics dump: keepalived's per-instance counters.
pub fn stats(plan: &Plan) -> String {
    let mut out = String::new();
    for (_, instance) in plan.router.instances() {
        let s = instance.stats();
        let d = |r: DropReason| s.drops(r);
        let _ = writeln!(out, "VRRP Instance: {}", instance.config().name);
        let _ = writeln!(out, "  Advertisements:");
        let _ = writeln!(out, "    Received: {}", s.adverts_received);
        let _ = writeln!(out, "    Sent: {}", s.adverts_sent);
        let _ = writeln!(out, "  Became master: {}", s.became_master);
        let _ = writeln!(out, "  Released master: {}", s.released_master);
        let _ = writeln!(out, "  Packet Errors:");
        let length = d(DropReason::TooShort) + d(DropReason::AddressCount);
        let _ = writeln!(out, "    Length: {length}");
        let _ = writeln!(out, "    TTL: {}", d(DropReason::Ttl));
        let kind = d(DropReason::Type) + d(DropReason::Version);
        let _ = writeln!(out, "    Invalid Type: {kind}");
        let _ = writeln!(
            out,
            "    Advertisement Interval: {}",
            d(DropReason::Interval)
        );
        let _ = writeln!(out, "    Address List: {}", s.address_list_mismatch);
        let _ = writeln!(out, "  Authentication Errors:");
        let _ = writeln!(out, "    Invalid Type: 0");
        let _ = writeln!(out, "    Type Mismatch: 0");
        let _ = writeln!(out, "    Failure: {}", d(DropReason::Auth));
        let _ = writeln!(out, "  Priority Zero:");
        let _ = writeln!(out, "    Received: {}", s.priority_zero_received);
        let _ = writeln!(out, "    Sent: {}", s.priority_zero_sent);
    }
    out
}

/// Writes `text` to `path` without following a symlink planted there (the dumps live in a
/// world-writable directory): a new private file beside it, renamed over the old one.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    let temporary = std::path::PathBuf::from(name);
    let _ = std::fs::remove_file(&temporary);
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// keepalived's "Tracked scripts" / "Tracked files" / "Tracked processes" lists of one instance, with each
/// reference's weight and the tracker's state.
fn tracked_lines(plan: &Plan, id: usize, out: &mut String) {
    let trackers: Vec<_> = plan.router.trackers().collect();
    for (kind, title) in [
        (tandem_vrrp::TrackerKind::Script, "Tracked scripts"),
        (tandem_vrrp::TrackerKind::File, "Tracked files"),
        (tandem_vrrp::TrackerKind::Process, "Tracked processes"),
    ] {
        let rows: Vec<String> = (plan.router.tracking_of(id).into_iter())
            .filter_map(|t| {
                let &(_, name, k, state) = trackers.get(t.tracking.tracker)?;
                let reverse = if t.tracking.reverse { " reverse" } else { "" };
                (k == kind).then(|| {
                    format!(
                        "{name} weight {}{reverse} (state {state})",
                        t.tracking.weight
                    )
                })
            })
            .collect();
        if !rows.is_empty() {
            let _ = writeln!(out, "   {title} :");
            for row in rows {
                let _ = writeln!(out, "     {row}");
            }
        }
    }
}
