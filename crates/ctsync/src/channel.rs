//! The reliable channel: DATA datagrams carry sequence numbers; the receiver sends STATUS
//! (cumulative ACK, NACK ranges for gaps) after data, on gaps and as a keepalive when idle; the
//! sender keeps every unacknowledged datagram (at most `window` of them) and retransmits it on a
//! NACK or when its retransmission timer fires. A peer restart shows up as a new epoch in the
//! header (with a key: as a new session, see [`crate::session`]); a gap still open after
//! `repair_timeout` is skipped and a full resync requested.
//!
//! Records and caches live in [`crate::node`]; this module moves opaque attribute bytes.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::auth::{AuthKey, Nonce, NO_NONCE, TAG_LEN};
use crate::session::{is_unanswered, Sessions, Verdict};
use crate::stats::{DropReason, Stats};
use crate::wire::{
    self, attr, Attrs, MessageType, ATTR_HEADER_LEN, FLAG_HANDSHAKE, FLAG_RESET, HEADER_LEN,
};

/// Most NACK ranges in one STATUS datagram.
const MAX_NACK_RANGES: usize = 32;
/// Most datagrams retransmitted per timer expiry.
const RETRANSMIT_BURST: usize = 32;
/// An offer lives this many keepalive intervals, then a new one replaces it.
const OFFER_LIFETIME: u32 = 10;

/// `a` comes after `b` in serial-number arithmetic (RFC 1982), so sequences may wrap.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Timers and sizes of the channel.
#[derive(Debug, Clone)]
pub(crate) struct ChannelConfig {
    pub node_id: u32,
    pub epoch: u32,
    pub mtu: usize,
    pub window: u32,
    pub max_queue_bytes: usize,
    /// Pre-shared key: sessions, handshakes and tags. Without it nothing is tagged or checked.
    pub psk: Option<Vec<u8>>,
    /// This incarnation's random base nonce (offers are derived from it).
    pub nonce: Nonce,
    pub rto: Duration,
    pub max_rto: Duration,
    pub ack_delay: Duration,
    pub nack_interval: Duration,
    pub alive_interval: Duration,
    pub repair_timeout: Duration,
}

/// Something the node must react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The peer's epoch (with a key: its session) changed: our stream to it was reset.
    PeerRestarted { node_id: u32 },
    /// A keyed session with the peer was established.
    SessionEstablished { node_id: u32 },
    /// A gap could not be repaired; the node should request a full resync.
    GapAbandoned,
}

#[derive(Debug)]
struct Sent {
    bytes: Vec<u8>,
    sent_at: Instant,
}

#[derive(Debug)]
struct Peer {
    node_id: u32,
    epoch: u32,
    /// Next DATA sequence to deliver; `None` until the stream start (RESET) arrives.
    expected: Option<u32>,
    /// One past the highest sequence the peer is known to have sent.
    next_known: u32,
    buffered: HashMap<u32, Vec<u8>>,
    ack_due: Option<Instant>,
    last_nack: Option<Instant>,
    gap_since: Option<Instant>,
}

impl Peer {
    fn new(node_id: u32, epoch: u32) -> Peer {
        Peer {
            node_id,
            epoch,
            expected: None,
            next_known: 0,
            buffered: HashMap::new(),
            ack_due: None,
            last_nack: None,
            gap_since: None,
        }
    }

    fn has_gap(&self) -> bool {
        match self.expected {
            Some(exp) => !self.buffered.is_empty() || after(self.next_known, exp),
            None => false,
        }
    }
}

