//! VRRP advertisement codec: version 2 (RFC 3768) and version 3 (RFC 5798), IPv4 and IPv6.
//!
//! Decoding never panics: every read is checked against what is left, and every error names
//! the field and the value so an operator can act on a log line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum;

/// The only VRRP packet type (RFC 5798 5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Length of the fixed header common to v2 and v3.
pub const HEADER_LEN: usize = 8;
/// Length of the v2 authentication data trailer.
pub const V2_AUTH_LEN: usize = 8;
/// TTL / hop limit every VRRP packet must carry (RFC 5798 5.1.1.3).
pub const REQUIRED_TTL: u8 = 255;

/// Protocol version on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, whole-second intervals, optional simple password.
    V2,
    /// RFC 5798: IPv4 and IPv6, centisecond intervals, pseudo-header checksum.
    V3,
}

impl Version {
    /// The 4-bit version number.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// VRRPv2 authentication (RFC 3768 5.3.6). Version 3 has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0.
    None,
    /// Type 1: a clear-text password, zero padded to 8 bytes (longer ones are truncated).
    Password([u8; 8]),
    /// Type 2 (IP AH) or anything else: kept so it can be reported.
    Other(u8),
}

impl Auth {
    /// A simple password as keepalived treats it: truncated to 8 bytes, zero padded.
    pub fn password(text: &[u8]) -> Auth {
        let mut data = [0u8; 8];
        let n = text.len().min(8);
        data[..n].copy_from_slice(&text[..n]);
        Auth::Password(data)
    }

    fn type_number(self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Password(_) => 1,
            Auth::Other(n) => n,
        }
    }
}

/// Why a received packet was dropped. Each variant names the field and the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the header (or the declared addresses) need.
    #[error("packet too short: {length} bytes, need at least {minimum}")]
    TooShort {
        /// Bytes received.
        length: usize,
        /// Bytes the fields require.
        minimum: usize,
    },
    /// Version field is not 2 or 3, or v2 arrived over IPv6.
    #[error("unsupported version {found}{}", if *.ipv6 { " over IPv6" } else { "" })]
    Version {
        /// Version nibble received.
        found: u8,
        /// Whether it came over IPv6 (where only v3 exists).
        ipv6: bool,
    },
    /// Valid version, but not the one this instance is configured for.
    #[error("version {found} advert for a version {expected} instance")]
    VersionMismatch {
        /// Configured version.
        expected: u8,
        /// Version received.
        found: u8,
    },
    /// Type field is not ADVERTISEMENT.
    #[error("type field is {found}, expected 1 (advertisement)")]
    Type {
        /// Type nibble received.
        found: u8,
    },
    /// TTL or hop limit was not 255: the packet crossed a router or was forged off-link.
    #[error("TTL/hop limit {found}, expected 255")]
    Ttl {
        /// TTL received.
        found: u8,
    },
    /// Checksum field does not match the packet's contents.
    #[error("bad checksum: carried {carried:#06x}, computed {computed:#06x}")]
    Checksum {
        /// Value in the packet.
        carried: u16,
        /// Value the contents give.
        computed: u16,
    },
    /// The address count disagrees with the packet length.
    #[error("address count {declared} but the packet has room for {room_for}")]
    AddressCount {
        /// Count field.
        declared: u8,
        /// Addresses that fit the received length.
        room_for: usize,
    },
    /// v2 authentication type differs from the configuration.
    #[error("authentication type {found}, expected {expected}")]
    AuthType {
        /// Configured type.
        expected: u8,
        /// Type received.
        found: u8,
    },
    /// v2 simple password differs from the configuration.
    #[error("authentication password mismatch")]
    AuthPassword,
    /// v2 advertisement interval differs from the configuration (RFC 3768 7.1 says drop).
    #[error("advert interval {found_s}s, configured {expected_s}s")]
    Interval {
        /// Configured interval in seconds.
        expected_s: u16,
        /// Interval received in seconds.
        found_s: u16,
    },
    /// v3 advert interval of zero, which would make every timer fire at once.
    #[error("advert interval 0")]
    ZeroInterval,
    /// Unicast advert from an address that is not a configured peer (`vrrp_check_unicast_src`).
    #[error("source {source_address} is not a configured unicast peer")]
    UnicastSource {
        /// Source address of the packet.
        source_address: IpAddr,
    },
    /// This router owns the addresses (priority 255): RFC 5798 7.1 has it discard every
    /// advert for its VRID, so nobody can talk it out of its addresses.
    #[error(
        "advert with priority {priority} for a VRID this router owns (priority 255): discarded"
    )]
    Owner {
        /// Priority the advert carried.
        priority: u8,
    },
}

