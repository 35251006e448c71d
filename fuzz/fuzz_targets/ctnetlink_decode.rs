//! Decoding arbitrary netlink bytes as ctnetlink never panics, and what decodes re-encodes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_ctnetlink::codec::fuzz_messages(data));
