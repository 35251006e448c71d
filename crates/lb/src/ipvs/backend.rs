//! The [`Ipvs`] backend: keeps the kernel's IPVS services equal to the
//! services tandem applies, touching only the services it created.

use std::collections::BTreeMap;
use std::net::IpAddr;

use nix::errno::Errno;

use super::message::{CmdAttr, Command, IpvsMessage};
use super::model::{key_attrs, DaemonState, RealServer, RunningDaemon, SyncDaemon, VirtualService};
use super::socket::{IpvsError, IpvsSocket};
use crate::backend::{Backend, Error};
use crate::service::{Service, ServiceKey};

/// Where the kernel shows IPVS when the `ip_vs` module is loaded.
pub const IPVS_PROC: &str = "/proc/net/ip_vs";

/// A service as ipvsadm lists it: `TCP 10.0.0.1:80`, `FWM 5 IPv6`.
pub fn describe(key: &ServiceKey) -> String {
    match *key {
        ServiceKey::Addr {
            vip,
            port,
            protocol,
        } => match vip {
            IpAddr::V4(v4) => format!("{} {v4}:{port}", protocol.name().to_uppercase()),
            IpAddr::V6(v6) => format!("{} [{v6}]:{port}", protocol.name().to_uppercase()),
        },
        ServiceKey::Fwmark { mark, ipv6: false } => format!("FWM {mark}"),
        ServiceKey::Fwmark { mark, ipv6: true } => format!("FWM {mark} IPv6"),
    }
}

fn describe_server(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

type DestKey = (IpAddr, u16);

/// What tandem created for one service.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Applied {
    service: VirtualService,
    dests: BTreeMap<DestKey, RealServer>,
}

/// The kernel form of one service: the real servers, and the sorry server
/// while no real server has a positive weight (as keepalived adds it when
/// the pool is empty).
fn wanted(s: &Service) -> Applied {
    let port_for = |port: u16| match (port, s.key) {
        (0, ServiceKey::Addr { port, .. }) => port,
        (p, _) => p,
    };
    let mut dests = BTreeMap::new();
    let pool_empty = s.servers.iter().all(|sv| sv.weight == 0);
    let sorry = s
        .sorry
        .filter(|_| pool_empty)
        .map(|sv| crate::Server { weight: 1, ..sv });
    for sv in s.servers.iter().chain(sorry.iter()) {
        let rs = RealServer {
            addr: sv.addr,
            port: port_for(sv.port),
            forwarding: s.forwarding,
            weight: sv.weight,
        };
        dests.insert((rs.addr, rs.port), rs);
    }
    Applied {
        service: VirtualService {
            key: s.key,
            scheduler: s.scheduler.name().to_string(),
            persistence: s.persistence,
        },
        dests,
    }
}

/// IPVS through generic netlink, for kernels with `ip_vs`.
///
/// Unlike nftables, IPVS has no transactions: each service and real server
/// is its own request. After an error the backend remembers what did take
/// effect, so the next [`Backend::apply`] converges from there.
pub struct Ipvs {
    sock: IpvsSocket,
    applied: BTreeMap<ServiceKey, Applied>,
}

impl Ipvs {
    /// Opens the IPVS socket when the kernel has `ip_vs` (else
    /// [`Error::Unavailable`]). Nothing is changed until the first apply.
    pub fn open() -> Result<Ipvs, Error> {
        if !std::path::Path::new(IPVS_PROC).exists() {
            return Err(Error::Unavailable(format!(
                "IPVS is not available: {IPVS_PROC} does not exist (no ip_vs module); \
                 use the nftables backend"
            )));
        }
        Ok(Ipvs {
            sock: IpvsSocket::open()?,
            applied: BTreeMap::new(),
        })
    }

