//! The VRRP decoder must never panic, and whatever it accepts must survive a re-encode unchanged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_vrrp::packet::fuzz_decode(data));
