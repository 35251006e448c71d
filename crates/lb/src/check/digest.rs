//! `genhash`-compatible digests: the MD5 of an HTTP response body, written
//! as 32 lowercase hex digits, which is what `url { digest ... }` expects.

use md5::{Digest, Md5};

/// MD5 of `body` (the bytes after the response headers, decoded from any
/// chunked transfer encoding), as keepalived and `genhash` compute it.
pub fn body_digest(body: &[u8]) -> [u8; 16] {
    Md5::digest(body).into()
}

/// Lowercase hex, as `genhash` prints and keepalived.conf writes digests.
pub fn to_hex(digest: &[u8; 16]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a `digest` value (32 hex digits, either case).
pub fn from_hex(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_has_md5_of_nothing() {
        assert_eq!(
            to_hex(&body_digest(b"")),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        let d = body_digest(b"hello\n");
        assert_eq!(from_hex(&to_hex(&d)), Some(d));
        assert_eq!(from_hex(&to_hex(&d).to_uppercase()), Some(d));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex(&"zz".repeat(16)), None);
    }
}
