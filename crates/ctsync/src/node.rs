//! One gateway's replication state: the caches, the filter, and the channel to the peer. Every
//! change goes through [`Node::handle`]; the daemon executes the returned actions.
//!
//! Batching: local events are queued as attributes and packed into datagrams at the end of each
//! `handle` call, so a daemon that feeds a burst of kernel events as one call per event still
//! gets full datagrams as long as the window is full, and otherwise one datagram per call. A
//! daemon that wants fuller datagrams feeds events in batches ([`Input::Local`] accepts many).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::auth::{Nonce, NONCE_LEN};
use crate::cache::{ExternalCache, InternalCache};
use crate::channel::{Channel, ChannelConfig, Event as ChannelEvent};
use crate::record::Record;
use crate::stats::Stats;
use crate::wire::{attr, Attrs};

/// How far the peer is behind this node ([`Node::lag`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// DATA datagrams sent and not acknowledged yet.
    pub unacked: usize,
    /// Changes waiting for room in the window, in bytes.
    pub queued_bytes: usize,
    /// When the oldest unacknowledged datagram was sent (or earlier).
    pub oldest_unacked: Option<Instant>,
}

/// Settings of one node; [`Config::new`] fills in defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id, unique within the pair.
    pub node_id: u32,
    /// A value that differs on every start (random, or boot time): peers detect restarts by it.
    pub epoch: u32,
    /// Largest UDP payload sent (default 1400, fits a 1500-byte path with IPv6 and a tunnel).
    pub mtu: usize,
    /// Most unacknowledged DATA datagrams in flight (default 256).
    pub window: u32,
    /// Bound on the internal cache.
    pub max_internal: usize,
    /// Bound on the external cache.
    pub max_external: usize,
    /// Bound on updates queued behind a full window; past it the queue becomes a full resync.
    pub max_queue_bytes: usize,
    /// Pre-shared key: every datagram carries an HMAC-SHA256 under a per-session key derived
    /// from it, and unauthenticated, replayed or stale ones are dropped. Without it nothing is
    /// authenticated (only for a cable between the two gateways).
    pub hmac_key: Option<Vec<u8>>,
    /// Fresh randomness for this incarnation (the daemon draws it from the OS at every start):
    /// with a key, sessions are bound to it, so nothing captured before the start verifies.
    /// [`Config::new`] derives a placeholder from the node id and epoch, which is only good
    /// enough for tests.
    pub nonce: Nonce,
    /// First retransmission timeout (doubles per expiry up to `max_rto`, reset by an ACK).
    pub rto: Duration,
    /// Largest retransmission timeout.
    pub max_rto: Duration,
    /// How long the receiver waits to acknowledge, to cover several datagrams with one ACK.
    pub ack_delay: Duration,
    /// How often a gap is NACKed again while it stays open.
    pub nack_interval: Duration,
    /// Keepalive period when nothing else is sent.
    pub alive_interval: Duration,
    /// A gap still open after this is skipped and a full resync requested.
    pub repair_timeout: Duration,
    /// Report every change the peer makes to the external cache ([`Action::ExternalChanged`]),
    /// so a backup can keep its kernel table warm and promotion has little left to commit.
    pub report_external: bool,
}

impl Config {
    /// Defaults for a pair on a dedicated link.
    pub fn new(node_id: u32, epoch: u32) -> Config {
        Config {
            node_id,
            epoch,
            mtu: 1400,
            window: 256,
            max_internal: 1 << 20,
            max_external: 1 << 20,
            max_queue_bytes: 16 << 20,
            hmac_key: None,
            nonce: placeholder_nonce(node_id, epoch),
            rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(2),
            ack_delay: Duration::from_millis(10),
            nack_interval: Duration::from_millis(50),
            alive_interval: Duration::from_secs(1),
            repair_timeout: Duration::from_secs(5),
            report_external: false,
        }
    }
}

/// A deterministic stand-in for [`Config::nonce`], distinct per node id and epoch.
fn placeholder_nonce(node_id: u32, epoch: u32) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&node_id.to_be_bytes());
    nonce[4..8].copy_from_slice(&epoch.to_be_bytes());
    nonce[8..].copy_from_slice(b"tandem\0\x01");
    nonce
}

