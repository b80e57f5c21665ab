//! Options JSON and a source id as `start_export` parses them, for every provider. Input: the
//! first byte picks the provider, then the source id up to the first newline, then the JSON.
#![no_main]

use hypersdk::fuzz_api::{PROVIDERS, options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&p, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (source, json) = text.split_once('\n').unwrap_or(("", text));
    options(PROVIDERS[p as usize % PROVIDERS.len()], source, json);
});
