//! The sync datagram: a fixed big-endian header followed by type-length-value attributes,
//! optionally followed by an HMAC-SHA256 tag (under a session key, or the handshake key when
//! the HANDSHAKE flag is set; see [`crate::auth`]). docs/sync-protocol.md is the full
//! specification.
//!
//! Receiving is split so that nothing is trusted before it verified: [`frame`] checks the
//! framing, the receiver picks the key from the flags and the SESSION attribute,
//! [`Framed::verify`] checks the tag, and only then [`Framed::message`] parses the rest.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------------------------------+---------------+---------------+
//! |        magic 0x5443 "TC"      |  version (1)  |     type      |
//! +-------------------------------+---------------+---------------+
//! |             flags             |   length (header + attributes)|
//! +-------------------------------+-------------------------------+
//! |                            node id                            |
//! +---------------------------------------------------------------+
//! |                     epoch (boot nonce)                        |
//! +---------------------------------------------------------------+
//! |                           sequence                            |
//! +---------------------------------------------------------------+
//! |  attributes ... (length - 20 bytes)                           |
//! +---------------------------------------------------------------+
//! |  HMAC-SHA256 tag, 32 bytes, when flags has HMAC               |
//! +---------------------------------------------------------------+
//!
//! attribute:
//! +-------------------------------+-------------------------------+
//! |             type              |      value length (bytes)     |
//! +-------------------------------+-------------------------------+
//! |  value ... (no padding)                                       |
//! +---------------------------------------------------------------+
//! ```
//!
//! Unknown attribute types are skipped at every level, so a newer peer may add attributes
//! without breaking an older one. Every read is bounds-checked; decoding never panics.

use thiserror::Error;

use crate::auth::{AuthKey, Nonce, NONCE_LEN, NO_NONCE, TAG_LEN};

/// Identifies a tandem sync datagram ("TC").
pub const MAGIC: u16 = 0x5443;
/// The wire version this build speaks; a different version is dropped.
pub const VERSION: u8 = 1;
/// Bytes in the fixed header.
pub const HEADER_LEN: usize = 20;
/// Bytes in an attribute header (type + length).
pub const ATTR_HEADER_LEN: usize = 4;

/// Header flag: a 32-byte HMAC-SHA256 tag follows the attributes.
pub const FLAG_HMAC: u16 = 0x0001;
/// Header flag: this DATA datagram starts a new stream; the receiver expects `sequence` next.
pub const FLAG_RESET: u16 = 0x0002;
/// Header flag: a handshake STATUS ("hello"), tagged with the handshake key rather than a
/// session key; it may change a session only by echoing the receiver's current offer.
pub const FLAG_HANDSHAKE: u16 = 0x0004;

/// Message-level attribute types (the value of a record attribute is the record's own attributes).
pub mod attr {
    /// DATA: a record the sender's kernel has (new or updated); value = record attributes.
    pub const SET: u16 = 1;
    /// DATA: a record the sender's kernel no longer has; value = record attributes.
    pub const DELETE: u16 = 2;
    /// DATA: a full resync starts; records not set before the matching END are stale.
    pub const RESYNC_BEGIN: u16 = 3;
    /// DATA: a full resync ends; the receiver drops what the resync did not set.
    pub const RESYNC_END: u16 = 4;
    /// DATA: the sender asks for a full resync of the receiver's internal cache.
    pub const RESYNC_REQUEST: u16 = 5;
    /// STATUS: cumulative acknowledgement: `epoch` u32 of the acked stream, `next` u32 expected.
    pub const ACK: u16 = 16;
    /// STATUS: negative acknowledgement: `first` u32, `last` u32 (inclusive) are missing.
    pub const NACK: u16 = 17;
    /// STATUS (with a key): the sender's nonce (16 bytes), then the receiver's nonce it
    /// echoes (16 bytes, zeros when it knows none).
    pub const SESSION: u16 = 18;
}

/// What a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Sequenced, reliably delivered: cache updates and resync markers.
    Data,
    /// Unsequenced receiver status: acknowledgements, gaps, and the keepalive when idle.
    Status,
}

impl MessageType {
    /// The type byte on the wire.
    pub fn to_u8(self) -> u8 {
        match self {
            MessageType::Data => 1,
            MessageType::Status => 2,
        }
    }

    /// Parses the type byte; `None` for a type this build does not know.
    pub fn from_u8(value: u8) -> Option<MessageType> {
        match value {
            1 => Some(MessageType::Data),
            2 => Some(MessageType::Status),
            _ => None,
        }
    }
}

