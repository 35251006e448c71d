//! Input types: what keepalived.conf says about virtual servers, real
//! servers and their checkers, with keepalived's defaults and inheritance
//! (virtual server → real server → checker) already applied by [`Timing::resolve`].
//!
//! These are the checkers' own types so the configuration parser and the
//! checkers can evolve apart; the daemon converts one into the other.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// keepalived's `delay_loop` default (`KEEPALIVED_DEFAULT_DELAY`).
pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's `connect_timeout` default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// keepalived's checker `retry` default.
pub const DEFAULT_RETRY: u32 = 1;
/// keepalived's checker `delay_before_retry` default.
pub const DEFAULT_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
/// keepalived waits this long after start before the first check (`BOOTSTRAP_DELAY`).
pub const BOOTSTRAP_DELAY: Duration = Duration::from_secs(1);

/// A script line (`notify_up`, `quorum_down`, `misc_path`): argv as
/// configured, run without a shell for notifies (keepalived appends no
/// argument to checker notifies: the operator's words are the arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// `username [groupname]` given after the script, if any.
    pub user: Option<String>,
}

impl Script {
    /// Splits a command line on whitespace (quoted arguments are the
    /// parser's job; this helper is for tests and simple lines).
    pub fn from_line(line: &str) -> Script {
        Script {
            argv: line.split_whitespace().map(str::to_string).collect(),
            user: None,
        }
    }
}

/// Settings that a virtual server, a real server or a checker may set,
/// each level inheriting what it leaves out from the one above.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimingOverrides {
    /// `delay_loop`: time between two checks of a healthy server.
    pub delay_loop: Option<Duration>,
    /// `retry` (`nb_get_retry`): retries after a failure before declaring a checker down.
    pub retry: Option<u32>,
    /// `delay_before_retry`: time between those retries.
    pub delay_before_retry: Option<Duration>,
    /// `warmup`: the first check starts at a random point in `[0, warmup]`.
    pub warmup: Option<Duration>,
    /// `connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// `alpha`: start a server down until its first success.
    pub alpha: Option<bool>,
}

/// One checker's resolved timing (keepalived's `checker_t` fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Time between checks.
    pub delay_loop: Duration,
    /// Retries after a first failure.
    pub retry: u32,
    /// Time before each retry.
    pub delay_before_retry: Duration,
    /// Upper bound of the random delay before the first check.
    pub warmup: Duration,
    /// Time allowed to connect (and, for probes, to answer).
    pub connect_timeout: Duration,
    /// Start down until the first success.
    pub alpha: bool,
}

impl Timing {
    /// Applies keepalived's inheritance: checker, then real server, then
    /// virtual server, then the built-in defaults (`warmup` defaults to the
    /// checker's own `delay_loop`, as in keepalived's `check_data.c`).
    pub fn resolve(
        vs: &TimingOverrides,
        rs: &TimingOverrides,
        checker: &TimingOverrides,
    ) -> Timing {
        let pick = |f: fn(&TimingOverrides) -> Option<Duration>| f(checker).or(f(rs)).or(f(vs));
        let delay_loop = pick(|o| o.delay_loop).unwrap_or(DEFAULT_DELAY_LOOP);
        Timing {
            delay_loop,
            retry: checker
                .retry
                .or(rs.retry)
                .or(vs.retry)
                .unwrap_or(DEFAULT_RETRY),
            delay_before_retry: pick(|o| o.delay_before_retry)
                .unwrap_or(DEFAULT_DELAY_BEFORE_RETRY),
            warmup: pick(|o| o.warmup).unwrap_or(delay_loop),
            connect_timeout: pick(|o| o.connect_timeout).unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            alpha: checker.alpha.or(rs.alpha).or(vs.alpha).unwrap_or(false),
        }
    }

    /// Timing with keepalived's defaults and the given `delay_loop`.
    pub fn with_delay_loop(delay_loop: Duration) -> Timing {
        Timing::resolve(
            &TimingOverrides {
                delay_loop: Some(delay_loop),
                ..Default::default()
            },
            &TimingOverrides::default(),
            &TimingOverrides::default(),
        )
    }
}

/// Where a checker connects (`connect_ip`, `connect_port`, `bindto`,
/// `bind_port`); defaults to the real server's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// Destination of the probe.
    pub to: SocketAddr,
    /// `bindto` / `bind_port`: local address of the probe.
    pub bind: Option<SocketAddr>,
}

