//! Fuzzes transmitq and receiveq processing from arbitrary guest memory and queue layouts.

#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
