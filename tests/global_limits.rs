//! Process-wide limits (a test binary of its own: the settings are global to the process).

mod support;

use std::time::Duration;

use hypersdk::{Client, Phase};
use serde_json::json;
use support::server::{Faults, TestServer, pattern};
use support::{Recorder, opts, peer_runtime};

#[test]
fn exports_beyond_the_limit_wait_in_queued() {
    let rt = peer_runtime();
    let server = rt.block_on(TestServer::start());
    server.put("a.bin", pattern(1 << 20, 1));
    server.put("b.bin", pattern(1 << 20, 2));
    server.set_faults(Faults {
        bytes_per_sec: 256 * 1024,
        ..Default::default()
    });
    hypersdk::configure(r#"{"max_concurrent_exports": 1}"#).unwrap();
    let e = hypersdk::configure(r#"{"max_concurrent_exports": 1, "typo": 2}"#).unwrap_err();
    assert!(e.to_string().contains("typo"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let client = Client::new("http", "{}").unwrap();
    let (ra, rb) = (Recorder::default(), Recorder::default());
    let o = opts(dir.path(), json!({}));
    let a = client
        .start_export(&server.url("a.bin"), &o, Some(ra.callback()))
        .unwrap();
    while a.progress().phase != Phase::Downloading {
        std::thread::sleep(Duration::from_millis(5));
    }
    let b = client
        .start_export(&server.url("b.bin"), &o, Some(rb.callback()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        b.progress().phase,
        Phase::Queued,
        "the second export must wait for a slot"
    );
    assert_eq!(a.progress().phase, Phase::Downloading);
    let r = b.wait(Some(Duration::from_secs(60))).unwrap().unwrap();
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        a.wait(Some(Duration::from_secs(60)))
            .unwrap()
            .unwrap()
            .status,
        "done"
    );
    ra.check();
    let phases = rb.check();
    assert_eq!(phases[0], Phase::Queued);

    // A queued export can be cancelled before it ever runs.
    let c = client
        .start_export(
            &server.url("a.bin"),
            &opts(dir.path(), json!({"overwrite": true})),
            None,
        )
        .unwrap();
    // c holds the one slot before d asks for it (two tasks spawned together may run in either
    // order).
    while c.progress().phase == Phase::Queued {
        std::thread::sleep(Duration::from_millis(5));
    }
    let d = client
        .start_export(
            &server.url("b.bin"),
            &opts(dir.path(), json!({"overwrite": true})),
            None,
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(d.progress().phase, Phase::Queued);
    d.cancel();
    let rd = d
        .wait(Some(Duration::from_secs(10)))
        .unwrap()
        .expect("a queued export cancels at once");
    assert_eq!(rd.status, "cancelled");
    assert_eq!(rd.error.as_ref().unwrap().phase, "queued");
    c.cancel();
    c.wait(Some(Duration::from_secs(10))).unwrap().unwrap();

    // Export::set_priority: a queued export raised above an earlier one gets the slot first;
    // one that has its slot is not queued and keeps it.
    let (df, dg) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let e = client
        .start_export(
            &server.url("a.bin"),
            &opts(dir.path(), json!({"overwrite": true})),
            None,
        )
        .unwrap();
    while e.progress().phase == Phase::Queued {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!e.set_priority(5), "a running export is not queued");
    let f = client
        .start_export(&server.url("b.bin"), &opts(df.path(), json!({})), None)
        .unwrap();
    let g = client
        .start_export(&server.url("a.bin"), &opts(dg.path(), json!({})), None)
        .unwrap();
    assert!(g.set_priority(3), "g waits: its priority changes");
    e.cancel();
    e.wait(Some(Duration::from_secs(10))).unwrap().unwrap();
    // g, the later one, has the one slot (paced: seconds) while f still waits.
    while g.progress().phase == Phase::Queued {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(f.progress().phase, Phase::Queued, "f was let in before g");
    assert!(!g.set_priority(-3));
    // A cancelled export waits for nothing, even while its ticket is still in the queue.
    f.cancel();
    assert!(!f.set_priority(7), "a cancelled export took a priority");
    for x in [&g, &f] {
        x.cancel();
        x.wait(Some(Duration::from_secs(10))).unwrap().unwrap();
    }
    hypersdk::configure("{}").unwrap();
}
