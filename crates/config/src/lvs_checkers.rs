//! The health-checker blocks of a `real_server` (`TCP_CHECK`, `HTTP_GET`, `MISC_CHECK`, ...)
//! as keepalived 2.2 reads them, kept with what they leave unset so that the real server and
//! virtual server can fill it in once the whole block is read (keepalived does the same after
//! the file is parsed: the order of the lines does not matter).

use std::net::IpAddr;
use std::time::Duration;

use crate::lvs::{
    BfdCheck, CheckTiming, Checker, Connection, DnsCheck, FileCheck, HttpCheck, HttpProtocol,
    MiscCheck, PingCheck, SmtpCheck, TcpCheck, UdpCheck, Url,
};
use crate::tree::{Stmt, Word};
use crate::values::Ctx;

/// The largest timer keepalived reads for a delay (it has no upper bound; a year is plenty).
pub(crate) const MAX_DELAY_SECS: u64 = 365 * 86400;
/// keepalived keeps connect timeouts in microseconds in 32 bits.
pub(crate) const MAX_CONNECT_TIMEOUT_SECS: u64 = 4294;

/// Timing as written in a checker block (or a real or virtual server), unset where not given.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TimingWords {
    pub delay_loop: Option<Duration>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub alpha: Option<bool>,
    pub log_all_failures: bool,
    pub connect_timeout: Option<Duration>,
}

/// Connection settings as written in a checker block.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ConnWords {
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub bind_address: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub bind_interface: Option<String>,
    pub timeout: Option<Duration>,
    pub fwmark: Option<u32>,
}

/// A checker as read, before the real and virtual servers' defaults are applied.
#[derive(Debug, Clone)]
pub(crate) struct ParsedChecker {
    /// The checker, with placeholder timing and connection.
    pub checker: Checker,
    pub timing: TimingWords,
    pub conn: Option<ConnWords>,
    /// SMTP_CHECK's `host` blocks.
    pub hosts: Vec<ConnWords>,
    /// keepalived's per-checker default for `retry`.
    pub default_retry: u32,
    /// keepalived's per-checker default for `delay_before_retry`; None: the delay_loop.
    pub default_delay_before_retry: Option<Duration>,
    /// Port used when neither connect_port nor the real server gives one (SMTP 25, DNS 53).
    pub default_port: u16,
}

/// The checker keywords of a `real_server` block.
pub(crate) const CHECKER_KEYWORDS: &[&str] = &[
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "BFD_CHECK",
    "FILE_CHECK",
];

