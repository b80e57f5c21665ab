//! Incremental exports on AWS (issue 35) against moto with its EBS stand-in: a full export that
//! keeps its base, writes to the volume, then an export with `incremental_from` whose image
//! equals a fresh full export byte for byte and read only the changed blocks (counted at the
//! peer); the fallbacks to a full export; a cancel that leaves the previous image as it was.
#![cfg(feature = "aws")]

mod support;

use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use hypersdk::{Client, ExportResult};
use serde_json::{Value, json};
use support::ebs::{BLOCK, GIB, ebs, gets, raw, snaps_of, stats, volume};
use support::incremental::{assert_same, export_done, save, wait};
use support::moto::moto;
use support::opts;

fn export(src: &str, out: &Path, extra: Value) -> ExportResult {
    export_done("aws", &moto().config(), src, out, extra)
}

fn snapshot_of(r: &ExportResult) -> String {
    r.provider["snapshots"][0]["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn report(r: &ExportResult) -> &Value {
    &r.provider["incremental"]["files"][0]
}

#[test]
fn an_incremental_export_reads_only_the_changed_blocks_and_equals_a_full_one() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<(usize, u8)> = (0..24).map(|i| (i, 60 + i as u8)).collect();
    let (f, _) = raw(dir.path(), "inc.raw", 40 * BLOCK, &blocks);
    // Two blocks a page: the changed blocks come in two pages.
    let vol = volume(&f, "&page=2");
    let out = tempfile::tempdir().unwrap();
    let r1 = export(&vol, out.path(), json!({"keep_base": true}));
    let base = &r1.provider["base"];
    assert_eq!(base["provider"], "aws", "{}", r1.to_json());
    assert_eq!(base["kept"], true, "{}", r1.to_json());
    let img = out.path().join(format!("{vol}.img"));
    assert_eq!(
        base["files"][0]["path"],
        json!(std::fs::canonicalize(&img).unwrap())
    );
    let first = snapshot_of(&r1);
    assert_eq!(
        snaps_of(&vol)[0]["deleted"],
        false,
        "keep_base kept no snapshot"
    );
    let from = save(&r1, dir.path(), "r1.json");

    // Block 3 rewritten, block 31 written for the first time (only in the second snapshot:
    // moto's own ListChangedBlocks never reported those), block 5 zeroed.
    let mut changed = blocks.clone();
    changed[3].1 = 200;
    changed.retain(|b| b.0 != 5);
    changed.push((31, 201));
    raw(dir.path(), "inc.raw", 40 * BLOCK, &changed);
    let r2 = export(
        &vol,
        out.path(),
        json!({"incremental_from": from, "overwrite": true, "keep_base": true}),
    );
    let second = snapshot_of(&r2);
    let rep = report(&r2);
    assert_eq!(rep["mode"], "incremental", "{}", r2.to_json());
    assert_eq!(rep["base"], first.as_str());
    assert_eq!(rep["changed_bytes"], 2 * BLOCK as u64, "{}", r2.to_json());
    assert_eq!(rep["zeroed_bytes"], BLOCK as u64, "{}", r2.to_json());
    // Counted at the peer: two block reads of the new snapshot, and one changed-blocks listing
    // of two pages.
    assert_eq!(gets(&second), 2, "{}", r2.to_json());
    assert_eq!(r2.bytes_fetched, 2 * BLOCK as u64);
    let s2 = snaps_of(&vol)
        .into_iter()
        .find(|s| s["id"] == second.as_str())
        .unwrap();
    assert_eq!(s2["changed_lists"], 1, "{s2}");
    assert_eq!(s2["lists"], 0, "the whole snapshot was listed: {s2}");
    // The new base is the new snapshot and the new image.
    assert_eq!(
        r2.provider["base"]["files"][0]["snapshot_id"],
        second.as_str()
    );

    // A fresh full export of the same snapshot is the same image, byte for byte.
    let full = tempfile::tempdir().unwrap();
    export(&second, full.path(), json!({}));
    assert_same(&img, &full.path().join(format!("{second}.img")));
    // Holes stayed holes: the zeroed block and the untouched part take no room.
    let used = std::fs::metadata(&img).unwrap().blocks() * 512;
    assert!(used <= (26 * BLOCK) as u64, "{used} bytes allocated");
    let _ = GIB;
}

