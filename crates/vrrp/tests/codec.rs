//! Codec properties: encode/decode round-trips, and decoding arbitrary bytes never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use tandem_vrrp::{Advertisement, Auth, Version};

fn advert_v4() -> impl Strategy<Value = (Advertisement, IpAddr, IpAddr)> {
    (
        prop::bool::ANY,
        1u8..=255,
        0u8..=255,
        1u16..=255,
        prop::collection::vec(any::<[u8; 4]>(), 0..20),
        prop::option::of(any::<[u8; 8]>()),
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(v3, vrid, priority, secs, addrs, pass, src, dst)| {
            let version = if v3 { Version::V3 } else { Version::V2 };
            let advert = Advertisement {
                version,
                vrid,
                priority,
                interval_cs: if v3 { secs * 10 } else { secs * 100 },
                addresses: addrs
                    .into_iter()
                    .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                    .collect(),
                auth: match (v3, pass) {
                    (false, Some(p)) => Auth::Password(p),
                    _ => Auth::None,
                },
            };
            (advert, IpAddr::V4(src.into()), IpAddr::V4(dst.into()))
        })
}

fn advert_v6() -> impl Strategy<Value = (Advertisement, IpAddr, IpAddr)> {
    (
        1u8..=255,
        0u8..=255,
        1u16..=0x0fff,
        prop::collection::vec(any::<[u8; 16]>(), 0..10),
        any::<[u8; 16]>(),
    )
        .prop_map(|(vrid, priority, interval_cs, addrs, src)| {
            let advert = Advertisement {
                version: Version::V3,
                vrid,
                priority,
                interval_cs,
                addresses: addrs
                    .into_iter()
                    .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                    .collect(),
                auth: Auth::None,
            };
            let group: IpAddr = "ff02::12".parse().unwrap();
            (advert, IpAddr::V6(src.into()), group)
        })
}

proptest! {
    #[test]
    fn round_trip_v4((advert, src, dst) in advert_v4()) {
        let bytes = advert.encode(src, dst);
        prop_assert_eq!(Advertisement::decode(&bytes, src, dst), Ok(advert));
    }

    #[test]
    fn round_trip_v6((advert, src, dst) in advert_v6()) {
        let bytes = advert.encode(src, dst);
        prop_assert_eq!(Advertisement::decode(&bytes, src, dst), Ok(advert));
    }

    #[test]
    fn any_single_bit_flip_is_detected((advert, src, dst) in advert_v4(), bit in 0usize..64) {
        let mut bytes = advert.encode(src, dst);
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert_ne!(Advertisement::decode(&bytes, src, dst), Ok(advert));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), v6 in prop::bool::ANY) {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
        } else {
            ("10.0.0.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
        };
        let _ = Advertisement::decode(&bytes, src, dst);
    }
}

/// Inputs the fuzzer found or that exercise edges, replayed as ordinary tests.
#[test]
fn saved_fuzz_corpus_replays() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/vrrp_decode");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries.flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        tandem_vrrp::packet::fuzz_decode(&bytes);
        n += 1;
    }
    assert!(n > 0, "corpus directory {} is empty", dir.display());
}
