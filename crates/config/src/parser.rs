//! Turns the statement tree into the typed [`Config`]: top level, `global_defs`,
//! `vrrp_script` and `vrrp_sync_group`, then the checks that span several blocks.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::instance::{self, ParsedInstance};
use crate::keywords::{
    GLOBAL_UNSUPPORTED, SYNC_GROUP_UNSUPPORTED, TOP_LEVEL_NOT_YET, TOP_LEVEL_UNSUPPORTED,
};
use crate::model::{
    Config, FifoScript, GlobalDefs, NotifyFifo, NotifyScripts, SyncGroup, VrrpScript,
};
use crate::track_process::{self, TrackProcessLine};
use crate::tree::{Stmt, Word};
use crate::values::{parse_seconds, script_line, Ctx};

/// Parses the top level of a configuration.
pub(crate) fn parse(stmts: &[Stmt], ctx: &mut Ctx) -> Config {
    let mut config = Config::default();
    let mut instances = Vec::new();
    let mut groups = Vec::new();
    let mut scripts: Vec<(VrrpScript, Word)> = Vec::new();
    let mut trackers = Vec::new();
    let mut files: Vec<(crate::model::TrackFile, Word)> = Vec::new();
    let mut mail = MailWords::default();
    let mut virtual_servers = Vec::new();
    let mut vs_groups = Vec::new();
    for stmt in stmts {
        let k = stmt.key.text.as_str();
        match k {
            "global_defs" => {
                if let Some(block) = ctx.block(stmt) {
                    global_defs(&block.stmts, &mut config.global, &mut mail, ctx);
                }
            }
            "vrrp_script" => {
                if let Some(s) = vrrp_script(stmt, ctx) {
                    scripts.push(s);
                }
            }
            "vrrp_track_process" => {
                if let Some(t) = track_process::vrrp_track_process(stmt, ctx) {
                    trackers.push(t);
                }
            }
            "track_file" | "vrrp_track_file" => {
                if let Some(f) = crate::track_file::parse(stmt, ctx) {
                    files.push(f);
                }
            }
            "vrrp_instance" => {
                if let Some(i) = instance::parse(stmt, ctx) {
                    instances.push(i);
                }
            }
            "vrrp_sync_group" => {
                if let Some(g) = sync_group(stmt, ctx) {
                    groups.push(g);
                }
            }
            "virtual_server" => {
                if let Some(vs) = crate::lvs_parse::virtual_server(stmt, ctx) {
                    virtual_servers.push(vs);
                }
            }
            "virtual_server_group" => {
                if let Some(g) = crate::lvs_parse::virtual_server_group(stmt, ctx) {
                    vs_groups.push((g, stmt.key.clone()));
                }
            }
            _ if TOP_LEVEL_NOT_YET.contains(&k) => ctx.not_yet(stmt),
            _ if TOP_LEVEL_UNSUPPORTED.contains(&k) => ctx.unsupported(stmt),
            _ if !stmt.key.quoted && (k.starts_with('$') || k.starts_with('~')) => {
                ctx.error(
                    &stmt.key,
                    if k.starts_with('$') {
                        format!("unknown keyword `{k}`: no parameter of that name is defined above this line (`$NAME=value`)")
                    } else {
                        format!("unknown keyword `{k}`: keepalived's sequences are written `~SEQ(VAR, START, STEP, END)`")
                    },
                );
            }
            _ => ctx.unknown(stmt, "the top level"),
        }
    }

    config.scripts = unique_blocks(scripts, "vrrp_script", ctx);
    config.track_processes = unique_blocks(trackers, "vrrp_track_process", ctx);
    config.track_files = unique_blocks(files, "track_file", ctx);
    for p in &mut instances {
        let lines = std::mem::take(&mut p.track_process_lines);
        let owner = format!("vrrp_instance `{}`", p.instance.name);
        p.instance.track_processes =
            track_process::resolve(lines, &config.track_processes, &owner, ctx);
    }
    for g in &mut groups {
        let lines = std::mem::take(&mut g.track_process_lines);
        let owner = format!("vrrp_sync_group `{}`", g.group.name);
        g.group.track_processes =
            track_process::resolve(lines, &config.track_processes, &owner, ctx);
    }

    let instances: Vec<ParsedInstance> = instances
        .into_iter()
        .filter_map(|p| instance::finish(p, &config.global, &config.scripts, ctx))
        .collect();
    check_instances(&instances, ctx);
    crate::track_file::check_refs(
        instances.iter().flat_map(|p| p.instance.track_files.iter()),
        &config.track_files,
        ctx,
    );
    config.instances = instances.into_iter().map(|p| p.instance).collect();
    config.sync_groups = check_groups(groups, &config, ctx);
    crate::lvs_syncd::resolve(&mut config, ctx);
    let (servers, groups) = crate::lvs_parse::finish(virtual_servers, vs_groups, &config, ctx);
    config.virtual_servers = servers;
    config.virtual_server_groups = groups;
    check_mail(&config, &mail, ctx);
    config
}