/// Reads a checker block (`stmt` is `TCP_CHECK { ... }` etc.).
pub(crate) fn parse(stmt: &Stmt, ctx: &mut Ctx) -> Option<ParsedChecker> {
    let kind = stmt.key.text.as_str();
    if let Some(extra) = stmt.args.first() {
        // keepalived ignores words after a checker keyword.
        ctx.warn(
            extra,
            format!(
                "`{kind}` takes no value: `{}` is ignored, as keepalived ignores it",
                extra.text
            ),
        );
    }
    let Some(block) = stmt.block.as_ref() else {
        ctx.error(&stmt.key, format!("`{kind}` expects a block `{{ ... }}`"));
        return None;
    };
    let loc = stmt.key.loc.clone();
    let mut timing = TimingWords::default();
    let mut conn = ConnWords::default();
    let mut p = ParsedChecker {
        checker: Checker::Tcp(TcpCheck {
            connection: placeholder_connection(),
            timing: placeholder_timing(),
            location: loc.clone(),
        }),
        timing,
        conn: None,
        hosts: Vec::new(),
        default_retry: 1,
        default_delay_before_retry: Some(Duration::from_secs(1)),
        default_port: 0,
    };
    let connects = !matches!(kind, "MISC_CHECK" | "BFD_CHECK" | "FILE_CHECK");
    let common = !matches!(kind, "BFD_CHECK" | "FILE_CHECK");
    let mut http = HttpWords::default();
    let mut misc = MiscWords::default();
    let mut helo_name: Option<String> = None;
    let mut dns = (None::<String>, None::<String>);
    let mut udp = UdpWords {
        max_reply_length: 255,
        ..UdpWords::default()
    };
    let mut bfd: (Option<String>, bool) = (None, false);
    let mut file: (Option<String>, Option<(i32, bool)>) = (None, None);
    let mut hosts = Vec::new();
    for s in &block.stmts {
        let k = s.key.text.as_str();
        if connects && connection_keyword(s, &mut conn, ctx) {
            continue;
        }
        if common && timing_keyword(s, &mut timing, ctx) {
            continue;
        }
        match (kind, k) {
            ("HTTP_GET" | "SSL_GET", _) if http_keyword(s, &mut http, ctx) => {}
            ("MISC_CHECK", _) if misc_keyword(s, &mut misc, ctx) => {}
            ("SMTP_CHECK", "helo_name") => {
                if let Some(w) = ctx.one(s, "a host name") {
                    helo_name = Some(w.text.clone());
                }
            }
            ("SMTP_CHECK", "host") => {
                if let Some(b) = ctx.block(s) {
                    let mut host = ConnWords::default();
                    for h in &b.stmts {
                        if connection_keyword(h, &mut host, ctx) {
                            continue;
                        }
                        // keepalived applies these to the SMTP_CHECK itself.
                        if timing_keyword(h, &mut timing, ctx) {
                            continue;
                        }
                        ctx.unknown(h, "SMTP_CHECK host");
                    }
                    hosts.push(host);
                }
            }
            ("DNS_CHECK", "type") => {
                if let Some(w) = ctx.one(s, "a DNS type") {
                    let t = w.text.to_ascii_uppercase();
                    if DNS_TYPES.contains(&t.as_str()) {
                        dns.0 = Some(t);
                    } else {
                        ctx.error(
                            w,
                            format!(
                                "DNS_CHECK `type` expects one of {}, found `{}`",
                                DNS_TYPES.join(", "),
                                w.text
                            ),
                        );
                    }
                }
            }
            ("DNS_CHECK", "name") => {
                if let Some(w) = ctx.one(s, "a domain name") {
                    if dns.1.is_some() {
                        ctx.error(w, "DNS_CHECK `name` is given twice");
                    } else if has_empty_label(&w.text) {
                        ctx.error(
                            w,
                            format!("DNS_CHECK `name` `{}` has an empty label", w.text),
                        );
                    } else {
                        dns.1 = Some(w.text.clone());
                    }
                }
            }
            ("UDP_CHECK", _) if udp_keyword(s, &mut udp, ctx) => {}
            ("BFD_CHECK", "name") => {
                if let Some(w) = ctx.one(s, "a bfd_instance name") {
                    bfd.0 = Some(w.text.clone());
                }
            }
            ("BFD_CHECK", "alpha") => {
                if let Some(v) = ctx.flag(s) {
                    bfd.1 = v;
                }
            }
            ("FILE_CHECK", "track_file") => {
                if let Some(w) = ctx.one(s, "a track_file name") {
                    file.0 = Some(w.text.clone());
                }
            }
            ("FILE_CHECK", "weight") => {
                if ctx.no_block(s) {
                    if s.args.is_empty() {
                        ctx.error(&s.key, "`weight` expects N [reverse|noreverse]");
                    } else if let Some(w) = ctx.weight_within("weight", &s.args, i32::MAX) {
                        file.1 = Some(w);
                    }
                }
            }
            _ => ctx.unknown(s, kind),
        }
    }
    p.timing = timing;
    p.checker = match kind {
        "TCP_CHECK" => Checker::Tcp(TcpCheck {
            connection: placeholder_connection(),
            timing: placeholder_timing(),
            location: loc,
        }),
        "PING_CHECK" => Checker::Ping(PingCheck {
            connection: placeholder_connection(),
            timing: placeholder_timing(),
            location: loc,
        }),
        "HTTP_GET" | "SSL_GET" => {
            if http.urls.is_empty() {
                ctx.error(&stmt.key, format!("`{kind}` has no `url` block"));
                return None;
            }
            p.default_delay_before_retry = Some(Duration::from_secs(3));
            let check = HttpCheck {
                connection: placeholder_connection(),
                timing: placeholder_timing(),
                urls: http.urls,
                virtualhost: http.virtualhost,
                http_protocol: http.protocol.unwrap_or(HttpProtocol::Http10),
                enable_sni: http.enable_sni,
                fast_recovery: http.fast_recovery,
                tls_compliant: http.tls_compliant,
                location: loc,
            };
            if kind == "HTTP_GET" {
                Checker::Http(check)
            } else {
                Checker::Ssl(check)
            }
        }
        "MISC_CHECK" => {
            let Some(path) = misc.path else {
                ctx.error(&stmt.key, "MISC_CHECK has no `misc_path`");
                return None;
            };
            p.default_retry = 0;
            Checker::Misc(MiscCheck {
                path,
                timeout: misc.timeout,
                dynamic: misc.dynamic,
                user: misc.user,
                group: misc.group,
                timing: placeholder_timing(),
                location: loc,
            })
        }
        "SMTP_CHECK" => {
            p.default_port = 25;
            p.hosts = hosts;
            Checker::Smtp(SmtpCheck {
                connection: placeholder_connection(),
                hosts: Vec::new(),
                helo_name: helo_name.unwrap_or_else(|| "smtpchecker.keepalived.org".to_owned()),
                timing: placeholder_timing(),
                location: loc,
            })
        }
        "DNS_CHECK" => {
            p.default_retry = 3;
            p.default_delay_before_retry = None;
            p.default_port = 53;
            Checker::Dns(DnsCheck {
                connection: placeholder_connection(),
                query_type: dns.0.unwrap_or_else(|| "SOA".to_owned()),
                name: dns.1.unwrap_or_default(),
                timing: placeholder_timing(),
                location: loc,
            })
        }
        "UDP_CHECK" => {
            if udp.min_reply_length > udp.max_reply_length {
                ctx.error(
                    &stmt.key,
                    format!(
                        "UDP_CHECK min_reply_length {} > max_reply_length {}: the check would always fail",
                        udp.min_reply_length, udp.max_reply_length
                    ),
                );
            }
            Checker::Udp(UdpCheck {
                connection: placeholder_connection(),
                payload: udp.payload,
                require_reply: udp.require_reply,
                reply: udp.reply,
                min_reply_length: udp.min_reply_length,
                max_reply_length: udp.max_reply_length,
                timing: placeholder_timing(),
                location: loc,
            })
        }
        "BFD_CHECK" => {
            let Some(name) = bfd.0 else {
                ctx.error(&stmt.key, "BFD_CHECK has no `name` of a bfd_instance");
                return None;
            };
            Checker::Bfd(BfdCheck {
                name,
                alpha: bfd.1,
                location: loc,
            })
        }
        _ => {
            let Some(track_file) = file.0 else {
                ctx.error(&stmt.key, "FILE_CHECK has no `track_file`");
                return None;
            };
            Checker::File(FileCheck {
                track_file,
                weight: file.1,
                location: loc,
            })
        }
    };
    if connects {
        p.conn = Some(conn);
    }
    Some(p)
}