#[test]
fn a_missing_base_a_changed_image_or_a_resized_volume_falls_back_to_a_full_export() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = [(0, 90), (2, 91), (7, 92)];
    let (f, d) = raw(dir.path(), "fb.raw", 8 * BLOCK, &blocks);
    let vol = volume(&f, "");
    let out = tempfile::tempdir().unwrap();
    let img = out.path().join(format!("{vol}.img"));
    let full_again = |r: &ExportResult, why: &str| {
        let rep = report(r);
        assert_eq!(rep["mode"], "full", "{}", r.to_json());
        assert!(
            rep["reason"].as_str().unwrap().contains(why),
            "{why:?} not in {}",
            r.to_json()
        );
        assert_eq!(
            r.bytes_fetched,
            (blocks.len() * BLOCK) as u64,
            "{}",
            r.to_json()
        );
        let mut head = vec![0u8; d.len()];
        std::fs::File::open(&img)
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        assert!(head == d, "the full export's image differs from the volume");
    };

    // Without keep_base the snapshot is gone: the base says so, and the export goes in full.
    let r = export(&vol, out.path(), json!({}));
    assert_eq!(r.provider["base"]["kept"], false, "{}", r.to_json());
    let from = save(&r, dir.path(), "r.json");
    let again = json!({"incremental_from": from, "overwrite": true, "keep_base": true});
    let r = export(&vol, out.path(), again);
    full_again(&r, "keep_base was off");

    // A kept base whose snapshot someone deleted after the export.
    let kept = snapshot_of(&r);
    ebs("POST", &format!("/ebs/delete-snapshot?snapshot={kept}"));
    let gone = json!({"incremental_from": serde_json::from_str::<Value>(&r.to_json()).unwrap(),
                      "overwrite": true, "keep_base": true});
    let r = export(&vol, out.path(), gone);
    full_again(&r, "no longer exists");

    // The previous image changed after its export (a mount, a tool): not a base any more.
    let from = save(&r, dir.path(), "r2.json");
    let file = std::fs::File::options().write(true).open(&img).unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(file);
    let again = json!({"incremental_from": from, "overwrite": true, "keep_base": true});
    let r = export(&vol, out.path(), again);
    full_again(&r, "modified after its export");

    // The volume grew to 2 GiB: a full export of the new size.
    let from = save(&r, dir.path(), "r3.json");
    ebs("POST", &format!("/ebs/resize?volume={vol}&size=2"));
    let r = export(
        &vol,
        out.path(),
        json!({"incremental_from": from, "overwrite": true}),
    );
    full_again(&r, "resized");
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 2 * GIB);

    // Not a result JSON at all: a clear error naming the option.
    let c = Client::new("aws", &moto().config()).unwrap();
    let bad = dir.path().join("nope.json");
    let e = wait(
        &c.start_export(
            &vol,
            &opts(
                out.path(),
                json!({"incremental_from": bad, "poll_interval_ms": 20}),
            ),
            None,
        )
        .unwrap(),
    );
    assert_eq!(e.status, "failed");
    assert!(e.to_json().contains("incremental_from"), "{}", e.to_json());
    // The export task has no snapshots to compare: refused, not ignored.
    let task = json!({"incremental_from": from, "s3_bucket": "exports", "method": "export-task"});
    let e = c
        .start_export("i-0123456789abcdef0", &opts(out.path(), task), None)
        .err()
        .expect("incremental_from with the export task was accepted");
    assert_eq!(e.kind(), hypersdk::ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("snapshot method"), "{e}");
    let _ = stats();
}

