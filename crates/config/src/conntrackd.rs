//! conntrackd.conf's `Sync` and `General` sections, read as they are, into [`SyncConfig`], so
//! `tandemd -f keepalived.conf -f conntrackd.conf` runs an existing pair's files unchanged.
//!
//! Keywords are matched without regard to case, as conntrackd's own reader does. Settings that
//! only tune conntrackd's internals (hash sizes, nice level, lock file, ...) are accepted with a
//! warning; anything unknown is an error naming file:line:column.

use std::net::IpAddr;

use crate::diagnostic::Diagnostic;
use crate::model::Location;
use crate::sync::{FilterConfig, ListFilter, Policy, SyncConfig, Transport, DEFAULT_PORT};
use crate::tree::{Block, Stmt, Word};
use crate::values::Ctx;

/// Whether a file looks like conntrackd.conf (a top-level `Sync` or `General` block).
pub(crate) fn looks_like(stmts: &[Stmt]) -> bool {
    stmts
        .iter()
        .any(|s| s.block.is_some() && (is(&s.key, "sync") || is(&s.key, "general")))
}

fn is(word: &Word, keyword: &str) -> bool {
    word.text.eq_ignore_ascii_case(keyword)
}

/// Channel settings gathered before deciding the transport.
#[derive(Default)]
struct Channel {
    local: Option<IpAddr>,
    peer: Option<IpAddr>,
    group: Option<IpAddr>,
    port: Option<u16>,
    interface: Option<String>,
}

/// Everything read from the file before the transport is decided.
#[derive(Default)]
struct Read {
    udp: Option<(Channel, Location)>,
    multicast: Option<(Channel, Location)>,
    tcp_window_tracking: bool,
    resend_queue: Option<usize>,
    max_entries: Option<usize>,
    filter: FilterConfig,
    sync_seen: bool,
}

/// Reads the statements of a conntrackd.conf; `None` when it has no usable `Sync` section
/// (the reason is in `ctx`).
pub(crate) fn parse(stmts: &[Stmt], file_start: Location, ctx: &mut Ctx) -> Option<SyncConfig> {
    let mut read = Read {
        filter: FilterConfig {
            ignore_own_addresses: true,
            ..FilterConfig::default()
        },
        ..Read::default()
    };
    for stmt in stmts {
        match stmt.key.text.to_ascii_lowercase().as_str() {
            "sync" => {
                read.sync_seen = true;
                if let Some(block) = ctx.block(stmt) {
                    read_sync(block, ctx, &mut read);
                }
            }
            "general" => {
                if let Some(block) = ctx.block(stmt) {
                    read_general(block, ctx, &mut read);
                }
            }
            "stats" => ctx.unsupported(stmt),
            _ => ctx.unknown(stmt, "conntrackd.conf"),
        }
    }
    if !read.sync_seen {
        return None;
    }
    let (transport, interface, location) = match (read.udp, read.multicast) {
        (Some((c, loc)), _) => {
            let (Some(local), Some(peer)) = (c.local, c.peer) else {
                ctx.errors.push(Diagnostic::error(
                    loc,
                    3,
                    "`UDP` needs `IPv4_address` (or `IPv6_address`) and \
                     `IPv4_Destination_Address` (or `IPv6_Destination_Address`)",
                ));
                return None;
            };
            let port = c.port.unwrap_or(DEFAULT_PORT);
            (Transport::Udp { local, peer, port }, c.interface, loc)
        }
        (None, Some((c, loc))) => {
            let Some(group) = c.group else {
                ctx.errors.push(Diagnostic::error(
                    loc,
                    9,
                    "`Multicast` needs `IPv4_address` (the group) or `IPv6_address`",
                ));
                return None;
            };
            let port = c.port.unwrap_or(DEFAULT_PORT);
            let local = c.local;
            (
                Transport::Multicast { group, local, port },
                c.interface,
                loc,
            )
        }
        (None, None) if !ctx.errors.is_empty() => return None,
        (None, None) => {
            ctx.errors.push(Diagnostic::error(
                file_start,
                1,
                "`Sync` needs a `UDP { ... }` or `Multicast { ... }` channel",
            ));
            return None;
        }
    };
    ctx.warnings.push(Diagnostic::warning(
        location.clone(),
        4,
        "conntrackd.conf has no authentication: anyone who reaches the sync port can insert or \
         delete flows in both kernels; for a keyed link give a tandem.toml [sync] section with \
         `key_file` instead",
    ));
    let mut config = SyncConfig::with_transport(transport, location);
    config.interface = interface;
    config.tcp_window_tracking = read.tcp_window_tracking;
    if let Some(n) = read.resend_queue {
        config.resend_queue = n;
    }
    if let Some(n) = read.max_entries {
        config.max_entries = n;
    }
    config.filter = read.filter;
    Some(config)
}

