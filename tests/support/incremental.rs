//! What the incremental-export tests of every provider share (issue 35): saving a result where
//! `incremental_from` can name it, comparing two images, reading a result's incremental report.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hypersdk::ExportResult;
use serde_json::Value;

/// Writes the result JSON where `incremental_from` can name it.
pub fn save(r: &ExportResult, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, r.to_json()).unwrap();
    p
}

/// The two files are equal, read 8 MiB at a time.
pub fn assert_same(a: &Path, b: &Path) {
    use std::io::Read as _;
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    assert_eq!(
        fa.metadata().unwrap().len(),
        fb.metadata().unwrap().len(),
        "{} and {} differ in size",
        a.display(),
        b.display()
    );
    let (mut x, mut y) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    loop {
        let n = fa.read(&mut x).unwrap();
        fb.read_exact(&mut y[..n]).unwrap();
        assert!(
            x[..n] == y[..n],
            "{} and {} differ",
            a.display(),
            b.display()
        );
        if n == 0 {
            break;
        }
    }
}

/// The result's report of its `i`-th file (`incremental.files[i]`).
pub fn report(r: &ExportResult, i: usize) -> &Value {
    &r.provider["incremental"]["files"][i]
}
