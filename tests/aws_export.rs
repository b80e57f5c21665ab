//! AWS exports through the safe Rust API against a real moto server (tests/peers/moto).
#![cfg(feature = "aws")]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use hypersdk::{Client, ErrorKind, Phase};
use serde_json::json;
use support::moto::moto;
use support::server::pattern;
use support::wait_long as wait;
use support::{Recorder, opts};

/// The test user: exactly AWS's documented VM Import/Export policy.
fn client() -> Client {
    Client::new("aws", &moto().config()).unwrap()
}

/// A user allowed everything (listing a bucket needs s3:ListBucket, deleting s3:DeleteObject:
/// neither is in the documented policy).
fn admin() -> Client {
    Client::new("aws", &moto().admin_config()).unwrap()
}

/// The fetch example exporting `source` from the moto peer in a child process (to be killed).
fn spawn_fetch(
    options: serde_json::Value,
    out: &std::path::Path,
    source: &str,
) -> std::process::Child {
    Command::new(support::fetch_example())
        .args([
            "--provider",
            "aws",
            "--config",
            &moto().config(),
            "--options",
        ])
        .arg(options.to_string())
        .arg(out)
        .arg(source)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn put(key: &str, data: Vec<u8>, with_checksum: bool) {
    moto().put("exports", key, data, with_checksum);
}

#[test]
fn instance_export_end_to_end() {
    let m = moto();
    let out = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let o = opts(
        out.path(),
        json!({"s3_bucket": "exports", "s3_prefix": "vms/", "poll_interval_ms": 100}),
    );
    let e = client()
        .start_export(&m.s("instance_id"), &o, Some(rec.callback()))
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    let task = r.provider["task_id"].as_str().unwrap().to_string();
    assert!(task.starts_with("export-i-"));
    assert_eq!(r.provider["key"], format!("vms/{task}.vmdk"));
    assert_eq!(std::fs::read(&r.files[0].path).unwrap(), m.fixture);
    assert_eq!(r.files[0].name, format!("{task}.vmdk"));
    let phases = rec.check();
    assert!(phases.contains(&Phase::WaitingForCloud), "{phases:?}");
    let said: Vec<String> = rec
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.message.clone())
        .collect();
    assert!(
        said.iter().any(|m| m.contains("converting the disk image")),
        "task status never shown: {said:?}"
    );
    let t = m.tasks().into_iter().find(|t| t["id"] == task).unwrap();
    assert_eq!(t["state"], "completed");
}

/// An export that died (SIGKILL) while AWS converted left its task active; with
/// `reuse_export_task` the next run adopts that task instead of converting the disk again, and
/// a run without it starts its own.
#[test]
fn a_dead_exports_active_task_is_adopted() {
    let m = moto();
    let out = tempfile::tempdir().unwrap();
    let prefix = "adopt/";
    let mut child = spawn_fetch(
        json!({"s3_bucket": "exports", "s3_prefix": prefix, "poll_interval_ms": 600_000}),
        out.path(),
        &m.s("instance_id"),
    );
    let ours = |m: &support::moto::Moto| -> Vec<serde_json::Value> {
        m.tasks()
            .into_iter()
            .filter(|t| t["key"].as_str().unwrap_or("").starts_with(prefix))
            .collect()
    };
    let t = Instant::now();
    while ours(m).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the child made no task"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first = ours(m)[0]["id"].as_str().unwrap().to_string();
    assert_eq!(ours(m)[0]["state"], "active");

    let export = |reuse: bool| {
        let o = opts(
            out.path(),
            json!({"s3_bucket": "exports", "s3_prefix": prefix, "poll_interval_ms": 50,
                   "reuse_export_task": reuse, "overwrite": true}),
        );
        let r = wait(
            &client()
                .start_export(&m.s("instance_id"), &o, None)
                .unwrap(),
        );
        assert_eq!(r.status, "done", "{}", r.to_json());
        r
    };
    let r = export(true);
    assert_eq!(r.provider["task_id"], first.as_str(), "{}", r.to_json());
    assert_eq!(ours(m).len(), 1, "a second task was created: {:?}", ours(m));
    assert_eq!(std::fs::read(&r.files[0].path).unwrap(), m.fixture);

    // Without the option (the default), a run makes its own task.
    let r = export(false);
    assert_ne!(r.provider["task_id"], first.as_str());
    assert_eq!(ours(m).len(), 2);
}

