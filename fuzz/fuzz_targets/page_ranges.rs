//! Azure's `Get Page Ranges` XML, read through the official SDK's model as the export reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hypersdk::fuzz_api::page_list(data);
});