/// The DNS types keepalived's DNS_CHECK can ask for.
const DNS_TYPES: &[&str] = &[
    "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY",
];

fn has_empty_label(name: &str) -> bool {
    (name.starts_with('.') && name != ".") || name.contains("..")
}

fn placeholder_connection() -> Connection {
    Connection {
        address: IpAddr::from([0, 0, 0, 0]),
        port: 0,
        bind_address: None,
        bind_port: None,
        bind_interface: None,
        timeout: Duration::ZERO,
        fwmark: None,
    }
}

fn placeholder_timing() -> CheckTiming {
    CheckTiming {
        delay_loop: Duration::ZERO,
        retry: 0,
        delay_before_retry: Duration::ZERO,
        warmup: Duration::ZERO,
        alpha: false,
        log_all_failures: false,
    }
}

/// `retry`, `delay_before_retry`, `warmup`, `delay_loop`, `alpha`, `log_all_failures`:
/// returns whether `s` was one of them.
pub(crate) fn timing_keyword(s: &Stmt, t: &mut TimingWords, ctx: &mut Ctx) -> bool {
    match s.key.text.as_str() {
        "retry" => {
            if let Some(v) = ctx.int(s, 0u32, u32::MAX) {
                t.retry = Some(v);
            }
        }
        "delay_before_retry" => {
            if let Some(v) = ctx.seconds(s, MAX_DELAY_SECS) {
                t.delay_before_retry = Some(v);
            }
        }
        "warmup" => {
            if let Some(v) = ctx.seconds(s, MAX_DELAY_SECS) {
                t.warmup = Some(v);
            }
        }
        "delay_loop" => {
            if let Some(v) = positive_seconds(s, MAX_DELAY_SECS, ctx) {
                t.delay_loop = Some(v);
            }
        }
        "alpha" => {
            if let Some(v) = ctx.flag(s) {
                t.alpha = Some(v);
            }
        }
        "log_all_failures" => {
            if let Some(v) = ctx.flag(s) {
                t.log_all_failures = v;
            }
        }
        _ => return false,
    }
    true
}

