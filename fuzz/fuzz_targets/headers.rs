//! Header values: Content-Range, ETag with Last-Modified, Retry-After, x-goog-hash, checksum
//! texts. Input: the value, a newline, the second value (Last-Modified).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (value, other) = text.split_once('\n').unwrap_or((text, ""));
        hypersdk::fuzz_api::headers(value, other);
    }
});
