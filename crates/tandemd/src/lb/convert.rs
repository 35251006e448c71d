//! keepalived.conf's LVS side (the configuration model) turned into what the load balancer
//! runs: one checker spec and one or more nftables services per `virtual_server`, and a located
//! warning for everything that will not happen as written (TUN forwarding, DR where it cannot
//! be done, checkers tandem does not run, schedulers nftables approximates, settings not
//! applied).
//!
//! Pure: no sockets, no files; the daemon's load balancer starts what this returns.

use std::net::{IpAddr, SocketAddr};

use tandem_config::{
    CheckTiming, Checker, Config, Connection, Diagnostic, Family, Granularity, GroupEntry,
    HttpCheck, LbKind, Location, RealServer, ServiceAddress, VirtualServer,
};
use tandem_lb::check::{
    spec::DEFAULT_CONNECT_TIMEOUT, CheckKind, CheckerSpec, Connect, DnsSpec, FileCheckSpec,
    HttpProtocol, HttpSpec, MiscSpec, RealServerSpec, Script, SmtpSpec, SorryServer, Timing,
    UdpSpec, UrlSpec, VirtualServerSpec,
};
use tandem_lb::{
    DrPaths, Forwarding, Persistence, Protocol, Scheduler, Server, Service, ServiceKey,
};

/// The most addresses one `virtual_server_group` range may expand to (keepalived's ranges
/// vary the last byte only, so 256 covers every range it accepts).
const MAX_RANGE: u32 = 256;

/// One `virtual_server` as the load balancer runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedService {
    /// The checkers' input for this virtual server (a single service: its checker ids all
    /// have `vs == 0`).
    pub spec: VirtualServerSpec,
    /// The nftables services that share this pool (one per address of a group), with no
    /// servers: the checkers' pool fills them.
    pub templates: Vec<Service>,
    /// Where the block starts, for messages.
    pub location: Location,
}

impl PlannedService {
    /// The services to program for `pool` (real servers, and the sorry server when the
    /// checkers put it in).
    pub fn services(&self, pool: &[tandem_lb::check::Destination]) -> Vec<Service> {
        let servers: Vec<Server> = pool
            .iter()
            .map(|d| Server {
                addr: d.addr.ip(),
                port: d.addr.port(),
                weight: d.weight,
            })
            .collect();
        (self.templates.iter())
            .map(|t| Service {
                servers: servers.clone(),
                ..t.clone()
            })
            .collect()
    }
}

/// Everything the configuration asks the load balancer to do, and what it will not do.
#[derive(Debug, Default)]
pub struct Conversion {
    /// The virtual servers that run, in file order.
    pub services: Vec<PlannedService>,
    /// Located warnings (file:line) for what is not applied as written.
    pub warnings: Vec<Diagnostic>,
}

/// Converts every `virtual_server` of `config`.
pub fn convert(config: &Config) -> Conversion {
    let mut out = Conversion::default();
    let mut taken: Vec<ServiceKey> = Vec::new();
    for vs in &config.virtual_servers {
        let mut warnings = Vec::new();
        let Some(planned) = convert_one(vs, config, &mut warnings) else {
            out.warnings.extend(warnings);
            continue;
        };
        if let Some(dup) = planned.templates.iter().find(|t| taken.contains(&t.key)) {
            warnings.push(warn(
                &vs.location,
                "virtual_server",
                format!(
                    "this virtual service ({}) is already balanced by an earlier \
                     virtual_server: this one is not applied",
                    key_name(&dup.key)
                ),
            ));
            out.warnings.extend(warnings);
            continue;
        }
        // What the backend would refuse is known now, with every server in.
        let everyone: Vec<tandem_lb::check::Destination> = (planned.spec.real_servers.iter())
            .map(|r| tandem_lb::check::Destination {
                addr: r.addr,
                weight: r.weight,
            })
            .chain(
                planned
                    .spec
                    .sorry_server
                    .iter()
                    .map(|s| tandem_lb::check::Destination {
                        addr: s.addr,
                        weight: 1,
                    }),
            )
            .collect();
        // What nftables cannot express (TUN) IPVS does: only the nftables backend checks.
        let nftables = config.lb_backend != tandem_config::LbBackend::Ipvs;
        let planned_ok = match nftables {
            true => tandem_lb::plan::validate(&planned.services(&everyone)),
            false => Ok(()),
        };
        if let Err(e) = planned_ok {
            warnings.push(warn(
                &vs.location,
                "virtual_server",
                format!(
                    "{e}: this virtual server is not balanced and its real servers are not checked"
                ),
            ));
            out.warnings.extend(warnings);
            continue;
        }
        taken.extend(planned.templates.iter().map(|t| t.key));
        out.warnings.extend(warnings);
        out.services.push(planned);
    }
    out
}

