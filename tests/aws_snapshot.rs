//! The AWS snapshot method (EBS snapshots read through the EBS direct APIs) against moto with
//! its EBS stand-in patches (tests/peers/moto/ebs_stand_in.py): every test makes its own
//! volumes, so the per-volume settings (throttling, lying checksums, held snapshots) of one
//! never reach another.
#![cfg(feature = "aws")]

mod support;

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use hypersdk::{Client, ErrorKind, Phase};
use serde_json::{Value, json};
use support::ebs::{BLOCK, GIB, ebs, gets, raw, snaps_of, stats, volume};
use support::moto::moto;
use support::{Recorder, opts};

fn wait(e: &hypersdk::Export) -> hypersdk::ExportResult {
    e.wait(Some(Duration::from_secs(180)))
        .unwrap()
        .expect("export did not end within 180 s")
}

fn client() -> Client {
    Client::new("aws", &moto().config()).unwrap()
}

/// The image holds `data` at its start, zeros after, `size` bytes in all, and only the data
/// blocks take room on disk (the rest are holes). Reads only the data part.
fn check_image(path: &Path, data: &[u8], size: u64, data_blocks: usize) {
    let m = std::fs::metadata(path).unwrap();
    assert_eq!(m.len(), size, "{}", path.display());
    let mut f = std::fs::File::open(path).unwrap();
    let mut head = vec![0u8; data.len()];
    std::io::Read::read_exact(&mut f, &mut head).unwrap();
    assert!(head == data, "{} differs from the volume", path.display());
    let allocated = m.blocks() * 512;
    assert!(
        allocated <= ((data_blocks + 2) * BLOCK) as u64,
        "{}: {allocated} bytes allocated for {data_blocks} blocks of data: holes not kept",
        path.display()
    );
}

#[test]
fn two_volume_instance_with_an_encrypted_volume_through_snapshots() {
    let m = moto();
    let dir = tempfile::tempdir().unwrap();
    let inst = ebs("POST", "/ebs/instance");
    let (id, root) = (
        inst["instance"].as_str().unwrap().to_string(),
        inst["root"].as_str().unwrap().to_string(),
    );
    let root_size = inst["root_gib"].as_u64().unwrap() * GIB;
    let (f1, d1) = raw(dir.path(), "root.raw", 6 * BLOCK, &[(0, 1), (5, 2)]);
    let (f2, d2) = raw(dir.path(), "data.raw", 3 * BLOCK, &[(2, 3)]);
    ebs(
        "POST",
        &format!("/ebs/volume?volume={root}&path={}", f1.display()),
    );
    let data = ebs(
        "POST",
        &format!(
            "/ebs/volume?size=1&encrypted=1&attach={id}&device=/dev/sdf&path={}",
            f2.display()
        ),
    )["volume"]
        .as_str()
        .unwrap()
        .to_string();
    let out = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    // The snapshots stay pending for one poll: 200 ms in which the progress message shows.
    let o = opts(out.path(), json!({"poll_interval_ms": 200}));
    let e = client()
        .start_export(&id, &o, Some(rec.callback()))
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(r.provider["method"], "snapshot");
    // Boot volume first.
    let names: Vec<&str> = r.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        vec![format!("{root}.img"), format!("{data}.img")],
        "{}",
        r.to_json()
    );
    check_image(&out.path().join(format!("{root}.img")), &d1, root_size, 2);
    check_image(&out.path().join(format!("{data}.img")), &d2, GIB, 1);
    let snaps = r.provider["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[1]["encrypted"], true, "{}", r.to_json());
    // Only listed blocks were fetched, and every snapshot made is gone at the peer.
    for s in snaps {
        let sid = s["snapshot_id"].as_str().unwrap();
        let want = if s["volume_id"] == root.as_str() {
            2
        } else {
            1
        };
        assert_eq!(gets(sid), want, "block reads of {sid}");
        assert!(
            stats()["deleted"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d == sid),
            "snapshot {sid} was not deleted"
        );
    }
    assert!(rec.check().contains(&Phase::WaitingForCloud));
    let said: Vec<String> = rec
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.message.clone())
        .collect();
    assert!(
        said.iter().any(|s| s.contains('%')),
        "snapshot progress never shown: {said:?}"
    );
    let _ = m;
}