/// `global_defs` keywords that are read (and checked) but that tandem does not act on yet,
/// with what will not happen.
const GLOBAL_READ_NOT_ACTED: &[(&str, &str)] = &[(
    "vrrp_strict",
    "keepalived's strict-mode checks and refusals are not applied",
)];

fn global_defs(stmts: &[Stmt], g: &mut GlobalDefs, mail: &mut MailWords, ctx: &mut Ctx) {
    for stmt in stmts {
        let k = stmt.key.text.as_str();
        if let Some((_, what)) = GLOBAL_READ_NOT_ACTED.iter().find(|(key, _)| *key == k) {
            ctx.warn(
                &stmt.key,
                format!("`{k}` is not acted on by tandem yet: {what}"),
            );
        }
        match k {
            "lvs_sync_daemon" => {
                g.lvs_sync_daemon = crate::lvs_syncd::parse(stmt, ctx);
            }
            "router_id" => {
                if let Some(w) = ctx.one(stmt, "a name") {
                    g.router_id = Some(w.text.clone());
                }
            }
            "vrrp_mcast_group4" => {
                if let Some(w) = ctx.one(stmt, "an IPv4 multicast address") {
                    match w.text.parse::<std::net::Ipv4Addr>() {
                        Ok(a) if a.is_multicast() => g.mcast_group4 = a,
                        _ => ctx.error(
                            w,
                            format!(
                                "`{k}` expects an IPv4 multicast address (224.0.0.0/4), found `{}`",
                                w.text
                            ),
                        ),
                    }
                }
            }
            "vrrp_mcast_group6" => {
                if let Some(w) = ctx.one(stmt, "an IPv6 multicast address") {
                    match w.text.parse::<std::net::Ipv6Addr>() {
                        Ok(a) if a.is_multicast() => g.mcast_group6 = a,
                        _ => ctx.error(
                            w,
                            format!(
                                "`{k}` expects an IPv6 multicast address (ff00::/8), found `{}`",
                                w.text
                            ),
                        ),
                    }
                }
            }
            "vrrp_check_unicast_src" => {
                if let Some(v) = ctx.switch(stmt) {
                    g.check_unicast_src = v;
                }
            }
            "enable_script_security" => {
                if let Some(v) = ctx.switch(stmt) {
                    g.enable_script_security = v;
                }
            }
            "vrrp_strict" => {
                if let Some(v) = ctx.switch(stmt) {
                    g.vrrp_strict = v;
                }
            }
            "script_user" => {
                if !ctx.no_block(stmt) {
                    continue;
                }
                match stmt.args.as_slice() {
                    [] => ctx.error(
                        &stmt.key,
                        "`script_user` expects USER [GROUP], found end of line",
                    ),
                    [user, rest @ ..] => {
                        g.script_user = Some(user.text.clone());
                        g.script_group = rest.first().map(|w| w.text.clone());
                        if let Some(extra) = rest.get(1) {
                            ctx.error(
                                extra,
                                format!(
                                    "`script_user` expects USER [GROUP], found extra `{}`",
                                    extra.text
                                ),
                            );
                        }
                    }
                }
            }
            "notification_email" => {
                mail.email = Some(stmt.key.clone());
                if let Some(block) = ctx.block(stmt) {
                    if block.stmts.is_empty() {
                        ctx.error(
                            &stmt.key,
                            "`notification_email` block is empty (keepalived reports a \
                             configuration error): list addresses or remove the block",
                        );
                    }
                    for line in &block.stmts {
                        if ctx.no_block(line) {
                            g.notification_email
                                .extend(line.words().map(|w| w.text.clone()));
                        }
                    }
                }
            }
            "notification_email_from" => {
                if let Some(w) = ctx.one(stmt, "an e-mail address") {
                    g.notification_email_from = Some(w.text.clone());
                }
            }
            "smtp_server" => {
                mail.server = Some(stmt.key.clone());
                if !ctx.no_block(stmt) {
                    continue;
                }
                match stmt.args.as_slice() {
                    [] => ctx.error(
                        &stmt.key,
                        "`smtp_server` expects ADDRESS [PORT], found end of line",
                    ),
                    [host, rest @ ..] => {
                        g.smtp_server = Some(host.text.clone());
                        if let Some(port) = rest.first() {
                            if let Some(p) = ctx.int_word("smtp_server", port, 1u16, 65535) {
                                g.smtp_port = p;
                            }
                        }
                        if let Some(extra) = rest.get(1) {
                            ctx.error(
                                extra,
                                format!(
                                    "`smtp_server` expects ADDRESS [PORT], found extra `{}`",
                                    extra.text
                                ),
                            );
                        }
                    }
                }
            }
            "smtp_connect_timeout" => {
                if let Some(d) = ctx.seconds(stmt, 3600) {
                    g.smtp_connect_timeout = Some(d);
                }
            }
            "smtp_helo_name" => {
                if let Some(w) = ctx.one(stmt, "a host name") {
                    g.smtp_helo_name = Some(w.text.clone());
                }
            }
            "smtp_alert" => {
                if let Some(v) = ctx.flag(stmt) {
                    g.smtp_alert = Some(v);
                }
            }
            "smtp_alert_vrrp" => {
                if let Some(v) = ctx.flag(stmt) {
                    g.smtp_alert_vrrp = Some(v);
                }
            }
            "no_email_faults" => {
                if let Some(v) = ctx.switch(stmt) {
                    g.no_email_faults = v;
                }
            }
            "notify_fifo" | "vrrp_notify_fifo" => {
                let slot = if k == "notify_fifo" {
                    &mut g.notify_fifo
                } else {
                    &mut g.vrrp_notify_fifo
                };
                if let Some((path, user, group)) = fifo_line(stmt, "PATH", slot.is_some(), ctx) {
                    *slot = Some(NotifyFifo {
                        path: path.into(),
                        user,
                        group,
                        location: stmt.key.loc.clone(),
                    });
                }
            }
            "notify_fifo_script" | "vrrp_notify_fifo_script" => {
                let slot = if k == "notify_fifo_script" {
                    &mut g.notify_fifo_script
                } else {
                    &mut g.vrrp_notify_fifo_script
                };
                if let Some((command, user, group)) = fifo_line(stmt, "SCRIPT", slot.is_some(), ctx)
                {
                    *slot = Some(FifoScript {
                        command,
                        user,
                        group,
                        location: stmt.key.loc.clone(),
                    });
                }
            }
            "vrrp_version" => {
                if let Some(v) = ctx.int(stmt, 2u8, 3) {
                    g.vrrp_version = v;
                }
            }
            "vrrp_garp_master_delay" => {
                if let Some(v) = ctx.int(stmt, 0u64, 255) {
                    g.garp_master_delay = Duration::from_secs(v);
                }
            }
            "vrrp_garp_master_repeat" => {
                if let Some(v) = ctx.int(stmt, 0u32, 255) {
                    g.garp_master_repeat = v;
                }
            }
            "vrrp_garp_master_refresh" => {
                if let Some(v) = ctx.int(stmt, 0u64, u64::from(u32::MAX)) {
                    g.garp_master_refresh = Duration::from_secs(v);
                }
            }
            "vrrp_garp_master_refresh_repeat" => {
                if let Some(v) = ctx.int(stmt, 0u32, 255) {
                    g.garp_master_refresh_repeat = refresh_repeat(stmt, v, ctx);
                }
            }
            // One announcement and no more, for the settings still at their defaults (as
            // keepalived: a value written before this line stays).
            "vrrp_min_garp" => {
                if ctx.flag(stmt) == Some(true) {
                    let d = GlobalDefs::default();
                    if g.garp_master_repeat == d.garp_master_repeat {
                        g.garp_master_repeat = 1;
                    }
                    if g.garp_master_delay == d.garp_master_delay {
                        g.garp_master_delay = Duration::ZERO;
                    }
                    if g.garp_master_refresh_repeat == d.garp_master_refresh_repeat {
                        g.garp_master_refresh_repeat = 0;
                    }
                }
            }
            "vrrp_garp_lower_prio_delay" => {
                if let Some(v) = ctx.int(stmt, 0u64, 255) {
                    g.garp_lower_prio_delay = Some(Duration::from_secs(v));
                }
            }
            "vrrp_garp_lower_prio_repeat" => {
                if let Some(v) = ctx.int(stmt, 0u32, 255) {
                    g.garp_lower_prio_repeat = Some(v);
                }
            }
            // RFC 5798 7.1: tandem's owner always discards adverts for its VRID.
            "vrrp_owner_ignore_adverts" => {
                if ctx.flag(stmt) == Some(false) {
                    ctx.warn(
                        &stmt.key,
                        "`vrrp_owner_ignore_adverts off` is not supported: an address owner \
                         (priority 255) always discards adverts for its VRID (RFC 5798 7.1)",
                    );
                }
            }
            "vrrp_lower_prio_no_advert" => {
                if let Some(v) = ctx.flag(stmt) {
                    g.lower_prio_no_advert = v;
                }
            }
            "vrrp_higher_prio_send_advert" => {
                if let Some(v) = ctx.flag(stmt) {
                    g.higher_prio_send_advert = v;
                }
            }
            // keepalived refuses what is not a positive number of seconds.
            "vrrp_garp_interval" | "vrrp_gna_interval" => {
                if let Some(w) = ctx.one(stmt, "seconds greater than 0") {
                    match parse_seconds(&w.text) {
                        Some(d) if d >= Duration::from_micros(1) => {
                            if k == "vrrp_garp_interval" {
                                g.garp_interval = d;
                            } else {
                                g.gna_interval = d;
                            }
                        }
                        _ => ctx.error(
                            w,
                            format!(
                                "`{k}` expects seconds greater than 0 (at least 0.000001), \
                                 found `{}`; keepalived refuses it too: remove the line to keep \
                                 the default",
                                w.text
                            ),
                        ),
                    }
                }
            }
            _ if GLOBAL_UNSUPPORTED.contains(&k) => ctx.unsupported(stmt),
            _ => ctx.unknown(stmt, "global_defs"),
        }
    }
}

