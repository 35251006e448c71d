//! The kernel's process events (the proc connector: `NETLINK_CONNECTOR`, `CN_IDX_PROC`):
//! fork, exec, comm change and exit of every process on the system, as they happen.
//!
//! No maintained crate speaks this small protocol, so the two messages are written here: the
//! subscription we send (`PROC_CN_MCAST_LISTEN`) and the events we receive, each a netlink
//! header, a `struct cn_msg` and a `struct proc_event`, in the host's byte order. Opening waits
//! for the kernel's answer to the subscription, so a refusal is an error rather than silence.
//!
//! The kernel sends these events only to sockets of the initial network namespace. A daemon
//! started inside another one (`ip netns exec`) therefore opens its socket from the namespace of
//! PID 1, or failing that of its parent process (which takes `CAP_SYS_ADMIN`), as keepalived
//! opens it before it enters its own `net_namespace`.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use netlink_sys::TokioSocket;
use netlink_sys::{protocols::NETLINK_CONNECTOR, AsyncSocket, AsyncSocketExt, SocketAddr};

use crate::error::SysError;

/// The connector's index and value for process events (`CN_IDX_PROC`, `CN_VAL_PROC`); the
/// index is also the multicast group.
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
/// `NLMSG_DONE`: the connector's messages carry this type.
const NLMSG_DONE: u16 = 3;
/// `enum proc_cn_mcast_op`.
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;

/// `struct nlmsghdr` and `struct cn_msg` lengths; `struct proc_event` starts after both.
const NLMSG_HDR_LEN: usize = 16;
const CN_MSG_LEN: usize = 20;
const EVENT_AT: usize = NLMSG_HDR_LEN + CN_MSG_LEN;
/// `what`, `cpu` and `timestamp_ns` come before the event's own data.
const DATA_AT: usize = EVENT_AT + 16;
/// How long the kernel may take to answer a subscription.
const ACK_WAIT: Duration = Duration::from_secs(2);
/// `TASK_COMM_LEN`.
const COMM_LEN: usize = 16;

/// `enum what` in `struct proc_event`.
const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;
const PROC_EVENT_COMM: u32 = 0x200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// One process event. `pid` is the thread's id and `tgid` its process's: they are equal for a
/// process's main thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcEvent {
    /// The kernel's answer to a subscription (`PROC_EVENT_NONE`); `err` 0 is success.
    Ack {
        /// errno of the subscription.
        err: u32,
        /// The subscription's `nonce` plus one: tells ours from another listener's.
        ack: u32,
    },
    /// A task was created.
    Fork {
        /// The forking process.
        parent_tgid: u32,
        /// The new task.
        child_pid: u32,
        /// Its process (equal to `child_pid` for a new process, not a thread).
        child_tgid: u32,
    },
    /// A task ran a new program.
    Exec {
        /// The task.
        pid: u32,
        /// Its process.
        tgid: u32,
    },
    /// A task changed its name.
    Comm {
        /// The task.
        pid: u32,
        /// Its process.
        tgid: u32,
        /// The new name.
        comm: String,
    },
    /// A task ended.
    Exit {
        /// The task.
        pid: u32,
        /// Its process.
        tgid: u32,
    },
    /// An event tandem has no use for (uid, gid, sid, ptrace, coredump changes).
    Other(u32),
}

/// Why a datagram is not a process event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the headers and the event it declares.
    #[error("{len} bytes is too short for a {what}")]
    Short {
        /// Bytes received.
        len: usize,
        /// What did not fit.
        what: &'static str,
    },
    /// Not from the process-events connector.
    #[error("connector message {idx}:{val} is not a process event (1:1)")]
    NotProcEvents {
        /// `cn_msg.id.idx`.
        idx: u32,
        /// `cn_msg.id.val`.
        val: u32,
    },
    /// A netlink message of another type (an error, a no-op).
    #[error("netlink message type {0} is not a connector message ({NLMSG_DONE})")]
    NotConnector(u16),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads one datagram of the proc connector.
