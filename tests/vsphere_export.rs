//! vSphere exports through the safe Rust API against vcsim (tests/peers/vcsim).
#![cfg(feature = "vsphere")]

mod support;

use std::time::{Duration, Instant};

use hypersdk::{Client, ErrorKind, Phase};
use serde_json::json;
use sha2::Digest as _;
use support::vcsim::Peer;
use support::wait_long as wait;
use support::{Recorder, opts};

#[test]
fn ovf_export_of_a_two_disk_vm_matches_the_datastore_and_reimports() {
    let peer = Peer::start(&[]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let e = client
        .start_export(
            "/DC0/vm/DC0_H0_VM0",
            &opts(out.path(), json!({})),
            Some(rec.callback()),
        )
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    let phases = rec.check();
    assert!(
        phases.contains(&Phase::WaitingForCloud) && phases.contains(&Phase::Downloading),
        "{phases:?}"
    );

    // Disks equal the datastore's bytes.
    let disks = peer.disk_files();
    assert_eq!(r.files.len(), 2);
    for (f, src) in r.files.iter().zip(&disks) {
        assert_eq!(
            std::fs::read(&f.path).unwrap(),
            std::fs::read(src).unwrap(),
            "{}",
            f.name
        );
    }
    // The manifest verifies every file, the descriptor included.
    let mf = std::fs::read_to_string(out.path().join("DC0_H0_VM0.mf")).unwrap();
    let mut lines = 0;
    for line in mf.lines() {
        let (name, sum) = line
            .strip_prefix("SHA256(")
            .unwrap()
            .split_once(")= ")
            .unwrap();
        let data = std::fs::read(out.path().join(name)).unwrap();
        assert_eq!(hex::encode(sha2::Sha256::digest(&data)), sum, "{name}");
        lines += 1;
    }
    assert_eq!(lines, 3);
    // The descriptor was made after the download, with the real file sizes.
    let ovf = std::fs::read_to_string(out.path().join("DC0_H0_VM0.ovf")).unwrap();
    for f in &r.files {
        assert!(
            ovf.contains(&format!("ovf:href=\"{}\" ovf:id=\"file", f.name)),
            "{ovf}"
        );
        assert!(
            ovf.contains(&format!("ovf:size=\"{}\"", f.size)),
            "size of {} missing",
            f.name
        );
    }
    let st = peer.stats();
    assert_eq!(
        (st["completed"].as_i64(), st["aborted"].as_i64()),
        (Some(1), Some(0)),
        "{st}"
    );
    assert_eq!(r.extra_files, vec!["DC0_H0_VM0.ovf", "DC0_H0_VM0.mf"]);

    // govc imports the package back into vcsim.
    let o = peer
        .govc()
        .args(["import.ovf", "-name", "reimported"])
        .arg(out.path().join("DC0_H0_VM0.ovf"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "govc import.ovf: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = peer
        .govc()
        .args(["vm.info", "reimported"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("/DC0/vm/reimported"));
}

#[test]
fn ova_has_the_descriptor_first_then_the_manifest_then_the_disks() {
    let peer = Peer::start(&[]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let moref = peer.moref("DC0_H0_VM0");
    let r = wait(
        &client
            .start_export(
                &moref,
                &opts(out.path(), json!({"format": "ova", "name": "backup"})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["backup.ova"], "only the OVA is left");
    let mut ar = tar::Archive::new(std::fs::File::open(out.path().join("backup.ova")).unwrap());
    let members: Vec<(String, Vec<u8>)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            (e.path().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    let order: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        order,
        vec![
            "backup.ovf",
            "backup.mf",
            "backup-disk-0.vmdk",
            "backup-disk-1.vmdk"
        ]
    );
    assert_eq!(members[2].1, std::fs::read(&peer.disk_files()[0]).unwrap());
}

#[test]
fn keep_alive_runs_on_a_short_lease() {
    // Lease timeout 4 s → keep-alive every second; the download takes about 4 s.
    let peer = Peer::start(&["-lease-timeout", "4", "-nfc-rate", "1000000"]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export("DC0_H0_VM0", &opts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let st = peer.stats();
    let at: Vec<i64> = st["progress_at_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(at.len() >= 3, "keep-alive calls: {st}");
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] <= 2000,
            "keep-alive gap {} ms on a 4 s lease",
            w[1] - w[0]
        );
    }
    let pct: Vec<i64> = st["progress_percent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(
        pct.windows(2).all(|w| w[0] <= w[1]) && *pct.last().unwrap() == 100,
        "percent {pct:?}"
    );
}

#[test]
fn cancel_mid_download_aborts_the_lease() {
    let peer = Peer::start(&["-nfc-rate", "500000"]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = client
        .start_export("/DC0/vm/DC0_H0_VM0", &opts(out.path(), json!({})), None)
        .unwrap();
    while e.progress().bytes_done < 200_000 {
        assert!(
            !e.progress().phase.is_terminal(),
            "ended early: {:?}",
            e.result().map(|r| r.to_json())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The lease gives no sizes here: the total is the disks' capacity, an estimate, not 0.
    let p = e.progress();
    assert!(
        p.bytes_total >= 3 << 20 && p.bytes_done < p.bytes_total,
        "{p:?}"
    );
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled");
    let st = peer.stats();
    assert_eq!(st["aborted"].as_i64(), Some(1), "{st}");
    assert_eq!(st["completed"].as_i64(), Some(0), "{st}");
    // The running VM's export snapshot is removed after the cancel too.
    assert_snapshot_made_and_removed(&st, 1);
    // The lease is gone: its disk URL now answers 404.
    let path = st["nfc_paths"][0].as_str().unwrap().to_string();
    let (status, _) = support::vcsim::http_get(&peer.url().replace("/sdk", &path), &peer.ca_file());
    assert_eq!(status, 404);
    assert!(!out.path().join("DC0_H0_VM0.ovf").exists());
    assert!(!out.path().join("DC0_H0_VM0-disk-0.vmdk").exists());
}

/// A cancel while the provider's after-download step hangs (a vCenter slow to answer
/// CreateDescriptor) ends the export at once, aborts the lease and leaves no final file.
#[test]
fn cancel_while_the_descriptor_is_made_ends_at_once() {
    let peer = Peer::start(&["-descriptor-delay-ms", "20000"]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = client
        .start_export("DC0_H0_VM0", &opts(out.path(), json!({})), None)
        .unwrap();
    let t = Instant::now();
    while e.progress().phase != Phase::Finalizing {
        assert!(
            e.result().is_none(),
            "ended early: {:?}",
            e.result().map(|r| r.to_json())
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "never reached finalizing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let cancelled_at = Instant::now();
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "the cancel waited {:?} for the descriptor",
        cancelled_at.elapsed()
    );
    let st = peer.stats();
    assert_eq!(st["aborted"].as_i64(), Some(1), "{st}");
    assert_snapshot_made_and_removed(&st, 1);
    assert!(!out.path().join("DC0_H0_VM0.ovf").exists());
    assert!(!out.path().join("DC0_H0_VM0-disk-0.vmdk").exists());
}

#[test]
fn wrong_password_is_an_auth_error_without_the_password() {
    let peer = Peer::start(&[]);
    let cfg = json!({"url": peer.url(), "username": "admin", "password": "wrong-pw-123", "ca_bundle_path": peer.ca_file()});
    let e = Client::new("vsphere", &cfg.to_string()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains("wrong-pw-123"));
    // Without the CA, the server's certificate is refused, at once and saying what to do.
    let cfg = json!({"url": peer.url(), "username": "admin", "password": "s3cret-pass"});
    let t = std::time::Instant::now();
    let e = Client::new("vsphere", &cfg.to_string()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    assert!(e.to_string().contains("ca_bundle_pem"), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "retried: {:?}",
        t.elapsed()
    );
}

#[test]
fn unknown_vm_is_not_found() {
    let peer = Peer::start(&[]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    for src in ["/DC0/vm/nope", "no-such-vm", "vm-99999"] {
        let r = wait(
            &client
                .start_export(src, &opts(out.path(), json!({})), None)
                .unwrap(),
        );
        let err = r
            .error()
            .unwrap_or_else(|| panic!("{src}: {}", r.to_json()));
        assert_eq!(err.kind, ErrorKind::NotFound, "{src}: {}", err.message);
    }
    assert_eq!(peer.stats()["exports"].as_i64(), Some(0));
}

#[test]
fn list_shows_every_vm_with_its_id_and_power_state() {
    let peer = Peer::start(&[]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let all = client.list_sources("").unwrap();
    let vm0 = all
        .iter()
        .find(|s| s.name == "DC0_H0_VM0")
        .unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(vm0.kind, "vm");
    assert_eq!(vm0.id, peer.moref("DC0_H0_VM0"));
    assert_eq!(vm0.state.as_deref(), Some("poweredOn"));
    assert!(
        all.len() >= 2,
        "vcsim's default inventory has several VMs: {all:?}"
    );
    let one = client
        .list_sources(&json!({"name_contains": "h0_vm1"}).to_string())
        .unwrap();
    assert_eq!(one.len(), 1, "{one:?}");
    // The id it gives is one an export takes.
    assert!(one[0].id.starts_with("vm-"), "{one:?}");
}

#[test]
fn failing_lease_is_an_error_and_is_aborted() {
    let peer = Peer::start(&["-error-vm", "DC0_H0_VM0"]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export("DC0_H0_VM0", &opts(out.path(), json!({})), None)
            .unwrap(),
    );
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::Remote);
    assert!(
        err.message.contains("simulated lease failure"),
        "{}",
        err.message
    );
    assert_eq!(err.phase, Phase::WaitingForCloud);
    assert_eq!(peer.stats()["aborted"].as_i64(), Some(1));
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "no files at all"
    );
}

#[test]
fn hostile_target_id_stays_in_the_output_folder() {
    let peer = Peer::start(&["-hostile-vm", "DC0_H0_VM0"]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("a/b");
    std::fs::create_dir_all(&out).unwrap();
    let r = wait(
        &client
            .start_export("DC0_H0_VM0", &opts(&out, json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let outside: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("a")],
        "a file escaped"
    );
    for f in &r.files {
        assert_eq!(f.path.parent().unwrap(), out, "{}", f.path.display());
    }
    assert!(out.join("DC0_H0_VM0-escape.vmdk").exists());
}

/// Disks whose target ids collide (here: all "disk.vmdk", and one of them named like the
/// fallback of another) get distinct files, and the manifest names each.
#[test]
fn colliding_target_ids_get_distinct_names() {
    let peer = Peer::start(&["-same-target", "disk-1.vmdk"]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export("DC0_H0_VM0", &opts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let names: std::collections::BTreeSet<String> =
        r.files.iter().map(|f| f.name.clone()).collect();
    assert_eq!(names.len(), r.files.len(), "{names:?}");
    assert!(r.files.len() >= 2, "{}", r.to_json());
    let mf = std::fs::read_to_string(out.path().join("DC0_H0_VM0.mf")).unwrap();
    for n in &names {
        assert!(out.path().join(n).exists(), "{n} missing");
        assert!(
            mf.contains(&format!("SHA256({n})")),
            "{n} not in the manifest:\n{mf}"
        );
    }
}

#[test]
fn bad_options_are_rejected_at_start() {
    let peer = Peer::start(&[]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = client
        .start_export(
            "DC0_H0_VM0",
            &opts(out.path(), json!({"format": "zip"})),
            None,
        )
        .err()
        .unwrap();
    assert!(e.to_string().contains("zip"), "{e}");
    let e = client
        .start_export(
            "DC0_H0_VM0",
            &opts(out.path(), json!({"parallel_disks": 9})),
            None,
        )
        .err()
        .unwrap();
    assert!(e.to_string().contains("parallel_disks"), "{e}");
    let e = client
        .start_export(
            "DC0_H0_VM0",
            &opts(out.path(), json!({"snapshott": "x"})),
            None,
        )
        .err()
        .unwrap();
    assert!(e.to_string().contains("snapshott"), "{e}");
}

#[test]
fn freeing_the_client_does_not_cut_a_running_export() {
    let peer = Peer::start(&["-nfc-rate", "2000000"]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = client
        .start_export("DC0_H0_VM0", &opts(out.path(), json!({})), None)
        .unwrap();
    while e.progress().phase != Phase::Downloading {
        assert!(
            !e.progress().phase.is_terminal(),
            "{:?}",
            e.result().map(|r| r.to_json())
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The session stays logged in while the export holds it.
    drop(client);
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    // HttpNfcLeaseComplete needed the session: it lived as long as the export.
    assert_eq!(peer.stats()["completed"].as_i64(), Some(1));
    // With the client and the export both done, the session is logged out.
    let t = std::time::Instant::now();
    while peer.stats()["logouts"].as_i64() != Some(1) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the session was never logged out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The session cookie goes to the vCenter only: a device URL on another host (an ESXi host, here
/// the same peer named "localhost") is fetched without it, one on the vCenter with it.
#[test]
fn the_session_cookie_goes_to_the_vcenter_only() {
    for (extra, want_cookie) in [(&[][..], true), (&["-device-host", "localhost"][..], false)] {
        let peer = Peer::start(extra);
        let client = Client::new("vsphere", &peer.config()).unwrap();
        let out = tempfile::tempdir().unwrap();
        let r = wait(
            &client
                .start_export("DC0_H0_VM0", &opts(out.path(), json!({})), None)
                .unwrap(),
        );
        assert_eq!(r.status, "done", "{extra:?}: {}", r.to_json());
        let cookies: Vec<bool> =
            serde_json::from_value(peer.stats()["nfc_cookies"].clone()).unwrap();
        assert!(!cookies.is_empty());
        assert!(
            cookies.iter().all(|c| *c == want_cookie),
            "{extra:?}: cookie sent on NFC requests: {cookies:?}"
        );
    }
}

/// `manifest`: `sha1` writes SHA1 lines that verify every file (the older OVF tools' format);
/// `none` writes no manifest at all; anything else is refused before the export starts.
#[test]
fn manifest_sha1_none_and_a_wrong_value() {
    use sha1::Digest as _;
    let peer = Peer::start(&[]);
    let client = Client::new("vsphere", &peer.config()).unwrap();

    let out = tempfile::tempdir().unwrap();
    let e = client
        .start_export(
            "/DC0/vm/DC0_H0_VM0",
            &opts(out.path(), json!({"manifest": "sha1"})),
            None,
        )
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    let mf = std::fs::read_to_string(out.path().join("DC0_H0_VM0.mf")).unwrap();
    let mut lines = 0;
    for line in mf.lines() {
        let (name, sum) = line
            .strip_prefix("SHA1(")
            .unwrap_or_else(|| panic!("not a SHA1 line: {line}"))
            .split_once(")= ")
            .unwrap();
        let data = std::fs::read(out.path().join(name)).unwrap();
        assert_eq!(hex::encode(sha1::Sha1::digest(&data)), sum, "{name}");
        lines += 1;
    }
    assert_eq!(lines, 3);

    let out = tempfile::tempdir().unwrap();
    let e = client
        .start_export(
            "/DC0/vm/DC0_H0_VM0",
            &opts(out.path(), json!({"manifest": "none"})),
            None,
        )
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(r.extra_files, vec!["DC0_H0_VM0.ovf"]);
    assert!(!out.path().join("DC0_H0_VM0.mf").exists());
    for (f, src) in r.files.iter().zip(peer.disk_files()) {
        assert!(std::fs::read(&f.path).unwrap() == std::fs::read(src).unwrap());
    }

    let e = client
        .start_export(
            "/DC0/vm/DC0_H0_VM0",
            &opts(out.path(), json!({"manifest": "md5"})),
            None,
        )
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("manifest"), "{e}");
}

/// `n` exports of the running VM each made one snapshot (no memory, not quiesced), exported
/// it, and removed it (removeChildren false, consolidate true): none is left on the VM.
fn assert_snapshot_made_and_removed(st: &serde_json::Value, n: i64) {
    assert_eq!(st["power_refusals"].as_i64(), Some(0), "{st}");
    assert_eq!(st["snapshots_created"].as_i64(), Some(n), "{st}");
    assert_eq!(st["snapshot_exports"].as_i64(), Some(n), "{st}");
    assert_eq!(st["snapshots_removed"].as_i64(), Some(n), "{st}");
    assert_eq!(st["snapshots"].as_i64(), Some(0), "{st}");
    for f in st["snapshot_flags"].as_array().unwrap() {
        assert_eq!(f, "memory=false quiesce=false", "{st}");
    }
    for f in st["remove_flags"].as_array().unwrap() {
        assert_eq!(f, "removeChildren=false consolidate=true", "{st}");
    }
}

/// A powered-on VM (vcsim's default, and vCenter refuses ExportVm on it) exports as OVF and
/// as OVA through a snapshot made for the export; the descriptor describes that snapshot, and
/// the snapshot is gone afterwards.
#[test]
fn a_running_vm_exports_through_a_snapshot_that_is_removed() {
    let peer = Peer::start(&[]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    for (i, format) in ["ovf", "ova"].into_iter().enumerate() {
        let out = tempfile::tempdir().unwrap();
        let r = wait(
            &client
                .start_export(
                    "DC0_H0_VM0",
                    &opts(out.path(), json!({"format": format})),
                    None,
                )
                .unwrap(),
        );
        assert_eq!(r.status, "done", "{format}: {}", r.to_json());
        let st = peer.stats();
        assert_snapshot_made_and_removed(&st, i as i64 + 1);
        assert_eq!(st["completed"].as_i64(), Some(i as i64 + 1), "{st}");
        assert!(
            st["last_descriptor_snapshot"]
                .as_str()
                .is_some_and(|s| s.starts_with("snapshot-")),
            "CreateDescriptor was not given the snapshot: {st}"
        );
        let disk = if format == "ova" {
            let mut ar =
                tar::Archive::new(std::fs::File::open(out.path().join("DC0_H0_VM0.ova")).unwrap());
            let mut e = ar
                .entries()
                .unwrap()
                .map(|e| e.unwrap())
                .find(|e| e.path().unwrap().to_string_lossy() == "DC0_H0_VM0-disk-0.vmdk")
                .unwrap();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            v
        } else {
            std::fs::read(out.path().join("DC0_H0_VM0-disk-0.vmdk")).unwrap()
        };
        assert_eq!(disk, std::fs::read(&peer.disk_files()[0]).unwrap());
    }
}

/// A failure in CreateDescriptor fails the export, aborts the lease and still removes the
/// running VM's export snapshot.
#[test]
fn a_failing_descriptor_still_removes_the_snapshot() {
    let peer = Peer::start(&["-fail-descriptor"]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export("DC0_H0_VM0", &opts(out.path(), json!({})), None)
            .unwrap(),
    );
    let err = r.error().unwrap_or_else(|| panic!("{}", r.to_json()));
    assert!(
        err.message.contains("simulated CreateDescriptor failure"),
        "{}",
        err.message
    );
    let st = peer.stats();
    assert_eq!(st["aborted"].as_i64(), Some(1), "{st}");
    assert_snapshot_made_and_removed(&st, 1);
}

/// A powered-off VM is exported directly (ExportVm, no snapshot); a user's own snapshot is
/// exported as asked, kept, and given to CreateDescriptor; `quiesce` reaches the snapshot.
#[test]
fn powered_off_vms_export_directly_and_a_users_snapshot_is_kept() {
    let peer = Peer::start(&[]);
    let o = peer
        .govc()
        .args(["vm.power", "-off", "-force", "DC0_H0_VM0"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export("DC0_H0_VM0", &opts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let st = peer.stats();
    assert_eq!(st["snapshots_created"].as_i64(), Some(0), "{st}");
    assert_eq!(st["exports"].as_i64(), Some(1), "{st}");
    assert_eq!(st["last_descriptor_snapshot"].as_str(), Some(""), "{st}");

    let o = peer
        .govc()
        .args(["snapshot.create", "-vm", "DC0_H0_VM0", "mine"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(
                "DC0_H0_VM0",
                &opts(out.path(), json!({"snapshot": "mine", "quiesce": true})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let st = peer.stats();
    // Only govc's snapshot was made; it was exported, described, and kept.
    assert_eq!(st["snapshots_created"].as_i64(), Some(1), "{st}");
    assert_eq!(st["snapshot_exports"].as_i64(), Some(1), "{st}");
    assert_eq!(st["snapshots_removed"].as_i64(), Some(0), "{st}");
    assert_eq!(st["snapshots"].as_i64(), Some(1), "{st}");
    assert!(
        st["last_descriptor_snapshot"]
            .as_str()
            .is_some_and(|s| s.starts_with("snapshot-")),
        "{st}"
    );

    // `quiesce` on a running VM reaches CreateSnapshot_Task.
    let o = peer
        .govc()
        .args(["vm.power", "-on", "DC0_H0_VM0"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(
                "DC0_H0_VM0",
                &opts(out.path(), json!({"quiesce": true})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let st = peer.stats();
    assert_eq!(
        st["snapshot_flags"].as_array().unwrap().last().unwrap(),
        "memory=false quiesce=true",
        "{st}"
    );
    assert_eq!(
        st["snapshots"].as_i64(),
        Some(1),
        "only the user's is left: {st}"
    );
}

/// An older vCenter (vimServiceVersions.xml naming 7.0.3.0) refuses requests naming another
/// version: every request names the server's version; without the file, 8.0.
#[test]
fn requests_name_the_servers_api_version() {
    for (extra, want) in [
        (&["-api-version", "7.0.3.0"][..], "urn:vim25/7.0.3.0"),
        (&["-no-service-versions"][..], "urn:vim25/8.0"),
    ] {
        let peer = Peer::start(extra);
        let client = Client::new("vsphere", &peer.config()).unwrap();
        let out = tempfile::tempdir().unwrap();
        let r = wait(
            &client
                .start_export("DC0_H0_VM0", &opts(out.path(), json!({})), None)
                .unwrap(),
        );
        assert_eq!(r.status, "done", "{extra:?}: {}", r.to_json());
        let st = peer.stats();
        assert_eq!(st["version_refusals"].as_i64(), Some(0), "{st}");
        let actions = st["soap_actions"].as_array().unwrap();
        assert!(
            !actions.is_empty() && actions.iter().all(|a| a == want),
            "{extra:?}: {st}"
        );
    }
}

/// Device URLs on `*:port` (vCenter's own NFC port) are fetched at the host and port the
/// client connected to, as govmomi does: a port-forwarded vCenter works.
#[test]
fn star_device_urls_with_a_port_use_the_clients_host_and_port() {
    let peer = Peer::start(&["-device-host", "*", "-device-port", "1"]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export("DC0_H0_VM0", &opts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        std::fs::read(out.path().join("DC0_H0_VM0-disk-0.vmdk")).unwrap(),
        std::fs::read(&peer.disk_files()[0]).unwrap()
    );
}

/// Two VMs exported into one folder at once both succeed: every VM's lease names its disks
/// `disk-0.vmdk`…, so the files carry the VM's name (govc's `<VM>-<disk>`), not the target id.
#[test]
fn two_vms_into_one_folder_get_their_own_disk_names() {
    let peer = Peer::start(&[]);
    let client = Client::new("vsphere", &peer.config()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let exports: Vec<_> = ["DC0_H0_VM0", "DC0_H0_VM1"]
        .iter()
        .map(|vm| {
            client
                .start_export(vm, &opts(out.path(), json!({})), None)
                .unwrap()
        })
        .collect();
    for (e, vm) in exports.iter().zip(["DC0_H0_VM0", "DC0_H0_VM1"]) {
        let r = wait(e);
        assert_eq!(r.status, "done", "{vm}: {}", r.to_json());
        assert!(!r.files.is_empty());
        for f in &r.files {
            assert!(f.name.starts_with(&format!("{vm}-")), "{vm}: {}", f.name);
            assert!(out.path().join(&f.name).exists());
        }
    }
}
