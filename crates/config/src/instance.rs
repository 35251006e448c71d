//! `vrrp_instance NAME { ... }`: the keywords, the address lines, and the checks that
//! need the whole block (or `global_defs`) to be known.

use std::net::IpAddr;
use std::time::Duration;

use crate::keywords::{INSTANCE_NOT_YET, INSTANCE_UNSUPPORTED, VIP_OPTIONS_UNSUPPORTED};
use crate::model::{
    Authentication, Broadcast, GlobalDefs, InitialState, NotifyScripts, Scope, TrackFileRef,
    TrackInterface, TrackScript, VirtualAddress, VrrpInstance, VrrpScript,
};
use crate::parser::{block_name, notify_keyword};
use crate::tree::{Block, Stmt, Word};
use crate::values::{parse_seconds, Ctx};

/// An instance as written, with the words later checks point at.
pub(crate) struct ParsedInstance {
    pub instance: VrrpInstance,
    pub name: Word,
    pub vrid_word: Option<Word>,
    interface_set: bool,
    advert_int: Option<Word>,
    version: Option<u8>,
    auth_word: Option<Word>,
    vip_words: Vec<Word>,
    src_word: Option<Word>,
    peer_words: Vec<Word>,
    track_script_words: Vec<Word>,
    /// `track_process` lines, checked against the trackers once all are read.
    pub track_process_lines: Vec<crate::track_process::TrackProcessLine>,
}

/// Parses one `vrrp_instance` block. Returns `None` only when the block is unusable.
pub(crate) fn parse(stmt: &Stmt, ctx: &mut Ctx) -> Option<ParsedInstance> {
    let name = block_name(stmt, ctx)?;
    let block = stmt.block.as_ref()?;
    let mut p = ParsedInstance {
        instance: VrrpInstance {
            name: name.text.clone(),
            initial_state: None,
            interface: String::new(),
            virtual_router_id: 0,
            priority: 100,
            advert_int: Duration::from_secs(1),
            version: 2,
            authentication: None,
            virtual_addresses: Vec::new(),
            excluded_addresses: Vec::new(),
            virtual_routes: Vec::new(),
            virtual_rules: Vec::new(),
            use_vmac: None,
            vmac_xmit_base: false,
            unicast_src_ip: None,
            unicast_peers: Vec::new(),
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            track_processes: Vec::new(),
            track_files: Vec::new(),
            notify: NotifyScripts::default(),
            garp_master_delay: None,
            garp_master_repeat: None,
            garp_master_refresh: None,
            garp_master_refresh_repeat: None,
            garp_lower_prio_delay: None,
            garp_lower_prio_repeat: None,
            lower_prio_no_advert: None,
            higher_prio_send_advert: None,
            dont_track_primary: false,
            smtp_alert: None,
            location: stmt.key.loc.clone(),
        },
        name,
        vrid_word: None,
        interface_set: false,
        advert_int: None,
        version: None,
        auth_word: None,
        vip_words: Vec::new(),
        src_word: None,
        peer_words: Vec::new(),
        track_script_words: Vec::new(),
        track_process_lines: Vec::new(),
    };
    for s in &block.stmts {
        keyword(s, &mut p, ctx);
    }
    Some(p)
}