/// Reads `KEYWORD VALUE [USER [GROUP]]` (`notify_fifo` and its script); `taken` says the
/// keyword was given before, in which case the first stays, as in keepalived.
fn fifo_line(
    stmt: &Stmt,
    value: &str,
    taken: bool,
    ctx: &mut Ctx,
) -> Option<(String, Option<String>, Option<String>)> {
    if !ctx.no_block(stmt) {
        return None;
    }
    let k = &stmt.key.text;
    match stmt.args.as_slice() {
        [] => {
            ctx.error(
                &stmt.key,
                format!("`{k}` expects {value} [USER [GROUP]], found end of line"),
            );
            None
        }
        [first, ..] if taken => {
            ctx.warn(
                first,
                format!(
                    "`{k}` is given twice: `{}` is ignored and the first one is used, as \
                     keepalived does",
                    first.text
                ),
            );
            None
        }
        [_, _, _, extra, ..] => {
            ctx.error(
                extra,
                format!(
                    "`{k}` expects {value} [USER [GROUP]], found extra `{}`",
                    extra.text
                ),
            );
            None
        }
        [first, rest @ ..] => Some((
            first.text.clone(),
            rest.first().map(|w| w.text.clone()),
            rest.get(1).map(|w| w.text.clone()),
        )),
    }
}

