//! Sans-IO planning: services in, nftables objects out ([`plan`]), and the
//! operations that move the kernel from one plan to the next ([`diff`]),
//! all applied in one atomic batch.
//!
//! Per service, in table [`TABLE`] (family `inet`):
//!
//! ```text
//! chain prerouting / output (nat hooks, priority dstnat):
//!     <vip> <proto> <port>  jump <svc>             one rule per service
//! chain <svc>:
//!     client in set <svc>_p_<server>: refresh it, goto <svc>_to_<server>   (persistence, per server)
//!     numgen inc | jhash(src) mod N  vmap @<svc>_sched
//!         (persistent rr/wrr/lc family: jhash(src & granularity) mod 4093,
//!          a weighted rendezvous table, the same on both directors)
//!     reject                                       (no server, no sorry server)
//! map <svc>_sched: slot -> goto <svc>_to_<server>  the scheduler's table
//! chain <svc>_to_<server>:                         one per configured server
//!     [add client to <svc>_p_<server>]  dnat to server
//! set <svc>_p_<server>: clients, timeout            (persistence; filled by packets)
//! ```
//!
//! Direct-routing services live in a second table, `netdev tandem_lb_dr`,
//! planned and diffed by [`dr`], changed in the same batch.
//!
//! Every rule is one `nft` can print: the scheduler's choice is a verdict
//! (a `goto`), not a number fed to a second lookup. Persistence sets are
//! per server, so a server that leaves takes its clients' entries with it
//! and they are scheduled afresh; the others keep theirs across changes.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::objects::{
    datatype, reg, Chain, DynsetOp, ElementData, Expr, Hook, MetaKey, PayloadBase, Ruleset,
    ServiceObjects, Set, SetData,
};
use crate::schedule;
use crate::service::{Forwarding, Scheduler, Server, Service, ServiceKey};

pub mod dr;

use dr::HashKey;

/// The table tandem owns (family `inet`); nothing else is ever touched.
pub const TABLE: &str = "tandem_lb";

/// The direct-routing table tandem owns (family `netdev`).
pub const DR_TABLE: &str = "tandem_lb_dr";

/// Base chains that dispatch to the services: prerouting for forwarded
/// traffic, output for clients on the director itself.
pub const BASE_CHAINS: [(&str, Hook); 2] = [
    (
        "prerouting",
        Hook {
            number: 0,
            priority: -100,
        },
    ),
    (
        "output",
        Hook {
            number: 3,
            priority: -100,
        },
    ),
];

/// Why a set of services cannot be planned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Two services with the same key.
    #[error("virtual service {0} is defined twice")]
    Duplicate(String),
    /// A real server of the other address family.
    #[error(
        "virtual service {service}: real server {server} is not of the service's address family"
    )]
    FamilyMismatch {
        /// The service.
        service: String,
        /// The server.
        server: IpAddr,
    },
    /// A forwarding method this backend cannot do.
    #[error("virtual service {service}: {method} forwarding is not available with the nftables backend: {why}")]
    Unsupported {
        /// The service.
        service: String,
        /// `DR` or `TUN`.
        method: &'static str,
        /// What is missing.
        why: &'static str,
    },
    /// A direct-routing server whose egress device the caller did not give.
    #[error("virtual service {service}: no device is known to reach real server {server} on-link (direct routing)")]
    NoEgress {
        /// The service.
        service: String,
        /// The server.
        server: IpAddr,
    },
    /// A direct-routing service with no device to hook.
    #[error("virtual service {0}: no device is known where its packets arrive (direct routing)")]
    NoIngress(String),
    /// A real server without a port where the service has none either.
    #[error("virtual service {service}: real server {server} needs a port (the service has none to keep)")]
    PortNeeded {
        /// The service.
        service: String,
        /// The server.
        server: IpAddr,
    },
    /// A persistence granularity wider than the address.
    #[error("virtual service {service}: persistence granularity /{prefix_len} is longer than the address")]
    Granularity {
        /// The service.
        service: String,
        /// The prefix length given.
        prefix_len: u8,
    },
}

/// The name of a service's chain (maps add a suffix), readable in `nft list`.
pub fn chain_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr {
            vip,
            port,
            protocol,
        } => format!(
            "{}_{}_{port}",
            protocol.name(),
            vip.to_string().replace(['.', ':'], "_")
        ),
        ServiceKey::Fwmark { mark, ipv6 } => {
            format!("fwmark_{mark}_{}", if *ipv6 { "ip6" } else { "ip" })
        }
    }
}

pub(crate) fn addr_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub(crate) fn server_name(sv: &Server) -> String {
    format!(
        "{}_{}",
        sv.addr.to_string().replace(['.', ':'], "_"),
        sv.port
    )
}

/// Plans both tables for `services`.
pub fn plan(services: &[Service]) -> Result<Ruleset, PlanError> {
    plan_with(services, true)
}

/// Checks that `services` can be planned, without the devices direct
/// routing needs (the configuration layer knows them only at run time).
pub fn validate(services: &[Service]) -> Result<(), PlanError> {
    plan_with(services, false).map(|_| ())
}

