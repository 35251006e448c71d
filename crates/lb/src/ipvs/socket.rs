//! A generic netlink socket speaking the `IPVS` family: resolves the
//! family id through the controller, sends one request at a time and
//! collects its acknowledgement or dump.

use std::fmt::Debug;
use std::io;
use std::time::Duration;

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkBuffer, NetlinkDeserializable, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, ParseableParametrized, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use super::message::{IpvsMessage, FAMILY_NAME};

/// How long to wait for the kernel's answer before calling it lost.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an IPVS request failed.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    /// The socket could not be opened or used.
    #[error("IPVS generic netlink socket: {op}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// The kernel queued no answer, or did not finish one in time (the
    /// request may still have taken effect: netlink drops the answer of a
    /// request interrupted inside the kernel).
    #[error("IPVS gave no answer to `{what}`")]
    NoAnswer {
        /// The request.
        what: String,
    },
    /// The kernel has no `IPVS` generic netlink family (no `ip_vs` module).
    #[error("the kernel has no IPVS generic netlink family (is the ip_vs module loaded?)")]
    NoFamily,
    /// The kernel refused a request.
    #[error("IPVS refused to {what}: {source}")]
    Refused {
        /// The request, naming the service or daemon.
        what: String,
        /// The kernel's errno.
        source: io::Error,
    },
    /// An answer could not be decoded.
    #[error("IPVS answer to `{what}` could not be decoded: {reason}")]
    Decode {
        /// The request.
        what: String,
        /// What was wrong.
        reason: String,
    },
}

impl IpvsError {
    /// The kernel's errno, if the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            IpvsError::Refused { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> IpvsError {
    move |source| IpvsError::Io { op, source }
}

/// A NETLINK_GENERIC socket bound to the `IPVS` family.
pub struct IpvsSocket {
    sock: Socket,
    family: u16,
    seq: u32,
}