fn warn(at: &Location, keyword: &str, message: String) -> Diagnostic {
    Diagnostic::warning(at.clone(), keyword.len() as u32, message)
}

/// How messages and keepalived's logs name a service (`10.0.0.1:80`, `FWM 5`).
pub fn key_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { vip, port, .. } => SocketAddr::new(*vip, *port).to_string(),
        ServiceKey::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

fn convert_one(
    vs: &VirtualServer,
    config: &Config,
    warnings: &mut Vec<Diagnostic>,
) -> Option<PlannedService> {
    let forwarding = match vs.lb_kind {
        LbKind::Nat => Forwarding::Nat,
        LbKind::Dr => Forwarding::DirectRouting,
        LbKind::Tun(_) => Forwarding::Tunnel,
    };
    let scheduler = scheduler(vs, forwarding, config.lb_backend, warnings);
    let protocol = match vs.protocol {
        Some(tandem_config::Protocol::Udp) => Protocol::Udp,
        Some(tandem_config::Protocol::Sctp) => Protocol::Sctp,
        Some(tandem_config::Protocol::Tcp) | None => Protocol::Tcp,
    };
    let keys = service_keys(vs, config, protocol, warnings)?;
    let ipv6 = keys.first().is_some_and(ServiceKey::is_ipv6);
    let persistence = vs.persistence_timeout.map(|timeout| Persistence {
        timeout,
        prefix_len: match vs.persistence_granularity {
            Some(Granularity::Netmask(mask)) => u32::from(mask).count_ones() as u8,
            Some(Granularity::PrefixLen(len)) => len,
            None if ipv6 => 128,
            None => 32,
        },
    });
    not_applied(vs, warnings);
    let vs_port = match vs.service {
        ServiceAddress::Socket { port, .. } => port,
        _ => 0,
    };
    let mut templates = Vec::with_capacity(keys.len());
    for &key in &keys {
        let mut dr = DrPaths::default();
        // nftables' DR hooks the interface the VIP arrives on; IPVS needs no device.
        let nftables = config.lb_backend != tandem_config::LbBackend::Ipvs;
        if forwarding == Forwarding::DirectRouting && nftables {
            if let ServiceKey::Addr { vip, .. } = key {
                dr.ingress = vip_devices(config, vip);
                if dr.ingress.is_empty() {
                    warnings.push(warn(
                        &vs.location,
                        "virtual_server",
                        format!(
                            "lb_kind DR: no vrrp_instance holds {vip}, so tandem does not know \
                             the interface its packets arrive on: this virtual server is not \
                             balanced and its real servers are not checked"
                        ),
                    ));
                    return None;
                }
            }
        }
        templates.push(Service {
            key,
            scheduler,
            forwarding,
            persistence,
            servers: Vec::new(),
            sorry: None,
            dr,
            loads: Default::default(),
        });
    }
    // A DR server's port other than the service's is refused by the configuration layer (the
    // packet keeps the client's destination port), so nothing is left to warn about here.
    let name = keys.first().map(key_name).unwrap_or_default();
    let mut spec = VirtualServerSpec::new(&name, Vec::new());
    spec.quorum = vs.quorum;
    spec.hysteresis = vs.hysteresis;
    spec.quorum_up = vs.quorum_up.as_deref().map(Script::from_line);
    spec.quorum_down = vs.quorum_down.as_deref().map(Script::from_line);
    spec.omega = vs.omega;
    spec.sorry_server = vs.sorry_server.as_ref().map(|s| SorryServer {
        addr: SocketAddr::new(s.address, if s.port == 0 { vs_port } else { s.port }),
        inhibit: s.inhibit,
    });
    spec.real_servers = (vs.real_servers.iter())
        .map(|rs| real_server(vs, rs, config, warnings))
        .collect();
    Some(PlannedService {
        spec,
        templates,
        location: vs.location.clone(),
    })
}

