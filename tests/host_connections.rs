//! The process-wide budget of connections per host (a test binary of its own: the settings are
//! global to the process).

mod support;

use std::time::Duration;

use hypersdk::Client;
use serde_json::json;
use support::server::{Faults, TestServer, pattern};
use support::{opts, peer_runtime};

#[test]
fn many_files_share_one_budget_of_connections_per_host() {
    let rt = peer_runtime();
    let server = rt.block_on(TestServer::start());
    let files = ["a.bin", "b.bin", "c.bin", "d.bin"];
    for (i, f) in files.iter().enumerate() {
        server.put(f, pattern(2 << 20, i as u64));
    }
    // Slow answers, so the parts of the four files overlap.
    server.set_faults(Faults {
        bytes_per_sec: 1 << 20,
        ..Default::default()
    });
    let e = hypersdk::configure(r#"{"max_connections_per_host": 0}"#).unwrap_err();
    assert!(e.to_string().contains("max_connections_per_host"), "{e}");
    hypersdk::configure(r#"{"max_connections_per_host": 3}"#).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let client = Client::new("http", "{}").unwrap();
    // Each file alone would run 8 parts of 256 KiB at once: 32 together.
    let o = opts(
        dir.path(),
        json!({"parts_in_flight": 8, "max_parts_in_flight": 8}),
    );
    let exports: Vec<_> = files
        .iter()
        .map(|f| client.start_export(&server.url(f), &o, None).unwrap())
        .collect();
    for (x, f) in exports.iter().zip(files) {
        let r = x.wait(Some(Duration::from_secs(120))).unwrap().unwrap();
        assert_eq!(r.status, "done", "{f}: {}", r.to_json());
    }
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            std::fs::read(dir.path().join(f)).unwrap(),
            pattern(2 << 20, i as u64)
        );
    }
    let peak = server.peak_ranged();
    assert!(
        peak <= 3,
        "{peak} ranged requests at once to one host, budget 3"
    );
    assert!(
        peak >= 2,
        "the parts never overlapped ({peak}): the test shows nothing"
    );
}