impl IpvsSocket {
    /// Opens the socket in the calling thread's network namespace and
    /// resolves the family id.
    pub fn open() -> Result<IpvsSocket, IpvsError> {
        let mut sock = Socket::new(NETLINK_GENERIC).map_err(io_err("socket"))?;
        sock.bind_auto().map_err(io_err("bind"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(io_err("connect"))?;
        let t = TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0);
        setsockopt(&sock, sockopt::ReceiveTimeout, &t)
            .map_err(|e| io_err("SO_RCVTIMEO")(e.into()))?;
        let mut s = IpvsSocket {
            sock,
            family: 0,
            seq: std::process::id().wrapping_mul(1 << 12),
        };
        s.family = s.resolve_family()?;
        Ok(s)
    }

    fn resolve_family(&mut self) -> Result<u16, IpvsError> {
        let ask = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.to_string())],
        });
        let answers = match self.transact(ask, NLM_F_REQUEST | NLM_F_ACK, "resolve the family") {
            Ok(a) => a,
            Err(e) if e.errno() == Some(libc_enoent()) => return Err(IpvsError::NoFamily),
            Err(e) => return Err(e),
        };
        answers
            .iter()
            .flat_map(|m: &GenlMessage<GenlCtrl>| m.payload.nlas.iter())
            .find_map(|a| match a {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
            .ok_or(IpvsError::NoFamily)
    }

    /// Whether the kernel queued an answer to the request just sent.
    ///
    /// The kernel handles a generic netlink request inside `send`: the
    /// answer (a dump's first part included) is queued before `send`
    /// returns, so nothing queued means nothing will come. Netlink drops the
    /// answer of a handler that returned EINTR, which ip_vs does when it
    /// stops a sync daemon whose thread has not run yet (stopped anyway).
    fn answer_queued(&self) -> Result<bool, IpvsError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::ZERO).map_err(|e| io_err("poll")(e.into()))?;
        Ok(ready > 0)
    }

    /// Sends `msg` and waits for the kernel's acknowledgement.
    pub fn request(&mut self, msg: IpvsMessage, what: &str) -> Result<(), IpvsError> {
        let msg = GenlMessage::new(GenlHeader { cmd: 0, version: 0 }, msg, self.family);
        self.transact_ipvs(msg, NLM_F_REQUEST | NLM_F_ACK, what)
            .map(drop)
    }

    /// Sends a dump request and returns every message of the answer.
    pub fn dump(&mut self, msg: IpvsMessage, what: &str) -> Result<Vec<IpvsMessage>, IpvsError> {
        let msg = GenlMessage::new(GenlHeader { cmd: 0, version: 0 }, msg, self.family);
        self.transact_ipvs(msg, NLM_F_REQUEST | NLM_F_DUMP, what)
    }

    /// Sends a request answered by one message (GET_INFO).
    pub fn query(&mut self, msg: IpvsMessage, what: &str) -> Result<IpvsMessage, IpvsError> {
        let msg = GenlMessage::new(GenlHeader { cmd: 0, version: 0 }, msg, self.family);
        let mut answers = self.transact_ipvs(msg, NLM_F_REQUEST | NLM_F_ACK, what)?;
        answers.pop().ok_or_else(|| IpvsError::Decode {
            what: what.to_string(),
            reason: "no answer message".to_string(),
        })
    }

    fn transact_ipvs(
        &mut self,
        msg: GenlMessage<IpvsMessage>,
        flags: u16,
        what: &str,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        let answers = self.transact(msg, flags, what)?;
        Ok(answers
            .into_iter()
            .map(|m: GenlMessage<IpvsMessage>| m.payload)
            .collect())
    }

    /// Sends one message and reads until its acknowledgement, error or the
    /// end of a dump; returns the family messages received on the way.
    fn transact<Out, In>(
        &mut self,
        out: GenlMessage<Out>,
        flags: u16,
        what: &str,
    ) -> Result<Vec<GenlMessage<In>>, IpvsError>
    where
        Out: GenlFamily + Emitable + Debug,
        In: ParseableParametrized<[u8], GenlHeader> + Debug,
        GenlMessage<Out>: NetlinkSerializable,
        GenlMessage<In>: NetlinkDeserializable<Error = DecodeError>,
    {
        self.seq = self.seq.wrapping_add(1);
        let bytes = frame(out, flags, self.seq);
        self.sock.send(&bytes, 0).map_err(io_err("send"))?;
        if !self.answer_queued()? {
            return Err(IpvsError::NoAnswer {
                what: what.to_string(),
            });
        }

        let decode = |reason: String| IpvsError::Decode {
            what: what.to_string(),
            reason,
        };
        let mut answers = Vec::new();
        loop {
            let (buf, _) = self.sock.recv_from_full().map_err(|e| {
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    IpvsError::NoAnswer {
                        what: what.to_string(),
                    }
                } else {
                    io_err("recv")(e)
                }
            })?;
            let mut at = 0;
            while at < buf.len() {
                let len = NetlinkBuffer::new_checked(&buf[at..])
                    .map_err(|e| decode(e.to_string()))?
                    .length() as usize;
                let one = &buf[at..at + len];
                at += (len + 3) & !3;
                let msg = NetlinkMessage::<GenlMessage<In>>::deserialize(one)
                    .map_err(|e| decode(e.to_string()))?;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::InnerMessage(m) => {
                        answers.push(m);
                        // A plain request's answer comes before its ACK.
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers),
                            Some(_) => Err(IpvsError::Refused {
                                what: what.to_string(),
                                source: e.to_io(),
                            }),
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The bytes of one netlink message: `nlmsghdr`, `genlmsghdr` (command and
/// version from the payload) and the payload's attributes.
pub fn frame<F>(mut msg: GenlMessage<F>, flags: u16, seq: u32) -> Vec<u8>
where
    F: GenlFamily + Emitable + Debug,
{
    msg.finalize();
    let mut nl = NetlinkMessage::from(msg);
    nl.header.flags = flags;
    nl.header.sequence_number = seq;
    nl.finalize();
    let mut bytes = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut bytes);
    bytes
}

/// An IPVS request framed for the family id `family`, as sent on the socket.
pub fn frame_request(msg: IpvsMessage, family: u16, flags: u16, seq: u32) -> Vec<u8> {
    frame(
        GenlMessage::new(GenlHeader { cmd: 0, version: 0 }, msg, family),
        flags,
        seq,
    )
}

fn libc_enoent() -> i32 {
    nix::errno::Errno::ENOENT as i32
}