/// Mail settings that cannot send anything, said at their line: keepalived sends mail only
/// with both `notification_email` and `smtp_server`, and only for instances and groups whose
/// `smtp_alert` (or its global defaults) is on.
fn check_mail(config: &Config, words: &MailWords, ctx: &mut Ctx) {
    let g = &config.global;
    let alerting = config
        .instances
        .iter()
        .map(|i| i.smtp_alert)
        .chain(config.sync_groups.iter().map(|s| s.smtp_alert))
        .any(|own| g.smtp_alert_for(own))
        || config
            .virtual_servers
            .iter()
            .any(|v| v.smtp_alert || v.real_servers.iter().any(|r| r.smtp_alert));
    match (&words.email, &words.server) {
        (Some(email), None) => ctx.warn(
            email,
            "`notification_email` without `smtp_server`: no e-mail is sent",
        ),
        (None, Some(server)) => ctx.warn(
            server,
            "`smtp_server` without `notification_email`: no e-mail is sent",
        ),
        (Some(email), Some(_)) if !alerting => ctx.warn(
            email,
            "no vrrp_instance, vrrp_sync_group or virtual_server has `smtp_alert` on (nor `smtp_alert` / \
             `smtp_alert_vrrp` in global_defs): no e-mail is sent",
        ),
        _ => {}
    }
}