impl DecodeError {
    /// Short stable name of the reason, used as a counter key and in statistics output.
    pub fn reason(&self) -> DropReason {
        match self {
            DecodeError::TooShort { .. } => DropReason::TooShort,
            DecodeError::Version { .. } | DecodeError::VersionMismatch { .. } => {
                DropReason::Version
            }
            DecodeError::Type { .. } => DropReason::Type,
            DecodeError::Ttl { .. } => DropReason::Ttl,
            DecodeError::Checksum { .. } => DropReason::Checksum,
            DecodeError::AddressCount { .. } => DropReason::AddressCount,
            DecodeError::AuthType { .. } | DecodeError::AuthPassword => DropReason::Auth,
            DecodeError::Interval { .. } | DecodeError::ZeroInterval => DropReason::Interval,
            DecodeError::UnicastSource { .. } => DropReason::UnicastSource,
            DecodeError::Owner { .. } => DropReason::Owner,
        }
    }
}

/// Counter keys for dropped packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// See [`DecodeError::TooShort`].
    TooShort,
    /// See [`DecodeError::Version`].
    Version,
    /// See [`DecodeError::Type`].
    Type,
    /// See [`DecodeError::Ttl`].
    Ttl,
    /// See [`DecodeError::Checksum`].
    Checksum,
    /// See [`DecodeError::AddressCount`].
    AddressCount,
    /// See [`DecodeError::AuthType`] and [`DecodeError::AuthPassword`].
    Auth,
    /// See [`DecodeError::Interval`].
    Interval,
    /// See [`DecodeError::UnicastSource`].
    UnicastSource,
    /// No instance with this VRID on the interface.
    UnknownVrid,
    /// See [`DecodeError::Owner`].
    Owner,
}

impl DropReason {
    /// All reasons, for printing statistics in a fixed order.
    pub const ALL: [DropReason; 11] = [
        DropReason::TooShort,
        DropReason::Version,
        DropReason::Type,
        DropReason::Ttl,
        DropReason::Checksum,
        DropReason::AddressCount,
        DropReason::Auth,
        DropReason::Interval,
        DropReason::UnicastSource,
        DropReason::UnknownVrid,
        DropReason::Owner,
    ];

    /// Name used in statistics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::Version => "version",
            DropReason::Type => "type",
            DropReason::Ttl => "ttl",
            DropReason::Checksum => "checksum",
            DropReason::AddressCount => "address_count",
            DropReason::Auth => "auth",
            DropReason::Interval => "interval",
            DropReason::UnicastSource => "unicast_source",
            DropReason::UnknownVrid => "unknown_vrid",
            DropReason::Owner => "owner",
        }
    }
}

/// The first bytes of a packet, enough to find the instance it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    /// Version nibble as received.
    pub version: u8,
    /// Virtual router id.
    pub vrid: u8,
}

/// Reads version and VRID without validating anything else.
pub fn peek(bytes: &[u8]) -> Result<Peek, DecodeError> {
    match bytes {
        [vt, vrid, ..] => Ok(Peek {
            version: vt >> 4,
            vrid: *vrid,
        }),
        _ => Err(DecodeError::TooShort {
            length: bytes.len(),
            minimum: HEADER_LEN,
        }),
    }
}