fn read_sync(block: &Block, ctx: &mut Ctx, read: &mut Read) {
    for s in &block.stmts {
        match s.key.text.to_ascii_lowercase().as_str() {
            "mode" => mode(s, ctx, &mut read.resend_queue),
            "udp" => {
                if let Some(b) = channel_block(s, ctx) {
                    read.udp = Some((read_channel(b, ctx, false), s.key.loc.clone()));
                }
            }
            "multicast" => {
                if let Some(b) = channel_block(s, ctx) {
                    read.multicast = Some((read_channel(b, ctx, true), s.key.loc.clone()));
                }
            }
            "tcp" => ctx.not_yet(s),
            "options" => {
                let Some(b) = ctx.block(s) else { continue };
                for o in &b.stmts {
                    match o.key.text.to_ascii_lowercase().as_str() {
                        "tcpwindowtracking" => {
                            if let Some(v) = ctx.flag(o) {
                                read.tcp_window_tracking = v;
                            }
                        }
                        "expectationsync" => ctx.not_yet(o),
                        _ => ctx.unknown(o, "Sync Options"),
                    }
                }
            }
            "checksum" | "expectationsync" => ctx.unsupported(s),
            _ => ctx.unknown(s, "Sync"),
        }
    }
}

fn read_general(block: &Block, ctx: &mut Ctx, read: &mut Read) {
    for s in &block.stmts {
        match s.key.text.to_ascii_lowercase().as_str() {
            "hashlimit" => read.max_entries = ctx.int(s, 1usize, 1 << 28),
            "filter" => read_filter(s, ctx, &mut read.filter),
            "systemd"
            | "nice"
            | "hashsize"
            | "logfile"
            | "syslog"
            | "lockfile"
            | "unix"
            | "netlinkbuffersize"
            | "netlinkbuffersizemaxgrowth"
            | "netlinkoverrunresync"
            | "netlinkeventsreliable"
            | "eventiterationlimit"
            | "pollsecs"
            | "scheduler"
            | "startupresync"
            | "setup" => ctx.unsupported(s),
            _ => ctx.unknown(s, "General"),
        }
    }
}

/// `Mode FTFW { ... }`; tandem's channel is always reliable, so other modes only warn.
fn mode(stmt: &Stmt, ctx: &mut Ctx, resend_queue: &mut Option<usize>) {
    let Some(kind) = stmt.args.first() else {
        ctx.error(
            &stmt.key,
            "`Mode` expects FTFW, ALARM or NOTRACK before its `{`",
        );
        return;
    };
    match kind.text.to_ascii_uppercase().as_str() {
        "FTFW" => {}
        "ALARM" | "NOTRACK" => ctx.warn(
            kind,
            format!(
                "`Mode {}`: tandem always uses its own acknowledged channel (like FTFW)",
                kind.text
            ),
        ),
        _ => {
            let found = &kind.text;
            ctx.error(
                kind,
                format!("`Mode` expects FTFW, ALARM or NOTRACK, found `{found}`"),
            );
            return;
        }
    }
    let Some(block) = stmt.block.as_ref() else {
        return;
    };
    for s in &block.stmts {
        match s.key.text.to_ascii_lowercase().as_str() {
            "resendqueuesize" => *resend_queue = ctx.int(s, 1usize, 1 << 24),
            "committimeout"
            | "purgetimeout"
            | "ackwindowsize"
            | "disableexternalcache"
            | "disableinternalcache"
            | "startupresync"
            | "refreshtime"
            | "cachetimeout"
            | "timeout" => ctx.unsupported(s),
            _ => ctx.unknown(s, "Mode"),
        }
    }
}

/// `UDP [Default] { ... }` and `Multicast [Default] { ... }` accept a `Default` word.
fn channel_block<'s>(stmt: &'s Stmt, ctx: &mut Ctx) -> Option<&'s Block> {
    let key = &stmt.key.text;
    for extra in &stmt.args {
        if !extra.text.eq_ignore_ascii_case("default") {
            ctx.error(
                extra,
                format!("`{key}` takes only `Default` before its `{{`"),
            );
        }
    }
    if stmt.block.is_none() {
        ctx.error(&stmt.key, format!("`{key}` expects a block `{{ ... }}`"));
    }
    stmt.block.as_ref()
}

