//! vSphere against vcsim (tests/peers/vcsim): honest byte totals when the exported disks are much
//! smaller than their capacity (streamOptimized), the lease giving no size and NFC no length.
#![cfg(feature = "vsphere")]

mod support;

use hypersdk::{Client, Phase};
use serde_json::json;
use support::vcsim::Peer;
use support::wait_long as wait;
use support::{Recorder, opts};

/// The estimate the flow starts from for a disk of `capacity` bytes: the largest streamOptimized
/// VMDK it can make (flow.rs).
fn bound(capacity: u64) -> u64 {
    capacity + capacity / 64 + (1 << 20)
}

/// The total starts from the disks' capacity (the largest streamOptimized file it can make) and
/// is corrected downward only, once per disk, to the real bytes; no event passes 100 % or has
/// bytes_done go back; the result's sizes are the files on disk, and so is the last total.
#[test]
fn totals_start_from_capacity_and_come_down_once_per_disk_to_the_real_bytes() {
    const CAPACITY: u64 = 256 << 20;
    // Paced so the download is seen in several events.
    // A short lease: keep-alives (HttpNfcLeaseProgress) during the download.
    let peer = Peer::start(&[
        "-capacity-mib",
        "256",
        "-nfc-rate",
        "1500000",
        "-lease-timeout",
        "4",
    ]);
    let real = check_totals(&peer, Some(2 * bound(CAPACITY)));
    assert!(
        real < CAPACITY / 10,
        "the fixture is much smaller than capacity: {real}"
    );
}

/// A streamOptimized disk of incompressible data is a little larger than its capacity (deflate
/// cannot shrink a grain, and each has its marker and sector padding): the total still only
/// comes down, and the percent never goes back.
#[test]
fn a_disk_a_little_larger_than_its_capacity_never_makes_the_total_go_up() {
    let peer = Peer::start(&[
        "-capacity-percent",
        "99.3",
        "-nfc-rate",
        "1500000",
        "-lease-timeout",
        "4",
    ]);
    check_totals(&peer, None);
}

/// Exports DC0_H0_VM0 one disk at a time and checks the totals; returns the real bytes.
fn check_totals(peer: &Peer, first_total: Option<u64>) -> u64 {
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let r = wait(
        &client
            .start_export(
                "DC0_H0_VM0",
                // One disk at a time: each disk's correction is its own step.
                &opts(out.path(), json!({"parallel_disks": 1})),
                Some(rec.callback()),
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    rec.check(); // bytes_done never decreases, never above the total, one terminal call

    let on_disk: Vec<u64> = r
        .files
        .iter()
        .map(|f| std::fs::metadata(&f.path).unwrap().len())
        .collect();
    let sizes: Vec<u64> = r.files.iter().map(|f| f.size).collect();
    assert_eq!(sizes, on_disk, "the result's sizes are the real bytes");
    let real: u64 = on_disk.iter().sum();
    assert_eq!(r.bytes_total, real, "{}", r.to_json());

    let events = rec.events.lock().unwrap().clone();
    let downloading: Vec<_> = events
        .iter()
        .filter(|e| e.phase == Phase::Downloading)
        .collect();
    assert!(downloading.len() >= 3, "{} events", downloading.len());
    if let Some(t) = first_total {
        assert_eq!(
            downloading[0].bytes_total, t,
            "the total starts from capacity"
        );
    }
    let mut corrections = Vec::new();
    for w in events.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(b.bytes_done <= b.bytes_total, "past 100 %: {b:?}");
        if a.bytes_total != 0 && b.bytes_total != a.bytes_total {
            assert!(
                b.bytes_total < a.bytes_total,
                "the total went up: {} -> {}",
                a.bytes_total,
                b.bytes_total
            );
            corrections.push(a.bytes_total - b.bytes_total);
        }
        // The percent never goes back.
        if a.bytes_total > 0 && b.bytes_total > 0 {
            let (pa, pb) = (
                a.bytes_done as f64 / a.bytes_total as f64,
                b.bytes_done as f64 / b.bytes_total as f64,
            );
            assert!(pb >= pa, "percent went back: {a:?} -> {b:?}");
        }
    }
    assert!(
        !corrections.is_empty() && corrections.len() <= 2,
        "one downward correction per disk: {corrections:?}"
    );
    let last = events.last().unwrap();
    assert_eq!((last.bytes_done, last.bytes_total), (real, real));
    // The lease heard percents that never went back and never passed 100.
    let pct: Vec<i64> = serde_json::from_value(peer.stats()["progress_percent"].clone()).unwrap();
    assert!(pct.len() >= 2, "keep-alives during the download: {pct:?}");
    assert!(pct.windows(2).all(|w| w[0] <= w[1]), "{pct:?}");
    assert!(pct.iter().all(|p| *p <= 100), "{pct:?}");
    real
}
