//! Direct routing (`lb_kind DR`): the packet goes to the real server unchanged, only its
//! destination MAC becomes the server's, and the server answers the client itself.
//!
//! Table `netdev tandem_lb_dr`, changed in place ([`diff`]) so the flow sets survive:
//!
//! ```text
//! chain ingress_<dev> (hook ingress, device <dev>, priority 0):     per device the VIP arrives on
//!     pkttype host  <ether proto>  daddr <vip>  <proto> dport <port>  jump <svc>
//! chain <svc>:
//!     <flow> in @<svc>_f_<server>  goto <svc>_to_<server>   per server: flows it already has
//!     jhash(<key>) mod 4093  vmap @<svc>_sched      (no server: no rule, the director's
//!                                                    own stack answers, as for NAT's reject)
//! map <svc>_sched: bucket -> goto <svc>_to_<server>  weighted rendezvous table
//! set <svc>_f_<server>: flows, timeout, size 262144  filled by the packets
//! chain <svc>_to_<server>:
//!     update @<svc>_f_<server> { <flow> }            (records the flow, refreshes its entry)
//!     fwd ip to <server> device <egress>             (neighbour lookup: the server's MAC)
//! ```
//!
//! There is no connection table before routing, so a new flow's server is chosen by a hash
//! of the packet, never by a counter: every packet of a TCP connection picks the same bucket,
//! and both directors of a pair, planning the same pool, own the same table, so a connection
//! keeps its server when the other director takes the address. The key is the flow
//! (`saddr . sport`) for the turn-based schedulers (rr, wrr, the lc family), the client
//! (`saddr`, masked by the persistence granularity) for sh and mh and for any persistent
//! service, the destination for dh; fo and ovf send everything to the highest weight.
//!
//! The director also remembers, per server, the flows it sent there (the client with
//! persistence), so a pool change moves no open connection: a joining server or a new
//! weight only places new flows. A leaving server's set goes with its chain in the same
//! batch, so its flows are placed afresh and nothing sends to it. One set per server rather
//! than one map from flow to server: deleting the set drops exactly that server's entries,
//! and nft (1.0.6) aborts listing a lookup keyed by another map's value.
//!
//! Buckets are handed out by weighted rendezvous hashing ([`schedule::rendezvous_table`])
//! rather than by IPVS's mh Maglev table: a director without the flows in its sets (a backup
//! that just took over) resets the connections of a bucket that changes owner. Rendezvous
//! moves exactly the buckets of a server that leaves (Maglev also moves a few of the
//! others), and a server that joins takes buckets only for itself.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{
    add_rules, add_service, addr_bytes, diff_services, prefix_mask, server_name, Op, PlanError,
};
use std::time::Duration;

use crate::objects::{
    datatype, reg, Chain, DrRuleset, DynsetOp, Expr, IngressChain, MetaKey, PayloadBase,
    ServiceObjects, Set, SetData,
};
use crate::schedule;
use crate::service::{Link, Protocol, Scheduler, Server, Service, ServiceKey};

/// `PACKET_HOST`: the frame is addressed to this machine (not flooded, not promiscuous).
const PACKET_HOST: u8 = 0;
/// Register of the egress interface index (the hash's slot register, free by then).
const DEV_REG: u32 = reg::SLOT;

/// What a service's hash reads from each packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// Source address and port: one choice per connection.
    Flow,
    /// Source address, masked by the persistence granularity: one choice per client.
    Client,
    /// Destination address (dh).
    Destination,
}

/// What each scheduler becomes in direct routing: the hash key, and whether weights count
/// (`false`: every positive weight takes an equal share). `None`: no hash, the highest
/// weight takes everything (fo, ovf).
pub fn mapping(scheduler: Scheduler, persistent: bool) -> Option<(HashKey, bool)> {
    let turn = if persistent {
        HashKey::Client
    } else {
        HashKey::Flow
    };
    Some(match scheduler {
        Scheduler::RoundRobin | Scheduler::LeastConnection => (turn, false),
        Scheduler::WeightedRoundRobin
        | Scheduler::WeightedLeastConnection
        | Scheduler::ShortestExpectedDelay
        | Scheduler::NeverQueue
        | Scheduler::LocalityLeastConnection
        | Scheduler::LocalityLeastConnectionReplicated => (turn, true),
        Scheduler::SourceHash | Scheduler::MaglevHash => (HashKey::Client, true),
        Scheduler::DestinationHash => (HashKey::Destination, true),
        Scheduler::WeightedFailover | Scheduler::WeightedOverflow => return None,
    })
}