/// One VRRP advertisement.
///
/// ```text
/// VRRPv2 (RFC 3768 5.1)                 VRRPv3 (RFC 5798 5.1)
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// v2: |  Auth Type  |  Adver Int    |          Checksum             |
/// v3: |(rsvd) |     Max Adver Int     |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 IPv4 (4 bytes) or IPv6 (16 bytes) addresses    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// v2 only: |          Authentication Data (8 bytes)               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// Protocol version.
    pub version: Version,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// Sender's priority; 0 means "I am leaving, take over now", 255 "I own the addresses".
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2 intervals are whole seconds × 100).
    pub interval_cs: u16,
    /// The virtual addresses, all of the packet's family.
    pub addresses: Vec<IpAddr>,
    /// v2 authentication; always `Auth::None` for v3.
    pub auth: Auth,
}

impl Advertisement {
    /// Encodes for sending from `src` to `dst` (the v3 checksum covers both).
    ///
    /// Addresses of the other family than `src` are skipped; at most 255 are written.
    pub fn encode(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let addresses: Vec<&IpAddr> = self
            .addresses
            .iter()
            .filter(|a| a.is_ipv4() == src.is_ipv4())
            .take(255)
            .collect();
        let mut out = Vec::with_capacity(HEADER_LEN + addresses.len() * 16 + V2_AUTH_LEN);
        out.push((self.version.number() << 4) | TYPE_ADVERTISEMENT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(addresses.len() as u8);
        match self.version {
            Version::V2 => {
                out.push(self.auth.type_number());
                out.push((self.interval_cs / 100).clamp(1, 255) as u8);
            }
            Version::V3 => {
                let interval = self.interval_cs.min(0x0fff);
                out.extend_from_slice(&interval.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0]);
        for address in addresses {
            match address {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        if self.version == Version::V2 {
            match self.auth {
                Auth::Password(data) => out.extend_from_slice(&data),
                _ => out.extend_from_slice(&[0; V2_AUTH_LEN]),
            }
        }
        let sum = match self.version {
            Version::V2 => checksum::plain(&out),
            Version::V3 => checksum::with_pseudo_header(src, dst, &out),
        };
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        out
    }

    /// Decodes and checks structure and checksum of a packet received from `src` to `dst`.
    ///
    /// Checks that need the receiving instance's settings (TTL, version, auth, v2 interval) are
    /// in [`Expected::check`].
    pub fn decode(bytes: &[u8], src: IpAddr, dst: IpAddr) -> Result<Self, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort {
                length: bytes.len(),
                minimum: HEADER_LEN,
            });
        }
        let ipv6 = src.is_ipv6();
        let version = match (bytes[0] >> 4, ipv6) {
            (2, false) => Version::V2,
            (3, _) => Version::V3,
            (found, _) => return Err(DecodeError::Version { found, ipv6 }),
        };
        let kind = bytes[0] & 0x0f;
        if kind != TYPE_ADVERTISEMENT {
            return Err(DecodeError::Type { found: kind });
        }
        let declared = bytes[3];
        let address_len = if ipv6 { 16 } else { 4 };
        let trailer = if version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        let minimum = HEADER_LEN + usize::from(declared) * address_len + trailer;
        let room_for = bytes.len().saturating_sub(HEADER_LEN + trailer) / address_len;
        if bytes.len() < minimum {
            if bytes.len() < HEADER_LEN + trailer {
                return Err(DecodeError::TooShort {
                    length: bytes.len(),
                    minimum,
                });
            }
            return Err(DecodeError::AddressCount { declared, room_for });
        }
        if bytes.len() != minimum {
            return Err(DecodeError::AddressCount { declared, room_for });
        }

        let carried = u16::from_be_bytes([bytes[6], bytes[7]]);
        let mut zeroed = bytes.to_vec();
        zeroed[6] = 0;
        zeroed[7] = 0;
        let computed = match version {
            Version::V2 => checksum::plain(&zeroed),
            Version::V3 => checksum::with_pseudo_header(src, dst, &zeroed),
        };
        if carried != computed {
            return Err(DecodeError::Checksum { carried, computed });
        }

        let (auth, interval_cs) = match version {
            Version::V2 => {
                let auth_data = &bytes[minimum - V2_AUTH_LEN..minimum];
                let auth = match bytes[4] {
                    0 => Auth::None,
                    1 => {
                        let mut data = [0u8; 8];
                        data.copy_from_slice(auth_data);
                        Auth::Password(data)
                    }
                    other => Auth::Other(other),
                };
                if bytes[5] == 0 {
                    return Err(DecodeError::ZeroInterval);
                }
                (auth, u16::from(bytes[5]) * 100)
            }
            Version::V3 => {
                let interval = u16::from_be_bytes([bytes[4], bytes[5]]) & 0x0fff;
                if interval == 0 {
                    return Err(DecodeError::ZeroInterval);
                }
                (Auth::None, interval)
            }
        };

        let addresses = bytes[HEADER_LEN..HEADER_LEN + usize::from(declared) * address_len]
            .chunks_exact(address_len)
            .map(|chunk| match <[u8; 16]>::try_from(chunk) {
                Ok(octets) => IpAddr::V6(Ipv6Addr::from(octets)),
                Err(_) => IpAddr::V4(Ipv4Addr::new(chunk[0], chunk[1], chunk[2], chunk[3])),
            })
            .collect();

        Ok(Advertisement {
            version,
            vrid: bytes[1],
            priority: bytes[2],
            interval_cs,
            addresses,
            auth,
        })
    }
}

/// What an instance expects of the packets it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Configured version.
    pub version: Version,
    /// Configured v2 authentication.
    pub auth: Auth,
    /// Configured interval in centiseconds (checked for v2 only: v3 learns the master's).
    pub interval_cs: u16,
}

