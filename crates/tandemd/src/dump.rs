//! keepalived's SIGUSR1 / SIGUSR2 dumps (`/tmp/keepalived.data`, `/tmp/keepalived.stats`), in
//! the layout keepalived 2.2 writes, so scripts and habits that read them keep working.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tandem_vrrp::{DropReason, State, TrackerKind};

use crate::snapshot::{InstanceSnapshot, Snapshot};

/// The data dump: global settings, every instance and every sync group.
pub fn data(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "------< Global definitions >------");
    let _ = writeln!(out, " Router ID = {}", snapshot.router_id);
    let _ = writeln!(out, " Gratuitous ARP repeat = {}", snapshot.garp_repeat);
    let _ = writeln!(out, "------< VRRP Topology >------");
    for i in &snapshot.instances {
        let _ = writeln!(out, " VRRP Instance = {}", i.name);
        let _ = writeln!(out, "   VRRP Version = {}", i.version);
        if let Some(group) = &i.group {
            let _ = writeln!(out, "   Sync group = {group}");
        }
        let _ = writeln!(out, "   State = {}", i.state);
        if let Some(master) = i.master {
            let _ = writeln!(out, "   Master router = {master}");
        }
        if let Some(deadline) = i.master_down_at {
            let left = deadline
                .saturating_duration_since(snapshot.taken)
                .as_micros();
            let _ = writeln!(out, "   Master down timer = {left} usecs");
        }
        let ifname = i.interface.as_deref().unwrap_or("?");
        let _ = writeln!(out, "   Interface = {ifname}");
        let _ = writeln!(out, "   Using src_ip = {}", i.source);
        for to in &i.destinations {
            if to.is_multicast() {
                let _ = writeln!(out, "   Multicast address {to}");
            } else {
                let _ = writeln!(out, "   Unicast peer = {to}");
            }
        }
        let _ = writeln!(out, "   Virtual Router ID = {}", i.vrid);
        let _ = writeln!(out, "   Priority = {}", i.base_priority);
        let _ = writeln!(out, "   Effective priority = {}", i.priority);
        let interval = i.advert_interval;
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
        let _ = writeln!(out, "   Preempt = {}", enabled(i.preempt));
        if !i.preempt_delay.is_zero() {
            let _ = writeln!(out, "   Preempt delay = {} secs", i.preempt_delay.as_secs());
        }
        let auth = if i.authentication {
            "SIMPLE_PASSWORD"
        } else {
            "none"
        };
        let _ = writeln!(out, "   Authentication type = {auth}");
        let _ = writeln!(out, "   Virtual IP ({}):", i.vips.len());
        for line in vip_lines(i) {
            let _ = writeln!(out, "     {line}");
        }
        tracked_lines(i, &mut out);
    }
    let _ = writeln!(out, "------< VRRP Sync groups >------");
    for group in &snapshot.groups {
        let _ = writeln!(out, " VRRP Sync Group = {}, {}", group.name, group.state);
        let _ = writeln!(out, "   VRRP member instances :");
        for m in &group.members {
            let _ = writeln!(out, "     {m}");
        }
    }
    out
}

/// `10.0.0.254/24 dev eth0 scope global set` for each address of the instance (`set` while
/// it holds them).
fn vip_lines(i: &InstanceSnapshot) -> Vec<String> {
    let held = i.state == State::Master;
    (i.vips.iter())
        .map(|v| {
            let set = if held { " set" } else { "" };
            format!("{} dev {} scope {}{set}", v.address, v.dev, v.scope)
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
pub fn json(snapshot: &Snapshot) -> String {
    let instances: Vec<serde_json::Value> = (snapshot.instances.iter())
        .map(|i| {
            let s = &i.stats;
            let d = |r: DropReason| s.drops(r);
            let interval = |t: std::time::Duration| {
                if t.subsec_millis() == 0 {
                    serde_json::json!(t.as_secs())
                } else {
                    serde_json::json!(t.as_secs_f64())
                }
            };
            serde_json::json!({
                "data": {
                    "iname": i.name,
                    "ifp_ifname": i.interface.as_deref().unwrap_or(""),
                    "vrid": i.vrid,
                    "base_priority": i.base_priority,
                    "effective_priority": i.priority,
                    "vipset": i.state == State::Master,
                    "adver_int": interval(i.advert_interval),
                    "master_adver_int": interval(i.master_advert_interval),
                    "nopreempt": !i.preempt,
                    "preempt_delay": i.preempt_delay.as_secs(),
                    "state": state_number(i.state),
                    "version": i.version,
                    "vips": vip_lines(i),
                    "auth_type": u8::from(i.authentication),
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
pub fn stats(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for i in &snapshot.instances {
        let s = &i.stats;
        let d = |r: DropReason| s.drops(r);
        let _ = writeln!(out, "VRRP Instance: {}", i.name);
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

/// keepalived's "Tracked scripts" / "Tracked files" / "Tracked processes" lists of one
/// instance, with each reference's weight and the tracker's state.
fn tracked_lines(i: &InstanceSnapshot, out: &mut String) {
    for (kind, title) in [
        (TrackerKind::Script, "Tracked scripts"),
        (TrackerKind::File, "Tracked files"),
        (TrackerKind::Process, "Tracked processes"),
    ] {
        let rows: Vec<String> = (i.trackers.iter())
            .filter(|t| t.kind == kind)
            .map(|t| {
                let reverse = if t.reverse { " reverse" } else { "" };
                format!(
                    "{} weight {}{reverse} (state {})",
                    t.name, t.weight, t.state
                )
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
