//! Blocking NETLINK_NETFILTER sockets: requests ([`Conntrack`]) and events ([`Events`]).
//!
//! Both expose their file descriptor (`AsFd`), so a tokio caller can wrap
//! an [`Events`] in `AsyncFd` after [`Events::set_nonblocking`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use nix::sys::socket::{setsockopt, sockopt};

use crate::codec::{
    encode_empty, encode_filtered_dump, encode_request, messages, DecodeError, DumpFilter, Message,
    Op, Request, NFNLGRP_CONNTRACK_DESTROY, NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE,
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use crate::flow::{Family, Flow};

/// Requests are packed into datagrams of at most this many bytes.
pub const BATCH_BYTES: usize = 64 * 1024;
/// Receive buffer asked for on request sockets (errors of a full batch must fit).
const REQUEST_RCVBUF: usize = 4 << 20;
/// Receive buffer asked for on event sockets, so bursts do not overflow.
pub const EVENT_RCVBUF: usize = 32 << 20;
/// Size of one receive; the kernel's dump and event skbs are smaller.
const RECV_BYTES: usize = 256 * 1024;

/// Why a ctnetlink operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket call failed; `op` names the operation.
    #[error("ctnetlink {op}: {source}")]
    Io {
        /// The operation (e.g. "dump", "create batch").
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel sent something we cannot decode.
    #[error("ctnetlink {op}: {source}")]
    Decode {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        source: DecodeError,
    },
    /// The kernel refused a single-entry request; `errno` is positive.
    #[error("ctnetlink {op}: {}", io::Error::from_raw_os_error(*errno))]
    Kernel {
        /// The operation.
        op: &'static str,
        /// Positive errno from the kernel's answer.
        errno: i32,
    },
    /// The kernel dropped answers (ENOBUFS on a request socket); per-entry results are unknown.
    #[error("ctnetlink {op}: answers lost to a full receive buffer")]
    AnswersLost {
        /// The operation.
        op: &'static str,
    },
}

/// Result of a batch: which entries the kernel refused and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Entries sent.
    pub sent: usize,
    /// `(index into the input slice, positive errno)` of every refused entry.
    pub failed: Vec<(usize, i32)>,
    /// Datagrams (sendmsg calls) used.
    pub datagrams: usize,
}

impl BatchReport {
    /// Entries the kernel accepted.
    pub fn ok(&self) -> usize {
        self.sent - self.failed.len()
    }
}

fn open(op: &'static str) -> Result<(Socket, u32), Error> {
    let io = |source| Error::Io { op, source };
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(io)?;
    let addr = sock.bind_auto().map_err(io)?;
    Ok((sock, addr.port_number()))
}

/// Sets the receive buffer, forcing past `rmem_max` when we may (CAP_NET_ADMIN).
fn set_rcvbuf(sock: &Socket, bytes: usize) -> io::Result<()> {
    if setsockopt(sock, sockopt::RcvBufForce, &bytes).is_ok() {
        return Ok(());
    }
    setsockopt(sock, sockopt::RcvBuf, &bytes).map_err(io::Error::from)
}

/// A request socket: dump, create, update, delete, flush.
pub struct Conntrack {
    sock: Socket,
    port: u32,
    seq: u32,
    rx: Vec<u8>,
    tx: Vec<u8>,
    strict_tcp: bool,
}

impl Conntrack {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Conntrack, Error> {
        let op = "open";
        let (sock, port) = open(op)?;
        set_rcvbuf(&sock, REQUEST_RCVBUF).map_err(|source| Error::Io { op, source })?;
        // Errors then carry only the header of the refused request, not all of it.
        sock.set_cap_ack(true)
            .map_err(|source| Error::Io { op, source })?;
        Ok(Conntrack {
            sock,
            port,
            seq: 1,
            rx: Vec::with_capacity(RECV_BYTES),
            tx: Vec::with_capacity(BATCH_BYTES),
            strict_tcp: false,
        })
    }

    /// This socket's netlink port id: events caused by its requests carry it as their
    /// [`Event::Flow`] `origin`, so a caller can tell its own changes from the kernel's.
    pub fn port_id(&self) -> u32 {
        self.port
    }

