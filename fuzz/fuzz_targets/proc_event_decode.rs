//! The process-event decoder must never panic, whatever the datagram.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tandem_sys::proc_events::decode(data);
});
