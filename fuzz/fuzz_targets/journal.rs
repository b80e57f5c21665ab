//! A resume journal's bytes: accepted only when consistent, and a fixed point when written back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hypersdk::fuzz_api::journal(data));