    /// Keep TCP flags as replicated instead of adding BE_LIBERAL, for
    /// operators who accept that entries without sequence windows may
    /// mark the first packets after a failover INVALID.
    pub fn set_strict_tcp(&mut self, strict: bool) {
        self.strict_tcp = strict;
    }

    fn next_seq(&mut self, n: usize) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n as u32 + 1).max(1);
        s
    }

    fn recv(&mut self, op: &'static str) -> Result<(), Error> {
        self.rx.clear();
        self.sock
            .recv(&mut self.rx, 0)
            .map(drop)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ENOBUFS) => Error::AnswersLost { op },
                _ => Error::Io { op, source },
            })
    }

    /// Sends a dump request; replies carry the returned sequence number.
    fn request_dump(&mut self, op: &'static str, family: Option<Family>) -> Result<u32, Error> {
        let seq = self.next_seq(1);
        self.tx.clear();
        encode_empty(
            &mut self.tx,
            Op::Get,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            family,
        );
        self.send(op)?;
        Ok(seq)
    }

    /// Every entry of `family` (both families with `None`) in this namespace's table.
    pub fn dump(&mut self, family: Option<Family>) -> Result<Vec<Flow>, Error> {
        let op = "dump";
        let seq = self.request_dump(op, family)?;
        self.collect_dump(op, seq)
    }

    /// The entries that pass `filter`, filtered by the kernel where it can (Linux 5.8+) and
    /// checked again here, so the answer is the same on older kernels, only costlier.
    pub fn dump_matching(&mut self, filter: &DumpFilter) -> Result<Vec<Flow>, Error> {
        let mut flows = self.dump_kernel_filtered(filter)?;
        flows.retain(|f| filter.matches(f));
        Ok(flows)
    }

    /// What the kernel sends for a filtered dump, unchecked (tests prove the kernel filters).
    #[doc(hidden)]
    pub fn dump_kernel_filtered(&mut self, filter: &DumpFilter) -> Result<Vec<Flow>, Error> {
        let op = "filtered dump";
        let seq = self.next_seq(1);
        self.tx.clear();
        encode_filtered_dump(&mut self.tx, seq, filter);
        self.send(op)?;
        self.collect_dump(op, seq)
    }

    /// Receives the answers to dump `seq` up to its end.
    fn collect_dump(&mut self, op: &'static str, seq: u32) -> Result<Vec<Flow>, Error> {
        let mut out = Vec::new();
        loop {
            self.recv(op)?;
            for m in messages(&self.rx) {
                match m.map_err(|source| Error::Decode { op, source })? {
                    Message::Conntrack { flow, header, .. } if header.seq == seq => out.push(flow),
                    Message::Done { seq: s } if s == seq => return Ok(out),
                    Message::Ack { seq: s, errno } if s == seq && errno != 0 => {
                        return Err(Error::Kernel { op, errno })
                    }
                    _ => {}
                }
            }
        }
    }

    /// Raw dump bytes (every datagram up to NLMSG_DONE), for fixtures and debugging.
    pub fn dump_raw(&mut self, family: Option<Family>) -> Result<Vec<Vec<u8>>, Error> {
        let op = "dump";
        self.request_dump(op, family)?;
        let mut out = Vec::new();
        loop {
            self.recv(op)?;
            out.push(self.rx.clone());
            if messages(&self.rx).any(|m| matches!(m, Ok(Message::Done { .. }) | Err(_))) {
                return Ok(out);
            }
        }
    }

    fn send(&mut self, op: &'static str) -> Result<(), Error> {
        self.sock
            .send(&self.tx, 0)
            .map(drop)
            .map_err(|source| Error::Io { op, source })
    }

    /// Creates entries, many per sendmsg; an entry that exists already fails with EEXIST.
    pub fn create_batch(&mut self, flows: &[Flow]) -> Result<BatchReport, Error> {
        let req = Request::Create {
            strict_tcp: self.strict_tcp,
        };
        self.batch("create batch", flows, |_| req, NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Updates existing entries (status, timeout, mark, labels, TCP info), many per sendmsg.
    pub fn update_batch(&mut self, flows: &[Flow]) -> Result<BatchReport, Error> {
        let req = Request::Update {
            strict_tcp: self.strict_tcp,
        };
        self.batch("update batch", flows, |_| req, 0)
    }

    /// Deletes entries by original tuple and zone, many per sendmsg.
    pub fn delete_batch(&mut self, flows: &[Flow]) -> Result<BatchReport, Error> {
        self.batch("delete batch", flows, |_| Request::Delete, 0)
    }

    /// Sets the timeout of entries to `secs` (conntrackd's `-t`: let
    /// entries of a former master expire soon instead of at once).
    pub fn shorten_timeouts(&mut self, flows: &[Flow], secs: u32) -> Result<BatchReport, Error> {
        self.batch("shorten timeouts", flows, |_| Request::Timeout(secs), 0)
    }

    /// Creates one entry.
    pub fn create(&mut self, flow: &Flow) -> Result<(), Error> {
        single("create", self.create_batch(std::slice::from_ref(flow))?)
    }

    /// Updates one entry.
    pub fn update(&mut self, flow: &Flow) -> Result<(), Error> {
        single("update", self.update_batch(std::slice::from_ref(flow))?)
    }

    /// Deletes one entry.
    pub fn delete(&mut self, flow: &Flow) -> Result<(), Error> {
        single("delete", self.delete_batch(std::slice::from_ref(flow))?)
    }

    /// Deletes every entry of `family` (both with `None`). The kernel's
    /// flush ignores the family (6.x: every family goes), so a family
    /// flush is a dump of that family and a delete batch; entries that
    /// vanished meanwhile (ENOENT) are not an error.
    pub fn flush(&mut self, family: Option<Family>) -> Result<(), Error> {
        if family.is_some() {
            let flows = self.dump(family)?;
            let report = self.delete_batch(&flows)?;
            return match report.failed.iter().find(|f| f.1 != libc::ENOENT) {
                Some(&(_, errno)) => Err(Error::Kernel { op: "flush", errno }),
                None => Ok(()),
            };
        }
        let op = "flush";
        let seq = self.next_seq(1);
        self.tx.clear();
        encode_empty(
            &mut self.tx,
            Op::Delete,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            family,
        );
        self.send(op)?;
        loop {
            self.recv(op)?;
            for m in messages(&self.rx) {
                if let Message::Ack { seq: s, errno } =
                    m.map_err(|source| Error::Decode { op, source })?
                {
                    if s == seq {
                        return if errno == 0 {
                            Ok(())
                        } else {
                            Err(Error::Kernel { op, errno })
                        };
                    }
                }
            }
        }
    }

    /// Sends `flows` packed into datagrams of up to [`BATCH_BYTES`]. Only the
    /// last message of a datagram asks for an ACK; the kernel answers
    /// failures regardless, and answers in order, so the last ACK closes
    /// the datagram without a round trip per entry.
    fn batch(
        &mut self,
        op: &'static str,
        flows: &[Flow],
        req: impl Fn(&Flow) -> Request,
        extra_flags: u16,
    ) -> Result<BatchReport, Error> {
        let mut report = BatchReport {
            sent: flows.len(),
            ..BatchReport::default()
        };
        let mut i = 0;
        let mut msg = Vec::with_capacity(512);
        while i < flows.len() {
            let first = i;
            let base = self.next_seq(flows.len() - first);
            self.tx.clear();
            while i < flows.len() {
                msg.clear();
                let seq = base.wrapping_add((i - first) as u32);
                let flags = NLM_F_REQUEST | extra_flags;
                encode_request(&mut msg, &flows[i], req(&flows[i]), flags, seq);
                if !self.tx.is_empty() && self.tx.len() + msg.len() > BATCH_BYTES {
                    break;
                }
                self.tx.extend_from_slice(&msg);
                i += 1;
            }
            // The last message of this datagram must ask for an ACK.
            let last_seq = base.wrapping_add((i - 1 - first) as u32);
            set_ack_on_last(&mut self.tx);
            self.send(op)?;
            report.datagrams += 1;
            self.collect(op, base, last_seq, first, &mut report)?;
        }
        Ok(report)
    }

    fn collect(
        &mut self,
        op: &'static str,
        base: u32,
        last_seq: u32,
        first: usize,
        report: &mut BatchReport,
    ) -> Result<(), Error> {
        loop {
            self.recv(op)?;
            for m in messages(&self.rx) {
                let Message::Ack { seq, errno } =
                    m.map_err(|source| Error::Decode { op, source })?
                else {
                    continue;
                };
                let offset = seq.wrapping_sub(base) as usize;
                if offset > last_seq.wrapping_sub(base) as usize {
                    continue; // a stale answer to an earlier request
                }
                if errno != 0 {
                    report.failed.push((first + offset, errno));
                }
                if seq == last_seq {
                    return Ok(());
                }
            }
        }
    }
}

/// Sets NLM_F_ACK on the last message in `tx` (walks the lengths we wrote).
fn set_ack_on_last(tx: &mut [u8]) {
    let mut at = 0;
    let mut last = 0;
    while at + 4 <= tx.len() {
        last = at;
        let len = u32::from_ne_bytes([tx[at], tx[at + 1], tx[at + 2], tx[at + 3]]) as usize;
        at += crate::attr::align(len.max(16));
    }
    let flags = u16::from_ne_bytes([tx[last + 6], tx[last + 7]]) | NLM_F_ACK;
    tx[last + 6..last + 8].copy_from_slice(&flags.to_ne_bytes());
}

fn single(op: &'static str, report: BatchReport) -> Result<(), Error> {
    match report.failed.first() {
        Some(&(_, errno)) => Err(Error::Kernel { op, errno }),
        None => Ok(()),
    }
}

impl AsFd for Conntrack {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// Which conntrack events to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Groups {
    /// New entries.
    pub new: bool,
    /// Changed entries (state, status, mark...).
    pub update: bool,
    /// Removed entries.
    pub destroy: bool,
}

impl Groups {
    /// NEW, UPDATE and DESTROY: what replication needs.
    pub const ALL: Groups = Groups {
        new: true,
        update: true,
        destroy: true,
    };
}

/// What happened to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created (`IPCTNL_MSG_CT_NEW` with `NLM_F_CREATE`).
    New,
    /// Changed (`IPCTNL_MSG_CT_NEW` without `NLM_F_CREATE`).
    Update,
    /// Removed (`IPCTNL_MSG_CT_DELETE`).
    Destroy,
}

