//! tandem's own TOML configuration (`[sync]`), layered with `TANDEM_`-prefixed environment
//! variables (`TANDEM_SYNC__PORT=3781` overrides `[sync] port`).
//!
//! ```toml
//! [sync]
//! interface = "eth2"            # the dedicated sync link
//! local = "192.168.2.1"         # this node on it
//! peer = "192.168.2.2"          # unicast peer, or:  group = "225.0.0.50"
//! port = 3780
//! key_file = "/etc/tandem/sync.key"   # pre-shared key, mode 0600, 32 bytes or more
//!                                     # (`tandemctl keygen`); or `insecure_no_key = true`
//! peer_silent = 3               # seconds without the peer before a WARN line (default 3)
//! [sync.filter]
//! ignore_addresses = ["127.0.0.0/8", "::1"]
//! accept_protocols = ["TCP", "UDP", "ICMP"]
//! ```

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use figment2::providers::{Env, Format, Toml};
use figment2::Figment;
use serde::Deserialize;

use crate::diagnostic::Diagnostic;
use crate::model::Location;
use crate::sync::{FilterConfig, ListFilter, Policy, SyncConfig, Transport, DEFAULT_PORT};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    sync: Option<Sync>,
    metrics: Option<Metrics>,
    lb: Option<Lb>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lb {
    backend: Option<LbBackend>,
}

/// Which forwarding backend balances the virtual services (`[lb] backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbBackend {
    /// nftables, the tested one (the default).
    #[default]
    Auto,
    /// nftables: table `inet tandem_lb`, conntrack-based NAT.
    Nftables,
    /// IPVS through generic netlink, where the kernel has `ip_vs`.
    Ipvs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metrics {
    listen: std::net::SocketAddr,
}

/// The Prometheus listener (`[metrics] listen = "127.0.0.1:9650"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address and port of the HTTP listener serving `/metrics`.
    pub listen: std::net::SocketAddr,
    /// Where the section is.
    pub location: Location,
}