/// The interfaces the VRRP instances put `vip` on (its `dev`, else the instance's macvlan
/// with `use_vmac`, else its interface): where the VIP's packets arrive, on the master.
fn vip_devices(config: &Config, vip: IpAddr) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in &config.instances {
        let held = (i.virtual_addresses.iter()).chain(i.excluded_addresses.iter());
        for a in held.filter(|a| a.address == vip) {
            let device = match (&a.dev, &i.use_vmac) {
                (Some(dev), _) => dev.clone(),
                (None, Some(vmac)) if vmac.is_empty() => format!("vrrp.{}", i.virtual_router_id),
                (None, Some(vmac)) => vmac.clone(),
                (None, None) => i.interface.clone(),
            };
            if !out.contains(&device) {
                out.push(device);
            }
        }
    }
    out
}

fn scheduler(
    vs: &VirtualServer,
    forwarding: Forwarding,
    backend: tandem_config::LbBackend,
    warnings: &mut Vec<Diagnostic>,
) -> Scheduler {
    let Some(scheduler) = Scheduler::from_name(vs.lb_algo.name()) else {
        warnings.push(warn(
            &vs.location,
            "virtual_server",
            format!(
                "lb_algo {} has no nftables equivalent: this service runs as wrr \
                 (weighted round robin)",
                vs.lb_algo.name()
            ),
        ));
        return Scheduler::WeightedRoundRobin;
    };
    let approximation = match forwarding {
        // IPVS runs every scheduler as itself.
        _ if backend == tandem_config::LbBackend::Ipvs => None,
        Forwarding::DirectRouting => {
            tandem_lb::plan::dr::approximation(scheduler, vs.persistence_timeout.is_some())
        }
        _ => scheduler.approximation(),
    };
    if let Some(why) = approximation {
        warnings.push(warn(
            &vs.location,
            "virtual_server",
            format!(
                "lb_algo {} is approximated by the nftables backend: {why}",
                vs.lb_algo.name()
            ),
        ));
    }
    scheduler
}

/// The services a `virtual_server` line names.
fn service_keys(
    vs: &VirtualServer,
    config: &Config,
    protocol: Protocol,
    warnings: &mut Vec<Diagnostic>,
) -> Option<Vec<ServiceKey>> {
    let fwmark_family = |family: Option<Family>| {
        family
            .or(vs.family)
            .or_else(|| vs.real_servers.first().map(|r| Family::of(&r.address)))
            == Some(Family::Inet6)
    };
    match &vs.service {
        ServiceAddress::Socket { address, port } => Some(vec![ServiceKey::Addr {
            vip: *address,
            port: *port,
            protocol,
        }]),
        ServiceAddress::Fwmark(mark) => Some(vec![ServiceKey::Fwmark {
            mark: *mark,
            ipv6: fwmark_family(None),
        }]),
        ServiceAddress::Group(name) => {
            let group = config
                .virtual_server_groups
                .iter()
                .find(|g| &g.name == name)?;
            let mut keys = Vec::new();
            for entry in &group.entries {
                match entry {
                    GroupEntry::Fwmark { mark, family } => keys.push(ServiceKey::Fwmark {
                        mark: *mark,
                        ipv6: fwmark_family(*family),
                    }),
                    GroupEntry::Range { first, last, port } => match expand_range(*first, *last) {
                        Some(addresses) => {
                            keys.extend(addresses.into_iter().map(|vip| ServiceKey::Addr {
                                vip,
                                port: *port,
                                protocol,
                            }))
                        }
                        None => warnings.push(warn(
                            &group.location,
                            "virtual_server_group",
                            format!(
                                "range {first}-{last} holds more than {MAX_RANGE} addresses: \
                                     it is not balanced"
                            ),
                        )),
                    },
                }
            }
            Some(keys)
        }
    }
}

/// `first..=last`, or `None` past [`MAX_RANGE`] addresses.
fn expand_range(first: IpAddr, last: IpAddr) -> Option<Vec<IpAddr>> {
    match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let (a, b) = (u32::from(a), u32::from(b));
            let count = b.checked_sub(a)?.checked_add(1)?;
            (count <= MAX_RANGE).then(|| (a..=b).map(|n| IpAddr::from(n.to_be_bytes())).collect())
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let (a, b) = (u128::from(a), u128::from(b));
            let count = b.checked_sub(a)?.checked_add(1)?;
            (count <= u128::from(MAX_RANGE))
                .then(|| (a..=b).map(|n| IpAddr::from(n.to_be_bytes())).collect())
        }
        _ => None,
    }
}