/// One item from an event socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An entry changed.
    Flow {
        /// What happened.
        kind: EventKind,
        /// The entry as the kernel reported it.
        flow: Flow,
        /// Netlink port id of the socket whose request caused the change (0: the kernel
        /// itself, e.g. a packet or a timeout); see [`Conntrack::port_id`].
        origin: u32,
    },
    /// The kernel dropped events (ENOBUFS): the caller's view may diverge
    /// and must be resynchronised from a [`Conntrack::dump`].
    Overflow,
}

/// A socket subscribed to conntrack event groups.
pub struct Events {
    sock: std::sync::Arc<Socket>,
    groups: Groups,
    rx: Vec<u8>,
    pending: std::collections::VecDeque<Event>,
}

impl Events {
    /// Subscribes, in the calling thread's namespace, with a receive buffer of [`EVENT_RCVBUF`].
    pub fn subscribe(groups: Groups) -> Result<Events, Error> {
        Self::subscribe_with_rcvbuf(groups, EVENT_RCVBUF)
    }

    /// Subscribes with a chosen receive buffer (small ones let tests provoke overflow).
    pub fn subscribe_with_rcvbuf(groups: Groups, rcvbuf: usize) -> Result<Events, Error> {
        let op = "subscribe";
        let io = |source| Error::Io { op, source };
        let (sock, _) = open(op)?;
        set_rcvbuf(&sock, rcvbuf).map_err(io)?;
        for (on, group) in [
            (groups.new, NFNLGRP_CONNTRACK_NEW),
            (groups.update, NFNLGRP_CONNTRACK_UPDATE),
            (groups.destroy, NFNLGRP_CONNTRACK_DESTROY),
        ] {
            if on {
                sock.add_membership(group).map_err(io)?;
            }
        }
        Ok(Events {
            sock: std::sync::Arc::new(sock),
            groups,
            rx: Vec::with_capacity(RECV_BYTES),
            pending: Default::default(),
        })
    }