fn keyword(s: &Stmt, p: &mut ParsedInstance, ctx: &mut Ctx) {
    let i = &mut p.instance;
    let k = s.key.text.as_str();
    if notify_keyword(s, &mut i.notify, ctx) {
        return;
    }
    match k {
        "state" => {
            if let Some(w) = ctx.one(s, "MASTER or BACKUP") {
                match w.text.to_ascii_uppercase().as_str() {
                    "MASTER" => i.initial_state = Some(InitialState::Master),
                    "BACKUP" => i.initial_state = Some(InitialState::Backup),
                    _ => ctx.error(
                        w,
                        format!("`state` expects MASTER or BACKUP, found `{}`", w.text),
                    ),
                }
            }
        }
        "interface" => {
            if let Some(w) = ctx.one(s, "an interface name") {
                // Linux names are at most 15 bytes (IFNAMSIZ); keepalived ignores a longer one.
                if w.text.len() > 15 {
                    ctx.error(
                        w,
                        format!(
                            "`interface` expects a name of at most 15 bytes, found `{}` ({} bytes)",
                            w.text,
                            w.text.len()
                        ),
                    );
                } else {
                    i.interface = w.text.clone();
                    p.interface_set = true;
                }
            }
        }
        "virtual_router_id" => {
            if let Some(v) = ctx.int(s, 1u8, 255) {
                i.virtual_router_id = v;
                p.vrid_word = s.args.first().cloned();
            }
        }
        "priority" => {
            if let Some(v) = ctx.int(s, 1u8, 255) {
                i.priority = v;
            }
        }
        "advert_int" => {
            // Checked once the VRRP version is known.
            if let Some(w) = ctx.one(s, "seconds (e.g. 1, or 0.5 with version 3)") {
                p.advert_int = Some(w.clone());
            }
        }
        "version" => {
            if let Some(v) = ctx.int(s, 2u8, 3) {
                p.version = Some(v);
            }
        }
        "authentication" => {
            if let Some(b) = ctx.block(s) {
                i.authentication = authentication(b, ctx);
                p.auth_word = Some(s.key.clone());
            }
        }
        "virtual_ipaddress" => {
            if let Some(b) = ctx.block(s) {
                addresses(k, b, &mut i.virtual_addresses, &mut p.vip_words, ctx);
            }
        }
        "virtual_ipaddress_excluded" => {
            if let Some(b) = ctx.block(s) {
                let mut words = Vec::new();
                addresses(k, b, &mut i.excluded_addresses, &mut words, ctx);
            }
        }
        "virtual_routes" => {
            if let Some(b) = ctx.block(s) {
                i.virtual_routes.extend(crate::routes::routes(b, ctx));
            }
        }
        "virtual_rules" => {
            if let Some(b) = ctx.block(s) {
                i.virtual_rules.extend(crate::routes::rules(b, ctx));
            }
        }
        "use_vmac" => {
            if ctx.no_block(s) {
                i.use_vmac = Some(use_vmac(s, ctx));
            }
        }
        "vmac_xmit_base" => {
            if let Some(v) = ctx.flag(s) {
                i.vmac_xmit_base = v;
            }
        }
        // keepalived treats these two as one setting: the source of our adverts.
        "unicast_src_ip" | "mcast_src_ip" => {
            if let Some(w) = ctx.one(s, "an IP address") {
                if let Some(a) = ctx.ip_dropping_prefix(k, w) {
                    i.unicast_src_ip = Some(a);
                    p.src_word = Some(w.clone());
                }
            }
        }
        "unicast_peer" => {
            if let Some(b) = ctx.block(s) {
                unicast_peers(b, p, ctx);
            }
        }
        "nopreempt" => {
            if let Some(v) = ctx.switch(s) {
                i.nopreempt = v;
            }
        }
        "preempt" => {
            if let Some(v) = ctx.switch(s) {
                i.nopreempt = !v;
            }
        }
        "preempt_delay" => {
            if let Some(d) = ctx.seconds(s, 1000) {
                i.preempt_delay = d;
            }
        }
        "track_interface" => {
            if let Some(b) = ctx.block(s) {
                for line in &b.stmts {
                    if let Some(t) = track_interface(line, ctx) {
                        i.track_interfaces.push(t);
                    }
                }
            }
        }
        "track_script" => {
            if let Some(b) = ctx.block(s) {
                for line in &b.stmts {
                    if let Some(t) = track_script(line, ctx) {
                        i.track_scripts.push(t);
                        p.track_script_words.push(line.key.clone());
                    }
                }
            }
        }
        "track_process" => {
            if let Some(b) = ctx.block(s) {
                let lines = crate::track_process::track_process_block(b, ctx);
                p.track_process_lines.extend(lines);
            }
        }
        "track_file" => {
            if let Some(b) = ctx.block(s) {
                for line in &b.stmts {
                    if let Some(t) = track_file_ref(line, ctx) {
                        i.track_files.push(t);
                    }
                }
            }
        }
        "garp_master_delay" => {
            if let Some(v) = ctx.int(s, 0u64, 255) {
                i.garp_master_delay = Some(Duration::from_secs(v));
            }
        }
        "garp_master_repeat" => {
            if let Some(v) = ctx.int(s, 0u32, 255) {
                i.garp_master_repeat = Some(v);
            }
        }
        "garp_master_refresh" => {
            if let Some(v) = ctx.int(s, 0u64, u64::from(u32::MAX)) {
                i.garp_master_refresh = Some(Duration::from_secs(v));
            }
        }
        "garp_master_refresh_repeat" => {
            if let Some(v) = ctx.int(s, 0u32, 255) {
                i.garp_master_refresh_repeat = Some(crate::parser::refresh_repeat(s, v, ctx));
            }
        }
        "garp_lower_prio_delay" => {
            if let Some(v) = ctx.int(s, 0u64, 255) {
                i.garp_lower_prio_delay = Some(Duration::from_secs(v));
            }
        }
        "garp_lower_prio_repeat" => {
            if let Some(v) = ctx.int(s, 0u32, 255) {
                i.garp_lower_prio_repeat = Some(v);
            }
        }
        "lower_prio_no_advert" => {
            if let Some(v) = ctx.flag(s) {
                i.lower_prio_no_advert = Some(v);
            }
        }
        "higher_prio_send_advert" => {
            if let Some(v) = ctx.flag(s) {
                i.higher_prio_send_advert = Some(v);
            }
        }
        "dont_track_primary" => {
            if let Some(v) = ctx.switch(s) {
                i.dont_track_primary = v;
            }
        }
        "smtp_alert" => {
            if let Some(v) = ctx.flag(s) {
                i.smtp_alert = Some(v);
            }
        }
        // tandem never filters traffic to the virtual addresses, which is accept mode.
        "accept" => {
            ctx.switch(s);
        }
        // RFC 5798 7.1: tandem's owner always discards adverts for its VRID.
        "owner_ignore_adverts" => {
            if ctx.flag(s) == Some(false) {
                ctx.warn(
                    &s.key,
                    "`owner_ignore_adverts off` is not supported: an address owner (priority \
                     255) always discards adverts for its VRID (RFC 5798 7.1)",
                );
            }
        }
        _ if INSTANCE_NOT_YET.contains(&k) => ctx.not_yet(s),
        _ if INSTANCE_UNSUPPORTED.contains(&k) => ctx.unsupported(s),
        _ => ctx.unknown(s, "vrrp_instance"),
    }
}