/// Settings read into the model that the nftables backend does not act on.
fn not_applied(vs: &VirtualServer, warnings: &mut Vec<Diagnostic>) {
    let mut say = |what: String| warnings.push(warn(&vs.location, "virtual_server", what));
    let flags = vs.scheduler_flags;
    if flags.one_packet || flags.flag1 || flags.flag2 || flags.flag3 {
        say(
            "scheduler flags (ops, flag-N, sh-port, sh-fallback, ...) are not applied by \
             the nftables backend"
                .into(),
        );
    }
    if let Some(engine) = &vs.persistence_engine {
        say(format!(
            "persistence_engine {engine} is not applied: persistence keys on the client \
             address only"
        ));
    }
    if vs.ha_suspend {
        say(
            "ha_suspend is not applied: checks run whatever the VRRP state (a backup \
             director keeps its pools ready)"
                .into(),
        );
    }
    for rs in &vs.real_servers {
        if rs.uthreshold != 0 || rs.lthreshold != 0 {
            warnings.push(warn(
                &rs.location,
                "real_server",
                "uthreshold/lthreshold are not applied by the nftables backend: the server \
                 takes new connections whatever its connection count"
                    .into(),
            ));
        }
    }
}

fn real_server(
    vs: &VirtualServer,
    rs: &RealServer,
    config: &Config,
    warnings: &mut Vec<Diagnostic>,
) -> RealServerSpec {
    let vhost = rs.virtualhost.as_deref().or(vs.virtualhost.as_deref());
    let mut checkers = Vec::new();
    for checker in &rs.checkers {
        if let Checker::Http(c) | Checker::Ssl(c) = checker {
            if c.fast_recovery {
                warnings.push(warn(
                    &c.location,
                    checker.keyword(),
                    "fast_recovery is not applied: this checker keeps keepalived's default \
                     timing after a failure"
                        .into(),
                ));
            }
        }
        match checker_spec(rs, checker, vhost, vs.delay_loop, config) {
            Ok(spec) => checkers.push(spec),
            Err(why) => warnings.push(warn(checker.location(), checker.keyword(), why)),
        }
        if let Checker::Smtp(c) = checker {
            // Each deprecated `host` block is one more SMTP checker, as in keepalived.
            for host in &c.hosts {
                let mut one = c.clone();
                one.connection = host.clone();
                one.hosts.clear();
                match checker_spec(rs, &Checker::Smtp(one), vhost, vs.delay_loop, config) {
                    Ok(spec) => checkers.push(spec),
                    Err(why) => warnings.push(warn(checker.location(), checker.keyword(), why)),
                }
            }
        }
    }
    RealServerSpec {
        addr: SocketAddr::new(rs.address, rs.port),
        weight: rs.weight,
        inhibit_on_failure: rs.inhibit_on_failure,
        notify_up: rs.notify_up.as_deref().map(Script::from_line),
        notify_down: rs.notify_down.as_deref().map(Script::from_line),
        checkers,
    }
}

fn timing(t: &CheckTiming, connect_timeout: std::time::Duration) -> Timing {
    Timing {
        delay_loop: t.delay_loop,
        retry: t.retry,
        delay_before_retry: t.delay_before_retry,
        warmup: t.warmup,
        connect_timeout,
        alpha: t.alpha,
    }
}

fn connect(c: &Connection) -> Connect {
    Connect {
        to: SocketAddr::new(c.address, c.port),
        bind: (c.bind_address).map(|a| SocketAddr::new(a, c.bind_port.unwrap_or(0))),
    }
}

