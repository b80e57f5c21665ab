//! Azure exports through the safe Rust API against Azurite (real page blobs, HTTPS, stored
//! access policies) behind the ARM and Entra ID stand-in of tests/peers/azure.
#![cfg(feature = "azure")]

mod support;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hypersdk::{Client, ErrorKind, Phase};
use serde_json::json;
use support::azure::azure;
use support::wait_long as wait;
use support::{Recorder, opts, wait_until};

/// A fixed VHD (qemu-img, `-o subformat=fixed`) of a 48 MiB disk whose data sits in three
/// scattered regions; everything else was never written. Returns (path, bytes, written bytes
/// as 512-byte pages that are not all zeros).
struct Fixture {
    path: PathBuf,
    bytes: Vec<u8>,
    written: u64,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = azure().dir.path();
        let raw = dir.join("disk.raw");
        let mut data = vec![0u8; 48 << 20];
        for (at, len, seed) in [
            (1 << 20, 300_000, 3u64),
            (20 << 20, 1536, 5),
            (40 << 20, (4 << 20) + 17_000, 9),
        ] {
            data[at..at + len].copy_from_slice(&support::server::pattern(len, seed));
        }
        std::fs::write(&raw, &data).unwrap();
        let path = dir.join("disk.vhd");
        let ok = Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed"])
            .arg(&raw)
            .arg(&path)
            .status()
            .expect("qemu-img (apt: qemu-utils)")
            .success();
        assert!(ok, "qemu-img convert failed");
        let bytes = std::fs::read(&path).unwrap();
        let written = bytes
            .chunks(512)
            .filter(|p| p.iter().any(|&b| b != 0))
            .count() as u64
            * 512;
        Fixture {
            path,
            bytes,
            written,
        }
    })
}

fn client() -> Client {
    Client::new("azure", &azure().config()).unwrap()
}

/// A counter of one disk in the stand-in (each test uses its own disks: tests run in parallel).
fn stat(disk: &str, k: &str) -> u64 {
    azure().disk(disk)[k].as_u64().unwrap()
}

fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

/// No file of the output folder carries a final name (only temp files may stay, and only with
/// keep_partial).
fn no_final_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(n.contains(".hspart"), "{n} was left at a final name");
    }
}

fn no_sas(text: &str) {
    assert!(!text.contains("sig="), "a SAS signature leaked: {text}");
    assert!(!text.contains("si=g"), "a SAS leaked: {text}");
}

