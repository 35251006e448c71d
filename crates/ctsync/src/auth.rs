//! Datagram authentication: HMAC-SHA256 with a pre-shared key, so nobody else on the sync
//! network can inject or alter state.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes in the tag appended to an authenticated datagram.
pub const TAG_LEN: usize = 32;

/// A pre-shared key, keyed once and cloned per datagram.
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
    /// Keys HMAC-SHA256 with `key` (any length; 32 random bytes is a good choice).
    pub fn new(key: &[u8]) -> AuthKey {
        AuthKey {
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .expect("HMAC accepts keys of any length"),
        }
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
}