/// Why a datagram or an attribute could not be decoded; each names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Fewer bytes than the field needs.
    #[error("truncated {field}: needs {need} bytes, {have} left")]
    Truncated {
        /// Which field.
        field: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// Not a tandem sync datagram.
    #[error("bad magic {found:#06x}, expected {MAGIC:#06x}")]
    BadMagic {
        /// Magic found.
        found: u16,
    },
    /// A peer speaking another wire version.
    #[error("unsupported version {found}, this build speaks {VERSION}")]
    BadVersion {
        /// Version found.
        found: u8,
    },
    /// A message type this build does not know (a newer peer's); skipped.
    #[error("unknown message type {found}")]
    UnknownType {
        /// Type found.
        found: u8,
    },
    /// The header's length disagrees with the datagram's size.
    #[error("length field says {declared} bytes, datagram holds {actual} (tag excluded)")]
    Length {
        /// Length in the header.
        declared: usize,
        /// Bytes actually present before the tag.
        actual: usize,
    },
    /// The HMAC tag is missing or wrong.
    #[error("HMAC-SHA256 check failed ({reason})")]
    BadHmac {
        /// "missing" or "mismatch".
        reason: &'static str,
    },
    /// An attribute whose value has the wrong size for its type.
    #[error("attribute {field} (type {ty}) has {len} bytes, expects {expected}")]
    AttrLength {
        /// Attribute name.
        field: &'static str,
        /// Attribute type.
        ty: u16,
        /// Length found.
        len: usize,
        /// Length expected.
        expected: usize,
    },
    /// A required attribute is absent.
    #[error("missing attribute {field}")]
    Missing {
        /// Attribute name.
        field: &'static str,
    },
    /// A value outside its domain.
    #[error("invalid {field}: {value}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
    },
}

/// The fixed header of every datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// DATA or STATUS.
    pub kind: MessageType,
    /// `FLAG_*` bits; unknown bits are ignored.
    pub flags: u16,
    /// Header plus attributes, in bytes (the tag is not counted).
    pub length: u16,
    /// The sender's configured node id.
    pub node_id: u32,
    /// The sender's boot nonce: a new value means the sender restarted.
    pub epoch: u32,
    /// DATA: this datagram's sequence number. STATUS: the sender's next DATA sequence number.
    pub seq: u32,
}

impl Header {
    /// Appends the header to `out` (length as given; see [`finish`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.push(VERSION);
        out.push(self.kind.to_u8());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
        out.extend_from_slice(&self.node_id.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
    }
}

/// A decoded datagram: its header and its (structurally valid) attribute bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The fixed header.
    pub header: Header,
    /// The attributes, already checked to tile exactly; iterate with [`Attrs`].
    pub body: &'a [u8],
}

/// Starts a datagram: header with length 0, to be patched by [`finish`].
pub fn start(out: &mut Vec<u8>, kind: MessageType, flags: u16, node_id: u32, epoch: u32, seq: u32) {
    Header {
        kind,
        flags,
        length: 0,
        node_id,
        epoch,
        seq,
    }
    .encode(out);
}

/// Patches the length of a datagram started at offset 0 and, with a key, sets the HMAC flag and
/// appends the tag.
pub fn finish(out: &mut Vec<u8>, key: Option<&AuthKey>) {
    let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
    out[6..8].copy_from_slice(&len.to_be_bytes());
    if let Some(key) = key {
        let flags = u16::from_be_bytes([out[4], out[5]]) | FLAG_HMAC;
        out[4..6].copy_from_slice(&flags.to_be_bytes());
        let tag = key.tag(out);
        out.extend_from_slice(&tag);
    }
}

fn be16(bytes: &[u8], at: usize, field: &'static str) -> Result<u16, WireError> {
    match bytes.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(WireError::Truncated {
            field,
            need: 2,
            have: bytes.len().saturating_sub(at),
        }),
    }
}

fn be32(bytes: &[u8], at: usize, field: &'static str) -> Result<u32, WireError> {
    match bytes.get(at..at + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(WireError::Truncated {
            field,
            need: 4,
            have: bytes.len().saturating_sub(at),
        }),
    }
}

/// A datagram whose framing (magic, version, length, tag size) is valid but whose tag has not
/// been checked: what a receiver may look at to pick the key, and nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    /// The message type byte (possibly unknown to this build).
    pub type_byte: u8,
    /// `FLAG_*` bits.
    pub flags: u16,
    /// The claimed sender.
    pub node_id: u32,
    /// The claimed sender's epoch.
    pub epoch: u32,
    /// Header and attributes: what the tag covers.
    pub signed: &'a [u8],
    /// The tag, empty without the HMAC flag.
    pub tag: &'a [u8],
}