#[test]
fn disk_export_fetches_only_written_pages_and_revokes() {
    let az = azure();
    let f = fixture();
    az.add("disks", "sparse-1", &f.path, "Unattached", None);
    let out = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let e = client()
        .start_export(
            "sparse-1",
            &opts(out.path(), json!({"poll_interval_ms": 50})),
            Some(rec.callback()),
        )
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    let file = out.path().join("sparse-1.vhd");
    assert_eq!(std::fs::read(&file).unwrap(), f.bytes);
    // Only the written pages crossed the wire (plus the one-byte probe), and the unwritten
    // ones are holes on disk.
    assert!(
        r.bytes_fetched <= f.written + 1,
        "fetched {} for {} written",
        r.bytes_fetched,
        f.written
    );
    assert!(
        r.bytes_fetched >= f.written * 9 / 10,
        "fetched {}",
        r.bytes_fetched
    );
    assert!(
        allocated(&file) < f.written + (4 << 20),
        "{} bytes allocated for {} written",
        allocated(&file),
        f.written
    );
    let phases = rec.check();
    assert!(phases.contains(&Phase::WaitingForCloud), "{phases:?}");
    let s = az.disk("sparse-1");
    assert_eq!(
        (s["grants"].as_u64(), s["revokes"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(r.provider["revoked"], true);
    assert_eq!(s["active_policies"], 0, "{s}");
    assert_eq!(s["state"], "Unattached");
    // The revoked SAS really stops working.
    let sas = s["last_sas"].as_str().unwrap().to_string();
    let status = support::block_on_peer(async {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(az.ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap()
            .get(&sas)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(
        status.as_u16(),
        403,
        "the SAS still works after endGetAccess"
    );
    no_sas(&r.to_json());
}

#[test]
fn snapshot_by_arm_id_and_blob_url_with_sas() {
    let az = azure();
    let f = fixture();
    az.add("snapshots", "snap-1", &f.path, "Unattached", None);
    let id = format!(
        "/subscriptions/{}/resourceGroups/rg1/providers/Microsoft.Compute/snapshots/snap-1",
        az.s("subscription")
    );
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                &id,
                &opts(out.path(), json!({"poll_interval_ms": 50})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        std::fs::read(out.path().join("snap-1.vhd")).unwrap(),
        f.bytes
    );

    // A page blob URL with its own SAS: no ARM call, same sparse download.
    az.add("disks", "blob-src", &f.path, "Unattached", None);
    let sas = az.sas("blob-src");
    let r = wait(
        &client()
            .start_export(
                &sas,
                &opts(out.path(), json!({"file_name": "from-url.vhd"})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        std::fs::read(out.path().join("from-url.vhd")).unwrap(),
        f.bytes
    );
    assert!(r.bytes_fetched <= f.written + 1);
    assert_eq!(stat("blob-src", "grants"), 0, "a blob URL needs no grant");
    no_sas(&r.to_json());
}

#[test]
fn blob_url_without_sas_is_read_with_an_entra_token() {
    let az = azure();
    let f = fixture();
    let blob = az.add("disks", "token-blob", &f.path, "Unattached", None)["blob"]
        .as_str()
        .unwrap()
        .to_string();
    let issued = az.stats()["storage_tokens_issued"].as_u64().unwrap_or(0);
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(&blob, &opts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(&r.files[0].path).unwrap(), f.bytes);
    assert!(
        r.bytes_fetched <= f.written + 1,
        "fetched {}",
        r.bytes_fetched
    );
    assert!(
        az.stats()["storage_tokens_issued"].as_u64().unwrap_or(0) > issued,
        "no storage token was asked for"
    );
    assert_eq!(stat("token-blob", "grants"), 0);

    // The same blob by a host name the config does not trust with a token (the server of a URL
    // is the user's input): refused before any request, naming the key that would allow it.
    let issued = az.stats()["storage_tokens_issued"].as_u64().unwrap_or(0);
    let elsewhere = blob.replace("127.0.0.1", "localhost");
    let e = client()
        .start_export(&elsewhere, &opts(out.path(), json!({})), None)
        .err()
        .expect("a token for an unknown host");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("token_hosts"), "{e}");
    assert_eq!(
        az.stats()["storage_tokens_issued"].as_u64().unwrap_or(0),
        issued
    );
}

#[test]
fn vm_with_an_attached_disk_goes_through_a_snapshot_that_is_deleted() {
    let az = azure();
    let f = fixture();
    az.add("disks", "vm1-os", &f.path, "Reserved", None);
    az.add("disks", "vm1-data0", &f.path, "Unattached", None);
    // Attached to the running VM: cannot be granted; exported through a snapshot.
    az.add("disks", "vm1-data1", &f.path, "Attached", None);
    az.add_vm("vm1", "vm1-os", &[(1, "vm1-data1"), (0, "vm1-data0")]);
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "vm:vm1",
                &opts(out.path(), json!({"poll_interval_ms": 50})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let names: Vec<&str> = r.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["vm1-os.vhd", "vm1-data0.vhd", "vm1-data1.vhd"],
        "OS first, then by LUN"
    );
    for n in names {
        assert_eq!(std::fs::read(out.path().join(n)).unwrap(), f.bytes, "{n}");
    }
    let s = az.disk("vm1-data1");
    assert_eq!(
        (
            s["snapshots_made"].as_u64(),
            s["snapshots_deleted"].as_u64()
        ),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(s["snapshots_left"], json!([]), "{s}");
    assert_eq!(
        (s["grants"].as_u64(), s["revokes"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(r.provider["snapshots_made"].as_array().unwrap().len(), 1);
    for d in ["vm1-os", "vm1-data0"] {
        let s = az.disk(d);
        assert_eq!(
            (
                s["grants"].as_u64(),
                s["revokes"].as_u64(),
                s["snapshots_made"].as_u64()
            ),
            (Some(1), Some(1), Some(0)),
            "{d}: {s}"
        );
    }
    // Nothing about the VM's disks changed.
    assert_eq!(s["state"], "Attached");
    assert_eq!(az.disk("vm1-os")["state"], "Reserved");

    // Without snapshot_attached, the attached disk is a clear error, before any grant.
    let e = client()
        .export(
            "vm1-data1",
            &opts(out.path(), json!({"snapshot_attached": false})),
            None,
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState, "{e:?}");
    assert!(e.message.contains("snapshot_attached"), "{}", e.message);
    assert_eq!(
        stat("vm1-data1", "grants"),
        1,
        "no grant for a refused disk"
    );
}

#[test]
fn a_stale_stored_md5_on_a_written_disk_is_not_trusted() {
    // Put Page never updates a page blob's stored MD5: on a disk written since it was made it
    // is stale (here: one that matches nothing). The export is verified by per-range MD5s and
    // the exact size instead, and says so.
    let az = azure();
    let f = fixture();
    az.add(
        "disks",
        "stale-md5",
        &f.path,
        "Unattached",
        Some("AAAAAAAAAAAAAAAAAAAAAA=="),
    );
    let out = tempfile::tempdir().unwrap();
    let r = client()
        .export(
            "stale-md5",
            &opts(out.path(), json!({"poll_interval_ms": 50})),
            None,
        )
        .unwrap();
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        std::fs::read(out.path().join("stale-md5.vhd")).unwrap(),
        std::fs::read(&f.path).unwrap()
    );
    assert!(r.files[0].checksum.is_none(), "a stored MD5 was used");
    assert!(r.files[0].size_verified);
    assert_eq!(
        r.provider["disks"][0]["checks"],
        json!(["size", "range_md5"])
    );
    assert_eq!(stat("stale-md5", "revokes"), 1);
}

#[test]
fn an_attached_premium_v2_disk_goes_through_an_incremental_snapshot_read_once_copied() {
    // DiskRP refuses full snapshots of Premium SSD v2 and Ultra disks, and their incremental
    // snapshots are copied in the background first: a grant before the copy is done is refused.
    let az = azure();
    let f = fixture();
    az.add("disks", "pv2", &f.path, "Attached", None);
    az.faults("pv2", json!({"sku": "PremiumV2_LRS"}));
    let out = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let r = wait(
        &client()
            .start_export(
                "pv2",
                &opts(out.path(), json!({"poll_interval_ms": 50})),
                Some(rec.callback()),
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(out.path().join("pv2.vhd")).unwrap(), f.bytes);
    let s = az.disk("pv2");
    assert_eq!(s["incremental_snapshots"].as_u64(), Some(1), "{s}");
    assert_eq!(s["snapshots_left"], json!([]), "{s}");
    let waited = rec
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|p| p.phase == Phase::WaitingForCloud && p.message.contains("copying snapshot"));
    assert!(
        waited,
        "the background copy was not awaited as a cloud wait"
    );
}

#[test]
fn page_ranges_are_listed_in_segments_and_joined_across_their_edges() {
    // Over a whole large, fragmented disk Get Page Ranges can time out on the service, so it
    // is asked a segment at a time. With 1 MiB segments the fixture's regions cross segment
    // edges (one spans five): the joined ranges must still fetch exactly the written pages.
    let az = azure();
    let f = fixture();
    az.add("disks", "segmented", &f.path, "Unattached", None);
    let out = tempfile::tempdir().unwrap();
    let r = client()
        .export(
            "segmented",
            &opts(
                out.path(),
                json!({"poll_interval_ms": 50, "page_ranges_segment_mib": 1}),
            ),
            None,
        )
        .unwrap();
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        std::fs::read(out.path().join("segmented.vhd")).unwrap(),
        f.bytes
    );
    assert!(
        r.bytes_fetched <= f.written + 1 && r.bytes_fetched >= f.written * 9 / 10,
        "fetched {} for {} written",
        r.bytes_fetched,
        f.written
    );
    let e = client()
        .export(
            "segmented",
            &opts(
                out.path(),
                json!({"page_ranges_segment_mib": 0, "overwrite": true}),
            ),
            None,
        )
        .unwrap_err();
    assert!(e.message.contains("page_ranges_segment_mib"), "{e:?}");
}

#[test]
fn vhdx_is_asked_only_for_4k_sector_disks_and_refused_elsewhere() {
    // GrantAccessData.fileFormat VHDX is for VHDX-format snapshots (4096-byte sectors), not a
    // conversion: a 512-byte-sector disk is refused before anything is made, saying why.
    let az = azure();
    let f = fixture();
    az.add("disks", "sector512", &f.path, "Unattached", None);
    az.add("disks", "sector4k", &f.path, "Unattached", None);
    az.faults("sector4k", json!({"logical_sector_size": 4096}));
    let out = tempfile::tempdir().unwrap();
    let e = client()
        .export(
            "sector512",
            &opts(out.path(), json!({"file_format": "vhdx"})),
            None,
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e:?}");
    assert!(
        e.message.contains("4096") && e.message.contains("leave file_format at vhd"),
        "{e:?}"
    );
    // Refused before any grant was asked (the service would refuse it too).
    assert_eq!(azure().disk("sector512")["refused_vhdx"], json!(null));
    assert_eq!(stat("sector512", "grants"), 0, "a grant was asked");
    let r = client()
        .export(
            "sector4k",
            &opts(
                out.path(),
                json!({"file_format": "vhdx", "poll_interval_ms": 50}),
            ),
            None,
        )
        .unwrap();
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert!(out.path().join("sector4k.vhdx").exists());
    // The default asks for no format at all (VHD), whatever the sectors.
    let r = client()
        .export(
            "sector4k",
            &opts(out.path(), json!({"poll_interval_ms": 50})),
            None,
        )
        .unwrap();
    assert_eq!(r.status, "done", "{}", r.to_json());
}

/// The stand-in's VM guest state and security metadata blobs (`GUEST_BLOBS` in
/// tests/peers/azure/arm_standin.py).
fn guest_blob(mul: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * mul + 1) % 251) as u8).collect()
}

#[test]
fn a_confidential_vm_disk_brings_its_guest_state_and_security_metadata() {
    // Trusted Launch and confidential VMs keep their guest state (vTPM, UEFI variables) apart
    // from the disk; asked with getSecureVMGuestStateSAS, the grant gives its SAS (and a
    // confidential VM's security metadata's). Dropping it would lose the VM's TPM.
    let az = azure();
    let f = fixture();
    az.add("disks", "cvm-os", &f.path, "Unattached", None);
    az.faults(
        "cvm-os",
        json!({"security_type": "ConfidentialVM_DiskEncryptedWithPlatformKey"}),
    );
    az.add("disks", "tl-os", &f.path, "Unattached", None);
    az.faults("tl-os", json!({"security_type": "TrustedLaunch"}));
    let out = tempfile::tempdir().unwrap();
    let r = client()
        .export(
            "cvm-os",
            &opts(out.path(), json!({"poll_interval_ms": 50})),
            None,
        )
        .unwrap();
    assert_eq!(r.status, "done", "{}", r.to_json());
    let names: Vec<&str> = r.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["cvm-os.vmgs", "cvm-os.security-metadata", "cvm-os.vhd"]
    );
    assert_eq!(
        std::fs::read(out.path().join("cvm-os.vmgs")).unwrap(),
        guest_blob(7, 64 * 1024)
    );
    assert_eq!(
        std::fs::read(out.path().join("cvm-os.security-metadata")).unwrap(),
        guest_blob(11, 4096)
    );
    assert_eq!(stat("cvm-os", "guest_state_grants"), 1);
    assert_eq!(
        r.provider["disks"][0]["security_type"],
        "ConfidentialVM_DiskEncryptedWithPlatformKey"
    );
    // Trusted Launch: the guest state, no security metadata.
    let r = client()
        .export(
            "tl-os",
            &opts(out.path(), json!({"poll_interval_ms": 50})),
            None,
        )
        .unwrap();
    let names: Vec<&str> = r.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["tl-os.vmgs", "tl-os.vhd"], "{}", r.to_json());
    assert_eq!(stat("tl-os", "revokes"), 1);
}

#[test]
fn cancel_while_granting_and_while_snapshotting_cleans_up() {
    let az = azure();
    let f = fixture();
    az.add("disks", "held", &f.path, "Unattached", None);
    az.add("disks", "held-attached", &f.path, "Attached", None);
    az.faults("held", json!({"hold": ["grant"]}));
    az.faults("held-attached", json!({"hold": ["snapshot"]}));
    let out = tempfile::tempdir().unwrap();

    // The grant never finishes: cancel while waiting for it → endGetAccess all the same.
    let e = client()
        .start_export(
            "held",
            &opts(out.path(), json!({"poll_interval_ms": 50})),
            None,
        )
        .unwrap();
    wait_until(&e, "waiting for the grant", |p| {
        p.phase == Phase::WaitingForCloud && p.message.contains("read access")
    });
    let t = Instant::now();
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "cancel took {:?}",
        t.elapsed()
    );
    assert_eq!(stat("held", "revokes"), 1, "cancelled grant not revoked");
    assert_eq!(az.disk("held")["active_policies"], 0);
    assert_eq!(r.provider["revoked"], true);

    // The snapshot never finishes: cancel → the snapshot is deleted.
    let e = client()
        .start_export(
            "held-attached",
            &opts(out.path(), json!({"poll_interval_ms": 50})),
            None,
        )
        .unwrap();
    // Once the snapshot's operation is polled, its PUT has reached ARM (a cancel before that
    // leaves nothing to delete: the prepare ends at once, and the ledger's delete finds none).
    wait_until(&e, "waiting for the snapshot", |p| {
        p.message.contains("snapshot of")
    });
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    let s = az.disk("held-attached");
    assert_eq!(
        s["snapshots_deleted"], 1,
        "cancelled snapshot left behind: {s}"
    );
    assert_eq!(s["snapshots_left"], json!([]), "{s}");
    no_final_files(out.path());
}

#[test]
fn cancel_while_an_arm_call_hangs_ends_at_once() {
    let az = azure();
    let f = fixture();
    az.add("disks", "silent", &f.path, "Unattached", None);
    az.faults("silent", json!({"hang_get_secs": 30}));
    let out = tempfile::tempdir().unwrap();
    let e = client()
        .start_export("silent", &opts(out.path(), json!({})), None)
        .unwrap();
    wait_until(&e, "preparing", |p| p.phase == Phase::Preparing);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a cancel waited {:?} for a silent ARM call",
        t.elapsed()
    );
    assert_eq!(stat("silent", "grants"), 0);
}

#[test]
fn a_failed_renewal_is_tried_again_while_the_sas_still_works() {
    let az = azure();
    let f = fixture();
    az.add("disks", "renew-flaky", &f.path, "Unattached", None);
    az.faults(
        "renew-flaky",
        json!({"sas_ttl_secs": 6, "renewal_failures": 1}),
    );
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "renew-flaky",
                &opts(
                    out.path(),
                    json!({"poll_interval_ms": 50, "max_bytes_per_second": f.written / 10}),
                ),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        std::fs::read(out.path().join("renew-flaky.vhd")).unwrap(),
        f.bytes
    );
    let s = az.disk("renew-flaky");
    assert!(
        s["grants"].as_u64().unwrap() >= 3,
        "first, failed, renewed: {s}"
    );
}

#[test]
fn cancel_while_downloading_revokes_and_leaves_nothing() {
    let az = azure();
    let f = fixture();
    az.add("disks", "slow", &f.path, "Unattached", None);
    let out = tempfile::tempdir().unwrap();
    let e = client()
        .start_export(
            "slow",
            &opts(
                out.path(),
                json!({"poll_interval_ms": 50, "max_bytes_per_second": 1_000_000, "keep_partial": false}),
            ),
            None,
        )
        .unwrap();
    wait_until(&e, "bytes arriving", |p| {
        p.phase == Phase::Downloading && p.bytes_done > 0
    });
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    assert_eq!(stat("slow", "revokes"), 1);
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left after cancel: {left:?}");
}

#[test]
fn failed_grant_wrong_secret_and_unknown_disk_are_clear_errors() {
    let az = azure();
    let f = fixture();
    az.add("disks", "grant-fails", &f.path, "Unattached", None);
    let out = tempfile::tempdir().unwrap();
    az.faults("grant-fails", json!({"grant_fails": true}));
    let e = client()
        .export(
            "grant-fails",
            &opts(out.path(), json!({"poll_interval_ms": 50})),
            None,
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Remote, "{e:?}");
    assert!(e.message.contains("grant failed"), "{}", e.message);
    assert_eq!(
        stat("grant-fails", "revokes"),
        1,
        "a failed grant is revoked all the same"
    );
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());

    let bad_secret = az.stats()["bad_secret"].as_u64().unwrap();
    let wrong = "not-the-secret-XYZ";
    let c = Client::new("azure", &az.config_with_secret(wrong)).unwrap();
    let e = c
        .export("grant-fails", &opts(out.path(), json!({})), None)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e:?}");
    assert!(!e.message.contains(wrong), "{}", e.message);
    assert!(az.stats()["bad_secret"].as_u64().unwrap() > bad_secret);

    let e = client()
        .export("no-such-disk", &opts(out.path(), json!({})), None)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    assert!(e.message.contains("no-such-disk"), "{}", e.message);

    // Hostile names never reach a URL.
    let e = client()
        .export("a'b\"c; rm -rf /", &opts(out.path(), json!({})), None)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e:?}");
    // Unknown option keys are named.
    let e = client()
        .start_export(
            "x",
            &opts(out.path(), json!({"snapshot_atached": true})),
            None,
        )
        .err()
        .unwrap();
    assert!(e.to_string().contains("snapshot_atached"), "{e}");
}