#[test]
fn ami_export_and_delete_after_download() {
    let m = moto();
    let out = tempfile::tempdir().unwrap();
    let o = opts(
        out.path(),
        json!({"s3_bucket": "exports", "s3_prefix": "amis/", "poll_interval_ms": 100,
               "delete_s3_object_after_download": true, "file_name": "image.vmdk"}),
    );
    let r = wait(&admin().start_export(&m.s("image_id"), &o, None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert!(
        r.provider["task_id"]
            .as_str()
            .unwrap()
            .starts_with("export-ami-")
    );
    assert_eq!(
        std::fs::read(out.path().join("image.vmdk")).unwrap(),
        m.fixture
    );
    let key = r.provider["key"].as_str().unwrap().to_string();
    assert!(!m.exists("exports", &key), "the S3 object was not deleted");
}

#[test]
fn s3_object_with_stored_checksum_is_verified_and_corruption_caught() {
    let m = moto();
    let data = pattern(3 << 20, 5);
    put("plain/disk.raw", data.clone(), true);
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "s3://exports/plain/disk.raw",
                &opts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(out.path().join("disk.raw")).unwrap(), data);
    assert_eq!(
        r.files[0].checksum.as_ref().map(|c| c.algorithm),
        Some("sha256")
    );

    m.corrupt("exports", "plain/disk.raw");
    let out2 = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "s3://exports/plain/disk.raw",
                &opts(out2.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::Verification, "{}", err.message);
    assert!(
        !out2.path().join("disk.raw").exists(),
        "a corrupted download looks complete"
    );
}

#[test]
fn cancel_while_waiting_cancels_the_export_task() {
    let m = moto();
    let out = tempfile::tempdir().unwrap();
    // Tasks under "slow/" never finish in the peer.
    let o = opts(
        out.path(),
        json!({"s3_bucket": "exports", "s3_prefix": "slow/", "poll_interval_ms": 50}),
    );
    let e = client()
        .start_export(&m.s("instance_id"), &o, None)
        .unwrap();
    let t = Instant::now();
    while e.progress().phase != Phase::WaitingForCloud
        || !e.progress().message.contains("never finishes")
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never reached waiting-for-cloud"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    let task = r.provider["task_id"].as_str().unwrap().to_string();
    let t = m.tasks().into_iter().find(|t| t["id"] == task).unwrap();
    assert_eq!(
        t["state"], "cancelled",
        "moto did not see CancelExportTask: {t}"
    );
}

/// A cancel that arrives while the create call is in flight never leaves an export task
/// running in the cloud: the call completes, its id is recorded, and cleanup cancels it. (The
/// peer's create call takes 0.8 s under a "slowcreate/" prefix.)
#[test]
fn cancel_during_the_create_call_still_cancels_the_task() {
    let m = moto();
    let out = tempfile::tempdir().unwrap();
    let o = opts(
        out.path(),
        json!({"s3_bucket": "exports", "s3_prefix": "slow/slowcreate/", "poll_interval_ms": 50}),
    );
    let e = client()
        .start_export(&m.s("instance_id"), &o, None)
        .unwrap();
    let t = Instant::now();
    while !e.progress().message.contains("creating the export task") {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never reached the create call"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    let task = r.provider["task_id"]
        .as_str()
        .unwrap_or_else(|| {
            panic!(
                "the task created during the cancel is unknown: {}",
                r.to_json()
            )
        })
        .to_string();
    let t = m.tasks().into_iter().find(|t| t["id"] == task).unwrap();
    assert_eq!(t["state"], "cancelled", "left running in the cloud: {t}");
}

#[test]
fn timeout_cancels_the_export_task() {
    let m = moto();
    let out = tempfile::tempdir().unwrap();
    let o = opts(
        out.path(),
        json!({"s3_bucket": "exports", "s3_prefix": "slow/", "poll_interval_ms": 50, "timeout_secs": 1}),
    );
    let r = wait(
        &client()
            .start_export(&m.s("instance_id"), &o, None)
            .unwrap(),
    );
    assert_eq!(r.error().unwrap().kind, ErrorKind::Timeout);
    let task = r.provider["task_id"].as_str().unwrap().to_string();
    assert_eq!(
        m.tasks().into_iter().find(|t| t["id"] == task).unwrap()["state"],
        "cancelled"
    );
}

#[test]
fn cancel_while_downloading_keeps_a_resumable_partial() {
    let _ = moto();
    let data = pattern(8 << 20, 6);
    put("big/cancel.raw", data, false);
    let out = tempfile::tempdir().unwrap();
    let o = opts(out.path(), json!({"max_bytes_per_second": 2 << 20}));
    let e = client()
        .start_export("s3://exports/big/cancel.raw", &o, None)
        .unwrap();
    while e.progress().bytes_done < 1 << 20 {
        std::thread::sleep(Duration::from_millis(20));
    }
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled");
    assert!(!out.path().join("cancel.raw").exists());
    assert!(out.path().join("cancel.raw.hspart.journal").exists());
}

#[test]
fn killed_download_resumes_and_a_changed_object_starts_over() {
    let _ = moto();
    let size = 12 << 20;
    let v1 = pattern(size, 7);
    put("big/resume.raw", v1.clone(), false);
    let out = tempfile::tempdir().unwrap();
    let mut child = spawn_fetch(
        // Fixed 1 MiB parts, two at a time: the journal (synced at most once a second, when a
        // part ends) grows in steps the kill can land between. With the default 16 in flight
        // and growing parts, the whole file could end in one burst and remove the journal.
        json!({"max_bytes_per_second": 2 << 20, "part_size": 1 << 20,
               "max_part_size": 1 << 20, "parts_in_flight": 2}),
        out.path(),
        "s3://exports/big/resume.raw",
    );
    let journal = out.path().join("resume.raw.hspart.journal");
    support::kill_when_journal_covers(&mut child, &journal, size as u64 / 3);
    let r = wait(
        &client()
            .start_export(
                "s3://exports/big/resume.raw",
                &opts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(out.path().join("resume.raw")).unwrap(), v1);
    assert!(
        r.files[0].resumed_bytes >= size as u64 / 3,
        "resumed {}",
        r.files[0].resumed_bytes
    );
    assert_eq!(
        r.files[0].resumed_bytes + r.files[0].fetched_bytes,
        size as u64
    );

    // Interrupted again, then the object changes: the next run starts over.
    let o = opts(
        out.path(),
        json!({"max_bytes_per_second": 3 << 20, "overwrite": true, "file_name": "again.raw"}),
    );
    let e = client()
        .start_export("s3://exports/big/resume.raw", &o, None)
        .unwrap();
    while e.progress().bytes_done < size as u64 / 4 {
        std::thread::sleep(Duration::from_millis(20));
    }
    e.cancel();
    assert_eq!(wait(&e).status, "cancelled");
    let v2 = pattern(size, 8);
    put("big/resume.raw", v2.clone(), false);
    let o = opts(
        out.path(),
        json!({"overwrite": true, "file_name": "again.raw"}),
    );
    let r = wait(
        &client()
            .start_export("s3://exports/big/resume.raw", &o, None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(r.files[0].resumed_bytes, 0);
    assert_eq!(std::fs::read(out.path().join("again.raw")).unwrap(), v2);
}

#[test]
fn wrong_secret_is_an_auth_error_without_the_secret() {
    let m = moto();
    let cfg = json!({"region": "us-east-1", "endpoint_url": m.s("endpoint"),
                     "access_key_id": m.s("access_key_id"), "secret_access_key": "not-the-secret-123"});
    let c = Client::new("aws", &cfg.to_string()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &c.start_export(
            &m.s("instance_id"),
            &opts(out.path(), json!({"s3_bucket": "exports"})),
            None,
        )
        .unwrap(),
    );
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::Auth, "{}", err.message);
    assert!(
        !r.to_json().contains("not-the-secret-123")
            && !r.to_json().contains(&m.s("secret_access_key"))
    );
    // The S3 path signs too.
    let r = wait(
        &c.start_export(
            "s3://exports/plain/disk.raw",
            &opts(out.path(), json!({})),
            None,
        )
        .unwrap(),
    );
    assert_eq!(r.error().unwrap().kind, ErrorKind::Auth, "{}", r.to_json());
}

#[test]
fn unknown_instance_and_bucket_are_clear_errors() {
    let m = moto();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "i-0123456789abcdef0",
                &opts(out.path(), json!({"s3_bucket": "exports"})),
                None,
            )
            .unwrap(),
    );
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::NotFound, "{}", err.message);
    assert!(
        err.message.contains("i-0123456789abcdef0"),
        "{}",
        err.message
    );
    // The admin: the documented policy's user is refused (403) on a bucket outside it, as S3
    // does (tests/aws_export_task.rs).
    let r = wait(
        &admin()
            .start_export(
                &m.s("instance_id"),
                &opts(out.path(), json!({"s3_bucket": "no-such-bucket"})),
                None,
            )
            .unwrap(),
    );
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::NotFound, "{}", err.message);
    assert!(err.message.contains("no-such-bucket"), "{}", err.message);
    let r = wait(
        &client()
            .start_export(
                "s3://exports/missing.raw",
                &opts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.error().unwrap().kind, ErrorKind::NotFound);
    // The export task needs a bucket (without a method and a bucket, an instance goes through
    // snapshots: tests/aws_snapshot.rs).
    let task = json!({"method": "export-task"});
    let e = client()
        .start_export(&m.s("instance_id"), &opts(out.path(), task.clone()), None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("s3_bucket"), "{e}");
    let e = client()
        .start_export("vol-123", &opts(out.path(), task), None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("vol-123"), "{e}");
    // Bucket names that are not S3's are refused before any URL is made of them.
    for (src, o) in [
        ("s3://evil.com:443?x=/key", json!({})),
        ("s3://Exports/key", json!({})),
        (m.s("instance_id").as_str(), json!({"s3_bucket": "a/../b"})),
    ] {
        let e = client()
            .start_export(src, &opts(out.path(), o), None)
            .err()
            .unwrap_or_else(|| panic!("{src} accepted"));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("bucket"), "{e}");
    }
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn list_shows_instances_own_images_and_objects() {
    let m = moto();
    put("listing/a.vmdk", vec![7u8; 1000], false);
    let all = admin()
        .list_sources(&json!({"bucket": "exports", "prefix": "listing/"}).to_string())
        .unwrap();
    let find = |kind: &str, id: &str| all.iter().find(|s| s.kind == kind && s.id == id);
    let i = find("instance", &m.s("instance_id")).unwrap_or_else(|| panic!("{all:?}"));
    assert!(
        matches!(i.state.as_deref(), Some("running" | "pending")),
        "{i:?}"
    );
    // Images are the account's own (Owners=self): moto's public AMIs are not listed.
    assert!(find("image", &m.s("image_id")).is_none(), "{all:?}");
    let o = find("object", "s3://exports/listing/a.vmdk").unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(o.size_bytes, Some(1000));
    let only = client()
        .list_sources(&json!({"kind": "instance"}).to_string())
        .unwrap();
    assert!(!only.is_empty() && only.iter().all(|s| s.kind == "instance"));
    let e = client()
        .list_sources(&json!({"resource_group": "x"}).to_string())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("resource_group"), "{e}");
}
