//! Resume after a crash: a downloader process is killed (SIGKILL) half way; the next run fetches
//! only what the journal does not cover.

mod support;

use std::process::Command;
use std::time::Duration;

use hypersdk::Client;
use serde_json::json;
use support::server::{Faults, TestServer, pattern};
use support::{opts, peer_runtime};

#[test]
fn killed_download_resumes_with_only_missing_bytes() {
    let fetch = support::fetch_example();

    let rt = peer_runtime();
    let server = rt.block_on(TestServer::start());
    let size = 6 << 20;
    let data = pattern(size, 21);
    server.put("crash.vmdk", data.clone());
    server.set_faults(Faults {
        bytes_per_sec: 512 * 1024,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&fetch)
        .arg("--options")
        // Small fixed parts: each one's end is a journal sync point, so the journal grows in
        // steps the kill can land between (guided sizes would make 4 parts of the whole file).
        .arg(
            json!({"part_size": 262144, "max_part_size": 262144, "parts_in_flight": 4}).to_string(),
        )
        .arg(dir.path())
        .arg(server.url("crash.vmdk"))
        .spawn()
        .unwrap();
    // Kill once the journal records at least a third of the file.
    let journal = dir.path().join("crash.vmdk.hspart.journal");
    support::kill_when_journal_covers(&mut child, &journal, size as u64 / 3);
    assert!(
        !dir.path().join("crash.vmdk").exists(),
        "a killed download left a final file"
    );

    server.set_faults(Faults::default());
    server.reset_stats();
    let client = Client::new("http", "{}").unwrap();
    let r = client
        .start_export(
            &server.url("crash.vmdk"),
            &opts(dir.path(), json!({})),
            None,
        )
        .unwrap()
        .wait(Some(Duration::from_secs(60)))
        .unwrap()
        .unwrap();
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join("crash.vmdk")).unwrap(), data);
    let f = &r.files[0];
    assert!(
        f.resumed_bytes >= size as u64 / 3,
        "resumed only {}",
        f.resumed_bytes
    );
    assert_eq!(f.resumed_bytes + f.fetched_bytes, size as u64);
    assert_eq!(
        server.body_bytes(),
        f.fetched_bytes + 1,
        "only missing bytes (and the probe byte) fetched; requests: {:?}",
        server.requests()
    );
}
