//! End-to-end exports through the safe Rust API against a real HTTP server on 127.0.0.1 that
//! misbehaves on demand.

mod support;

use std::time::{Duration, Instant};

use hypersdk::{Client, ErrorKind, Phase};
use serde_json::json;
use support::server::{Faults, pattern};
use support::{Recorder, opts};

use support::{http_setup as setup, wait_export as wait};

#[test]
fn ranged_download_is_exact_with_honest_progress() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(5 * 1024 * 1024 + 12345, 1);
    server.put("disk.vmdk", data.clone());
    let rec = Recorder::default();
    let e = client
        .start_export(
            &server.url("disk.vmdk"),
            &opts(dir.path(), json!({})),
            Some(rec.callback()),
        )
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join("disk.vmdk")).unwrap(), data);
    assert!(!dir.path().join("disk.vmdk.hspart").exists());
    assert!(!dir.path().join("disk.vmdk.hspart.journal").exists());
    let phases = rec.check();
    assert_eq!(
        phases,
        vec![
            Phase::Queued,
            Phase::Preparing,
            Phase::Downloading,
            Phase::Verifying,
            Phase::Finalizing,
            Phase::Done
        ]
    );
    let last = rec.last();
    assert_eq!(last.bytes_done, data.len() as u64);
    assert_eq!(last.bytes_total, data.len() as u64);
    assert_eq!((last.file_index, last.file_count), (1, 1));
    assert_eq!(last.file_name, "disk.vmdk");
    assert_eq!(r.files[0].size, data.len() as u64);
    // Parallel ranged requests were used: many more than one GET, and never more than
    // size / part_size (21) and the 1-byte probe: parts start at a share of the file and
    // shrink to part_size towards the end.
    let gets = server
        .requests()
        .iter()
        .filter(|l| l.contains("bytes="))
        .count();
    assert!(
        (10..=22).contains(&gets),
        "expected guided ranged parts, saw {gets} requests"
    );
    // The pull API agrees with the callbacks at the end.
    assert_eq!(e.progress().bytes_done, data.len() as u64);
}

#[test]
fn multi_file_export_verifies_each_checksum() {
    let (_rt, server, dir, client) = setup();
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| pattern(700_000 + i * 1000, 10 + i as u64))
        .collect();
    for (i, f) in files.iter().enumerate() {
        server.put(&format!("vm/disk{i}.vmdk"), f.clone());
    }
    use sha2::Digest as _;
    let sha = hex::encode(sha2::Sha256::digest(&files[0]));
    let md5 = hex::encode(md5::Md5::digest(&files[1]));
    let crc = format!("{:08x}", crc32c::crc32c(&files[2]));
    let o = opts(
        dir.path(),
        json!({"files": [
            {"url": server.url("vm/disk0.vmdk"), "sha256": sha},
            {"url": server.url("vm/disk1.vmdk"), "md5": md5, "file_name": "second.vmdk"},
            {"url": server.url("vm/disk2.vmdk"), "crc32c": crc},
        ]}),
    );
    let rec = Recorder::default();
    let e = client.start_export("", &o, Some(rec.callback())).unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    rec.check();
    assert_eq!(
        std::fs::read(dir.path().join("disk0.vmdk")).unwrap(),
        files[0]
    );
    assert_eq!(
        std::fs::read(dir.path().join("second.vmdk")).unwrap(),
        files[1]
    );
    assert_eq!(
        std::fs::read(dir.path().join("disk2.vmdk")).unwrap(),
        files[2]
    );
    let algs: Vec<_> = r
        .files
        .iter()
        .map(|f| f.checksum.as_ref().unwrap().algorithm)
        .collect();
    assert_eq!(algs, vec!["sha256", "md5", "crc32c"]);
    // Every file index was reported, 1-based.
    let idx: std::collections::BTreeSet<u32> = rec
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.file_index)
        .collect();
    assert!(
        idx.contains(&1) && idx.contains(&3) && !idx.contains(&4),
        "{idx:?}"
    );
    assert_eq!(
        rec.last().bytes_total,
        files.iter().map(|f| f.len() as u64).sum::<u64>()
    );
}

#[test]
fn wrong_checksum_fails_and_leaves_no_final_file() {
    let (_rt, server, dir, client) = setup();
    server.put("x.raw", pattern(300_000, 3));
    let o = opts(
        dir.path(),
        json!({"sha256": "00".repeat(32), "keep_partial": false}),
    );
    let rec = Recorder::default();
    let e = client
        .start_export(&server.url("x.raw"), &o, Some(rec.callback()))
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "failed");
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::Verification);
    assert_eq!(err.phase, Phase::Verifying);
    assert!(err.message.contains("sha256 of x.raw"), "{}", err.message);
    assert!(!dir.path().join("x.raw").exists());
    assert!(
        !dir.path().join("x.raw.hspart").exists(),
        "keep_partial=false removes the temp file"
    );
    assert_eq!(*rec.check().last().unwrap(), Phase::Failed);
}