/// A duration that must be more than 0 (`delay_loop`, `connect_timeout`).
pub(crate) fn positive_seconds(s: &Stmt, max: u64, ctx: &mut Ctx) -> Option<Duration> {
    let v = ctx.seconds(s, max)?;
    if v.is_zero() {
        ctx.error(
            &s.args[0],
            format!("`{}` must be greater than 0", s.key.text),
        );
        return None;
    }
    Some(v)
}

/// `connect_ip`, `connect_port`, `bindto`, `bind_port`, `bind_if`, `connect_timeout`,
/// `fwmark`: returns whether `s` was one of them.
fn connection_keyword(s: &Stmt, c: &mut ConnWords, ctx: &mut Ctx) -> bool {
    let k = s.key.text.as_str();
    match k {
        "connect_ip" | "bindto" => {
            let Some(w) = ctx.one(s, "an IPv4 or IPv6 address") else {
                return true;
            };
            let Some(a) = ctx.ip(k, w) else { return true };
            let other = if k == "connect_ip" {
                c.bind_address
            } else {
                c.address
            };
            if other.is_some_and(|o| o.is_ipv4() != a.is_ipv4()) {
                ctx.error(
                    w,
                    "`connect_ip` and `bindto` must be of the same address family",
                );
            } else if k == "connect_ip" {
                c.address = Some(a);
            } else {
                c.bind_address = Some(a);
            }
        }
        "connect_port" => {
            if let Some(v) = ctx.int(s, 1u16, 65535) {
                c.port = Some(v);
            }
        }
        "bind_port" => {
            if let Some(v) = ctx.int(s, 1u16, 65535) {
                c.bind_port = Some(v);
            }
        }
        "bind_if" => {
            if let Some(w) = ctx.one(s, "an interface name") {
                if w.text.len() > 15 {
                    ctx.error(
                        w,
                        format!("interface name `{}` is longer than 15 bytes", w.text),
                    );
                } else {
                    c.bind_interface = Some(w.text.clone());
                }
            }
        }
        "connect_timeout" => {
            if let Some(v) = positive_seconds(s, MAX_CONNECT_TIMEOUT_SECS, ctx) {
                c.timeout = Some(v);
            }
        }
        "fwmark" => {
            if let Some(v) = ctx.int(s, 0u32, u32::MAX) {
                c.fwmark = Some(v);
            }
        }
        _ => return false,
    }
    true
}

#[derive(Default)]
struct HttpWords {
    urls: Vec<Url>,
    virtualhost: Option<String>,
    protocol: Option<HttpProtocol>,
    enable_sni: bool,
    fast_recovery: bool,
    tls_compliant: bool,
}

fn http_keyword(s: &Stmt, h: &mut HttpWords, ctx: &mut Ctx) -> bool {
    match s.key.text.as_str() {
        "virtualhost" => {
            if let Some(w) = ctx.one(s, "a host name") {
                h.virtualhost = Some(w.text.clone());
            }
        }
        "http_protocol" => {
            if let Some(w) = ctx.one(s, "1.0, 1.0C or 1.1") {
                match w.text.as_str() {
                    "1.0" => h.protocol = Some(HttpProtocol::Http10),
                    "1.0C" | "1.0c" => h.protocol = Some(HttpProtocol::Http10Close),
                    "1.1" => h.protocol = Some(HttpProtocol::Http11),
                    other => ctx.error(
                        w,
                        format!("`http_protocol` expects 1.0, 1.0C or 1.1, found `{other}`"),
                    ),
                }
            }
        }
        "enable_sni" => {
            if let Some(v) = ctx.flag(s) {
                h.enable_sni = v;
            }
        }
        "fast_recovery" => {
            if let Some(v) = ctx.flag(s) {
                h.fast_recovery = v;
            }
        }
        "tls_compliant" => {
            if let Some(v) = ctx.flag(s) {
                h.tls_compliant = v;
            }
        }
        "nb_get_retry" => {
            // keepalived still reads it, but reports it as a configuration error.
            ctx.error(
                &s.key,
                "`nb_get_retry` is deprecated: write `retry` (keepalived refuses it too)",
            );
        }
        "url" => {
            if let Some(b) = ctx.block(s) {
                if let Some(u) = url(s, &b.stmts, ctx) {
                    h.urls.push(u);
                }
            }
        }
        _ => return false,
    }
    true
}