/// One node's end of the sync channel.
#[derive(Debug)]
pub(crate) struct Channel {
    cfg: ChannelConfig,
    started: bool,
    next_seq: u32,
    /// Sequence of `unacked[0]`.
    base: u32,
    unacked: VecDeque<Sent>,
    /// No unacknowledged datagram was sent before this (a lower bound, exact after each
    /// retransmission scan): with thousands in flight, polls and deadlines then cost nothing
    /// until something can actually have timed out.
    oldest_unacked: Option<Instant>,
    reset_next: bool,
    queue: Vec<u8>,
    queue_pos: usize,
    rto_current: Duration,
    last_sent: Option<Instant>,
    peer: Option<Peer>,
    previous_peer: Option<(u32, u32)>,
    /// With a key: the sessions, their keys and our offers.
    sessions: Option<Sessions>,
    /// Send a STATUS at the next poll (a session just started, or the peer still handshakes).
    status_due: bool,
    /// Period of our hellos while no session exists: starts at `rto`, doubles to `alive`.
    hello_interval: Duration,
    /// The last hello answered (by the sender's nonce), and when: the same hello is answered
    /// at most once per NACK interval, so replaying it does not make us repeat ourselves at
    /// the replay's rate.
    last_answer: Option<(Nonce, Instant)>,
    delivered: Vec<Vec<u8>>,
    events: Vec<Event>,
    out: Vec<Vec<u8>>,
    pub stats: Stats,
    /// When the current peer last sent a datagram that passed every check.
    pub last_heard: Option<Instant>,
}

impl Channel {
    pub fn new(cfg: ChannelConfig) -> Channel {
        let rto = cfg.rto;
        let sessions = cfg.psk.as_deref().map(|psk| {
            Sessions::new(
                psk,
                cfg.node_id,
                cfg.nonce,
                cfg.alive_interval * OFFER_LIFETIME,
            )
        });
        Channel {
            cfg,
            started: false,
            next_seq: 0,
            base: 0,
            unacked: VecDeque::new(),
            oldest_unacked: None,
            reset_next: true,
            queue: Vec::new(),
            queue_pos: 0,
            rto_current: rto,
            last_sent: None,
            peer: None,
            previous_peer: None,
            sessions,
            status_due: false,
            hello_interval: rto,
            last_answer: None,
            delivered: Vec::new(),
            events: Vec::new(),
            out: Vec::new(),
            stats: Stats::default(),
            last_heard: None,
        }
    }

    pub fn start(&mut self) {
        self.started = true;
    }

    /// Attribute bytes that fit in one datagram.
    pub fn payload(&self) -> usize {
        let tag = if self.sessions.is_some() { TAG_LEN } else { 0 };
        self.cfg
            .mtu
            .saturating_sub(HEADER_LEN + tag)
            .max(ATTR_HEADER_LEN)
    }

    /// DATA datagrams that may still be sent before the window is full.
    pub fn free_slots(&self) -> usize {
        (self.cfg.window as usize).saturating_sub(self.unacked.len())
    }

    pub fn queued_bytes(&self) -> usize {
        self.queue.len() - self.queue_pos
    }

    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// The peer we exchange state with: (node id, epoch), and with a key only once a session
    /// is established.
    pub fn peer(&self) -> Option<(u32, u32)> {
        self.peer.as_ref().map(|p| (p.node_id, p.epoch))
    }

    /// How far the peer is behind: DATA datagrams sent and not yet acknowledged, and when the
    /// oldest of them was sent (no later than that: a bound kept without scanning).
    pub fn lag(&self) -> (usize, Option<Instant>) {
        (self.unacked.len(), self.oldest_unacked)
    }

    /// The key that tags what we send: the session's, `None` without a key.
    fn tx_key(&self) -> Option<&AuthKey> {
        self.sessions
            .as_ref()
            .and_then(|s| s.current.as_ref())
            .map(|s| &s.tx)
    }

    /// Whether DATA may go out: always without a key, only in a session with one.
    fn can_send_data(&self) -> bool {
        self.sessions.as_ref().is_none_or(|s| s.current.is_some())
    }

    /// Queues one attribute for the reliable stream. Returns false when a record (SET or
    /// DELETE) does not fit in the queue: it was not queued, and the node must send it later
    /// (a bulk takes its key again). Control attributes (resync markers and requests) are
    /// always queued, so a bulk's boundaries are never lost.
    pub fn push(&mut self, ty: u16, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mark = self.queue.len();
        wire::put_nested(&mut self.queue, ty, write);
        let record = ty == attr::SET || ty == attr::DELETE;
        if record && self.queued_bytes() > self.cfg.max_queue_bytes {
            self.queue.truncate(mark);
            self.stats.queue_overflows += 1;
            return false;
        }
        true
    }