/// `use_vmac [[name] NAME] [MAC] [netlink_notify_msg] [group GROUP]`: the macvlan's name
/// (empty for keepalived's default `vrrp.VRID`, filled in once the VRID is known).
fn use_vmac(s: &Stmt, ctx: &mut Ctx) -> String {
    let mut name: Option<String> = None;
    let mut set_name = |n: &Word, ctx: &mut Ctx| {
        if n.text.is_empty() || n.text.len() > 15 {
            ctx.error(
                n,
                format!(
                    "`use_vmac`: interface name `{}` must be 1 to 15 bytes",
                    n.text
                ),
            );
        } else if name.is_some() {
            ctx.error(
                n,
                format!(
                    "`use_vmac` takes one interface name, found a second one `{}`",
                    n.text
                ),
            );
        } else {
            name = Some(n.text.clone());
        }
    };
    let mut args = s.args.iter();
    while let Some(w) = args.next() {
        let t = w.text.as_str();
        match t {
            "name" => match args.next() {
                Some(n) => set_name(n, ctx),
                None => ctx.error(w, "`name` in `use_vmac` expects an interface name, found end of line"),
            },
            "netlink_notify_msg" => ctx.warn(w, "`netlink_notify_msg` on `use_vmac` is not supported by tandem (ignored)"),
            "group" => {
                if args.next().is_none() {
                    ctx.error(w, "`group` in `use_vmac` expects a group, found end of line");
                }
                ctx.warn(w, "`group` on `use_vmac` is not supported by tandem: the macvlan stays in the default link group");
            }
            _ if t.contains(':') => ctx.warn(
                w,
                format!("a MAC address on `use_vmac` is not supported by tandem: the macvlan gets the VRRP MAC 00:00:5e:00:01:VRID (00:00:5e:00:02:VRID for IPv6), not `{t}`"),
            ),
            _ => set_name(w, ctx),
        }
    }
    name.unwrap_or_default()
}

