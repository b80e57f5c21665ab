//! Lines a child process (PowerShell) writes, with its run's secrets: JSON records (Hyper-V's
//! error records, host paths), text lines redacted. Input: secrets, one per line, up to an empty
//! line, then the lines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (head, lines) = text.split_once("\n\n").unwrap_or(("", text));
    let secrets: Vec<String> = head.lines().map(str::to_string).collect();
    for line in lines.split('\n') {
        hypersdk::fuzz_api::process_line(line, &secrets);
    }
});