/// How far direct routing's choice is from IPVS's for `scheduler` (a located warning in the
/// configuration layer); `None` when it keeps IPVS's contract.
pub fn approximation(scheduler: Scheduler, persistent: bool) -> Option<&'static str> {
    match scheduler {
        Scheduler::RoundRobin | Scheduler::WeightedRoundRobin if persistent => None,
        Scheduler::RoundRobin | Scheduler::WeightedRoundRobin => Some(
            "with lb_kind DR each connection is placed by a hash of its source address and \
             port over buckets shared per weight, not by turns: the spread follows the weights \
             statistically, and both directors place a connection alike",
        ),
        Scheduler::LeastConnection
        | Scheduler::WeightedLeastConnection
        | Scheduler::ShortestExpectedDelay
        | Scheduler::NeverQueue
        | Scheduler::LocalityLeastConnection
        | Scheduler::LocalityLeastConnectionReplicated => Some(
            "with lb_kind DR the director keeps no connection count (replies bypass it): \
             connections are placed by a hash over buckets shared per weight",
        ),
        Scheduler::WeightedOverflow => {
            Some("ovf runs as fo: the highest weight takes every new connection")
        }
        Scheduler::SourceHash
        | Scheduler::DestinationHash
        | Scheduler::MaglevHash
        | Scheduler::WeightedFailover => None,
    }
}

/// The name of the ingress chain of `device`.
pub fn ingress_chain(device: &str) -> String {
    format!("ingress_{device}")
}

/// One planned direct-routing service and the devices its packets arrive on.
pub type Planned = (ServiceObjects, Vec<String>);