/// Where the mail settings were written, for [`check_mail`].
#[derive(Default)]
struct MailWords {
    email: Option<Word>,
    server: Option<Word>,
}

/// Named blocks of one kind (`kind` as the message names it) whose names are unique: a
/// second definition is an error at its name, and the first one stays.
fn unique_blocks<T>(defined: Vec<(T, Word)>, kind: &str, ctx: &mut Ctx) -> Vec<T> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (block, name) in defined {
        if seen.insert(name.text.clone()) {
            out.push(block);
        } else {
            ctx.error(&name, format!("{kind} `{}` is defined twice", name.text));
        }
    }
    out
}

/// The name of a named block (`vrrp_script NAME {`), checked to be one word.
pub(crate) fn block_name(stmt: &Stmt, ctx: &mut Ctx) -> Option<Word> {
    let k = &stmt.key.text;
    let name = match stmt.args.as_slice() {
        [] => {
            ctx.error(&stmt.key, format!("`{k}` expects a name before its `{{`"));
            return None;
        }
        [name] => name.clone(),
        [_, extra, ..] => {
            ctx.error(
                extra,
                format!(
                    "`{k}` expects one name before its `{{`, found extra `{}`",
                    extra.text
                ),
            );
            return None;
        }
    };
    if stmt.block.is_none() {
        ctx.error(
            &stmt.key,
            format!("`{k} {}` expects a block `{{ ... }}`", name.text),
        );
        return None;
    }
    Some(name)
}

fn vrrp_script(stmt: &Stmt, ctx: &mut Ctx) -> Option<(VrrpScript, Word)> {
    let name = block_name(stmt, ctx)?;
    let block = stmt.block.as_ref()?;
    let mut script = VrrpScript {
        name: name.text.clone(),
        script: String::new(),
        interval: Duration::from_secs(1),
        timeout: None,
        weight: 0,
        reverse: false,
        fall: 1,
        rise: 1,
        user: None,
        group: None,
        init_fail: false,
        location: stmt.key.loc.clone(),
    };
    let mut has_script = false;
    for s in &block.stmts {
        match s.key.text.as_str() {
            "script" => {
                if let Some(text) = script_line(ctx, s) {
                    script.script = text;
                    has_script = true;
                }
            }
            "interval" => {
                if let Some(d) = ctx.seconds(s, 86400) {
                    if d.is_zero() {
                        ctx.error(&s.key, "`interval` must be greater than 0");
                    } else {
                        script.interval = d;
                    }
                }
            }
            "timeout" => {
                if let Some(d) = ctx.seconds(s, 86400) {
                    script.timeout = Some(d);
                }
            }
            "weight" => {
                if ctx.no_block(s) {
                    if s.args.is_empty() {
                        ctx.error(
                            &s.key,
                            "`weight` expects -253..=253 [reverse], found end of line",
                        );
                    } else if let Some((w, reverse)) = ctx.weight("weight", &s.args) {
                        script.weight = w;
                        script.reverse = reverse;
                    }
                }
            }
            "fall" => {
                if let Some(v) = ctx.int(s, 1u32, 1_000_000) {
                    script.fall = v;
                }
            }
            "rise" => {
                if let Some(v) = ctx.int(s, 1u32, 1_000_000) {
                    script.rise = v;
                }
            }
            "user" => {
                if !ctx.no_block(s) {
                    continue;
                }
                match s.args.as_slice() {
                    [] => ctx.error(&s.key, "`user` expects USER [GROUP], found end of line"),
                    [user, rest @ ..] => {
                        script.user = Some(user.text.clone());
                        script.group = rest.first().map(|w| w.text.clone());
                        if let Some(extra) = rest.get(1) {
                            ctx.error(
                                extra,
                                format!(
                                    "`user` expects USER [GROUP], found extra `{}`",
                                    extra.text
                                ),
                            );
                        }
                    }
                }
            }
            "init_fail" => {
                if let Some(v) = ctx.switch(s) {
                    script.init_fail = v;
                }
            }
            _ => ctx.unknown(s, "vrrp_script"),
        }
    }
    if !has_script {
        ctx.error(
            &name,
            format!("vrrp_script `{}` has no `script` line", name.text),
        );
        return None;
    }
    Some((script, name))
}