#[test]
fn a_cancelled_incremental_export_leaves_the_previous_image_untouched_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<(usize, u8)> = (0..8).map(|i| (i, 120 + i as u8)).collect();
    let (f, _) = raw(dir.path(), "cancel.raw", 24 * BLOCK, &blocks);
    let vol = volume(&f, "");
    let out = tempfile::tempdir().unwrap();
    let r1 = export(&vol, out.path(), json!({"keep_base": true}));
    let from = save(&r1, dir.path(), "r1.json");
    let img = out.path().join(format!("{vol}.img"));
    let before = std::fs::read(&img).unwrap();
    let mtime = std::fs::metadata(&img).unwrap().modified().unwrap();

    // 24 changed blocks (8 rewritten, 16 new) at 1 MiB/s, one at a time: the cancel lands
    // after the first.
    let changed: Vec<(usize, u8)> = (0..24).map(|i| (i, 150 + i as u8)).collect();
    raw(dir.path(), "cancel.raw", 24 * BLOCK, &changed);
    let o = json!({"incremental_from": from, "overwrite": true, "keep_base": true,
                   "poll_interval_ms": 20, "max_bytes_per_second": 1 << 20,
                   "parts_in_flight": 1, "max_parts_in_flight": 1});
    let c = Client::new("aws", &moto().config()).unwrap();
    let e = c
        .start_export(&vol, &opts(out.path(), o.clone()), None)
        .unwrap();
    let t = Instant::now();
    while e.progress().bytes_done < BLOCK as u64 {
        assert!(t.elapsed() < Duration::from_secs(120), "no block arrived");
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

    // The next run adopts the same snapshot, keeps the blocks in the journal and fetches the
    // rest over the same clone; the image equals a full export.
    let r = wait(&c.start_export(&vol, &opts(out.path(), o), None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(report(&r)["mode"], "incremental", "{}", r.to_json());
    assert!(r.bytes_resumed >= BLOCK as u64, "{}", r.to_json());
    assert_eq!(
        r.bytes_resumed + r.bytes_fetched,
        24 * BLOCK as u64,
        "{}",
        r.to_json()
    );
    let second = snapshot_of(&r);
    let full = tempfile::tempdir().unwrap();
    export(&second, full.path(), json!({}));
    assert_same(&img, &full.path().join(format!("{second}.img")));
}

#[test]
fn a_killed_full_run_is_not_resumed_as_an_incremental_one() {
    let dir = tempfile::tempdir().unwrap();
    let n = 24;
    let blocks: Vec<(usize, u8)> = (0..n).map(|i| (i, 10 + i as u8)).collect();
    let (f, _) = raw(dir.path(), "killed.raw", n * BLOCK, &blocks);
    let vol = volume(&f, "");
    let out = tempfile::tempdir().unwrap();
    let r1 = export(&vol, out.path(), json!({"keep_base": true}));
    let from = save(&r1, dir.path(), "r1.json");
    let mut changed = blocks.clone();
    changed[0].1 = 99;
    changed[n - 1].1 = 98;
    raw(dir.path(), "killed.raw", n * BLOCK, &changed);

    // A full run of the new state, killed a third of the way: its snapshot stays tagged for
    // this volume and folder, its temp file holds a third of the blocks.
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
                   "max_parts_in_flight": 2, "poll_interval_ms": 20, "overwrite": true})
            .to_string(),
        )
        .arg(out.path())
        .arg(&vol)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = out.path().join(format!("{vol}.img.hspart.journal"));
    let holes = GIB - (n * BLOCK) as u64;
    support::kill_when_journal_covers(&mut child, &journal, holes + (n * BLOCK / 3) as u64);

    // The incremental run adopts that snapshot, but not the full run's temp file: resumed with
    // only the changed blocks' tokens, the blocks the killed run had not fetched would read as
    // zeros. It starts again from the previous image.
    let r = export(
        &vol,
        out.path(),
        json!({"incremental_from": from, "overwrite": true, "keep_base": true}),
    );
    assert_eq!(report(&r)["mode"], "incremental", "{}", r.to_json());
    assert_eq!(r.bytes_resumed, 0, "{}", r.to_json());
    assert_eq!(r.bytes_fetched, 2 * BLOCK as u64, "{}", r.to_json());
    let second = snapshot_of(&r);
    let full = tempfile::tempdir().unwrap();
    export(&second, full.path(), json!({}));
    assert_same(
        &out.path().join(format!("{vol}.img")),
        &full.path().join(format!("{second}.img")),
    );
}

