//! Azure's `Get Page Ranges` XML, read, checked against the blob's size and merged as the
//! export does (the first 8 bytes are the blob's size).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (size, xml) = data.split_at(8);
    let size = u64::from_le_bytes(size.try_into().unwrap_or_default());
    let _ = hypersdk::fuzz_api::page_list(xml, size);
});