fn checker_spec(
    rs: &RealServer,
    checker: &Checker,
    vhost: Option<&str>,
    vs_delay_loop: std::time::Duration,
    config: &Config,
) -> Result<CheckerSpec, String> {
    let not_run = |what: &str| {
        Err(format!(
            "{} is not run by tandem ({what}): real server {} is not checked by it and \
             counts as healthy for it",
            checker.keyword(),
            SocketAddr::new(rs.address, rs.port)
        ))
    };
    Ok(match checker {
        Checker::Tcp(c) => CheckerSpec {
            kind: CheckKind::Tcp,
            connect: connect(&c.connection),
            timing: timing(&c.timing, c.connection.timeout),
        },
        Checker::Http(c) => http_spec(c, vhost, false),
        Checker::Ssl(c) => http_spec(c, vhost, true),
        Checker::Misc(c) => CheckerSpec {
            kind: CheckKind::Misc(MiscSpec {
                path: c.path.clone(),
                // keepalived's default misc_timeout is the virtual server's delay_loop.
                timeout: c.timeout.or(Some(vs_delay_loop)),
                dynamic: c.dynamic,
                user: c.user.as_ref().map(|u| match &c.group {
                    Some(g) => format!("{u} {g}"),
                    None => u.clone(),
                }),
            }),
            connect: Connect {
                to: SocketAddr::new(rs.address, rs.port),
                bind: None,
            },
            timing: timing(&c.timing, DEFAULT_CONNECT_TIMEOUT),
        },
        Checker::Udp(c) => CheckerSpec {
            kind: CheckKind::Udp(UdpSpec {
                payload: c.payload.clone(),
                require_reply: c.require_reply,
                reply: c.reply.clone(),
                min_reply_length: c.min_reply_length,
                max_reply_length: c.max_reply_length,
            }),
            connect: connect(&c.connection),
            timing: timing(&c.timing, c.connection.timeout),
        },
        Checker::Ping(c) => CheckerSpec {
            kind: CheckKind::Ping,
            connect: connect(&c.connection),
            timing: timing(&c.timing, c.connection.timeout),
        },
        Checker::Dns(c) => CheckerSpec {
            kind: CheckKind::Dns(DnsSpec {
                query_type: c.query_type.clone(),
                name: c.name.clone(),
            }),
            connect: connect(&c.connection),
            timing: timing(&c.timing, c.connection.timeout),
        },
        Checker::Smtp(c) => CheckerSpec {
            kind: CheckKind::Smtp(SmtpSpec {
                helo_name: c.helo_name.clone(),
            }),
            connect: connect(&c.connection),
            timing: timing(&c.timing, c.connection.timeout),
        },
        Checker::Bfd(_) => return not_run("tandem has no BFD"),
        Checker::File(c) => {
            let Some(file) = (config.track_files.iter()).find(|t| t.name == c.track_file) else {
                return not_run("its track_file is not defined");
            };
            // keepalived: a FILE_CHECK without a weight (or with weight 0) takes the
            // track_file's weight and direction.
            let (weight, reverse) = match c.weight {
                Some((w, reverse)) if w != 0 => (w, reverse),
                _ => (file.weight, file.reverse),
            };
            CheckerSpec {
                kind: CheckKind::File(FileCheckSpec {
                    track_file: c.track_file.clone(),
                    weight,
                    reverse,
                }),
                connect: Connect {
                    to: SocketAddr::new(rs.address, rs.port),
                    bind: None,
                },
                timing: Timing {
                    delay_loop: vs_delay_loop,
                    retry: 0,
                    delay_before_retry: vs_delay_loop,
                    warmup: std::time::Duration::ZERO,
                    connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                    alpha: false,
                },
            }
        }
    })
}

fn http_spec(c: &HttpCheck, vhost: Option<&str>, tls: bool) -> CheckerSpec {
    let http = HttpSpec {
        urls: (c.urls.iter())
            .map(|u| UrlSpec {
                path: u.path.clone(),
                status_codes: (u.status_codes.iter())
                    .map(|r| (*r.start(), *r.end()))
                    .collect(),
                digest: u.digest,
                regex: u.regex.clone(),
                regex_no_match: u.regex_no_match,
                virtualhost: u.virtualhost.clone(),
            })
            .collect(),
        virtualhost: c.virtualhost.clone().or(vhost.map(str::to_string)),
        protocol: match c.http_protocol {
            tandem_config::HttpProtocol::Http10 => HttpProtocol::Http10,
            tandem_config::HttpProtocol::Http10Close => HttpProtocol::Http10Close,
            tandem_config::HttpProtocol::Http11 => HttpProtocol::Http11,
        },
        enable_sni: c.enable_sni,
    };
    CheckerSpec {
        kind: if tls {
            CheckKind::Ssl(http)
        } else {
            CheckKind::Http(http)
        },
        connect: connect(&c.connection),
        timing: timing(&c.timing, c.connection.timeout),
    }
}

#[cfg(test)]
mod tests;
