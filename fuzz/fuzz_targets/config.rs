//! Client config JSON as `Client::new` parses and checks it (before any network call), for
//! every provider. Input: the first byte picks the provider, the rest is the JSON.
#![no_main]

use hypersdk::fuzz_api::{PROVIDERS, config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&p, rest)) = data.split_first() else {
        return;
    };
    if let Ok(json) = std::str::from_utf8(rest) {
        config(PROVIDERS[p as usize % PROVIDERS.len()], json);
    }
});