pub fn decode(b: &[u8]) -> Result<ProcEvent, DecodeError> {
    let short = |what| DecodeError::Short { len: b.len(), what };
    if b.len() < DATA_AT {
        return Err(short("netlink, connector and process event header"));
    }
    let kind = u16::from_ne_bytes([b[4], b[5]]);
    if kind != NLMSG_DONE {
        return Err(DecodeError::NotConnector(kind));
    }
    let (idx, val) = (u32_at(b, NLMSG_HDR_LEN), u32_at(b, NLMSG_HDR_LEN + 4));
    if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) {
        return Err(DecodeError::NotProcEvents { idx, val });
    }
    let what = u32_at(b, EVENT_AT);
    let need = |words: usize, what| {
        if b.len() < DATA_AT + 4 * words {
            Err(short(what))
        } else {
            Ok(())
        }
    };
    let word = |i: usize| u32_at(b, DATA_AT + 4 * i);
    Ok(match what {
        PROC_EVENT_NONE => {
            need(1, "subscription answer")?;
            ProcEvent::Ack {
                err: word(0),
                ack: u32_at(b, NLMSG_HDR_LEN + 12),
            }
        }
        PROC_EVENT_FORK => {
            need(4, "fork event")?;
            ProcEvent::Fork {
                parent_tgid: word(1),
                child_pid: word(2),
                child_tgid: word(3),
            }
        }
        PROC_EVENT_EXEC => {
            need(2, "exec event")?;
            ProcEvent::Exec {
                pid: word(0),
                tgid: word(1),
            }
        }
        PROC_EVENT_COMM => {
            if b.len() < DATA_AT + 8 + COMM_LEN {
                return Err(short("comm event"));
            }
            let raw = &b[DATA_AT + 8..DATA_AT + 8 + COMM_LEN];
            let end = raw.iter().position(|&c| c == 0).unwrap_or(COMM_LEN);
            ProcEvent::Comm {
                pid: word(0),
                tgid: word(1),
                comm: String::from_utf8_lossy(&raw[..end]).into_owned(),
            }
        }
        PROC_EVENT_EXIT => {
            need(2, "exit event")?;
            ProcEvent::Exit {
                pid: word(0),
                tgid: word(1),
            }
        }
        other => ProcEvent::Other(other),
    })
}

/// The subscription message: listen (`true`) or stop listening; the kernel's answer carries
/// `nonce + 1`.
pub fn subscription(listen: bool, nonce: u32) -> Vec<u8> {
    let op = if listen {
        PROC_CN_MCAST_LISTEN
    } else {
        PROC_CN_MCAST_IGNORE
    };
    let len = NLMSG_HDR_LEN + CN_MSG_LEN + 4;
    let mut m = Vec::with_capacity(len);
    // struct nlmsghdr: len, type, flags, seq, pid.
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // struct cn_msg: id.idx, id.val, seq, ack, len, flags.
    m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&nonce.to_ne_bytes());
    m.extend_from_slice(&4u16.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes());
    m.extend_from_slice(&op.to_ne_bytes());
    m
}

/// What [`ProcEvents::recv`] returns.
#[derive(Debug)]
pub enum Received {
    /// One event.
    Event(ProcEvent),
    /// The socket's buffer overflowed: events were lost, counts must be read again.
    Lost,
}

/// A subscription to the kernel's process events.
pub struct ProcEvents {
    socket: TokioSocket,
    buf: Vec<u8>,
}

