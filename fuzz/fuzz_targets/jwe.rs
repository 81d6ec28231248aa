//! Fuzz target: `carry_core::fuzzing::jwe` must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| carry_core::fuzzing::jwe(data));
