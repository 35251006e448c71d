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
            "helper" => helper(stmt, ctx),
            // Older spellings of a filter, still read by conntrackd 1.4 (which calls them
            // obsolete): they filter the same way, so they are read into the filter.
            "ignoreprotocol" => ignore_protocol(stmt, ctx, &mut read.filter),
            "ignoretrafficfor" => ignore_traffic_for(stmt, ctx, &mut read.filter),
            "stripnat" => {
                if ctx.no_block(stmt) {
                    ctx.warn(
                        &stmt.key,
                        "`StripNAT` is obsolete (conntrackd ignores it too); ignored",
                    );
                }
            }
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
            // Timers of conntrackd's own caches, and clauses conntrackd 1.4 still reads but
            // calls obsolete: tandem's caches and channel have their own.
            "refreshtime"
            | "cachetimeout"
            | "committimeout"
            | "purgetimeout"
            | "relaxtransitions"
            | "delaydestroymessages"
            | "listento"
            | "replicate"
            | "cachewritethrough"
            | "destroytimeout" => ctx.unsupported(s),
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
            | "setup"
            // conntrackd 1.4's older names for the netlink buffer sizes, and `Family`.
            | "socketbuffersize"
            | "socketbuffersizemaxgrown"
            | "socketbuffersizemaxgrowth"
            | "family" => ctx.unsupported(s),
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
            "resendbuffersize"
            | "relaxtransitions"
            | "delaydestroymessages"
            | "committimeout"
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
            // The address of the interface that sends to the group: Multicast only.
            "ipv4_interface" if multicast => c.local = ip(ctx),
            "ipv6_interface" if multicast => {
                // conntrackd says it is not required and ignores it: so does tandem.
                if ctx.one(s, "an address").is_some() {
                    ctx.warn(
                        &s.key,
                        "`IPv6_interface` is not needed (conntrackd ignores it too); ignored",
                    );
                }
            }
            "ipv4_interface" | "ipv6_interface" => ctx.error(
                &s.key,
                format!(
                    "`{}` belongs in `Multicast`; a `UDP` channel names its address with \
                     `IPv4_address` (conntrackd refuses it here too)",
                    s.key.text
                ),
            ),
            "port" | "group" => c.port = ctx.int(s, 1u16, u16::MAX),
            "interface" => c.interface = ctx.one(s, "an interface name").map(|w| w.text.clone()),
            "sndsocketbuffer" | "rcvsocketbuffer" | "checksum" => ctx.unsupported(s),
            // Older names of the socket buffers, and an option conntrackd calls obsolete.
            "mcastsndsocketbuffer" | "mcastrcvsocketbuffer" | "backlog" if multicast => {
                ctx.unsupported(s)
            }
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
                merge_list(&mut filter.protocols, policy, items, &s.key, ctx);
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
                merge_list(&mut filter.addresses, policy, items, &s.key, ctx);
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

/// `Helper { Type NAME L3 L4 { QueueNum N  QueueLen N  Policy NAME { ExpectMax N  ExpectTimeout N } } }`:
/// checked, then warned about once per helper, since tandem runs no user-space helpers.
fn helper(stmt: &Stmt, ctx: &mut Ctx) {
    let Some(block) = ctx.block(stmt) else { return };
    for t in &block.stmts {
        if !is(&t.key, "type") {
            ctx.unknown(t, "Helper");
            continue;
        }
        let [name, l3, l4] = t.args.as_slice() else {
            ctx.error(
                &t.key,
                "`Type` expects NAME L3PROTO L4PROTO (e.g. `Type ftp inet tcp`) before its `{`",
            );
            continue;
        };
        if !["inet", "inet6"]
            .iter()
            .any(|f| l3.text.eq_ignore_ascii_case(f))
        {
            ctx.error(
                l3,
                format!("`Type` expects inet or inet6, found `{}`", l3.text),
            );
        }
        if !["tcp", "udp"]
            .iter()
            .any(|p| l4.text.eq_ignore_ascii_case(p))
        {
            ctx.error(
                l4,
                format!("`Type` expects tcp or udp, found `{}`", l4.text),
            );
        }
        if let Some(b) = ctx.block(&Stmt {
            args: Vec::new(),
            ..t.clone()
        }) {
            for o in &b.stmts {
                match o.key.text.to_ascii_lowercase().as_str() {
                    "queuenum" | "queuelen" => {
                        ctx.int(o, 0u32, u32::MAX);
                    }
                    "policy" => {
                        let Some(pb) = o.block.as_ref() else {
                            ctx.error(&o.key, "`Policy` expects NAME and a block `{ ... }`");
                            continue;
                        };
                        for e in &pb.stmts {
                            match e.key.text.to_ascii_lowercase().as_str() {
                                "expectmax" | "expecttimeout" => {
                                    ctx.int(e, 0u32, u32::MAX);
                                }
                                _ => ctx.unknown(e, "Helper Policy"),
                            }
                        }
                    }
                    _ => ctx.unknown(o, "Helper Type"),
                }
            }
        }
        ctx.warn(
            &t.key,
            format!(
                "`Helper` `{}`: tandem does not run user-space conntrack helpers; packets the \
                 kernel queues for it (QueueNum) get no answer, so leave the helper to the kernel \
                 or to conntrackd",
                name.text
            ),
        );
    }
}

