//! The output folder as someone else's ground: planted symlinks and hard links, a second writer
//! of the same destination, a file that appears during the export, hostile names, file modes.
//! Each test is a reproducer against the real HTTP test peer: it fails if the defence is taken
//! out.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use hypersdk::{Client, ErrorKind};
use serde_json::json;
use support::server::{Faults, TestServer, pattern};
use support::{opts, peer_runtime};

fn setup() -> (
    tokio::runtime::Runtime,
    TestServer,
    tempfile::TempDir,
    Client,
) {
    let rt = peer_runtime();
    let server = rt.block_on(TestServer::start());
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new("http", "{}").unwrap();
    (rt, server, dir, client)
}

fn wait(e: &hypersdk::Export) -> hypersdk::ExportResult {
    e.wait(Some(Duration::from_secs(60)))
        .unwrap()
        .expect("export did not end within 60 s")
}

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