impl ProcEvents {
    /// Opens the socket (in the initial network namespace, see the module's doc) and
    /// subscribes. Must run inside a tokio runtime.
    pub async fn open() -> Result<ProcEvents, SysError> {
        static OPENED: AtomicU32 = AtomicU32::new(0);
        let nonce = (std::process::id() << 8) | (OPENED.fetch_add(1, Ordering::Relaxed) & 0xff);
        let socket = match Self::subscribed(open_socket()?, nonce).await {
            Ok(s) => s,
            // Nobody answers in this namespace: only the initial one has the connector.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                Self::subscribed_elsewhere(nonce).await?
            }
            Err(e) => return Err(SysError::socket("subscribing to process events", e)),
        };
        let mut events = ProcEvents {
            socket,
            buf: Vec::with_capacity(256),
        };
        events.confirmed(nonce).await?;
        Ok(events)
    }

    /// Waits for the kernel's answer to our subscription: events flow only after it, and a
    /// refusal (or no answer: a kernel without `CONFIG_PROC_EVENTS`) is an error, not silence.
    /// Events before it are dropped: the caller reads `/proc` afterwards.
    async fn confirmed(&mut self, nonce: u32) -> Result<(), SysError> {
        let op = "subscribing to process events";
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        loop {
            let received = tokio::time::timeout_at(deadline, self.recv()).await;
            match received {
                Err(_) => {
                    return Err(SysError::NetlinkProtocol {
                        op: op.into(),
                        detail: format!(
                            "no answer from the kernel in {ACK_WAIT:?} (is CONFIG_PROC_EVENTS set?)"
                        ),
                    })
                }
                Ok(Ok(Received::Event(ProcEvent::Ack { err, ack })))
                    if ack == nonce.wrapping_add(1) =>
                {
                    return match err {
                        0 => Ok(()),
                        errno => Err(SysError::Netlink {
                            op: op.into(),
                            source: io::Error::from_raw_os_error(errno as i32),
                        }),
                    };
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Subscribes from the first namespace that answers: PID 1's, else our parent's (a
    /// daemon started with `ip netns exec` from the initial namespace).
    async fn subscribed_elsewhere(nonce: u32) -> Result<TokioSocket, SysError> {
        let candidates = [
            "/proc/1/ns/net".to_string(),
            format!("/proc/{}/ns/net", nix::unistd::getppid()),
        ];
        let mut tried = Vec::new();
        for path in candidates {
            let attempt = match open_socket_in(&path) {
                Ok(socket) => (Self::subscribed(socket, nonce).await).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match attempt {
                Ok(socket) => return Ok(socket),
                Err(e) => tried.push(format!("{path}: {e}")),
            }
        }
        Err(SysError::NetlinkProtocol {
            op: "subscribing to process events".into(),
            detail: format!(
                "the kernel sends them to the initial network namespace only, and none could be \
                 reached ({})",
                tried.join("; ")
            ),
        })
    }

    async fn subscribed(socket: TokioSocket, nonce: u32) -> io::Result<TokioSocket> {
        socket.send(&subscription(true, nonce)).await?;
        Ok(socket)
    }

    /// Sets the socket's receive buffer (a burst of process creation can overflow it).
    pub fn set_receive_buffer(&self, bytes: usize) -> Result<(), SysError> {
        (self.socket.socket_ref())
            .set_rx_buf_sz(bytes)
            .map_err(|e| SysError::socket("setting the process events receive buffer", e))
    }

    /// The next event from the kernel; datagrams from anyone else, or that do not decode,
    /// are skipped.
    pub async fn recv(&mut self) -> Result<Received, SysError> {
        loop {
            self.buf.clear();
            let from = match self.socket.recv_from(&mut self.buf).await {
                Ok(from) => from,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(Received::Lost),
                Err(e) => return Err(SysError::socket("receiving process events", e)),
            };
            if from.port_number() != 0 {
                continue;
            }
            if let Ok(event) = decode(&self.buf) {
                return Ok(Received::Event(event));
            }
        }
    }
}

impl Drop for ProcEvents {
    fn drop(&mut self) {
        // The kernel counts listeners; tell it this one is gone (best effort).
        let _ = self.socket.socket_ref().send(&subscription(false, 0), 0);
    }
}

fn open_socket() -> Result<TokioSocket, SysError> {
    let mut socket = TokioSocket::new(NETLINK_CONNECTOR).map_err(|e| {
        SysError::socket("opening the process events socket (NETLINK_CONNECTOR)", e)
    })?;
    socket
        .socket_mut()
        .bind(&SocketAddr::new(0, CN_IDX_PROC))
        .map_err(|e| SysError::socket("joining the process events group (CN_IDX_PROC)", e))?;
    Ok(socket)
}

/// [`open_socket`] from a thread that first enters the network namespace at `path`; the
/// socket stays in that namespace after the thread ends.
fn open_socket_in(path: &str) -> Result<TokioSocket, SysError> {
    let runtime = tokio::runtime::Handle::current();
    std::thread::scope(|s| {
        s.spawn(move || {
            let _in_runtime = runtime.enter();
            let ns = std::fs::File::open(path)
                .map_err(|e| SysError::socket(format!("opening {path}"), e))?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                SysError::socket(format!("entering the network namespace {path}"), e)
            })?;
            open_socket()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(SysError::NetlinkProtocol {
                op: "opening the process events socket".into(),
                detail: "the opening thread panicked".into(),
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram as the kernel lays it out: headers, then `what`, cpu, timestamp, data.
    fn datagram(what: u32, data: &[u8]) -> Vec<u8> {
        let mut b = subscription(true, 41);
        b.truncate(EVENT_AT);
        b.extend_from_slice(&what.to_ne_bytes());
        b.extend_from_slice(&1u32.to_ne_bytes());
        b.extend_from_slice(&123u64.to_ne_bytes());
        b.extend_from_slice(data);
        b
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }

    #[test]
    fn the_subscription_is_a_connector_message_of_one_word() {
        let m = subscription(true, 41);
        assert_eq!(m.len(), 40);
        assert_eq!(u32_at(&m, 0), 40);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), NLMSG_DONE);
        assert_eq!((u32_at(&m, 16), u32_at(&m, 20)), (1, 1));
        assert_eq!(u16::from_ne_bytes([m[32], m[33]]), 4);
        assert_eq!(u32_at(&m, 36), PROC_CN_MCAST_LISTEN);
        assert_eq!(u32_at(&m, 28), 41);
        assert_eq!(u32_at(&subscription(false, 0), 36), PROC_CN_MCAST_IGNORE);
    }

    #[test]
    fn events_decode() {
        let fork = datagram(PROC_EVENT_FORK, &words(&[10, 10, 11, 11]));
        assert_eq!(
            decode(&fork),
            Ok(ProcEvent::Fork {
                parent_tgid: 10,
                child_pid: 11,
                child_tgid: 11
            })
        );
        let exec = datagram(PROC_EVENT_EXEC, &words(&[12, 12]));
        assert_eq!(decode(&exec), Ok(ProcEvent::Exec { pid: 12, tgid: 12 }));
        let exit = datagram(PROC_EVENT_EXIT, &words(&[13, 12, 0, 17]));
        assert_eq!(decode(&exit), Ok(ProcEvent::Exit { pid: 13, tgid: 12 }));
        let mut comm = words(&[14, 14]);
        comm.extend_from_slice(b"renamed\0\0\0\0\0\0\0\0\0");
        assert_eq!(
            decode(&datagram(PROC_EVENT_COMM, &comm)),
            Ok(ProcEvent::Comm {
                pid: 14,
                tgid: 14,
                comm: "renamed".into()
            })
        );
        assert_eq!(
            decode(&datagram(PROC_EVENT_NONE, &words(&[0]))),
            Ok(ProcEvent::Ack { err: 0, ack: 41 })
        );
        assert_eq!(
            decode(&datagram(0x4, &words(&[1, 1, 0, 0]))),
            Ok(ProcEvent::Other(4))
        );
    }

    #[test]
    fn short_or_foreign_datagrams_are_refused_without_panicking() {
        let exec = datagram(PROC_EVENT_EXEC, &words(&[12, 12]));
        for len in 0..exec.len() {
            assert!(decode(&exec[..len]).is_err(), "{len} bytes");
        }
        let mut comm = datagram(PROC_EVENT_COMM, &words(&[1, 1]));
        comm.extend_from_slice(b"short");
        assert!(matches!(decode(&comm), Err(DecodeError::Short { .. })));
        let mut other = exec.clone();
        other[16] = 7;
        assert_eq!(
            decode(&other),
            Err(DecodeError::NotProcEvents { idx: 7, val: 1 })
        );
        let mut error = exec;
        error[4] = 2;
        assert_eq!(decode(&error), Err(DecodeError::NotConnector(2)));
    }
}