    /// Every service in the kernel (tandem's and the operator's).
    pub fn services(&mut self) -> Result<Vec<VirtualService>, IpvsError> {
        let msgs = self.sock.dump(
            IpvsMessage::new(Command::GetService, vec![]),
            "list services",
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| m.service().and_then(VirtualService::from_attrs))
            .collect())
    }

    /// The real servers of the service `key`.
    pub fn real_servers(&mut self, key: &ServiceKey) -> Result<Vec<RealServer>, IpvsError> {
        let msgs = self.sock.dump(
            IpvsMessage::new(Command::GetDest, vec![CmdAttr::Service(key_attrs(key))]),
            &format!("list the real servers of {}", describe(key)),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| {
                m.dest()
                    .and_then(|d| RealServer::from_attrs(key.is_ipv6(), d))
            })
            .collect())
    }

    /// Starts the connection sync daemon in `state`.
    pub fn start_daemon(&mut self, d: &SyncDaemon, state: DaemonState) -> Result<(), IpvsError> {
        self.sock.request(
            IpvsMessage::new(Command::NewDaemon, vec![CmdAttr::Daemon(d.attrs(state))]),
            &format!(
                "start the {} sync daemon on {} (sync id {})",
                state.name(),
                d.interface,
                d.sync_id
            ),
        )
    }

    /// Stops the sync daemon in `state`; stopping one that does not run is
    /// not an error.
    ///
    /// ip_vs does not answer the stop of a daemon whose thread has not run
    /// yet (one started a millisecond before: the stop's EINTR makes netlink
    /// drop the answer), although the daemon is gone: without an answer the
    /// kernel's list of daemons decides.
    pub fn stop_daemon(&mut self, state: DaemonState) -> Result<(), IpvsError> {
        match self.request_stop(state) {
            Err(e @ IpvsError::NoAnswer { .. }) => {
                if self.daemons()?.iter().any(|d| d.state == state) {
                    Err(e)
                } else {
                    Ok(())
                }
            }
            r => r,
        }
    }

    fn request_stop(&mut self, state: DaemonState) -> Result<(), IpvsError> {
        let r = self.sock.request(
            IpvsMessage::new(
                Command::DelDaemon,
                vec![CmdAttr::Daemon(vec![super::message::DaemonAttr::State(
                    state.number(),
                )])],
            ),
            &format!("stop the {} sync daemon", state.name()),
        );
        match r {
            Err(e) if e.errno() == Some(Errno::ESRCH as i32) => Ok(()),
            r => r,
        }
    }

    /// The sync daemons running now.
    pub fn daemons(&mut self) -> Result<Vec<RunningDaemon>, IpvsError> {
        let msgs = self.sock.dump(
            IpvsMessage::new(Command::GetDaemon, vec![]),
            "list the sync daemons",
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| m.daemon().and_then(RunningDaemon::from_attrs))
            .collect())
    }

    fn service_cmd(
        &mut self,
        cmd: Command,
        s: &VirtualService,
        verb: &str,
    ) -> Result<(), IpvsError> {
        let attrs = if cmd == Command::DelService {
            key_attrs(&s.key)
        } else {
            s.attrs()
        };
        self.sock.request(
            IpvsMessage::new(cmd, vec![CmdAttr::Service(attrs)]),
            &format!("{verb} service {}", describe(&s.key)),
        )
    }

    fn dest_cmd(
        &mut self,
        cmd: Command,
        key: &ServiceKey,
        rs: &RealServer,
        verb: &str,
    ) -> Result<(), IpvsError> {
        let dest = if cmd == Command::DelDest {
            rs.key_attrs()
        } else {
            rs.attrs()
        };
        self.sock.request(
            IpvsMessage::new(
                cmd,
                vec![CmdAttr::Service(key_attrs(key)), CmdAttr::Dest(dest)],
            ),
            &format!(
                "{verb} real server {} of service {}",
                describe_server(rs.addr, rs.port),
                describe(key)
            ),
        )
    }

    /// Creates `want`'s service, or takes over one with the same key left
    /// by an earlier run (its real servers then converge to `want`'s).
    fn create(&mut self, want: &Applied) -> Result<(), IpvsError> {
        let key = want.service.key;
        match self.service_cmd(Command::NewService, &want.service, "add") {
            Err(e) if e.errno() == Some(Errno::EEXIST as i32) => {
                self.service_cmd(Command::SetService, &want.service, "take over")?;
                let dests = self
                    .real_servers(&key)?
                    .into_iter()
                    .map(|rs| ((rs.addr, rs.port), rs))
                    .collect();
                self.applied.insert(
                    key,
                    Applied {
                        service: want.service.clone(),
                        dests,
                    },
                );
                Ok(())
            }
            Err(e) => Err(e),
            Ok(()) => {
                self.applied.insert(
                    key,
                    Applied {
                        service: want.service.clone(),
                        dests: BTreeMap::new(),
                    },
                );
                Ok(())
            }
        }
    }

    fn converge(&mut self, want: &Applied) -> Result<(), IpvsError> {
        let key = want.service.key;
        if !self.applied.contains_key(&key) {
            self.create(want)?;
        }
        let have = self.applied.get(&key).cloned().expect("created above");
        if have.service != want.service {
            self.service_cmd(Command::SetService, &want.service, "change")?;
            self.applied.get_mut(&key).expect("present").service = want.service.clone();
        }
        // New and changed servers first, so the pool never empties on the way.
        for (dk, rs) in &want.dests {
            let cmd = match have.dests.get(dk) {
                None => Command::NewDest,
                Some(old) if old != rs => Command::SetDest,
                Some(_) => continue,
            };
            let verb = if cmd == Command::NewDest {
                "add"
            } else {
                "change"
            };
            self.dest_cmd(cmd, &key, rs, verb)?;
            let entry = self.applied.get_mut(&key).expect("present");
            entry.dests.insert(*dk, *rs);
        }
        for (dk, rs) in &have.dests {
            if !want.dests.contains_key(dk) {
                match self.dest_cmd(Command::DelDest, &key, rs, "remove") {
                    Err(e) if e.errno() != Some(Errno::ENOENT as i32) => return Err(e),
                    _ => {}
                }
                self.applied
                    .get_mut(&key)
                    .expect("present")
                    .dests
                    .remove(dk);
            }
        }
        Ok(())
    }

    fn delete(&mut self, key: &ServiceKey) -> Result<(), IpvsError> {
        let Some(have) = self.applied.get(key) else {
            return Ok(());
        };
        let service = have.service.clone();
        match self.service_cmd(Command::DelService, &service, "delete") {
            // Already gone (an operator's ipvsadm -C): nothing left to do.
            Err(e) if e.errno() != Some(Errno::ESRCH as i32) => return Err(e),
            _ => {}
        }
        self.applied.remove(key);
        Ok(())
    }
}

impl Backend for Ipvs {
    fn apply(&mut self, services: &[Service]) -> Result<(), Error> {
        let wants: BTreeMap<ServiceKey, Applied> =
            services.iter().map(|s| (s.key, wanted(s))).collect();
        let gone: Vec<ServiceKey> = self
            .applied
            .keys()
            .filter(|k| !wants.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            self.delete(&key)?;
        }
        for want in wants.values() {
            self.converge(want)?;
        }
        Ok(())
    }

    fn clear(&mut self) -> Result<(), Error> {
        let keys: Vec<ServiceKey> = self.applied.keys().copied().collect();
        for key in keys {
            self.delete(&key)?;
        }
        Ok(())
    }

    fn holdings(&self) -> String {
        "tandem's IPVS services".to_string()
    }
}