fn plan_with(services: &[Service], need_devices: bool) -> Result<Ruleset, PlanError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(services.len());
    let mut direct = Vec::new();
    for s in services {
        let name = chain_name(&s.key);
        if !seen.insert(name.clone()) {
            return Err(PlanError::Duplicate(name));
        }
        if s.forwarding == Forwarding::DirectRouting {
            direct.push(dr::service_objects(s, name, need_devices)?);
        } else {
            out.push(service_objects(s, name)?);
        }
    }
    Ok(Ruleset {
        services: out,
        dr: dr::ruleset(direct),
    })
}

fn service_objects(s: &Service, name: String) -> Result<ServiceObjects, PlanError> {
    match s.forwarding {
        Forwarding::Nat | Forwarding::DirectRouting => {}
        Forwarding::Tunnel => {
            return Err(PlanError::Unsupported {
                service: name,
                method: "TUN",
                why: "the nftables backend does not encapsulate IP in IP (use lb_kind NAT or DR)",
            })
        }
    }
    let v6 = s.key.is_ipv6();
    let alen: u32 = if v6 { 16 } else { 4 };
    let service_port = match s.key {
        ServiceKey::Addr { port, .. } => port,
        ServiceKey::Fwmark { .. } => 0,
    };
    for server in s.servers.iter().chain(s.sorry.iter()) {
        if server.addr.is_ipv6() != v6 {
            return Err(PlanError::FamilyMismatch {
                service: name,
                server: server.addr,
            });
        }
        if server.port == 0
            && service_port == 0
            && s.servers.iter().chain(s.sorry.iter()).any(|o| o.port != 0)
        {
            return Err(PlanError::PortNeeded {
                service: name,
                server: server.addr,
            });
        }
    }
    if let Some(p) = &s.persistence {
        if u32::from(p.prefix_len) > alen * 8 {
            return Err(PlanError::Granularity {
                service: name,
                prefix_len: p.prefix_len,
            });
        }
    }

    let pool = new_connection_pool(s);
    // Quiesced servers (weight 0) keep their chain, so persistent clients stay (as IPVS).
    let mut known: Vec<Server> = Vec::new();
    for sv in s.servers.iter().chain(pool.iter()) {
        if !known.iter().any(|k| k.addr == sv.addr && k.port == sv.port) {
            known.push(*sv);
        }
    }
    let weights: Vec<u32> = pool.iter().map(|sv| sv.weight).collect();
    let hashed_first_choice = persistent_clients_are_hashed(s);
    let slots: Vec<usize> = match s.scheduler {
        _ if hashed_first_choice => {
            let names: Vec<Vec<u8>> = pool.iter().map(|sv| server_name(sv).into_bytes()).collect();
            let shares: Vec<u32> = match s.scheduler {
                // rr and lc ignore weights beyond quiescing (weight 0).
                Scheduler::RoundRobin | Scheduler::LeastConnection => {
                    weights.iter().map(|&w| u32::from(w > 0)).collect()
                }
                _ => weights.clone(),
            };
            schedule::rendezvous_table(&names, &shares, schedule::PERSISTENCE_BUCKETS)
        }
        Scheduler::RoundRobin => schedule::rr_cycle(&weights),
        Scheduler::WeightedRoundRobin => schedule::wrr_cycle(&weights),
        Scheduler::LeastConnection
        | Scheduler::WeightedLeastConnection
        | Scheduler::ShortestExpectedDelay
        | Scheduler::NeverQueue
        | Scheduler::LocalityLeastConnection
        | Scheduler::LocalityLeastConnectionReplicated => {
            schedule::wrr_cycle(&new_connection_weights(s).unwrap_or_default())
        }
        Scheduler::SourceHash | Scheduler::DestinationHash => schedule::hash_buckets(&weights),
        Scheduler::MaglevHash => {
            let names: Vec<Vec<u8>> = pool.iter().map(|sv| server_name(sv).into_bytes()).collect();
            schedule::maglev_table(&names, &weights, schedule::MAGLEV_TABLE_SIZE)
        }
        Scheduler::WeightedFailover | Scheduler::WeightedOverflow => {
            schedule::failover_target(&weights)
        }
    };

    let addr_type = if v6 {
        datatype::IP6ADDR
    } else {
        datatype::IPADDR
    };
    let to_chain = |sv: &Server| format!("{name}_to_{}", server_name(sv));
    let persist_set = |sv: &Server| format!("{name}_p_{}", server_name(sv));
    // The client's address (masked by the persistence granularity) in `reg::CLIENT`.
    let load_client = dr::load_key(HashKey::Client, v6, s.persistence.map(|p| p.prefix_len));
    // nft prints a port rewrite only after a transport protocol match, so
    // rules that rewrite ports carry one (it always holds after dispatch).
    let l4proto_guard = match s.key {
        ServiceKey::Addr { protocol, .. } => vec![
            Expr::Meta {
                key: MetaKey::L4proto,
                dreg: reg::SLOT,
            },
            Expr::CmpEq {
                sreg: reg::SLOT,
                data: vec![protocol.number()],
            },
        ],
        ServiceKey::Fwmark { .. } => Vec::new(),
    };

    let mut sets = Vec::new();
    let mut server_chains = Vec::new();
    let mut persist_rules = Vec::new();
    for sv in &known {
        let port = if sv.port == 0 { service_port } else { sv.port };
        let mut rule = Vec::new();
        if s.persistence.is_some() {
            rule.extend_from_slice(&load_client);
            rule.push(Expr::Dynset {
                op: DynsetOp::Add,
                set: persist_set(sv),
                sreg_key: reg::CLIENT,
            });
        }
        if port != 0 {
            rule.extend(l4proto_guard.iter().cloned());
        }
        rule.push(Expr::Immediate {
            dreg: reg::ADDR,
            data: addr_bytes(sv.addr),
        });
        if port != 0 {
            rule.push(Expr::Immediate {
                dreg: reg::ADDR + alen / 4,
                data: port.to_be_bytes().to_vec(),
            });
        }
        rule.push(Expr::Dnat {
            ipv6: v6,
            addr_reg: reg::ADDR,
            port_reg: (port != 0).then_some(reg::ADDR + alen / 4),
        });
        server_chains.push(Chain {
            name: to_chain(sv),
            hook: None,
            rules: vec![rule],
        });
        if let Some(p) = &s.persistence {
            sets.push(Set {
                name: persist_set(sv),
                key_type: addr_type,
                key_len: alen,
                data: SetData::None,
                timeout: Some(p.timeout),
                size: None,
                elements: Vec::new(),
            });
            let mut known_client = load_client.clone();
            known_client.push(Expr::Lookup {
                set: persist_set(sv),
                sreg: reg::CLIENT,
                dreg: None,
                invert: false,
            });
            known_client.push(Expr::Dynset {
                op: DynsetOp::Update,
                set: persist_set(sv),
                sreg_key: reg::CLIENT,
            });
            known_client.push(Expr::Goto(to_chain(sv)));
            persist_rules.push(known_client);
        }
    }

    let sched = sched_map(&name, &slots, |i| to_chain(&pool[i]));

    let mut rules = persist_rules;
    if !slots.is_empty() {
        let mut schedule_rule = Vec::new();
        let modulus = slots.len() as u32;
        match s.scheduler {
            _ if hashed_first_choice => {
                schedule_rule.extend_from_slice(&load_client);
                schedule_rule.push(Expr::Jhash {
                    sreg: reg::CLIENT,
                    len: alen,
                    dreg: reg::SLOT,
                    modulus,
                    seed: schedule::fnv1a64(0x7065_7273, name.as_bytes()) as u32,
                });
            }
            Scheduler::SourceHash | Scheduler::MaglevHash | Scheduler::DestinationHash => {
                let key = match s.scheduler {
                    Scheduler::DestinationHash => HashKey::Destination,
                    _ => HashKey::Client,
                };
                schedule_rule.extend(dr::load_key(key, v6, None));
                schedule_rule.push(Expr::Jhash {
                    sreg: reg::CLIENT,
                    len: alen,
                    dreg: reg::SLOT,
                    modulus,
                    seed: schedule::fnv1a64(0, name.as_bytes()) as u32,
                });
            }
            _ => schedule_rule.push(Expr::Numgen {
                dreg: reg::SLOT,
                modulus,
            }),
        }
        schedule_rule.push(Expr::Lookup {
            set: sched.name.clone(),
            sreg: reg::SLOT,
            dreg: Some(0),
            invert: false,
        });
        rules.push(schedule_rule);
    }
    rules.push(vec![Expr::Reject]);
    sets.insert(0, sched);

    let mut chains = vec![Chain {
        name: name.clone(),
        hook: None,
        rules,
    }];
    chains.extend(server_chains);
    Ok(ServiceObjects {
        dispatch: dispatch_rule(&s.key, &name),
        chains,
        sets,
    })
}