#[test]
fn server_ignoring_range_falls_back_to_one_stream() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(1_500_000, 4);
    server.put("a.bin", data.clone());
    server.set_faults(Faults {
        ignore_range: true,
        ..Default::default()
    });
    let rec = Recorder::default();
    let e = client
        .start_export(
            &server.url("a.bin"),
            &opts(dir.path(), json!({})),
            Some(rec.callback()),
        )
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join("a.bin")).unwrap(), data);
    assert_eq!(
        server.requests().len(),
        1,
        "the probe's 200 body is used, not fetched twice"
    );
    rec.check();
}

#[test]
fn body_without_length_is_downloaded_and_total_corrected() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(900_000, 5);
    server.put("n.bin", data.clone());
    server.set_faults(Faults {
        ignore_range: true,
        no_length: true,
        ..Default::default()
    });
    let rec = Recorder::default();
    let e = client
        .start_export(
            &server.url("n.bin"),
            &opts(dir.path(), json!({})),
            Some(rec.callback()),
        )
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join("n.bin")).unwrap(), data);
    rec.check();
    assert_eq!(rec.last().bytes_total, data.len() as u64);
}

#[test]
fn cut_connections_are_retried_from_where_they_stopped() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(2_000_000, 6);
    server.put("c.bin", data.clone());
    // Probe passes (1 byte), then the next 4 responses are cut after 100 000 bytes.
    server.set_faults(Faults {
        cut_after: 100_000,
        cut_count: 5,
        ..Default::default()
    });
    let rec = Recorder::default();
    let e = client
        .start_export(
            &server.url("c.bin"),
            &opts(dir.path(), json!({})),
            Some(rec.callback()),
        )
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join("c.bin")).unwrap(), data);
    rec.check();
    // Retries continued mid-part: no byte was fetched twice.
    assert_eq!(
        server.body_bytes(),
        data.len() as u64 + 1,
        "probe byte + each byte once"
    );
    assert!(r.files[0].retries >= 4, "{}", r.to_json());
}

#[test]
fn unavailable_with_retry_after_is_honoured() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(100_000, 7);
    server.put("r.bin", data.clone());
    server.set_faults(Faults {
        fail_count: 2,
        retry_after: Some("1".into()),
        ..Default::default()
    });
    let t = Instant::now();
    let e = client
        .start_export(&server.url("r.bin"), &opts(dir.path(), json!({})), None)
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    // With a 20 ms backoff, only Retry-After explains waiting at least a second.
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "Retry-After ignored: {:?}",
        t.elapsed()
    );
    assert_eq!(std::fs::read(dir.path().join("r.bin")).unwrap(), data);
}

#[test]
fn persistent_503_fails_after_max_attempts() {
    let (_rt, server, dir, client) = setup();
    server.put("f.bin", pattern(1000, 8));
    server.set_faults(Faults {
        fail_count: 100,
        ..Default::default()
    });
    let e = client
        .start_export(
            &server.url("f.bin"),
            &opts(dir.path(), json!({"max_attempts": 3})),
            None,
        )
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "failed");
    assert_eq!(r.error().unwrap().kind, ErrorKind::Network);
    assert!(
        r.error().unwrap().message.contains("503"),
        "{}",
        r.error().unwrap().message
    );
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn stalled_part_is_retried() {
    let (_rt, server, dir, client) = setup();
    let data = pattern(1_000_000, 9);
    server.put("s.bin", data.clone());
    // The count is per response: the 1-byte probe takes one, the part and its retry stall.
    server.set_faults(Faults {
        stall_after: 50_000,
        stall_for: Duration::from_secs(20),
        stall_count: 3,
        ..Default::default()
    });
    let o = opts(dir.path(), json!({"stall_timeout_ms": 300}));
    let e = client.start_export(&server.url("s.bin"), &o, None).unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join("s.bin")).unwrap(), data);
    // The stalls were detected and given up on after the stall timeout, not sat out (20 s),
    // and the result counts the retries they caused.
    let stalls = server.stalls();
    assert_eq!(stalls.len(), 2, "{stalls:?}");
    for s in &stalls {
        assert!(
            s.abandoned,
            "a stalled connection was not given up: {stalls:?}"
        );
        assert!(
            s.lasted >= Duration::from_millis(250) && s.lasted < Duration::from_secs(5),
            "given up after {:?}, with a 300 ms stall timeout",
            s.lasted
        );
    }
    assert!(r.files[0].retries >= 2, "{}", r.to_json());
}

