//! API answers (EC2/S3 XML, vSphere SOAP, ARM/Google JSON) through each cloud's error reader and
//! the kit's one mapping, and the XML tree reader. Input: two bytes of status, the Retry-After
//! value up to the first newline, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_le_bytes([data[0], data[1]]) % 500;
    let rest = &data[2..];
    let (retry_after, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b""[..], rest),
    };
    hypersdk::fuzz_api::answer(status, &String::from_utf8_lossy(retry_after), body);
});