/// A sync group as written, with the words naming its members for error locations.
struct ParsedGroup {
    group: SyncGroup,
    name: Word,
    members: Vec<Word>,
    track_process_lines: Vec<TrackProcessLine>,
    /// The `track_script` lines' names, for "no such script" errors.
    script_words: Vec<Word>,
}

fn sync_group(stmt: &Stmt, ctx: &mut Ctx) -> Option<ParsedGroup> {
    let name = block_name(stmt, ctx)?;
    let block = stmt.block.as_ref()?;
    let mut group = SyncGroup {
        name: name.text.clone(),
        members: Vec::new(),
        track_scripts: Vec::new(),
        track_files: Vec::new(),
        tracking_weight: false,
        notify: NotifyScripts::default(),
        track_processes: Vec::new(),
        smtp_alert: None,
        location: stmt.key.loc.clone(),
    };
    let mut members = Vec::new();
    let mut track_process_lines = Vec::new();
    let mut script_words = Vec::new();
    let mut has_group = false;
    for s in &block.stmts {
        let k = s.key.text.as_str();
        if notify_keyword(s, &mut group.notify, ctx) {
            continue;
        }
        match k {
            "group" => {
                if let Some(b) = ctx.block(s) {
                    has_group = true;
                    for line in &b.stmts {
                        if ctx.no_block(line) {
                            members.extend(line.words().cloned());
                        }
                    }
                }
            }
            "track_process" => {
                if let Some(b) = ctx.block(s) {
                    track_process_lines.extend(track_process::track_process_block(b, ctx));
                }
            }
            "track_script" => {
                if let Some(b) = ctx.block(s) {
                    for line in &b.stmts {
                        if let Some(t) = instance::track_script(line, ctx) {
                            group.track_scripts.push(t);
                            script_words.push(line.key.clone());
                        }
                    }
                }
            }
            "track_file" => {
                if let Some(b) = ctx.block(s) {
                    for line in &b.stmts {
                        if let Some(t) = instance::track_file_ref(line, ctx) {
                            group.track_files.push(t);
                        }
                    }
                }
            }
            "sync_group_tracking_weight" => {
                if let Some(v) = ctx.flag(s) {
                    group.tracking_weight = v;
                }
            }
            "smtp_alert" => {
                if let Some(v) = ctx.flag(s) {
                    group.smtp_alert = Some(v);
                }
            }
            _ if SYNC_GROUP_UNSUPPORTED.contains(&k) => ctx.unsupported(s),
            _ => ctx.unknown(s, "vrrp_sync_group"),
        }
    }
    if !has_group {
        ctx.error(
            &name,
            format!(
                "vrrp_sync_group `{}` has no `group {{ ... }}` of instances",
                name.text
            ),
        );
    }
    Some(ParsedGroup {
        group,
        name,
        members,
        track_process_lines,
        script_words,
    })
}

