//! Sends one nf_tables batch over NETLINK_NETFILTER and collects the
//! kernel's answer for every message in it.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use netlink_packet_core::{NetlinkBuffer, NLMSG_ERROR};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::encode;
use crate::plan::Op;

/// How long to wait for the kernel's answers before calling it lost.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Send buffer: a Maglev table of a few services fits in one batch.
const SEND_BUFFER: usize = 4 << 20;

/// A failure applying a batch; nothing of the batch took effect.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened or used.
    #[error("nf_tables netlink socket: {op}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// The kernel refused one message; the whole batch was rolled back.
    #[error("nf_tables refused `{what}`: {source} (the batch was rolled back)")]
    Refused {
        /// The message, in nft's words.
        what: String,
        /// The kernel's errno.
        source: io::Error,
    },
    /// The kernel answered fewer messages than were sent.
    #[error("nf_tables answered {answered} of {sent} messages within {ANSWER_TIMEOUT:?}")]
    Incomplete {
        /// Answers received.
        answered: usize,
        /// Messages sent.
        sent: usize,
    },
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> NetlinkError {
    move |source| NetlinkError::Io { op, source }
}

/// A NETLINK_NETFILTER socket for nf_tables batches.
pub struct NfTables {
    sock: Socket,
    seq: u32,
    rx: Vec<u8>,
}

impl NfTables {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> Result<NfTables, NetlinkError> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(io_err("socket"))?;
        sock.bind_auto().map_err(io_err("bind"))?;
        // Errors quote only the header of the refused message.
        sock.set_cap_ack(true).map_err(io_err("NETLINK_CAP_ACK"))?;
        if setsockopt(&sock, sockopt::SndBufForce, &SEND_BUFFER).is_err() {
            setsockopt(&sock, sockopt::SndBuf, &SEND_BUFFER)
                .map_err(|e| io_err("SO_SNDBUF")(e.into()))?;
        }
        let t = TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0);
        setsockopt(&sock, sockopt::ReceiveTimeout, &t)
            .map_err(|e| io_err("SO_RCVTIMEO")(e.into()))?;
        Ok(NfTables {
            sock,
            seq: std::process::id().wrapping_mul(1 << 12),
            rx: vec![0; 1 << 16],
        })
    }

    /// The netlink port the kernel names this socket by in its change notifications, so
    /// a [`crate::TableWatch`] can tell our own changes from other programs'.
    pub fn port(&self) -> u32 {
        let mut address = netlink_sys::SocketAddr::new(0, 0);
        match self.sock.get_address(&mut address) {
            Ok(()) => address.port_number(),
            Err(_) => 0,
        }
    }

    /// Applies `ops` as one atomic transaction: all or nothing.
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), NetlinkError> {
        if ops.is_empty() {
            return Ok(());
        }
        let (bytes, described) = encode::batch(ops, self.seq);
        self.seq = self.seq.wrapping_add(described.len() as u32 + 2);
        let sent = self.sock.send(&bytes, 0).map_err(io_err("send"))?;
        if sent != bytes.len() {
            return Err(NetlinkError::Io {
                op: "send",
                source: io::Error::other(format!("sent {sent} of {} bytes", bytes.len())),
            });
        }
        let mut pending: BTreeMap<u32, String> = described.into_iter().collect();
        let sent_count = pending.len();
        let mut first_error: Option<NetlinkError> = None;
        while !pending.is_empty() {
            let n = match self.sock.recv(&mut &mut self.rx[..], 0) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(first_error.unwrap_or(NetlinkError::Incomplete {
                        answered: sent_count - pending.len(),
                        sent: sent_count,
                    }))
                }
                Err(e) => return Err(io_err("recv")(e)),
            };
            let mut at = 0;
            while at + 16 <= n {
                let Ok(buf) = NetlinkBuffer::new_checked(&self.rx[at..n]) else {
                    break;
                };
                let len = buf.length() as usize;
                let seq = buf.sequence_number();
                if buf.message_type() == NLMSG_ERROR && buf.payload().len() >= 4 {
                    let p = buf.payload();
                    let code = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
                    let what = pending.remove(&seq);
                    if code != 0 && first_error.is_none() {
                        first_error = Some(NetlinkError::Refused {
                            what: what.unwrap_or_else(|| "the batch".to_string()),
                            source: io::Error::from_raw_os_error(-code),
                        });
                    }
                }
                at += (len + 3) & !3;
                if len == 0 {
                    break;
                }
            }
            // A failed batch may leave later messages unanswered.
            if first_error.is_some() && !pending.is_empty() {
                if let Ok(false) = self.more_waiting() {
                    break;
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn more_waiting(&self) -> nix::Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        Ok(poll(&mut fds, PollTimeout::from(100u8))? > 0)
    }
}
