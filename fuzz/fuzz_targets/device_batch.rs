//! Fuzz target: `carry_core::fuzzing::device_batch` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| carry_core::fuzzing::device_batch(data));