fn url(stmt: &Stmt, stmts: &[Stmt], ctx: &mut Ctx) -> Option<Url> {
    let mut u = Url {
        path: String::new(),
        digest: None,
        status_codes: Vec::new(),
        virtualhost: None,
        regex: None,
        regex_no_match: false,
        regex_options: Vec::new(),
        regex_min_offset: None,
        regex_max_offset: None,
        tls_compliant: false,
        location: stmt.key.loc.clone(),
    };
    let mut has_path = false;
    let mut regex_words: Option<Word> = None;
    for s in stmts {
        match s.key.text.as_str() {
            "path" => {
                if let Some(w) = ctx.one(s, "a URL path") {
                    u.path = w.text.clone();
                    has_path = true;
                }
            }
            "digest" => {
                if let Some(w) = ctx.one(s, "32 hex digits (genhash's MD5)") {
                    if u.digest.is_some() {
                        ctx.error(w, "`digest` is given twice in this url");
                    } else {
                        u.digest = parse_digest(w, ctx);
                    }
                }
            }
            "status_code" => {
                if ctx.no_block(s) {
                    for w in &s.args {
                        match parse_status_range(&w.text) {
                            Some(r) => u.status_codes.push(r),
                            None => ctx.error(
                                w,
                                format!(
                                    "`status_code` expects codes or ranges in 100..=599 (e.g. 200 or 200-299), found `{}`",
                                    w.text
                                ),
                            ),
                        }
                    }
                }
            }
            "virtualhost" => {
                if let Some(w) = ctx.one(s, "a host name") {
                    u.virtualhost = Some(w.text.clone());
                }
            }
            "regex" => {
                if let Some(w) = ctx.one(s, "a regular expression") {
                    u.regex = Some(w.text.clone());
                    regex_words = Some(w.clone());
                }
            }
            "regex_no_match" => {
                if ctx.switch(s).is_some() {
                    u.regex_no_match = true;
                }
            }
            "regex_options" => {
                for w in &s.args {
                    if REGEX_OPTIONS.contains(&w.text.as_str()) {
                        u.regex_options.push(w.text.clone());
                    } else {
                        ctx.warn(
                            w,
                            format!(
                                "unknown regex option `{}` is ignored, as keepalived ignores it",
                                w.text
                            ),
                        );
                    }
                }
            }
            k @ ("regex_min_offset" | "regex_max_offset") => {
                if let Some(w) = ctx.one(s, "a byte offset") {
                    match w.text.parse::<usize>() {
                        Ok(v) if k == "regex_min_offset" => u.regex_min_offset = Some(v),
                        Ok(v) => u.regex_max_offset = Some(v),
                        Err(_) => ctx.warn(
                            w,
                            format!(
                                "`{k}` `{}` is not a number: ignored, as keepalived ignores it",
                                w.text
                            ),
                        ),
                    }
                }
            }
            "regex_stack" => ctx.warn(
                &s.key,
                "`regex_stack` sizes keepalived's PCRE JIT stack; tandem's regex engine has none (ignored)",
            ),
            "tls_compliant" => {
                if let Some(v) = ctx.flag(s) {
                    u.tls_compliant = v;
                }
            }
            _ => ctx.unknown(s, "url"),
        }
    }
    if !has_path {
        ctx.error(&stmt.key, "`url` has no `path`");
        return None;
    }
    if u.status_codes.is_empty() {
        u.status_codes.push(200..=299);
    }
    if u.regex.is_none()
        && (u.regex_no_match
            || !u.regex_options.is_empty()
            || u.regex_min_offset.is_some()
            || u.regex_max_offset.is_some())
    {
        ctx.warn(
            &stmt.key,
            "regex settings without `regex` are ignored, as keepalived ignores them",
        );
        u.regex_no_match = false;
        u.regex_options.clear();
        u.regex_min_offset = None;
        u.regex_max_offset = None;
    }
    if let (Some(min), Some(max)) = (u.regex_min_offset, u.regex_max_offset) {
        if min > max {
            let at = regex_words.as_ref().unwrap_or(&stmt.key);
            ctx.warn(
                at,
                format!("regex_min_offset {min} > regex_max_offset {max}: both are ignored, as keepalived ignores them"),
            );
            u.regex_min_offset = None;
            u.regex_max_offset = None;
        }
    }
    Some(u)
}