/// What a tandem TOML file configures.
#[derive(Debug, Default)]
pub(crate) struct Native {
    pub sync: Option<SyncConfig>,
    pub metrics: Option<MetricsConfig>,
    pub lb_backend: Option<LbBackend>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sync {
    interface: Option<String>,
    local: Option<IpAddr>,
    peer: Option<IpAddr>,
    group: Option<IpAddr>,
    port: Option<u16>,
    mtu: Option<usize>,
    key: Option<String>,
    key_file: Option<String>,
    insecure_no_key: Option<bool>,
    tcp_window_tracking: Option<bool>,
    max_entries: Option<usize>,
    resend_queue: Option<usize>,
    builtin_failover: Option<bool>,
    preempt_wait: Option<f64>,
    commit_wait: Option<f64>,
    peer_silent: Option<f64>,
    warm_standby: Option<bool>,
    #[serde(default)]
    filter: Filter,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Filter {
    accept_protocols: Option<Vec<String>>,
    ignore_protocols: Option<Vec<String>>,
    accept_addresses: Option<Vec<String>>,
    ignore_addresses: Option<Vec<String>>,
    accept_tcp_states: Option<Vec<String>>,
    ignore_tcp_states: Option<Vec<String>>,
    ignore_own_addresses: Option<bool>,
}

/// Reads a TOML file's `[sync]` and `[metrics]` sections; errors name file:line:column.
pub(crate) fn parse(text: &str, file: &Path) -> Result<Native, Vec<Diagnostic>> {
    let at = |line: u32, column: u32| Location {
        file: file.into(),
        line,
        column,
    };
    // Syntax first, with the TOML parser's own position.
    if let Err(e) = toml::from_str::<toml::Table>(text) {
        let (line, column) = e
            .span()
            .map(|s| line_column(text, s.start))
            .unwrap_or((1, 1));
        return Err(vec![Diagnostic::error(
            at(line, column),
            1,
            e.message().to_string(),
        )]);
    }
    // Only TANDEM_SYNC__*, TANDEM_METRICS__* and TANDEM_LB__* variables: others (TANDEM_CONTROL,
    // TANDEM_LOG) are not settings.
    let env = Env::prefixed("TANDEM_")
        .filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            key.starts_with("sync__") || key.starts_with("metrics__") || key.starts_with("lb__")
        })
        .split("__");
    let figment = Figment::from(Toml::string(text)).merge(env);
    let parsed: File = figment.extract().map_err(|e| {
        e.into_iter()
            .map(|e| {
                let key = e.path.last().cloned().unwrap_or_default();
                let (line, column) = find_key(text, &key).unwrap_or((1, 1));
                let from_env = e.metadata.as_ref().is_some_and(|m| m.name.contains("env"));
                let message = if from_env {
                    format!(
                        "environment override for `{}`: {}",
                        e.path.join("."),
                        e.kind
                    )
                } else {
                    format!("`{}`: {}", e.path.join("."), e.kind)
                };
                Diagnostic::error(at(line, column), key.len().max(1) as u32, message)
            })
            .collect::<Vec<_>>()
    })?;
    let metrics = parsed.metrics.map(|m| {
        let (line, column) = find_key(text, "[metrics]").unwrap_or((1, 1));
        MetricsConfig {
            listen: m.listen,
            location: at(line, column),
        }
    });
    let lb_backend = parsed.lb.and_then(|lb| lb.backend);
    let Some(sync) = parsed.sync else {
        return Ok(Native {
            sync: None,
            metrics,
            lb_backend,
        });
    };
    let (line, column) = find_key(text, "[sync]").unwrap_or((1, 1));
    let location = at(line, column);
    let error = |message: &str| vec![Diagnostic::error(location.clone(), 6, message.to_string())];
    let port = sync.port.unwrap_or(DEFAULT_PORT);
    let transport = match (sync.peer, sync.group, sync.local) {
        (Some(peer), None, Some(local)) => Transport::Udp { local, peer, port },
        (Some(_), None, None) => return Err(error("[sync] with `peer` needs `local` too")),
        (None, Some(group), local) => Transport::Multicast { group, local, port },
        (Some(_), Some(_), _) => return Err(error("[sync] takes `peer` or `group`, not both")),
        (None, None, _) => {
            return Err(error(
                "[sync] needs `peer` (unicast) or `group` (multicast)",
            ))
        }
    };
    let mut config = SyncConfig::with_transport(transport, location.clone());
    config.interface = sync.interface;
    config.mtu = sync.mtu.unwrap_or(config.mtu).clamp(576, 65_000);
    let key_error = |name: &str, message: String| {
        let (line, column) = find_key(text, name).unwrap_or((location.line, location.column));
        vec![Diagnostic::error(
            at(line, column),
            name.len() as u32,
            message,
        )]
    };
    config.key = match (
        sync.key,
        sync.key_file,
        sync.insecure_no_key.unwrap_or(false),
    ) {
        (Some(_), Some(_), _) => return Err(error("[sync] takes `key` or `key_file`, not both")),
        (Some(_), None, true) | (None, Some(_), true) => {
            return Err(key_error(
                "insecure_no_key",
                "`insecure_no_key = true` and a key: remove one of them".into(),
            ))
        }
        (Some(key), None, false) => {
            Some(strong_key(key.into_bytes(), "`key`").map_err(|m| key_error("key", m))?)
        }
        (None, Some(path), false) => {
            Some(read_key_file(Path::new(&path)).map_err(|m| key_error("key_file", m))?)
        }
        (None, None, true) => None,
        (None, None, false) => {
            return Err(error(&format!(
                "[sync] has no key: anyone who reaches UDP port {port} could insert or delete \
                 flows in both kernels. Write one with `tandemctl keygen /etc/tandem/sync.key`, \
                 copy it to the other node, and set `key_file = \"/etc/tandem/sync.key\"`; or \
                 set `insecure_no_key = true` to run unauthenticated on a link nobody else reaches"
            )))
        }
    };
    config.tcp_window_tracking = sync.tcp_window_tracking.unwrap_or(false);
    config.max_entries = sync.max_entries.unwrap_or(config.max_entries);
    config.resend_queue = sync.resend_queue.unwrap_or(config.resend_queue);
    config.builtin_failover = sync.builtin_failover.unwrap_or(true);
    config.warm_standby = sync.warm_standby.unwrap_or(config.builtin_failover);
    if let Some(secs) = sync.preempt_wait {
        config.preempt_wait = Duration::try_from_secs_f64(secs)
            .map_err(|_| error("[sync] preempt_wait must be a number of seconds"))?;
    }
    if let Some(secs) = sync.commit_wait {
        config.commit_wait = Duration::try_from_secs_f64(secs)
            .map_err(|_| error("[sync] commit_wait must be a number of seconds"))?;
    }
    if let Some(secs) = sync.peer_silent {
        config.peer_silent = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| error("[sync] peer_silent must be a positive number of seconds"))?;
    }
    config.filter = filter(sync.filter).map_err(|m| error(&m))?;
    Ok(Native {
        sync: Some(config),
        metrics,
        lb_backend,
    })
}