/// A service's scheduler map `<name>_sched`: slot number (a mark-sized key) to a `goto` the
/// chain of the server that owns the slot (`slots[n]` indexes the pool).
pub(crate) fn sched_map(name: &str, slots: &[usize], chain: impl Fn(usize) -> String) -> Set {
    Set {
        name: format!("{name}_sched"),
        key_type: datatype::MARK,
        key_len: 4,
        data: SetData::Verdict,
        timeout: None,
        size: None,
        elements: (slots.iter().enumerate())
            .map(|(slot, &i)| {
                (
                    (slot as u32).to_ne_bytes().to_vec(),
                    ElementData::Goto(chain(i)),
                )
            })
            .collect(),
    }
}

/// The servers that take new connections: those of positive weight, else the sorry server.
fn new_connection_pool(s: &Service) -> Vec<Server> {
    let mut pool: Vec<Server> = (s.servers.iter())
        .filter(|sv| sv.weight > 0)
        .copied()
        .collect();
    if pool.is_empty() {
        pool.extend(s.sorry.iter().map(|sv| Server { weight: 1, ..*sv }));
    }
    pool
}

/// Whether the daemon must count `s`'s connections: a least-connection service whose
/// schedule follows the counts (a persistent one keeps its configured weights).
pub fn follows_connection_counts(s: &Service) -> bool {
    s.scheduler.uses_connection_counts() && !persistent_clients_are_hashed(s)
}