/// Handles `notify`, `notify_master`, ... for instances and sync groups; returns whether
/// `stmt` was one of them.
pub(crate) fn notify_keyword(stmt: &Stmt, notify: &mut NotifyScripts, ctx: &mut Ctx) -> bool {
    let slot = match stmt.key.text.as_str() {
        "notify" => &mut notify.notify,
        "notify_master" => &mut notify.master,
        "notify_backup" => &mut notify.backup,
        "notify_fault" => &mut notify.fault,
        "notify_stop" => &mut notify.stop,
        _ => return false,
    };
    if let Some(script) = script_line(ctx, stmt) {
        *slot = Some(script);
    }
    true
}

/// Address family of an instance, for the (interface, VRID, family) uniqueness rule.
fn family(p: &ParsedInstance) -> u8 {
    let first = p
        .instance
        .virtual_addresses
        .first()
        .map(|v| v.address)
        .or(p.instance.unicast_src_ip);
    match first {
        Some(IpAddr::V6(_)) => 6,
        _ => 4,
    }
}

fn check_instances(instances: &[ParsedInstance], ctx: &mut Ctx) {
    let mut names: HashMap<&str, &ParsedInstance> = HashMap::new();
    let mut routers: HashMap<(&str, u8, u8), &ParsedInstance> = HashMap::new();
    for p in instances {
        let i = &p.instance;
        if let Some(first) = names.get(i.name.as_str()) {
            let at = &first.instance.location;
            ctx.error(
                &p.name,
                format!(
                    "vrrp_instance `{}` is defined twice (first at {}:{})",
                    i.name,
                    at.file.display(),
                    at.line
                ),
            );
        } else {
            names.insert(&i.name, p);
        }
        let fam = family(p);
        let key = (i.interface.as_str(), i.virtual_router_id, fam);
        if let Some(first) = routers.get(&key) {
            let at = &first.instance.location;
            let where_ = p.vrid_word.as_ref().unwrap_or(&p.name);
            ctx.error(
                where_,
                format!(
                    "virtual_router_id {} on {} (IPv{fam}) is already used by vrrp_instance `{}` at {}:{}",
                    i.virtual_router_id, i.interface, first.instance.name, at.file.display(), at.line
                ),
            );
        } else {
            routers.insert(key, p);
        }
    }
}

fn check_groups(groups: Vec<ParsedGroup>, config: &Config, ctx: &mut Ctx) -> Vec<SyncGroup> {
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut out: Vec<SyncGroup> = Vec::new();
    for mut p in groups {
        if out.iter().any(|g| g.name == p.group.name) {
            ctx.error(
                &p.name,
                format!("vrrp_sync_group `{}` is defined twice", p.group.name),
            );
            continue;
        }
        for m in &p.members {
            if !config.instances.iter().any(|i| i.name == m.text) {
                ctx.error(
                    m,
                    format!(
                        "vrrp_sync_group `{}`: no vrrp_instance named `{}`",
                        p.group.name, m.text
                    ),
                );
                continue;
            }
            if let Some(other) = owner.get(&m.text) {
                ctx.error(
                    m,
                    format!("vrrp_instance `{}` is already in vrrp_sync_group `{other}`; an instance can be in one group only", m.text),
                );
                continue;
            }
            if p.group.members.contains(&m.text) {
                ctx.error(
                    m,
                    format!(
                        "`{}` is listed twice in vrrp_sync_group `{}`",
                        m.text, p.group.name
                    ),
                );
                continue;
            }
            owner.insert(m.text.clone(), p.group.name.clone());
            p.group.members.push(m.text.clone());
        }
        instance::check_track_scripts(
            &p.group.track_scripts,
            &p.script_words,
            &config.scripts,
            ctx,
        );
        crate::track_file::check_refs(p.group.track_files.iter(), &config.track_files, ctx);
        out.push(p.group);
    }
    out
}

/// `garp_master_refresh_repeat` 0 means 1, as keepalived says (0 was allowed before 2.0.7).
pub(crate) fn refresh_repeat(stmt: &Stmt, v: u32, ctx: &mut Ctx) -> u32 {
    if v == 0 {
        ctx.warn(
            &stmt.key,
            format!(
                "`{}` must be at least 1: set to 1, as keepalived does",
                stmt.key.text
            ),
        );
        return 1;
    }
    v
}