    /// Forgets everything sent to the previous incarnation of the peer and starts a new stream.
    fn reset_stream(&mut self) {
        self.unacked.clear();
        self.oldest_unacked = None;
        self.base = self.next_seq;
        self.queue.clear();
        self.queue_pos = 0;
        self.reset_next = true;
        self.rto_current = self.cfg.rto;
    }

    pub fn take_delivered(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.delivered)
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub fn take_transmits(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.out)
    }

    fn transmit(&mut self, now: Instant, bytes: Vec<u8>) {
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.last_sent = Some(now);
        self.out.push(bytes);
    }

    /// Packs queued attributes into DATA datagrams while the window allows.
    pub fn flush(&mut self, now: Instant) {
        if !self.started || !self.can_send_data() {
            return;
        }
        let payload = self.payload();
        while self.free_slots() > 0 && (self.queued_bytes() > 0 || self.reset_next) {
            let flags = if self.reset_next { FLAG_RESET } else { 0 };
            let mut dgram = Vec::with_capacity(self.cfg.mtu);
            wire::start(
                &mut dgram,
                MessageType::Data,
                flags,
                self.cfg.node_id,
                self.cfg.epoch,
                self.next_seq,
            );
            let mut used = 0;
            while self.queue_pos < self.queue.len() {
                let at = self.queue_pos;
                let len = ATTR_HEADER_LEN
                    + u16::from_be_bytes([self.queue[at + 2], self.queue[at + 3]]) as usize;
                if len > payload {
                    self.stats.oversize += 1;
                    self.queue_pos += len;
                    continue;
                }
                if used + len > payload {
                    break;
                }
                dgram.extend_from_slice(&self.queue[at..at + len]);
                used += len;
                self.queue_pos += len;
            }
            if self.queue_pos >= self.queue.len() {
                self.queue.clear();
                self.queue_pos = 0;
            }
            if used == 0 && !self.reset_next {
                break;
            }
            wire::finish(&mut dgram, self.tx_key());
            self.reset_next = false;
            self.unacked.push_back(Sent {
                bytes: dgram.clone(),
                sent_at: now,
            });
            self.oldest_unacked.get_or_insert(now);
            self.next_seq = self.next_seq.wrapping_add(1);
            self.transmit(now, dgram);
        }
        if self.queue_pos > 0 && self.queue_pos * 2 > self.queue.len() {
            self.queue.drain(..self.queue_pos);
            self.queue_pos = 0;
        }
    }

    /// Handles one received datagram. Nothing changes before it authenticated and parsed.
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let framed = match wire::frame(bytes) {
            Ok(framed) => framed,
            Err(e) => {
                self.stats.drops.count(DropReason::of(&e));
                return;
            }
        };
        if framed.node_id == self.cfg.node_id {
            self.stats.drops.count(DropReason::Own);
            return;
        }
        let verdict = match &self.sessions {
            Some(sessions) => sessions.check(now, &framed),
            None => Verdict::Current,
        };
        if let Verdict::Drop(reason) = verdict {
            self.stats.drops.count(reason);
            return;
        }
        let msg = match framed.message() {
            Ok(msg) => msg,
            Err(e) => {
                self.stats.drops.count(DropReason::of(&e));
                return;
            }
        };
        let h = msg.header;
        match verdict {
            Verdict::Drop(_) => return,
            Verdict::Hello { nonce, echo } => return self.receive_hello(now, h, nonce, echo),
            Verdict::Establish(session) => self.establish(now, h, *session),
            Verdict::Current if self.sessions.is_some() => {}
            Verdict::Current => {
                if !self.track_epoch(h) {
                    return;
                }
            }
        }
        // Authenticated, fresh, from the peer's current incarnation: the peer is alive.
        self.last_heard = Some(now);
        if h.flags & FLAG_HANDSHAKE != 0 {
            // A hello that completed our offer: its attributes are the handshake's only.
            return;
        }
        match h.kind {
            MessageType::Data => self.receive_data(now, h, msg.body),
            MessageType::Status => self.receive_status(now, h, msg.body),
        }
    }

    /// Without a key: the peer is whoever sends, and a new epoch means it restarted. Returns
    /// false when the datagram is from the peer's previous incarnation.
    fn track_epoch(&mut self, h: wire::Header) -> bool {
        match &self.peer {
            Some(p) if p.node_id == h.node_id && p.epoch == h.epoch => {}
            Some(_) if self.previous_peer == Some((h.node_id, h.epoch)) => {
                self.stats.drops.count(DropReason::StaleEpoch);
                return false;
            }
            Some(p) => {
                self.previous_peer = Some((p.node_id, p.epoch));
                self.peer = Some(Peer::new(h.node_id, h.epoch));
                self.stats.peer_restarts += 1;
                self.reset_stream();
                self.events
                    .push(Event::PeerRestarted { node_id: h.node_id });
            }
            None => self.peer = Some(Peer::new(h.node_id, h.epoch)),
        }
        true
    }

    /// A fresh, authentic datagram started a session: the peer slot is its sender, and a
    /// session that replaces another means the peer restarted (our stream starts over).
    fn establish(&mut self, now: Instant, h: wire::Header, session: crate::session::Session) {
        let Some(sessions) = self.sessions.as_mut() else {
            return;
        };
        let replaced = sessions.establish(session).is_some();
        self.peer = Some(Peer::new(h.node_id, h.epoch));
        self.stats.sessions_established += 1;
        if replaced {
            self.stats.peer_restarts += 1;
            self.reset_stream();
            self.events
                .push(Event::PeerRestarted { node_id: h.node_id });
        }
        self.events
            .push(Event::SessionEstablished { node_id: h.node_id });
        // Lets the peer finish its side (our STATUS echoes its offer) before our DATA arrives.
        if self.started {
            self.send_status(now, false);
        } else {
            self.status_due = true;
        }
    }

    /// A hello that proves nothing fresh. From the current peer it means our session STATUS
    /// has not reached it yet; one that answers a nonce we no longer offer is stale; anything
    /// else may be a restarted peer, so it gets our offer (and changes nothing here).
    fn receive_hello(&mut self, now: Instant, h: wire::Header, nonce: Nonce, echo: Nonce) {
        let Some(sessions) = self.sessions.as_ref() else {
            return;
        };
        if sessions.current.is_some()
            && !is_unanswered(&echo)
            && !sessions.is_current_peer(h.node_id, &nonce)
        {
            self.stats.drops.count(DropReason::StaleSession);
            return;
        }
        self.stats.hellos_received += 1;
        if sessions.is_current_peer(h.node_id, &nonce) {
            self.status_due = true;
            return;
        }
        if self
            .last_answer
            .is_some_and(|(n, t)| n == nonce && t + self.cfg.nack_interval > now)
        {
            return;
        }
        self.last_answer = Some((nonce, now));
        self.send_hello(now, &nonce);
    }

    /// Sends our current offer, echoing `echo` (the offer we answer, or zeros).
    fn send_hello(&mut self, now: Instant, echo: &Nonce) {
        let Some(sessions) = self.sessions.as_mut() else {
            return;
        };
        let offer = sessions.offer(now);
        let mut dgram = Vec::with_capacity(HEADER_LEN + 40 + TAG_LEN);
        wire::start(
            &mut dgram,
            MessageType::Status,
            FLAG_HANDSHAKE,
            self.cfg.node_id,
            self.cfg.epoch,
            self.next_seq,
        );
        wire::put_session(&mut dgram, &offer, echo);
        wire::finish(&mut dgram, Some(sessions.hello_key()));
        self.stats.hellos_sent += 1;
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += dgram.len() as u64;
        self.out.push(dgram);
    }

    fn receive_data(&mut self, now: Instant, h: wire::Header, body: &[u8]) {
        let rx_window = self.cfg.window.saturating_mul(2).max(1);
        let Some(p) = self.peer.as_mut() else { return };
        let due = now + self.cfg.ack_delay;
        p.ack_due = Some(p.ack_due.map_or(due, |d| d.min(due)));
        let reset = h.flags & FLAG_RESET != 0;
        let exp = match p.expected {
            None if reset => h.seq,
            None => {
                self.stats.drops.count(DropReason::Unsynced);
                return;
            }
            Some(exp) if reset && after(h.seq, exp) => {
                p.buffered.clear();
                h.seq
            }
            Some(exp) => exp,
        };
        p.expected = Some(exp);
        if !after(p.next_known, h.seq) {
            p.next_known = h.seq.wrapping_add(1);
        }
        let offset = h.seq.wrapping_sub(exp);
        if offset == 0 {
            self.delivered.push(body.to_vec());
            let mut next = exp.wrapping_add(1);
            while let Some(b) = p.buffered.remove(&next) {
                self.delivered.push(b);
                next = next.wrapping_add(1);
            }
            p.expected = Some(next);
        } else if (offset as i32) < 0 || p.buffered.contains_key(&h.seq) {
            self.stats.drops.count(DropReason::Duplicate);
        } else if offset >= rx_window {
            self.stats.drops.count(DropReason::OutOfWindow);
        } else {
            p.buffered.insert(h.seq, body.to_vec());
        }
        self.update_gap(now);
    }

    fn receive_status(&mut self, now: Instant, h: wire::Header, body: &[u8]) {
        if let Some(p) = self.peer.as_mut() {
            if p.expected.is_some() && after(h.seq, p.next_known) {
                p.next_known = h.seq;
            }
        }
        for a in Attrs::new(body) {
            let Ok((ty, value)) = a else { break };
            match ty {
                attr::ACK => match wire::get_ack(value) {
                    Ok((epoch, next)) if epoch == self.cfg.epoch => self.release(next),
                    Ok(_) => {}
                    Err(_) => self.stats.drops.count(DropReason::Malformed),
                },
                attr::NACK => match wire::get_nack(value) {
                    Ok((first, last)) => {
                        self.stats.nacks_received += 1;
                        self.retransmit_range(now, first, last);
                    }
                    Err(_) => self.stats.drops.count(DropReason::Malformed),
                },
                attr::SESSION => {}
                _ => self.stats.unknown_attributes += 1,
            }
        }
        self.update_gap(now);
    }

    /// Cumulative ACK: everything before `next` arrived.
    fn release(&mut self, next: u32) {
        let acked = next.wrapping_sub(self.base) as usize;
        if acked == 0 || acked > self.unacked.len() {
            return;
        }
        self.unacked.drain(..acked);
        if self.unacked.is_empty() {
            self.oldest_unacked = None;
        }
        self.base = next;
        self.rto_current = self.cfg.rto;
    }

    fn retransmit_range(&mut self, now: Instant, first: u32, last: u32) {
        let start = first.wrapping_sub(self.base) as usize;
        let end = (last.wrapping_sub(self.base) as usize).saturating_add(1);
        if start >= self.unacked.len() || end <= start {
            return;
        }
        let end = end.min(self.unacked.len());
        let min_gap = self.cfg.nack_interval / 2;
        for i in start..end {
            if self.unacked[i].sent_at + min_gap <= now {
                self.unacked[i].sent_at = now;
                let bytes = self.unacked[i].bytes.clone();
                self.stats.retransmissions += 1;
                self.transmit(now, bytes);
            }
        }
    }

    fn update_gap(&mut self, now: Instant) {
        if let Some(p) = self.peer.as_mut() {
            if p.has_gap() {
                p.gap_since.get_or_insert(now);
            } else {
                p.gap_since = None;
                p.last_nack = None;
            }
        }
    }

    /// Timers: gap repair and NACKs, delayed ACKs, retransmission, keepalive.
    pub fn poll(&mut self, now: Instant) {
        if !self.started {
            return;
        }
        let mut send_status = false;
        let mut abandoned = false;
        if let Some(p) = self.peer.as_mut() {
            if let (Some(since), Some(exp)) = (p.gap_since, p.expected) {
                if since + self.cfg.repair_timeout <= now {
                    let mut next = p
                        .buffered
                        .keys()
                        .copied()
                        .min_by_key(|s| s.wrapping_sub(exp))
                        .unwrap_or(p.next_known);
                    while let Some(b) = p.buffered.remove(&next) {
                        self.delivered.push(b);
                        next = next.wrapping_add(1);
                    }
                    p.expected = Some(next);
                    if after(next, p.next_known) {
                        p.next_known = next;
                    }
                    p.gap_since = None;
                    p.last_nack = None;
                    abandoned = true;
                    send_status = true;
                } else if p
                    .last_nack
                    .is_none_or(|t| t + self.cfg.nack_interval <= now)
                {
                    send_status = true;
                }
            }
            if p.ack_due.is_some_and(|t| t <= now) {
                send_status = true;
            }
        }
        if abandoned {
            self.stats.gaps_abandoned += 1;
            self.events.push(Event::GapAbandoned);
            self.update_gap(now);
        }
        if send_status || std::mem::take(&mut self.status_due) {
            self.send_status(now, false);
        }
        self.retransmit_expired(now);
        if self
            .last_sent
            .is_none_or(|t| t + self.alive_period() <= now)
        {
            self.send_status(now, true);
        }
    }

    /// How long we stay silent at most: the keepalive interval, or while a key's handshake is
    /// pending the (shorter, backing off) hello interval.
    fn alive_period(&self) -> Duration {
        if self.can_send_data() {
            self.cfg.alive_interval
        } else {
            self.hello_interval.min(self.cfg.alive_interval)
        }
    }

    fn retransmit_expired(&mut self, now: Instant) {
        let rto = self.rto_current;
        if self.oldest_unacked.is_none_or(|t| t + rto > now) {
            return;
        }
        let mut sent = 0;
        for i in 0..self.unacked.len() {
            if sent == RETRANSMIT_BURST {
                break;
            }
            if self.unacked[i].sent_at + rto <= now {
                self.unacked[i].sent_at = now;
                let bytes = self.unacked[i].bytes.clone();
                self.stats.retransmissions += 1;
                self.transmit(now, bytes);
                sent += 1;
            }
        }
        if sent > 0 {
            self.rto_current = (self.rto_current * 2).min(self.cfg.max_rto);
        }
        self.oldest_unacked = self.unacked.iter().map(|s| s.sent_at).min();
    }

    /// Sends ACK and NACK ranges (or just our next sequence when nothing is known of the peer).
    fn send_status(&mut self, now: Instant, alive: bool) {
        if !self.can_send_data() {
            // No session yet: (re)send our hello instead, after `rto`, then backing off to the
            // keepalive interval.
            if self.last_sent.is_some() {
                self.hello_interval = (self.hello_interval * 2).min(self.cfg.alive_interval);
            }
            self.send_hello(now, &NO_NONCE);
            self.last_sent = Some(now);
            return;
        }
        let mut dgram = Vec::with_capacity(64);
        wire::start(
            &mut dgram,
            MessageType::Status,
            0,
            self.cfg.node_id,
            self.cfg.epoch,
            self.next_seq,
        );
        if let Some(s) = self.sessions.as_ref().and_then(|s| s.current.as_ref()) {
            wire::put_session(&mut dgram, &s.own_nonce, &s.peer_nonce);
        }
        let mut nacks = 0;
        if let Some(p) = self.peer.as_mut() {
            p.ack_due = None;
            if let Some(exp) = p.expected {
                wire::put_pair(&mut dgram, attr::ACK, p.epoch, exp);
                if p.has_gap() {
                    p.last_nack = Some(now);
                    let span = p
                        .next_known
                        .wrapping_sub(exp)
                        .min(self.cfg.window.saturating_mul(2));
                    let mut run: Option<u32> = None;
                    for off in 0..=span {
                        let seq = exp.wrapping_add(off);
                        let missing = off < span && !p.buffered.contains_key(&seq);
                        match (missing, run) {
                            (true, None) => run = Some(seq),
                            (false, Some(first)) => {
                                wire::put_pair(&mut dgram, attr::NACK, first, seq.wrapping_sub(1));
                                run = None;
                                nacks += 1;
                                if nacks == MAX_NACK_RANGES {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        self.stats.nacks_sent += nacks as u64;
        if alive {
            self.stats.alive_sent += 1;
        }
        wire::finish(&mut dgram, self.tx_key());
        self.transmit(now, dgram);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.started {
            return None;
        }
        let mut deadline = Some(self.last_sent? + self.alive_period());
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        };
        if let Some(p) = &self.peer {
            consider(p.ack_due);
            if let Some(since) = p.gap_since {
                consider(Some(since + self.cfg.repair_timeout));
                consider(Some(
                    p.last_nack.map_or(since, |t| t + self.cfg.nack_interval),
                ));
            }
        }
        consider(self.oldest_unacked.map(|t| t + self.rto_current));
        deadline
    }
}