#[test]
fn an_instance_goes_incrementally_volume_by_volume_and_another_disk_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let inst = ebs("POST", "/ebs/instance");
    let (id, root) = (
        inst["instance"].as_str().unwrap().to_string(),
        inst["root"].as_str().unwrap().to_string(),
    );
    let (f1, _) = raw(dir.path(), "root.raw", 4 * BLOCK, &[(0, 1), (3, 2)]);
    ebs(
        "POST",
        &format!("/ebs/volume?volume={root}&path={}", f1.display()),
    );
    let (f2, _) = raw(dir.path(), "data.raw", 4 * BLOCK, &[(1, 3), (2, 4)]);
    let data = ebs(
        "POST",
        &format!(
            "/ebs/volume?size=1&attach={id}&device=/dev/sdf&path={}",
            f2.display()
        ),
    )["volume"]
        .as_str()
        .unwrap()
        .to_string();
    let out = tempfile::tempdir().unwrap();
    let r1 = export(&id, out.path(), json!({"keep_base": true}));
    assert_eq!(r1.provider["base"]["files"].as_array().unwrap().len(), 2);
    let from = save(&r1, dir.path(), "r1.json");
    raw(dir.path(), "root.raw", 4 * BLOCK, &[(0, 1), (3, 5)]);
    raw(dir.path(), "data.raw", 4 * BLOCK, &[(1, 6), (2, 4)]);
    let r2 = export(
        &id,
        out.path(),
        json!({"incremental_from": from, "overwrite": true, "keep_base": true}),
    );
    let files = r2.provider["incremental"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{}", r2.to_json());
    for f in files {
        assert_eq!(f["mode"], "incremental", "{}", r2.to_json());
        assert_eq!(f["changed_bytes"], BLOCK as u64, "{}", r2.to_json());
    }
    assert_eq!(r2.bytes_fetched, 2 * BLOCK as u64);
    for s in r2.provider["snapshots"].as_array().unwrap() {
        let sid = s["snapshot_id"].as_str().unwrap();
        let vol = s["volume_id"].as_str().unwrap();
        assert_eq!(gets(sid), 1, "{sid}");
        let full = tempfile::tempdir().unwrap();
        export(sid, full.path(), json!({}));
        assert_same(
            &out.path().join(format!("{vol}.img")),
            &full.path().join(format!("{sid}.img")),
        );
    }
    assert!(r2.files.iter().any(|f| f.name == format!("{data}.img")));

    // The instance's base given for another disk: that disk goes in full, saying why.
    let (f3, d3) = raw(dir.path(), "other.raw", 2 * BLOCK, &[(1, 7)]);
    let other = volume(&f3, "");
    let r3 = export(
        &other,
        out.path(),
        json!({"incremental_from": save(&r2, dir.path(), "r2.json")}),
    );
    let rep = report(&r3);
    assert_eq!(rep["mode"], "full", "{}", r3.to_json());
    assert!(
        rep["reason"]
            .as_str()
            .unwrap()
            .contains("no snapshot of volume"),
        "{}",
        r3.to_json()
    );
    let mut head = vec![0u8; d3.len()];
    std::fs::File::open(out.path().join(format!("{other}.img")))
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert!(head == d3);
}

/// Applies a delta's map to the image at `img` (a copy of its base): its `changed` ranges
/// from the delta file, its `zeroed` ranges zeros.
fn apply_delta(img: &Path, delta: &Path, map: &Value) {
    use std::os::unix::fs::FileExt as _;
    let out = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    let d = std::fs::File::open(delta).unwrap();
    assert_eq!(map["size"], out.metadata().unwrap().len(), "{map}");
    let range = |r: &Value| (r[0].as_u64().unwrap(), r[1].as_u64().unwrap());
    for (a, b) in map["changed"].as_array().unwrap().iter().map(range) {
        let mut buf = vec![0u8; (b - a) as usize];
        d.read_exact_at(&mut buf, a).unwrap();
        out.write_all_at(&buf, a).unwrap();
    }
    for (a, b) in map["zeroed"].as_array().unwrap().iter().map(range) {
        out.write_all_at(&vec![0u8; (b - a) as usize], a).unwrap();
    }
}