#[test]
fn sas_about_to_expire_is_renewed_during_the_download() {
    let az = azure();
    let f = fixture();
    az.add("disks", "renew", &f.path, "Unattached", None);
    // Every SAS lives 6 s (Azurite enforces its `se`); the download takes ~12 s.
    az.faults("renew", json!({"sas_ttl_secs": 6}));
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "renew",
                &opts(
                    out.path(),
                    json!({"poll_interval_ms": 50, "max_bytes_per_second": f.written / 12}),
                ),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        std::fs::read(out.path().join("renew.vhd")).unwrap(),
        f.bytes
    );
    assert!(
        r.provider["sas_renewals"].as_u64().unwrap() >= 1,
        "{}",
        r.to_json()
    );
    let s = az.disk("renew");
    assert!(s["grants"].as_u64().unwrap() >= 2, "{s}");
    // One endGetAccess revokes every SAS of the disk.
    assert_eq!(
        (s["revokes"].as_u64(), s["active_policies"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
}

#[test]
fn killed_export_resumes_under_a_new_sas_with_only_missing_pages() {
    let az = azure();
    let f = fixture();
    az.add("disks", "crash", &f.path, "Unattached", None);
    let fetch = support::fetch_example();
    let out = tempfile::tempdir().unwrap();
    let conf = az.dir.path().join("azure-config.json");
    std::fs::write(&conf, az.config()).unwrap();
    let mut child = Command::new(&fetch)
        .arg("--provider")
        .arg("azure")
        .arg("--config")
        .arg(format!("@{}", conf.display()))
        .arg("--options")
        .arg(json!({"poll_interval_ms": 50, "part_size": 262144, "parts_in_flight": 2, "max_bytes_per_second": 1_000_000}).to_string())
        .arg(out.path())
        .arg("crash")
        .stdout(std::fs::File::create(az.dir.path().join("fetch.out")).unwrap())
        .spawn()
        .unwrap();
    let journal = out.path().join("crash.vhd.hspart.journal");
    // Holes count as done from the start: wait for a third of the written pages beyond them.
    let holes = f.bytes.len() as u64 - f.written;
    let t = Instant::now();
    while support::journal_covered(&journal) < holes + f.written / 3 {
        if t.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!(
                "the journal never covered a third: {} of {}; fetch said {}",
                support::journal_covered(&journal),
                holes + f.written / 3,
                std::fs::read_to_string(az.dir.path().join("fetch.out")).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.path().join("crash.vhd").exists());

    let grants = stat("crash", "grants");
    let r = wait(
        &client()
            .start_export(
                "crash",
                &opts(out.path(), json!({"poll_interval_ms": 50})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        std::fs::read(out.path().join("crash.vhd")).unwrap(),
        f.bytes
    );
    assert_eq!(
        stat("crash", "grants"),
        grants + 1,
        "a new grant (new SAS) for the second run"
    );
    let file = &r.files[0];
    assert!(
        file.resumed_bytes >= f.written / 3,
        "resumed only {}",
        file.resumed_bytes
    );
    assert!(
        file.resumed_bytes + file.fetched_bytes <= f.written + 512,
        "{} + {} for {} written",
        file.resumed_bytes,
        file.fetched_bytes,
        f.written
    );
}

#[test]
fn list_follows_pages_and_gives_ids_an_export_takes() {
    let az = azure();
    let f = fixture();
    for n in ["lst-a", "lst-b", "lst-c"] {
        az.add("disks", n, &f.path, "Unattached", None);
    }
    az.add_vm("lst-vm", "lst-a", &[(0, "lst-b")]);
    // Pages of two: five or more resources need nextLink to be followed.
    let all = client().list_sources("").unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    for n in ["lst-a", "lst-b", "lst-c", "lst-vm"] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }
    let a = all.iter().find(|s| s.name == "lst-a").unwrap();
    assert_eq!(a.kind, "disk");
    assert_eq!(a.size_bytes, Some(f.bytes.len() as u64));
    let vm = all.iter().find(|s| s.name == "lst-vm").unwrap();
    assert_eq!(vm.kind, "vm");
    // The id is an export source as it stands.
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                &a.id,
                &opts(out.path(), json!({"poll_interval_ms": 50})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let only = client()
        .list_sources(&json!({"kind": "vm", "resource_group": "rg1"}).to_string())
        .unwrap();
    assert!(only.iter().all(|s| s.kind == "vm") && only.iter().any(|s| s.name == "lst-vm"));
    let e = client()
        .list_sources(&json!({"resource_group": "a b/c"}).to_string())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

/// Workload identity (AKS): the federated token in `federated_token_file` is exchanged at
/// Entra ID as a client assertion, and the export runs with the token that gives; a token the
/// app does not trust is an authentication error, and a missing file is named.
#[test]
fn workload_identity_exchanges_the_federated_token_file() {
    let az = azure();
    let f = fixture();
    az.add("disks", "wi-disk", &f.path, "Unattached", None);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let config = |file: &std::path::Path| {
        let mut c: serde_json::Value = serde_json::from_str(&az.config()).unwrap();
        let m = c.as_object_mut().unwrap();
        m.remove("client_secret");
        m.insert("credential".into(), "workload_identity".into());
        m.insert("federated_token_file".into(), file.to_str().unwrap().into());
        c.to_string()
    };
    std::fs::write(&token_file, az.s("federated_token")).unwrap();
    let before = az.stats()["assertion_tokens_issued"].as_u64().unwrap_or(0);
    let out = tempfile::tempdir().unwrap();
    let r = Client::new("azure", &config(&token_file))
        .unwrap()
        .export("wi-disk", &opts(out.path(), json!({})), None)
        .unwrap();
    assert!(!r.files.is_empty());
    assert!(az.stats()["assertion_tokens_issued"].as_u64().unwrap() > before);

    std::fs::write(&token_file, "eyJ.not-trusted.x").unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = Client::new("azure", &config(&token_file))
        .unwrap()
        .export("wi-disk", &opts(out.path(), json!({})), None)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e:?}");
    assert!(!e.message.contains("not-trusted"), "{}", e.message);

    // A token file that is not there: named, whether the client or the export finds it.
    let message = match Client::new("azure", &config(&dir.path().join("missing"))) {
        Err(e) => e.to_string(),
        Ok(c) => {
            c.export("wi-disk", &opts(out.path(), json!({})), None)
                .unwrap_err()
                .message
        }
    };
    assert!(message.contains("missing"), "{message}");
}