/// PCRE2 options keepalived's `regex_options` knows.
const REGEX_OPTIONS: &[&str] = &[
    "allow_empty_class",
    "alt_bsux",
    "auto_callout",
    "caseless",
    "dollar_endonly",
    "dotall",
    "dupnames",
    "extended",
    "extended_more",
    "firstline",
    "match_unset_backref",
    "multiline",
    "never_ucp",
    "never_utf",
    "no_auto_capture",
    "no_auto_possess",
    "no_dotstar_anchor",
    "no_start_optimize",
    "ucp",
    "ungreedy",
    "utf",
    "never_backslash_c",
    "alt_circumflex",
    "alt_verbnames",
    "use_offset_limit",
];

fn parse_digest(w: &Word, ctx: &mut Ctx) -> Option<[u8; 16]> {
    let t = &w.text;
    if t.len() != 32 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        ctx.error(
            w,
            format!(
                "`digest` expects 32 hex digits (the MD5 genhash prints), found `{t}` ({} characters)",
                t.len()
            ),
        );
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn parse_status_range(t: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let (lo, hi) = t.split_once('-').unwrap_or((t, t));
    let lo: u16 = lo.parse().ok()?;
    let hi: u16 = hi.parse().ok()?;
    ((100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi).then_some(lo..=hi)
}

#[derive(Default)]
struct MiscWords {
    path: Option<String>,
    timeout: Option<Duration>,
    dynamic: bool,
    user: Option<String>,
    group: Option<String>,
}

fn misc_keyword(s: &Stmt, m: &mut MiscWords, ctx: &mut Ctx) -> bool {
    match s.key.text.as_str() {
        "misc_path" => {
            if ctx.no_block(s) {
                if s.args.is_empty() {
                    ctx.error(&s.key, "`misc_path` expects a script (and its arguments)");
                } else {
                    let words: Vec<&str> = s.args.iter().map(|w| w.text.as_str()).collect();
                    m.path = Some(words.join(" "));
                }
            }
        }
        "misc_timeout" => {
            if let Some(v) = ctx.int(s, 0u32, u32::MAX / 1_000_000) {
                m.timeout = Some(Duration::from_secs(v.into()));
            }
        }
        "misc_dynamic" => {
            if ctx.switch(s).is_some() {
                m.dynamic = true;
            }
        }
        "user" => {
            if ctx.no_block(s) {
                match s.args.as_slice() {
                    [] => ctx.error(&s.key, "`user` expects USER [GROUP]"),
                    [user, rest @ ..] => {
                        m.user = Some(user.text.clone());
                        m.group = rest.first().map(|w| w.text.clone());
                    }
                }
            }
        }
        _ => return false,
    }
    true
}

#[derive(Default)]
struct UdpWords {
    payload: Vec<u8>,
    require_reply: bool,
    reply: Vec<u8>,
    min_reply_length: u16,
    max_reply_length: u16,
}

fn udp_keyword(s: &Stmt, u: &mut UdpWords, ctx: &mut Ctx) -> bool {
    match s.key.text.as_str() {
        "payload" => {
            if s.args.is_empty() {
                ctx.error(&s.key, "`payload` expects hex bytes");
            } else if let Some(b) = hex_words(&s.args, ctx) {
                u.payload = b;
            }
        }
        "require_reply" => {
            u.require_reply = true;
            if !s.args.is_empty() {
                if let Some(b) = hex_words(&s.args, ctx) {
                    u.reply = b;
                }
            }
        }
        "min_reply_length" => {
            if let Some(v) = ctx.int(s, 0u16, u16::MAX) {
                u.min_reply_length = v;
            }
        }
        "max_reply_length" => {
            if let Some(v) = ctx.int(s, 0u16, u16::MAX) {
                u.max_reply_length = v;
            }
        }
        _ => return false,
    }
    true
}

/// Hex bytes written as one or more words (`payload 0a0b 0c`).
fn hex_words(words: &[Word], ctx: &mut Ctx) -> Option<Vec<u8>> {
    let joined: String = words.iter().map(|w| w.text.as_str()).collect();
    let digits: String = joined.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.is_empty()
        || !digits.len().is_multiple_of(2)
        || !digits.bytes().all(|b| b.is_ascii_hexdigit())
    {
        ctx.error(
            &words[0],
            format!("expects an even number of hex digits, found `{joined}`"),
        );
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).ok())
        .collect()
}

/// What a checker inherits from its real and virtual servers.
pub(crate) struct Inherited<'a> {
    pub address: IpAddr,
    pub port: u16,
    pub rs: &'a TimingWords,
    pub vs: &'a TimingWords,
    pub vs_delay_loop: Duration,
    pub vs_connect_timeout: Duration,
}