/// `incremental_output: "delta"` writes only the changed blocks (`<file>.delta`, sparse) and
/// their map (`<file>.delta.json`) — never reading the previous image — and the map applied to
/// the base gives the new volume; a delta is a base for the next delta, not for a complete
/// image (that one goes in full, saying why).
#[test]
fn a_delta_export_writes_the_changed_blocks_and_their_map() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<(usize, u8)> = (0..16).map(|i| (i, 90 + i as u8)).collect();
    let (f, _) = raw(dir.path(), "delta.raw", 24 * BLOCK, &blocks);
    let vol = volume(&f, "");
    let out = tempfile::tempdir().unwrap();
    let r1 = export(&vol, out.path(), json!({"keep_base": true}));
    let from = save(&r1, dir.path(), "r1.json");
    let img1 = out.path().join(format!("{vol}.img"));

    let mut changed = blocks.clone();
    changed[2].1 = 210;
    changed.retain(|b| b.0 != 7);
    changed.push((20, 211));
    raw(dir.path(), "delta.raw", 24 * BLOCK, &changed);
    // The previous image out of reach: a delta does not read it.
    let moved = dir.path().join("moved.img");
    std::fs::rename(&img1, &moved).unwrap();
    let out2 = tempfile::tempdir().unwrap();
    let r2 = export(
        &vol,
        out2.path(),
        json!({"incremental_from": from, "incremental_output": "delta", "keep_base": true}),
    );
    let second = snapshot_of(&r2);
    let name = format!("{vol}.img.{second}.delta");
    assert_eq!(report(&r2)["mode"], "incremental", "{}", r2.to_json());
    assert_eq!(report(&r2)["name"], name.as_str(), "{}", r2.to_json());
    let names: Vec<&str> = r2.files.iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&name.as_str()), "{names:?}");
    assert!(!out2.path().join(format!("{vol}.img")).exists());
    assert_eq!(gets(&second), 2, "{}", r2.to_json());
    let delta = out2.path().join(&name);
    let map: Value =
        serde_json::from_slice(&std::fs::read(out2.path().join(format!("{name}.json"))).unwrap())
            .unwrap();
    assert_eq!(map["format"], "hypersdk-delta/1", "{map}");
    assert_eq!(map["point"], second.as_str(), "{map}");
    assert_eq!(map["base"], snapshot_of(&r1).as_str(), "{map}");
    let b = BLOCK as u64;
    assert_eq!(
        map["changed"],
        json!([[2 * b, 3 * b], [20 * b, 21 * b]]),
        "{map}"
    );
    assert_eq!(map["zeroed"], json!([[7 * b, 8 * b]]), "{map}");
    // Sparse: about the two changed blocks on disk, not the volume.
    let used = std::fs::metadata(&delta).unwrap().blocks() * 512;
    assert!(used <= 4 * b, "the delta takes {used} bytes on disk");
    // The new volume, as a 1 GiB image.
    let expected = dir.path().join("expected.img");
    std::fs::copy(&f, &expected).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&expected)
        .unwrap()
        .set_len(GIB)
        .unwrap();
    apply_delta(&moved, &delta, &map);
    assert_same(&moved, &expected);
    // The new base names the delta.
    assert_eq!(
        r2.provider["base"]["files"][0]["output"],
        "delta",
        "{}",
        r2.to_json()
    );

    // From that delta: another delta works; a complete image goes in full, saying why.
    let from2 = save(&r2, dir.path(), "r2.json");
    let out3 = tempfile::tempdir().unwrap();
    let r3 = export(&vol, out3.path(), json!({"incremental_from": from2}));
    assert_eq!(report(&r3)["mode"], "full", "{}", r3.to_json());
    assert!(
        report(&r3)["reason"]
            .as_str()
            .unwrap()
            .contains("is a delta"),
        "{}",
        r3.to_json()
    );
    assert_same(&out3.path().join(format!("{vol}.img")), &expected);
    let out4 = tempfile::tempdir().unwrap();
    let r4 = export(
        &vol,
        out4.path(),
        json!({"incremental_from": from2, "incremental_output": "delta"}),
    );
    assert_eq!(report(&r4)["mode"], "incremental", "{}", r4.to_json());
    assert_eq!(report(&r4)["changed_bytes"], 0, "{}", r4.to_json());
}

