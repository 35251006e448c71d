//! A flow as the sync channel carries it: decoding never panics, and what decodes survives an
//! encode and a decode unchanged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_ctnetlink::fuzz_record(data));