#[test]
fn resume_fetches_only_missing_bytes() {
    let (_rt, server, dir, client) = setup();
    let size = 4 * 1024 * 1024;
    let data = pattern(size, 11);
    server.put("big.vmdk", data.clone());
    // 4 parts paced at 256 KiB/s each: about 4 s in all, time enough to stop half way.
    server.set_faults(Faults {
        bytes_per_sec: 256 * 1024,
        ..Default::default()
    });
    let o = opts(dir.path(), json!({"parts_in_flight": 4}));
    let e = client
        .start_export(&server.url("big.vmdk"), &o, None)
        .unwrap();
    while e.progress().bytes_done < size as u64 / 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled");
    assert!(
        !dir.path().join("big.vmdk").exists(),
        "nothing looks complete"
    );
    assert!(dir.path().join("big.vmdk.hspart").exists());
    assert!(dir.path().join("big.vmdk.hspart.journal").exists());

    server.set_faults(Faults::default());
    server.reset_stats();
    let rec = Recorder::default();
    let e = client
        .start_export(&server.url("big.vmdk"), &o, Some(rec.callback()))
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join("big.vmdk")).unwrap(), data);
    let f = &r.files[0];
    assert!(
        f.resumed_bytes >= size as u64 / 2 - 262_144,
        "kept {} bytes",
        f.resumed_bytes
    );
    assert_eq!(f.resumed_bytes + f.fetched_bytes, size as u64);
    assert_eq!(
        server.body_bytes(),
        f.fetched_bytes + 1,
        "only the missing bytes (and the probe byte)"
    );
    // Progress counts the kept bytes: it ends at the full size, not at what this run fetched.
    rec.check();
    assert_eq!(rec.last().bytes_done, size as u64);
}

