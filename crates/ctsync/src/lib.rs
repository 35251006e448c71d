//! Sans-IO conntrack replication between the two gateways of a pair: the internal cache (what
//! this node's kernel has), the external cache (what the peer reported), a pluggable filter, and a reliable
//! sync channel over UDP with a hand-written, extensible wire format (docs/sync-protocol.md).
//!
//! Nothing here reads a clock, opens a socket or spawns a task. The daemon passes `now` and an
//! [`Input`] (kernel events, received datagrams, timer expiries, operator commands) and executes
//! the returned [`Action`]s (datagrams to send, entries to commit). The core is generic over a
//! [`Record`], so it does not depend on the kernel side; `tandem-ctnetlink` implements it for
//! its flows.
//!
//! With a pre-shared key ([`Config::hmac_key`]) the two nodes first agree on a session bound to
//! a fresh nonce from each ([`Config::nonce`]) and tag every datagram under that session's
//! keys, so nothing recorded in an earlier session is accepted again; a datagram changes the
//! peer, the session or a cache only after it authenticated.
//!
//! ```
//! use std::time::Instant;
//! use tandem_ctsync::{wire, Action, Config, Event, Input, Node, Record, WireError};
//!
//! /// A toy record: a key and a value.
//! #[derive(Clone, Debug, PartialEq)]
//! struct Entry { key: u32, value: u32 }
//!
//! impl Record for Entry {
//!     type Key = u32;
//!     fn key(&self) -> u32 { self.key }
//!     fn encode(&self, out: &mut Vec<u8>) {
//!         wire::put_u32(out, 1, self.key);
//!         wire::put_u32(out, 2, self.value);
//!     }
//!     fn decode(attrs: &[u8]) -> Result<Self, WireError> {
//!         let (mut key, mut value) = (None, None);
//!         for a in wire::Attrs::new(attrs) {
//!             match a? {
//!                 (1, v) => key = Some(wire::get_u32("key", 1, v)?),
//!                 (2, v) => value = Some(wire::get_u32("value", 2, v)?),
//!                 _ => {} // a newer peer's attribute
//!             }
//!         }
//!         Ok(Entry {
//!             key: key.ok_or(WireError::Missing { field: "key" })?,
//!             value: value.ok_or(WireError::Missing { field: "value" })?,
//!         })
//!     }
//! }
//!
//! let now = Instant::now();
//! let mut a: Node<Entry> = Node::new(Config::new(1, 0xA));
//! let mut b: Node<Entry> = Node::new(Config::new(2, 0xB));
//! let mut to_b = a.handle(now, Input::Start);
//! b.handle(now, Input::Start);
//! to_b.extend(a.handle(now, Input::Local(vec![Event::New(Entry { key: 7, value: 42 })])));
//! for action in to_b {
//!     if let Action::Transmit(bytes) = action {
//!         b.handle(now, Input::Datagram(&bytes));
//!     }
//! }
//! assert_eq!(b.external().get(&7), Some(Entry { key: 7, value: 42 }));
//! ```

pub mod auth;
pub mod cache;
mod channel;
#[doc(hidden)]
pub mod fuzzing;
pub mod node;
pub mod record;
mod session;
pub mod stats;
pub mod wire;

pub use auth::{AuthKey, Nonce};
pub use cache::{Cache, CacheCounters, ExternalCache, Full, InternalCache};
pub use node::{Action, CacheKind, Config, Event, ExternalChange, Input, Lag, Node};
pub use record::Record;
pub use stats::{DropReason, Drops, Stats};
pub use wire::WireError;
