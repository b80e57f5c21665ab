//! Incremental exports of a VM's disks (issue 35), format `raw`, against the vcsim peer with
//! flat disks and changed block tracking (tests/peers/vcsim/cbt.go): an export with
//! `keep_base` turns CBT on and records each disk's changeId; writes to the disks through the
//! peer; an export with `incremental_from` reads only the areas QueryChangedDiskAreas lists
//! (bytes counted at the peer's /folder) and equals a fresh full export; the fallbacks to a
//! full export; a cancel that leaves the previous image as it was; CBT never turned on without
//! `keep_base`.
#![cfg(feature = "vsphere")]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use hypersdk::{Client, ExportResult};
use serde_json::{Value, json};
use support::incremental::{assert_same, report, save};
use support::opts;
use support::vcsim::Peer;

const MIB: usize = 1 << 20;
const VM: &str = "DC0_H0_VM0";

fn wait(e: &hypersdk::Export) -> ExportResult {
    e.wait(Some(Duration::from_secs(180)))
        .unwrap()
        .expect("export did not end within 180 s")
}

fn export(peer: &Peer, out: &Path, extra: Value) -> ExportResult {
    let mut o = json!({"format": "raw"});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    let c = Client::new("vsphere", &peer.config()).unwrap();
    let r = wait(&c.start_export(VM, &opts(out, o), None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    r
}

/// Two flat disks: 8 MiB with data in three regions, 4 MiB with one.
fn disks() -> Vec<Vec<u8>> {
    let mut d0 = vec![0u8; 8 * MIB];
    for (at, len, seed) in [(MIB, 300_000, 3u64), (3 * MIB, 1536, 5), (6 * MIB, MIB, 9)] {
        d0[at..at + len].copy_from_slice(&support::server::pattern(len, seed));
    }
    let mut d1 = vec![0u8; 4 * MIB];
    d1[..MIB].copy_from_slice(&support::server::pattern(MIB, 11));
    vec![d0, d1]
}

/// Writes `data` into disk `i` at `at`, through the peer and into the expected image.
fn write(peer: &Peer, expect: &mut [Vec<u8>], i: usize, at: usize, data: &[u8]) {
    peer.control(&format!("/hs-write?disk={i}&offset={at}"), data.to_vec());
    expect[i][at..at + data.len()].copy_from_slice(data);
}

fn img(out: &Path, i: usize) -> std::path::PathBuf {
    out.join(format!("{VM}-disk-{i}.img"))
}

/// Each disk's image in `out` is the expected disk.
fn assert_images(out: &Path, expect: &[Vec<u8>]) {
    for (i, want) in expect.iter().enumerate() {
        assert!(
            &std::fs::read(img(out, i)).unwrap() == want,
            "disk {i} differs"
        );
    }
}

fn folder_bytes(peer: &Peer) -> u64 {
    peer.stats()["folder_bytes"].as_u64().unwrap()
}

#[test]
fn an_incremental_export_reads_only_the_changed_areas_and_equals_a_full_one() {
    // Answers of 1 MiB at most: the client must call again from startOffset + length.
    let peer = Peer::start_flat(&disks(), &["-cbt-window-mib", "1"]);
    let mut expect = disks();
    let dir = tempfile::tempdir().unwrap();
    let out1 = tempfile::tempdir().unwrap();
    let r1 = export(&peer, out1.path(), json!({"keep_base": true}));
    assert_images(out1.path(), &expect);
    let s = peer.stats();
    // CBT turned on once, then the snapshot cycle and the export's snapshot, both removed.
    assert_eq!(s["cbt_reconfigs"], json!([true]), "{s}");
    assert_eq!(s["snapshots_created"], 2, "{s}");
    assert_eq!(s["snapshots"], 0, "{s}");
    // Both disks read whole (each file's first byte probed once more for Range support).
    let full = s["folder_bytes"].as_u64().unwrap();
    assert!(
        (12 * MIB as u64..=12 * MIB as u64 + 2).contains(&full),
        "{s}"
    );
    let base = &r1.provider["base"];
    assert_eq!(base["kept"], true, "{}", r1.to_json());
    let change0 = base["files"][0]["change_id"].as_str().unwrap().to_string();
    assert!(change0.contains('/'), "{change0}");
    let from = save(&r1, dir.path(), "r1.json");

    // Written since: 64 KiB rewritten, 4 KiB where nothing was, across two answers' windows.
    write(
        &peer,
        &mut expect,
        0,
        MIB + 4096,
        &support::server::pattern(65536, 21),
    );
    write(
        &peer,
        &mut expect,
        0,
        5 * MIB - 2048,
        &support::server::pattern(4096, 22),
    );
    let before = folder_bytes(&peer);
    let queries = peer.stats()["cbt_queries"].as_u64().unwrap();
    let out2 = tempfile::tempdir().unwrap();
    let r2 = export(
        &peer,
        out2.path(),
        json!({"incremental_from": from, "keep_base": true}),
    );
    let (rep0, rep1) = (report(&r2, 0), report(&r2, 1));
    assert_eq!(rep0["mode"], "incremental", "{}", r2.to_json());
    assert_eq!(rep0["base"], change0.as_str());
    assert_eq!(rep0["changed_bytes"], 65536 + 4096, "{}", r2.to_json());
    assert_eq!(rep1["mode"], "incremental", "{}", r2.to_json());
    assert_eq!(rep1["changed_bytes"], 0, "{}", r2.to_json());
    // Only the changed areas crossed the wire (one byte probed once more for Range support).
    let read = folder_bytes(&peer) - before;
    assert!(
        (65536 + 4096..=65536 + 4096 + 2).contains(&read),
        "the peer served {read} bytes for 69632 changed"
    );
    // The loop covered both disks, 1 MiB per answer: 8 + 4 calls.
    let s = peer.stats();
    assert_eq!(s["cbt_queries"].as_u64().unwrap() - queries, 12, "{s}");
    // CBT was on already: not reconfigured again.
    assert_eq!(s["cbt_reconfigs"], json!([true]), "{s}");
    assert_images(out2.path(), &expect);
    // The previous image is as it was.
    assert!(std::fs::read(img(out1.path(), 0)).unwrap() == disks()[0]);

    // A fresh full export (no base) is the same, byte for byte.
    let full = tempfile::tempdir().unwrap();
    let r3 = export(&peer, full.path(), json!({}));
    assert!(r3.provider.get("incremental").is_none(), "{}", r3.to_json());
    for i in 0..expect.len() {
        assert_same(&img(full.path(), i), &img(out2.path(), i));
    }
    assert_eq!(peer.stats()["snapshots"], 0);
}

#[test]
fn a_missing_base_or_a_resized_disk_falls_back_to_a_full_export() {
    let peer = Peer::start_flat(&disks(), &[]);
    let mut expect = disks();
    let dir = tempfile::tempdir().unwrap();
    let out1 = tempfile::tempdir().unwrap();
    let r1 = export(&peer, out1.path(), json!({"keep_base": true}));
    let from = save(&r1, dir.path(), "r1.json");

    // Disk 0's previous image gone: that disk in full, saying why; disk 1 incremental.
    std::fs::remove_file(img(out1.path(), 0)).unwrap();
    write(
        &peer,
        &mut expect,
        0,
        2 * MIB,
        &support::server::pattern(8192, 31),
    );
    write(
        &peer,
        &mut expect,
        1,
        512,
        &support::server::pattern(512, 32),
    );
    let out2 = tempfile::tempdir().unwrap();
    let r2 = export(
        &peer,
        out2.path(),
        json!({"incremental_from": from, "keep_base": true}),
    );
    assert_eq!(report(&r2, 0)["mode"], "full", "{}", r2.to_json());
    let why = report(&r2, 0)["reason"].as_str().unwrap();
    assert!(why.contains("cannot be opened"), "{why}");
    assert_eq!(report(&r2, 1)["mode"], "incremental", "{}", r2.to_json());
    assert_eq!(report(&r2, 1)["changed_bytes"], 512, "{}", r2.to_json());
    assert_images(out2.path(), &expect);

    // From that export's base, disk 1 grown by 1 MiB: that disk in full, saying why.
    let from2 = save(&r2, dir.path(), "r2.json");
    peer.control(&format!("/hs-resize?disk=1&bytes={}", 5 * MIB), Vec::new());
    expect[1].resize(5 * MIB, 0);
    write(
        &peer,
        &mut expect,
        0,
        7 * MIB,
        &support::server::pattern(4096, 33),
    );
    let out3 = tempfile::tempdir().unwrap();
    let r3 = export(&peer, out3.path(), json!({"incremental_from": from2}));
    assert_eq!(report(&r3, 1)["mode"], "full", "{}", r3.to_json());
    let why = report(&r3, 1)["reason"].as_str().unwrap();
    assert!(why.contains("resized"), "{why}");
    assert_eq!(report(&r3, 0)["mode"], "incremental", "{}", r3.to_json());
    assert_eq!(report(&r3, 0)["changed_bytes"], 4096, "{}", r3.to_json());
    assert_images(out3.path(), &expect);
}

#[test]
fn a_cancelled_incremental_export_leaves_the_previous_image_untouched() {
    let peer = Peer::start_flat(&disks(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let r1 = export(&peer, out.path(), json!({"keep_base": true}));
    let from = save(&r1, dir.path(), "r1.json");
    let image = img(out.path(), 0);
    let before = std::fs::read(&image).unwrap();
    let mtime = std::fs::metadata(&image).unwrap().modified().unwrap();

    // 4 MiB changed, read at 512 KiB/s one part at a time: the cancel lands after the first.
    let mut expect = disks();
    write(
        &peer,
        &mut expect,
        0,
        2 * MIB,
        &support::server::pattern(4 * MIB, 41),
    );
    let o = json!({"format": "raw", "incremental_from": from, "overwrite": true,
                   "max_bytes_per_second": 1 << 19, "parts_in_flight": 1,
                   "max_parts_in_flight": 1});
    let c = Client::new("vsphere", &peer.config()).unwrap();
    let e = c.start_export(VM, &opts(out.path(), o), None).unwrap();
    let t = Instant::now();
    while e.progress().bytes_done == 0 {
        assert!(t.elapsed() < Duration::from_secs(120), "no part arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    assert!(
        std::fs::read(&image).unwrap() == before,
        "the previous image changed"
    );
    assert_eq!(
        std::fs::metadata(&image).unwrap().modified().unwrap(),
        mtime
    );
    // Cleanup ran: the cancelled run's snapshot is removed.
    let s = peer.stats();
    assert_eq!(s["snapshots"], 0, "{s}");
    assert_eq!(s["snapshots_removed"], s["snapshots_created"], "{s}");
}

#[test]
fn cbt_is_turned_on_only_with_keep_base() {
    let peer = Peer::start_flat(&disks(), &[]);
    // format raw without keep_base: a full export, CBT untouched, no base (no changeId).
    let out = tempfile::tempdir().unwrap();
    let r = export(&peer, out.path(), json!({}));
    assert!(std::fs::read(img(out.path(), 1)).unwrap() == disks()[1]);
    assert!(r.provider.get("base").is_none(), "{}", r.to_json());
    let s = peer.stats();
    assert_eq!(s["cbt_reconfigs"], json!(null), "{s}");
    assert_eq!(s["cbt_queries"], 0, "{s}");
    // incremental_from a result with no base: in full, saying why, and CBT still untouched.
    let dir = tempfile::tempdir().unwrap();
    let from = save(&r, dir.path(), "r.json");
    let out2 = tempfile::tempdir().unwrap();
    let r2 = export(&peer, out2.path(), json!({"incremental_from": from}));
    let why = report(&r2, 0)["reason"].as_str().unwrap();
    assert!(why.contains("no base"), "{why}");
    assert_eq!(peer.stats()["cbt_reconfigs"], json!(null));
    // The NFC formats cannot be patched block by block: keep_base is refused there.
    let c = Client::new("vsphere", &peer.config()).unwrap();
    let err = c
        .start_export(VM, &opts(out.path(), json!({"keep_base": true})), None)
        .err()
        .expect("keep_base with format ovf is refused");
    assert!(err.to_string().contains("format \"raw\""), "{err}");
    // With keep_base: on, once.
    let out3 = tempfile::tempdir().unwrap();
    let r3 = export(&peer, out3.path(), json!({"keep_base": true}));
    assert_eq!(peer.stats()["cbt_reconfigs"], json!([true]));
    assert!(r3.provider["base"]["files"][1]["change_id"].is_string());
}

#[test]
fn a_cbt_reset_or_a_changeid_vcenter_refuses_falls_back_to_a_full_export() {
    let peer = Peer::start_flat(&disks(), &[]);
    let mut expect = disks();
    let dir = tempfile::tempdir().unwrap();
    let out1 = tempfile::tempdir().unwrap();
    let r1 = export(&peer, out1.path(), json!({"keep_base": true}));

    // A base whose changeId vCenter does not know (of this tracking, a sequence it never
    // gave): the query is refused (InvalidArgument changeId) and both disks go in full.
    let forge = |sequence: &str, name: &str| {
        let mut forged: Value = serde_json::from_str(&r1.to_json()).unwrap();
        for f in forged["base"]["files"].as_array_mut().unwrap() {
            let id = f["change_id"].as_str().unwrap();
            let (epoch, _) = id.split_once('/').unwrap();
            f["change_id"] = json!(format!("{epoch}/{sequence}"));
        }
        let from = dir.path().join(name);
        std::fs::write(&from, forged.to_string()).unwrap();
        from
    };
    // A later sequence than the snapshot's: the snapshot is older than that base — known
    // before asking vCenter.
    let later = forge("999", "later.json");
    let out0 = tempfile::tempdir().unwrap();
    let r0 = export(&peer, out0.path(), json!({"incremental_from": later}));
    for i in 0..expect.len() {
        let why = report(&r0, i)["reason"].as_str().unwrap();
        assert!(why.contains("older than the base"), "{why}");
    }
    let from = forge("9x", "forged.json");
    write(
        &peer,
        &mut expect,
        0,
        3 * MIB,
        &support::server::pattern(4096, 51),
    );
    let out2 = tempfile::tempdir().unwrap();
    let r2 = export(&peer, out2.path(), json!({"incremental_from": from}));
    for (i, want) in expect.iter().enumerate() {
        assert_eq!(report(&r2, i)["mode"], "full", "{}", r2.to_json());
        let why = report(&r2, i)["reason"].as_str().unwrap();
        assert!(
            why.contains("would not list") && why.contains("changeId"),
            "{why}"
        );
        assert!(&std::fs::read(img(out2.path(), i)).unwrap() == want);
    }

    // CBT reset since the base (new tracking epoch): in full, saying why.
    let from1 = save(&r1, dir.path(), "r1.json");
    peer.control("/hs-cbt-reset", Vec::new());
    write(
        &peer,
        &mut expect,
        1,
        4096,
        &support::server::pattern(4096, 52),
    );
    let out3 = tempfile::tempdir().unwrap();
    let r3 = export(&peer, out3.path(), json!({"incremental_from": from1}));
    for (i, want) in expect.iter().enumerate() {
        assert_eq!(report(&r3, i)["mode"], "full", "{}", r3.to_json());
        let why = report(&r3, i)["reason"].as_str().unwrap();
        assert!(why.contains("was reset"), "{why}");
        assert!(&std::fs::read(img(out3.path(), i)).unwrap() == want);
    }
}

#[test]
fn a_disk_on_a_snapshot_is_refused_before_cbt_or_a_snapshot_is_touched() {
    let peer = Peer::start_flat(&disks(), &[]);
    // Disk 1 is a delta on a snapshot of the VM's own: its flat file is not the disk.
    peer.control("/hs-delta?disk=1", Vec::new());
    let out = tempfile::tempdir().unwrap();
    let c = Client::new("vsphere", &peer.config()).unwrap();
    let o = json!({"format": "raw", "keep_base": true});
    let r = wait(&c.start_export(VM, &opts(out.path(), o), None).unwrap());
    assert_eq!(r.status, "failed", "{}", r.to_json());
    let msg = r.error.as_ref().unwrap().message.clone();
    assert!(
        msg.contains("delta on a snapshot") && msg.contains("format ovf"),
        "{msg}"
    );
    // Nothing changed on the VM: CBT left as it was, no snapshot made.
    let s = peer.stats();
    assert_eq!(s["cbt_reconfigs"], json!(null), "{s}");
    assert_eq!(s["snapshots_created"], 0, "{s}");
}

/// An independent disk is left out of snapshots: its backing in the snapshot is the live disk,
/// so format raw refuses it, saying why, before CBT or a snapshot is touched.
#[test]
fn an_independent_disk_is_refused_before_anything_changes() {
    let peer = Peer::start_flat(&disks(), &[]);
    peer.control(
        "/hs-disk-mode?disk=1&mode=independent_persistent",
        Vec::new(),
    );
    let out = tempfile::tempdir().unwrap();
    let c = Client::new("vsphere", &peer.config()).unwrap();
    let o = json!({"format": "raw", "keep_base": true});
    let r = wait(&c.start_export(VM, &opts(out.path(), o), None).unwrap());
    assert_eq!(r.status, "failed", "{}", r.to_json());
    let msg = r.error.as_ref().unwrap().message.clone();
    assert!(msg.contains("independent_persistent"), "{msg}");
    let s = peer.stats();
    assert_eq!(s["cbt_reconfigs"], json!(null), "{s}");
    assert_eq!(s["snapshots_created"], 0, "{s}");
}

/// A snapshot of the user's that does not exist is found missing before CBT is turned on.
#[test]
fn a_misspelt_snapshot_leaves_cbt_as_it_was() {
    let peer = Peer::start_flat(&disks(), &[]);
    let out = tempfile::tempdir().unwrap();
    let c = Client::new("vsphere", &peer.config()).unwrap();
    let o = json!({"format": "raw", "keep_base": true, "snapshot": "no-such-snapshot"});
    let r = wait(&c.start_export(VM, &opts(out.path(), o), None).unwrap());
    assert_eq!(r.status, "failed", "{}", r.to_json());
    let msg = r.error.as_ref().unwrap().message.clone();
    assert!(msg.contains("no-such-snapshot"), "{msg}");
    let s = peer.stats();
    assert_eq!(s["cbt_reconfigs"], json!(null), "{s}");
}