/// A delta's temp file belongs to its base: run 1 (a delta from B to the snapshot S, paced) is
/// cancelled with its partial file kept; run 2, a delta from the older base A to the same S
/// into the same folder, must not resume it — the block that changed between A and B was a
/// hole of run 1's diff, "done" in its journal, and would stay zeros in run 2's delta while its
/// map lists it as changed.
#[test]
fn a_delta_from_another_base_does_not_resume_a_partial_delta() {
    let dir = tempfile::tempdir().unwrap();
    let mut blocks: Vec<(usize, u8)> = (0..12).map(|i| (i, 30 + i as u8)).collect();
    let (f, _) = raw(dir.path(), "chain.raw", 24 * BLOCK, &blocks);
    let vol = volume(&f, "");
    let keep = json!({"keep_base": true});
    let base_a = tempfile::tempdir().unwrap();
    let ra = export(&vol, base_a.path(), keep.clone());
    let from_a = save(&ra, dir.path(), "a.json");
    // A → B: block 2.
    blocks[2].1 = 222;
    raw(dir.path(), "chain.raw", 24 * BLOCK, &blocks);
    let base_b = tempfile::tempdir().unwrap();
    let rb = export(&vol, base_b.path(), keep.clone());
    let from_b = save(&rb, dir.path(), "b.json");
    // B → S: blocks 12..20, new.
    blocks.extend((12..20).map(|i| (i, 40 + i as u8)));
    raw(dir.path(), "chain.raw", 24 * BLOCK, &blocks);
    let s_dir = tempfile::tempdir().unwrap();
    let s = snapshot_of(&export(&vol, s_dir.path(), keep));

    // Run 1: B → S at 1 MiB/s, one block at a time, cancelled after the first, kept.
    let out = tempfile::tempdir().unwrap();
    let o1 = json!({"incremental_from": from_b, "incremental_output": "delta",
                    "keep_partial": true, "poll_interval_ms": 20,
                    "max_bytes_per_second": 1 << 20, "parts_in_flight": 1,
                    "max_parts_in_flight": 1});
    let c = Client::new("aws", &moto().config()).unwrap();
    let e = c.start_export(&s, &opts(out.path(), o1), None).unwrap();
    let t = Instant::now();
    while e.progress().bytes_done < BLOCK as u64 {
        assert!(t.elapsed() < Duration::from_secs(120), "no block arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    e.cancel();
    assert_eq!(wait(&e).status, "cancelled");
    assert!(
        std::fs::read_dir(out.path()).unwrap().count() > 0,
        "the cancelled run kept nothing to resume"
    );

    // Run 2: A → S, same snapshot, same folder.
    let r2 = export(
        &s,
        out.path(),
        // Without re-reading what it keeps (verify_resumed re-derives the journal from the
        // new holes and part CRCs, which would hide a wrong resume).
        json!({"incremental_from": from_a, "incremental_output": "delta",
               "verify_resumed": false}),
    );
    assert_eq!(report(&r2)["mode"], "incremental", "{}", r2.to_json());
    assert_eq!(
        r2.bytes_resumed,
        0,
        "resumed another base's delta: {}",
        r2.to_json()
    );
    let name = format!("{s}.img.{s}.delta");
    let map: Value =
        serde_json::from_slice(&std::fs::read(out.path().join(format!("{name}.json"))).unwrap())
            .unwrap();
    let b = BLOCK as u64;
    assert_eq!(map["changed"][0], json!([2 * b, 3 * b]), "{map}");
    // Base A + the delta = S.
    let img = base_a.path().join(format!("{vol}.img"));
    apply_delta(&img, &out.path().join(&name), &map);
    assert_same(&img, &s_dir.path().join(format!("{vol}.img")));
}
