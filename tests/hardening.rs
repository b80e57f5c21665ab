//! The output folder as someone else's ground: planted symlinks and hard links, a second writer
//! of the same destination, a file that appears during the export, hostile names, file modes.
//! Each test is a reproducer against the real HTTP test peer: it fails if the defence is taken
//! out.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use hypersdk::{Client, ErrorKind};
use serde_json::json;
use support::opts;
use support::server::{Faults, TestServer, pattern};

use support::{http_setup as setup, wait_export as wait};

/// A file outside the output folder that a planted link points at, with known bytes.
fn victim() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("passwd");
    std::fs::write(&p, b"root:x:0:0:root:/root:/bin/bash\n").unwrap();
    (d, p)
}

fn victim_intact(p: &std::path::Path) {
    assert_eq!(
        std::fs::read(p).unwrap(),
        b"root:x:0:0:root:/root:/bin/bash\n",
        "the file behind the planted link was changed"
    );
}

#[test]
fn planted_symlink_as_temp_file_fails_clearly_and_is_not_followed() {
    let (_rt, server, dir, client) = setup();
    server.put("disk.vmdk", pattern(300_000, 1));
    let (_vd, target) = victim();
    std::os::unix::fs::symlink(&target, dir.path().join("disk.vmdk.hspart")).unwrap();
    let r = wait(
        &client
            .start_export(&server.url("disk.vmdk"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    let err = r.error().expect("the export must fail");
    assert_eq!(err.kind, ErrorKind::AlreadyExists, "{}", err.message);
    assert!(err.message.contains("symbolic link"), "{}", err.message);
    assert!(err.message.contains("disk.vmdk.hspart"), "{}", err.message);
    victim_intact(&target);
    assert!(!dir.path().join("disk.vmdk").exists());
}

#[test]
fn planted_hard_link_as_temp_file_is_refused() {
    let (_rt, server, dir, client) = setup();
    server.put("disk.vmdk", pattern(300_000, 2));
    // A hard link needs the same file system: the victim lives beside the folder.
    let outer = tempfile::tempdir().unwrap();
    let target = outer.path().join("passwd");
    std::fs::write(&target, b"root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let out = outer.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::hard_link(&target, out.join("disk.vmdk.hspart")).unwrap();
    let r = wait(
        &client
            .start_export(&server.url("disk.vmdk"), &opts(&out, json!({})), None)
            .unwrap(),
    );
    let err = r.error().expect("the export must fail");
    assert_eq!(err.kind, ErrorKind::AlreadyExists, "{}", err.message);
    assert!(
        err.message.contains("not a file this library made"),
        "{}",
        err.message
    );
    victim_intact(&target);
    drop(dir);
}

#[test]
fn planted_symlinks_as_journal_and_lock_are_never_written_through() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(300_000, 3);
    server.put("j.bin", data.clone());
    let (_vd, target) = victim();
    // A link as the journal: replaced by the journal's rename (which does not follow links),
    // never written through.
    std::os::unix::fs::symlink(&target, dir.path().join("j.bin.hspart.journal")).unwrap();
    let r = wait(
        &client
            .start_export(&server.url("j.bin"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join("j.bin")).unwrap(), data);
    victim_intact(&target);

    // A link as the journal's temp file or as the lock file: refused, clearly.
    for planted in ["k.bin.hspart.journal.tmp", "k.bin.hspart.lock"] {
        let link = dir.path().join(planted);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        server.put("k.bin", data.clone());
        let r = wait(
            &client
                .start_export(&server.url("k.bin"), &opts(dir.path(), json!({})), None)
                .unwrap(),
        );
        let err = r.error().expect("the export must fail");
        assert_eq!(err.kind, ErrorKind::AlreadyExists, "{}", err.message);
        assert!(err.message.contains(planted), "{}", err.message);
        victim_intact(&target);
        std::fs::remove_file(&link).unwrap();
    }
}

#[test]
fn a_second_writer_of_the_same_destination_is_refused_at_once() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(2 << 20, 4);
    server.put("big.vmdk", data.clone());
    server.set_faults(Faults {
        bytes_per_sec: 1 << 20,
        ..Default::default()
    });
    let o = opts(dir.path(), json!({"parts_in_flight": 2}));
    let first = client
        .start_export(&server.url("big.vmdk"), &o, None)
        .unwrap();
    // Wait until the first one holds the destination (its temp file and journal exist).
    let temp = dir.path().join("big.vmdk.hspart");
    let journal = dir.path().join("big.vmdk.hspart.journal");
    for _ in 0..500 {
        if temp.exists() && journal.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let inode =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let (temp_ino, temp_size) = (inode(&temp), std::fs::metadata(&temp).unwrap().len());
    let second = wait(
        &client
            .start_export(&server.url("big.vmdk"), &o, None)
            .unwrap(),
    );
    let err = second.error().expect("the second export must be refused");
    assert_eq!(err.kind, ErrorKind::AlreadyExists, "{}", err.message);
    assert!(
        err.message.contains(&format!("pid {}", std::process::id())),
        "the holder is not named: {}",
        err.message
    );
    assert!(
        second.elapsed_ms < 5_000,
        "refused only after {} ms",
        second.elapsed_ms
    );
    // The refused one never touched the first one's files: same temp file, same size.
    assert_eq!(inode(&temp), temp_ino, "the temp file was replaced");
    assert_eq!(std::fs::metadata(&temp).unwrap().len(), temp_size);
    assert!(journal.exists(), "the journal was removed");
    let r = wait(&first);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join("big.vmdk")).unwrap(), data);
    // The lock is gone with its export; the next export of that name may run.
    assert!(!dir.path().join("big.vmdk.hspart.lock").exists());
    server.set_faults(Faults::default());
    let again = wait(
        &client
            .start_export(
                &server.url("big.vmdk"),
                &opts(dir.path(), json!({"overwrite": true})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(again.status, "done", "{}", again.to_json());
}

#[test]
fn a_file_that_appears_during_the_export_is_not_replaced() {
    let (_rt, server, dir, client) = setup();
    server.put("late.bin", pattern(1 << 20, 5));
    server.set_faults(Faults {
        bytes_per_sec: 1 << 20,
        ..Default::default()
    });
    let e = client
        .start_export(
            &server.url("late.bin"),
            &opts(dir.path(), json!({"parts_in_flight": 1})),
            None,
        )
        .unwrap();
    for _ in 0..200 {
        if dir.path().join("late.bin.hspart").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(dir.path().join("late.bin"), b"someone else's").unwrap();
    let r = wait(&e);
    let err = r.error().expect("the export must fail");
    assert_eq!(err.kind, ErrorKind::AlreadyExists, "{}", err.message);
    assert!(
        err.message.contains("appeared during the export"),
        "{}",
        err.message
    );
    assert_eq!(
        std::fs::read(dir.path().join("late.bin")).unwrap(),
        b"someone else's"
    );
}

#[test]
fn files_are_private_by_default_and_the_mode_is_an_option() {
    let (_rt, server, dir, client) = setup();
    server.put("m.bin", pattern(100_000, 6));
    let mode_of = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let r = wait(
        &client
            .start_export(&server.url("m.bin"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(mode_of(&dir.path().join("m.bin")), 0o600);
    let other = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(
                &server.url("m.bin"),
                &opts(other.path(), json!({"file_mode": "0640"})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(mode_of(&other.path().join("m.bin")), 0o640);
    let e = client
        .start_export(
            &server.url("m.bin"),
            &opts(other.path(), json!({"file_mode": "0044"})),
            None,
        )
        .err()
        .expect("a mode the owner cannot read and write is refused at start");
    assert!(e.to_string().contains("file_mode"), "{e}");
}

#[test]
fn hostile_and_reserved_names() {
    let (_rt, server, dir, client) = setup();
    server.put("CON", pattern(1000, 7));
    server.put("x.hspart", pattern(1000, 8));
    // Names from the server are cleaned: a Windows device name, one of our own endings.
    for (path, want) in [("CON", "_CON"), ("x.hspart", "x_hspart")] {
        let r = wait(
            &client
                .start_export(&server.url(path), &opts(dir.path(), json!({})), None)
                .unwrap(),
        );
        assert_eq!(r.status, "done", "{}", r.to_json());
        assert!(
            dir.path().join(want).exists(),
            "{path} was not saved as {want}"
        );
    }
    // Names from the user are checked and refused with a reason.
    for bad in ["d.vmdk.hspart", "d.lock", "nul.vmdk", "disk. "] {
        let e = client
            .start_export(
                &server.url("CON"),
                &opts(dir.path(), json!({"file_name": bad})),
                None,
            )
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(e.to_string().contains("file name"), "{e}");
    }
}

#[test]
fn a_redirect_to_another_origin_does_not_carry_the_sources_headers() {
    let (rt, origin, dir, _) = setup();
    let other = rt.block_on(TestServer::start());
    let data = pattern(700_000, 9);
    other.put("disk.vmdk", data.clone());
    origin.set_faults(Faults {
        redirect_to: Some(format!("http://{}", other.addr)),
        ..Default::default()
    });
    let client = Client::new(
        "http",
        r#"{"headers": {"x-api-key": "key-for-the-origin-only"}}"#,
    )
    .unwrap();
    let r = wait(
        &client
            .start_export(
                &origin.url("disk.vmdk"),
                &opts(
                    dir.path(),
                    json!({"headers": {"Authorization": "Bearer origin-token"}}),
                ),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join("disk.vmdk")).unwrap(), data);
    assert!(
        origin.saw_in_heads("key-for-the-origin-only"),
        "the origin got its header"
    );
    assert!(
        !other.saw_in_heads("key-for-the-origin-only"),
        "x-api-key leaked to another origin"
    );
    assert!(
        !other.saw_in_heads("origin-token"),
        "Authorization leaked to another origin"
    );
}

/// First run: every body cut after 100 KB, one attempt per part, so it fails with part of the
/// file kept; returns the bytes it kept.
fn interrupted_run(server: &TestServer, client: &Client, dir: &std::path::Path, path: &str) -> u64 {
    let mut f = server.faults().clone();
    f.cut_after = 100_000;
    f.cut_count = 1000;
    server.set_faults(f.clone());
    let r = wait(
        &client
            .start_export(
                &server.url(path),
                &opts(dir, json!({"max_attempts": 1})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "failed", "{}", r.to_json());
    f.cut_count = 0;
    server.set_faults(f);
    std::fs::metadata(dir.join(format!("{path}.hspart"))).map_or(0, |m| m.len())
}

#[test]
fn a_weak_etag_is_no_ground_for_resuming() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(1 << 20, 10);
    server.put("w.bin", data.clone());
    server.set_faults(Faults {
        weak_etag: true,
        ..Default::default()
    });
    assert!(interrupted_run(&server, &client, dir.path(), "w.bin") > 0);
    server.reset_stats();
    let r = wait(
        &client
            .start_export(&server.url("w.bin"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        r.files[0].resumed_bytes,
        0,
        "resumed under a weak ETag: {}",
        r.to_json()
    );
    assert_eq!(r.files[0].fetched_bytes, data.len() as u64);
    assert_eq!(std::fs::read(dir.path().join("w.bin")).unwrap(), data);
}

#[test]
fn a_part_from_another_version_is_never_kept() {
    let (_rt, server, dir, client) = setup();
    server.put("v.bin", pattern(1 << 20, 11));
    server.set_faults(Faults {
        wrong_part_etag: true,
        ..Default::default()
    });
    let r = wait(
        &client
            .start_export(&server.url("v.bin"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    let err = r
        .error()
        .expect("parts of another version must fail the export");
    assert!(
        err.message.contains("changed on the server"),
        "{}",
        err.message
    );
    assert!(!dir.path().join("v.bin").exists());
}

#[test]
fn the_size_option_is_enforced_and_unverified_sizes_are_said() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(300_000, 12);
    server.put("s.bin", data.clone());
    let r = wait(
        &client
            .start_export(
                &server.url("s.bin"),
                &opts(dir.path(), json!({"size": 299_999})),
                None,
            )
            .unwrap(),
    );
    let err = r
        .error()
        .expect("a size other than the stated one must fail");
    assert_eq!(err.kind, ErrorKind::Verification, "{}", err.message);
    assert!(!dir.path().join("s.bin").exists());

    // A body that ends with the connection, with no length anywhere: done, but said so.
    server.set_faults(Faults {
        ignore_range: true,
        no_length: true,
        ..Default::default()
    });
    let r = wait(
        &client
            .start_export(&server.url("s.bin"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert!(!r.files[0].size_verified, "{}", r.to_json());
    assert!(r.to_json().contains("\"size_verified\":false"));
    // The same with the size given: verified.
    let other = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(
                &server.url("s.bin"),
                &opts(other.path(), json!({"size": 300_000})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert!(r.files[0].size_verified, "{}", r.to_json());
}

#[test]
fn a_416_is_empty_only_when_the_server_says_so() {
    let (_rt, server, dir, client) = setup();
    server.put("e.bin", pattern(5000, 13));
    server.set_faults(Faults {
        always_416: true,
        ..Default::default()
    });
    let r = wait(
        &client
            .start_export(&server.url("e.bin"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    let err = r
        .error()
        .expect("a 416 for a 5000-byte object is not an empty file");
    assert!(err.message.contains("416"), "{}", err.message);
    assert!(!dir.path().join("e.bin").exists());
    // A real empty object still works.
    server.set_faults(Faults::default());
    server.put("empty.bin", Vec::new());
    let r = wait(
        &client
            .start_export(&server.url("empty.bin"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        std::fs::metadata(dir.path().join("empty.bin"))
            .unwrap()
            .len(),
        0
    );
}

/// Open descriptors of this process that point at `path`.
fn open_fds_on(path: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

/// A cancel during the read-back verification of a large file stops the reading itself within
/// a second (not only the wait for it): nothing keeps reading the temp file in the background.
#[test]
fn cancel_during_verification_stops_the_read_back() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(768 << 20, 14);
    let sum = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&data))
    };
    server.put("big.img", data);
    let e = client
        .start_export(
            &server.url("big.img"),
            &opts(dir.path(), json!({"sha256": sum, "part_size": 8 << 20})),
            None,
        )
        .unwrap();
    let t = std::time::Instant::now();
    while e.progress().phase != hypersdk::Phase::Verifying {
        assert!(
            e.result().is_none(),
            "ended before verifying: {:?}",
            e.result().map(|r| r.to_json())
        );
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "never reached verifying"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    let cancelled_at = std::time::Instant::now();
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    let temp = dir.path().join("big.img.hspart");
    while open_fds_on(&temp) > 0 {
        assert!(
            cancelled_at.elapsed() < Duration::from_secs(1),
            "the temp file is still being read {:?} after the cancel",
            cancelled_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_redirect_from_https_to_http_is_refused() {
    let (rt, plain, dir, _) = setup();
    let cert = support::server::TestCert::new();
    let secure = rt.block_on(TestServer::start_tls(&cert));
    plain.put("d.vmdk", pattern(100_000, 15));
    secure.put("d.vmdk", pattern(100_000, 15));
    let cfg = json!({"ca_bundle_pem": cert.cert_pem, "headers": {"x-api-key": "https-only-key"}});
    let client = Client::new("http", &cfg.to_string()).unwrap();
    // The HTTPS server itself works with the CA...
    let ok = wait(
        &client
            .start_export(&secure.url("d.vmdk"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(ok.status, "done", "{}", ok.to_json());
    // ...and its redirect to plain HTTP is refused, with nothing sent there.
    secure.set_faults(Faults {
        redirect_to: Some(format!("http://{}", plain.addr)),
        ..Default::default()
    });
    let other = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(&secure.url("d.vmdk"), &opts(other.path(), json!({})), None)
            .unwrap(),
    );
    let err = r.error().expect("a downgrade must fail the export");
    assert!(err.message.contains("https to http"), "{}", err.message);
    assert!(
        plain.requests().is_empty(),
        "something was sent over plain HTTP"
    );
    assert!(!other.path().join("d.vmdk").exists());
}