    /// Has the kernel drop, before queueing, every event caused by the netlink socket with
    /// port id `port` (a daemon's own request socket): a million entries committed or applied
    /// by the daemon then cost no event reading and cannot overflow this socket's buffer.
    pub fn ignore_origin(&self, port: u32) -> Result<(), Error> {
        use socket2::SockFilter;
        // Classic BPF over the netlink header: load nlmsg_pid (offset 12; BPF loads are
        // big-endian, the header is in host order), drop the event if it matches.
        const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
        const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
        const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
        let pid = u32::from_be_bytes(port.to_ne_bytes());
        let program = [
            SockFilter::new(LD_W_ABS, 0, 0, 12),
            SockFilter::new(JEQ_K, 0, 1, pid),
            SockFilter::new(RET_K, 0, 0, 0),
            SockFilter::new(RET_K, 0, 0, u32::MAX),
        ];
        socket2::SockRef::from(&self.sock)
            .attach_filter(&program)
            .map_err(|source| Error::Io {
                op: "attach event filter",
                source,
            })
    }

    /// A handle that can pause this socket's NEW and UPDATE subscriptions from another
    /// thread while the reader blocks in `recv`.
    pub fn pause_handle(&self) -> PauseHandle {
        PauseHandle {
            sock: self.sock.clone(),
            groups: self.groups,
        }
    }