#[test]
fn a_sparse_volume_is_paged_and_only_its_listed_blocks_are_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = [(0, 4), (3, 5), (4, 6), (9, 7), (20, 8)];
    let (f, d) = raw(dir.path(), "sparse.raw", 21 * BLOCK, &blocks);
    // Two blocks a page: three pages of ListSnapshotBlocks.
    let vol = volume(&f, "&page=2");
    let out = tempfile::tempdir().unwrap();
    let o = opts(
        out.path(),
        json!({"poll_interval_ms": 20, "keep_snapshots": true}),
    );
    let r = wait(&client().start_export(&vol, &o, None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    check_image(
        &out.path().join(format!("{vol}.img")),
        &d,
        GIB,
        blocks.len(),
    );
    let snap = r.provider["snapshots"][0]["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(gets(&snap), blocks.len() as u64);
    assert_eq!(r.bytes_fetched, (blocks.len() * BLOCK) as u64);
    // keep_snapshots: the snapshot stays.
    assert_eq!(snaps_of(&vol)[0]["deleted"], false);
    assert_eq!(r.provider["snapshots"][0]["kept"], true);
    // A later run of the same volume into the same folder takes a new snapshot: the kept one
    // is the user's, neither read again (stale blocks) nor deleted as a killed run's leftover.
    let again = opts(
        out.path(),
        json!({"poll_interval_ms": 20, "overwrite": true}),
    );
    let r2 = wait(&client().start_export(&vol, &again, None).unwrap());
    assert_eq!(r2.status, "done", "{}", r2.to_json());
    assert_ne!(
        r2.provider["snapshots"][0]["snapshot_id"].as_str(),
        Some(snap.as_str()),
        "the kept snapshot was adopted: {}",
        r2.to_json()
    );
    assert!(
        snaps_of(&vol)
            .iter()
            .any(|s| s["id"] == snap.as_str() && s["deleted"] == false),
        "the kept snapshot was deleted: {:?}",
        snaps_of(&vol)
    );

    // A snapshot given as the source is read into <snapshot>.img and never deleted.
    let out = tempfile::tempdir().unwrap();
    let o = opts(out.path(), json!({"poll_interval_ms": 20}));
    let r = wait(&client().start_export(&snap, &o, None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    check_image(
        &out.path().join(format!("{snap}.img")),
        &d,
        GIB,
        blocks.len(),
    );
    assert_eq!(r.provider["snapshots"][0]["made_by_export"], false);
    assert!(r.cleanup.is_empty(), "{}", r.to_json());
    assert_eq!(snaps_of(&vol)[0]["deleted"], false);
}

#[test]
fn a_lying_checksum_is_fetched_again_and_a_persistent_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (f, d) = raw(
        dir.path(),
        "lie.raw",
        3 * BLOCK,
        &[(0, 9), (1, 10), (2, 11)],
    );
    // Block 1's checksum is wrong once: fetched again, the export succeeds.
    let vol = volume(&f, "&lie=1:1");
    let out = tempfile::tempdir().unwrap();
    let o = opts(out.path(), json!({"poll_interval_ms": 20}));
    let r = wait(&client().start_export(&vol, &o, None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    check_image(&out.path().join(format!("{vol}.img")), &d, GIB, 3);
    let snap = r.provider["snapshots"][0]["snapshot_id"].as_str().unwrap();
    assert_eq!(stats()["block_gets"][format!("{snap}:1")], 2);

    // Always wrong: a verification error, no file, and the snapshot is deleted all the same.
    let vol = volume(&f, "&lie=1:-1");
    let out = tempfile::tempdir().unwrap();
    let o = opts(out.path(), json!({"poll_interval_ms": 20}));
    let r = wait(&client().start_export(&vol, &o, None).unwrap());
    assert_eq!(r.status, "failed", "{}", r.to_json());
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::Verification, "{}", r.to_json());
    assert!(err.message.contains("SHA-256"), "{}", err.message);
    assert!(!out.path().join(format!("{vol}.img")).exists());
    assert_eq!(snaps_of(&vol)[0]["deleted"], true, "{}", r.to_json());
}

#[test]
fn throttling_and_expired_block_tokens_are_ridden_out() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<(usize, u8)> = (0..8).map(|i| (i, 20 + i as u8)).collect();
    let (f, d) = raw(dir.path(), "busy.raw", 8 * BLOCK, &blocks);
    // The first 6 block reads are throttled; the first listing's tokens are refused.
    let vol = volume(&f, "&throttle=6&stale_tokens=1");
    let out = tempfile::tempdir().unwrap();
    let o = opts(out.path(), json!({"poll_interval_ms": 20}));
    let r = wait(&client().start_export(&vol, &o, None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    check_image(&out.path().join(format!("{vol}.img")), &d, GIB, 8);
    let s = &snaps_of(&vol)[0];
    assert_eq!(s["lists"], 2, "the blocks were not listed again: {s}");
    let snap = s["id"].as_str().unwrap();
    // 6 throttled answers, the refused tokens, then each block once.
    assert!(gets(snap) >= 8 + 6, "{}", gets(snap));
}

#[test]
fn cancel_while_the_snapshot_is_pending_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = raw(dir.path(), "held.raw", BLOCK, &[(0, 30)]);
    let vol = volume(&f, "&hold=1");
    let out = tempfile::tempdir().unwrap();
    let o = opts(out.path(), json!({"poll_interval_ms": 20}));
    let e = client().start_export(&vol, &o, None).unwrap();
    let t = Instant::now();
    while snaps_of(&vol).is_empty() || e.progress().phase != Phase::WaitingForCloud {
        assert!(t.elapsed() < Duration::from_secs(60), "no snapshot made");
        std::thread::sleep(Duration::from_millis(20));
    }
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    let s = snaps_of(&vol);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["deleted"], true, "{}", r.to_json());
}

#[test]
fn a_killed_export_resumes_from_its_snapshot_with_only_the_missing_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let n = 24;
    let blocks: Vec<(usize, u8)> = (0..n).map(|i| (i, 40 + i as u8)).collect();
    let (f, d) = raw(dir.path(), "resume.raw", n * BLOCK, &blocks);
    let vol = volume(&f, "");
    let out = tempfile::tempdir().unwrap();
    // Two blocks at a time at 2 MiB/s: the journal grows in steps the kill lands between.
    let mut child = std::process::Command::new(support::fetch_example())
        .args([
            "--provider",
            "aws",
            "--config",
            &moto().config(),
            "--options",
        ])
        .arg(
            json!({"max_bytes_per_second": 2 << 20, "parts_in_flight": 2,
                   "max_parts_in_flight": 2, "poll_interval_ms": 20})
            .to_string(),
        )
        .arg(out.path())
        .arg(&vol)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = out.path().join(format!("{vol}.img.hspart.journal"));
    // The journal counts the holes as in place: wait for a third of the data past them.
    let holes = GIB - (n * BLOCK) as u64;
    support::kill_when_journal_covers(&mut child, &journal, holes + (n * BLOCK / 3) as u64);
    let first = snaps_of(&vol);
    assert_eq!(first.len(), 1);
    let snap = first[0]["id"].as_str().unwrap().to_string();
    assert_eq!(first[0]["deleted"], false, "a killed run cannot clean up");
    // A block request of the killed run can still finish at the peer after the kill: count
    // from when the peer's count has stood still for half a second.
    let mut before = gets(&snap);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = gets(&snap);
        if now == before {
            break;
        }
        before = now;
    }

    let o = opts(out.path(), json!({"poll_interval_ms": 20}));
    let r = wait(&client().start_export(&vol, &o, None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    check_image(&out.path().join(format!("{vol}.img")), &d, GIB, n);
    // The same snapshot was adopted, only the blocks not in the journal were read, and the
    // snapshot is gone now.
    assert_eq!(r.provider["snapshots"][0]["snapshot_id"], snap.as_str());
    assert_eq!(snaps_of(&vol).len(), 1);
    let resumed = r.files[0].resumed_bytes;
    assert!(resumed >= (n * BLOCK / 3) as u64, "resumed {resumed}");
    assert_eq!(resumed + r.files[0].fetched_bytes, (n * BLOCK) as u64);
    let missing = (n * BLOCK) as u64 - resumed;
    assert_eq!(gets(&snap) - before, missing / BLOCK as u64);
    assert_eq!(snaps_of(&vol)[0]["deleted"], true);
}

#[test]
fn methods_are_checked_and_the_export_task_never_gets_an_instance_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (f, _) = raw(dir.path(), "m.raw", BLOCK, &[(0, 50)]);
    let vol = volume(&f, "");
    let out = tempfile::tempdir().unwrap();
    let err = |src: &str, extra: Value| {
        client()
            .start_export(src, &opts(out.path(), extra.clone()), None)
            .err()
            .unwrap_or_else(|| panic!("{src} {extra} was accepted"))
    };
    let e = err(&vol, json!({"method": "export-task"}));
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = err(&vol, json!({"method": "fast"}));
    assert!(e.to_string().contains("\"fast\""), "{e}");

    // An instance with two volumes: the export task refuses it. Asked for by name, a clear
    // error before any task; with a bucket and no method, the snapshot method instead.
    let inst = ebs("POST", "/ebs/instance");
    let id = inst["instance"].as_str().unwrap().to_string();
    let (f2, d2) = raw(dir.path(), "second.raw", BLOCK, &[(0, 51)]);
    let second = ebs(
        "POST",
        &format!(
            "/ebs/volume?size=1&attach={id}&device=/dev/sdg&path={}",
            f2.display()
        ),
    )["volume"]
        .as_str()
        .unwrap()
        .to_string();
    let tasks = moto().tasks().len();
    let o = opts(
        out.path(),
        json!({"method": "export-task", "s3_bucket": "exports", "poll_interval_ms": 20}),
    );
    let r = wait(&client().start_export(&id, &o, None).unwrap());
    assert_eq!(r.status, "failed");
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{}", r.to_json());
    assert!(e.message.contains("2 volumes"), "{}", e.message);
    assert_eq!(moto().tasks().len(), tasks, "a task was started");
    let o = opts(
        out.path(),
        json!({"s3_bucket": "exports", "poll_interval_ms": 20}),
    );
    let r = wait(&client().start_export(&id, &o, None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(r.provider["method"], "snapshot");
    assert_eq!(moto().tasks().len(), tasks, "a task was started");
    check_image(&out.path().join(format!("{second}.img")), &d2, GIB, 1);
}