/// For a least-connection service that is not persistent, the weights its schedule is
/// filled with, one per server of the new-connection pool in order:
/// [`schedule::effective_weights`] of the configured weights and [`Service::loads`].
/// `None` for other services (their schedule follows the configured weights).
///
/// Persistent services keep their configured weights: their first choice is a hash table
/// both directors must compute alike (see [`persistent_clients_are_hashed`]).
pub fn new_connection_weights(s: &Service) -> Option<Vec<u32>> {
    if !follows_connection_counts(s) {
        return None;
    }
    let pool = new_connection_pool(s);
    let weights: Vec<u32> = pool.iter().map(|sv| sv.weight).collect();
    let loads: Vec<crate::Load> = (pool.iter())
        .map(|sv| {
            let at = std::net::SocketAddr::new(sv.addr, sv.port);
            s.loads.get(&at).copied().unwrap_or_default()
        })
        .collect();
    Some(schedule::effective_weights(s.scheduler, &weights, &loads))
}

/// Whether a persistent service picks a new client's first server by a
/// hash of its (masked) address rather than by its scheduler's turn.
///
/// The persistence sets live on each director and are not replicated; a
/// turn-based first choice (rr, wrr, and the lc family run as (w)rr) would
/// send a client that comes back after a failover to whatever server the new
/// director's turn points at. A weighted rendezvous table hashed on the
/// client is the same on both directors, so the client finds its server
/// again with or without its set entry. Schedulers that already choose
/// from the packet (sh, dh, mh) or from the weights alone (fo, ovf) are
/// deterministic as they are and keep their own choice.
pub fn persistent_clients_are_hashed(s: &Service) -> bool {
    s.persistence.is_some()
        && (matches!(
            s.scheduler,
            Scheduler::RoundRobin | Scheduler::WeightedRoundRobin
        ) || s.scheduler.uses_connection_counts())
}

pub(crate) fn prefix_mask(len: usize, prefix_len: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let bits = (usize::from(prefix_len)).saturating_sub(i * 8).min(8);
            if bits == 0 {
                0
            } else {
                0xffu8 << (8 - bits)
            }
        })
        .collect()
}

fn dispatch_rule(key: &ServiceKey, chain: &str) -> Vec<Expr> {
    let m = reg::MATCH;
    let nfproto = if key.is_ipv6() { 10 } else { 2 };
    let mut rule = vec![
        Expr::Meta {
            key: MetaKey::Nfproto,
            dreg: m,
        },
        Expr::CmpEq {
            sreg: m,
            data: vec![nfproto],
        },
    ];
    match key {
        ServiceKey::Addr {
            vip,
            port,
            protocol,
        } => {
            let a = addr_bytes(*vip);
            rule.push(Expr::Payload {
                base: PayloadBase::Network,
                offset: if vip.is_ipv6() { 24 } else { 16 },
                len: a.len() as u32,
                dreg: m,
            });
            rule.push(Expr::CmpEq { sreg: m, data: a });
            rule.push(Expr::Meta {
                key: MetaKey::L4proto,
                dreg: m,
            });
            rule.push(Expr::CmpEq {
                sreg: m,
                data: vec![protocol.number()],
            });
            rule.push(Expr::Payload {
                base: PayloadBase::Transport,
                offset: 2,
                len: 2,
                dreg: m,
            });
            rule.push(Expr::CmpEq {
                sreg: m,
                data: port.to_be_bytes().to_vec(),
            });
        }
        ServiceKey::Fwmark { mark, .. } => {
            rule.push(Expr::Meta {
                key: MetaKey::Mark,
                dreg: m,
            });
            rule.push(Expr::CmpEq {
                sreg: m,
                data: mark.to_ne_bytes().to_vec(),
            });
        }
    }
    rule.push(Expr::Jump(chain.to_string()));
    rule
}

/// One step of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Creates the table empty, removing any copy left by an earlier run.
    ResetTable,
    /// Removes the table if it exists.
    DeleteTable,
    /// Creates a chain (without rules).
    AddChain {
        /// Name.
        name: String,
        /// Hook, for base chains.
        hook: Option<Hook>,
    },
    /// Removes every rule of a chain.
    FlushChain(String),
    /// Removes an empty, unreferenced chain.
    DeleteChain(String),
    /// Creates a set or map (without elements).
    AddSet(Set),
    /// Removes every element of a set.
    FlushSet(String),
    /// Removes a set not referenced by rules.
    DeleteSet(String),
    /// Adds elements to a set.
    AddElements {
        /// Set name.
        set: String,
        /// (key, data) pairs.
        elements: Vec<(Vec<u8>, ElementData)>,
    },
    /// Appends a rule.
    AddRule {
        /// Chain name.
        chain: String,
        /// Its expressions.
        exprs: Vec<Expr>,
    },
    /// Creates a `netdev` base chain on `device`'s ingress hook (direct-routing table).
    AddIngressChain {
        /// Chain name.
        name: String,
        /// The device whose ingress it hooks.
        device: String,
    },
    /// These operations, on the direct-routing table (family `netdev`) rather than the NAT
    /// table.
    Dr(Vec<Op>),
    /// Removes the direct-routing table if it exists.
    DeleteDrTable,
}