    /// Non-blocking mode for use under an event loop (`recv` then returns WouldBlock).
    pub fn set_nonblocking(&self, on: bool) -> Result<(), Error> {
        self.sock.set_non_blocking(on).map_err(|source| Error::Io {
            op: "set nonblocking",
            source,
        })
    }

    /// Reads one datagram and appends its events to `out`. ENOBUFS becomes
    /// [`Event::Overflow`]; undecodable messages are an error.
    pub fn recv_into(&mut self, out: &mut Vec<Event>) -> Result<(), Error> {
        let op = "events";
        self.rx.clear();
        if let Err(source) = self.sock.recv(&mut self.rx, 0) {
            if source.raw_os_error() == Some(libc::ENOBUFS) {
                out.push(Event::Overflow);
                return Ok(());
            }
            return Err(Error::Io { op, source });
        }
        for m in messages(&self.rx) {
            if let Message::Conntrack {
                header,
                op: o,
                flow,
            } = m.map_err(|source| Error::Decode { op, source })?
            {
                let kind = match o {
                    Op::Delete => EventKind::Destroy,
                    _ if header.flags & NLM_F_CREATE != 0 => EventKind::New,
                    _ => EventKind::Update,
                };
                out.push(Event::Flow {
                    kind,
                    flow,
                    origin: header.pid,
                });
            }
        }
        Ok(())
    }
}

/// Pauses an [`Events`] socket's NEW and UPDATE subscriptions. The kernel builds an event
/// message for every change only while somebody listens: during a daemon's own bulk of
/// creates, nobody else listening halves their cost. The caller learns what it missed
/// meanwhile from a dump.
#[derive(Clone)]
pub struct PauseHandle {
    sock: std::sync::Arc<Socket>,
    groups: Groups,
}

impl PauseHandle {
    fn changes(&self) -> impl Iterator<Item = u32> {
        [
            (self.groups.new, NFNLGRP_CONNTRACK_NEW),
            (self.groups.update, NFNLGRP_CONNTRACK_UPDATE),
        ]
        .into_iter()
        .filter_map(|(on, group)| on.then_some(group))
    }

    /// Stops NEW and UPDATE events for this socket.
    pub fn pause(&self) -> Result<(), Error> {
        self.set_changes(false, "pause events")
    }

    /// Resumes them.
    pub fn resume(&self) -> Result<(), Error> {
        self.set_changes(true, "resume events")
    }

    /// Joins (or leaves) the NEW and UPDATE groups this socket subscribed to.
    fn set_changes(&self, join: bool, op: &'static str) -> Result<(), Error> {
        for group in self.changes() {
            let result = if join {
                self.sock.add_membership(group)
            } else {
                self.sock.drop_membership(group)
            };
            result.map_err(|source| Error::Io { op, source })?;
        }
        Ok(())
    }
}

impl Iterator for Events {
    type Item = Result<Event, Error>;

    /// Blocks for the next event (in blocking mode).
    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        while self.pending.is_empty() {
            if let Err(e) = self.recv_into(&mut buf) {
                return Some(Err(e));
            }
            self.pending.extend(buf.drain(..));
        }
        self.pending.pop_front().map(Ok)
    }
}

impl AsFd for Events {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
