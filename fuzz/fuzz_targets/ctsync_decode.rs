//! The sync datagram decoder and the node behind it must never panic, whatever arrives on the
//! sync socket; a header that decodes must re-encode to the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_ctsync::fuzzing::fuzz_datagram(data));
