//! The VRRP decoder must never panic, and whatever it accepts must survive a re-encode unchanged.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use tandem_vrrp::Advertisement;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (src, dst): (IpAddr, IpAddr) = if selector & 1 == 1 {
        ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
    } else {
        ("10.0.0.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
    };
    if let Ok(advert) = Advertisement::decode(rest, src, dst) {
        let again = advert.encode(src, dst);
        assert_eq!(Advertisement::decode(&again, src, dst), Ok(advert));
    }
});