/// A change in this node's kernel table (from ctnetlink events).
#[derive(Debug, Clone)]
pub enum Event<R> {
    /// A new entry.
    New(R),
    /// An entry changed (state, timeout, mark...).
    Update(R),
    /// An entry went away.
    Destroy(R),
}

/// Which cache an operation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    /// What this node's kernel has.
    Internal,
    /// What the peer reported.
    External,
}

/// Something for the node to react to.
#[derive(Debug, Clone)]
pub enum Input<'a, R: Record> {
    /// Start the channel: announces this node and asks the peer for a full resync.
    Start,
    /// Kernel events, in order.
    Local(Vec<Event<R>>),
    /// A datagram arrived on the sync socket.
    Datagram(&'a [u8]),
    /// The time given is at or after [`Node::next_deadline`].
    Timer,
    /// Ask the peer to send its whole internal cache (conntrackd `-n`).
    RequestResync,
    /// Send our whole internal cache to the peer (conntrackd `-B`).
    BulkSend,
    /// Empty a cache (conntrackd `-f`); nothing is sent.
    Flush(CacheKind),
    /// Replace the internal cache with a kernel dump and send the peer the difference, or
    /// everything when there was nothing to compare with (conntrackd `-R`).
    ResyncFromKernel(Vec<R>),
    /// Hand the external cache to the kernel side (conntrackd `-c`).
    Commit,
    /// The external cache is now in this node's kernel (a commit completed): its entries
    /// become this node's own, in the internal cache, without telling the peer (it has them,
    /// or asks for a resync). This is what the kernel's events of a commit would say, at no
    /// cost to the kernel.
    AdoptExternal,
    /// These entries of this node's kernel now follow the peer (a warm backup applied the
    /// peer's changes to them): they leave the internal cache without a word to the peer, so
    /// a later bulk or resync never hands the peer back a flow it has since deleted.
    Forget(Vec<R::Key>),
}

/// What the daemon should do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<R> {
    /// Send these bytes to the peer (unicast or the sync multicast group).
    Transmit(Vec<u8>),
    /// Create these entries in the kernel (the external cache, on commit).
    Commit(Vec<R>),
    /// The peer restarted (its epoch, with a key its session, changed): log it.
    PeerRestarted {
        /// The peer's node id.
        node_id: u32,
    },
    /// With a key: an authenticated session with the peer was established (at start, and
    /// after either node restarted); log it.
    SessionEstablished {
        /// The peer's node id.
        node_id: u32,
    },
    /// A full resync from the (authenticated, with a key) peer emptied the external cache:
    /// allowed, since the peer's table may really be empty, but worth a log line with its size.
    ExternalWiped {
        /// Entries the resync removed.
        removed: usize,
    },
    /// The peer changed the external cache (only with [`Config::report_external`]), in order.
    ExternalChanged(Vec<ExternalChange<R>>),
    /// A full resync from the peer completed: the external cache now holds the peer's whole
    /// table (a returning node may preempt from here on).
    ResyncReceived {
        /// Entries in the external cache afterwards.
        entries: usize,
    },
}

/// One change to the external cache, as reported with [`Config::report_external`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalChange<R> {
    /// Added or updated.
    Set(R),
    /// Deleted by the peer, or absent from its full resync.
    Removed(R),
}

/// Keys whose current state still has to go to the peer, sent as the window opens: either a
/// full bulk (between resync markers, so the peer drops what it is not sent) or a backlog of
/// changes that did not fit the send queue.
#[derive(Debug)]
struct Bulk<R: Record> {
    keys: Vec<R::Key>,
    next: usize,
    /// A full bulk, closed with the resync end marker.
    full: bool,
    /// Entries deleted after the bulk started whose deletion could not be queued: sent as
    /// deletions when the bulk reaches their key again.
    deleted: HashMap<R::Key, R>,
}

/// One node: internal and external caches plus the reliable channel to the peer.
pub struct Node<R: Record> {
    channel: Channel,
    internal: InternalCache<R>,
    external: ExternalCache<R>,
    filter: Box<dyn Fn(&R) -> bool + Send>,
    bulk: Option<Bulk<R>>,
    max_queue_bytes: usize,
    report_external: bool,
    changes: Vec<ExternalChange<R>>,
}

