//! The output folder fills up mid-download: a tmpfs of 3 MiB (mounted by the test, which needs
//! root; otherwise it says it skipped) receives a 6 MiB file. The export must fail with a clear
//! IO error naming the file, keep a journal that claims only bytes that are on disk, and, once
//! the space is there (the tmpfs remounted larger), resume and finish with the exact bytes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use hypersdk::Client;
use serde_json::json;
use support::server::pattern;
use support::{http_setup, journal_covered, opts, wait_export};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: a plain libc call.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn grow(&self, size: &str) {
        let s = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(s.success(), "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_io_error_and_the_export_resumes_when_space_is_freed() {
    let (_rt, server, _unused, client): (_, _, _, Client) = http_setup();
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let Some(fs) = Tmpfs::mount(&mnt, "3m") else {
        eprintln!(
            "SKIPPED a_full_disk_is_a_clear_io_error…: mounting a tmpfs needs root (the CI machine runs as root)"
        );
        return;
    };
    let data = pattern(6 << 20, 77);
    server.put("big.img", data.clone());
    let o = opts(&mnt, json!({"parts_in_flight": 2}));

    let e = client
        .start_export(&server.url("big.img"), &o, None)
        .unwrap();
    let r = wait_export(&e);
    assert_eq!(r.status, "failed", "{}", r.to_json());
    let err = r.error.as_ref().unwrap();
    assert_eq!(err.kind, "io", "{}", r.to_json());
    assert!(
        err.message.contains("big.img") && err.message.to_lowercase().contains("space"),
        "the error should name the file and say the disk is full: {}",
        err.message
    );
    assert!(!mnt.join("big.img").exists());
    // The journal claims only what is on disk and correct: each range it covers equals the
    // source's bytes at that place in the temp file.
    let journal = mnt.join("big.img.hspart.journal");
    let covered = journal_covered(&journal);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    let temp = std::fs::read(mnt.join("big.img.hspart")).unwrap();
    for r in j["done"].as_array().unwrap() {
        let (a, b) = (
            r[0].as_u64().unwrap() as usize,
            r[1].as_u64().unwrap() as usize,
        );
        assert!(
            temp[a..b] == data[a..b],
            "the journal claims {a}..{b}, which is not on disk"
        );
    }
    assert!(covered > 0 && covered < 6 << 20, "covered {covered}");

    // Space comes back: the next run keeps what was there and fetches only the rest.
    fs.grow("16m");
    server.reset_stats();
    let e = client
        .start_export(&server.url("big.img"), &o, None)
        .unwrap();
    let r = wait_export(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert!(std::fs::read(mnt.join("big.img")).unwrap() == data);
    assert_eq!(r.bytes_resumed, covered, "{}", r.to_json());
    assert!(server.body_bytes() <= (6 << 20) - covered + (256 << 10));
    drop(fs);
}