fn add_elements(out: &mut Vec<Op>, s: &Set) {
    if !s.elements.is_empty() {
        out.push(Op::AddElements {
            set: s.name.clone(),
            elements: s.elements.clone(),
        });
    }
}

/// Appends `rules` to chain `chain`, in order.
pub(crate) fn add_rules(out: &mut Vec<Op>, chain: &str, rules: &[Vec<Expr>]) {
    out.extend(rules.iter().map(|r| Op::AddRule {
        chain: chain.to_string(),
        exprs: r.clone(),
    }));
}

/// The services of `old` that `new` lacks removed, those it adds added and those it
/// changes changed in place (a service is known by its first chain's name); the others
/// are left alone. Dispatch rules are the caller's: they jump to these chains, so they go
/// (are flushed) before this runs.
pub(crate) fn diff_services(out: &mut Vec<Op>, old: &[ServiceObjects], new: &[ServiceObjects]) {
    for o in old {
        if service_named(new, &o.chains[0].name).is_none() {
            remove_service(out, o);
        }
    }
    for n in new {
        match service_named(old, &n.chains[0].name) {
            Some(o) if o == n => {}
            Some(o) => change_service(out, o, n),
            None => add_service(out, n),
        }
    }
}

fn service_named<'a>(services: &'a [ServiceObjects], name: &str) -> Option<&'a ServiceObjects> {
    services.iter().find(|s| s.chains[0].name == name)
}

pub(crate) fn add_service(out: &mut Vec<Op>, s: &ServiceObjects) {
    out.extend(s.sets.iter().map(|x| Op::AddSet(x.definition())));
    out.extend(s.chains.iter().map(|c| Op::AddChain {
        name: c.name.clone(),
        hook: None,
    }));
    s.sets.iter().for_each(|x| add_elements(out, x));
    for c in &s.chains {
        add_rules(out, &c.name, &c.rules);
    }
}

fn remove_service(out: &mut Vec<Op>, s: &ServiceObjects) {
    out.extend(s.chains.iter().map(|c| Op::FlushChain(c.name.clone())));
    out.extend(s.sets.iter().map(|x| Op::DeleteSet(x.name.clone())));
    out.extend(s.chains.iter().map(|c| Op::DeleteChain(c.name.clone())));
}

/// A changed service: every chain flushed and refilled, static sets
/// refilled, persistence sets kept when their server stays.
fn change_service(out: &mut Vec<Op>, old: &ServiceObjects, new: &ServiceObjects) {
    let kept = |x: &Set| {
        new.sets
            .iter()
            .any(|n| n.name == x.name && n.definition() == x.definition())
    };
    out.extend(old.chains.iter().map(|c| Op::FlushChain(c.name.clone())));
    for x in &old.sets {
        if !kept(x) {
            out.push(Op::DeleteSet(x.name.clone()));
        } else if !x.is_dynamic() {
            out.push(Op::FlushSet(x.name.clone()));
        }
    }
    let has_chain = |s: &ServiceObjects, name: &str| s.chains.iter().any(|c| c.name == name);
    for c in &old.chains {
        if !has_chain(new, &c.name) {
            out.push(Op::DeleteChain(c.name.clone()));
        }
    }
    for x in &new.sets {
        if !old.sets.iter().any(|o| o.name == x.name && kept(o)) {
            out.push(Op::AddSet(x.definition()));
        }
    }
    for c in &new.chains {
        if !has_chain(old, &c.name) {
            out.push(Op::AddChain {
                name: c.name.clone(),
                hook: None,
            });
        }
    }
    new.sets
        .iter()
        .filter(|x| !x.is_dynamic())
        .for_each(|x| add_elements(out, x));
    for c in &new.chains {
        add_rules(out, &c.name, &c.rules);
    }
}

/// The operations that turn the kernel's table from `old` (None: unknown,
/// e.g. at start) into `new`, to be sent as one batch: packets see either
/// the old services or the new ones, never a mix. Persistence entries
/// survive a change of weights or of other servers.
pub fn diff(old: Option<&Ruleset>, new: &Ruleset) -> Vec<Op> {
    let mut out = diff_inet(old, new);
    let old_dr = old.map(|o| &o.dr);
    if old_dr != Some(&new.dr) {
        out.push(if new.dr.is_empty() {
            Op::DeleteDrTable
        } else {
            Op::Dr(dr::diff(old_dr.filter(|o| !o.is_empty()), &new.dr))
        });
    }
    out
}

