//! The Internet checksum (RFC 1071) and the pseudo-headers VRRPv3 puts under it.

use std::net::IpAddr;

/// IP protocol number assigned to VRRP.
pub const IPPROTO_VRRP: u8 = 112;

/// Running one's-complement sum, so a pseudo-header and a payload can be summed without copying.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checksum {
    sum: u32,
}

impl Checksum {
    /// Adds bytes; an odd final byte is padded with zero as RFC 1071 says.
    ///
    /// Only call with an odd length for the last chunk.
    pub fn add(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(2);
        for pair in &mut chunks {
            self.sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        if let [last] = chunks.remainder() {
            self.sum += u32::from(*last) << 8;
        }
        // Fold early so the u32 cannot overflow on any datagram size.
        self.sum = (self.sum & 0xffff) + (self.sum >> 16);
    }

    /// The folded, complemented 16-bit checksum.
    pub fn finish(self) -> u16 {
        let mut sum = self.sum;
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }
}

/// Checksum over `payload` preceded by the IPv4 or IPv6 pseudo-header (RFC 5798 5.2.8).
///
/// Mixed families (which no real packet has) get no pseudo-header.
pub fn with_pseudo_header(src: IpAddr, dst: IpAddr, payload: &[u8]) -> u16 {
    let mut sum = Checksum::default();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum.add(&s.octets());
            sum.add(&d.octets());
            sum.add(&[0, IPPROTO_VRRP]);
            sum.add(&(payload.len() as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            sum.add(&s.octets());
            sum.add(&d.octets());
            sum.add(&(payload.len() as u32).to_be_bytes());
            sum.add(&[0, 0, 0, IPPROTO_VRRP]);
        }
        _ => {}
    }
    sum.add(payload);
    sum.finish()
}

/// Checksum over `payload` alone, as VRRPv2 uses.
pub fn plain(payload: &[u8]) -> u16 {
    let mut sum = Checksum::default();
    sum.add(payload);
    sum.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: sum of these words is ddf2, checksum is its complement.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(plain(&bytes), !0xddf2);
    }

    #[test]
    fn data_with_its_checksum_sums_to_zero() {
        let mut bytes = vec![0x21, 0x05, 0x64, 0x01, 0x00, 0x01, 0, 0, 10, 0, 0, 1];
        let c = plain(&bytes);
        bytes[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(plain(&bytes), 0);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(plain(&[0x12]), plain(&[0x12, 0x00]));
    }
}