/// `IgnoreProtocol { UDP ICMP ... }`: conntrackd 1.4's older form of `Protocol Ignore`.
fn ignore_protocol(stmt: &Stmt, ctx: &mut Ctx, filter: &mut FilterConfig) {
    let Some(block) = ctx.block(stmt) else { return };
    let items: Vec<String> = block
        .stmts
        .iter()
        .flat_map(|l| l.words())
        .map(|w| w.text.to_ascii_uppercase())
        .collect();
    ctx.warn(
        &stmt.key,
        "`IgnoreProtocol` is obsolete (conntrackd says so too): read as `Filter { Protocol \
         Ignore { ... } }`, which it should be written as",
    );
    match &mut filter.protocols {
        Some(f) if f.policy == Policy::Ignore => f.items.extend(items),
        Some(_) => ctx.error(
            &stmt.key,
            "`IgnoreProtocol` cannot be combined with `Protocol Accept` in `Filter`",
        ),
        None => {
            filter.protocols = Some(ListFilter {
                policy: Policy::Ignore,
                items,
            })
        }
    }
}

/// `IgnoreTrafficFor { IPv4_address A ... }`: conntrackd 1.4's older form of `Address Ignore`.
fn ignore_traffic_for(stmt: &Stmt, ctx: &mut Ctx, filter: &mut FilterConfig) {
    let Some(block) = ctx.block(stmt) else { return };
    let mut items = Vec::new();
    for line in &block.stmts {
        let k = line.key.text.to_ascii_lowercase();
        match (k.as_str(), line.args.as_slice()) {
            ("ipv4_address" | "ipv6_address", [v]) => {
                if let Some(p) = prefix(ctx, &line.key.text, v) {
                    items.push(p);
                }
            }
            _ => ctx.error(
                &line.key,
                format!(
                    "`IgnoreTrafficFor` lists `IPv4_address A` or `IPv6_address A`, found `{}`",
                    line.key.text
                ),
            ),
        }
    }
    ctx.warn(
        &stmt.key,
        "`IgnoreTrafficFor` is obsolete (conntrackd says so too): read as `Filter { Address \
         Ignore { ... } }`, which it should be written as",
    );
    match &mut filter.addresses {
        Some(f) if f.policy == Policy::Ignore => f.items.extend(items),
        Some(_) => ctx.error(
            &stmt.key,
            "`IgnoreTrafficFor` cannot be combined with `Address Accept` in `Filter`",
        ),
        None => {
            filter.addresses = Some(ListFilter {
                policy: Policy::Ignore,
                items,
            })
        }
    }
}

/// Adds a filter list to one read before (an older `IgnoreProtocol` / `IgnoreTrafficFor`):
/// the same policy extends it, the opposite one is an error rather than a silent replacement.
fn merge_list<T>(
    slot: &mut Option<ListFilter<T>>,
    policy: Policy,
    items: Vec<T>,
    key: &Word,
    ctx: &mut Ctx,
) {
    match slot {
        Some(f) if f.policy == policy => f.items.extend(items),
        Some(_) => ctx.error(
            key,
            format!(
                "`{}` contradicts an `Ignore...` clause read before it (one policy per list)",
                key.text
            ),
        ),
        None => *slot = Some(ListFilter { policy, items }),
    }
}