fn filter(f: Filter) -> Result<FilterConfig, String> {
    fn list<T>(
        accept: Option<Vec<T>>,
        ignore: Option<Vec<T>>,
        what: &str,
    ) -> Result<Option<ListFilter<T>>, String> {
        match (accept, ignore) {
            (Some(items), None) => Ok(Some(ListFilter {
                policy: Policy::Accept,
                items,
            })),
            (None, Some(items)) => Ok(Some(ListFilter {
                policy: Policy::Ignore,
                items,
            })),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(format!(
                "[sync.filter] accept_{what} and ignore_{what} exclude each other"
            )),
        }
    }
    let upper =
        |v: Option<Vec<String>>| v.map(|v| v.into_iter().map(|s| s.to_ascii_uppercase()).collect());
    let prefixes = |v: Option<Vec<String>>| -> Result<Option<Vec<(IpAddr, u8)>>, String> {
        v.map(|v| v.iter().map(|s| parse_prefix(s)).collect())
            .transpose()
    };
    Ok(FilterConfig {
        protocols: list(
            upper(f.accept_protocols),
            upper(f.ignore_protocols),
            "protocols",
        )?,
        addresses: list(
            prefixes(f.accept_addresses)?,
            prefixes(f.ignore_addresses)?,
            "addresses",
        )?,
        tcp_states: list(
            upper(f.accept_tcp_states),
            upper(f.ignore_tcp_states),
            "tcp_states",
        )?,
        ignore_own_addresses: f.ignore_own_addresses.unwrap_or(true),
    })
}

fn parse_prefix(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = text
        .split_once('/')
        .map_or((text, None), |(a, l)| (a, Some(l)));
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("[sync.filter] `{text}` is not an address or prefix"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match len.map(str::parse::<u8>) {
        None => Ok((addr, max)),
        Some(Ok(n)) if n <= max => Ok((addr, n)),
        Some(_) => Err(format!(
            "[sync.filter] `{text}`: prefix length must be 0..={max}"
        )),
    }
}

/// 1-based line and column of byte offset `at`.
fn line_column(text: &str, at: usize) -> (u32, u32) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u32, column as u32)
}

/// Shortest pre-shared key accepted: 256 bits, the size of the HMAC-SHA256 key.
pub const MIN_KEY_BYTES: usize = 32;

/// Reads a key file, refusing one that others can read or that is too short.
fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("[sync] key_file {shown}: {e}"))?;
    if !metadata.is_file() || metadata.len() > 4096 {
        return Err(format!(
            "[sync] key_file {shown} is not a regular file of at most 4096 bytes"
        ));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "[sync] key_file {shown} is open to group or others (mode {mode:04o}): \
             `chmod 600 {shown}`"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("[sync] key_file {shown}: {e}"))?;
    strong_key(bytes, &format!("key_file {shown}"))
}

/// The key without trailing whitespace (a newline from `echo` or an editor), when it is long
/// enough.
fn strong_key(mut key: Vec<u8>, what: &str) -> Result<Vec<u8>, String> {
    while key.last().is_some_and(u8::is_ascii_whitespace) {
        key.pop();
    }
    if key.len() < MIN_KEY_BYTES {
        let found = if key.is_empty() {
            "is empty".to_string()
        } else {
            format!("holds {} bytes", key.len())
        };
        return Err(format!(
            "[sync] {what} {found}: a key needs at least {MIN_KEY_BYTES} bytes \
             (`tandemctl keygen PATH` writes a good one)"
        ));
    }
    Ok(key)
}

/// Where `key` is first written at the start of a line (for errors serde reports by path).
fn find_key(text: &str, key: &str) -> Option<(u32, u32)> {
    text.lines().enumerate().find_map(|(i, l)| {
        let trimmed = l.trim_start();
        (!key.is_empty() && trimmed.starts_with(key))
            .then(|| ((i + 1) as u32, (l.len() - trimmed.len() + 1) as u32))
    })
}