impl Expected {
    /// The per-instance checks of RFC 3768 7.1 / RFC 5798 7.1 that the codec cannot do alone.
    pub fn check(&self, advert: &Advertisement, ttl: u8) -> Result<(), DecodeError> {
        if ttl != REQUIRED_TTL {
            return Err(DecodeError::Ttl { found: ttl });
        }
        if advert.version != self.version {
            return Err(DecodeError::VersionMismatch {
                expected: self.version.number(),
                found: advert.version.number(),
            });
        }
        if self.version == Version::V2 {
            let expected = self.auth.type_number();
            let found = advert.auth.type_number();
            if expected != found {
                return Err(DecodeError::AuthType { expected, found });
            }
            if let (Auth::Password(want), Auth::Password(got)) = (self.auth, advert.auth) {
                if want != got {
                    return Err(DecodeError::AuthPassword);
                }
            }
            let expected_s = self.interval_cs / 100;
            let found_s = advert.interval_cs / 100;
            if expected_s != found_s {
                return Err(DecodeError::Interval {
                    expected_s,
                    found_s,
                });
            }
        }
        Ok(())
    }
}

/// The check the fuzzer runs on arbitrary bytes, shared with the corpus replay test: the
/// first byte picks the family, decoding the rest must not panic, and whatever decodes must
/// survive a re-encode unchanged.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (src, dst): (IpAddr, IpAddr) = if selector & 1 == 1 {
        (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12).into(),
        )
    } else {
        (
            Ipv4Addr::new(10, 0, 0, 1).into(),
            Ipv4Addr::new(224, 0, 0, 18).into(),
        )
    };
    if let Ok(advert) = Advertisement::decode(rest, src, dst) {
        let again = advert.encode(src, dst);
        assert_eq!(Advertisement::decode(&again, src, dst), Ok(advert));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sample_v2() -> Advertisement {
        Advertisement {
            version: Version::V2,
            vrid: 51,
            priority: 150,
            interval_cs: 100,
            addresses: vec![v4("10.0.0.100"), v4("10.0.0.101")],
            auth: Auth::password(b"1111"),
        }
    }

    #[test]
    fn v2_layout_matches_rfc3768() {
        let bytes = sample_v2().encode(v4("10.0.0.1"), v4("224.0.0.18"));
        assert_eq!(bytes.len(), 8 + 2 * 4 + 8);
        assert_eq!(&bytes[..6], &[0x21, 51, 150, 2, 1, 1]);
        assert_eq!(&bytes[8..12], &[10, 0, 0, 100]);
        assert_eq!(&bytes[16..24], b"1111\0\0\0\0");
        assert_eq!(checksum::plain(&bytes), 0);
    }

    #[test]
    fn v3_ipv6_checksum_covers_pseudo_header() {
        let advert = Advertisement {
            version: Version::V3,
            vrid: 7,
            priority: 100,
            interval_cs: 10,
            addresses: vec!["fd00::100".parse().unwrap()],
            auth: Auth::None,
        };
        let src = "fe80::1".parse().unwrap();
        let dst = "ff02::12".parse().unwrap();
        let bytes = advert.encode(src, dst);
        assert_eq!(&bytes[..6], &[0x31, 7, 100, 1, 0, 10]);
        assert_eq!(Advertisement::decode(&bytes, src, dst), Ok(advert));
        let other_src = "fe80::2".parse().unwrap();
        assert!(matches!(
            Advertisement::decode(&bytes, other_src, dst),
            Err(DecodeError::Checksum { .. })
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let src = v4("10.0.0.1");
        let dst = v4("224.0.0.18");
        let mut bytes = sample_v2().encode(src, dst);
        bytes[3] = 3;
        assert_eq!(
            Advertisement::decode(&bytes, src, dst),
            Err(DecodeError::AddressCount {
                declared: 3,
                room_for: 2
            })
        );
        assert_eq!(
            Advertisement::decode(&bytes[..5], src, dst),
            Err(DecodeError::TooShort {
                length: 5,
                minimum: 8
            })
        );
        let mut bytes = sample_v2().encode(src, dst);
        bytes[0] = 0x41;
        assert_eq!(
            Advertisement::decode(&bytes, src, dst),
            Err(DecodeError::Version {
                found: 4,
                ipv6: false
            })
        );
        bytes[0] = 0x22;
        assert_eq!(
            Advertisement::decode(&bytes, src, dst),
            Err(DecodeError::Type { found: 2 })
        );
        let mut bytes = sample_v2().encode(src, dst);
        bytes[9] ^= 1;
        assert!(matches!(
            Advertisement::decode(&bytes, src, dst),
            Err(DecodeError::Checksum { .. })
        ));
    }

    #[test]
    fn instance_checks() {
        let advert = sample_v2();
        let expected = Expected {
            version: Version::V2,
            auth: Auth::password(b"1111"),
            interval_cs: 100,
        };
        assert_eq!(expected.check(&advert, 255), Ok(()));
        assert_eq!(
            expected.check(&advert, 254),
            Err(DecodeError::Ttl { found: 254 })
        );
        let wrong_pass = Expected {
            auth: Auth::password(b"2222"),
            ..expected.clone()
        };
        assert_eq!(
            wrong_pass.check(&advert, 255),
            Err(DecodeError::AuthPassword)
        );
        let no_auth = Expected {
            auth: Auth::None,
            ..expected.clone()
        };
        assert_eq!(
            no_auth.check(&advert, 255),
            Err(DecodeError::AuthType {
                expected: 0,
                found: 1
            })
        );
        let slower = Expected {
            interval_cs: 200,
            ..expected
        };
        assert_eq!(
            slower.check(&advert, 255),
            Err(DecodeError::Interval {
                expected_s: 2,
                found_s: 1
            })
        );
    }

    #[test]
    fn long_password_is_truncated_to_eight_bytes() {
        assert_eq!(Auth::password(b"0123456789"), Auth::Password(*b"01234567"));
    }
}