impl<'a> Framed<'a> {
    /// The attribute bytes (not yet checked to tile).
    pub fn body(&self) -> &'a [u8] {
        &self.signed[HEADER_LEN..]
    }

    /// Checks the tag under `key`.
    pub fn verify(&self, key: &AuthKey) -> Result<(), WireError> {
        if self.tag.is_empty() {
            return Err(WireError::BadHmac { reason: "missing" });
        }
        if !key.verify(self.signed, self.tag) {
            return Err(WireError::BadHmac { reason: "mismatch" });
        }
        Ok(())
    }

    /// The message: a known type and attributes that tile the body exactly.
    pub fn message(&self) -> Result<Message<'a>, WireError> {
        let kind = MessageType::from_u8(self.type_byte).ok_or(WireError::UnknownType {
            found: self.type_byte,
        })?;
        let header = Header {
            kind,
            flags: self.flags,
            length: self.signed.len() as u16,
            node_id: self.node_id,
            epoch: self.epoch,
            seq: be32(self.signed, 16, "sequence")?,
        };
        let body = self.body();
        for attr in Attrs::new(body) {
            attr?;
        }
        Ok(Message { header, body })
    }

    /// The SESSION attribute (sender nonce, echoed nonce), if the body holds a well-formed one.
    /// Read before verification only to choose the key.
    pub fn session(&self) -> Option<(Nonce, Nonce)> {
        Attrs::new(self.body())
            .map_while(Result::ok)
            .find(|(ty, _)| *ty == attr::SESSION)
            .and_then(|(_, value)| get_session(value).ok())
    }
}

/// Checks a datagram's framing, without looking at its tag or attributes.
pub fn frame(datagram: &[u8]) -> Result<Framed<'_>, WireError> {
    if datagram.len() < HEADER_LEN {
        return Err(WireError::Truncated {
            field: "header",
            need: HEADER_LEN,
            have: datagram.len(),
        });
    }
    let magic = be16(datagram, 0, "magic")?;
    if magic != MAGIC {
        return Err(WireError::BadMagic { found: magic });
    }
    let version = datagram[2];
    if version != VERSION {
        return Err(WireError::BadVersion { found: version });
    }
    let type_byte = datagram[3];
    let flags = be16(datagram, 4, "flags")?;
    let length = be16(datagram, 6, "length")?;
    let tag_len = if flags & FLAG_HMAC != 0 { TAG_LEN } else { 0 };
    let actual = datagram.len().saturating_sub(tag_len);
    if (length as usize) < HEADER_LEN || length as usize != actual {
        return Err(if (length as usize) > actual {
            WireError::Truncated {
                field: "datagram",
                need: length as usize + tag_len,
                have: datagram.len(),
            }
        } else {
            WireError::Length {
                declared: length as usize,
                actual,
            }
        });
    }
    let (signed, tag) = datagram.split_at(actual);
    Ok(Framed {
        type_byte,
        flags,
        node_id: be32(datagram, 8, "node id")?,
        epoch: be32(datagram, 12, "epoch")?,
        signed,
        tag,
    })
}

/// Decodes and authenticates one datagram. With `key`, a datagram without a valid tag is
/// rejected; without one, a tag is skipped unchecked.
pub fn decode<'a>(datagram: &'a [u8], key: Option<&AuthKey>) -> Result<Message<'a>, WireError> {
    let framed = frame(datagram)?;
    if let Some(key) = key {
        framed.verify(key)?;
    }
    framed.message()
}

