//! Who the peer is and which key a datagram must verify under, when a pre-shared key is
//! configured. A session is a pair of nonces, one from each node, each fresh; its keys are
//! derived from the pre-shared key, both nonces and both node ids ([`AuthKey::session`]).
//!
//! A node hands out an *offer* (a nonce of its own, used for one session at most) in handshake
//! STATUS datagrams ("hellos"). A session starts only on proof that a holder of the key saw the
//! current offer: a hello echoing it, or a STATUS that verifies under the key derived from it.
//! Anything captured earlier echoes an older offer and changes nothing. This module decides;
//! [`crate::channel`] sends and keeps the streams.

use std::time::{Duration, Instant};

use crate::auth::{offer_nonce, AuthKey, Nonce, NO_NONCE};
use crate::stats::DropReason;
use crate::wire::{Framed, MessageType, FLAG_HANDSHAKE};

/// An established session with the peer.
#[derive(Debug)]
pub(crate) struct Session {
    pub peer_id: u32,
    pub peer_nonce: Nonce,
    pub own_nonce: Nonce,
    /// Tags what we send.
    pub tx: AuthKey,
    /// Verifies what the peer sends.
    pub rx: AuthKey,
}

/// What a received datagram means for the session, decided before anything changes.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Authentic, of the current session (without a key: every datagram, unchecked).
    Current,
    /// Authentic and fresh: start this session (replacing the current one).
    Establish(Box<Session>),
    /// An authentic hello that proves nothing fresh: `nonce` is the sender's offer, `echo`
    /// the nonce of ours it answers (zeros for none).
    Hello { nonce: Nonce, echo: Nonce },
    /// Drop it, counted under this reason.
    Drop(DropReason),
}

/// Keys and nonces of one node.
#[derive(Debug)]
pub(crate) struct Sessions {
    psk: Vec<u8>,
    node_id: u32,
    base: Nonce,
    offers_made: u64,
    hello_key: AuthKey,
    /// The nonce we currently hand out, and when it was first handed out.
    offer: Option<(Nonce, Instant)>,
    /// An offer older than this is replaced, so a withheld answer cannot be delivered later.
    offer_lifetime: Duration,
    pub current: Option<Session>,
}

impl Sessions {
    pub fn new(psk: &[u8], node_id: u32, base: Nonce, offer_lifetime: Duration) -> Sessions {
        Sessions {
            psk: psk.to_vec(),
            node_id,
            base,
            offers_made: 0,
            hello_key: AuthKey::handshake(psk),
            offer: None,
            offer_lifetime,
            current: None,
        }
    }

    pub fn hello_key(&self) -> &AuthKey {
        &self.hello_key
    }

    /// The offer to hand out now: the outstanding one, or a new one when there is none or it
    /// has expired.
    pub fn offer(&mut self, now: Instant) -> Nonce {
        if let Some(nonce) = self.live_offer(now) {
            return nonce;
        }
        let nonce = offer_nonce(&self.base, self.offers_made);
        self.offers_made += 1;
        self.offer = Some((nonce, now));
        nonce
    }

    fn live_offer(&self, now: Instant) -> Option<Nonce> {
        self.offer
            .filter(|(_, since)| *since + self.offer_lifetime > now)
            .map(|(nonce, _)| nonce)
    }

    /// The key the peer `peer_id` tags with in the session of `peer_nonce` and our `own_nonce`.
    fn rx_key(&self, peer_id: u32, peer_nonce: &Nonce, own_nonce: &Nonce) -> AuthKey {
        AuthKey::session(&self.psk, (peer_id, peer_nonce), (self.node_id, own_nonce))
    }

    /// The session with `peer_id` whose nonces are `peer_nonce` and our `own_nonce`.
    fn derive(&self, peer_id: u32, peer_nonce: Nonce, own_nonce: Nonce, rx: AuthKey) -> Session {
        Session {
            peer_id,
            peer_nonce,
            own_nonce,
            tx: AuthKey::session(
                &self.psk,
                (self.node_id, &own_nonce),
                (peer_id, &peer_nonce),
            ),
            rx,
        }
    }

    /// Authenticates `d` and says what it means. Changes nothing: the caller applies an
    /// [`Verdict::Establish`] with [`Sessions::establish`] once the message parsed.
    pub fn check(&self, now: Instant, d: &Framed<'_>) -> Verdict {
        if d.tag.is_empty() {
            return Verdict::Drop(DropReason::BadHmac);
        }
        let status = d.type_byte == MessageType::Status.to_u8();
        if d.flags & FLAG_HANDSHAKE != 0 {
            if !status {
                return Verdict::Drop(DropReason::Malformed);
            }
            if d.verify(&self.hello_key).is_err() {
                return Verdict::Drop(DropReason::BadHmac);
            }
            let Some((nonce, echo)) = d.session() else {
                return Verdict::Drop(DropReason::Malformed);
            };
            if self.live_offer(now) == Some(echo) {
                let rx = self.rx_key(d.node_id, &nonce, &echo);
                return Verdict::Establish(Box::new(self.derive(d.node_id, nonce, echo, rx)));
            }
            return Verdict::Hello { nonce, echo };
        }
        let current = self.current.as_ref().filter(|s| s.peer_id == d.node_id);
        if !status {
            // DATA (or a newer peer's type): only ever under the current session's key.
            return match current {
                None => Verdict::Drop(DropReason::Unsynced),
                Some(s) if d.verify(&s.rx).is_ok() => Verdict::Current,
                Some(_) => Verdict::Drop(DropReason::BadHmac),
            };
        }
        let Some((nonce, echo)) = d.session() else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if let Some(s) = current.filter(|s| s.peer_nonce == nonce && s.own_nonce == echo) {
            return match d.verify(&s.rx) {
                Ok(()) => Verdict::Current,
                Err(_) => Verdict::Drop(DropReason::BadHmac),
            };
        }
        if self.live_offer(now) == Some(echo) {
            // One derivation per candidate; the second key only once it verified.
            let rx = self.rx_key(d.node_id, &nonce, &echo);
            return match d.verify(&rx) {
                Ok(()) => Verdict::Establish(Box::new(self.derive(d.node_id, nonce, echo, rx))),
                Err(_) => Verdict::Drop(DropReason::BadHmac),
            };
        }
        // Echoes a nonce of ours that is no longer on offer: an earlier session's STATUS.
        Verdict::Drop(DropReason::StaleSession)
    }

    /// Makes `session` the current one and retires the offer it used; returns the one it
    /// replaces.
    pub fn establish(&mut self, session: Session) -> Option<Session> {
        if self
            .offer
            .is_some_and(|(nonce, _)| nonce == session.own_nonce)
        {
            self.offer = None;
        }
        self.current.replace(session)
    }

    /// Whether `nonce` names the current session's peer (a hello from a peer that has not
    /// heard our session STATUS yet).
    pub fn is_current_peer(&self, node_id: u32, nonce: &Nonce) -> bool {
        self.current
            .as_ref()
            .is_some_and(|s| s.peer_id == node_id && &s.peer_nonce == nonce)
    }
}

/// Whether a hello's echo is empty (the sender knows no nonce of ours).
pub(crate) fn is_unanswered(echo: &Nonce) -> bool {
    echo == &NO_NONCE
}