#[test]
fn changed_source_between_runs_starts_over() {
    let (_rt, server, dir, client) = setup();
    let size = 2 * 1024 * 1024;
    server.put("v.bin", pattern(size, 12));
    server.set_faults(Faults {
        bytes_per_sec: 128 * 1024,
        ..Default::default()
    });
    let o = opts(dir.path(), json!({"part_size": 65536}));
    let e = client.start_export(&server.url("v.bin"), &o, None).unwrap();
    while e.progress().bytes_done < size as u64 / 3 {
        std::thread::sleep(Duration::from_millis(10));
    }
    e.cancel();
    assert_eq!(wait(&e).status, "cancelled");
    let new = pattern(size, 13);
    server.put("v.bin", new.clone());
    server.set_faults(Faults::default());
    let r = wait(&client.start_export(&server.url("v.bin"), &o, None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(r.files[0].resumed_bytes, 0);
    assert_eq!(std::fs::read(dir.path().join("v.bin")).unwrap(), new);
}

#[test]
fn zero_runs_stay_holes() {
    let (_rt, server, dir, client) = setup();
    let size = 8 * 1024 * 1024;
    let mut data = vec![0u8; size];
    // Data only in the first quarter.
    data[..size / 4].copy_from_slice(&pattern(size / 4, 14));
    server.put("sparse.raw", data.clone());
    let r = wait(
        &client
            .start_export(
                &server.url("sparse.raw"),
                &opts(dir.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let path = dir.path().join("sparse.raw");
    assert_eq!(std::fs::read(&path).unwrap(), data);
    use std::os::unix::fs::MetadataExt as _;
    let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
    assert!(
        allocated < size as u64 / 2,
        "{allocated} bytes allocated for {size} with 75% zeros"
    );
}

#[test]
fn bandwidth_limit_holds_across_parallel_parts() {
    let (_rt, server, dir, client) = setup();
    server.put("l.bin", pattern(3 * 1024 * 1024, 15));
    let o = opts(
        dir.path(),
        json!({"max_bytes_per_second": 2 * 1024 * 1024, "parts_in_flight": 8}),
    );
    let t = Instant::now();
    let r = wait(&client.start_export(&server.url("l.bin"), &o, None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    // 3 MiB at 2 MiB/s, less the small initial burst, cannot take under ~1.3 s.
    assert!(
        t.elapsed() >= Duration::from_millis(1300),
        "limit not applied: {:?}",
        t.elapsed()
    );
}

#[test]
fn auth_header_and_errors() {
    let (_rt, server, dir, _) = setup();
    server.put("p.bin", pattern(10_000, 16));
    server.set_faults(Faults {
        require_auth: Some("Bearer s3cr3t".into()),
        ..Default::default()
    });
    let anon = Client::new("http", "{}").unwrap();
    let r = wait(
        &anon
            .start_export(&server.url("p.bin"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.error().unwrap().kind, ErrorKind::Auth);
    let authed = Client::new("http", r#"{"headers": {"Authorization": "Bearer s3cr3t"}}"#).unwrap();
    let r = wait(
        &authed
            .start_export(
                &server.url("p.bin?sig=topsecret"),
                &opts(dir.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    // 404: a clear not-found naming the file, without the query string.
    let r = wait(
        &authed
            .start_export(
                &server.url("missing.bin?sig=topsecret"),
                &opts(dir.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        err.message.contains("missing.bin") && !err.message.contains("topsecret"),
        "{}",
        err.message
    );
    assert!(!r.to_json().contains("s3cr3t") && !r.to_json().contains("topsecret"));
}

#[test]
fn unreachable_host_is_a_network_error() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new("http", "{}").unwrap();
    let o = opts(dir.path(), json!({"max_attempts": 2}));
    let r = wait(
        &client
            .start_export(&format!("http://127.0.0.1:{port}/x"), &o, None)
            .unwrap(),
    );
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::Network, "{}", err.message);
    assert!(
        err.message.to_lowercase().contains("connect"),
        "{}",
        err.message
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn existing_file_is_not_overwritten_unless_asked() {
    let (_rt, server, dir, client) = setup();
    server.put("e.bin", pattern(50_000, 17));
    std::fs::write(dir.path().join("e.bin"), b"precious").unwrap();
    let r = wait(
        &client
            .start_export(&server.url("e.bin"), &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.error().unwrap().kind, ErrorKind::AlreadyExists);
    assert_eq!(
        std::fs::read(dir.path().join("e.bin")).unwrap(),
        b"precious"
    );
    let r = wait(
        &client
            .start_export(
                &server.url("e.bin"),
                &opts(dir.path(), json!({"overwrite": true})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done");
    assert_eq!(
        std::fs::read(dir.path().join("e.bin")).unwrap(),
        pattern(50_000, 17)
    );
}

#[test]
fn bad_input_is_rejected_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new("http", "{}").unwrap();
    let e = client
        .start_export(
            "http://127.0.0.1:1/x",
            &opts(dir.path(), json!({"parts_in_flihgt": 3})),
            None,
        )
        .err()
        .unwrap();
    assert!(e.to_string().contains("parts_in_flihgt"), "{e}");
    let e = client
        .start_export(
            "http://127.0.0.1:1/x",
            r#"{"output_dir": "/nonexistent/dir"}"#,
            None,
        )
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("/nonexistent/dir"), "{e}");
    let e = client
        .start_export("http://127.0.0.1:1/x", "{not json", None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("options JSON"), "{e}");
    let e = Client::new("nope", "{}").err().unwrap();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = Client::new("http", r#"{"insecure_skip_verfy": true}"#)
        .err()
        .unwrap();
    assert!(e.to_string().contains("insecure_skip_verfy"), "{e}");
}

#[test]
fn cancel_and_pull_from_inside_the_callback() {
    let (_rt, server, dir, client) = setup();
    server.put("k.bin", pattern(4 * 1024 * 1024, 18));
    server.set_faults(Faults {
        bytes_per_sec: 2 * 1024 * 1024,
        ..Default::default()
    });
    let slot: std::sync::Arc<std::sync::Mutex<Option<hypersdk::Export>>> = Default::default();
    let seen_wait_error = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rec = Recorder::default();
    let (s2, w2) = (slot.clone(), seen_wait_error.clone());
    let mut inner = rec.callback();
    let cb: hypersdk::ProgressCallback = Box::new(move |p| {
        inner(p);
        if let Some(e) = s2.lock().unwrap().as_ref() {
            let _ = e.progress();
            if !p.phase.is_terminal() {
                if let Err(err) = e.wait(Some(Duration::from_secs(5))) {
                    assert_eq!(err.kind(), ErrorKind::InvalidState);
                    w2.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            } else {
                assert!(
                    e.result().is_some(),
                    "result available in the terminal callback"
                );
            }
            if p.bytes_done > 0 {
                e.cancel();
            }
        }
    });
    let e = client
        .start_export(&server.url("k.bin"), &opts(dir.path(), json!({})), Some(cb))
        .unwrap();
    *slot.lock().unwrap() = Some(e.clone());
    let r = wait(&e);
    assert_eq!(r.status, "cancelled");
    assert_eq!(*rec.check().last().unwrap(), Phase::Cancelled);
    assert!(seen_wait_error.load(std::sync::atomic::Ordering::SeqCst));
    assert!(!dir.path().join("k.bin").exists());
    slot.lock().unwrap().take();
}
