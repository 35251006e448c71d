//! Control-socket request lines: parsing and the access check never panic, and a line that
//! parses to a changing command always needs root.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_control::fuzzing::fuzz_line(data));
