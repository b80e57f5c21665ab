//! Incremental exports of Azure managed disks (issue 35), against Azurite behind the ARM
//! stand-in: an export with `keep_base` keeps its incremental snapshot; writes to the disk
//! through the stand-in; an export with `incremental_from` fetches only the pages the diff of
//! the two snapshots lists (counted at the blob proxy) and equals a fresh full export; the
//! fallbacks to a full export; a cancel that leaves the previous image as it was.
#![cfg(feature = "azure")]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hypersdk::{Client, ExportResult};
use serde_json::{Value, json};
use support::azure::azure;
use support::incremental::{assert_same, export_done, save, wait};
use support::opts;

const MIB: usize = 1 << 20;

fn export(src: &str, out: &Path, extra: Value) -> ExportResult {
    export_done("azure", &azure().config(), src, out, extra)
}

fn report(r: &ExportResult) -> &Value {
    &r.provider["incremental"]["files"][0]
}

/// A 16 MiB disk (raw pages) with data in three regions; registered in the stand-in.
fn disk(name: &str) -> PathBuf {
    let path = azure().dir.path().join(format!("{name}.raw"));
    let mut data = vec![0u8; 16 * MIB];
    for (at, len, seed) in [
        (MIB, 300_000, 3u64),
        (6 * MIB, 1536, 5),
        (12 * MIB, 2 * MIB, 9),
    ] {
        data[at..at + len].copy_from_slice(&support::server::pattern(len, seed));
    }
    std::fs::write(&path, &data).unwrap();
    azure().add("disks", name, &path, "Unattached", None);
    path
}

fn write(name: &str, offset: usize, data: &[u8]) {
    azure().admin(
        "write",
        json!({"rg": "rg1", "name": name, "offset": offset,
               "data": base64::engine::general_purpose::STANDARD.encode(data)}),
    );
}

fn clear(name: &str, offset: usize, len: usize) {
    azure().admin(
        "write",
        json!({"rg": "rg1", "name": name, "offset": offset, "zeros": len}),
    );
}

fn bytes_read(name: &str) -> u64 {
    azure().disk(name)["bytes_read"].as_u64().unwrap_or(0)
}

