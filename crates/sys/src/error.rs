//! The one error type of the crate.
//!
//! Every variant carries the operation and the object it was applied to
//! (`adding 10.0.0.1/24 to eth2 (index 3)`), because the message ends up in
//! an operator's log and has to be actionable on its own.

use std::io;

/// What went wrong when talking to the kernel, and on what.
#[derive(thiserror::Error, Debug)]
pub enum SysError {
    /// A socket call (open, option, bind, send, receive) failed.
    #[error("{op}: {source}")]
    Socket {
        /// The operation and its object, e.g. `setting IP_TTL on VRRP socket for eth0`.
        op: String,
        /// The errno the kernel answered with.
        #[source]
        source: io::Error,
    },
    /// The kernel answered a netlink request with an error code.
    #[error("{op}: {source}")]
    Netlink {
        /// The operation and its object, e.g. `adding 10.0.0.1/24 to eth2 (index 3)`.
        op: String,
        /// The errno carried by the netlink error message.
        #[source]
        source: io::Error,
    },
    /// A netlink exchange failed without an errno (unexpected or undecodable reply).
    #[error("{op}: {detail}")]
    NetlinkProtocol {
        /// The operation and its object.
        op: String,
        /// What rtnetlink reported.
        detail: String,
    },
    /// The named interface does not exist (in this network namespace).
    #[error("interface {name}: no such interface")]
    NoSuchInterface {
        /// The interface name that was looked up.
        name: String,
    },
    /// A packet the kernel handed us could not be taken apart.
    #[error("{op}: {detail}")]
    Malformed {
        /// Where the packet came from, e.g. `receiving on VRRP socket for eth0`.
        op: String,
        /// What was wrong with it.
        detail: String,
    },
}

impl SysError {
    /// The errno behind the error, if there is one, so callers can react to
    /// specific kernel answers (e.g. ENODEV when an interface vanished).
    pub fn errno(&self) -> Option<i32> {
        match self {
            SysError::Socket { source, .. } | SysError::Netlink { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    pub(crate) fn socket(op: impl Into<String>, source: impl Into<io::Error>) -> Self {
        SysError::Socket {
            op: op.into(),
            source: source.into(),
        }
    }

    /// Turns an rtnetlink error into ours, keeping the errno when there is one.
    pub(crate) fn netlink(op: impl Into<String>, err: rtnetlink::Error) -> Self {
        let op = op.into();
        match netlink_errno(&err) {
            Some(code) => SysError::Netlink {
                op,
                source: io::Error::from_raw_os_error(code),
            },
            None => SysError::NetlinkProtocol {
                op,
                detail: err.to_string(),
            },
        }
    }
}

/// The positive errno carried by a netlink error reply, if `err` is one.
pub(crate) fn netlink_errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().abs()),
        _ => None,
    }
}
