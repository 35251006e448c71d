//! Netlink attributes (TLVs): a bounds-checked reader and an appending writer.
//!
//! ```text
//!  0               1               2               3
//! +---------------+---------------+---------------+---------------+
//! |         nla_len (u16, ne)     | nla_type (u16, ne; 0x8000 nest)|
//! +---------------+---------------+---------------+---------------+
//! |  value (nla_len - 4 bytes), then padding to a multiple of 4   |
//! +---------------------------------------------------------------+
//! ```

use crate::codec::DecodeError;

/// `NLA_F_NESTED`: set on nested attributes by the kernel; masked on read.
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
/// `NLA_F_NET_BYTEORDER`: masked on read.
const NLA_F_NET_BYTEORDER: u16 = 0x4000;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// Rounds up to the netlink alignment of 4 bytes.
pub(crate) fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// One attribute: its kind (flags masked) and its value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nla<'a> {
    pub kind: u16,
    pub value: &'a [u8],
}

/// Iterates the attributes of `buf`; `within` names the enclosing attribute for errors.
pub(crate) struct Nlas<'a> {
    buf: &'a [u8],
    within: &'static str,
}

pub(crate) fn nlas<'a>(buf: &'a [u8], within: &'static str) -> Nlas<'a> {
    Nlas { buf, within }
}

impl<'a> Iterator for Nlas<'a> {
    type Item = Result<Nla<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let Some(head) = self.buf.get(..4) else {
            let have = self.buf.len();
            self.buf = &[];
            return Some(Err(DecodeError::Truncated {
                what: self.within,
                need: 4,
                have,
            }));
        };
        let len = usize::from(u16::from_ne_bytes([head[0], head[1]]));
        let kind = u16::from_ne_bytes([head[2], head[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.buf.len() {
            let have = self.buf.len();
            self.buf = &[];
            return Some(Err(DecodeError::AttrLength {
                within: self.within,
                kind,
                declared: len,
                have,
            }));
        }
        let value = &self.buf[4..len];
        self.buf = self.buf.get(align(len)..).unwrap_or(&[]);
        Some(Ok(Nla { kind, value }))
    }
}

impl<'a> Nla<'a> {
    /// The value as exactly `N` bytes, or an error naming the attribute.
    pub fn array<const N: usize>(&self, name: &'static str) -> Result<[u8; N], DecodeError> {
        self.value.try_into().map_err(|_| DecodeError::ValueLength {
            attr: name,
            expected: N,
            found: self.value.len(),
        })
    }

    pub fn u8(&self, name: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(name)?[0])
    }

    pub fn be16(&self, name: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(name)?))
    }

    pub fn be32(&self, name: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(name)?))
    }
}

/// Appends attributes to a message buffer.
pub(crate) struct Writer<'a> {
    pub buf: &'a mut Vec<u8>,
}

impl Writer<'_> {
    pub fn bytes(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    pub fn u8(&mut self, kind: u16, v: u8) {
        self.bytes(kind, &[v]);
    }

    pub fn be16(&mut self, kind: u16, v: u16) {
        self.bytes(kind, &v.to_be_bytes());
    }

    pub fn be32(&mut self, kind: u16, v: u32) {
        self.bytes(kind, &v.to_be_bytes());
    }

    /// Writes a nested attribute whose content `f` appends.
    pub fn nest(&mut self, kind: u16, f: impl FnOnce(&mut Writer<'_>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        f(&mut Writer { buf: self.buf });
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        let padded = align(self.buf.len());
        self.buf.resize(padded, 0);
    }
}
