//! keepalived.conf text: the parser never panics and its diagnostics render; includes stay in
//! a directory of fixed files.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_config::fuzzing::fuzz_keepalived(data));
