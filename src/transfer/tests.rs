//! The source kinds beyond a plain URL, driven through `fetch` as the engine drives them: HTTP
//! extents against the real test server (the one the integration tests use), a local file, and
//! a file another process writes.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::progress::ProgressState;

#[path = "../../tests/support/server.rs"]
#[allow(dead_code, clippy::all)]
mod server;
use server::{Faults, TestServer, pattern};

fn ctx(dir: &Path, opts: TransferOptions) -> (Arc<TransferCtx>, Arc<ProgressState>) {
    let progress = Arc::new(ProgressState::new());
    let ctx = Arc::new(TransferCtx {
        dir: Arc::new(OutDir::open(dir, 0o600).unwrap()),
        opts: Arc::new(opts),
        limiter: Arc::new(throttle::RateLimiter::new(0)),
        progress: progress.clone(),
        cancel: CancellationToken::new(),
    });
    (ctx, progress)
}

fn small_parts() -> TransferOptions {
    TransferOptions {
        part_size: 256 << 10,
        parts_in_flight: 4,
        retry_base_delay_ms: 10,
        ..Default::default()
    }
}

/// A first run whose every body is cut after `cut_after` bytes, with one attempt per part: it
/// fails, having written and journalled the start of some parts.
async fn interrupted_first_run(
    server: &TestServer,
    dir: &Path,
    src: &Arc<FileSource>,
    cut_after: u64,
) {
    server.set_faults(Faults {
        cut_after,
        cut_count: 100,
        ..Default::default()
    });
    let (c1, p1) = ctx(
        dir,
        TransferOptions {
            max_attempts: 1,
            ..small_parts()
        },
    );
    let counters = p1.set_files(&[(src.name.clone(), 0)]);
    assert!(fetch(&c1, src, &counters[0]).await.is_err());
    server.set_faults(Faults::default());
}

fn http(server: &TestServer, path: &str) -> HttpSource {
    HttpSource {
        client: reqwest::Client::new(),
        url: Url::parse(&server.url(path)).unwrap(),
        headers: HeaderMap::new(),
        signer: None,
        hooks: Default::default(),
    }
}

/// `path` of `server` as `name`, read as Azure Blob's ranges: each asks for its MD5
/// (`x-ms-range-get-content-md5`), checked at the end of its body.
fn md5_ranges(server: &TestServer, path: &str, name: &str, size: u64) -> Arc<FileSource> {
    Arc::new(FileSource {
        name: name.into(),
        kind: SourceKind::HttpExtents {
            http: HttpSource {
                hooks: super::SourceHooks {
                    server_checksum: None,
                    range_md5_header: Some("x-ms-range-get-content-md5"),
                    version_header: None,
                },
                ..http(server, path)
            },
            size,
            extents: vec![(0, size)],
            base: None,
        },
        size_hint: None,
        expected_size: None,
        checksum: None,
        want_digest: None,
    })
}