fn authentication(b: &Block, ctx: &mut Ctx) -> Option<Authentication> {
    let mut kind: Option<(String, Word)> = None;
    let mut pass: Option<Word> = None;
    for s in &b.stmts {
        match s.key.text.as_str() {
            "auth_type" => {
                if let Some(w) = ctx.one(s, "PASS or AH") {
                    match w.text.to_ascii_uppercase().as_str() {
                        t @ ("PASS" | "AH") => kind = Some((t.to_owned(), w.clone())),
                        _ => ctx.error(
                            w,
                            format!("`auth_type` expects PASS or AH, found `{}`", w.text),
                        ),
                    }
                }
            }
            "auth_pass" => {
                if let Some(w) = ctx.one(s, "a password") {
                    pass = Some(w.clone());
                }
            }
            _ => ctx.unknown(s, "authentication"),
        }
    }
    match (kind, pass) {
        (Some((t, w)), _) if t == "AH" => {
            ctx.warn(&w, "`auth_type AH` is not supported by tandem: adverts are sent without authentication");
            Some(Authentication::Ah)
        }
        (Some(_), Some(pass)) => {
            let bytes = pass.text.clone().into_bytes();
            if bytes.len() > 8 {
                // keepalived truncates it and counts a configuration error (`keepalived -t`
                // fails): the password in force would not be the one written.
                let first8 = String::from_utf8_lossy(&bytes[..8]).into_owned();
                ctx.error(
                    &pass,
                    format!(
                        "`auth_pass` is {} bytes, VRRP carries 8: write the 8 the peers use \
                         (keepalived truncates it to `{first8}` and reports a configuration error)",
                        bytes.len()
                    ),
                );
                return None;
            }
            Some(Authentication::Pass(bytes))
        }
        (Some((_, w)), None) => {
            ctx.error(
                &w,
                "`auth_type PASS` needs an `auth_pass` line in the same block",
            );
            None
        }
        (None, Some(pass)) => {
            ctx.error(
                &pass,
                "`auth_pass` without `auth_type PASS` in the same block",
            );
            None
        }
        (None, None) => None,
    }
}

/// Parses `ADDR[/PREFIX]`.
fn address_prefix(key: &str, w: &Word, ctx: &mut Ctx) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match w.text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (w.text.as_str(), None),
    };
    let Ok(address) = addr.parse::<IpAddr>() else {
        ctx.error(
            w,
            format!(
                "`{key}` expects ADDRESS[/PREFIX] at the start of each line, found `{}` \
                 (`{addr}` is not an IPv4 or IPv6 address)",
                w.text
            ),
        );
        return None;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix_len = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                ctx.error(
                    w,
                    format!(
                        "`{key}`: prefix length of `{}` must be 0..={max}, found `{p}`",
                        w.text
                    ),
                );
                return None;
            }
        },
    };
    Some((address, prefix_len))
}

fn addresses(
    key: &str,
    b: &Block,
    out: &mut Vec<VirtualAddress>,
    words: &mut Vec<Word>,
    ctx: &mut Ctx,
) {
    for line in &b.stmts {
        if !ctx.no_block(line) {
            continue;
        }
        if let Some(v) = address_line(key, line, ctx) {
            out.push(v);
            words.push(line.key.clone());
        }
    }
}