/// `url { ... }` of an HTTP_GET / SSL_GET checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlSpec {
    /// `path`.
    pub path: String,
    /// `status_code`: accepted codes as inclusive ranges; empty means keepalived's 200-299.
    pub status_codes: Vec<(u16, u16)>,
    /// `digest`: expected MD5 of the body (16 bytes).
    pub digest: Option<[u8; 16]>,
    /// `regex`: the body must match (or, with `regex_no_match`, must not).
    pub regex: Option<String>,
    /// `regex_no_match`.
    pub regex_no_match: bool,
    /// `virtualhost` of this url, before the checker's own.
    pub virtualhost: Option<String>,
}

impl UrlSpec {
    /// A url that only asks for a 2xx status.
    pub fn path(path: &str) -> UrlSpec {
        UrlSpec {
            path: path.to_string(),
            status_codes: Vec::new(),
            digest: None,
            regex: None,
            regex_no_match: false,
            virtualhost: None,
        }
    }

    /// Whether `code` is accepted (keepalived's default is 200-299).
    pub fn accepts(&self, code: u16) -> bool {
        if self.status_codes.is_empty() {
            return (200..=299).contains(&code);
        }
        self.status_codes
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

/// `http_protocol`: the request line's version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpProtocol {
    /// `1.0` (keepalived's default).
    #[default]
    Http10,
    /// `1.0C`: HTTP/1.0 with `Connection: close`.
    Http10Close,
    /// `1.1`.
    Http11,
}

/// HTTP_GET and SSL_GET settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSpec {
    /// The urls, all of which must pass.
    pub urls: Vec<UrlSpec>,
    /// `virtualhost` (checker, else real server, else virtual server).
    pub virtualhost: Option<String>,
    /// `http_protocol`.
    pub protocol: HttpProtocol,
    /// `enable_sni` (SSL_GET): send the virtualhost as SNI.
    pub enable_sni: bool,
}

/// MISC_CHECK settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiscSpec {
    /// `misc_path`: a command line run through `/bin/sh -c`.
    pub path: String,
    /// `misc_timeout`; keepalived uses the virtual server's `delay_loop` when unset.
    pub timeout: Option<Duration>,
    /// `misc_dynamic`: exit status 2..=255 sets the weight to status - 2.
    pub dynamic: bool,
    /// `user USERNAME [GROUPNAME]`.
    pub user: Option<String>,
}

/// UDP_CHECK settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UdpSpec {
    /// `payload`; empty means keepalived's 32-byte filler.
    pub payload: Vec<u8>,
    /// `require_reply`: silence until `connect_timeout` is a failure.
    pub require_reply: bool,
    /// `require_reply HEX`: the answer's first bytes (only as many as arrived are compared).
    pub reply: Vec<u8>,
    /// `min_reply_length`, applied with `reply`.
    pub min_reply_length: u16,
    /// `max_reply_length`, applied with `reply`.
    pub max_reply_length: u16,
}

/// DNS_CHECK settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSpec {
    /// `type` (keepalived's default `SOA`).
    pub query_type: String,
    /// `name` (keepalived's default: the root).
    pub name: String,
}

/// SMTP_CHECK settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpSpec {
    /// `helo_name` (keepalived's default `smtpchecker.keepalived.org`).
    pub helo_name: String,
}

/// The checker kinds keepalived knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// `TCP_CHECK`: a connection within `connect_timeout`.
    Tcp,
    /// `HTTP_GET`.
    Http(HttpSpec),
    /// `SSL_GET`: HTTP over TLS, certificates not verified (keepalived's default).
    Ssl(HttpSpec),
    /// `MISC_CHECK`.
    Misc(MiscSpec),
    /// `SMTP_CHECK`: greeting 220, HELO answered 250, QUIT.
    Smtp(SmtpSpec),
    /// `DNS_CHECK`: a query answered with the query's id and NOERROR.
    Dns(DnsSpec),
    /// `UDP_CHECK`: a datagram, failed by an ICMP port unreachable or,
    /// with `require_reply`, by no or a mismatching answer.
    Udp(UdpSpec),
    /// `PING_CHECK`: an ICMP echo answered within `connect_timeout`.
    Ping,
    /// `FILE_CHECK`: no probe; the number in a `track_file` sets the server's weight or
    /// takes it out, as the daemon's file watcher reports it.
    File(FileCheckSpec),
    /// `BFD_CHECK` and other kinds tandem does not run.
    Other(String),
}

