//! Datagram authentication: HMAC-SHA256 tags, keyed with keys derived (HKDF-SHA256) from a
//! pre-shared key, so nobody else on the sync network can inject, alter or replay state.
//!
//! The pre-shared key never tags a datagram itself. Handshake datagrams use a key derived with
//! a fixed label; everything else uses a per-session, per-direction key that binds both
//! nodes' ids and the fresh nonces they exchanged, so a datagram captured in one session does
//! not verify in any other (docs/sync-protocol.md, "Sessions").

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Bytes in the tag appended to an authenticated datagram.
pub const TAG_LEN: usize = 32;

/// Bytes in a session nonce.
pub const NONCE_LEN: usize = 16;

/// A node's fresh randomness for one session; all zeros means "none" on the wire.
pub type Nonce = [u8; NONCE_LEN];

/// The "no nonce" value (echoed before anything was heard from the peer).
pub const NO_NONCE: Nonce = [0; NONCE_LEN];

/// HKDF labels: distinct, so a handshake key can never equal a session key.
const HANDSHAKE_LABEL: &[u8] = b"tandem sync v1 handshake";
const SESSION_LABEL: &[u8] = b"tandem sync v1 session";
const OFFER_LABEL: &[u8] = b"tandem sync v1 offer";

/// An HMAC-SHA256 key, keyed once and cloned per datagram.
#[derive(Clone)]
pub struct AuthKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(..)")
    }
}

impl AuthKey {
    /// Keys HMAC-SHA256 with `key` as given (any length).
    pub fn new(key: &[u8]) -> AuthKey {
        AuthKey {
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .expect("HMAC accepts keys of any length"),
        }
    }

    /// The key that tags handshake (hello) datagrams: the same for every session, so it only
    /// ever proves "a holder of the pre-shared key sent this", never freshness.
    pub fn handshake(psk: &[u8]) -> AuthKey {
        AuthKey::new(&expand(psk, None, &[HANDSHAKE_LABEL]))
    }

    /// The key for datagrams from `sender` to `receiver` in the session their two nonces
    /// define. Both nonces go into the salt and, with both node ids and the direction, into
    /// the info, so no two sessions or directions share a key.
    pub fn session(psk: &[u8], sender: (u32, &Nonce), receiver: (u32, &Nonce)) -> AuthKey {
        let mut salt = [0u8; 2 * NONCE_LEN];
        salt[..NONCE_LEN].copy_from_slice(sender.1);
        salt[NONCE_LEN..].copy_from_slice(receiver.1);
        let key = expand(
            psk,
            Some(&salt),
            &[
                SESSION_LABEL,
                &sender.0.to_be_bytes(),
                &receiver.0.to_be_bytes(),
                sender.1,
                receiver.1,
            ],
        );
        AuthKey::new(&key)
    }

    /// The tag of `data`.
    pub fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(data);
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    /// Whether `tag` is the tag of `data`, compared in constant time.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }
}

/// HKDF-SHA256 with the pre-shared key as input keying material; 32 bytes out.
fn expand(psk: &[u8], salt: Option<&[u8]>, info: &[&[u8]]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(salt, psk)
        .expand_multi_info(info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// The `n`th nonce a node offers in one incarnation: a hash of its random base nonce and `n`.
/// Offers must never repeat (a repeated offer would let an old answer verify again); they need
/// not be secret, the pre-shared key is the secret.
pub fn offer_nonce(base: &Nonce, n: u64) -> Nonce {
    let digest = Sha256::new()
        .chain_update(OFFER_LABEL)
        .chain_update(base)
        .chain_update(n.to_be_bytes())
        .finalize();
    let mut out = NO_NONCE;
    out.copy_from_slice(&digest[..NONCE_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        let key = AuthKey::new(b"Jefe");
        let tag = key.tag(b"what do ya want for nothing?");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(key.verify(b"what do ya want for nothing?", &tag));
        assert!(!key.verify(b"what do ya want for nothing!", &tag));
    }

    #[test]
    fn rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut okm)
            .unwrap();
        let hex: String = okm.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn every_session_and_direction_has_its_own_key() {
        let psk = b"0123456789abcdef0123456789abcdef";
        let (a1, a2, b) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        let tag = |k: AuthKey| k.tag(b"datagram");
        let ab1 = tag(AuthKey::session(psk, (1, &a1), (2, &b)));
        assert_ne!(ab1, tag(AuthKey::session(psk, (1, &a2), (2, &b))));
        assert_ne!(ab1, tag(AuthKey::session(psk, (2, &b), (1, &a1))));
        assert_ne!(ab1, tag(AuthKey::session(psk, (1, &a1), (3, &b))));
        assert_ne!(ab1, tag(AuthKey::handshake(psk)));
        assert_ne!(ab1, tag(AuthKey::new(psk)));
        assert_ne!(offer_nonce(&a1, 0), offer_nonce(&a1, 1));
        assert_ne!(offer_nonce(&a1, 0), offer_nonce(&a2, 0));
    }
}