/// Plans one direct-routing service. Without `need_devices` missing devices are not errors
/// (configuration checks, before the daemon has looked them up).
pub fn service_objects(
    s: &Service,
    name: String,
    need_devices: bool,
) -> Result<Planned, PlanError> {
    let ServiceKey::Addr {
        vip,
        port,
        protocol,
    } = s.key
    else {
        return Err(PlanError::Unsupported {
            service: name,
            method: "DR",
            why: "a firewall mark is set by rules of the IP stack, after the netdev ingress \
                  hook where direct routing forwards (use virtual_server IP PORT)",
        });
    };
    let v6 = vip.is_ipv6();
    let alen: u32 = if v6 { 16 } else { 4 };
    for server in s.servers.iter().chain(s.sorry.iter()) {
        if server.addr.is_ipv6() != v6 {
            return Err(PlanError::FamilyMismatch {
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
    if need_devices && s.dr.ingress.is_empty() {
        return Err(PlanError::NoIngress(name));
    }

    // The pool that takes new flows: positive weights, else the sorry server. The port of
    // a server does not matter: the packet keeps the client's destination port.
    let mut pool: Vec<Server> = Vec::new();
    for sv in s.servers.iter().filter(|sv| sv.weight > 0) {
        if !pool.iter().any(|p| p.addr == sv.addr) {
            pool.push(*sv);
        }
    }
    if pool.is_empty() {
        pool.extend(s.sorry.iter().map(|sv| Server { weight: 1, ..*sv }));
    }
    // The servers flows remembered by the director may still go to: the pool, and the
    // quiesced servers (weight 0), which keep their connections as under IPVS.
    let mut known: Vec<(Server, Link)> = Vec::new();
    for sv in pool.iter().chain(s.servers.iter()) {
        if known.iter().any(|(k, _)| k.addr == sv.addr) {
            continue;
        }
        let in_pool = pool.iter().any(|p| p.addr == sv.addr);
        match s.dr.egress_for(sv.addr) {
            Some(link) => known.push((*sv, link.clone())),
            None if need_devices && in_pool => {
                return Err(PlanError::NoEgress {
                    service: name,
                    server: sv.addr,
                })
            }
            // A quiesced server the daemon found no device for: nothing to keep.
            None if need_devices => {}
            None => known.push((
                *sv,
                Link {
                    name: String::new(),
                    index: 0,
                },
            )),
        }
    }

    let to_chain = |sv: &Server| format!("{name}_to_{}", server_name(&Server { port: 0, ..*sv }));
    let memory = FlowMemory::new(s, protocol, v6);
    let flows_of = |sv: &Server| format!("{name}_f_{}", server_name(&Server { port: 0, ..*sv }));
    let mut sets = Vec::new();
    let mut rules = Vec::new();
    let mut server_chains = Vec::new();
    for (sv, link) in &known {
        let flows = flows_of(sv);
        // A flow this director remembers goes back to its server.
        let mut known_flow = memory.load.clone();
        known_flow.extend([
            Expr::Lookup {
                set: flows.clone(),
                sreg: reg::CLIENT,
                dreg: None,
                invert: false,
            },
            Expr::Goto(to_chain(sv)),
        ]);
        rules.push(known_flow);
        // Every packet sent to the server records its flow or refreshes the entry; when
        // the memory is full that rule stops short and the packet is forwarded all the same.
        let mut record = memory.load.clone();
        record.push(Expr::Dynset {
            op: DynsetOp::Update,
            set: flows.clone(),
            sreg_key: reg::CLIENT,
        });
        server_chains.push(Chain {
            name: to_chain(sv),
            hook: None,
            rules: vec![
                record,
                vec![
                    Expr::Immediate {
                        dreg: reg::ADDR,
                        data: addr_bytes(sv.addr),
                    },
                    Expr::Immediate {
                        dreg: DEV_REG,
                        data: link.index.to_ne_bytes().to_vec(),
                    },
                    Expr::Fwd {
                        ipv6: v6,
                        addr_reg: reg::ADDR,
                        dev_reg: DEV_REG,
                    },
                ],
            ],
        });
        sets.push(memory.set(flows));
    }

    // Any other flow: the pool's choice.
    let weights: Vec<u32> = pool.iter().map(|sv| sv.weight).collect();
    let mapped = mapping(s.scheduler, s.persistence.is_some());
    let slots: Vec<usize> = match mapped {
        None => schedule::failover_target(&weights),
        Some((_, weighted)) => {
            let names: Vec<Vec<u8>> = pool.iter().map(|sv| sv.addr.to_string().into()).collect();
            let shares: Vec<u32> = if weighted {
                weights.clone()
            } else {
                weights.iter().map(|&w| u32::from(w > 0)).collect()
            };
            schedule::rendezvous_table(&names, &shares, schedule::PERSISTENCE_BUCKETS)
        }
    };
    match (mapped, slots.as_slice()) {
        (_, []) => {}
        (None, [only]) => rules.push(vec![Expr::Goto(to_chain(&pool[*only]))]),
        (None, _) => unreachable!("failover_target picks one server"),
        (Some((key, _)), _) => {
            let sched = super::sched_map(&name, &slots, |i| to_chain(&pool[i]));
            let mut rule = load_key(key, v6, s.persistence.map(|p| p.prefix_len));
            rule.push(Expr::Jhash {
                sreg: reg::CLIENT,
                len: key_len(key, v6),
                dreg: reg::SLOT,
                modulus: slots.len() as u32,
                seed: schedule::fnv1a64(0x6472, name.as_bytes()) as u32,
            });
            rule.push(Expr::Lookup {
                set: sched.name.clone(),
                sreg: reg::SLOT,
                dreg: Some(0),
                invert: false,
            });
            rules.push(rule);
            sets.insert(0, sched);
        }
    }

    let mut chains = vec![Chain {
        name: name.clone(),
        hook: None,
        rules,
    }];
    chains.extend(server_chains);
    let mut dispatch = dispatch_rule(vip, port, protocol.number());
    dispatch.push(Expr::Jump(name));
    Ok((
        ServiceObjects {
            chains,
            sets,
            dispatch,
        },
        s.dr.ingress.clone(),
    ))
}

/// Most flows the director remembers per real server of a service; beyond it a flow is
/// forwarded by the buckets alone, unremembered.
pub const FLOW_MEMORY_SIZE: u32 = 262_144;

/// How long a flow is remembered after its last packet, by protocol (IPVS's defaults for
/// an established TCP connection and for UDP); a persistent service's clients are
/// remembered for `persistence_timeout` instead.
pub fn flow_timeout(protocol: Protocol) -> Duration {
    match protocol {
        Protocol::Tcp | Protocol::Sctp => Duration::from_secs(900),
        Protocol::Udp => Duration::from_secs(300),
    }
}

/// What a service's flow memory is keyed by: one set per real server, filled by the
/// packets sent to it (the director's connection table, IPVS's templates with persistence).
struct FlowMemory {
    key_type: u32,
    key_len: u32,
    timeout: Duration,
    /// Loads the key into `reg::CLIENT` onwards.
    load: Vec<Expr>,
}

impl FlowMemory {
    fn new(s: &Service, protocol: Protocol, v6: bool) -> FlowMemory {
        let addr_type = if v6 {
            datatype::IP6ADDR
        } else {
            datatype::IPADDR
        };
        let (key, key_type, timeout) = match s.persistence {
            Some(p) => (HashKey::Client, addr_type, p.timeout),
            None => (
                HashKey::Flow,
                datatype::concat(addr_type, datatype::INET_SERVICE),
                flow_timeout(protocol),
            ),
        };
        FlowMemory {
            key_type,
            key_len: key_len(key, v6),
            // The kernel takes no zero timeout; a second is the least nft offers.
            timeout: timeout.max(Duration::from_secs(1)),
            load: load_key(key, v6, s.persistence.map(|p| p.prefix_len)),
        }
    }

    fn set(&self, name: String) -> Set {
        Set {
            name,
            key_type: self.key_type,
            key_len: self.key_len,
            data: SetData::None,
            timeout: Some(self.timeout),
            size: Some(FLOW_MEMORY_SIZE),
            elements: Vec::new(),
        }
    }
}

/// Bytes of `key` in the registers (the port padded to a register).
fn key_len(key: HashKey, v6: bool) -> u32 {
    let alen: u32 = if v6 { 16 } else { 4 };
    match key {
        HashKey::Flow => alen + 4,
        HashKey::Client | HashKey::Destination => alen,
    }
}

/// Loads the hash key into `reg::CLIENT` onwards (NAT services load theirs alike).
pub(super) fn load_key(key: HashKey, v6: bool, prefix_len: Option<u8>) -> Vec<Expr> {
    let alen: u32 = if v6 { 16 } else { 4 };
    let (saddr, daddr) = if v6 { (8, 24) } else { (12, 16) };
    let mut out = vec![Expr::Payload {
        base: PayloadBase::Network,
        offset: if key == HashKey::Destination {
            daddr
        } else {
            saddr
        },
        len: alen,
        dreg: reg::CLIENT,
    }];
    match key {
        HashKey::Flow => out.push(Expr::Payload {
            base: PayloadBase::Transport,
            offset: 0,
            len: 2,
            dreg: reg::CLIENT + alen / 4,
        }),
        HashKey::Client => {
            if let Some(p) = prefix_len.filter(|&p| u32::from(p) < alen * 8) {
                out.push(Expr::And {
                    reg: reg::CLIENT,
                    mask: prefix_mask(alen as usize, p),
                });
            }
        }
        HashKey::Destination => {}
    }
    out
}

/// Matches frames for this machine carrying `vip:port` over `proto` (registers from
/// `reg::ADDR`, wide enough for an IPv6 address).
fn dispatch_rule(vip: IpAddr, port: u16, proto: u8) -> Vec<Expr> {
    let m = reg::ADDR;
    let ethertype: u16 = if vip.is_ipv6() { 0x86dd } else { 0x0800 };
    vec![
        Expr::Meta {
            key: MetaKey::PktType,
            dreg: m,
        },
        Expr::CmpEq {
            sreg: m,
            data: vec![PACKET_HOST],
        },
        Expr::Meta {
            key: MetaKey::Protocol,
            dreg: m,
        },
        Expr::CmpEq {
            sreg: m,
            data: ethertype.to_be_bytes().to_vec(),
        },
        Expr::Payload {
            base: PayloadBase::Network,
            offset: if vip.is_ipv6() { 24 } else { 16 },
            len: if vip.is_ipv6() { 16 } else { 4 },
            dreg: m,
        },
        Expr::CmpEq {
            sreg: m,
            data: addr_bytes(vip),
        },
        Expr::Meta {
            key: MetaKey::L4proto,
            dreg: m,
        },
        Expr::CmpEq {
            sreg: m,
            data: vec![proto],
        },
        Expr::Payload {
            base: PayloadBase::Transport,
            offset: 2,
            len: 2,
            dreg: m,
        },
        Expr::CmpEq {
            sreg: m,
            data: port.to_be_bytes().to_vec(),
        },
    ]
}

/// Gathers the services' objects into the table: one ingress chain per device, holding
/// the dispatch rules of the services that arrive on it, in the services' order.
pub fn ruleset(planned: Vec<Planned>) -> DrRuleset {
    let mut by_device: BTreeMap<String, Vec<Vec<Expr>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut services = Vec::with_capacity(planned.len());
    for (s, devices) in planned {
        for device in devices {
            let rules = by_device.entry(device.clone()).or_default();
            if rules.is_empty() {
                order.push(device);
            }
            if !rules.contains(&s.dispatch) {
                rules.push(s.dispatch.clone());
            }
        }
        services.push(s);
    }
    DrRuleset {
        ingress: order
            .into_iter()
            .map(|device| IngressChain {
                name: ingress_chain(&device),
                rules: by_device.remove(&device).unwrap_or_default(),
                device,
            })
            .collect(),
        services,
    }
}

/// The operations (on the direct-routing table) that turn `old` into `new` (`None`: not
/// known, e.g. at start; the table is then created afresh, replacing a copy an earlier run
/// left). The table stays: services, server chains and maps that changed are flushed and
/// refilled, those that went are deleted, and the flow maps of the services that stay are
/// kept, so the director goes on sending remembered flows to their servers.
pub fn diff(old: Option<&DrRuleset>, new: &DrRuleset) -> Vec<Op> {
    let mut out = Vec::new();
    let Some(old) = old else {
        out.push(Op::ResetTable);
        new.services.iter().for_each(|s| add_service(&mut out, s));
        for chain in &new.ingress {
            add_ingress(&mut out, chain);
        }
        return out;
    };
    // Dispatch rules jump to service chains: they go before a service chain can.
    for chain in &old.ingress {
        match ingress(new, &chain.name) {
            Some(n) if n == chain => {}
            Some(_) => out.push(Op::FlushChain(chain.name.clone())),
            None => out.extend([
                Op::FlushChain(chain.name.clone()),
                Op::DeleteChain(chain.name.clone()),
            ]),
        }
    }
    diff_services(&mut out, &old.services, &new.services);
    for chain in &new.ingress {
        match ingress(old, &chain.name) {
            Some(o) if o == chain => {}
            Some(_) => add_rules(&mut out, &chain.name, &chain.rules),
            None => add_ingress(&mut out, chain),
        }
    }
    out
}

fn ingress<'a>(r: &'a DrRuleset, name: &str) -> Option<&'a IngressChain> {
    r.ingress.iter().find(|c| c.name == name)
}

fn add_ingress(out: &mut Vec<Op>, chain: &IngressChain) {
    out.push(Op::AddIngressChain {
        name: chain.name.clone(),
        device: chain.device.clone(),
    });
    add_rules(out, &chain.name, &chain.rules);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{ElementData, Ruleset};
    use crate::plan::{diff, plan, validate};
    use crate::service::{Persistence, Protocol};
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn eth(index: u32) -> Link {
        Link {
            name: format!("eth{index}"),
            index,
        }
    }

    fn web(sched: Scheduler, weights: &[u32]) -> Service {
        let mut s = Service::dr(ip("10.0.0.100"), 80, Protocol::Tcp, sched, &["eth0"]);
        for (i, &w) in weights.iter().enumerate() {
            let addr = ip(&format!("10.0.0.{}", 11 + i));
            s = s.server(addr, 80, w).egress(addr, eth(2));
        }
        s
    }

    fn set<'a>(svc: &'a ServiceObjects, name: &str) -> &'a Set {
        svc.sets.iter().find(|x| x.name == name).unwrap()
    }

    /// The server each bucket sends to.
    fn owners(r: &Ruleset) -> Vec<String> {
        set(&r.dr.services[0], "tcp_10_0_0_100_80_sched")
            .elements
            .iter()
            .map(|(_, d)| match d {
                ElementData::Goto(c) => c.rsplit("_to_").next().unwrap().to_string(),
                ElementData::None => panic!("sched is a verdict map"),
            })
            .collect()
    }

    fn share(owners: &[String], server: &str) -> f64 {
        owners.iter().filter(|o| o.starts_with(server)).count() as f64 / owners.len() as f64
    }

    #[test]
    fn wrr_hashes_the_flow_over_weighted_buckets_and_forwards_to_the_servers_mac() {
        let r = plan(&[web(Scheduler::WeightedRoundRobin, &[1, 2, 3])]).unwrap();
        assert!(r.services.is_empty(), "nothing in the NAT table");
        let svc = &r.dr.services[0];
        let o = owners(&r);
        assert_eq!(o.len(), schedule::PERSISTENCE_BUCKETS);
        for (server, want) in [("10_0_0_11", 1.0 / 6.0), ("10_0_0_13", 0.5)] {
            assert!((share(&o, server) - want).abs() < 0.03, "{server}");
        }
        // rules[..3]: flows remembered on each server; rules[3]: new flows, by the buckets.
        let rule = &svc.chains[0].rules[3];
        // Source address then source port, hashed together: one choice per connection.
        assert_eq!(
            rule[..2],
            [
                Expr::Payload {
                    base: PayloadBase::Network,
                    offset: 12,
                    len: 4,
                    dreg: reg::CLIENT
                },
                Expr::Payload {
                    base: PayloadBase::Transport,
                    offset: 0,
                    len: 2,
                    dreg: reg::CLIENT + 1
                }
            ]
        );
        assert!(matches!(
            rule[2],
            Expr::Jhash {
                len: 8,
                modulus: 4093,
                ..
            }
        ));
        assert!(!rule.iter().any(|e| matches!(e, Expr::Numgen { .. })));
        let to = &svc.chains[1];
        assert_eq!(to.name, "tcp_10_0_0_100_80_to_10_0_0_11_0");
        assert_eq!(
            to.rules[1][2],
            Expr::Fwd {
                ipv6: false,
                addr_reg: reg::ADDR,
                dev_reg: DEV_REG
            }
        );
        assert!(to.rules[1].contains(&Expr::Immediate {
            dreg: DEV_REG,
            data: 2u32.to_ne_bytes().to_vec()
        }));
        // One ingress chain on the VIP's device, matching frames for this host only.
        assert_eq!(r.dr.ingress.len(), 1);
        assert_eq!(r.dr.ingress[0].device, "eth0");
        let dispatch = &r.dr.ingress[0].rules[0];
        assert_eq!(
            dispatch[..2],
            [
                Expr::Meta {
                    key: MetaKey::PktType,
                    dreg: reg::ADDR
                },
                Expr::CmpEq {
                    sreg: reg::ADDR,
                    data: vec![PACKET_HOST]
                }
            ]
        );
        assert_eq!(
            dispatch.last(),
            Some(&Expr::Jump("tcp_10_0_0_100_80".into()))
        );
    }

    #[test]
    fn two_directors_plan_the_same_table() {
        for sched in [
            Scheduler::RoundRobin,
            Scheduler::WeightedLeastConnection,
            Scheduler::MaglevHash,
        ] {
            let a = plan(&[web(sched, &[1, 2, 3])]).unwrap();
            // The other director lists its servers in another order, reaches them by
            // another device: the buckets are the same.
            let mut other = web(sched, &[1, 2, 3]);
            other.servers.reverse();
            other.dr.egress.iter_mut().for_each(|(_, l)| *l = eth(7));
            let b = plan(&[other]).unwrap();
            assert_eq!(owners(&a), owners(&b), "{sched:?}");
        }
    }

    #[test]
    fn a_server_leaving_or_quiesced_moves_only_its_own_flows() {
        let before = owners(&plan(&[web(Scheduler::WeightedRoundRobin, &[1, 2, 3, 1])]).unwrap());
        let mut s = web(Scheduler::WeightedRoundRobin, &[1, 2, 3, 1]);
        s.servers.remove(2);
        let after = owners(&plan(&[s]).unwrap());
        for (b, a) in before.iter().zip(&after) {
            if !b.starts_with("10_0_0_13") {
                assert_eq!(a, b);
            }
        }
        let mut q = web(Scheduler::WeightedRoundRobin, &[1, 2, 3, 1]);
        q.servers[2].weight = 0;
        assert_eq!(owners(&plan(&[q]).unwrap()), after);
    }

    #[test]
    fn each_scheduler_hashes_its_own_key() {
        let key_len = |s: Service| {
            let r = plan(&[s]).unwrap();
            let rules = r.dr.services[0].chains[0].rules.clone();
            rules.into_iter().flatten().find_map(|e| match e {
                Expr::Jhash { len, .. } => Some(len),
                _ => None,
            })
        };
        assert_eq!(key_len(web(Scheduler::RoundRobin, &[1, 1])), Some(8));
        assert_eq!(key_len(web(Scheduler::SourceHash, &[1, 1])), Some(4));
        let mut p = web(Scheduler::WeightedRoundRobin, &[1, 1]);
        p.persistence = Some(Persistence {
            timeout: Duration::from_secs(60),
            prefix_len: 24,
        });
        let r = plan(&[p.clone()]).unwrap();
        assert!(r.dr.services[0].chains[0].rules[0].contains(&Expr::And {
            reg: reg::CLIENT,
            mask: vec![255, 255, 255, 0]
        }));
        assert_eq!(key_len(p), Some(4));
        // rr ignores weights beyond quiescing.
        let rr = owners(&plan(&[web(Scheduler::RoundRobin, &[1, 5])]).unwrap());
        assert!((share(&rr, "10_0_0_12") - 0.5).abs() < 0.03);
        // fo: everything to the highest weight, no hash.
        let fo = plan(&[web(Scheduler::WeightedFailover, &[1, 5])]).unwrap();
        assert_eq!(
            fo.dr.services[0].chains[0].rules[2],
            vec![Expr::Goto("tcp_10_0_0_100_80_to_10_0_0_12_0".into())]
        );
        // IPv6: ND instead of ARP, the address fills four registers before the port.
        let mut v6 = Service::dr(
            ip("fd00::100"),
            443,
            Protocol::Tcp,
            Scheduler::RoundRobin,
            &["eth0"],
        );
        v6 = v6
            .server(ip("fd00::11"), 443, 1)
            .egress(ip("fd00::11"), eth(3));
        let r = plan(&[v6]).unwrap();
        let svc = &r.dr.services[0];
        assert!(matches!(
            svc.chains[1].rules[1][2],
            Expr::Fwd { ipv6: true, .. }
        ));
        assert!(svc.chains[0].rules[0].contains(&Expr::Payload {
            base: PayloadBase::Transport,
            offset: 0,
            len: 2,
            dreg: reg::CLIENT + 4
        }));
    }

    #[test]
    fn no_server_leaves_the_packet_to_the_director_and_the_sorry_server_takes_over() {
        let mut s = web(Scheduler::RoundRobin, &[0, 0]);
        let r = plan(&[s.clone()]).unwrap();
        // Only remembered flows are forwarded (to the quiesced servers); new ones are not.
        let svc = &r.dr.services[0];
        assert_eq!(svc.chains[0].rules.len(), 2);
        assert!(svc.sets.iter().all(|x| x.is_dynamic()));
        s.sorry = Some(Server {
            addr: ip("10.0.0.50"),
            port: 80,
            weight: 0,
        });
        assert!(matches!(
            plan(&[s.clone()]),
            Err(PlanError::NoEgress { .. })
        ));
        s = s.egress(ip("10.0.0.50"), eth(2));
        assert_eq!(
            owners(&plan(&[s]).unwrap())
                .iter()
                .filter(|o| o.starts_with("10_0_0_50"))
                .count(),
            schedule::PERSISTENCE_BUCKETS
        );
    }

    #[test]
    fn devices_are_needed_to_plan_but_not_to_validate() {
        let mut s = web(Scheduler::RoundRobin, &[1]);
        s.dr.egress.clear();
        assert!(validate(&[s.clone()]).is_ok());
        assert!(matches!(
            plan(&[s.clone()]),
            Err(PlanError::NoEgress { .. })
        ));
        s.dr.ingress.clear();
        assert!(matches!(plan(&[s]), Err(PlanError::NoIngress(_))));
    }

    /// The operations on the direct-routing table in `ops`.
    fn dr_ops(ops: &[Op]) -> Vec<Op> {
        match ops.last() {
            Some(Op::Dr(dr)) => dr.clone(),
            other => panic!("no direct-routing change: {other:?}"),
        }
    }

    #[test]
    fn a_known_flow_goes_back_to_its_server_and_a_new_one_is_recorded() {
        let r = plan(&[web(Scheduler::WeightedRoundRobin, &[1, 2])]).unwrap();
        let svc = &r.dr.services[0];
        let flows = set(svc, "tcp_10_0_0_100_80_f_10_0_0_11_0");
        // Source address . source port (the port padded to a register), per server.
        assert_eq!(
            (flows.key_type, flows.key_len),
            (
                datatype::concat(datatype::IPADDR, datatype::INET_SERVICE),
                8
            )
        );
        assert_eq!(flows.data, SetData::None);
        assert_eq!(flows.timeout, Some(Duration::from_secs(900)));
        assert_eq!(flows.size, Some(FLOW_MEMORY_SIZE));
        assert!(flows.is_dynamic() && flows.elements.is_empty());
        let flow_key = load_key(HashKey::Flow, false, None);
        let rules = &svc.chains[0].rules;
        assert_eq!(rules.len(), 3);
        // 1, 2. A flow remembered on a server goes back to it, before any hashing.
        for (rule, server) in rules.iter().zip(["10_0_0_11_0", "10_0_0_12_0"]) {
            let mut want = flow_key.clone();
            want.extend([
                Expr::Lookup {
                    set: format!("tcp_10_0_0_100_80_f_{server}"),
                    sreg: reg::CLIENT,
                    dreg: None,
                    invert: false,
                },
                Expr::Goto(format!("tcp_10_0_0_100_80_to_{server}")),
            ]);
            assert_eq!(rule, &want);
        }
        // 3. Any other flow: the buckets.
        assert!(
            matches!(rules[2].last(), Some(Expr::Lookup { set, .. }) if set.ends_with("_sched"))
        );
        // Each packet sent to a server records its flow (or refreshes it), in a rule of
        // its own: a full memory stops that rule, not the forwarding.
        let to = &svc.chains[1];
        let mut record = flow_key.clone();
        record.push(Expr::Dynset {
            op: DynsetOp::Update,
            set: flows.name.clone(),
            sreg_key: reg::CLIENT,
        });
        assert_eq!(to.rules[0], record);
        assert!(matches!(to.rules[1].last(), Some(Expr::Fwd { .. })));
        // UDP flows are forgotten sooner, as in IPVS.
        let mut udp = web(Scheduler::RoundRobin, &[1]);
        udp.key = ServiceKey::Addr {
            vip: ip("10.0.0.100"),
            port: 53,
            protocol: Protocol::Udp,
        };
        let r = plan(&[udp]).unwrap();
        assert_eq!(
            r.dr.services[0].sets[1].timeout,
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn persistence_remembers_the_masked_client_for_the_persistence_timeout() {
        let mut p = web(Scheduler::WeightedRoundRobin, &[1, 1]);
        p.persistence = Some(Persistence {
            timeout: Duration::from_secs(60),
            prefix_len: 24,
        });
        let r = plan(&[p]).unwrap();
        let svc = &r.dr.services[0];
        let flows = set(svc, "tcp_10_0_0_100_80_f_10_0_0_12_0");
        assert_eq!((flows.key_type, flows.key_len), (datatype::IPADDR, 4));
        assert_eq!(flows.timeout, Some(Duration::from_secs(60)));
        let known = &svc.chains[0].rules[0];
        assert_eq!(
            known[..2],
            [
                Expr::Payload {
                    base: PayloadBase::Network,
                    offset: 12,
                    len: 4,
                    dreg: reg::CLIENT
                },
                Expr::And {
                    reg: reg::CLIENT,
                    mask: vec![255, 255, 255, 0]
                }
            ]
        );
        // IPv6: the address fills four registers, the port a fifth.
        let mut v6 = Service::dr(
            ip("fd00::100"),
            443,
            Protocol::Tcp,
            Scheduler::RoundRobin,
            &["eth0"],
        )
        .server(ip("fd00::11"), 443, 1)
        .egress(ip("fd00::11"), eth(3));
        let r = plan(&[v6.clone()]).unwrap();
        let flows = set(&r.dr.services[0], "tcp_fd00__100_443_f_fd00__11_0");
        assert_eq!(flows.key_len, 20);
        assert_eq!(
            flows.key_type,
            datatype::concat(datatype::IP6ADDR, datatype::INET_SERVICE)
        );
        v6.persistence = Some(Persistence {
            timeout: Duration::from_secs(600),
            prefix_len: 64,
        });
        let r = plan(&[v6]).unwrap();
        assert_eq!(
            set(&r.dr.services[0], "tcp_fd00__100_443_f_fd00__11_0").key_len,
            16
        );
    }

    #[test]
    fn a_quiesced_server_keeps_its_remembered_flows_but_takes_no_new_ones() {
        let r = plan(&[web(Scheduler::WeightedRoundRobin, &[1, 0, 2])]).unwrap();
        let svc = &r.dr.services[0];
        assert!(svc
            .sets
            .iter()
            .any(|x| x.name == "tcp_10_0_0_100_80_f_10_0_0_12_0"));
        assert!(svc.chains[0]
            .rules
            .iter()
            .any(|r| r.last() == Some(&Expr::Goto("tcp_10_0_0_100_80_to_10_0_0_12_0".into()))));
        assert!(!owners(&r).iter().any(|o| o.starts_with("10_0_0_12")));
    }

    #[test]
    fn a_pool_change_keeps_the_table_and_the_flow_memory() {
        let nat = Service::nat(ip("10.0.0.100"), 443, Protocol::Tcp, Scheduler::RoundRobin).server(
            ip("10.0.1.1"),
            443,
            1,
        );
        let two = plan(&[nat.clone(), web(Scheduler::RoundRobin, &[1, 1])]).unwrap();
        // At start the table is created afresh (a stale copy of an earlier run goes).
        let first = dr_ops(&diff(None, &two));
        assert_eq!(first[0], Op::ResetTable);
        assert!(first.contains(&Op::AddIngressChain {
            name: "ingress_eth0".into(),
            device: "eth0".into()
        }));
        assert!(diff(Some(&two), &two).is_empty());

        // A third server joins: only the service's chains and static maps change.
        let three = plan(&[nat.clone(), web(Scheduler::RoundRobin, &[1, 1, 1])]).unwrap();
        let all = diff(Some(&two), &three);
        assert_eq!(all.len(), 1, "the NAT table is untouched: {all:?}");
        let ops = dr_ops(&all);
        let flows = "tcp_10_0_0_100_80_f_10_0_0_11_0".to_string();
        for op in &ops {
            assert!(
                !matches!(
                    op,
                    Op::ResetTable | Op::DeleteTable | Op::AddIngressChain { .. }
                ),
                "{op:?}"
            );
            assert_ne!(op, &Op::FlushChain("ingress_eth0".into()));
            assert_ne!(op, &Op::DeleteSet(flows.clone()));
            assert_ne!(op, &Op::FlushSet(flows.clone()));
            assert!(!matches!(op, Op::AddSet(x) if x.name == flows));
        }
        assert!(ops.contains(&Op::FlushSet("tcp_10_0_0_100_80_sched".into())));
        assert!(ops.contains(&Op::AddChain {
            name: "tcp_10_0_0_100_80_to_10_0_0_13_0".into(),
            hook: None
        }));
        assert!(ops
            .iter()
            .any(|o| matches!(o, Op::AddSet(x) if x.name == "tcp_10_0_0_100_80_f_10_0_0_13_0")));

        // A server leaves: its memory goes with its chain, in the same batch, after the
        // map that pointed at the chain was flushed; the others' memories stay.
        let ops = dr_ops(&diff(Some(&three), &two));
        let at = |op: &Op| ops.iter().position(|o| o == op).unwrap();
        let gone = Op::DeleteChain("tcp_10_0_0_100_80_to_10_0_0_13_0".into());
        assert!(at(&Op::FlushSet("tcp_10_0_0_100_80_sched".into())) < at(&gone));
        assert!(ops.contains(&Op::DeleteSet("tcp_10_0_0_100_80_f_10_0_0_13_0".into())));
        assert!(!ops.contains(&Op::DeleteSet(flows.clone())));

        // Another persistence: the memory's key changes, so the map is made anew.
        let mut p = web(Scheduler::RoundRobin, &[1, 1]);
        p.persistence = Some(Persistence {
            timeout: Duration::from_secs(60),
            prefix_len: 32,
        });
        let persistent = plan(&[nat.clone(), p]).unwrap();
        let ops = dr_ops(&diff(Some(&two), &persistent));
        assert!(ops.contains(&Op::DeleteSet(flows.clone())));
        assert!(ops
            .iter()
            .any(|o| matches!(o, Op::AddSet(x) if x.name == flows)));

        // The service goes: its dispatch rule first, then its objects; the last one takes
        // the table with it.
        let mut b = web(Scheduler::RoundRobin, &[1]);
        b.key = ServiceKey::Addr {
            vip: ip("10.0.0.101"),
            port: 80,
            protocol: Protocol::Tcp,
        };
        let both = plan(&[nat.clone(), web(Scheduler::RoundRobin, &[1, 1]), b.clone()]).unwrap();
        let only_b = plan(&[nat.clone(), b]).unwrap();
        let ops = dr_ops(&diff(Some(&both), &only_b));
        let at = |op: &Op| ops.iter().position(|o| o == op).unwrap();
        assert!(
            at(&Op::FlushChain("ingress_eth0".into()))
                < at(&Op::DeleteChain("tcp_10_0_0_100_80".into()))
        );
        assert!(ops.contains(&Op::DeleteSet(flows)));
        assert!(!ops.contains(&Op::FlushChain("tcp_10_0_0_101_80".into())));
        let none = plan(&[nat]).unwrap();
        assert_eq!(diff(Some(&only_b), &none), vec![Op::DeleteDrTable]);
        assert_eq!(diff(None, &none).last(), Some(&Op::DeleteDrTable));
    }

    #[test]
    fn services_sharing_a_device_share_its_ingress_chain() {
        let a = web(Scheduler::RoundRobin, &[1]);
        let mut b = web(Scheduler::RoundRobin, &[1]);
        b.key = ServiceKey::Addr {
            vip: ip("10.0.0.101"),
            port: 80,
            protocol: Protocol::Tcp,
        };
        b.dr.ingress = vec!["eth0".into(), "vrrp.51".into()];
        let r = plan(&[a, b]).unwrap();
        let chains: Vec<(&str, usize)> =
            r.dr.ingress
                .iter()
                .map(|c| (c.device.as_str(), c.rules.len()))
                .collect();
        assert_eq!(chains, vec![("eth0", 2), ("vrrp.51", 1)]);
    }
}