fn address_line(key: &str, line: &Stmt, ctx: &mut Ctx) -> Option<VirtualAddress> {
    let (address, prefix_len) = address_prefix(key, &line.key, ctx)?;
    let mut v = VirtualAddress {
        address,
        prefix_len,
        dev: None,
        label: None,
        broadcast: None,
        scope: None,
        location: line.key.loc.clone(),
    };
    let mut ok = true;
    let mut args = line.args.iter();
    while let Some(opt) = args.next() {
        let o = opt.text.as_str();
        let takes_value = matches!(o, "dev" | "brd" | "label" | "scope")
            || VIP_OPTIONS_UNSUPPORTED.iter().any(|&(n, v)| n == o && v);
        let value = if takes_value {
            match args.next() {
                Some(value) => Some(value),
                None => {
                    ctx.error(
                        opt,
                        format!("`{o}` in `{key}` expects a value, found end of line"),
                    );
                    ok = false;
                    break;
                }
            }
        } else {
            None
        };
        match (o, value) {
            ("dev", Some(val)) => v.dev = Some(val.text.clone()),
            ("label", Some(val)) => v.label = Some(val.text.clone()),
            ("brd", Some(val)) => {
                if address.is_ipv6() {
                    ctx.error(
                        opt,
                        format!("`brd` applies to IPv4 addresses only, not `{address}`"),
                    );
                    ok = false;
                    continue;
                }
                v.broadcast = match val.text.as_str() {
                    "+" => Some(Broadcast::Derived),
                    "-" => Some(Broadcast::None),
                    t => match t.parse() {
                        Ok(a) => Some(Broadcast::Address(a)),
                        Err(_) => {
                            ctx.error(
                                val,
                                format!("`brd` expects an IPv4 address, `+` or `-`, found `{t}`"),
                            );
                            ok = false;
                            None
                        }
                    },
                };
            }
            ("scope", Some(val)) => {
                v.scope = match val.text.as_str() {
                    "global" => Some(Scope::Global),
                    "site" => Some(Scope::Site),
                    "link" => Some(Scope::Link),
                    "host" => Some(Scope::Host),
                    "nowhere" => Some(Scope::Nowhere),
                    t => match t.parse::<u8>() {
                        Ok(n) => Some(Scope::Other(n)),
                        Err(_) => {
                            ctx.error(val, format!("`scope` expects global, site, link, host, nowhere or 0..=255, found `{t}`"));
                            ok = false;
                            None
                        }
                    },
                };
            }
            _ if VIP_OPTIONS_UNSUPPORTED.iter().any(|&(n, _)| n == o) => {
                ctx.warn(
                    opt,
                    format!("`{o}` on a `{key}` line is not supported by tandem (ignored)"),
                );
            }
            _ => {
                let hint = if o
                    .split('/')
                    .next()
                    .is_some_and(|a| a.parse::<IpAddr>().is_ok())
                {
                    " (put each address on its own line)"
                } else {
                    ""
                };
                ctx.error(
                    opt,
                    format!(
                        "unknown option `{o}` in `{key}`: expected dev, brd, label or scope{hint}"
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(v)
}

fn unicast_peers(b: &Block, p: &mut ParsedInstance, ctx: &mut Ctx) {
    for line in &b.stmts {
        if !ctx.no_block(line) {
            continue;
        }
        let Some(addr) = ctx.ip_dropping_prefix("unicast_peer", &line.key) else {
            continue;
        };
        let mut args = line.args.iter();
        while let Some(opt) = args.next() {
            match opt.text.as_str() {
                o @ ("min_ttl" | "max_ttl") => {
                    let value = args.next();
                    if let Some(v) = value {
                        ctx.int_word(o, v, 0u8, 255);
                    } else {
                        ctx.error(opt, format!("`{o}` expects 0..=255, found end of line"));
                    }
                    ctx.warn(
                        opt,
                        format!(
                            "`{o}` on a `unicast_peer` line is not supported by tandem (ignored)"
                        ),
                    );
                }
                o => {
                    let hint = if o.parse::<IpAddr>().is_ok() {
                        " (put each peer on its own line)"
                    } else {
                        ""
                    };
                    ctx.error(opt, format!("unknown option `{o}` in `unicast_peer`: expected min_ttl or max_ttl{hint}"));
                }
            }
        }
        p.instance.unicast_peers.push(addr);
        p.peer_words.push(line.key.clone());
    }
}

fn track_interface(line: &Stmt, ctx: &mut Ctx) -> Option<TrackInterface> {
    if !ctx.no_block(line) {
        return None;
    }
    let weight = tracked_weight("track_interface", line, 253, ctx)?;
    let (weight, reverse) = weight.map_or((0, false), |(w, r)| (w, r == Some(true)));
    if weight == 0 && reverse {
        ctx.warn(
            &line.key,
            format!("`track_interface {}`: `reverse` with weight 0 is not supported by tandem (ignored): the instance goes to FAULT while the link is down", line.key.text),
        );
    }
    Some(TrackInterface {
        name: line.key.text.clone(),
        weight,
        reverse: reverse && weight != 0,
    })
}

/// A `track_script` line, in an instance or a sync group.
pub(crate) fn track_script(line: &Stmt, ctx: &mut Ctx) -> Option<TrackScript> {
    if !ctx.no_block(line) {
        return None;
    }
    let weight = tracked_weight("track_script", line, 253, ctx)?;
    Some(TrackScript {
        name: line.key.text.clone(),
        weight: weight.map(|(w, _)| w),
        reverse: weight.is_some_and(|(_, r)| r == Some(true)),
    })
}

/// A `track_file` line, in an instance or a sync group.
pub(crate) fn track_file_ref(line: &Stmt, ctx: &mut Ctx) -> Option<TrackFileRef> {
    if !ctx.no_block(line) {
        return None;
    }
    let weight = tracked_weight("track_file", line, 254, ctx)?;
    Some(TrackFileRef {
        name: line.key.text.clone(),
        weight: weight.map(|(w, _)| w),
        reverse: weight.is_some_and(|(_, r)| r == Some(true)),
        location: line.key.loc.clone(),
    })
}

/// `NAME [weight N [reverse|noreverse]]` (a `track_*` line): `Some(None)` when no weight is
/// given; the direction is `None` when not written.
pub(crate) fn tracked_weight(
    key: &str,
    line: &Stmt,
    limit: i32,
    ctx: &mut Ctx,
) -> Option<Option<(i32, Option<bool>)>> {
    match line.args.split_first() {
        None => Some(None),
        Some((w, rest)) if w.text == "weight" => {
            if rest.is_empty() {
                ctx.error(
                    w,
                    format!("`weight` in `{key}` expects -{limit}..={limit}, found end of line"),
                );
                return None;
            }
            ctx.weight_direction("weight", rest, limit).map(Some)
        }
        Some((w, _)) => {
            ctx.error(w, format!("`{key}` expects `NAME [weight N [reverse]]` on each line, found `{}` (put each name on its own line)", w.text));
            None
        }
    }
}

/// Checks that need the whole block and `global_defs`, and fills in defaults from them.
pub(crate) fn finish(
    mut p: ParsedInstance,
    global: &GlobalDefs,
    scripts: &[VrrpScript],
    ctx: &mut Ctx,
) -> Option<ParsedInstance> {
    let errors_before = ctx.errors.len();
    let name = p.instance.name.clone();
    if !p.interface_set {
        ctx.error(
            &p.name,
            format!("vrrp_instance `{name}` has no `interface` line"),
        );
    }
    if p.vrid_word.is_none() {
        ctx.error(
            &p.name,
            format!("vrrp_instance `{name}` has no `virtual_router_id` line"),
        );
    }
    if p.instance.virtual_addresses.is_empty() {
        ctx.warn(
            &p.name,
            format!("vrrp_instance `{name}` has no `virtual_ipaddress`: it elects a master and runs its notify scripts, but moves no address"),
        );
    }
    let mut version = p.version.unwrap_or(global.vrrp_version);
    // IPv6 exists only in VRRPv3: an instance with IPv6 addresses runs version 3, whatever it
    // or global_defs say, as keepalived switches it (saying so).
    let all_v6 = !p.instance.virtual_addresses.is_empty()
        && p.instance
            .virtual_addresses
            .iter()
            .all(|v| v.address.is_ipv6());
    if all_v6 && version == 2 {
        if let Some(w) = p.vip_words.first() {
            ctx.warn(
                w,
                format!("vrrp_instance `{name}` has IPv6 addresses: it runs VRRP version 3 (version 2 has no IPv6), as keepalived does"),
            );
        }
        version = 3;
    }
    p.instance.version = version;
    if p.instance.use_vmac.as_deref() == Some("") {
        p.instance.use_vmac = Some(format!("vrrp.{}", p.instance.virtual_router_id));
    }
    if p.instance.vmac_xmit_base && p.instance.use_vmac.is_none() {
        ctx.warn(
            &p.name,
            format!("vrrp_instance `{name}`: `vmac_xmit_base` without `use_vmac` does nothing"),
        );
    }

    if let Some(w) = &p.advert_int {
        if let Some(d) = advert_int(w, version, ctx) {
            p.instance.advert_int = d;
        }
    }

    // One family per instance, and IPv6 only with VRRPv3.
    let i = &p.instance;
    let family_v6 = i.virtual_addresses.first().map(|v| v.address.is_ipv6());
    for (v, w) in i.virtual_addresses.iter().zip(&p.vip_words) {
        if Some(v.address.is_ipv6()) != family_v6 {
            let first = i
                .virtual_addresses
                .first()
                .map(|f| f.address.to_string())
                .unwrap_or_default();
            ctx.error(
                w,
                format!("vrrp_instance `{name}` mixes IPv4 and IPv6 in `virtual_ipaddress` (`{}` vs `{first}`): use one instance per family, or move it to `virtual_ipaddress_excluded`", v.address),
            );
        }
    }
    if family_v6 == Some(true) && version == 2 {
        if let Some(w) = p.vip_words.first() {
            ctx.error(
                w,
                format!("IPv6 address `{}` needs VRRP version 3, but vrrp_instance `{name}` uses version 2 (add `version 3` to the instance or `vrrp_version 3` to global_defs)", w.text),
            );
        }
    }
    if let Some(v6) = family_v6 {
        let fam = if v6 { "IPv6" } else { "IPv4" };
        let src = p.src_word.iter().zip(i.unicast_src_ip.iter());
        let peers = p.peer_words.iter().zip(i.unicast_peers.iter());
        for (w, a) in src.chain(peers) {
            if a.is_ipv6() != v6 {
                ctx.error(
                    w,
                    format!(
                        "`{a}` is not {fam} like the virtual addresses of vrrp_instance `{name}`"
                    ),
                );
            }
        }
    }
    if version == 3 {
        if let (Some(w), Some(_)) = (&p.auth_word, &p.instance.authentication) {
            ctx.warn(w, "`authentication` does not exist in VRRPv3 (RFC 5798); ignored for this version 3 instance");
            p.instance.authentication = None;
        }
    }
    if let (Some(w), Some(Authentication::Ah), Some(InitialState::Master)) = (
        &p.auth_word,
        &p.instance.authentication,
        p.instance.initial_state,
    ) {
        ctx.error(
            w,
            format!("vrrp_instance `{name}`: `state MASTER` cannot be used with `auth_type AH` (keepalived clears the state and reports a configuration error); use `state BACKUP`"),
        );
    }
    check_track_scripts(
        &p.instance.track_scripts,
        &p.track_script_words,
        scripts,
        ctx,
    );
    (ctx.errors.len() == errors_before).then_some(p)
}

/// Errors for `track_script` lines (of an instance or a sync group; `words` names each one
/// where it was written) that name no defined vrrp_script.
pub(crate) fn check_track_scripts(
    tracks: &[TrackScript],
    words: &[Word],
    scripts: &[VrrpScript],
    ctx: &mut Ctx,
) {
    for (t, w) in tracks.iter().zip(words) {
        if !scripts.iter().any(|s| s.name == t.name) {
            ctx.error(
                w,
                format!(
                    "`track_script` names `{}`, but no vrrp_script by that name is defined",
                    t.name
                ),
            );
        }
    }
}

fn advert_int(w: &Word, version: u8, ctx: &mut Ctx) -> Option<Duration> {
    let d = parse_seconds(&w.text);
    if version == 2 {
        match d {
            Some(d) if d.subsec_micros() == 0 && (1..=255).contains(&d.as_secs()) => Some(d),
            Some(d) if d.subsec_micros() != 0 && !d.is_zero() => {
                ctx.error(w, format!("`advert_int` for VRRP version 2 expects whole seconds 1..=255, found `{}` (sub-second adverts need `version 3`)", w.text));
                None
            }
            _ => {
                ctx.error(
                    w,
                    format!(
                        "`advert_int` expects whole seconds 1..=255, found `{}`",
                        w.text
                    ),
                );
                None
            }
        }
    } else {
        match d {
            Some(d)
                if d >= Duration::from_millis(10)
                    && d <= Duration::from_millis(40_950)
                    && d.subsec_micros() % 10_000 == 0 =>
            {
                Some(d)
            }
            _ => {
                ctx.error(w, format!("`advert_int` for VRRP version 3 expects seconds 0.01..=40.95 in steps of 0.01, found `{}`", w.text));
                None
            }
        }
    }
}