impl<R: Record> std::fmt::Debug for Node<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("channel", &self.channel)
            .field("internal", &self.internal.len())
            .field("external", &self.external.len())
            .finish_non_exhaustive()
    }
}

impl<R: Record> Node<R> {
    /// A node that replicates every local entry; see [`Node::set_filter`].
    pub fn new(config: Config) -> Node<R> {
        let channel = Channel::new(ChannelConfig {
            node_id: config.node_id,
            epoch: config.epoch,
            mtu: config.mtu,
            window: config.window.max(1),
            max_queue_bytes: config.max_queue_bytes,
            psk: config.hmac_key.clone(),
            nonce: config.nonce,
            rto: config.rto,
            max_rto: config.max_rto.max(config.rto),
            ack_delay: config.ack_delay,
            nack_interval: config.nack_interval,
            alive_interval: config.alive_interval,
            repair_timeout: config.repair_timeout,
        });
        Node {
            channel,
            internal: InternalCache::new(config.max_internal),
            external: ExternalCache::new(config.max_external),
            filter: Box::new(|_| true),
            bulk: None,
            max_queue_bytes: config.max_queue_bytes,
            report_external: config.report_external,
            changes: Vec::new(),
        }
    }

    /// Replicates only local entries for which `filter` is true (the daemon passes its
    /// conntrackd-style protocol / address / TCP-state filter).
    pub fn set_filter(&mut self, filter: impl Fn(&R) -> bool + Send + 'static) {
        self.filter = Box::new(filter);
    }

    /// What this node's kernel has (`tandemctl -i`).
    pub fn internal(&self) -> &InternalCache<R> {
        &self.internal
    }

    /// What the peer reported (`tandemctl -e`).
    pub fn external(&self) -> &ExternalCache<R> {
        &self.external
    }

    /// Counters and cache sizes (`tandemctl -s`).
    pub fn stats(&self) -> Stats {
        let mut stats = self.channel.stats.clone();
        stats.internal_entries = self.internal.len();
        stats.external_entries = self.external.len();
        stats
    }

    /// Dropped datagrams by reason, without copying the other counters (checked per datagram
    /// by a daemon that logs drops).
    pub fn drops(&self) -> &crate::stats::Drops {
        &self.channel.stats.drops
    }

    /// When the peer last sent a datagram that passed every check (authenticated, from its
    /// current incarnation): how a daemon tells a silent peer from a live one.
    pub fn last_heard(&self) -> Option<Instant> {
        self.channel.last_heard
    }

    /// How far the peer is behind this node: unacknowledged DATA datagrams, changes still
    /// queued (bytes), and when the oldest unacknowledged datagram was sent.
    pub fn lag(&self) -> Lag {
        let (unacked, oldest) = self.channel.lag();
        Lag {
            unacked,
            queued_bytes: self.channel.queued_bytes(),
            oldest_unacked: oldest,
        }
    }

    /// The peer whose datagrams are applied: (node id, epoch). With a key, only once a session
    /// is established.
    pub fn peer(&self) -> Option<(u32, u32)> {
        self.channel.peer()
    }