/// `FILE_CHECK { track_file NAME weight W [reverse] }`, with the track_file's own weight
/// when the checker gives none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileCheckSpec {
    /// The `track_file` block's name (the value reported under it).
    pub track_file: String,
    /// Multiplier of the file's number; 0: the number only says up (0) or down (not 0).
    pub weight: i32,
    /// The number counts negated (with weight 0: 0 means down).
    pub reverse: bool,
}

impl FileCheckSpec {
    /// What file value `value` does to the checker (keepalived's `update_track_file_status`):
    /// `None` takes it down (fault), `Some(w)` adds `w` to its server's weight.
    pub fn status(&self, value: i64) -> Option<i64> {
        if self.weight == 0 {
            return ((value != 0) == self.reverse).then_some(0);
        }
        let sign = if self.reverse { -1 } else { 1 };
        let status =
            (value * i64::from(self.weight) * sign).clamp(i64::from(i32::MIN), i64::from(i32::MAX));
        (status > i64::from(i32::MIN)).then_some(status)
    }
}

impl CheckKind {
    /// keepalived's keyword for this kind, for messages.
    pub fn keyword(&self) -> &str {
        match self {
            CheckKind::Tcp => "TCP_CHECK",
            CheckKind::Http(_) => "HTTP_GET",
            CheckKind::Ssl(_) => "SSL_GET",
            CheckKind::Misc(_) => "MISC_CHECK",
            CheckKind::Smtp(_) => "SMTP_CHECK",
            CheckKind::Dns(_) => "DNS_CHECK",
            CheckKind::Udp(_) => "UDP_CHECK",
            CheckKind::Ping => "PING_CHECK",
            CheckKind::File(_) => "FILE_CHECK",
            CheckKind::Other(k) => k,
        }
    }
}

/// One checker of a real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckerSpec {
    /// What to probe.
    pub kind: CheckKind,
    /// Where to connect.
    pub connect: Connect,
    /// Resolved timing.
    pub timing: Timing,
}

/// `real_server IP PORT { ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServerSpec {
    /// Address and port (port 0 for fwmark services).
    pub addr: SocketAddr,
    /// `weight` (default 1).
    pub weight: u32,
    /// `inhibit_on_failure`: a failed server stays with weight 0 instead of leaving.
    pub inhibit_on_failure: bool,
    /// `notify_up`.
    pub notify_up: Option<Script>,
    /// `notify_down`.
    pub notify_down: Option<Script>,
    /// Its checkers; none means always alive.
    pub checkers: Vec<CheckerSpec>,
}

impl RealServerSpec {
    /// A real server of weight 1 without checkers or scripts.
    pub fn new(addr: SocketAddr) -> RealServerSpec {
        RealServerSpec {
            addr,
            weight: 1,
            inhibit_on_failure: false,
            notify_up: None,
            notify_down: None,
            checkers: Vec::new(),
        }
    }
}

/// `sorry_server IP PORT` (+ `sorry_server_inhibit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SorryServer {
    /// Address and port.
    pub addr: SocketAddr,
    /// Kept in the pool with weight 0 while not needed.
    pub inhibit: bool,
}

/// `virtual_server ... { ... }`: what the checkers need of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServerSpec {
    /// How logs and the notify FIFO name it (`10.0.0.1:80`, `FWM 5`).
    pub name: String,
    /// `quorum` (default 1): alive weight needed for the service to be up.
    pub quorum: u32,
    /// `hysteresis` around the quorum.
    pub hysteresis: u32,
    /// `quorum_up` script.
    pub quorum_up: Option<Script>,
    /// `quorum_down` script.
    pub quorum_down: Option<Script>,
    /// `sorry_server`.
    pub sorry_server: Option<SorryServer>,
    /// `omega`: run the down notifies when tandem stops.
    pub omega: bool,
    /// Its real servers.
    pub real_servers: Vec<RealServerSpec>,
}

impl VirtualServerSpec {
    /// A service with keepalived's defaults (quorum 1, no hysteresis).
    pub fn new(name: &str, real_servers: Vec<RealServerSpec>) -> VirtualServerSpec {
        VirtualServerSpec {
            name: name.to_string(),
            quorum: 1,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            sorry_server: None,
            omega: false,
            real_servers,
        }
    }
}

/// The checker's address as keepalived's `FMT_RS` shows it: `[IP]:tcp:PORT`.
pub fn format_addr(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6.to_string(),
    };
    format!("[{ip}]:tcp:{}", addr.port())
}