/// The disk's snapshot the result's base names.
fn base_snapshot(r: &ExportResult) -> String {
    r.provider["base"]["files"][0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_incremental_export_fetches_only_the_changed_pages_and_equals_a_full_one() {
    let path = disk("incr-1");
    let dir = tempfile::tempdir().unwrap();
    let out1 = tempfile::tempdir().unwrap();
    let r1 = export("disk:incr-1", out1.path(), json!({"keep_base": true}));
    let img1 = out1.path().join("incr-1.vhd");
    assert_eq!(std::fs::read(&img1).unwrap(), std::fs::read(&path).unwrap());
    assert_eq!(r1.provider["base"]["kept"], true, "{}", r1.to_json());
    let snap1 = base_snapshot(&r1);
    // Kept: the base snapshot outlives the export.
    let left = azure().disk("incr-1")["snapshots_left"].clone();
    assert_eq!(left, json!([snap1]), "{}", r1.to_json());
    let from = save(&r1, dir.path(), "r1.json");

    // Written since: 64 KiB rewritten, 4 KiB where nothing was, 32 KiB cleared.
    write("incr-1", MIB + 4096, &support::server::pattern(65536, 21));
    write("incr-1", 9 * MIB, &support::server::pattern(4096, 22));
    clear("incr-1", 12 * MIB + 65536, 32768);
    let before = bytes_read("incr-1");
    let out2 = tempfile::tempdir().unwrap();
    let r2 = export(
        "disk:incr-1",
        out2.path(),
        json!({"incremental_from": from, "keep_base": true}),
    );
    let rep = report(&r2);
    assert_eq!(rep["mode"], "incremental", "{}", r2.to_json());
    assert_eq!(rep["base"], snap1.as_str());
    assert_eq!(rep["changed_bytes"], 65536 + 4096, "{}", r2.to_json());
    assert_eq!(rep["zeroed_bytes"], 32768, "{}", r2.to_json());
    // Only the changed pages crossed the wire (each range's first byte probed once more).
    let read = bytes_read("incr-1") - before;
    assert!(
        (65536 + 4096..=65536 + 4096 + 16).contains(&read),
        "the peer served {read} bytes for 69632 changed"
    );
    assert!(r2.bytes_fetched <= 65536 + 4096 + 1, "{}", r2.to_json());
    let img2 = out2.path().join("incr-1.vhd");
    assert_eq!(std::fs::read(&img2).unwrap(), std::fs::read(&path).unwrap());
    // The previous image is as it was.
    assert_ne!(std::fs::read(&img1).unwrap(), std::fs::read(&img2).unwrap());

    // A fresh full export of the new snapshot is the same, byte for byte.
    let snap2 = base_snapshot(&r2);
    let full = tempfile::tempdir().unwrap();
    export(&format!("snapshot:{snap2}"), full.path(), json!({}));
    assert_eq!(
        std::fs::read(full.path().join(format!("{snap2}.vhd"))).unwrap(),
        std::fs::read(&img2).unwrap()
    );
    // Every grant was revoked (the base's for the diff too).
    assert_eq!(azure().disk("incr-1")["active_policies"], 0);
}

#[test]
fn a_missing_base_a_resized_disk_or_another_disk_falls_back_to_a_full_export() {
    let path = disk("incr-2");
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let r1 = export("disk:incr-2", out.path(), json!({"keep_base": true}));
    let from = save(&r1, dir.path(), "r1.json");

    // The base snapshot deleted: full, saying why.
    azure().admin(
        "delete-snapshot",
        json!({"rg": "rg1", "name": base_snapshot(&r1)}),
    );
    write("incr-2", 2 * MIB, &support::server::pattern(8192, 31));
    let out2 = tempfile::tempdir().unwrap();
    let r2 = export(
        "disk:incr-2",
        out2.path(),
        json!({"incremental_from": from, "keep_base": true}),
    );
    assert_eq!(report(&r2)["mode"], "full", "{}", r2.to_json());
    let why = report(&r2)["reason"].as_str().unwrap();
    assert!(why.contains("no longer exists"), "{why}");
    assert_eq!(
        std::fs::read(out2.path().join("incr-2.vhd")).unwrap(),
        std::fs::read(&path).unwrap()
    );

    // From that export's base, the disk grown by 1 MiB: full, saying why.
    let from2 = save(&r2, dir.path(), "r2.json");
    azure().admin(
        "resize",
        json!({"rg": "rg1", "name": "incr-2", "size": 17 * MIB}),
    );
    let out3 = tempfile::tempdir().unwrap();
    let r3 = export(
        "disk:incr-2",
        out3.path(),
        json!({"incremental_from": from2}),
    );
    assert_eq!(report(&r3)["mode"], "full", "{}", r3.to_json());
    let why = report(&r3)["reason"].as_str().unwrap();
    assert!(why.contains("resized"), "{why}");
    assert_eq!(
        std::fs::read(out3.path().join("incr-2.vhd")).unwrap(),
        std::fs::read(&path).unwrap()
    );
    // Without keep_base its snapshot is gone; r2's is kept.
    assert_eq!(
        azure().disk("incr-2")["snapshots_left"],
        json!([base_snapshot(&r2)])
    );

    // Another disk from that base (whose snapshot still exists): full, saying why.
    let other = disk("incr-2b");
    let out4 = tempfile::tempdir().unwrap();
    let r4 = export(
        "disk:incr-2b",
        out4.path(),
        json!({"incremental_from": from2}),
    );
    assert_eq!(report(&r4)["mode"], "full", "{}", r4.to_json());
    let why = report(&r4)["reason"].as_str().unwrap();
    assert!(why.contains("no snapshot of disk"), "{why}");
    assert_eq!(
        std::fs::read(out4.path().join("incr-2b.vhd")).unwrap(),
        std::fs::read(&other).unwrap()
    );
}

#[test]
fn a_cancelled_incremental_export_leaves_the_previous_image_untouched() {
    disk("incr-3");
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let r1 = export("disk:incr-3", out.path(), json!({"keep_base": true}));
    let from = save(&r1, dir.path(), "r1.json");
    let img = out.path().join("incr-3.vhd");
    let before = std::fs::read(&img).unwrap();
    let mtime = std::fs::metadata(&img).unwrap().modified().unwrap();

    // 4 MiB changed, fetched at 512 KiB/s one part at a time: the cancel lands after the
    // first part.
    write("incr-3", 2 * MIB, &support::server::pattern(4 * MIB, 41));
    let o = json!({"incremental_from": from, "overwrite": true, "poll_interval_ms": 20,
                   "max_bytes_per_second": 1 << 19, "parts_in_flight": 1,
                   "max_parts_in_flight": 1});
    let c = Client::new("azure", &azure().config()).unwrap();
    let e = c
        .start_export("disk:incr-3", &opts(out.path(), o), None)
        .unwrap();
    let t = Instant::now();
    while e.progress().bytes_done == 0 {
        assert!(t.elapsed() < Duration::from_secs(120), "no part arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    assert!(
        std::fs::read(&img).unwrap() == before,
        "the previous image changed"
    );
    assert_eq!(std::fs::metadata(&img).unwrap().modified().unwrap(), mtime);
    // Cleanup ran: no grant left, the cancelled run's snapshot deleted, the base kept.
    let d = azure().disk("incr-3");
    assert_eq!(d["active_policies"], 0, "{d}");
    assert_eq!(d["snapshots_left"], json!([base_snapshot(&r1)]), "{d}");
}

/// A VM's export with `keep_base` keeps an incremental snapshot of each disk; the next export of the VM from that base fetches only what
/// changed on each disk, pairing files with base snapshots by disk, not by position.
#[test]
fn a_vm_exports_each_disk_incrementally() {
    let os = disk("incr-vm-os");
    let data = disk("incr-vm-data");
    azure().add_vm("incr-vm", "incr-vm-os", &[(0, "incr-vm-data")]);
    let dir = tempfile::tempdir().unwrap();
    let out1 = tempfile::tempdir().unwrap();
    let keep = json!({"keep_base": true});
    let r1 = export("vm:incr-vm", out1.path(), keep.clone());
    assert_eq!(
        r1.provider["base"]["files"].as_array().unwrap().len(),
        2,
        "{}",
        r1.to_json()
    );
    let from = save(&r1, dir.path(), "r1.json");

    write("incr-vm-data", 3 * MIB, &support::server::pattern(8192, 51));
    let (os_before, data_before) = (bytes_read("incr-vm-os"), bytes_read("incr-vm-data"));
    let out2 = tempfile::tempdir().unwrap();
    let mut o = keep.clone();
    o["incremental_from"] = json!(from);
    let r2 = export("vm:incr-vm", out2.path(), o);
    let files = r2.provider["incremental"]["files"]
        .as_array()
        .unwrap()
        .clone();
    let of = |name: &str| {
        files
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no outcome for {name}: {}", r2.to_json()))
            .clone()
    };
    let (o_os, o_data) = (of("incr-vm-os.vhd"), of("incr-vm-data.vhd"));
    assert_eq!(o_os["mode"], "incremental", "{}", r2.to_json());
    assert_eq!(o_os["changed_bytes"], 0, "{}", r2.to_json());
    assert_eq!(o_data["mode"], "incremental", "{}", r2.to_json());
    assert_eq!(o_data["changed_bytes"], 8192, "{}", r2.to_json());
    // Each disk's diff is against its own base snapshot.
    let base_of = |name: &str| {
        r1.provider["base"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["snapshot"]
            .clone()
    };
    assert_eq!(o_data["base"], base_of("incr-vm-data.vhd"));
    assert_eq!(o_os["base"], base_of("incr-vm-os.vhd"));
    assert_eq!(bytes_read("incr-vm-os") - os_before, 0);
    assert!(bytes_read("incr-vm-data") - data_before <= 8192 + 16);
    assert_eq!(
        std::fs::read(out2.path().join("incr-vm-os.vhd")).unwrap(),
        std::fs::read(&os).unwrap()
    );
    assert_eq!(
        std::fs::read(out2.path().join("incr-vm-data.vhd")).unwrap(),
        std::fs::read(&data).unwrap()
    );
}

/// `incremental_output: "delta"`: only the changed pages in `<file>.delta` (sparse) with
/// their map; base + map = the disk; the previous image is not read.
#[test]
fn a_delta_export_writes_the_changed_pages_and_their_map() {
    use std::os::unix::fs::FileExt as _;
    let path = disk("incr-d");
    let dir = tempfile::tempdir().unwrap();
    let out1 = tempfile::tempdir().unwrap();
    let r1 = export("disk:incr-d", out1.path(), json!({"keep_base": true}));
    let from = save(&r1, dir.path(), "r1.json");
    // The previous image moved away: a delta does not need it.
    let moved = dir.path().join("base.vhd");
    std::fs::rename(out1.path().join("incr-d.vhd"), &moved).unwrap();

    write("incr-d", 2 * MIB, &support::server::pattern(16384, 61));
    clear("incr-d", 12 * MIB, 65536);
    let before = bytes_read("incr-d");
    let out2 = tempfile::tempdir().unwrap();
    let r2 = export(
        "disk:incr-d",
        out2.path(),
        json!({"incremental_from": from, "incremental_output": "delta", "keep_base": true}),
    );
    assert_eq!(report(&r2)["mode"], "incremental", "{}", r2.to_json());
    let snap2 = base_snapshot(&r2);
    let name = format!("incr-d.vhd.{snap2}.delta");
    assert_eq!(report(&r2)["name"], name.as_str(), "{}", r2.to_json());
    assert_eq!(
        r2.provider["disks"][0]["file"],
        name.as_str(),
        "{}",
        r2.to_json()
    );
    assert!(!out2.path().join("incr-d.vhd").exists());
    assert!(bytes_read("incr-d") - before <= 16384 + 16);
    let map: Value =
        serde_json::from_slice(&std::fs::read(out2.path().join(format!("{name}.json"))).unwrap())
            .unwrap();
    // ARM ids, as the base records them.
    assert_eq!(
        map["base"], r1.provider["base"]["files"][0]["snapshot_id"],
        "{map}"
    );
    assert_eq!(
        map["point"], r2.provider["base"]["files"][0]["snapshot_id"],
        "{map}"
    );
    assert!(
        map["point"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/snapshots/{snap2}"))
    );
    let m = MIB as u64;
    assert_eq!(map["changed"], json!([[2 * m, 2 * m + 16384]]), "{map}");
    assert_eq!(map["zeroed"], json!([[12 * m, 12 * m + 65536]]), "{map}");
    let delta = std::fs::File::open(out2.path().join(&name)).unwrap();
    let img = std::fs::OpenOptions::new()
        .write(true)
        .open(&moved)
        .unwrap();
    let mut buf = vec![0u8; 16384];
    delta.read_exact_at(&mut buf, 2 * m).unwrap();
    img.write_all_at(&buf, 2 * m).unwrap();
    img.write_all_at(&vec![0u8; 65536], 12 * m).unwrap();
    drop(img);
    assert_same(&moved, &path);
    assert_eq!(
        r2.provider["base"]["files"][0]["output"],
        "delta",
        "{}",
        r2.to_json()
    );
    assert_eq!(azure().disk("incr-d")["active_policies"], 0);
}

/// The measure (run by hand: `cargo test --test azure_incremental -- --ignored
/// --nocapture`): a 1 GiB disk with 256 MiB of data, 20 ranges of 512 KiB (10 MiB, about 1 %)
/// rewritten across it; the incremental export fetches those bytes only (counted at the blob
/// proxy) and equals a fresh full export. Ignored by default: the peer copies the disk for
/// each snapshot (about 4 GiB of scratch space, a minute or two).
#[test]
#[ignore]
fn measure_a_1_gib_disk_with_1_percent_changed() {
    const GIB: usize = 1 << 30;
    let path = azure().dir.path().join("incr-m.raw");
    {
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(GIB as u64).unwrap();
        use std::os::unix::fs::FileExt as _;
        for i in 0..256 {
            f.write_all_at(
                &support::server::pattern(MIB, 100 + i as u64),
                (i * 4 * MIB) as u64,
            )
            .unwrap();
        }
    }
    azure().add("disks", "incr-m", &path, "Unattached", None);
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let r1 = export("disk:incr-m", out.path(), json!({"keep_base": true}));
    let t_full = t.elapsed();
    let from = save(&r1, dir.path(), "r1.json");
    for k in 0..20 {
        write(
            "incr-m",
            k * (GIB / 20) / 512 * 512,
            &support::server::pattern(MIB / 2, 500 + k as u64),
        );
    }
    let before = bytes_read("incr-m");
    let t = Instant::now();
    let r2 = export(
        "disk:incr-m",
        out.path(),
        json!({"incremental_from": from, "keep_base": true, "overwrite": true}),
    );
    let t_inc = t.elapsed();
    let read = bytes_read("incr-m") - before;
    let changed = 20 * MIB as u64 / 2;
    assert_eq!(report(&r2)["mode"], "incremental", "{}", r2.to_json());
    let img = out.path().join("incr-m.vhd");
    let snap2 = base_snapshot(&r2);
    let full = tempfile::tempdir().unwrap();
    export(&format!("snapshot:{snap2}"), full.path(), json!({}));
    assert_same(&img, &full.path().join(format!("{snap2}.vhd")));
    assert_same(&img, &path);
    println!(
        "full: {} bytes fetched in {:.1} s; incremental: {} bytes fetched ({:.2} % of the disk), \
         {read} served by the peer, {} changed, in {:.1} s",
        r1.bytes_fetched,
        t_full.as_secs_f64(),
        r2.bytes_fetched,
        r2.bytes_fetched as f64 * 100.0 / GIB as f64,
        report(&r2)["changed_bytes"],
        t_inc.as_secs_f64()
    );
    assert!((changed..=changed + 64).contains(&read), "{read}");
    azure().admin("delete-snapshot", json!({"rg": "rg1", "name": snap2}));
    azure().admin(
        "delete-snapshot",
        json!({"rg": "rg1", "name": base_snapshot(&r1)}),
    );
    std::fs::remove_file(&path).unwrap();
}