/// Fills in what the checker left unset, as keepalived's validate_check_config does.
pub(crate) fn resolve(p: ParsedChecker, from: &Inherited) -> Checker {
    let t = &p.timing;
    let delay_loop = t
        .delay_loop
        .or(from.rs.delay_loop)
        .unwrap_or(from.vs_delay_loop);
    let timing = CheckTiming {
        delay_loop,
        retry: t
            .retry
            .or(from.rs.retry)
            .or(from.vs.retry)
            .unwrap_or(p.default_retry),
        delay_before_retry: t
            .delay_before_retry
            .or(from.rs.delay_before_retry)
            .or(from.vs.delay_before_retry)
            .or(p.default_delay_before_retry)
            .unwrap_or(delay_loop),
        warmup: t
            .warmup
            .or(from.rs.warmup)
            .or(from.vs.warmup)
            .unwrap_or(delay_loop),
        alpha: t.alpha.or(from.rs.alpha).or(from.vs.alpha).unwrap_or(false),
        log_all_failures: t.log_all_failures,
    };
    let timeout = from.rs.connect_timeout.unwrap_or(from.vs_connect_timeout);
    let connection = |c: &ConnWords| Connection {
        address: c.address.unwrap_or(from.address),
        port: c
            .port
            .or((from.port != 0).then_some(from.port))
            .unwrap_or(p.default_port),
        bind_address: c.bind_address,
        bind_port: c.bind_port,
        bind_interface: c.bind_interface.clone(),
        timeout: c.timeout.unwrap_or(timeout),
        fwmark: c.fwmark,
    };
    let conn = p.conn.as_ref().map(connection);
    let hosts: Vec<Connection> = p.hosts.iter().map(connection).collect();
    let mut checker = p.checker;
    match &mut checker {
        Checker::Tcp(c) => {
            c.timing = timing;
            c.connection = conn.unwrap_or_else(placeholder_connection);
        }
        Checker::Ping(c) => {
            c.timing = timing;
            c.connection = conn.unwrap_or_else(placeholder_connection);
        }
        Checker::Http(c) | Checker::Ssl(c) => {
            c.timing = timing;
            c.connection = conn.unwrap_or_else(placeholder_connection);
        }
        Checker::Smtp(c) => {
            c.timing = timing;
            // keepalived: an SMTP_CHECK that sets no connection word of its own but has
            // (deprecated) `host` blocks checks the first host in its place; every other
            // host is one more checker with the same timing and HELO name.
            let own_words = p.conn.as_ref().is_some_and(|w| *w != ConnWords::default());
            let mut hosts = hosts.into_iter();
            c.connection = match hosts.len() {
                n if n > 0 && !own_words => hosts.next().expect("one host"),
                _ => conn.unwrap_or_else(placeholder_connection),
            };
            c.hosts = hosts.collect();
        }
        Checker::Dns(c) => {
            c.timing = timing;
            c.connection = conn.unwrap_or_else(placeholder_connection);
        }
        Checker::Udp(c) => {
            c.timing = timing;
            c.connection = conn.unwrap_or_else(placeholder_connection);
        }
        Checker::Misc(c) => c.timing = timing,
        Checker::Bfd(_) | Checker::File(_) => {}
    }
    checker
}

/// A link-local IPv6 checker address needs `bind_if`, as keepalived requires.
pub(crate) fn check_link_local(c: &Checker, at: &Word, ctx: &mut Ctx) {
    let Some(conn) = c.connection() else { return };
    if let IpAddr::V6(a) = conn.address {
        if (a.segments()[0] & 0xffc0) == 0xfe80 && conn.bind_interface.is_none() {
            ctx.error(
                at,
                format!(
                    "{}: link-local address {a} needs `bind_if` to say which interface",
                    c.keyword()
                ),
            );
        }
    }
}