fn read_channel(block: &Block, ctx: &mut Ctx, multicast: bool) -> Channel {
    let mut c = Channel::default();
    for s in &block.stmts {
        let key = s.key.text.to_ascii_lowercase();
        let ip = |ctx: &mut Ctx| {
            let w = ctx.one(s, "an address")?;
            ctx.ip(&s.key.text, w)
        };
        match key.as_str() {
            "ipv4_address" | "ipv6_address" if multicast => c.group = ip(ctx),
            "ipv4_address" | "ipv6_address" => c.local = ip(ctx),
            "ipv4_destination_address" | "ipv6_destination_address" => c.peer = ip(ctx),
            "ipv4_interface" | "ipv6_interface" => c.local = ip(ctx),
            "port" | "group" => c.port = ctx.int(s, 1u16, u16::MAX),
            "interface" => c.interface = ctx.one(s, "an interface name").map(|w| w.text.clone()),
            "sndsocketbuffer" | "rcvsocketbuffer" | "checksum" => ctx.unsupported(s),
            _ => ctx.unknown(s, if multicast { "Multicast" } else { "UDP" }),
        }
    }
    c
}

/// `Filter [From Userspace|Kernelspace] { Protocol ... Address ... State ... }`.
fn read_filter(stmt: &Stmt, ctx: &mut Ctx, filter: &mut FilterConfig) {
    let Some(block) = stmt.block.as_ref() else {
        ctx.error(&stmt.key, "`Filter` expects a block `{ ... }`");
        return;
    };
    for s in &block.stmts {
        let Some(policy) = policy(s, ctx) else {
            continue;
        };
        let Some(items) = s.block.as_ref() else {
            let key = &s.key.text;
            ctx.error(&s.key, format!("`{key}` expects a block `{{ ... }}`"));
            continue;
        };
        let words: Vec<&Word> = items.stmts.iter().flat_map(|i| i.words()).collect();
        match s.key.text.to_ascii_lowercase().as_str() {
            "protocol" => {
                let items = words.iter().map(|w| w.text.to_ascii_uppercase()).collect();
                filter.protocols = Some(ListFilter { policy, items });
            }
            "address" => {
                let mut items = Vec::new();
                for pair in words.chunks(2) {
                    match pair {
                        [k, v] if k.text.to_ascii_lowercase().starts_with("ipv") => {
                            if let Some(p) = prefix(ctx, &k.text, v) {
                                items.push(p);
                            }
                        }
                        [k, ..] => {
                            let found = &k.text;
                            ctx.error(
                                k,
                                format!("`Address` lists `IPv4_address A[/N]` or `IPv6_address A[/N]`, found `{found}`"),
                            )
                        }
                        [] => {}
                    }
                }
                filter.addresses = Some(ListFilter { policy, items });
            }
            "state" => {
                // `ESTABLISHED CLOSED for TCP`: the states come before `for`.
                let items = words
                    .iter()
                    .take_while(|w| !w.text.eq_ignore_ascii_case("for"))
                    .map(|w| w.text.to_ascii_uppercase())
                    .collect();
                filter.tcp_states = Some(ListFilter { policy, items });
            }
            _ => ctx.unknown(s, "Filter"),
        }
    }
}

fn policy(stmt: &Stmt, ctx: &mut Ctx) -> Option<Policy> {
    match stmt.args.first().map(|w| w.text.to_ascii_lowercase()) {
        Some(p) if p == "accept" => Some(Policy::Accept),
        Some(p) if p == "ignore" => Some(Policy::Ignore),
        _ => {
            let key = &stmt.key.text;
            ctx.error(
                &stmt.key,
                format!("`{key}` expects `Accept` or `Ignore` before its `{{`"),
            );
            None
        }
    }
}

fn prefix(ctx: &mut Ctx, key: &str, w: &Word) -> Option<(IpAddr, u8)> {
    let (addr, len) = match w.text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (w.text.as_str(), None),
    };
    let found = &w.text;
    let Ok(addr) = addr.parse::<IpAddr>() else {
        ctx.error(
            w,
            format!("`{key}` expects an address or prefix, found `{found}`"),
        );
        return None;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len.map(str::parse::<u8>) {
        None => max,
        Some(Ok(n)) if n <= max => n,
        Some(_) => {
            ctx.error(
                w,
                format!("`{key}` prefix length must be 0..={max}, found `{found}`"),
            );
            return None;
        }
    };
    Some((addr, len))
}