fn diff_inet(old: Option<&Ruleset>, new: &Ruleset) -> Vec<Op> {
    let mut out = Vec::new();
    let Some(old) = old else {
        out.push(Op::ResetTable);
        for (name, hook) in BASE_CHAINS {
            out.push(Op::AddChain {
                name: name.to_string(),
                hook: Some(hook),
            });
        }
        new.services.iter().for_each(|s| add_service(&mut out, s));
        add_dispatch(&mut out, new);
        return out;
    };
    let dispatch = |r: &Ruleset| {
        r.services
            .iter()
            .map(|s| s.dispatch.clone())
            .collect::<Vec<_>>()
    };
    let dispatch_changed = dispatch(old) != dispatch(new);
    if dispatch_changed {
        for (name, _) in BASE_CHAINS {
            out.push(Op::FlushChain(name.to_string()));
        }
    }
    diff_services(&mut out, &old.services, &new.services);
    if dispatch_changed {
        add_dispatch(&mut out, new);
    }
    out
}

fn add_dispatch(out: &mut Vec<Op>, r: &Ruleset) {
    for (name, _) in BASE_CHAINS {
        for s in &r.services {
            out.push(Op::AddRule {
                chain: name.to_string(),
                exprs: s.dispatch.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Persistence, Protocol};
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn web(sched: Scheduler, weights: &[u32]) -> Service {
        let mut s = Service::nat(ip("10.0.0.100"), 80, Protocol::Tcp, sched);
        for (i, &w) in weights.iter().enumerate() {
            s = s.server(ip(&format!("10.0.1.{}", 11 + i)), 8080, w);
        }
        s
    }

    fn sched_targets(r: &Ruleset) -> Vec<String> {
        r.services[0].sets[0]
            .elements
            .iter()
            .map(|(_, d)| match d {
                ElementData::Goto(c) => c.rsplit("_to_").next().unwrap().to_string(),
                ElementData::None => panic!("sched is a verdict map"),
            })
            .collect()
    }

    fn count(targets: &[String], server: &str) -> usize {
        targets.iter().filter(|t| t.starts_with(server)).count()
    }

    #[test]
    fn wrr_plan_has_one_slot_per_weight_unit() {
        let r = plan(&[web(Scheduler::WeightedRoundRobin, &[1, 2, 3])]).unwrap();
        let t = sched_targets(&r);
        assert_eq!(t.len(), 6);
        assert_eq!(count(&t, "10_0_1_13"), 3);
        let main = &r.services[0].chains[0];
        assert_eq!(main.name, "tcp_10_0_0_100_80");
        assert!(main.rules[0].contains(&Expr::Numgen {
            dreg: reg::SLOT,
            modulus: 6
        }));
        assert_eq!(main.rules.last().unwrap(), &vec![Expr::Reject]);
        // One chain per server, each a DNAT to address and port.
        let to = &r.services[0].chains[1];
        assert_eq!(to.name, "tcp_10_0_0_100_80_to_10_0_1_11_8080");
        assert!(to.rules[0].contains(&Expr::Immediate {
            dreg: reg::ADDR,
            data: vec![10, 0, 1, 11]
        }));
        assert!(to.rules[0].contains(&Expr::Immediate {
            dreg: reg::ADDR + 1,
            data: 8080u16.to_be_bytes().to_vec()
        }));
    }

    #[test]
    fn source_hash_uses_jhash_of_the_client_with_a_stable_seed() {
        let a = plan(&[web(Scheduler::SourceHash, &[1, 1])]).unwrap();
        let b = plan(&[web(Scheduler::SourceHash, &[1, 1])]).unwrap();
        assert_eq!(a, b, "both directors plan the same table");
        let rule = &a.services[0].chains[0].rules[0];
        assert!(rule.iter().any(|e| matches!(e,
            Expr::Jhash { len: 4, modulus, .. } if *modulus as usize == schedule::HASH_BUCKETS)));
        assert!(rule.contains(&Expr::Payload {
            base: PayloadBase::Network,
            offset: 12,
            len: 4,
            dreg: reg::CLIENT
        }));
    }

    #[test]
    fn quiesced_servers_keep_their_chain_but_get_no_slot_and_sorry_answers_when_none_is_left() {
        let mut s = web(Scheduler::RoundRobin, &[1, 0]);
        let r = plan(&[s.clone()]).unwrap();
        assert_eq!(sched_targets(&r), vec!["10_0_1_11_8080"]);
        assert_eq!(r.services[0].chains.len(), 3);
        s.servers[0].weight = 0;
        s.sorry = Some(Server {
            addr: ip("10.0.2.1"),
            port: 80,
            weight: 0,
        });
        let r = plan(&[s]).unwrap();
        assert_eq!(sched_targets(&r), vec!["10_0_2_1_80"]);
    }

    #[test]
    fn no_server_plans_only_the_reject() {
        let r = plan(&[web(Scheduler::RoundRobin, &[])]).unwrap();
        assert_eq!(r.services[0].chains[0].rules, vec![vec![Expr::Reject]]);
        assert!(r.services[0].sets[0].elements.is_empty());
    }

    #[test]
    fn bad_services_are_refused_with_the_reason() {
        let dr = Service {
            key: ServiceKey::Fwmark {
                mark: 5,
                ipv6: false,
            },
            forwarding: Forwarding::DirectRouting,
            ..web(Scheduler::RoundRobin, &[1])
        };
        assert!(matches!(
            validate(&[dr]),
            Err(PlanError::Unsupported { method: "DR", .. })
        ));
        let mut tun = web(Scheduler::RoundRobin, &[1]);
        tun.forwarding = Forwarding::Tunnel;
        let err = plan(&[tun]).unwrap_err().to_string();
        assert!(
            err.contains("TUN") && err.contains("tcp_10_0_0_100_80"),
            "{err}"
        );
        let mixed = web(Scheduler::RoundRobin, &[1]).server(ip("fd00::1"), 80, 1);
        assert!(matches!(
            plan(&[mixed]),
            Err(PlanError::FamilyMismatch { .. })
        ));
        let w = web(Scheduler::RoundRobin, &[1]);
        assert!(matches!(
            plan(&[w.clone(), w]),
            Err(PlanError::Duplicate(_))
        ));
    }

    #[test]
    fn first_apply_resets_the_table_and_builds_everything() {
        let r = plan(&[web(Scheduler::RoundRobin, &[1, 1])]).unwrap();
        let ops = diff(None, &r);
        assert_eq!(ops[0], Op::ResetTable);
        let dispatch = ops
            .iter()
            .filter(|o| matches!(o, Op::AddRule { chain, .. } if chain == "prerouting" || chain == "output"))
            .count();
        assert_eq!(dispatch, 2);
        assert!(diff(Some(&r), &r).is_empty(), "no change, empty batch");
    }

    fn persistent(weights: &[u32]) -> Service {
        let mut s = web(Scheduler::RoundRobin, weights);
        s.persistence = Some(Persistence {
            timeout: Duration::from_secs(300),
            prefix_len: 24,
        });
        s
    }

    #[test]
    fn a_weight_change_refills_the_schedule_and_keeps_persistence() {
        let wrr = |w: &[u32]| Service {
            scheduler: Scheduler::WeightedRoundRobin,
            ..persistent(w)
        };
        let old = plan(&[wrr(&[1, 1, 1])]).unwrap();
        let new = plan(&[wrr(&[1, 1, 5])]).unwrap();
        let ops = diff(Some(&old), &new);
        assert!(!ops.contains(&Op::ResetTable));
        assert!(ops.contains(&Op::FlushSet("tcp_10_0_0_100_80_sched".into())));
        assert!(
            !ops.iter()
                .any(|o| matches!(o, Op::DeleteSet(_) | Op::AddSet(_))),
            "persistence sets survive: {ops:?}"
        );
        assert!(!ops
            .iter()
            .any(|o| matches!(o, Op::FlushChain(c) if c == "prerouting")));
    }

    #[test]
    fn a_removed_server_takes_its_persistence_set_and_chain_with_it() {
        let old = plan(&[persistent(&[1, 1, 1])]).unwrap();
        let mut s = persistent(&[1, 1, 1]);
        s.servers.remove(1);
        let ops = diff(Some(&old), &plan(&[s]).unwrap());
        let gone = "tcp_10_0_0_100_80_p_10_0_1_12_8080".to_string();
        assert!(ops.contains(&Op::DeleteSet(gone)));
        assert!(ops.contains(&Op::DeleteChain(
            "tcp_10_0_0_100_80_to_10_0_1_12_8080".into()
        )));
        let deleted_sets = ops.iter().filter(|o| matches!(o, Op::DeleteSet(_))).count();
        assert_eq!(deleted_sets, 1, "{ops:?}");
        // The chain is deleted after every rule and element naming it is gone.
        let flush = ops
            .iter()
            .position(|o| *o == Op::FlushSet("tcp_10_0_0_100_80_sched".into()));
        let delete = ops.iter().position(|o| matches!(o, Op::DeleteChain(_)));
        assert!(flush < delete);
    }

    /// Which server each persistence bucket sends a new client to.
    fn bucket_owners(r: &Ruleset) -> Vec<String> {
        sched_targets(r)
    }

    #[test]
    fn persistent_rr_hashes_the_masked_client_alike_on_two_directors() {
        // Two directors plan the same configuration independently.
        let a = plan(&[persistent(&[1, 1, 1])]).unwrap();
        let b = plan(&[persistent(&[1, 1, 1])]).unwrap();
        assert_eq!(a, b);
        let owners = bucket_owners(&a);
        assert_eq!(owners.len(), schedule::PERSISTENCE_BUCKETS);
        for server in ["10_0_1_11", "10_0_1_12", "10_0_1_13"] {
            let share = count(&owners, server) as f64 / owners.len() as f64;
            assert!((share - 1.0 / 3.0).abs() < 0.03, "{server}: {share}");
        }
        // The first choice is a jhash of the client masked by the granularity,
        // never numgen (a per-director counter).
        let first = a.services[0].chains[0]
            .rules
            .iter()
            .find(|r| r.iter().any(|e| matches!(e, Expr::Jhash { .. })))
            .expect("a hashed first choice");
        assert!(!first.iter().any(|e| matches!(e, Expr::Numgen { .. })));
        let masked = first.iter().position(|e| {
            *e == Expr::And {
                reg: reg::CLIENT,
                mask: vec![255, 255, 255, 0],
            }
        });
        let hashed = first.iter().position(
            |e| matches!(e, Expr::Jhash { sreg, modulus: 4093, .. } if *sreg == reg::CLIENT),
        );
        assert!(masked.is_some() && masked < hashed, "{first:?}");
        // rr gives every positive weight the same share; wrr follows weights.
        let rr = bucket_owners(&plan(&[persistent(&[1, 1, 4])]).unwrap());
        assert!(count(&rr, "10_0_1_13") < rr.len() / 2);
        let wrr = Service {
            scheduler: Scheduler::WeightedRoundRobin,
            ..persistent(&[1, 1, 4])
        };
        let wrr = bucket_owners(&plan(&[wrr]).unwrap());
        assert!(count(&wrr, "10_0_1_13") > wrr.len() * 6 / 10);
        // Without persistence rr stays a round robin.
        let plain = plan(&[web(Scheduler::RoundRobin, &[1, 1, 1])]).unwrap();
        assert_eq!(sched_targets(&plain).len(), 3);
        // sh keeps its own hash (unmasked, IPVS's 256 buckets).
        let sh = Service {
            scheduler: Scheduler::SourceHash,
            ..persistent(&[1, 1])
        };
        assert_eq!(
            sched_targets(&plan(&[sh]).unwrap()).len(),
            schedule::HASH_BUCKETS
        );
    }

    #[test]
    fn least_connection_schedules_follow_the_counted_loads() {
        let mut lc = web(Scheduler::LeastConnection, &[1, 1, 1]);
        let idle = sched_targets(&plan(&[lc.clone()]).unwrap());
        assert_eq!(idle.len(), 3, "no connections: a round robin {idle:?}");
        let busy: std::net::SocketAddr = "10.0.1.11:8080".parse().unwrap();
        let load = crate::Load {
            active: 20,
            inactive: 0,
        };
        lc.loads.insert(busy, load);
        let t = sched_targets(&plan(&[lc.clone()]).unwrap());
        assert_eq!(count(&t, "10_0_1_11"), 1, "{t:?}");
        assert_eq!(count(&t, "10_0_1_12"), 64);
        // A persistent service keeps its configured weights (both directors hash alike).
        let mut p = persistent(&[1, 1, 1]);
        p.scheduler = Scheduler::LeastConnection;
        let without = bucket_owners(&plan(&[p.clone()]).unwrap());
        p.loads.insert(busy, load);
        assert_eq!(without, bucket_owners(&plan(&[p]).unwrap()));
    }

    #[test]
    fn a_removed_server_moves_only_its_own_persistent_clients() {
        let before = bucket_owners(&plan(&[persistent(&[1, 1, 1, 1])]).unwrap());
        let mut s = persistent(&[1, 1, 1, 1]);
        s.servers.remove(1);
        let after = bucket_owners(&plan(&[s.clone()]).unwrap());
        let moved: Vec<usize> = (0..before.len())
            .filter(|&b| before[b] != after[b])
            .collect();
        assert!(!moved.is_empty());
        assert!(
            moved.iter().all(|&b| before[b].starts_with("10_0_1_12")),
            "a client of a remaining server moved"
        );
        // Quiesced (weight 0) rather than removed: the same buckets move.
        let mut q = persistent(&[1, 1, 1, 1]);
        q.servers[1].weight = 0;
        assert_eq!(bucket_owners(&plan(&[q]).unwrap()), after);
    }

    #[test]
    fn persistence_granularity_masks_the_client() {
        let r = plan(&[persistent(&[1])]).unwrap();
        let known_client = &r.services[0].chains[0].rules[0];
        assert!(known_client.contains(&Expr::And {
            reg: reg::CLIENT,
            mask: vec![255, 255, 255, 0]
        }));
        assert_eq!(prefix_mask(16, 60)[7], 0xf0);
    }

    #[test]
    fn removing_a_service_deletes_its_objects_and_dispatch() {
        let a = web(Scheduler::RoundRobin, &[1]);
        let mut b = Service::nat(ip("fd00::100"), 443, Protocol::Tcp, Scheduler::RoundRobin);
        b = b.server(ip("fd00:1::11"), 443, 1);
        let old = plan(&[a.clone(), b]).unwrap();
        let new = plan(&[a]).unwrap();
        let ops = diff(Some(&old), &new);
        assert_eq!(ops[0], Op::FlushChain("prerouting".into()));
        assert!(ops.contains(&Op::DeleteChain("tcp_fd00__100_443".into())));
        assert!(ops.contains(&Op::DeleteSet("tcp_fd00__100_443_sched".into())));
        assert!(!ops
            .iter()
            .any(|o| matches!(o, Op::DeleteChain(c) if c.starts_with("tcp_10_"))));
    }
}