    /// When to call `handle(now, Input::Timer)` next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.channel.next_deadline()
    }

    /// Whether everything queued has been sent and acknowledged (no bulk in progress).
    pub fn is_idle(&self) -> bool {
        self.bulk.is_none() && self.channel.queued_bytes() == 0 && self.channel.unacked() == 0
    }

    /// Applies one input; returns what the daemon must do, in order.
    pub fn handle(&mut self, now: Instant, input: Input<'_, R>) -> Vec<Action<R>> {
        let mut actions = Vec::new();
        match input {
            Input::Start => {
                self.channel.start();
                self.request_resync();
            }
            Input::Local(events) => {
                for event in events {
                    self.local_event(event);
                }
            }
            Input::Datagram(bytes) => self.channel.receive(now, bytes),
            Input::Timer => {}
            Input::RequestResync => self.request_resync(),
            Input::BulkSend => self.start_bulk(),
            Input::Flush(CacheKind::Internal) => self.internal.clear(),
            Input::Flush(CacheKind::External) => self.external.clear(),
            Input::ResyncFromKernel(dump) => self.resync_from_kernel(dump),
            Input::Commit => {
                actions.push(Action::Commit(self.external.records_aged(now).collect()))
            }
            Input::Forget(keys) => {
                for key in &keys {
                    self.internal.remove(key);
                }
            }
            Input::AdoptExternal => {
                for record in self.external.records() {
                    if !(self.filter)(&record) {
                        self.channel.stats.filtered += 1;
                    } else if self.internal.upsert(record).is_err() {
                        self.channel.stats.internal_full += 1;
                    }
                }
            }
        }
        for round in 0..3 {
            self.settle(now, &mut actions);
            self.pump(now);
            if round < 2 {
                self.channel.poll(now);
            }
        }
        if !self.changes.is_empty() {
            actions.push(Action::ExternalChanged(std::mem::take(&mut self.changes)));
        }
        actions.extend(
            self.channel
                .take_transmits()
                .into_iter()
                .map(Action::Transmit),
        );
        actions
    }

    /// Reacts to channel events and applies delivered DATA in order.
    fn settle(&mut self, now: Instant, actions: &mut Vec<Action<R>>) {
        for event in self.channel.take_events() {
            match event {
                ChannelEvent::PeerRestarted { node_id } => {
                    // Our stream was reset; the restarted peer asks for a resync at start.
                    self.bulk = None;
                    actions.push(Action::PeerRestarted { node_id });
                }
                ChannelEvent::SessionEstablished { node_id } => {
                    actions.push(Action::SessionEstablished { node_id });
                }
                ChannelEvent::GapAbandoned => self.request_resync(),
            }
        }
        for body in self.channel.take_delivered() {
            if let Some(removed) = self.apply(now, &body) {
                let entries = self.external.len();
                if entries == 0 && removed > 0 {
                    self.channel.stats.external_wipes += 1;
                    actions.push(Action::ExternalWiped { removed });
                }
                actions.push(Action::ResyncReceived { entries });
            }
        }
    }

    fn local_event(&mut self, event: Event<R>) {
        match event {
            Event::New(record) | Event::Update(record) => {
                if !(self.filter)(&record) {
                    self.channel.stats.filtered += 1;
                    // An entry that stops matching (e.g. a TCP state change) leaves the peer too.
                    if self.internal.remove(&record.key()).is_some() {
                        self.send(attr::DELETE, &record);
                    }
                    return;
                }
                if self.internal.upsert(record.clone()).is_err() {
                    self.channel.stats.internal_full += 1;
                    return;
                }
                self.send(attr::SET, &record);
            }
            Event::Destroy(record) => {
                if self.internal.remove(&record.key()).is_some() {
                    self.send(attr::DELETE, &record);
                }
            }
        }
    }

    /// Queues one change for the peer. When the send queue is full the change is not lost:
    /// its key joins the running bulk or backlog, which sends the entry's state when it gets
    /// there.
    fn send(&mut self, ty: u16, record: &R) {
        self.channel.stats.records_sent += 1;
        if self.channel.push(ty, |out| record.encode(out)) {
            return;
        }
        let bulk = self.bulk.get_or_insert_with(|| Bulk {
            keys: Vec::new(),
            next: 0,
            full: false,
            deleted: HashMap::new(),
        });
        let key = record.key();
        if ty == attr::DELETE {
            bulk.deleted.insert(key.clone(), record.clone());
        }
        bulk.keys.push(key);
    }

    /// Replaces the internal cache with a dump of the kernel table and tells the peer only
    /// what differs: new and changed entries, and the ones that are gone. With nothing to
    /// compare with (at start), the peer gets a full bulk, which also sweeps whatever it kept
    /// from this node's previous life.
    fn resync_from_kernel(&mut self, dump: Vec<R>) {
        let mut earlier = self.internal.take();
        let mut overflowed = earlier.is_empty();
        for record in dump {
            if !(self.filter)(&record) {
                self.channel.stats.filtered += 1;
                continue;
            }
            let before = earlier.remove(&record.key());
            let news = before.as_ref().is_none_or(|b| record.differs_from(b));
            if news && !overflowed {
                self.channel.stats.records_sent += 1;
                overflowed = !self.channel.push(attr::SET, |out| record.encode(out));
            }
            if self.internal.upsert(record).is_err() {
                self.channel.stats.internal_full += 1;
            }
        }
        for gone in earlier.records() {
            if overflowed {
                break;
            }
            self.channel.stats.records_sent += 1;
            overflowed = !self.channel.push(attr::DELETE, |out| gone.encode(out));
        }
        if overflowed {
            self.start_bulk();
        }
    }

    fn request_resync(&mut self) {
        self.channel.stats.resync_requests_sent += 1;
        self.channel.push(attr::RESYNC_REQUEST, |_| {});
    }

    fn start_bulk(&mut self) {
        self.channel.stats.bulk_sends += 1;
        self.channel.push(attr::RESYNC_BEGIN, |_| {});
        // Supersedes a backlog: the bulk sends every key's state, and the end marker makes
        // the peer drop what was deleted.
        self.bulk = Some(Bulk {
            keys: self.internal.keys().collect(),
            next: 0,
            full: true,
            deleted: HashMap::new(),
        });
    }

    /// Sends queued updates, then feeds the bulk (if any) as the window opens.
    fn pump(&mut self, now: Instant) {
        loop {
            self.channel.flush(now);
            if self.channel.queued_bytes() > 0 || self.channel.free_slots() == 0 {
                return;
            }
            let Some(bulk) = self.bulk.as_mut() else {
                return;
            };
            let budget =
                (self.channel.free_slots() * self.channel.payload()).min(self.max_queue_bytes / 2);
            while self.channel.queued_bytes() < budget.max(1) {
                let Some(key) = bulk.keys.get(bulk.next) else {
                    if bulk.full {
                        self.channel.push(attr::RESYNC_END, |_| {});
                    }
                    self.bulk = None;
                    break;
                };
                bulk.next += 1;
                // A bulk copies the stored encoding out as it is.
                let queued = match self.internal.get_encoded(key) {
                    Some(bytes) => self
                        .channel
                        .push(attr::SET, |out| out.extend_from_slice(bytes)),
                    None => match bulk.deleted.get(key) {
                        Some(record) => self.channel.push(attr::DELETE, |out| record.encode(out)),
                        None => continue,
                    },
                };
                self.channel.stats.records_sent += 1;
                if !queued {
                    // Retried once the queue drains (a record that fits no queue is skipped).
                    if self.channel.queued_bytes() > 0 {
                        bulk.next -= 1;
                    }
                    break;
                }
            }
        }
    }

    /// Applies one in-order DATA body to the external cache; when it ended a full resync, how
    /// many entries that resync removed.
    fn apply(&mut self, now: Instant, body: &[u8]) -> Option<usize> {
        let mut resync_done = None;
        for a in Attrs::new(body) {
            let Ok((ty, value)) = a else { break };
            match ty {
                attr::SET => match R::decode(value) {
                    Ok(record) => {
                        self.channel.stats.records_received += 1;
                        let report = self.report_external.then(|| record.clone());
                        match self.external.upsert_at(record, now) {
                            Err(_) => self.channel.stats.external_full += 1,
                            Ok(earlier) => {
                                if let Some(record) = report
                                    .filter(|r| earlier.as_ref().is_none_or(|e| r.differs_from(e)))
                                {
                                    self.changes.push(ExternalChange::Set(record));
                                }
                            }
                        }
                    }
                    Err(_) => self.channel.stats.bad_records += 1,
                },
                attr::DELETE => match R::decode(value) {
                    Ok(record) => {
                        self.channel.stats.records_received += 1;
                        let gone = self.external.remove(&record.key());
                        if let Some(gone) = gone.filter(|_| self.report_external) {
                            self.changes.push(ExternalChange::Removed(gone));
                        }
                    }
                    Err(_) => self.channel.stats.bad_records += 1,
                },
                attr::RESYNC_BEGIN => self.external.begin_resync(),
                attr::RESYNC_END => {
                    let stale = self.external.end_resync();
                    resync_done = Some(stale.len());
                    if self.report_external {
                        self.changes
                            .extend(stale.into_iter().map(ExternalChange::Removed));
                    }
                }
                attr::RESYNC_REQUEST => {
                    self.channel.stats.resync_requests_received += 1;
                    self.start_bulk();
                }
                _ => self.channel.stats.unknown_attributes += 1,
            }
        }
        resync_done
    }
}
