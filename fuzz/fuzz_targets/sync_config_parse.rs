//! tandem.toml `[sync]` and conntrackd.conf text: the replication parsers never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tandem_config::fuzzing::fuzz_sync(data));
