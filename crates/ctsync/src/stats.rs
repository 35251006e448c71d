//! Counters an operator asks for when replication misbehaves (`tandemctl stats`).

use crate::wire::WireError;

/// Why a received datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// HMAC tag missing or wrong.
    BadHmac,
    /// Shorter than its header or its length field.
    Truncated,
    /// Not our magic.
    BadMagic,
    /// Another wire version.
    BadVersion,
    /// A message type this build does not know.
    UnknownType,
    /// Structurally invalid (length mismatch, bad ACK/NACK size).
    Malformed,
    /// Our own datagram (multicast loopback).
    Own,
    /// From the previous incarnation of the peer, after it restarted.
    StaleEpoch,
    /// With a key: a STATUS or hello of an earlier session (it echoes a nonce of ours that is
    /// no longer current), e.g. a replay.
    StaleSession,
    /// DATA from a peer whose stream start (RESET) we have not seen yet, or with a key before
    /// a session exists.
    Unsynced,
    /// DATA too far ahead of the expected sequence to buffer.
    OutOfWindow,
    /// DATA already received.
    Duplicate,
}

impl DropReason {
    /// Maps a decode error to the counter it increments.
    pub fn of(error: &WireError) -> DropReason {
        match error {
            WireError::BadHmac { .. } => DropReason::BadHmac,
            WireError::Truncated { .. } => DropReason::Truncated,
            WireError::BadMagic { .. } => DropReason::BadMagic,
            WireError::BadVersion { .. } => DropReason::BadVersion,
            WireError::UnknownType { .. } => DropReason::UnknownType,
            _ => DropReason::Malformed,
        }
    }
}

/// Dropped datagrams by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drops {
    /// HMAC tag missing or wrong.
    pub bad_hmac: u64,
    /// Truncated datagrams.
    pub truncated: u64,
    /// Wrong magic.
    pub bad_magic: u64,
    /// Wrong version.
    pub bad_version: u64,
    /// Unknown message type (skipped).
    pub unknown_type: u64,
    /// Structurally invalid.
    pub malformed: u64,
    /// Our own datagrams looped back.
    pub own: u64,
    /// From the peer's previous incarnation.
    pub stale_epoch: u64,
    /// With a key: from an earlier session.
    pub stale_session: u64,
    /// DATA before the peer's stream start.
    pub unsynced: u64,
    /// DATA beyond the receive window.
    pub out_of_window: u64,
    /// DATA received twice.
    pub duplicate: u64,
}

impl Drops {
    /// Counts one drop.
    pub fn count(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::BadHmac => &mut self.bad_hmac,
            DropReason::Truncated => &mut self.truncated,
            DropReason::BadMagic => &mut self.bad_magic,
            DropReason::BadVersion => &mut self.bad_version,
            DropReason::UnknownType => &mut self.unknown_type,
            DropReason::Malformed => &mut self.malformed,
            DropReason::Own => &mut self.own,
            DropReason::StaleEpoch => &mut self.stale_epoch,
            DropReason::StaleSession => &mut self.stale_session,
            DropReason::Unsynced => &mut self.unsynced,
            DropReason::OutOfWindow => &mut self.out_of_window,
            DropReason::Duplicate => &mut self.duplicate,
        };
        *c += 1;
    }
}

/// All counters of one node, plus the cache sizes at the time of the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams sent, retransmissions included.
    pub datagrams_sent: u64,
    /// Bytes sent (UDP payload).
    pub bytes_sent: u64,
    /// Datagrams received, dropped ones included.
    pub datagrams_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// DATA datagrams sent again (on NACK or timeout).
    pub retransmissions: u64,
    /// NACK ranges sent.
    pub nacks_sent: u64,
    /// NACK ranges received.
    pub nacks_received: u64,
    /// Keepalive STATUS datagrams sent while idle.
    pub alive_sent: u64,
    /// Dropped datagrams by reason.
    pub drops: Drops,
    /// Times the peer's epoch changed (peer restarted); with a key, times a new session
    /// replaced an established one.
    pub peer_restarts: u64,
    /// With a key: sessions established with the peer.
    pub sessions_established: u64,
    /// With a key: handshake STATUS datagrams sent (offers and their retransmissions).
    pub hellos_sent: u64,
    /// With a key: authentic handshake STATUS datagrams received that started no session.
    pub hellos_received: u64,
    /// Full resyncs from the peer that emptied a non-empty external cache.
    pub external_wipes: u64,
    /// Gaps that could not be repaired in time (a resync was requested instead).
    pub gaps_abandoned: u64,
    /// Full resyncs this node sent (bulk sends).
    pub bulk_sends: u64,
    /// Resync requests this node sent.
    pub resync_requests_sent: u64,
    /// Resync requests the peer sent us.
    pub resync_requests_received: u64,
    /// Times the outgoing queue overflowed and was replaced by a full resync.
    pub queue_overflows: u64,
    /// Records sent (SET and DELETE, bulk included).
    pub records_sent: u64,
    /// Records received and applied.
    pub records_received: u64,
    /// Records that failed to decode (skipped).
    pub bad_records: u64,
    /// Attributes of unknown type skipped.
    pub unknown_attributes: u64,
    /// Local events rejected by the filter.
    pub filtered: u64,
    /// New entries refused because the internal cache was full.
    pub internal_full: u64,
    /// New entries refused because the external cache was full.
    pub external_full: u64,
    /// Records too large for one datagram (dropped).
    pub oversize: u64,
    /// Entries in the internal cache.
    pub internal_entries: usize,
    /// Entries in the external cache.
    pub external_entries: usize,
}