/// Bytes of the file that are really allocated on disk.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extents_fetch_only_the_data_and_leave_holes() {
    let server = TestServer::start().await;
    let size = 8u64 << 20;
    // Data at [1 MiB, 1.5 MiB) and [6 MiB, 6 MiB + 100 KiB); zeros elsewhere, as a page blob
    // with two written ranges reads.
    let extents = vec![(1 << 20, 3 << 19), (6 << 20, (6 << 20) + 100_000)];
    let mut data = vec![0u8; size as usize];
    for &(a, b) in &extents {
        data[a as usize..b as usize].copy_from_slice(&pattern((b - a) as usize, a));
    }
    server.put("blob.vhd", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let (ctx, progress) = ctx(dir.path(), small_parts());
    let counters = progress.set_files(&[("blob.vhd".into(), 0)]);
    let src = Arc::new(FileSource {
        name: "blob.vhd".into(),
        kind: SourceKind::HttpExtents {
            http: http(&server, "blob.vhd"),
            size,
            extents: extents.clone(),
            base: None,
        },
        size_hint: Some(size),
        expected_size: None,
        checksum: None,
        want_digest: None,
    });
    server.reset_stats();
    let d = fetch(&ctx, &src, &counters[0]).await.unwrap();
    assert_eq!(d.size, size);
    let data_bytes: u64 = extents.iter().map(|(a, b)| b - a).sum();
    assert_eq!(d.fetched, data_bytes);
    assert_eq!(std::fs::read(&d.temp).unwrap(), data);
    // Only bytes of the extents crossed the wire (plus the one-byte probe).
    assert_eq!(server.body_bytes(), data_bytes + 1);
    for r in server.requests() {
        let range = r.rsplit(' ').next().unwrap().trim_start_matches("bytes=");
        let (a, b) = range.split_once('-').unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        assert!(
            extents.iter().any(|&(s, e)| a >= s && b < e),
            "{r} asks for bytes outside the extents"
        );
    }
    // Progress counts the bytes that had to arrive, and the holes stay holes on disk.
    let p = progress.snapshot();
    assert_eq!((p.bytes_done, p.bytes_total), (data_bytes, data_bytes));
    assert!(
        allocated(&d.temp) < size / 2,
        "{} bytes allocated for {data_bytes} bytes of data",
        allocated(&d.temp)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extents_resume_and_refuse_a_server_without_ranges() {
    let server = TestServer::start().await;
    let size = 2u64 << 20;
    let data = pattern(size as usize, 3);
    server.put("d.vhd", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let extents = vec![(0, size)];
    let src = Arc::new(FileSource {
        name: "d.vhd".into(),
        kind: SourceKind::HttpExtents {
            http: http(&server, "d.vhd"),
            size,
            extents,
            base: None,
        },
        size_hint: None,
        expected_size: None,
        checksum: None,
        want_digest: None,
    });
    interrupted_first_run(&server, dir.path(), &src, 100_000).await;
    // Second run: only what is missing is fetched.
    server.reset_stats();
    let (c2, p2) = ctx(dir.path(), small_parts());
    let counters = p2.set_files(&[("d.vhd".into(), 0)]);
    let d = fetch(&c2, &src, &counters[0]).await.unwrap();
    assert!(d.resumed > 0, "nothing was kept from the first run");
    assert_eq!(d.resumed + d.fetched, size);
    assert_eq!(server.body_bytes(), d.fetched + 1);
    assert_eq!(std::fs::read(&d.temp).unwrap(), data);

    // A server that ignores Range cannot serve a sparse source: a clear error, no guessing.
    server.set_faults(Faults {
        ignore_range: true,
        ..Default::default()
    });
    let (c3, p3) = ctx(dir.path(), small_parts());
    let counters = p3.set_files(&[("other.vhd".into(), 0)]);
    let other = Arc::new(FileSource {
        name: "other.vhd".into(),
        ..(*src).clone()
    });
    let e = fetch(&c3, &other, &counters[0]).await.unwrap_err();
    assert!(e.to_string().contains("ranged requests"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_md5_is_asked_for_checked_and_a_mismatch_is_not_kept() {
    let server = TestServer::start().await;
    let size = 12u64 << 20;
    let data = pattern(size as usize, 17);
    server.put("md5.vhd", data.clone());
    let src = |name: &str| md5_ranges(&server, "md5.vhd", name, size);
    // Default 8 MiB parts: cut to 4 MiB, each asking for its MD5, which matches.
    let dir = tempfile::tempdir().unwrap();
    let (c1, p1) = ctx(dir.path(), TransferOptions::default());
    let counters = p1.set_files(&[("good.vhd".into(), 0)]);
    let d = fetch(&c1, &src("good.vhd"), &counters[0]).await.unwrap();
    assert_eq!(std::fs::read(&d.temp).unwrap(), data);
    let ranged: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| !r.ends_with("bytes=0-0"))
        .collect();
    assert_eq!(ranged.len(), 3, "{ranged:?}");
    assert!(server.saw_in_heads("x-ms-range-get-content-md5: true"));

    // One range's stated MD5 is wrong: a verification error naming the range, and the journal
    // does not count its bytes (a resume fetches them again); the other ranges are kept.
    let bad_at = (5 << 20) + 123;
    server.set_faults(Faults {
        wrong_range_md5_at: Some(bad_at),
        ..Default::default()
    });
    let (c2, p2) = ctx(
        dir.path(),
        TransferOptions {
            parts_in_flight: 1,
            ..TransferOptions::default()
        },
    );
    let counters = p2.set_files(&[("bad.vhd".into(), 0)]);
    let e = fetch(&c2, &src("bad.vhd"), &counters[0]).await.unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
    assert!(e.to_string().contains("MD5"), "{e}");
    let j = journal::Journal::load(&c2.dir, &journal::Journal::name_for("bad.vhd")).unwrap();
    let done: Vec<(u64, u64)> = j.done.ranges().collect();
    assert!(
        done.iter().all(|&(a, b)| !(a..b).contains(&bad_at)),
        "the journal keeps the mismatched range: {done:?}"
    );
    assert!(done.contains(&(0, 4 << 20)), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_file_is_copied_in_parts_with_holes() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("source.img");
    let mut data = pattern(3 << 20, 5);
    data[1 << 20..2 << 20].fill(0);
    std::fs::write(&from, &data).unwrap();
    let (ctx, progress) = ctx(dir.path(), small_parts());
    let counters = progress.set_files(&[("copy.img".into(), 0)]);
    let src = Arc::new(FileSource {
        name: "copy.img".into(),
        kind: SourceKind::Local(from.clone()),
        size_hint: None,
        expected_size: None,
        checksum: Some(Checksum::Sha256(
            sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&data)).into(),
        )),
        want_digest: Some(crate::transfer::Digest::Sha256),
    });
    let d = fetch(&ctx, &src, &counters[0]).await.unwrap();
    assert_eq!(d.temp, dir.path().join("copy.img.hspart"));
    assert_eq!(d.temp_name.as_deref(), Some("copy.img.hspart"));
    assert_eq!(std::fs::read(&d.temp).unwrap(), data);
    assert_eq!(d.fetched, data.len() as u64);
    assert!(allocated(&d.temp) <= (2 << 20) + (64 << 10));
    let want: [u8; 32] =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&data)).into();
    assert_eq!(d.digest, Some(want.to_vec()));
    assert_eq!(progress.snapshot().bytes_done, data.len() as u64);

    // A directory is not a file to copy.
    let src = Arc::new(FileSource {
        name: "x".into(),
        kind: SourceKind::Local(dir.path().to_path_buf()),
        size_hint: None,
        expected_size: None,
        checksum: None,
        want_digest: None,
    });
    let counters = progress.set_files(&[("x".into(), 0)]);
    let e = fetch(&ctx, &src, &counters[0]).await.unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

fn written(
    path: &Path,
    final_size: Option<u64>,
) -> (FileSource, tokio::sync::watch::Sender<WriterState>) {
    let (tx, rx) = tokio::sync::watch::channel(WriterState::Running);
    let src = FileSource {
        name: "disk.vhdx".into(),
        kind: SourceKind::Written(Written {
            path: path.to_path_buf(),
            final_size,
            state: rx,
            optional: false,
        }),
        size_hint: None,
        expected_size: None,
        checksum: None,
        want_digest: None,
    };
    (src, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_file_reports_growth_and_ends_with_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("staging.vhdx");
    let (src, tx) = written(&path, Some(4 << 20));
    let src = Arc::new(src);
    let (ctx, progress) = ctx(
        dir.path(),
        TransferOptions {
            poll_file_interval_ms: 10,
            ..Default::default()
        },
    );
    let counters = progress.set_files(&[("disk.vhdx".into(), 0)]);
    let writer_path = path.clone();
    let writer = tokio::spawn(async move {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&writer_path).unwrap();
        for i in 0..4u64 {
            f.write_all(&pattern(1 << 20, i)).unwrap();
            f.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        tx.send(WriterState::Finished).unwrap();
    });
    let watcher = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..100 {
                seen.push(progress.snapshot().bytes_done);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let d = fetch(&ctx, &src, &counters[0]).await.unwrap();
    writer.await.unwrap();
    assert_eq!(d.temp, path, "the bytes stay where the writer put them");
    assert_eq!(d.size, 4 << 20);
    let seen = watcher.await.unwrap();
    // Progress moved in steps while the file grew, not in one jump at the end.
    let steps: std::collections::BTreeSet<u64> = seen.into_iter().collect();
    assert!(
        steps.iter().filter(|b| **b > 0 && **b < 4 << 20).count() >= 2,
        "{steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_file_failures_sizes_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.vhdx");
    std::fs::write(&path, b"partial").unwrap();
    let opts = TransferOptions {
        poll_file_interval_ms: 10,
        ..Default::default()
    };

    // The writer fails: its message is the error.
    let (src, tx) = written(&path, None);
    let (c, p) = ctx(dir.path(), opts.clone());
    let counters = p.set_files(&[("w".into(), 0)]);
    tx.send(WriterState::Failed("Export-VM: access denied".into()))
        .unwrap();
    let e = fetch(&c, &Arc::new(src), &counters[0]).await.unwrap_err();
    assert!(e.to_string().contains("access denied"), "{e}");

    // The writer finishes with the wrong size.
    let (src, tx) = written(&path, Some(1000));
    let (c, p) = ctx(dir.path(), opts.clone());
    let counters = p.set_files(&[("w".into(), 0)]);
    tx.send(WriterState::Finished).unwrap();
    let e = fetch(&c, &Arc::new(src), &counters[0]).await.unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");

    // The writer vanishes without a word.
    let (src, tx) = written(&path, None);
    drop(tx);
    let (c, p) = ctx(dir.path(), opts.clone());
    let counters = p.set_files(&[("w".into(), 0)]);
    let e = fetch(&c, &Arc::new(src), &counters[0]).await.unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e}");

    // Cancel while the writer runs.
    let (src, _tx) = written(&path, None);
    let (c, p) = ctx(dir.path(), opts);
    let counters = p.set_files(&[("w".into(), 0)]);
    let cancel = c.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
    });
    let e = fetch(&c, &Arc::new(src), &counters[0]).await.unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
}

/// Bytes kept from an earlier run that were changed on disk meanwhile are caught by the
/// journal's per-part CRC32C and fetched again; with the check off they would stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_kept_bytes_are_fetched_again() {
    use std::os::unix::fs::FileExt as _;
    for verify in [true, false] {
        let server = TestServer::start().await;
        let size = 2u64 << 20;
        let data = pattern(size as usize, 21);
        server.put("k.vmdk", data.clone());
        let dir = tempfile::tempdir().unwrap();
        let src = Arc::new(FileSource::http("k.vmdk".into(), http(&server, "k.vmdk")));
        interrupted_first_run(&server, dir.path(), &src, 200_000).await;
        // Flip a byte inside what the first run kept (the first range with a CRC: the first
        // failing part stops the others, so which parts kept bytes varies).
        let journal: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("k.vmdk.hspart.journal")).unwrap(),
        )
        .unwrap();
        let kept = journal["crcs"].as_object().unwrap();
        assert!(!kept.is_empty(), "the first run kept nothing");
        let (start, entry) = kept.iter().next().unwrap();
        let start: u64 = start.parse().unwrap();
        let end = entry[0].as_u64().unwrap();
        assert!(end > start);
        let at = start + (end - start) / 2;
        let temp = dir.path().join("k.vmdk.hspart");
        let f = std::fs::OpenOptions::new().write(true).open(&temp).unwrap();
        f.write_all_at(&[data[at as usize] ^ 0xff], at).unwrap();
        drop(f);
        let (c2, p2) = ctx(
            dir.path(),
            TransferOptions {
                verify_resumed: verify,
                ..small_parts()
            },
        );
        let counters = p2.set_files(&[("k.vmdk".into(), 0)]);
        let d = fetch(&c2, &src, &counters[0]).await.unwrap();
        let got = std::fs::read(&d.temp).unwrap();
        if verify {
            assert!(got == data, "the corrupted byte survived the resume");
        } else {
            assert!(d.resumed > 0, "nothing was kept");
            assert!(got != data, "the control run should keep the corruption");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_written_file_its_writer_never_made_is_absent_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guessed.vhdx");
    let (ctx, progress) = ctx(dir.path(), TransferOptions::default());
    for optional in [true, false] {
        let (mut src, tx) = written(&path, None);
        if let SourceKind::Written(w) = &mut src.kind {
            w.optional = optional;
        }
        src.size_hint = Some(1 << 20);
        let counters = progress.set_files(&[("disk.vhdx".into(), 1 << 20)]);
        tx.send(WriterState::Finished).unwrap();
        let got = fetch_or_absent(&ctx, &Arc::new(src), &counters[0]).await;
        if optional {
            assert!(got.unwrap().is_none());
            // Its expected bytes leave the total: the export's total is what was written.
            assert_eq!(progress.snapshot().bytes_total, 0);
        } else {
            let e = got.unwrap_err().to_string();
            assert!(e.contains("left no file"), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_connection_takes_the_back_half_of_a_part_still_running() {
    // Two parts in flight over 32 MiB: guided parts of 16, 8, 4, 2, 1 and 1 MiB. The response
    // of whichever of the first two asked first stalls after 1 MiB for 2 s; the other
    // connection fetches the rest, then, with no part left to start, cuts what the stalled
    // part has left and takes its back half (at least once: 8..16 MiB then 4..8 when the
    // 16 MiB part stalled, 20..24 MiB when the 8 MiB one did), until halves would be < 2 MiB.
    let server = TestServer::start().await;
    let size = 32u64 << 20;
    let data = pattern(size as usize, 5);
    server.put("cut.bin", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = ctx(
        dir.path(),
        TransferOptions {
            part_size: 1 << 20,
            parts_in_flight: 2,
            max_parts_in_flight: 2,
            ..Default::default()
        },
    );
    // The probe (bytes=0-0) takes the first count, the first part the second.
    server.set_faults(Faults {
        stall_after: 1 << 20,
        stall_for: Duration::from_secs(2),
        stall_count: 2,
        ..Default::default()
    });
    let src = Arc::new(FileSource::http("cut.bin".into(), http(&server, "cut.bin")));
    let counters = p.set_files(&[(src.name.clone(), 0)]);
    let d = fetch(&c, &src, &counters[0]).await.unwrap();
    assert_eq!(std::fs::read(&d.temp).unwrap(), data);
    let ranged: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| !r.ends_with("bytes=0-0"))
        .collect();
    // Without cutting: the six guided parts, the last five waiting on nothing but one another.
    assert!(ranged.len() > 6, "no part was cut: {ranged:?}");
    assert_eq!(server.stalls().len(), 1, "{:?}", server.stalls());
    // Every byte was counted once: the cut part counts only what is before its cut.
    assert_eq!(p.snapshot().bytes_done, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_checked_at_its_end_is_never_cut() {
    // Azure's per-range MD5 is checked at the end of the body: a part cut short would keep
    // bytes no checksum vouched for. The same stall as above, 4 MiB ranges (a stalled one has
    // 4 MiB left, two halves of 2 MiB a cut would make): still only the three planned ranges.
    let server = TestServer::start().await;
    let size = 12u64 << 20;
    let data = pattern(size as usize, 9);
    server.put("md5cut.vhd", data.clone());
    let src = md5_ranges(&server, "md5cut.vhd", "md5cut.vhd", size);
    // The probe (bytes=0-0) stalls first, then the first range, before its first byte.
    server.set_faults(Faults {
        stall_after: 0,
        stall_for: Duration::from_millis(1500),
        stall_count: 2,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = ctx(
        dir.path(),
        TransferOptions {
            part_size: 4 << 20,
            parts_in_flight: 2,
            max_parts_in_flight: 2,
            ..Default::default()
        },
    );
    let counters = p.set_files(&[("md5cut.vhd".into(), 0)]);
    let d = fetch(&c, &src, &counters[0]).await.unwrap();
    assert_eq!(std::fs::read(&d.temp).unwrap(), data);
    assert_eq!(server.stalls().len(), 2, "{:?}", server.stalls());
    let ranged: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| !r.ends_with("bytes=0-0"))
        .collect();
    assert_eq!(ranged.len(), 3, "{ranged:?}");
}