/// Appends one attribute. Values longer than 65535 bytes are not representable; callers keep
/// values small (a record is tens of bytes).
pub fn put_attr(out: &mut Vec<u8>, ty: u16, value: &[u8]) {
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&(value.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(&value[..value.len().min(u16::MAX as usize)]);
}

/// Appends an attribute whose value is written by `write` (for nesting record attributes).
pub fn put_nested(out: &mut Vec<u8>, ty: u16, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    write(out);
    let len = out.len() - start - ATTR_HEADER_LEN;
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends a big-endian u32 attribute.
pub fn put_u32(out: &mut Vec<u8>, ty: u16, value: u32) {
    put_attr(out, ty, &value.to_be_bytes());
}

/// Iterates over the attributes in `bytes`, yielding `(type, value)`; a truncated attribute
/// yields one error and ends the iteration.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Iterates over `bytes`, which should hold whole attributes.
    pub fn new(bytes: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: bytes }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = (|| {
            let ty = be16(self.rest, 0, "attribute type")?;
            let len = be16(self.rest, 2, "attribute length")? as usize;
            let have = self.rest.len() - ATTR_HEADER_LEN;
            let Some(value) = self.rest.get(ATTR_HEADER_LEN..ATTR_HEADER_LEN + len) else {
                return Err(WireError::Truncated {
                    field: "attribute value",
                    need: len,
                    have,
                });
            };
            Ok((ty, value, ATTR_HEADER_LEN + len))
        })();
        match result {
            Ok((ty, value, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok((ty, value)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Reads a fixed-size attribute value, naming the field on a size mismatch.
pub fn fixed<const N: usize>(
    field: &'static str,
    ty: u16,
    value: &[u8],
) -> Result<[u8; N], WireError> {
    value.try_into().map_err(|_| WireError::AttrLength {
        field,
        ty,
        len: value.len(),
        expected: N,
    })
}

/// Reads a big-endian u32 attribute value.
pub fn get_u32(field: &'static str, ty: u16, value: &[u8]) -> Result<u32, WireError> {
    fixed::<4>(field, ty, value).map(u32::from_be_bytes)
}

/// Reads a big-endian u16 attribute value.
pub fn get_u16(field: &'static str, ty: u16, value: &[u8]) -> Result<u16, WireError> {
    fixed::<2>(field, ty, value).map(u16::from_be_bytes)
}

/// Reads a one-byte attribute value.
pub fn get_u8(field: &'static str, ty: u16, value: &[u8]) -> Result<u8, WireError> {
    fixed::<1>(field, ty, value).map(|b| b[0])
}

/// Reads an ACK value: (epoch of the acked stream, next expected sequence).
pub fn get_ack(value: &[u8]) -> Result<(u32, u32), WireError> {
    let b = fixed::<8>("ack", attr::ACK, value)?;
    Ok((
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

/// Reads a NACK value: (first, last) missing sequence numbers, inclusive.
pub fn get_nack(value: &[u8]) -> Result<(u32, u32), WireError> {
    let b = fixed::<8>("nack", attr::NACK, value)?;
    Ok((
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

/// Appends a pair of u32 values as one attribute (ACK and NACK).
pub fn put_pair(out: &mut Vec<u8>, ty: u16, a: u32, b: u32) {
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(&a.to_be_bytes());
    v[4..].copy_from_slice(&b.to_be_bytes());
    put_attr(out, ty, &v);
}

/// Appends a SESSION attribute: the sender's nonce and the receiver's nonce it echoes.
pub fn put_session(out: &mut Vec<u8>, own: &Nonce, echo: &Nonce) {
    let mut v = [0u8; 2 * NONCE_LEN];
    v[..NONCE_LEN].copy_from_slice(own);
    v[NONCE_LEN..].copy_from_slice(echo);
    put_attr(out, attr::SESSION, &v);
}

/// Reads a SESSION value: (sender nonce, echoed nonce). A zero sender nonce is invalid.
pub fn get_session(value: &[u8]) -> Result<(Nonce, Nonce), WireError> {
    let b = fixed::<{ 2 * NONCE_LEN }>("session", attr::SESSION, value)?;
    let (mut own, mut echo) = (NO_NONCE, NO_NONCE);
    own.copy_from_slice(&b[..NONCE_LEN]);
    echo.copy_from_slice(&b[NONCE_LEN..]);
    if own == NO_NONCE {
        return Err(WireError::Invalid {
            field: "session nonce",
            value: 0,
        });
    }
    Ok((own, echo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let mut out = Vec::new();
        start(&mut out, MessageType::Data, FLAG_RESET, 7, 99, 12345);
        put_u32(&mut out, 200, 1);
        finish(&mut out, None);
        let msg = decode(&out, None).unwrap();
        assert_eq!(msg.header.kind, MessageType::Data);
        assert_eq!(msg.header.flags, FLAG_RESET);
        assert_eq!(msg.header.length as usize, out.len());
        assert_eq!(
            (msg.header.node_id, msg.header.epoch, msg.header.seq),
            (7, 99, 12345)
        );
        assert_eq!(Attrs::new(msg.body).count(), 1);
    }

    #[test]
    fn errors_name_the_field() {
        let mut out = Vec::new();
        start(&mut out, MessageType::Data, 0, 1, 1, 1);
        out.extend_from_slice(&[0, 1, 0, 9, 1]);
        finish(&mut out, None);
        assert_eq!(
            decode(&out, None),
            Err(WireError::Truncated {
                field: "attribute value",
                need: 9,
                have: 1
            })
        );
        assert_eq!(
            decode(&out[..5], None).unwrap_err().to_string(),
            "truncated header: needs 20 bytes, 5 left"
        );
    }
}
